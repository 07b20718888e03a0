//! Idle: N players connect, each says one thing (so the server has read from it) and then
//! stays connected without a word; the server's resident memory is read before and after.
//!
//! By default they stay in the lobby (each sends `leaveSession`, answered with error 2). With
//! `--session-size K` they are in sessions of K instead, as players of a game are: the first of
//! each K creates a session, the others join it, every one reads what it is sent (its
//! `sessionJoin`, the `playerJoin`s) and then goes quiet; with `--resume` each first says
//! `hello` with the `resume` feature, so the server keeps a resume token per member (and would
//! keep a replay log for the session while a member is away; none is here).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{self, ResultLine, Target, Watched, Ws};

#[derive(clap::Args, Debug, Clone)]
pub struct IdleArgs {
    #[command(flatten)]
    pub target: Target,
    /// Players to hold connected.
    #[arg(long, default_value_t = 10_000)]
    pub players: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Seconds to wait, with everyone connected, before reading the server's memory.
    #[arg(long, default_value_t = 3.0)]
    pub settle: f64,
    /// Players in sessions of this many (0: in the lobby).
    #[arg(long, default_value_t = 0)]
    pub session_size: usize,
    /// Each player says `hello` with the `resume` feature first (with `--session-size`).
    #[arg(long)]
    pub resume: bool,
    /// Name of the scenario in the result line.
    #[arg(long, default_value = "idle")]
    pub scenario: String,
}

pub async fn run(args: IdleArgs) -> Result<(), String> {
    let watched = Watched::new(args.target.server_pid);
    let rss_before = watched.rss_kib();
    let gen_rss_before = common::status_kib("self", "VmRSS");
    let cpu_before = watched.cpu();
    let limit = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let started = Instant::now();
    let mut held = Vec::with_capacity(args.players);
    let mut failed = 0usize;
    let mut first_error = None;
    if args.session_size == 0 {
        let mut tasks = Vec::with_capacity(args.players);
        for _ in 0..args.players {
            let limit = limit.clone();
            let url = args.target.url.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire().await.map_err(|e| e.to_string())?;
                one_idle_player(&url).await
            }));
        }
        for task in tasks {
            match task.await {
                Ok(Ok(ws)) => held.push(ws),
                Ok(Err(e)) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
    } else {
        // One task per session: its players connect and join one after the other.
        let k = args.session_size;
        let mut tasks = Vec::new();
        for first in (0..args.players).step_by(k) {
            let size = k.min(args.players - first);
            let limit = limit.clone();
            let url = args.target.url.clone();
            let resume = args.resume;
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire().await.map_err(|e| e.to_string())?;
                one_idle_session(&url, size, resume).await
            }));
        }
        for task in tasks {
            match task.await {
                Ok(Ok(session)) => held.extend(session),
                Ok(Err(e)) => {
                    failed += k;
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    failed += k;
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
    }
    let connect_s = started.elapsed().as_secs_f64();
    if let Some(e) = &first_error {
        eprintln!("idle: {failed} connections failed; first: {e}");
    }
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let rss_after = watched.rss_kib();
    let cpu_after = watched.cpu();
    let gen_rss_after = common::status_kib("self", "VmRSS");
    let connected = held.len();

    let kib = |v: Option<u64>| v.map(|v| v as f64);
    let delta_kib = common::delta(kib(rss_before), kib(rss_after));
    let gen_delta_kib = common::delta(kib(gen_rss_before), kib(gen_rss_after));
    let server_cpu = common::delta(cpu_before, cpu_after);
    let mut line = ResultLine::new(&args.scenario, &args.target.server);
    line.put("players", args.players)
        .put("session_size", args.session_size)
        .put("resume", if args.resume { "yes" } else { "no" })
        .put("connected", connected)
        .put("failed", failed)
        .put(
            "rss_before_kib",
            rss_before.map_or("NA".into(), |v| v.to_string()),
        )
        .put(
            "rss_after_kib",
            rss_after.map_or("NA".into(), |v| v.to_string()),
        )
        .num(
            "bytes_per_player",
            common::ratio(delta_kib * 1024.0, connected as f64),
            0,
        )
        .num(
            "gen_bytes_per_player",
            common::ratio(gen_delta_kib * 1024.0, connected as f64),
            0,
        )
        .num("connect_s", connect_s, 2)
        .num("connects_per_s", connected as f64 / connect_s, 0)
        .num(
            "server_cpu_us_per_connect",
            common::ratio(server_cpu * 1e6, connected as f64),
            1,
        );
    line.print();

    // Hang up on everyone at once (the server is stopped after this run anyway).
    drop(held);
    Ok(())
}

/// Connects and sends `leaveSession` (answered with error 2: not in a session), so that the
/// server has read from the connection and answered on it before it goes quiet.
async fn one_idle_player(url: &str) -> Result<Ws, String> {
    let mut ws = common::connect(url, Duration::from_secs(30))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    ws.send(Message::text(r#"{"command":"leaveSession"}"#))
        .await
        .map_err(|e| format!("send: {e}"))?;
    let reply = tokio::time::timeout(Duration::from_secs(30), ws.next()).await;
    match reply {
        Ok(Some(Ok(Message::Text(_)))) => Ok(ws),
        Ok(other) => Err(format!("unexpected reply: {other:?}")),
        Err(_) => Err("no reply in 30 s".into()),
    }
}

/// `size` players in one session: the first creates it, the others join; each reads what it is
/// owed (its answer and the `playerJoin` of every other member) before the next one joins, so
/// nothing waits in the server's outboxes once they are all in.
async fn one_idle_session(url: &str, size: usize, resume: bool) -> Result<Vec<Ws>, String> {
    let mut players: Vec<Ws> = Vec::with_capacity(size);
    let mut session_id = None;
    for i in 0..size {
        let mut ws = common::connect(url, Duration::from_secs(30))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        if resume {
            send(&mut ws, r#"{"command":"hello","features":["resume"]}"#).await?;
            let hello = recv_command(&mut ws, "hello").await?;
            if !hello.contains("\"resume\"") {
                return Err(format!("resume not offered: {hello}"));
            }
        }
        let command = match session_id {
            None => r#"{"command":"createSession","session":{},"player":{}}"#.to_string(),
            Some(id) => format!(r#"{{"command":"joinSession","sessionID":{id}}}"#),
        };
        send(&mut ws, &command).await?;
        let joined = recv_command(&mut ws, "sessionJoin").await?;
        if common::int_field(&joined, "\"error\":") != Some(0) {
            return Err(format!("join refused: {joined}"));
        }
        if resume && !joined.contains("\"resumeToken\"") {
            return Err(format!("no resume token: {joined}"));
        }
        session_id = session_id.or(common::int_field(&joined, "\"sessionID\":"));
        // Its burst: a playerJoin per member already there.
        for _ in 0..i {
            recv_command(&mut ws, "playerJoin").await?;
        }
        // Every member already there is told of the new one.
        for member in &mut players {
            recv_command(member, "playerJoin").await?;
        }
        players.push(ws);
    }
    Ok(players)
}

async fn send(ws: &mut Ws, text: &str) -> Result<(), String> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| format!("send: {e}"))
}

/// Reads text frames until one with `command`; others (a hello's features) are skipped.
async fn recv_command(ws: &mut Ws, command: &str) -> Result<String, String> {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .map_err(|_| format!("no {command} in 30 s"))?;
        match next {
            Some(Ok(Message::Text(text))) => {
                if common::command_of(&text) == command {
                    return Ok(text.to_string());
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => return Err(format!("waiting for {command}: {other:?}")),
        }
    }
}
