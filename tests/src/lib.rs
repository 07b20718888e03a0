//! The black-box protocol suite's harness.
//!
//! Every test talks WebSocket to a [`Target`]: the server at `SESSIONSERVER_URL` if that is set
//! (a `ws://` URL), otherwise a native server started in-process on `127.0.0.1:0`, one per test.
//! Tests only ever see frames, never the server's insides.
//!
//! Rules the helpers keep, so that the tests can too:
//! - Every receive has a [`TIMEOUT`]: a frame that does not come is a failure, never a pass.
//! - Nothing waits on a sleep. "Nothing else arrives" is checked with a sentinel round-trip
//!   ([`Client::expect_nothing_pending`]): a frame whose reply is known must be answered next.
//! - Frames are compared field by field *in order* ([`assert_same`]), so the reply field order
//!   (`command`, `error`, `sessionID`, `playerID`, data) and the order of data keys are checked
//!   by every test; exact number spelling is checked on raw text by `json_fidelity.rs`.
//! - Data tests run in both spellings ([`Spelling`], [`spelling_tests!`]).
//!
//! Against a shared server (`SESSIONSERVER_URL`), tests run in parallel with each other and
//! perhaps with other clients, so IDs are only compared with each other, never with constants,
//! and the few tests that need the server to themselves (`joinSession -1`, error 6, IDs from 0)
//! check [`Target::is_private`] and skip, saying so on stderr.
//!
//! **Direct mode** (`SESSIONSERVER_DIRECT=1`, with `SESSIONSERVER_URL`): the edge host's direct
//! path, where a socket ends in one session's object (`<base>session/new`,
//! `<base>session/<id>`). A [`Client`] of [`Target::connect`] then opens its socket on its first
//! send, at the URL that frame needs (see [`Target::connect`]); [`Target::connect_to_session`]
//! picks a session explicitly, for a client that says `hello` before it joins or resumes. The
//! few tests that move one connection from one session to another, or use what only the relay
//! at `/` offers (`joinSession -1`, `listSessions`, `joinOrCreate`), check
//! [`Target::relay_only_or_skip`] and skip, saying so on stderr: the direct path answers those
//! with error 34.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Map;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use serde_json::{json, Value};

/// How long any one frame (or connect, or close) may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The environment variable naming an external server to test instead of an in-process one.
pub const URL_VAR: &str = "SESSIONSERVER_URL";

/// The environment variable telling the suite the resume grace period (milliseconds) of the
/// server at [`URL_VAR`]; tests that wait for a grace period to end skip without it.
pub const RESUME_GRACE_VAR: &str = "SESSIONSERVER_RESUME_GRACE_MS";

/// The environment variable that, set to `1` (with [`URL_VAR`]), runs the suite on the edge
/// host's direct path: every client's socket ends in one session's object (see the crate's
/// documentation, "Direct mode").
pub const DIRECT_VAR: &str = "SESSIONSERVER_DIRECT";

/// A WebSocket to the server.
type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The server under test.
pub struct Target {
    url: String,
    server: Option<sessionserver::RunningServer>,
    resume_grace: Option<Duration>,
    /// In direct mode, the base the direct path's URLs are made from (`url`, ending in `/`).
    direct: Option<String>,
}

impl Target {
    /// The server at `SESSIONSERVER_URL`, or a fresh in-process native server on 127.0.0.1:0.
    pub async fn start() -> Target {
        Target::start_with(|_| {}).await
    }

    /// [`Target::start`], with the in-process server's options changed by `tune`; a server
    /// at `SESSIONSERVER_URL` is used as it is.
    pub async fn start_with(tune: impl FnOnce(&mut sessionserver::Config)) -> Target {
        let direct = std::env::var(DIRECT_VAR).is_ok_and(|v| !v.is_empty() && v != "0");
        if let Ok(url) = std::env::var(URL_VAR) {
            if !url.is_empty() {
                let resume_grace = std::env::var(RESUME_GRACE_VAR)
                    .ok()
                    .and_then(|ms| ms.parse().ok())
                    .map(Duration::from_millis);
                let direct = direct.then(|| {
                    if url.ends_with('/') {
                        url.clone()
                    } else {
                        format!("{url}/")
                    }
                });
                return Target {
                    url,
                    server: None,
                    resume_grace,
                    direct,
                };
            }
        }
        assert!(
            !direct,
            "{DIRECT_VAR}=1 needs {URL_VAR} naming an edge host: the in-process native server \
             has no direct path"
        );
        let mut config = sessionserver::Config {
            bind: "127.0.0.1".parse().expect("a valid IP address"),
            port: 0,
            ..Default::default()
        };
        tune(&mut config);
        let resume_grace = Some(Duration::from_millis(config.limits.resume_grace_ms));
        let server = sessionserver::start(config)
            .await
            .expect("the in-process server starts on 127.0.0.1:0");
        let addr: SocketAddr = server.local_addr();
        Target {
            url: format!("ws://{addr}/"),
            server: Some(server),
            resume_grace,
            direct: None,
        }
    }

