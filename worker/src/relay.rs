//! The Worker: one client connection is one player, run by the core's [`Player`] machine, and
//! the Worker is its relay.
//!
//! With `AUTH_SECRET` set, an upgrade is first checked ([`crate::auth`]): a refused one gets
//! the native host's plain-text 401 or 400 and no socket; an accepted one's `sub` is the
//! player's subject ([`Player::with_subject`]), which every create, join and resume carries
//! to the session object (a header, [`Ask::subject`]), the relay's own resumes included.
//!
//! The relay feeds the player what the client sends and what the session's object answers,
//! and maps each [`PlayerOutput`] onto the platform:
//!
//! | output | on the platform |
//! | --- | --- |
//! | `Send(frame)` | the client's socket |
//! | `Create(request)` | a random ID, a socket to that session's object ([`Op::Create`]), the create sent on it ([`wire::encode_command`]) |
//! | `Join { target, skip, .. }` | for `-1` a registry shard's latest session (a random shard first, `gone=skip`; [`crate::shard`]), then a socket to the object ([`Op::Join`]) |
//! | `Join { input: Resume { token }, .. }` | a socket to the token's session ([`Op::Resume`]); its welcome ends with [`wire::encode_resumed`] |
//! | `ToSession(Command)` | a text message on that socket; a rejection's reply frame as a binary one ([`crate::wire`]) |
//! | `ToSession(Disconnect)` | that socket closed (also one still being opened); for a client that did not ask for `resume`, after a `leaveSession` on it (below) |
//! | `Close(reason)` | the client's socket closed with the reason's code, after the session has answered everything sent to it |
//! | `Ping` | never asked for: the relay never calls `handle_timeout` (a Worker cannot send pings) |
//!
//! and the answers back: a join's 101 is `Joined`, a resume's `Resumed`, their
//! [`status::ANSWERED`] the refusal's frames and `JoinRefused` / `ResumeRefused`,
//! [`status::NOT_FOUND`] `handle_session_gone` (a `-1` whose session the registry named has
//! just ended) or `handle_no_such_session`; the creator's [`wire::JOINED`] is `Joined`; a close
//! [`close::LEFT`] is `Left`, any other close of the session's socket a broken link (below).
//!
//! The relay keeps reading the client while the player waits for a session's answer
//! ([`Player::is_waiting`]): the player holds those commands, in order and bounded, and takes
//! them once the answer has come, so replies keep the order of the commands. Every frame the
//! session sends for a player comes on one socket, in order, and everything the player sends
//! itself (lobby answers, the refusals of a held command) follows the answer it waited for.
//!
//! # Resume, and the relay's own
//! While the host has a resume grace period (`RESUME_GRACE_MS`), the relay asks for `resume` in
//! every create and join, whether the client asked for it (`hello`) or not, and keeps the
//! seat's token ([`Tracker`]). A client that did not ask sees the original protocol only: its
//! `sessionJoin` without the token, and when it goes (a close, a lost connection) the relay
//! sends `leaveSession` before closing its link, so that the others see it leave at once, as
//! without `resume`. When the link to the session object breaks while the client is still
//! connected (the object was reset or restarted, or the link failed), the player keeps its
//! seat. A client that asked for `resume` is closed with 1012 and resumes itself (the relay
//! never uses its token: a token is good once, and the client would not know the new one).
//! For an original client the relay takes the seat back itself with the token
//! ([`Op::Resume`]), retrying with an exponential backoff ([`resync::relink_delay_ms`]), holds
//! the client's commands meanwhile (at most [`sessionserver_core::player::MAX_HELD`]), and tells
//! the client what the resume brought as the original frames of what changed
//! ([`Tracker::relinked`]). Only if every try fails (the seat was given up, its grace ended,
//! the session is gone, or the object answered overloaded) is the client closed with 1011.
//!
//! # Platform errors
//! Every call to an object (a session's create, join or resume, the registry's lookup) that
//! fails with a `.retryable` error is made again with a new stub after a short jittered
//! backoff ([`link::retrying`], [`crate::retry`]); an `.overloaded` one never: the client is
//! closed with 1013 (try again later), a relay's own resume gives up. A `-1` whose registry
//! cannot be asked is answered error 6, and the client stays connected in the lobby.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_channel::mpsc::{unbounded, UnboundedReceiver};
use futures_util::future::{join_all, poll_fn};
use futures_util::{FutureExt, StreamExt};
use sessionserver_core::ids::MAX_ID;
use sessionserver_core::player::MAX_HELD;
use sessionserver_core::{
    CloseReason, Command, CreateRefusal, Features, JoinTarget, Limits, NewSession, Player,
    PlayerId, PlayerOutput, ResumeRequest, ResumeToken, SessionId, ToPlayer, ToSession,
};
use worker::js_sys::JsString;
use worker::wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::spawn_local;
use worker::{
    console_error, console_log, Delay, Env, Headers, Request, Response, Result, WebSocket,
    WebSocketPair, WebsocketEvent,
};

use crate::auth::{self, Refusal};
use crate::link::{self, close, status, Ask, Op, MAX_FRAME};
use crate::resync::{self, Tracker};
use crate::retry::Failure;
use crate::shard;
use crate::wire;

/// Session IDs drawn for one `createSession` before giving up. A draw collides with a used ID
/// with probability (sessions ever created) / 2^53, so a second draw is already rare.
const CREATE_ATTEMPTS: usize = 8;

/// What the relay sends on its link for a client that goes without asking for `resume`.
const LEAVE: &str = r#"{"command":"leaveSession"}"#;

