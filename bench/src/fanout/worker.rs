//! One worker thread of the fan-out: a fixed share of the players, all their sockets in one
//! epoll set, all their sends on one timeline.
//!
//! Why a hand-written loop and not tokio: with a task and a timer per player, every send and
//! every delivery was a task wake-up, often across threads, and the generator cost more CPU per
//! delivery than the server it measured. Here a thread sleeps in `epoll_pwait2` until its next
//! scheduled send or a readable socket, reads each ready socket once into one reused buffer,
//! and handles every frame in it. Its sends need no timers: all players share one period, so
//! sorted by schedule position they come due in a fixed cyclic order (a cursor, no heap).
//! Counters stay thread-local and are published once per loop turn.
//!
//! A player goes through: queued → connecting and upgrading (HTTP 101) → joining (create or
//! join, wait for `sessionJoin`) → gathering (until it knows every member) → ready. Joiners of
//! a session start only once its creator (maybe on another thread) has its ID.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode;

use super::{Plan, Progress, Report, Shared, WorkerReport, LATE};
use crate::common::{self, Field};
use crate::epoll::{self, Epoll, Event, ReadEnd};
use crate::ws::{self, Xorshift};

/// One player to drive: its session, whether it creates it, its schedule position.
#[derive(Clone, Copy, Debug)]
pub struct PlayerSpec {
    pub session: usize,
    pub creator: bool,
    pub g: usize,
    /// The last player of the first session: it leaves before the join probes, to make room
    /// for them in a session at its maximum.
    pub makes_room: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Queued,
    Upgrading,
    Joining,
    Gathering,
    Ready,
    /// Left its session (asked by the coordinator, after the run) to make room for the join
    /// probes; its report stands.
    Leaving,
    Left,
    /// The connection failed or ended; the player is out of the run.
    Gone,
}

struct Player {
    spec: PlayerSpec,
    state: State,
    /// Counted: the read loop holds it while the frames it read are handled.
    stream: Option<Rc<TcpStream>>,
    /// It holds one of the `--connect-concurrency` slots (from connecting until joined).
    holds_slot: bool,
    /// Received bytes of a frame not complete yet (usually empty).
    partial: Vec<u8>,
    /// Bytes the socket did not take yet (usually empty; then EPOLLOUT is watched).
    unsent: Vec<u8>,
    next_send: Instant,
    report: Report,
    /// The server agreed to permessage-deflate (`--deflate`).
    deflate: bool,
}

/// The thread's counters, merged by the coordinator at the end.
#[derive(Default)]
struct Tally {
    ready: u64,
    failed: u64,
    sent: u64,
    delivered: u64,
    late_sends: u64,
    max_slip_us: u64,
    latencies_us: Vec<u32>,
    first_failure: Option<String>,
}

/// The fields of an update, their searchers built once.
struct UpdateFields {
    error: Field,
    player_id: Field,
    seq: Field,
    t: Field,
}

static UPDATE: LazyLock<UpdateFields> = LazyLock::new(|| UpdateFields {
    error: Field::new("\"error\":"),
    player_id: Field::new("\"playerID\":"),
    seq: Field::new("\"seq\":"),
    t: Field::new("\"t\":"),
});

/// Bytes asked for per read: many deliveries of ~100 bytes fit.
const READ_SIZE: usize = 64 << 10;
/// Ready sockets handled per wait.
const MAX_EVENTS: usize = 256;
/// How long to wait with nothing scheduled: in setup, for other threads' session IDs and the
/// plan; after sending, for the coordinator's stop.
const SETUP_POLL: Duration = Duration::from_millis(1);
const IDLE_POLL: Duration = Duration::from_millis(5);