    /// The server's resume grace period: the in-process server's, or for a server at a URL
    /// the one [`RESUME_GRACE_VAR`] gives (`None` if it gives none).
    pub fn resume_grace(&self) -> Option<Duration> {
        self.resume_grace
    }

    /// Whether this test has the server to itself (an in-process server started for it), so
    /// that global state (the latest session, whether any session exists, the ID counters)
    /// is its own.
    pub fn is_private(&self) -> bool {
        self.server.is_some()
    }

    /// [`Target::is_private`], and when it is not, a note on stderr that `test` is skipped.
    pub fn private_or_skip(&self, test: &str) -> bool {
        if !self.is_private() {
            eprintln!(
                "SKIPPED {test}: it needs a server of its own, and {URL_VAR} names a shared one"
            );
        }
        self.is_private()
    }

    /// Whether IDs are known to count up from 0 (the native host's counters). An external
    /// server may be another host, whose IDs are only unique (the edge host draws them at
    /// random), so against one only uniqueness is checked.
    pub fn ids_count_up(&self) -> bool {
        self.is_private()
    }

    /// Checks that `id`, a `kind` ID just handed out, was never handed out before: it is not
    /// among `earlier` and, where IDs count up, greater than each of them.
    #[track_caller]
    pub fn assert_new_id(&self, kind: &str, earlier: &[u64], id: u64) {
        assert!(
            !earlier.contains(&id),
            "{kind} ID {id} was used before: {earlier:?}"
        );
        if self.ids_count_up() {
            assert!(
                earlier.iter().all(|&e| e < id),
                "{kind} IDs count up: {earlier:?}, then {id}"
            );
        }
    }

    /// Whether the suite runs on the edge host's direct path ([`DIRECT_VAR`]): every client's
    /// socket ends in one session's object.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Not [`Target::is_direct`], and when it is, a note on stderr that `test` is skipped: for
    /// a test that moves one connection from one session to another, or uses what only the
    /// relay at `/` offers (`joinSession -1`, `listSessions`, `joinOrCreate`), which the direct
    /// path answers with error 34.
    pub fn relay_only_or_skip(&self, test: &str) -> bool {
        if self.is_direct() {
            eprintln!(
                "SKIPPED {test}: it moves one connection between sessions, which the direct \
                 path does not (error 34)"
            );
        }
        !self.is_direct()
    }

    /// The `ws://` URL clients connect to (in direct mode, the base of the direct path's).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// In direct mode, the URL of `path` on the direct path (`session/new`, `session/7`):
    /// [`Target::url`] with `path` after its `/`. `None` when not in direct mode.
    pub fn direct_url(&self, path: &str) -> Option<String> {
        self.direct.as_ref().map(|base| format!("{base}{path}"))
    }

    /// A new connection (a new player), called `name` in failure messages.
    ///
    /// In direct mode its socket opens on its first send, at the URL that first frame needs:
    /// `createSession` → `<base>session/new`; `joinSession` of a non-negative integer ID →
    /// `<base>session/<id>`; `resumeSession` → `<base>session/<the token's session part>`;
    /// anything else (hello, ping, bad input, a binary frame, `-1`, listSessions…) →
    /// `<base>session/new`. A receive or close before any send opens `<base>session/new`.
    pub async fn connect(&self, name: &str) -> Client {
        match &self.direct {
            Some(base) => Client {
                name: name.to_owned(),
                ws: None,
                direct: Some(base.clone()),
            },
            None => Client::open(name, &self.url).await,
        }
    }

