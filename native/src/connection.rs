//! One WebSocket connection = one player: a task that reads the client's frames into the
//! core's [`Player`] machine and carries out what it asks (frames to the client, inputs to a
//! session, the heartbeat's pings and closes). What the player is sent goes through its
//! `socket::Outbox`. Whatever the connection holds is let go by [`PlayerConnection`]'s `Drop`,
//! so a panic or a cancelled task still leaves the session.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use sessionserver_core::{
    CloseReason, ConnectionConfig, CreateRefusal, Limits, Player, PlayerOutput, SessionId, ToPlayer,
};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{oneshot, Notify};

use crate::frame_reader::{FrameReader, Incoming, ReadError};
use crate::metrics::Metrics;
use crate::peer::Peer;
use crate::registry::Registry;
use crate::session_task::{self, SessionHandle, SessionMsg};
use crate::socket::{self, close_frame, Outbox};

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
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Runs one connection to its end; `held` (what counts the connection) is dropped then.
pub(crate) async fn run<H: Send>(
    mut frames: FrameReader,
    outbox: Arc<Outbox>,
    addr: SocketAddr,
    shared: Arc<Shared>,
    held: H,
) {
    let Some(id) = shared.registry.new_player_id() else {
        tracing::error!("player IDs exhausted; refusing connection");
        return;
    };
    tracing::info!(player = %id, %addr, "connected");
    let server = shared.clone();
    let mut connection = PlayerConnection::new(id, outbox.clone(), shared, held);
    let end = tokio::select! {
        end = connection.read_loop(&mut frames) => end,
        reason = outbox.ended() => Some(reason),
        () = server.stopping.wait() => Some(CloseReason::Shutdown),
    };
    // The rest runs once per connection: boxed, so that its futures take no room in the
    // connection's task while it is open (memory per idle player).
    Box::pin(connection.finish(end)).await;
}

/// A session input whose sending had to wait: for room in the session's inbox, or for the
/// session's answer.
struct Waiting {
    msg: Option<SessionMsg>,
    answer: Option<oneshot::Receiver<ToPlayer>>,
}

/// One connection's player, and everything the connection holds. Its `Drop` lets go of all of
/// it however the task ends.
pub(crate) struct PlayerConnection<H> {
    player: Player,
    peer: Peer,
    /// The session the player's inputs go to: the one it last created or was sent to join.
    session: Option<(SessionId, SessionHandle)>,
    /// What the player has to wait for before it takes its next input.
    waiting: Option<Waiting>,
    /// The player's disconnect, until its session has it.
    leaving: Option<SessionMsg>,
    shared: Arc<Shared>,
    /// The code of the client's close frame, echoed in the reply.
    client_close: Option<u16>,
    /// Why the server closed the connection (`None`: the client did, or it failed).
    end: Option<CloseReason>,
    /// What counts this connection (its permit, the server's liveness count), let go last.
    _held: H,
}

impl<H> Drop for PlayerConnection<H> {
    /// However the task ends (finished, cancelled at any await, or a panic), the player leaves
    /// its session: the others get `playerLeave` and the seat is free.
    fn drop(&mut self) {
        let player = self.player.id();
        if std::thread::panicking() {
            let session = self.session.as_ref().map(|(id, _)| id.0);
            tracing::error!(%player, ?session, "connection task panicked; the player leaves");
            self.peer
                .outbox
                .close(socket::frame(8, &1011u16.to_be_bytes()));
        }
        if self.leaving.is_none() {
            self.leaving = self.take_disconnect();
        }
        if let (Some(msg), Some((_, handle))) = (self.leaving.take(), &self.session) {
            handle.send_eventually(msg);
        }
        self.shared.metrics.connection_closed(self.end);
    }
}

