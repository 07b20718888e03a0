//! One task per session: the only owner of its `Session`, reached over a channel. It feeds the
//! session what the players' machines send and applies the session's outputs: frames to the
//! members' outboxes, each broadcast's WebSocket frame built once, and the session's answers
//! to the players waiting for one.

use foldhash::HashMap;

use bytes::Bytes;
use sessionserver_core::{
    Change, CreateRequest, Limits, Output, PlayerId, Session, SessionId, ToPlayer, ToSession,
};
use std::sync::Arc;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::budget::Budget;
use crate::deflate;
use crate::metrics::Metrics;
use crate::peer::{ws_frame_of, Peer};
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

/// What reaches a session task.
///
/// Two words: tokio's channel allocates its slots 32 at a time, so every session's inbox holds
/// room for 32 messages from its start, idle or not. With a player's input inline that was
/// 2.5 KiB per session (250 B per player in sessions of 10); boxed, about 0.5 KiB, for an allocation
/// per command.
pub(crate) enum SessionMsg {
    /// An input from a player's machine.
    Player(Box<PlayerMsg>),
    /// Describe the session as JSON, for operators (`GET /sessions`).
    Describe { reply: oneshot::Sender<String> },
}

/// An input from a player's machine. `peer` comes with a join (the way to the joiner's
/// connection); `answer` with an input that expects one ([`ToSession::expects_answer`]).
pub(crate) struct PlayerMsg {
    pub(crate) input: ToSession,
    pub(crate) peer: Option<Peer>,
    pub(crate) answer: Option<oneshot::Sender<ToPlayer>>,
}

impl SessionMsg {
    pub(crate) fn player(
        input: ToSession,
        peer: Option<Peer>,
        answer: Option<oneshot::Sender<ToPlayer>>,
    ) -> Self {
        SessionMsg::Player(Box::new(PlayerMsg {
            input,
            peer,
            answer,
        }))
    }
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
    /// A handle and the receiving end of its inbox (for a session task, or a test that plays
    /// one).
    pub(crate) fn channel() -> (SessionHandle, mpsc::Receiver<SessionMsg>) {
        let (tx, rx) = mpsc::channel(INBOX);
        (SessionHandle { tx }, rx)
    }

    pub(crate) async fn send(&self, msg: SessionMsg) -> Result<(), SessionGone> {
        self.tx.send(msg).await.map_err(|_| SessionGone)
    }

    /// Waits for room in the session's inbox; the message is given to the permit after.
    pub(crate) async fn reserve(&self) -> Result<mpsc::Permit<'_, SessionMsg>, SessionGone> {
        self.tx.reserve().await.map_err(|_| SessionGone)
    }

    /// Sends without waiting, when the session's inbox has room.
    pub(crate) fn try_send(&self, msg: SessionMsg) -> Result<(), TrySendError<SessionMsg>> {
        self.tx.try_send(msg)
    }

    /// Sends from where nothing can wait (a `Drop`): at once if the inbox has room, else from
    /// a task of its own. Only a gone session loses it, and then nothing needed it.
    pub(crate) fn send_eventually(&self, msg: SessionMsg) {
        if let Err(TrySendError::Full(msg)) = self.tx.try_send(msg) {
            let tx = self.tx.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = tx.send(msg).await;
                });
            }
        }
    }
}

/// Creates the session a player asked for, with the player as its first member, and starts
/// its task. Returns its ID, the way to it, and the creator's answer (already delivered
/// frames go first); `None` when the server holds its maximum of sessions or has no ID left.
pub(crate) fn spawn(
    registry: &Registry,
    request: CreateRequest,
    creator: Peer,
    limits: Limits,
) -> Option<(SessionId, SessionHandle, Option<ToPlayer>)> {
    let (handle, rx) = SessionHandle::channel();
    let private = request.options.private;
    let id = registry.create_session(handle.clone(), limits.max_sessions, private)?;
    let player = request.player;
    let mut seed = [0u8; 32];
    // Without the OS's random source no token can be unguessable: the session then offers
    // no resume (its members leave when their connection does).
    let seed = match getrandom::fill(&mut seed) {
        Ok(()) => Some(seed),
        Err(e) => {
            tracing::error!(error = %e, "no secure random source: resume is not offered");
            None
        }
    };
    let session = Session::create_seeded(id, request, limits, seed);
    tracing::info!(session = %id, creator = %player, "session created");
    let metrics = creator.metrics().clone();
    let budget = creator.outbox.budget().clone();
    metrics.session_created();
    let mut peers = HashMap::default();
    peers.insert(player, creator);
    let mut task = SessionTask {
        session,
        peers,
        registry: registry.clone(),
        metrics,
        unflushed: Vec::new(),
        ended: false,
        data: DataBytes::default(),
        replay_bytes: 0,
        budget,
        epoch: std::time::Instant::now(),
    };
    let answer = task.deliver(player);
    task.flush();
    tokio::spawn(task.run(rx));
    Some((id, handle, answer))
}

