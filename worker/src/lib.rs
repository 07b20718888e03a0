//! The session server on Cloudflare Workers: the same protocol and the same core as the native
//! host, with one Durable Object per session. The hosts only move bytes: each client socket is
//! one core `Player` machine, each session object one core `Session` machine, and everything
//! here feeds them what arrives and applies what they output on the platform's sockets and
//! storage.
//!
//! # Where things live
//! - [`relay`]: the Worker. Each client WebSocket is one player (a random ID drawn when it
//!   opens), run by `core::Player`; the relay maps its outputs onto the platform (a table in
//!   the module's docs) and relays frames between the client's socket and a socket of its own
//!   to the object of the player's session.
//! - [`direct`]: the direct path, `/session/new` and `/session/<id>`: the Worker hands the
//!   client's upgrade to the session's object, which runs that socket's `core::Player` itself
//!   (no relay, no Worker CPU per frame; error 34 for a move to another session).
//! - [`session`]: `SessionObject`, one Durable Object per session, named by the session ID.
//!   It runs `core::Session`, keeps it in SQLite storage ([`store`], written from the session's
//!   `Changed` outputs through [`persist`]) and holds one hibernatable socket per member.
//! - [`registry`]: `RegistryObject`, the registry's shards (`REGISTRY_SHARDS` objects), each
//!   listing the live sessions whose ID names it in order of creation, for `joinSession -1`,
//!   listSessions and joinOrCreate; [`shard`]: which shard a session is in, which shards a
//!   `-1` asks, and how the relay merges their answers (the cursor).
//! - [`link`]: how the three reach each other (requests, status and close codes) and the
//!   limits; [`wire`]: the core's messages between a player and its session as WebSocket
//!   messages on the relay's socket; [`settings`]: the Worker variables (`RESUME_GRACE_MS`).
//! - [`resync`]: what a relay keeps of its player's seat (its resume token, the events it
//!   relayed, for an original client a digest of what it was told), so that it can take the
//!   seat back itself when its link to the session object breaks, invisibly to the client.
//!
//! - [`auth`]: connect-time auth. With the secret `AUTH_SECRET` set, the relay checks every
//!   WebSocket upgrade's JWT by the core's rules before it accepts it, and refuses it as the
//!   native host does (401 or 400, `WWW-Authenticate`, a plain-text sentence).
//!
//! [`auth`], [`direct`]'s routes, [`wire`], [`persist`], [`resync`], [`settings`] and
//! [`shard`] touch no platform API and are compiled (and tested) on every target; everything
//! else is wasm32 only.
//!
//! # What stays in the worker, and why not in core
//! Every protocol rule (lobby or session, routing, replies and error codes, the `-1` retry,
//! the rate limit, the order of replies, what a session stores) is the core's. What remains
//! here is what only the platform can do or know:
//! - **Sockets and their mapping.** Accepting sockets, the relay's second socket to a session
//!   object, hibernatable sockets and their attachments, and the encoding of the core's
//!   messages onto them ([`wire`]: a join is a request for a socket, a command a text message,
//!   a disconnect its close, `Left` a close code). The core has no sockets.
//! - **Where a session is.** A session is a Durable Object named by its ID; finding it is a
//!   request to that object, `-1` a request to a registry shard, and "the session has
//!   ended" is that object's 404. The core's `Directory` is in-process; here the directory is
//!   spread over objects and the relay only learns of it by asking.
//! - **Random IDs.** Session and player IDs are drawn with `crypto.getRandomValues` (nothing
//!   global can be counted at the edge): a drawn session ID that is taken is drawn again, and
//!   the core hears `handle_create_refused` only after [`relay`]'s 8 draws all collided; two
//!   player IDs meeting in one session (the session would take the join for its member's) is
//!   a platform failure, closed with 1013. The core never draws IDs.
//! - **Storage.** Which SQL rows a `Change` writes ([`persist`], [`store`]), reading them back
//!   after a wake or restart (`Session::restore_members`, with a fresh seed for the resume
//!   secrets), keeping the seats of members whose sockets vanished while the object was down,
//!   the alarm at the first away member's deadline and when a session ends. The core keeps no
//!   storage.
//! - **A broken link.** A relay whose socket to the session object breaks while its client is
//!   connected takes the seat back with the token it holds ([`resync`]): an object can be reset
//!   under a live relay, which no native connection ever sees.
//! - **Transport limits and failures.** The 64 KiB frame limit (checked before a frame is
//!   copied into wasm, as the native host's frame reader checks it before buffering), and what
//!   a failed platform call becomes: close 1011 (an object unreachable or failing), logged.
//! - **No heartbeat.** A Worker can neither send WebSocket pings nor see pongs, so the relay
//!   never calls `Player::handle_timeout` (which would close a healthy idle client after 30 s
//!   of silence); dead peers go when the platform closes their connection.
//! - **No send-queue bound.** The runtime shows a Worker no socket's backlog (no
//!   `bufferedAmount`; `send` only queues, without limit), so a client that stops reading is
//!   not closed with 4001 as natively; its frames wait in the relay's socket (README, "A
//!   client that stops reading").
//!
//! # Why the Worker relays
//! The protocol moves one connection between sessions (`createSession`, `joinSession`,
//! `leaveSession`), and a socket accepted by an object stays with that object. So the client's
//! socket cannot end in a session object; it ends in the Worker, or in a per-connection object.
//! (A client that stays in one session may take the [`direct`] path instead, and trade that
//! freedom for no relay at all.)
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
//! only ever seen by members of one session, and a session object refuses a join by a player ID
//! its session already has (the relay then closes with 1013, p ≈ members / 2^53 per join).
//!
//! # Hibernation and restarts
//! The session (format, spelling, sessionData, members in join order, their playerData, their
//! resume secrets and away deadlines) is in the object's SQLite storage, written in the event
//! that changes it, from what the session says changed; each socket's attachment holds its
//! player ID (and the connection it is, after a resume). After a wake the first event reads
//! both back; the members' sockets never closed. After a restart the sockets are gone: members
//! with a token keep their seats for the grace period and resume with it (worker/README.md,
//! "Resume").
//!
//! # Limits and failures
//! The core's limits and rate limit apply as on the native host ([`link::limits`]); the relay
//! refuses frames over 64 KiB (1009). worker/README.md lists every limit and every difference
//! between the hosts.
//!
//! A call to an object that fails with a retryable error is made again with a new stub and a
//! backoff; an overloaded one never ([`retry`]).
//!
//! Every object handler (fetch, message, close, error, alarm, connect) returns `Ok`: an error
//! becomes an HTTP status for the relay, or a close of the socket it concerns, and is logged.
//! A closed or failed socket is a player leaving. Every command gets its reply, or the
//! connection is closed with a code that says why.

pub mod auth;
pub mod direct;
#[cfg(target_arch = "wasm32")]
mod link;
pub mod persist;
#[cfg(target_arch = "wasm32")]
pub mod registry;
#[cfg(target_arch = "wasm32")]
mod relay;
pub mod resync;
pub mod retry;
#[cfg(target_arch = "wasm32")]
pub mod session;
pub mod settings;
pub mod shard;
#[cfg(target_arch = "wasm32")]
mod store;
pub mod wire;

/// The Worker's entry point: every request to the deployment.
#[cfg(target_arch = "wasm32")]
#[worker::event(fetch)]
async fn fetch(
    req: worker::Request,
    env: worker::Env,
    _ctx: worker::Context,
) -> worker::Result<worker::Response> {
    relay::fetch(req, env).await
}
