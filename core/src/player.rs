//! [`Player`]: the state machine of one connection, the single owner of its protocol.
//!
//! One connection is one player. Its machine decides everything the connection's protocol
//! decides: whether it is in the lobby, creating, joining, in a session or leaving; where each
//! parsed command goes; the lobby's answers; the `-1` retry; the create refusal; when the
//! connection is closed for silence or for flooding (its [`ConnectionGuard`]). The host feeds
//! it what arrives and drains [`PlayerOutput`]s:
//!
//! - from the client: [`Player::handle_text`], [`Player::handle_binary`],
//!   [`Player::handle_activity`] (a ping or pong), and [`Player::handle_closed`] once the
//!   connection is gone, whatever the cause;
//! - from the host's directory: [`Player::handle_no_such_session`],
//!   [`Player::handle_create_refused`], [`Player::handle_session_gone`];
//! - from its session: [`Player::handle_from_session`];
//! - time: [`Player::poll_timeout`] and [`Player::handle_timeout`].
//!
//! After every input, drain [`Player::poll_output`] until `None`. While
//! [`Player::is_waiting`] (a create, join or leave is on its way to a session), the host
//! should read no more client frames: replies stay in the order of the commands because the
//! next command is taken only once the session has answered. Frames fed anyway are held, in
//! order, up to [`MAX_HELD`]; beyond that the client is closed (1008).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::close::CloseReason;
use crate::command::{self, Command, JoinTarget, NewSession, Rejection};
use crate::connection_guard::{Admission, ConnectionConfig, ConnectionGuard, TimerAction};
use crate::error::ErrorCode;
use crate::features::{Features, ResumeRequest};
use crate::ids::{PlayerId, SessionId};
use crate::limits::Limits;
use crate::lobby;
use crate::messages::{CreateRefusal, CreateRequest, MatchRequest, ToPlayer, ToSession};
use crate::reply::{self, ServerCommand, ServerFrame};

/// Client commands a player holds while it waits for its session (for hosts that cannot stop
/// reading). More closes the connection with 1008.
pub const MAX_HELD: usize = 256;

/// Something the host must do for a player, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlayerOutput {
    /// Send this frame to the client, after everything sent before.
    Send(ServerFrame),
    /// Send a WebSocket ping (the heartbeat).
    Ping,
    /// Answer a `ping` command: send [`crate::reply::pong`] with this `t` (the JSON text the
    /// client sent, if any) and the host's clock, in order with the other frames.
    Pong(Option<Box<str>>),
    /// Answer a `listSessions` from the lobby: send [`crate::reply::session_list`] of the
    /// page [`crate::Directory::list`] gives for it, in order with the other frames.
    ListSessions(Box<crate::command::ListRequest>),
    /// Create a session: allocate an ID and run [`crate::Session::create`] with this request,
    /// or call [`Player::handle_create_refused`] when the host holds its maximum of sessions
    /// ([`CreateRefusal::SessionCap`]) or finds no free ID ([`CreateRefusal::NoFreeId`]).
    /// (Boxed: rare, and its options would make every connection's pending output larger:
    /// memory per idle player.)
    Create(Box<CreateRequest>),
    /// Find the session `target` names (for [`JoinTarget::Latest`]: the latest one, other than
    /// `skip`, which was just found gone) and deliver `input` to it; or call
    /// [`Player::handle_no_such_session`]. Later [`PlayerOutput::ToSession`]s go to the same
    /// session.
    Join {
        /// Which session.
        target: JoinTarget,
        /// A session that ended while the join was on its way, not to be found again.
        skip: Option<SessionId>,
        /// What to deliver to it.
        input: ToSession,
    },
    /// Deliver this to the session the player last created or was sent to join. If that
    /// session no longer exists, call [`Player::handle_session_gone`].
    ToSession(ToSession),
    /// Close the connection with this reason, after every frame sent before; then call
    /// [`Player::handle_closed`].
    Close(CloseReason),
    /// A `joinOrCreate` try ([`MatchRequest`]): join the best match, or create. The answers
    /// are those of a join or a create; a refused or vanished match is tried again.
    JoinOrCreate(Box<MatchRequest>),
}

/// Tries of a `joinOrCreate` whose matches refused it (full or locked by the time the join
/// arrived) before it creates a session instead.
pub const MAX_MATCH_TRIES: u8 = 4;

