//! Idle: N players connect, each says one thing (so the server has read from it) and then
//! stays connected without a word; the server's resident memory is read before and after.

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
}

pub async fn run(args: IdleArgs) -> Result<(), String> {
    let watched = Watched::new(args.target.server_pid);
    let rss_before = watched.rss_kib();
    let gen_rss_before = common::status_kib("self", "VmRSS");
    let cpu_before = watched.cpu();
    let limit = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.players);
    for _ in 0..args.players {
        let limit = limit.clone();
        let url = args.target.url.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.map_err(|e| e.to_string())?;
            one_idle_player(&url).await
        }));
    }
    let mut held = Vec::with_capacity(args.players);
    let mut failed = 0usize;
    let mut first_error = None;
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
    let mut line = ResultLine::new("idle", &args.target.server);
    line.put("players", args.players)
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
