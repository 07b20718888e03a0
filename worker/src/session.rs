//! [`SessionObject`]: the Durable Object of one session, named by its ID. It feeds the core's
//! [`Session`] what its relays send ([`ToSession`]) and applies what the session outputs:
//! frames to the members' sockets, events for the players' machines onto the relays' links
//! ([`crate::wire`]), and what changed to SQLite ([`crate::store`], through
//! [`crate::persist::store`]).
//!
//! Each member is one socket from its relay, accepted with the Hibernation API, with the
//! member's player ID (and the ID of the connection that is the member now) in the socket's
//! attachment. Memory is only a cache: after every start or wake the first event reads the
//! session back from storage and finds each member's socket by its attachment.
//!
//! Members that asked for `resume` (every member whose relay did, see [`crate::resync`]) keep
//! their seats for the grace period when their socket goes: the session says so
//! (`Change::MemberAway`), the object stores the deadline with the member's token secret and
//! sets its alarm to the earliest deadline; the alarm removes those who did not come back
//! (`playerLeave` to the others). When the object restarts (eviction, a deploy, a runtime
//! update), the members whose sockets are gone are not removed at load: they are away, with
//! the deadline from storage or, if they were connected, a grace period from the load. A
//! resume after a restart gets the snapshot form: what a member missed was in memory only.

use std::cell::{RefCell, RefMut};
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sessionserver_core::{
    command, Command, ConnectionConfig, CreateRequest, Features, JoinTarget, Limits, Output,
    Player, PlayerId, PlayerOutput, ResumeRequest, ServerFrame, Session, SessionId, ToPlayer,
    ToSession,
};
use worker::wasm_bindgen_futures::spawn_local;
use worker::{
    console_error, console_log, durable_object, Delay, DurableObject, Env, Request, Response,
    Result, ScheduledTime, State, WebSocket, WebSocketIncomingMessage, WebSocketPair,
};

use crate::link::{self, close, status, Ask, Op};
use crate::persist;
use crate::store::{Store, Stored};
use crate::wire;

/// Milliseconds on the platform's clock (since the epoch), for the session's egress budgets
/// and the away members' deadlines, which are stored and so outlive the object.
fn now_ms() -> u64 {
    worker::js_sys::Date::now() as u64
}

/// A socket's attachment: the state of one socket that must survive hibernation.
#[derive(Serialize, Deserialize)]
struct Attachment {
    /// The player this socket speaks for; `None` once it left (the socket is closing).
    player: Option<u64>,
    /// The connection it is, where that is not the player's own ID (after a resume): its
    /// close is that connection's disconnect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    connection: Option<u64>,
    /// Its connection asked for `resume` (read for a create: the creator's).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    resume: bool,
    /// Its connection asked for `host`: the member's, which storage does not keep, is
    /// restored from here after a wake.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    host: bool,
    /// Its connection asked for `messages` (restored as `host` is).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    messages: bool,
    /// A socket opened to create the session: its creator's subject, if it has one, until the
    /// create arrives. A token is at most 8 KiB, so its `sub` fits the platform's 16 KiB per
    /// attachment unless it is mostly control characters (JSON-escaped to 6 bytes each): such
    /// a create fails (1011). A member's subject is the session's, in memory and storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    /// A client's own socket on the direct path ([`crate::direct`]), not a relay's: its
    /// player's machine is restored from here (`player` is its ID while it is a member,
    /// `connection` the connection's; `subject` is kept for good).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    direct: bool,
    /// A direct socket that may create the session (`/session/new`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    create: bool,
}

impl Attachment {
    /// The extensions its connection asked for.
    fn features(&self) -> Features {
        let resume = if self.resume {
            Features::RESUME
        } else {
            Features::NONE
        };
        let flag = |set: bool, feature: Features| if set { feature } else { Features::NONE };
        resume
            .union(flag(self.host, Features::HOST))
            .union(flag(self.messages, Features::MESSAGES))
    }
}

/// A client socket on the direct path ([`crate::direct`]) and the machine of its player, run
/// here with the lobby's rules for this one session ([`Live::pump`]).
struct Direct {
    ws: WebSocket,
    player: Player,
    /// It may create the session (`/session/new`).
    create: bool,
    /// What its attachment says (ID, session, extensions), rewritten when that changes.
    saved: (PlayerId, Option<SessionId>, Features),
    /// Its connection is gone (closed by either side): dropped by the next pump.
    closed: bool,
}

impl Direct {
    fn state(&self) -> (PlayerId, Option<SessionId>, Features) {
        (
            self.player.id(),
            self.player.session(),
            self.player.features(),
        )
    }

    /// Its attachment: what [`Player::restore`] needs after a wake.
    fn attachment(&self) -> Attachment {
        let (id, session, features) = self.state();
        Attachment {
            player: session.map(|_| id.0),
            connection: Some(self.player.connection().0),
            resume: features.contains(Features::RESUME),
            host: features.contains(Features::HOST),
            messages: features.contains(Features::MESSAGES),
            subject: self.player.subject().map(str::to_owned),
            direct: true,
            create: self.create,
        }
    }
}

/// The session object.
#[durable_object]
pub struct SessionObject {
    state: State,
    env: Env,
    /// `None` after a start or wake, until an event loads it. Shared with the flush timer
    /// ([`SessionObject::schedule_flush`]).
    live: Rc<RefCell<Option<Live>>>,
}

