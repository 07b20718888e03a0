//! Encoding server frames.
//!
//! Field order is the original's: `command`, `error`, `sessionID`, `playerID`, then the data.
//! Data objects are spliced in as the text the client sent. A frame is encoded once and its
//! bytes are shared (reference-counted) by every recipient.

use std::fmt;

use bytes::Bytes;

use crate::data::{JsonObject, Spelling};
use crate::error::ErrorCode;
use crate::features::{Features, ResumeToken};
use crate::ids::{PlayerId, SessionId};

/// One encoded server frame: UTF-8 JSON text, cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerFrame {
    bytes: Bytes,
    command: ServerCommand,
    error: u16,
}

impl ServerFrame {
    /// The frame's bytes, to hand to a socket.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The frame as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes).expect("frames are built from UTF-8 text only")
    }

    /// Its `command` field, for metrics.
    pub fn command(&self) -> ServerCommand {
        self.command
    }

    /// Its `error` field, for metrics.
    pub fn error(&self) -> u16 {
        self.error
    }
}

impl fmt::Debug for ServerFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `command` of every frame the server sends: the replies, and the events that are not
/// replies (`playerJoin`, `playerLeave`, broadcasts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerCommand {
    /// Reply to createSession and joinSession.
    SessionJoin,
    /// Reply to updateSession, and its broadcast.
    SessionUpdate,
    /// Reply to leaveSession.
    SessionLeave,
    /// A player joined (or, to a joiner, was already there).
    PlayerJoin,
    /// Reply to updatePlayer, and its broadcast.
    PlayerUpdate,
    /// A player left.
    PlayerLeave,
    /// The reply to a frame that names no known command.
    Error,
    /// Reply to hello.
    Hello,
    /// Reply to resumeSession.
    SessionResume,
    /// Reply to lockSession, and what members with the `host` feature are told of it.
    SessionLock,
    /// The session's host changed (members with the `host` feature only).
    HostChange,
    /// Reply to ping.
    Pong,
    /// Reply to sendMessage.
    MessageSent,
    /// A member's message (members with the `messages` feature only).
    Message,
    /// Reply to setMetadata.
    SessionMetadata,
    /// Reply to listSessions.
    SessionList,
}

impl ServerCommand {
    /// Every reply command, in a fixed order (for metrics tables).
    pub const ALL: [ServerCommand; 16] = [
        ServerCommand::SessionJoin,
        ServerCommand::SessionUpdate,
        ServerCommand::SessionLeave,
        ServerCommand::PlayerJoin,
        ServerCommand::PlayerUpdate,
        ServerCommand::PlayerLeave,
        ServerCommand::Error,
        ServerCommand::Hello,
        ServerCommand::SessionResume,
        ServerCommand::SessionLock,
        ServerCommand::HostChange,
        ServerCommand::Pong,
        ServerCommand::MessageSent,
        ServerCommand::Message,
        ServerCommand::SessionMetadata,
        ServerCommand::SessionList,
    ];

    /// Its position in [`ServerCommand::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The `command` field's value.
    pub const fn name(self) -> &'static str {
        match self {
            ServerCommand::SessionJoin => "sessionJoin",
            ServerCommand::SessionUpdate => "sessionUpdate",
            ServerCommand::SessionLeave => "sessionLeave",
            ServerCommand::PlayerJoin => "playerJoin",
            ServerCommand::PlayerUpdate => "playerUpdate",
            ServerCommand::PlayerLeave => "playerLeave",
            ServerCommand::Error => "error",
            ServerCommand::Hello => "hello",
            ServerCommand::SessionResume => "sessionResume",
            ServerCommand::SessionLock => "sessionLock",
            ServerCommand::HostChange => "hostChange",
            ServerCommand::Pong => "pong",
            ServerCommand::MessageSent => "messageSent",
            ServerCommand::Message => "message",
            ServerCommand::SessionMetadata => "sessionMetadata",
            ServerCommand::SessionList => "sessionList",
        }
    }
}

/// Builds one frame. Every frame starts `{"command":"…","error":N`.
struct Writer(Vec<u8>, ServerCommand, u16);

impl Writer {
    fn new(command: ServerCommand, code: u16, capacity: usize) -> Self {
        let mut w = Writer(Vec::with_capacity(40 + capacity), command, code);
        w.raw("{\"command\":\"");
        w.raw(command.name());
        w.raw("\",\"error\":");
        w.number(u64::from(code));
        w
    }

    fn raw(&mut self, text: &str) {
        self.0.extend_from_slice(text.as_bytes());
    }

    fn number(&mut self, n: u64) {
        use std::io::Write;
        // Writing to a Vec cannot fail.
        let _ = write!(self.0, "{n}");
    }

