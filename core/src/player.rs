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

use crate::close::CloseReason;
use crate::command::{self, Command, JoinTarget, Rejection};
use crate::connection_guard::{Admission, ConnectionConfig, ConnectionGuard, TimerAction};
use crate::error::ErrorCode;
use crate::ids::{PlayerId, SessionId};
use crate::limits::Limits;
use crate::lobby;
use crate::messages::{CreateRefusal, CreateRequest, ToPlayer, ToSession};
use crate::reply::{Frame, ReplyCommand};

/// Client commands a player holds while it waits for its session (for hosts that cannot stop
/// reading). More closes the connection with 1008.
pub const MAX_HELD: usize = 256;

/// Something the host must do for a player, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlayerOutput {
    /// Send this frame to the client, after everything sent before.
    Send(Frame),
    /// Send a WebSocket ping (the heartbeat).
    Ping,
    /// Create a session: allocate an ID and run [`crate::Session::create`] with this request,
    /// or call [`Player::handle_create_refused`] when the host holds its maximum of sessions
    /// ([`CreateRefusal::SessionCap`]) or finds no free ID ([`CreateRefusal::NoFreeId`]).
    Create(CreateRequest),
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
}

/// Where the player stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Lobby,
    /// A [`PlayerOutput::Create`] is with the host, or the new session's answer on its way.
    Creating,
    /// A join is on its way to a session.
    Joining(JoinTarget),
    InSession(SessionId),
    /// A `leaveSession` is on its way to this session.
    Leaving(SessionId),
    /// The connection is gone.
    Closed,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Player {
    id: PlayerId,
    state: State,
    guard: ConnectionGuard,
    limits: Limits,
    outputs: VecDeque<PlayerOutput>,
    /// Commands that arrived while waiting, admitted, in order.
    held: VecDeque<Result<Command, Rejection>>,
    /// A close was asked for: nothing more is taken from the client.
    closing: bool,
}

impl Player {
    /// The player of a connection that opened at `now_ms`, with an ID from the host.
    pub fn new(id: PlayerId, limits: Limits, config: ConnectionConfig, now_ms: u64) -> Self {
        Player {
            id,
            state: State::Lobby,
            guard: ConnectionGuard::new(config, now_ms),
            limits,
            outputs: VecDeque::new(),
            held: VecDeque::new(),
            closing: false,
        }
    }

    /// The player's ID.
    pub fn id(&self) -> PlayerId {
        self.id
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
            State::Creating | State::Joining(_) | State::Leaving(_)
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

    /// A text frame from the client. Returns the command's name (`"invalid"` if it is none),
    /// for metrics.
    pub fn handle_text(&mut self, now_ms: u64, text: &str) -> &'static str {
        if self.closing || self.is_closed() {
            return "ignored";
        }
        let parsed = command::parse(text, &self.limits);
        let name = parsed.as_ref().map_or("invalid", Command::name);
        self.admit(now_ms, parsed);
        name
    }

    /// A binary frame from the client: it is told that only text frames are understood.
    pub fn handle_binary(&mut self, now_ms: u64) {
        if self.closing || self.is_closed() {
            return;
        }
        self.admit(now_ms, Err(Rejection::binary_frame()));
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
            (State::Joining(_), ToPlayer::JoinRefused) | (State::Leaving(_), ToPlayer::Left) => {
                self.state = State::Lobby;
            }
            // Answers that find the player elsewhere (closed meanwhile) change nothing.
            _ => return,
        }
        self.release_held();
    }

    /// The host's directory has no session for the join: error 6 for `-1`, 7 for an ID.
    pub fn handle_no_such_session(&mut self) {
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
        if self.state != State::Creating {
            return;
        }
        self.send(lobby::create_refused(&self.limits, why));
        self.state = State::Lobby;
        self.release_held();
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
                    input: ToSession::Join { player: self.id },
                });
            }
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
                    player: self.id,
                }));
        }
        self.state = State::Closed;
        self.held.clear();
    }

    fn admit(&mut self, now_ms: u64, parsed: Result<Command, Rejection>) {
        let command = match self.guard.admit(now_ms, Rejection::reply_for(&parsed)) {
            Admission::Accept => parsed,
            Admission::Refuse(rejection) => Err(rejection),
            Admission::Close(reason) => return self.close(reason),
        };
        if self.is_waiting() {
            if self.held.len() >= MAX_HELD {
                return self.close(CloseReason::RateLimit);
            }
            self.held.push_back(command);
            return;
        }
        self.route(command);
    }

    /// Takes the held commands while the player is not waiting.
    fn release_held(&mut self) {
        while !self.is_waiting() && !self.closing {
            let Some(command) = self.held.pop_front() else {
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
            State::Creating | State::Joining(_) | State::Leaving(_) | State::Closed => {
                debug_assert!(false, "route is only called when not waiting");
            }
        }
    }

    /// The lobby's rules: create and join start; everything else is answered here.
    fn lobby(&mut self, command: Result<Command, Rejection>) {
        let frame = match command {
            Err(rejection) => rejection.frame(),
            Ok(Command::CreateSession(format))
                if format.data_bytes() > self.limits.max_session_data_bytes =>
            {
                lobby::data_too_large(ReplyCommand::SessionJoin, &self.limits)
            }
            Ok(Command::CreateSession(format)) => {
                self.state = State::Creating;
                self.outputs.push_back(PlayerOutput::Create(CreateRequest {
                    player: self.id,
                    format,
                }));
                return;
            }
            Ok(Command::JoinSession(target)) => {
                self.state = State::Joining(target);
                self.outputs.push_back(PlayerOutput::Join {
                    target,
                    skip: None,
                    input: ToSession::Join { player: self.id },
                });
                return;
            }
            Ok(
                command @ (Command::UpdateSession(_)
                | Command::UpdatePlayer(_)
                | Command::LeaveSession),
            ) => lobby::not_in_session(command.reply()),
        };
        self.send(frame);
    }

    fn send(&mut self, frame: Frame) {
        self.outputs.push_back(PlayerOutput::Send(frame));
    }

    fn close(&mut self, reason: CloseReason) {
        if !self.closing {
            self.closing = true;
            self.held.clear();
            self.outputs.push_back(PlayerOutput::Close(reason));
        }
    }
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
