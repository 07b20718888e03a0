//! [`Client`]: the [`Machine`] driven over tokio-tungstenite, with an async API.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{SinkExt, Stream, StreamExt};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::direct::resume_url;
use crate::error::ConnectionClosedError;
use crate::machine::{Reply, RequestId, Transmit};
use crate::{
    Data, Error, Event, ListOptions, Machine, Options, Session, SessionList, SessionOptions, Target,
};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A reconnection attempt's socket being opened.
type Connecting =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Socket, String>> + Send>>;

/// How long `close()` waits for the server's close frame before it lets the socket go.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

struct Shared {
    machine: Machine,
    waiters: HashMap<RequestId, oneshot::Sender<Result<Reply, Error>>>,
}

impl Shared {
    // Requests' outcomes to whoever awaits them (a dropped future just misses its answer).
    fn deliver(&mut self) {
        while let Some((id, result)) = self.machine.poll_completion() {
            if let Some(waiter) = self.waiters.remove(&id) {
                let _ = waiter.send(result);
            }
        }
    }
}

struct Inner {
    shared: Mutex<Shared>,
    wake: Notify,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Event>>,
    closed: watch::Receiver<Option<(u16, String)>>,
    origin: Instant,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic elsewhere while holding the lock leaves the machine as it was between two
        // calls, which is consistent: go on with it.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

// Closes the connection when the last clone of the Client is dropped.
struct Guard(Arc<Inner>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.lock().machine.close(1000, "");
        self.0.wake.notify_one();
    }
}

/// A connection to a session server: one player. Clones share the connection (and its one
/// stream of events). Requests resolve on their reply; events arrive through
/// [`Client::next_event`] (drain them: they wait, unbounded, until read).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    _guard: Arc<Guard>,
}

