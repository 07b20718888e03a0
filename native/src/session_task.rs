//! One task per session: the only owner of its `Session`, reached over a channel.

use foldhash::HashMap;

use bytes::Bytes;
use sessionserver_core::{
    Command, Frame, Limits, Membership, Output, PlayerId, Rejection, Session, SessionFormat,
};
use std::sync::Arc;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::connection::{ws_frame_of, Peer};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::socket::Outbox;

/// Commands a session handles before writing what they produced. At rest a batch is one
/// command; under load, one write per member carries up to this many commands' frames.
const BATCH: usize = 64;

/// Members one task writes to after a batch. A broadcast to more goes out from several tasks
/// at once (about 0.5 ms of system calls each).
const WRITES_PER_TASK: usize = 100;

/// Messages a session task waits for between two commands of one connection. Bounded, so a
/// client flooding commands is slowed down (its reader waits) rather than queued without end.
const INBOX: usize = 256;

/// What connections ask of a session.
pub(crate) enum SessionMsg {
    /// Add this player. The ack says whether it joined (`false`: the session had just ended).
    Join {
        peer: Peer,
        ack: oneshot::Sender<bool>,
    },
    /// A member's command. The ack, when asked for, says where the player stands after it.
    Command {
        player: PlayerId,
        command: Result<Command, Rejection>,
        ack: Option<oneshot::Sender<Membership>>,
    },
    /// A member's connection is gone.
    Disconnect { player: PlayerId },
    /// Describe the session as JSON, for operators (`GET /sessions`).
    Describe { reply: oneshot::Sender<String> },
}

/// The way to a session task.
#[derive(Clone)]
pub(crate) struct SessionHandle {
    tx: mpsc::Sender<SessionMsg>,
}

/// The session ended before the message reached it.
#[derive(Debug)]
pub(crate) struct SessionGone;

impl SessionHandle {
    pub(crate) async fn send(&self, msg: SessionMsg) -> Result<(), SessionGone> {
        self.tx.send(msg).await.map_err(|_| SessionGone)
    }

    /// Sends without waiting, when the session's inbox has room.
    pub(crate) fn try_send(&self, msg: SessionMsg) -> Result<(), TrySendError<SessionMsg>> {
        self.tx.try_send(msg)
    }
}

/// Creates a session with `creator` as its first member and starts its task; `None` when the
/// server holds its maximum of sessions.
pub(crate) fn spawn(
    registry: &Registry,
    format: SessionFormat,
    creator: Peer,
    limits: Limits,
) -> Option<SessionHandle> {
    let (tx, rx) = mpsc::channel(INBOX);
    let handle = SessionHandle { tx };
    let id = registry.create_session(handle.clone(), limits.max_sessions)?;
    let session = Session::new(id, format, creator.player, limits);
    tracing::info!(session = %id, creator = %creator.player, "session created");
    let metrics = creator.metrics().clone();
    metrics.session_created();
    metrics.players_in_sessions(1);
    let mut peers = HashMap::default();
    peers.insert(creator.player, creator);
    let task = SessionTask {
        session,
        peers,
        registry: registry.clone(),
        metrics,
        unflushed: Vec::new(),
    };
    tokio::spawn(task.run(rx));
    Some(handle)
}

struct SessionTask {
    session: Session,
    /// Each member's way to its connection.
    peers: HashMap<PlayerId, Peer>,
    registry: Registry,
    metrics: Arc<Metrics>,
    /// Outboxes holding frames not yet written, in the order they got their first.
    unflushed: Vec<Arc<Outbox>>,
}

