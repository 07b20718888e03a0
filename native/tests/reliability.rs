//! Faults and abuse: dead peers, clients that stop reading, floods, connection caps.

mod common;

use common::{client_frame, close_code, connect, next_any, next_json, send, start, write_raw};
use sessionserver::Config;
use sessionserver_core::ConnectionConfig;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_silent_peer_is_removed_and_an_idle_live_one_is_kept() {
    let server = start(Config {
        connection: ConnectionConfig {
            ping_after_ms: 50,
            timeout_ms: 200,
            ..ConnectionConfig::default()
        },
        ..Config::default()
    })
    .await;
    let mut live = connect(&server).await;
    send(&mut live, r#"{"command":"createSession"}"#).await;
    assert_eq!(next_json(&mut live).await["command"], "sessionJoin");

    // Joins, then never reads again: it cannot answer pings, like a phone that vanished.
    let mut dead = connect(&server).await;
    send(&mut dead, r#"{"command":"joinSession","sessionID":-1}"#).await;
    let joined = next_json(&mut live).await;
    assert_eq!(joined["command"], "playerJoin");

    // The live member only reads; its client answers each ping with a pong.
    let mut pings = 0;
    let left = loop {
        match next_any(&mut live).await {
            Some(Message::Ping(_)) => pings += 1,
            Some(Message::Text(t)) => break serde_json::from_str::<serde_json::Value>(&t).unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(left["command"], "playerLeave");
    assert_eq!(left["playerID"], joined["playerID"]);
    // Wait for several more pings: each is a full heartbeat period the live client survives.
    while pings < 8 {
        if let Some(Message::Ping(_)) = next_any(&mut live).await {
            pings += 1;
        }
    }
    send(&mut live, r#"{"command":"updatePlayer","player":{}}"#).await;
    assert_eq!(next_json(&mut live).await["error"], 0);
    drop(dead);
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_and_the_others_miss_nothing() {
    let server = start(Config {
        send_queue_bytes: 256 * 1024,
        connection: ConnectionConfig {
            commands_per_second: 100_000,
            command_burst: 100_000,
            ..ConnectionConfig::default()
        },
        ..Config::default()
    })
    .await;
    let mut sender = connect(&server).await;
    send(
        &mut sender,
        r#"{"command":"createSession","player":{"seq":0,"pad":""}}"#,
    )
    .await;
    next_json(&mut sender).await;
    let mut reader = connect(&server).await;
    send(&mut reader, r#"{"command":"joinSession","sessionID":-1}"#).await;
    next_json(&mut reader).await; // sessionJoin
    next_json(&mut reader).await; // playerJoin of sender
    next_json(&mut sender).await; // playerJoin of reader
    let mut stalled = connect(&server).await;
    send(&mut stalled, r#"{"command":"joinSession","sessionID":-1}"#).await;
    let stalled_id = next_json(&mut sender).await["playerID"].clone();
    next_json(&mut reader).await;

    // 32 KiB updates until the stalled client's kernel buffers and queue are full.
    let pad = "x".repeat(32 * 1024);
    let mut expected = 1;
    let mut kicked = false;
    for seq in 1..=4000u64 {
        let frame =
            format!(r#"{{"command":"updatePlayer","player":{{"seq":{seq},"pad":"{pad}"}}}}"#);
        send(&mut sender, &frame).await;
        // Both readers get every update, in order, while the stalled one falls behind.
        for client in [&mut sender, &mut reader] {
            loop {
                let msg = next_json(client).await;
                match msg["command"].as_str() {
                    Some("playerUpdate") => {
                        assert_eq!(msg["player"]["seq"], seq);
                        break;
                    }
                    Some("playerLeave") => {
                        assert_eq!(msg["playerID"], stalled_id);
                        kicked = true;
                    }
                    _ => panic!("unexpected {msg}"),
                }
            }
        }
        expected = seq;
        if kicked {
            break;
        }
    }
    assert!(
        kicked,
        "the stalled client was never closed after {expected} updates"
    );
    // Its socket got the send-queue close code once it reads again.
    assert_eq!(close_code(&mut stalled).await, CloseCode::from(4001));
    server.shutdown().await;
}

#[tokio::test]
async fn a_flood_is_refused_with_18_then_closed_with_1008() {
    let server = start(Config {
        connection: ConnectionConfig {
            commands_per_second: 1,
            command_burst: 3,
            max_refused: 2,
            ..ConnectionConfig::default()
        },
        ..Config::default()
    })
    .await;
    let mut client = connect(&server).await;
    for _ in 0..6 {
        send(&mut client, r#"{"command":"leaveSession"}"#).await;
    }
    for _ in 0..3 {
        assert_eq!(next_json(&mut client).await["error"], 2);
    }
    for _ in 0..2 {
        let refused = next_json(&mut client).await;
        assert_eq!(refused["command"], "sessionLeave");
        assert_eq!(refused["error"], 18);
    }
    assert_eq!(close_code(&mut client).await, CloseCode::Policy);
    server.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_maximum_get_503() {
    let server = start(Config {
        max_connections: 1,
        ..Config::default()
    })
    .await;
    let mut first = connect(&server).await;
    let url = format!("ws://{}/", server.local_addr());
    match connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    first.close(None).await.unwrap();
    // Once the first is gone its permit is free again.
    while next_any(&mut first).await.is_some() {}
    let mut retry = None;
    for _ in 0..100 {
        if let Ok((ws, _)) = connect_async(&url).await {
            retry = Some(ws);
            break;
        }
        tokio::task::yield_now().await;
    }
    let mut second = retry.expect("a connection after the first closed");
    send(&mut second, r#"{"command":"leaveSession"}"#).await;
    assert_eq!(next_json(&mut second).await["error"], 2);
    server.shutdown().await;
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    let server = start(Config::default()).await;
    let mut client = connect(&server).await;
    // A masked text frame (as clients must send) whose payload is not UTF-8, written raw:
    // WebSocket libraries refuse to build one.
    write_raw(&mut client, &client_frame(true, 1, &[0xff, 0xfe, 0x7b])).await;
    assert_eq!(close_code(&mut client).await, CloseCode::Invalid);
    server.shutdown().await;
}

#[tokio::test]
async fn a_command_in_fragments_with_a_ping_between_them_is_answered() {
    let server = start(Config::default()).await;
    let mut client = connect(&server).await;
    let mut bytes = client_frame(false, 1, br#"{"command":"createSe"#);
    bytes.extend(client_frame(true, 9, b"still there?"));
    bytes.extend(client_frame(
        true,
        0,
        br#"ssion","session":{},"player":{}}"#,
    ));
    write_raw(&mut client, &bytes).await;
    // The pong comes first: the ping was whole before the command was.
    assert_eq!(
        next_any(&mut client).await,
        Some(Message::Pong(b"still there?".to_vec().into()))
    );
    let reply = next_json(&mut client).await;
    assert_eq!(reply["command"], "sessionJoin");
    assert_eq!(reply["error"], 0);
    server.shutdown().await;
}

#[tokio::test]
async fn an_unmasked_frame_closes_with_1002() {
    let server = start(Config::default()).await;
    let mut client = connect(&server).await;
    let mut frame = vec![0x81, 2];
    frame.extend_from_slice(b"{}");
    write_raw(&mut client, &frame).await;
    assert_eq!(close_code(&mut client).await, CloseCode::Protocol);
    server.shutdown().await;
}
