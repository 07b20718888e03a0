//! Counters for `GET /metrics`, in the Prometheus text format.
//!
//! Plain relaxed atomics: each is one add where the event happens, with no lock.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use sessionserver_core::{CloseReason, ErrorCode, ServerCommand, ServerFrame};

use crate::socket::Ending;

/// The client commands, and two rows for frames that are no command.
const COMMANDS: [&str; 15] = [
    "createSession",
    "joinSession",
    "updateSession",
    "updatePlayer",
    "leaveSession",
    "invalid",
    "binary",
    "hello",
    "resumeSession",
    "kickPlayer",
    "lockSession",
    "ping",
    "sendMessage",
    "setMetadata",
    "listSessions",
];
const CODES: usize = ErrorCode::MAX as usize + 1;

pub(crate) struct Metrics {
    connections_total: AtomicU64,
    connections_refused: AtomicU64,
    upgrades_unauthorized: AtomicU64,
    players_in_sessions: AtomicI64,
    sessions_created: AtomicU64,
    commands: [AtomicU64; COMMANDS.len()],
    frames_out: [[AtomicU64; CODES]; ServerCommand::ALL.len()],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Index 0: the client closed or the connection failed; then `CloseReason::ALL`, then
    /// `Ending::NATIVE`.
    closes: [AtomicU64; CloseReason::ALL.len() + 1 + Ending::NATIVE.len()],
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            connections_total: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            upgrades_unauthorized: AtomicU64::new(0),
            players_in_sessions: AtomicI64::new(0),
            sessions_created: AtomicU64::new(0),
            commands: Default::default(),
            // More codes than `Default` takes for an array.
            frames_out: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            closes: Default::default(),
        }
    }
}

impl Metrics {
    /// A WebSocket connection began. (The gauge of open ones is not kept here: it is the
    /// count of [`crate::counting::Counted`] guards, passed to [`Metrics::render`].)
    pub(crate) fn connection_opened(&self) {
        self.connections_total.fetch_add(1, Relaxed);
    }

    pub(crate) fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Relaxed);
    }

    /// An upgrade refused by the auth check (`Config::authorize`).
    pub(crate) fn upgrade_unauthorized(&self) {
        self.upgrades_unauthorized.fetch_add(1, Relaxed);
    }

    pub(crate) fn connection_closed(&self, reason: Option<Ending>) {
        let index = match reason {
            None => 0,
            Some(Ending::Core(r)) => 1 + CloseReason::ALL.iter().position(|x| *x == r).unwrap_or(0),
            Some(native) => {
                let at = Ending::NATIVE
                    .iter()
                    .position(|x| *x == native)
                    .unwrap_or(0);
                1 + CloseReason::ALL.len() + at
            }
        };
        self.closes[index].fetch_add(1, Relaxed);
    }

    /// A frame arrived; `command` is its parsed name, or "invalid" / "binary".
    pub(crate) fn frame_in(&self, command: &str, bytes: usize) {
        let index = COMMANDS.iter().position(|c| *c == command).unwrap_or(5);
        self.commands[index].fetch_add(1, Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Relaxed);
    }

    /// A frame was queued for a client.
    pub(crate) fn frame_out(&self, frame: &ServerFrame) {
        self.frames_out(frame, 1);
    }

    /// `frame` sent to `recipients` players (a broadcast is counted once, not per member:
    /// these counters are shared by every thread).
    pub(crate) fn frames_out(&self, frame: &ServerFrame, recipients: u64) {
        let code = usize::from(frame.error()).min(CODES - 1);
        self.frames_out[frame.command().index()][code].fetch_add(recipients, Relaxed);
        self.bytes_out
            .fetch_add(frame.bytes().len() as u64 * recipients, Relaxed);
    }

    pub(crate) fn session_created(&self) {
        self.sessions_created.fetch_add(1, Relaxed);
    }

    pub(crate) fn players_in_sessions(&self, delta: i64) {
        self.players_in_sessions.fetch_add(delta, Relaxed);
    }

    /// The Prometheus text exposition, with the `connections` open and the `sessions` live
    /// now.
    pub(crate) fn render(&self, connections: usize, sessions: usize) -> String {
        let mut out = String::with_capacity(4096);
        let mut gauge = |name: &str, help: &str, value: i64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        gauge(
            "sessionserver_connections",
            "Open WebSocket connections.",
            connections as i64,
        );
        gauge("sessionserver_sessions", "Live sessions.", sessions as i64);
        gauge(
            "sessionserver_players",
            "Players in a session.",
            self.players_in_sessions.load(Relaxed),
        );
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "sessionserver_connections_total",
            "WebSocket connections accepted.",
            self.connections_total.load(Relaxed),
        );
        counter(
            "sessionserver_connections_refused_total",
            "WebSocket upgrades refused at the connection limit.",
            self.connections_refused.load(Relaxed),
        );
        counter(
            "sessionserver_upgrades_unauthorized_total",
            "WebSocket upgrades refused by the auth check (--auth-secret or a library's own).",
            self.upgrades_unauthorized.load(Relaxed),
        );
        counter(
            "sessionserver_sessions_created_total",
            "Sessions created.",
            self.sessions_created.load(Relaxed),
        );
        counter(
            "sessionserver_received_bytes_total",
            "Bytes of frames received from clients.",
            self.bytes_in.load(Relaxed),
        );
        counter(
            "sessionserver_sent_bytes_total",
            "Bytes of frames queued for clients.",
            self.bytes_out.load(Relaxed),
        );
        let _ = writeln!(out, "# HELP sessionserver_commands_total Frames received, by command.\n# TYPE sessionserver_commands_total counter");
        for (name, count) in COMMANDS.iter().zip(&self.commands) {
            let _ = writeln!(
                out,
                "sessionserver_commands_total{{command=\"{name}\"}} {}",
                count.load(Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP sessionserver_replies_total Frames queued for clients, by command and error code.\n# TYPE sessionserver_replies_total counter");
        for (command, codes) in ServerCommand::ALL.iter().zip(&self.frames_out) {
            for (code, count) in codes.iter().enumerate() {
                let count = count.load(Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "sessionserver_replies_total{{command=\"{}\",error=\"{code}\"}} {count}",
                        command.name()
                    );
                }
            }
        }
        let _ = writeln!(out, "# HELP sessionserver_closes_total Connections ended, by reason (send_queue_full: clients dropped for not reading).\n# TYPE sessionserver_closes_total counter");
        let reasons = std::iter::once("client")
            .chain(CloseReason::ALL.iter().map(|r| r.name()))
            .chain(Ending::NATIVE.iter().map(|e| e.name()));
        for (reason, count) in reasons.zip(&self.closes) {
            let _ = writeln!(
                out,
                "sessionserver_closes_total{{reason=\"{reason}\"}} {}",
                count.load(Relaxed)
            );
        }
        out
    }
}
