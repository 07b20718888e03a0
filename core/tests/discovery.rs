//! Finding a game (issue 17), on the reference composition: session metadata, the host's
//! `setMetadata`, and `listSessions` with filters, `available` and pages; private sessions
//! are never listed.

mod common;

use common::Harness;
use serde_json::{json, Value};
use sessionserver_core::{ConnectionConfig, Features, Limits, PlayerId, Server};
use wasm_bindgen_test::wasm_bindgen_test;

fn game() -> Harness {
    let config = ConnectionConfig {
        features: Features::HOST,
        ..ConnectionConfig::default()
    };
    Harness::with_server(Server::with_config(Limits::default(), config))
}

fn list(h: &mut Harness, p: PlayerId, frame: &str) -> Value {
    h.send(p, frame);
    let reply = h.recv(p);
    assert_eq!(reply["command"], "sessionList", "{reply}");
    reply
}

fn ids(reply: &Value) -> Vec<u64> {
    reply["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessionID"].as_u64().unwrap())
        .collect()
}

#[wasm_bindgen_test(unsupported = test)]
fn public_sessions_are_listed_newest_first_with_players_max_and_metadata() {
    let mut h = game();
    let browser = h.connect();
    assert_eq!(
        h.send_and_recv_text(browser, r#"{"command":"listSessions"}"#),
        r#"{"command":"sessionList","error":0,"sessions":[],"next":null}"#
    );
    let a = h.connect();
    let ctf = h.create(
        a,
        r#"{"command":"createSession","options":{"maxPlayers":4,"metadata":{"mode":"ctf", "map":"dust"}}}"#,
    );
    let b = h.connect();
    let plain = h.create(b, r#"{"command":"createSession"}"#);
    let c = h.connect();
    h.create(
        c,
        r#"{"command":"createSession","options":{"private":true,"metadata":{"mode":"ctf"}}}"#,
    );
    let reply = list(&mut h, browser, r#"{"command":"listSessions"}"#);
    assert_eq!(
        reply["sessions"],
        json!([
            {"sessionID":plain,"players":1,"maxPlayers":null,"metadata":{}},
            {"sessionID":ctf,"players":1,"maxPlayers":4,"metadata":{"mode":"ctf","map":"dust"}},
        ])
    );
    // Metadata is passed on as the creator wrote it.
    let text = h.send_and_recv_text(
        browser,
        r#"{"command":"listSessions","filter":{"mode":"ctf"}}"#,
    );
    assert!(
        text.contains(r#""metadata":{"mode":"ctf", "map":"dust"}"#),
        "{text}"
    );
    // Players come and go in the listing.
    let d = h.connect();
    h.send(
        d,
        &format!(r#"{{"command":"joinSession","sessionID":{ctf}}}"#),
    );
    h.take_all(d);
    h.take_all(a);
    let reply = list(
        &mut h,
        browser,
        r#"{"command":"listSessions","filter":{"mode":"ctf"}}"#,
    );
    assert_eq!(ids(&reply), [ctf]);
    assert_eq!(reply["sessions"][0]["players"], 2);
    h.send(b, r#"{"command":"leaveSession"}"#);
    let reply = list(&mut h, browser, r#"{"command":"listSessions"}"#);
    assert_eq!(ids(&reply), [ctf], "an ended session is not listed");
}

#[wasm_bindgen_test(unsupported = test)]
fn filters_available_and_pages() {
    let mut h = game();
    let browser = h.connect();
    let mut made = Vec::new();
    for i in 0..7 {
        let p = h.connect();
        let options = match i % 3 {
            0 => r#"{"metadata":{"mode":"ctf"},"maxPlayers":1}"#,
            1 => r#"{"metadata":{"mode":"ctf"},"password":"pw"}"#,
            _ => r#"{"metadata":{"mode":"ffa","level":2}}"#,
        };
        made.push(h.create(
            p,
            &format!(r#"{{"command":"createSession","options":{options}}}"#),
        ));
    }
    let newest_first: Vec<u64> = made.iter().rev().copied().collect();
    let all = list(&mut h, browser, r#"{"command":"listSessions"}"#);
    assert_eq!(ids(&all), newest_first);
    assert_eq!(all["next"], Value::Null);
    let ffa = list(
        &mut h,
        browser,
        r#"{"command":"listSessions","filter":{"mode":"ffa","level":2}}"#,
    );
    assert_eq!(ids(&ffa), [made[5], made[2]]);
    let none = list(
        &mut h,
        browser,
        r#"{"command":"listSessions","filter":{"level":"2"}}"#,
    );
    assert_eq!(ids(&none), Vec::<u64>::new());
    // Available: not full (maxPlayers 1 with its creator in), not locked, no password.
    let open = list(
        &mut h,
        browser,
        r#"{"command":"listSessions","available":true}"#,
    );
    assert_eq!(ids(&open), [made[5], made[2]]);
    // Pages of 3, following `next`.
    let mut seen = Vec::new();
    let mut frame = r#"{"command":"listSessions","limit":3}"#.to_owned();
    loop {
        let page = list(&mut h, browser, &frame);
        assert!(ids(&page).len() <= 3);
        seen.extend(ids(&page));
        match page["next"].as_u64() {
            Some(next) => {
                frame = format!(r#"{{"command":"listSessions","limit":3,"after":{next}}}"#)
            }
            None => break,
        }
    }
    assert_eq!(seen, newest_first);
    for bad in [
        r#"{"command":"listSessions","filter":[]}"#,
        r#"{"command":"listSessions","limit":0}"#,
        r#"{"command":"listSessions","limit":51}"#,
        r#"{"command":"listSessions","after":-1}"#,
        r#"{"command":"listSessions","available":1}"#,
    ] {
        let reply = list(&mut h, browser, bad);
        assert_eq!(reply["error"], 13, "{bad}: {reply}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn the_host_changes_the_metadata_and_members_list_from_the_lobby_only() {
    let mut h = game();
    let host = h.connect();
    let s = h.create(
        host,
        r#"{"command":"createSession","options":{"metadata":{"round":1}}}"#,
    );
    let guest = h.connect();
    h.send(
        guest,
        &format!(r#"{{"command":"joinSession","sessionID":{s}}}"#),
    );
    h.take_all(guest);
    h.take_all(host);
    h.send(guest, r#"{"command":"setMetadata","metadata":{"round":9}}"#);
    let refused = h.recv(guest);
    assert_eq!(
        (refused["command"].as_str(), refused["error"].as_u64()),
        (Some("sessionMetadata"), Some(29))
    );
    assert_eq!(
        h.send_and_recv_text(host, r#"{"command":"setMetadata","metadata":{"round":2}}"#),
        r#"{"command":"sessionMetadata","error":0,"metadata":{"round":2}}"#
    );
    let big = format!(
        r#"{{"command":"setMetadata","metadata":{{"x":"{}"}}}}"#,
        "y".repeat(5000)
    );
    h.send(host, &big);
    assert_eq!(h.recv(host)["error"], 13);
    h.send(guest, r#"{"command":"listSessions"}"#);
    assert_eq!(h.recv(guest)["error"], 32);
    h.send(host, r#"{"command":"leaveSession"}"#);
    h.take_all(host);
    let reply = list(&mut h, host, r#"{"command":"listSessions"}"#);
    assert_eq!(reply["sessions"][0]["metadata"], json!({"round":2}));
    let lobby = h.connect();
    h.send(lobby, r#"{"command":"setMetadata","metadata":{}}"#);
    assert_eq!(
        h.recv_text(lobby),
        r#"{"command":"sessionMetadata","error":2}"#
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn join_or_create_fills_a_session_to_max_players_then_creates_the_next() {
    let mut h = game();
    let frame = r#"{"command":"joinOrCreate","filter":{"mode":"duel"},"session":{"round":0},"player":{"hp":9},"options":{"maxPlayers":2}}"#;
    let a = h.connect();
    h.send(a, frame);
    let first = h.recv(a);
    assert_eq!(first["command"], "sessionJoin");
    assert_eq!(first["error"], 0);
    assert_eq!(
        first["session"],
        json!({"round":0}),
        "created with the given data"
    );
    let s1 = first["sessionID"].as_u64().unwrap();
    let b = h.connect();
    h.send(b, frame);
    let second = h.recv(b);
    assert_eq!(second["sessionID"], s1, "joined the match: {second}");
    assert_eq!(h.recv(b)["command"], "playerJoin");
    h.take_all(a);
    let c = h.connect();
    h.send(c, frame);
    let third = h.recv(c);
    assert_ne!(third["sessionID"], s1, "the first was full: a new one");
    // The new one is listed with the filter as its metadata.
    let browser = h.connect();
    let listed = list(
        &mut h,
        browser,
        r#"{"command":"listSessions","filter":{"mode":"duel"}}"#,
    );
    assert_eq!(ids(&listed), [third["sessionID"].as_u64().unwrap(), s1]);
    assert_eq!(listed["sessions"][0]["metadata"], json!({"mode":"duel"}));
    // Private, locked and password sessions are never joined by it.
    let d = h.connect();
    let private = h.create(
        d,
        r#"{"command":"createSession","options":{"private":true,"metadata":{"mode":"solo"}}}"#,
    );
    let e = h.connect();
    h.send(e, r#"{"command":"joinOrCreate","filter":{"mode":"solo"}}"#);
    assert_ne!(h.recv(e)["sessionID"].as_u64(), Some(private));
}

#[wasm_bindgen_test(unsupported = test)]
fn two_joiners_racing_for_the_last_seat_never_both_get_it() {
    let mut h = game();
    let host = h.connect();
    let s = h.create(
        host,
        r#"{"command":"createSession","options":{"maxPlayers":2,"metadata":{"q":1}}}"#,
    );
    let (x, y) = (h.connect(), h.connect());
    // Both find the one free seat, and their joins are on their way together.
    let frame = r#"{"command":"joinOrCreate","filter":{"q":1}}"#;
    h.feed(x, frame);
    h.feed(y, frame);
    while h.step() {}
    let (rx, ry) = (h.recv(x), h.recv(y));
    for reply in [&rx, &ry] {
        assert_eq!(reply["command"], "sessionJoin");
        assert_eq!(
            reply["error"], 0,
            "a loser is not told of its lost race: {reply}"
        );
    }
    let in_s: Vec<_> = [&rx, &ry]
        .into_iter()
        .filter(|r| r["sessionID"] == s)
        .collect();
    assert_eq!(in_s.len(), 1, "exactly one got the seat: {rx} {ry}");
    let session = h.server.sessions().find(|x| x.id().0 == s).unwrap();
    assert_eq!(session.len(), 2);
    h.server.check_invariants().unwrap();
}