impl Client {
    /// Opens a connection to `url` (`ws://host:7000/`; a JWT as `?token=`) and returns once
    /// it is open. With `options.reconnect` (the default) it asks for `resume` and takes its
    /// seat back after a drop.
    pub async fn connect(url: &str, options: Options) -> Result<Client, Error> {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| Error::WebSocket(Arc::new(e)))?;
        let origin = Instant::now();
        // The backoff's jitter only needs clients to differ: std's per-process random hash
        // keys give that without a dependency.
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let mut machine = Machine::new(options, seed, Duration::ZERO);
        machine.handle_open(Duration::ZERO);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (closed_tx, closed_rx) = watch::channel(None);
        let inner = Arc::new(Inner {
            shared: Mutex::new(Shared {
                machine,
                waiters: HashMap::new(),
            }),
            wake: Notify::new(),
            events: tokio::sync::Mutex::new(events_rx),
            closed: closed_rx,
            origin,
        });
        tokio::spawn(drive(
            inner.clone(),
            socket,
            url.to_owned(),
            events_tx,
            closed_tx,
        ));
        Ok(Client {
            _guard: Arc::new(Guard(inner.clone())),
            inner,
        })
    }

    // --- kept state ---

    /// This connection's player ID, known from the first sessionJoin on.
    pub fn player_id(&self) -> Option<u64> {
        self.inner.lock().machine.player_id()
    }

    /// The session this player is in, as the client knows it now (a copy).
    pub fn session(&self) -> Option<Session> {
        self.inner.lock().machine.session().cloned()
    }

    /// Reads the kept session without copying it.
    pub fn with_session<R>(&self, f: impl FnOnce(Option<&Session>) -> R) -> R {
        f(self.inner.lock().machine.session())
    }

    /// The extensions the server granted to hello; `None` while not known.
    pub fn features(&self) -> Option<Vec<String>> {
        self.inner.lock().machine.features().map(<[String]>::to_vec)
    }

    /// Whether this player is its session's host.
    pub fn is_host(&self) -> bool {
        self.inner.lock().machine.is_host()
    }

    /// While taking the seat back after a drop.
    pub fn reconnecting(&self) -> Option<crate::Reconnecting> {
        self.inner.lock().machine.reconnecting()
    }

    /// The close code and reason once closed for good.
    pub fn closed(&self) -> Option<(u16, String)> {
        self.inner.closed.borrow().clone()
    }

    // --- requests ---

    async fn request(&self, make: impl FnOnce(&mut Machine) -> RequestId) -> Result<Reply, Error> {
        let answer = {
            let mut shared = self.inner.lock();
            let id = make(&mut shared.machine);
            let (tx, rx) = oneshot::channel();
            shared.waiters.insert(id, tx);
            // Refused at once (closed already)? Then the answer is there now.
            shared.deliver();
            rx
        };
        self.inner.wake.notify_one();
        answer.await.unwrap_or_else(|_| {
            Err(ConnectionClosedError::new(1006, "the client's task ended").into())
        })
    }

    /// Creates a session and joins it as its first member; `player` is the default
    /// playerData every member starts with. Any `Serialize` data (`serde_json::json!`, your
    /// own types, [`Data`]).
    pub async fn create_session<S, P>(
        &self,
        session: &S,
        player: &P,
        options: SessionOptions,
    ) -> Result<Session, Error>
    where
        S: Serialize + ?Sized,
        P: Serialize + ?Sized,
    {
        let (session, player) = (Data::new(session)?, Data::new(player)?);
        match self
            .request(|m| m.create_session(&session, &player, &options))
            .await?
        {
            Reply::Session(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// Joins the fullest public session whose metadata matches `filter` and has room, else
    /// creates one (`session`, `player`, `options`; its metadata the filter unless `options`
    /// has its own).
    pub async fn join_or_create<F, S, P>(
        &self,
        filter: &F,
        session: &S,
        player: &P,
        options: SessionOptions,
    ) -> Result<Session, Error>
    where
        F: Serialize + ?Sized,
        S: Serialize + ?Sized,
        P: Serialize + ?Sized,
    {
        let (filter, session, player) =
            (Data::new(filter)?, Data::new(session)?, Data::new(player)?);
        match self
            .request(|m| m.join_or_create(&filter, &session, &player, &options))
            .await?
        {
            Reply::Session(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// Joins a session: `Target::Id(id)` (or just `id`), or `Target::Latest`; `password`
    /// if it has one. The members already there follow as [`Event::PlayerJoin`]s.
    pub async fn join_session(
        &self,
        target: impl Into<Target>,
        password: Option<&str>,
    ) -> Result<Session, Error> {
        let target = target.into();
        match self.request(|m| m.join_session(target, password)).await? {
            Reply::Session(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// Replaces this player's playerData (the key structure of the default, else error 4);
    /// resolves with it as broadcast.
    pub async fn update_player<P: Serialize + ?Sized>(&self, player: &P) -> Result<Data, Error> {
        let player = Data::new(player)?;
        match self.request(|m| m.update_player(&player)).await? {
            Reply::Player(data) => Ok(data),
            other => Err(unexpected(other)),
        }
    }

    /// Replaces the sessionData and the default playerData; every member's playerData resets.
    pub async fn update_session<S, P>(&self, session: &S, player: &P) -> Result<Session, Error>
    where
        S: Serialize + ?Sized,
        P: Serialize + ?Sized,
    {
        let (session, player) = (Data::new(session)?, Data::new(player)?);
        match self
            .request(|m| m.update_session(&session, &player))
            .await?
        {
            Reply::Session(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// Leaves the current session.
    pub async fn leave_session(&self) -> Result<(), Error> {
        self.request(Machine::leave_session).await.map(|_| ())
    }

    /// The host puts a member out of the session (the access extension).
    pub async fn kick_player(&self, player_id: u64) -> Result<(), Error> {
        self.request(|m| m.kick_player(player_id)).await.map(|_| ())
    }

    /// The host locks or unlocks the session; resolves with the state now.
    pub async fn lock_session(&self, locked: bool) -> Result<bool, Error> {
        match self.request(|m| m.lock_session(locked)).await? {
            Reply::Locked(locked) => Ok(locked),
            other => Err(unexpected(other)),
        }
    }

    /// Sends `data` to the other members (or only to `to`); those that asked for `messages`
    /// get [`Event::Message`]. Resolves with how many got it (error 31: `to` names a player
    /// not in the session, and nobody got it).
    pub async fn send_message<T: Serialize + ?Sized>(
        &self,
        data: &T,
        to: Option<&[u64]>,
    ) -> Result<u64, Error> {
        let data = Data::new(data)?;
        match self.request(|m| m.send_message(&data, to)).await? {
            Reply::MessageSent(recipients) => Ok(recipients),
            other => Err(unexpected(other)),
        }
    }

    /// Measures the round trip to the server and its clock.
    pub async fn ping(&self) -> Result<Pong, Error> {
        let now = self.inner.now();
        match self.request(|m| m.ping(now)).await? {
            Reply::Pong { rtt, server_time } => {
                // The server's clock minus ours, at the middle of the round trip; in i128 so
                // that no server_time can overflow it.
                let ours = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i128);
                let middle = ours - (rtt.as_millis() as i128) / 2;
                let offset = (i128::from(server_time) - middle)
                    .clamp(i128::from(i64::MIN), i128::from(i64::MAX));
                Ok(Pong {
                    rtt,
                    server_time,
                    offset_ms: offset as i64,
                })
            }
            other => Err(unexpected(other)),
        }
    }

    /// Lists public sessions, newest first (from the lobby).
    pub async fn list_sessions(&self, options: ListOptions) -> Result<SessionList, Error> {
        match self.request(|m| m.list_sessions(&options)).await? {
            Reply::SessionList(list) => Ok(list),
            other => Err(unexpected(other)),
        }
    }

    /// The host replaces the session's metadata (what listSessions shows); resolves with it.
    pub async fn set_metadata<T: Serialize + ?Sized>(&self, metadata: &T) -> Result<Data, Error> {
        let metadata = Data::new(metadata)?;
        match self.request(|m| m.set_metadata(&metadata)).await? {
            Reply::Metadata(data) => Ok(data),
            other => Err(unexpected(other)),
        }
    }

    /// Sends a frame as it is; its reply comes as an event, if at all.
    pub fn send_raw(&self, text: &str) -> Result<(), Error> {
        let sent = self.inner.lock().machine.send_raw(text);
        self.inner.wake.notify_one();
        sent
    }

    /// Closes the connection (1000, and leaving the session first when the server would
    /// keep the seat); stops reconnecting; returns once closed, with the close code.
    pub async fn close(&self) -> (u16, String) {
        self.close_with(1000, "").await
    }

    /// [`Client::close`] with a code and reason of your own.
    pub async fn close_with(&self, code: u16, reason: &str) -> (u16, String) {
        {
            let mut shared = self.inner.lock();
            shared.machine.close(code, reason);
            shared.deliver();
        }
        self.inner.wake.notify_one();
        let mut closed = self.inner.closed.clone();
        let value = match closed.wait_for(Option::is_some).await {
            Ok(value) => value.clone(),
            // The task is gone without saying: it was closed.
            Err(_) => None,
        };
        value.unwrap_or((code, reason.to_owned()))
    }

    // --- events ---

    /// The next event; `None` after [`Event::Close`] was taken.
    pub async fn next_event(&self) -> Option<Event> {
        self.inner.events.lock().await.recv().await
    }

    /// The events as a stream (ends after [`Event::Close`]).
    pub fn events(&self) -> impl Stream<Item = Event> + Send + 'static {
        let client = self.clone();
        futures_util::stream::unfold(client, |client| async move {
            let event = client.next_event().await?;
            Some((event, client))
        })
    }
}

/// What [`Client::ping`] measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pong {
    /// The round trip.
    pub rtt: Duration,
    /// The server's clock, milliseconds since the Unix epoch.
    pub server_time: u64,
    /// The server's clock minus this machine's, estimated at the middle of the round trip.
    pub offset_ms: i64,
}

fn unexpected(reply: Reply) -> Error {
    Error::Protocol(format!("unexpected reply {reply:?}"))
}

// The connection's task: feeds the machine what the socket and the clock do, carries out
// what it says, and hands out its completions and events.
async fn drive(
    inner: Arc<Inner>,
    socket: Socket,
    url: String,
    events: mpsc::UnboundedSender<Event>,
    closed: watch::Sender<Option<(u16, String)>>,
) {
    let mut socket = Some(socket);
    let mut connecting: Option<Connecting> = None;
    let mut close_by: Option<Instant> = None;
    loop {
        let (transmits, timeout, done, resume_to) = {
            let mut shared = inner.lock();
            let mut transmits = Vec::new();
            while let Some(t) = shared.machine.poll_transmit() {
                transmits.push(t);
            }
            // Where a resume connects (the direct path's own URL for the token's session).
            let resume_to = shared.machine.resume_token().map(|t| resume_url(&url, t));
            shared.deliver();
            while let Some(event) = shared.machine.poll_event() {
                let _ = events.send(event);
            }
            let timeout = shared.machine.poll_timeout();
            let done = shared.machine.closed().map(|(c, r)| (c, r.to_owned()));
            (transmits, timeout, done, resume_to)
        };
        for transmit in transmits {
            match transmit {
                Transmit::Text(text) => {
                    if let Some(ws) = socket.as_mut() {
                        // A failed send shows as the socket's end, read below.
                        let _ = ws.send(Message::text(text)).await;
                    }
                }
                Transmit::Connect => {
                    socket = None;
                    let url = resume_to.clone().unwrap_or_else(|| url.clone());
                    connecting = Some(Box::pin(async move {
                        tokio_tungstenite::connect_async(url)
                            .await
                            .map(|(ws, _)| ws)
                            .map_err(|e| e.to_string())
                    }));
                }
                Transmit::Disconnect => {
                    socket = None;
                    connecting = None;
                }
                Transmit::Close { code, reason } => {
                    if let Some(ws) = socket.as_mut() {
                        let frame = CloseFrame {
                            code: CloseCode::from(code),
                            reason: reason.into(),
                        };
                        let _ = ws.close(Some(frame)).await;
                        close_by = Some(Instant::now() + CLOSE_WAIT);
                    }
                }
            }
        }
        if let Some(done) = done {
            let _ = closed.send(Some(done));
            return;
        }
        // A deadline beyond what the clock can hold (settings of Duration::MAX) never comes.
        let timer = timeout.and_then(|at| inner.origin.checked_add(at));
        tokio::select! {
            frame = next_frame(&mut socket), if socket.is_some() => {
                if let (Some(Ok(Message::Close(_))), Some(ws)) = (&frame, socket.as_mut()) {
                    // Complete the close handshake the server began (tungstenite queued the
                    // answer): a peer left without it may hold the old connection open.
                    let _ = tokio::time::timeout(CLOSE_WAIT, ws.flush()).await;
                }
                let now = inner.now();
                let mut shared = inner.lock();
                match frame {
                    Some(Ok(Message::Text(text))) => shared.machine.handle_text(now, text.as_str()),
                    Some(Ok(Message::Binary(_))) => shared.machine.handle_binary(now),
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame.map_or((1005, String::new()), |f| {
                            (u16::from(f.code), f.reason.as_str().to_owned())
                        });
                        socket = None;
                        close_by = None;
                        shared.machine.handle_close(now, code, &reason);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        socket = None;
                        close_by = None;
                        shared.machine.handle_close(now, 1006, &e.to_string());
                    }
                    None => {
                        socket = None;
                        close_by = None;
                        shared.machine.handle_close(now, 1006, "the connection ended");
                    }
                }
            }
            opened = async { connecting.as_mut().expect("guarded").await }, if connecting.is_some() => {
                connecting = None;
                let now = inner.now();
                let mut shared = inner.lock();
                match opened {
                    Ok(ws) => {
                        socket = Some(ws);
                        shared.machine.handle_open(now);
                    }
                    Err(e) => shared.machine.handle_close(now, 1006, &e),
                }
            }
            _ = inner.wake.notified() => {}
            _ = sleep_until(timer), if timer.is_some() => {
                let now = inner.now();
                inner.lock().machine.handle_timeout(now);
            }
            _ = sleep_until(close_by), if close_by.is_some() => {
                // The server did not answer the close frame: let the socket go.
                socket = None;
                close_by = None;
                let now = inner.now();
                let mut shared = inner.lock();
                let (code, reason) = (1006, "no close frame from the server");
                shared.machine.handle_close(now, code, reason);
            }
        }
    }
}

async fn next_frame(
    socket: &mut Option<Socket>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match socket.as_mut() {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
