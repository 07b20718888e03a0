//! One WebSocket connection = one player: a task that reads the client's frames into the
//! core's [`Player`] machine and carries out what it asks (frames to the client, inputs to a
//! session, the heartbeat's pings and closes). What the player is sent goes through its
//! `socket::Outbox`. Whatever the connection holds is let go by [`PlayerConnection`]'s `Drop`,
//! so a panic or a cancelled task still leaves the session.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use sessionserver_core::{
    CloseReason, ConnectionConfig, CreateRefusal, Limits, Player, PlayerOutput, SessionId, ToPlayer,
};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::oneshot;

use crate::budget::Budget;
use crate::counting::Counted;
use crate::frame_reader::{FrameReader, Incoming, ReadError};
use crate::metrics::Metrics;
use crate::peer::Peer;
use crate::registry::Registry;
use crate::session_task::{self, SessionHandle, SessionMsg};
use crate::shutdown::Stopping;
use crate::socket::{self, close_frame, Ending, Outbox};

/// After the server's close frame is out, how long it keeps reading (and discarding) what the
/// client still sends, waiting for the client's close frame or the end of the stream. Closing
/// a socket with unread bytes makes the kernel answer with a reset, which can destroy the
/// close frame before the client reads it (the client then sees 1006, not the code).
const LINGER: Duration = Duration::from_secs(5);
/// How many bytes that discarding reads at most (a 2 MiB message refused after its first
/// kilobytes is read to its end).
const LINGER_BYTES: usize = 8 << 20;
/// Bytes a frame reader may hold before the memory budget counts them: below it, buffers
/// are transient (a read's worth) and counting them would cost every frame two atomic adds.
const INBOUND_COUNTED_FROM: usize = 8 * 1024;

/// What every connection of one server shares.
pub(crate) struct Shared {
    pub(crate) registry: Registry,
    /// Bytes that may wait for one client (see `socket::Outbox`).
    pub(crate) send_queue_bytes: usize,
    /// The whole server's memory account.
    pub(crate) budget: Arc<Budget>,
    /// Time a client has to finish a fragmented message it began.
    pub(crate) fragment_timeout: Duration,
    pub(crate) limits: Limits,
    /// The same, shared by every connection's player machine.
    pub(crate) player_limits: Arc<Limits>,
    pub(crate) connection: ConnectionConfig,
    /// The origin of the milliseconds the core's timers count in.
    pub(crate) epoch: Instant,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) stopping: Stopping,
}

impl Shared {
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The task of one connection: runs it to its end; `counted` (what counts the connection) is
/// dropped then. `None` (and `counted` dropped now) when no player ID is left. `subject` is
/// who the upgrade's auth check found the connection to be (`Config::authorize`), if any.
///
/// Not an `async fn`: an async fn keeps its arguments in the task's future for the whole
/// connection, beside whatever they were moved into (memory per idle player: tokio allocates
/// a task in steps of 128 bytes). The setup runs here, and the future holds only the
/// connection, its frame reader and two `Arc`s.
pub(crate) fn run(
    mut frames: FrameReader,
    outbox: Arc<Outbox>,
    addr: SocketAddr,
    shared: Arc<Shared>,
    counted: Counted,
    subject: Option<String>,
) -> Option<impl Future<Output = ()> + Send> {
    let Some(id) = shared.registry.new_player_id() else {
        tracing::error!("player IDs exhausted; refusing connection");
        return None;
    };
    let mut connection =
        PlayerConnection::new(id, outbox.clone(), shared.clone(), counted, subject);
    tracing::info!(player = %id, %addr, subject = connection.subject(), "connected");
    Some(async move {
        let end = tokio::select! {
            end = connection.read_loop(&mut frames) => end,
            reason = outbox.ended() => Some(reason),
            () = shared.stopping.wait() => Some(CloseReason::Shutdown.into()),
        };
        // The rest runs once per connection: boxed, so that its futures take no room in the
        // connection's task while it is open (memory per idle player).
        Box::pin(connection.finish(end, frames)).await;
    })
}

/// The wall clock, for `pong`'s `serverTime`: milliseconds since the Unix epoch (0 for a
/// clock set before it).
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A session input whose sending had to wait: for room in the session's inbox, or for the
/// session's answer.
struct Waiting {
    msg: Option<SessionMsg>,
    answer: Option<oneshot::Receiver<ToPlayer>>,
}

/// One connection's player, and everything the connection holds. Its `Drop` lets go of all of
/// it however the task ends.
pub(crate) struct PlayerConnection {
    player: Player,
    peer: Peer,
    /// The session the player's inputs go to: the one it last created or was sent to join.
    session: Option<(SessionId, SessionHandle)>,
    /// What the player has to wait for before it takes its next input.
    /// Boxed: rare, and an idle connection then carries one word for it.
    waiting: Option<Box<Waiting>>,
    /// The player's disconnect, until its session has it.
    leaving: Option<Box<SessionMsg>>,
    shared: Arc<Shared>,
    /// The code of the client's close frame, echoed in the reply.
    client_close: Option<u16>,
    /// Why the server closed the connection (`None`: the client did, or it failed).
    end: Option<Ending>,
    /// What the frame reader held when the memory budget was last told.
    inbound: usize,
    /// What counts this connection (its permit, the count of open connections behind the
    /// gauge, the shutdown's wait), let go last (after lingering, see
    /// [`PlayerConnection::finish`]).
    counted: Option<Counted>,
}

impl Drop for PlayerConnection {
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
            handle.send_eventually(*msg);
        }
        self.shared.budget.inbound_moved(self.inbound, 0);
        self.shared.metrics.connection_closed(self.end);
    }
}

