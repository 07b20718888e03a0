use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use sessionserver_core::{ConnectionConfig, Limits};

use crate::auth::Authorizer;

/// Every option of the native server. `Config::default()` is what `cargo run -p native` uses.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on (default 0.0.0.0, every interface).
    pub bind: IpAddr,
    /// Port to listen on (default 7000, like the original; 0 picks a free one).
    pub port: u16,
    /// Open TCP connections the server holds at once, counted from the moment they are
    /// accepted: plain HTTP ones and those still before their WebSocket upgrade count as well
    /// as WebSocket connections (each is a file descriptor). A connection accepted beyond it
    /// is answered HTTP 503 and closed. At most [`Config::MAX_CONNECTIONS`]; `start` uses
    /// that when given more.
    pub max_connections: usize,
    /// Bytes that may wait to be written to one connection (default 4 MiB): frames, pongs and
    /// pings alike, each counted as its length plus 64 bytes of bookkeeping. A client that
    /// stops reading and lets this much pile up is disconnected (close code 4001) instead of
    /// making the server hold its messages without bound or slowing down its session.
    pub send_queue_bytes: usize,
    /// The memory budget of the whole server, in bytes: frames queued for clients, partial
    /// messages read from them and stored session data all count. At 90% of it new
    /// WebSocket upgrades get HTTP 503 and the connections with the largest backlogs are
    /// closed (4002). `None` (the default): a quarter of the machine's RAM (or of the
    /// cgroup's memory limit, when lower), see [`crate::default_memory_budget`].
    pub memory_budget: Option<usize>,
    /// Time a client has to finish a fragmented message once it sent its first fragment
    /// (default 10 s); then it is closed with 1008.
    pub fragment_timeout: Duration,
    /// Largest WebSocket message accepted from a client, in bytes; larger ones close the
    /// connection with code 1009.
    pub max_message_size: usize,
    /// Accept permessage-deflate (RFC 7692) when a client offers it (default on): messages of
    /// 128 bytes or more then go compressed to it, each on its own (no context takeover, so
    /// no memory per connection), and its compressed messages are inflated within
    /// `max_message_size`. Clients that do not offer it see no difference. See PROTOCOL.md,
    /// "Compression".
    pub deflate: bool,
    /// Limits the session logic enforces (nesting depth, players per session, session data,
    /// sessions per server). `max_depth` is at most [`Config::MAX_DEPTH`]; `start` uses that
    /// when given more.
    pub limits: Limits,
    /// Heartbeat and rate limit of each connection.
    pub connection: ConnectionConfig,
    /// How long shutdown waits for connections to close before giving up on them.
    pub shutdown_grace: Duration,
    /// Token that unlocks `GET /sessions` and `/monitor` (they show every player's data).
    /// Without one they are served only when `bind` is a loopback address, and then only to
    /// requests from a loopback address that name a loopback host and carry no proxy header.
    pub admin_token: Option<String>,
    /// Time a client has to send a complete HTTP request head (the WebSocket handshake
    /// included), from the moment its connection is accepted or its previous response is
    /// ready; the connection is closed when it runs out (default 10 s).
    pub header_timeout: Duration,
    /// HTTP keep-alive: after a response, the connection is closed unless the next request's
    /// head has arrived within this long (default 5 s). Since `header_timeout` also runs from
    /// the previous response, a longer keep-alive than `header_timeout` has no effect.
    /// Zero is taken as 1 ms.
    pub keep_alive: Duration,
    /// Origins (`scheme://host[:port]`, as browsers send them in `Origin`) whose pages may
    /// open a WebSocket. `None` (the default): any origin, and requests without one. With a
    /// list, an upgrade whose `Origin` is present and not in it gets HTTP 403; requests
    /// without `Origin` (native apps, the original clients) are still served.
    pub allowed_origins: Option<Vec<String>>,
    /// Who may connect: a check every WebSocket upgrade passes before it is answered, which
    /// either lets it through (with the subject the connection is then known by) or answers
    /// a plain HTTP refusal instead (see [`Authorizer`]). `None` (the default): anyone.
    /// `--auth-secret` sets [`Authorizer::jwt_hs256`]. Plain HTTP requests are not checked.
    pub authorize: Option<Authorizer>,
}

impl Config {
    /// The largest `max_connections`: a process can never hold more file descriptors than
    /// this (Linux's `fs.nr_open` ceiling is just below 2^31), and it is below tokio's
    /// semaphore maximum.
    pub const MAX_CONNECTIONS: usize = {
        let fds = i32::MAX as usize;
        let permits = tokio::sync::Semaphore::MAX_PERMITS;
        if fds < permits {
            fds
        } else {
            permits
        }
    };

    /// The largest `limits.max_depth`. The core's key-structure check no longer recurses (it
    /// walks the text with a stack of its own), so the cap bounds the work per frame rather
    /// than the thread stack; `native/tests/http_bounds.rs` checks that a frame this deep is
    /// handled on a 2 MiB thread stack (tokio's default) in a debug build.
    pub const MAX_DEPTH: usize = 512;
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 7000,
            max_connections: 100_000,
            send_queue_bytes: 4 << 20,
            memory_budget: None,
            fragment_timeout: Duration::from_secs(10),
            max_message_size: 64 * 1024,
            deflate: true,
            limits: Limits::default(),
            connection: ConnectionConfig::default(),
            shutdown_grace: Duration::from_secs(5),
            admin_token: None,
            header_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(5),
            allowed_origins: None,
            authorize: None,
        }
    }
}
