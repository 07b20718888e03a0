//! Soak: sessions whose members drop their connections at random and resume, for minutes,
//! while every member keeps sending. It checks what resume promises: each member sees every
//! other member's updates exactly once and in order across its drops (each update carries its
//! sender's sequence number), nobody sees a `playerLeave`, and once everyone has left the
//! server's sessions, players and memory account are back where they started.
//!
//! A drop is one of two kinds, at random:
//! - a **cut**: the member's TCP connection is dropped without a close frame, with whatever
//!   the server had written to it still unread; after a pause it connects again and resumes
//!   with its token and `received`;
//! - a **switch**: the member opens a new connection and resumes on it while the old one is
//!   still open (a network hand-over the server has not noticed); the server takes the seat
//!   over and closes the old connection with 4003.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{self, command_of, int_field, ResultLine, Target, Watched, Ws};
use crate::ws::Xorshift;

#[derive(clap::Args, Debug, Clone)]
pub struct SoakArgs {
    #[command(flatten)]
    pub target: Target,
    /// Sessions.
    #[arg(long, default_value_t = 20)]
    pub sessions: usize,
    /// Members per session.
    #[arg(long, default_value_t = 5)]
    pub players: usize,
    /// updatePlayer per second per member, while connected.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Seconds the soak runs.
    #[arg(long, default_value_t = 120.0)]
    pub seconds: f64,
    /// Mean seconds between two drops of one member.
    #[arg(long, default_value_t = 5.0)]
    pub drop_every: f64,
    /// Longest pause, in milliseconds, between a cut and the resume (keep it under the
    /// server's --resume-grace-ms).
    #[arg(long, default_value_t = 2000)]
    pub max_pause_ms: u64,
    /// Seed of the random drops.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// What the members saw, added up.
#[derive(Default)]
struct Tally {
    updates_sent: AtomicU64,
    deliveries: AtomicU64,
    lost: AtomicU64,
    reordered: AtomicU64,
    leaves_seen: AtomicU64,
    cuts: AtomicU64,
    switches: AtomicU64,
    resumes: AtomicU64,
    replayed: AtomicU64,
    snapshots: AtomicU64,
    replaced_closes: AtomicU64,
    failures: AtomicU64,
}

impl Tally {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// One member: its seat, and what it has seen of each other member.
struct Member {
    url: String,
    id: i64,
    token: String,
    /// Session events received since the last sessionJoin / sessionResume reply.
    received: u64,
    /// The last sequence number seen from each member (its own included).
    last_seq: HashMap<i64, i64>,
    /// Its own next sequence number.
    seq: i64,
    /// The updates it never got: (sender, sequence number).
    gaps: Vec<(i64, i64)>,
}

const WAIT: Duration = Duration::from_secs(10);

impl Member {
    /// Takes in one frame of the session: counts events, checks each sender's order.
    fn take(&mut self, text: &str, tally: &Tally) {
        let command = command_of(text);
        let event = matches!(
            command,
            "playerJoin" | "playerUpdate" | "playerLeave" | "sessionUpdate"
        ) && int_field(text, "\"error\":") == Some(0);
        if !event {
            return;
        }
        self.received += 1;
        let from = int_field(text, "\"playerID\":").unwrap_or(-1);
        let seq = int_field(text, "\"seq\":").unwrap_or(0);
        match command {
            // Its data now: updates after it go on from there.
            "playerJoin" => {
                self.last_seq.insert(from, seq);
            }
            "playerUpdate" => {
                Tally::add(&tally.deliveries, 1);
                let last = self.last_seq.entry(from).or_insert(0);
                if seq == *last + 1 {
                    *last = seq;
                } else if seq > *last + 1 {
                    self.gaps
                        .extend((*last + 1..seq).map(|missing| (from, missing)));
                    *last = seq;
                } else {
                    Tally::add(&tally.reordered, 1);
                }
            }
            "playerLeave" => Tally::add(&tally.leaves_seen, 1),
            _ => {}
        }
    }

