//! Churn: C slots that each repeat connect → createSession → leaveSession → close as fast as
//! the server answers; the result is completed cycles per second.
//!
//! A cycle is a new TCP connection, the WebSocket upgrade (HTTP 101), createSession answered by
//! `sessionJoin` with error 0, leaveSession answered by `sessionLeave` with error 0, then our
//! close frame and the server's, and the server's FIN: the server closes the TCP connection
//! first (as RFC 6455 asks), so the client's ports do not pile up in TIME_WAIT. Any other end
//! of a cycle, or none within 10 s, counts as an error (the slot then rests 10 ms and starts a
//! new cycle; nothing is retried). A cycle counts, with its latency, when it ends inside the
//! measured window.
//!
//! The generator shares the machine with the server, so its clients are lean, as in the
//! fan-out: `--threads` OS threads, each running its share of the slots from one epoll loop
//! with the hand-made WebSocket client of `ws.rs`. `churn/cycle.rs` is a cycle's protocol (no
//! sockets in it), `churn/worker.rs` a thread's loop; this file reads the CPU clocks around
//! the measured window and merges the threads' counts.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::common::{self, Percentiles, ResultLine, Target, Watched};
use crate::ws;

mod cycle;
mod worker;

#[derive(clap::Args, Debug, Clone)]
pub struct ChurnArgs {
    #[command(flatten)]
    pub target: Target,
    /// Cycles in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds measured (after the warmup).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of cycling before the measurement starts.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
}

/// Where to connect and when, the same for every worker thread.
struct Plan {
    addr: SocketAddr,
    /// `host:port` and path of the URL, for the upgrade request.
    host: String,
    path: String,
    start: Instant,
    /// Cycles ending from here on, and before `end`, are counted and timed.
    measure_from: Instant,
    /// No cycle starts from here on; those in flight are finished (or time out).
    end: Instant,
}

/// What one worker thread returns at the end.
#[derive(Default)]
struct WorkerReport {
    /// Cycles that ended inside the measurement window, and how long each took (µs).
    cycle_us: Vec<u32>,
    /// Cycles that failed, at any time, and the first reason.
    errors: u64,
    first_error: Option<String>,
}

/// Runs the scenario on `threads` worker threads (the coordinator is this thread).
pub fn run(args: ChurnArgs, threads: usize) -> Result<(), String> {
    let (host, path) = ws::split_url(&args.target.url)?;
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let slots = args.concurrency.max(1);
    let threads = threads.clamp(1, slots);
    let watched = Watched::new(args.target.server_pid);
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let plan = Plan {
        addr,
        host: host.to_string(),
        path: path.to_string(),
        start,
        measure_from,
        end: measure_from + Duration::from_secs_f64(args.duration),
    };

    let (reports, window_s, gen_cpu, server_cpu) = std::thread::scope(|scope| {
        let plan = &plan;
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                // Slots spread evenly: thread t runs those whose index maps to it.
                let share = (t + 1) * slots / threads - t * slots / threads;
                std::thread::Builder::new()
                    .name(format!("churn-{t}"))
                    .spawn_scoped(scope, move || worker::run(plan, t, share))
                    .expect("a worker thread")
            })
            .collect();
        sleep_until(plan.measure_from);
        let start = common::Snapshot::take(&watched);
        sleep_until(plan.end);
        let used = start.until(&common::Snapshot::take(&watched));
        let reports: Vec<WorkerReport> = workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| WorkerReport {
                    errors: 1,
                    first_error: Some("a worker thread panicked".into()),
                    ..WorkerReport::default()
                })
            })
            .collect();
        (reports, used.seconds, used.gen_cpu, used.server_cpu)
    });

    let mut cycle_us = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for mut report in reports {
        cycle_us.append(&mut report.cycle_us);
        errors += report.errors;
        first_error = first_error.or(report.first_error);
    }
    if let Some(e) = first_error {
        eprintln!("churn: {errors} cycles failed; first: {e}");
    }
    let cycles = Percentiles::new(cycle_us);
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

fn sleep_until(t: Instant) {
    std::thread::sleep(t.saturating_duration_since(Instant::now()));
}