    /// [`Target::connect_to_session`], but a refused upgrade is `Err` with its HTTP status (in
    /// direct mode a session ID no live session has is refused with 404) instead of a failure.
    pub async fn try_connect_to_session(&self, name: &str, session_id: u64) -> Result<Client, u16> {
        let Some(url) = self.direct_url(&format!("session/{session_id}")) else {
            return Ok(self.connect(name).await);
        };
        match tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(&url))
            .await
            .unwrap_or_else(|_| panic!("{name}: connecting to {url} timed out"))
        {
            Ok((ws, _)) => Ok(Client {
                name: name.to_owned(),
                ws: Some(ws),
                direct: None,
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(e) => panic!("{name}: connecting to {url} failed: {e}"),
        }
    }

    /// A new connection (a new player) that will join or resume session `session_id`, called
    /// `name` in failure messages: in direct mode its socket ends in that session's object
    /// (`<base>session/<id>`) whatever it sends first (for a client that says `hello` first),
    /// otherwise it is [`Target::connect`]'s.
    pub async fn connect_to_session(&self, name: &str, session_id: u64) -> Client {
        match self.direct_url(&format!("session/{session_id}")) {
            Some(url) => Client::open(name, &url).await,
            None => self.connect(name).await,
        }
    }

    /// Stops the in-process server (nothing for an external one).
    pub async fn shutdown(self) {
        if let Some(server) = self.server {
            tokio::time::timeout(TIMEOUT, server.shutdown())
                .await
                .expect("the in-process server shuts down in time");
        }
    }
}

/// The two spellings of the data fields. The original server's code uses `session` /
/// `player`; its README says `sessionData` / `playerData`. A session answers in its creator's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spelling {
    /// `session` / `player`.
    Short,
    /// `sessionData` / `playerData`.
    Long,
}

impl Spelling {
    /// Both spellings.
    pub const BOTH: [Spelling; 2] = [Spelling::Short, Spelling::Long];

    /// The sessionData field's name.
    pub fn session(self) -> &'static str {
        match self {
            Spelling::Short => "session",
            Spelling::Long => "sessionData",
        }
    }

    /// The playerData field's name.
    pub fn player(self) -> &'static str {
        match self {
            Spelling::Short => "player",
            Spelling::Long => "playerData",
        }
    }

    /// The other spelling.
    pub fn other(self) -> Spelling {
        match self {
            Spelling::Short => Spelling::Long,
            Spelling::Long => Spelling::Short,
        }
    }
}

/// For each `name`, a module `name` with the tests `short` and `long`, which call
/// `async fn name(Spelling)` with [`Spelling::Short`] and [`Spelling::Long`].
#[macro_export]
macro_rules! spelling_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn short() {
                super::$name($crate::Spelling::Short).await
            }
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn long() {
                super::$name($crate::Spelling::Long).await
            }
        }
    )*};
}

/// Client command frames, as text. Data given as [`Value`] keeps its key order
/// (serde_json's `preserve_order`); the `*_raw` forms splice JSON text in verbatim.
pub mod cmd {
    use super::{Map, Spelling, Value};

    fn frame(fields: Vec<(&str, Value)>) -> String {
        let mut map = Map::new();
        for (k, v) in fields {
            map.insert(k.to_owned(), v);
        }
        Value::Object(map).to_string()
    }

    /// `createSession` with both data fields.
    pub fn create(sp: Spelling, session: &Value, player: &Value) -> String {
        frame(vec![
            ("command", "createSession".into()),
            (sp.session(), session.clone()),
            (sp.player(), player.clone()),
        ])
    }

    /// `createSession` with both data fields given as JSON text.
    pub fn create_raw(sp: Spelling, session: &str, player: &str) -> String {
        format!(
            r#"{{"command":"createSession","{}":{session},"{}":{player}}}"#,
            sp.session(),
            sp.player()
        )
    }

