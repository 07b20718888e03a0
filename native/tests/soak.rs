//! Soak: many clients in many sessions joining, updating, leaving and dropping without a
//! close, against the real `sessionserver` binary. Checks that members who stay lose no message
//! and see every sender's updates in order, and that the server's memory returns near its
//! baseline once everyone has gone (a leak check by live heap bytes is in leak.rs).
//!
//! The default is a short run for the test command. The long run (figures in RELIABILITY.md):
//! `SOAK_CLIENTS=4000 SOAK_SESSIONS=400 SOAK_SECS=300 cargo test --release -p native --test soak -- --nocapture`

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The server binary, killed when the test ends however it ends.
struct ServerProcess {
    child: Child,
    port: u16,
}

impl ServerProcess {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sessionserver"))
            .args(["--bind", "127.0.0.1", "--port", "0"])
            .env("RUST_LOG", "warn")
            .envs(
                std::env::var("SOAK_SERVER_ENV")
                    .ok()
                    .and_then(|v| v.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sessionserver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected banner {line:?}"));
        ServerProcess { child, port }
    }

    /// `GET /sessions` (served on loopback without a token).
    async fn sessions_json(&self) -> String {
        common::http_get(([127, 0, 0, 1], self.port).into(), "/sessions", "").await
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the test learns, shared by all clients.
#[derive(Default)]
struct Ledger {
    /// (player, epoch) → updates sent in that membership, for members that left gracefully.
    sent: HashMap<(u64, u64), u64>,
    /// (group, player, epoch) → the last seq the group's anchor saw.
    anchor_seen: HashMap<(usize, u64, u64), u64>,
    errors: Vec<String>,
    updates_sent: u64,
    updates_checked: u64,
}

type Shared = Arc<Mutex<Ledger>>;

async fn text(reader: &mut SplitStream<Client>) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), reader.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(_) => return None,
            Err(_) => panic!("no message within 30 s"),
        }
    }
}

/// Follows every sender's sequence: after a player's `playerJoin`, its updates of one epoch
/// must come 1, 2, 3, … with nothing skipped or repeated.
#[derive(Default)]
struct OrderCheck {
    last: HashMap<(u64, u64), u64>,
}

impl OrderCheck {
    fn see(&mut self, msg: &Value, ledger: &Shared) -> Option<(u64, u64, u64)> {
        if msg["command"] == "playerJoin" {
            // A member already there when we joined comes with its current data: its sequence
            // goes on from there.
            let player = msg["playerID"].as_u64().unwrap();
            let seq = msg["player"]["seq"].as_u64().unwrap();
            let epoch = msg["player"]["epoch"].as_u64().unwrap();
            self.last.insert((player, epoch), seq);
            return None;
        }
        if msg["command"] != "playerUpdate" {
            return None;
        }
        let player = msg["playerID"].as_u64().unwrap();
        let seq = msg["player"]["seq"].as_u64().unwrap();
        let epoch = msg["player"]["epoch"].as_u64().unwrap();
        let last = self.last.entry((player, epoch)).or_insert(0);
        if seq != *last + 1 {
            ledger.lock().unwrap().errors.push(format!(
                "player {player} epoch {epoch}: got seq {seq} after {last}"
            ));
        }
        *last = seq;
        ledger.lock().unwrap().updates_checked += 1;
        Some((player, epoch, seq))
    }
}

