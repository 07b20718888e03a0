//! What differs at the edge host: when the link between a client's connection and its
//! session's object breaks (the object reset, losing its memory or only its sockets), a
//! client that asked for `resume` is closed with 1012 and takes its seat back itself: the
//! same player, a snapshot when the object lost its memory, and the game goes on.
//!
//! Runs against a local worker started with `TEST_HOOKS=1` (scripts/edge-test.sh), given by
//! `SESSIONSERVER_URL` and `SESSIONSERVER_TEST_HOOKS=1`; skipped otherwise.

mod common;

use common::{answer, connect, quick, until, TestServer};
use serde_json::json;
use sessionserver_client::{Event, Replay, SessionOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Asks the worker's test hook to reset `session`'s object (`keep`: its memory survives, only
/// its sockets go) and returns the HTTP status line. It first has the object write the
/// playerData it holds unwritten (the edge writes it at most once a second, worker/README.md,
/// "Storage"): what a reset of the platform's can lose is not what this test is about.
async fn reset(target: &TestServer, session: u64, keep: bool) -> String {
    let flushed = hook(target, &format!("flush?session={session}")).await;
    assert!(flushed.contains(" 200"), "the flush hook: {flushed}");
    let keep = if keep { "&memory=keep" } else { "" };
    hook(target, &format!("reset?session={session}{keep}")).await
}

/// POSTs to the worker's test hook `/__test/<path>` and returns the HTTP status line.
async fn hook(target: &TestServer, path: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(target.addr)
        .await
        .expect("the worker");
    let request = format!(
        "POST /__test/{path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        target.addr
    );
    tcp.write_all(request.as_bytes()).await.expect("sent");
    // Only the status line: the local runtime may keep the connection open a while.
    let mut head = Vec::new();
    while !head.windows(2).any(|w| w == b"\r\n") {
        let mut chunk = [0u8; 256];
        let n = answer(tcp.read(&mut chunk)).await.expect("an answer");
        assert!(n > 0, "the hook closed without an answer: {head:?}");
        head.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    head.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_broken_link_closes_with_1012_and_the_client_resumes_itself() {
    let target = TestServer::start(|_| {}).await;
    if target.is_private() || std::env::var("SESSIONSERVER_TEST_HOOKS").as_deref() != Ok("1") {
        eprintln!("SKIPPED: needs SESSIONSERVER_URL of a local worker with TEST_HOOKS=1 and SESSIONSERVER_TEST_HOOKS=1");
        return;
    }
    let a = connect(target.addr, quick()).await;
    let b = connect(target.addr, quick()).await;
    let s = answer(a.create_session(&json!({}), &json!({"x":0}), SessionOptions::default()))
        .await
        .unwrap();
    answer(b.join_session(s.id, None)).await.unwrap();
    let (a_id, b_id) = (a.player_id().unwrap(), b.player_id().unwrap());
    answer(b.update_player(&json!({"x":5}))).await.unwrap();

    for (round, keep) in [(1, false), (2, true)] {
        let status = reset(&target, s.id, keep).await;
        assert!(status.contains(" 200"), "the reset hook: {status}");
        let (replay, before) = until(&a, |e| match e {
            Event::Resumed { replay, .. } => Some(*replay),
            _ => None,
        })
        .await;
        assert!(
            before.iter().any(|e| matches!(
                e,
                Event::Reconnecting {
                    attempt: 1,
                    code: 1012,
                    ..
                }
            )),
            "closed with 1012: {before:?}"
        );
        if !keep {
            assert_eq!(replay, Replay::Snapshot, "the object lost its memory");
        }
        assert_eq!(a.player_id(), Some(a_id), "the same player");
        let session = a.session().expect("still in the session");
        assert_eq!(session.players[&b_id].as_str(), r#"{"x":5}"#, "b as it was");
        // b asked for resume too: it is back before a's update, or a snapshot taken after
        // the update would bring it to b instead of a `playerUpdate`.
        let (b_replay, _) = until(&b, |e| match e {
            Event::Resumed { replay, .. } => Some(*replay),
            _ => None,
        })
        .await;
        if !keep {
            assert_eq!(b_replay, Replay::Snapshot, "the object lost its memory");
        }
        assert_eq!(b.player_id(), Some(b_id), "b is the same player");

        // The game goes on, both ways, as the same players.
        answer(a.update_player(&json!({"x": round}))).await.unwrap();
        let (seen, _) = until(&b, |e| match e {
            Event::PlayerUpdate {
                player_id, data, ..
            } if *player_id == a_id => Some(data.as_str().to_owned()),
            _ => None,
        })
        .await;
        assert_eq!(seen, format!(r#"{{"x":{round}}}"#));
    }
    answer(a.close()).await;
    answer(b.close()).await;
}
