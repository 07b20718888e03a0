//! Every error code the server sends, in one place.
//!
//! Codes 2 to 7 are the original sessionserver's and keep its meaning and reply shape
//! (`{"command":…,"error":N}`, nothing else). Codes from 9 on are ours and come with a
//! human-readable `message`. The original's 1, 3 and 8 reported inconsistencies of its own
//! state; they cannot happen here and are never sent.

/// An error code, as sent in the `error` field of a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 2: `updateSession`, `updatePlayer` or `leaveSession` from a player in no session.
    NotInSession,
    /// 4 (in `sessionJoin`): `createSession` from a player already in a session; nothing is
    /// created.
    CreateWhileInSession,
    /// 4 (in `playerUpdate`): the playerData's key structure differs from the session's
    /// default playerData; nothing changes and nothing is broadcast.
    PlayerDataMismatch,
    /// 5: `joinSession` from a player already in a session.
    JoinWhileInSession,
    /// 6: `joinSession` with `sessionID: -1` while no session exists.
    NoSessionExists,
    /// 7: `joinSession` with the ID of no existing session.
    SessionNotFound,
    /// 9: the frame is not valid JSON (or repeats a field).
    InvalidJson,
    /// 10: the frame is JSON but not an object.
    NotAnObject,
    /// 11: the frame has no `command` field, or it is not a string.
    MissingCommand,
    /// 12: the `command` names no client command.
    UnknownCommand,
    /// 13: a field of a known command has the wrong type or is missing: `sessionID` not an
    /// integer, data not an object, both spellings of one field given, …
    InvalidField,
    /// 14: a binary WebSocket frame; the protocol is JSON text frames only.
    BinaryFrame,
    /// 15: the frame nests objects and arrays deeper than the depth limit
    /// ([`crate::Limits::max_depth`]).
    TooDeep,
    /// 16: joinSession to a session that has as many players as it may
    /// ([`crate::Limits::max_players_per_session`]).
    SessionFull,
    /// 17: createSession while the server has as many sessions as it may.
    TooManySessions,
    /// 18: more commands per second than the connection may send; the command was not
    /// carried out. A client that keeps going is disconnected (close code 1008).
    RateLimited,
    /// 19: the command would make the session's data (sessionData, default playerData and
    /// every member's playerData) larger than [`crate::Limits::max_session_data_bytes`];
    /// nothing changes.
    SessionDataTooLarge,
    /// 20: an `updatePlayer` or `updateSession` whose broadcast the sender's egress budget
    /// ([`crate::Limits::egress_bytes_per_second`]: bytes × recipients per second) cannot
    /// take now; nothing was broadcast and nothing changes.
    EgressBudget,
    /// 21: `hello` from a player in a session (or on its way into one): extensions are
    /// negotiated in the lobby; nothing changes.
    HelloNotInLobby,
    /// 22 (in `sessionResume`): the resume token is not valid: malformed, made up, already
    /// used, expired (its grace period is over), or its session is gone.
    InvalidResumeToken,
    /// 23 (in `sessionResume`): `resumeSession` from a player already in a session.
    ResumeWhileInSession,
    /// 25 (in `sessionResume`): `received` counts more events than the session sent that
    /// seat since its last `sessionJoin` or `sessionResume`; nothing changes, the token is
    /// still good.
    ReceivedTooMany,
    /// 26 (in `sessionJoin`): the session has a password, and the `joinSession` carried none
    /// or another one.
    WrongPassword,
    /// 27 (in `sessionJoin`): the session had too many wrong passwords lately; none is
    /// checked until its allowance has refilled (PROTOCOL.md, "Who may play").
    TooManyGuesses,
    /// 28 (in `sessionJoin`): the session's host locked it: it takes no new members.
    SessionLocked,
    /// 29: `kickPlayer`, `lockSession`, or (in a session with `hostOnlySessionUpdates`)
    /// `updateSession` from a member that is not the session's host; nothing changes.
    NotHost,
    /// 30 (in `playerLeave`): `kickPlayer` names no other member of the session.
    NoSuchMember,
    /// 31 (in `messageSent`): `sendMessage`'s `to` names a player that is no member of the
    /// session; nothing is sent.
    NoSuchRecipient,
    /// 32 (in `sessionList`): `listSessions` from a player in a session: sessions are listed
    /// from the lobby.
    ListWhileInSession,
    /// 33 (in `sessionList`): the host could not read its list of sessions just now (the edge
    /// host's registry did not answer); try again.
    ListUnavailable,
    /// 34 (in the reply of `createSession`, `joinSession`, `resumeSession`, `joinOrCreate` or
    /// `listSessions`): the connection is on the edge host's direct path, a socket that ends in
    /// one session's object, and the command would take it to another session (or needs the
    /// registry); nothing changes. The client connects again, on the session's own URL or `/`.
    OtherSession,
}

impl ErrorCode {
    /// The highest code the server sends. (24 is sent no more: a resume of a player whose
    /// old connection still seems open takes its seat over.)
    pub const MAX: u16 = 34;

    /// The number sent on the wire.
    pub const fn code(self) -> u16 {
        match self {
            ErrorCode::NotInSession => 2,
            ErrorCode::CreateWhileInSession => 4,
            ErrorCode::PlayerDataMismatch => 4,
            ErrorCode::JoinWhileInSession => 5,
            ErrorCode::NoSessionExists => 6,
            ErrorCode::SessionNotFound => 7,
            ErrorCode::InvalidJson => 9,
            ErrorCode::NotAnObject => 10,
            ErrorCode::MissingCommand => 11,
            ErrorCode::UnknownCommand => 12,
            ErrorCode::InvalidField => 13,
            ErrorCode::BinaryFrame => 14,
            ErrorCode::TooDeep => 15,
            ErrorCode::SessionFull => 16,
            ErrorCode::TooManySessions => 17,
            ErrorCode::RateLimited => 18,
            ErrorCode::SessionDataTooLarge => 19,
            ErrorCode::EgressBudget => 20,
            ErrorCode::HelloNotInLobby => 21,
            ErrorCode::InvalidResumeToken => 22,
            ErrorCode::ResumeWhileInSession => 23,
            ErrorCode::ReceivedTooMany => 25,
            ErrorCode::WrongPassword => 26,
            ErrorCode::TooManyGuesses => 27,
            ErrorCode::SessionLocked => 28,
            ErrorCode::NotHost => 29,
            ErrorCode::NoSuchMember => 30,
            ErrorCode::NoSuchRecipient => 31,
            ErrorCode::ListWhileInSession => 32,
            ErrorCode::ListUnavailable => 33,
            ErrorCode::OtherSession => 34,
        }
    }

    /// Whether this is one of the original server's codes, whose replies carry no `message`.
    pub const fn is_original(self) -> bool {
        self.code() < 9
    }
}