/// Stays in its session for the whole run and records everything it sees.
async fn anchor(
    url: String,
    group: usize,
    ledger: Shared,
    ready: tokio::sync::oneshot::Sender<u64>,
    stop: Arc<tokio::sync::Notify>,
) {
    let (mut ws, _) = connect_async(&url).await.unwrap();
    ws.send(Message::text(
        r#"{"command":"createSession","player":{"seq":0,"epoch":0}}"#,
    ))
    .await
    .unwrap();
    let (mut sink, mut reader) = ws.split();
    let join = text(&mut reader).await.unwrap();
    let _ = ready.send(join["sessionID"].as_u64().unwrap());
    let mut order = OrderCheck::default();
    loop {
        tokio::select! {
            msg = text(&mut reader) => {
                let msg = msg.expect("the anchor's connection stays open");
                if let Some((player, epoch, seq)) = order.see(&msg, &ledger) {
                    ledger.lock().unwrap().anchor_seen.insert((group, player, epoch), seq);
                }
            }
            () = stop.notified() => break,
        }
    }
    let _ = sink.close().await;
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Joins, updates, and leaves (gracefully, or by dropping the connection) until the deadline.
async fn churner(url: String, session: u64, seed: u64, deadline: Instant, ledger: Shared) {
    let mut rng = Rng(seed | 1);
    while Instant::now() < deadline {
        let (ws, _) = connect_async(&url).await.unwrap();
        let (mut sink, mut reader) = ws.split();
        let mut epoch = 0;
        // Several memberships per connection: the player ID stays, the epoch changes.
        loop {
            epoch += 1;
            let join = format!(r#"{{"command":"joinSession","sessionID":{session}}}"#);
            sink.send(Message::text(join)).await.unwrap();
            let welcome = text(&mut reader).await.unwrap();
            assert_eq!(welcome["error"], 0, "{welcome}");
            let me = welcome["playerID"].as_u64().unwrap();
            let updates = 1 + rng.below(20);
            let mut order = OrderCheck::default();
            for seq in 1..=updates {
                let update = format!(
                    r#"{{"command":"updatePlayer","player":{{"seq":{seq},"epoch":{epoch}}}}}"#
                );
                sink.send(Message::text(update)).await.unwrap();
                // Read until our own update comes back, checking everyone else's on the way.
                loop {
                    let msg = text(&mut reader).await.unwrap();
                    if order.see(&msg, &ledger) == Some((me, epoch, seq)) {
                        break;
                    }
                }
                ledger.lock().unwrap().updates_sent += 1;
                tokio::time::sleep(Duration::from_millis(20 + rng.below(80))).await;
            }
            match rng.below(10) {
                // Vanish without a close frame: the connection is just dropped.
                0..=2 => {
                    drop(sink);
                    drop(reader);
                    break;
                }
                choice => {
                    sink.send(Message::text(r#"{"command":"leaveSession"}"#))
                        .await
                        .unwrap();
                    loop {
                        let msg = text(&mut reader).await.unwrap();
                        order.see(&msg, &ledger);
                        if msg["command"] == "sessionLeave" {
                            break;
                        }
                    }
                    ledger.lock().unwrap().sent.insert((me, epoch), updates);
                    if choice <= 5 || Instant::now() >= deadline {
                        let _ = sink.close().await;
                        break;
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak() {
    let clients = env_or("SOAK_CLIENTS", 400) as usize;
    let sessions = env_or("SOAK_SESSIONS", 40).max(1) as usize;
    let secs = env_or("SOAK_SECS", 10);
    let server = ServerProcess::start();
    let url = format!("ws://127.0.0.1:{}/", server.port);
    let ledger: Shared = Arc::default();
    let baseline = server.rss_kib();

    let rounds = env_or("SOAK_ROUNDS", 2).max(1);
    let mut peak = baseline;
    let mut after_rounds = Vec::new();
    for _ in 0..rounds {
        let (round_peak, after) =
            round(&server, &url, clients, sessions, secs, &ledger, baseline).await;
        peak = peak.max(round_peak);
        after_rounds.push(after);
    }
    report(
        clients,
        sessions,
        secs,
        rounds,
        &ledger,
        baseline,
        peak,
        &after_rounds,
    );
}

/// One round of load; returns the peak RSS during it and the RSS once everyone has gone.
async fn round(
    server: &ServerProcess,
    url: &str,
    clients: usize,
    sessions: usize,
    secs: u64,
    ledger: &Shared,
    baseline: u64,
) -> (u64, u64) {
    let url = url.to_owned();
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut anchors = Vec::new();
    let mut session_ids = Vec::new();
    for group in 0..sessions {
        let (ready, id) = tokio::sync::oneshot::channel();
        anchors.push(tokio::spawn(anchor(
            url.clone(),
            group,
            ledger.clone(),
            ready,
            stop.clone(),
        )));
        session_ids.push(id.await.unwrap());
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut churners = Vec::new();
    for i in 0..clients {
        let group = i % sessions;
        churners.push((
            group,
            tokio::spawn(churner(
                url.clone(),
                session_ids[group],
                0x9e37_79b9 + i as u64,
                deadline,
                ledger.clone(),
            )),
        ));
    }
    let mut peak = server.rss_kib();
    for (_, task) in churners {
        task.await.expect("a client failed");
        peak = peak.max(server.rss_kib());
    }
    // Every churner is done; each anchor has seen the updates of those that left gracefully
    // before their sessionLeave came back, since a session sends its events in one order.
    stop.notify_waiters();
    for a in anchors {
        a.await.unwrap();
    }

    // Everyone has gone: wait until the server has destroyed every session.
    let (probe, _) = connect_async(&url).await.unwrap();
    let (mut sink, mut reader) = probe.split();
    for attempt in 0.. {
        sink.send(Message::text(r#"{"command":"joinSession","sessionID":-1}"#))
            .await
            .unwrap();
        if text(&mut reader).await.unwrap()["error"] == 6 {
            break;
        }
        // A session that outlives every client holds a member whose connection is gone (a
        // "ghost"): fail with what the server holds instead of asking for ever.
        if attempt >= 1000 {
            panic!(
                "sessions outlive every client: {}",
                server.sessions_json().await
            );
        }
        // A session was still there (its last leave in flight): step out and ask again.
        sink.send(Message::text(r#"{"command":"leaveSession"}"#))
            .await
            .unwrap();
        while text(&mut reader).await.unwrap()["command"] != "sessionLeave" {}
    }
    drop((sink, reader));
    // The server hands memory back once its last connection (the probe) is gone; nothing
    // on the wire says when that happened, so look for it, for at most 10 s.
    let near = baseline_limit(baseline, peak);
    let mut after = server.rss_kib();
    for _ in 0..200 {
        if after <= near {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = server.rss_kib();
    }
    (peak, after)
}

/// How far above its baseline the server may stay once everyone has gone: the allocator may
/// keep a little, but nothing that grew with the load (sessions, players, queues).
fn baseline_limit(baseline: u64, peak: u64) -> u64 {
    baseline + (peak.saturating_sub(baseline) / 4).max(4 * 1024)
}

#[allow(clippy::too_many_arguments)]
fn report(
    clients: usize,
    sessions: usize,
    secs: u64,
    rounds: u64,
    ledger: &Shared,
    baseline: u64,
    peak: u64,
    after_rounds: &[u64],
) {
    let after = *after_rounds.last().unwrap();
    let ledger = ledger.lock().unwrap();
    let mut lost = 0;
    for (&(player, epoch), &sent) in &ledger.sent {
        let seen = (0..sessions)
            .filter_map(|g| ledger.anchor_seen.get(&(g, player, epoch)))
            .copied()
            .max()
            .unwrap_or(0);
        lost += sent - seen.min(sent);
    }
    println!(
        "SOAK clients={clients} sessions={sessions} secs={secs} rounds={rounds} memberships_left_gracefully={} updates_sent={} deliveries_checked={} lost={lost} errors={} rss_kib_baseline={baseline} rss_kib_peak={peak} rss_kib_after_each_round={after_rounds:?}",
        ledger.sent.len(),
        ledger.updates_sent,
        ledger.updates_checked,
        ledger.errors.len()
    );
    assert!(
        ledger.errors.is_empty(),
        "order errors: {:?}",
        &ledger.errors[..ledger.errors.len().min(10)]
    );
    assert_eq!(
        lost, 0,
        "anchors missed updates of members that left gracefully"
    );
    assert!(ledger.updates_sent > 0);
    // RSS also moves with the allocator's fragmentation (about 100 KiB a round here); leaks
    // are measured exactly, by counting live heap bytes, in tests/leak.rs.
    assert!(
        after <= baseline_limit(baseline, peak),
        "memory did not return near its baseline: {baseline} KiB before, {peak} KiB at peak, {after} KiB after"
    );
}