impl<H> PlayerConnection<H> {
    pub(crate) fn new(
        id: sessionserver_core::PlayerId,
        outbox: Arc<Outbox>,
        shared: Arc<Shared>,
        held: H,
    ) -> Self {
        shared.metrics.connection_opened();
        PlayerConnection {
            player: Player::new(id, shared.limits, shared.connection, shared.now_ms()),
            peer: Peer::new(outbox, shared.metrics.clone()),
            session: None,
            waiting: None,
            leaving: None,
            shared,
            client_close: None,
            end: None,
            _held: held,
        }
    }

    /// Reads until the client goes; `Some` is the reason the server closes the connection.
    async fn read_loop(&mut self, frames: &mut FrameReader) -> Option<CloseReason> {
        let epoch = self.shared.epoch;
        let deadline = |player: &Player| {
            tokio::time::Instant::from_std(epoch + Duration::from_millis(player.poll_timeout()))
        };
        // The timer is not re-armed per frame: when it fires, the core looks at the real
        // silence and the timer is set to the next deadline. Activity only postpones the
        // close, so a close is never early; a ping may go out later than it could have, and the
        // client then still has at least `ping_after` to answer before the timeout.
        let timer = tokio::time::sleep_until(deadline(&self.player));
        tokio::pin!(timer);
        loop {
            tokio::select! {
                message = frames.next() => {
                    let now = self.shared.now_ms();
                    match message {
                        Ok(Incoming::Text(text)) => {
                            let name = self.player.handle_text(now, text);
                            self.shared.metrics.frame_in(name, text.len());
                        }
                        Ok(Incoming::Binary(len)) => {
                            self.shared.metrics.frame_in("binary", len);
                            self.player.handle_binary(now);
                        }
                        Ok(Incoming::Ping(payload)) => {
                            self.peer.outbox.pong(payload);
                            self.player.handle_activity(now);
                        }
                        Ok(Incoming::Pong) => self.player.handle_activity(now),
                        Ok(Incoming::Close(code)) => {
                            self.client_close = code;
                            return None;
                        }
                        Err(ReadError::Gone) => return None,
                        Err(ReadError::TooBig) => return Some(CloseReason::TooBig),
                        Err(ReadError::InvalidUtf8) => return Some(CloseReason::InvalidUtf8),
                        Err(ReadError::Protocol) => return Some(CloseReason::ProtocolError),
                    }
                }
                () = &mut timer => {
                    self.player.handle_timeout(self.shared.now_ms());
                    timer.as_mut().reset(deadline(&self.player));
                }
            }
            // No frame is read while the player waits for its session: replies stay in the
            // order of the commands.
            loop {
                if let Some(reason) = self.drain() {
                    return Some(reason);
                }
                if self.waiting.is_none() {
                    break;
                }
                // Rare (a join, a leave, a full session inbox): boxed, so that no connection's
                // task carries room for it while it is open (memory per idle player).
                Box::pin(self.wait()).await;
            }
        }
    }

