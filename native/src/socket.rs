//! Writing to a client: every byte for one connection goes through its [`Outbox`].
//!
//! A session task queues the frames a batch of commands produced ([`Outbox::queue`]) and then
//! writes each member's frames straight to its socket ([`Outbox::flush`]: a non-blocking write,
//! several frames in one system call when several are waiting). At rest a batch is one command
//! and a delivery costs one system call and no task wake-up; under load a member gets many
//! frames per write. Only when the socket cannot take more does the rest wait, and a writer
//! task (started then, gone once the outbox is empty) sends it when the socket is writable.
//! Frames are built once per broadcast and shared by every recipient; control frames (pongs,
//! pings, the close) come here too, so that every frame keeps its place.
//!
//! A joiner's burst (the `playerJoin` of every member) is a [`FrameSource`]: its frames are
//! made as the socket takes them, [`REFILL_BYTES`] at a time, and whatever is queued after it
//! waits behind it (and is what the outbox's limit counts meanwhile). So a reading client
//! joins a session of any size, and one that does not read holds the burst's list of members
//! and at most the limit's worth of later frames.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use sessionserver_core::{CloseReason, SessionId};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

use crate::budget::{Budget, MEMORY_BUDGET_CODE, MEMORY_BUDGET_TEXT};
use crate::deflate::Deflate;

/// Frames handed to one `writev` (Linux takes up to 1,024; 64 frames already fill a socket's
/// send buffer at typical sizes).
const MAX_SLICES: usize = 64;

/// How much of a [`FrameSource`] is made into frames at a time: enough for several frames
/// per system call, little enough that a burst never sits in memory whole.
const REFILL_BYTES: usize = 256 * 1024;

/// What a [`FrameSource`] holds per frame it has yet to make (a member's ID and a reference to
/// its data), for the memory budget.
const SOURCE_COST_PER_FRAME: usize = 32;

/// Whole WebSocket frames made one at a time as the socket takes them; its size hint's lower
/// bound is how many are left.
pub(crate) type FrameSource = Box<dyn Iterator<Item = Bytes> + Send>;

/// What a queued frame costs besides its bytes: its slot in the queue and its allocation's
/// bookkeeping. Counted so that many tiny frames cannot hide behind their size.
pub(crate) const FRAME_COST: usize = 64;

/// The outbox held as many bytes as it may: the client is not reading.
#[derive(Debug)]
pub(crate) struct Full;

/// Why the server ends a connection: a reason of the core's, or one the native host adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    Core(CloseReason),
    /// 4002: the server neared its memory budget and this connection held one of the largest
    /// backlogs.
    MemoryBudget,
    /// 1008: a fragmented message was not finished within `--fragment-timeout-ms`.
    FragmentTimeout,
}

impl Ending {
    /// The native endings after the core's, in the order of the metrics table.
    pub(crate) const NATIVE: [Ending; 2] = [Ending::MemoryBudget, Ending::FragmentTimeout];

    pub(crate) fn code(self) -> u16 {
        match self {
            Ending::Core(reason) => reason.code(),
            Ending::MemoryBudget => MEMORY_BUDGET_CODE,
            Ending::FragmentTimeout => 1008,
        }
    }

    pub(crate) fn text(self) -> &'static str {
        match self {
            Ending::Core(reason) => reason.text(),
            Ending::MemoryBudget => MEMORY_BUDGET_TEXT,
            Ending::FragmentTimeout => "fragmented message not finished in time",
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Ending::Core(reason) => reason.name(),
            Ending::MemoryBudget => "memory_budget",
            Ending::FragmentTimeout => "fragment_timeout",
        }
    }

    /// The client is not reading: what waits for it is dropped and the close goes next.
    pub(crate) fn drops_backlog(self) -> bool {
        matches!(
            self,
            Ending::MemoryBudget | Ending::Core(CloseReason::SendQueueFull)
        )
    }
}

impl From<CloseReason> for Ending {
    fn from(reason: CloseReason) -> Self {
        Ending::Core(reason)
    }
}

