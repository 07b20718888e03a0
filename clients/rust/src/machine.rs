//! [`Machine`]: the client's protocol state, with no IO (sans-IO, like quinn-proto and the
//! server's own core). The host owns the socket and the clock; the machine owns everything
//! else: hello, requests matched to their replies, the kept session, the resume token and
//! `received`, reconnecting with backoff.
//!
//! # Run loop
//! ```text
//! machine = Machine::new(options, seed, now)
//! socket open:        machine.handle_open(now)
//! text frame:         machine.handle_text(now, text)         (binary: handle_binary)
//! socket ended:       machine.handle_close(now, code, reason) (no close frame: 1006)
//! timer:              machine.handle_timeout(now); re-arm at machine.poll_timeout()
//! the game asks:      let id = machine.update_player(&data) …
//! then, always:       while let Some(t) = machine.poll_transmit() {
//!                       Text(frame)          -> send it on the socket
//!                       Connect              -> open a new socket to the same URL
//!                                               (then handle_open, or handle_close(1006))
//!                       Disconnect           -> drop the socket, report nothing of it
//!                       Close { code, .. }   -> send a close frame; handle_close at its end
//!                     }
//!                     poll_completion() -> (RequestId, Result<Reply, Error>)
//!                     poll_event()      -> Event
//! ```
//! Time is a [`Duration`] since any fixed point the host picks (its monotonic clock).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{close_meaning, RECONNECT_CLOSE_CODES};
use crate::error::{ConnectionClosedError, LostReason, SessionError, SessionLostError};
use crate::{Data, Error, Event, Replay, Session};

/// The frames counted in resumeSession's `received` (with error 0): PROTOCOL.md's "session
/// events".
pub const SESSION_EVENTS: &[&str] = &["playerJoin", "playerUpdate", "playerLeave", "sessionUpdate"];

/// Which field names the client sends (it reads both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Spelling {
    /// `session` / `player` (what the original's clients send).
    #[default]
    Short,
    /// `sessionData` / `playerData`.
    Long,
}

impl Spelling {
    fn keys(self) -> (&'static str, &'static str) {
        match self {
            Spelling::Short => ("session", "player"),
            Spelling::Long => ("sessionData", "playerData"),
        }
    }
}

/// Settings of reconnecting (the JavaScript client's `reconnect` settings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconnectOptions {
    /// Attempts at most, per drop (default 30).
    pub max_attempts: u32,
    /// Time from the drop after which no attempt starts (default 30 s: the server's grace).
    pub max_time: Duration,
    /// The first attempt's delay is drawn from [0, base_delay]; the bound doubles per
    /// attempt… (default 250 ms)
    pub base_delay: Duration,
    /// …up to this (default 5 s): exponential backoff with full jitter.
    pub max_delay: Duration,
    /// How long one attempt may take, from opening its socket to the server's answer
    /// (default 5 s).
    pub attempt_timeout: Duration,
}

impl Default for ReconnectOptions {
    fn default() -> Self {
        ReconnectOptions {
            max_attempts: 30,
            max_time: Duration::from_secs(30),
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(5),
        }
    }
}

/// How the client behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The field spelling to send.
    pub spelling: Spelling,
    /// Ask for `resume` and take the seat back after a drop; `None`: a drop closes the client.
    pub reconnect: Option<ReconnectOptions>,
    /// Ask for the `host` extension: the host's ID (`Session::host_id`), `HostChange` and
    /// others' `SessionLock` events, `kicked` in the `SessionLeave` of a kick. Default false,
    /// as the JavaScript client's `host` option.
    pub host: bool,
    /// Ask for the `messages` extension: other members' `sendMessage` arrive as
    /// [`Event::Message`]. Default false, as the JavaScript client's `messages` option.
    pub messages: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            spelling: Spelling::Short,
            reconnect: Some(ReconnectOptions::default()),
            host: false,
            messages: false,
        }
    }
}

/// The options of createSession (the access extension); each optional. Unset ones are not
/// sent; with none set there is no `options` field at all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionOptions {
    /// Players the session may hold (error 16 beyond).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_players: Option<u64>,
    /// Not reachable by `joinSession -1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private: Option<bool>,
    /// Joiners must give it (error 26).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Only the host may updateSession (error 29).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_only_session_updates: Option<bool>,
    /// Public information about the session (an object, at most 4 KiB), shown by
    /// listSessions; the host replaces it with setMetadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Data>,
}

/// What listSessions asks for; each optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ListOptions {
    /// Only sessions whose metadata has each of this object's keys with an equal value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<Data>,
    /// Leave out sessions that are full, locked or have a password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available: Option<bool>,
    /// A previous page's `next`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// The page size (1 to 50, the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// One public session, as listSessions shows it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SessionInfo {
    /// Its ID.
    #[serde(rename = "sessionID")]
    pub session_id: u64,
    /// Its members (those away for a resume included).
    pub players: u64,
    /// Its maxPlayers option, if it has one.
    #[serde(rename = "maxPlayers")]
    pub max_players: Option<u64>,
    /// Its metadata (`{}` without any), as written.
    #[serde(deserialize_with = "raw_data")]
    pub metadata: Data,
}

fn raw_data<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Data, D::Error> {
    Ok(Data::from_raw(Box::<RawValue>::deserialize(d)?))
}

/// A page of listSessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionList {
    /// The sessions, newest first.
    pub sessions: Vec<SessionInfo>,
    /// `None` on the last page, else the `after` of the next.
    pub next: Option<u64>,
}

impl SessionOptions {
    fn is_empty(&self) -> bool {
        *self == SessionOptions::default()
    }
}

/// Which session joinSession asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The most recently created session (`-1`).
    Latest,
    /// The session with this ID.
    Id(u64),
}

