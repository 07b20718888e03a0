//! One WebSocket connection = one player: a task that reads frames into core commands and runs
//! the connection's timers. What the player is sent goes through its `socket::Outbox`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sessionserver_core::{
    command, lobby, Admission, CloseReason, Command, Connection, ConnectionConfig, ErrorCode,
    Frame, JoinTarget, Limits, LobbyAction, Membership, PlayerId, Rejection, TimerAction,
};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{oneshot, Notify};

use crate::frame_reader::{FrameReader, Incoming, ReadError};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::session_task::{self, SessionHandle, SessionMsg};
use crate::socket::{self, close_frame, Full, Outbox};

/// The way to one player's connection, held by its reader and by its session.
#[derive(Clone)]
pub(crate) struct Peer {
    pub(crate) player: PlayerId,
    outbox: Arc<Outbox>,
    metrics: Arc<Metrics>,
}

impl Peer {
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Sends a frame without waiting. A full outbox means the client stopped reading; it is
    /// disconnected rather than slowing down its session or growing the server's memory.
    pub(crate) fn send(&self, frame: &Frame) {
        self.metrics.frame_out(frame);
        if self.outbox.send(ws_frame_of(frame)).is_err() {
            self.outbox.overflowed.notify_one();
        }
    }

    /// Queues a frame for the session's next flush, with its WebSocket frame already built
    /// (once per broadcast; the session counts it in the metrics). Returns the outbox when the
    /// caller must flush it.
    pub(crate) fn queue(&self, ws_frame: Bytes) -> Option<Arc<Outbox>> {
        match self.outbox.queue(ws_frame) {
            Ok(true) => Some(self.outbox.clone()),
            Ok(false) => None,
            Err(Full) => {
                self.outbox.overflowed.notify_one();
                None
            }
        }
    }
}

/// Where the player is.
enum Place {
    Lobby,
    InSession(SessionHandle),
}

/// What every connection of one server shares.
pub(crate) struct Shared {
    pub(crate) registry: Registry,
    pub(crate) send_queue: usize,
    pub(crate) limits: Limits,
    pub(crate) connection: ConnectionConfig,
    /// The origin of the milliseconds the core's timers count in.
    pub(crate) epoch: Instant,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) stopping: Stopping,
}

/// Set once the server stops. Every open connection waits on it: a `Notified` is less than
/// half the size of a watch receiver's future (memory per idle player).
#[derive(Default)]
pub(crate) struct Stopping {
    stopped: AtomicBool,
    notify: Notify,
}

