//! Drives a core [`Server`] like a host would, collecting each player's frames.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};

use serde_json::Value;
use sessionserver_core::{Limits, Output, PlayerId, Server};

#[derive(Default)]
pub struct Harness {
    pub server: Server,
    inbox: HashMap<PlayerId, VecDeque<String>>,
}

impl Harness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_limits(limits: Limits) -> Self {
        Harness {
            server: Server::with_limits(limits),
            inbox: HashMap::new(),
        }
    }

    /// A harness around `server` (its limits, connection config and secrets).
    pub fn with_server(server: Server) -> Self {
        Harness {
            server,
            inbox: HashMap::new(),
        }
    }

    /// Time moves on to `now_ms`.
    pub fn advance_time(&mut self, now_ms: u64) {
        self.server.advance_time(now_ms);
        self.drain();
    }

    /// Delivers the next message in flight between two machines (see [`Server::step`]);
    /// `false` if none was.
    pub fn step(&mut self) -> bool {
        let stepped = self.server.step();
        self.drain();
        stepped
    }

    /// Queues a frame from `player` without delivering what it causes (see
    /// [`Server::feed_text`]).
    pub fn feed(&mut self, player: PlayerId, frame: &str) {
        self.server.feed_text(player, frame);
        self.drain();
    }

    pub fn connect(&mut self) -> PlayerId {
        let player = self.server.connect().expect("IDs available");
        self.inbox.insert(player, VecDeque::new());
        player
    }

    pub fn send(&mut self, player: PlayerId, frame: &str) {
        self.server.handle_text(player, frame);
        self.drain();
    }

    pub fn send_binary(&mut self, player: PlayerId) {
        self.server.handle_binary(player);
        self.drain();
    }

    pub fn disconnect(&mut self, player: PlayerId) {
        self.server.disconnect(player);
        self.inbox.remove(&player);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(Output::Send { to, frame }) = self.server.poll_output() {
            self.inbox
                .get_mut(&to)
                .unwrap_or_else(|| panic!("frame for unknown player {to}: {frame:?}"))
                .push_back(frame.as_str().to_owned());
        }
    }

    /// Sends `frame` as `player` and returns the next frame for it, as text.
    pub fn send_and_recv_text(&mut self, player: PlayerId, frame: &str) -> String {
        self.send(player, frame);
        self.recv_text(player)
    }

    /// The next frame for `player`, as text.
    pub fn recv_text(&mut self, player: PlayerId) -> String {
        self.inbox
            .get_mut(&player)
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(|| panic!("player {player} expected a frame and has none"))
    }

    /// The next frame for `player`, parsed.
    pub fn recv(&mut self, player: PlayerId) -> Value {
        let text = self.recv_text(player);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("server sent invalid JSON {text}: {e}"))
    }

    /// Drops and returns every frame waiting for `player`.
    pub fn take_all(&mut self, player: PlayerId) -> Vec<String> {
        self.inbox
            .get_mut(&player)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    /// Asserts `player` has no frame waiting.
    pub fn assert_quiet(&self, player: PlayerId) {
        let waiting = self.inbox.get(&player).map(VecDeque::len).unwrap_or(0);
        assert_eq!(
            waiting,
            0,
            "player {player} has unexpected frames: {:?}",
            self.inbox.get(&player)
        );
    }

    /// Creates a session as `player` with the given frame and returns the session ID from its
    /// sessionJoin.
    pub fn create(&mut self, player: PlayerId, frame: &str) -> u64 {
        self.send(player, frame);
        let reply = self.recv(player);
        assert_eq!(reply["command"], "sessionJoin", "{reply}");
        assert_eq!(reply["error"], 0, "{reply}");
        reply["sessionID"].as_u64().expect("sessionID")
    }
}

pub fn id(player: PlayerId) -> u64 {
    player.0
}
