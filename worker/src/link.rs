//! The contract between the relay (the Worker) and the two Durable Object classes: how a relay
//! opens a socket to a session, what the answers mean, and the limits all three apply. What
//! travels on that socket is in [`crate::wire`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sessionserver_core::ids::MAX_ID;
use sessionserver_core::{ConnectionConfig, Features, Limits, Password, PlayerId, ResumeToken};
use worker::wasm_bindgen::JsValue;
use worker::{console_log, Delay, Env, Headers, Method, Request, RequestInit, Result, Stub};

use crate::retry::{self, Failure};
use crate::settings::{
    self, VarValue, AUTH_SECRET_VAR, REGISTRY_SHARDS_VAR, RESUME_GRACE_VAR, TEST_HOOKS_VAR,
};
use crate::wire;

/// Binding of the session objects in wrangler.toml, one object per session ID.
pub const SESSIONS: &str = "SESSIONS";
/// Binding of the registry objects in wrangler.toml, one per shard ([`crate::shard`]).
pub const REGISTRY: &str = "REGISTRY";

/// Largest client frame, in bytes, as the native host's default `max_message_size`. A larger
/// one closes the connection with 1009 ([`sessionserver_core::CloseReason::TooBig`]). The
/// platform itself would take up to 1 MiB from a client and 32 MiB into an object.
pub const MAX_FRAME: usize = 64 * 1024;

/// WebSockets one object can hold, a platform limit. Each member of a session is one socket
/// of its object, so `max_players_per_session` must stay below it.
pub const MAX_SOCKETS_PER_OBJECT: usize = 32_768;

/// The core's limits on this host ([`settings::limits`]): the defaults, as on the native host,
/// and the resume grace period of the `RESUME_GRACE_MS` variable. The default 4096 players per
/// session is far below [`MAX_SOCKETS_PER_OBJECT`]; `max_sessions` is not applied (every
/// session is its own object, see worker/README.md). A variable that is no number of
/// milliseconds is an error (the relay answers the upgrade with 500 and says why).
pub fn limits(env: &Env) -> Result<Limits> {
    let grace =
        settings::resume_grace_ms(&var(env, RESUME_GRACE_VAR)).map_err(worker::Error::RustError)?;
    let limits = settings::limits(grace);
    debug_assert!(limits.max_players_per_session < MAX_SOCKETS_PER_OBJECT);
    Ok(limits)
}

/// The rate limit of each connection, as on the native host, and `resume` while there is a
/// grace period ([`settings::connection_config`]).
pub fn connection_config(limits: &Limits) -> ConnectionConfig {
    settings::connection_config(limits)
}

/// The secret of connect-time auth, if `AUTH_SECRET` is set (a secret or a variable: both are
/// strings on `env`); an error for one too short ([`settings::auth_secret`]).
pub fn auth_secret(env: &Env) -> Result<Option<Vec<u8>>> {
    settings::auth_secret(&var(env, AUTH_SECRET_VAR)).map_err(worker::Error::RustError)
}

/// Whether the test hooks are on ([`TEST_HOOKS_VAR`]).
pub fn test_hooks(env: &Env) -> bool {
    var(env, TEST_HOOKS_VAR) == VarValue::Text("1".into())
}

fn var(env: &Env, name: &str) -> VarValue {
    match worker::js_sys::Reflect::get(env, &JsValue::from_str(name)) {
        Err(_) => VarValue::Absent,
        Ok(value) if value.is_undefined() || value.is_null() => VarValue::Absent,
        Ok(value) => match (value.as_string(), value.as_f64()) {
            (Some(text), _) => VarValue::Text(text),
            (None, Some(number)) => VarValue::Number(number),
            _ => VarValue::Other,
        },
    }
}

/// 32 bytes from `crypto.getRandomValues`, the seed of a session's resume secrets (at its
/// creation and at every load: a restored session must not draw the secrets it drew before).
/// `None` if the platform gives none; the session then issues no tokens.
pub fn seed() -> Option<[u8; 32]> {
    let mut seed = [0u8; 32];
    match getrandom::fill(&mut seed) {
        Ok(()) => Some(seed),
        Err(e) => {
            worker::console_error!("getrandom: {e}: resume tokens are not issued");
            None
        }
    }
}