impl Stopping {
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Resolves once the server stops (at once if it has).
    pub(crate) async fn wait(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so a stop in between is not missed.
        notified.as_mut().enable();
        if !self.stopped.load(Ordering::SeqCst) {
            notified.await;
        }
    }
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A core frame as a WebSocket text frame, ready to write.
pub(crate) fn ws_frame_of(frame: &Frame) -> Bytes {
    socket::frame(1, frame.bytes())
}

/// Runs one connection to its end; `held` is dropped then.
pub(crate) async fn run<H: Send>(
    mut frames: FrameReader,
    outbox: Arc<Outbox>,
    addr: SocketAddr,
    shared: Arc<Shared>,
    held: H,
) {
    let Some(player) = shared.registry.new_player_id() else {
        tracing::error!("player IDs exhausted; refusing connection");
        return;
    };
    tracing::info!(%player, %addr, "connected");
    shared.metrics.connection_opened();
    let server = shared.clone();
    let mut reader = Reader {
        peer: Peer {
            player,
            outbox: outbox.clone(),
            metrics: shared.metrics.clone(),
        },
        place: Place::Lobby,
        guard: Connection::new(shared.connection, shared.now_ms()),
        shared,
        client_close: None,
    };
    let end = tokio::select! {
        end = reader.read_loop(&mut frames) => end,
        () = outbox.overflowed.notified() => Some(CloseReason::SendQueueFull),
        () = server.stopping.wait() => Some(CloseReason::Shutdown),
    };
    // The rest runs once per connection: boxed, so that its futures take no room in the
    // connection's task while it is open (memory per idle player).
    Box::pin(finish(reader, end, outbox)).await;
    drop(held);
}

/// Leaves the session and closes the WebSocket: after every frame already promised to the
/// client, so none is lost; the client gets a while to take them (a client that stopped
/// reading, only a second).
async fn finish(mut reader: Reader, end: Option<CloseReason>, outbox: Arc<Outbox>) {
    reader.leave_session().await;
    let (close, grace) = match end {
        // The client closed: complete its close handshake, echoing its code.
        None => {
            let code = reader.client_close.map(u16::to_be_bytes);
            (
                socket::frame(8, code.as_ref().map_or(&[][..], |c| &c[..])),
                Duration::from_secs(5),
            )
        }
        Some(CloseReason::SendQueueFull) => (
            close_frame(CloseReason::SendQueueFull),
            Duration::from_secs(1),
        ),
        Some(reason) => (close_frame(reason), Duration::from_secs(5)),
    };
    outbox.close(close);
    reader.shared.metrics.connection_closed(end);
    let player = reader.peer.player;
    drop(reader);
    let _ = tokio::time::timeout(grace, outbox.drained()).await;
    let reason = end.map_or("client closed", CloseReason::text);
    tracing::info!(%player, reason, "disconnected");
}

/// A rare wait of a connection, boxed.
type Wait<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

struct Reader {
    peer: Peer,
    place: Place,
    /// The core's heartbeat and rate limit for this connection.
    guard: Connection,
    shared: Arc<Shared>,
    /// The code of the client's close frame, echoed in the reply.
    client_close: Option<u16>,
}

impl Reader {
    /// Reads until the client goes; `Some` is the reason the server closes the connection.
    async fn read_loop(&mut self, frames: &mut FrameReader) -> Option<CloseReason> {
        let deadline = |guard: &Connection, epoch: Instant| {
            tokio::time::Instant::from_std(epoch + Duration::from_millis(guard.poll_timeout()))
        };
        // The timer is not re-armed per frame: when it fires, the core looks at the real
        // silence and the timer is set to the next deadline. Activity only postpones the
        // close, so a close is never early; a ping may go out later than it could have, and the
        // client then still has at least `ping_after` to answer before the timeout.
        let timer = tokio::time::sleep_until(deadline(&self.guard, self.shared.epoch));
        tokio::pin!(timer);
        loop {
            let command = tokio::select! {
                message = frames.next() => match message {
                    Ok(Incoming::Text(text)) => {
                        let command = command::parse(text, &self.shared.limits);
                        let name = command.as_ref().map_or("invalid", Command::name);
                        self.shared.metrics.frame_in(name, text.len());
                        command
                    }
                    Ok(Incoming::Binary(len)) => {
                        self.shared.metrics.frame_in("binary", len);
                        Err(Rejection::binary_frame())
                    }
                    Ok(Incoming::Ping(payload)) => {
                        self.peer.outbox.pong(payload);
                        self.guard.handle_activity(self.shared.now_ms());
                        continue;
                    }
                    Ok(Incoming::Pong) => {
                        self.guard.handle_activity(self.shared.now_ms());
                        continue;
                    }
                    Ok(Incoming::Close(code)) => {
                        self.client_close = code;
                        return None;
                    }
                    Err(ReadError::Gone) => return None,
                    Err(ReadError::TooBig) => return Some(CloseReason::TooBig),
                    Err(ReadError::InvalidUtf8) => return Some(CloseReason::InvalidUtf8),
                    Err(ReadError::Protocol) => return Some(CloseReason::ProtocolError),
                },
                () = &mut timer => {
                    match self.guard.handle_timeout(self.shared.now_ms()) {
                        Some(TimerAction::Ping) => {
                            // A full queue is the overflow rule's business, not the heartbeat's.
                            self.peer.outbox.ping();
                        }
                        Some(TimerAction::Close(reason)) => return Some(reason),
                        None => {}
                    }
                    timer.as_mut().reset(deadline(&self.guard, self.shared.epoch));
                    continue;
                }
            };
            let admission = self
                .guard
                .admit(self.shared.now_ms(), Rejection::reply_for(&command));
            let wait = match admission {
                Admission::Accept => self.handle(command),
                Admission::Refuse(rejection) => self.handle(Err(rejection)),
                Admission::Close(reason) => return Some(reason),
            };
            if let Some(wait) = wait {
                wait.await;
            }
        }
    }

