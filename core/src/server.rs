//! [`Server`]: the player and session machines composed in one thread, the way the hosts
//! compose them across tasks and Durable Objects.
//!
//! It is the reference host: the core's tests, the model test and the fuzzer drive it, and a
//! single-threaded game can embed it. Like a real host it carries [`ToSession`] inputs and
//! [`ToPlayer`] events through a queue instead of calling across at once, so that what
//! happens between two machines (a session ending while a join is on its way, a connection
//! closing while its leave is) can be driven step by step: the `feed_*` methods queue, and
//! [`Server::step`] delivers one message; the `handle_*` methods also deliver everything.

use std::collections::{HashMap, VecDeque};

use crate::close::CloseReason;
use crate::connection_guard::ConnectionConfig;
use crate::directory::Directory;
use crate::ids::{IdCounter, PlayerId, SessionId};
use crate::limits::Limits;
use crate::messages::{CreateRefusal::*, ToPlayer, ToSession};
use crate::player::{Player, PlayerOutput};
use crate::session::{Output, Session};

/// A message between two machines, on its way.
#[derive(Debug)]
enum Flight {
    ToSession(SessionId, ToSession),
    ToPlayer(PlayerId, ToPlayer),
}

#[derive(Debug)]
struct Connected {
    player: Player,
    /// The session this player's [`PlayerOutput::ToSession`] inputs go to: the one it last
    /// created or was sent to join (what a native connection holds as its session handle).
    target: Option<SessionId>,
}

/// Every player and session of one server, driven from one thread.
#[derive(Debug, Default)]
pub struct Server {
    players: HashMap<PlayerId, Connected>,
    sessions: Directory<Session>,
    player_ids: IdCounter,
    session_ids: IdCounter,
    limits: Limits,
    config: ConnectionConfig,
    now_ms: u64,
    in_flight: VecDeque<Flight>,
    outputs: VecDeque<Output>,
    closes: VecDeque<(PlayerId, CloseReason)>,
    /// Seeds for the sessions' resume secrets; `None`: no resume tokens.
    secrets: Option<Box<rand_chacha::ChaCha20Rng>>,
    /// Where private sessions' IDs come from: seeded from [`Server::with_secrets`]' seed, else
    /// (tests) from a fixed one.
    private_ids: Option<Box<rand_chacha::ChaCha20Rng>>,
}

