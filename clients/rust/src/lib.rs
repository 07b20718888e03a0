//! A client for the sessionserver wire protocol (PROTOCOL.md at the repository root).
//!
//! - [`Machine`] is the whole protocol state with no IO (sans-IO, like quinn-proto and the
//!   server's own core): hello and its features, requests matched to replies, the session and
//!   its players kept, the resume token and `received`, reconnecting with backoff. Inputs in
//!   (`handle_open`, `handle_text`, `handle_close`, `handle_timeout`, time passed in), outputs
//!   drained (`poll_transmit`, `poll_completion`, `poll_event`). It builds for any target,
//!   wasm32-unknown-unknown included (`--no-default-features`).
//! - [`Client`] (feature `tokio`, on by default) drives a `Machine` over tokio-tungstenite
//!   with an async API: each request a future that resolves on its own reply.
//!
//! ```no_run
//! # async fn game() -> Result<(), sessionserver_client::Error> {
//! use serde_json::json;
//! use sessionserver_client::{Client, SessionOptions, Event, Options};
//!
//! let client = Client::connect("ws://localhost:7000/", Options::default()).await?;
//! let session = client
//!     .create_session(&json!({"title": "dots"}), &json!({"x": 0, "y": 0}), SessionOptions::default())
//!     .await?;
//! println!("in session {} as player {:?}", session.id, client.player_id());
//! client.update_player(&json!({"x": 10, "y": 20})).await?; // error 4 on another key structure
//! while let Some(event) = client.next_event().await {
//!     if let Event::PlayerUpdate { player_id, data, .. } = event {
//!         println!("{player_id} is at {data}");
//!     }
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod data;
mod direct;
pub mod error;
mod event;
pub mod machine;

#[cfg(feature = "tokio")]
mod client;

#[cfg(feature = "tokio")]
pub use client::{Client, Pong};
pub use data::Data;
pub use direct::resume_url;
pub use error::{
    ConnectionClosedError, Error, LostReason, SessionError, SessionLostError, CLOSE_MEANINGS,
    ERROR_MEANINGS, RECONNECT_CLOSE_CODES,
};
pub use event::{Event, Replay, Session};
pub use machine::{
    ListOptions, Machine, Options, ReconnectOptions, Reconnecting, Reply, RequestId, SessionInfo,
    SessionList, SessionOptions, Spelling, Target, Transmit,
};
