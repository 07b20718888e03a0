//! The session server on Cloudflare Workers: the same protocol and the same core as the native
//! host, with one Durable Object per session. Everything here is glue between the platform's
//! sockets and storage and the core's inputs and outputs.
//!
//! # Where things live
//! - [`relay`]: the Worker. Each client WebSocket is one player (a random ID drawn when it
//!   opens). In the lobby the Worker answers with `core::lobby`; in a session it relays frames
//!   between the client's socket and a socket of its own to the session's object.
//! - [`session`]: `SessionObject`, one Durable Object per session, named by the session ID.
//!   It owns the core `Session`, keeps it in SQLite storage ([`store`]) and holds one
//!   hibernatable socket per member.
//! - [`registry`]: `RegistryObject`, one object listing the live sessions in order of creation,
//!   for `joinSession -1`.
//! - [`link`]: what the three say to each other (requests, status and close codes) and the
//!   limits.
//!
//! # Why the Worker relays
//! The protocol moves one connection between sessions (`createSession`, `joinSession`,
//! `leaveSession`), and a socket accepted by an object stays with that object. So the client's
//! socket cannot end in a session object; it ends in the Worker, or in a per-connection object.
//! The Worker wins on every count:
//! - Cost. A Worker is billed for CPU time, not wall time: an idle connection costs nothing
//!   while it waits. The session object accepts the relay's socket with the Hibernation API, so
//!   an idle session is evicted from memory and bills no duration either. A per-connection
//!   object would hold an outgoing socket to its session, and outgoing sockets cannot
//!   hibernate: every connected player would bill duration all the time (128 MB × wall time ≈
//!   $0.006 per player-hour at $12.50 per million GB-s), plus a request per message.
//! - Hibernation. What hibernates is the session object, which is where the state is. The
//!   relay's state (the player ID, the session it is in) lives in its task and is never lost
//!   while the client is connected.
//! - Latency. The Worker runs in the data center the client connected to, which is where a
//!   direct connection to an object would enter Cloudflare's network too: the relay adds an
//!   in-process hop, not a network round trip. A per-connection object could live elsewhere.
//! - Limits. A relay holds one outgoing socket at a time (the limit is 6 per request) and
//!   makes one subrequest per session change, well inside the per-request subrequest limit.
//!
//! # IDs
//! Session and player IDs are random integers below 2^53 (`crypto.getRandomValues`); nothing
//! global is counted on any path. A session ID is checked against the storage of the object
//! named by it: a live or ended session there means it is taken, and the relay draws another.
//! An ended session keeps one row so that its ID is never handed out again. Player IDs are
//! only ever seen by members of one session, and a session refuses a join by a player ID it
//! already has (the relay then closes with 1013, p ≈ members / 2^53 per join).
//!
//! # Hibernation
//! The session (format, spelling, sessionData, members in join order, their playerData) is in
//! the object's SQLite storage, written in the event that changes it; each socket's attachment
//! holds its player ID. After a wake the first event reads both back; the members' sockets
//! never closed.
//!
//! # Limits and failures
//! The core's limits and rate limit apply as on the native host ([`link::limits`]); the relay
//! refuses frames over 64 KiB (1009). What the platform cannot do is the heartbeat: a Worker can
//! neither send WebSocket pings nor see pongs, so dead peers go when the platform closes their
//! connection. worker/README.md lists every limit and every difference between the hosts.
//!
//! Every object handler (fetch, message, close, error, alarm, connect) returns `Ok`: an error
//! becomes an HTTP status for the relay, or a close of the socket it concerns, and is logged.
//! A closed or failed socket is a player leaving. Every command gets its reply, or the
//! connection is closed with a code that says why.
#![cfg(target_arch = "wasm32")]

mod link;
pub mod registry;
mod relay;
pub mod session;
mod store;

use worker::{event, Context, Env, Request, Response, Result};

/// The Worker's entry point: every request to the deployment.
#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    relay::fetch(req, env).await
}
