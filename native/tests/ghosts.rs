//! No ghost members: whatever ends a connection, its session hears of it. A reading observer
//! gets a `playerLeave` for every player it saw join, and `GET /sessions` lists no member
//! whose connection is gone. Two probes, as an attacker would try them:
//!
//! - joiners that never read, joining a session whose members hold large player data while
//!   those members flood updates: their outboxes overflow (closed 4001), some of them while
//!   their join is still on its way;
//! - a text fragment followed by a continuation whose 64-bit length is near 2^63 or 2^64: the
//!   connection is closed (1002 or 1009) and the player leaves.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Client, PATIENCE};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use sessionserver::{Config, RunningServer};
use sessionserver_core::ConnectionConfig;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A small send queue (bytes): a client that stops reading overflows it after a few frames of
/// 32 KiB.
fn server_config() -> Config {
    Config {
        send_queue_bytes: 4 * 33 * 1024,
        // The members flood on purpose; their egress budget is not what this test is about.
        limits: sessionserver_core::Limits {
            egress_bytes_per_second: 1 << 40,
            egress_burst_bytes: 1 << 40,
            ..sessionserver_core::Limits::default()
        },
        connection: ConnectionConfig {
            commands_per_second: 100_000,
            command_burst: 100_000,
            ..ConnectionConfig::default()
        },
        ..Config::default()
    }
}

async fn send(client: &mut Client, frame: &str) {
    client.send(Message::text(frame)).await.unwrap();
}

