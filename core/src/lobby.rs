//! The frames a player in no session is answered with; the rules that pick them are the
//! [`crate::Player`] machine's.

use crate::error::ErrorCode;
use crate::ids::SessionId;
use crate::limits::Limits;
use crate::messages::CreateRefusal;
use crate::reply::{self, ServerCommand, ServerFrame};

/// Error 2: a session command from a player in no session.
pub(crate) fn not_in_session(command: ServerCommand) -> ServerFrame {
    reply::error(command, ErrorCode::NotInSession, None)
}

/// The reply to a join whose session could not be found: `code` is
/// [`ErrorCode::NoSessionExists`] or [`ErrorCode::SessionNotFound`].
pub(crate) fn join_failed(code: ErrorCode) -> ServerFrame {
    reply::error(ServerCommand::SessionJoin, code, None)
}

/// Error 17: a createSession the host refuses, saying why.
pub(crate) fn create_refused(limits: &Limits, why: CreateRefusal) -> ServerFrame {
    let message = match why {
        CreateRefusal::SessionCap => format!(
            "the server holds its maximum of {} sessions; try again later",
            limits.max_sessions
        ),
        CreateRefusal::NoFreeId => "no free session ID; try again".to_owned(),
    };
    reply::error(
        ServerCommand::SessionJoin,
        ErrorCode::TooManySessions,
        Some(&message),
    )
}

/// Error 19 for a command whose data would pass the session's data limit.
pub(crate) fn data_too_large(command: ServerCommand, limits: &Limits) -> ServerFrame {
    let message = format!(
        "the session's data would exceed {} bytes; nothing was changed",
        limits.max_session_data_bytes
    );
    reply::error(command, ErrorCode::SessionDataTooLarge, Some(&message))
}

/// Error 34 in `command`'s reply: the connection is on the direct path of `session` (`None`: of
/// a session not created yet), and the command would take it elsewhere.
pub(crate) fn other_session(command: ServerCommand, session: Option<SessionId>) -> ServerFrame {
    let here = match session {
        Some(id) => format!("session {id}"),
        None => "a new session".to_owned(),
    };
    let message = format!(
        "this connection is on the direct path of {here}: connect to /session/<id> to join or \
         resume another session, to /session/new to create one, or to / for joinSession -1, \
         listSessions and joinOrCreate"
    );
    reply::error(command, ErrorCode::OtherSession, Some(&message))
}
