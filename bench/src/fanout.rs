//! Fan-out: M sessions of K players, each player sending `updatePlayer` on a fixed schedule
//! (open loop), every member checking loss and per-sender order and timing each delivery.
//!
//! Player i of session s sends at (i·M + s)/(M·K) of its period after the start, and then once
//! per period: the updates of all players are evenly spread in time.
//!
//! Each update carries `{"seq":N,"t":T}`: N counts the sender's updates from 1, T is the send
//! time in µs since one `Instant` shared by every client of this process. A delivery's latency
//! is its arrival time minus T. The send times follow a schedule that does not wait for
//! replies; a send that starts late is counted (`late_sends`, `max_slip_us`), so a reader can
//! tell when the generator could not keep the offered rate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::common::{self, Percentiles, ResultLine, Target, Watched, Ws};

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
}

/// When to send, fixed once everyone is ready.
#[derive(Clone, Copy)]
struct Plan {
    start: Instant,
    /// Latencies of updates sent from here on are recorded (µs since `base`).
    measure_from_us: u64,
    /// No update is sent from here on (µs since `base`).
    send_end_us: u64,
}

struct Shared {
    url: String,
    players: usize,
    total_players: usize,
    period: Duration,
    base: Instant,
    connect_limit: Semaphore,
    ready: AtomicUsize,
    failed: AtomicUsize,
    done_sending: AtomicUsize,
    sent: AtomicU64,
    delivered: AtomicU64,
    plan: watch::Receiver<Option<Plan>>,
    stop: watch::Receiver<bool>,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }
}

/// What one receiver has seen arrive from one member.
struct FromSender {
    next_seq: u64,
    received: u64,
}

/// What one player returns at the end.
#[derive(Default)]
struct Report {
    player_id: i64,
    sent: u64,
    /// Per member of its session (itself included): what arrived from it.
    members: HashMap<i64, FromSender>,
    reordered: u64,
    gaps: u64,
    errors: u64,
    /// Deliveries that arrived inside the measurement window.
    window_deliveries: u64,
    latencies_us: Vec<u32>,
    late_sends: u64,
    max_slip_us: u64,
}

enum Role {
    Creator(watch::Sender<Option<i64>>),
    Joiner(watch::Receiver<Option<i64>>),
}

/// A sent `updatePlayer` that starts this much after its scheduled time counts as late.
const LATE: Duration = Duration::from_millis(5);

