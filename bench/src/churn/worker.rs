//! One worker thread of the churn: a fixed share of the `--concurrency` slots, each running
//! cycles back to back, all their sockets in one epoll set.
//!
//! Why not tokio and tungstenite: the generator shares the two cores with the server, and with
//! a task per slot it spent about as much CPU per cycle as the server did. Here a cycle costs
//! its system calls and little else: a non-blocking connect whose upgrade request is written
//! at once (on loopback the connection is up when `connect` returns), one read per reply, one
//! write per command, no allocation but the upgrade request, and no timers: the thread's few
//! slots are scanned for their deadlines once per loop turn.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use super::cycle::{Cycle, Phase};
use super::{Plan, WorkerReport};
use crate::epoll::{self, Epoll, Event, ReadEnd};
use crate::ws::{self, Xorshift};

/// A cycle not done by then is a failure (the whole cycle, connect included).
const CYCLE_TIMEOUT: Duration = Duration::from_secs(10);
/// After the server's close frame, how long its FIN is waited for; the cycle counts either way.
const FIN_WAIT: Duration = Duration::from_secs(1);
/// After a failure, the slot rests this long: no spinning on a server that refuses.
const REST_AFTER_FAILURE: Duration = Duration::from_millis(10);
/// The longest sleep with nothing due (deadlines are rechecked then).
const MAX_SLEEP: Duration = Duration::from_millis(100);
/// Bytes asked for per read: every reply of a cycle is far smaller.
const READ_SIZE: usize = 4096;
const MAX_EVENTS: usize = 64;

/// A slot: one cycle in flight at a time.
struct Slot {
    /// The cycle's connection; `None` between cycles.
    stream: Option<TcpStream>,
    cycle: Cycle,
    /// The connection is not up yet: the upgrade request waits for EPOLLOUT.
    connecting: bool,
    began: Instant,
    /// Once the server's close frame came: when to stop waiting for the FIN.
    fin_by: Option<Instant>,
    /// Between cycles: when the next one starts.
    next_start: Instant,
    /// Received bytes of a reply not complete yet (usually empty).
    partial: Vec<u8>,
}

struct Worker<'a> {
    plan: &'a Plan,
    epoll: Epoll,
    events: Vec<Event>,
    slots: Vec<Slot>,
    /// Reused buffers: what is read (initialized once, never zeroed again), frames to send.
    read_buf: Vec<u8>,
    out: Vec<u8>,
    rng: Xorshift,
    report: WorkerReport,
}

/// Runs `slots` slots until the plan's end, then until their last cycles are over.
pub fn run(plan: &Plan, index: usize, slots: usize) -> WorkerReport {
    let epoll = match Epoll::new(MAX_EVENTS) {
        Ok(epoll) => epoll,
        Err(e) => {
            return WorkerReport {
                errors: slots as u64,
                first_error: Some(format!("epoll: {e}")),
                ..WorkerReport::default()
            }
        }
    };
    let now = Instant::now();
    let seed = now.duration_since(plan.start).as_nanos() as u64 ^ (index as u64 + 1) << 48;
    let mut w = Worker {
        plan,
        epoll,
        events: Vec::with_capacity(MAX_EVENTS),
        slots: (0..slots)
            .map(|_| Slot {
                stream: None,
                cycle: Cycle::new(),
                connecting: false,
                began: now,
                fin_by: None,
                next_start: now,
                partial: Vec::new(),
            })
            .collect(),
        read_buf: vec![0; READ_SIZE],
        out: Vec::with_capacity(256),
        rng: Xorshift::new(seed),
        report: WorkerReport::default(),
    };
    w.run();
    w.report
}