struct Live {
    store: Store,
    stored: Stored,
    limits: Limits,
    /// Each member's socket.
    sockets: HashMap<PlayerId, WebSocket>,
    /// The session just ended: the registry must forget it (see [`SessionObject::finish`]).
    forget: bool,
    /// The alarm this instance set for the first away member's deadline (`None`: none, or not
    /// known since the start).
    alarm_at: Option<u64>,
    /// The members whose playerData is not written yet ([`persist::flush`]).
    pending: persist::Pending,
    /// A flush timer is running: `pending` is written within [`persist::FLUSH_MS`].
    flush_timer: bool,
    /// Flushes by the timer since the load (for the test hook `/stats`).
    timer_flushes: u64,
    /// What `listSessions` should show of the session now, not yet sent to the registry.
    listing: Option<sessionserver_core::Listing>,
    /// A listing is on its way to the registry ([`SessionObject::send_listings`]).
    listing_sent: bool,
    /// This object's session ID (`None` only in an alarm of a vacant object).
    here: Option<SessionId>,
    /// The rate limit and extensions of a direct socket's player.
    config: ConnectionConfig,
    /// The direct sockets, by connection ID.
    directs: HashMap<PlayerId, Direct>,
    /// The connection of each ID the session may name a direct player by (its connection's,
    /// and after a resume the member's).
    direct_ids: HashMap<PlayerId, PlayerId>,
    /// Events of the session for direct players, for [`Live::settle`].
    direct_events: Vec<(PlayerId, ToPlayer)>,
    /// Direct players with something to do: outputs to drain, or a connection gone.
    direct_work: Vec<PlayerId>,
    /// A direct player created the session, which the registry must hear of.
    register: Option<SessionId>,
}

/// What a drain leaves for its handler: what was meant for players with no socket here (a
/// joiner or a resumed member, whose socket is only accepted once the session has answered).
#[derive(Default)]
struct Unsent {
    frames: Vec<(PlayerId, ServerFrame)>,
    events: Vec<(PlayerId, ToPlayer)>,
}

impl Unsent {
    fn frames_for(&self, player: PlayerId) -> impl Iterator<Item = &str> {
        self.frames
            .iter()
            .filter(move |(to, _)| *to == player)
            .map(|(_, frame)| frame.as_str())
    }

    fn event_for(&self, player: PlayerId) -> Option<ToPlayer> {
        self.events
            .iter()
            .find(|(to, _)| *to == player)
            .map(|(_, event)| *event)
    }
}

/// What a handler still has to do after its synchronous part (which holds the `RefCell`).
#[must_use]
enum Then {
    Nothing,
    /// The session was just created: send its registration, drain its outputs (its
    /// `sessionJoin`) without waiting for the answer, then wait for it.
    Register(SessionId),
}

impl DurableObject for SessionObject {
    fn new(state: State, env: Env) -> Self {
        let sockets = state.get_websockets().len();
        if sockets > 0 {
            // Sockets outlived the object's memory: this start is a wake from hibernation.
            console_log!(
                "session {}: woke from hibernation with {sockets} socket(s)",
                state.id().name().unwrap_or_default()
            );
        }
        SessionObject {
            state,
            env,
            live: Rc::new(RefCell::new(None)),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        if req.path() == "/flush" && link::test_hooks(&self.env) {
            // Test hook: what the flush timer does, now.
            self.live()?.flush()?;
            return Response::ok("flushed\n");
        }
        if req.path() == "/stats" && link::test_hooks(&self.env) {
            // Test hook: what this instance has written, and how often its timer flushed.
            let live = self.live()?;
            let (rows, flushes) = (live.store.rows_written(), live.timer_flushes);
            return Response::ok(format!(
                r#"{{"rowsWritten":{rows},"timerFlushes":{flushes}}}"#
            ));
        }
        if req.path() == "/reset" && link::test_hooks(&self.env) {
            let keep = req
                .url()?
                .query_pairs()
                .any(|(k, v)| k == "memory" && v == "keep");
            return self.reset(keep);
        }
        let Some(ask) = Ask::parse(&req) else {
            return Response::error("not a session request", 400);
        };
        let op = ask.op;
        let response = self.open(ask).or_else(|e| {
            console_error!("session {}: {op:?} failed: {e}", self.name());
            Response::error("internal error", 500)
        });
        self.finish(Then::Nothing).await;
        response
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let attachment = ws.deserialize_attachment::<Attachment>().ok().flatten();
        if let Some(connection) = attachment.as_ref().and_then(direct_connection) {
            let then = self
                .direct_message(connection, message)
                .unwrap_or_else(|e| {
                    console_error!("session {}: command failed: {e}", self.name());
                    retire(&ws, close::INTERNAL, "session failed");
                    Then::Nothing
                });
            self.finish(then).await;
            return Ok(());
        }
        let text = match message {
            WebSocketIncomingMessage::String(text) => text,
            WebSocketIncomingMessage::Binary(reply) => {
                // A reply the relay made (or its empty marker): back in order (see `wire`).
                let _ = ws.send_with_str(String::from_utf8_lossy(&reply));
                return Ok(());
            }
        };
        let player = attachment.as_ref().and_then(socket_of).map(|(p, _)| p);
        let then = self.message(&ws, player, &text).unwrap_or_else(|e| {
            console_error!("session {}: command failed: {e}", self.name());
            retire(&ws, close::INTERNAL, "session failed");
            Then::Nothing
        });
        self.finish(then).await;
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        // Below compatibility date 2026-04-07 (`web_socket_auto_reply_to_close`; ours is
        // older, see wrangler.toml) the runtime does not answer a peer's close frame itself:
        // without this the relay's close handshake never completes. On a socket this side
        // closed first the call changes nothing (its error is ignored).
        let _ = ws.close(Some(link::close::echo(code)), Some(""));
        self.socket_gone(&ws).await;
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        self.socket_gone(&ws).await;
        Ok(())
    }

    async fn connect(&self, _socket: worker::Socket) -> Result<()> {
        // Nothing opens TCP connections to a session; refuse rather than panic.
        Err(worker::Error::RustError(
            "sessions take no TCP connections".into(),
        ))
    }

    async fn alarm(&self) -> Result<Response> {
        // Set for the first away member's deadline (loading the session, or finding it loaded,
        // removes those whose grace is over), or when the session ended. An error makes the
        // platform retry the alarm.
        // (The object's name is not known in an alarm: the ID comes from storage.)
        let (ended, shard) = {
            let mut live = self.live()?;
            live.alarm_at = None;
            // An alarm may be the last event before the object stops.
            live.flush()?;
            let ended = match live.stored {
                Stored::Ended(id) => Some(id),
                _ => None,
            };
            if ended.is_some() {
                // Done here, not by another alarm.
                live.forget = false;
            }
            (ended, live.store.registry_shard())
        };
        if let Some(id) = ended {
            let url = format!("https://registry/remove?id={id}");
            let response = link::registry_stub(&self.env, shard)?
                .fetch_with_str(&url)
                .await?;
            if response.status_code() != 200 {
                return Err(worker::Error::RustError(format!(
                    "registry answered {} to remove {id}",
                    response.status_code()
                )));
            }
        }
        // The next deadline, if any.
        self.finish(Then::Nothing).await;
        Response::ok("")
    }
}

impl SessionObject {
    /// Test hook ([`crate::settings::TEST_HOOKS_VAR`]): what a reset of this object by the
    /// platform does to it: every socket breaks (closed with 1012 here, unseen by the session)
    /// and the memory is gone, so the next event loads the session from storage as after a
    /// restart; storage and the alarm stay. (The platform's own reset, `ctx.abort()`, cannot
    /// be used locally: `wrangler dev` runs the Worker and its objects in one isolate, and
    /// the abort takes the relays down with it.)
    ///
    /// With `keep`, only the sockets break (a failure of the links, not of the object): they
    /// are closed as a failed link is, and the session hears of it as of any disconnect.
    fn reset(&self, keep: bool) -> Result<Response> {
        console_log!(
            "session {}: reset by the test hook (memory kept: {keep})",
            self.name()
        );
        for ws in self.state.get_websockets() {
            if keep {
                let _ = ws.close(Some(1012), Some("link failed"));
            } else {
                retire(&ws, 1012, "reset");
            }
        }
        if !keep {
            *self.live.borrow_mut() = None;
        }
        Response::ok("reset\n")
    }

