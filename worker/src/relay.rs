//! The Worker: one client connection is one player, and the Worker is its relay.
//!
//! In the lobby the relay answers with `core::lobby` itself. `createSession` and `joinSession`
//! open a socket from the relay to the session's object (one subrequest); from then on every
//! client frame goes to the object as it is and every frame from the object goes to the client.
//! `leaveSession` is forwarded and the relay reads nothing more from the client until the
//! object has sent `sessionLeave` and closed that socket ([`close::LEFT`]): replies stay in the
//! order of the commands, as on the native host.

use futures_channel::mpsc::{unbounded, UnboundedReceiver};
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use sessionserver_core::ids::MAX_ID;
use sessionserver_core::{
    command, lobby, Admission, CloseReason, Command, Connection, ErrorCode, JoinTarget,
    LobbyAction, PlayerId, Rejection,
};
use worker::wasm_bindgen_futures::spawn_local;
use worker::{
    console_error, Env, Headers, Request, Response, Result, WebSocket, WebSocketPair,
    WebsocketEvent,
};

use crate::link::{self, close, status, Op, MAX_FRAME};

/// Session IDs drawn for one `createSession` before giving up. A draw collides with a used ID
/// with probability (sessions ever created) / 2^53, so a second draw is already rare.
const CREATE_ATTEMPTS: usize = 8;

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
            _ => Response::error(
                "Not found. WebSocket clients connect on any path (wss://host/).\n",
                404,
            ),
        };
    }
    let player = PlayerId(link::random_id()?);
    let pair = WebSocketPair::new()?;
    let relay = Relay {
        from_client: pump(pair.server.clone()),
        client: pair.server,
        player,
        guard: Connection::new(link::connection_config(), now_ms()),
        env,
        link: None,
    };
    spawn_local(relay.run());
    Response::from_websocket(pair.client)
}

const INDEX_HTML: &str = include_str!("../../native/assets/index.html");
const DEMO_JS: &str = include_str!("../../native/assets/demo.js");
const CLIENT_JS: &str = include_str!("../../clients/js/sessionserver.js");

fn asset(body: &'static str, content_type: &str) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", content_type)?;
    Ok(Response::ok(body)?.with_headers(headers))
}

/// Milliseconds for the core's rate limit. (In a Worker the clock advances between I/O
/// events, which is when frames arrive.)
fn now_ms() -> u64 {
    worker::js_sys::Date::now() as u64
}

/// Something that arrived on a socket.
enum Inbound {
    Text(String),
    /// A binary message; its bytes do not matter (the protocol is text only).
    Binary,
    /// The socket closed (with this code) or failed (1006).
    Closed(u16),
}

/// Something that arrived on either of a relay's sockets.
enum Event {
    Client(Inbound),
    Session(Inbound),
}

/// Why a connection ends.
enum End {
    /// The client closed (with this code), or its connection failed (1006).
    ClientClosed(u16),
    /// A rule of the core: 1009 for a frame larger than [`MAX_FRAME`], 1008 for a client that
    /// kept sending past its rate limit.
    Closed(CloseReason),
    /// The session's object closed the relay's socket or could not be reached.
    SessionLost,
    /// A draw of IDs collided beyond retrying, or a platform limit per connection was hit.
    TryAgain(&'static str),
    /// A platform call failed.
    Failed(worker::Error),
}

impl From<worker::Error> for End {
    fn from(e: worker::Error) -> Self {
        End::Failed(e)
    }
}

/// The relay's socket to the session object of the player's session.
struct Link {
    ws: WebSocket,
    rx: UnboundedReceiver<Inbound>,
}

impl Link {
    fn new(ws: WebSocket) -> Link {
        Link {
            rx: pump(ws.clone()),
            ws,
        }
    }
}

impl Drop for Link {
    /// Closing the relay's socket makes the object remove the player (`playerLeave` to the
    /// others); after a leave it completes the close the object started.
    fn drop(&mut self) {
        let _ = self.ws.close(Some(close::NORMAL), Some("player gone"));
    }
}

/// A session object's answer to [`Relay::open`].
enum Opened {
    Link(Link),
    NotFound,
    Conflict,
    /// No socket: this frame is the answer (a full session's error 16).
    Answered(String),
}

/// One client connection: one player.
struct Relay {
    env: Env,
    player: PlayerId,
    client: WebSocket,
    from_client: UnboundedReceiver<Inbound>,
    /// The core's rate limit for this connection.
    guard: Connection,
    /// The player's session, if it is in one.
    link: Option<Link>,
}

impl Relay {
    async fn run(mut self) {
        let end = loop {
            let step = match self.next().await {
                Event::Client(Inbound::Text(text)) if text.len() > MAX_FRAME => {
                    Err(End::Closed(CloseReason::TooBig))
                }
                Event::Client(Inbound::Text(text)) => {
                    let parsed = command::parse(&text, &link::limits());
                    self.admit(Some(&text), parsed).await
                }
                Event::Client(Inbound::Binary) => {
                    self.admit(None, Err(Rejection::binary_frame())).await
                }
                Event::Client(Inbound::Closed(code)) => Err(End::ClientClosed(code)),
                Event::Session(Inbound::Text(frame)) => {
                    self.send(&frame);
                    Ok(())
                }
                Event::Session(Inbound::Binary) => Ok(()),
                Event::Session(Inbound::Closed(_)) => Err(End::SessionLost),
            };
            if let Err(end) = step {
                break end;
            }
        };
        if let End::Closed(_) = end {
            // Like the native host, the client gets the replies to everything it sent before
            // the close.
            self.drain().await;
        }
        // Leaves the session, if any.
        self.link = None;
        let (code, reason) = match &end {
            // Nothing to answer on a lost connection (closing it would only raise an error).
            End::ClientClosed(close::LOST) => return,
            // Completes the client's close handshake.
            End::ClientClosed(_) => (close::NORMAL, "bye"),
            End::Closed(reason) => (reason.code(), reason.text()),
            End::SessionLost => (close::INTERNAL, "session unavailable"),
            End::TryAgain(reason) => (close::TRY_AGAIN, *reason),
            End::Failed(e) => {
                console_error!("player {}: {e}", self.player);
                (close::INTERNAL, "internal error")
            }
        };
        let _ = self.client.close(Some(code), Some(reason));
    }