impl From<u64> for Target {
    fn from(id: u64) -> Target {
        Target::Id(id)
    }
}

/// A request's handle: its completion comes out of [`Machine::poll_completion`] with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

/// What a request succeeded with.
#[derive(Clone, Debug)]
pub enum Reply {
    /// createSession, joinSession, updateSession: the session now.
    Session(Session),
    /// updatePlayer: the playerData as broadcast.
    Player(Data),
    /// leaveSession.
    Left,
    /// kickPlayer: the player is out.
    Kicked,
    /// lockSession: locked now (or not).
    Locked(bool),
    /// sendMessage: how many members got it.
    MessageSent(u64),
    /// ping: the round trip (from the ping's `now` to the pong's) and the server's clock
    /// (milliseconds since the Unix epoch).
    Pong {
        /// The round trip.
        rtt: Duration,
        /// The server's clock at the pong.
        server_time: u64,
    },
    /// listSessions: one page.
    SessionList(SessionList),
    /// setMetadata: the metadata now.
    Metadata(Data),
}

/// What the host does with the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Send this text frame.
    Text(String),
    /// Open a new connection to the same URL (a reconnection attempt); report it with
    /// `handle_open`, or its failure with `handle_close` (1006).
    Connect,
    /// Drop the current connection at once; report nothing of it.
    Disconnect,
    /// Send a close frame; report the connection's end with `handle_close`.
    Close {
        /// The close code.
        code: u16,
        /// The reason.
        reason: String,
    },
}

/// While taking the seat back after a drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reconnecting {
    /// The attempt under way or next (1, 2, …).
    pub attempt: u32,
    /// When the connection dropped (the host's clock).
    pub since: Duration,
}

#[derive(Clone, Debug, PartialEq)]
enum Expect {
    Any,
    // Our own sessionUpdate is told from other members' by its data: the server passes data
    // through as sent.
    SessionUpdate(String, String),
    // The host's kick is answered by the kicked player's playerLeave.
    Kick(u64),
    // A ping sent at this time (the round trip is measured from it).
    Ping(Duration),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    User,
    Hello,
    // The leaveSession close() sends: part of closing, not an event.
    Leave,
}

#[derive(Debug)]
struct Pending {
    id: RequestId,
    command: &'static str,
    reply: &'static str,
    kind: Kind,
    expect: Expect,
    text: String,
}

#[derive(Debug)]
enum Queued {
    Request(Pending),
    Raw(String),
}

#[derive(Clone, Debug, PartialEq)]
enum Link {
    /// The first socket is not open yet.
    Connecting,
    /// A socket carries this client.
    Open,
    /// Between a drop (or a failed attempt) and the next attempt.
    Waiting {
        at: Duration,
    },
    /// An attempt's socket: opening, then waiting for sessionResume.
    Attempting {
        deadline: Duration,
        with_received: bool,
    },
    /// The app closed; waiting for the socket's end.
    Closing {
        code: u16,
        reason: String,
    },
    Closed {
        code: u16,
        reason: String,
    },
}

/// A server frame, every field the client reads (others are ignored).
#[derive(Deserialize)]
struct Frame {
    command: String,
    #[serde(default)]
    error: u64,
    #[serde(rename = "sessionID")]
    session_id: Option<u64>,
    #[serde(rename = "playerID")]
    player_id: Option<u64>,
    session: Option<Box<RawValue>>,
    #[serde(rename = "sessionData")]
    session_data: Option<Box<RawValue>>,
    player: Option<Box<RawValue>>,
    #[serde(rename = "playerData")]
    player_data: Option<Box<RawValue>>,
    message: Option<String>,
    features: Option<Vec<String>>,
    #[serde(rename = "resumeToken")]
    resume_token: Option<String>,
    replay: Option<String>,
    missed: Option<u64>,
    members: Option<u64>,
    #[serde(rename = "hostID")]
    host_id: Option<u64>,
    kicked: Option<bool>,
    locked: Option<bool>,
    data: Option<Box<RawValue>>,
    recipients: Option<u64>,
    #[serde(rename = "serverTime")]
    server_time: Option<u64>,
    sessions: Option<Vec<SessionInfo>>,
    next: Option<u64>,
    metadata: Option<Box<RawValue>>,
}

impl Frame {
    // Either spelling of a data field.
    fn session(&mut self) -> Option<Data> {
        self.session
            .take()
            .or_else(|| self.session_data.take())
            .map(Data::from_raw)
    }

    fn player(&mut self) -> Option<Data> {
        self.player
            .take()
            .or_else(|| self.player_data.take())
            .map(Data::from_raw)
    }

    fn need_player_id(&self) -> Result<u64, Error> {
        self.player_id
            .ok_or_else(|| Error::Protocol(format!("{} without playerID", self.command)))
    }
}

// splitmix64: the backoff's jitter needs no more than an even spread, and the machine takes
// no randomness from the OS (the host seeds it).
struct Jitter(u64);