/// A `joinOrCreate` on its way, kept for its next try.
#[derive(Debug)]
struct Matching {
    request: crate::command::JoinOrCreate,
    tries: u8,
}

/// Where the player stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Lobby,
    /// A [`PlayerOutput::Create`] is with the host, or the new session's answer on its way.
    Creating,
    /// A join is on its way to a session.
    Joining(JoinTarget),
    /// A resume is on its way to this session.
    Resuming(SessionId),
    /// A `joinOrCreate` is on its way (a join of a match, or a create).
    Matching,
    InSession(SessionId),
    /// A `leaveSession` is on its way to this session.
    Leaving(SessionId),
    /// The connection is gone.
    Closed,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Player {
    /// Its ID: the host's for the connection, a member's once it resumed that member's seat.
    id: PlayerId,
    /// The ID the host gave the connection, for good: what its disconnect names, so that a
    /// session tells the connection a member has now from one a resume replaced.
    connection: PlayerId,
    state: State,
    guard: ConnectionGuard,
    /// Shared: every player of a host has the same (one word per connection, not 64 bytes).
    limits: Arc<Limits>,
    outputs: Outputs,
    /// Commands that arrived while waiting, admitted, in order. `Some` only while it holds
    /// some: rare, so an idle connection carries one word for it and keeps no buffer after a
    /// burst (memory per idle player).
    #[expect(
        clippy::box_collection,
        reason = "a box is one word in every idle connection, a VecDeque four"
    )]
    held: Option<Box<VecDeque<Result<Command, Rejection>>>>,
    /// A close was asked for: nothing more is taken from the client.
    closing: bool,
    /// The extensions the connection asked for in `hello` that the host offers.
    features: Features,
    /// Who the host's connect-time auth found the connection to be (a JWT's `sub`): the
    /// session keeps it with the seat. (An `Arc<String>`, one word: in every connection.)
    subject: Option<Arc<String>>,
    /// The `joinOrCreate` on its way, if one is. (Boxed: one word in every connection.)
    matching: Option<Box<Matching>>,
}

impl Player {
    /// The player of a connection that opened at `now_ms`, with an ID from the host.
    pub fn new(
        id: PlayerId,
        limits: impl Into<Arc<Limits>>,
        config: ConnectionConfig,
        now_ms: u64,
    ) -> Self {
        Player {
            id,
            connection: id,
            state: State::Lobby,
            guard: ConnectionGuard::new(config, now_ms),
            limits: limits.into(),
            outputs: Outputs::default(),
            held: None,
            closing: false,
            features: Features::NONE,
            subject: None,
            matching: None,
        }
    }

    /// The player of a connection the host kept while it lost its memory (the edge's session
    /// object woke from hibernation with the socket still open): connection `connection`,
    /// acting as player `id` (another member's ID after a resume), in `session` or in the lobby,
    /// with the extensions it asked for. Nothing was on its way (a host restores only between
    /// events); its rate limit starts full and its heartbeat from `now_ms`.
    pub fn restore(
        id: PlayerId,
        connection: PlayerId,
        session: Option<SessionId>,
        features: Features,
        limits: impl Into<Arc<Limits>>,
        config: ConnectionConfig,
        now_ms: u64,
    ) -> Self {
        let features = features.intersect(config.features);
        let mut player = Player::new(connection, limits, config, now_ms);
        player.id = id;
        player.features = features;
        player.state = match session {
            Some(session) => State::InSession(session),
            None => State::Lobby,
        };
        player
    }

    /// The player, known as `subject` (what the host's connect-time auth found: a JWT's
    /// `sub`), which its session keeps with its seat: only a connection of the same subject
    /// may resume it.
    pub fn with_subject(mut self, subject: Option<Arc<String>>) -> Self {
        self.subject = subject;
        self
    }