#[derive(Default)]
struct State {
    /// Whole frames waiting, in order; the first may be partly written.
    pending: Pending,
    /// A frame source and what was queued after it, behind `pending`; `Some` only while a
    /// source is being written, and then `pending` is not empty (it is refilled from here
    /// whenever it empties).
    later: Option<Box<Later>>,
    /// Bytes of the first pending frame already written.
    written: usize,
    /// What the pending frames and the frames in `later` cost (their lengths plus
    /// [`FRAME_COST`] each).
    bytes: usize,
    /// Of `bytes`, what the memory budget has been told.
    accounted: usize,
    /// Frames taken off the front so far (wrapping): with it, a frame's place is known from
    /// the count at the time it was queued.
    popped: u32,
    /// The pending pong not yet begun, by its number (`popped` + its index when queued).
    pong: Option<u32>,
    /// A writer task is running (it ends when `pending` is empty).
    writer: bool,
    /// A session queued frames and will call `flush`: nothing else needs to write them.
    scheduled: bool,
    /// The close frame is queued: nothing more goes out.
    closed: bool,
    /// A write failed: the connection is gone, nothing more goes out.
    failed: bool,
    /// The close frame was written and the socket's sending side shut down.
    shut: bool,
    /// Why the connection must end, once [`Outbox::end`] was called.
    end: Option<Ending>,
}

pub(crate) struct Outbox {
    socket: OwnedWriteHalf,
    state: Mutex<State>,
    /// Bytes (as counted in `State::bytes`) that may wait before the client counts as not
    /// reading.
    limit: usize,
    budget: Arc<Budget>,
    /// Notified each time the outbox empties (for the end of a connection), and when it is
    /// aborted (for its writer).
    drained: Notify,
    /// Notified when the connection must end for a reason found outside its task: a frame did
    /// not fit (the client is not reading), or its session was lost. Here rather than in an
    /// allocation of its own: memory per idle player.
    ended: Notify,
    /// The session whose host kicked this player ([`NOT_KICKED`]: none), set by that session
    /// before the `sessionLeave` it queued can be written, taken by the connection's task
    /// before it reads the client's next frame: whatever the client sends after seeing its
    /// `sessionLeave` is taken in the lobby.
    kicked_from: AtomicU64,
    /// What the client agreed to in its upgrade: compressed frames (RSV1) or none.
    deflate: Deflate,
}

/// [`Outbox::kick`] was not called (no session has this ID: IDs are below 2^53).
const NOT_KICKED: u64 = u64::MAX;

impl Outbox {
    #[cfg(test)]
    pub(crate) fn new(socket: OwnedWriteHalf, limit: usize, budget: Arc<Budget>) -> Arc<Self> {
        Self::with_deflate(socket, limit, budget, Deflate::OFF)
    }

    /// An outbox for a client that agreed to `deflate` (permessage-deflate) in its upgrade.
    pub(crate) fn with_deflate(
        socket: OwnedWriteHalf,
        limit: usize,
        budget: Arc<Budget>,
        deflate: Deflate,
    ) -> Arc<Self> {
        Arc::new(Outbox {
            socket,
            state: Mutex::new(State::default()),
            limit: limit.max(1),
            budget,
            drained: Notify::new(),
            ended: Notify::new(),
            kicked_from: AtomicU64::new(NOT_KICKED),
            deflate,
        })
    }

    /// What the client agreed to: which of its frames may go compressed.
    pub(crate) fn deflate(&self) -> Deflate {
        self.deflate
    }

    /// The player was kicked from `session` by its host: its task tells the player's machine
    /// before it takes the client's next frame ([`Outbox::take_kick`]).
    pub(crate) fn kick(&self, session: SessionId) {
        self.kicked_from.store(session.0, Ordering::Release);
    }

    /// The session the player was kicked from since the last call, if any.
    pub(crate) fn take_kick(&self) -> Option<SessionId> {
        // A load first: the common case (no kick) writes nothing.
        if self.kicked_from.load(Ordering::Acquire) == NOT_KICKED {
            return None;
        }
        let session = self.kicked_from.swap(NOT_KICKED, Ordering::AcqRel);
        (session != NOT_KICKED).then_some(SessionId(session))
    }

    /// The server's memory budget, which this outbox counts in.
    pub(crate) fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// Asks the connection's task to close with `reason` (the first reason given wins).
    pub(crate) fn end(&self, reason: impl Into<Ending>) {
        let mut state = self.lock();
        Self::end_locked(&self.ended, &mut state, reason.into());
    }

    fn end_locked(ended: &Notify, state: &mut State, reason: Ending) -> bool {
        if state.end.is_some() {
            return false;
        }
        state.end = Some(reason);
        // A permit is stored if the task is not waiting yet: the request is not lost.
        ended.notify_one();
        true
    }