    /// Carries out what the player asks, without waiting; stops at the first output that must
    /// wait (left in `waiting`) or at a close.
    fn drain(&mut self) -> Option<CloseReason> {
        while let Some(output) = self.player.poll_output() {
            match output {
                PlayerOutput::Send(frame) => self.peer.send(&frame),
                // A full queue is the overflow rule's business, not the heartbeat's.
                PlayerOutput::Ping => self.peer.outbox.ping(),
                PlayerOutput::Close(reason) => return Some(reason),
                PlayerOutput::Create(request) => {
                    let registry = &self.shared.registry;
                    let limits = self.shared.limits;
                    match session_task::spawn(registry, request, self.peer.clone(), limits) {
                        Some((id, handle, answer)) => {
                            self.session = Some((id, handle));
                            match answer {
                                Some(event) => self.player.handle_from_session(event),
                                None => self.player.handle_session_gone(id),
                            }
                        }
                        None => self.player.handle_create_refused(
                            if registry.session_count() >= limits.max_sessions {
                                CreateRefusal::SessionCap
                            } else {
                                CreateRefusal::NoFreeId
                            },
                        ),
                    }
                }
                PlayerOutput::Join { target, input, .. } => {
                    match self.shared.registry.resolve(target) {
                        Some((id, handle)) => {
                            // Set before anything is sent: a disconnect from here on goes to
                            // this session, after the join.
                            self.session = Some((id, handle));
                            let (answer, answered) = oneshot::channel();
                            let msg = SessionMsg::Player {
                                input,
                                peer: Some(self.peer.clone()),
                                answer: Some(answer),
                            };
                            self.waiting = Some(Waiting {
                                msg: Some(msg),
                                answer: Some(answered),
                            });
                            return None;
                        }
                        None => self.player.handle_no_such_session(),
                    }
                }
                PlayerOutput::ToSession(input) => {
                    let Some((id, handle)) = &self.session else {
                        continue;
                    };
                    let (answer, answered) = if input.expects_answer() {
                        let (tx, rx) = oneshot::channel();
                        (Some(tx), Some(rx))
                    } else {
                        (None, None)
                    };
                    let msg = SessionMsg::Player {
                        input,
                        peer: None,
                        answer,
                    };
                    match handle.try_send(msg) {
                        Ok(()) if answered.is_none() => {}
                        Ok(()) => {
                            self.waiting = Some(Waiting {
                                msg: None,
                                answer: answered,
                            });
                            return None;
                        }
                        Err(TrySendError::Full(msg)) => {
                            self.waiting = Some(Waiting {
                                msg: Some(msg),
                                answer: answered,
                            });
                            return None;
                        }
                        Err(TrySendError::Closed(_)) => {
                            let id = *id;
                            self.player.handle_session_gone(id);
                        }
                    }
                }
            }
        }
        None
    }

    /// Waits for what [`PlayerConnection::drain`] left: room in the session's inbox, then the
    /// session's answer; tells the player what came of it.
    async fn wait(&mut self) {
        let Some(Waiting { msg, answer }) = self.waiting.take() else {
            return;
        };
        let Some((id, handle)) = self.session.clone() else {
            return;
        };
        if let Some(msg) = msg {
            if handle.send(msg).await.is_err() {
                return self.player.handle_session_gone(id);
            }
        }
        if let Some(answer) = answer {
            match answer.await {
                Ok(event) => self.player.handle_from_session(event),
                // The session ended before the input reached it.
                Err(_) => self.player.handle_session_gone(id),
            }
        }
    }

    /// Tells the player its connection is gone; returns its disconnect, if it has a session
    /// to leave.
    fn take_disconnect(&mut self) -> Option<SessionMsg> {
        if self.player.is_closed() {
            return None;
        }
        self.player.handle_closed();
        let mut disconnect = None;
        while let Some(output) = self.player.poll_output() {
            if let PlayerOutput::ToSession(input) = output {
                disconnect = Some(SessionMsg::Player {
                    input,
                    peer: None,
                    answer: None,
                });
            }
        }
        disconnect
    }

    /// Leaves the session and closes the WebSocket: after every frame already promised to the
    /// client, so none is lost; the client gets a while to take them (a client that stopped
    /// reading, only a second).
    async fn finish(mut self, end: Option<CloseReason>) {
        self.end = end;
        self.leaving = self.take_disconnect();
        if let Some((_, handle)) = self.session.clone() {
            // Waits for room without taking the message along: cancelled here, `Drop` still
            // has it to send.
            if let Ok(permit) = handle.reserve().await {
                if let Some(msg) = self.leaving.take() {
                    permit.send(msg);
                }
            }
        }
        let (close, grace) = match end {
            // The client closed: complete its close handshake, echoing its code.
            None => {
                let code = self.client_close.map(u16::to_be_bytes);
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
        let outbox = self.peer.outbox.clone();
        outbox.close(close);
        let player = self.player.id();
        drop(self);
        let _ = tokio::time::timeout(grace, outbox.drained()).await;
        let reason = end.map_or("client closed", CloseReason::text);
        tracing::info!(%player, reason, "disconnected");
    }
}