/// How the session object answers a relay's request for a socket (HTTP status codes).
pub mod status {
    /// The socket is open. For a join this is `ToPlayer::Joined`: the player is a member and
    /// its frames are on the way. For a create, the create is to be sent on it.
    pub const OPEN: u16 = 101;
    /// Join refused by the session (`ToPlayer::JoinRefused`, e.g. it is full): the body holds
    /// the frames for the client ([`crate::wire::encode_frames`]).
    pub const ANSWERED: u16 = 200;
    /// No session has this ID (never had, or has ended).
    pub const NOT_FOUND: u16 = 404;
    /// Create: the ID is taken. Join: a member already has this player ID.
    pub const CONFLICT: u16 = 409;
}

/// WebSocket close codes of the edge host, besides the core's [`sessionserver_core::CloseReason`]
/// (1008 rate limit, 1009 message too big), which the relay sends as the native host does.
pub mod close {
    /// Object to relay: the player left (`ToPlayer::Left`; its `sessionLeave` was the last
    /// frame). Only on the relay's socket, never to a client.
    pub const LEFT: u16 = 4100;
    /// Object to relay: the session ID is taken (a create raced another); draw a new one. Only
    /// on the relay's socket, never to a client.
    pub const TAKEN: u16 = 4101;
    /// Object to relay: the player's seat was resumed on another connection (a take-over);
    /// the relay closes its client with 4003 (`CloseReason::Replaced`). Only on the relay's
    /// socket.
    pub const REPLACED: u16 = 4102;
    /// Normal end, either side.
    pub const NORMAL: u16 = 1000;
    /// What a socket reports when its connection was lost without a close (never sent).
    pub const LOST: u16 = 1006;
    /// To a client or relay: something on the platform failed (a session object could not be
    /// reached or lost the socket); the player is out of its session.
    pub const INTERNAL: u16 = 1011;
    /// To a client that asked for `resume`: the link to its session's object broke (the
    /// object was reset or restarted); its seat is kept for the grace period: resume it with
    /// the token on a new connection (1012, "service restart").
    pub const RESUME: u16 = 1012;
    /// To a client: try again on a new connection (two random player IDs met in one session,
    /// p ≈ members / 2^53 per join; or the session's object answered overloaded: come back
    /// later, RFC 6455's "Try Again Later").
    pub const TRY_AGAIN: u16 = 1013;

    /// The code to answer a peer's close frame with (RFC 6455 5.5.1: usually the one it
    /// sent): its own if that may be sent on the wire, else 1000 (1005, 1006 and 1015 are only
    /// ever reported, and the peer's number is not to be trusted).
    pub fn echo(code: usize) -> u16 {
        match code {
            1000..=1003 | 1007..=1014 | 3000..=4999 => code as u16,
            _ => NORMAL,
        }
    }
}

/// What a relay asks of a session object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Open a socket on which the next message is the `createSession`.
    Create,
    /// Add the player and open its socket.
    Join,
    /// Take back the seat of a resume token ([`Ask::token`]) and open its socket: the
    /// `sessionResume` and its replay come on it, then [`crate::wire::encode_resumed`].
    Resume,
    /// The direct path ([`crate::direct`]): accept the client's own socket, in the lobby, with
    /// the lobby's rules for this one session (with [`Ask::new_session`], to create it).
    Direct,
}

impl Op {
    fn path(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Join => "join",
            Op::Resume => "resume",
            Op::Direct => "direct",
        }
    }
}

/// The header of a resume's token (not in the URL, which the platform may log).
const TOKEN_HEADER: &str = "Resume-Token";
/// The header of a resume's `received`.
const RECEIVED_HEADER: &str = "Resume-Received";
/// The header of the player's subject ([`crate::wire::encode_subject`]), when connect-time
/// auth gave it one: the session keeps it with the seat.
const SUBJECT_HEADER: &str = "Player-Subject";
/// The header of a join's password (percent-encoded as a subject is; not in the URL).
const PASSWORD_HEADER: &str = "Session-Password";