    fn name(&self) -> String {
        self.state.id().name().unwrap_or_default()
    }

    /// The in-memory state, read from storage first if this is a fresh start or wake. Away
    /// members whose grace period is over have left by then.
    fn live(&self) -> Result<RefMut<'_, Live>> {
        let mut slot = self.live.borrow_mut();
        if slot.is_none() {
            *slot = Some(self.load()?);
        }
        let mut live = RefMut::map(slot, |slot| slot.as_mut().expect("filled just above"));
        live.expire()?;
        Ok(live)
    }

    fn load(&self) -> Result<Live> {
        let limits = link::limits(&self.env)?;
        let store = Store::open(&self.state, link::registry_shards(&self.env)?);
        let mut sockets = HashMap::new();
        let mut connections = HashMap::new();
        let mut features = Vec::new();
        let mut directs = Vec::new();
        for ws in self.state.get_websockets() {
            let Ok(Some(attachment)) = ws.deserialize_attachment::<Attachment>() else {
                continue;
            };
            if let Some((player, connection)) = socket_of(&attachment) {
                features.push((player, attachment.features()));
                sockets.insert(player, ws.clone());
                connections.insert(player, connection);
            }
            if attachment.direct {
                directs.push((ws, attachment));
            }
        }
        // A fresh seed at every load: the secrets drawn before are not drawn again.
        let (stored, batched) = store.load(limits, link::seed(), &connections, now_ms())?;
        let here = match &stored {
            Stored::Live(session) => Some(session.id()),
            Stored::Ended(id) => Some(*id),
            Stored::Vacant => self.name().parse().ok().map(SessionId),
        };
        let config = link::connection_config(&limits);
        let shared_limits = Arc::new(limits);
        let mut live = Live {
            store,
            stored,
            limits,
            sockets,
            forget: false,
            alarm_at: None,
            pending: persist::Pending::restored(batched),
            flush_timer: false,
            timer_flushes: 0,
            listing: None,
            listing_sent: false,
            here,
            config,
            directs: HashMap::new(),
            direct_ids: HashMap::new(),
            direct_events: Vec::new(),
            direct_work: Vec::new(),
            register: None,
        };
        // The direct sockets' players, where they were (a wake from hibernation: the
        // sockets stayed open).
        for (ws, attachment) in directs {
            let Some(connection) = attachment.connection.map(PlayerId) else {
                continue;
            };
            let id = attachment.player.map_or(connection, PlayerId);
            let player = Player::restore(
                id,
                connection,
                attachment.player.and(here),
                attachment.features(),
                Arc::clone(&shared_limits),
                config,
                now_ms(),
            )
            .with_subject(attachment.subject.map(Arc::new));
            live.add_direct(ws, player, attachment.create);
        }
        // A member whose socket is gone while the object was not running (a restart rather
        // than hibernation) has disconnected. One with a token is away already (the store made
        // it so, see `Store::load`); any other leaves now.
        if let Stored::Live(session) = &mut live.stored {
            for (player, features) in features {
                session.set_features(player, features);
            }
            let members = session.len();
            let orphans: Vec<PlayerId> = session
                .member_ids()
                .filter(|p| !live.sockets.contains_key(p) && !session.is_away(*p))
                .collect();
            console_log!(
                "session {}: loaded with {members} member(s), {} socket(s), {} away, {} gone",
                session.id(),
                live.sockets.len(),
                session.away_count(),
                orphans.len()
            );
            for player in orphans {
                session.handle(now_ms(), ToSession::Disconnect { player });
            }
        }
        live.settle()?;
        Ok(live)
    }