impl Jitter {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// One player's connection to a session server, as a state machine with no IO.
///
/// Methods come in families: getters; `handle_*` (what happened to the socket and the
/// clock); requests (`create_session`, …: each returns a [`RequestId`]); `poll_*` (drain what
/// to do and what happened). After every input, drain [`Machine::poll_transmit`],
/// [`Machine::poll_completion`] and [`Machine::poll_event`], and re-arm the timer at
/// [`Machine::poll_timeout`].
pub struct Machine {
    options: Options,
    link: Link,
    player_id: Option<u64>,
    session: Option<Session>,
    features: Option<Vec<String>>,
    // Requests sent and not yet answered, oldest first: replies to one client come in the
    // order of its commands, so the oldest is the one the next reply answers.
    pending: VecDeque<Pending>,
    // Requests made while reconnecting (or before the first socket opened).
    queue: VecDeque<Queued>,
    queueing: bool,
    // The seat's newest resume token (each is good once), and the session events received
    // on it since the sessionJoin / sessionResume that gave it.
    token: Option<String>,
    received: u64,
    user_closed: bool,
    // Since when the client is down, and the attempts so far.
    drop: Option<Reconnecting>,
    // While a resume's replay is applied: frames left, members a snapshot listed, and what
    // `Resumed` will say.
    replay_left: Option<u64>,
    snapshot_seen: Option<HashSet<u64>>,
    resuming: Option<(Replay, Option<u64>)>,
    next_id: u64,
    jitter: Jitter,
    transmits: VecDeque<Transmit>,
    completions: VecDeque<(RequestId, Result<Reply, Error>)>,
    events: VecDeque<Event>,
}

impl Machine {
    /// A client whose first socket is being opened. `seed` spreads the reconnection delays
    /// (any value; clients started together should get different ones).
    pub fn new(options: Options, seed: u64, _now: Duration) -> Machine {
        Machine {
            options,
            link: Link::Connecting,
            player_id: None,
            session: None,
            features: None,
            pending: VecDeque::new(),
            queue: VecDeque::new(),
            queueing: true,
            token: None,
            received: 0,
            user_closed: false,
            drop: None,
            replay_left: None,
            snapshot_seen: None,
            resuming: None,
            next_id: 0,
            jitter: Jitter(seed),
            transmits: VecDeque::new(),
            completions: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    // --- getters ---

    /// This connection's player ID, known from the first sessionJoin on.
    pub fn player_id(&self) -> Option<u64> {
        self.player_id
    }

    /// The session this player is in (kept while reconnecting).
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// Whether this player is its session's host (as far as the server said).
    pub fn is_host(&self) -> bool {
        matches!((&self.session, self.player_id), (Some(s), Some(me)) if s.host_id == Some(me))
    }

    /// The extensions the server granted to hello (`["resume", "host"]`); empty if none or
    /// it ignored hello; `None` while not known or when no hello is sent.
    pub fn features(&self) -> Option<&[String]> {
        self.features.as_deref()
    }

    /// While taking the seat back after a drop.
    pub fn reconnecting(&self) -> Option<Reconnecting> {
        self.drop
    }

    /// The close code and reason once closed for good.
    pub fn closed(&self) -> Option<(u16, &str)> {
        match &self.link {
            Link::Closed { code, reason } => Some((*code, reason)),
            _ => None,
        }
    }

    /// The session events received on this seat since its last sessionJoin or sessionResume
    /// (what a resume sends as `received`).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The seat's current resume token (opaque; each is good once).
    pub fn resume_token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    // --- inputs ---

    /// A socket opened: the first one, or a reconnection attempt's.
    pub fn handle_open(&mut self, _now: Duration) {
        match &self.link {
            Link::Connecting => {
                self.link = Link::Open;
                self.hello();
                self.queueing = false;
                self.flush_queue();
            }
            Link::Attempting { .. } => {
                if let Some(hello) = self.hello_text() {
                    self.transmits.push_back(Transmit::Text(hello));
                }
                self.send_resume(true);
            }
            _ => {}
        }
    }

    /// A text frame from the server.
    pub fn handle_text(&mut self, now: Duration, text: &str) {
        if matches!(self.link, Link::Closed { .. } | Link::Waiting { .. }) {
            return;
        }
        let frame: Frame = match serde_json::from_str(text) {
            Ok(frame) => frame,
            Err(e) => {
                let shown: String = text.chars().take(200).collect();
                return self.report(Error::Protocol(format!("{e}: {shown}")));
            }
        };
        if matches!(self.link, Link::Attempting { .. }) {
            return self.attempt_frame(now, frame);
        }
        let code = frame.error;
        if code == 0 && SESSION_EVENTS.contains(&frame.command.as_str()) {
            self.received = self.received.saturating_add(1);
        }
        if code != 0 {
            self.error_reply(frame);
        } else {
            self.dispatch(now, frame);
        }
        // The frames a resume replays: once the last is applied, the client is back.
        if let Some(left) = self.replay_left {
            let left = left.saturating_sub(1);
            self.replay_left = Some(left);
            if left == 0 {
                self.finish_resume();
            }
        }
    }

    /// A binary frame from the server (it sends none).
    pub fn handle_binary(&mut self, _now: Duration) {
        self.report(Error::Protocol("a binary frame".to_owned()));
    }

    /// The socket ended: with the close frame's `code`, 1005 for a close frame without one,
    /// 1006 when there was no close frame (or the connection could not be opened).
    pub fn handle_close(&mut self, now: Duration, code: u16, reason: &str) {
        match &self.link {
            Link::Closing { .. } | Link::Connecting => self.final_close(code, reason),
            Link::Open => {
                let resumable = self.options.reconnect.is_some()
                    && !self.user_closed
                    && self.session.is_some()
                    && self.token.is_some()
                    && RECONNECT_CLOSE_CODES.contains(&code);
                if resumable {
                    self.dropped(now, code, reason);
                } else {
                    self.final_close(code, reason);
                }
            }
            Link::Attempting { .. } => self.attempt_failed(now, code, reason, None),
            Link::Waiting { .. } | Link::Closed { .. } => {}
        }
    }

    /// The timer set at [`Machine::poll_timeout`] is due (early calls do nothing).
    pub fn handle_timeout(&mut self, now: Duration) {
        match self.link {
            Link::Waiting { at } if now >= at => {
                let timeout = self.reconnect_options().attempt_timeout;
                self.link = Link::Attempting {
                    deadline: now.saturating_add(timeout),
                    with_received: true,
                };
                self.transmits.push_back(Transmit::Connect);
            }
            Link::Attempting { deadline, .. } if now >= deadline => {
                self.transmits.push_back(Transmit::Disconnect);
                self.attempt_failed(now, 1006, "no answer in time", None);
            }
            _ => {}
        }
    }

    // --- requests ---

    /// Creates a session and joins it as its first member; `player` is the default every
    /// member starts with (it fixes the key structure of every updatePlayer).
    pub fn create_session(
        &mut self,
        session: &Data,
        player: &Data,
        options: &SessionOptions,
    ) -> RequestId {
        let (s, p) = self.options.spelling.keys();
        let mut text = format!(
            r#"{{"command":"createSession","{s}":{},"{p}":{}"#,
            session.as_str(),
            player.as_str()
        );
        if !options.is_empty() {
            text.push_str(r#","options":"#);
            text.push_str(&serde_json::to_string(options).expect("plain fields serialize"));
        }
        text.push('}');
        self.request("createSession", "sessionJoin", text, Expect::Any)
    }

    /// Joins the fullest public session whose metadata matches `filter` and has room, else
    /// creates one with `session`, `player` and `options` (its metadata the filter, unless
    /// `options` has its own). The reply is the same sessionJoin either way.
    pub fn join_or_create(
        &mut self,
        filter: &Data,
        session: &Data,
        player: &Data,
        options: &SessionOptions,
    ) -> RequestId {
        let (s, p) = self.options.spelling.keys();
        let mut text = format!(
            r#"{{"command":"joinOrCreate","filter":{},"{s}":{},"{p}":{}"#,
            filter.as_str(),
            session.as_str(),
            player.as_str()
        );
        if !options.is_empty() {
            text.push_str(r#","options":"#);
            text.push_str(&serde_json::to_string(options).expect("plain fields serialize"));
        }
        text.push('}');
        self.request("joinOrCreate", "sessionJoin", text, Expect::Any)
    }

    /// Joins a session (with its password, if it has one); the members already there follow
    /// as [`Event::PlayerJoin`]s.
    pub fn join_session(&mut self, target: Target, password: Option<&str>) -> RequestId {
        let id = match target {
            Target::Latest => "-1".to_owned(),
            Target::Id(id) => id.to_string(),
        };
        let mut text = format!(r#"{{"command":"joinSession","sessionID":{id}"#);
        if let Some(password) = password {
            text.push_str(r#","password":"#);
            text.push_str(&serde_json::to_string(password).expect("a string serializes"));
        }
        text.push('}');
        self.request("joinSession", "sessionJoin", text, Expect::Any)
    }

    /// Replaces this player's playerData (same key structure as the default, else error 4).
    pub fn update_player(&mut self, player: &Data) -> RequestId {
        let (_, p) = self.options.spelling.keys();
        let text = format!(r#"{{"command":"updatePlayer","{p}":{}}}"#, player.as_str());
        self.request("updatePlayer", "playerUpdate", text, Expect::Any)
    }

    /// Replaces the sessionData and the default playerData; every member's playerData resets.
    pub fn update_session(&mut self, session: &Data, player: &Data) -> RequestId {
        let (s, p) = self.options.spelling.keys();
        let text = format!(
            r#"{{"command":"updateSession","{s}":{},"{p}":{}}}"#,
            session.as_str(),
            player.as_str()
        );
        let expect = Expect::SessionUpdate(session.as_str().to_owned(), player.as_str().to_owned());
        self.request("updateSession", "sessionUpdate", text, expect)
    }

    /// Leaves the current session.
    pub fn leave_session(&mut self) -> RequestId {
        let text = r#"{"command":"leaveSession"}"#.to_owned();
        self.request("leaveSession", "sessionLeave", text, Expect::Any)
    }

    /// The host puts `player_id` out of the session.
    pub fn kick_player(&mut self, player_id: u64) -> RequestId {
        let text = format!(r#"{{"command":"kickPlayer","playerID":{player_id}}}"#);
        self.request("kickPlayer", "playerLeave", text, Expect::Kick(player_id))
    }

    /// The host locks (no one may join) or unlocks the session.
    pub fn lock_session(&mut self, locked: bool) -> RequestId {
        let text = format!(r#"{{"command":"lockSession","locked":{locked}}}"#);
        self.request("lockSession", "sessionLock", text, Expect::Any)
    }

    /// Sends `data` (any JSON) to the other members, or only to the players in `to`; those
    /// that asked for `messages` get [`Event::Message`]. Nothing is kept or replayed.
    pub fn send_message(&mut self, data: &Data, to: Option<&[u64]>) -> RequestId {
        let mut text = format!(r#"{{"command":"sendMessage","data":{}"#, data.as_str());
        if let Some(to) = to {
            let ids: Vec<String> = to.iter().map(u64::to_string).collect();
            text.push_str(&format!(r#","to":[{}]"#, ids.join(",")));
        }
        text.push('}');
        self.request("sendMessage", "messageSent", text, Expect::Any)
    }

    /// Measures the round trip to the server (from `now` to the pong's `handle_text`) and
    /// reads its clock.
    pub fn ping(&mut self, now: Duration) -> RequestId {
        // `t` comes back as sent; the machine keeps the time itself, so `t` is only for logs.
        let text = format!(r#"{{"command":"ping","t":{}}}"#, now.as_millis());
        self.request("ping", "pong", text, Expect::Ping(now))
    }

    /// Lists public sessions, newest first (from the lobby; error 32 in a session).
    pub fn list_sessions(&mut self, options: &ListOptions) -> RequestId {
        let fields = serde_json::to_string(options).expect("plain fields serialize");
        // `{…}` without its braces, after the command.
        let fields = &fields[1..fields.len() - 1];
        let sep = if fields.is_empty() { "" } else { "," };
        let text = format!(r#"{{"command":"listSessions"{sep}{fields}}}"#);
        self.request("listSessions", "sessionList", text, Expect::Any)
    }

    /// The host replaces the session's metadata (what listSessions shows).
    pub fn set_metadata(&mut self, metadata: &Data) -> RequestId {
        let text = format!(
            r#"{{"command":"setMetadata","metadata":{}}}"#,
            metadata.as_str()
        );
        self.request("setMetadata", "sessionMetadata", text, Expect::Any)
    }

    /// Sends a frame as it is (for commands or fields this client does not know); its reply
    /// is not matched (it may come as [`Event::Error`]).
    pub fn send_raw(&mut self, text: &str) -> Result<(), Error> {
        if let Some((code, reason)) = self.closed() {
            return Err(ConnectionClosedError::new(code, reason).into());
        }
        if self.queueing {
            self.queue.push_back(Queued::Raw(text.to_owned()));
        } else {
            self.transmits.push_back(Transmit::Text(text.to_owned()));
        }
        Ok(())
    }

    /// Closes the connection (leaving the session first when the server would keep the seat
    /// for a resume, so the others see this player leave now); stops reconnecting.
    pub fn close(&mut self, code: u16, reason: &str) {
        self.user_closed = true;
        match &self.link {
            Link::Closed { .. } | Link::Closing { .. } => {}
            Link::Waiting { .. } => self.final_close(code, reason),
            Link::Attempting { .. } | Link::Connecting => {
                self.transmits.push_back(Transmit::Disconnect);
                self.final_close(code, reason);
            }
            Link::Open => {
                if self.token.is_some() && self.session.is_some() {
                    let id = self.new_id();
                    self.pending.push_back(Pending {
                        id,
                        command: "leaveSession",
                        reply: "sessionLeave",
                        kind: Kind::Leave,
                        expect: Expect::Any,
                        text: String::new(),
                    });
                    self.transmits
                        .push_back(Transmit::Text(r#"{"command":"leaveSession"}"#.to_owned()));
                }
                self.transmits.push_back(Transmit::Close {
                    code,
                    reason: reason.to_owned(),
                });
                self.link = Link::Closing {
                    code,
                    reason: reason.to_owned(),
                };
            }
        }
    }

    // --- outputs ---

    /// What to do with the connection next.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// A request's outcome.
    #[must_use]
    pub fn poll_completion(&mut self) -> Option<(RequestId, Result<Reply, Error>)> {
        self.completions.pop_front()
    }

    /// What happened.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`Machine::handle_timeout`]: the next reconnection attempt, or the end
    /// of one under way. Changes after any input.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Duration> {
        match self.link {
            Link::Waiting { at } => Some(at),
            Link::Attempting { deadline, .. } => Some(deadline),
            _ => None,
        }
    }

    // --- internals ---

    fn new_id(&mut self) -> RequestId {
        self.next_id = self.next_id.wrapping_add(1);
        RequestId(self.next_id)
    }

    fn reconnect_options(&self) -> ReconnectOptions {
        self.options.reconnect.clone().unwrap_or_default()
    }

    fn report(&mut self, error: Error) {
        self.events.push_back(Event::Error(error));
    }

    fn hello_text(&self) -> Option<String> {
        let mut features = Vec::new();
        if self.options.reconnect.is_some() {
            features.push("\"resume\"");
        }
        if self.options.host {
            features.push("\"host\"");
        }
        if self.options.messages {
            features.push("\"messages\"");
        }
        if features.is_empty() {
            return None;
        }
        Some(format!(
            r#"{{"command":"hello","features":[{}]}}"#,
            features.join(",")
        ))
    }

    // Asks for the extensions, first, before any command of the app.
    fn hello(&mut self) {
        let Some(text) = self.hello_text() else {
            return;
        };
        let id = self.new_id();
        self.pending.push_back(Pending {
            id,
            command: "hello",
            reply: "hello",
            kind: Kind::Hello,
            expect: Expect::Any,
            text: String::new(),
        });
        self.transmits.push_back(Transmit::Text(text));
    }

    fn send_resume(&mut self, with_received: bool) {
        let token = serde_json::to_string(self.token.as_deref().unwrap_or(""))
            .expect("a string serializes");
        let mut text = format!(r#"{{"command":"resumeSession","resumeToken":{token}"#);
        if with_received {
            text.push_str(&format!(r#","received":{}"#, self.received));
        }
        text.push('}');
        self.transmits.push_back(Transmit::Text(text));
    }

    fn request(
        &mut self,
        command: &'static str,
        reply: &'static str,
        text: String,
        expect: Expect,
    ) -> RequestId {
        let id = self.new_id();
        if let Some((code, reason)) = self.closed() {
            let err = ConnectionClosedError::new(code, reason);
            self.completions.push_back((id, Err(err.into())));
            return id;
        }
        if let Link::Closing { code, reason } = &self.link {
            let err = ConnectionClosedError::new(*code, reason);
            self.completions.push_back((id, Err(err.into())));
            return id;
        }
        let pending = Pending {
            id,
            command,
            reply,
            kind: Kind::User,
            expect,
            text,
        };
        if self.queueing {
            self.queue.push_back(Queued::Request(pending));
        } else {
            self.send(pending);
        }
        id
    }

    fn send(&mut self, mut pending: Pending) {
        // The text is needed once: a request is sent once (one in flight at a drop fails).
        let text = std::mem::take(&mut pending.text);
        self.transmits.push_back(Transmit::Text(text));
        self.pending.push_back(pending);
    }

    fn flush_queue(&mut self) {
        while let Some(queued) = self.queue.pop_front() {
            match queued {
                Queued::Raw(text) => self.transmits.push_back(Transmit::Text(text)),
                Queued::Request(pending) => self.send(pending),
            }
        }
    }

    fn complete(&mut self, pending: Option<Pending>, result: Result<Reply, Error>) {
        if let Some(p) = pending {
            if p.kind == Kind::User {
                self.completions.push_back((p.id, result));
            }
        }
    }

    // A server without extensions may ignore hello in silence (the original does): a reply
    // to a later command then comes first, and hello was granted nothing.
    fn skip_unanswered_hello(&mut self, command: &str) {
        if command != "hello" && command != "error" {
            if let Some(head) = self.pending.front() {
                if head.kind == Kind::Hello {
                    self.pending.pop_front();
                    self.features = Some(Vec::new());
                }
            }
        }
    }

    // The oldest pending request, if the reply `command` answers it. `strict`: the frame is
    // always a reply, so a mismatch is reported.
    fn take(&mut self, command: &str, strict: bool) -> Option<Pending> {
        self.skip_unanswered_hello(command);
        let head = self.pending.front()?;
        if head.reply != command && command != "error" {
            if strict {
                let msg = format!(
                    "reply {command} while waiting for {} (to {})",
                    head.reply, head.command
                );
                self.report(Error::Protocol(msg));
            }
            return None;
        }
        self.pending.pop_front()
    }

    fn error_reply(&mut self, frame: Frame) {
        // Every error reply answers the sender's own oldest command, in order.
        let err = SessionError::new(frame.error, &frame.command, frame.message);
        match self.take(&frame.command, false) {
            Some(p) if p.kind == Kind::Hello => self.features = Some(Vec::new()),
            Some(p) => self.complete(Some(p), Err(err.into())),
            None => self.report(err.into()),
        }
    }

    fn dispatch(&mut self, now: Duration, mut frame: Frame) {
        match frame.command.as_str() {
            "sessionJoin" => self.on_session_join(frame),
            "sessionLeave" => self.on_session_leave(frame),
            "playerJoin" => {
                let Ok(player_id) = frame.need_player_id() else {
                    return self.report(Error::Protocol("playerJoin without playerID".into()));
                };
                let data = frame.player().unwrap_or_else(Data::empty_object);
                if let Some(s) = &mut self.session {
                    s.players.insert(player_id, data.clone());
                }
                if let Some(seen) = &mut self.snapshot_seen {
                    seen.insert(player_id);
                }
                self.events.push_back(Event::PlayerJoin { player_id, data });
            }
            "playerUpdate" => {
                let Ok(player_id) = frame.need_player_id() else {
                    return self.report(Error::Protocol("playerUpdate without playerID".into()));
                };
                let data = frame.player().unwrap_or_else(Data::empty_object);
                if let Some(s) = &mut self.session {
                    s.players.insert(player_id, data.clone());
                }
                let is_self = Some(player_id) == self.player_id;
                // Our own update comes back to us as the reply; those of others are events.
                let req = if is_self {
                    self.take("playerUpdate", false)
                } else {
                    None
                };
                self.events.push_back(Event::PlayerUpdate {
                    player_id,
                    data: data.clone(),
                    is_self,
                });
                self.complete(req, Ok(Reply::Player(data)));
            }
            "playerLeave" => {
                let Ok(player_id) = frame.need_player_id() else {
                    return self.report(Error::Protocol("playerLeave without playerID".into()));
                };
                self.skip_unanswered_hello("playerLeave");
                let kicked =
                    matches!(self.pending.front(), Some(p) if p.expect == Expect::Kick(player_id));
                let req = if kicked {
                    self.pending.pop_front()
                } else {
                    None
                };
                let data = self
                    .session
                    .as_mut()
                    .and_then(|s| s.players.shift_remove(&player_id));
                self.events.push_back(Event::PlayerLeave {
                    player_id,
                    data,
                    kicked,
                });
                self.complete(req, Ok(Reply::Kicked));
            }
            "sessionUpdate" => {
                let data = frame.session().unwrap_or_else(Data::empty_object);
                let player_data = frame.player().unwrap_or_else(Data::empty_object);
                if let Some(s) = &mut self.session {
                    s.data = data.clone();
                    s.player_data = player_data.clone();
                    for value in s.players.values_mut() {
                        *value = player_data.clone();
                    }
                }
                self.skip_unanswered_hello("sessionUpdate");
                let expect = Expect::SessionUpdate(
                    data.as_str().to_owned(),
                    player_data.as_str().to_owned(),
                );
                let is_self = matches!(self.pending.front(), Some(p) if p.expect == expect);
                let req = if is_self {
                    self.pending.pop_front()
                } else {
                    None
                };
                self.events.push_back(Event::SessionUpdate {
                    data,
                    player_data,
                    is_self,
                });
                let session = self.session.clone();
                if let Some(session) = session {
                    self.complete(req, Ok(Reply::Session(session)));
                } else {
                    self.complete(
                        req,
                        Err(Error::Protocol("sessionUpdate outside a session".into())),
                    );
                }
            }
            "sessionLock" => {
                let locked = frame.locked.unwrap_or(false);
                if let Some(s) = &mut self.session {
                    s.locked = locked;
                }
                // Only the host may lock, so a host's sessionLock answers its own lockSession;
                // members with the `host` feature get the others' as events.
                let host_known = self.session.as_ref().is_some_and(|s| s.host_id.is_some());
                let req = if !host_known || self.is_host() {
                    self.take("sessionLock", false)
                } else {
                    None
                };
                let is_self = req.is_some();
                self.events
                    .push_back(Event::SessionLock { locked, is_self });
                self.complete(req, Ok(Reply::Locked(locked)));
            }
            "hostChange" => {
                let Ok(player_id) = frame.need_player_id() else {
                    return self.report(Error::Protocol("hostChange without playerID".into()));
                };
                if let Some(s) = &mut self.session {
                    s.host_id = Some(player_id);
                }
                self.events.push_back(Event::HostChange { player_id });
            }
            "message" => {
                let Ok(player_id) = frame.need_player_id() else {
                    return self.report(Error::Protocol("message without playerID".into()));
                };
                let data = frame
                    .data
                    .take()
                    .map_or_else(Data::empty_object, Data::from_raw);
                self.events.push_back(Event::Message { player_id, data });
            }
            "messageSent" => {
                let req = self.take("messageSent", true);
                let recipients = frame.recipients.unwrap_or(0);
                self.complete(req, Ok(Reply::MessageSent(recipients)));
            }
            "pong" => {
                let req = self.take("pong", true);
                let rtt = match req.as_ref().map(|p| &p.expect) {
                    Some(Expect::Ping(sent)) => now.saturating_sub(*sent),
                    _ => Duration::ZERO,
                };
                let server_time = frame.server_time.unwrap_or(0);
                self.complete(req, Ok(Reply::Pong { rtt, server_time }));
            }
            "sessionList" => {
                let req = self.take("sessionList", true);
                let list = SessionList {
                    sessions: frame.sessions.take().unwrap_or_default(),
                    next: frame.next,
                };
                self.complete(req, Ok(Reply::SessionList(list)));
            }
            "sessionMetadata" => {
                let req = self.take("sessionMetadata", true);
                let metadata = frame
                    .metadata
                    .take()
                    .map_or_else(Data::empty_object, Data::from_raw);
                self.complete(req, Ok(Reply::Metadata(metadata)));
            }
            "hello" => {
                if self.take("hello", true).is_some() {
                    self.features = Some(frame.features.take().unwrap_or_default());
                }
            }
            other => {
                let msg = format!("unknown command {other}");
                self.report(Error::Protocol(msg));
            }
        }
    }

    fn on_session_join(&mut self, mut frame: Frame) {
        let (Some(session_id), Some(player_id)) = (frame.session_id, frame.player_id) else {
            let req = self.take("sessionJoin", true);
            let err = Error::Protocol("sessionJoin without sessionID or playerID".into());
            return match req {
                Some(_) => self.complete(req, Err(err)),
                None => self.report(err),
            };
        };
        let data = frame.session().unwrap_or_else(Data::empty_object);
        let player_data = frame.player().unwrap_or_else(Data::empty_object);
        self.player_id = Some(player_id);
        let mut players = indexmap::IndexMap::new();
        players.insert(player_id, player_data.clone());
        let session = Session {
            id: session_id,
            data: data.clone(),
            player_data: player_data.clone(),
            players,
            host_id: frame.host_id,
            locked: false,
        };
        self.session = Some(session.clone());
        self.token = frame.resume_token.take();
        self.received = 0;
        let req = self.take("sessionJoin", true);
        let created = req.as_ref().is_some_and(|p| p.command == "createSession");
        self.events.push_back(Event::SessionJoin {
            session_id,
            player_id,
            data,
            player_data,
            created,
            host_id: frame.host_id,
        });
        self.complete(req, Ok(Reply::Session(session)));
    }

    fn on_session_leave(&mut self, frame: Frame) {
        let session_id = self.session.as_ref().map(|s| s.id);
        self.session = None;
        self.token = None;
        // A kick is not a reply (servers with the `host` feature say `kicked`; without it,
        // a sessionLeave no leaveSession waits for is one too).
        let kicked = frame.kicked == Some(true);
        let req = if kicked {
            None
        } else {
            self.take("sessionLeave", false)
        };
        let kicked = kicked || req.is_none();
        if req.as_ref().map(|p| p.kind) != Some(Kind::Leave) {
            self.events
                .push_back(Event::SessionLeave { session_id, kicked });
        }
        self.complete(req, Ok(Reply::Left));
    }

    // --- reconnecting ---

    // The connection dropped in a session: requests in flight fail (whether the server
    // carried them out is unknown; the replay shows it), later ones wait, attempts begin.
    fn dropped(&mut self, now: Duration, code: u16, reason: &str) {
        let err: Error = ConnectionClosedError::new(code, reason).into();
        while let Some(p) = self.pending.pop_front() {
            self.complete(Some(p), Err(err.clone()));
        }
        self.replay_left = None;
        self.queueing = true;
        self.drop = Some(Reconnecting {
            attempt: 0,
            since: now,
        });
        self.schedule_attempt(now, code, reason, None);
    }

    fn schedule_attempt(&mut self, now: Duration, code: u16, reason: &str, error: Option<Error>) {
        let settings = self.reconnect_options();
        let Some(drop) = self.drop else {
            return self.final_close(code, reason);
        };
        let attempt = drop.attempt.saturating_add(1);
        let elapsed = now.saturating_sub(drop.since);
        if attempt > settings.max_attempts || elapsed >= settings.max_time {
            return self.give_up(LostReason::Timeout, code, reason, error);
        }
        // Exponential backoff with full jitter: uniform in [0, min(max, base × 2^(attempt-1))].
        let factor = 2u32.saturating_pow(attempt - 1);
        let bound = settings
            .base_delay
            .saturating_mul(factor)
            .min(settings.max_delay);
        let bound_ns = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
        let drawn = Duration::from_nanos(self.jitter.next() % bound_ns.saturating_add(1));
        let delay = drawn.min(settings.max_time - elapsed);
        self.drop = Some(Reconnecting {
            attempt,
            since: drop.since,
        });
        self.link = Link::Waiting {
            at: now.saturating_add(delay),
        };
        self.events.push_back(Event::Reconnecting {
            attempt,
            delay,
            code,
            reason: reason.to_owned(),
            error,
        });
    }

    // A failed attempt: the next one, unless the close is final.
    fn attempt_failed(&mut self, now: Duration, code: u16, reason: &str, error: Option<Error>) {
        if error.is_some() || RECONNECT_CLOSE_CODES.contains(&code) {
            self.schedule_attempt(now, code, reason, error);
        } else {
            self.give_up(LostReason::Closed, code, reason, None);
        }
    }

    fn attempt_frame(&mut self, now: Duration, mut frame: Frame) {
        let code = frame.error;
        if frame.command == "hello" {
            self.features = Some(if code == 0 {
                frame.features.take().unwrap_or_default()
            } else {
                Vec::new()
            });
            return;
        }
        if frame.command != "sessionResume" {
            let msg = format!("{} before sessionResume", frame.command);
            return self.report(Error::Protocol(msg));
        }
        if code == 0 {
            return self.resumed(frame);
        }
        let err = SessionError::new(code, "sessionResume", frame.message.take());
        let with_received = matches!(
            self.link,
            Link::Attempting {
                with_received: true,
                ..
            }
        );
        if code == 24 {
            self.transmits.push_back(Transmit::Disconnect);
            let reason = "the old connection is not yet found gone";
            return self.attempt_failed(now, 1006, reason, Some(err.into()));
        }
        if code == 25 && with_received {
            // The count disagrees with the server's (a bug on one side): resume without it,
            // from where the server found the connection gone.
            self.report(err.into());
            if let Link::Attempting { with_received, .. } = &mut self.link {
                *with_received = false;
            }
            return self.send_resume(false);
        }
        // 22 (and anything else): the seat is gone. This connection stays, in the lobby.
        self.link = Link::Open;
        self.lose(LostReason::Rejected, err.into());
    }

    // sessionResume, error 0: the seat is back; the replay follows.
    fn resumed(&mut self, mut frame: Frame) {
        self.link = Link::Open;
        if let Some(id) = frame.player_id {
            self.player_id = Some(id);
        }
        self.token = frame.resume_token.take();
        self.received = 0;
        // With the `host` feature the reply names the host (host changes are not replayed).
        if let (Some(s), Some(host)) = (&mut self.session, frame.host_id) {
            s.host_id = Some(host);
        }
        let snapshot = frame.replay.as_deref() == Some("snapshot");
        if snapshot {
            self.resuming = Some((Replay::Snapshot, None));
            // The state now, instead of the changes: sessionData and our own playerData
            // here, then a playerJoin of every other member; who is not among them is gone.
            let data = frame.session();
            let own = frame.player();
            if let (Some(s), Some(me)) = (&mut self.session, self.player_id) {
                if let Some(data) = data {
                    s.data = data;
                }
                if let Some(own) = own {
                    s.players.insert(me, own);
                }
            }
            self.snapshot_seen = Some(HashSet::new());
            match frame.members {
                Some(n) if n > 0 => self.replay_left = Some(n),
                _ => self.finish_resume(),
            }
        } else {
            let missed = frame.missed.unwrap_or(0);
            self.resuming = Some((Replay::Frames, Some(missed)));
            if missed > 0 {
                self.replay_left = Some(missed);
            } else {
                self.finish_resume();
            }
        }
    }

    // The replay is applied: the client is back, and what waited is sent.
    fn finish_resume(&mut self) {
        self.replay_left = None;
        if let Some(seen) = self.snapshot_seen.take() {
            let me = self.player_id;
            if let Some(s) = &mut self.session {
                let gone: Vec<u64> = s
                    .players
                    .keys()
                    .copied()
                    .filter(|id| Some(*id) != me && !seen.contains(id))
                    .collect();
                for player_id in gone {
                    let data = s.players.shift_remove(&player_id);
                    self.events.push_back(Event::PlayerLeave {
                        player_id,
                        data,
                        kicked: false,
                    });
                }
            }
        }
        let attempts = self.drop.take().map_or(0, |d| d.attempt);
        self.queueing = false;
        self.flush_queue();
        let (replay, missed) = self.resuming.take().unwrap_or((Replay::Frames, Some(0)));
        self.events.push_back(Event::Resumed {
            replay,
            missed,
            attempts,
        });
    }

    // The seat could not be taken back, and there is no connection either.
    fn give_up(&mut self, reason: LostReason, code: u16, close_reason: &str, error: Option<Error>) {
        let cause = error.unwrap_or_else(|| ConnectionClosedError::new(code, close_reason).into());
        self.lose(reason, cause);
        self.final_close(code, close_reason);
    }

    fn lose(&mut self, reason: LostReason, cause: Error) {
        let session_id = self.session.as_ref().map(|s| s.id);
        self.drop = None;
        self.queueing = false;
        self.snapshot_seen = None;
        self.replay_left = None;
        self.resuming = None;
        self.session = None;
        self.token = None;
        // A new connection has a new player ID, known from its first sessionJoin.
        if reason == LostReason::Rejected {
            self.player_id = None;
        }
        let err: Error = SessionLostError {
            reason,
            session_id,
            cause: Box::new(cause.clone()),
        }
        .into();
        while let Some(queued) = self.queue.pop_front() {
            if let Queued::Request(p) = queued {
                self.complete(Some(p), Err(err.clone()));
            }
        }
        self.events.push_back(Event::Lost {
            reason,
            session_id,
            error: cause,
        });
    }

    // Closed for good: every request waiting fails, and Close is the last event.
    fn final_close(&mut self, code: u16, reason: &str) {
        if matches!(self.link, Link::Closed { .. }) {
            return;
        }
        self.link = Link::Closed {
            code,
            reason: reason.to_owned(),
        };
        self.queueing = false;
        self.drop = None;
        let err: Error = ConnectionClosedError::new(code, reason).into();
        while let Some(p) = self.pending.pop_front() {
            self.complete(Some(p), Err(err.clone()));
        }
        while let Some(queued) = self.queue.pop_front() {
            if let Queued::Request(p) = queued {
                self.complete(Some(p), Err(err.clone()));
            }
        }
        self.session = None;
        self.token = None;
        self.events.push_back(Event::Close {
            code,
            reason: reason.to_owned(),
            meaning: close_meaning(code),
        });
    }
}
