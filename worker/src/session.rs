//! [`SessionObject`]: the Durable Object of one session, named by its ID. It feeds the core's
//! [`Session`] what its relays send ([`ToSession`]) and applies what the session outputs:
//! frames to the members' sockets, events for the players' machines onto the relays' links
//! ([`crate::wire`]), and what changed to SQLite ([`crate::store`], through
//! [`crate::persist::store`]).
//!
//! Each member is one socket from its relay, accepted with the Hibernation API, with the
//! member's player ID in the socket's attachment. Memory is only a cache: after every start or
//! wake the first event reads the session back from storage and finds each member's socket by
//! its attachment.

use std::cell::{RefCell, RefMut};
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sessionserver_core::{
    command, Command, CreateRequest, Output, PlayerId, ServerFrame, Session, SessionId, ToPlayer,
    ToSession,
};
use worker::{
    console_error, console_log, durable_object, DurableObject, Env, Request, Response, Result,
    State, WebSocket, WebSocketIncomingMessage, WebSocketPair,
};

use crate::link::{self, close, status, Op};
use crate::persist;
use crate::store::{Store, Stored};
use crate::wire;

/// Milliseconds on the platform's clock, for the session's egress budgets.
fn now_ms() -> u64 {
    worker::js_sys::Date::now() as u64
}

/// A socket's attachment: the state of one socket that must survive hibernation.
#[derive(Serialize, Deserialize)]
struct Attachment {
    /// The player this socket speaks for; `None` once it left (the socket is closing).
    player: Option<u64>,
}

/// The session object.
#[durable_object]
pub struct SessionObject {
    state: State,
    env: Env,
    /// `None` after a start or wake, until an event loads it.
    live: RefCell<Option<Live>>,
}

struct Live {
    store: Store,
    stored: Stored,
    /// Each member's socket.
    sockets: HashMap<PlayerId, WebSocket>,
    /// The session just ended: the registry must forget it (see [`SessionObject::finish`]).
    forget: bool,
}

