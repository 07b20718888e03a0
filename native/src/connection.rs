//! One WebSocket connection = one player: a reader task that turns frames into core commands,
//! and a writer task that sends what the player's sessions and the lobby queue for it.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use sessionserver_core::{
    command, lobby, Command, JoinTarget, LobbyAction, Membership, PlayerId, Rejection,
};
use sessionserver_core::{ErrorCode, Frame};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::registry::Registry;
use crate::session_task::{self, SessionHandle, SessionMsg};

type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// What the writer task is asked to do.
enum Outbound {
    Frame(Frame),
    /// Send this close frame (or complete the peer's close handshake) and stop.
    Close(Option<CloseFrame>),
}

/// The way to one player's connection, held by its reader and by its session.
#[derive(Clone)]
pub(crate) struct Peer {
    pub(crate) player: PlayerId,
    tx: mpsc::Sender<Outbound>,
    /// Notified when the send queue overflowed: the connection is then closed.
    overflow: Arc<Notify>,
}

impl Peer {
    /// Queues a frame without waiting. A full queue means the client stopped reading; it is
    /// disconnected rather than slowing down its session or growing the server's memory.
    pub(crate) fn send(&self, frame: Frame) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(Outbound::Frame(frame)) {
            self.overflow.notify_one();
        }
    }
}

/// Where the player is.
enum Place {
    Lobby,
    InSession(SessionHandle),
}

/// Why the reader stopped.
enum End {
    /// The client closed, or the connection failed.
    Peer,
    /// The client sent a message larger than the configured maximum.
    TooBig,
    /// The client sent a text frame that is not UTF-8.
    NotUtf8,
    /// The send queue overflowed.
    Overflow,
    /// The server is shutting down.
    Shutdown,
}

pub(crate) struct Shared {
    pub(crate) registry: Registry,
    pub(crate) send_queue: usize,
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
    let (sink, stream) = socket.split();
    let (tx, rx) = mpsc::channel(shared.send_queue);
    let overflow = Arc::new(Notify::new());
    let abort_writer = Arc::new(Notify::new());
    let writer = tokio::spawn(write_loop(sink, rx, abort_writer.clone()));
    let mut reader = Reader {
        peer: Peer {
            player,
            tx,
            overflow: overflow.clone(),
        },
        place: Place::Lobby,
        registry: shared.registry.clone(),
    };
    let end = tokio::select! {
        end = reader.read_loop(stream) => end,
        () = overflow.notified() => End::Overflow,
        () = crate::server::stopped(&mut shutdown) => End::Shutdown,
    };
    reader.leave_session().await;
    let close = match end {
        End::Peer => Some(Outbound::Close(None)),
        End::Shutdown => Some(Outbound::Close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: Utf8Bytes::from_static("server shutting down"),
        }))),
        End::TooBig => Some(Outbound::Close(Some(CloseFrame {
            code: CloseCode::Size,
            reason: Utf8Bytes::from_static("message too big"),
        }))),
        End::NotUtf8 => Some(Outbound::Close(Some(CloseFrame {
            code: CloseCode::Invalid,
            reason: Utf8Bytes::from_static("text frame is not UTF-8"),
        }))),
        // The client does not read; a close frame would only wait behind the full queue.
        End::Overflow => None,
    };
    match close {
        Some(close) => {
            // Queued behind every frame already promised to the client, so none is lost.
            let _ = reader.peer.tx.send(close).await;
        }
        None => abort_writer.notify_one(),
    }
    drop(reader);
    let _ = writer.await;
    let reason = match end {
        End::Peer => "client closed",
        End::TooBig => "message too big",
        End::NotUtf8 => "invalid UTF-8",
        End::Overflow => "send queue full",
        End::Shutdown => "server shutdown",
    };
    tracing::info!(%player, reason, "disconnected");
}

struct Reader {
    peer: Peer,
    place: Place,
    registry: Registry,
}

impl Reader {
    async fn read_loop(&mut self, mut stream: SplitStream<Socket>) -> End {
        while let Some(message) = stream.next().await {
            let command = match message {
                Ok(Message::Text(text)) => command::parse(&text),
                Ok(Message::Binary(_)) => Err(Rejection::binary_frame()),
                Err(WsError::Capacity(_)) => return End::TooBig,
                Err(WsError::Utf8(_)) => return End::NotUtf8,
                Ok(Message::Close(_)) | Err(_) => break,
                // Pings are answered by tungstenite itself.
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
            };
            self.handle(command).await;
        }
        End::Peer
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
        match lobby::handle(command) {
            LobbyAction::Reply(frame) => self.peer.send(frame),
            LobbyAction::Create(format) => {
                match session_task::spawn(&self.registry, format, self.peer.clone()) {
                    Some((_, handle)) => self.place = Place::InSession(handle),
                    None => tracing::error!("session IDs exhausted; createSession refused"),
                }
            }
            LobbyAction::Join(target) => self.join(target).await,
        }
    }

    async fn join(&mut self, target: JoinTarget) {
        loop {
            let handle = match self.registry.resolve(target) {
                Ok(found) => found,
                Err(code) => return self.peer.send(lobby::join_failed(code)),
            };
            let (ack, joined) = oneshot::channel();
            let msg = SessionMsg::Join {
                peer: self.peer.clone(),
                ack,
            };
            if handle.send(msg).await.is_ok() && joined.await == Ok(true) {
                self.place = Place::InSession(handle);
                return;
            }
            // The session ended between lookup and join. For an ID that is final; for -1 the
            // next latest session (if any) is the answer.
            if target != JoinTarget::Latest {
                return self
                    .peer
                    .send(lobby::join_failed(ErrorCode::SessionNotFound));
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

/// Writes queued frames, several per flush when they pile up, until told to close.
async fn write_loop(
    mut sink: SplitSink<Socket, Message>,
    mut rx: mpsc::Receiver<Outbound>,
    abort: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(64);
    loop {
        let step = async {
            if rx.recv_many(&mut batch, 64).await == 0 {
                return Ok(false);
            }
            for item in batch.drain(..) {
                match item {
                    Outbound::Frame(frame) => {
                        let text = Utf8Bytes::try_from(frame.bytes().clone())
                            .expect("core frames are UTF-8");
                        sink.feed(Message::Text(text)).await?;
                    }
                    Outbound::Close(close) => {
                        if let Some(close) = close {
                            sink.feed(Message::Close(Some(close))).await?;
                        }
                        sink.close().await?;
                        return Ok(false);
                    }
                }
            }
            sink.flush().await?;
            Ok::<bool, tokio_tungstenite::tungstenite::Error>(true)
        };
        tokio::select! {
            result = step => {
                if !matches!(result, Ok(true)) {
                    break;
                }
            }
            () = abort.notified() => break,
        }
    }
}