    /// A relay asks for a socket: to create the session on it, to join, or to resume.
    fn open(&self, ask: Ask) -> Result<Response> {
        let mut live = self.live()?;
        let live = &mut *live;
        let player = ask.player;
        let features = ask.features();
        match (ask.op, &mut live.stored) {
            (Op::Join | Op::Resume, Stored::Live(session)) if session.contains(player) => {
                // Two random player IDs met (p ≈ members / 2^53): the session would take
                // the join for the member's.
                Response::error("player ID already in the session", status::CONFLICT)
            }
            (Op::Join, Stored::Live(session)) => {
                session.handle(
                    now_ms(),
                    ToSession::Join {
                        player,
                        features,
                        subject: ask.subject,
                        password: ask.password,
                        quiet: ask.quiet,
                    },
                );
                let unsent = live.settle()?;
                match unsent.event_for(player) {
                    Some(ToPlayer::Joined { .. }) => {}
                    Some(ToPlayer::JoinRefused) => {
                        let body = wire::encode_frames(unsent.frames_for(player));
                        return Ok(Response::ok(body)?.with_status(status::ANSWERED));
                    }
                    other => {
                        return Err(worker::Error::RustError(format!(
                            "the session answered a join with {other:?}"
                        )))
                    }
                }
                let pair = self.seat(live, player, player, features)?;
                // Sent before the 101 is returned: they wait on the socket for the relay.
                for frame in unsent.frames_for(player) {
                    let _ = pair.server.send_with_str(frame);
                }
                live.sockets.insert(player, pair.server);
                Response::from_websocket(pair.client)
            }
            (Op::Resume, Stored::Live(session)) => {
                let token = ask
                    .token
                    .ok_or_else(|| worker::Error::RustError("a resume without a token".into()))?;
                let member = token.player;
                let received = ask.received;
                let input = ToSession::Resume {
                    player,
                    request: Box::new(ResumeRequest { token, received }),
                    subject: ask.subject,
                    features,
                };
                session.handle(now_ms(), input);
                let unsent = live.settle()?;
                match (unsent.event_for(member), unsent.event_for(player)) {
                    (Some(ToPlayer::Resumed { .. }), _) => {}
                    (_, Some(ToPlayer::ResumeRefused)) => {
                        let body = wire::encode_frames(unsent.frames_for(player));
                        return Ok(Response::ok(body)?.with_status(status::ANSWERED));
                    }
                    other => {
                        return Err(worker::Error::RustError(format!(
                            "the session answered a resume with {other:?}"
                        )))
                    }
                }
                // The member is this connection now.
                let pair = self.seat(live, member, player, features)?;
                for frame in unsent.frames_for(member) {
                    let _ = pair.server.send_with_str(frame);
                }
                if let Stored::Live(session) = &live.stored {
                    let end = wire::encode_resumed(session.default_player_data().as_str());
                    let _ = pair.server.send_with_bytes(end);
                }
                live.sockets.insert(member, pair.server);
                Response::from_websocket(pair.client)
            }
            (Op::Join | Op::Resume, _) => Response::error("no such session", status::NOT_FOUND),
            (Op::Create, Stored::Vacant) => {
                // The session is created when the create arrives on this socket.
                let subject = ask.subject.map(|s| s.as_str().to_owned());
                let pair = self.accept(player, player, features, subject)?;
                Response::from_websocket(pair.client)
            }
            (Op::Create, _) => Response::error("session ID taken", status::CONFLICT),
            (Op::Direct, Stored::Vacant) if ask.new_session => self.open_direct(live, ask),
            (Op::Direct, Stored::Live(_)) if !ask.new_session => self.open_direct(live, ask),
            (Op::Direct, _) if ask.new_session => {
                Response::error("session ID taken", status::CONFLICT)
            }
            (Op::Direct, _) => Response::error("no such session", status::NOT_FOUND),
        }
    }

    /// A client's own socket on the direct path, its player in the lobby.
    fn open_direct(&self, live: &mut Live, ask: Ask) -> Result<Response> {
        let pair = WebSocketPair::new()?;
        let player =
            Player::new(ask.player, live.limits, live.config, now_ms()).with_subject(ask.subject);
        let direct = Direct {
            ws: pair.server.clone(),
            player,
            create: ask.new_session,
            saved: (ask.player, None, Features::NONE),
            closed: false,
        };
        // Not `State::accept_web_socket`: it panics where the platform refuses a socket.
        self.state
            .as_raw()
            .accept_websocket(pair.server.as_ref())
            .map_err(worker::Error::from)?;
        pair.server.serialize_attachment(direct.attachment())?;
        live.add_direct(pair.server, direct.player, direct.create);
        Response::from_websocket(pair.client)
    }

    /// The socket of a member the session has just taken in (a join, or a resume by
    /// `connection`). If it cannot be made, the member is gone for the session again (its
    /// connection's disconnect).
    fn seat(
        &self,
        live: &mut Live,
        member: PlayerId,
        connection: PlayerId,
        features: Features,
    ) -> Result<WebSocketPair> {
        match self.accept(member, connection, features, None) {
            Ok(pair) => Ok(pair),
            Err(e) => {
                if let Stored::Live(session) = &mut live.stored {
                    let input = ToSession::Disconnect { player: connection };
                    session.handle(now_ms(), input);
                }
                live.settle()?;
                Err(e)
            }
        }
    }

    /// A new hibernatable socket speaking for `player`, as the connection `connection`, which
    /// asked for `features`; for a create, who its creator is.
    fn accept(
        &self,
        player: PlayerId,
        connection: PlayerId,
        features: Features,
        subject: Option<String>,
    ) -> Result<WebSocketPair> {
        let pair = WebSocketPair::new()?;
        // Not `State::accept_web_socket`: it panics where the platform refuses a socket.
        self.state
            .as_raw()
            .accept_websocket(pair.server.as_ref())
            .map_err(worker::Error::from)?;
        pair.server.serialize_attachment(Attachment {
            player: Some(player.0),
            connection: (connection != player).then_some(connection.0),
            resume: features.contains(Features::RESUME),
            host: features.contains(Features::HOST),
            messages: features.contains(Features::MESSAGES),
            subject,
            direct: false,
            create: false,
        })?;
        Ok(pair)
    }