/// Answers one request to the Worker: a WebSocket upgrade becomes a player.
pub async fn fetch(req: Request, env: Env) -> Result<Response> {
    let upgrade = req.headers().get("Upgrade")?.unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return match req.path().as_str() {
            "/healthz" => Response::ok("ok\n"),
            // The native host's demo game and JavaScript client, the same files.
            "/" | "/index.html" => asset(INDEX_HTML, "text/html; charset=utf-8"),
            "/demo.js" => asset(DEMO_JS, "text/javascript; charset=utf-8"),
            "/sessionserver.js" => asset(CLIENT_JS, "text/javascript; charset=utf-8"),
            "/__test/reset" if link::test_hooks(&env) => reset_session(&req, &env).await,
            "/__test/flush" if link::test_hooks(&env) => hook(&req, &env, "flush").await,
            "/__test/stats" if link::test_hooks(&env) => hook(&req, &env, "stats").await,
            "/__test/stall-listings" if link::test_hooks(&env) => stall_listings(&req, &env).await,
            _ => Response::error(
                "Not found. WebSocket clients connect on any path (wss://host/).\n",
                404,
            ),
        };
    }
    let settings = link::limits(&env).and_then(|limits| Ok((limits, link::auth_secret(&env)?)));
    let (limits, secret) = match settings {
        Ok(settings) => settings,
        Err(e) => {
            console_error!("{e}");
            return Response::error(format!("server misconfigured: {e}\n"), 500);
        }
    };
    // Connect-time auth (`AUTH_SECRET`): refused here, before the socket is accepted or a
    // player ID drawn, as natively.
    let subject = match &secret {
        None => None,
        Some(secret) => {
            let url = req.url()?;
            let authorization = req.headers().get("Authorization")?;
            match auth::check(url.query(), authorization.as_deref(), secret, now_s()) {
                Ok(subject) => subject,
                Err(refusal) => return refused_upgrade(&refusal),
            }
        }
    };
    let id = PlayerId(link::random_id()?);
    if let Some(route) = crate::direct::route(&req.path()) {
        return crate::direct::connect(&env, route, id, subject.map(Arc::new)).await;
    }
    let pair = WebSocketPair::new()?;
    let relay = Relay {
        from_client: pump(pair.server.clone(), Side::Client),
        client: pair.server,
        player: Player::new(id, limits, link::connection_config(&limits), now_ms())
            .with_subject(subject.map(Arc::new)),
        limits,
        env,
        link: None,
        pending: None,
        relink: None,
        tracker: Tracker::default(),
        done: false,
    };
    spawn_local(relay.run());
    Response::from_websocket(pair.client)
}

/// The plain-text answer to an upgrade the auth check refused, as the native host's.
fn refused_upgrade(refusal: &Refusal) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", auth::CONTENT_TYPE)?;
    headers.set("WWW-Authenticate", &refusal.challenge)?;
    Ok(Response::ok(refusal.body.as_str())?
        .with_status(refusal.status)
        .with_headers(headers))
}

/// Test hook ([`crate::settings::TEST_HOOKS_VAR`]): resets the object of session `?session=`
/// as the platform does when it evicts or restarts one (`SessionObject::reset`): its sockets
/// to the relays break and its memory is gone; with `&memory=keep` only the sockets break.
async fn reset_session(req: &Request, env: &Env) -> Result<Response> {
    let url = req.url()?;
    let Some(id) = hooked_session(&url) else {
        return Response::error("?session=<ID> expected\n", 400);
    };
    let keep = url.query_pairs().any(|(k, v)| k == "memory" && v == "keep");
    let path = if keep {
        "https://session/reset?memory=keep"
    } else {
        "https://session/reset"
    };
    let answer = link::session_stub(env, id)?.fetch_with_str(path).await?;
    Response::ok(format!("{}\n", answer.status_code()))
}

/// Test hooks ([`crate::settings::TEST_HOOKS_VAR`]) passed on to session `?session=`'s
/// object: `flush` writes the playerData it has not written yet, as its flush timer would (so
/// that a test can reset it with nothing left in the loss window); `stats` answers the rows
/// its storage wrote and its timer's flushes since its last load, as JSON.
async fn hook(req: &Request, env: &Env, name: &str) -> Result<Response> {
    let Some(id) = hooked_session(&req.url()?) else {
        return Response::error("?session=<ID> expected\n", 400);
    };
    let mut answer = link::session_stub(env, id)?
        .fetch_with_str(&format!("https://session/{name}"))
        .await?;
    match name {
        "stats" => Response::ok(answer.text().await?),
        _ => Response::ok(format!("{}\n", answer.status_code())),
    }
}

/// Test hook: `?on=1` makes every registry shard hold the listings sessions send it until
/// `?on=0` (`RegistryObject::stalled`).
async fn stall_listings(req: &Request, env: &Env) -> Result<Response> {
    let on = req.url()?.query_pairs().any(|(k, v)| k == "on" && v == "1");
    let path = format!("https://registry/stall?on={}", u8::from(on));
    for shard in 0..link::registry_shards(env)? {
        let answer = link::registry_stub(env, shard)?
            .fetch_with_str(&path)
            .await?;
        if answer.status_code() != 200 {
            return Response::ok(format!("{}\n", answer.status_code()));
        }
    }
    Response::ok("200\n")
}

/// The session a test hook's `?session=` names.
fn hooked_session(url: &worker::Url) -> Option<u64> {
    url.query_pairs()
        .find(|(k, _)| k == "session")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .filter(|&id| id <= MAX_ID)
}

const INDEX_HTML: &str = include_str!("../../native/assets/index.html");
const DEMO_JS: &str = include_str!("../../native/assets/demo.js");
const CLIENT_JS: &str = include_str!("../../clients/js/sessionserver.js");

fn asset(body: &'static str, content_type: &str) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", content_type)?;
    Ok(Response::ok(body)?.with_headers(headers))
}

/// Whole seconds since 1970, for the tokens' `exp` and `nbf`.
fn now_s() -> u64 {
    (worker::js_sys::Date::now() / 1000.0).floor() as u64
}

/// Milliseconds for the core's rate limit. (In a Worker the clock advances between I/O
/// events, which is when frames arrive.)
fn now_ms() -> u64 {
    worker::js_sys::Date::now() as u64
}

