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
//! - `server.rs`: [`start`], the accept loop, shutdown, and [`RunningServer`].
//! - `http.rs`: one TCP connection: plain HTTP (the demo, `/healthz`, `/metrics`, `/sessions`,
//!   `/monitor`) or the WebSocket upgrade.
//! - `assets.rs`: the files served over HTTP (`assets/`, and the JS client from `clients/js`).
//! - `metrics.rs`: the counters behind `/metrics`; `admin.rs`: who may see `/sessions`.
//! - `connection.rs`: one WebSocket connection: its task reads commands (one player).
//! - `frame_reader.rs`: reading a client's WebSocket messages, with a buffer only while bytes
//!   wait in it.
//! - `socket.rs`: writing to a client: frames built once per broadcast, written straight to
//!   the socket by the session task after each batch of commands (several frames per write
//!   under load), queued (bounded) only when the socket is full.
//! - `session_task.rs`: one task per session, owning its `sessionserver_core::Session`.
//! - `registry.rs`: the live sessions by ID and the ID counters; touched on create, join and
//!   destroy only, never per message.
//! - `memory.rs`: hands freed memory back to the OS once the last connection has gone.
//! - `budget.rs`: the whole server's memory budget (queued, buffered and session bytes), and
//!   closing the largest backlogs when it is nearly spent.
//!
//! The protocol logic is all in `sessionserver-core`; this crate only moves bytes and events.
// One exception, in memory.rs: a call to glibc's malloc_trim.
#![deny(unsafe_code)]

mod admin;
mod assets;
mod budget;
mod config;
mod connection;
mod frame_reader;
mod http;
mod memory;
mod metrics;
mod peer;
mod registry;
mod server;
mod session_task;
mod socket;

pub use budget::default_memory_budget;
pub use config::Config;
pub use server::{start, RunningServer};