impl PlayerConnection {
    pub(crate) fn new(
        id: sessionserver_core::PlayerId,
        outbox: Arc<Outbox>,
        shared: Arc<Shared>,
        counted: Counted,
        subject: Option<String>,
    ) -> Self {
        shared.metrics.connection_opened();
        PlayerConnection {
            player: Player::new(
                id,
                shared.player_limits.clone(),
                shared.connection,
                shared.now_ms(),
            )
            .with_subject(subject.map(Arc::new)),
            peer: Peer::new(outbox, shared.metrics.clone()),
            session: None,
            waiting: None,
            leaving: None,
            shared,
            client_close: None,
            end: None,
            inbound: 0,
            counted: Some(counted),
        }
    }

    /// Who the upgrade's auth check found this connection to be: the JWT's `sub` with
    /// `--auth-secret`, what a library's [`Authorizer`](crate::Authorizer) answered, or
    /// `None` (no check, or one that names no one). It stays the same for the connection's
    /// whole life; its session keeps it with the seat.
    pub(crate) fn subject(&self) -> Option<&str> {
        self.player.subject()
    }

    /// Reads until the client goes; `Some` is the reason the server closes the connection.
    async fn read_loop(&mut self, frames: &mut FrameReader) -> Option<Ending> {
        let epoch = self.shared.epoch;
        let deadline = |player: &Player| {
            tokio::time::Instant::from_std(epoch + Duration::from_millis(player.poll_timeout()))
        };
        // The timer is not re-armed per frame: when it fires, the core looks at the real
        // silence and the timer is set to the next deadline. Activity only postpones the
        // close, so a close is never early; a ping may go out later than it could have, and the
        // client then still has at least `ping_after` to answer before the timeout.
        // The same timer also keeps the deadline of a fragmented message (one timer per
        // connection: memory per idle player).
        let timer = tokio::time::sleep_until(deadline(&self.player));
        tokio::pin!(timer);
        let mut fragment_by: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                message = frames.next() => {
                    let now = self.shared.now_ms();
                    if let Some(session) = self.peer.outbox.take_kick() {
                        self.player.handle_from_session(ToPlayer::Kicked { session });
                    }
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
                            if self.peer.outbox.pong(payload).is_err() {
                                return Some(CloseReason::SendQueueFull.into());
                            }
                            self.player.handle_activity(now);
                        }
                        Ok(Incoming::Pong) => self.player.handle_activity(now),
                        // Only what the reader holds changed: counted below.
                        Ok(Incoming::Partial) => {}
                        Ok(Incoming::Close(code)) => {
                            self.client_close = code;
                            return None;
                        }
                        Err(ReadError::Gone) => return None,
                        Err(ReadError::TooBig) => return Some(CloseReason::TooBig.into()),
                        Err(ReadError::InvalidUtf8) => return Some(CloseReason::InvalidUtf8.into()),
                        Err(ReadError::Protocol) => return Some(CloseReason::ProtocolError.into()),
                    }
                    self.count_inbound(frames);
                    match (frames.is_mid_message(), fragment_by) {
                        (true, None) => {
                            let by = tokio::time::Instant::now() + self.shared.fragment_timeout;
                            fragment_by = Some(by);
                            if by < timer.deadline() {
                                timer.as_mut().reset(by);
                            }
                        }
                        // The timer may fire before the heartbeat needs it: that is harmless.
                        (false, Some(_)) => fragment_by = None,
                        _ => {}
                    }
                }
                () = &mut timer => {
                    let now = tokio::time::Instant::now();
                    if fragment_by.is_some_and(|by| by <= now) {
                        return Some(Ending::FragmentTimeout);
                    }
                    if deadline(&self.player) <= now {
                        self.player.handle_timeout(self.shared.now_ms());
                    }
                    let next = deadline(&self.player);
                    timer.as_mut().reset(fragment_by.map_or(next, |by| by.min(next)));
                }
            }
            // No frame is read while the player waits for its session: replies stay in the
            // order of the commands.
            loop {
                if let Some(reason) = self.drain() {
                    return Some(reason.into());
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

    /// Tells the memory budget what the frame reader holds, when that is more than a read's
    /// worth (or was).
    fn count_inbound(&mut self, frames: &FrameReader) {
        let held = frames.buffered_len();
        let held = if held >= INBOUND_COUNTED_FROM {
            held
        } else {
            0
        };
        if held != self.inbound {
            self.shared.budget.inbound_moved(self.inbound, held);
            self.inbound = held;
        }
    }

    /// Carries out what the player asks, without waiting; stops at the first output that must
    /// wait (left in `waiting`) or at a close.
    fn drain(&mut self) -> Option<CloseReason> {
        while let Some(output) = self.player.poll_output() {
            let output = match output {
                PlayerOutput::JoinOrCreate(request) => {
                    let max = self.shared.limits.max_players_per_session;
                    let found = (!request.create_only)
                        .then(|| self.shared.registry.best_match(&request, max))
                        .flatten();
                    request.into_output(found)
                }
                other => other,
            };
            match output {
                // Turned into a join or a create above.
                PlayerOutput::JoinOrCreate(_) => {}
                PlayerOutput::Send(frame) => self.peer.send(&frame),
                // A full queue is the overflow rule's business, not the heartbeat's.
                PlayerOutput::Ping => self.peer.outbox.ping(),
                PlayerOutput::ListSessions(request) => {
                    let max = self.shared.limits.max_players_per_session;
                    self.peer.send(&self.shared.registry.list(&request, max));
                }
                PlayerOutput::Pong(t) => self
                    .peer
                    .send(&sessionserver_core::reply::pong(t.as_deref(), unix_ms())),
                PlayerOutput::Close(reason) => return Some(reason),
                PlayerOutput::Create(request) => {
                    let registry = &self.shared.registry;
                    let limits = self.shared.limits;
                    match session_task::spawn(registry, *request, self.peer.clone(), limits) {
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
                            let msg =
                                SessionMsg::player(input, Some(self.peer.clone()), Some(answer));
                            self.waiting = Some(Box::new(Waiting {
                                msg: Some(msg),
                                answer: Some(answered),
                            }));
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
                    let msg = SessionMsg::player(input, None, answer);
                    match handle.try_send(msg) {
                        Ok(()) if answered.is_none() => {}
                        Ok(()) => {
                            self.waiting = Some(Box::new(Waiting {
                                msg: None,
                                answer: answered,
                            }));
                            return None;
                        }
                        Err(TrySendError::Full(msg)) => {
                            self.waiting = Some(Box::new(Waiting {
                                msg: Some(msg),
                                answer: answered,
                            }));
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
        let Some(waiting) = self.waiting.take() else {
            return;
        };
        let Waiting { msg, answer } = *waiting;
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
    fn take_disconnect(&mut self) -> Option<Box<SessionMsg>> {
        if self.player.is_closed() {
            return None;
        }
        self.player.handle_closed();
        let mut disconnect = None;
        while let Some(output) = self.player.poll_output() {
            if let PlayerOutput::ToSession(input) = output {
                disconnect = Some(Box::new(SessionMsg::player(input, None, None)));
            }
        }
        disconnect
    }

    /// Leaves the session and closes the WebSocket: after every frame already promised to the
    /// client, so none is lost; the client gets a while to take them (a client that stopped
    /// reading, only a second, and what waited for it is dropped). Once the close frame is
    /// out, the socket's sending side is shut down and, when the server closed the
    /// connection, what the client still sends is read and discarded until its close frame or
    /// the end of the stream ([`linger`]), so that the client receives the close frame rather
    /// than a reset.
    async fn finish(mut self, end: Option<Ending>, frames: FrameReader) {
        self.end = end;
        self.leaving = self.take_disconnect();
        if let Some((_, handle)) = self.session.clone() {
            // Waits for room without taking the message along: cancelled here, `Drop` still
            // has it to send.
            if let Ok(permit) = handle.reserve().await {
                if let Some(msg) = self.leaving.take() {
                    permit.send(*msg);
                }
            }
        }
        let outbox = self.peer.outbox.clone();
        let grace = match end {
            // The client closed: complete its close handshake, echoing its code.
            None => {
                let code = self.client_close.map(u16::to_be_bytes);
                outbox.close(socket::frame(8, code.as_ref().map_or(&[][..], |c| &c[..])));
                Duration::from_secs(5)
            }
            Some(reason) if reason.drops_backlog() => {
                outbox.close_now(close_frame(reason));
                Duration::from_secs(1)
            }
            Some(reason) => {
                outbox.close(close_frame(reason));
                Duration::from_secs(5)
            }
        };
        let player = self.player.id();
        let held = self.counted.take();
        drop(self);
        let _ = tokio::time::timeout(grace, outbox.drained()).await;
        if end.is_some() && outbox.is_shut() {
            let _ = tokio::time::timeout(LINGER, linger(frames)).await;
        }
        // Whatever is still queued (a client that never read its close) is let go now.
        outbox.abort();
        drop(held);
        let reason = end.map_or("client closed", Ending::text);
        tracing::info!(%player, reason, "disconnected");
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
/// Reads and discards what a client sends after the server's close frame, up to
/// [`LINGER_BYTES`], until the client's close frame or the end of the stream.
async fn linger(frames: FrameReader) {
    use tokio::io::AsyncReadExt;

    let (mut source, rest) = frames.into_parts();
    let mut skipper = Skipper::default();
    if skipper.feed(&rest) {
        return;
    }
    drop(rest);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut left = LINGER_BYTES;
    while left > 0 {
        let want = chunk.len().min(left);
        match source.read(&mut chunk[..want]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                left -= n;
                if skipper.feed(&chunk[..n]) {
                    return;
                }
            }
        }
    }
}

/// Follows a client's frames by their headers without keeping their payloads, to see its
/// close frame. After a header that cannot be parsed it loses track and sees nothing more.
#[derive(Default)]
struct Skipper {
    /// A frame header so far (at most [`Skipper::MAX_HEADER`] bytes).
    header: Vec<u8>,
    /// Payload bytes of the current frame still to skip.
    skip: u64,
    /// The current frame is the client's close.
    closing: bool,
    lost: bool,
}

impl Skipper {
    const MAX_HEADER: usize = 14;

    /// Takes the next bytes from the client; `true` once its close frame has been read whole
    /// (so that the socket is closed with nothing unread).
    fn feed(&mut self, mut bytes: &[u8]) -> bool {
        use std::io::Cursor;
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, OpCode};
        use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

        while !self.lost {
            if self.closing && self.skip == 0 {
                return true;
            }
            if bytes.is_empty() {
                break;
            }
            if self.skip > 0 {
                let n = usize::try_from(self.skip).map_or(bytes.len(), |s| s.min(bytes.len()));
                bytes = &bytes[n..];
                self.skip -= n as u64;
                continue;
            }
            let take = bytes.len().min(Self::MAX_HEADER - self.header.len());
            self.header.extend_from_slice(&bytes[..take]);
            let mut cursor = Cursor::new(&self.header[..]);
            match FrameHeader::parse(&mut cursor) {
                Ok(Some((header, length))) => {
                    self.closing = header.opcode == OpCode::Control(Control::Close);
                    // Bytes gathered past the header are payload, from the end of `take`
                    // (the header was incomplete before them, so fewer than `take`).
                    let past = self.header.len() - cursor.position() as usize;
                    bytes = &bytes[take - past..];
                    self.header.clear();
                    self.skip = length;
                }
                Ok(None) if self.header.len() < Self::MAX_HEADER => bytes = &bytes[take..],
                Ok(None) | Err(_) => self.lost = true,
            }
        }
        false
    }
}

#[cfg(test)]
mod skipper_tests {
    use super::Skipper;
    use crate::frame_reader::{client_frame, client_frame_header};

    #[test]
    fn the_skipper_finds_the_close_frame_however_the_bytes_are_cut() {
        let mut bytes = client_frame(true, 2, &vec![7; 70_000]);
        bytes.extend(client_frame(true, 1, &[b'x'; 300]));
        bytes.extend(client_frame(true, 9, b"ping"));
        bytes.extend(client_frame(true, 8, &[0x03, 0xe8]));
        for cut in [1, 2, 3, 7, 13, 14, 15, 1000, 70_010] {
            let mut skipper = Skipper::default();
            let seen = bytes.chunks(cut).any(|chunk| skipper.feed(chunk));
            assert!(seen, "cut every {cut} bytes");
        }
        // Without the close frame, nothing is seen.
        let mut skipper = Skipper::default();
        let without = &bytes[..bytes.len() - 1];
        assert!(!without.chunks(5).any(|chunk| skipper.feed(chunk)));
        // The payload of a data frame is never taken for a header: here the payload's bytes
        // on the wire are a close frame's (the shared builder would mask them, so the header
        // is followed by the inner frame as is).
        let close = client_frame(true, 8, b"");
        let mut data = client_frame_header(true, 2, close.len() as u64);
        data.extend_from_slice(&close);
        let mut skipper = Skipper::default();
        assert!(!skipper.feed(&data));
    }
}