/// Something that arrived on a socket.
enum Inbound {
    Text(String),
    /// A binary message: its bytes from a session's object, none from the client (the
    /// protocol is text only, so they are not copied).
    Binary(Vec<u8>),
    /// A client text frame larger than [`MAX_FRAME`], not copied.
    TooBig,
    /// The socket closed (with this code) or failed (1006).
    Closed(u16),
}

/// Which end of the relay a socket is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Session,
}

/// Something that arrived on one of a relay's sockets, or the answer to its create, join or
/// resume, or to its own resume of a broken link.
enum Event {
    Client(Inbound),
    Session(Inbound),
    Answer(Answer),
    Relinked(Answer),
}

/// The relay's socket to the object of the player's session.
struct Link {
    ws: WebSocket,
    rx: UnboundedReceiver<Inbound>,
    session: SessionId,
}

impl Link {
    fn new(ws: WebSocket, session: SessionId) -> Link {
        Link {
            rx: pump(ws.clone(), Side::Session),
            ws,
            session,
        }
    }
}

impl Drop for Link {
    /// Closing the relay's socket is the player's disconnect (`playerLeave` to the others, or
    /// away for the grace period); after a leave it completes the close the object started.
    fn drop(&mut self) {
        let _ = self.ws.close(Some(close::NORMAL), Some("player gone"));
    }
}

/// How a create, join or resume on its way came out.
enum Answer {
    /// The player is a member: the link to its session, and the frames that came on it before
    /// the answer.
    Joined { link: Link, frames: Vec<String> },
    /// The seat of a token is this connection's again: the link, the welcome (the
    /// `sessionResume` and what follows it, up to the end marker) and the session's default
    /// playerData; `member` is the seat's player ID.
    Resumed {
        link: Link,
        welcome: Vec<String>,
        default: String,
        member: PlayerId,
    },
    /// The session refused the join or resume: these frames for the client first, then this
    /// event for the player.
    Refused(Vec<String>, ToPlayer),
    /// The session the directory named has ended since.
    Gone(SessionId),
    /// No session has the ID, or no session exists for `-1`.
    NoSuchSession,
    /// `-1`: the registry could not be asked (after its retries). The client gets error 6,
    /// as if no session existed, and stays connected.
    NoDirectory(worker::Error),
    /// No free session ID was found.
    CreateRefused,
    /// A collision of random IDs the platform cannot resolve: the client should reconnect.
    TryAgain(&'static str),
    /// A platform call failed.
    Failed(worker::Error),
}

impl From<worker::Error> for Answer {
    fn from(e: worker::Error) -> Self {
        Answer::Failed(e)
    }
}

type Pending = Pin<Box<dyn Future<Output = Answer>>>;

/// A message for the session, held while the relay takes its player's seat back.
enum Outgoing {
    Command(String),
    /// A rejected frame's reply (see `wire`).
    Reply(Vec<u8>),
}

/// The relay taking its player's seat back after its link broke.
struct Relink {
    session: SessionId,
    /// Tries so far.
    attempt: u32,
    /// The try on its way.
    task: Pending,
    /// What the client sent meanwhile, in order.
    held: Vec<Outgoing>,
}

/// One client connection: one player.
struct Relay {
    env: Env,
    limits: Limits,
    player: Player,
    client: WebSocket,
    from_client: UnboundedReceiver<Inbound>,
    /// The socket to the player's session, while it is in one (or leaving it).
    link: Option<Link>,
    /// A create, join or resume on its way.
    pending: Option<Pending>,
    /// The link broke: the relay is taking the seat back.
    relink: Option<Relink>,
    /// The seat's token, events and (for an original client) view.
    tracker: Tracker,
    /// The client's socket is closed (by either side): nothing more to do.
    done: bool,
}

impl Relay {
    async fn run(mut self) {
        while !self.done {
            match self.next().await {
                Event::Client(inbound) => self.on_client(inbound).await,
                Event::Session(inbound) => self.on_session(inbound).await,
                Event::Answer(answer) => self.answer(answer).await,
                Event::Relinked(answer) => self.relinked(answer),
            }
            self.apply().await;
        }
    }

    /// The next event: an answer, a frame from the session, a frame from the client.
    async fn next(&mut self) -> Event {
        poll_fn(|cx| {
            if let Some(pending) = &mut self.pending {
                if let Poll::Ready(answer) = pending.poll_unpin(cx) {
                    self.pending = None;
                    return Poll::Ready(Event::Answer(answer));
                }
            }
            if let Some(relink) = &mut self.relink {
                if let Poll::Ready(answer) = relink.task.poll_unpin(cx) {
                    return Poll::Ready(Event::Relinked(answer));
                }
            }
            if let Some(link) = &mut self.link {
                if let Poll::Ready(inbound) = link.rx.poll_next_unpin(cx) {
                    return Poll::Ready(Event::Session(inbound.unwrap_or(GONE)));
                }
            }
            self.from_client
                .poll_next_unpin(cx)
                .map(|inbound| Event::Client(inbound.unwrap_or(GONE)))
        })
        .await
    }

    async fn on_client(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Text(text) => {
                self.player.handle_text(now_ms(), &text);
            }
            Inbound::Binary(_) => self.player.handle_binary(now_ms()),
            // A transport limit, as in the native host's frame reader.
            Inbound::TooBig => {
                let reason = CloseReason::TooBig;
                self.close_client(reason.code(), reason.text()).await;
            }
            Inbound::Closed(code) => {
                self.done = true;
                // Completes the client's close handshake; nothing to answer on a lost
                // connection (closing it would only raise an error).
                if code != close::LOST {
                    let _ = self.client.close(Some(close::NORMAL), Some("bye"));
                }
                self.player.handle_closed();
            }
        }
    }