    /// `joinSession` with this `sessionID`.
    pub fn join(session_id: i64) -> String {
        format!(r#"{{"command":"joinSession","sessionID":{session_id}}}"#)
    }

    /// `joinSession` with an unsigned `sessionID` (as the server sent it).
    pub fn join_id(session_id: u64) -> String {
        format!(r#"{{"command":"joinSession","sessionID":{session_id}}}"#)
    }

    /// `updateSession` with both data fields.
    pub fn update_session(sp: Spelling, session: &Value, player: &Value) -> String {
        frame(vec![
            ("command", "updateSession".into()),
            (sp.session(), session.clone()),
            (sp.player(), player.clone()),
        ])
    }

    /// `updateSession` with both data fields given as JSON text.
    pub fn update_session_raw(sp: Spelling, session: &str, player: &str) -> String {
        format!(
            r#"{{"command":"updateSession","{}":{session},"{}":{player}}}"#,
            sp.session(),
            sp.player()
        )
    }

    /// `updatePlayer`.
    pub fn update_player(sp: Spelling, player: &Value) -> String {
        frame(vec![
            ("command", "updatePlayer".into()),
            (sp.player(), player.clone()),
        ])
    }

    /// `updatePlayer` with the data given as JSON text.
    pub fn update_player_raw(sp: Spelling, player: &str) -> String {
        format!(r#"{{"command":"updatePlayer","{}":{player}}}"#, sp.player())
    }

    /// `leaveSession`.
    pub fn leave() -> String {
        r#"{"command":"leaveSession"}"#.to_owned()
    }
}

/// Server frames as the protocol says they must be, field order included.
pub mod frames {
    use super::{Map, Spelling, Value};

    fn frame(fields: Vec<(&str, Value)>) -> Value {
        let mut map = Map::new();
        for (k, v) in fields {
            map.insert(k.to_owned(), v);
        }
        Value::Object(map)
    }

    /// `sessionJoin`, error 0.
    pub fn session_join(
        sp: Spelling,
        session_id: u64,
        player_id: u64,
        session: &Value,
        player: &Value,
    ) -> Value {
        frame(vec![
            ("command", "sessionJoin".into()),
            ("error", 0.into()),
            ("sessionID", session_id.into()),
            ("playerID", player_id.into()),
            (sp.session(), session.clone()),
            (sp.player(), player.clone()),
        ])
    }

    /// `sessionUpdate`, error 0.
    pub fn session_update(sp: Spelling, session: &Value, player: &Value) -> Value {
        frame(vec![
            ("command", "sessionUpdate".into()),
            ("error", 0.into()),
            (sp.session(), session.clone()),
            (sp.player(), player.clone()),
        ])
    }

    /// `sessionLeave`, error 0.
    pub fn session_leave() -> Value {
        frame(vec![
            ("command", "sessionLeave".into()),
            ("error", 0.into()),
        ])
    }

    /// `playerJoin`, error 0.
    pub fn player_join(sp: Spelling, player_id: u64, player: &Value) -> Value {
        frame(vec![
            ("command", "playerJoin".into()),
            ("error", 0.into()),
            ("playerID", player_id.into()),
            (sp.player(), player.clone()),
        ])
    }

    /// `playerUpdate`, error 0.
    pub fn player_update(sp: Spelling, player_id: u64, player: &Value) -> Value {
        frame(vec![
            ("command", "playerUpdate".into()),
            ("error", 0.into()),
            ("playerID", player_id.into()),
            (sp.player(), player.clone()),
        ])
    }

    /// `playerLeave`, error 0.
    pub fn player_leave(player_id: u64) -> Value {
        frame(vec![
            ("command", "playerLeave".into()),
            ("error", 0.into()),
            ("playerID", player_id.into()),
        ])
    }

    /// An error reply with one of the original codes (2 to 7): exactly `command` and `error`.
    pub fn error(command: &str, code: u64) -> Value {
        frame(vec![("command", command.into()), ("error", code.into())])
    }
}

/// Whether `a` and `b` are the same JSON, with object keys in the same order at every level.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(va, vb)| same(va, vb))
        }
        _ => a == b,
    }
}

/// Panics unless `actual` is `expected`, keys in the same order ([`same`]).
#[track_caller]
pub fn assert_same(actual: &Value, expected: &Value, context: impl fmt::Display) {
    assert!(
        same(actual, expected),
        "{context}\n  expected: {expected}\n  received: {actual}"
    );
}

/// The keys of a JSON object, in order.
pub fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Whether `frame` is `{"command":command,"error":code,"message":"…"}`: exactly these fields in
/// this order, with a non-empty message.
pub fn is_error_with_message(frame: &Value, command: &str, code: u64) -> bool {
    keys(frame) == ["command", "error", "message"]
        && frame["command"] == command
        && frame["error"] == code
        && frame["message"].as_str().is_some_and(|m| !m.is_empty())
}

/// An unknown command: the sentinel whose reply, `{"command":"error","error":12,…}`, is known
/// in every state and changes nothing.
pub const SENTINEL: &str = r#"{"command":"sentinel-round-trip"}"#;

/// One WebSocket connection: one player.
pub struct Client {
    name: String,
    /// The socket; `None` until the first send of a direct-mode client.
    ws: Option<Socket>,
    /// A direct-mode client's base URL, from which its first frame picks its URL.
    direct: Option<String>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("name", &self.name).finish()
    }
}

