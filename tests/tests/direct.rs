//! The edge host's direct path (`SESSIONSERVER_DIRECT=1`): a socket on `/session/new` or
//! `/session/<id>` ends in one session's object, and everything that would take the connection
//! to another session, or needs the relay at `/` (`joinSession -1`, `listSessions`,
//! `joinOrCreate`), is answered with error 34 in that command's reply, naming the session. A
//! leave keeps the socket in the lobby of its session, which it may join again; an ID that no
//! live session has is refused at the upgrade (HTTP 404). Without direct mode every test here
//! skips, saying so on stderr.

use sessionserver_tests::{
    cmd, frames, is_error_with_message, json, Client, Spelling, Target, Value,
};

const SP: Spelling = Spelling::Short;

/// [`Target::is_direct`], and when it is not, a note on stderr that `test` is skipped.
fn direct_or_skip(t: &Target, test: &str) -> bool {
    if !t.is_direct() {
        eprintln!(
            "SKIPPED {test}: it tests the direct path; set {}=1 with {} naming an edge host",
            sessionserver_tests::DIRECT_VAR,
            sessionserver_tests::URL_VAR,
        );
    }
    t.is_direct()
}

/// `client` sends `frame` and gets error 34 in `command`, with a message that names the
/// session `here` its socket ends in (`None`: a session not created yet).
async fn other_session(client: &mut Client, frame: &str, command: &str, here: Option<u64>) {
    client.send_json(frame).await;
    let reply: Value = client.recv().await;
    assert!(
        is_error_with_message(&reply, command, 34),
        "{}: sent {frame}\n  expected {{\"command\":{command:?},\"error\":34,\"message\":\"…\"}}\n  received {reply}",
        client.name()
    );
    if let Some(here) = here {
        let message = reply["message"].as_str().unwrap_or_default();
        let here_text = here.to_string();
        assert!(
            message
                .split(|c: char| !c.is_ascii_digit())
                .any(|number| number == here_text),
            "{}: the message does not name session {here}: {reply}",
            client.name()
        );
    }
}