    async fn on_session(&mut self, inbound: Inbound) {
        let Some(session) = self.link.as_ref().map(|link| link.session) else {
            return;
        };
        match inbound {
            Inbound::Text(frame) => self.forward(frame),
            Inbound::Binary(event) if event == wire::JOINED => {
                self.player
                    .handle_from_session(ToPlayer::Joined { session });
            }
            Inbound::Binary(event) if event == wire::KICKED => {
                // What the session answered to what was sent before it knew reaches the
                // client first; then the player, in the lobby, lets go of the link.
                self.drain().await;
                self.player
                    .handle_from_session(ToPlayer::Kicked { session });
            }
            Inbound::Binary(_) | Inbound::TooBig => {}
            Inbound::Closed(close::LEFT) => {
                self.link = None;
                self.player.handle_from_session(ToPlayer::Left);
            }
            // Another connection took the seat over (it resumed with the token): this one is
            // closed, as natively.
            Inbound::Closed(close::REPLACED) => {
                self.link = None;
                self.tracker.forget();
                let reason = CloseReason::Replaced;
                self.close_client(reason.code(), reason.text()).await;
            }
            Inbound::Closed(code) => self.link_broke(session, code).await,
        }
    }

    /// A frame from the session for the client, through the tracker (which keeps the seat's
    /// token and cuts it off for a client that did not ask for `resume`).
    fn forward(&mut self, frame: String) {
        let frame = self.tracker.relay(frame, !self.asked_for_resume());
        self.send(&frame);
    }

    fn asked_for_resume(&self) -> bool {
        self.player.features().contains(Features::RESUME)
    }

    /// The link to session `session` closed with `code` (or could not take a message). A
    /// client that asked for `resume` is closed with 1012 and resumes itself (its token is
    /// still good: the relay does not use it); for any other the relay takes the seat back
    /// itself if it can. Else the player has lost its session (1011).
    async fn link_broke(&mut self, session: SessionId, code: u16) {
        self.link = None;
        // A leave on its way is not retried: its answer may have been lost with the link.
        let in_session = self.player.session() == Some(session) && !self.player.is_waiting();
        if in_session && self.asked_for_resume() && self.tracker.resume_with().is_some() {
            console_log!(
                "player {}: link to session {session} broke ({code}); the client resumes",
                self.player.id()
            );
            self.tracker.forget();
            let reason = "the session's host restarted: resume with your token";
            self.close_client(close::RESUME, reason).await;
            return;
        }
        match self.resume_task(0) {
            Some((token_session, task)) if in_session && token_session == session => {
                console_log!(
                    "player {}: link to session {session} broke ({code}); resuming",
                    self.player.id()
                );
                self.relink = Some(Relink {
                    session,
                    attempt: 0,
                    task,
                    held: Vec::new(),
                });
            }
            _ => {
                self.tracker.forget();
                self.player.handle_session_gone(session);
            }
        }
    }

    /// The relay's own resume of the seat it holds a token for, after `delay_ms`: the token's
    /// session and the task. `received` makes the replay exact: the frames lost with the link
    /// are replayed too.
    fn resume_task(&self, delay_ms: u64) -> Option<(SessionId, Pending)> {
        let (token, received) = self.tracker.resume_with()?;
        let token = ResumeToken::parse(token)?;
        let session = token.session;
        // The seat's subject is this connection's: the session takes the seat back only for it.
        let subject = self.player.subject().map(|s| Arc::new(s.to_owned()));
        let extras = self.player.features().intersect(link::EXTRAS);
        let task = resume_session(
            self.env.clone(),
            None,
            token,
            Some(received),
            delay_ms,
            subject,
            extras,
        );
        Some((session, Box::pin(task)))
    }

    /// How the relay's own resume came out.
    fn relinked(&mut self, answer: Answer) {
        let Some(mut relink) = self.relink.take() else {
            return;
        };
        let session = relink.session;
        let retry = match answer {
            Answer::Resumed {
                link,
                welcome,
                default,
                ..
            } => {
                match self.tracker.relinked(&welcome, &default) {
                    Ok(frames) => {
                        for frame in &frames {
                            self.send(frame);
                        }
                        for message in relink.held.drain(..) {
                            let _ = match message {
                                Outgoing::Command(text) => link.ws.send_with_str(&text),
                                Outgoing::Reply(bytes) => link.ws.send_with_bytes(&bytes),
                            };
                        }
                        self.link = Some(link);
                    }
                    Err(e) => {
                        console_error!("player {}: resume of {session}: {e}", self.player.id());
                        self.tracker.forget();
                        self.player.handle_session_gone(session);
                    }
                }
                return;
            }
            // The seat is no longer there for this token (22: its grace ended, it was given
            // up): no use trying again.
            Answer::Refused(frames, _) => {
                let refusal = frames.first().map_or("", String::as_str);
                console_log!(
                    "player {}: resume refused: {refusal:.200}",
                    self.player.id()
                );
                false
            }
            // The object is overloaded: trying again would add to its load.
            Answer::Failed(e) if link::failure(&e) == Failure::Overloaded => {
                console_error!(
                    "player {}: resume of {session}: {e} (overloaded): not tried again",
                    self.player.id()
                );
                false
            }
            // A try failed on the platform (the object is still restarting: its stub calls
            // were tried again already when retryable), or two random IDs met.
            Answer::Failed(e) => {
                console_error!("player {}: resume of {session}: {e}", self.player.id());
                true
            }
            Answer::TryAgain(_) => true,
            Answer::Joined { .. }
            | Answer::Gone(_)
            | Answer::NoSuchSession
            | Answer::NoDirectory(_)
            | Answer::CreateRefused => false,
        };
        relink.attempt += 1;
        let next = resync::relink_delay_ms(relink.attempt).and_then(|d| self.resume_task(d));
        match (retry, next) {
            (true, Some((_, task))) => {
                relink.task = task;
                self.relink = Some(relink);
            }
            _ => {
                console_log!(
                    "player {}: gave up resuming session {session} after {} tries",
                    self.player.id(),
                    relink.attempt
                );
                self.tracker.forget();
                self.player.handle_session_gone(session);
            }
        }
    }

