//! Who may play (issue 16), black-box, on every host (the in-process native server, and the
//! edge host through `SESSIONSERVER_URL`): `maxPlayers`, passwords, private sessions, the host
//! with `kickPlayer` and `lockSession`, `hostOnlySessionUpdates`, and the `host` feature. A
//! client that sent no hello sees only frames of the original protocol.

use sessionserver_tests::{frames, is_error_with_message, json, Client, Spelling, Target, Value};

const SP: Spelling = Spelling::Short;

/// A client that created a session with `options`: `(client, session, player)`.
async fn creator(t: &Target, name: &str, options: &str) -> (Client, u64, u64) {
    let mut client = t.connect(name).await;
    client
        .send_json(&format!(
            r#"{{"command":"createSession","session":{{}},"player":{{}},"options":{options}}}"#
        ))
        .await;
    let reply = client.expect("sessionJoin").await;
    assert_eq!(reply["error"], 0, "{reply}");
    let ids = (
        reply["sessionID"].as_u64().unwrap(),
        reply["playerID"].as_u64().unwrap(),
    );
    (client, ids.0, ids.1)
}

async fn hello_host(client: &mut Client) {
    client
        .send_json(r#"{"command":"hello","features":["host"]}"#)
        .await;
    let reply = client.expect("hello").await;
    assert_eq!(reply["features"], json!(["host"]), "{reply}");
}

/// `client` sends a joinSession to `session` (with `password`) and gets its reply.
async fn try_join(client: &mut Client, session: u64, password: Option<&str>) -> Value {
    let frame = match password {
        Some(p) => json!({"command":"joinSession","sessionID":session,"password":p}),
        None => json!({"command":"joinSession","sessionID":session}),
    };
    client.send_json(&frame.to_string()).await;
    let reply = client.recv().await;
    assert_eq!(reply["command"], "sessionJoin", "{reply}");
    reply
}

/// `client` joins `session`, whose members are `members` (each gets its playerJoin, checked);
/// returns its player ID.
async fn joins(client: &mut Client, session: u64, members: &mut [&mut Client]) -> u64 {
    let reply = try_join(client, session, None).await;
    assert_eq!(reply["error"], 0, "{reply}");
    let id = reply["playerID"].as_u64().unwrap();
    for _ in 0..members.len() {
        client.expect("playerJoin").await;
    }
    for member in members.iter_mut() {
        member
            .expect_frame(&frames::player_join(SP, id, &json!({})))
            .await;
    }
    id
}

#[tokio::test]
async fn a_fifth_player_is_refused_at_max_players_4() {
    let t = Target::start().await;
    let (mut a, session, _) = creator(&t, "a", r#"{"maxPlayers":4}"#).await;
    let mut b = t.connect("b").await;
    let mut c = t.connect("c").await;
    let mut d = t.connect("d").await;
    joins(&mut b, session, &mut [&mut a]).await;
    joins(&mut c, session, &mut [&mut a, &mut b]).await;
    joins(&mut d, session, &mut [&mut a, &mut b, &mut c]).await;
    let mut e = t.connect("e").await;
    let refused = try_join(&mut e, session, None).await;
    assert!(
        is_error_with_message(&refused, "sessionJoin", 16),
        "{refused}"
    );
    for member in [&mut a, &mut b, &mut c, &mut d] {
        member.expect_nothing_pending().await;
    }
    t.shutdown().await;
}

#[tokio::test]
async fn a_password_session_refuses_missing_and_wrong_passwords() {
    let t = Target::start().await;
    let (mut host, session, _) = creator(&t, "host", r#"{"password":"swordfish"}"#).await;
    let mut guest = t.connect("guest").await;
    for password in [None, Some("Swordfish"), Some("")] {
        let refused = try_join(&mut guest, session, password).await;
        assert!(
            is_error_with_message(&refused, "sessionJoin", 26),
            "{password:?}: {refused}"
        );
    }
    host.expect_nothing_pending().await;
    let id = joins_with(&mut guest, session, "swordfish").await;
    host.expect_frame(&frames::player_join(SP, id, &json!({})))
        .await;
    // Wrong guesses use up the session's allowance: then none is checked for a while.
    let mut brute = t.connect("brute").await;
    let mut limited = false;
    for n in 0..12 {
        let reply = try_join(&mut brute, session, Some(&format!("guess{n}"))).await;
        if is_error_with_message(&reply, "sessionJoin", 27) {
            limited = true;
            break;
        }
        assert!(is_error_with_message(&reply, "sessionJoin", 26), "{reply}");
    }
    assert!(limited, "twelve wrong passwords in a row were all checked");
    t.shutdown().await;
}

async fn joins_with(client: &mut Client, session: u64, password: &str) -> u64 {
    let reply = try_join(client, session, Some(password)).await;
    assert_eq!(reply["error"], 0, "{reply}");
    let id = reply["playerID"].as_u64().unwrap();
    client.expect("playerJoin").await;
    id
}

#[tokio::test]
async fn a_private_session_has_a_random_id_and_is_not_found_by_minus_one() {
    let t = Target::start().await;
    let (mut a, private, _) = creator(&t, "a", r#"{"private":true}"#).await;
    // Random below 2^53: the chance of one below a million is 1 in 9 billion.
    assert!(
        private > 1_000_000 && private < 1 << 53,
        "{private} is no random ID"
    );
    if t.private_or_skip("a_private_session_..._minus_one") {
        let mut b = t.connect("b").await;
        b.send_json(r#"{"command":"joinSession","sessionID":-1}"#)
            .await;
        b.expect_error("sessionJoin", 6).await;
        // Public sessions still count from 0 natively, and -1 finds them.
        let (mut c, public, _) = creator(&t, "c", "{}").await;
        assert_eq!(public, 0);
        b.send_json(r#"{"command":"joinSession","sessionID":-1}"#)
            .await;
        assert_eq!(b.expect("sessionJoin").await["sessionID"], public);
        b.expect("playerJoin").await;
        c.expect("playerJoin").await;
    }
    // Its ID is all it takes.
    let mut d = t.connect("d").await;
    joins(&mut d, private, &mut [&mut a]).await;
    t.shutdown().await;
}

#[tokio::test]
async fn the_host_kicks_a_member_and_no_one_else_may() {
    let t = Target::start().await;
    let (mut host, session, host_id) = creator(&t, "host", "{}").await;
    let mut victim = t.connect("victim").await;
    let victim_id = joins(&mut victim, session, &mut [&mut host]).await;
    let mut other = t.connect_to_session("other", session).await;
    hello_host(&mut other).await;
    let reply = try_join(&mut other, session, None).await;
    assert_eq!(reply["hostID"], host_id, "{reply}");
    let other_id = reply["playerID"].as_u64().unwrap();
    other.expect("playerJoin").await;
    other.expect("playerJoin").await;
    for member in [&mut host, &mut victim] {
        member
            .expect_frame(&frames::player_join(SP, other_id, &json!({})))
            .await;
    }
    // Not the host: refused.
    other
        .rejects(
            &format!(r#"{{"command":"kickPlayer","playerID":{victim_id}}}"#),
            "playerLeave",
            29,
        )
        .await;
    host.rejects(
        &format!(r#"{{"command":"kickPlayer","playerID":{host_id}}}"#),
        "playerLeave",
        30,
    )
    .await;
    host.send_json(&format!(
        r#"{{"command":"kickPlayer","playerID":{victim_id}}}"#
    ))
    .await;
    // The victim, an original client, gets the original sessionLeave and is in the lobby: its
    // next command, sent the moment it reads that, is taken there.
    victim.expect_frame(&frames::session_leave()).await;
    if t.relay_only_or_skip("the_host_kicks_a_member_and_no_one_else_may (createSession part)") {
        victim
            .send_json(&sessionserver_tests::cmd::create(
                SP,
                &json!({}),
                &json!({}),
            ))
            .await;
        let own = victim.expect("sessionJoin").await;
        assert_eq!(own["error"], 0, "{own}");
        assert_ne!(own["sessionID"], session);
    } else {
        // On the direct path a create would be another session (34): a leave shows the
        // lobby as well, error 2.
        victim.send_json(&sessionserver_tests::cmd::leave()).await;
        victim.expect_error("sessionLeave", 2).await;
    }
    for member in [&mut host, &mut other] {
        member.expect_frame(&frames::player_leave(victim_id)).await;
        member.expect_nothing_pending().await;
    }
    t.shutdown().await;
}

#[tokio::test]
async fn when_the_host_leaves_the_earliest_member_is_host_and_host_aware_members_are_told() {
    let t = Target::start().await;
    let (mut host, session, host_id) = creator(&t, "host", "{}").await;
    let mut next = t.connect_to_session("next", session).await;
    hello_host(&mut next).await;
    let reply = try_join(&mut next, session, None).await;
    assert_eq!(reply["hostID"], host_id);
    let next_id = reply["playerID"].as_u64().unwrap();
    next.expect("playerJoin").await;
    host.expect("playerJoin").await;
    let mut plain = t.connect("plain").await;
    let plain_id = joins(&mut plain, session, &mut [&mut host, &mut next]).await;
    host.send_json(&sessionserver_tests::cmd::leave()).await;
    host.expect_frame(&frames::session_leave()).await;
    next.expect_frame(&frames::player_leave(host_id)).await;
    next.expect_frame(&json!({"command":"hostChange","error":0,"playerID":next_id}))
        .await;
    plain.expect_frame(&frames::player_leave(host_id)).await;
    plain.expect_nothing_pending().await;
    // The new host's powers: it locks the session, and it kicks the original client.
    next.send_json(r#"{"command":"lockSession","locked":true}"#)
        .await;
    next.expect_frame(&json!({"command":"sessionLock","error":0,"locked":true}))
        .await;
    let mut late = t.connect("late").await;
    let refused = try_join(&mut late, session, None).await;
    assert!(
        is_error_with_message(&refused, "sessionJoin", 28),
        "{refused}"
    );
    plain.expect_nothing_pending().await;
    next.send_json(r#"{"command":"lockSession","locked":false}"#)
        .await;
    next.expect("sessionLock").await;
    joins(&mut late, session, &mut [&mut next, &mut plain]).await;
    next.send_json(&format!(
        r#"{{"command":"kickPlayer","playerID":{plain_id}}}"#
    ))
    .await;
    plain.expect_frame(&frames::session_leave()).await;
    next.expect_frame(&frames::player_leave(plain_id)).await;
    t.shutdown().await;
}

#[tokio::test]
async fn host_only_session_updates_are_the_hosts_alone() {
    let t = Target::start().await;
    let (mut host, session, _) = creator(&t, "host", r#"{"hostOnlySessionUpdates":true}"#).await;
    let mut guest = t.connect("guest").await;
    joins(&mut guest, session, &mut [&mut host]).await;
    guest
        .rejects(
            &sessionserver_tests::cmd::update_session(SP, &json!({"round":2}), &json!({})),
            "sessionUpdate",
            29,
        )
        .await;
    host.expect_nothing_pending().await;
    host.send_json(&sessionserver_tests::cmd::update_session(
        SP,
        &json!({"round":2}),
        &json!({}),
    ))
    .await;
    let update = frames::session_update(SP, &json!({"round":2}), &json!({}));
    host.expect_frame(&update).await;
    guest.expect_frame(&update).await;
    t.shutdown().await;
}

#[tokio::test]
async fn bad_options_are_error_13() {
    let t = Target::start().await;
    let mut client = t.connect("client").await;
    for options in [
        r#"{"maxPlayers":0}"#,
        r#"{"maxPlayers":"4"}"#,
        r#"{"password":""}"#,
        r#"{"secret":true}"#,
        "[]",
    ] {
        client
            .rejects(
                &format!(r#"{{"command":"createSession","options":{options}}}"#),
                "sessionJoin",
                13,
            )
            .await;
    }
    client
        .rejects(r#"{"command":"lockSession"}"#, "sessionLock", 13)
        .await;
    client
        .send_json(r#"{"command":"lockSession","locked":true}"#)
        .await;
    client.expect_error("sessionLock", 2).await;
    t.shutdown().await;
}

#[tokio::test]
async fn every_command_of_a_kicked_player_is_answered_once_in_order() {
    let t = Target::start().await;
    let mut host = t.connect("host").await;
    let (session, _) = host.create(SP, &json!({}), &json!({"i":0})).await;
    let mut victim = t.connect("victim").await;
    let victim_id = victim
        .join(
            SP,
            session,
            &json!({}),
            &json!({"i":0}),
            &[(0, json!({"i":0}))][..0],
        )
        .await;
    victim.expect("playerJoin").await;
    host.expect("playerJoin").await;
    // The victim's updates are on their way while the host kicks it.
    const UPDATES: usize = 40;
    for i in 0..UPDATES {
        victim
            .send_json(&sessionserver_tests::cmd::update_player(
                SP,
                &json!({ "i": i }),
            ))
            .await;
    }
    host.send_json(&format!(
        r#"{{"command":"kickPlayer","playerID":{victim_id}}}"#
    ))
    .await;
    let (mut applied, mut refused, mut left) = (0, 0, false);
    while applied + refused < UPDATES || !left {
        let frame = victim.recv().await;
        match (frame["command"].as_str(), frame["error"].as_u64()) {
            (Some("playerUpdate"), Some(0)) => {
                assert!(!left, "an update applied after the kick: {frame}");
                assert_eq!(frame["playerID"], victim_id);
                applied += 1;
            }
            (Some("playerUpdate"), Some(2)) => {
                assert!(left, "refused before the kick's sessionLeave: {frame}");
                refused += 1;
            }
            (Some("sessionLeave"), Some(0)) => {
                assert!(!left, "two sessionLeaves");
                left = true;
            }
            _ => panic!("unexpected frame {frame}"),
        }
    }
    assert_eq!(applied + refused, UPDATES);
    eprintln!("kicked after {applied} of {UPDATES} updates; {refused} answered 2");
    victim.expect_nothing_pending().await;
    // The host saw exactly the applied ones, then the leave.
    for _ in 0..applied {
        assert_eq!(host.expect("playerUpdate").await["playerID"], victim_id);
    }
    host.expect_frame(&frames::player_leave(victim_id)).await;
    host.expect_nothing_pending().await;
    t.shutdown().await;
}