/// The extensions other than `resume` a session object hears of in an [`Ask`].
pub const EXTRAS: Features = Features::HOST.union(Features::MESSAGES);

/// A relay's request for a socket to a session object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    /// What for.
    pub op: Op,
    /// The player (for a resume, the connection asking: the seat's ID is the token's).
    pub player: PlayerId,
    /// A create or join that asks for `resume`: the member is given a token.
    pub resume: bool,
    /// The extensions other than `resume` the player's connection asked for (`host`,
    /// `messages`).
    pub extras: Features,
    /// The password a join carried.
    pub password: Option<Password>,
    /// A `joinOrCreate`'s try: a refusal carries no frame ([`sessionserver_core::ToSession::Join`]).
    pub quiet: bool,
    /// The token of a resume.
    pub token: Option<ResumeToken>,
    /// A resume's `received`: the session events the client got since its last welcome.
    pub received: Option<u64>,
    /// Who the player's connection is (a JWT's `sub`), for the seat: a create's or join's
    /// member has it; a resume must come from the seat's own.
    pub subject: Option<Arc<String>>,
    /// A direct socket that may create the object's session (`/session/new`).
    pub new_session: bool,
}

impl Ask {
    /// A direct socket's request ([`Op::Direct`]) for the connection `player`, known as
    /// `subject`; `new_session` for `/session/new`.
    pub fn direct(player: PlayerId, subject: Option<Arc<String>>, new_session: bool) -> Ask {
        Ask {
            op: Op::Direct,
            player,
            resume: false,
            extras: Features::NONE,
            password: None,
            quiet: false,
            token: None,
            received: None,
            subject,
            new_session,
        }
    }

    /// The request the object's `fetch` gets.
    pub fn request(&self) -> Result<Request> {
        let headers = Headers::new();
        headers.set("Upgrade", "websocket")?;
        if let Some(token) = &self.token {
            headers.set(TOKEN_HEADER, &token.to_string())?;
        }
        if let Some(received) = self.received {
            headers.set(RECEIVED_HEADER, &received.to_string())?;
        }
        if let Some(subject) = &self.subject {
            headers.set(SUBJECT_HEADER, &wire::encode_subject(subject))?;
        }
        if let Some(password) = &self.password {
            headers.set(PASSWORD_HEADER, &wire::encode_subject(password.as_str()))?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Get).with_headers(headers);
        let resume = if self.resume { "&resume=1" } else { "" };
        let host = if self.extras.contains(Features::HOST) {
            "&host=1"
        } else {
            ""
        };
        let messages = if self.extras.contains(Features::MESSAGES) {
            "&messages=1"
        } else {
            ""
        };
        let quiet = if self.quiet { "&quiet=1" } else { "" };
        let new = if self.new_session { "&new=1" } else { "" };
        let url = format!(
            "https://session/{}?player={}{resume}{host}{messages}{quiet}{new}",
            self.op.path(),
            self.player
        );
        Request::new_with_init(&url, &init)
    }

    /// Reads a request made by [`Ask::request`]; `None` if it is not one (a resume without a
    /// token among them).
    pub fn parse(req: &Request) -> Option<Ask> {
        let url = req.url().ok()?;
        let op = match url.path() {
            "/create" => Op::Create,
            "/join" => Op::Join,
            "/resume" => Op::Resume,
            "/direct" => Op::Direct,
            _ => return None,
        };
        let query = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let player = query("player")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&p| p <= MAX_ID)?;
        let token = match req.headers().get(TOKEN_HEADER).ok().flatten() {
            Some(text) => Some(ResumeToken::parse(&text)?),
            None => None,
        };
        if (op == Op::Resume) != token.is_some() {
            return None;
        }
        let received = match req.headers().get(RECEIVED_HEADER).ok().flatten() {
            Some(text) => Some(text.parse().ok()?),
            None => None,
        };
        let subject = match req.headers().get(SUBJECT_HEADER).ok().flatten() {
            Some(text) => Some(Arc::new(wire::decode_subject(&text)?)),
            None => None,
        };
        let password = match req.headers().get(PASSWORD_HEADER).ok().flatten() {
            Some(text) => Some(Password::guess(&wire::decode_subject(&text)?)),
            None => None,
        };
        Some(Ask {
            op,
            player: PlayerId(player),
            resume: query("resume").as_deref() == Some("1"),
            extras: {
                let flag = |name: &str, feature: Features| match query(name).as_deref() {
                    Some("1") => feature,
                    _ => Features::NONE,
                };
                flag("host", Features::HOST).union(flag("messages", Features::MESSAGES))
            },
            password,
            quiet: query("quiet").as_deref() == Some("1"),
            token,
            received,
            subject,
            new_session: query("new").as_deref() == Some("1"),
        })
    }

    /// The extensions the player's connection asked for, as far as a session keeps them.
    pub fn features(&self) -> Features {
        let resume = if self.resume {
            Features::RESUME
        } else {
            Features::NONE
        };
        resume.union(self.extras)
    }
}