    async fn answer(&mut self, answer: Answer) {
        match answer {
            Answer::Joined { link, frames } => {
                for frame in frames {
                    self.forward(frame);
                }
                let session = link.session;
                self.link = Some(link);
                self.player
                    .handle_from_session(ToPlayer::Joined { session });
            }
            Answer::Resumed {
                link,
                welcome,
                member,
                ..
            } => {
                // The client's own resume: its sessionResume and replay as they came.
                for frame in welcome {
                    self.forward(frame);
                }
                let session = link.session;
                self.link = Some(link);
                self.player.handle_from_session(ToPlayer::Resumed {
                    session,
                    player: member,
                });
            }
            Answer::Refused(frames, event) => {
                for frame in &frames {
                    self.send(frame);
                }
                self.player.handle_from_session(event);
            }
            Answer::Gone(session) => self.player.handle_session_gone(session),
            Answer::NoSuchSession => self.player.handle_no_such_session(),
            Answer::NoDirectory(e) => {
                console_error!(
                    "player {}: joinSession -1: the registry failed ({e}): error 6",
                    self.player.id()
                );
                self.player.handle_no_such_session();
            }
            Answer::CreateRefused => self.player.handle_create_refused(CreateRefusal::NoFreeId),
            Answer::TryAgain(reason) => self.close_client(close::TRY_AGAIN, reason).await,
            // Trying again now would add to the object's load: the client comes back later.
            Answer::Failed(e) if link::failure(&e) == Failure::Overloaded => {
                console_error!("player {}: {e} (overloaded)", self.player.id());
                let reason = "the session is overloaded: try again later";
                self.close_client(close::TRY_AGAIN, reason).await;
            }
            Answer::Failed(e) => {
                console_error!("player {}: {e}", self.player.id());
                self.close_client(close::INTERNAL, "internal error").await;
            }
        }
    }

    /// Carries out everything the player asks for, until it asks nothing more.
    async fn apply(&mut self) {
        while let Some(output) = self.player.poll_output() {
            // Asked for in every create and join while there is a grace period, so that the
            // relay can take the seat back itself (see the module's docs).
            let resume = self.limits.resume_grace_ms > 0;
            // A joinOrCreate's match comes from the registry; without one it creates.
            let output = match output {
                PlayerOutput::JoinOrCreate(request) => {
                    let found = match request.create_only {
                        true => None,
                        false => best_match(&self.env, &request.filter)
                            .await
                            .unwrap_or_else(|e| {
                                console_error!(
                                    "player {}: no match from the registry: {e}",
                                    self.player.id()
                                );
                                None
                            }),
                    };
                    request.into_output(found)
                }
                other => other,
            };
            match output {
                PlayerOutput::JoinOrCreate(_) => {}
                PlayerOutput::Send(frame) => self.send(frame.as_str()),
                // handle_timeout is never called: no heartbeat on this host.
                PlayerOutput::Ping => {}
                // The registry keeps the public sessions' listings and answers from them.
                PlayerOutput::ListSessions(request) => {
                    let frame = match list_sessions(&self.env, *request).await {
                        Ok(frame) => frame,
                        Err(e) => {
                            console_error!("player {}: listing failed: {e}", self.player.id());
                            sessionserver_core::reply::error(
                                sessionserver_core::ServerCommand::SessionList,
                                sessionserver_core::ErrorCode::ListUnavailable,
                                Some("the list of sessions cannot be read just now; try again"),
                            )
                            .as_str()
                            .to_owned()
                        }
                    };
                    self.send(&frame);
                }
                // A lobby ping is the relay's to answer (in a session, the object answers).
                PlayerOutput::Pong(t) => {
                    let frame = sessionserver_core::reply::pong(t.as_deref(), now_ms());
                    self.send(frame.as_str());
                }
                PlayerOutput::Create(request) => {
                    let create =
                        wire::encode_command(&Command::CreateSession(Box::new(NewSession {
                            format: request.format,
                            options: request.options,
                        })));
                    let extras = request.features.intersect(link::EXTRAS);
                    let task = create_session(
                        self.env.clone(),
                        request.player,
                        resume,
                        extras,
                        create,
                        request.subject,
                    );
                    self.pending = Some(Box::pin(task));
                }
                PlayerOutput::Join {
                    input:
                        ToSession::Resume {
                            player,
                            request,
                            subject,
                            features,
                        },
                    ..
                } => {
                    let ResumeRequest { token, received } = *request;
                    let env = self.env.clone();
                    let extras = features.intersect(link::EXTRAS);
                    let task =
                        resume_session(env, Some(player), token, received, 0, subject, extras);
                    self.pending = Some(Box::pin(task));
                }
                PlayerOutput::Join {
                    target,
                    skip,
                    input,
                } => {
                    let player = input.player();
                    let (subject, password, extras, quiet) = match input {
                        ToSession::Join {
                            subject,
                            password,
                            features,
                            quiet,
                            ..
                        } => (subject, password, features.intersect(link::EXTRAS), quiet),
                        _ => (None, None, Features::NONE, false),
                    };
                    let ask = Ask {
                        op: Op::Join,
                        player,
                        resume,
                        extras,
                        password,
                        quiet,
                        token: None,
                        received: None,
                        subject,
                        new_session: false,
                    };
                    let task = join_session(self.env.clone(), ask, target, skip);
                    self.pending = Some(Box::pin(task));
                }
                PlayerOutput::ToSession(ToSession::Command { command, .. }) => {
                    let message = match command {
                        Ok(command) => Outgoing::Command(wire::encode_command(&command)),
                        Err(rejection) => Outgoing::Reply(rejection.frame().bytes().to_vec()),
                    };
                    if let Some(relink) = &mut self.relink {
                        if relink.held.len() >= MAX_HELD {
                            let reason = CloseReason::RateLimit;
                            self.close_client(reason.code(), reason.text()).await;
                        } else {
                            relink.held.push(message);
                        }
                        continue;
                    }
                    let Some(link) = &self.link else {
                        console_error!("player {}: a command with no session", self.player.id());
                        continue;
                    };
                    let sent = match message {
                        Outgoing::Command(text) => link.ws.send_with_str(&text),
                        Outgoing::Reply(bytes) => link.ws.send_with_bytes(&bytes),
                    };
                    if sent.is_err() {
                        let session = link.session;
                        self.link_broke(session, close::LOST).await;
                    }
                }
                PlayerOutput::ToSession(ToSession::Disconnect { .. }) => {
                    // A seat being taken back stays away until its grace ends.
                    self.relink = None;
                    // A socket still being opened is closed once it is.
                    if let Some(pending) = self.pending.take() {
                        match pending.await {
                            Answer::Joined { link, .. } | Answer::Resumed { link, .. } => {
                                self.depart(link)
                            }
                            _ => {}
                        }
                    }
                    if let Some(link) = self.link.take() {
                        self.depart(link);
                    }
                    self.tracker.forget();
                }
                // Only ever inside `PlayerOutput::Join`.
                PlayerOutput::ToSession(ToSession::Join { .. } | ToSession::Resume { .. }) => {}
                PlayerOutput::Close(reason) => {
                    self.close_client(reason.code(), reason.text()).await
                }
            }
        }
    }