    /// Relays the session's frames until it has answered every frame forwarded so far: an empty
    /// binary message makes the object send back an empty text message, after all of them.
    async fn drain(&mut self) {
        let Relay { link, client, .. } = self;
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
            let _ = client.send_with_str(&frame);
        }
    }

    /// The next event: from the client, or from the session while the player is in one.
    async fn next(&mut self) -> Event {
        let from_client = self.from_client.next();
        let gone = Inbound::Closed(close::LOST);
        match &mut self.link {
            None => Event::Client(from_client.await.unwrap_or(gone)),
            Some(link) => match select(from_client, link.rx.next()).await {
                Either::Left((inbound, _)) => Event::Client(inbound.unwrap_or(gone)),
                Either::Right((inbound, _)) => Event::Session(inbound.unwrap_or(gone)),
            },
        }
    }

    fn send(&self, frame: &str) {
        // A failing client socket reports its close as an event; nothing to do here.
        let _ = self.client.send_with_str(frame);
    }

    /// One client frame (`text` is `None` for a binary frame), parsed; the rate limit first.
    async fn admit(
        &mut self,
        text: Option<&str>,
        parsed: std::result::Result<Command, Rejection>,
    ) -> std::result::Result<(), End> {
        match self.guard.admit(now_ms(), Rejection::reply_for(&parsed)) {
            Admission::Accept => self.command(text, parsed).await,
            Admission::Refuse(rejection) => self.command(None, Err(rejection)).await,
            Admission::Close(reason) => Err(End::Closed(reason)),
        }
    }

    /// One client command, or the rejection to answer instead. `text` is the frame to forward
    /// to the session; without it, the rejection is the answer.
    async fn command(
        &mut self,
        text: Option<&str>,
        parsed: std::result::Result<Command, Rejection>,
    ) -> std::result::Result<(), End> {
        if let Some(link) = &self.link {
            match (text, &parsed) {
                // The session parses and answers it.
                (Some(text), _) => link.ws.send_with_str(text)?,
                // Answered here, but through the object so that it keeps its place in line.
                (None, Err(rejection)) => link.ws.send_with_bytes(rejection.frame().bytes())?,
                (None, Ok(_)) => {}
            }
            if text.is_some() && matches!(parsed, Ok(Command::LeaveSession)) {
                self.await_leave().await?;
            }
            return Ok(());
        }
        match lobby::handle(parsed, &link::limits()) {
            LobbyAction::Reply(frame) => self.send(frame.as_str()),
            LobbyAction::Create(_) => self.create(text.unwrap_or_default()).await?,
            LobbyAction::Join(target) => self.join(target).await?,
        }
        Ok(())
    }

    /// Relays the session's frames up to and including `sessionLeave`; then the player is in
    /// the lobby.
    async fn await_leave(&mut self) -> std::result::Result<(), End> {
        loop {
            let Some(link) = self.link.as_mut() else {
                return Ok(());
            };
            match link.rx.next().await {
                Some(Inbound::Text(frame)) => self.send(&frame),
                Some(Inbound::Binary) => {}
                Some(Inbound::Closed(close::LEFT)) => {
                    self.link = None;
                    return Ok(());
                }
                Some(Inbound::Closed(_)) | None => return Err(End::SessionLost),
            }
        }
    }

