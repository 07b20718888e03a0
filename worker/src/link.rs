//! The contract between the relay (the Worker) and the two Durable Object classes: how a relay
//! opens a socket to a session, what the answers mean, and the limits all three apply. What
//! travels on that socket is in [`crate::wire`].

use sessionserver_core::ids::MAX_ID;
use sessionserver_core::{ConnectionConfig, Limits};
use worker::{Env, Headers, Method, Request, RequestInit, Result, Stub};

/// Binding of the session objects in wrangler.toml, one object per session ID.
pub const SESSIONS: &str = "SESSIONS";
/// Binding of the registry object in wrangler.toml.
pub const REGISTRY: &str = "REGISTRY";
/// The registry object's name: there is one.
const REGISTRY_NAME: &str = "registry";

/// Largest client frame, in bytes, as the native host's default `max_message_size`. A larger
/// one closes the connection with 1009 ([`sessionserver_core::CloseReason::TooBig`]). The
/// platform itself would take up to 1 MiB from a client and 32 MiB into an object.
pub const MAX_FRAME: usize = 64 * 1024;

/// WebSockets one object can hold, a platform limit. Each member of a session is one socket
/// of its object, so `max_players_per_session` must stay below it.
pub const MAX_SOCKETS_PER_OBJECT: usize = 32_768;

/// The core's limits on this host: the defaults, as on the native host. The default 4096
/// players per session is far below [`MAX_SOCKETS_PER_OBJECT`]; `max_sessions` is not applied
/// (every session is its own object, see worker/README.md).
pub fn limits() -> Limits {
    let limits = Limits::default();
    debug_assert!(limits.max_players_per_session < MAX_SOCKETS_PER_OBJECT);
    limits
}

/// The rate limit of each connection, as on the native host. (Its heartbeat settings are not
/// used: a Worker cannot send WebSocket pings, see worker/README.md.)
pub fn connection_config() -> ConnectionConfig {
    ConnectionConfig::default()
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
    /// Normal end, either side.
    pub const NORMAL: u16 = 1000;
    /// What a socket reports when its connection was lost without a close (never sent).
    pub const LOST: u16 = 1006;
    /// To a client or relay: something on the platform failed (a session object could not be
    /// reached or lost the socket); the player is out of its session.
    pub const INTERNAL: u16 = 1011;
    /// To a client: try again on a new connection (two random player IDs met in one session,
    /// p ≈ members / 2^53 per join).
    pub const TRY_AGAIN: u16 = 1013;
}

/// What a relay asks of a session object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Open a socket on which the next message is the `createSession`.
    Create,
    /// Add the player and open its socket.
    Join,
}

impl Op {
    fn path(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Join => "join",
        }
    }

    /// The request the object's `fetch` gets.
    pub fn request(self, player: u64) -> Result<Request> {
        let headers = Headers::new();
        headers.set("Upgrade", "websocket")?;
        let mut init = RequestInit::new();
        init.with_method(Method::Get).with_headers(headers);
        let url = format!("https://session/{}?player={player}", self.path());
        Request::new_with_init(&url, &init)
    }

    /// Reads a request made by [`Op::request`]: the op and the player ID.
    pub fn parse(req: &Request) -> Option<(Op, u64)> {
        let url = req.url().ok()?;
        let op = match url.path() {
            "/create" => Op::Create,
            "/join" => Op::Join,
            _ => return None,
        };
        let player = url
            .query_pairs()
            .find(|(k, _)| k == "player")
            .and_then(|(_, v)| v.parse::<u64>().ok())
            .filter(|&p| p <= MAX_ID)?;
        Some((op, player))
    }
}

/// The session object of session `id`.
pub fn session_stub(env: &Env, id: u64) -> Result<Stub> {
    env.durable_object(SESSIONS)?
        .id_from_name(&id.to_string())?
        .get_stub()
}

/// The registry object.
pub fn registry_stub(env: &Env) -> Result<Stub> {
    env.durable_object(REGISTRY)?
        .id_from_name(REGISTRY_NAME)?
        .get_stub()
}

/// A new random ID below 2^53, from `crypto.getRandomValues`.
pub fn random_id() -> Result<u64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| worker::Error::RustError(format!("getrandom: {e}")))?;
    Ok(u64::from_le_bytes(bytes) & MAX_ID)
}
