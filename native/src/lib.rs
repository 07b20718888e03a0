//! The session server on tokio: the `sessionserver` binary, and a library to run the same
//! server inside a Rust program.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let server = sessionserver::start(sessionserver::Config {
//!     port: 7000,
//!     ..Default::default()
//! })
//! .await?;
//! println!("listening on {}", server.local_addr());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Where things live:
//! - `config.rs`: [`Config`], every option.
//! - `auth.rs`: [`Authorizer`], the check every WebSocket upgrade passes when
//!   [`Config::authorize`] is set (`--auth-secret`: an HS256 JWT), and what it sees and answers.
//! - `server.rs`: [`start`], the accept loop, shutdown, and [`RunningServer`].
//! - `http.rs`: one TCP connection: plain HTTP (the demo, `/healthz`, `/metrics`, `/sessions`,
//!   `/monitor`) or the WebSocket upgrade.
//! - `assets.rs`: the files served over HTTP (`assets/`, and the JS client from `clients/js`).
//! - `response.rs`: plain HTTP responses (for http.rs and admin.rs).
//! - `metrics.rs`: the counters behind `/metrics`; `admin.rs`: who may see `/sessions`.
//! - `shutdown.rs`: the one signal that stops the accept loop and every connection.
//! - `counting.rs`: what counts an open WebSocket connection (its permit, the gauge, the
//!   shutdown's wait), released together by one `Drop`.
//! - `connection.rs`: one WebSocket connection: its task runs the core's `Player` machine
//!   (one player): feeds it the client's frames and the timer, carries out what it asks, and
//!   its `PlayerConnection`'s `Drop` leaves the session however the task ends.
//! - `peer.rs`: the way to one connection's outbox, shared by its task and its session's.
//! - `deflate.rs`: permessage-deflate (RFC 7692): the upgrade's offer, and compressing and
//!   inflating messages with no context takeover (one codec per thread, none per connection).
//! - `frame_reader.rs`: reading a client's WebSocket messages, with a buffer only while bytes
//!   wait in it.
//! - `socket.rs`: writing to a client: frames built once per broadcast, written straight to
//!   the socket by the session task after each batch of commands (several frames per write
//!   under load), queued (bounded) only when the socket is full; a joiner's burst is made
//!   into frames as the socket takes them.
//! - `session_task.rs`: one task per session, owning its `sessionserver_core::Session`: feeds
//!   it the players' inputs and its grace-period timer, applies its outputs (a resume's
//!   `Rebind` moves the new connection's peer to the resumed player), and seeds its resume
//!   secrets from the OS's random source (`getrandom`).
//! - `registry.rs`: the live sessions by ID and the ID counters; touched on create, join and
//!   destroy only, never per message.
//! - `memory.rs`: hands freed memory back to the OS once the last connection has gone.
//! - `budget.rs`: the whole server's memory budget (queued, buffered and session bytes), and
//!   closing the largest backlogs when it is nearly spent.
//!
//! Every protocol rule (what a command does, which error it gets, what waits for what, the
//! heartbeat and rate limit, the caps) is in `sessionserver-core`'s `Player` and `Session`.
//! What stays here is what only a host can do: sockets and the WebSocket framing (RFC 6455,
//! the close handshake), the clock the core's timers are read against, ID counters and the
//! registry (the one place that sees every session), the channels that carry the machines'
//! messages between tasks, writing a broadcast's frame once to many sockets, the bounded
//! queue per client and what happens when it fills, HTTP (the demo, health, metrics, admin),
//! options, and shutdown.
// One exception, in memory.rs: a call to glibc's malloc_trim.
#![deny(unsafe_code)]

mod admin;
mod assets;
mod auth;
mod budget;
mod config;
mod connection;
mod counting;
mod deflate;
mod frame_reader;
mod http;
mod memory;
mod metrics;
mod peer;
mod registry;
mod response;
mod server;
mod session_task;
mod shutdown;
mod socket;

pub use auth::{Authorizer, Rejection, SecretTooShort, UpgradeRequest};
pub use budget::default_memory_budget;
pub use config::Config;
#[cfg(fuzzing)]
pub use frame_reader::fuzzing;
pub use server::{start, RunningServer};
