//! Errors: the server's error replies ([`SessionError`]), closed connections
//! ([`ConnectionClosedError`]), lost seats ([`SessionLostError`]), and [`Error`], one of them.

use std::sync::Arc;

/// What every error code of the protocol means (PROTOCOL.md, "Error codes"), in the JavaScript
/// client's words (its `ERROR_MEANINGS`). Code 4 has two
/// meanings, told apart by the reply command it comes in: see [`error_meaning`].
pub const ERROR_MEANINGS: &[(u64, &str)] = &[
    (2, "not in a session"),
    (4, "createSession while in a session (sessionJoin), or playerData whose key structure differs from the session default (playerUpdate)"),
    (5, "joinSession while in a session"),
    (6, "joinSession -1 while no session exists"),
    (7, "no session with that ID"),
    (9, "the frame is not valid JSON, or repeats a protocol field"),
    (10, "the frame is JSON but not an object"),
    (11, "no `command` field, or it is not a string"),
    (12, "unknown command"),
    (13, "a field has the wrong type or is missing"),
    (14, "a binary frame: commands are JSON text frames"),
    (15, "objects and arrays nested deeper than the depth limit"),
    (16, "joinSession to a session that holds its maximum of players"),
    (17, "createSession while the server holds its maximum of sessions"),
    (18, "more commands per second than allowed; the command was not carried out"),
    (19, "the session's data would grow larger than its limit; nothing changes"),
    (20, "egress budget exceeded: this member broadcast too much too fast; nothing was broadcast"),
    (21, "hello is answered in the lobby only: send it before creating or joining"),
    (22, "the resume token is not valid: used already, expired, or never issued"),
    (23, "resumeSession while in a session: resuming is for a new connection"),
    (24, "the player to resume is still connected (sent by older servers; current ones take the seat over); try again in a moment"),
    (25, "resumeSession counted more events received than the session sent that seat; nothing changes"),
    (26, "the session has a password: joinSession needs the right one"),
    (27, "too many wrong passwords for this session lately: try again in a second"),
    (28, "the session's host locked it: it takes no new players"),
    (29, "only the session's host may do that"),
    (30, "kickPlayer names no other member of the session"),
    (31, "sendMessage names a recipient that is no member of the session; nothing was sent"),
    (32, "listSessions from a player in a session: sessions are listed from the lobby"),
    (33, "the server could not read its list of sessions just now; try again"),
    (34, "this connection is on one session's direct path (/session/…): for another session, -1, listSessions or joinOrCreate, connect again to /session/<id>, /session/new or /"),
];

/// What each WebSocket close code the server sends means (PROTOCOL.md, "Close codes").
pub const CLOSE_MEANINGS: &[(u16, &str)] = &[
    (1000, "closed normally"),
    (1001, "the server is shutting down"),
    (1002, "a frame the WebSocket protocol does not allow from a client"),
    (1005, "closed without a close code"),
    (1006, "the connection was lost"),
    (1007, "a text frame that is not valid UTF-8"),
    (1008, "the client kept sending commands over its rate limit"),
    (1009, "a message larger than the maximum"),
    (1011, "the server lost the session (its task or object failed, or could not be reached)"),
    (1012, "edge host: the link to the session broke (its object restarted); the seat is kept: resume"),
    (1013, "edge host: a player ID collision; connect again"),
    (4000, "heartbeat timeout: nothing heard from the client, not even a pong"),
    (4001, "the client stopped reading and its send queue filled up"),
    (4002, "the server neared its memory budget and this connection held one of the largest send backlogs"),
    (4003, "replaced: this player's seat was resumed on another connection"),
];

/// The close codes after which a client in a session reconnects and resumes its seat: the
/// connection was lost (1006), or the server closed it for a reason a new connection does not
/// repeat (1011, 1012-1014, 4000-4002). Every other close is final: 1000 and 1005 (a deliberate
/// close), 1001 (the server is shutting down), 1002, 1007, 1008, 1009 (this client broke a
/// rule, and would again), 4003 (the seat was resumed elsewhere, with this client's token).
/// The same list as the JavaScript client's.
pub const RECONNECT_CLOSE_CODES: &[u16] = &[1006, 1011, 1012, 1013, 1014, 4000, 4001, 4002];