    /// The player's connection is gone: its link closes. A client that did not ask for
    /// `resume` leaves first, so that the others see it go at once (the seat its relay kept a
    /// token for is for the relay's own resumes, not for a client that is gone).
    fn depart(&self, link: Link) {
        if self.limits.resume_grace_ms > 0 && !self.asked_for_resume() {
            let _ = link.ws.send_with_str(LEAVE);
        }
        drop(link);
    }

    /// Closes the client's socket, after every frame for it the session still has to send,
    /// and tells the player (whose disconnect is then applied).
    async fn close_client(&mut self, code: u16, reason: &str) {
        self.drain().await;
        let _ = self.client.close(Some(code), Some(reason));
        self.done = true;
        self.player.handle_closed();
    }

    /// Relays the session's frames until it has answered every message sent to it so far: an
    /// empty binary message makes the object send back an empty text message, after them.
    async fn drain(&mut self) {
        let original = !self.asked_for_resume();
        let Relay {
            link,
            client,
            tracker,
            ..
        } = self;
        let Some(link) = link else {
            return;
        };
        if link.ws.send_with_bytes([]).is_err() {
            return;
        }
        while let Some(Inbound::Text(frame)) = link.rx.next().await {
            if frame.is_empty() {
                return;
            }
            let frame = tracker.relay(frame, original);
            let _ = client.send_with_str(&frame);
        }
    }

    fn send(&self, frame: &str) {
        // A failing client socket reports its close as an event; nothing to do here.
        let _ = self.client.send_with_str(frame);
    }
}

/// What a socket reports when it ends without a close event.
const GONE: Inbound = Inbound::Closed(close::LOST);

/// Creates a session under a random ID: opens a socket to the object of that ID and sends
/// the create on it. An ID that is taken (in the object's storage, or by a create that came
/// first) is drawn again.
async fn create_session(
    env: Env,
    player: PlayerId,
    resume: bool,
    extras: Features,
    create: String,
    subject: Option<Arc<String>>,
) -> Answer {
    let ask = Ask {
        op: Op::Create,
        player,
        resume,
        extras,
        password: None,
        quiet: false,
        token: None,
        received: None,
        subject,
        new_session: false,
    };
    for _ in 0..CREATE_ATTEMPTS {
        let id = match link::random_id() {
            Ok(id) => SessionId(id),
            Err(e) => return e.into(),
        };
        let mut link = match open(&env, &ask, id).await {
            Ok(Opened::Link(link)) => link,
            Ok(_) => continue,
            Err(e) => return e.into(),
        };
        if let Err(e) = link.ws.send_with_str(&create) {
            return e.into();
        }
        let mut frames = Vec::new();
        loop {
            match link.rx.next().await {
                Some(Inbound::Text(frame)) => frames.push(frame),
                Some(Inbound::Binary(event)) if event == wire::JOINED => {
                    return Answer::Joined { link, frames };
                }
                Some(Inbound::Binary(_) | Inbound::TooBig) => {}
                Some(Inbound::Closed(close::TAKEN)) => break,
                Some(Inbound::Closed(code)) => {
                    return Answer::Failed(worker::Error::RustError(format!(
                        "session {id} closed the create with {code}"
                    )))
                }
                None => {
                    return Answer::Failed(worker::Error::RustError(format!(
                        "session {id} lost the create"
                    )))
                }
            }
        }
    }
    Answer::CreateRefused
}

/// Joins the session `target` names (`ask`, an [`Op::Join`]); for `-1` the registry's latest
/// other than `skip`.
async fn join_session(env: Env, ask: Ask, target: JoinTarget, skip: Option<SessionId>) -> Answer {
    let (id, named) = match target {
        // No object can be named by it: IDs are below 2^53.
        JoinTarget::Id(id) if id > MAX_ID => return Answer::NoSuchSession,
        JoinTarget::Id(id) => (SessionId(id), false),
        JoinTarget::Latest => match latest(&env, skip).await {
            Ok(Some(id)) => (SessionId(id), true),
            Ok(None) => return Answer::NoSuchSession,
            Err(e) => return Answer::NoDirectory(e),
        },
    };
    match open(&env, &ask, id).await {
        // The session's frames (sessionJoin, playerJoin…) come on the link.
        Ok(Opened::Link(link)) => Answer::Joined {
            link,
            frames: Vec::new(),
        },
        Ok(Opened::Answered(body)) => refused(id, &body, ToPlayer::JoinRefused),
        Ok(Opened::NotFound) if named => Answer::Gone(id),
        Ok(Opened::NotFound) => Answer::NoSuchSession,
        // Two random player IDs met in one session (p ≈ members / 2^53).
        Ok(Opened::Conflict) => Answer::TryAgain("player ID collision"),
        Err(e) => e.into(),
    }
}

