//! Parsing one client frame into a [`Command`], once, at the edge of the core.
//!
//! Every way a frame can be wrong becomes a [`Rejection`]: the reply that tells the client
//! what was wrong. Nothing here panics on client input.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::access::{Password, SessionOptions};
use crate::data::{JsonObject, PlayerFormat, Spelling};
use crate::error::ErrorCode;
use crate::features::{Features, ResumeRequest, ResumeToken};
use crate::ids::{PlayerId, MAX_ID};
use crate::limits::Limits;
use crate::reply::{self, ServerCommand, ServerFrame};
use crate::scan::Cursor;

/// A session's format: its sessionData and its default playerData.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionFormat {
    /// The sessionData.
    pub session_data: JsonObject,
    /// The default playerData, which also fixes the key structure of every member's data.
    pub player_format: PlayerFormat,
    /// The spelling the client used (it matters for `createSession` only).
    pub spelling: Spelling,
}

/// A `createSession`: the new session's format and options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSession {
    /// Its sessionData, default playerData and spelling.
    pub format: SessionFormat,
    /// Its `options` (all defaults when the frame had none).
    pub options: SessionOptions,
}

/// A `sendMessage`: data for other members, not kept by the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Any JSON value, as the client wrote it.
    pub data: Box<str>,
    /// The recipients; `None`: every other member.
    pub to: Option<Vec<PlayerId>>,
}

/// A `joinOrCreate`: the public session to look for, and the one to create if none has room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinOrCreate {
    /// Metadata keys and values a session must have (as `listSessions`' filter).
    pub filter: Vec<(String, serde_json::Value)>,
    /// The session to create when none matches; without metadata of its own its metadata is
    /// the filter, so that the next joinOrCreate with the same filter finds it.
    pub new: NewSession,
}

/// The most sessions one `sessionList` holds (and `limit`'s default).
pub const MAX_LIST_PAGE: usize = 50;

/// A `listSessions`: which public sessions, and which page.
#[derive(Clone, Debug, PartialEq)]
pub struct ListRequest {
    /// Metadata keys and the values they must have (JSON equality).
    pub filter: Vec<(String, serde_json::Value)>,
    /// Only sessions one may join now: not full, not locked, without a password.
    pub available: bool,
    /// Where the page starts: the previous page's `next` (an opaque cursor); `None`: the
    /// newest.
    pub after: Option<u64>,
    /// At most this many.
    pub limit: usize,
}

// A filter's values are JSON numbers, strings, … compared as values; none is NaN.
impl Eq for ListRequest {}

/// Which session a `joinSession` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinTarget {
    /// `sessionID: -1`: the most recently created session that still exists.
    Latest,
    /// A session ID. IDs no session can have (negative, or 2^53 and above) are kept as
    /// `u64::MAX`, which finds no session.
    Id(u64),
}

/// One parsed client command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `createSession {sessionData, playerData, options}`. (The format is boxed in both
    /// variants: the two are rare, and a smaller `Command` keeps every connection's state
    /// small.)
    CreateSession(Box<NewSession>),
    /// `joinSession {sessionID, password}`.
    JoinSession(JoinTarget, Option<Password>),
    /// `updateSession {sessionData, playerData}`.
    UpdateSession(Box<SessionFormat>),
    /// `updatePlayer {playerData}`.
    UpdatePlayer(JsonObject),
    /// `leaveSession {}`.
    LeaveSession,
    /// `hello {features}`: the extensions the connection asks for (unknown names left out).
    Hello(Features),
    /// `resumeSession {resumeToken, received}`: `None` when the text is no token this server
    /// issues. (Boxed: rare, and a token would double the size of every `Command`.)
    ResumeSession(Option<Box<ResumeRequest>>),
    /// `kickPlayer {playerID}`: the host removes a member.
    KickPlayer(PlayerId),
    /// `lockSession {locked}`: the host refuses (`true`) or allows new joins.
    LockSession(bool),
    /// `ping {t}`: answered `pong` with `t` as sent (its JSON text) and the host's clock.
    Ping(Option<Box<str>>),
    /// `sendMessage {data, to}`.
    SendMessage(Box<Message>),
    /// `setMetadata {metadata}`: the host replaces the session's metadata.
    SetMetadata(JsonObject),
    /// `listSessions {filter, available, after, limit}` (lobby only).
    ListSessions(Box<ListRequest>),
    /// `joinOrCreate {filter, session, player, options}` (lobby only).
    JoinOrCreate(Box<JoinOrCreate>),
}