    /// Resumes on a new connection, and takes in its replay or snapshot.
    async fn resume(&mut self, tally: &Tally) -> Result<Ws, String> {
        let mut ws = common::connect(&self.url, WAIT)
            .await
            .map_err(|e| format!("reconnect: {e}"))?;
        let frame = format!(
            r#"{{"command":"resumeSession","resumeToken":"{}","received":{}}}"#,
            self.token, self.received
        );
        send(&mut ws, &frame).await?;
        let reply = recv(&mut ws).await?;
        if command_of(&reply) != "sessionResume" || int_field(&reply, "\"error\":") != Some(0) {
            return Err(format!("resume refused: {reply}"));
        }
        Tally::add(&tally.resumes, 1);
        self.token = string_field(&reply, "resumeToken").ok_or("no new token")?;
        self.received = 0;
        if reply.contains(r#""replay":"snapshot""#) {
            Tally::add(&tally.snapshots, 1);
            // Every other member's playerJoin follows, with its data now.
            self.last_seq.clear();
            self.last_seq.insert(self.id, self.seq - 1);
        } else {
            let missed = int_field(&reply, "\"missed\":").ok_or("no missed count")?;
            Tally::add(&tally.replayed, missed as u64);
        }
        Ok(ws)
    }
}

pub async fn run(args: SoakArgs) -> Result<(), String> {
    let watched = Watched::new(args.target.server_pid);
    let addr = common::socket_addr_of(&args.target.url);
    let before = ServerState::read(&addr, &watched).await?;
    let tally = Arc::new(Tally::default());
    let finals: Arc<Mutex<HashMap<i64, i64>>> = Arc::default();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.seconds);
    let mut sessions = Vec::new();
    for s in 0..args.sessions {
        let args = args.clone();
        let (tally, finals, seen) = (tally.clone(), finals.clone(), seen.clone());
        sessions.push(tokio::spawn(async move {
            one_session(&args, s as u64, deadline, tally, finals, seen).await
        }));
    }
    let mut first_error = None;
    for session in sessions {
        match session.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                Tally::add(&tally.failures, 1);
                first_error.get_or_insert(e);
            }
            Err(e) => {
                Tally::add(&tally.failures, 1);
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    if let Some(e) = &first_error {
        eprintln!("soak: first failure: {e}");
    }
    // Every update a member sent reached every member of its session by the end. An update
    // that no member got (its own sender's echo included) never reached the server: it was
    // in the sender's socket when its connection was cut. One that some members got and
    // others did not is a lost delivery.
    let finals = finals.lock().map_err(|e| e.to_string())?.clone();
    let seen = std::mem::take(&mut *seen.lock().map_err(|e| e.to_string())?);
    let mut missing_at_end = 0u64;
    let mut not_applied = 0u64;
    for view in seen.iter() {
        for (sender, last) in &view.last_seq {
            if let Some(final_seq) = finals.get(sender) {
                missing_at_end += (final_seq - last).max(0) as u64;
            }
        }
        for gap in &view.gaps {
            let members = seen.iter().filter(|v| v.session == view.session);
            let got_by_someone = members
                .filter(|v| v.last_seq.get(&gap.0).is_some_and(|last| *last >= gap.1))
                .any(|v| !v.gaps.contains(gap));
            if got_by_someone {
                Tally::add(&tally.lost, 1);
            } else {
                not_applied += 1;
            }
        }
    }
    // Each was counted once by every member of its session.
    not_applied /= args.players.max(1) as u64;
    // Let the server finish its leaves, then read it again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = ServerState::read(&addr, &watched).await?;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let t = &*tally;
    let mut line = ResultLine::new("soak", &args.target.server);
    line.put("sessions", args.sessions)
        .put("players", args.sessions * args.players)
        .num("seconds", started.elapsed().as_secs_f64(), 1)
        .put("updates_sent", load(&t.updates_sent))
        .put("deliveries", load(&t.deliveries))
        .put("cuts", load(&t.cuts))
        .put("switches", load(&t.switches))
        .put("resumes", load(&t.resumes))
        .put("replayed", load(&t.replayed))
        .put("snapshots", load(&t.snapshots))
        .put("replaced_closes", load(&t.replaced_closes))
        .put("not_applied", not_applied)
        .put("lost", load(&t.lost))
        .put("reordered", load(&t.reordered))
        .put("missing_at_end", missing_at_end)
        .put("leaves_seen", load(&t.leaves_seen))
        .put("failures", load(&t.failures))
        .put("sessions_before", before.sessions)
        .put("sessions_after", after.sessions)
        .put("connections_after", after.connections)
        .put("held_bytes_before", before.held_bytes)
        .put("held_bytes_after", after.held_bytes)
        .put("rss_before_kib", opt(before.rss_kib))
        .put("rss_after_kib", opt(after.rss_kib));
    line.print();
    let clean = load(&t.lost) + load(&t.reordered) + load(&t.leaves_seen) + missing_at_end == 0
        && load(&t.failures) == 0
        && after.sessions == before.sessions
        && after.held_bytes == before.held_bytes;
    if clean {
        Ok(())
    } else {
        Err("the soak saw losses, reorderings, leaves, failures or leftovers".into())
    }
}

/// What one member saw, at the end.
struct Seen {
    session: u64,
    last_seq: HashMap<i64, i64>,
    gaps: Vec<(i64, i64)>,
}

fn opt(v: Option<u64>) -> String {
    v.map_or("NA".into(), |v| v.to_string())
}

/// One session: its creator and members, each dropping and resuming at random until the
/// deadline; then everyone stops sending, waits for what is on its way, and leaves.
async fn one_session(
    args: &SoakArgs,
    index: u64,
    deadline: Instant,
    tally: Arc<Tally>,
    finals: Arc<Mutex<HashMap<i64, i64>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<(), String> {
    let url = args.target.url.clone();
    let (creator, session) = join(&url, None).await?;
    let mut seats = vec![creator];
    for _ in 1..args.players {
        seats.push(join(&url, Some(session)).await?.0);
    }
    let players = seats.len();
    // Everyone runs until the deadline, then says how far it got.
    let stop_sending = Arc::new(tokio::sync::Barrier::new(players));
    let all_sent = Arc::new(tokio::sync::Barrier::new(players));
    let mut tasks = Vec::new();
    for (i, (member, ws)) in seats.into_iter().enumerate() {
        let seed = args.seed ^ (index << 16) ^ (i as u64 + 1);
        let (args, tally) = (args.clone(), tally.clone());
        let (stop_sending, all_sent) = (stop_sending.clone(), all_sent.clone());
        let (finals, seen) = (finals.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            play(
                &args,
                member,
                ws,
                seed,
                index,
                deadline,
                &tally,
                &stop_sending,
                &all_sent,
                &finals,
                &seen,
            )
            .await
        }));
    }
    let mut result = Ok(());
    for task in tasks {
        let outcome = task.await.map_err(|e| e.to_string()).and_then(|r| r);
        if let Err(e) = outcome {
            result = Err(e);
        }
    }
    result
}

/// Connects, says hello with `resume`, and creates a session (`None`) or joins one.
async fn join(url: &str, session: Option<i64>) -> Result<((Member, Ws), i64), String> {
    let mut ws = common::connect(url, WAIT)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    send(&mut ws, r#"{"command":"hello","features":["resume"]}"#).await?;
    let hello = recv(&mut ws).await?;
    if !hello.contains(r#""features":["resume"]"#) {
        return Err(format!("the server does not offer resume: {hello}"));
    }
    let command = match session {
        None => r#"{"command":"createSession","session":{},"player":{"seq":0}}"#.to_owned(),
        Some(id) => format!(r#"{{"command":"joinSession","sessionID":{id}}}"#),
    };
    send(&mut ws, &command).await?;
    let reply = recv(&mut ws).await?;
    if command_of(&reply) != "sessionJoin" || int_field(&reply, "\"error\":") != Some(0) {
        return Err(format!("join refused: {reply}"));
    }
    let member = Member {
        url: url.to_owned(),
        id: int_field(&reply, "\"playerID\":").ok_or("no playerID")?,
        token: string_field(&reply, "resumeToken").ok_or("no resumeToken")?,
        received: 0,
        last_seq: HashMap::new(),
        seq: 1,
        gaps: Vec::new(),
    };
    let session = int_field(&reply, "\"sessionID\":").ok_or("no sessionID")?;
    Ok(((member, ws), session))
}

#[allow(clippy::too_many_arguments)]
async fn play(
    args: &SoakArgs,
    mut member: Member,
    mut ws: Ws,
    seed: u64,
    session: u64,
    deadline: Instant,
    tally: &Tally,
    stop_sending: &tokio::sync::Barrier,
    all_sent: &tokio::sync::Barrier,
    finals: &Mutex<HashMap<i64, i64>>,
    seen: &Mutex<Vec<Seen>>,
) -> Result<(), String> {
    let mut rng = Xorshift::new(seed.max(1));
    let period = Duration::from_secs_f64(1.0 / args.rate.max(0.001));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_drop = Instant::now() + exponential(&mut rng, args.drop_every);
    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => member.take(text.as_str(), tally),
                Some(Ok(_)) => {}
                other => return Err(format!("player {}: connection ended: {other:?}", member.id)),
            },
            _ = ticker.tick() => {
                if Instant::now() >= deadline {
                    break;
                }
                let frame = format!(
                    r#"{{"command":"updatePlayer","player":{{"seq":{}}}}}"#,
                    member.seq
                );
                send(&mut ws, &frame).await?;
                member.seq += 1;
                Tally::add(&tally.updates_sent, 1);
                if Instant::now() >= next_drop {
                    ws = drop_and_resume(args, &mut member, ws, &mut rng, tally).await?;
                    next_drop = Instant::now() + exponential(&mut rng, args.drop_every);
                }
            }
        }
    }
    // Everyone has stopped sending: what is still on its way comes in, then a sentinel (a
    // command answered in order after everything before it) says it has all come.
    meet(stop_sending).await?;
    lock(finals)?.insert(member.id, member.seq - 1);
    meet(all_sent).await?;
    // Answered in order after every frame before it: here, after every update sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    send(&mut ws, r#"{"command":"joinSession","sessionID":-1}"#).await?;
    loop {
        let text = recv(&mut ws).await?;
        if command_of(&text) == "sessionJoin" {
            break;
        }
        member.take(&text, tally);
    }
    lock(seen)?.push(Seen {
        session,
        last_seq: member.last_seq.clone(),
        gaps: std::mem::take(&mut member.gaps),
    });
    meet(all_sent).await?;
    send(&mut ws, r#"{"command":"leaveSession"}"#).await?;
    loop {
        let text = recv(&mut ws).await?;
        if command_of(&text) == "sessionLeave" {
            break;
        }
    }
    let _ = ws.close(None).await;
    Ok(())
}

/// One drop, a cut or a switch, and the resume after it.
async fn drop_and_resume(
    args: &SoakArgs,
    member: &mut Member,
    old: Ws,
    rng: &mut Xorshift,
    tally: &Tally,
) -> Result<Ws, String> {
    if rng.next_u64() % 3 == 0 {
        // A switch: resume while the old connection is open, unread from here on.
        Tally::add(&tally.switches, 1);
        let mut old = old;
        let new = member.resume(tally).await?;
        loop {
            match tokio::time::timeout(WAIT, old.next()).await {
                Ok(Some(Ok(Message::Close(Some(close))))) => {
                    if close.code == CloseCode::from(4003) {
                        Tally::add(&tally.replaced_closes, 1);
                    }
                    break;
                }
                Ok(Some(Ok(_))) => {}
                Ok(_) => break,
                Err(_) => return Err("the replaced connection was never closed".into()),
            }
        }
        return Ok(new);
    }
    Tally::add(&tally.cuts, 1);
    drop(old);
    let pause = rng.next_u64() % args.max_pause_ms.max(1);
    tokio::time::sleep(Duration::from_millis(pause)).await;
    // The server may not have found the cut yet; either way the resume takes the seat.
    member.resume(tally).await
}

/// Waits for the session's other members (who may have failed: then this fails too).
async fn meet(barrier: &tokio::sync::Barrier) -> Result<(), String> {
    tokio::time::timeout(Duration::from_secs(60), barrier.wait())
        .await
        .map(|_| ())
        .map_err(|_| "another member of the session never got here".to_owned())
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, String> {
    m.lock().map_err(|e| e.to_string())
}

/// A random wait with mean `mean_s` seconds.
fn exponential(rng: &mut Xorshift, mean_s: f64) -> Duration {
    let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    Duration::from_secs_f64(-mean_s * (1.0 - unit).ln())
}

async fn send(ws: &mut Ws, frame: &str) -> Result<(), String> {
    ws.send(Message::text(frame))
        .await
        .map_err(|e| format!("send: {e}"))
}

async fn recv(ws: &mut Ws) -> Result<String, String> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Ok(text.as_str().to_owned()),
            Ok(Some(Ok(_))) => {}
            Ok(other) => return Err(format!("connection ended: {other:?}")),
            Err(_) => return Err("no frame within 10 s".into()),
        }
    }
}

