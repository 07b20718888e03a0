use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use sessionserver_core::{ConnectionConfig, Limits};

/// Every option of the native server. `Config::default()` is what `cargo run -p native` uses.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on (default 0.0.0.0, every interface).
    pub bind: IpAddr,
    /// Port to listen on (default 7000, like the original; 0 picks a free one).
    pub port: u16,
    /// Open WebSocket connections the server accepts at once; further upgrade requests get
    /// HTTP 503.
    pub max_connections: usize,
    /// Frames that may wait to be written to one connection. A client that stops reading and
    /// lets this many pile up is disconnected (close code 4001) instead of making the server
    /// hold its messages without bound or slowing down its session.
    pub send_queue: usize,
    /// Largest WebSocket message accepted from a client, in bytes; larger ones close the
    /// connection with code 1009.
    pub max_message_size: usize,
    /// Limits the session logic enforces (nesting depth, players per session, session data,
    /// sessions per server).
    pub limits: Limits,
    /// Heartbeat and rate limit of each connection.
    pub connection: ConnectionConfig,
    /// How long shutdown waits for connections to close before giving up on them.
    pub shutdown_grace: Duration,
    /// Token that unlocks `GET /sessions` and `/monitor` (they show every player's data).
    /// Without one they are served only when `bind` is a loopback address.
    pub admin_token: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 7000,
            max_connections: 100_000,
            send_queue: 1024,
            max_message_size: 64 * 1024,
            limits: Limits::default(),
            connection: ConnectionConfig::default(),
            shutdown_grace: Duration::from_secs(5),
            admin_token: None,
        }
    }
}