/// What a drain leaves for its handler: what was meant for players with no socket here (a
/// joiner, whose socket is only accepted once the session has answered its join).
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
    /// The session was just created: register it, then drain its outputs (its `sessionJoin`).
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
            live: RefCell::new(None),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let Some((op, player)) = Op::parse(&req) else {
            return Response::error("not a session request", 400);
        };
        let response = self.open(op, PlayerId(player)).or_else(|e| {
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
        let text = match message {
            WebSocketIncomingMessage::String(text) => text,
            WebSocketIncomingMessage::Binary(reply) => {
                // A reply the relay made (or its empty marker): back in order (see `wire`).
                let _ = ws.send_with_str(String::from_utf8_lossy(&reply));
                return Ok(());
            }
        };
        let then = self.message(&ws, &text).unwrap_or_else(|e| {
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
        _code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
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
        // Set when the session ended. An error makes the platform retry the alarm.
        let ended = matches!(self.live()?.stored, Stored::Ended);
        if ended {
            let id = self.name();
            let url = format!("https://registry/remove?id={id}");
            let response = link::registry_stub(&self.env)?.fetch_with_str(&url).await?;
            if response.status_code() != 200 {
                return Err(worker::Error::RustError(format!(
                    "registry answered {} to remove {id}",
                    response.status_code()
                )));
            }
        }
        Response::ok("")
    }
}

impl SessionObject {
    fn name(&self) -> String {
        self.state.id().name().unwrap_or_default()
    }

    /// The in-memory state, read from storage first if this is a fresh start or wake.
    fn live(&self) -> Result<RefMut<'_, Live>> {
        let mut slot = self.live.borrow_mut();
        if slot.is_none() {
            *slot = Some(self.load()?);
        }
        Ok(RefMut::map(slot, |slot| {
            slot.as_mut().expect("filled just above")
        }))
    }

    fn load(&self) -> Result<Live> {
        let store = Store::open(&self.state);
        let stored = store.load()?;
        let mut sockets = HashMap::new();
        for ws in self.state.get_websockets() {
            if let Some(player) = player_of(&ws) {
                sockets.insert(player, ws);
            }
        }
        let mut live = Live {
            store,
            stored,
            sockets,
            forget: false,
        };
        // A member whose socket is gone while the object was not running (a restart rather
        // than hibernation) has disconnected: the session hears it now.
        if let Stored::Live(session) = &mut live.stored {
            let orphans: Vec<PlayerId> = session
                .member_ids()
                .filter(|p| !live.sockets.contains_key(p))
                .collect();
            for player in orphans {
                session.handle(now_ms(), ToSession::Disconnect { player });
            }
        }
        live.drain()?;
        Ok(live)
    }

    /// A relay asks for a socket: to create the session on it, or to join.
    fn open(&self, op: Op, player: PlayerId) -> Result<Response> {
        let mut live = self.live()?;
        let live = &mut *live;
        match (op, &mut live.stored) {
            (Op::Join, Stored::Live(session)) => {
                if session.contains(player) {
                    // Two random player IDs met (p ≈ members / 2^53): the session would take
                    // the join for the member's.
                    return Response::error("player ID already in the session", status::CONFLICT);
                }
                session.handle(
                    now_ms(),
                    ToSession::Join {
                        player,
                        // This host offers no extension yet (see the relay).
                        features: sessionserver_core::Features::NONE,
                    },
                );
                let unsent = live.drain()?;
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
                let pair = match self.accept(player) {
                    Ok(pair) => pair,
                    Err(e) => {
                        // The player never gets its socket: it is gone for the session.
                        if let Stored::Live(session) = &mut live.stored {
                            session.handle(now_ms(), ToSession::Disconnect { player });
                        }
                        live.drain()?;
                        return Err(e);
                    }
                };
                // Sent before the 101 is returned: they wait on the socket for the relay.
                for frame in unsent.frames_for(player) {
                    let _ = pair.server.send_with_str(frame);
                }
                live.sockets.insert(player, pair.server);
                Response::from_websocket(pair.client)
            }
            (Op::Join, _) => Response::error("no such session", status::NOT_FOUND),
            (Op::Create, Stored::Vacant) => {
                // The session is created when the create arrives on this socket.
                let pair = self.accept(player)?;
                Response::from_websocket(pair.client)
            }
            (Op::Create, _) => Response::error("session ID taken", status::CONFLICT),
        }
    }

    /// A new hibernatable socket speaking for `player`.
    fn accept(&self, player: PlayerId) -> Result<WebSocketPair> {
        let pair = WebSocketPair::new()?;
        // Not `State::accept_web_socket`: it panics where the platform refuses a socket.
        self.state
            .as_raw()
            .accept_websocket(pair.server.as_ref())
            .map_err(worker::Error::from)?;
        pair.server.serialize_attachment(Attachment {
            player: Some(player.0),
        })?;
        Ok(pair)
    }

    /// A text message from a relay socket: a command of its player (see `wire`).
    fn message(&self, ws: &WebSocket, text: &str) -> Result<Then> {
        let Some(player) = player_of(ws) else {
            return Ok(Then::Nothing);
        };
        let command = command::parse(text, &link::limits());
        let mut live = self.live()?;
        let live = &mut *live;
        match &mut live.stored {
            Stored::Live(session) if live.sockets.contains_key(&player) => {
                session.handle(now_ms(), ToSession::Command { player, command });
                live.drain()?;
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
        let Ok(Command::CreateSession(format)) = command else {
            retire(ws, close::INTERNAL, "expected createSession");
            return Ok(Then::Nothing);
        };
        let id: u64 = self
            .name()
            .parse()
            .map_err(|_| worker::Error::RustError("object name is no session ID".into()))?;
        let request = CreateRequest {
            player,
            format: *format,
            features: sessionserver_core::Features::NONE,
        };
        let session = Session::create(SessionId(id), request, link::limits());
        live.sockets.insert(player, ws.clone());
        live.stored = Stored::Live(session);
        // Its outputs (the rows, the sessionJoin) wait until the registry knows the session
        // (see `finish`), so that a `joinSession -1` after the sessionJoin finds it.
        Ok(Then::Register(SessionId(id)))
    }

    /// A relay socket closed or failed: its player is gone.
    async fn socket_gone(&self, ws: &WebSocket) {
        let then = self.disconnect(ws).unwrap_or_else(|e| {
            console_error!("session {}: disconnect failed: {e}", self.name());
            Then::Nothing
        });
        self.finish(then).await;
    }

    fn disconnect(&self, ws: &WebSocket) -> Result<Then> {
        let Some(player) = player_of(ws) else {
            return Ok(Then::Nothing);
        };
        let mut live = self.live()?;
        live.sockets.remove(&player);
        if let Stored::Live(session) = &mut live.stored {
            session.handle(now_ms(), ToSession::Disconnect { player });
        }
        live.drain()?;
        Ok(Then::Nothing)
    }

    /// The asynchronous rest of every handler, with no borrow held: registering a new session,
    /// and when the session has ended, the alarm that has the registry forget it (an alarm is
    /// retried by the platform until it succeeds).
    async fn finish(&self, then: Then) {
        if let Then::Register(id) = then {
            if let Err(e) = self.register(id).await {
                console_error!("session {}: {e}", self.name());
            }
            // The outputs go out either way: without the registry the session still works,
            // only `joinSession -1` cannot find it.
            if let Err(e) = self.live().and_then(|mut live| live.drain().map(drop)) {
                console_error!(
                    "session {}: storing the new session failed: {e}",
                    self.name()
                );
            }
        }
        let forget = match self.live.borrow_mut().as_mut() {
            Some(live) => std::mem::take(&mut live.forget),
            None => false,
        };
        if forget {
            if let Err(e) = self.state.storage().set_alarm(0).await {
                console_error!("session {}: setting the alarm failed: {e}", self.name());
            }
        }
    }

    async fn register(&self, id: SessionId) -> Result<()> {
        let url = format!("https://registry/add?id={id}");
        let code = link::registry_stub(&self.env)?
            .fetch_with_str(&url)
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
        } = self;
        let Stored::Live(session) = stored else {
            return Ok(unsent);
        };
        let mut failed = None;
        let mut ended = false;
        while let Some(output) = session.poll_output() {
            match output {
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
                Output::ToPlayer { to, event } => match (event, sockets.get(&to)) {
                    (ToPlayer::Joined { .. }, Some(ws)) => {
                        let _ = ws.send_with_bytes(wire::JOINED);
                    }
                    (ToPlayer::Left, Some(ws)) => {
                        retire(ws, close::LEFT, "left the session");
                        sockets.remove(&to);
                    }
                    _ => unsent.events.push((to, event)),
                },
                Output::Changed(change) => {
                    if let Err(e) = persist::store(change, session, store) {
                        failed.get_or_insert(e);
                    }
                }
                // No member of this host asks for resume (no token is issued): nobody is away
                // and nothing is rebound.
                Output::Rebind { .. } | Output::Away { .. } | Output::Replaced { .. } => {}
                Output::Ended => ended = true,
            }
        }
        if ended {
            if let Err(e) = store.end() {
                failed.get_or_insert(e);
            }
            *stored = Stored::Ended;
            sockets.clear();
            *forget = true;
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(unsent),
        }
    }
}

fn player_of(ws: &WebSocket) -> Option<PlayerId> {
    match ws.deserialize_attachment::<Attachment>() {
        Ok(Some(Attachment {
            player: Some(player),
        })) => Some(PlayerId(player)),
        _ => None,
    }
}

/// Closes a socket that no longer speaks for its player, so that its close event changes
/// nothing (the player may already be back on a new socket).
fn retire(ws: &WebSocket, code: u16, reason: &str) {
    let _ = ws.serialize_attachment(Attachment { player: None });
    let _ = ws.close(Some(code), Some(reason));
}