/// Takes back the seat `token` names, after `delay_ms`: for the client's own
/// `resumeSession` (as `connection`, the player's ID), or for the relay itself after its link
/// broke (`None`: a new random connection ID), as `subject` (the player's: the session gives
/// the seat back only to its own subject). The welcome (the `sessionResume`, then the
/// replayed frames or the snapshot's `playerJoin`s) comes on the new link before the end
/// marker, which carries the session's default playerData.
async fn resume_session(
    env: Env,
    connection: Option<PlayerId>,
    token: ResumeToken,
    received: Option<u64>,
    delay_ms: u64,
    subject: Option<Arc<String>>,
    extras: Features,
) -> Answer {
    if delay_ms > 0 {
        Delay::from(Duration::from_millis(delay_ms)).await;
    }
    let player = match connection {
        Some(player) => player,
        None => match link::random_id() {
            Ok(id) => PlayerId(id),
            Err(e) => return e.into(),
        },
    };
    let id = token.session;
    let member = token.player;
    let ask = Ask {
        op: Op::Resume,
        player,
        resume: true,
        extras,
        password: None,
        quiet: false,
        token: Some(token),
        received,
        subject,
        new_session: false,
    };
    match open(&env, &ask, id).await {
        Ok(Opened::Link(mut link)) => {
            let mut welcome = Vec::new();
            loop {
                match link.rx.next().await {
                    Some(Inbound::Text(frame)) => welcome.push(frame),
                    Some(Inbound::Binary(message)) => {
                        if let Some(default) = wire::decode_resumed(&message) {
                            return Answer::Resumed {
                                default: default.to_owned(),
                                link,
                                welcome,
                                member,
                            };
                        }
                    }
                    Some(Inbound::TooBig) => {}
                    Some(Inbound::Closed(code)) => {
                        return Answer::Failed(worker::Error::RustError(format!(
                            "session {id} closed a resume with {code}"
                        )))
                    }
                    None => {
                        return Answer::Failed(worker::Error::RustError(format!(
                            "session {id} lost a resume"
                        )))
                    }
                }
            }
        }
        Ok(Opened::Answered(body)) => refused(id, &body, ToPlayer::ResumeRefused),
        // The session is gone: the token is no good (22, from the player).
        Ok(Opened::NotFound) => Answer::NoSuchSession,
        Ok(Opened::Conflict) => Answer::TryAgain("player ID collision"),
        Err(e) => e.into(),
    }
}

/// A refusal's frames ([`status::ANSWERED`]) and the player's `event`.
fn refused(id: SessionId, body: &str, event: ToPlayer) -> Answer {
    match wire::decode_frames(body) {
        Some(frames) => Answer::Refused(frames.into_iter().map(str::to_owned).collect(), event),
        None => Answer::Failed(worker::Error::RustError(format!(
            "session {id} answered with {body:?}"
        ))),
    }
}

/// The registry's `sessionList` frame for a `listSessions`: a page from every shard, merged
/// ([`shard::merge`]); the cursor is an order key, which each shard gets as a bound on its
/// stamps. Any shard failing fails the list (error 33): a page without it would skip its
/// sessions for good.
async fn list_sessions(env: &Env, request: sessionserver_core::ListRequest) -> Result<String> {
    let shards = link::registry_shards(env)?;
    let asks = (0..shards).map(|k| {
        let mut request = request.clone();
        request.after = request.after.map(|after| shard::stamp_bound(after, k));
        async move {
            let body = Command::ListSessions(Box::new(request)).encode();
            let mut response =
                link::registry_post(env, k, "https://registry/list", &body, "registry request")
                    .await?;
            match response.status_code() {
                200 => {
                    let text = response.text().await?;
                    shard::ShardPage::decode(&text).ok_or_else(|| {
                        worker::Error::RustError(format!("registry shard {k} sent no page"))
                    })
                }
                code => Err(worker::Error::RustError(format!(
                    "registry shard {k} answered {code}"
                ))),
            }
        }
    });
    let pages = join_all(asks)
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let (page, next) = shard::merge(&pages, request.limit);
    let refs: Vec<(SessionId, &sessionserver_core::Listing)> =
        page.iter().map(|(id, l)| (*id, l)).collect();
    Ok(sessionserver_core::reply::session_list(&refs, next)
        .as_str()
        .to_owned())
}

/// The registry's best match for a `joinOrCreate` with `filter`, if one has room: every
/// shard's best, then the best of those ([`shard::best`]). Shards that fail are left out;
/// an error only if all did.
async fn best_match(
    env: &Env,
    filter: &[(String, serde_json::Value)],
) -> Result<Option<SessionId>> {
    let object: serde_json::Map<String, serde_json::Value> = filter.iter().cloned().collect();
    let body = serde_json::Value::Object(object).to_string();
    let body = body.as_str();
    let shards = link::registry_shards(env)?;
    let asks = (0..shards).map(|k| async move {
        let mut response =
            link::registry_post(env, k, "https://registry/match", body, "registry request").await?;
        match response.status_code() {
            200 => {
                let header = |name: &str| -> Option<u64> {
                    response.headers().get(name).ok()??.trim().parse().ok()
                };
                let (players, stamp) = (header("Players"), header("Stamp"));
                let id = response.text().await?.trim().parse().ok();
                Ok(match (id, players, stamp) {
                    (Some(id), Some(players), Some(stamp)) => {
                        let players = u32::try_from(players).unwrap_or(u32::MAX);
                        shard::order_key(stamp, k).map(|key| (SessionId(id), players, key))
                    }
                    _ => None,
                })
            }
            404 => Ok(None),
            code => Err(worker::Error::RustError(format!(
                "registry shard {k} answered {code}"
            ))),
        }
    });
    let mut found = Vec::new();
    let mut error = None;
    let answers = join_all(asks).await;
    let asked = answers.len();
    let mut failed = 0;
    for answer in answers {
        match answer {
            Ok(Some(best)) => found.push(best),
            Ok(None) => {}
            Err(e) => {
                failed += 1;
                error = Some(e);
            }
        }
    }
    match (shard::best(found), error) {
        (Some(id), _) => Ok(Some(id)),
        (None, Some(e)) if failed == asked => Err(e),
        (None, _) => Ok(None),
    }
}