struct Worker<'a> {
    shared: &'a Shared,
    progress: &'a Progress,
    epoll: Epoll,
    events: Vec<Event>,
    players: Vec<Player>,
    /// Players not connected yet, in session order (each creator before its joiners).
    queued: VecDeque<usize>,
    plan: Option<Plan>,
    /// Players in the order their sends come due, and the next one.
    schedule: Vec<usize>,
    cursor: usize,
    sending: bool,
    send_end: Instant,
    /// Reused buffers: what is read (always initialized, never zeroed again), an update's
    /// JSON, a frame being sent.
    read_buf: Vec<u8>,
    payload: Vec<u8>,
    frame: Vec<u8>,
    rng: Xorshift,
    tally: Tally,
    /// With `--deflate`: for the frames that come compressed (taken out while one is handled).
    inflater: Option<ws::Inflater>,
}

/// Drives `share` from setup to the coordinator's stop.
pub fn run(shared: &Shared, index: usize, share: Vec<PlayerSpec>) -> WorkerReport {
    let epoll = match Epoll::new(MAX_EVENTS) {
        Ok(epoll) => epoll,
        Err(e) => {
            shared.progress[index].failed.store(1, Ordering::Relaxed);
            return WorkerReport {
                disconnected: share.len() as u64,
                first_failure: Some(format!("epoll: {e}")),
                ..WorkerReport::default()
            };
        }
    };
    let seed = shared.base.elapsed().as_nanos() as u64 ^ (index as u64 + 1) << 48;
    let mut w = Worker {
        shared,
        progress: &shared.progress[index],
        epoll,
        events: Vec::with_capacity(MAX_EVENTS),
        queued: (0..share.len()).collect(),
        players: share
            .into_iter()
            .map(|spec| Player {
                spec,
                state: State::Queued,
                stream: None,
                holds_slot: false,
                partial: Vec::new(),
                unsent: Vec::new(),
                next_send: shared.base,
                report: Report::default(),
                deflate: false,
            })
            .collect(),
        plan: None,
        schedule: Vec::new(),
        cursor: 0,
        sending: false,
        send_end: shared.base,
        read_buf: vec![0; READ_SIZE],
        payload: Vec::with_capacity(128),
        frame: Vec::with_capacity(128),
        rng: Xorshift::new(seed),
        tally: Tally::default(),
        inflater: shared.deflate.then(ws::Inflater::default),
    };
    w.run();
    w.finish()
}

