//! The session server's logic, with no IO: no sockets, no clock, no threads, no randomness.
//!
//! Hosts (the tokio server in `native/`, the Durable Object in `worker/`) own the sockets and
//! feed this crate what arrives; it answers with frames to send. IDs come from the host.
//!
//! Where things live:
//! - [`player`]: [`Player`], the state machine of one connection (one player): lobby or
//!   session, where each command goes, the lobby's answers, the heartbeat and rate limit.
//! - [`session`]: [`Session`], the state machine of one session and its members.
//! - [`join_burst`]: [`JoinBurst`], the members' `playerJoin`s owed to a joiner, encoded as
//!   its socket takes them.
//! - [`messages`]: what the two machines say to each other ([`ToSession`], [`ToPlayer`]),
//!   carried by the host.
//! - [`server`]: [`Server`], both composed in one thread the way the hosts compose them
//!   across tasks and Durable Objects: the reference host the tests and the fuzzer drive, and
//!   usable by single-threaded embedders.
//! - [`connection_guard`]: [`ConnectionGuard`], the heartbeat and rate limit a player runs.
//! - [`access`]: who may play: [`SessionOptions`] (`maxPlayers`, `private`, `password`,
//!   `hostOnlySessionUpdates`) and what a session keeps of them ([`Access`]).
//! - [`features`]: [`Features`], the extensions a connection asks for in `hello`, and the
//!   [`ResumeToken`] of `resume`.
//! - [`close`]: [`CloseReason`], every close code the server sends.
//! - [`error`]: [`ErrorCode`], every error code the server sends, with its number.
//! - [`command`]: parsing one client frame into a [`Command`] (or a [`Rejection`]).
//! - [`data`]: JSON objects passed through verbatim, their key structure ([`Shape`]), and
//!   the [`Spelling`] of the data fields.
//! - [`reply`]: encoding server frames (each encoded once, shared by all recipients).
//! - [`lobby`]: the frames a player in no session is answered with.
//! - [`directory`]: sessions by ID, and which one is the latest (`joinSession -1`).
//! - [`ids`]: `PlayerId`, `SessionId` and the counter the native host draws them from.
//! - [`limits`]: [`Limits`], what clients may ask of a server, with defaults.
//!
//! # Run loop
//! A host owns the sockets, the clock and the IDs, and runs each machine where it keeps it:
//!
//! ```text
//! connection opened:  player = Player::new(id, limits, config, now)
//! client frame:       player.handle_text(now, text)       (pings, pongs: handle_activity)
//! timer:              player.handle_timeout(now); re-arm at player.poll_timeout()
//! then, always:       while let Some(out) = player.poll_output() {
//!                       Send(frame)        -> write it to the socket
//!                       Create(request)    -> allocate an ID, Session::create(id, request)
//!                                             (or player.handle_create_refused(why))
//!                       Join { target, .. } -> find the session, deliver the input to it
//!                                             (or player.handle_no_such_session())
//!                       ToSession(input)   -> deliver it to that session
//!                                             (gone? player.handle_session_gone(id))
//!                       Ping / Close(reason) -> on the socket
//!                     }
//!                     stop reading client frames while player.is_waiting()
//! connection gone:    player.handle_closed(), then drain once more (its disconnect)
//!
//! session input:      session.handle(now, input); then drain session.poll_output():
//!                       Send / Broadcast   -> frames to members' sockets (a broadcast once)
//!                       SendJoinBurst      -> the burst's frames, as the joiner's socket
//!                                             takes them, before its later frames
//!                       ToPlayer { to, event } -> player `to`: handle_from_session(event)
//!                       Changed(_)         -> storage, where the host keeps one
//!                       Ended              -> forget the session
//! ```
//!
//! The protocol itself is documented in PROTOCOL.md at the repository root.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod auth;
pub mod close;
pub mod command;
pub mod connection_guard;
pub mod data;
pub mod directory;
pub mod error;
pub mod features;
pub mod ids;
pub mod join_burst;
pub mod limits;
pub mod lobby;
pub mod messages;
pub mod player;
pub mod reply;
mod scan;
pub mod server;
pub mod session;

pub use access::{Access, Password, PasswordDigest, SessionOptions};
pub use close::CloseReason;
pub use command::{
    parse, Command, JoinOrCreate, JoinTarget, ListRequest, Message, NewSession, Rejection,
    SessionFormat,
};
pub use connection_guard::{Admission, ConnectionConfig, ConnectionGuard, TimerAction};
pub use data::{JsonObject, PlayerFormat, Shape, Spelling};
pub use directory::{Directory, Listing};
pub use error::ErrorCode;
pub use features::{Features, ResumeRequest, ResumeToken};
pub use ids::{IdCounter, PlayerId, SessionId};
pub use join_burst::JoinBurst;
pub use limits::Limits;
pub use messages::{CreateRefusal, CreateRequest, MatchRequest, ToPlayer, ToSession};
pub use player::{Player, PlayerOutput};
pub use reply::{Replay, ServerCommand, ServerFrame};
pub use server::Server;
pub use session::{Change, Output, Session, StoredMember};