impl Command {
    /// The client command's name, as on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Command::CreateSession(_) => "createSession",
            Command::JoinSession(..) => "joinSession",
            Command::UpdateSession(_) => "updateSession",
            Command::UpdatePlayer(_) => "updatePlayer",
            Command::LeaveSession => "leaveSession",
            Command::Hello(_) => "hello",
            Command::ResumeSession(_) => "resumeSession",
            Command::KickPlayer(_) => "kickPlayer",
            Command::LockSession(_) => "lockSession",
            Command::Ping(_) => "ping",
            Command::SendMessage(_) => "sendMessage",
            Command::SetMetadata(_) => "setMetadata",
            Command::ListSessions(_) => "listSessions",
            Command::JoinOrCreate(_) => "joinOrCreate",
        }
    }

    /// The command the server answers this one with.
    pub fn reply(&self) -> ServerCommand {
        match self {
            Command::CreateSession(_) | Command::JoinSession(..) => ServerCommand::SessionJoin,
            Command::UpdateSession(_) => ServerCommand::SessionUpdate,
            Command::UpdatePlayer(_) => ServerCommand::PlayerUpdate,
            Command::LeaveSession => ServerCommand::SessionLeave,
            Command::Hello(_) => ServerCommand::Hello,
            Command::ResumeSession(_) => ServerCommand::SessionResume,
            Command::KickPlayer(_) => ServerCommand::PlayerLeave,
            Command::LockSession(_) => ServerCommand::SessionLock,
            Command::Ping(_) => ServerCommand::Pong,
            Command::SendMessage(_) => ServerCommand::MessageSent,
            Command::SetMetadata(_) => ServerCommand::SessionMetadata,
            Command::ListSessions(_) => ServerCommand::SessionList,
            Command::JoinOrCreate(_) => ServerCommand::SessionJoin,
        }
    }

    /// The command as a client frame, the inverse of [`parse`]: `parse(&c.encode(), limits)`
    /// gives `c` back (with limits that allowed `c` in the first place). The data objects are
    /// spliced in as the client wrote them, the session's fields in the spelling the command
    /// was read in. (The edge host sends members' commands to their session's object this
    /// way.)
    pub fn encode(&self) -> String {
        let name = self.name();
        let format_fields = |format: &SessionFormat| {
            let SessionFormat {
                session_data,
                player_format,
                spelling,
            } = format;
            format!(
                r#""{}":{},"{}":{}"#,
                spelling.session_field(),
                session_data.as_str(),
                spelling.player_field(),
                player_format.default_data().as_str()
            )
        };
        match self {
            Command::CreateSession(new) => match new.options.encode() {
                Some(options) => format!(
                    r#"{{"command":"{name}",{},"options":{options}}}"#,
                    format_fields(&new.format)
                ),
                None => format!(r#"{{"command":"{name}",{}}}"#, format_fields(&new.format)),
            },
            Command::UpdateSession(format) => {
                format!(r#"{{"command":"{name}",{}}}"#, format_fields(format))
            }
            Command::JoinSession(target, password) => {
                let id = match target {
                    JoinTarget::Latest => "-1".to_owned(),
                    JoinTarget::Id(id) => id.to_string(),
                };
                match password {
                    // Serializing a str cannot fail.
                    Some(password) => format!(
                        r#"{{"command":"{name}","sessionID":{id},"password":{}}}"#,
                        serde_json::to_string(password.as_str()).unwrap_or_default()
                    ),
                    None => format!(r#"{{"command":"{name}","sessionID":{id}}}"#),
                }
            }
            Command::KickPlayer(player) => {
                format!(r#"{{"command":"{name}","playerID":{player}}}"#)
            }
            Command::LockSession(locked) => {
                format!(r#"{{"command":"{name}","locked":{locked}}}"#)
            }
            Command::Ping(Some(t)) => format!(r#"{{"command":"{name}","t":{t}}}"#),
            Command::Ping(None) => format!(r#"{{"command":"{name}"}}"#),
            Command::SendMessage(message) => match &message.to {
                Some(to) => {
                    let ids: Vec<String> = to.iter().map(|p| p.0.to_string()).collect();
                    format!(
                        r#"{{"command":"{name}","data":{},"to":[{}]}}"#,
                        message.data,
                        ids.join(",")
                    )
                }
                None => format!(r#"{{"command":"{name}","data":{}}}"#, message.data),
            },
            Command::SetMetadata(metadata) => {
                format!(r#"{{"command":"{name}","metadata":{}}}"#, metadata.as_str())
            }
            Command::JoinOrCreate(request) => {
                let filter: serde_json::Map<String, serde_json::Value> =
                    request.filter.iter().cloned().collect();
                let mut text = format!(
                    r#"{{"command":"{name}","filter":{},{}"#,
                    serde_json::Value::Object(filter),
                    format_fields(&request.new.format)
                );
                if let Some(options) = request.new.options.encode() {
                    text.push_str(&format!(r#","options":{options}"#));
                }
                text.push('}');
                text
            }
            Command::ListSessions(request) => {
                let filter: serde_json::Map<String, serde_json::Value> =
                    request.filter.iter().cloned().collect();
                let mut text = format!(
                    r#"{{"command":"{name}","filter":{},"available":{},"limit":{}"#,
                    serde_json::Value::Object(filter),
                    request.available,
                    request.limit
                );
                if let Some(after) = request.after {
                    text.push_str(&format!(r#","after":{after}"#));
                }
                text.push('}');
                text
            }
            Command::UpdatePlayer(data) => {
                format!(r#"{{"command":"{name}","player":{}}}"#, data.as_str())
            }
            Command::LeaveSession => format!(r#"{{"command":"{name}"}}"#),
            Command::Hello(features) => {
                let names: Vec<_> = features.names().collect();
                format!(r#"{{"command":"{name}","features":{names:?}}}"#)
            }
            Command::ResumeSession(Some(request)) => match request.received {
                Some(received) => format!(
                    r#"{{"command":"{name}","resumeToken":"{}","received":{received}}}"#,
                    request.token
                ),
                None => format!(
                    r#"{{"command":"{name}","resumeToken":"{}"}}"#,
                    request.token
                ),
            },
            Command::ResumeSession(None) => {
                format!(r#"{{"command":"{name}","resumeToken":""}}"#)
            }
        }
    }
}

impl SessionFormat {
    /// Bytes of JSON the format holds: sessionData plus default playerData.
    pub fn data_bytes(&self) -> usize {
        self.session_data.as_str().len() + self.player_format.default_data().as_str().len()
    }
}

/// A frame that could not be taken as a command, and the reply that says why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The reply command: the command's usual reply, or `error` when the command is unknown.
    pub reply: ServerCommand,
    /// What was wrong.
    pub code: ErrorCode,
    /// The same, for people.
    pub message: String,
}

impl Rejection {
    pub(crate) fn new(reply: ServerCommand, code: ErrorCode, message: impl Into<String>) -> Self {
        Rejection {
            reply,
            code,
            message: message.into(),
        }
    }

    /// The rejection of a binary frame.
    pub fn binary_frame() -> Self {
        Rejection::new(
            ServerCommand::Error,
            ErrorCode::BinaryFrame,
            "binary frames are not supported: send each command as a JSON text frame",
        )
    }

    /// The reply frame.
    pub fn frame(&self) -> ServerFrame {
        reply::error(self.reply, self.code, Some(&self.message))
    }
}

/// The fields of a frame the protocol reads, each as its unparsed JSON text.
#[derive(Default)]
struct Fields<'a> {
    command: Option<&'a RawValue>,
    session_id: Option<&'a RawValue>,
    session: Option<&'a RawValue>,
    session_data: Option<&'a RawValue>,
    player: Option<&'a RawValue>,
    player_data: Option<&'a RawValue>,
    features: Option<&'a RawValue>,
    resume_token: Option<&'a RawValue>,
    received: Option<&'a RawValue>,
    options: Option<&'a RawValue>,
    password: Option<&'a RawValue>,
    player_id: Option<&'a RawValue>,
    locked: Option<&'a RawValue>,
    t: Option<&'a RawValue>,
    data: Option<&'a RawValue>,
    to: Option<&'a RawValue>,
    metadata: Option<&'a RawValue>,
    filter: Option<&'a RawValue>,
    available: Option<&'a RawValue>,
    after: Option<&'a RawValue>,
    limit: Option<&'a RawValue>,
}

impl<'de> de::Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut fields = Fields::default();
        while let Some(key) = map.next_key::<FieldName>()? {
            let slot = match key {
                FieldName::Command => &mut fields.command,
                FieldName::SessionId => &mut fields.session_id,
                FieldName::Session => &mut fields.session,
                FieldName::SessionData => &mut fields.session_data,
                FieldName::Player => &mut fields.player,
                FieldName::PlayerData => &mut fields.player_data,
                FieldName::Features => &mut fields.features,
                FieldName::ResumeToken => &mut fields.resume_token,
                FieldName::Received => &mut fields.received,
                FieldName::Options => &mut fields.options,
                FieldName::Password => &mut fields.password,
                FieldName::PlayerId => &mut fields.player_id,
                FieldName::Locked => &mut fields.locked,
                FieldName::T => &mut fields.t,
                FieldName::Data => &mut fields.data,
                FieldName::To => &mut fields.to,
                FieldName::Metadata => &mut fields.metadata,
                FieldName::Filter => &mut fields.filter,
                FieldName::Available => &mut fields.available,
                FieldName::After => &mut fields.after,
                FieldName::Limit => &mut fields.limit,
                FieldName::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if slot.is_some() {
                return Err(de::Error::custom(format_args!(
                    "field `{}` appears twice",
                    key.name()
                )));
            }
            *slot = Some(map.next_value()?);
        }
        Ok(fields)
    }
}

#[derive(Clone, Copy)]
enum FieldName {
    Command,
    SessionId,
    Session,
    SessionData,
    Player,
    PlayerData,
    Features,
    ResumeToken,
    Received,
    Options,
    Password,
    PlayerId,
    Locked,
    T,
    Data,
    To,
    Metadata,
    Filter,
    Available,
    After,
    Limit,
    Other,
}

impl FieldName {
    fn name(self) -> &'static str {
        match self {
            FieldName::Command => "command",
            FieldName::SessionId => "sessionID",
            FieldName::Session => "session",
            FieldName::SessionData => "sessionData",
            FieldName::Player => "player",
            FieldName::PlayerData => "playerData",
            FieldName::Features => "features",
            FieldName::ResumeToken => "resumeToken",
            FieldName::Received => "received",
            FieldName::Options => "options",
            FieldName::Password => "password",
            FieldName::PlayerId => "playerID",
            FieldName::Locked => "locked",
            FieldName::T => "t",
            FieldName::Data => "data",
            FieldName::To => "to",
            FieldName::Metadata => "metadata",
            FieldName::Filter => "filter",
            FieldName::Available => "available",
            FieldName::After => "after",
            FieldName::Limit => "limit",
            FieldName::Other => "?",
        }
    }
}

impl<'de> de::Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = FieldName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, name: &str) -> Result<FieldName, E> {
                Ok(match name {
                    "command" => FieldName::Command,
                    "sessionID" => FieldName::SessionId,
                    "session" => FieldName::Session,
                    "sessionData" => FieldName::SessionData,
                    "player" => FieldName::Player,
                    "playerData" => FieldName::PlayerData,
                    "features" => FieldName::Features,
                    "resumeToken" => FieldName::ResumeToken,
                    "received" => FieldName::Received,
                    "options" => FieldName::Options,
                    "password" => FieldName::Password,
                    "playerID" => FieldName::PlayerId,
                    "locked" => FieldName::Locked,
                    "t" => FieldName::T,
                    "data" => FieldName::Data,
                    "to" => FieldName::To,
                    "metadata" => FieldName::Metadata,
                    "filter" => FieldName::Filter,
                    "available" => FieldName::Available,
                    "after" => FieldName::After,
                    "limit" => FieldName::Limit,
                    _ => FieldName::Other,
                })
            }
        }
        d.deserialize_str(NameVisitor)
    }
}

#[cfg(test)]
thread_local! {
    /// How many frames [`parse`] read on this thread, for tests of what is not parsed.
    pub(crate) static PARSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Parses one client text frame.
pub fn parse(frame: &str, limits: &Limits) -> Result<Command, Rejection> {
    #[cfg(test)]
    PARSES.with(|n| n.set(n.get() + 1));
    if exceeds_depth(frame, limits.max_depth) {
        return Err(Rejection::new(
            ServerCommand::Error,
            ErrorCode::TooDeep,
            format!(
                "the frame nests objects and arrays deeper than {} levels",
                limits.max_depth
            ),
        ));
    }
    let fields: Fields = serde_json::from_str(frame).map_err(|e| reject_frame(frame, &e))?;
    let command = fields.command.ok_or_else(|| {
        Rejection::new(
            ServerCommand::Error,
            ErrorCode::MissingCommand,
            "the frame has no `command` field",
        )
    })?;
    match command_name(command)?.as_ref() {
        "createSession" => {
            create_session(&fields, limits).map(|new| Command::CreateSession(Box::new(new)))
        }
        "joinSession" => join_session(&fields),
        "updateSession" => update_session(&fields).map(|f| Command::UpdateSession(Box::new(f))),
        "updatePlayer" => update_player(&fields).map(Command::UpdatePlayer),
        "leaveSession" => Ok(Command::LeaveSession),
        "hello" => hello(&fields).map(Command::Hello),
        "resumeSession" => resume_session(&fields).map(Command::ResumeSession),
        "kickPlayer" => kick_player(&fields).map(Command::KickPlayer),
        "lockSession" => lock_session(&fields).map(Command::LockSession),
        "ping" => Ok(Command::Ping(fields.t.map(|t| t.get().trim().into()))),
        "sendMessage" => send_message(&fields).map(|m| Command::SendMessage(Box::new(m))),
        "setMetadata" => set_metadata(&fields).map(Command::SetMetadata),
        "listSessions" => list_sessions(&fields).map(|r| Command::ListSessions(Box::new(r))),
        "joinOrCreate" => {
            join_or_create(&fields, limits).map(|r| Command::JoinOrCreate(Box::new(r)))
        }
        other => Err(Rejection::new(
            ServerCommand::Error,
            ErrorCode::UnknownCommand,
            format!(
                "unknown command {}: expected createSession, joinSession, updateSession, \
                 updatePlayer or leaveSession",
                serde_json::Value::from(other)
            ),
        )),
    }
}

/// The client command a frame names, found without parsing it: the name of a known command
/// if the frame is an object whose top-level `command` is that name, no protocol field
/// appears twice at its top level, and it nests no deeper than `limits.max_depth`; `None`
/// otherwise. One pass over the frame that builds nothing: this is what a frame refused by the
/// rate limit, which is never parsed, is answered by.
///
/// For every frame that is valid JSON, `peek(f)`'s reply ([`reply_of`]) is the reply
/// [`parse`] would give `f`, whether it accepts the frame or rejects it. A frame that is not
/// JSON but looks like a known command at its top level may get that command's reply instead
/// of `error`.
pub(crate) fn peek(frame: &str, limits: &Limits) -> Option<&'static str> {
    let mut cursor = Cursor::new(frame);
    if !cursor.eat(b'{') {
        return None;
    }
    let mut seen = [false; 21];
    let mut name = None;
    if !cursor.eat(b'}') {
        loop {
            let key = cursor.key()?;
            let field = match key.as_ref() {
                "command" => Some(0),
                "sessionID" => Some(1),
                "session" => Some(2),
                "sessionData" => Some(3),
                "player" => Some(4),
                "playerData" => Some(5),
                "features" => Some(6),
                "resumeToken" => Some(7),
                "received" => Some(8),
                "options" => Some(9),
                "password" => Some(10),
                "playerID" => Some(11),
                "locked" => Some(12),
                "t" => Some(13),
                "data" => Some(14),
                "to" => Some(15),
                "metadata" => Some(16),
                "filter" => Some(17),
                "available" => Some(18),
                "after" => Some(19),
                "limit" => Some(20),
                _ => None,
            };
            if let Some(field) = field {
                if std::mem::replace(&mut seen[field], true) {
                    return None;
                }
            }
            if field == Some(0) && cursor.peek() == Some(b'"') {
                name = Some(cursor.string()?);
            } else {
                cursor.skip_value(limits.max_depth.checked_sub(1)?)?;
            }
            if cursor.eat(b'}') {
                break;
            }
            if !cursor.eat(b',') {
                return None;
            }
        }
    }
    if !cursor.at_end() {
        return None;
    }
    [
        "createSession",
        "joinSession",
        "updateSession",
        "updatePlayer",
        "leaveSession",
        "hello",
        "resumeSession",
        "kickPlayer",
        "lockSession",
        "ping",
        "sendMessage",
        "setMetadata",
        "listSessions",
        "joinOrCreate",
    ]
    .into_iter()
    .find(|known| name.as_deref() == Some(*known))
}

/// The reply command for a frame that [`peek`] found to name `name` (`None`: `error`).
pub(crate) fn reply_of(name: Option<&str>) -> ServerCommand {
    match name {
        Some("createSession" | "joinSession") => ServerCommand::SessionJoin,
        Some("updateSession") => ServerCommand::SessionUpdate,
        Some("updatePlayer") => ServerCommand::PlayerUpdate,
        Some("leaveSession") => ServerCommand::SessionLeave,
        Some("hello") => ServerCommand::Hello,
        Some("resumeSession") => ServerCommand::SessionResume,
        Some("kickPlayer") => ServerCommand::PlayerLeave,
        Some("lockSession") => ServerCommand::SessionLock,
        Some("ping") => ServerCommand::Pong,
        Some("sendMessage") => ServerCommand::MessageSent,
        Some("setMetadata") => ServerCommand::SessionMetadata,
        Some("listSessions") => ServerCommand::SessionList,
        Some("joinOrCreate") => ServerCommand::SessionJoin,
        _ => ServerCommand::Error,
    }
}

/// Whether brackets outside strings nest deeper than `max`. The JSON parser itself skips
/// unread values without a depth limit, and data shapes are read recursively, so this bounds
/// the recursion before anything else reads the frame.
fn exceeds_depth(frame: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in frame.as_bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Why a frame is not an object of fields: not JSON at all, JSON but no object, or a field
/// repeated.
fn reject_frame(frame: &str, error: &serde_json::Error) -> Rejection {
    let is_object = frame.trim_start().starts_with('{');
    if !is_object && serde_json::from_str::<IgnoredAny>(frame).is_ok() {
        return Rejection::new(
            ServerCommand::Error,
            ErrorCode::NotAnObject,
            "the frame is JSON but not an object: send {\"command\": …}",
        );
    }
    Rejection::new(
        ServerCommand::Error,
        ErrorCode::InvalidJson,
        format!("the frame is not valid JSON: {error}"),
    )
}

fn command_name(raw: &RawValue) -> Result<std::borrow::Cow<'_, str>, Rejection> {
    let text = raw.get();
    // Names without escapes are the usual case and need no allocation.
    if let Some(name) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        if !name.contains('\\') {
            return Ok(name.into());
        }
    }
    serde_json::from_str::<String>(text)
        .map(Into::into)
        .map_err(|_| {
            Rejection::new(
                ServerCommand::Error,
                ErrorCode::MissingCommand,
                format!("`command` must be a string, got {text}"),
            )
        })
}

fn invalid(reply: ServerCommand, message: impl Into<String>) -> Rejection {
    Rejection::new(reply, ErrorCode::InvalidField, message)
}

/// Which of a field's two spellings the client used; both at once is an error.
fn pick<'a>(
    reply: ServerCommand,
    short: Option<&'a RawValue>,
    long: Option<&'a RawValue>,
    names: [&str; 2],
) -> Result<Option<(&'a RawValue, Spelling)>, Rejection> {
    match (short, long) {
        (Some(_), Some(_)) => Err(invalid(
            reply,
            format!("give `{}` or `{}`, not both", names[0], names[1]),
        )),
        (Some(v), None) => Ok(Some((v, Spelling::Short))),
        (None, Some(v)) => Ok(Some((v, Spelling::Long))),
        (None, None) => Ok(None),
    }
}

const SESSION_NAMES: [&str; 2] = ["session", "sessionData"];
const PLAYER_NAMES: [&str; 2] = ["player", "playerData"];

fn object(
    reply: ServerCommand,
    value: &RawValue,
    spelling: Spelling,
    field: fn(Spelling) -> &'static str,
) -> Result<JsonObject, Rejection> {
    JsonObject::from_raw(value).ok_or_else(|| {
        invalid(
            reply,
            format!(
                "`{}` must be a JSON object, got {}",
                field(spelling),
                excerpt(value.get())
            ),
        )
    })
}

fn excerpt(text: &str) -> &str {
    match text.char_indices().nth(40) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// The sessionData and default playerData of createSession and updateSession; missing means
/// `{}`. The spelling is that of sessionData if given, else that of playerData, else short.
fn session_format(fields: &Fields, reply: ServerCommand) -> Result<SessionFormat, Rejection> {
    let session = pick(reply, fields.session, fields.session_data, SESSION_NAMES)?;
    let player = pick(reply, fields.player, fields.player_data, PLAYER_NAMES)?;
    let spelling = session
        .or(player)
        .map(|(_, spelling)| spelling)
        .unwrap_or_default();
    let session_data = match session {
        Some((value, s)) => object(reply, value, s, Spelling::session_field)?,
        None => JsonObject::empty(),
    };
    let player_default = match player {
        Some((value, s)) => object(reply, value, s, Spelling::player_field)?,
        None => JsonObject::empty(),
    };
    Ok(SessionFormat {
        session_data,
        player_format: PlayerFormat::new(player_default),
        spelling,
    })
}

fn create_session(fields: &Fields, limits: &Limits) -> Result<NewSession, Rejection> {
    let format = session_format(fields, ServerCommand::SessionJoin)?;
    let options = match fields.options {
        Some(raw) => session_options(raw, limits)?,
        None => SessionOptions::default(),
    };
    Ok(NewSession { format, options })
}

/// `createSession`'s `options` object. Unknown keys are refused (a misspelt `maxPlayer`
/// would otherwise make an open session of a private one).
fn session_options(raw: &RawValue, limits: &Limits) -> Result<SessionOptions, Rejection> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Options<'a> {
        max_players: Option<u64>,
        private: Option<bool>,
        #[serde(borrow)]
        password: Option<std::borrow::Cow<'a, str>>,
        host_only_session_updates: Option<bool>,
        #[serde(borrow)]
        metadata: Option<&'a RawValue>,
    }
    let reply = ServerCommand::SessionJoin;
    let text = raw.get().trim();
    if !text.starts_with('{') {
        return Err(invalid(
            reply,
            format!("`options` must be a JSON object, got {}", excerpt(text)),
        ));
    }
    let options: Options = serde_json::from_str(text).map_err(|e| {
        invalid(
            reply,
            format!(
                "`options` is not valid ({e}): it takes maxPlayers (an integer), private \
                 (true or false), password (a string) and hostOnlySessionUpdates (true or false)"
            ),
        )
    })?;
    let cap = limits.max_players_per_session;
    let max_players = match options.max_players {
        None => None,
        Some(n) => match u32::try_from(n) {
            Ok(n) if n >= 1 && usize::try_from(n).is_ok_and(|n| n <= cap) => Some(n),
            _ => {
                return Err(invalid(
                    reply,
                    format!("`maxPlayers` must be an integer from 1 to {cap}, got {n}"),
                ))
            }
        },
    };
    let password = match options.password {
        None => None,
        Some(text) => Some(Password::new(&text).ok_or_else(|| {
            invalid(
                reply,
                format!(
                    "`password` must be 1 to {} bytes long",
                    crate::access::MAX_PASSWORD_BYTES
                ),
            )
        })?),
    };
    let metadata = match options.metadata {
        None => None,
        Some(raw) => Some(metadata(raw, reply)?),
    };
    Ok(SessionOptions {
        max_players,
        private: options.private.unwrap_or(false),
        password,
        host_only_session_updates: options.host_only_session_updates.unwrap_or(false),
        metadata,
    })
}

/// A session's metadata: a JSON object of at most [`crate::access::MAX_METADATA_BYTES`].
fn metadata(raw: &RawValue, reply: ServerCommand) -> Result<JsonObject, Rejection> {
    let object = JsonObject::from_raw(raw).ok_or_else(|| {
        invalid(
            reply,
            format!(
                "`metadata` must be a JSON object, got {}",
                excerpt(raw.get().trim())
            ),
        )
    })?;
    let max = crate::access::MAX_METADATA_BYTES;
    if object.as_str().len() > max {
        return Err(invalid(
            reply,
            format!("`metadata` must be at most {max} bytes of JSON"),
        ));
    }
    Ok(object)
}

fn set_metadata(fields: &Fields) -> Result<JsonObject, Rejection> {
    let reply = ServerCommand::SessionMetadata;
    let raw = fields
        .metadata
        .ok_or_else(|| invalid(reply, "setMetadata needs `metadata`: a JSON object"))?;
    metadata(raw, reply)
}

fn join_or_create(fields: &Fields, limits: &Limits) -> Result<JoinOrCreate, Rejection> {
    let filter = filter(fields, ServerCommand::SessionJoin)?;
    let new = create_session(fields, limits)?;
    Ok(JoinOrCreate { filter, new })
}

/// The `filter` of listSessions and joinOrCreate: metadata keys and values.
fn filter(
    fields: &Fields,
    reply: ServerCommand,
) -> Result<Vec<(String, serde_json::Value)>, Rejection> {
    Ok(match fields.filter {
        None => Vec::new(),
        Some(raw) => {
            let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw.get())
                .map_err(|_| {
                invalid(
                    reply,
                    format!(
                        "`filter` must be a JSON object of metadata keys and values, got {}",
                        excerpt(raw.get().trim())
                    ),
                )
            })?;
            map.into_iter().collect()
        }
    })
}

fn list_sessions(fields: &Fields) -> Result<ListRequest, Rejection> {
    let reply = ServerCommand::SessionList;
    let filter = filter(fields, reply)?;
    let available = match fields.available.map(|raw| raw.get().trim()) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(invalid(
                reply,
                format!("`available` must be true or false, got {}", excerpt(other)),
            ))
        }
    };
    let count = |raw: Option<&RawValue>, name: &str| -> Result<Option<u64>, Rejection> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let text = raw.get().trim();
        match text.parse::<u64>() {
            Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
            _ => Err(invalid(
                reply,
                format!(
                    "`{name}` must be a non-negative integer, got {}",
                    excerpt(text)
                ),
            )),
        }
    };
    let after = count(fields.after, "after")?;
    let limit = match count(fields.limit, "limit")? {
        None => MAX_LIST_PAGE,
        Some(n) if (1..=MAX_LIST_PAGE as u64).contains(&n) => n as usize,
        Some(n) => {
            return Err(invalid(
                reply,
                format!("`limit` must be from 1 to {MAX_LIST_PAGE}, got {n}"),
            ))
        }
    };
    Ok(ListRequest {
        filter,
        available,
        after,
        limit,
    })
}

fn send_message(fields: &Fields) -> Result<Message, Rejection> {
    let reply = ServerCommand::MessageSent;
    let data = fields.data.ok_or_else(|| {
        invalid(
            reply,
            "sendMessage needs `data`: any JSON value, delivered as it is",
        )
    })?;
    let to = match fields.to {
        None => None,
        Some(raw) => {
            let ids: Vec<u64> = serde_json::from_str(raw.get()).map_err(|_| {
                invalid(
                    reply,
                    format!(
                        "`to` must be an array of player IDs, got {}",
                        excerpt(raw.get().trim())
                    ),
                )
            })?;
            Some(ids.into_iter().map(PlayerId).collect())
        }
    };
    Ok(Message {
        data: data.get().trim().into(),
        to,
    })
}

fn kick_player(fields: &Fields) -> Result<PlayerId, Rejection> {
    let reply = ServerCommand::PlayerLeave;
    let raw = fields
        .player_id
        .ok_or_else(|| invalid(reply, "kickPlayer needs `playerID`: the member to remove"))?;
    let text = raw.get().trim();
    match text.parse::<u64>() {
        Ok(id) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(PlayerId(id)),
        _ => Err(invalid(
            reply,
            format!("`playerID` must be a player's ID, got {}", excerpt(text)),
        )),
    }
}

fn lock_session(fields: &Fields) -> Result<bool, Rejection> {
    let reply = ServerCommand::SessionLock;
    match fields.locked.map(|raw| raw.get().trim()) {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(invalid(
            reply,
            format!("`locked` must be true or false, got {}", excerpt(other)),
        )),
        None => Err(invalid(reply, "lockSession needs `locked`: true or false")),
    }
}

fn update_session(fields: &Fields) -> Result<SessionFormat, Rejection> {
    session_format(fields, ServerCommand::SessionUpdate)
}

fn update_player(fields: &Fields) -> Result<JsonObject, Rejection> {
    let reply = ServerCommand::PlayerUpdate;
    match pick(reply, fields.player, fields.player_data, PLAYER_NAMES)? {
        Some((value, s)) => object(reply, value, s, Spelling::player_field),
        None => Err(invalid(
            reply,
            "updatePlayer needs `player` (or `playerData`): the new playerData object",
        )),
    }
}

fn hello(fields: &Fields) -> Result<Features, Rejection> {
    let reply = ServerCommand::Hello;
    let Some(raw) = fields.features else {
        return Ok(Features::NONE);
    };
    let names: Vec<std::borrow::Cow<'_, str>> = serde_json::from_str(raw.get()).map_err(|_| {
        invalid(
            reply,
            format!(
                "`features` must be an array of strings, got {}",
                excerpt(raw.get().trim())
            ),
        )
    })?;
    let named = names.iter().filter_map(|name| Features::named(name));
    Ok(named.fold(Features::NONE, Features::union))
}

