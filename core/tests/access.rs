//! Who may play (issue 16), on the reference composition both hosts run: session options
//! (`maxPlayers`, `password`, `private`, `hostOnlySessionUpdates`), the host, `kickPlayer`,
//! `lockSession`, and the `host` feature. An original client that uses none of it sees the
//! original protocol.

mod common;

use common::{id, Harness};
use serde_json::{json, Value};
use sessionserver_core::ids::MAX_ID;
use sessionserver_core::{ConnectionConfig, Features, Limits, PlayerId, Server};
use wasm_bindgen_test::wasm_bindgen_test;

fn game() -> Harness {
    let config = ConnectionConfig {
        features: Features::RESUME.union(Features::HOST),
        ..ConnectionConfig::default()
    };
    Harness::with_server(Server::with_config(Limits::default(), config).with_secrets([9; 32]))
}

/// Joins session `session` as `player`; returns the reply.
fn join(h: &mut Harness, player: PlayerId, session: u64, password: Option<&str>) -> Value {
    let frame = match password {
        Some(p) => json!({"command":"joinSession","sessionID":session,"password":p}),
        None => json!({"command":"joinSession","sessionID":session}),
    };
    h.send(player, &frame.to_string());
    h.recv(player)
}

/// `player` joins `session` and everyone's join frames are dropped.
fn joined(h: &mut Harness, player: PlayerId, session: u64, members: &[PlayerId]) {
    let reply = join(h, player, session, None);
    assert_eq!(reply["error"], 0, "{reply}");
    h.take_all(player);
    for m in members {
        h.take_all(*m);
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_fifth_player_is_refused_at_max_players_4_and_a_seat_that_frees_is_taken() {
    let mut h = game();
    let host = h.connect();
    let s = h.create(
        host,
        r#"{"command":"createSession","options":{"maxPlayers":4}}"#,
    );
    let mut members = vec![host];
    for _ in 0..3 {
        let p = h.connect();
        joined(&mut h, p, s, &members);
        members.push(p);
    }
    let fifth = h.connect();
    assert_eq!(
        join(&mut h, fifth, s, None),
        json!({"command":"sessionJoin","error":16,"message":"the session has its maximum of 4 players"})
    );
    for m in &members {
        h.assert_quiet(*m);
    }
    h.send(members[3], r#"{"command":"leaveSession"}"#);
    h.take_all(members[3]);
    assert_eq!(join(&mut h, fifth, s, None)["error"], 0);
}

#[wasm_bindgen_test(unsupported = test)]
fn options_that_make_no_sense_are_error_13_and_create_nothing() {
    let mut h = game();
    let p = h.connect();
    for options in [
        r#"{"maxPlayers":0}"#,
        r#"{"maxPlayers":4097}"#,
        r#"{"maxPlayers":-1}"#,
        r#"{"maxPlayers":2.5}"#,
        r#"{"maxPlayers":"4"}"#,
        r#"{"private":"yes"}"#,
        r#"{"password":""}"#,
        r#"{"password":5}"#,
        r#"{"hostOnlySessionUpdates":1}"#,
        r#"{"maxPlayer":4}"#,
        r#"{"private":true,"private":false}"#,
        r#"[]"#,
        r#""private""#,
        r#"null"#,
    ] {
        let frame = format!(r#"{{"command":"createSession","options":{options}}}"#);
        h.send(p, &frame);
        let reply = h.recv(p);
        assert_eq!(reply["command"], "sessionJoin", "{options}: {reply}");
        assert_eq!(reply["error"], 13, "{options}: {reply}");
        assert!(reply["message"].as_str().unwrap().len() > 10, "{reply}");
    }
    assert_eq!(h.server.sessions().count(), 0);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_password_is_needed_to_join_and_wrong_guesses_are_rate_limited() {
    let mut h = game();
    let host = h.connect();
    let s = h.create(
        host,
        r#"{"command":"createSession","options":{"password":"open sesame"}}"#,
    );
    let guest = h.connect();
    let missing = join(&mut h, guest, s, None);
    assert_eq!(missing["command"], "sessionJoin");
    assert_eq!(missing["error"], 26, "{missing}");
    assert_eq!(join(&mut h, guest, s, Some("open Sesame"))["error"], 26);
    h.send(
        guest,
        &format!(r#"{{"command":"joinSession","sessionID":{s},"password":7}}"#),
    );
    assert_eq!(h.recv(guest)["error"], 13);
    h.assert_quiet(host);
    // Ten wrong guesses in all (the first was one; a missing password is none) use up the
    // session's allowance: then not even the right one is checked.
    for _ in 0..9 {
        assert_eq!(join(&mut h, guest, s, Some("guess"))["error"], 26);
    }
    let other = h.connect();
    let refused = join(&mut h, other, s, Some("open sesame"));
    assert_eq!(refused["error"], 27, "{refused}");
    // One guess comes back per second.
    h.advance_time(1_000);
    let reply = join(&mut h, other, s, Some("open sesame"));
    assert_eq!(reply["error"], 0, "{reply}");
    assert_eq!(h.recv(host)["command"], "playerJoin");
}

#[wasm_bindgen_test(unsupported = test)]
fn a_password_session_without_hello_answers_in_the_original_shape() {
    let mut h = Harness::new();
    let host = h.connect();
    h.send(
        host,
        r#"{"command":"createSession","sessionData":{"a":1},"playerData":{"x":0},"options":{"password":"pw","maxPlayers":2}}"#,
    );
    // The creator's sessionJoin is the original's, byte for byte.
    assert_eq!(
        h.recv_text(host),
        format!(
            r#"{{"command":"sessionJoin","error":0,"sessionID":0,"playerID":{},"sessionData":{{"a":1}},"playerData":{{"x":0}}}}"#,
            id(host)
        )
    );
    let guest = h.connect();
    let reply = join(&mut h, guest, 0, Some("pw"));
    assert_eq!(reply["error"], 0);
    assert_eq!(
        reply.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "command",
            "error",
            "playerData",
            "playerID",
            "sessionData",
            "sessionID"
        ]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_private_session_is_not_found_by_minus_one_and_has_a_random_id() {
    let mut h = game();
    let a = h.connect();
    let private = h.create(
        a,
        r#"{"command":"createSession","options":{"private":true}}"#,
    );
    let b = h.connect();
    let other = h.create(
        b,
        r#"{"command":"createSession","options":{"private":true}}"#,
    );
    assert_ne!(private, other);
    for id in [private, other] {
        assert!(
            id <= MAX_ID && id > 1_000_000,
            "{id} looks counted, not drawn"
        );
    }
    let c = h.connect();
    h.send(c, r#"{"command":"joinSession","sessionID":-1}"#);
    assert_eq!(h.recv_text(c), r#"{"command":"sessionJoin","error":6}"#);
    // Public sessions keep counting from 0, and are what -1 finds.
    let d = h.connect();
    let public = h.create(d, r#"{"command":"createSession"}"#);
    assert_eq!(public, 0);
    h.send(c, r#"{"command":"joinSession","sessionID":-1}"#);
    assert_eq!(h.recv(c)["sessionID"], 0);
    // By its ID, a private session is joined like any other.
    let e = h.connect();
    assert_eq!(join(&mut h, e, private, None)["error"], 0);
}

#[wasm_bindgen_test(unsupported = test)]
fn the_host_kicks_a_member_who_is_back_in_the_lobby() {
    let mut h = game();
    let host = h.connect();
    let s = h.create(host, r#"{"command":"createSession"}"#);
    let victim = h.connect();
    joined(&mut h, victim, s, &[host]);
    let witness = h.connect();
    joined(&mut h, witness, s, &[host, victim]);
    h.send(
        host,
        &format!(r#"{{"command":"kickPlayer","playerID":{}}}"#, id(victim)),
    );
    // An original client: the plain sessionLeave.
    assert_eq!(
        h.recv_text(victim),
        r#"{"command":"sessionLeave","error":0}"#
    );
    let leave = format!(
        r#"{{"command":"playerLeave","error":0,"playerID":{}}}"#,
        id(victim)
    );
    assert_eq!(h.recv_text(host), leave);
    assert_eq!(h.recv_text(witness), leave);
    h.assert_quiet(victim);
    assert_eq!(h.server.session_of(victim), None);
    // In the lobby: it may create a session of its own.
    let own = h.create(victim, r#"{"command":"createSession"}"#);
    assert_ne!(own, s);
    let members: Vec<_> = h
        .server
        .sessions()
        .find(|x| x.id().0 == s)
        .unwrap()
        .member_ids()
        .collect();
    assert_eq!(members, [host, witness]);
    h.server.check_invariants().unwrap();
}

#[wasm_bindgen_test(unsupported = test)]
fn only_the_host_kicks_and_only_other_members() {
    let mut h = game();
    let host = h.connect();
    let s = h.create(host, r#"{"command":"createSession"}"#);
    let guest = h.connect();
    joined(&mut h, guest, s, &[host]);
    h.send(
        guest,
        &format!(r#"{{"command":"kickPlayer","playerID":{}}}"#, id(host)),
    );
    let refused = h.recv(guest);
    assert_eq!(refused["command"], "playerLeave");
    assert_eq!(refused["error"], 29, "{refused}");
    for target in [id(host), 999_999] {
        h.send(
            host,
            &format!(r#"{{"command":"kickPlayer","playerID":{target}}}"#),
        );
        let reply = h.recv(host);
        assert_eq!(reply["error"], 30, "{reply}");
    }
    for bad in [r#""1""#, "-1", "1.5", "null"] {
        h.send(
            host,
            &format!(r#"{{"command":"kickPlayer","playerID":{bad}}}"#),
        );
        assert_eq!(h.recv(host)["error"], 13);
    }
    h.assert_quiet(host);
    h.assert_quiet(guest);
    let lobby = h.connect();
    h.send(lobby, r#"{"command":"kickPlayer","playerID":1}"#);
    assert_eq!(h.recv_text(lobby), r#"{"command":"playerLeave","error":2}"#);
    h.send(lobby, r#"{"command":"lockSession","locked":true}"#);
    assert_eq!(h.recv_text(lobby), r#"{"command":"sessionLock","error":2}"#);
}

#[wasm_bindgen_test(unsupported = test)]
fn what_a_kicked_player_sent_before_it_knew_is_answered_and_then_it_is_in_the_lobby() {
    let mut h = game();
    let host = h.connect();
    let s = h.create(host, r#"{"command":"createSession"}"#);
    let victim = h.connect();
    joined(&mut h, victim, s, &[host]);
    // The kick and the victim's update cross on their way to the session.
    h.feed(
        host,
        &format!(r#"{{"command":"kickPlayer","playerID":{}}}"#, id(victim)),
    );
    h.feed(victim, r#"{"command":"updatePlayer","player":{}}"#);
    h.feed(victim, r#"{"command":"leaveSession"}"#);
    while h.step() {}
    assert_eq!(
        h.recv_text(victim),
        r#"{"command":"sessionLeave","error":0}"#
    );
    assert_eq!(
        h.recv_text(victim),
        r#"{"command":"playerUpdate","error":2}"#
    );
    assert_eq!(
        h.recv_text(victim),
        r#"{"command":"sessionLeave","error":2}"#
    );
    h.assert_quiet(victim);
    h.send(victim, r#"{"command":"updatePlayer","player":{}}"#);
    assert_eq!(
        h.recv_text(victim),
        r#"{"command":"playerUpdate","error":2}"#
    );
    h.server.check_invariants().unwrap();
}

#[wasm_bindgen_test(unsupported = test)]
fn members_with_the_host_feature_learn_who_the_host_is_and_when_it_changes() {
    let mut h = game();
    let host = h.connect();
    h.send(host, r#"{"command":"hello","features":["host"]}"#);
    assert_eq!(h.recv(host)["features"], json!(["host"]));
    let s = h.create(host, r#"{"command":"createSession"}"#);
    let aware = h.connect();
    h.send(aware, r#"{"command":"hello","features":["host","resume"]}"#);
    assert_eq!(h.recv(aware)["features"], json!(["resume", "host"]));
    let welcome = join(&mut h, aware, s, None);
    assert_eq!(welcome["hostID"], id(host));
    let keys: Vec<_> = welcome.as_object().unwrap().keys().cloned().collect();
    assert!(keys.contains(&"resumeToken".to_owned()), "{welcome}");
    let plain = h.connect();
    joined(&mut h, plain, s, &[host, aware]);
    h.take_all(aware);
    h.send(host, r#"{"command":"leaveSession"}"#);
    h.take_all(host);
    assert_eq!(h.recv(aware)["command"], "playerLeave");
    assert_eq!(
        h.recv_text(aware),
        format!(
            r#"{{"command":"hostChange","error":0,"playerID":{}}}"#,
            id(aware)
        )
    );
    // The original client is told only what the original would tell it.
    assert_eq!(h.recv(plain)["command"], "playerLeave");
    h.assert_quiet(plain);
    // The new host kicks; a kicked member that asked for `host` is told why.
    let kicked = h.connect();
    h.send(kicked, r#"{"command":"hello","features":["host"]}"#);
    h.recv(kicked);
    assert_eq!(join(&mut h, kicked, s, None)["hostID"], id(aware));
    h.take_all(kicked);
    h.take_all(plain);
    h.take_all(aware);
    h.send(
        aware,
        &format!(r#"{{"command":"kickPlayer","playerID":{}}}"#, id(kicked)),
    );
    assert_eq!(
        h.recv_text(kicked),
        r#"{"command":"sessionLeave","error":0,"kicked":true}"#
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_locked_session_takes_no_one_until_its_host_unlocks_it() {
    let mut h = game();
    let host = h.connect();
    let s = h.create(host, r#"{"command":"createSession"}"#);
    let guest = h.connect();
    h.send(guest, r#"{"command":"hello","features":["host"]}"#);
    h.recv(guest);
    joined(&mut h, guest, s, &[host]);
    h.send(guest, r#"{"command":"lockSession","locked":true}"#);
    let refused = h.recv(guest);
    assert_eq!(refused["command"], "sessionLock");
    assert_eq!(refused["error"], 29);
    h.send(host, r#"{"command":"lockSession","locked":true}"#);
    assert_eq!(
        h.recv_text(host),
        r#"{"command":"sessionLock","error":0,"locked":true}"#
    );
    // A member that asked for `host` is told; the host's own reply is its answer.
    assert_eq!(
        h.recv_text(guest),
        r#"{"command":"sessionLock","error":0,"locked":true}"#
    );
    let late = h.connect();
    let reply = join(&mut h, late, s, None);
    assert_eq!(reply["error"], 28, "{reply}");
    h.send(host, r#"{"command":"lockSession","locked":"no"}"#);
    assert_eq!(h.recv(host)["error"], 13);
    h.send(host, r#"{"command":"lockSession","locked":false}"#);
    h.take_all(host);
    h.take_all(guest);
    assert_eq!(join(&mut h, late, s, None)["error"], 0);
}

#[wasm_bindgen_test(unsupported = test)]
fn host_only_session_updates_refuse_everyone_else() {
    let mut h = game();
    let host = h.connect();
    let s = h.create(
        host,
        r#"{"command":"createSession","options":{"hostOnlySessionUpdates":true}}"#,
    );
    let guest = h.connect();
    joined(&mut h, guest, s, &[host]);
    h.send(
        guest,
        r#"{"command":"updateSession","session":{"round":2}}"#,
    );
    let refused = h.recv(guest);
    assert_eq!(refused["command"], "sessionUpdate");
    assert_eq!(refused["error"], 29, "{refused}");
    h.assert_quiet(host);
    h.send(host, r#"{"command":"updateSession","session":{"round":2}}"#);
    assert_eq!(h.recv(guest)["session"], json!({"round":2}));
    // When the host leaves, the next member may.
    h.send(host, r#"{"command":"leaveSession"}"#);
    h.take_all(guest);
    h.send(
        guest,
        r#"{"command":"updateSession","session":{"round":3}}"#,
    );
    assert_eq!(h.recv(guest)["error"], 0);
}

#[wasm_bindgen_test(unsupported = test)]
fn operators_see_a_sessions_options_but_never_its_password() {
    let mut h = game();
    let host = h.connect();
    let s = h.create(
        host,
        r#"{"command":"createSession","options":{"maxPlayers":3,"password":"hunter2","private":true}}"#,
    );
    h.send(host, r#"{"command":"lockSession","locked":true}"#);
    let session = h.server.sessions().find(|x| x.id().0 == s).unwrap();
    let described: Value = serde_json::from_str(&session.describe()).unwrap();
    assert_eq!(
        described["options"],
        json!({"maxPlayers":3,"private":true,"password":true,"locked":true})
    );
    assert!(!session.describe().contains("hunter2"));
}