pub async fn run(args: FanoutArgs) -> Result<(), String> {
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
    let watched = Watched::new(args.target.server_pid);
    let (plan_tx, plan_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        url: args.target.url.clone(),
        players: k,
        total_players: n,
        period: Duration::from_secs_f64(1.0 / per_player_rate),
        base: Instant::now(),
        connect_limit: Semaphore::new(args.connect_concurrency.max(1)),
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        done_sending: AtomicUsize::new(0),
        sent: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        plan: plan_rx,
        stop: stop_rx,
    });

    let setup_started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for s in 0..m {
        let (id_tx, id_rx) = watch::channel(None);
        let mut role = Some(Role::Creator(id_tx));
        for i in 0..k {
            // The schedule position: members of one session are spread evenly over the period
            // (session s's i-th player sends i/K of a period after its first), and the sessions
            // between them, so no two updates are due at once and a receiver never gets two
            // frames together: every delivery is a write of its own, as in the loopback floor.
            let g = i * m + s;
            let this_role = role.take().unwrap_or_else(|| Role::Joiner(id_rx.clone()));
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                let result = player(&shared, g, this_role).await;
                if result.is_err() {
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                }
                result
            }));
        }
    }

    // Setup: everyone connected, joined, and aware of every member of its session.
    let setup_deadline = Instant::now() + Duration::from_secs_f64(args.setup_timeout);
    loop {
        let ready = shared.ready.load(Ordering::Relaxed);
        if ready == n {
            break;
        }
        let failed = shared.failed.load(Ordering::Relaxed);
        if failed > 0 || Instant::now() > setup_deadline || !watched.alive() {
            let _ = stop_tx.send(true);
            let first_error = first_error(tasks).await;
            return Err(format!(
                "setup failed: {ready} of {n} players ready, {failed} failed after {:.1}s: {first_error}",
                setup_started.elapsed().as_secs_f64()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let setup_s = setup_started.elapsed().as_secs_f64();

    let start = Instant::now() + Duration::from_millis(300);
    let base_us = |t: Instant| t.duration_since(shared.base).as_micros() as u64;
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let send_end = measure_from + Duration::from_secs_f64(args.duration);
    let _ = plan_tx.send(Some(Plan {
        start,
        measure_from_us: base_us(measure_from),
        send_end_us: base_us(send_end),
    }));

    tokio::time::sleep_until(measure_from.into()).await;
    let (server0, gen0, t0) = (watched.cpu(), common::own_cpu(), Instant::now());
    tokio::time::sleep_until(send_end.into()).await;
    let (server1, gen1, t1) = (watched.cpu(), common::own_cpu(), Instant::now());
    let window_s = (t1 - t0).as_secs_f64();

    // Drain: wait for every sender to stop, then for every delivery still on its way.
    let drain_deadline = Instant::now() + Duration::from_secs_f64(args.drain_timeout);
    while shared.done_sending.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed) < n
        && Instant::now() < drain_deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let expected = shared.sent.load(Ordering::Relaxed) * k as u64;
    while shared.delivered.load(Ordering::Relaxed) < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop_tx.send(true);

    let mut reports = Vec::with_capacity(n);
    let mut disconnected = 0u64;
    let mut first_failure = None;
    for task in tasks {
        match task.await {
            Ok(Ok(report)) => reports.push(report),
            Ok(Err(e)) => {
                disconnected += 1;
                first_failure.get_or_insert(e);
            }
            Err(e) => {
                disconnected += 1;
                first_failure.get_or_insert(e.to_string());
            }
        }
    }
    if let Some(e) = &first_failure {
        eprintln!("fanout: {disconnected} players failed; first: {e}");
    }

    let sent_by: HashMap<i64, u64> = reports.iter().map(|r| (r.player_id, r.sent)).collect();
    let mut lost = 0u64;
    let mut duplicated = 0u64;
    let (mut reordered, mut gaps, mut errors, mut window_deliveries) = (0, 0, 0, 0);
    let (mut late_sends, mut max_slip_us, mut delivered) = (0, 0, 0);
    let mut latencies = Vec::new();
    for r in &mut reports {
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
        late_sends += r.late_sends;
        max_slip_us = max_slip_us.max(r.max_slip_us);
        latencies.append(&mut r.latencies_us);
    }
    let sent: u64 = sent_by.values().sum();
    let lat = Percentiles::new(latencies);
    let server_cpu = match (server0, server1) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    let gen_cpu = gen1 - gen0;
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
        .num("setup_s", setup_s, 1)
        .put("sustained", if sustained { "yes" } else { "no" });
    line.print();
    Ok(())
}

async fn first_error(tasks: Vec<tokio::task::JoinHandle<Result<Report, String>>>) -> String {
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(Err(e))) => return e,
            Ok(Err(e)) => return e.to_string(),
            Ok(Ok(Ok(_))) => {}
            Err(_) => return "a player did not stop".into(),
        }
    }
    "none reported".into()
}

struct Player<'a> {
    shared: &'a Shared,
    ws: Ws,
    report: Report,
    plan: Option<Plan>,
}

/// One player from connect to close.
async fn player(shared: &Shared, g: usize, role: Role) -> Result<Report, String> {
    let session_id = match &role {
        Role::Creator(_) => None,
        Role::Joiner(rx) => {
            let mut rx = rx.clone();
            let id = rx
                .wait_for(Option::is_some)
                .await
                .map_err(|_| "the session's creator failed".to_string())?;
            *id
        }
    };
    let permit = shared
        .connect_limit
        .acquire()
        .await
        .map_err(|e| e.to_string())?;
    let ws = common::connect(&shared.url, Duration::from_secs(30))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut p = Player {
        shared,
        ws,
        report: Report::default(),
        plan: None,
    };
    let command = match session_id {
        None => r#"{"command":"createSession","session":{},"player":{"seq":0,"t":0}}"#.to_string(),
        Some(id) => format!(r#"{{"command":"joinSession","sessionID":{id}}}"#),
    };
    p.send(command).await?;
    let (player_id, session) = p.await_join().await?;
    drop(permit);
    p.report.player_id = player_id;
    p.report.members.insert(player_id, FromSender::default());
    if let Role::Creator(tx) = role {
        let _ = tx.send(Some(session));
    }

    // Everyone else in the session, then the common start.
    let mut plan_rx = shared.plan.clone();
    let mut stop = shared.stop.clone();
    while p.report.members.len() < shared.players {
        let text = p.next_text().await?;
        p.on_frame(&text);
    }
    shared.ready.fetch_add(1, Ordering::Relaxed);
    let plan = {
        let wait_plan = plan_rx.wait_for(Option::is_some);
        tokio::pin!(wait_plan);
        loop {
            tokio::select! {
                plan = &mut wait_plan => break plan.map_err(|_| "no plan".to_string())?.unwrap(),
                _ = stop.changed() => return Err("stopped during setup".into()),
                text = p.next_text() => { let text = text?; p.on_frame(&text); }
            }
        }
    };
    p.plan = Some(plan);
    let result = p.run(g, plan, &mut stop).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), p.ws.close(None)).await;
    result.map(|()| p.report)
}