impl Worker<'_> {
    fn run(&mut self) {
        loop {
            if self.plan.is_none() {
                self.start_queued();
                if let Some(plan) = self.shared.plan.get() {
                    self.begin(*plan);
                }
            }
            let next_send = self.send_due();
            if self.shared.make_room.load(Ordering::Acquire) {
                self.make_room();
            }
            self.publish();
            if self.shared.stop.load(Ordering::Acquire) {
                return;
            }
            let timeout = match next_send {
                Some(due) => due.saturating_duration_since(Instant::now()),
                None if self.plan.is_none() => SETUP_POLL,
                None => IDLE_POLL,
            };
            if let Err(e) = self.epoll.wait(&mut self.events, timeout) {
                self.tally
                    .first_failure
                    .get_or_insert(format!("epoll: {e}"));
                self.tally.failed += 1;
                self.publish();
                return;
            }
            for i in 0..self.events.len() {
                let Event { token, events } = self.events[i];
                let idx = token as usize;
                if events & epoll::EPOLLOUT as u32 != 0 {
                    if let Err(e) = self.flush_unsent(idx) {
                        self.fail(idx, e);
                    }
                }
                let readable = (epoll::EPOLLIN | epoll::EPOLLHUP | epoll::EPOLLERR) as u32;
                if events & readable != 0 {
                    self.on_readable(idx, events);
                }
            }
        }
    }

    /// Connects as many queued players as the shared connect slots allow; a joiner waits for
    /// its session's ID.
    fn start_queued(&mut self) {
        while let Some(&idx) = self.queued.front() {
            let spec = self.players[idx].spec;
            if !spec.creator && self.shared.session_ids[spec.session].get().is_none() {
                return;
            }
            if !self.shared.take_connect_slot() {
                return;
            }
            self.queued.pop_front();
            self.players[idx].holds_slot = true;
            if let Err(e) = self.connect(idx) {
                self.fail(idx, format!("connect: {e}"));
            }
        }
    }

    fn connect(&mut self, idx: usize) -> io::Result<()> {
        // A blocking connect: on loopback it completes at once, and only during setup.
        let stream = TcpStream::connect_timeout(&self.shared.addr, Duration::from_secs(30))?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        self.epoll
            .add(stream.as_raw_fd(), epoll::EPOLLIN, idx as u64)?;
        let offer = self.shared.deflate.then_some(ws::DEFLATE_OFFER);
        let spec = self.players[idx].spec;
        let path = match (self.shared.direct, spec.creator) {
            (false, _) => self.shared.path.clone(),
            (true, true) => format!("{}session/new", self.shared.path),
            (true, false) => match self.shared.session_ids[spec.session].get() {
                Some(id) => format!("{}session/{id}", self.shared.path),
                None => return Err(io::Error::other("joining before the session exists")),
            },
        };
        let request = ws::upgrade_request_with(&self.shared.host, &path, &mut self.rng, offer);
        // A fresh socket's send buffer takes a ~200-byte request whole.
        (&stream).write_all(request.as_bytes())?;
        let p = &mut self.players[idx];
        p.stream = Some(Rc::new(stream));
        p.state = State::Upgrading;
        Ok(())
    }

    /// The coordinator asked for room in the first session: its last player leaves (once).
    fn make_room(&mut self) {
        let Some(idx) = self
            .players
            .iter()
            .position(|p| p.spec.makes_room && p.state == State::Ready)
        else {
            return;
        };
        self.players[idx].state = State::Leaving;
        let leave = br#"{"command":"leaveSession"}"#;
        if let Err(e) = self.send_frame(idx, ws::OP_TEXT, leave) {
            self.fail(idx, e);
        }
    }

    /// Everyone is ready: the send times are fixed.
    fn begin(&mut self, plan: Plan) {
        let shared = self.shared;
        self.plan = Some(plan);
        self.send_end = shared.base + Duration::from_micros(plan.send_end_us);
        let n = shared.total_players as f64;
        for p in &mut self.players {
            p.next_send = plan.start + shared.period.mul_f64(p.spec.g as f64 / n);
        }
        self.schedule = (0..self.players.len()).collect();
        self.schedule.sort_by_key(|&idx| self.players[idx].spec.g);
        self.sending = !self.schedule.is_empty();
    }

    /// When a send due at `due` goes out: then, or at the first tick at or after it
    /// ([`super::Pattern::Burst`]; ticks counted from the plan's start).
    fn on_tick(&self, due: Instant) -> Instant {
        match (self.shared.tick, &self.plan) {
            (Some(tick), Some(plan)) => tick_at_or_after(plan.start, due, tick),
            _ => due,
        }
    }

    /// Sends every update that is due; the time of the next one while sending.
    ///
    /// All players have the same period and an offset within it, so taken in order of offset
    /// their send times never decrease round after round: the first one at or past the end
    /// means everyone is done.
    fn send_due(&mut self) -> Option<Instant> {
        while self.sending {
            let idx = self.schedule[self.cursor];
            let due = self.players[idx].next_send;
            if due >= self.send_end {
                self.sending = false;
                // The final count first: once it sees `done_sending`, the coordinator reads
                // `sent` to know how many deliveries to wait for.
                self.publish();
                self.progress.done_sending.store(true, Ordering::Release);
                return None;
            }
            // In the burst pattern a send waits for the next tick: all due in it go together.
            let fire = self.on_tick(due);
            let now = Instant::now();
            if now < fire {
                return Some(fire);
            }
            self.cursor = (self.cursor + 1) % self.schedule.len();
            self.players[idx].next_send = due + self.shared.period;
            if self.players[idx].state == State::Gone {
                continue;
            }
            let slip = now - fire;
            if slip > LATE {
                self.tally.late_sends += 1;
            }
            self.tally.max_slip_us = self.tally.max_slip_us.max(slip.as_micros() as u64);
            let seq = self.players[idx].report.sent + 1;
            let t = now.duration_since(self.shared.base).as_micros() as u64;
            let mut payload = std::mem::take(&mut self.payload);
            payload.clear();
            let _ = write!(
                payload,
                r#"{{"command":"updatePlayer","player":{{"seq":{seq},"t":{t}"#
            );
            self.pad(&mut payload);
            payload.extend_from_slice(b"}}");
            let result = self.send_frame(idx, ws::OP_TEXT, &payload);
            self.payload = payload;
            match result {
                Ok(()) => {
                    self.players[idx].report.sent += 1;
                    self.tally.sent += 1;
                }
                Err(e) => self.fail(idx, e),
            }
        }
        if self.plan.is_some() && self.schedule.is_empty() {
            self.progress.done_sending.store(true, Ordering::Release);
        }
        None
    }

    /// `--payload-bytes`: `,"pad":[…]` of entities with random positions and health, until the
    /// server's `playerUpdate` (about 25 bytes longer than the command) is that long.
    fn pad(&mut self, payload: &mut Vec<u8>) {
        let want = self.shared.payload_bytes.saturating_sub(27);
        if want <= payload.len() {
            if self.shared.payload_bytes > 0 {
                payload.extend_from_slice(br#","pad":[]"#);
            }
            return;
        }
        payload.extend_from_slice(br#","pad":["#);
        // Room for the closing bracket.
        ws::push_entities(payload, &mut self.rng, want.saturating_sub(1));
        payload.push(b']');
    }

    fn publish(&self) {
        let (p, t) = (self.progress, &self.tally);
        p.ready.store(t.ready, Ordering::Relaxed);
        p.failed.store(t.failed, Ordering::Relaxed);
        p.sent.store(t.sent, Ordering::Relaxed);
        p.delivered.store(t.delivered, Ordering::Relaxed);
    }

    /// One masked frame, written at once; what the socket does not take waits for EPOLLOUT.
    fn send_frame(&mut self, idx: usize, opcode: OpCode, payload: &[u8]) -> Result<(), String> {
        self.frame.clear();
        ws::put_client_frame(&mut self.frame, opcode, payload, self.rng.mask());
        let p = &mut self.players[idx];
        let Some(stream) = &p.stream else {
            return Ok(());
        };
        if !p.unsent.is_empty() {
            p.unsent.extend_from_slice(&self.frame);
            return Ok(());
        }
        let written = match (&**stream).write(&self.frame) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                0
            }
            Err(e) => return Err(format!("send: {e}")),
        };
        if written < self.frame.len() {
            p.unsent.extend_from_slice(&self.frame[written..]);
            let interest = epoll::EPOLLIN | epoll::EPOLLOUT;
            self.epoll
                .modify(stream.as_raw_fd(), interest, idx as u64)
                .map_err(|e| format!("epoll: {e}"))?;
        }
        Ok(())
    }

    fn flush_unsent(&mut self, idx: usize) -> Result<(), String> {
        let p = &mut self.players[idx];
        let Some(stream) = &p.stream else {
            return Ok(());
        };
        while !p.unsent.is_empty() {
            match (&**stream).write(&p.unsent) {
                Ok(n) => {
                    p.unsent.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("send: {e}")),
            }
        }
        self.epoll
            .modify(stream.as_raw_fd(), epoll::EPOLLIN, idx as u64)
            .map_err(|e| format!("epoll: {e}"))
    }

    fn on_readable(&mut self, idx: usize, events: u32) {
        // Shared with the frames' handling, which may answer on the same socket.
        let Some(stream) = self.players[idx].stream.clone() else {
            return;
        };
        // Taken out while frames borrowed from them are handled with `&mut self`.
        let mut buf = std::mem::take(&mut self.read_buf);
        let mut partial = std::mem::take(&mut self.players[idx].partial);
        let result = epoll::read_ready(
            &stream,
            events,
            &mut buf,
            &mut partial,
            READ_SIZE,
            |bytes| {
                // One arrival time per read: every frame in it arrived together.
                let now_us = self.shared.now_us();
                self.handle_bytes(idx, bytes, now_us)
            },
        );
        self.read_buf = buf;
        self.players[idx].partial = partial;
        match result {
            Ok(ReadEnd::Drained) => {}
            Ok(ReadEnd::Fin) => self.fail(idx, "connection ended".into()),
            Ok(ReadEnd::Failed(e)) => self.fail(idx, format!("receive: {e}")),
            Err(e) => self.fail(idx, e),
        }
    }

    /// Handles the complete frames at the start of `bytes` (after the upgrade response, while
    /// upgrading); returns how many bytes were used.
    fn handle_bytes(&mut self, idx: usize, bytes: &[u8], now_us: u64) -> Result<usize, String> {
        let mut pos = 0;
        if self.players[idx].state == State::Upgrading {
            let Some(end) = ws::upgrade_response(bytes)? else {
                return Ok(0);
            };
            pos = end;
            self.players[idx].deflate = self.shared.deflate
                && memchr::memmem::find(&bytes[..end], b"permessage-deflate").is_some();
            self.send_join(idx)?;
        }
        let deflate = self.players[idx].deflate;
        while let Some((frame, used)) = ws::parse_frame_deflate(&bytes[pos..], deflate)? {
            pos += used;
            match frame.opcode {
                ws::OP_TEXT if frame.compressed => {
                    let mut inflater = self.inflater.take().ok_or("compressed, not agreed")?;
                    let result = match inflater.inflate(frame.payload) {
                        Ok(text) => match std::str::from_utf8(text) {
                            Ok(text) => self.on_text(idx, text, now_us),
                            Err(_) => {
                                self.players[idx].report.errors += 1;
                                Ok(())
                            }
                        },
                        Err(e) => Err(e),
                    };
                    self.inflater = Some(inflater);
                    result?;
                }
                ws::OP_TEXT => match std::str::from_utf8(frame.payload) {
                    Ok(text) => self.on_text(idx, text, now_us)?,
                    Err(_) => self.players[idx].report.errors += 1,
                },
                ws::OP_PING => self.send_frame(idx, ws::OP_PONG, frame.payload)?,
                ws::OP_CLOSE => {
                    let code = frame
                        .payload
                        .get(..2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]));
                    let reason = String::from_utf8_lossy(frame.payload.get(2..).unwrap_or(&[]));
                    return Err(format!("closed by the server: {code:?} {reason}"));
                }
                _ => {}
            }
        }
        Ok(pos)
    }

    /// Upgraded: create the session, or join the one its creator made.
    fn send_join(&mut self, idx: usize) -> Result<(), String> {
        let spec = self.players[idx].spec;
        self.players[idx].state = State::Joining;
        let command = if spec.creator {
            let pad = if self.shared.payload_bytes > 0 {
                r#","pad":[]"#
            } else {
                ""
            };
            format!(
                r#"{{"command":"createSession","session":{{}},"player":{{"seq":0,"t":0{pad}}}}}"#
            )
        } else {
            let id = self.shared.session_ids[spec.session]
                .get()
                .ok_or("joining before the session exists")?;
            format!(r#"{{"command":"joinSession","sessionID":{id}}}"#)
        };
        self.send_frame(idx, ws::OP_TEXT, command.as_bytes())
    }

    fn on_text(&mut self, idx: usize, text: &str, now_us: u64) -> Result<(), String> {
        let state = self.players[idx].state;
        if state == State::Leaving && common::command_of(text) == "sessionLeave" {
            self.players[idx].state = State::Left;
            self.shared.room_made.store(true, Ordering::Release);
            return Ok(());
        }
        if state == State::Joining && common::command_of(text) == "sessionJoin" {
            if common::int_field(text, "\"error\":") != Some(0) {
                return Err(format!("join refused: {text}"));
            }
            let player = common::int_field(text, "\"playerID\":").ok_or("no playerID")?;
            let session = common::int_field(text, "\"sessionID\":").ok_or("no sessionID")?;
            let p = &mut self.players[idx];
            p.report.player_id = player;
            p.report.members.insert(player, Default::default());
            p.state = State::Gathering;
            if p.holds_slot {
                p.holds_slot = false;
                self.shared.give_back_connect_slot();
            }
            if p.spec.creator {
                let _ = self.shared.session_ids[p.spec.session].set(session);
            }
        } else {
            self.on_frame(idx, text, now_us);
        }
        let p = &mut self.players[idx];
        if p.state == State::Gathering && p.report.members.len() >= self.shared.players {
            p.state = State::Ready;
            self.tally.ready += 1;
        }
        Ok(())
    }

    /// A frame other than the answer to the join: an update (checked and timed), a member.
    fn on_frame(&mut self, idx: usize, text: &str, now_us: u64) {
        let report = &mut self.players[idx].report;
        match common::command_of(text) {
            "playerUpdate" => {
                let f = &*UPDATE;
                let fields = (
                    f.error.int_in(text),
                    f.player_id.int_in(text),
                    f.seq.int_in(text),
                    f.t.int_in(text),
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
                self.tally.delivered += 1;
                if let Some(plan) = &self.plan {
                    let t = t as u64;
                    if now_us >= plan.measure_from_us && now_us < plan.send_end_us {
                        report.window_deliveries += 1;
                    }
                    if t >= plan.measure_from_us && t < plan.send_end_us {
                        let latency = now_us.saturating_sub(t);
                        self.tally
                            .latencies_us
                            .push(latency.min(u64::from(u32::MAX)) as u32);
                    }
                }
            }
            "playerJoin" => {
                if let Some(id) = UPDATE.player_id.int_in(text) {
                    report.members.entry(id).or_default();
                }
            }
            "playerLeave" => {}
            _ => report.errors += 1,
        }
    }

    /// The player is out of the run: its socket is closed (which also takes it out of epoll).
    fn fail(&mut self, idx: usize, reason: String) {
        let p = &mut self.players[idx];
        if p.state == State::Gone {
            return;
        }
        p.state = State::Gone;
        p.stream = None;
        if p.holds_slot {
            p.holds_slot = false;
            self.shared.give_back_connect_slot();
        }
        self.tally.failed += 1;
        self.tally.first_failure.get_or_insert(reason);
    }

    /// Says goodbye (a close frame, then the socket's FIN) and hands over the reports.
    fn finish(mut self) -> WorkerReport {
        let close = 1000u16.to_be_bytes();
        for idx in 0..self.players.len() {
            if self.players[idx].stream.is_some() {
                let _ = self.send_frame(idx, ws::OP_CLOSE, &close);
                self.players[idx].stream = None;
            }
        }
        let mut report = WorkerReport {
            disconnected: self.tally.failed,
            first_failure: self.tally.first_failure,
            latencies_us: self.tally.latencies_us,
            late_sends: self.tally.late_sends,
            max_slip_us: self.tally.max_slip_us,
            ..WorkerReport::default()
        };
        report.players = self
            .players
            .into_iter()
            .filter(|p| matches!(p.state, State::Ready | State::Leaving | State::Left))
            .map(|p| p.report)
            .collect();
        report
    }
}

/// The first tick (`start`, `start + tick`, …) at or after `due`.
fn tick_at_or_after(start: Instant, due: Instant, tick: Duration) -> Instant {
    let since = due.saturating_duration_since(start).as_nanos();
    let tick_ns = tick.as_nanos().max(1);
    let offset = since.div_ceil(tick_ns).saturating_mul(tick_ns);
    start + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_send_waits_for_the_next_tick() {
        let start = Instant::now();
        let ms = Duration::from_millis(1);
        let at = |us: u64| start + Duration::from_micros(us);
        // Sends due inside a tick all go at its end; one due on a tick goes then.
        assert_eq!(tick_at_or_after(start, at(1), ms), at(1_000));
        assert_eq!(tick_at_or_after(start, at(999), ms), at(1_000));
        assert_eq!(tick_at_or_after(start, at(1_000), ms), at(1_000));
        assert_eq!(tick_at_or_after(start, at(1_001), ms), at(2_000));
        assert_eq!(tick_at_or_after(start, start, ms), start);
        // Before the start (never scheduled so): the start.
        assert_eq!(tick_at_or_after(at(5_000), start, ms), at(5_000));
    }
}