    /// A message on a direct socket: its player's.
    fn direct_message(
        &self,
        connection: PlayerId,
        message: WebSocketIncomingMessage,
    ) -> Result<Then> {
        let mut live = self.live()?;
        let Some(direct) = live.directs.get_mut(&connection) else {
            return Ok(Then::Nothing);
        };
        match message {
            WebSocketIncomingMessage::String(text) if text.len() > link::MAX_FRAME => {
                // As the relay does: the limit of the native host's frame reader.
                let reason = sessionserver_core::CloseReason::TooBig;
                retire(&direct.ws, reason.code(), reason.text());
                direct.player.handle_closed();
                direct.closed = true;
            }
            WebSocketIncomingMessage::String(text) => {
                direct.player.handle_text(now_ms(), &text);
            }
            WebSocketIncomingMessage::Binary(_) => direct.player.handle_binary(now_ms()),
        }
        live.direct_work.push(connection);
        live.settle()?;
        Ok(live.then())
    }

    /// A text message from a relay socket (speaking for `player`): a command of its player
    /// (see `wire`).
    fn message(&self, ws: &WebSocket, player: Option<PlayerId>, text: &str) -> Result<Then> {
        let Some(player) = player else {
            return Ok(Then::Nothing);
        };
        let mut live = self.live()?;
        let live = &mut *live;
        let command = command::parse(text, &live.limits);
        match &mut live.stored {
            Stored::Live(session) if live.sockets.contains_key(&player) => {
                session.handle(now_ms(), ToSession::Command { player, command });
                live.settle()?;
                Ok(Then::Nothing)
            }
            Stored::Vacant => self.create(live, ws, player, command),
            _ => {
                // Not a member: a socket opened to create, and another create came first.
                retire(ws, close::TAKEN, "session ID taken");
                Ok(Then::Nothing)
            }
        }
    }

    /// The first message on a socket opened with [`Op::Create`]: the player's `createSession`.
    fn create(
        &self,
        live: &mut Live,
        ws: &WebSocket,
        player: PlayerId,
        command: std::result::Result<Command, sessionserver_core::Rejection>,
    ) -> Result<Then> {
        let Ok(Command::CreateSession(new)) = command else {
            retire(ws, close::INTERNAL, "expected createSession");
            return Ok(Then::Nothing);
        };
        let id: u64 = self
            .name()
            .parse()
            .map_err(|_| worker::Error::RustError("object name is no session ID".into()))?;
        let (features, subject) = match ws.deserialize_attachment::<Attachment>() {
            Ok(Some(attachment)) => (attachment.features(), attachment.subject),
            _ => (Features::NONE, None),
        };
        let private = new.options.private;
        let request = CreateRequest {
            player,
            format: new.format,
            features,
            subject: subject.map(Arc::new),
            options: new.options,
        };
        let session = Session::create_seeded(SessionId(id), request, live.limits, link::seed());
        live.sockets.insert(player, ws.clone());
        live.stored = Stored::Live(session);
        if private {
            // Never what `-1` finds: the registry does not hear of it.
            live.settle()?;
            return Ok(Then::Nothing);
        }
        // Its outputs (the rows, the sessionJoin) are drained by `finish`, once the
        // registry's add is on its way (not answered: see `finish`).
        Ok(Then::Register(SessionId(id)))
    }

    /// A relay socket closed or failed: its connection is gone.
    async fn socket_gone(&self, ws: &WebSocket) {
        let then = self.disconnect(ws).unwrap_or_else(|e| {
            console_error!("session {}: disconnect failed: {e}", self.name());
            Then::Nothing
        });
        self.finish(then).await;
    }

    fn disconnect(&self, ws: &WebSocket) -> Result<Then> {
        let Ok(Some(attachment)) = ws.deserialize_attachment::<Attachment>() else {
            return Ok(Then::Nothing);
        };
        let mut live = self.live()?;
        if let Some(connection) = direct_connection(&attachment) {
            if let Some(direct) = live.directs.get_mut(&connection) {
                direct.player.handle_closed();
                direct.closed = true;
                live.direct_work.push(connection);
            }
        } else if let Some((player, connection)) = socket_of(&attachment) {
            live.sockets.remove(&player);
            if let Stored::Live(session) = &mut live.stored {
                let input = ToSession::Disconnect { player: connection };
                session.handle(now_ms(), input);
            }
        }
        live.settle()?;
        if live.sockets.is_empty() {
            // With no socket left the object may hibernate or be evicted soon: nothing is
            // left unwritten.
            live.flush()?;
        }
        Ok(Then::Nothing)
    }

    /// The asynchronous rest of every handler, with no borrow held: registering a new session;
    /// the alarm, set to the first away member's deadline (which removes it if it does not
    /// come back), or when the session has ended to have the registry forget it (an alarm is
    /// retried by the platform until it succeeds).
    async fn finish(&self, then: Then) {
        if let Then::Register(id) = then {
            // The registry is off the creator's path: its request is sent first (a Rust
            // future does nothing until polled: this poll sends it), then the outputs (the
            // rows, the sessionJoin) go out without waiting for its answer, which may come
            // from far away (a registry shard serves many sessions). A `joinSession -1` that
            // reaches the registry before the add finds the sessions before this one.
            let mut registering = Box::pin(self.register(id));
            let registered = poll_fn(|cx| Poll::Ready(registering.as_mut().poll(cx))).await;
            if let Err(e) = self.live().and_then(|mut live| live.settle().map(drop)) {
                console_error!(
                    "session {}: storing the new session failed: {e}",
                    self.name()
                );
            }
            let registered = match registered {
                Poll::Ready(result) => result,
                Poll::Pending => registering.await,
            };
            // Without the registry the session still works; only `joinSession -1` cannot
            // find it.
            if let Err(e) = registered {
                console_error!("session {}: {e}", self.name());
            }
        }
        self.send_listings();
        let (forget, deadline, alarm_at, flush) = match self.live.borrow_mut().as_mut() {
            Some(live) => {
                let deadline = match &live.stored {
                    Stored::Live(session) => session.poll_timeout(),
                    _ => None,
                };
                let flush = !live.pending.is_empty() && !live.flush_timer;
                live.flush_timer |= flush;
                let forget = std::mem::take(&mut live.forget);
                (forget, deadline, live.alarm_at, flush)
            }
            None => (false, None, None, false),
        };
        if flush {
            self.schedule_flush();
        }
        let storage = self.state.storage();
        let set = if forget {
            storage.set_alarm(0).await.map(|()| None)
        } else if deadline != alarm_at {
            match deadline {
                Some(at) => {
                    // Milliseconds since the epoch, as the deadlines are.
                    let date = worker::js_sys::Date::new(&(at as f64).into());
                    let set = storage.set_alarm(ScheduledTime::new(date)).await;
                    set.map(|()| Some(at))
                }
                None => storage.delete_alarm().await.map(|()| None),
            }
        } else {
            return;
        };
        match set {
            Ok(at) => {
                if let Some(live) = self.live.borrow_mut().as_mut() {
                    live.alarm_at = at;
                }
            }
            Err(e) => console_error!("session {}: setting the alarm failed: {e}", self.name()),
        }
    }