impl Worker<'_> {
    fn run(&mut self) {
        loop {
            let Some(wake) = self.start_and_expire() else {
                return;
            };
            let timeout = wake.saturating_duration_since(Instant::now());
            if let Err(e) = self.epoll.wait(&mut self.events, timeout) {
                // Every cycle in flight is lost with the loop.
                for idx in 0..self.slots.len() {
                    if self.slots[idx].stream.is_some() {
                        self.fail(idx, format!("epoll: {e}"));
                    }
                }
                return;
            }
            for i in 0..self.events.len() {
                let Event { token, events } = self.events[i];
                self.on_event(token as usize, events);
            }
        }
    }

    /// Starts the cycles that are due (none from the plan's end on), ends those past their
    /// deadline; returns when the next deadline comes, `None` once every slot is done.
    fn start_and_expire(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let mut wake = now + MAX_SLEEP;
        let mut busy = false;
        for idx in 0..self.slots.len() {
            let slot = &self.slots[idx];
            if slot.stream.is_none() {
                if now >= self.plan.end {
                    continue;
                }
                busy = true;
                if now < slot.next_start {
                    wake = wake.min(slot.next_start);
                    continue;
                }
                self.start(idx, now);
                continue;
            }
            busy = true;
            let deadline = slot.began + CYCLE_TIMEOUT;
            match slot.fin_by {
                // The close handshake is done: the FIN is only waited for so long.
                Some(fin_by) if now >= fin_by && fin_by < deadline => self.complete(idx, now),
                _ if now >= deadline => self.fail(idx, "cycle timed out".into()),
                fin_by => wake = wake.min(fin_by.unwrap_or(deadline).min(deadline)),
            }
        }
        busy.then_some(wake)
    }

    /// A new cycle: connect, and send the upgrade request as soon as the connection is up.
    fn start(&mut self, idx: usize, now: Instant) {
        let slot = &mut self.slots[idx];
        slot.cycle = Cycle::new();
        slot.began = now;
        slot.fin_by = None;
        slot.partial.clear();
        let stream = match connect_nonblocking(&self.plan.addr) {
            Ok(stream) => stream,
            Err(e) => return self.fail(idx, format!("connect: {e}")),
        };
        // On loopback the handshake is done inside `connect`: the request goes out at once,
        // and only the replies are waited for. Otherwise, wait until the socket is writable.
        let sent = match self.send_upgrade(&stream) {
            Ok(sent) => sent,
            Err(e) => return self.fail(idx, e),
        };
        let interest = if sent {
            epoll::EPOLLIN | epoll::EPOLLRDHUP
        } else {
            epoll::EPOLLOUT
        };
        if let Err(e) = self.epoll.add(stream.as_raw_fd(), interest, idx as u64) {
            return self.fail(idx, format!("epoll: {e}"));
        }
        let slot = &mut self.slots[idx];
        slot.stream = Some(stream);
        slot.connecting = !sent;
    }

    /// Writes the upgrade request; `false` if the connection is not up yet.
    fn send_upgrade(&mut self, stream: &TcpStream) -> Result<bool, String> {
        let request = ws::upgrade_request(&self.plan.host, &self.plan.path, &mut self.rng);
        match write_whole(stream, request.as_bytes()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(format!("connect: {e}")),
        }
    }

    fn on_event(&mut self, idx: usize, events: u32) {
        let Some(stream) = self.slots[idx].stream.take() else {
            return;
        };
        let result = if self.slots[idx].connecting {
            self.on_connected(idx, &stream)
        } else {
            self.on_readable(idx, &stream, events)
        };
        match result {
            Ok(Next::Wait) => self.slots[idx].stream = Some(stream),
            Ok(Next::Done) => self.complete(idx, Instant::now()),
            Err(e) => self.fail(idx, e),
        }
    }

    /// The socket became writable (or failed) while connecting.
    fn on_connected(&mut self, idx: usize, stream: &TcpStream) -> Result<Next, String> {
        if !self.send_upgrade(stream)? {
            return Ok(Next::Wait);
        }
        self.slots[idx].connecting = false;
        let interest = epoll::EPOLLIN | epoll::EPOLLRDHUP;
        self.epoll
            .modify(stream.as_raw_fd(), interest, idx as u64)
            .map_err(|e| format!("epoll: {e}"))?;
        Ok(Next::Wait)
    }

    /// Reads what the socket has (after the incomplete rest kept from before), feeds it to the
    /// cycle and sends what the cycle answers.
    fn on_readable(&mut self, idx: usize, stream: &TcpStream, events: u32) -> Result<Next, String> {
        let slot = &mut self.slots[idx];
        self.out.clear();
        let closed_before = slot.cycle.phase == Phase::Closed;
        let end = epoll::read_ready(
            stream,
            events,
            &mut self.read_buf,
            &mut slot.partial,
            READ_SIZE,
            |bytes| slot.cycle.on_bytes(bytes, &mut self.out, &mut self.rng),
        )?;
        let ended = match end {
            ReadEnd::Drained => false,
            ReadEnd::Fin => true,
            // A reset after our close ends the cycle like a FIN; before it, a failure.
            ReadEnd::Failed(_) if slot.cycle.closing() => true,
            ReadEnd::Failed(e) => return Err(format!("receive: {e}")),
        };
        if !closed_before && slot.cycle.phase == Phase::Closed {
            slot.fin_by = Some(Instant::now() + FIN_WAIT);
        }
        if !self.out.is_empty() {
            // A frame of a few dozen bytes on a connection with nothing else unsent: the
            // socket takes it whole, or something is wrong.
            write_whole(stream, &self.out).map_err(|e| format!("send: {e}"))?;
        }
        if ended {
            slot.cycle.on_end()?;
            return Ok(Next::Done);
        }
        Ok(Next::Wait)
    }

    /// The cycle is over: counted, and timed if it ended in the measured window.
    fn complete(&mut self, idx: usize, now: Instant) {
        let slot = &mut self.slots[idx];
        slot.stream = None;
        slot.next_start = now;
        if now >= self.plan.measure_from && now < self.plan.end {
            let us = (now - slot.began).as_micros();
            self.report
                .cycle_us
                .push(us.min(u128::from(u32::MAX)) as u32);
        }
    }

    /// The cycle failed: counted as an error (never retried), and the slot rests a little.
    fn fail(&mut self, idx: usize, reason: String) {
        let slot = &mut self.slots[idx];
        // Closing the socket also takes it out of the epoll set.
        slot.stream = None;
        slot.next_start = Instant::now() + REST_AFTER_FAILURE;
        self.report.errors += 1;
        self.report.first_error.get_or_insert(reason);
    }
}

/// What a slot does after an event.
enum Next {
    Wait,
    Done,
}

/// A write that must go out whole: a short one is an error (never seen on a fresh socket with
/// a few hundred bytes).
fn write_whole(mut stream: &TcpStream, bytes: &[u8]) -> io::Result<()> {
    loop {
        return match stream.write(bytes) {
            Ok(n) if n == bytes.len() => Ok(()),
            Ok(n) => Err(io::Error::other(format!(
                "only {n} of {} bytes taken",
                bytes.len()
            ))),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

/// A TCP connection being opened, non-blocking, with TCP_NODELAY (as a game client wants).
/// std only connects blocking, and a blocking connect would stall every slot of the thread
/// whenever a SYN is lost (the retry is a second later). socket2 opens the socket non-blocking
/// in the `socket` call itself (no `fcntl` per cycle) and connects it without waiting.
fn connect_nonblocking(addr: &SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(*addr), Type::STREAM.nonblocking(), None)?;
    socket.set_tcp_nodelay(true)?;
    match socket.connect(&SockAddr::from(*addr)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(socket.into())
}