/// A new connection creates a session with empty data: `(client, session, player)`.
async fn creator(t: &Target, name: &str) -> (Client, u64, u64) {
    let mut client = t.connect(name).await;
    let (session, player) = client.create(SP, &json!({}), &json!({})).await;
    (client, session, player)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_on_a_session_socket_is_34_and_the_socket_may_still_join() {
    let t = Target::start().await;
    if !direct_or_skip(
        &t,
        "create_on_a_session_socket_is_34_and_the_socket_may_still_join",
    ) {
        return;
    }
    let (mut host, session, host_id) = creator(&t, "host").await;
    let mut guest = t.connect_to_session("guest", session).await;
    for _ in 0..2 {
        other_session(
            &mut guest,
            &cmd::create(SP, &json!({"mine": true}), &json!({})),
            "sessionJoin",
            Some(session),
        )
        .await;
    }
    host.expect_nothing_pending().await;
    // Refused, it is in the lobby of the session its socket ends in: it joins that one.
    let guest_id = guest
        .join(SP, session, &json!({}), &json!({}), &[(host_id, json!({}))])
        .await;
    host.expect_frame(&frames::player_join(SP, guest_id, &json!({})))
        .await;
    host.expect_nothing_pending().await;
    guest.expect_nothing_pending().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_create_and_leave_another_session_or_a_second_create_is_34() {
    let t = Target::start().await;
    if !direct_or_skip(
        &t,
        "after_create_and_leave_another_session_or_a_second_create_is_34",
    ) {
        return;
    }
    // a (on /session/new) creates its session; b stays in it, so that it outlives a's leave.
    let (mut a, own, a_id) = creator(&t, "a").await;
    let mut b = t.connect("b").await;
    let b_id = b
        .join(SP, own, &json!({}), &json!({}), &[(a_id, json!({}))])
        .await;
    a.expect_frame(&frames::player_join(SP, b_id, &json!({})))
        .await;
    let (mut other, elsewhere, _) = creator(&t, "other").await;
    a.send_json(&cmd::leave()).await;
    a.expect_frame(&frames::session_leave()).await;
    b.expect_frame(&frames::player_leave(a_id)).await;
    // Another live session's ID, and a second create: both another session.
    other_session(&mut a, &cmd::join_id(elsewhere), "sessionJoin", Some(own)).await;
    other_session(
        &mut a,
        &cmd::create(SP, &json!({}), &json!({})),
        "sessionJoin",
        Some(own),
    )
    .await;
    b.expect_nothing_pending().await;
    other.expect_nothing_pending().await;
    // Its own session it may join again, with its playerID.
    let again = a
        .join(SP, own, &json!({}), &json!({}), &[(b_id, json!({}))])
        .await;
    assert_eq!(again, a_id, "a connection's playerID never changes");
    b.expect_frame(&frames::player_join(SP, a_id, &json!({})))
        .await;
    b.expect_nothing_pending().await;
    a.expect_nothing_pending().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_that_left_joins_the_same_session_again() {
    let t = Target::start().await;
    if !direct_or_skip(&t, "a_joiner_that_left_joins_the_same_session_again") {
        return;
    }
    let (mut host, session, host_id) = creator(&t, "host").await;
    // Its first frame a join: its socket ends in /session/<session>.
    let mut guest = t.connect("guest").await;
    for _ in 0..3 {
        let id = guest
            .join(SP, session, &json!({}), &json!({}), &[(host_id, json!({}))])
            .await;
        host.expect_frame(&frames::player_join(SP, id, &json!({})))
            .await;
        guest.send_json(&cmd::leave()).await;
        guest.expect_frame(&frames::session_leave()).await;
        host.expect_frame(&frames::player_leave(id)).await;
    }
    guest.expect_nothing_pending().await;
    host.expect_nothing_pending().await;
    t.shutdown().await;
}

/// `joinSession -1`, `listSessions` and `joinOrCreate` need the relay's registry.
const RELAY_ONLY: [(&str, &str); 3] = [
    (r#"{"command":"joinSession","sessionID":-1}"#, "sessionJoin"),
    (
        r#"{"command":"listSessions","filter":{"direct":"suite"}}"#,
        "sessionList",
    ),
    (
        r#"{"command":"joinOrCreate","filter":{"direct":"suite"},"session":{},"player":{},"options":{"maxPlayers":2}}"#,
        "sessionJoin",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relays_commands_are_34_on_both_kinds_of_socket() {
    let t = Target::start().await;
    if !direct_or_skip(&t, "the_relays_commands_are_34_on_both_kinds_of_socket") {
        return;
    }
    for (frame, reply) in RELAY_ONLY {
        // On /session/new (a first frame that is none of create, join or resume picks it),
        // before its session exists.
        let mut fresh = t.connect("fresh").await;
        other_session(&mut fresh, frame, reply, None).await;
        // Nothing was created or joined: it is in the lobby and creates its session.
        let (own, own_id) = fresh.create(SP, &json!({}), &json!({})).await;
        // On /session/<own>.
        let mut guest = t.connect_to_session("guest", own).await;
        other_session(&mut guest, frame, reply, Some(own)).await;
        fresh.expect_nothing_pending().await;
        let guest_id = guest
            .join(SP, own, &json!({}), &json!({}), &[(own_id, json!({}))])
            .await;
        fresh
            .expect_frame(&frames::player_join(SP, guest_id, &json!({})))
            .await;
        guest.expect_nothing_pending().await;
    }
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_another_sessions_token_is_34_and_the_token_stays_good() {
    let t = Target::start().await;
    if !direct_or_skip(
        &t,
        "resume_with_another_sessions_token_is_34_and_the_token_stays_good",
    ) {
        return;
    }
    let hello = r#"{"command":"hello","features":["resume"]}"#;
    let mut away = t.connect("away").await;
    away.send_json(hello).await;
    if away.expect("hello").await["features"] != json!(["resume"]) {
        eprintln!(
            "SKIPPED resume_with_another_sessions_token_is_34_...: the server offers no resume"
        );
        return;
    }
    away.send_json(&cmd::create(SP, &json!({}), &json!({})))
        .await;
    let welcome = away.expect("sessionJoin").await;
    let (session, away_id) = (
        welcome["sessionID"].as_u64().expect("a sessionID"),
        welcome["playerID"].as_u64().expect("a playerID"),
    );
    let token = welcome["resumeToken"]
        .as_str()
        .expect("a resumeToken")
        .to_owned();
    assert!(
        token.starts_with(&format!("{session}.")),
        "a token names its session first: {token}"
    );
    let (mut other, elsewhere, _) = creator(&t, "other").await;
    away.drop_connection();
    let resume = format!(r#"{{"command":"resumeSession","resumeToken":"{token}"}}"#);
    // From another session's socket: 34, and the seat and token are as they were.
    let mut thief = t.connect_to_session("thief", elsewhere).await;
    other_session(&mut thief, &resume, "sessionResume", Some(elsewhere)).await;
    thief.expect_nothing_pending().await;
    other.expect_nothing_pending().await;
    // On the session's own socket (its first frame a resume picks it) the token works.
    let mut back = t.connect("back").await;
    back.send_json(&resume).await;
    let resumed = back.expect("sessionResume").await;
    assert_eq!(resumed["sessionID"], session, "{resumed}");
    assert_eq!(resumed["playerID"], away_id, "{resumed}");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_id_with_no_live_session_is_refused_with_404() {
    let t = Target::start().await;
    if !direct_or_skip(&t, "a_session_id_with_no_live_session_is_refused_with_404") {
        return;
    }
    // A session that was, and is no more: its last member left.
    let (mut gone, session, _) = creator(&t, "gone").await;
    gone.send_json(&cmd::leave()).await;
    gone.expect_frame(&frames::session_leave()).await;
    let refused = t.try_connect_to_session("late", session).await.err();
    assert_eq!(refused, Some(404), "the upgrade to session {session}, gone");
    // And an ID no session ever had (IDs are below 2^53).
    let never = (1u64 << 53) + 12_345;
    let refused = t.try_connect_to_session("stranger", never).await.err();
    assert_eq!(
        refused,
        Some(404),
        "the upgrade to session {never}, never made"
    );
    t.shutdown().await;
}