    /// Writes the playerData not written yet in [`persist::FLUSH_MS`] (a timer, not the alarm:
    /// it costs no storage operation, and wakes no object). While it runs the object does
    /// not hibernate (the platform hibernates an object only with nothing pending), so data
    /// is never left unwritten by hibernation; a reset or eviction of the object loses what
    /// the timer had not written yet.
    fn schedule_flush(&self) {
        let live = Rc::clone(&self.live);
        spawn_local(async move {
            loop {
                Delay::from(Duration::from_millis(persist::FLUSH_MS)).await;
                // Handlers hold no borrow across an await: it is free between events. Were
                // it not, the flush waits for another period.
                let Ok(mut slot) = live.try_borrow_mut() else {
                    continue;
                };
                // `None`: the memory was dropped (the test hook's reset), and the data with it.
                if let Some(live) = slot.as_mut() {
                    live.flush_timer = false;
                    live.timer_flushes = live.timer_flushes.saturating_add(1);
                    if let Err(e) = live.flush() {
                        // Still pending: the next event starts a timer again.
                        console_error!("writing playerData failed: {e}");
                    }
                }
                return;
            }
        });
    }

    /// Sends the registry (the shard where the session is) what `listSessions` shows of the
    /// session now, off every handler's path: a join's answer or a command's frames never
    /// wait for a registry that may be far away. One listing is on its way at a time, so
    /// they arrive in order; the latest one made meanwhile goes next, those before it are
    /// never sent. Eventually consistent: a failure leaves the registry's listing behind
    /// until the next change. While one is on its way the object does not hibernate.
    fn send_listings(&self) {
        {
            let mut slot = self.live.borrow_mut();
            let Some(live) = slot.as_mut() else { return };
            if live.listing_sent || live.listing.is_none() {
                return;
            }
            live.listing_sent = true;
        }
        let (live, env, id) = (Rc::clone(&self.live), self.env.clone(), self.name());
        spawn_local(async move {
            loop {
                // Handlers hold no borrow across an await: it is free between events.
                let next = match live.borrow_mut().as_mut() {
                    Some(l) => match l.listing.take() {
                        Some(listing) => Some((listing, l.store.registry_shard())),
                        None => {
                            l.listing_sent = false;
                            None
                        }
                    },
                    // The memory was dropped (the test hook's reset): the next load reports.
                    None => None,
                };
                let Some((listing, shard)) = next else { return };
                if let Err(e) = send_listing(&env, &id, &listing, shard).await {
                    console_error!("session {id}: updating its listing failed: {e}");
                }
            }
        });
    }

    /// Registers the new session `id` in its shard ([`crate::shard::shard_of`]; the store
    /// keeps the same shard with the session, [`Store::registry_shard`]).
    async fn register(&self, id: SessionId) -> Result<()> {
        let shard = crate::shard::shard_of(id, link::registry_shards(&self.env)?);
        let url = format!("https://registry/add?id={id}");
        let (env, url) = (&self.env, url.as_str());
        let code = link::retrying("registering the session", move || async move {
            link::registry_stub(env, shard)?.fetch_with_str(url).await
        })
        .await?
        .status_code();
        match code {
            200 => Ok(()),
            code => Err(worker::Error::RustError(format!(
                "registry answered {code} to add {id}"
            ))),
        }
    }
}

impl Live {
    /// A direct socket and its player.
    fn add_direct(&mut self, ws: WebSocket, player: Player, create: bool) {
        let connection = player.connection();
        let direct = Direct {
            saved: (player.id(), player.session(), player.features()),
            ws,
            player,
            create,
            closed: false,
        };
        self.direct_ids.insert(connection, connection);
        self.direct_ids.insert(direct.player.id(), connection);
        if direct.player.session().is_some() {
            self.sockets.insert(direct.player.id(), direct.ws.clone());
        }
        self.directs.insert(connection, direct);
    }

    /// What the handler does after its synchronous part: a session a direct player created
    /// is registered.
    fn then(&mut self) -> Then {
        match self.register.take() {
            Some(id) => Then::Register(id),
            None => Then::Nothing,
        }
    }