    /// Handles one command. What has to be waited for (rare: a full session inbox, a leave's
    /// acknowledgement, a join) comes back as a boxed future, so that no connection's task
    /// carries room for it while it is open (memory per idle player).
    fn handle(&mut self, command: Result<Command, Rejection>) -> Option<Wait<'_>> {
        if let Place::InSession(handle) = &self.place {
            // A leave is acknowledged before the next command is read, so that a following
            // create or join cannot overtake the sessionLeave reply.
            let leaving = matches!(command, Ok(Command::LeaveSession));
            let (ack, left) = if leaving {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            } else {
                (None, None)
            };
            let msg = SessionMsg::Command {
                player: self.peer.player,
                command,
                ack,
            };
            return match handle.try_send(msg) {
                Ok(()) if left.is_none() => None,
                Ok(()) => Some(Box::pin(self.in_session(None, left))),
                Err(TrySendError::Full(msg)) => Some(Box::pin(self.in_session(Some(msg), left))),
                Err(TrySendError::Closed(_)) => {
                    self.place = Place::Lobby;
                    None
                }
            };
        }
        match lobby::handle(command, &self.shared.limits) {
            LobbyAction::Reply(frame) => self.peer.send(&frame),
            LobbyAction::Create(format) => {
                let registry = &self.shared.registry;
                let limits = self.shared.limits;
                match session_task::spawn(registry, format, self.peer.clone(), limits) {
                    Some(handle) => self.place = Place::InSession(handle),
                    None => self.peer.send(&lobby::create_refused(&self.shared.limits)),
                }
            }
            LobbyAction::Join(target) => return Some(Box::pin(self.join(target))),
        }
        None
    }

    /// Sends `msg` to the session when its inbox has room, then waits for the leave's
    /// acknowledgement if there is one; back in the lobby if the session is gone or left.
    async fn in_session(
        &mut self,
        msg: Option<SessionMsg>,
        left: Option<oneshot::Receiver<Membership>>,
    ) {
        let Place::InSession(handle) = &self.place else {
            return;
        };
        let sent = match msg {
            Some(msg) => handle.send(msg).await,
            None => Ok(()),
        };
        let gone = match left {
            Some(left) => sent.is_err() || left.await != Ok(Membership::Member),
            None => sent.is_err(),
        };
        if gone {
            self.place = Place::Lobby;
        }
    }

    async fn join(&mut self, target: JoinTarget) {
        loop {
            let handle = match self.shared.registry.resolve(target) {
                Ok(found) => found,
                Err(code) => return self.peer.send(&lobby::join_failed(code)),
            };
            let (ack, joined) = oneshot::channel();
            let msg = SessionMsg::Join {
                peer: self.peer.clone(),
                ack,
            };
            if handle.send(msg).await.is_ok() {
                match joined.await {
                    Ok(true) => {
                        self.place = Place::InSession(handle);
                        return;
                    }
                    // Full: the session sent error 16 itself.
                    Ok(false) => return,
                    // The session ended before the join reached it.
                    Err(_) => {}
                }
            }
            // For an ID that is final; for -1 the next latest session (if any) is the answer.
            if target != JoinTarget::Latest {
                return self
                    .peer
                    .send(&lobby::join_failed(ErrorCode::SessionNotFound));
            }
        }
    }

    /// Leaves the current session, if any, as a closed connection does.
    async fn leave_session(&mut self) {
        if let Place::InSession(handle) = std::mem::replace(&mut self.place, Place::Lobby) {
            let player = self.peer.player;
            let _ = handle.send(SessionMsg::Disconnect { player }).await;
        }
    }
}