/// The session object of session `id`.
pub fn session_stub(env: &Env, id: u64) -> Result<Stub> {
    env.durable_object(SESSIONS)?
        .id_from_name(&id.to_string())?
        .get_stub()
}

/// The registry object of shard `shard` ([`crate::shard::shard_name`]).
pub fn registry_stub(env: &Env, shard: u32) -> Result<Stub> {
    env.durable_object(REGISTRY)?
        .id_from_name(&crate::shard::shard_name(shard))?
        .get_stub()
}

/// A POST of `body` to `url` on registry shard `shard`, tried again as [`retrying`] does
/// (`what` names it in the log).
pub async fn registry_post(
    env: &Env,
    shard: u32,
    url: &str,
    body: &str,
    what: &str,
) -> Result<worker::Response> {
    retrying(what, move || async move {
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(body.into()));
        let req = Request::new_with_init(url, &init)?;
        registry_stub(env, shard)?.fetch_with_request(req).await
    })
    .await
}

/// The number of registry shards (`REGISTRY_SHARDS`, [`settings::registry_shards`]).
pub fn registry_shards(env: &Env) -> Result<u32> {
    settings::registry_shards(&var(env, REGISTRY_SHARDS_VAR)).map_err(worker::Error::RustError)
}

/// A number from `crypto.getRandomValues` below `n` (at least 1): the shard a `-1` asks first.
pub fn random_below(n: u32) -> Result<u32> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes)
        .map_err(|e| worker::Error::RustError(format!("no random number: {e}")))?;
    Ok(u32::from_le_bytes(bytes) % n.max(1))
}

/// What a failed call to an object says about trying again: the `.retryable` and
/// `.overloaded` flags of the JavaScript error the runtime threw ([`Failure::Other`] for an
/// error of ours).
pub fn failure(e: &worker::Error) -> Failure {
    let original = match e {
        worker::Error::UnknownJsError { original, .. } => original,
        worker::Error::Internal(value) => value,
        _ => return Failure::Other,
    };
    let flag = |name: &str| {
        worker::js_sys::Reflect::get(original, &JsValue::from_str(name))
            .is_ok_and(|value| value.is_truthy())
    };
    Failure::of(flag("retryable"), flag("overloaded"))
}

/// Makes a call to an object (`call` gets its stub anew each time: a stub that failed may
/// stay broken), again after a backoff while it fails with a retryable error, at most
/// [`retry::STUB_TRIES`] times ([`retry::stub_delay_ms`]); an overloaded or other error is
/// returned at once. `what` names the call in the log.
pub async fn retrying<T, F, Fut>(what: &str, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        let e = match call().await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        attempt += 1;
        let delay = match failure(&e) {
            Failure::Retryable => retry::stub_delay_ms(attempt, random_id().unwrap_or(0)),
            Failure::Overloaded | Failure::Other => None,
        };
        let Some(delay) = delay else {
            return Err(e);
        };
        console_log!("{what}: {e} (retryable): trying again in {delay} ms");
        Delay::from(Duration::from_millis(delay)).await;
    }
}

/// A new random ID below 2^53, from `crypto.getRandomValues`.
pub fn random_id() -> Result<u64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| worker::Error::RustError(format!("getrandom: {e}")))?;
    Ok(u64::from_le_bytes(bytes) & MAX_ID)
}