fn resume_session(fields: &Fields) -> Result<Option<Box<ResumeRequest>>, Rejection> {
    let reply = ServerCommand::SessionResume;
    let raw = fields.resume_token.ok_or_else(|| {
        invalid(
            reply,
            "resumeSession needs `resumeToken`: the token of your last sessionJoin or sessionResume",
        )
    })?;
    let text: std::borrow::Cow<'_, str> = serde_json::from_str(raw.get()).map_err(|_| {
        invalid(
            reply,
            format!(
                "`resumeToken` must be a string, got {}",
                excerpt(raw.get().trim())
            ),
        )
    })?;
    let received = match fields.received {
        None => None,
        Some(raw) => {
            let text = raw.get().trim();
            // Digits only: a count, never a float, a sign or an exponent.
            let count = text
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| text.parse::<u64>().ok())
                .flatten();
            Some(count.ok_or_else(|| {
                invalid(
                    reply,
                    format!(
                        "`received` must be a non-negative integer (the session events you \
                         received), got {}",
                        excerpt(text)
                    ),
                )
            })?)
        }
    };
    Ok(ResumeToken::parse(&text).map(|token| Box::new(ResumeRequest { token, received })))
}

fn join_session(fields: &Fields) -> Result<Command, Rejection> {
    let target = join_target(fields)?;
    let password = match fields.password {
        None => None,
        Some(raw) => {
            let text: std::borrow::Cow<'_, str> =
                serde_json::from_str(raw.get()).map_err(|_| {
                    invalid(
                        ServerCommand::SessionJoin,
                        format!(
                            "`password` must be a string, got {}",
                            excerpt(raw.get().trim())
                        ),
                    )
                })?;
            // One no session can have (empty, too long) is simply a wrong one.
            Some(Password::guess(&text))
        }
    };
    Ok(Command::JoinSession(target, password))
}