    fn id(&mut self, name: &str, id: u64) {
        self.raw(",\"");
        self.raw(name);
        self.raw("\":");
        self.number(id);
    }

    fn data(&mut self, name: &str, data: &JsonObject) {
        self.raw(",\"");
        self.raw(name);
        self.raw("\":");
        self.raw(data.as_str());
    }

    fn token(&mut self, token: &ResumeToken) {
        use std::io::Write;
        // Writing to a Vec cannot fail; the token is digits, dots and hex digits only.
        let _ = write!(self.0, ",\"resumeToken\":\"{token}\"");
    }

    fn finish(mut self) -> ServerFrame {
        self.0.push(b'}');
        ServerFrame {
            bytes: Bytes::from(self.0),
            command: self.1,
            error: self.2,
        }
    }
}

/// `sessionJoin`, error 0: the receiver is now a member. A member that asked for `resume`
/// finds its token after the original fields, one that asked for `host` the host's ID
/// (`hostID`) after that.
pub fn session_join(
    spelling: Spelling,
    session: SessionId,
    player: PlayerId,
    session_data: &JsonObject,
    player_data: &JsonObject,
    token: Option<&ResumeToken>,
    host: Option<PlayerId>,
) -> ServerFrame {
    let size = session_data.as_str().len() + player_data.as_str().len();
    let mut w = Writer::new(ServerCommand::SessionJoin, 0, size + 120);
    w.id("sessionID", session.0);
    w.id("playerID", player.0);
    w.data(spelling.session_field(), session_data);
    w.data(spelling.player_field(), player_data);
    if let Some(token) = token {
        w.token(token);
    }
    if let Some(host) = host {
        w.id("hostID", host.0);
    }
    w.finish()
}

/// `hello`, error 0: the player's ID and the extensions it asked for that the server has.
pub fn hello(player: PlayerId, features: Features) -> ServerFrame {
    let mut w = Writer::new(ServerCommand::Hello, 0, 40);
    w.id("playerID", player.0);
    w.raw(",\"features\":[");
    for (i, name) in features.names().enumerate() {
        if i > 0 {
            w.raw(",");
        }
        w.raw("\"");
        w.raw(name);
        w.raw("\"");
    }
    w.raw("]");
    w.finish()
}

/// What follows a successful `sessionResume`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay<'a> {
    /// The `missed` frames the member missed, as they were sent, in order.
    Frames {
        /// How many.
        missed: usize,
    },
    /// More was missed than the session keeps: the session's data and the member's own are
    /// in the reply, and a `playerJoin` of every other member follows.
    Snapshot {
        /// The sessionData now.
        session_data: &'a JsonObject,
        /// The member's own playerData now.
        player_data: &'a JsonObject,
        /// The session's spelling of the data fields.
        spelling: Spelling,
        /// How many `playerJoin`s follow: one per other member.
        members: usize,
    },
}

/// `sessionResume`, error 0: the receiver is member `player` of `session` again.
/// A member that asked for `host` finds the host's ID (`hostID`) last.
pub fn session_resume(
    session: SessionId,
    player: PlayerId,
    token: &ResumeToken,
    replay: Replay<'_>,
    host: Option<PlayerId>,
) -> ServerFrame {
    let size = match replay {
        Replay::Frames { .. } => 0,
        Replay::Snapshot {
            session_data,
            player_data,
            ..
        } => session_data.as_str().len() + player_data.as_str().len(),
    };
    let mut w = Writer::new(ServerCommand::SessionResume, 0, size + 160);
    w.id("sessionID", session.0);
    w.id("playerID", player.0);
    w.token(token);
    match replay {
        Replay::Frames { missed } => {
            w.raw(",\"replay\":\"frames\"");
            w.id("missed", missed as u64);
        }
        Replay::Snapshot {
            session_data,
            player_data,
            spelling,
            members,
        } => {
            w.raw(",\"replay\":\"snapshot\"");
            w.id("members", members as u64);
            w.data(spelling.session_field(), session_data);
            w.data(spelling.player_field(), player_data);
        }
    }
    if let Some(host) = host {
        w.id("hostID", host.0);
    }
    w.finish()
}

/// `sessionUpdate`, error 0: new sessionData and default playerData.
pub fn session_update(
    spelling: Spelling,
    session_data: &JsonObject,
    player_data: &JsonObject,
) -> ServerFrame {
    let size = session_data.as_str().len() + player_data.as_str().len();
    let mut w = Writer::new(ServerCommand::SessionUpdate, 0, size + 30);
    w.data(spelling.session_field(), session_data);
    w.data(spelling.player_field(), player_data);
    w.finish()
}

/// `sessionLeave`, error 0.
pub fn session_leave() -> ServerFrame {
    Writer::new(ServerCommand::SessionLeave, 0, 0).finish()
}