/// The string value of `"key":"…"` (a token: no escapes).
fn string_field(text: &str, key: &str) -> Option<String> {
    let start = text.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = text[start..].find('"')?;
    Some(text[start..start + end].to_owned())
}

/// What the server holds: its sessions, connections and memory account (from /metrics), and
/// its RSS.
struct ServerState {
    sessions: u64,
    connections: u64,
    held_bytes: u64,
    rss_kib: Option<u64>,
}

impl ServerState {
    async fn read(addr: &str, watched: &Watched) -> Result<ServerState, String> {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("metrics: {e}"))?;
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("metrics: {e}"))?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .await
            .map_err(|e| format!("metrics: {e}"))?;
        let value = |name: &str| -> u64 {
            response
                .lines()
                .filter(|l| l.starts_with(name) && !l.starts_with('#'))
                .filter(|l| l[name.len()..].starts_with([' ', '{']))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum()
        };
        Ok(ServerState {
            sessions: value("sessionserver_sessions"),
            connections: value("sessionserver_connections"),
            held_bytes: value("sessionserver_memory_held_bytes"),
            rss_kib: watched.rss_kib(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short soak against a native server in this process: every delivery once and in
    /// order across cuts and switches, no leave, and nothing left on the server.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn members_that_drop_and_resume_lose_nothing() {
        let server = sessionserver::start(sessionserver::Config {
            bind: "127.0.0.1".parse().unwrap(),
            port: 0,
            ..sessionserver::Config::default()
        })
        .await
        .unwrap();
        let args = SoakArgs {
            target: Target {
                url: format!("ws://{}/", server.local_addr()),
                server: "in-process".into(),
                server_pid: None,
            },
            sessions: 4,
            players: 3,
            rate: 20.0,
            seconds: 6.0,
            drop_every: 1.0,
            max_pause_ms: 300,
            seed: 7,
        };
        let outcome = run(args).await;
        server.shutdown().await;
        outcome.expect("a clean soak");
    }
}