impl SessionTask {
    async fn run(mut self, mut inbox: mpsc::Receiver<SessionMsg>) {
        self.deliver();
        self.flush();
        while let Some(msg) = inbox.recv().await {
            // Commands that arrived together are handled together, and their frames written
            // after: under load each member then gets several frames per system call.
            self.handle(msg);
            for _ in 1..BATCH {
                if self.session.is_empty() {
                    break;
                }
                match inbox.try_recv() {
                    Ok(msg) => self.handle(msg),
                    Err(_) => break,
                }
            }
            self.flush();
            if self.session.is_empty() {
                break;
            }
        }
        let id = self.session.id();
        // Once out of the registry no connection can find this session; joins already on
        // their way are turned away below, and those players are told "no such session".
        self.registry.remove_session(id);
        inbox.close();
        // Dropping each waiting join's ack tells its connection the session is gone.
        while inbox.recv().await.is_some() {}
        tracing::info!(session = %id, "session destroyed");
    }

    fn handle(&mut self, msg: SessionMsg) {
        match msg {
            SessionMsg::Join { peer, ack } => {
                let player = peer.player;
                self.peers.insert(player, peer);
                let joined = self.session.join(player);
                self.deliver();
                // The connection acts on the ack at once: what it was promised goes first.
                self.flush();
                if joined {
                    self.metrics.players_in_sessions(1);
                } else {
                    self.peers.remove(&player);
                }
                let _ = ack.send(joined);
            }
            SessionMsg::Command {
                player,
                command,
                ack,
            } => {
                let membership = self.session.handle_command(player, command);
                self.deliver();
                if ack.is_some() {
                    self.flush();
                }
                if membership == Membership::Left {
                    self.peers.remove(&player);
                    self.metrics.players_in_sessions(-1);
                }
                if let Some(ack) = ack {
                    let _ = ack.send(membership);
                }
            }
            SessionMsg::Disconnect { player } => {
                if self.session.remove(player) {
                    self.metrics.players_in_sessions(-1);
                }
                self.peers.remove(&player);
                self.deliver();
            }
            SessionMsg::Describe { reply } => {
                let _ = reply.send(self.session.describe());
            }
        }
    }

    /// Queues every frame the session produced in its recipient's outbox, to be written by
    /// [`SessionTask::flush`]. Never waits: a connection that cannot take more is disconnected
    /// by its own task (see `Peer::queue`).
    fn deliver(&mut self) {
        // A broadcast comes out as one output per member, all sharing one buffer: build its
        // WebSocket frame once.
        // `last`: the frame being broadcast, its WebSocket frame, and its recipients so far.
        let mut last: Option<(Frame, Bytes, u64)> = None;
        while let Some(output) = self.session.poll_output() {
            match output {
                Output::Send { to, frame } => {
                    let Some(peer) = self.peers.get(&to) else {
                        continue;
                    };
                    let text = match &mut last {
                        Some((shared, text, recipients))
                            if shared.bytes().as_ptr() == frame.bytes().as_ptr() =>
                        {
                            *recipients += 1;
                            text.clone()
                        }
                        _ => {
                            if let Some((done, _, recipients)) = last.take() {
                                self.metrics.frames_out(&done, recipients);
                            }
                            let text = ws_frame_of(&frame);
                            last = Some((frame, text.clone(), 1));
                            text
                        }
                    };
                    if let Some(outbox) = peer.queue(text) {
                        self.unflushed.push(outbox);
                    }
                }
            }
        }
        if let Some((done, _, recipients)) = last {
            self.metrics.frames_out(&done, recipients);
        }
    }

    /// Writes what the last commands queued. A large session's writes are split over several
    /// tasks, so that every worker thread takes a share and the last member does not wait
    /// for a thousand system calls made one after another.
    fn flush(&mut self) {
        if self.unflushed.len() <= WRITES_PER_TASK {
            for outbox in self.unflushed.drain(..) {
                outbox.flush();
            }
            return;
        }
        let mut rest = self.unflushed.split_off(WRITES_PER_TASK).into_iter();
        loop {
            let chunk: Vec<Arc<Outbox>> = rest.by_ref().take(WRITES_PER_TASK).collect();
            if chunk.is_empty() {
                break;
            }
            tokio::spawn(async move {
                for outbox in chunk {
                    outbox.flush();
                }
            });
        }
        for outbox in self.unflushed.drain(..) {
            outbox.flush();
        }
    }
}
