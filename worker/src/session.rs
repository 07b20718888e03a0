//! [`SessionObject`]: the Durable Object of one session, named by its ID. Routing and glue:
//! relay sockets in, the core's [`Session`] in the middle, SQLite ([`crate::store`]) underneath.
//!
//! Each member is one socket from its relay, accepted with the Hibernation API, with the
//! member's player ID in the socket's attachment. Memory is only a cache: after every start or
//! wake the first event reads the session back from storage and finds each member's socket by
//! its attachment.

use std::cell::{RefCell, RefMut};
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sessionserver_core::{
    command, Command, Frame, Membership, Output, PlayerId, Rejection, Session, SessionId,
};
use worker::{
    console_error, console_log, durable_object, DurableObject, Env, Request, Response, Result,
    State, WebSocket, WebSocketIncomingMessage, WebSocketPair,
};

use crate::link::{self, close, status, Op};
use crate::store::{Store, Stored};

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

/// What a handler still has to do after its synchronous part (which holds the `RefCell`).
#[must_use]
enum Then {
    Nothing,
    /// The session was just created: register it, then send its `sessionJoin`.
    Register(SessionId),
}

/// Which stored rows a command can change.
enum Change {
    None,
    Format,
    Player,
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
        let command = match message {
            WebSocketIncomingMessage::String(text) => command::parse(&text, &link::limits()),
            WebSocketIncomingMessage::Binary(reply) => {
                // A reply the relay made (or its empty marker): back in order (see `link`).
                let _ = ws.send_with_str(String::from_utf8_lossy(&reply));
                return Ok(());
            }
        };
        let then = self.command(&ws, command).unwrap_or_else(|e| {
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
        let mut stored = store.load()?;
        let mut sockets = HashMap::new();
        for ws in self.state.get_websockets() {
            if let Some(player) = player_of(&ws) {
                sockets.insert(player, ws);
            }
        }
        // A member whose socket is gone while the object was not running (a restart rather
        // than hibernation) has left: the others are told now.
        if let Stored::Live(session) = &mut stored {
            let orphans: Vec<PlayerId> = session
                .members()
                .map(|(p, _)| p)
                .filter(|p| !sockets.contains_key(p))
                .collect();
            for player in orphans {
                session.remove(player);
                store.remove_member(player)?;
            }
        }
        let mut live = Live {
            store,
            stored,
            sockets,
            forget: false,
        };
        live.after_change()?;
        Ok(live)
    }

    /// A relay asks for a socket: to create the session on it, or to join.
    fn open(&self, op: Op, player: PlayerId) -> Result<Response> {
        let mut live = self.live()?;
        let live = &mut *live;
        match (op, &mut live.stored) {
            (Op::Join, Stored::Live(session)) => {
                if session.contains(player) {
                    return Response::error("player ID already in the session", status::CONFLICT);
                }
                if !session.join(player) {
                    // Full: the core queued error 16 for the player, who has no socket here.
                    let reply = live.deliver().into_iter().find(|(to, _)| *to == player);
                    let body = reply.map(|(_, frame)| frame.as_str().to_owned());
                    return Ok(
                        Response::ok(body.unwrap_or_default())?.with_status(status::ANSWERED)
                    );
                }
                let pair = match self.accept(player) {
                    Ok(pair) => pair,
                    Err(e) => {
                        // The others have not been told yet: the join and this leave go out
                        // together.
                        session.remove(player);
                        live.deliver();
                        return Err(e);
                    }
                };
                live.store.add_member(player)?;
                live.sockets.insert(player, pair.server);
                live.deliver();
                Response::from_websocket(pair.client)
            }
            (Op::Join, _) => Response::error("no such session", status::NOT_FOUND),
            (Op::Create, Stored::Vacant) => {
                // The session is created when the createSession frame arrives on this socket.
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

    /// A frame from a relay socket.
    fn command(&self, ws: &WebSocket, command: Result<Command, Rejection>) -> Result<Then> {
        let Some(player) = player_of(ws) else {
            return Ok(Then::Nothing);
        };
        let mut live = self.live()?;
        let live = &mut *live;
        let session = match &mut live.stored {
            Stored::Live(session) if live.sockets.contains_key(&player) => session,
            Stored::Vacant => return self.create(live, ws, player, command),
            _ => {
                // Not a member: a socket opened to create, and another create came first.
                retire(ws, close::TAKEN, "session ID taken");
                return Ok(Then::Nothing);
            }
        };
        let change = match &command {
            Ok(Command::UpdateSession(_)) => Change::Format,
            Ok(Command::UpdatePlayer(_)) => Change::Player,
            _ => Change::None,
        };
        let membership = session.handle_command(player, command);
        match (membership, change) {
            (Membership::Left, _) => live.store.remove_member(player)?,
            (_, Change::Format) => live.store.save_format(session)?,
            (_, Change::Player) => live
                .store
                .save_player(player, session.stored_player_data(player))?,
            (_, Change::None) => {}
        }
        live.deliver();
        if membership == Membership::Left {
            live.sockets.remove(&player);
            retire(ws, close::LEFT, "left the session");
        }
        live.after_change()?;
        Ok(Then::Nothing)
    }

    /// The first frame on a socket opened with [`Op::Create`].
    fn create(
        &self,
        live: &mut Live,
        ws: &WebSocket,
        player: PlayerId,
        command: Result<Command, Rejection>,
    ) -> Result<Then> {
        let Ok(Command::CreateSession(format)) = command else {
            retire(ws, close::INTERNAL, "expected createSession");
            return Ok(Then::Nothing);
        };
        let id: u64 = self
            .name()
            .parse()
            .map_err(|_| worker::Error::RustError("object name is no session ID".into()))?;
        let session = Session::new(SessionId(id), format, player, link::limits());
        live.store.create(&session)?;
        live.sockets.insert(player, ws.clone());
        live.stored = Stored::Live(session);
        // The sessionJoin waits until the registry knows the session (see `finish`), so that
        // a `joinSession -1` after it finds this session.
        Ok(Then::Register(SessionId(id)))
    }

    /// A relay socket closed or failed: its player has left.
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
        let live = &mut *live;
        live.sockets.remove(&player);
        if let Stored::Live(session) = &mut live.stored {
            if session.remove(player) {
                live.store.remove_member(player)?;
            }
        }
        live.deliver();
        live.after_change()?;
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
        let registered = match link::registry_stub(&self.env) {
            Ok(stub) => stub.fetch_with_str(&url).await.map(|r| r.status_code()),
            Err(e) => Err(e),
        };
        // The sessionJoin goes out either way: without the registry the session still works,
        // only `joinSession -1` cannot find it.
        if let Ok(mut live) = self.live() {
            live.deliver();
        }
        match registered {
            Ok(200) => Ok(()),
            Ok(code) => Err(worker::Error::RustError(format!(
                "registry answered {code} to add {id}"
            ))),
            Err(e) => Err(e),
        }
    }
}

impl Live {
    /// Sends every frame the session has queued to its recipient's socket, and returns those
    /// whose recipient has no socket here. A socket that cannot take a frame is failing; its
    /// close event removes the player.
    fn deliver(&mut self) -> Vec<(PlayerId, Frame)> {
        let mut undelivered = Vec::new();
        let Stored::Live(session) = &mut self.stored else {
            return undelivered;
        };
        while let Some(Output::Send { to, frame }) = session.poll_output() {
            match self.sockets.get(&to) {
                Some(ws) => {
                    let _ = ws.send_with_str(frame.as_str());
                }
                None => undelivered.push((to, frame)),
            }
        }
        undelivered
    }

    /// Ends the session if its last member is gone.
    fn after_change(&mut self) -> Result<()> {
        if matches!(&self.stored, Stored::Live(session) if session.is_empty()) {
            self.store.end()?;
            self.stored = Stored::Ended;
            self.forget = true;
        }
        Ok(())
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