    /// [`Live::drain`], and everything it leads to for the direct players: the session's
    /// events fed to their machines, their outputs applied ([`Live::pump`]), which may give
    /// the session more to drain, until nothing is left; then the attachments of the direct
    /// players whose state changed are written.
    fn settle(&mut self) -> Result<Unsent> {
        let mut failed = None;
        let mut unsent = self.drain().unwrap_or_else(|e| {
            failed = Some(e);
            Unsent::default()
        });
        let mut touched = Vec::new();
        loop {
            let mut work = std::mem::take(&mut self.direct_work);
            for (to, event) in std::mem::take(&mut self.direct_events) {
                let Some(connection) = self.direct_ids.get(&to).copied() else {
                    continue;
                };
                if matches!(
                    event,
                    ToPlayer::Left | ToPlayer::JoinRefused | ToPlayer::ResumeRefused
                ) {
                    // Not (or no more) a member: its socket stays, in the lobby.
                    self.sockets.remove(&to);
                }
                if let Some(direct) = self.directs.get_mut(&connection) {
                    direct.player.handle_from_session(event);
                }
                work.push(connection);
            }
            if work.is_empty() {
                break;
            }
            for connection in work {
                self.pump(connection);
                touched.push(connection);
            }
            match self.drain() {
                Ok(more) => {
                    unsent.frames.extend(more.frames);
                    unsent.events.extend(more.events);
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        for connection in touched {
            let Some(direct) = self.directs.get_mut(&connection) else {
                continue;
            };
            if direct.state() != direct.saved {
                direct.saved = direct.state();
                if let Err(e) = direct.ws.serialize_attachment(direct.attachment()) {
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(unsent),
        }
    }

    /// Applies a direct player's outputs: frames to its socket, its commands to the session,
    /// and the lobby's rules for this one session: a create only on `/session/new` while the
    /// object is vacant, a join or resume only of this session; anything else is error 34.
    /// A player whose connection is gone is dropped.
    fn pump(&mut self, connection: PlayerId) {
        let Live {
            directs,
            direct_ids,
            sockets,
            stored,
            limits,
            here,
            register,
            ..
        } = self;
        let here = *here;
        let Some(direct) = directs.get_mut(&connection) else {
            return;
        };
        // (A direct socket closed by the session: its client was replaced, `drain`.)
        if !direct.closed && !direct_ids.contains_key(&connection) {
            direct.player.handle_closed();
            direct.closed = true;
        }
        while let Some(output) = direct.player.poll_output() {
            match output {
                PlayerOutput::Send(frame) => {
                    let _ = direct.ws.send_with_str(frame.as_str());
                }
                PlayerOutput::Pong(t) => {
                    let frame = sessionserver_core::reply::pong(t.as_deref(), now_ms());
                    let _ = direct.ws.send_with_str(frame.as_str());
                }
                // Never asked for: `handle_timeout` is not called (as on the relay).
                PlayerOutput::Ping => {}
                PlayerOutput::ListSessions(_) => direct.player.answer_list_elsewhere(here),
                PlayerOutput::Create(request) => match (here, &*stored) {
                    (Some(id), Stored::Vacant) if direct.create => {
                        let private = request.options.private;
                        sockets.insert(request.player, direct.ws.clone());
                        let session = Session::create_seeded(id, *request, *limits, link::seed());
                        *stored = Stored::Live(session);
                        if !private {
                            // Never what `-1` finds if private: the registry does not hear of it.
                            *register = Some(id);
                        }
                    }
                    _ => direct.player.handle_other_session(here),
                },
                PlayerOutput::Join {
                    target: JoinTarget::Id(id),
                    input,
                    ..
                } if here.is_some_and(|here| here.0 == id) => match stored {
                    Stored::Live(session) => {
                        let joiner = match &input {
                            ToSession::Join { player, .. } | ToSession::Resume { player, .. } => {
                                *player
                            }
                            _ => connection,
                        };
                        if session.contains(joiner) {
                            // Two random player IDs met (p ≈ members / 2^53): the session
                            // would take the join for the member's. Dropped without a
                            // disconnect, which would be the member's.
                            retire(&direct.ws, close::TRY_AGAIN, "try again");
                            direct.closed = true;
                            break;
                        }
                        sockets.insert(joiner, direct.ws.clone());
                        session.handle(now_ms(), input);
                    }
                    _ => direct.player.handle_no_such_session(),
                },
                PlayerOutput::Join { .. } | PlayerOutput::JoinOrCreate(_) => {
                    direct.player.handle_other_session(here);
                }
                PlayerOutput::ToSession(input) => match stored {
                    Stored::Live(session) => session.handle(now_ms(), input),
                    _ => {
                        if let Some(here) = here {
                            direct.player.handle_session_gone(here);
                        }
                    }
                },
                PlayerOutput::Close(reason) => {
                    retire(&direct.ws, reason.code(), reason.text());
                    direct.player.handle_closed();
                    direct.closed = true;
                }
            }
        }
        if direct.closed {
            let member = direct.player.id();
            let ws = direct.ws.clone();
            directs.remove(&connection);
            direct_ids.retain(|_, c| *c != connection);
            // Unless the member is another connection's now (a resume replaced this one).
            let own: &worker::web_sys::WebSocket = ws.as_ref();
            if sockets.get(&member).is_some_and(|w| {
                let theirs: &worker::web_sys::WebSocket = w.as_ref();
                theirs == own
            }) {
                sockets.remove(&member);
            }
        }
    }

    /// Writes the playerData not written yet ([`persist::flush`]).
    fn flush(&mut self) -> Result<()> {
        let Live {
            store,
            stored,
            pending,
            ..
        } = self;
        match stored {
            Stored::Live(session) => {
                persist::flush(session, store, pending)?;
            }
            _ => pending.clear(),
        }
        Ok(())
    }

    /// Away members whose grace period is over leave (`playerLeave` to the others).
    fn expire(&mut self) -> Result<()> {
        let Stored::Live(session) = &mut self.stored else {
            return Ok(());
        };
        let now = now_ms();
        if session.poll_timeout().is_some_and(|at| at <= now) {
            let before = session.len();
            session.handle_timeout(now);
            let left = before - session.len();
            console_log!(
                "session {}: {left} member(s) left at the end of their grace period",
                session.id()
            );
            self.settle()?;
        }
        Ok(())
    }

    /// Applies everything the session has output, in order: frames to the recipients' sockets
    /// (a broadcast to the members listed now), events onto the relays' links, changes to
    /// storage, and the end. Returns what was meant for players with no socket here.
    ///
    /// A socket that cannot take a frame is failing; its close event removes the player. A
    /// failed write is reported once everything else is applied.
    fn drain(&mut self) -> Result<Unsent> {
        let mut unsent = Unsent::default();
        let Live {
            store,
            stored,
            sockets,
            forget,
            pending,
            listing: listed,
            direct_ids,
            direct_events,
            direct_work,
            ..
        } = self;
        let Stored::Live(session) = stored else {
            return Ok(unsent);
        };
        let mut failed = None;
        let mut ended = false;
        while let Some(output) = session.poll_output() {
            match output {
                // Sent to the registry by `finish`, the latest only.
                Output::Listing(listing) => *listed = Some(*listing),
                Output::Pong { to, t } => {
                    let frame = sessionserver_core::reply::pong(t.as_deref(), now_ms());
                    match sockets.get(&to) {
                        Some(ws) => {
                            let _ = ws.send_with_str(frame.as_str());
                        }
                        None => unsent.frames.push((to, frame)),
                    }
                }
                Output::Send { to, frame } => match sockets.get(&to) {
                    Some(ws) => {
                        let _ = ws.send_with_str(frame.as_str());
                    }
                    None => unsent.frames.push((to, frame)),
                },
                // The runtime buffers what a socket has not sent (it shows no backlog), so the
                // burst goes out at once, a frame at a time.
                Output::SendJoinBurst { to, burst } => match sockets.get(&to) {
                    Some(ws) => {
                        for frame in burst {
                            let _ = ws.send_with_str(frame.as_str());
                        }
                    }
                    None => unsent.frames.extend(burst.map(|frame| (to, frame))),
                },
                Output::Broadcast { frame, except } => {
                    for to in session.member_ids().filter(|&p| Some(p) != except) {
                        if let Some(ws) = sockets.get(&to) {
                            let _ = ws.send_with_str(frame.as_str());
                        }
                    }
                }
                // For a direct player's machine: fed by `settle`, after this drain.
                Output::ToPlayer { to, event } if direct_ids.contains_key(&to) => {
                    direct_events.push((to, event));
                }
                Output::ToPlayer { to, event } => match (event, sockets.get(&to)) {
                    (ToPlayer::Joined { .. }, Some(ws)) => {
                        let _ = ws.send_with_bytes(wire::JOINED);
                    }
                    (ToPlayer::Left, Some(ws)) => {
                        retire(ws, close::LEFT, "left the session");
                        sockets.remove(&to);
                    }
                    // The socket stays until the relay closes it (Output::Release).
                    (ToPlayer::Kicked { .. }, Some(ws)) => {
                        let _ = ws.send_with_bytes(wire::KICKED);
                    }
                    _ => unsent.events.push((to, event)),
                },
                Output::Changed(change) => {
                    if let Err(e) = persist::store(change, session, store, pending) {
                        failed.get_or_insert(e);
                    }
                }
                // Its socket closed: that is how the session heard of it.
                Output::Away { player } | Output::Release { player } => {
                    sockets.remove(&player);
                }
                // Its seat was resumed on another connection while this socket still seemed
                // open: the socket is closed, and its relay closes its client (4003).
                // A direct one's client is closed with 4003 here, its player's connection gone.
                Output::Replaced { player } => {
                    if let Some(ws) = sockets.remove(&player) {
                        match direct_ids.get(&player).copied() {
                            Some(connection) => {
                                let reason = sessionserver_core::CloseReason::Replaced;
                                retire(&ws, reason.code(), reason.text());
                                direct_ids.retain(|_, c| *c != connection);
                                direct_work.push(connection);
                            }
                            None => retire(&ws, close::REPLACED, "resumed on another connection"),
                        }
                    }
                }
                // A relay's resumed member's socket is accepted by `open` after the drain,
                // under the member's ID. A direct one's socket is the member's from now on.
                Output::Rebind { from, to } => {
                    if let Some(connection) = direct_ids.get(&from).copied() {
                        direct_ids.insert(to, connection);
                        if let Some(ws) = sockets.remove(&from) {
                            sockets.insert(to, ws);
                        }
                    }
                }
                Output::Ended => ended = true,
            }
        }
        if ended {
            if let Err(e) = store.end() {
                failed.get_or_insert(e);
            }
            *stored = Stored::Ended(session.id());
            pending.clear();
            sockets.clear();
            *forget = true;
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(unsent),
        }
    }
}

/// The member a socket speaks for, and the connection it is (by its attachment).
fn socket_of(attachment: &Attachment) -> Option<(PlayerId, PlayerId)> {
    let player = attachment.player?;
    let connection = attachment.connection.unwrap_or(player);
    Some((PlayerId(player), PlayerId(connection)))
}

/// The connection of a direct socket (by its attachment); `None` for a relay's.
fn direct_connection(attachment: &Attachment) -> Option<PlayerId> {
    attachment
        .direct
        .then_some(attachment.connection)
        .flatten()
        .map(PlayerId)
}

/// Closes a socket that no longer speaks for its player, so that its close event changes
/// nothing (the player may already be back on a new socket).
fn retire(ws: &WebSocket, code: u16, reason: &str) {
    let _ = ws.serialize_attachment(Attachment {
        player: None,
        connection: None,
        resume: false,
        host: false,
        messages: false,
        subject: None,
        direct: false,
        create: false,
    });
    let _ = ws.close(Some(code), Some(reason));
}

/// Tells registry shard `shard` what `listSessions` shows of session `id` now.
async fn send_listing(
    env: &Env,
    id: &str,
    listing: &sessionserver_core::Listing,
    shard: u32,
) -> Result<()> {
    let url = format!("https://registry/listing?id={id}");
    let body = listing.encode();
    let code = link::registry_post(env, shard, &url, &body, "updating the listing")
        .await?
        .status_code();
    match code {
        200 => Ok(()),
        code => Err(worker::Error::RustError(format!(
            "registry answered {code} to a listing"
        ))),
    }
}
