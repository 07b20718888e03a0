//! Resume on the native host (issue 14): a member's TCP connection is destroyed mid-game while
//! the others keep sending; a new connection with its token takes back its seat and ID, gets
//! what it missed in order, and no member sees it leave. Without a resume, `playerLeave` comes
//! when the grace period ends.

use std::time::Duration;

mod common;

use common::{body, close_code, connect, http_get, next_json, send, start, Client, PATIENCE};
use serde_json::{json, Value};
use sessionserver::{Config, RunningServer};
use sessionserver_core::Limits;

async fn hello_and(server: &RunningServer, command: &str) -> (Client, Value) {
    let mut client = connect(server).await;
    send(&mut client, r#"{"command":"hello","features":["resume"]}"#).await;
    let hello = next_json(&mut client).await;
    assert_eq!(hello["command"], "hello");
    assert_eq!(hello["features"], json!(["resume"]));
    send(&mut client, command).await;
    let join = next_json(&mut client).await;
    assert_eq!(join["command"], "sessionJoin", "{join}");
    (client, join)
}

/// A new connection that asks for `token`'s seat, saying it received `received` events
/// (`None`: not said), and the server's answer.
async fn resume(server: &RunningServer, token: &str, received: Option<u64>) -> (Client, Value) {
    let received = received.map_or(String::new(), |n| format!(r#","received":{n}"#));
    let mut client = connect(server).await;
    send(
        &mut client,
        &format!(r#"{{"command":"resumeSession","resumeToken":"{token}"{received}}}"#),
    )
    .await;
    let answer = next_json(&mut client).await;
    assert_eq!(answer["command"], "sessionResume", "{answer}");
    (client, answer)
}

/// Waits until `/sessions` shows member `player` away.
async fn until_away(server: &RunningServer, player: &Value) {
    let away = format!(r#""playerID":{player},"playerData":{{"x":0}},"away":true"#);
    tokio::time::timeout(PATIENCE, async {
        loop {
            let response = http_get(server.local_addr(), "/sessions", "").await;
            if body(&response).contains(&away) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the server found the connection gone");
}

async fn expect_update(client: &mut Client, from: &Value, x: u64) {
    let frame = next_json(client).await;
    assert_eq!(
        frame,
        json!({"command":"playerUpdate","error":0,"playerID":from,"player":{"x":x}})
    );
}

#[tokio::test]
async fn a_destroyed_connection_resumes_with_its_id_and_what_it_missed() {
    let server = start(Config::default()).await;
    let (mut a, a_join) = hello_and(
        &server,
        r#"{"command":"createSession","session":{},"player":{"x":0}}"#,
    )
    .await;
    let session = a_join["sessionID"].clone();
    let a_id = a_join["playerID"].clone();
    let join = format!(r#"{{"command":"joinSession","sessionID":{session}}}"#);
    let (b, b_join) = hello_and(&server, &join).await;
    let b_id = b_join["playerID"].clone();
    let token = b_join["resumeToken"].as_str().unwrap().to_owned();
    let mut legacy = connect(&server).await;
    send(&mut legacy, &join).await;
    let legacy_join = next_json(&mut legacy).await;
    assert!(legacy_join.get("resumeToken").is_none(), "{legacy_join}");
    for _ in 0..2 {
        next_json(&mut legacy).await; // a's and b's playerJoin
    }
    next_json(&mut a).await; // b's playerJoin
    next_json(&mut a).await; // legacy's playerJoin

    // b's TCP connection is destroyed: no close frame, no leave.
    drop(b);
    until_away(&server, &b_id).await;
    for x in 1..=5 {
        send(
            &mut a,
            &format!(r#"{{"command":"updatePlayer","player":{{"x":{x}}}}}"#),
        )
        .await;
        expect_update(&mut a, &a_id, x).await;
        expect_update(&mut legacy, &a_id, x).await;
    }

    let (mut b, resumed) = resume(&server, &token, None).await;
    assert_eq!(resumed["error"], 0);
    assert_eq!(resumed["playerID"], b_id);
    assert_eq!(resumed["sessionID"], session);
    assert_eq!(resumed["replay"], "frames");
    assert_eq!(resumed["missed"], 5, "{resumed}");
    // What b missed, in order: a's five updates.
    for x in 1..=5 {
        expect_update(&mut b, &a_id, x).await;
    }
    // Its updates reach the others as b, and nobody saw b leave (the next frame each gets
    // is this update).
    send(&mut b, r#"{"command":"updatePlayer","player":{"x":42}}"#).await;
    expect_update(&mut b, &b_id, 42).await;
    expect_update(&mut a, &b_id, 42).await;
    expect_update(&mut legacy, &b_id, 42).await;

    // The token was for one use.
    let (_thief, refused) = resume(&server, &token, None).await;
    assert_eq!(refused["error"], 22);
    server.shutdown().await;
}

#[tokio::test]
async fn without_a_resume_the_others_get_player_leave_when_the_grace_ends() {
    let config = Config {
        limits: Limits {
            resume_grace_ms: 300,
            ..Limits::default()
        },
        ..Config::default()
    };
    let server = start(config).await;
    let (mut a, a_join) = hello_and(
        &server,
        r#"{"command":"createSession","session":{},"player":{"x":0}}"#,
    )
    .await;
    let join = format!(
        r#"{{"command":"joinSession","sessionID":{}}}"#,
        a_join["sessionID"]
    );
    let (b, b_join) = hello_and(&server, &join).await;
    next_json(&mut a).await; // b's playerJoin
    drop(b);
    let leave = next_json(&mut a).await;
    assert_eq!(
        leave,
        json!({"command":"playerLeave","error":0,"playerID":b_join["playerID"]})
    );
    server.shutdown().await;
}

/// A member and a resumable member of a new session, and the second one's ID and token.
async fn pair(server: &RunningServer) -> (Client, Value, Client, Value, String) {
    let (a, a_join) = hello_and(
        server,
        r#"{"command":"createSession","session":{},"player":{"x":0}}"#,
    )
    .await;
    let join = format!(
        r#"{{"command":"joinSession","sessionID":{}}}"#,
        a_join["sessionID"]
    );
    let (b, b_join) = hello_and(server, &join).await;
    let token = b_join["resumeToken"].as_str().unwrap().to_owned();
    (
        a,
        a_join["playerID"].clone(),
        b,
        b_join["playerID"].clone(),
        token,
    )
}

#[tokio::test]
async fn frames_written_to_a_connection_that_died_unread_are_replayed_from_received() {
    let server = start(Config::default()).await;
    let (mut a, a_id, mut b, b_id, token) = pair(&server).await;
    next_json(&mut a).await; // b's playerJoin
                             // b's join burst: a's playerJoin, the one event its client reads.
    assert_eq!(next_json(&mut b).await["command"], "playerJoin");
    for x in 1..=5 {
        send(
            &mut a,
            &format!(r#"{{"command":"updatePlayer","player":{{"x":{x}}}}}"#),
        )
        .await;
        expect_update(&mut a, &a_id, x).await;
    }
    // The server wrote the five updates to b's socket; b's client never read them, and its
    // connection is destroyed with them still unread.
    drop(b);
    until_away(&server, &b_id).await;
    let (mut b, resumed) = resume(&server, &token, Some(1)).await;
    assert_eq!(resumed["error"], 0, "{resumed}");
    assert_eq!(resumed["playerID"], b_id);
    assert_eq!(resumed["replay"], "frames");
    assert_eq!(resumed["missed"], 5, "{resumed}");
    for x in 1..=5 {
        expect_update(&mut b, &a_id, x).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_resume_while_the_old_connection_seems_open_takes_it_over() {
    let server = start(Config::default()).await;
    let (mut a, _, mut old, b_id, token) = pair(&server).await;
    next_json(&mut a).await; // b's playerJoin
    assert_eq!(next_json(&mut old).await["command"], "playerJoin");
    // A network switch: the old connection is still open as far as the server knows.
    let (mut b, resumed) = resume(&server, &token, Some(1)).await;
    assert_eq!(resumed["error"], 0, "{resumed}");
    assert_eq!(resumed["playerID"], b_id);
    assert_eq!(resumed["missed"], 0, "{resumed}");
    assert_eq!(u16::from(close_code(&mut old).await), 4003);
    // The seat is b's new connection's, and nobody saw b leave: a's next frame is b's update.
    send(&mut b, r#"{"command":"updatePlayer","player":{"x":7}}"#).await;
    expect_update(&mut b, &b_id, 7).await;
    expect_update(&mut a, &b_id, 7).await;
    // Once the old connection is gone, the member is still connected (not away).
    let sessions = body(&http_get(server.local_addr(), "/sessions", "").await).to_owned();
    assert!(!sessions.contains(r#""away":true"#), "{sessions}");
    server.shutdown().await;
}
