//! What a connection that is in no session gets for each command.
//!
//! The host carries out [`LobbyAction::Create`] and [`LobbyAction::Join`] (allocating an ID or
//! finding the session), and sends [`LobbyAction::Reply`] frames as they are.

use crate::command::{Command, JoinTarget, Rejection, SessionFormat};
use crate::error::ErrorCode;
use crate::limits::Limits;
use crate::reply::{self, Frame, ReplyCommand};

/// What the host does with a command from a player in no session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LobbyAction {
    /// Create a session in this format with the player as its first member.
    Create(SessionFormat),
    /// Add the player to this session, or answer [`join_failed`].
    Join(JoinTarget),
    /// Send this frame to the player; nothing else happens.
    Reply(Frame),
}

/// The action for `command` from a player in no session.
pub fn handle(command: Result<Command, Rejection>, limits: &Limits) -> LobbyAction {
    let not_in_session =
        |reply| LobbyAction::Reply(reply::error(reply, ErrorCode::NotInSession, None));
    match command {
        Err(rejection) => LobbyAction::Reply(rejection.frame()),
        Ok(Command::CreateSession(format))
            if format.data_bytes() > limits.max_session_data_bytes =>
        {
            LobbyAction::Reply(data_too_large(ReplyCommand::SessionJoin, limits))
        }
        Ok(Command::CreateSession(format)) => LobbyAction::Create(format),
        Ok(Command::JoinSession(target)) => LobbyAction::Join(target),
        Ok(Command::UpdateSession(_)) => not_in_session(ReplyCommand::SessionUpdate),
        Ok(Command::UpdatePlayer(_)) => not_in_session(ReplyCommand::PlayerUpdate),
        Ok(Command::LeaveSession) => not_in_session(ReplyCommand::SessionLeave),
    }
}

/// The reply to a join whose session could not be found: `code` is
/// [`ErrorCode::NoSessionExists`] or [`ErrorCode::SessionNotFound`].
pub fn join_failed(code: ErrorCode) -> Frame {
    reply::error(ReplyCommand::SessionJoin, code, None)
}

/// The reply to a createSession the host refuses because it has
/// [`Limits::max_sessions`] sessions already.
pub fn create_refused(limits: &Limits) -> Frame {
    let message = format!(
        "the server holds its maximum of {} sessions; try again later",
        limits.max_sessions
    );
    reply::error(
        ReplyCommand::SessionJoin,
        ErrorCode::TooManySessions,
        Some(&message),
    )
}

/// Error 19 for a command whose data would pass the session's data limit.
pub(crate) fn data_too_large(command: ReplyCommand, limits: &Limits) -> Frame {
    let message = format!(
        "the session's data would exceed {} bytes; nothing was changed",
        limits.max_session_data_bytes
    );
    reply::error(command, ErrorCode::SessionDataTooLarge, Some(&message))
}
