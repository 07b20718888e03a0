//! Fan-out: M sessions of K players, each player sending `updatePlayer` on a fixed schedule
//! (open loop), every member checking loss and per-sender order and timing each delivery.
//!
//! Player i of session s sends at (i·M + s)/(M·K) of its period after the start, and then once
//! per period: the updates of all players are evenly spread in time (`--pattern even`). With
//! `--pattern burst` each send waits for the next 1 ms tick from the start, so all sends due in
//! a tick go out together. `--join-probes` times joins into the first session after the run
//! (`fanout/join_probe.rs`).
//!
//! Each update carries `{"seq":N,"t":T}`: N counts the sender's updates from 1, T is the send
//! time in µs since one `Instant` shared by every client of this process. A delivery's latency
//! is its arrival time minus T. The send times follow a schedule that does not wait for
//! replies; a send that starts late is counted (`late_sends`, `max_slip_us`), so a reader can
//! tell when the generator could not keep the offered rate.
//!
//! The generator shares the machine with the server, so its clients are lean: `--threads` OS
//! threads, each driving a fixed share of the players from one epoll loop with the hand-made
//! WebSocket client of `ws.rs` (see `fanout/worker.rs`). This file is the coordinator: it
//! splits the players, publishes the common start once everyone is ready, reads the CPU clocks
//! around the measured window, waits for the last deliveries and merges the threads' reports.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::{self, Percentiles, ResultLine, Target, Watched};
use crate::ws;

mod join_probe;
mod worker;

#[derive(clap::Args, Debug, Clone)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub target: Target,
    /// Name of the scenario in the result line.
    #[arg(long, default_value = "fanout")]
    pub scenario: String,
    /// Number of sessions (M).
    #[arg(long, default_value_t = 100)]
    pub sessions: usize,
    /// Players per session (K).
    #[arg(long, default_value_t = 10)]
    pub players: usize,
    /// updatePlayer messages per second sent by each player (R).
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// Instead of --rate: updates per second per session in total, spread evenly over its
    /// members (for large sessions: 1,000 players, 10 updates/s in total).
    #[arg(long)]
    pub session_rate: Option<f64>,
    /// Seconds measured (after the warmup).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of sending before the measurement starts.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// A run is "sustained" only with p99 latency below this (and nothing lost).
    #[arg(long, default_value_t = 50.0)]
    pub p99_limit_ms: f64,
    /// Connections being opened (and joined) at once during setup.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Seconds allowed for connecting and joining every player.
    #[arg(long, default_value_t = 180.0)]
    pub setup_timeout: f64,
    /// Seconds to wait, after sending stops, for deliveries still on their way.
    #[arg(long, default_value_t = 10.0)]
    pub drain_timeout: f64,
    /// When sends happen: `even` spreads them over the period (no two at once); `burst`
    /// aligns them to 1 ms ticks, every send due in a tick sent together (as a game server's
    /// clients do when they send on their frame tick).
    #[arg(long, value_enum, default_value_t = Pattern::Even)]
    pub pattern: Pattern,
    /// After the run (traffic drained): the first session's last player leaves, then this
    /// many times in a row a fresh reading client joins that session of K - 1 members and the
    /// time from its `joinSession` to the last `playerJoin` of its burst is measured
    /// (`join_p50_us`, `join_max_us`, `join_runs_us`); then it leaves. With `--players 4096`
    /// (the default maximum): joining a session of 4,095, to make it full.
    #[arg(long, default_value_t = 0)]
    pub join_probes: usize,
    /// Offer permessage-deflate in every upgrade (as browsers do) and inflate what comes
    /// compressed.
    #[arg(long)]
    pub deflate: bool,
    /// Pad each update with realistic JSON (a list of entities with random positions and
    /// health) until its `playerUpdate` is about this many bytes; 0: the bare `{"seq","t"}`
    /// (about 75 bytes).
    #[arg(long, default_value_t = 0)]
    pub payload_bytes: usize,
    /// The edge host's direct path: each creator connects to `<url>session/new`, each joiner
    /// to `<url>session/<its session's ID>`, instead of all to `<url>`.
    #[arg(long)]
    pub direct: bool,
}