/// The next text message as JSON, within [`PATIENCE`].
async fn next_json(client: &mut Client) -> Value {
    loop {
        let msg = tokio::time::timeout(PATIENCE, client.next())
            .await
            .expect("no message within 10 s");
        match msg {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The code of the server's close frame, skipping what comes before it.
async fn close_code<S>(client: &mut WebSocketStream<S>) -> Option<CloseCode>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::time::timeout(PATIENCE, client.next())
            .await
            .expect("the connection is still open after 10 s");
        match msg {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

/// The session's creator, reading everything: who it saw join and leave.
struct Observer {
    session: u64,
    player: u64,
    events: mpsc::UnboundedReceiver<Value>,
    joined: BTreeSet<u64>,
    left: BTreeSet<u64>,
}

impl Observer {
    async fn create(server: &RunningServer) -> Self {
        let mut ws = common::connect(server).await;
        // Every member's data has these keys (updates keep them).
        send(
            &mut ws,
            r#"{"command":"createSession","player":{"pad":"","seq":0}}"#,
        )
        .await;
        let reply = next_json(&mut ws).await;
        assert_eq!(reply["error"], 0, "{reply}");
        let (tx, events) = mpsc::unbounded_channel();
        // Its own task, so that it reads as fast as frames come whatever the test does.
        tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(t) = msg else { continue };
                // Only joins and leaves are parsed: the observer keeps up with any flood.
                let membership = [r#"{"command":"playerJoin""#, r#"{"command":"playerLeave""#];
                if membership.iter().any(|m| t.starts_with(m))
                    && tx.send(serde_json::from_str(&t).unwrap()).is_err()
                {
                    return;
                }
            }
            // Its end (at the server's shutdown) drops `tx`: a wait for more fails in `take`.
        });
        Observer {
            session: reply["sessionID"].as_u64().unwrap(),
            player: reply["playerID"].as_u64().unwrap(),
            events,
            joined: BTreeSet::new(),
            left: BTreeSet::new(),
        }
    }

    /// Takes one event, noting joins and leaves; fails naming the ghosts (players seen to
    /// join and not to leave) if none comes within 10 s.
    async fn take(&mut self) {
        let Ok(Some(event)) = tokio::time::timeout(PATIENCE, self.events.recv()).await else {
            let ghosts: Vec<_> = self.joined.difference(&self.left).collect();
            panic!(
                "the observer got nothing within 10 s; no playerLeave for {ghosts:?} \
                 ({} joined, {} left)",
                self.joined.len(),
                self.left.len()
            );
        };
        let id = event["playerID"].as_u64();
        match (event["command"].as_str(), id) {
            (Some("playerJoin"), Some(id)) => assert!(self.joined.insert(id), "{event}"),
            (Some("playerLeave"), Some(id)) => assert!(self.left.insert(id), "{event}"),
            _ => {}
        }
    }

    /// Waits until `player` has joined.
    async fn saw_join(&mut self, player: u64) {
        while !self.joined.contains(&player) {
            self.take().await;
        }
    }

    /// Waits until `player` has left.
    async fn saw_leave(&mut self, player: u64) {
        while !self.left.contains(&player) {
            self.take().await;
        }
    }

    /// Waits until everyone it saw join has left.
    async fn saw_everyone_leave(&mut self) {
        while self.joined != self.left {
            self.take().await;
        }
    }
}

/// The members `GET /sessions` lists for `session`.
async fn members(addr: SocketAddr, session: u64) -> Vec<u64> {
    let response = common::http_get(addr, "/sessions", "").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let listing: Value = serde_json::from_str(common::body(&response)).unwrap();
    let found = listing["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sessionID"] == session)
        .unwrap_or_else(|| panic!("session {session} is not listed: {listing}"));
    found["players"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["playerID"].as_u64().unwrap())
        .collect()
}

/// Waits until the server holds exactly `n` WebSocket connections (bounded).
async fn connections_settle_at(server: &RunningServer, n: usize) {
    let settled = tokio::time::timeout(PATIENCE, async {
        while server.connection_count() != n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    assert!(
        settled.await.is_ok(),
        "{} connections open 10 s later, expected {n}",
        server.connection_count()
    );
}

/// A value of `/metrics`.
async fn metric(addr: SocketAddr, line_start: &str) -> u64 {
    let response = common::http_get(addr, "/metrics", "").await;
    common::body(&response)
        .lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in {response}"))
}

/// A WebSocket client with a receive buffer as small as the kernel allows, that joins the
/// latest session and then never reads: what the server sends it piles up at once.
async fn stalled_joiner(addr: SocketAddr) -> WebSocketStream<TcpStream> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .unwrap();
    ws.send(Message::text(r#"{"command":"joinSession","sessionID":-1}"#))
        .await
        .unwrap();
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joiners_that_overflow_during_their_join_leave_no_ghost() {
    const HEAVY: usize = 3;
    const JOINERS: usize = 24;
    const BURST: usize = 16;
    let server = common::start(server_config()).await;
    let addr = server.local_addr();
    let mut observer = Observer::create(&server).await;

    // Members with large player data, which read everything (a task each) and flood updates
    // while the joiners come: bursts of BURST, then a wait for their echoes (so that the
    // readers are never the ones left behind). A burst arrives at the session together and
    // is handled in one batch, so a joiner whose join is answered early in a batch has its
    // outbox overflow before its connection has taken the answer.
    let pad = "x".repeat(32 * 1024);
    let stop = Arc::new(AtomicBool::new(false));
    let mut floods = Vec::new();
    for _ in 0..HEAVY {
        let mut ws = common::connect(&server).await;
        send(&mut ws, r#"{"command":"joinSession","sessionID":-1}"#).await;
        let id = next_json(&mut ws).await["playerID"].as_u64().unwrap();
        observer.saw_join(id).await;
        let (mut sink, mut stream) = ws.split();
        let (echo, mut echoes) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(t) = msg else { continue };
                if t.starts_with(r#"{"command":"playerUpdate""#) {
                    let update: Value = serde_json::from_str(&t).unwrap();
                    if update["playerID"] == id {
                        let _ = echo.send(());
                    }
                }
            }
        });
        let (pad, stop) = (pad.clone(), stop.clone());
        floods.push(tokio::spawn(async move {
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..BURST {
                    let update = format!(
                        r#"{{"command":"updatePlayer","player":{{"pad":"{pad}","seq":{seq}}}}}"#
                    );
                    sink.feed(Message::text(update)).await.unwrap();
                    seq += 1;
                }
                sink.flush().await.unwrap();
                for _ in 0..BURST {
                    tokio::time::timeout(PATIENCE, echoes.recv())
                        .await
                        .unwrap_or_else(|_| {
                            panic!("a member's own update was not echoed within 10 s")
                        })
                        .expect("a flooding member's connection ended");
                }
            }
            (sink, reader, seq)
        }));
    }
    let joiners: Vec<_> = (0..JOINERS)
        .map(|_| tokio::spawn(stalled_joiner(addr)))
        .collect();
    let mut stalled = Vec::new();
    for joiner in joiners {
        stalled.push(joiner.await.unwrap());
    }
    // The probe does what it is for: half the stalled joiners closed for not reading.
    let overflowed = async {
        loop {
            let closes = metric(
                addr,
                "sessionserver_closes_total{reason=\"send_queue_full\"}",
            );
            if closes.await >= JOINERS as u64 / 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let probed = tokio::time::timeout(3 * PATIENCE, overflowed).await;
    stop.store(true, Ordering::Relaxed);
    let mut heavy = Vec::new();
    let mut updates = 0;
    for flood in floods {
        let (sink, reader, sent) = flood.await.unwrap();
        updates += sent;
        heavy.push((sink, reader));
    }
    let closes = metric(
        addr,
        "sessionserver_closes_total{reason=\"send_queue_full\"}",
    )
    .await;
    println!(
        "GHOSTS {closes} of {JOINERS} stalled joiners closed with 4001 after {updates} updates"
    );
    assert!(
        probed.is_ok(),
        "only {closes} of {JOINERS} stalled joiners closed for not reading after 30 s"
    );

    // Everyone but the observer goes.
    for (mut sink, reader) in heavy {
        let _ = sink.send(Message::Close(None)).await;
        let _ = reader.await;
    }
    drop(stalled);
    observer.saw_everyone_leave().await;
    println!(
        "GHOSTS the observer saw {} joins and as many leaves",
        observer.joined.len()
    );
    assert!(
        observer.joined.len() > HEAVY,
        "no stalled joiner ever joined"
    );
    assert_eq!(members(addr, observer.session).await, [observer.player]);
    connections_settle_at(&server, 1).await;
    server.shutdown().await;
}

/// A joiner sends a text fragment, then a continuation that says it is `length` bytes long
/// (a ping between them if `ping`): it is closed with 1002 or 1009, and the session hears
/// that it has gone.
async fn poisoned_continuation(length: u64) {
    let server = common::start(server_config()).await;
    let addr = server.local_addr();
    let mut observer = Observer::create(&server).await;
    for ping in [false, true] {
        let mut probe = common::connect(&server).await;
        send(&mut probe, r#"{"command":"joinSession","sessionID":-1}"#).await;
        let id = next_json(&mut probe).await["playerID"].as_u64().unwrap();
        observer.saw_join(id).await;
        let mut bytes = common::client_frame(false, 1, br#"{"command":"#);
        if ping {
            bytes.extend(common::client_frame(true, 9, b"between"));
        }
        bytes.extend(common::client_frame_header(true, 0, length));
        bytes.extend_from_slice(b"\"updatePlayer\"");
        common::write_raw(&mut probe, &bytes).await;
        let code = close_code(&mut probe).await;
        assert!(
            matches!(code, Some(CloseCode::Protocol | CloseCode::Size)),
            "length {length:#x}, ping between: {ping}: closed with {code:?}, expected 1002 or 1009"
        );
        observer.saw_leave(id).await;
    }
    assert_eq!(members(addr, observer.session).await, [observer.player]);
    connections_settle_at(&server, 1).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_continuation_claiming_nearly_2_pow_63_bytes_closes_and_leaves() {
    poisoned_continuation(0x7fff_ffff_ffff_fff0).await;
}

#[tokio::test]
async fn a_continuation_claiming_nearly_2_pow_64_bytes_closes_and_leaves() {
    poisoned_continuation(0xffff_ffff_ffff_fff0).await;
}

/// So large that the length of the fragment before it (11 bytes) plus this wraps past 2^64.
#[tokio::test]
async fn a_continuation_whose_length_wraps_the_message_size_closes_and_leaves() {
    poisoned_continuation(u64::MAX - 1).await;
}