impl Client {
    /// A connection to `url`, opened now.
    async fn open(name: &str, url: &str) -> Client {
        Client {
            name: name.to_owned(),
            ws: Some(Client::handshake(name, url).await),
            direct: None,
        }
    }

    async fn handshake(name: &str, url: &str) -> Socket {
        let (ws, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .unwrap_or_else(|_| panic!("{name}: connecting to {url} timed out"))
            .unwrap_or_else(|e| panic!("{name}: connecting to {url} failed: {e}"));
        ws
    }

    /// The socket, opened first (in direct mode) at the URL `first` needs, the first frame it
    /// is to send (`None`: a receive or close before any send, for `<base>session/new`).
    async fn socket(&mut self, first: Option<&Message>) -> &mut Socket {
        if self.ws.is_none() {
            let base = self
                .direct
                .as_deref()
                .expect("a client has a socket or a direct-mode base");
            let url = format!("{base}{}", direct_path(first));
            self.ws = Some(Client::handshake(&self.name, &url).await);
        }
        self.ws.as_mut().expect("the socket was just opened")
    }

    /// The name failure messages use.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends one text frame, as is.
    pub async fn send_json(&mut self, text: &str) {
        self.send(Message::text(text)).await;
    }

    /// Sends one binary frame.
    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.send(Message::binary(bytes.to_vec())).await;
    }

    async fn send(&mut self, message: Message) {
        let ws = self.socket(Some(&message)).await;
        let sent = tokio::time::timeout(TIMEOUT, ws.send(message)).await;
        let name = &self.name;
        sent.unwrap_or_else(|_| panic!("{name}: sending timed out"))
            .unwrap_or_else(|e| panic!("{name}: sending failed: {e}"));
    }

    /// The next text frame, exactly as received. Fails on a timeout, a binary frame, or the
    /// connection closing. Pings and pongs are skipped (the library answers pings).
    pub async fn recv_text(&mut self) -> String {
        self.recv_text_within(TIMEOUT).await
    }