/// `sessionLeave`, error 0, to a member its host removed; `"kicked":true` for one that
/// asked for the `host` feature (an original client gets the plain frame).
pub fn kicked(host_feature: bool) -> ServerFrame {
    let mut w = Writer::new(ServerCommand::SessionLeave, 0, 16);
    if host_feature {
        w.raw(",\"kicked\":true");
    }
    w.finish()
}

/// `sessionLock`, error 0: whether the session takes new members.
pub fn session_lock(locked: bool) -> ServerFrame {
    let mut w = Writer::new(ServerCommand::SessionLock, 0, 16);
    w.raw(if locked {
        ",\"locked\":true"
    } else {
        ",\"locked\":false"
    });
    w.finish()
}

/// `pong`, error 0: the ping's `t` as it was sent (none if it had none), and the host's clock
/// (`server_time_ms`, milliseconds since the Unix epoch).
pub fn pong(t: Option<&str>, server_time_ms: u64) -> ServerFrame {
    let mut w = Writer::new(ServerCommand::Pong, 0, t.map_or(0, str::len) + 40);
    if let Some(t) = t {
        w.raw(",\"t\":");
        w.raw(t);
    }
    w.id("serverTime", server_time_ms);
    w.finish()
}

/// `messageSent`, error 0: how many members the message was delivered to.
pub fn message_sent(recipients: usize) -> ServerFrame {
    let mut w = Writer::new(ServerCommand::MessageSent, 0, 24);
    w.id("recipients", recipients as u64);
    w.finish()
}

/// `message`, error 0: member `from`'s message, its data as sent.
pub fn message(from: PlayerId, data: &str) -> ServerFrame {
    let mut w = Writer::new(ServerCommand::Message, 0, data.len() + 40);
    w.id("playerID", from.0);
    w.raw(",\"data\":");
    w.raw(data);
    w.finish()
}

/// `sessionMetadata`, error 0: the session's metadata now.
pub fn session_metadata(metadata: &JsonObject) -> ServerFrame {
    let mut w = Writer::new(
        ServerCommand::SessionMetadata,
        0,
        metadata.as_str().len() + 16,
    );
    w.data("metadata", metadata);
    w.finish()
}

/// `sessionList`, error 0: `sessions` as `(ID, listing)`, and the session to continue after
/// (`next`), if more may follow.
pub fn session_list(
    sessions: &[(SessionId, &crate::directory::Listing)],
    next: Option<u64>,
) -> ServerFrame {
    let size: usize = sessions
        .iter()
        .map(|(_, l)| l.metadata.as_ref().map_or(2, |m| m.as_str().len()) + 80)
        .sum();
    let mut w = Writer::new(ServerCommand::SessionList, 0, size + 40);
    w.raw(",\"sessions\":[");
    for (i, (id, listing)) in sessions.iter().enumerate() {
        w.raw(if i == 0 { "{" } else { ",{" });
        w.raw("\"sessionID\":");
        w.number(id.0);
        w.id("players", u64::from(listing.players));
        match listing.max_players {
            Some(max) => w.id("maxPlayers", u64::from(max)),
            None => w.raw(",\"maxPlayers\":null"),
        }
        match &listing.metadata {
            Some(metadata) => w.data("metadata", metadata),
            None => w.raw(",\"metadata\":{}"),
        }
        w.raw("}");
    }
    w.raw("]");
    match next {
        Some(next) => w.id("next", next),
        None => w.raw(",\"next\":null"),
    }
    w.finish()
}

/// `hostChange`, error 0: `host` is the session's host now.
pub fn host_change(host: PlayerId) -> ServerFrame {
    let mut w = Writer::new(ServerCommand::HostChange, 0, 24);
    w.id("playerID", host.0);
    w.finish()
}

/// `playerJoin` or `playerUpdate`, error 0: a member and its playerData.
pub fn player_data(
    command: ServerCommand,
    spelling: Spelling,
    player: PlayerId,
    data: &JsonObject,
) -> ServerFrame {
    let mut w = Writer::new(command, 0, data.as_str().len() + 40);
    w.id("playerID", player.0);
    w.data(spelling.player_field(), data);
    w.finish()
}

/// `playerLeave`, error 0.
pub fn player_leave(player: PlayerId) -> ServerFrame {
    let mut w = Writer::new(ServerCommand::PlayerLeave, 0, 30);
    w.id("playerID", player.0);
    w.finish()
}

/// An error reply. The original's codes keep their exact shape, without `message`.
pub fn error(command: ServerCommand, code: ErrorCode, message: Option<&str>) -> ServerFrame {
    let mut w = Writer::new(command, code.code(), message.map_or(0, str::len) + 16);
    if let Some(message) = message.filter(|_| !code.is_original()) {
        w.raw(",\"message\":");
        // Serializing a str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut w.0, message);
    }
    w.finish()
}