    /// Who the host's connect-time auth found the connection to be, if anyone.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref().map(String::as_str)
    }

    /// The extensions the connection asked for (in `hello`) that the host offers.
    pub fn features(&self) -> Features {
        self.features
    }

    /// The player's ID.
    pub fn id(&self) -> PlayerId {
        self.id
    }

    /// The ID the host gave the connection (what its disconnect names), which
    /// [`Player::id`] is not after a resume.
    pub fn connection(&self) -> PlayerId {
        self.connection
    }

    /// The session the player is a member of (also while its leave is on its way).
    pub fn session(&self) -> Option<SessionId> {
        match self.state {
            State::InSession(id) | State::Leaving(id) => Some(id),
            _ => None,
        }
    }

    /// Whether a create, join or leave is on its way: read no client frames until it is not.
    pub fn is_waiting(&self) -> bool {
        matches!(
            self.state,
            State::Creating
                | State::Joining(_)
                | State::Resuming(_)
                | State::Leaving(_)
                | State::Matching
        )
    }

    /// Whether a session may count this player as a member, or soon will: it is in one, or a
    /// create, join or leave is on its way. (For invariant checks.)
    pub fn is_attached(&self) -> bool {
        !matches!(self.state, State::Lobby | State::Closed)
    }

    /// Whether [`Player::handle_closed`] was called.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The next thing to do, until `None`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<PlayerOutput> {
        self.outputs.pop_front()
    }

    /// A text frame from the client. It takes its rate-limit tokens (one per started 4 KiB,
    /// [`crate::connection_guard::tokens_for`]) before it is read: a refused frame is not
    /// parsed, its refusal names the reply found by a scan of its top level. Returns the
    /// command's name (`"invalid"` if it is none, or the frame closed the connection), for
    /// metrics.
    pub fn handle_text(&mut self, now_ms: u64, text: &str) -> &'static str {
        if self.closing || self.is_closed() {
            return "ignored";
        }
        let mut name = "invalid";
        let limits = &self.limits;
        let admission = self.guard.admit(now_ms, text.len(), || {
            let peeked = command::peek(text, limits);
            name = peeked.unwrap_or("invalid");
            command::reply_of(peeked)
        });
        let command = match admission {
            Admission::Accept => {
                let parsed = command::parse(text, &self.limits);
                name = parsed.as_ref().map_or("invalid", Command::name);
                parsed
            }
            Admission::Refuse(rejection) => Err(rejection),
            Admission::Close(reason) => {
                self.close(reason);
                return name;
            }
        };
        self.take(command);
        name
    }

    /// A binary frame from the client (one rate-limit token): it is told that only text
    /// frames are understood.
    pub fn handle_binary(&mut self, now_ms: u64) {
        if self.closing || self.is_closed() {
            return;
        }
        let command = match self.guard.admit(now_ms, 0, || ServerCommand::Error) {
            Admission::Accept => Err(Rejection::binary_frame()),
            Admission::Refuse(rejection) => Err(rejection),
            Admission::Close(reason) => return self.close(reason),
        };
        self.take(command);
    }

    /// A ping or pong from the client: it is alive.
    pub fn handle_activity(&mut self, now_ms: u64) {
        self.guard.handle_activity(now_ms);
    }

    /// When [`Player::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> u64 {
        self.guard.poll_timeout()
    }

    /// Time has come to `now_ms`: maybe ping, maybe close a silent client.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self.closing || self.is_closed() {
            return;
        }
        match self.guard.handle_timeout(now_ms) {
            Some(TimerAction::Ping) => self.outputs.push_back(PlayerOutput::Ping),
            Some(TimerAction::Close(reason)) => self.close(reason),
            None => {}
        }
    }

    /// An event from the player's session.
    pub fn handle_from_session(&mut self, event: ToPlayer) {
        match (self.state, event) {
            (State::Creating | State::Joining(_), ToPlayer::Joined { session }) => {
                self.state = State::InSession(session);
            }
            (State::Matching, ToPlayer::Joined { session }) => {
                self.matching = None;
                self.state = State::InSession(session);
            }
            (State::Matching, ToPlayer::JoinRefused) => return self.try_match_again(),
            (State::Resuming(_), ToPlayer::Resumed { session, player }) => {
                self.id = player;
                self.state = State::InSession(session);
            }
            (State::Joining(_), ToPlayer::JoinRefused)
            | (State::Resuming(_), ToPlayer::ResumeRefused)
            | (State::Leaving(_), ToPlayer::Left) => {
                self.state = State::Lobby;
            }
            (State::InSession(current), ToPlayer::Kicked { session }) if current == session => {
                self.state = State::Lobby;
                // After whatever it sent the session before it knew: those are answered,
                // then the session lets go of this connection.
                self.outputs
                    .push_back(PlayerOutput::ToSession(ToSession::Disconnect {
                        player: self.connection,
                    }));
            }
            // Answers that find the player elsewhere (closed meanwhile) change nothing.
            _ => return,
        }
        self.release_held();
    }

    /// The host's directory has no session for the join: error 6 for `-1`, 7 for an ID.
    pub fn handle_no_such_session(&mut self) {
        if let State::Resuming(_) = self.state {
            return self.resume_failed();
        }
        if self.state == State::Matching {
            return self.try_match_again();
        }
        let State::Joining(target) = self.state else {
            return;
        };
        let code = match target {
            JoinTarget::Latest => ErrorCode::NoSessionExists,
            JoinTarget::Id(_) => ErrorCode::SessionNotFound,
        };
        self.send(lobby::join_failed(code));
        self.state = State::Lobby;
        self.release_held();
    }

    /// The host could not create the session, for the reason `why` (it holds its maximum, or
    /// found no free ID): error 17, whose message says which.
    pub fn handle_create_refused(&mut self, why: CreateRefusal) {
        if !matches!(self.state, State::Creating | State::Matching) {
            return;
        }
        self.matching = None;
        self.send(lobby::create_refused(&self.limits, why));
        self.state = State::Lobby;
        self.release_held();
    }

    /// The host serves this connection one session only (the edge's direct path: its socket
    /// ends in the object of `here`, `None` for a session not created yet), and the create,
    /// join, resume or `joinOrCreate` on its way is for another (or needs the host's
    /// directory): error 34 in its reply; the player stays in the lobby.
    pub fn handle_other_session(&mut self, here: Option<SessionId>) {
        let command = match self.state {
            State::Creating | State::Joining(_) | State::Matching => ServerCommand::SessionJoin,
            State::Resuming(_) => ServerCommand::SessionResume,
            _ => return,
        };
        self.matching = None;
        self.send(lobby::other_session(command, here));
        self.state = State::Lobby;
        self.release_held();
    }

    /// [`PlayerOutput::ListSessions`] on a connection whose host serves it one session only
    /// (see [`Player::handle_other_session`]): error 34 in `sessionList`, in order.
    pub fn answer_list_elsewhere(&mut self, here: Option<SessionId>) {
        self.send(lobby::other_session(ServerCommand::SessionList, here));
    }

    /// The session an input was delivered to no longer exists (`session` is its ID). A join
    /// of `-1` looks for the next latest session; a join of an ID gets error 7; a member
    /// whose session was lost by the host (a failed task or object) is closed with 1011.
    pub fn handle_session_gone(&mut self, session: SessionId) {
        match self.state {
            State::Joining(JoinTarget::Latest) => {
                self.outputs.push_back(PlayerOutput::Join {
                    target: JoinTarget::Latest,
                    skip: Some(session),
                    // (A password is not carried over to the next latest session.)
                    input: ToSession::Join {
                        player: self.id,
                        features: self.features,
                        subject: self.subject.clone(),
                        password: None,
                        quiet: false,
                    },
                });
            }
            State::Resuming(_) => self.resume_failed(),
            State::Matching => self.try_match_again(),
            State::Joining(JoinTarget::Id(_)) => {
                self.send(lobby::join_failed(ErrorCode::SessionNotFound));
                self.state = State::Lobby;
                self.release_held();
            }
            State::Creating | State::InSession(_) | State::Leaving(_) => {
                self.state = State::Lobby;
                self.close(CloseReason::SessionLost);
            }
            State::Lobby | State::Closed => {}
        }
    }

    /// The connection is gone, whatever the cause (the client closed, the network failed, the
    /// server closed it, its task ended). A player that is or may be in a session leaves it:
    /// the others get `playerLeave`. Call it exactly once per connection; later calls do
    /// nothing.
    pub fn handle_closed(&mut self) {
        if self.is_attached() {
            self.outputs
                .push_back(PlayerOutput::ToSession(ToSession::Disconnect {
                    player: self.connection,
                }));
        }
        self.state = State::Closed;
        self.held = None;
        self.matching = None;
    }

    /// An admitted command (or the reason it was rejected or refused): held while the player
    /// waits, else routed.
    fn take(&mut self, command: Result<Command, Rejection>) {
        if self.is_waiting() {
            let held = self.held.get_or_insert_default();
            if held.len() >= MAX_HELD {
                return self.close(CloseReason::RateLimit);
            }
            held.push_back(command);
            return;
        }
        self.route(command);
    }

    /// Takes the held commands while the player is not waiting.
    fn release_held(&mut self) {
        while !self.is_waiting() && !self.closing {
            let Some(held) = self.held.as_mut() else {
                return;
            };
            let command = held.pop_front();
            if held.is_empty() {
                self.held = None;
            }
            let Some(command) = command else {
                return;
            };
            self.route(command);
        }
    }

    /// One admitted command, with the player not waiting.
    fn route(&mut self, command: Result<Command, Rejection>) {
        let player = self.id;
        match self.state {
            State::InSession(session) => {
                if matches!(command, Ok(Command::LeaveSession)) {
                    self.state = State::Leaving(session);
                }
                self.outputs
                    .push_back(PlayerOutput::ToSession(ToSession::Command {
                        player,
                        command,
                    }));
            }
            State::Lobby => self.lobby(command),
            State::Creating
            | State::Joining(_)
            | State::Resuming(_)
            | State::Leaving(_)
            | State::Matching
            | State::Closed => {
                debug_assert!(false, "route is only called when not waiting");
            }
        }
    }

    /// The lobby's rules: create and join start; everything else is answered here.
    fn lobby(&mut self, command: Result<Command, Rejection>) {
        let frame = match command {
            Err(rejection) => rejection.frame(),
            Ok(Command::CreateSession(new))
                if new.format.data_bytes() > self.limits.max_session_data_bytes =>
            {
                lobby::data_too_large(ServerCommand::SessionJoin, &self.limits)
            }
            Ok(Command::CreateSession(new)) => {
                let NewSession { format, options } = *new;
                self.state = State::Creating;
                self.outputs
                    .push_back(PlayerOutput::Create(Box::new(CreateRequest {
                        player: self.id,
                        format,
                        features: self.features,
                        subject: self.subject.clone(),
                        options,
                    })));
                return;
            }
            Ok(Command::JoinSession(target, password)) => {
                self.state = State::Joining(target);
                self.outputs.push_back(PlayerOutput::Join {
                    target,
                    skip: None,
                    input: ToSession::Join {
                        player: self.id,
                        features: self.features,
                        subject: self.subject.clone(),
                        password,
                        quiet: false,
                    },
                });
                return;
            }
            Ok(Command::Hello(asked)) => {
                self.features = asked.intersect(self.guard.config().features);
                reply::hello(self.id, self.features)
            }
            Ok(Command::ResumeSession(Some(request)))
                if self.guard.config().features.contains(Features::RESUME) =>
            {
                return self.start_resume(request);
            }
            Ok(Command::ResumeSession(_)) => invalid_token(),
            Ok(Command::Ping(t)) => {
                self.outputs.push_back(PlayerOutput::Pong(t));
                return;
            }
            Ok(Command::ListSessions(request)) => {
                self.outputs.push_back(PlayerOutput::ListSessions(request));
                return;
            }
            Ok(Command::JoinOrCreate(request))
                if request.new.format.data_bytes() > self.limits.max_session_data_bytes =>
            {
                lobby::data_too_large(ServerCommand::SessionJoin, &self.limits)
            }
            Ok(Command::JoinOrCreate(request)) => {
                self.state = State::Matching;
                self.matching = Some(Box::new(Matching {
                    request: *request,
                    tries: 0,
                }));
                return self.emit_match();
            }
            Ok(
                command @ (Command::UpdateSession(_)
                | Command::UpdatePlayer(_)
                | Command::LeaveSession
                | Command::KickPlayer(_)
                | Command::LockSession(_)
                | Command::SendMessage(_)
                | Command::SetMetadata(_)),
            ) => lobby::not_in_session(command.reply()),
        };
        self.send(frame);
    }

    fn send(&mut self, frame: ServerFrame) {
        self.outputs.push_back(PlayerOutput::Send(frame));
    }

    /// The next try of the `joinOrCreate` on its way.
    fn emit_match(&mut self) {
        let Some(matching) = &self.matching else {
            return;
        };
        let crate::command::JoinOrCreate { filter, new } = &matching.request;
        let mut options = new.options.clone();
        if options.metadata.is_none() && !filter.is_empty() {
            // So that the next joinOrCreate with this filter finds it.
            let object: serde_json::Map<String, serde_json::Value> =
                filter.iter().cloned().collect();
            options.metadata =
                crate::data::JsonObject::parse(&serde_json::Value::Object(object).to_string()).ok();
        }
        let request = MatchRequest {
            filter: filter.clone(),
            join: ToSession::Join {
                player: self.id,
                features: self.features,
                subject: self.subject.clone(),
                password: None,
                quiet: true,
            },
            create: CreateRequest {
                player: self.id,
                format: new.format.clone(),
                features: self.features,
                subject: self.subject.clone(),
                options,
            },
            create_only: matching.tries >= MAX_MATCH_TRIES,
        };
        self.outputs
            .push_back(PlayerOutput::JoinOrCreate(Box::new(request)));
    }

    /// A match refused the `joinOrCreate` (it filled up or was locked meanwhile) or was gone:
    /// the next try.
    fn try_match_again(&mut self) {
        if let Some(matching) = &mut self.matching {
            matching.tries = matching.tries.saturating_add(1);
        }
        self.emit_match();
    }

    /// Asks session `token.session` for the seat `token` names. Sending a token is asking
    /// for `resume`: the new token comes in the reply.
    fn start_resume(&mut self, request: Box<ResumeRequest>) {
        let session = request.token.session;
        self.features = self.features.union(Features::RESUME);
        self.state = State::Resuming(session);
        self.outputs.push_back(PlayerOutput::Join {
            target: JoinTarget::Id(session.0),
            skip: None,
            input: ToSession::Resume {
                player: self.id,
                request,
                subject: self.subject.clone(),
                features: self.features,
            },
        });
    }

    /// The session of a resume does not exist (any more): the token is no good.
    fn resume_failed(&mut self) {
        self.send(invalid_token());
        self.state = State::Lobby;
        self.release_held();
    }

    fn close(&mut self, reason: CloseReason) {
        if !self.closing {
            self.closing = true;
            self.held = None;
            self.outputs.push_back(PlayerOutput::Close(reason));
        }
    }
}