/// The meaning of error `code` in the reply command `command` it came in.
pub fn error_meaning(code: u64, command: &str) -> &'static str {
    match (code, command) {
        (4, "sessionJoin") => "createSession while in a session; nothing is created",
        (4, "playerUpdate") => {
            "playerData's key structure differs from the session's default; nothing changes"
        }
        _ => ERROR_MEANINGS
            .iter()
            .find(|(c, _)| *c == code)
            .map_or("unknown error", |(_, meaning)| meaning),
    }
}

/// The meaning of close code `code`.
pub fn close_meaning(code: u16) -> &'static str {
    CLOSE_MEANINGS
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("closed", |(_, meaning)| meaning)
}

/// An error reply of the server: `code` is the protocol's error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("error {code}: {}", server_message.as_deref().unwrap_or(meaning))]
pub struct SessionError {
    /// The error code (2-34).
    pub code: u64,
    /// The reply command it came in (`sessionJoin`, `playerUpdate`, …, or `error`).
    pub command: String,
    /// What the code means (from [`ERROR_MEANINGS`]).
    pub meaning: &'static str,
    /// The server's own message, for codes 9 and up; `None` for 2-7.
    pub server_message: Option<String>,
}

impl SessionError {
    /// The error `code` in reply `command`, with the server's `message` if it sent one.
    pub fn new(code: u64, command: &str, server_message: Option<String>) -> SessionError {
        SessionError {
            code,
            command: command.to_owned(),
            meaning: error_meaning(code, command),
            server_message,
        }
    }
}

/// A request that could not be answered because the connection closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("connection closed ({code}{}): {meaning}", if reason.is_empty() { String::new() } else { format!(": {reason}") })]
pub struct ConnectionClosedError {
    /// The WebSocket close code (1006: lost without a close frame).
    pub code: u16,
    /// The close frame's reason, or what went wrong.
    pub reason: String,
    /// What the code means (from [`CLOSE_MEANINGS`]).
    pub meaning: &'static str,
}

impl ConnectionClosedError {
    /// A close with `code` and `reason`.
    pub fn new(code: u16, reason: &str) -> ConnectionClosedError {
        ConnectionClosedError {
            code,
            reason: reason.to_owned(),
            meaning: close_meaning(code),
        }
    }
}

/// Why a seat could not be taken back after a drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LostReason {
    /// The server refused the resume (error 22: the grace period ended, or the session is
    /// gone); the client is connected, in the lobby.
    Rejected,
    /// No resume within `max_attempts` / `max_time`; the client is closed.
    Timeout,
    /// An attempt was closed with a final close code; the client is closed.
    Closed,
}

impl LostReason {
    /// The JavaScript client's name for it: `rejected`, `timeout`, `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            LostReason::Rejected => "rejected",
            LostReason::Timeout => "timeout",
            LostReason::Closed => "closed",
        }
    }
}

/// The seat in a session could not be taken back after a drop: requests made while the client
/// was reconnecting fail with this, and [`crate::Event::Lost`] carries the same cause.
#[derive(Clone, Debug, thiserror::Error)]
#[error("session {} lost: {} ({cause})", session_id.map_or("?".to_owned(), |id| id.to_string()), reason.as_str())]
pub struct SessionLostError {
    /// Why.
    pub reason: LostReason,
    /// The session that was lost.
    pub session_id: Option<u64>,
    /// The [`SessionError`] (rejected) or [`ConnectionClosedError`] (timeout, closed) behind it.
    pub cause: Box<Error>,
}

/// Everything a request (or the client) can fail with.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error code.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The connection closed before the reply came (or was closed already).
    #[error(transparent)]
    ConnectionClosed(#[from] ConnectionClosedError),
    /// The request waited for a resume that failed.
    #[error(transparent)]
    SessionLost(#[from] SessionLostError),
    /// Data given to a request did not serialize to JSON.
    #[error("data does not serialize to JSON: {0}")]
    Data(Arc<serde_json::Error>),
    /// The server sent a frame this client cannot read (not JSON, no `command`, a field of
    /// the wrong type, an unknown command, a reply out of order).
    #[error("unexpected frame from the server: {0}")]
    Protocol(String),
    /// The WebSocket failed (connecting, or a transport error).
    #[error("WebSocket: {0}")]
    WebSocket(Arc<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The server's error code, if this is an error reply.
    pub fn code(&self) -> Option<u64> {
        match self {
            Error::Session(e) => Some(e.code),
            _ => None,
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::Data(Arc::new(e))
    }
}