    /// Resolves with the reason once [`Outbox::end`] was called.
    pub(crate) async fn ended(&self) -> Ending {
        loop {
            if let Some(reason) = self.lock().end {
                return reason;
            }
            self.ended.notified().await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held, so a poisoned lock still holds a whole state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the pending frames cost, in bytes (see [`FRAME_COST`]).
    pub(crate) fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Tells the memory budget what this outbox holds now. Only a backlog (a writer task
    /// waiting for the socket) is counted: frames written at once never touch the shared
    /// counter.
    fn account(&self, state: &mut State) {
        let now = if state.writer {
            state.bytes + state.later.as_ref().map_or(0, |later| later.source_bytes())
        } else {
            0
        };
        if now != state.accounted {
            let before = std::mem::replace(&mut state.accounted, now);
            self.budget.outbox_moved(before, now);
        }
    }

    /// Would `frame` take the outbox over its limit? (One frame always fits in an empty one.)
    /// While a frame source is being written, what waits behind it counts: the source's own
    /// frames are made only as the socket takes them.
    fn over_limit(&self, state: &State, frame: &Bytes) -> bool {
        match &state.later {
            Some(later) => later.bytes + frame.len() + FRAME_COST > self.limit,
            None => {
                !state.pending.is_empty() && state.bytes + frame.len() + FRAME_COST > self.limit
            }
        }
    }

    /// Sends a whole frame after everything before it, without waiting.
    pub(crate) fn send(self: &Arc<Self>, frame: Bytes) -> Result<(), Full> {
        let mut state = self.lock();
        if state.closed || state.failed {
            return Ok(());
        }
        if self.over_limit(&state, &frame) {
            return Err(Full);
        }
        self.push_data(&mut state, frame);
        Ok(())
    }

    /// Queues a frame for the next [`Outbox::flush`]. `Ok(true)`: the caller must flush this
    /// outbox (nobody else will write the frame); `Ok(false)`: a flush or a writer is already
    /// on its way, or the connection is closing.
    pub(crate) fn queue(self: &Arc<Self>, frame: Bytes) -> Result<bool, Full> {
        let mut state = self.lock();
        if state.closed || state.failed {
            return Ok(false);
        }
        if self.over_limit(&state, &frame) {
            // Before calling the client slow, let the socket take what it can.
            if !state.writer && self.write_some(&mut state).is_err() {
                state.failed = true;
                return Ok(false);
            }
            if self.over_limit(&state, &frame) {
                return Err(Full);
            }
        }
        let behind_source = state.later.is_some();
        state.push_data(frame);
        self.account(&mut state);
        if state.writer || state.scheduled || behind_source {
            return Ok(false);
        }
        state.scheduled = true;
        Ok(true)
    }

    /// Queues frames made as the socket takes them, after everything before; what is queued
    /// later waits behind them. Never refused: what a source holds is bounded by whoever made
    /// it (a joiner's burst, by its session). Returns as [`Outbox::queue`] does.
    pub(crate) fn queue_source(self: &Arc<Self>, source: FrameSource) -> bool {
        let mut state = self.lock();
        if state.closed || state.failed {
            return false;
        }
        let later = state.later.get_or_insert_default();
        later.items.push_back(Waiting::Source(source));
        if state.pending.is_empty() {
            state.refill();
        }
        self.account(&mut state);
        if state.writer || state.scheduled || state.pending.is_empty() {
            return false;
        }
        state.scheduled = true;
        true
    }

    /// Writes what [`Outbox::queue`] left, as far as the socket takes it now; the rest goes to
    /// a writer task.
    pub(crate) fn flush(self: &Arc<Self>) {
        let mut state = self.lock();
        state.scheduled = false;
        if !state.writer {
            self.write_or_hand_over(&mut state);
        }
    }

    /// Sends a ping. It counts in the outbox's bytes but is never refused: the heartbeat sends
    /// at most one per `ping_after`, and a full outbox is the overflow rule's business.
    pub(crate) fn ping(self: &Arc<Self>) {
        let mut state = self.lock();
        if !state.closed && !state.failed {
            self.push(&mut state, frame(9, &[]));
        }
    }

    /// Answers a client's ping. At most one pong waits at a time: while one has not begun to
    /// go out, a newer ping's pong takes its place (RFC 6455 5.5.3 allows answering only the
    /// latest ping), so a client that sends pings without reading holds one frame. A pong
    /// that does not fit in a full outbox ends the connection like any frame (4001).
    pub(crate) fn pong(self: &Arc<Self>, payload: &[u8]) -> Result<(), Full> {
        let mut state = self.lock();
        if state.closed || state.failed {
            return Ok(());
        }
        let pong = frame(10, payload);
        if let Some(number) = state.pong {
            let index = number.wrapping_sub(state.popped) as usize;
            let begun = index == 0 && state.written > 0;
            if !begun {
                if let Some(old) = state.pending.get_mut(index) {
                    let (old_len, new_len) = (old.len(), pong.len());
                    *old = pong;
                    state.bytes = state.bytes - old_len + new_len;
                    return Ok(());
                }
            }
            state.pong = None;
        }
        if self.over_limit(&state, &pong) {
            return Err(Full);
        }
        state.pong = Some(state.popped.wrapping_add(state.pending.len() as u32));
        self.push(&mut state, pong);
        Ok(())
    }

    /// Queues the close frame after everything queued; nothing goes out after it.
    pub(crate) fn close(self: &Arc<Self>, frame: Bytes) {
        let mut state = self.lock();
        if !state.closed && !state.failed {
            // Marked first: once the close frame is written, the sending side is shut down.
            state.closed = true;
            self.push_data(&mut state, frame);
        }
    }

    /// Drops every pending frame except one already begun (the client would see a broken
    /// frame), then queues the close frame: for a client that is not reading.
    pub(crate) fn close_now(self: &Arc<Self>, frame: Bytes) {
        let mut state = self.lock();
        state.drop_backlog();
        self.account(&mut state);
        drop(state);
        self.close(frame);
    }

    /// Closes this connection to keep the server within its memory budget: its backlog is let
    /// go now, and its task is asked to close with 4002. `false` if it was already ending.
    pub(crate) fn shed(&self) -> bool {
        let mut state = self.lock();
        state.drop_backlog();
        self.account(&mut state);
        Self::end_locked(&self.ended, &mut state, Ending::MemoryBudget)
    }

    /// Gives up on the connection: nothing more is written, everything pending is let go, and
    /// a writer task waiting for the socket ends.
    pub(crate) fn abort(&self) {
        let mut state = self.lock();
        state.failed = true;
        state.pending = Pending::default();
        state.later = None;
        state.written = 0;
        state.bytes = 0;
        state.pong = None;
        self.account(&mut state);
        drop(state);
        self.drained.notify_waiters();
    }

    /// The close frame was written whole and the socket's sending side shut down.
    pub(crate) fn is_shut(&self) -> bool {
        self.lock().shut
    }

    /// Resolves once everything queued has been written (or writing failed). For a closing
    /// connection: only after [`Outbox::close`] is the wait woken when the outbox empties.
    pub(crate) async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            {
                let state = self.lock();
                if state.pending.is_empty() || state.failed {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Sends a data frame (or the close) after everything, a frame source's frames included.
    fn push_data(self: &Arc<Self>, state: &mut State, frame: Bytes) {
        if state.later.is_some() {
            // The writer is on its way (`pending` is not empty): it comes to the frame.
            state.push_data(frame);
            self.account(state);
        } else {
            self.push(state, frame);
        }
    }

    /// Sends a frame now if nothing waits before it, else after what is pending (a control
    /// frame goes ahead of what waits behind a frame source: it may come between any two
    /// messages).
    fn push(self: &Arc<Self>, state: &mut State, frame: Bytes) {
        state.push_back(frame);
        // A running writer, or a batch waiting for its session's flush, takes it along.
        if !(state.writer || state.scheduled) {
            self.write_or_hand_over(state);
        } else {
            self.account(state);
        }
    }

    /// Writes pending frames without waiting; what the socket cannot take now goes to a writer
    /// task. Not for when a writer task already runs.
    fn write_or_hand_over(self: &Arc<Self>, state: &mut State) {
        if self.write_some(state).is_err() {
            // The reader sees the connection fail and ends it.
            state.failed = true;
        }
        if state.pending.is_empty() || state.failed {
            self.emptied(state);
        } else {
            state.writer = true;
            self.budget.backlogged(self);
            self.account(state);
            tokio::spawn(self.clone().write_pending());
        }
    }

    /// The writer task: writes what is pending whenever the socket can take it, then ends.
    /// [`Outbox::abort`] ends it too.
    async fn write_pending(self: Arc<Self>) {
        loop {
            let aborted = self.drained.notified();
            tokio::pin!(aborted);
            // Registered before the state is looked at, so an abort in between is not missed.
            aborted.as_mut().enable();
            if self.lock().failed {
                break;
            }
            let ready = tokio::select! {
                ready = self.socket.writable() => ready,
                () = aborted => Ok(()),
            };
            let mut state = self.lock();
            if state.failed {
                break;
            }
            if ready.is_err() || self.write_some(&mut state).is_err() {
                state.failed = true;
            }
            if state.pending.is_empty() || state.failed {
                break;
            }
            self.account(&mut state);
        }
        let mut state = self.lock();
        state.writer = false;
        self.account(&mut state);
        self.budget.caught_up(&self);
        self.emptied(&mut state);
    }

    /// Everything queued is written, or nothing more can be: once the close frame is out, the
    /// sending side is shut down (the client reads the close, then the end of the stream,
    /// while the server may still read what the client sends); wakes a closing connection's
    /// wait for that. Only a connection whose close frame is queued waits
    /// ([`Outbox::drained`]), so the wake (a lock inside `Notify`) is skipped at other times.
    fn emptied(&self, state: &mut State) {
        if state.closed && state.pending.is_empty() && !state.failed && !state.shut {
            state.shut = true;
            let _ = socket2::SockRef::from(self.socket.as_ref()).shutdown(Shutdown::Write);
        }
        if state.closed || state.failed {
            self.drained.notify_waiters();
        }
    }

    /// Writes pending frames (several per system call) until done or the socket is full,
    /// making a frame source's frames as they are needed.
    fn write_some(&self, state: &mut State) -> io::Result<()> {
        loop {
            if state.pending.is_empty() {
                state.refill();
            }
            let Some(first) = &state.pending.first else {
                break;
            };
            let first = &first[state.written..];
            let result = if state.pending.rest.is_none() {
                // The common case (a frame on its way to an idle client): one plain write.
                self.socket.try_write(first)
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                slices[0] = IoSlice::new(first);
                let mut count = 1;
                let rest = state.pending.rest.iter().flat_map(|rest| rest.iter());
                for (slot, frame) in slices[1..].iter_mut().zip(rest) {
                    *slot = IoSlice::new(frame);
                    count += 1;
                }
                self.socket.try_write_vectored(&slices[..count])
            };
            let mut n = match result {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            };
            while let Some(first) = &state.pending.first {
                let left = first.len() - state.written;
                if n < left {
                    state.written += n;
                    break;
                }
                n -= left;
                state.pop_front();
            }
        }
        Ok(())
    }
}

impl State {
    fn push_back(&mut self, frame: Bytes) {
        self.bytes += frame.len() + FRAME_COST;
        self.pending.push_back(frame);
    }

    /// A data frame: behind a frame source if one is being written, else pending.
    fn push_data(&mut self, frame: Bytes) {
        match &mut self.later {
            Some(later) => {
                let cost = frame.len() + FRAME_COST;
                later.bytes += cost;
                self.bytes += cost;
                later.items.push_back(Waiting::Frame(frame));
            }
            None => self.push_back(frame),
        }
    }

    /// Moves up to [`REFILL_BYTES`] (and at most [`MAX_SLICES`] frames) from `later` into
    /// `pending`, making a source's frames now.
    fn refill(&mut self) {
        let Some(later) = self.later.as_mut() else {
            return;
        };
        let (mut bytes, mut frames) = (0, 0);
        while bytes < REFILL_BYTES && frames < MAX_SLICES {
            let frame = match later.items.front_mut() {
                None => break,
                Some(Waiting::Source(source)) => match source.next() {
                    Some(frame) => {
                        self.bytes += frame.len() + FRAME_COST;
                        frame
                    }
                    None => {
                        later.items.pop_front();
                        continue;
                    }
                },
                Some(Waiting::Frame(_)) => {
                    let Some(Waiting::Frame(frame)) = later.items.pop_front() else {
                        unreachable!("the front was a frame");
                    };
                    // Already counted in `self.bytes`.
                    later.bytes -= frame.len() + FRAME_COST;
                    frame
                }
            };
            bytes += frame.len();
            frames += 1;
            self.pending.push_back(frame);
        }
        if later.items.is_empty() {
            self.later = None;
        }
    }

    fn pop_front(&mut self) {
        if let Some(first) = &self.pending.first {
            self.bytes -= first.len() + FRAME_COST;
        }
        if self.pong == Some(self.popped) {
            self.pong = None;
        }
        self.pending.pop_front();
        self.popped = self.popped.wrapping_add(1);
        self.written = 0;
    }

    /// Lets go of every pending frame but one already begun. (Frame numbers stay right: only
    /// the pong's is kept, and it is forgotten here.)
    fn drop_backlog(&mut self) {
        let keep = if self.written > 0 {
            self.pending.first.take()
        } else {
            None
        };
        self.pending = Pending::default();
        self.later = None;
        self.bytes = 0;
        self.pong = None;
        match keep {
            Some(first) => self.push_back(first),
            None => self.written = 0,
        }
    }
}

/// What waits behind a frame source.
#[derive(Default)]
struct Later {
    /// In order; the first is a source whenever `pending` is being refilled from it.
    items: VecDeque<Waiting>,
    /// What the frames among `items` cost (as [`State::bytes`] counts them): the outbox's
    /// limit while a source is being written.
    bytes: usize,
}

enum Waiting {
    Frame(Bytes),
    Source(FrameSource),
}

impl Later {
    /// What the sources hold for the frames they have yet to make.
    fn source_bytes(&self) -> usize {
        let sources = self.items.iter().filter_map(|item| match item {
            Waiting::Source(source) => Some(source.size_hint().0),
            Waiting::Frame(_) => None,
        });
        sources.sum::<usize>() * SOURCE_COST_PER_FRAME
    }
}

/// The frames of one outbox, in order. The first is held apart from the rest: most of the
/// time it is the only one, and then sending it allocates nothing. The rest live in a queue
/// that exists only while it holds frames, so an idle connection holds no buffer (with many
/// thousands of players connected, every word of an idle connection adds up).
#[derive(Default)]
struct Pending {
    /// `None` only when `rest` is too.
    first: Option<Bytes>,
    /// `Some` only while it holds frames.
    #[expect(
        clippy::box_collection,
        reason = "a box is one word in every idle connection, a VecDeque four"
    )]
    rest: Option<Box<VecDeque<Bytes>>>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.as_ref().map_or(0, |rest| rest.len())
    }

    fn push_back(&mut self, frame: Bytes) {
        if self.first.is_none() {
            self.first = Some(frame);
        } else {
            self.rest.get_or_insert_default().push_back(frame);
        }
    }

    fn get_mut(&mut self, index: usize) -> Option<&mut Bytes> {
        match index {
            0 => self.first.as_mut(),
            i => self.rest.as_mut().and_then(|rest| rest.get_mut(i - 1)),
        }
    }

    fn pop_front(&mut self) {
        self.first = self.rest.as_mut().and_then(|rest| rest.pop_front());
        if self.rest.as_ref().is_some_and(|rest| rest.is_empty()) {
            self.rest = None;
        }
    }
}

/// A WebSocket frame from the server (never masked), ready to write: `opcode` 1 text, 8 close,
/// 9 ping.
pub(crate) fn frame(opcode: u8, payload: &[u8]) -> Bytes {
    frame_with(0x80 | opcode, payload)
}

/// A whole frame whose first byte (FIN, RSV1-3, opcode) is `first`.
pub(crate) fn frame_with(first: u8, payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(first);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// The close frame for `reason`.
pub(crate) fn close_frame(reason: Ending) -> Bytes {
    let mut payload = reason.code().to_be_bytes().to_vec();
    payload.extend_from_slice(reason.text().as_bytes());
    frame(8, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    /// An outbox on one end of a loopback connection, and the other end.
    async fn outbox_and_client(limit: usize) -> (Arc<Outbox>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (_read, write) = accepted.unwrap().0.into_split();
        let budget = Budget::new(1 << 40);
        (Outbox::new(write, limit, budget), client.unwrap())
    }

    #[tokio::test]
    async fn queued_frames_go_out_in_order_at_the_flush() {
        let (outbox, mut client) = outbox_and_client(8192).await;
        // Only the first frame of a batch asks for a flush: one per member per batch.
        assert!(matches!(outbox.queue(frame(1, b"one")), Ok(true)));
        assert!(matches!(outbox.queue(frame(1, b"two")), Ok(false)));
        // A control frame joins the batch instead of overtaking it.
        outbox.ping();
        assert!(matches!(outbox.queue(frame(1, b"three")), Ok(false)));
        outbox.flush();
        let expected = [
            &frame(1, b"one")[..],
            &frame(1, b"two"),
            &frame(9, b""),
            &frame(1, b"three"),
        ]
        .concat();
        let mut got = vec![0; expected.len()];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, expected);
        // After the flush, the next frame asks for one again.
        assert!(matches!(outbox.queue(frame(1, b"four")), Ok(true)));
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_fills_the_outbox_up_to_its_bytes() {
        let limit = 4 * 60_100;
        let (outbox, _client) = outbox_and_client(limit).await;
        let big = frame(2, &vec![0u8; 60_000]);
        // The kernel's buffers take some megabytes; then four frames wait, and the fifth is
        // refused.
        let mut accepted = 0;
        while outbox.queue(big.clone()).is_ok() {
            accepted += 1;
            outbox.flush();
            assert!(accepted < 100_000, "the outbox never filled");
        }
        assert!(accepted > 4);
        let state = outbox.lock();
        assert_eq!(state.pending.len(), 4);
        assert_eq!(state.bytes, 4 * (big.len() + FRAME_COST));
        assert!(state.bytes <= limit);
        // A backlog is what the memory budget counts.
        assert!(state.writer);
        assert_eq!(outbox.budget().outbox_bytes(), state.bytes);
    }

    #[tokio::test]
    async fn pings_from_a_client_that_does_not_read_leave_one_pong_waiting() {
        let (outbox, mut client) = outbox_and_client(64 * 1024).await;
        // Fill the kernel's buffers so that frames wait.
        let big = frame(2, &vec![0u8; 60_000]);
        let mut sent = 0;
        while outbox.lock().pending.is_empty() {
            outbox.send(big.clone()).ok().unwrap();
            sent += 1;
        }
        let before = outbox.queued_bytes();
        for i in 0..100_000u32 {
            outbox.pong(&i.to_be_bytes()).ok();
        }
        let (bytes, last) = {
            let state = outbox.lock();
            let last = state.pending.rest.as_ref().unwrap().back().unwrap().clone();
            (state.bytes, last)
        };
        // One pong waits, carrying the latest ping's payload.
        assert_eq!(bytes, before + 6 + FRAME_COST);
        assert_eq!(&last[..], &[0x8a, 4, 0, 1, 0x86, 0x9f]);
        // Once the client reads, that pong goes out; a later ping gets a pong of its own.
        let mut got = vec![0u8; sent * big.len() + last.len()];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[got.len() - 6..], &last[..]);
        assert_eq!(outbox.lock().pong, None);
        outbox.pong(b"again").unwrap();
        let mut again = [0u8; 7];
        client.read_exact(&mut again).await.unwrap();
        assert_eq!(&again, b"\x8a\x05again");
    }

    #[tokio::test]
    async fn shedding_lets_go_of_the_backlog_at_once_and_asks_for_4002() {
        let (outbox, _client) = outbox_and_client(1 << 30).await;
        let big = frame(2, &vec![0u8; 60_000]);
        while outbox.queued_bytes() < 1 << 20 {
            outbox.send(big.clone()).ok();
        }
        assert!(outbox.budget().outbox_bytes() >= 1 << 20);
        assert!(outbox.shed());
        // What is left is at most the frame that had begun to go out.
        assert!(outbox.queued_bytes() <= big.len() + FRAME_COST);
        assert!(outbox.budget().outbox_bytes() <= big.len() + FRAME_COST);
        assert_eq!(outbox.ended().await, Ending::MemoryBudget);
        // Aborting lets go of the rest and ends the writer: nothing is counted any more.
        outbox.abort();
        assert_eq!(outbox.budget().outbox_bytes(), 0);
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while outbox.lock().writer {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the writer task of an aborted outbox ended");
    }

    #[tokio::test]
    async fn frames_written_in_parts_arrive_whole_and_in_order() {
        let (outbox, mut client) = outbox_and_client(1 << 30).await;
        // Large frames with distinct contents, more than the kernel's buffers take at once:
        // the first waiting frame is written in parts, the rest by the writer task.
        let frames: Vec<Bytes> = (0..64u8).map(|i| frame(2, &vec![i; 60_000])).collect();
        for f in &frames {
            if matches!(outbox.queue(f.clone()), Ok(true)) {
                outbox.flush();
            }
        }
        let expected = frames.concat();
        let mut got = vec![0; expected.len()];
        client.read_exact(&mut got).await.unwrap();
        assert!(got == expected, "the bytes differ from the frames in order");
        // The close frame goes last, and a closing connection's wait for it ends.
        outbox.close(frame(8, &[]));
        let mut close = [0; 2];
        client.read_exact(&mut close).await.unwrap();
        assert_eq!(close, [0x88, 0]);
        // Then the end of the stream: the server's sending side is shut down.
        assert_eq!(client.read(&mut close).await.unwrap(), 0);
        assert!(outbox.is_shut());
        let drained = tokio::time::timeout(std::time::Duration::from_secs(10), outbox.drained());
        assert!(
            drained.await.is_ok(),
            "the wait for the outbox to empty never ended"
        );
        assert!(outbox.lock().pending.is_empty());
    }

    #[tokio::test]
    async fn a_frame_source_is_written_as_the_socket_takes_it_and_later_frames_follow_it() {
        // A source far larger than the kernel's buffers (1,000 x 60 KB), and a limit far
        // below it: the source does not count against it.
        const FRAMES: usize = 1_000;
        let limit = 3 * 60_100;
        let (outbox, mut client) = outbox_and_client(limit).await;
        let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = made.clone();
        let source = (0..FRAMES).map(move |i| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            frame(2, &vec![i as u8; 60_000])
        });
        assert!(matches!(outbox.queue(frame(1, b"before")), Ok(true)));
        assert!(!outbox.queue_source(Box::new(source)));
        outbox.flush();
        // The client has read nothing: only what the socket took, and one refill, were made.
        assert!(made.load(std::sync::atomic::Ordering::Relaxed) < FRAMES / 2);
        // Frames queued now wait behind the source, and they are what the limit counts.
        outbox.ping();
        assert!(matches!(outbox.queue(frame(1, b"after")), Ok(false)));
        let big = frame(2, &vec![0xee; 60_000]);
        let mut behind = 0;
        while outbox.queue(big.clone()).is_ok() {
            behind += 1;
        }
        let after_cost = frame(1, b"after").len() + FRAME_COST;
        let fit = (limit - after_cost) / (big.len() + FRAME_COST);
        assert_eq!(behind, fit, "the limit holds what waits behind the source");
        // The budget counts the frames made and the source's list, not its 60 MB.
        assert!(outbox.budget().outbox_bytes() < limit + REFILL_BYTES + 2 * 60_100);

        // Reading everything: the frame before, the source's frames in order (the ping may
        // come between two of them), then the frames queued after it.
        let mut expected_data = vec![frame(1, b"before")];
        expected_data.extend((0..FRAMES).map(|i| frame(2, &vec![i as u8; 60_000])));
        expected_data.push(frame(1, b"after"));
        expected_data.extend(std::iter::repeat_n(big.clone(), behind));
        let total: usize = expected_data.iter().map(Bytes::len).sum::<usize>() + 2;
        let mut got = vec![0; total];
        client.read_exact(&mut got).await.unwrap();
        let ping = [0x89u8, 0];
        let at = got
            .windows(2)
            .position(|w| w == ping)
            .expect("the ping arrived");
        got.drain(at..at + 2);
        assert!(
            got == expected_data.concat(),
            "the frames arrived out of order"
        );
        assert_eq!(made.load(std::sync::atomic::Ordering::Relaxed), FRAMES);
        assert!(outbox.lock().later.is_none());
    }

    #[test]
    fn frames_carry_their_length_in_the_shortest_form() {
        assert_eq!(&frame(1, b"hi")[..], &[0x81, 2, b'h', b'i']);
        let medium = frame(1, &[b'x'; 300]);
        assert_eq!(&medium[..4], &[0x81, 126, 1, 44]);
        assert_eq!(medium.len(), 304);
        let large = frame(1, &vec![b'x'; 70_000]);
        assert_eq!(&large[..10], &[0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        assert_eq!(
            &close_frame(CloseReason::Shutdown.into())[..4],
            &[0x88, 22, 0x03, 0xe9]
        );
    }
}
