//! The session server's logic, with no IO: no sockets, no clock, no threads, no randomness.
//!
//! Hosts (the tokio server in `native/`, the Durable Object in `worker/`) own the sockets and
//! feed this crate what arrives; it answers with frames to send. IDs come from the host.
//!
//! Where things live:
//! - [`ids`]: `PlayerId`, `SessionId` and the counter the native host draws them from.
//! - [`limits`]: [`Limits`], what clients may ask of a server, with defaults.
//! - [`connection`]: [`Connection`], per-connection timers (heartbeat) and rate limit, and
//!   [`CloseReason`], every close code the server sends.
//! - [`error`]: [`ErrorCode`], every error code the server sends, with its number.
//! - [`command`]: parsing one client frame into a [`Command`] (or a [`Rejection`]).
//! - [`data`]: JSON objects passed through verbatim, and their key structure ([`Shape`]).
//! - [`reply`]: encoding server frames (each encoded once, shared by all recipients).
//! - [`session`]: [`Session`], the state machine of one session and its members.
//! - [`lobby`]: what a connection that is in no session gets for each command.
//! - [`directory`]: sessions by ID, and which one is the latest (`joinSession -1`).
//! - [`server`]: [`Server`], all of the above composed in one thread: the reference host used by
//!   tests and fuzzing, and usable by single-threaded embedders.
//!
//! The protocol itself is documented in PROTOCOL.md at the repository root.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod command;
pub mod connection;
pub mod data;
pub mod directory;
pub mod error;
pub mod ids;
pub mod limits;
pub mod lobby;
pub mod reply;
pub mod server;
pub mod session;

pub use command::{parse, Command, JoinTarget, Rejection, SessionFormat, Spelling};
pub use connection::{Admission, CloseReason, Connection, ConnectionConfig, TimerAction};
pub use data::{JsonObject, PlayerFormat, Shape};
pub use directory::Directory;
pub use error::ErrorCode;
pub use ids::{IdCounter, PlayerId, SessionId};
pub use limits::Limits;
pub use lobby::LobbyAction;
pub use reply::{Frame, ReplyCommand};
pub use server::Server;
pub use session::{Membership, Output, Session};
