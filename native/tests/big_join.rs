//! Joining a big session (issue 13): a joiner's `playerJoin`s are made as its socket takes
//! them, so a reading joiner of a session of 1,200 members with 60 KB of player data each gets
//! every one (72 MB, far past the 4 MiB send queue), and one that does not read holds only a
//! bounded amount.

use std::time::Instant;

mod common;

use common::{connect, metrics, next_json, sample, send, start, Client};
use futures_util::StreamExt;
use sessionserver::Config;
use sessionserver_core::Limits;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const MEMBERS: usize = 1_200;
const DATA_BYTES: usize = 60_000;

/// Reads and drops everything a member is sent (answering pings), until it is closed.
fn drain(mut member: Client) {
    tokio::spawn(async move { while let Some(Ok(_)) = member.next().await {} });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_joiner_of_1200_members_with_60_kb_each_gets_every_player_join() {
    let config = Config {
        limits: Limits {
            // The one sessionUpdate that gives everyone 60 KB goes to 1,200 members.
            egress_burst_bytes: 1 << 30,
            ..Limits::default()
        },
        ..Config::default()
    };
    let server = start(config).await;
    let t = Instant::now();
    let mut creator = connect(&server).await;
    send(
        &mut creator,
        r#"{"command":"createSession","session":{},"player":{}}"#,
    )
    .await;
    let session = next_json(&mut creator).await["sessionID"].clone();
    drain(creator);
    for _ in 1..MEMBERS {
        let mut member = connect(&server).await;
        send(
            &mut member,
            &format!(r#"{{"command":"joinSession","sessionID":{session}}}"#),
        )
        .await;
        drain(member);
    }
    // One broadcast gives every member 60 KB of (default) data: 72 MB for each joiner.
    let mut updater = connect(&server).await;
    send(
        &mut updater,
        &format!(r#"{{"command":"joinSession","sessionID":{session}}}"#),
    )
    .await;
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(DATA_BYTES));
    send(
        &mut updater,
        &format!(r#"{{"command":"updateSession","session":{{}},"player":{big}}}"#),
    )
    .await;
    loop {
        let frame = next_json(&mut updater).await;
        if frame["command"] == "sessionUpdate" {
            assert_eq!(frame["error"], 0, "{frame}");
            break;
        }
    }
    drain(updater);
    eprintln!("set up in {:?}", t.elapsed());

    // A joiner that does not read: it holds its burst's list, not 72 MB.
    let mut idle = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut reading = connect(&server).await;
    let idle_key = "dGhlIHNhbXBsZSBub25jZQ==";
    idle.write_all(
        format!(
            "GET / HTTP/1.1\r\nhost: localhost\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
             sec-websocket-key: {idle_key}\r\nsec-websocket-version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    idle.write_all(&common::client_frame(
        true,
        1,
        format!(r#"{{"command":"joinSession","sessionID":{session}}}"#).as_bytes(),
    ))
    .await
    .unwrap();

    // The reading joiner gets sessionJoin, then every member's playerJoin with its data: the
    // 1,201 members, and the idle joiner (in the burst or after it, as their joins fall).
    send(
        &mut reading,
        &format!(r#"{{"command":"joinSession","sessionID":{session}}}"#),
    )
    .await;
    let welcome = next_json(&mut reading).await;
    assert_eq!(welcome["command"], "sessionJoin", "{welcome}");
    assert_eq!(welcome["error"], 0);
    let mut seen = std::collections::HashSet::new();
    while seen.len() < MEMBERS + 2 {
        let frame = next_json(&mut reading).await;
        assert_eq!(frame["command"], "playerJoin", "{frame}");
        let id = frame["playerID"].as_u64().unwrap();
        assert!(seen.insert(id), "playerJoin {id} twice");
        assert_eq!(
            frame["player"]["blob"].as_str().map(str::len),
            Some(DATA_BYTES)
        );
    }

    // Meanwhile the idle joiner's burst waits: what the server counts for it is its list of
    // members and the frames made for its socket, not its 72 MB.
    eprintln!("joined in {:?}", t.elapsed());
    let metrics = metrics(server.local_addr()).await;
    let held = sample(
        &metrics,
        r#"sessionserver_memory_held_bytes{kind="outbox"}"#,
    )
    .expect("the outbox gauge");
    assert!(held < 8 << 20, "outboxes hold {held} bytes");
    drop(idle);
    server.shutdown().await;
}
