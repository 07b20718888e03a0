//! One WebSocket connection = one player: a reader task that turns frames into core commands
//! and runs the connection's timers, and a writer task that sends what the player's session and
//! the lobby queue for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use sessionserver_core::{
    command, lobby, Admission, CloseReason, Command, Connection, ConnectionConfig, ErrorCode,
    Frame, JoinTarget, Limits, LobbyAction, Membership, PlayerId, Rejection, TimerAction,
};
use tokio::sync::{oneshot, watch, Notify};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::send_queue::{Outbound, SendQueue};
use crate::session_task::{self, SessionHandle, SessionMsg};

type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// The way to one player's connection, held by its reader and by its session.
#[derive(Clone)]
pub(crate) struct Peer {
    pub(crate) player: PlayerId,
    queue: Arc<SendQueue>,
    /// Notified when the send queue overflowed: the connection is then closed.
    overflow: Arc<Notify>,
    metrics: Arc<Metrics>,
}

impl Peer {
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Queues a frame without waiting. A full queue means the client stopped reading; it is
    /// disconnected rather than slowing down its session or growing the server's memory.
    pub(crate) fn send(&self, frame: &Frame) {
        self.send_text(frame, text_of(frame));
    }

    /// [`Peer::send`] with the frame's text already made (once per broadcast).
    pub(crate) fn send_text(&self, frame: &Frame, text: Utf8Bytes) {
        self.metrics.frame_out(frame);
        if self.queue.push(Outbound::Text(text)).is_err() {
            self.overflow.notify_one();
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
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Runs one connection to its end.
pub(crate) async fn run(
    socket: Socket,
    addr: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(player) = shared.registry.new_player_id() else {
        tracing::error!("player IDs exhausted; refusing connection");
        return;
    };
    tracing::info!(%player, %addr, "connected");
    shared.metrics.connection_opened();
    let (sink, stream) = socket.split();
    let queue = Arc::new(SendQueue::new(shared.send_queue));
    let overflow = Arc::new(Notify::new());
    let abort_writer = Arc::new(Notify::new());
    let writer = tokio::spawn(write_loop(sink, queue.clone(), abort_writer.clone()));
    let mut reader = Reader {
        peer: Peer {
            player,
            queue,
            overflow: overflow.clone(),
            metrics: shared.metrics.clone(),
        },
        place: Place::Lobby,
        guard: Connection::new(shared.connection, shared.now_ms()),
        shared,
    };
    let end = tokio::select! {
        end = reader.read_loop(stream) => end,
        () = overflow.notified() => Some(CloseReason::SendQueueFull),
        () = crate::server::stopped(&mut shutdown) => Some(CloseReason::Shutdown),
    };
    reader.leave_session().await;
    if end == Some(CloseReason::SendQueueFull) {
        // The queue is full: the close frame goes ahead of what the client never read.
        abort_writer.notify_one();
    } else {
        // Queued behind every frame already promised to the client, so none is lost.
        reader.peer.queue.close(end);
    }
    reader.shared.metrics.connection_closed(end);
    drop(reader);
    let _ = writer.await;
    let reason = end.map_or("client closed", CloseReason::text);
    tracing::info!(%player, reason, "disconnected");
}

struct Reader {
    peer: Peer,
    place: Place,
    /// The core's heartbeat and rate limit for this connection.
    guard: Connection,
    shared: Arc<Shared>,
}

impl Reader {
    /// Reads until the client goes; `Some` is the reason the server closes the connection.
    async fn read_loop(&mut self, mut stream: SplitStream<Socket>) -> Option<CloseReason> {
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
                message = stream.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        let command = command::parse(&text, &self.shared.limits);
                        let name = command.as_ref().map_or("invalid", Command::name);
                        self.shared.metrics.frame_in(name, text.len());
                        command
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        self.shared.metrics.frame_in("binary", bytes.len());
                        Err(Rejection::binary_frame())
                    }
                    Some(Ok(Message::Pong(_) | Message::Ping(_))) => {
                        // tungstenite answers pings itself.
                        self.guard.handle_activity(self.shared.now_ms());
                        continue;
                    }
                    Some(Ok(Message::Frame(_))) => continue,
                    Some(Err(WsError::Capacity(_))) => return Some(CloseReason::TooBig),
                    Some(Err(WsError::Utf8(_))) => return Some(CloseReason::InvalidUtf8),
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return None,
                },
                () = &mut timer => {
                    match self.guard.handle_timeout(self.shared.now_ms()) {
                        Some(TimerAction::Ping) => {
                            // A full queue is the overflow rule's business, not the heartbeat's.
                            let _ = self.peer.queue.push(Outbound::Ping);
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
            match admission {
                Admission::Accept => self.handle(command).await,
                Admission::Refuse(rejection) => self.handle(Err(rejection)).await,
                Admission::Close(reason) => return Some(reason),
            }
        }
    }

    async fn handle(&mut self, command: Result<Command, Rejection>) {
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
            let sent = handle.send(msg).await;
            let gone = match left {
                Some(left) => sent.is_err() || left.await != Ok(Membership::Member),
                None => sent.is_err(),
            };
            if gone {
                self.place = Place::Lobby;
            }
            return;
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
            LobbyAction::Join(target) => self.join(target).await,
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

/// A frame as WebSocket text, sharing its bytes.
pub(crate) fn text_of(frame: &Frame) -> Utf8Bytes {
    Utf8Bytes::try_from(frame.bytes().clone()).expect("core frames are UTF-8")
}

fn close_frame(reason: CloseReason) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(reason.code()),
        reason: Utf8Bytes::from_static(reason.text()),
    }))
}

/// Writes queued frames, all that are waiting with one flush, until told to close.
async fn write_loop(
    mut sink: SplitSink<Socket, Message>,
    queue: Arc<SendQueue>,
    abort: Arc<Notify>,
) {
    // Registered once, not per batch.
    let aborted = abort.notified();
    tokio::pin!(aborted);
    loop {
        let step = async {
            for item in queue.take().await {
                let message = match item {
                    Outbound::Text(text) => Message::Text(text),
                    Outbound::Ping => Message::Ping(Bytes::new()),
                    Outbound::Close(reason) => {
                        if let Some(reason) = reason {
                            sink.feed(close_frame(reason)).await?;
                        }
                        sink.close().await?;
                        return Ok(false);
                    }
                };
                sink.feed(message).await?;
            }
            sink.flush().await?;
            Ok::<bool, WsError>(true)
        };
        tokio::select! {
            result = step => {
                if !matches!(result, Ok(true)) {
                    break;
                }
            }
            () = &mut aborted => {
                // The client stopped reading: tell it why if it ever reads again, but don't
                // wait long for that.
                let close = sink.send(close_frame(CloseReason::SendQueueFull));
                let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
                break;
            }
        }
    }
}