/// `sessionResume` error 22.
fn invalid_token() -> ServerFrame {
    reply::error(
        ServerCommand::SessionResume,
        ErrorCode::InvalidResumeToken,
        Some("the resume token is not valid: used already, expired, or never issued"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn player() -> Player {
        Player::new(
            PlayerId(1),
            Limits {
                max_sessions: 7,
                ..Limits::default()
            },
            ConnectionConfig::default(),
            0,
        )
    }

    /// The frames the player asks the host to send, as text; panics on anything else.
    fn sent(player: &mut Player) -> Vec<String> {
        let mut frames = Vec::new();
        while let Some(output) = player.poll_output() {
            match output {
                PlayerOutput::Send(frame) => frames.push(frame.as_str().to_owned()),
                other => panic!("unexpected {other:?}"),
            }
        }
        frames
    }

    fn flood_config() -> ConnectionConfig {
        ConnectionConfig {
            commands_per_second: 10,
            command_burst: 32,
            max_refused: 1000,
            ..ConnectionConfig::default()
        }
    }

    /// A `leaveSession` from the lobby (answered with error 2) padded to `bytes` bytes.
    fn padded_leave(bytes: usize) -> String {
        let frame = r#"{"command":"leaveSession","pad":""}"#;
        let pad = "x".repeat(bytes.saturating_sub(frame.len()));
        format!(r#"{{"command":"leaveSession","pad":"{pad}"}}"#)
    }

    /// How many of `count` frames sent at once are carried out (answered with error 2)
    /// before the first refusal (error 18).
    fn carried_out_before_refused(frame: &str, count: usize) -> usize {
        let mut p = Player::new(PlayerId(1), Limits::default(), flood_config(), 0);
        for _ in 0..count {
            p.handle_text(0, frame);
        }
        let replies = sent(&mut p);
        let first_refusal = replies
            .iter()
            .position(|r| r.contains(r#""error":18"#))
            .expect("the flood is refused");
        assert!(replies[..first_refusal]
            .iter()
            .all(|r| r == r#"{"command":"sessionLeave","error":2}"#));
        first_refusal
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_flood_of_big_frames_is_refused_sooner_than_one_of_small_frames() {
        let small = carried_out_before_refused(&padded_leave(100), 100);
        let big = carried_out_before_refused(&padded_leave(64 << 10), 100);
        // A burst of 32 tokens: 32 small frames, or 2 frames of 16 tokens each.
        assert_eq!(small, 32);
        assert_eq!(big, 2);
        assert_eq!(carried_out_before_refused(&padded_leave(4096), 100), 32);
        assert_eq!(carried_out_before_refused(&padded_leave(4097), 100), 16);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_refused_frame_is_not_parsed_and_names_the_reply_of_its_command() {
        let mut p = Player::new(PlayerId(1), Limits::default(), flood_config(), 0);
        for _ in 0..32 {
            p.handle_text(0, r#"{"command":"leaveSession"}"#);
        }
        assert_eq!(sent(&mut p).len(), 32);
        let parses = command::PARSES.with(|n| n.get());
        let big_data = format!(r#"{{"k":"{}"}}"#, "v".repeat(60_000));
        let frames = [
            // (frame, the refusal's reply command, the name returned for metrics)
            ("not json".to_owned(), "error", "invalid"),
            (
                r#"{"command":"updatePlayer","player":{}}"#.to_owned(),
                "playerUpdate",
                "updatePlayer",
            ),
            // The command after 60 KB of data is found as well.
            (
                format!(r#"{{"player":{big_data},"command":"updatePlayer"}}"#),
                "playerUpdate",
                "updatePlayer",
            ),
            (
                r#"{"command":"joinSession","sessionID":"3"}"#.to_owned(),
                "sessionJoin",
                "joinSession",
            ),
            (r#"{"command":"dance"}"#.to_owned(), "error", "invalid"),
            (
                r#"{"command":"leaveSession","command":"leaveSession"}"#.to_owned(),
                "error",
                "invalid",
            ),
            ("[1]".to_owned(), "error", "invalid"),
        ];
        for (frame, reply, name) in &frames {
            assert_eq!(p.handle_text(0, frame), *name, "{frame:.60}");
            let replies = sent(&mut p);
            assert_eq!(replies.len(), 1);
            let expected = format!(r#"{{"command":"{reply}","error":18,"#);
            assert!(
                replies[0].starts_with(&expected),
                "{frame:.60}: {}",
                replies[0]
            );
        }
        assert_eq!(
            command::PARSES.with(|n| n.get()),
            parses,
            "refused frames were parsed"
        );
        // Once a token is back, the next frame is parsed (and invalid JSON is error 9 again).
        p.handle_text(100, "not json");
        assert!(sent(&mut p)[0].starts_with(r#"{"command":"error","error":9,"#));
        assert_eq!(command::PARSES.with(|n| n.get()), parses + 1);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_refused_create_says_why() {
        for (why, says) in [
            (
                CreateRefusal::SessionCap,
                "the server holds its maximum of 7 sessions; try again later",
            ),
            (CreateRefusal::NoFreeId, "no free session ID; try again"),
        ] {
            let mut p = player();
            p.handle_text(0, r#"{"command":"createSession"}"#);
            assert!(matches!(p.poll_output(), Some(PlayerOutput::Create(_))));
            p.handle_create_refused(why);
            let expected = format!(r#"{{"command":"sessionJoin","error":17,"message":"{says}"}}"#);
            assert_eq!(sent(&mut p), [expected]);
            assert!(!p.is_waiting());
        }
    }
}

/// A player's outputs, in order. Most inputs cause one output, which is held apart and costs
/// no allocation; the queue behind it is allocated only when more wait at once, and let go
/// once it is empty, so an idle connection holds no buffer (memory per idle player).
#[derive(Debug, Default)]
struct Outputs {
    first: Option<PlayerOutput>,
    /// `Some` only while it holds outputs.
    #[expect(
        clippy::box_collection,
        reason = "a box is one word in every idle connection, a VecDeque four"
    )]
    rest: Option<Box<VecDeque<PlayerOutput>>>,
}

impl Outputs {
    fn push_back(&mut self, output: PlayerOutput) {
        if self.first.is_none() {
            self.first = Some(output);
        } else {
            self.rest.get_or_insert_default().push_back(output);
        }
    }

    fn pop_front(&mut self) -> Option<PlayerOutput> {
        let output = self.first.take()?;
        self.first = self.rest.as_mut().and_then(|rest| rest.pop_front());
        if self.rest.as_ref().is_some_and(|rest| rest.is_empty()) {
            self.rest = None;
        }
        Some(output)
    }
}