fn join_target(fields: &Fields) -> Result<JoinTarget, Rejection> {
    let reply = ServerCommand::SessionJoin;
    let raw = fields
        .session_id
        .ok_or_else(|| invalid(reply, "joinSession needs `sessionID`: an integer, or -1"))?;
    let text = raw.get().trim();
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            reply,
            format!(
                "`sessionID` must be an integer (or -1 for the latest session), got {}",
                excerpt(text)
            ),
        ));
    }
    if text == "-1" {
        return Ok(JoinTarget::Latest);
    }
    let id = match text.parse::<u64>() {
        Ok(id) if id <= MAX_ID => id,
        // Negative or too large: no session has such an ID.
        _ => u64::MAX,
    };
    Ok(JoinTarget::Id(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn mixed_spellings_follow_the_session_field() {
        let cmd = parse(
            r#"{"command":"createSession","sessionData":{},"player":{}}"#,
            &Limits::default(),
        )
        .unwrap();
        match cmd {
            Command::CreateSession(format) => assert_eq!(format.format.spelling, Spelling::Long),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn depth_counts_brackets_outside_strings_only() {
        let deep = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(!exceeds_depth(&deep, 64));
        assert!(exceeds_depth(&format!("[{deep}]"), 64));
        assert!(!exceeds_depth(r#"["[[[[\"[[["]"#, 2));
    }

    /// Every kind of command, in both spellings and mixed ones, with data that must pass
    /// verbatim (key order, number spelling, unicode and escapes, whitespace).
    const FRAMES: &[&str] = &[
        r#"{"command":"createSession"}"#,
        r#"{"command":"createSession","sessionData":{"b":1,"a":[1.000000000001]},"playerData":{"x":0}}"#,
        r#"{"command":"createSession","session":{"n":12345678901234567890},"player":{"é":"\u00e9\n"}}"#,
        r#"{"command":"createSession","sessionData":{},"player":{"k":{ "deep" : [ {} ] }}}"#,
        r#"{"command":"createSession","playerData":{"only":"player"}}"#,
        r#"{"player":{"z":1},"command":"updateSession","extra":[1,2],"session":{"y":2}}"#,
        r#"{"command":"updateSession","playerData":{}}"#,
        r#"{"command":"updatePlayer","playerData":{"x":-0.0e+5}}"#,
        r#"{"command":"updatePlayer","player":{"x":"}\"{"}}"#,
        r#"{"command":"joinSession","sessionID":-1}"#,
        r#"{"command":"joinSession","sessionID":9007199254740991}"#,
        r#"{"command":"joinSession","sessionID":9007199254740992}"#,
        r#"{"command":"joinSession","sessionID":-7}"#,
        r#"{"command":"leaveSession","sessionID":3}"#,
    ];

    #[wasm_bindgen_test(unsupported = test)]
    fn every_command_reads_back_as_itself() {
        let limits = Limits::default();
        for frame in FRAMES {
            let command = parse(frame, &limits).unwrap_or_else(|r| panic!("{frame}: {r:?}"));
            let encoded = command.encode();
            assert_eq!(
                parse(&encoded, &limits),
                Ok(command),
                "{frame} as {encoded}"
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn encoding_keeps_the_data_as_written() {
        let command = parse(FRAMES[2], &Limits::default()).unwrap();
        assert_eq!(
            command.encode(),
            r#"{"command":"createSession","session":{"n":12345678901234567890},"player":{"é":"\u00e9\n"}}"#
        );
        let command = parse(FRAMES[3], &Limits::default()).unwrap();
        assert_eq!(
            command.encode(),
            r#"{"command":"createSession","sessionData":{},"playerData":{"k":{ "deep" : [ {} ] }}}"#
        );
    }

    /// For frames that are JSON, the reply a refusal finds without parsing is the one
    /// parsing gives.
    #[wasm_bindgen_test(unsupported = test)]
    fn peeking_finds_the_reply_parsing_gives() {
        let limits = Limits {
            max_depth: 4,
            ..Limits::default()
        };
        let mut frames: Vec<String> = FRAMES.iter().map(|f| f.to_string()).collect();
        frames.extend(
            [
                "{}",
                " { } ",
                "[]",
                "5",
                r#""createSession""#,
                r#"{"command":5}"#,
                r#"{"command":null,"player":{}}"#,
                r#"{"command":"nope"}"#,
                r#"{"command":"LeaveSession"}"#,
                r#"{"comm\u0061nd":"update\u0050layer","player":{}}"#,
                r#"{"command":"updatePlayer"}"#,
                r#"{"command":"updatePlayer","player":5}"#,
                r#"{"command":"updatePlayer","player":{},"playerData":{}}"#,
                r#"{"command":"updatePlayer","player":{},"player":{}}"#,
                r#"{"command":"updatePlayer","command":"updatePlayer","player":{}}"#,
                r#"{"command":"updatePlayer","comm\u0061nd":"x","player":{}}"#,
                r#"{"command":"updatePlayer","other":1,"other":2,"player":{}}"#,
                r#"{"command":"joinSession","sessionID":"3"}"#,
                r#"{"command":"joinSession","sessionID":1.5}"#,
                r#"{"command":"joinSession"}"#,
                r#"{"command":"createSession","session":[]}"#,
                r#"{"command":"createSession","session":{"a":{"b":{}}}}"#,
                r#"{"command":"createSession","session":{"a":{"b":{"c":{}}}}}"#,
                r#"{"command":"createSession","session":{"a":"{{{{{{"}}"#,
                r#"{"x":[[[[]]]],"command":"leaveSession"}"#,
                r#"{"x":[[[]]],"command":"leaveSession"}"#,
                "{\"command\"\t:\n\"leaveSession\" }",
                r#"{"command":"leaveSession"} x"#,
                r#"{"command":"leaveSession""#,
                r#"{"command":"leaveSession",}"#,
                r#"{"command":"updatePlayer","player":{"a":1}"#,
                r#"{"command" "leaveSession"}"#,
                "",
            ]
            .map(str::to_owned),
        );
        for frame in &frames {
            let parsed = parse(frame, &limits);
            let is_json = serde_json::from_str::<serde::de::IgnoredAny>(frame).is_ok();
            if !is_json {
                continue;
            }
            let expected = match &parsed {
                Ok(command) => command.reply(),
                Err(rejection) => rejection.reply,
            };
            assert_eq!(
                reply_of(peek(frame, &limits)),
                expected,
                "{frame}: parsed as {parsed:?}"
            );
            if let Ok(command) = &parsed {
                assert_eq!(peek(frame, &limits), Some(command.name()), "{frame}");
            }
        }
        // Frames that are no JSON: `error` where the scan notices, never a panic.
        for frame in [
            r#"{"command":"leaveSession"} x"#,
            r#"{"command":"leaveSession""#,
            r#"{"command":"leaveSession",}"#,
            r#"{"command" "leaveSession"}"#,
            "{\"command\":\"leaveSession\"",
            "",
        ] {
            assert_eq!(peek(frame, &limits), None, "{frame}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn session_ids_that_cannot_exist_find_nothing() {
        for text in ["-2", "9007199254740992", "123456789012345678901234567890"] {
            let frame = format!(r#"{{"command":"joinSession","sessionID":{text}}}"#);
            assert_eq!(
                parse(&frame, &Limits::default()),
                Ok(Command::JoinSession(JoinTarget::Id(u64::MAX), None))
            );
        }
    }
}