/// A live session for `joinSession -1`: the latest of a shard drawn at random, or if it knows
/// none, the newest of the latest of the others ([`shard::latest_order`]: at most
/// [`shard::LATEST_SHARDS`] shards in all, asked at once). `gone` is one a shard named before
/// that has ended since: every shard asked forgets it. `Ok(None)`: no shard asked knows a
/// session; an error if one failed and none knew one (error 6 either way, logged).
async fn latest(env: &Env, gone: Option<SessionId>) -> Result<Option<u64>> {
    let shards = link::registry_shards(env)?;
    let order = shard::latest_order(link::random_below(shards)?, shards);
    let Some((&first, others)) = order.split_first() else {
        return Ok(None);
    };
    let mut error = match latest_of(env, first, gone).await {
        Ok(Some((id, _))) => return Ok(Some(id.0)),
        Ok(None) => None,
        Err(e) => Some(e),
    };
    let answers = join_all(others.iter().map(|&k| latest_of(env, k, gone))).await;
    let mut found = Vec::new();
    for answer in answers {
        match answer {
            Ok(Some(latest)) => found.push(latest),
            Ok(None) => {}
            Err(e) => error = Some(e),
        }
    }
    match (shard::newest(found), error) {
        (Some(id), _) => Ok(Some(id.0)),
        (None, Some(e)) => Err(e),
        (None, None) => Ok(None),
    }
}

/// Shard `k`'s latest live session, with its order key.
async fn latest_of(env: &Env, k: u32, gone: Option<SessionId>) -> Result<Option<(SessionId, u64)>> {
    let url = match gone {
        Some(id) => format!("https://registry/latest?gone={id}"),
        None => "https://registry/latest".to_owned(),
    };
    let url = url.as_str();
    let mut response = link::retrying("registry lookup", move || async move {
        link::registry_stub(env, k)?.fetch_with_str(url).await
    })
    .await?;
    match response.status_code() {
        200 => {
            let stamp: Option<u64> = response
                .headers()
                .get("Stamp")?
                .and_then(|s| s.trim().parse().ok());
            let id: Option<u64> = response.text().await?.trim().parse().ok();
            match (id, stamp.and_then(|stamp| shard::order_key(stamp, k))) {
                (Some(id), Some(key)) => Ok(Some((SessionId(id), key))),
                _ => Err(worker::Error::RustError(format!(
                    "registry shard {k} answered no session ID and stamp"
                ))),
            }
        }
        404 => Ok(None),
        code => Err(worker::Error::RustError(format!(
            "registry shard {k} answered {code}"
        ))),
    }
}

/// A session object's answer to [`open`].
enum Opened {
    Link(Link),
    NotFound,
    Conflict,
    /// No socket: the body holds the frames for the client ([`wire::encode_frames`]).
    Answered(String),
}

/// Asks session `id`'s object for a socket.
/// A retryable failure of the platform is tried again with a new stub ([`link::retrying`]).
/// (A join whose first try reached the object although its answer was lost finds the player
/// in the session on the next: 409, the client is closed with 1013 and reconnects.)
async fn open(env: &Env, ask: &Ask, id: SessionId) -> Result<Opened> {
    let what = format!("{:?} of session {id}", ask.op);
    let mut response = link::retrying(&what, move || async move {
        let stub = link::session_stub(env, id.0)?;
        stub.fetch_with_request(ask.request()?).await
    })
    .await?;
    match response.status_code() {
        status::OPEN => match response.websocket() {
            Some(ws) => Ok(Opened::Link(Link::new(ws, id))),
            None => Err(worker::Error::RustError(format!(
                "session {id} answered 101 without a socket"
            ))),
        },
        status::ANSWERED => Ok(Opened::Answered(response.text().await?)),
        status::NOT_FOUND => Ok(Opened::NotFound),
        status::CONFLICT => Ok(Opened::Conflict),
        code => Err(worker::Error::RustError(format!(
            "session {id} answered {code}"
        ))),
    }
}

/// Accepts a socket and hands what arrives on it to a channel, so that one task can wait on the
/// client, the session and a create or join at once. The task ends with the socket or when the
/// receiver is dropped.
fn pump(ws: WebSocket, side: Side) -> UnboundedReceiver<Inbound> {
    let (tx, rx) = unbounded();
    // Accepted now, so that it can be sent on at once. Its listeners are added by the task
    // below in a microtask of this same turn, before any message event can be dispatched.
    if ws.accept().is_err() {
        let _ = tx.unbounded_send(GONE);
        return rx;
    }
    spawn_local(async move {
        let mut events = match ws.events() {
            Ok(events) => events,
            Err(_) => {
                let _ = tx.unbounded_send(GONE);
                return;
            }
        };
        while let Some(event) = events.next().await {
            let inbound = match event {
                Ok(WebsocketEvent::Message(message)) => read(&message, side),
                Ok(WebsocketEvent::Close(event)) => Inbound::Closed(event.code()),
                Err(_) => GONE,
            };
            let closed = matches!(inbound, Inbound::Closed(_));
            if tx.unbounded_send(inbound).is_err() || closed {
                break;
            }
        }
    });
    rx
}

/// One message, copied into wasm only if it is needed and small enough.
fn read(message: &worker::MessageEvent, side: Side) -> Inbound {
    let data = AsRef::<worker::web_sys::MessageEvent>::as_ref(message).data();
    let Some(text) = data.dyn_ref::<JsString>() else {
        return match side {
            Side::Client => Inbound::Binary(Vec::new()),
            Side::Session => Inbound::Binary(message.bytes().unwrap_or_default()),
        };
    };
    // UTF-16 code units: a UTF-8 byte or more each, so more of them than MAX_FRAME is too big
    // whatever they are; the bytes are counted once copied.
    if side == Side::Client && text.length() as usize > MAX_FRAME {
        return Inbound::TooBig;
    }
    let text = String::from(text);
    if side == Side::Client && text.len() > MAX_FRAME {
        return Inbound::TooBig;
    }
    Inbound::Text(text)
}