struct SessionTask {
    session: Session,
    /// Each member's way to its connection (and a joiner's, while its join is handled).
    peers: HashMap<PlayerId, Peer>,
    registry: Registry,
    metrics: Arc<Metrics>,
    /// Outboxes holding frames not yet written, in the order they got their first.
    unflushed: Vec<Arc<Outbox>>,
    /// The session said [`Output::Ended`].
    ended: bool,
    /// The data the session stores, as counted in the memory budget.
    data: DataBytes,
    /// The frames kept for away members, as counted in the memory budget.
    replay_bytes: usize,
    budget: Arc<Budget>,
    /// The origin of the milliseconds the session counts in (its egress budgets).
    epoch: std::time::Instant,
}

/// Bytes of JSON a session stores (sessionData, the default playerData and members' own
/// playerData), followed from its changes.
#[derive(Default)]
struct DataBytes {
    total: usize,
    /// Members with data of their own, and its size.
    own: HashMap<PlayerId, usize>,
}

impl DataBytes {
    /// Follows `change`; returns the total before it.
    fn apply(&mut self, change: Change, session: &Session) -> usize {
        let before = self.total;
        match change {
            Change::Created | Change::Format => {
                self.own.clear();
                self.total = session.session_data().as_str().len()
                    + session.default_player_data().as_str().len();
            }
            Change::MemberAdded(_)
            | Change::MemberAway(_)
            | Change::MemberBack(_)
            | Change::Access => {}
            Change::MemberRemoved(player) => {
                self.total -= self.own.remove(&player).unwrap_or(0);
            }
            Change::PlayerData(player) => {
                let now = session
                    .stored_player_data(player)
                    .map_or(0, |data| data.as_str().len());
                let old = if now > 0 {
                    self.own.insert(player, now)
                } else {
                    self.own.remove(&player)
                };
                self.total = self.total - old.unwrap_or(0) + now;
            }
        }
        before
    }
}

impl Drop for SessionTask {
    /// Runs however the task ends, a panic included: no connection can find the session any
    /// more, and if it failed, its members are closed with 1011 instead of waiting in a
    /// session that no longer answers.
    fn drop(&mut self) {
        let id = self.session.id();
        self.registry.remove_session(id);
        self.budget
            .session_moved(self.data.total + self.replay_bytes, 0);
        if !self.ended {
            tracing::error!(session = %id, members = self.peers.len(), "session task failed");
            for peer in self.peers.values() {
                peer.end(sessionserver_core::CloseReason::SessionLost);
            }
        }
    }
}

impl SessionTask {
    /// Milliseconds since the task started: the session's clock.
    fn now_ms(&self) -> u64 {
        self.epoch
            .elapsed()
            .as_millis()
            .try_into()
            .unwrap_or(u64::MAX)
    }