/// A random ID below 2^53 that no session has, or `None` after a few draws that all were
/// taken.
fn private_id<H>(
    rng: &mut Option<Box<rand_chacha::ChaCha20Rng>>,
    sessions: &Directory<H>,
) -> Option<u64> {
    use rand_core::{RngCore, SeedableRng};
    let rng = rng.get_or_insert_with(|| Box::new(rand_chacha::ChaCha20Rng::from_seed([7; 32])));
    (0..8)
        .map(|_| rng.next_u64() & crate::ids::MAX_ID)
        .find(|&id| sessions.get(SessionId(id)).is_none())
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

    /// A server with these limits and these connection timers and rate limits.
    pub fn with_config(limits: Limits, config: ConnectionConfig) -> Self {
        Server {
            limits,
            config,
            ..Self::default()
        }
    }

    /// Gives each session a seed for its resume tokens' secrets, drawn from a generator
    /// seeded with `seed` (which must come from a secure random source): without it no member
    /// is given a resume token.
    pub fn with_secrets(mut self, seed: [u8; 32]) -> Self {
        use rand_core::{RngCore, SeedableRng};
        let mut secrets = rand_chacha::ChaCha20Rng::from_seed(seed);
        let mut ids = [0u8; 32];
        secrets.fill_bytes(&mut ids);
        self.private_ids = Some(Box::new(rand_chacha::ChaCha20Rng::from_seed(ids)));
        self.secrets = Some(Box::new(secrets));
        self
    }

    /// A connection opened: it becomes a player with a new ID (`None` once IDs run out).
    pub fn connect(&mut self) -> Option<PlayerId> {
        let id = PlayerId(self.player_ids.next_id()?);
        let player = Player::new(id, self.limits, self.config, self.now_ms);
        self.players.insert(
            id,
            Connected {
                player,
                target: None,
            },
        );
        Some(id)
    }

    /// A text frame from `player`, and everything it causes.
    pub fn handle_text(&mut self, player: PlayerId, frame: &str) {
        self.feed_text(player, frame);
        self.settle();
    }

    /// A binary frame from `player`: it is told that only text frames are understood.
    pub fn handle_binary(&mut self, player: PlayerId) {
        if let Some(c) = self.players.get_mut(&player) {
            c.player.handle_binary(self.now_ms);
        }
        self.drain_player(player);
        self.settle();
    }

    /// `player`'s connection closed: it leaves its session.
    pub fn disconnect(&mut self, player: PlayerId) {
        self.feed_close(player);
        self.settle();
    }

    /// Time has come to `now_ms` (milliseconds from any origin, never going back): every
    /// player's heartbeat runs, and every session's grace periods.
    pub fn advance_time(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let now = self.now_ms;
        let due: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.poll_timeout().is_some_and(|t| t <= now))
            .map(|(id, _)| id)
            .collect();
        for id in due {
            if let Some(session) = self.sessions.get_mut(id) {
                session.handle_timeout(now);
            }
            self.drain_session(id);
        }
        let due: Vec<PlayerId> = self
            .players
            .iter()
            .filter(|(_, c)| c.player.poll_timeout() <= self.now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(c) = self.players.get_mut(&id) {
                c.player.handle_timeout(self.now_ms);
            }
            self.drain_player(id);
        }
        self.settle();
    }

    /// A text frame from `player`; what it sends to a session stays on its way until
    /// [`Server::step`] or [`Server::settle`].
    pub fn feed_text(&mut self, player: PlayerId, frame: &str) {
        if let Some(c) = self.players.get_mut(&player) {
            c.player.handle_text(self.now_ms, frame);
        }
        self.drain_player(player);
    }

    /// `player`'s connection closed; its disconnect stays on its way until [`Server::step`] or
    /// [`Server::settle`].
    pub fn feed_close(&mut self, player: PlayerId) {
        if let Some(c) = self.players.get_mut(&player) {
            c.player.handle_closed();
        }
        self.drain_player(player);
        self.players.remove(&player);
    }

    /// Delivers the oldest message on its way between two machines. Returns whether there
    /// was one.
    pub fn step(&mut self) -> bool {
        let Some(flight) = self.in_flight.pop_front() else {
            return false;
        };
        match flight {
            Flight::ToSession(id, input) => {
                let from = input.player();
                match self.sessions.get_mut(id) {
                    Some(session) => {
                        session.handle(self.now_ms, input);
                        self.drain_session(id);
                    }
                    None => {
                        if let Some(c) = self.players.get_mut(&from) {
                            c.player.handle_session_gone(id);
                            self.drain_player(from);
                        }
                    }
                }
            }
            Flight::ToPlayer(to, event) => {
                if let Some(c) = self.players.get_mut(&to) {
                    c.player.handle_from_session(event);
                    self.drain_player(to);
                }
            }
        }
        true
    }

    /// Delivers every message on its way, and what they cause, until none is left.
    pub fn settle(&mut self) {
        while self.step() {}
    }

    /// Whether any message is on its way between two machines.
    pub fn is_settled(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// The next frame to send ([`Output::Send`] only: broadcasts come out once per
    /// recipient), until `None`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The next connection the server closed, with the reason, until `None`.
    #[must_use]
    pub fn poll_close(&mut self) -> Option<(PlayerId, CloseReason)> {
        self.closes.pop_front()
    }

    /// The session `player` is in.
    pub fn session_of(&self, player: PlayerId) -> Option<SessionId> {
        self.players.get(&player).and_then(|c| c.player.session())
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
        self.players.iter().map(|(p, c)| (*p, c.player.session()))
    }

    /// Checks the invariants that hold between any two inputs or steps, for tests and
    /// fuzzing: a session exists exactly while it has members; a player is a member of at
    /// most one session; every member is a live player attached to that session, or a gone
    /// one whose disconnect is on its way there; every member's playerData has its session's
    /// structure. Once settled, also: no player waits, and each session's members are exactly
    /// the live players in it.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut membership: HashMap<PlayerId, SessionId> = HashMap::new();
        for (id, session) in self.sessions.iter() {
            if session.is_empty() {
                return Err(format!("session {id} exists with no members"));
            }
            let format = crate::data::PlayerFormat::new(session.default_player_data().clone());
            for (player, data) in session.members() {
                if let Some(other) = membership.insert(player, id) {
                    return Err(format!("player {player} is in sessions {other} and {id}"));
                }
                if !format.accepts(data) {
                    return Err(format!(
                        "member {player} of session {id} has data {data:?} of another structure"
                    ));
                }
                match self.players.get(&player) {
                    Some(c) if c.player.is_attached() && c.target == Some(id) => {}
                    Some(c) => {
                        return Err(format!(
                            "member {player} of session {id} is not attached to it: {:?}",
                            c.player
                        ))
                    }
                    None if self.disconnect_on_its_way(player, id) => {}
                    None if session.is_away(player) => {}
                    None => {
                        return Err(format!(
                            "member {player} of session {id} is gone and will never leave"
                        ))
                    }
                }
            }
        }
        if !self.is_settled() {
            return Ok(());
        }
        for (id, c) in &self.players {
            if c.player.is_waiting() {
                return Err(format!("player {id} waits with nothing on its way"));
            }
            if let Some(session) = c.player.session() {
                if membership.get(id) != Some(&session) {
                    return Err(format!(
                        "player {id} thinks it is in session {session}, which does not list it"
                    ));
                }
            } else if let Some(session) = membership.get(id) {
                return Err(format!(
                    "player {id} is listed by session {session} but thinks it is in none"
                ));
            }
        }
        Ok(())
    }

    fn disconnect_on_its_way(&self, player: PlayerId, session: SessionId) -> bool {
        let Some(s) = self.sessions.get(session) else {
            return false;
        };
        self.in_flight.iter().any(|f| {
            matches!(f, Flight::ToSession(id, ToSession::Disconnect { player: p })
                if *id == session && s.member_of_connection(*p) == Some(player))
        })
    }

    /// Carries out what `id`'s player machine asks for.
    fn drain_player(&mut self, id: PlayerId) {
        loop {
            let Some(c) = self.players.get_mut(&id) else {
                return;
            };
            let Some(output) = c.player.poll_output() else {
                return;
            };
            let output = match output {
                PlayerOutput::JoinOrCreate(request) => {
                    let max = self.limits.max_players_per_session;
                    let found = (!request.create_only)
                        .then(|| self.sessions.best_match(&request.filter, max))
                        .flatten();
                    request.into_output(found)
                }
                other => other,
            };
            match output {
                PlayerOutput::Send(frame) => self.outputs.push_back(Output::Send { to: id, frame }),
                PlayerOutput::Ping => {}
                PlayerOutput::ListSessions(request) => {
                    let max = self.limits.max_players_per_session;
                    let (page, next) = self.sessions.list(&request, max);
                    let frame = crate::reply::session_list(&page, next);
                    self.outputs.push_back(Output::Send { to: id, frame });
                }
                // The reference host's clock is the time it was given (`advance_time`).
                PlayerOutput::Pong(t) => {
                    let frame = crate::reply::pong(t.as_deref(), self.now_ms);
                    self.outputs.push_back(Output::Send { to: id, frame });
                }
                PlayerOutput::Create(request) => {
                    let room = self.sessions.len() < self.limits.max_sessions;
                    let private = request.options.private;
                    let id = match (room, private) {
                        (false, _) => None,
                        (true, true) => private_id(&mut self.private_ids, &self.sessions),
                        (true, false) => self.session_ids.next_id(),
                    };
                    match id {
                        Some(n) => {
                            let session_id = SessionId(n);
                            c.target = Some(session_id);
                            let seed = self.secrets.as_mut().map(|rng| {
                                let mut seed = [0u8; 32];
                                rand_core::RngCore::fill_bytes(rng.as_mut(), &mut seed);
                                seed
                            });
                            let session =
                                Session::create_seeded(session_id, *request, self.limits, seed);
                            match private {
                                true => self.sessions.insert_unlisted(session_id, session),
                                false => self.sessions.insert(session_id, session),
                            };
                            self.drain_session(session_id);
                        }
                        None => {
                            c.player
                                .handle_create_refused(if room { NoFreeId } else { SessionCap })
                        }
                    }
                }
                PlayerOutput::Join { target, input, .. } => match self.sessions.resolve(target) {
                    Ok(session_id) => {
                        c.target = Some(session_id);
                        self.in_flight
                            .push_back(Flight::ToSession(session_id, input));
                    }
                    Err(_) => c.player.handle_no_such_session(),
                },
                PlayerOutput::ToSession(input) => {
                    if let Some(session_id) = c.target {
                        self.in_flight
                            .push_back(Flight::ToSession(session_id, input));
                    }
                }
                PlayerOutput::JoinOrCreate(_) => {
                    unreachable!("turned into a join or a create above")
                }
                PlayerOutput::Close(reason) => {
                    self.closes.push_back((id, reason));
                    c.player.handle_closed();
                    // Its disconnect, if any, is the next output; then it is gone.
                    self.drain_player(id);
                    self.players.remove(&id);
                    return;
                }
            }
        }
    }

    /// Carries out what session `id` produced, and forgets it once it ended.
    fn drain_session(&mut self, id: SessionId) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        while let Some(output) = session.poll_output() {
            match output {
                Output::Send { to, frame } => {
                    if self.players.contains_key(&to) {
                        self.outputs.push_back(Output::Send { to, frame });
                    }
                }
                Output::SendJoinBurst { to, burst } => {
                    if self.players.contains_key(&to) {
                        let frames = burst.map(|frame| Output::Send { to, frame });
                        self.outputs.extend(frames);
                    }
                }
                Output::Broadcast { frame, except } => {
                    for to in session.member_ids() {
                        if Some(to) != except && self.players.contains_key(&to) {
                            self.outputs.push_back(Output::Send {
                                to,
                                frame: frame.clone(),
                            });
                        }
                    }
                }
                Output::ToPlayer { to, event } => {
                    self.in_flight.push_back(Flight::ToPlayer(to, event));
                }
                Output::Rebind { from, to } => {
                    if let Some(connection) = self.players.remove(&from) {
                        self.players.insert(to, connection);
                    }
                }
                Output::Replaced { player } => {
                    // The old connection is closed; its disconnect, on its way like any
                    // other, concerns no one any more.
                    if let Some(mut old) = self.players.remove(&player) {
                        self.closes.push_back((player, CloseReason::Replaced));
                        old.player.handle_closed();
                        while let Some(output) = old.player.poll_output() {
                            if let (PlayerOutput::ToSession(input), Some(target)) =
                                (output, old.target)
                            {
                                self.in_flight.push_back(Flight::ToSession(target, input));
                            }
                        }
                    }
                }
                Output::Pong { to, t } => {
                    if self.players.contains_key(&to) {
                        let frame = crate::reply::pong(t.as_deref(), self.now_ms);
                        self.outputs.push_back(Output::Send { to, frame });
                    }
                }
                Output::Listing(listing) => {
                    let id = session.id();
                    self.sessions.set_listing(id, *listing);
                    // The borrow of the session ended with the directory's change.
                    return self.drain_session(id);
                }
                Output::Away { .. } | Output::Release { .. } => {}
                Output::Changed(_) => {}
                Output::Ended => {
                    self.sessions.remove(id);
                    return;
                }
            }
        }
    }
}