/// The send pattern of `fanout`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Each player at its own offset in the period: no two sends at once.
    Even,
    /// Sends rounded up to the next 1 ms tick: all sends due in a tick go out together.
    Burst,
}

/// The tick of [`Pattern::Burst`].
const BURST_TICK: Duration = Duration::from_millis(1);

/// When to send, fixed once everyone is ready.
#[derive(Clone, Copy)]
struct Plan {
    start: Instant,
    /// Latencies of updates sent from here on are recorded (µs since `base`).
    measure_from_us: u64,
    /// No update is sent from here on (µs since `base`).
    send_end_us: u64,
}

/// What the coordinator and every worker thread share.
struct Shared {
    addr: SocketAddr,
    /// `host:port` and path of the URL, for the upgrade request.
    host: String,
    path: String,
    /// Players per session (K) and in all (N).
    players: usize,
    total_players: usize,
    period: Duration,
    /// Sends are aligned to this tick ([`Pattern::Burst`]), or each at its own time.
    tick: Option<Duration>,
    /// The one clock of every timestamp.
    base: Instant,
    /// Connections that may still start connecting and joining now (`--connect-concurrency`).
    connect_slots: AtomicUsize,
    /// Each session's ID, set by its creator's thread once the server has answered: its
    /// joiners (on any thread) wait for it.
    session_ids: Vec<OnceLock<i64>>,
    plan: OnceLock<Plan>,
    stop: AtomicBool,
    /// Set by the coordinator before the join probes: the first session's last player
    /// leaves, and `room_made` is set once its `sessionLeave` came.
    make_room: AtomicBool,
    room_made: AtomicBool,
    /// One per worker thread.
    progress: Vec<Progress>,
    /// `--deflate`, `--payload-bytes`.
    deflate: bool,
    payload_bytes: usize,
    /// `--direct`.
    direct: bool,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    fn take_connect_slot(&self) -> bool {
        self.connect_slots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    fn give_back_connect_slot(&self) {
        self.connect_slots.fetch_add(1, Ordering::AcqRel);
    }

    fn total(&self, of: impl Fn(&Progress) -> u64) -> u64 {
        self.progress.iter().map(of).sum()
    }
}

/// A worker thread's running totals, stored by it once per loop turn (not per delivery) and
/// read by the coordinator during setup and drain. A cache line of its own, so the threads'
/// stores do not contend.
#[derive(Default)]
#[repr(align(128))]
struct Progress {
    ready: AtomicU64,
    failed: AtomicU64,
    sent: AtomicU64,
    delivered: AtomicU64,
    done_sending: AtomicBool,
}

/// What one receiver has seen arrive from one member.
struct FromSender {
    next_seq: u64,
    received: u64,
}

impl Default for FromSender {
    fn default() -> Self {
        FromSender {
            next_seq: 1,
            received: 0,
        }
    }
}

/// Hashes a player ID with one multiplication: the map is looked up on every delivery, the
/// IDs come from our own server, and SipHash's protection against chosen keys buys nothing.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_i64(&mut self, id: i64) {
        self.0 = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// What one player returns at the end.
#[derive(Default)]
struct Report {
    player_id: i64,
    sent: u64,
    /// Per member of its session (itself included): what arrived from it.
    members: HashMap<i64, FromSender, BuildHasherDefault<IdHasher>>,
    reordered: u64,
    gaps: u64,
    errors: u64,
    /// Deliveries that arrived inside the measurement window.
    window_deliveries: u64,
}

/// What one worker thread returns at the end.
#[derive(Default)]
struct WorkerReport {
    /// The players still connected at the end.
    players: Vec<Report>,
    /// Players whose connection failed or ended early, and the first reason.
    disconnected: u64,
    first_failure: Option<String>,
    latencies_us: Vec<u32>,
    late_sends: u64,
    max_slip_us: u64,
}

/// A sent `updatePlayer` that starts this much after its scheduled time counts as late.
const LATE: Duration = Duration::from_millis(5);

/// Runs the scenario on `threads` worker threads (the coordinator is this thread).
pub fn run(args: FanoutArgs, threads: usize) -> Result<(), String> {
    let k = args.players.max(1);
    let m = args.sessions.max(1);
    let n = m * k;
    let per_player_rate = match args.session_rate {
        Some(total) => total / k as f64,
        None => args.rate,
    };
    if per_player_rate.is_nan() || per_player_rate <= 0.0 {
        return Err("the rate must be positive".into());
    }
    let (host, path) = ws::split_url(&args.target.url)?;
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let threads = threads.clamp(1, n);
    let shared = Shared {
        addr,
        host: host.to_string(),
        path: path.to_string(),
        players: k,
        total_players: n,
        period: Duration::from_secs_f64(1.0 / per_player_rate),
        tick: (args.pattern == Pattern::Burst).then_some(BURST_TICK),
        base: Instant::now(),
        connect_slots: AtomicUsize::new(args.connect_concurrency.max(1)),
        session_ids: (0..m).map(|_| OnceLock::new()).collect(),
        plan: OnceLock::new(),
        stop: AtomicBool::new(false),
        make_room: AtomicBool::new(false),
        room_made: AtomicBool::new(false),
        progress: (0..threads).map(|_| Progress::default()).collect(),
        deflate: args.deflate,
        payload_bytes: args.payload_bytes,
        direct: args.direct,
    };

    // Players in session order, each thread a contiguous share: with more sessions than
    // threads a session's members share a thread (one wake-up reads several of a broadcast's
    // deliveries), and one big session is split evenly.
    let mut shares: Vec<Vec<worker::PlayerSpec>> = (0..threads).map(|_| Vec::new()).collect();
    for p in 0..n {
        let (s, i) = (p / k, p % k);
        shares[p * threads / n].push(worker::PlayerSpec {
            session: s,
            creator: i == 0,
            // The schedule position: members of one session are spread evenly over the period
            // (session s's i-th player sends i/K of a period after its first), and the sessions
            // between them, so no two updates are due at once and a receiver never gets two
            // frames together: every delivery is a write of its own, as in the loopback floor.
            g: i * m + s,
            makes_room: s == 0 && i == k - 1 && k > 1,
        });
    }

    let watched = Watched::new(args.target.server_pid);
    std::thread::scope(|scope| {
        let shared = &shared;
        let workers: Vec<_> = shares
            .into_iter()
            .enumerate()
            .map(|(t, share)| {
                std::thread::Builder::new()
                    .name(format!("fanout-{t}"))
                    .spawn_scoped(scope, move || worker::run(shared, t, share))
                    .expect("a worker thread")
            })
            .collect();
        let measured = coordinate(&args, shared, &watched);
        shared.stop.store(true, Ordering::Release);
        let reports: Vec<WorkerReport> = workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| WorkerReport {
                    disconnected: 1,
                    first_failure: Some("a worker thread panicked".into()),
                    ..WorkerReport::default()
                })
            })
            .collect();
        match measured {
            Ok(window) => {
                report(&args, k, m, per_player_rate, window, reports);
                Ok(())
            }
            Err(e) => {
                let first = reports.iter().find_map(|r| r.first_failure.as_deref());
                Err(format!("{e}: {}", first.unwrap_or("none reported")))
            }
        }
    })
}