    async fn run(mut self, mut inbox: mpsc::Receiver<SessionMsg>) {
        while !self.ended {
            // The next grace period to end, if a member is away.
            let deadline = self.session.poll_timeout().map(|ms| {
                let at = self.epoch + std::time::Duration::from_millis(ms);
                tokio::time::Instant::from_std(at)
            });
            let msg = tokio::select! {
                msg = inbox.recv() => msg,
                () = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.session.handle_timeout(self.now_ms());
                    self.deliver(PlayerId(u64::MAX));
                    self.flush();
                    continue;
                }
            };
            let Some(msg) = msg else {
                break;
            };
            // Commands that arrived together are handled together, and their frames written
            // after: under load each member then gets several frames per system call.
            self.handle(msg);
            for _ in 1..BATCH {
                if self.ended {
                    break;
                }
                match inbox.try_recv() {
                    Ok(msg) => self.handle(msg),
                    Err(_) => break,
                }
            }
            self.flush();
        }
        let id = self.session.id();
        // Once out of the registry no connection can find this session; inputs already on
        // their way are dropped below with their answer channels, which tells each waiting
        // player that the session is gone.
        self.registry.remove_session(id);
        inbox.close();
        while inbox.recv().await.is_some() {}
        tracing::info!(session = %id, "session destroyed");
    }

    fn handle(&mut self, msg: SessionMsg) {
        match msg {
            SessionMsg::Player(msg) => {
                let PlayerMsg {
                    input,
                    peer,
                    answer,
                } = *msg;
                let from = input.player();
                if let Some(peer) = peer {
                    self.peers.insert(from, peer);
                }
                let now_ms = self.now_ms();
                self.session.handle(now_ms, input);
                let event = self.deliver(from);
                if let (Some(answer), Some(event)) = (answer, event) {
                    // The player acts on the answer at once: what it was promised goes first.
                    self.flush();
                    let _ = answer.send(event);
                }
            }
            SessionMsg::Describe { reply } => {
                let _ = reply.send(self.session.describe());
            }
        }
    }

    /// Queues every frame the session produced in its recipients' outboxes, to be written by
    /// [`SessionTask::flush`], and returns the session's answer to `from`, if any. Never
    /// waits: a connection that cannot take more is disconnected by its own task (see
    /// `Peer::queue`).
    fn deliver(&mut self, mut from: PlayerId) -> Option<ToPlayer> {
        let mut answer = None;
        // Peers are let go once every frame for them is queued (a leaver's sessionLeave
        // comes after the change that removed it).
        let mut gone: Option<PlayerId> = None;
        while let Some(output) = self.session.poll_output() {
            match output {
                Output::Send { to, frame } => {
                    if let Some(peer) = self.peers.get(&to) {
                        self.metrics.frames_out(&frame, 1);
                        if let Some(outbox) = peer.queue(peer.ws_frame(&frame)) {
                            self.unflushed.push(outbox);
                        }
                    }
                }
                Output::Listing(listing) => {
                    self.registry.set_listing(self.session.id(), *listing);
                }
                Output::Pong { to, t } => {
                    if let Some(peer) = self.peers.get(&to) {
                        let frame = sessionserver_core::reply::pong(
                            t.as_deref(),
                            crate::connection::unix_ms(),
                        );
                        self.metrics.frames_out(&frame, 1);
                        if let Some(outbox) = peer.queue(ws_frame_of(&frame)) {
                            self.unflushed.push(outbox);
                        }
                    }
                }
                Output::SendJoinBurst { to, burst } => {
                    if let Some(outbox) = self.peers.get(&to).and_then(|p| p.queue_burst(burst)) {
                        self.unflushed.push(outbox);
                    }
                }
                Output::Broadcast { frame, except } => {
                    let ws_frame: Bytes = ws_frame_of(&frame);
                    // Compressed at most once, when the first member that agreed to
                    // permessage-deflate (and takes frames of this size) comes; `Some(None)`:
                    // compression did not make it shorter.
                    let mut compressed: Option<Option<Bytes>> = None;
                    let mut recipients = 0;
                    for to in self.session.member_ids() {
                        if Some(to) == except {
                            continue;
                        }
                        if let Some(peer) = self.peers.get(&to) {
                            recipients += 1;
                            let ws_frame = if peer.outbox.deflate().takes(frame.bytes().len()) {
                                compressed
                                    .get_or_insert_with(|| deflate::text_frame(frame.bytes()))
                                    .as_ref()
                                    .unwrap_or(&ws_frame)
                            } else {
                                &ws_frame
                            };
                            if let Some(outbox) = peer.queue(ws_frame.clone()) {
                                self.unflushed.push(outbox);
                            }
                        }
                    }
                    self.metrics.frames_out(&frame, recipients);
                }
                Output::Rebind {
                    from: connection,
                    to,
                } => {
                    if let Some(peer) = self.peers.remove(&connection) {
                        self.peers.insert(to, peer);
                    }
                    if from == connection {
                        // The resumed connection's answer is addressed to its new ID.
                        from = to;
                    }
                }
                Output::Away { player } | Output::Release { player } => {
                    self.peers.remove(&player);
                }
                Output::Replaced { player } => {
                    if let Some(old) = self.peers.remove(&player) {
                        old.end(sessionserver_core::CloseReason::Replaced);
                    }
                }
                Output::ToPlayer { to, event } => {
                    if matches!(event, ToPlayer::JoinRefused | ToPlayer::ResumeRefused) {
                        gone = Some(to);
                    }
                    if let ToPlayer::Kicked { session } = event {
                        // Kept until its machine is done with the session (Output::Release):
                        // what it sent meanwhile is answered.
                        if gone == Some(to) {
                            gone = None;
                        }
                        if let Some(peer) = self.peers.get(&to) {
                            peer.outbox.kick(session);
                        }
                    }
                    if to == from {
                        answer = Some(event);
                    }
                }
                Output::Changed(change) => {
                    let before = self.data.apply(change, &self.session);
                    self.budget.session_moved(before, self.data.total);
                    match change {
                        Change::MemberAdded(_) => self.metrics.players_in_sessions(1),
                        Change::MemberRemoved(player) => {
                            self.metrics.players_in_sessions(-1);
                            gone = Some(player);
                        }
                        _ => {}
                    }
                }
                Output::Ended => self.ended = true,
            }
        }
        if let Some(player) = gone {
            self.peers.remove(&player);
        }
        let replay_bytes = self.session.replay_bytes();
        if replay_bytes != self.replay_bytes {
            self.budget.session_moved(self.replay_bytes, replay_bytes);
            self.replay_bytes = replay_bytes;
        }
        answer
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every session's inbox holds room for 32 messages from its start (tokio allocates a
    /// channel's slots in blocks of 32): a message must stay small, or idle sessions cost
    /// kilobytes each. (It was 80 bytes with the input inline.)
    #[test]
    fn a_session_message_is_two_words() {
        assert!(
            std::mem::size_of::<SessionMsg>() <= 16,
            "SessionMsg is {} bytes",
            std::mem::size_of::<SessionMsg>()
        );
    }
}