    /// [`Client::recv_text`], waiting up to `timeout` (for a frame that comes after a known
    /// delay of the server's, such as the end of a grace period).
    pub async fn recv_text_within(&mut self, timeout: Duration) -> String {
        self.socket(None).await;
        let name = &self.name;
        let ws = self.ws.as_mut().expect("the socket is open");
        loop {
            let next = tokio::time::timeout(timeout, ws.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("{name}: no frame within {timeout:?} (a missing frame is a failure)")
                });
            match next {
                Some(Ok(Message::Text(text))) => return text.as_str().to_owned(),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Binary(b))) => {
                    panic!(
                        "{name}: received a binary frame ({} bytes); the server sends text",
                        b.len()
                    )
                }
                Some(Ok(Message::Close(frame))) => {
                    panic!("{name}: the server closed the connection ({frame:?}) while a frame was awaited")
                }
                Some(Err(e)) => panic!("{name}: receiving failed: {e}"),
                None => panic!("{name}: the connection ended while a frame was awaited"),
            }
        }
    }

    /// The next text frame, or the server's close code if the connection closes first (`None`:
    /// it ended without a close frame). Fails on a timeout or a binary frame.
    pub async fn recv_text_or_close(&mut self) -> Result<String, Option<u16>> {
        self.socket(None).await;
        let name = &self.name;
        let ws = self.ws.as_mut().expect("the socket is open");
        loop {
            let next = tokio::time::timeout(TIMEOUT, ws.next())
                .await
                .unwrap_or_else(|_| panic!("{name}: no frame or close within {TIMEOUT:?}"));
            match next {
                Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Binary(b))) => {
                    panic!("{name}: received a binary frame ({} bytes)", b.len())
                }
                Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| f.code.into())),
                Some(Err(_)) => return Err(None),
                None => return Err(None),
            }
        }
    }

    /// The next frame, parsed; it must be a JSON object.
    pub async fn recv(&mut self) -> Value {
        self.recv_within(TIMEOUT).await
    }

    /// [`Client::recv`], waiting up to `timeout`.
    pub async fn recv_within(&mut self, timeout: Duration) -> Value {
        let text = self.recv_text_within(timeout).await;
        let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "{}: received a frame that is not JSON ({e}): {text}",
                self.name
            )
        });
        assert!(
            value.is_object(),
            "{}: received a frame that is not a JSON object: {text}",
            self.name
        );
        value
    }

    /// The next frame, which must be exactly `expected` (keys in the same order).
    pub async fn expect_frame(&mut self, expected: &Value) -> Value {
        let actual = self.recv().await;
        assert_same(
            &actual,
            expected,
            format!("{}: unexpected frame", self.name),
        );
        actual
    }

    /// [`Client::expect_frame`], waiting up to `timeout` (for a frame that comes after a known
    /// delay of the server's, such as the end of a grace period).
    pub async fn expect_frame_within(&mut self, expected: &Value, timeout: Duration) -> Value {
        let actual = self.recv_within(timeout).await;
        assert_same(
            &actual,
            expected,
            format!("{}: unexpected frame", self.name),
        );
        actual
    }

    /// The next frame, which must have this `command` and `error: 0` (its first two fields);
    /// returns it for further checks.
    pub async fn expect(&mut self, command: &str) -> Value {
        let actual = self.recv().await;
        assert!(
            actual["command"] == command
                && actual["error"] == 0
                && keys(&actual).starts_with(&["command", "error"]),
            "{}: expected a {command:?} frame with error 0, received {actual}",
            self.name
        );
        actual
    }

    /// The next frame, which must be `{"command":command,"error":code}` with no other field:
    /// the shape of the original server's error codes (2 to 7).
    pub async fn expect_error(&mut self, command: &str, code: u64) {
        self.expect_frame(&frames::error(command, code)).await;
    }

    /// The next frame, which must be `{"command":command,"error":code,"message":…}` with a
    /// non-empty message string and no other field: the shape of the new codes (9 on).
    /// Returns the message.
    pub async fn expect_error_message(&mut self, command: &str, code: u64) -> String {
        self.expect_message_error(command, code, None).await
    }

    /// Sends `frame` and expects the new-code error reply `command`/`code` (with a message).
    pub async fn rejects(&mut self, frame: &str, command: &str, code: u64) {
        self.send_json(frame).await;
        self.expect_message_error(command, code, Some(frame)).await;
    }

    async fn expect_message_error(
        &mut self,
        command: &str,
        code: u64,
        sent: Option<&str>,
    ) -> String {
        let actual = self.recv().await;
        assert!(
            is_error_with_message(&actual, command, code),
            "{}: {}expected {{\"command\":{command:?},\"error\":{code},\"message\":\"…\"}}\n  received {actual}",
            self.name,
            sent.map(|f| format!("sent {f:.300}\n  ")).unwrap_or_default(),
        );
        actual["message"].as_str().unwrap_or_default().to_owned()
    }

    /// Checks that no frame is pending: sends the [`SENTINEL`] and expects its reply next.
    pub async fn expect_nothing_pending(&mut self) {
        self.send_json(SENTINEL).await;
        let actual = self.recv().await;
        assert!(
            is_error_with_message(&actual, "error", 12),
            "{}: expected no frame before the sentinel's reply (error 12), received {actual}",
            self.name
        );
    }

    /// Creates a session with this data and checks the `sessionJoin`; returns
    /// `(sessionID, playerID)`.
    pub async fn create(&mut self, sp: Spelling, session: &Value, player: &Value) -> (u64, u64) {
        self.send_json(&cmd::create(sp, session, player)).await;
        let reply = self.expect("sessionJoin").await;
        let (session_id, player_id) = ids(&reply, &self.name);
        assert_same(
            &reply,
            &frames::session_join(sp, session_id, player_id, session, player),
            format!("{}: createSession's sessionJoin", self.name),
        );
        (session_id, player_id)
    }

    /// Joins `session_id` and checks the `sessionJoin` (in spelling `sp`, with this session
    /// data and default player data) and the `playerJoin` of each of `members` (ID and data, in
    /// join order) that follow it. Returns the new playerID.
    pub async fn join(
        &mut self,
        sp: Spelling,
        session_id: u64,
        session: &Value,
        default_player: &Value,
        members: &[(u64, Value)],
    ) -> u64 {
        self.send_json(&cmd::join_id(session_id)).await;
        let reply = self.expect("sessionJoin").await;
        let (got_session, player_id) = ids(&reply, &self.name);
        assert_eq!(
            got_session, session_id,
            "{}: joined the wrong session: {reply}",
            self.name
        );
        assert_same(
            &reply,
            &frames::session_join(sp, session_id, player_id, session, default_player),
            format!("{}: joinSession's sessionJoin", self.name),
        );
        for (id, data) in members {
            self.expect_frame(&frames::player_join(sp, *id, data)).await;
        }
        player_id
    }

    /// Closes the connection with a close handshake and waits for the server's side.
    pub async fn close(mut self) {
        let name = self.name.clone();
        let ws = self.socket(None).await;
        // The close may race with the server closing; either way the stream must end.
        let _ = tokio::time::timeout(TIMEOUT, ws.close(None)).await;
        let drained = tokio::time::timeout(TIMEOUT, async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
        assert!(
            drained.is_ok(),
            "{name}: the server did not finish the close handshake"
        );
    }

    /// Drops the TCP connection without a WebSocket close handshake (a lost connection). A
    /// direct-mode client that never sent has no connection to drop.
    pub fn drop_connection(self) {
        drop(self.ws);
    }
}