/// The measured window: its length, and the CPU seconds of the server and the generator in it.
struct Window {
    seconds: f64,
    server_cpu: f64,
    gen_cpu: f64,
    setup_s: f64,
    /// The join probes' times (µs), in order; `None` if one failed.
    joins_us: Option<Vec<u32>>,
}

/// Setup, the common start, the measured window and the drain, as seen from the coordinator.
fn coordinate(args: &FanoutArgs, shared: &Shared, watched: &Watched) -> Result<Window, String> {
    let n = shared.total_players as u64;
    // Setup: everyone connected, joined, and aware of every member of its session.
    let setup_started = Instant::now();
    let setup_deadline = setup_started + Duration::from_secs_f64(args.setup_timeout);
    loop {
        let ready = shared.total(|p| p.ready.load(Ordering::Relaxed));
        if ready == n {
            break;
        }
        let failed = shared.total(|p| p.failed.load(Ordering::Relaxed));
        if failed > 0 || Instant::now() > setup_deadline || !watched.alive() {
            return Err(format!(
                "setup failed: {ready} of {n} players ready, {failed} failed after {:.1}s",
                setup_started.elapsed().as_secs_f64()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let setup_s = setup_started.elapsed().as_secs_f64();

    let start = Instant::now() + Duration::from_millis(300);
    let base_us = |t: Instant| t.duration_since(shared.base).as_micros() as u64;
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let send_end = measure_from + Duration::from_secs_f64(args.duration);
    let _ = shared.plan.set(Plan {
        start,
        measure_from_us: base_us(measure_from),
        send_end_us: base_us(send_end),
    });

    sleep_until(measure_from);
    let start = common::Snapshot::take(watched);
    sleep_until(send_end);
    let used = start.until(&common::Snapshot::take(watched));

    // Drain: wait for every thread to stop sending, then for every delivery still on its way.
    let drain_deadline = Instant::now() + Duration::from_secs_f64(args.drain_timeout);
    while !shared
        .progress
        .iter()
        .all(|p| p.done_sending.load(Ordering::Acquire))
        && Instant::now() < drain_deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let expected = shared.total(|p| p.sent.load(Ordering::Relaxed)) * shared.players as u64;
    while shared.total(|p| p.delivered.load(Ordering::Relaxed)) < expected
        && Instant::now() < drain_deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let joins_us = join_probes(args, shared);
    Ok(Window {
        seconds: used.seconds,
        server_cpu: used.server_cpu,
        gen_cpu: used.gen_cpu,
        setup_s,
        joins_us,
    })
}

/// Runs `--join-probes` joins into the first session, one after the other, once its last
/// player has left to make room: each probe joins a session of K - 1 members (with K at the
/// session's maximum, a full one).
fn join_probes(args: &FanoutArgs, shared: &Shared) -> Option<Vec<u32>> {
    if args.join_probes == 0 || shared.players < 2 {
        return None;
    }
    let session = *shared.session_ids.first()?.get()?;
    shared.make_room.store(true, Ordering::Release);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !shared.room_made.load(Ordering::Acquire) {
        if Instant::now() > deadline {
            eprintln!("fanout: the player making room for the join probes never left");
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Its playerLeave reaches every member before the first probe joins.
    std::thread::sleep(Duration::from_millis(200));
    let mut joins = Vec::with_capacity(args.join_probes);
    for i in 0..args.join_probes {
        match join_probe::run(shared, session, shared.players - 1, i as u64) {
            Ok(took) => joins.push(took.as_micros().min(u128::from(u32::MAX)) as u32),
            Err(e) => {
                eprintln!("fanout: join probe {i} failed: {e}");
                return None;
            }
        }
        // Its leave reaches every member before the next one joins.
        std::thread::sleep(Duration::from_millis(200));
    }
    Some(joins)
}

fn sleep_until(t: Instant) {
    std::thread::sleep(t.saturating_duration_since(Instant::now()));
}

/// Merges the threads' reports and prints the result line.
fn report(
    args: &FanoutArgs,
    k: usize,
    m: usize,
    per_player_rate: f64,
    window: Window,
    workers: Vec<WorkerReport>,
) {
    let mut disconnected = 0u64;
    let mut first_failure = None;
    let (mut late_sends, mut max_slip_us) = (0, 0);
    let mut latencies = Vec::new();
    let mut reports = Vec::new();
    for w in workers {
        disconnected += w.disconnected;
        if first_failure.is_none() {
            first_failure = w.first_failure;
        }
        late_sends += w.late_sends;
        max_slip_us = w.max_slip_us.max(max_slip_us);
        latencies.extend(w.latencies_us);
        reports.extend(w.players);
    }
    if let Some(e) = &first_failure {
        eprintln!("fanout: {disconnected} players failed; first: {e}");
    }

    let sent_by: HashMap<i64, u64> = reports.iter().map(|r| (r.player_id, r.sent)).collect();
    let mut lost = 0u64;
    let mut duplicated = 0u64;
    let (mut reordered, mut gaps, mut errors, mut window_deliveries) = (0, 0, 0, 0);
    let mut delivered = 0;
    for r in &reports {
        for (sender, from) in &r.members {
            let sent = sent_by.get(sender).copied().unwrap_or(0);
            lost += sent.saturating_sub(from.received);
            duplicated += from.received.saturating_sub(sent);
            delivered += from.received;
        }
        reordered += r.reordered;
        gaps += r.gaps;
        errors += r.errors;
        window_deliveries += r.window_deliveries;
    }
    let sent: u64 = sent_by.values().sum();
    let lat = Percentiles::new(latencies);
    let (window_s, server_cpu, gen_cpu) = (window.seconds, window.server_cpu, window.gen_cpu);
    let deliveries_per_s = window_deliveries as f64 / window_s;
    let offered = (m * k * k) as f64 * per_player_rate;
    let p99_ok = f64::from(lat.at(0.99)) < args.p99_limit_ms * 1000.0;
    let sustained = lost == 0
        && duplicated == 0
        && reordered == 0
        && errors == 0
        && disconnected == 0
        && lat.count() > 0
        && p99_ok
        && deliveries_per_s >= 0.95 * offered;
    let mut line = ResultLine::new(&args.scenario, &args.target.server);
    line.put("sessions", m)
        .put("players", k)
        .num("rate", per_player_rate, 3)
        .num("offered_per_s", offered, 0)
        .put("sent", sent)
        .put("delivered", delivered)
        .put("expected", sent * k as u64)
        .put("lost", lost)
        .put("duplicated", duplicated)
        .put("reordered", reordered)
        .put("gaps", gaps)
        .put("errors", errors)
        .put("disconnected", disconnected)
        .put("samples", lat.count())
        .put("p50_us", lat.at(0.50))
        .put("p99_us", lat.at(0.99))
        .put("p999_us", lat.at(0.999))
        .put("max_us", lat.max())
        .num("deliveries_per_s", deliveries_per_s, 0)
        .window_and_cpu(window_s, gen_cpu, server_cpu)
        .num(
            "cpu_us_per_delivery",
            common::ratio(server_cpu * 1e6, window_deliveries as f64),
            2,
        )
        .num(
            "gen_cpu_us_per_delivery",
            common::ratio(gen_cpu * 1e6, window_deliveries as f64),
            2,
        )
        .put("late_sends", late_sends)
        .put("max_slip_us", max_slip_us)
        .num("setup_s", window.setup_s, 1)
        .put(
            "pattern",
            match args.pattern {
                Pattern::Even => "even",
                Pattern::Burst => "burst",
            },
        );
    if args.join_probes > 0 {
        match &window.joins_us {
            Some(joins) => {
                let all: Vec<String> = joins.iter().map(u32::to_string).collect();
                let joins = Percentiles::new(joins.clone());
                line.put("join_probes", joins.count())
                    .put("join_p50_us", joins.at(0.5))
                    .put("join_max_us", joins.max())
                    .put("join_runs_us", all.join(","));
            }
            None => {
                line.put("join_probes", 0)
                    .put("join_p50_us", "NA")
                    .put("join_max_us", "NA");
            }
        }
    }
    line.put("sustained", if sustained { "yes" } else { "no" })
        .put("deflate", if args.deflate { "on" } else { "off" })
        .put("payload_bytes", args.payload_bytes);
    line.print();
}