    /// `createSession` in the lobby: a new session under a random ID.
    async fn create(&mut self, frame: &str) -> std::result::Result<(), End> {
        for _ in 0..CREATE_ATTEMPTS {
            let id = link::random_id()?;
            let Opened::Link(mut link) = self.open(Op::Create, id).await? else {
                continue; // the ID is taken
            };
            link.ws.send_with_str(frame)?;
            // The object answers with sessionJoin, or closes with TAKEN if another create for
            // the same ID came first. Client frames wait meanwhile: none may reach the session
            // before the create.
            loop {
                match link.rx.next().await {
                    Some(Inbound::Text(join)) => {
                        self.send(&join);
                        self.link = Some(link);
                        return Ok(());
                    }
                    Some(Inbound::Binary) => {}
                    Some(Inbound::Closed(close::TAKEN)) => break,
                    Some(Inbound::Closed(_)) | None => return Err(End::SessionLost),
                }
            }
        }
        Err(End::TryAgain("no free session ID found"))
    }

    /// `joinSession` in the lobby.
    async fn join(&mut self, target: JoinTarget) -> std::result::Result<(), End> {
        let mut gone = None;
        loop {
            let id = match target {
                JoinTarget::Id(id) if id > MAX_ID => {
                    self.send(lobby::join_failed(ErrorCode::SessionNotFound).as_str());
                    return Ok(());
                }
                JoinTarget::Id(id) => id,
                JoinTarget::Latest => match self.latest(gone).await? {
                    Some(id) => id,
                    None => {
                        self.send(lobby::join_failed(ErrorCode::NoSessionExists).as_str());
                        return Ok(());
                    }
                },
            };
            match self.open(Op::Join, id).await? {
                // The session's frames (sessionJoin, playerJoin…) arrive on the link.
                Opened::Link(link) => {
                    self.link = Some(link);
                    return Ok(());
                }
                // The latest session has just ended: ask again, saying so.
                Opened::NotFound if target == JoinTarget::Latest => gone = Some(id),
                Opened::NotFound => {
                    self.send(lobby::join_failed(ErrorCode::SessionNotFound).as_str());
                    return Ok(());
                }
                Opened::Answered(reply) => {
                    self.send(&reply);
                    return Ok(());
                }
                // Two random player IDs met in one session (p ≈ members / 2^53).
                Opened::Conflict => return Err(End::TryAgain("player ID collision")),
            }
        }
    }

    /// The latest live session, from the registry; `gone` is one it named before that has
    /// ended since.
    async fn latest(&self, gone: Option<u64>) -> std::result::Result<Option<u64>, End> {
        let url = match gone {
            Some(id) => format!("https://registry/latest?gone={id}"),
            None => "https://registry/latest".to_owned(),
        };
        let mut response = link::registry_stub(&self.env)?.fetch_with_str(&url).await?;
        match response.status_code() {
            200 => {
                let text = response.text().await?;
                Ok(text.trim().parse().ok())
            }
            404 => Ok(None),
            code => Err(End::Failed(worker::Error::RustError(format!(
                "registry answered {code}"
            )))),
        }
    }

    /// Asks session `id`'s object for a socket.
    async fn open(&self, op: Op, id: u64) -> std::result::Result<Opened, End> {
        let stub = link::session_stub(&self.env, id)?;
        let mut response = stub.fetch_with_request(op.request(self.player.0)?).await?;
        match response.status_code() {
            status::OPEN => match response.websocket() {
                Some(ws) => Ok(Opened::Link(Link::new(ws))),
                None => Err(End::SessionLost),
            },
            status::ANSWERED => Ok(Opened::Answered(response.text().await?)),
            status::NOT_FOUND => Ok(Opened::NotFound),
            status::CONFLICT => Ok(Opened::Conflict),
            code => Err(End::Failed(worker::Error::RustError(format!(
                "session {id} answered {code}"
            )))),
        }
    }
}

/// Accepts a socket and hands what arrives on it to a channel, so that one task can wait on the
/// client and the session at once. The task ends with the socket or when the receiver is
/// dropped.
fn pump(ws: WebSocket) -> UnboundedReceiver<Inbound> {
    let (tx, rx) = unbounded();
    // Accepted now, so that it can be sent on at once. Its listeners are added by the task
    // below in a microtask of this same turn, before any message event can be dispatched.
    if ws.accept().is_err() {
        let _ = tx.unbounded_send(Inbound::Closed(close::LOST));
        return rx;
    }
    spawn_local(async move {
        let mut events = match ws.events() {
            Ok(events) => events,
            Err(_) => {
                let _ = tx.unbounded_send(Inbound::Closed(close::LOST));
                return;
            }
        };
        while let Some(event) = events.next().await {
            let inbound = match event {
                Ok(WebsocketEvent::Message(message)) => match message.text() {
                    Some(text) => Inbound::Text(text),
                    None => Inbound::Binary,
                },
                Ok(WebsocketEvent::Close(event)) => Inbound::Closed(event.code()),
                Err(_) => Inbound::Closed(close::LOST),
            };
            let closed = matches!(inbound, Inbound::Closed(_));
            if tx.unbounded_send(inbound).is_err() || closed {
                break;
            }
        }
    });
    rx
}