impl Default for FromSender {
    fn default() -> Self {
        FromSender {
            next_seq: 1,
            received: 0,
        }
    }
}

impl Player<'_> {
    async fn send(&mut self, text: String) -> Result<(), String> {
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| format!("send: {e}"))
    }

    /// The next text frame; the connection's end is an error (the server closed it).
    async fn next_text(&mut self) -> Result<Utf8Bytes, String> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => return Ok(text),
                Some(Ok(Message::Close(close))) => {
                    return Err(format!("closed by the server: {close:?}"))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("receive: {e}")),
                None => return Err("connection ended".into()),
            }
        }
    }

    async fn await_join(&mut self) -> Result<(i64, i64), String> {
        loop {
            let text = self.next_text().await?;
            if common::command_of(&text) == "sessionJoin" {
                if common::int_field(&text, "\"error\":") != Some(0) {
                    return Err(format!("join refused: {text}"));
                }
                let player = common::int_field(&text, "\"playerID\":").ok_or("no playerID")?;
                let session = common::int_field(&text, "\"sessionID\":").ok_or("no sessionID")?;
                return Ok((player, session));
            }
            self.on_frame(&text);
        }
    }

    /// Sends on schedule and receives until the coordinator says stop.
    async fn run(
        &mut self,
        g: usize,
        plan: Plan,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let shared = self.shared;
        let period = shared.period;
        let offset = period.mul_f64(g as f64 / shared.total_players as f64);
        let send_end = shared.base + Duration::from_micros(plan.send_end_us);
        let mut next = plan.start + offset;
        let mut seq = 0u64;
        let mut sending = next < send_end;
        if !sending {
            shared.done_sending.fetch_add(1, Ordering::Relaxed);
        }
        let sleep = tokio::time::sleep_until(next.into());
        tokio::pin!(sleep);
        // Sending phase: no stop future here, so a delivery costs no extra waker registration.
        while sending {
            tokio::select! {
                biased;
                () = &mut sleep => {
                    let now = Instant::now();
                    let slip = now.saturating_duration_since(next);
                    if slip > LATE {
                        self.report.late_sends += 1;
                    }
                    self.report.max_slip_us = self.report.max_slip_us.max(slip.as_micros() as u64);
                    seq += 1;
                    let t = now.duration_since(shared.base).as_micros() as u64;
                    self.send(format!(
                        r#"{{"command":"updatePlayer","player":{{"seq":{seq},"t":{t}}}}}"#
                    ))
                    .await?;
                    self.report.sent += 1;
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                    next += period;
                    if next >= send_end {
                        sending = false;
                        shared.done_sending.fetch_add(1, Ordering::Relaxed);
                    } else {
                        sleep.as_mut().reset(next.into());
                    }
                }
                text = self.next_text() => {
                    let text = text?;
                    self.on_frame(&text);
                }
            }
        }
        let stopped = stop.wait_for(|stop| *stop);
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                _ = &mut stopped => return Ok(()),
                text = self.next_text() => {
                    let text = text?;
                    self.on_frame(&text);
                }
            }
        }
    }

    fn on_frame(&mut self, text: &str) {
        let report = &mut self.report;
        match common::command_of(text) {
            "playerUpdate" => {
                let now_us = self.shared.now_us();
                let fields = (
                    common::int_field(text, "\"error\":"),
                    common::int_field(text, "\"playerID\":"),
                    common::int_field(text, "\"seq\":"),
                    common::int_field(text, "\"t\":"),
                );
                let (Some(0), Some(sender), Some(seq), Some(t)) = fields else {
                    report.errors += 1;
                    return;
                };
                let from = report.members.entry(sender).or_default();
                let seq = seq as u64;
                if seq == from.next_seq {
                    from.next_seq += 1;
                } else if seq > from.next_seq {
                    report.gaps += seq - from.next_seq;
                    from.next_seq = seq + 1;
                } else {
                    report.reordered += 1;
                }
                from.received += 1;
                self.shared.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(plan) = &self.plan {
                    let t = t as u64;
                    if now_us >= plan.measure_from_us && now_us < plan.send_end_us {
                        report.window_deliveries += 1;
                    }
                    if t >= plan.measure_from_us && t < plan.send_end_us {
                        let latency = now_us.saturating_sub(t);
                        report
                            .latencies_us
                            .push(latency.min(u64::from(u32::MAX)) as u32);
                    }
                }
            }
            "playerJoin" => {
                if let Some(id) = common::int_field(text, "\"playerID\":") {
                    report.members.entry(id).or_default();
                }
            }
            "playerLeave" => {}
            _ => report.errors += 1,
        }
    }
}
