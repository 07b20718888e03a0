//! What a [`crate::Player`] machine and a [`crate::Session`] machine say to each other.
//!
//! A host carries these between the two (over a channel, a socket, a Durable Object request)
//! and decides nothing by them: the player machine says which session input to deliver, the
//! session machine says which player event to deliver back, and each side acts on what it
//! receives. The variants are public so that a host that crosses a process boundary can map
//! them onto its transport (the edge host: a join is a request for a socket, a command is a
//! text message on it, a disconnect is its close), not so that it can interpret them.

use std::sync::Arc;

use crate::access::{Password, SessionOptions};
use crate::command::{Command, Rejection, SessionFormat};
use crate::features::{Features, ResumeRequest};
use crate::ids::{PlayerId, SessionId};

/// An input for a session, from one of its players (or would-be players).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToSession {
    /// The player asks to join. The session answers [`ToPlayer::Joined`] or
    /// [`ToPlayer::JoinRefused`].
    Join {
        /// Who joins.
        player: PlayerId,
        /// The extensions its connection asked for (`resume`: it is given a token).
        features: Features,
        /// Who its connection is ([`crate::Player::with_subject`]).
        subject: Option<Arc<String>>,
        /// The password its `joinSession` carried.
        password: Option<Password>,
        /// A `joinOrCreate`'s try: a refusal sends no frame (the player tries another
        /// session, or creates one), only [`ToPlayer::JoinRefused`].
        quiet: bool,
    },
    /// A new connection, as player `player`, asks to take back the seat `token` names. The
    /// session answers [`ToPlayer::Resumed`] (after [`crate::Output::Rebind`]) or
    /// [`ToPlayer::ResumeRefused`].
    Resume {
        /// The new connection's player ID (given up once resumed).
        player: PlayerId,
        /// The token it sent and what it received. (Boxed: a token would double the size of
        /// every input.)
        request: Box<ResumeRequest>,
        /// Who the new connection is: it must be the seat's subject.
        subject: Option<Arc<String>>,
        /// The extensions the new connection asked for (`resume` among them): the seat's
        /// from now on.
        features: Features,
    },
    /// A member's command, or the rejection of its frame (to be answered in order with the
    /// session's other replies). A `leaveSession` is answered [`ToPlayer::Left`].
    Command {
        /// The member.
        player: PlayerId,
        /// What it sent.
        command: Result<Command, Rejection>,
    },
    /// The player's connection is gone without a leave: it stops being a member, or, if it
    /// asked for `resume`, it is away for the grace period. Nothing is answered (no one is
    /// listening).
    Disconnect {
        /// The connection that is gone, by the ID its host gave it ([`crate::Player`] keeps
        /// it after a resume): a member's own, or the one it last resumed from. That of a
        /// connection a later resume replaced concerns no one.
        player: PlayerId,
    },
}

impl ToSession {
    /// The player the input comes from.
    pub fn player(&self) -> PlayerId {
        match self {
            ToSession::Join { player, .. }
            | ToSession::Resume { player, .. }
            | ToSession::Command { player, .. }
            | ToSession::Disconnect { player } => *player,
        }
    }

    /// Whether the sender's machine waits for a [`ToPlayer`] answer before it takes its next
    /// command (a join or a leave). Hosts that carry answers over a one-shot channel open one
    /// for these.
    pub fn expects_answer(&self) -> bool {
        matches!(
            self,
            ToSession::Join { .. }
                | ToSession::Resume { .. }
                | ToSession::Command {
                    command: Ok(Command::LeaveSession),
                    ..
                }
        )
    }
}

/// What a player asks for to create a session: the host allocates its ID and creates it with
/// [`crate::Session::create`], or tells the player [`crate::Player::handle_create_refused`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateRequest {
    /// The creator, the session's first member.
    pub player: PlayerId,
    /// Its sessionData, default playerData and spelling (the size already checked).
    pub format: SessionFormat,
    /// The extensions the creator's connection asked for.
    pub features: Features,
    /// Who the creator's connection is ([`crate::Player::with_subject`]).
    pub subject: Option<Arc<String>>,
    /// Its `options`. A host gives a private session ([`SessionOptions::private`]) a random
    /// ID and leaves it out of `joinSession -1`.
    pub options: SessionOptions,
}

/// A `joinOrCreate` try ([`crate::PlayerOutput::JoinOrCreate`]): the host looks for the best
/// public session matching `filter` that has room ([`crate::Directory::best_match`]) and
/// delivers `join` to it, as for a [`crate::PlayerOutput::Join`] of its ID; if there is none,
/// or `create_only`, it creates `create` as for a [`crate::PlayerOutput::Create`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchRequest {
    /// Metadata keys and values.
    pub filter: Vec<(String, serde_json::Value)>,
    /// The quiet join to deliver to a match.
    pub join: ToSession,
    /// The session to create instead.
    pub create: CreateRequest,
    /// Earlier tries found sessions that refused (full or locked by then): create now.
    pub create_only: bool,
}

impl MatchRequest {
    /// What to carry out for this try, given the session the host's directory found for
    /// `filter` ([`crate::Directory::best_match`]; not asked when `create_only`): a join of
    /// it, or the create. The host then does as for that output.
    pub fn into_output(self, found: Option<SessionId>) -> crate::PlayerOutput {
        match found.filter(|_| !self.create_only) {
            Some(id) => crate::PlayerOutput::Join {
                target: crate::JoinTarget::Id(id.0),
                skip: None,
                input: self.join,
            },
            None => crate::PlayerOutput::Create(Box::new(self.create)),
        }
    }
}

/// Why a host did not create the session a player asked for
/// ([`crate::Player::handle_create_refused`]); both are error 17, with their own message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateRefusal {
    /// The host holds [`crate::Limits::max_sessions`] sessions already.
    SessionCap,
    /// The host found no free session ID: its counter ran out (native), or every random ID
    /// it drew was taken (edge). Another try may find one.
    NoFreeId,
}

/// An event for a player machine, from its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToPlayer {
    /// The player is a member of `session` (its `sessionJoin` was sent before this).
    Joined {
        /// The session.
        session: SessionId,
    },
    /// The session is full: the player stays in the lobby (its error 16 was sent before this).
    JoinRefused,
    /// The player left after its `leaveSession` (its `sessionLeave` was sent before this).
    Left,
    /// The connection is member `player` of `session` again (its `sessionResume` and what it
    /// missed were sent before this): it acts as that player from now on.
    Resumed {
        /// The session.
        session: SessionId,
        /// The player ID it took back.
        player: PlayerId,
    },
    /// The resume was refused (its `sessionResume` error was sent before this): the player
    /// stays in the lobby.
    ResumeRefused,
    /// The session's host removed the player (its `sessionLeave` was sent before this): it
    /// is in the lobby, and tells `session` so with a [`ToSession::Disconnect`], after which
    /// the session forgets its connection. (What it sent the session meanwhile is answered
    /// as from a player in no session.)
    Kicked {
        /// The session it was removed from.
        session: SessionId,
    },
}
