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

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use sessionserver_core::CloseReason;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

/// Frames handed to one `writev` (Linux takes up to 1,024; 64 frames already fill a socket's
/// send buffer at typical sizes).
const MAX_SLICES: usize = 64;

/// The outbox held as many frames as it may: the client is not reading.
pub(crate) struct Full;

#[derive(Default)]
struct State {
    /// Whole frames waiting, in order; the first may be partly written.
    pending: Pending,
    /// Bytes of the first pending frame already written.
    written: usize,
    /// A writer task is running (it ends when `pending` is empty).
    writer: bool,
    /// A session queued frames and will call `flush`: nothing else needs to write them.
    scheduled: bool,
    /// The close frame is queued: nothing more goes out.
    closed: bool,
    /// A write failed: the connection is gone, nothing more goes out.
    failed: bool,
    /// Why the connection must end, once [`Outbox::end`] was called.
    end: Option<CloseReason>,
}

pub(crate) struct Outbox {
    socket: OwnedWriteHalf,
    state: Mutex<State>,
    /// Frames that may wait before the client counts as not reading.
    limit: usize,
    /// Notified each time the outbox empties (for the end of a connection).
    drained: Notify,
    /// Notified when the connection must end for a reason found outside its task: a frame did
    /// not fit (the client is not reading), or its session was lost. Here rather than in an
    /// allocation of its own: memory per idle player.
    ended: Notify,
}

impl Outbox {
    pub(crate) fn new(socket: OwnedWriteHalf, limit: usize) -> Arc<Self> {
        Arc::new(Outbox {
            socket,
            state: Mutex::new(State::default()),
            limit: limit.max(1),
            drained: Notify::new(),
            ended: Notify::new(),
        })
    }

    /// Asks the connection's task to close with `reason` (the first reason given wins).
    pub(crate) fn end(&self, reason: CloseReason) {
        let mut state = self.lock();
        if state.end.is_none() {
            state.end = Some(reason);
            // A permit is stored if the task is not waiting yet: the request is not lost.
            self.ended.notify_one();
        }
    }

    /// Resolves with the reason once [`Outbox::end`] was called.
    pub(crate) async fn ended(&self) -> CloseReason {
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

    /// Sends a whole frame after everything before it, without waiting.
    pub(crate) fn send(self: &Arc<Self>, frame: Bytes) -> Result<(), Full> {
        let mut state = self.lock();
        if state.closed || state.failed {
            return Ok(());
        }
        if !state.pending.is_empty() && state.pending.len() >= self.limit {
            return Err(Full);
        }
        self.push(&mut state, frame);
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
        if state.pending.len() >= self.limit {
            // Before calling the client slow, let the socket take what it can.
            if !state.writer && self.write_some(&mut state).is_err() {
                state.failed = true;
                return Ok(false);
            }
            if state.pending.len() >= self.limit {
                return Err(Full);
            }
        }
        state.pending.push_back(frame);
        if state.writer || state.scheduled {
            return Ok(false);
        }
        state.scheduled = true;
        Ok(true)
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

    /// Sends bytes whatever the limit: control frames (pings, pongs).
    fn send_control(self: &Arc<Self>, frame: Bytes) {
        let mut state = self.lock();
        if !state.closed && !state.failed {
            self.push(&mut state, frame);
        }
    }

    /// Sends a ping, whatever the limit.
    pub(crate) fn ping(self: &Arc<Self>) {
        self.send_control(frame(9, &[]));
    }

    /// Answers a client's ping, whatever the limit.
    pub(crate) fn pong(self: &Arc<Self>, payload: &[u8]) {
        self.send_control(frame(10, payload));
    }

    /// Queues the close frame after everything queued; nothing goes out after it.
    pub(crate) fn close(self: &Arc<Self>, frame: Bytes) {
        let mut state = self.lock();
        if !state.closed && !state.failed {
            self.push(&mut state, frame);
            state.closed = true;
        }
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

    /// Sends a frame now if nothing waits before it, else after what waits.
    fn push(self: &Arc<Self>, state: &mut State, frame: Bytes) {
        state.pending.push_back(frame);
        // A running writer, or a batch waiting for its session's flush, takes it along.
        if !(state.writer || state.scheduled) {
            self.write_or_hand_over(state);
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
            tokio::spawn(self.clone().write_pending());
        }
    }

    /// The writer task: writes what is pending whenever the socket can take it, then ends.
    async fn write_pending(self: Arc<Self>) {
        loop {
            let ready = self.socket.writable().await;
            let mut state = self.lock();
            if ready.is_err() || self.write_some(&mut state).is_err() {
                state.failed = true;
            }
            if state.pending.is_empty() || state.failed {
                state.writer = false;
                self.emptied(&state);
                return;
            }
        }
    }

    /// Everything queued is written, or nothing more can be: wakes a closing connection's
    /// wait for that. Only a connection whose close frame is queued waits
    /// ([`Outbox::drained`]), so the wake (a lock inside `Notify`) is skipped at other times.
    fn emptied(&self, state: &State) {
        if state.closed || state.failed {
            self.drained.notify_waiters();
        }
    }

    /// Writes pending frames (several per system call) until done or the socket is full.
    fn write_some(&self, state: &mut State) -> io::Result<()> {
        while let Some(first) = &state.pending.first {
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
                state.pending.pop_front();
                state.written = 0;
            }
        }
        Ok(())
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
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
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
pub(crate) fn close_frame(reason: CloseReason) -> Bytes {
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
        (Outbox::new(write, limit), client.unwrap())
    }

    #[tokio::test]
    async fn queued_frames_go_out_in_order_at_the_flush() {
        let (outbox, mut client) = outbox_and_client(8).await;
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
    async fn a_client_that_does_not_read_fills_the_outbox() {
        let (outbox, _client) = outbox_and_client(4).await;
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
        assert_eq!(outbox.lock().pending.len(), 4);
    }

    #[tokio::test]
    async fn frames_written_in_parts_arrive_whole_and_in_order() {
        let (outbox, mut client) = outbox_and_client(1024).await;
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
        let drained = tokio::time::timeout(std::time::Duration::from_secs(10), outbox.drained());
        assert!(
            drained.await.is_ok(),
            "the wait for the outbox to empty never ended"
        );
        assert!(outbox.lock().pending.is_empty());
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
            &close_frame(CloseReason::Shutdown)[..4],
            &[0x88, 22, 0x03, 0xe9]
        );
    }
}