/// The direct path a direct-mode client's socket opens at, for its first frame `first`
/// (`None`: it receives before it sends): `session/<id>` for a `joinSession` of a non-negative
/// integer ID or a `resumeSession` whose token's session part is one, else `session/new`.
fn direct_path(first: Option<&Message>) -> String {
    let frame = match first {
        Some(Message::Text(text)) => serde_json::from_str::<Value>(text.as_str()).ok(),
        _ => None,
    };
    let session = frame.as_ref().and_then(|f| match f["command"].as_str() {
        Some("joinSession") => f["sessionID"].as_u64(),
        Some("resumeSession") => f["resumeToken"]
            .as_str()
            .and_then(|token| token.split('.').next())
            .and_then(|id| id.parse::<u64>().ok()),
        _ => None,
    });
    match session {
        Some(id) => format!("session/{id}"),
        None => "session/new".to_owned(),
    }
}

/// The `sessionID` and `playerID` of a `sessionJoin`.
fn ids(reply: &Value, name: &str) -> (u64, u64) {
    let session_id = reply["sessionID"]
        .as_u64()
        .unwrap_or_else(|| panic!("{name}: sessionJoin without an unsigned sessionID: {reply}"));
    let player_id = reply["playerID"]
        .as_u64()
        .unwrap_or_else(|| panic!("{name}: sessionJoin without an unsigned playerID: {reply}"));
    (session_id, player_id)
}

/// A member of a [`Room`]: its connection, playerID and current playerData.
#[derive(Debug)]
pub struct Member {
    /// The connection.
    pub client: Client,
    /// Its playerID.
    pub id: u64,
    /// Its playerData as the others last saw it.
    pub data: Value,
}

/// A session with several members, set up and checked frame by frame. Its helpers check every
/// member's frames, so a test using them sees every frame accounted for.
#[derive(Debug)]
pub struct Room {
    /// The spelling its creator used.
    pub sp: Spelling,
    /// Its sessionID.
    pub id: u64,
    /// The sessionData.
    pub session: Value,
    /// The default playerData.
    pub default_player: Value,
    /// The members in join order; the first created the session.
    pub members: Vec<Member>,
}

impl Room {
    /// A session created by a new client `p0` in spelling `sp`, joined by `p1` … `p{n-1}`;
    /// every `sessionJoin` and `playerJoin` is checked on the way.
    pub async fn open(
        target: &Target,
        sp: Spelling,
        n: usize,
        session: &Value,
        player: &Value,
    ) -> Room {
        assert!(n >= 1, "a room has at least its creator");
        let mut creator = target.connect("p0").await;
        let (id, creator_id) = creator.create(sp, session, player).await;
        let mut room = Room {
            sp,
            id,
            session: session.clone(),
            default_player: player.clone(),
            members: vec![Member {
                client: creator,
                id: creator_id,
                data: player.clone(),
            }],
        };
        for i in 1..n {
            room.add(target, &format!("p{i}")).await;
        }
        room
    }

    /// A new client called `name` joins; it must get `sessionJoin` and every member's current
    /// data in join order, and every member its `playerJoin`. Returns its index.
    pub async fn add(&mut self, target: &Target, name: &str) -> usize {
        let client = target.connect(name).await;
        self.add_client(client).await
    }

    /// [`Room::add`] with a connection that is in no session.
    pub async fn add_client(&mut self, mut client: Client) -> usize {
        let existing: Vec<(u64, Value)> = self
            .members
            .iter()
            .map(|m| (m.id, m.data.clone()))
            .collect();
        let id = client
            .join(
                self.sp,
                self.id,
                &self.session,
                &self.default_player,
                &existing,
            )
            .await;
        let announcement = frames::player_join(self.sp, id, &self.default_player);
        self.expect_all(&announcement).await;
        self.members.push(Member {
            client,
            id,
            data: self.default_player.clone(),
        });
        self.members.len() - 1
    }

