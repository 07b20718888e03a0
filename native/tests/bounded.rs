//! Bounded under attack: what a client can make the server hold, and the close that reaches
//! the client (issue 13). The close-handshake and ping tests use only options that existed
//! before, so that they can be run against the old code (where they fail).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

use common::{
    client_frame, close_code, connect, metrics, next_any, next_json, sample, send, start, Client,
};
use futures_util::{SinkExt, StreamExt};
use sessionserver::Config;
use sessionserver_core::{ConnectionConfig, Limits};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, WebSocketStream};

/// After the close handshake, the stream must end cleanly (the server's end of stream), not
/// with a reset: a reset means the server closed with bytes unread, which can destroy its
/// close frame before the client reads it.
async fn assert_clean_end(client: &mut Client) {
    let end = tokio::time::timeout(Duration::from_secs(20), client.next())
        .await
        .expect("the stream ended within 20 s");
    assert!(
        matches!(
            end,
            None | Some(Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed))
        ),
        "the connection ended with {end:?}, not cleanly"
    );
}

#[tokio::test]
async fn a_2_mib_message_in_one_write_is_answered_with_a_close_1009_that_arrives() {
    let server = start(Config::default()).await;
    let mut client = connect(&server).await;
    // 2 MiB, over the 64 KiB default, sent by the WebSocket library: the server refuses it
    // from its header with most of it still unread. (The send may fail on a reset: that is
    // what is tested, by the close code that must arrive.)
    let _ = client.send(Message::binary(vec![7u8; 2 << 20])).await;
    assert_eq!(close_code(&mut client).await, CloseCode::Size);
    assert_clean_end(&mut client).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_flooder_is_answered_with_a_close_1008_that_arrives() {
    let server = start(Config::default()).await;
    let mut client = connect(&server).await;
    // 20,000 commands in one write: far past the burst and the refusals allowed, so the
    // server closes (1008) with most of them unread.
    for _ in 0..20_000 {
        let command = Message::text(r#"{"command":"updatePlayer","player":{}}"#);
        if client.feed(command).await.is_err() {
            break;
        }
    }
    let _ = client.flush().await;
    assert_eq!(close_code(&mut client).await, CloseCode::Policy);
    assert_clean_end(&mut client).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_fragmented_message_never_finished_is_closed_with_1008_after_its_deadline() {
    // Pings every second, answered by the client (it reads): only the fragment's deadline
    // (10 s by default) can close it before the heartbeat's 30 s.
    let server = start(Config {
        connection: ConnectionConfig {
            ping_after_ms: 1_000,
            ..ConnectionConfig::default()
        },
        ..Config::default()
    })
    .await;
    let url = format!("ws://{}/", server.local_addr());
    let (mut client, _) = connect_async(url).await.unwrap();
    let first = Frame::message(&b"{\"command\":"[..], OpCode::Data(Data::Text), false);
    client.send(Message::Frame(first)).await.unwrap();
    let mut pings = 0;
    let code = tokio::time::timeout(Duration::from_secs(25), async {
        loop {
            match next_any(&mut client).await {
                Some(Message::Ping(_)) => pings += 1,
                Some(Message::Close(Some(frame))) => return frame.code,
                other => panic!("expected pings then a close, got {other:?}"),
            }
        }
    })
    .await
    .expect("the unfinished message was still held after 25 s");
    assert_eq!(code, CloseCode::Policy);
    assert!(pings > 0, "the client was pinged (and answered) meanwhile");
    server.shutdown().await;
}

#[tokio::test]
async fn a_fragment_deadline_and_its_memory_count_from_the_first_fragment() {
    // No pings for a minute: only the fragment's deadline (1 s here) can close the client,
    // which sends one fragment and nothing after it. Before, the deadline and the memory
    // budget's count began only with the next frame after the fragment.
    let server = start(Config {
        fragment_timeout: Duration::from_secs(1),
        connection: ConnectionConfig {
            ping_after_ms: 60_000,
            timeout_ms: 120_000,
            ..ConnectionConfig::default()
        },
        ..Config::default()
    })
    .await;
    let url = format!("ws://{}/", server.local_addr());
    let (mut client, _) = connect_async(url).await.unwrap();
    let first = Frame::message(vec![b' '; 40_000], OpCode::Data(Data::Text), false);
    client.send(Message::Frame(first)).await.unwrap();
    let held = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let metrics = metrics(server.local_addr()).await;
            let held = sample(
                &metrics,
                r#"sessionserver_memory_held_bytes{kind="inbound"}"#,
            );
            if let Some(held) = held.filter(|&held| held >= 40_000) {
                return held;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the budget counted the fragment");
    assert!(held >= 40_000);
    let code = tokio::time::timeout(Duration::from_secs(10), close_code(&mut client))
        .await
        .expect("the unfinished message was still held after 10 s");
    assert_eq!(code, CloseCode::Policy);
    server.shutdown().await;
}

/// A client whose socket takes little before it stops accepting (it never reads).
async fn stalled_client(addr: std::net::SocketAddr) -> WebSocketStream<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .unwrap()
        .0
}

/// Resident memory of a process, in KiB (`VmRSS`, or `VmHWM` for its peak).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The binary with default options on a free port; its process and address.
fn spawn_binary() -> (std::process::Child, std::net::SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessionserver"))
        .args(["--bind", "127.0.0.1", "--port", "0"])
        .env_clear()
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (child, ([127, 0, 0, 1], port).into())
}

#[tokio::test]
async fn pings_sent_as_fast_as_possible_without_reading_leave_the_server_bounded() {
    let (mut child, addr) = spawn_binary();
    let pid = child.id();
    // A small receive buffer: the server's socket soon takes no more, and pongs must wait.
    let mut tcp = stalled_client(addr).await.into_inner();
    let before = status_kib(pid, "VmRSS:");
    // Pings of the longest payload allowed (125 bytes, so that the pongs soon outgrow what
    // the kernel's buffers take), 500 per write, for 5 s; nothing is ever read.
    let pings = client_frame(true, 9, &[b'p'; 125]).repeat(500);
    let mut sent = 0u64;
    let flood = async {
        loop {
            if tcp.write_all(&pings).await.is_err() {
                return;
            }
            sent += pings.len() as u64;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), flood).await;
    let metrics = metrics(addr).await;
    let after = status_kib(pid, "VmRSS:");
    let peak = status_kib(pid, "VmHWM:");
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "sent {} MiB of pings; server RSS {before} KiB -> {after} KiB (peak {peak} KiB)",
        sent >> 20
    );
    assert!(sent > 1 << 20, "the flood got through ({sent} bytes)");
    assert!(
        peak.saturating_sub(before) < 32 * 1024,
        "server RSS grew from {before} KiB to a peak of {peak} KiB under {} MiB of pings",
        sent >> 20
    );
    // What waits for the client is bounded by the send queue (4 MiB): it is one pong.
    let outbox = sample(&metrics, "sessionserver_memory_held_bytes{kind=\"outbox\"}")
        .expect("/metrics shows the outbox bytes");
    assert!(outbox <= 4 << 20, "outbox bytes {outbox}");
}

#[tokio::test]
async fn session_data_counts_and_near_the_budget_upgrades_get_503() {
    let server = start(Config {
        memory_budget: Some(200_000),
        max_message_size: 1 << 20,
        limits: Limits {
            max_session_data_bytes: 1 << 20,
            ..Limits::default()
        },
        ..Config::default()
    })
    .await;
    let addr = server.local_addr();
    let mut host = connect(&server).await;
    let pad = "x".repeat(190_000);
    send(
        &mut host,
        &format!(r#"{{"command":"createSession","session":{{"pad":"{pad}"}},"player":{{}}}}"#),
    )
    .await;
    assert_eq!(next_json(&mut host).await["error"], 0);
    let held = metrics(addr).await;
    let session = sample(&held, "sessionserver_memory_held_bytes{kind=\"session\"}").unwrap();
    assert!(
        (190_000..200_000).contains(&session),
        "session bytes {session}"
    );
    assert_eq!(
        sample(&held, "sessionserver_memory_budget_bytes"),
        Some(200_000)
    );
    // Over 90% of the budget: a new WebSocket is refused with 503.
    match connect_async(format!("ws://{addr}/")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 503),
        other => panic!("expected HTTP 503, got {:?}", other.map(|_| ())),
    }
    assert_eq!(
        sample(&metrics(addr).await, "sessionserver_memory_refused_total"),
        Some(1)
    );
    // The session ends with its last member: its bytes are given back, upgrades are served.
    host.close(None).await.unwrap();
    while next_any(&mut host).await.is_some() {}
    let freed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let m = metrics(addr).await;
            if sample(&m, "sessionserver_memory_held_bytes{kind=\"session\"}") == Some(0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    freed.await.expect("the session's bytes were given back");
    let _ok = connect(&server).await;
    server.shutdown().await;
}

#[tokio::test]
async fn near_the_budget_the_largest_backlogs_are_closed_with_4002() {
    const BUDGET: u64 = 3 << 20;
    let server = start(Config {
        memory_budget: Some(BUDGET as usize),
        // Far above the budget: only the budget can close them.
        send_queue_bytes: 256 << 20,
        connection: ConnectionConfig {
            commands_per_second: 100_000,
            command_burst: 100_000,
            ..ConnectionConfig::default()
        },
        ..Config::default()
    })
    .await;
    let addr = server.local_addr();
    let mut sender = connect(&server).await;
    send(
        &mut sender,
        r#"{"command":"createSession","session":{},"player":{}}"#,
    )
    .await;
    next_json(&mut sender).await;
    // Four members that never read, until told to: then each reads to its close.
    let (go, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut client = stalled_client(addr).await;
        client
            .send(Message::text(r#"{"command":"joinSession","sessionID":-1}"#))
            .await
            .unwrap();
        assert_eq!(next_json(&mut sender).await["command"], "playerJoin");
        let mut told = go.subscribe();
        stalled.push(tokio::spawn(async move {
            let _ = told.recv().await;
            loop {
                match client.next().await {
                    Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => continue,
                    _ => return None,
                }
            }
        }));
    }
    // 30 KB updates, each broadcast to every member, until the budget closes someone.
    let pad = "x".repeat(30_000);
    let mut left = 0;
    let mut peak_outbox = 0;
    for seq in 0..5_000 {
        send(
            &mut sender,
            &format!(r#"{{"command":"updateSession","session":{{"seq":{seq},"pad":"{pad}"}}}}"#),
        )
        .await;
        loop {
            let msg = next_json(&mut sender).await;
            match msg["command"].as_str() {
                Some("sessionUpdate") => break,
                Some("playerLeave") => {
                    // A member was closed: the stalled ones read from now on.
                    left += 1;
                    let _ = go.send(());
                }
                _ => panic!("unexpected {msg}"),
            }
        }
        if seq % 20 == 0 {
            let m = metrics(addr).await;
            let outbox = sample(&m, "sessionserver_memory_held_bytes{kind=\"outbox\"}").unwrap();
            peak_outbox = peak_outbox.max(outbox);
            if sample(&m, "sessionserver_memory_shed_total").unwrap() > 0 && left > 0 {
                break;
            }
        }
    }
    assert!(left > 0, "no stalled member was closed");
    let m = metrics(addr).await;
    assert!(sample(&m, "sessionserver_memory_shed_total").unwrap() >= 1);
    let outbox = sample(&m, "sessionserver_memory_held_bytes{kind=\"outbox\"}").unwrap();
    println!("peak outbox bytes seen {peak_outbox}, now {outbox}, budget {BUDGET}");
    assert!(outbox < BUDGET, "outbox bytes {outbox} after shedding");
    assert!(
        peak_outbox < BUDGET + (1 << 20),
        "peak outbox bytes {peak_outbox}"
    );
    // The reading sender was not closed.
    send(&mut sender, r#"{"command":"updateSession","session":{}}"#).await;
    loop {
        if next_json(&mut sender).await["command"] == "sessionUpdate" {
            break;
        }
    }
    // The closed ones got 4002 (what waited for them was dropped, the close went next); the
    // others get 1001 at the shutdown.
    drop(sender);
    server.shutdown().await;
    let mut codes = Vec::new();
    for task in stalled {
        let code = tokio::time::timeout(Duration::from_secs(20), task).await;
        codes.push(
            code.expect("every stalled member's connection ended")
                .unwrap(),
        );
    }
    let shed = codes.iter().filter(|c| **c == Some(4002)).count();
    assert_eq!(shed, left, "the stalled members' close codes: {codes:?}");
    assert!(
        codes.iter().all(|c| matches!(c, Some(4002 | 1001))),
        "{codes:?}"
    );
}
