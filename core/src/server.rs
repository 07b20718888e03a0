//! [`Server`]: every piece of the core composed in one thread.
//!
//! It is the reference host: the core's tests and fuzzing drive it, and a single-threaded game
//! can embed it directly. The native and edge hosts compose the same pieces across tasks and
//! Durable Objects instead.

use std::collections::{HashMap, VecDeque};

use crate::command::{self, Rejection};
use crate::directory::Directory;
use crate::ids::{IdCounter, PlayerId, SessionId};
use crate::limits::Limits;
use crate::lobby::{self, LobbyAction};
use crate::session::{Membership, Output, Session};

/// Every player and session of one server, driven from one thread.
#[derive(Debug, Default)]
pub struct Server {
    /// Each connected player and the session it is in.
    players: HashMap<PlayerId, Option<SessionId>>,
    sessions: Directory<Session>,
    player_ids: IdCounter,
    session_ids: IdCounter,
    limits: Limits,
    outputs: VecDeque<Output>,
}

impl Server {
    /// A server with no players and no sessions, and the default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// A server with these limits.
    pub fn with_limits(limits: Limits) -> Self {
        Server {
            limits,
            ..Self::default()
        }
    }

    /// A connection opened: it becomes a player with a new ID (`None` once IDs run out).
    pub fn connect(&mut self) -> Option<PlayerId> {
        let id = PlayerId(self.player_ids.next_id()?);
        self.players.insert(id, None);
        Some(id)
    }

    /// A text frame from `player`.
    pub fn handle_text(&mut self, player: PlayerId, frame: &str) {
        self.handle(player, command::parse(frame, &self.limits));
    }

    /// A binary frame from `player`: it is told that only text frames are understood.
    pub fn handle_binary(&mut self, player: PlayerId) {
        self.handle(player, Err(Rejection::binary_frame()));
    }

    /// `player`'s connection closed: it leaves its session.
    pub fn disconnect(&mut self, player: PlayerId) {
        let Some(Some(session_id)) = self.players.remove(&player) else {
            return;
        };
        if let Some(session) = self.sessions.get_mut(session_id) {
            session.remove(player);
        }
        self.after(session_id);
    }

    /// The next frame to send, until `None`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The session `player` is in.
    pub fn session_of(&self, player: PlayerId) -> Option<SessionId> {
        self.players.get(&player).copied().flatten()
    }

    /// The session with this ID.
    pub fn session(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(id)
    }

    /// Every live session.
    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.iter().map(|(_, s)| s)
    }

    /// Every connected player and the session it is in.
    pub fn players(&self) -> impl Iterator<Item = (PlayerId, Option<SessionId>)> + '_ {
        self.players.iter().map(|(p, s)| (*p, *s))
    }

    /// Checks the invariants that must hold between any two inputs, for tests and fuzzing:
    /// a player is in at most one session, and that session lists it; a session exists
    /// exactly while it has members; every member's playerData has its session's structure.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut members_seen = 0;
        for (id, session) in self.sessions.iter() {
            if session.is_empty() {
                return Err(format!("session {id} exists with no members"));
            }
            let format = crate::data::PlayerFormat::new(session.default_player_data().clone());
            for (player, data) in session.members() {
                members_seen += 1;
                if self.session_of(player) != Some(id) {
                    return Err(format!(
                        "member {player} of session {id} is recorded elsewhere"
                    ));
                }
                if !format.accepts(data) {
                    return Err(format!(
                        "member {player} of session {id} has data {data:?} of another structure"
                    ));
                }
            }
        }
        let placed = self.players.values().filter(|s| s.is_some()).count();
        if placed != members_seen {
            return Err(format!(
                "{placed} players are in sessions, sessions list {members_seen} members"
            ));
        }
        Ok(())
    }

    fn handle(&mut self, player: PlayerId, command: Result<command::Command, Rejection>) {
        let Some(&place) = self.players.get(&player) else {
            return;
        };
        match place {
            Some(session_id) => {
                let Some(session) = self.sessions.get_mut(session_id) else {
                    return;
                };
                if session.handle_command(player, command) == Membership::Left {
                    self.players.insert(player, None);
                }
                self.after(session_id);
            }
            None => match lobby::handle(command, &self.limits) {
                LobbyAction::Reply(frame) => {
                    self.outputs.push_back(Output::Send { to: player, frame })
                }
                LobbyAction::Create(format) => {
                    let room = self.sessions.len() < self.limits.max_sessions;
                    let id = match room.then(|| self.session_ids.next_id()).flatten() {
                        Some(id) => SessionId(id),
                        None => {
                            let frame = lobby::create_refused(&self.limits);
                            self.outputs.push_back(Output::Send { to: player, frame });
                            return;
                        }
                    };
                    let session = Session::new(id, format, player, self.limits);
                    self.sessions.insert(id, session);
                    self.players.insert(player, Some(id));
                    self.after(id);
                }
                LobbyAction::Join(target) => match self.sessions.resolve(target) {
                    Ok(id) => {
                        let joined = self.sessions.get_mut(id).is_some_and(|s| s.join(player));
                        if joined {
                            self.players.insert(player, Some(id));
                        }
                        self.after(id);
                    }
                    Err(code) => self.outputs.push_back(Output::Send {
                        to: player,
                        frame: lobby::join_failed(code),
                    }),
                },
            },
        }
    }

    /// Moves a session's outputs into ours and destroys it if it is empty.
    fn after(&mut self, id: SessionId) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        while let Some(output) = session.poll_output() {
            self.outputs.push_back(output);
        }
        if session.is_empty() {
            self.sessions.remove(id);
        }
    }
}