    /// Member `index` sends `updatePlayer` (in spelling `sp`) with matching data; every
    /// member, the sender included, must get the `playerUpdate` in the room's spelling.
    pub async fn update_player(&mut self, index: usize, sp: Spelling, data: &Value) {
        self.client(index)
            .send_json(&cmd::update_player(sp, data))
            .await;
        let expected = frames::player_update(self.sp, self.pid(index), data);
        self.expect_all(&expected).await;
        self.members[index].data = data.clone();
    }

    /// Member `index` sends `updateSession` (in spelling `sp`); every member, the sender
    /// included, must get the `sessionUpdate` in the room's spelling, and all playerData is
    /// reset to the new default.
    pub async fn update_session(
        &mut self,
        index: usize,
        sp: Spelling,
        session: &Value,
        player: &Value,
    ) {
        self.client(index)
            .send_json(&cmd::update_session(sp, session, player))
            .await;
        let expected = frames::session_update(self.sp, session, player);
        self.expect_all(&expected).await;
        self.session = session.clone();
        self.default_player = player.clone();
        for m in &mut self.members {
            m.data = player.clone();
        }
    }

    /// Member `index` sends `leaveSession`: it must get `sessionLeave`, every other member
    /// `playerLeave`. Returns its connection, now in no session.
    pub async fn leave(&mut self, index: usize) -> Member {
        let mut member = self.members.remove(index);
        member.client.send_json(&cmd::leave()).await;
        member.client.expect_frame(&frames::session_leave()).await;
        self.expect_all(&frames::player_leave(member.id)).await;
        member
    }

    /// Member `index` closes its connection: every other member must get `playerLeave`.
    pub async fn disconnect(&mut self, index: usize) {
        let member = self.members.remove(index);
        let id = member.id;
        member.client.close().await;
        self.expect_all(&frames::player_leave(id)).await;
    }

    /// Every member's next frame must be `expected`.
    pub async fn expect_all(&mut self, expected: &Value) {
        for m in &mut self.members {
            m.client.expect_frame(expected).await;
        }
    }

    /// No member has a frame pending ([`Client::expect_nothing_pending`]).
    pub async fn expect_quiet(&mut self) {
        for m in &mut self.members {
            m.client.expect_nothing_pending().await;
        }
    }

    /// The client of member `index`.
    pub fn client(&mut self, index: usize) -> &mut Client {
        &mut self.members[index].client
    }

    /// The playerID of member `index`.
    pub fn pid(&self, index: usize) -> u64 {
        self.members[index].id
    }

    /// Closes every member's connection.
    pub async fn close(self) {
        for m in self.members {
            m.client.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{direct_path, Message};

    fn path(frame: &str) -> String {
        direct_path(Some(&Message::text(frame)))
    }

    #[test]
    fn the_first_frame_picks_the_direct_path() {
        assert_eq!(path(r#"{"command":"createSession"}"#), "session/new");
        assert_eq!(
            path(r#"{"command":"joinSession","sessionID":42}"#),
            "session/42"
        );
        assert_eq!(
            path(r#"{"command":"joinSession","sessionID":-1}"#),
            "session/new"
        );
        assert_eq!(
            path(r#"{"command":"joinSession","sessionID":"42"}"#),
            "session/new"
        );
        assert_eq!(
            path(r#"{"command":"resumeSession","resumeToken":"7.3.00ff"}"#),
            "session/7"
        );
        assert_eq!(
            path(r#"{"command":"resumeSession","resumeToken":"x.3.00ff"}"#),
            "session/new"
        );
        assert_eq!(
            path(r#"{"\u0063ommand":"joinSession","sessionID":9}"#),
            "session/9"
        );
        for other in [
            r#"{"command":"hello","features":["resume"]}"#,
            r#"{"command":"ping","t":1}"#,
            r#"{"command":"listSessions"}"#,
            r#"{"command":"joinOrCreate"}"#,
            "not json",
            "[]",
        ] {
            assert_eq!(path(other), "session/new", "{other}");
        }
        assert_eq!(
            direct_path(Some(&Message::binary(b"{}".to_vec()))),
            "session/new"
        );
        assert_eq!(direct_path(None), "session/new");
    }
}
