//! Churn: workers that each repeat connect → createSession → leaveSession → close as fast as
//! the server answers; the result is completed cycles per second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{self, Percentiles, ResultLine, Target, Watched, Ws};

#[derive(clap::Args, Debug, Clone)]
pub struct ChurnArgs {
    #[command(flatten)]
    pub target: Target,
    /// Cycles in flight at once (one worker each).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds measured (after the warmup).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of cycling before the measurement starts.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
}

#[derive(Default)]
struct WorkerReport {
    /// Cycles that ended inside the measurement window, and how long each took (µs).
    cycle_us: Vec<u32>,
    errors: u64,
}

pub async fn run(args: ChurnArgs) -> Result<(), String> {
    let watched = Watched::new(args.target.server_pid);
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let total = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let url = args.target.url.clone();
        let first_error = first_error.clone();
        let total = total.clone();
        workers.push(tokio::spawn(async move {
            let mut report = WorkerReport::default();
            while Instant::now() < end {
                let began = Instant::now();
                match tokio::time::timeout(Duration::from_secs(10), cycle(&url)).await {
                    Ok(Ok(())) => {
                        total.fetch_add(1, Ordering::Relaxed);
                        let ended = Instant::now();
                        if ended >= measure_from && ended < end {
                            report.cycle_us.push((ended - began).as_micros() as u32);
                        }
                    }
                    failure => {
                        report.errors += 1;
                        let e = match failure {
                            Ok(Err(e)) => e,
                            _ => "cycle timed out".into(),
                        };
                        first_error.lock().unwrap().get_or_insert(e);
                        // Do not spin on a server that refuses.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            report
        }));
    }

    tokio::time::sleep_until(measure_from.into()).await;
    let (server0, gen0, t0) = (watched.cpu(), common::own_cpu(), Instant::now());
    tokio::time::sleep_until(end.into()).await;
    let (server1, gen1, t1) = (watched.cpu(), common::own_cpu(), Instant::now());
    let window_s = (t1 - t0).as_secs_f64();

    let mut cycle_us = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let mut report = worker.await.map_err(|e| e.to_string())?;
        cycle_us.append(&mut report.cycle_us);
        errors += report.errors;
    }
    if let Some(e) = first_error.lock().unwrap().as_ref() {
        eprintln!("churn: {errors} cycles failed; first: {e}");
    }
    let cycles = Percentiles::new(cycle_us);
    let server_cpu = match (server0, server1) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    let gen_cpu = gen1 - gen0;
    let mut line = ResultLine::new("churn", &args.target.server);
    line.put("concurrency", args.concurrency)
        .put("cycles", cycles.count())
        .put("errors", errors)
        .num("cycles_per_s", cycles.count() as f64 / window_s, 0)
        .put("cycle_p50_us", cycles.at(0.5))
        .put("cycle_p99_us", cycles.at(0.99))
        .put("cycle_max_us", cycles.max())
        .window_and_cpu(window_s, gen_cpu, server_cpu)
        .num(
            "server_cpu_us_per_cycle",
            common::ratio(server_cpu * 1e6, cycles.count() as f64),
            1,
        );
    line.print();
    Ok(())
}

/// One connect → createSession → leaveSession → close cycle.
async fn cycle(url: &str) -> Result<(), String> {
    let mut ws = common::connect(url, Duration::from_secs(10))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    send(
        &mut ws,
        r#"{"command":"createSession","session":{},"player":{}}"#,
    )
    .await?;
    expect(&mut ws, "sessionJoin").await?;
    send(&mut ws, r#"{"command":"leaveSession"}"#).await?;
    expect(&mut ws, "sessionLeave").await?;
    // The close handshake, then the server's FIN: the server closes the TCP connection first
    // (as RFC 6455 asks), so the client's ports do not pile up in TIME_WAIT.
    ws.close(None).await.map_err(|e| format!("close: {e}"))?;
    while let Some(Ok(_)) = ws.next().await {}
    let mut tcp = ws.into_inner();
    let mut buf = [0u8; 256];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(n) = tcp.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    Ok(())
}

async fn send(ws: &mut Ws, text: &'static str) -> Result<(), String> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| format!("send: {e}"))
}

/// Reads until a `command` reply with error 0.
async fn expect(ws: &mut Ws, command: &str) -> Result<(), String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                if common::command_of(&text) == command {
                    return match common::int_field(&text, "\"error\":") {
                        Some(0) => Ok(()),
                        _ => Err(format!("{command} failed: {}", text.as_str())),
                    };
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("receive: {e}")),
            None => return Err(format!("closed while waiting for {command}")),
        }
    }
}
