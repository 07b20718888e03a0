//! Writing to a client: every byte for one connection goes through its [`Outbox`].
//!
//! The session task writes a frame straight to the socket (a non-blocking `try_write`) when
//! nothing is waiting for that connection: most deliveries cost one system call and no task
//! wake-up. Only when the socket cannot take more does the rest wait in the outbox, and a
//! writer task (started then, gone once the outbox is empty) sends it when the socket is
//! writable. Frames are built here, once per broadcast, and shared by every recipient; reads
//! stay with tungstenite, whose own writes (pongs, close replies) come here too, so that every
//! frame keeps its place.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use sessionserver_core::CloseReason;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;

/// The outbox held as many frames as it may: the client is not reading.
pub(crate) struct Full;

#[derive(Default)]
struct State {
    /// Whole frames waiting, in order; the first may be partly written.
    pending: VecDeque<Bytes>,
    /// Bytes of the first pending frame already written.
    written: usize,
    /// A writer task is running (it ends when `pending` is empty).
    writer: bool,
    /// The close frame is queued: nothing more goes out.
    closed: bool,
    /// A write failed: the connection is gone, nothing more goes out.
    failed: bool,
}

pub(crate) struct Outbox {
    socket: OwnedWriteHalf,
    state: Mutex<State>,
    /// Frames that may wait before the client counts as not reading.
    limit: usize,
    /// Notified each time the outbox empties (for the end of a connection).
    drained: Notify,
}

impl Outbox {
    pub(crate) fn new(socket: OwnedWriteHalf, limit: usize) -> Arc<Self> {
        Arc::new(Outbox {
            socket,
            state: Mutex::new(State::default()),
            limit: limit.max(1),
            drained: Notify::new(),
        })
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

    /// Sends bytes whatever the limit: control frames (pings, pongs) and tungstenite's writes.
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

    /// Queues the close frame after everything queued; nothing goes out after it.
    pub(crate) fn close(self: &Arc<Self>, frame: Bytes) {
        let mut state = self.lock();
        if !state.closed && !state.failed {
            self.push(&mut state, frame);
            state.closed = true;
        }
    }

    /// Resolves once everything queued has been written (or writing failed).
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

    fn push(self: &Arc<Self>, state: &mut State, frame: Bytes) {
        if state.pending.is_empty() {
            match self.socket.try_write(&frame) {
                Ok(n) if n == frame.len() => return,
                Ok(n) => state.written = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => state.written = 0,
                Err(_) => {
                    // The reader sees the connection fail and ends it.
                    state.failed = true;
                    return;
                }
            }
        }
        state.pending.push_back(frame);
        if !state.writer {
            state.writer = true;
            tokio::spawn(self.clone().write_pending());
        }
    }

    /// The writer task: writes what is pending whenever the socket can take it, then ends.
    async fn write_pending(self: Arc<Self>) {
        loop {
            if self.socket.writable().await.is_err() {
                self.lock().failed = true;
                break;
            }
            let mut state = self.lock();
            if self.write_some(&mut state).is_err() {
                state.failed = true;
            }
            if state.pending.is_empty() || state.failed {
                state.writer = false;
                break;
            }
        }
        self.drained.notify_waiters();
    }

    /// Writes pending frames (several per system call) until done or the socket is full.
    fn write_some(&self, state: &mut State) -> io::Result<()> {
        while !state.pending.is_empty() {
            let written = state.written;
            let slices: Vec<IoSlice<'_>> = state
                .pending
                .iter()
                .take(64)
                .enumerate()
                .map(|(i, f)| IoSlice::new(if i == 0 { &f[written..] } else { f }))
                .collect();
            let mut n = match self.socket.try_write_vectored(&slices) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            };
            drop(slices);
            while n > 0 {
                let left = state.pending[0].len() - state.written;
                if n >= left {
                    n -= left;
                    state.pending.pop_front();
                    state.written = 0;
                } else {
                    state.written += n;
                    n = 0;
                }
            }
        }
        Ok(())
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

/// What tungstenite reads from and "writes" to: reads from the socket, writes into the outbox.
pub(crate) struct ReadSide {
    socket: OwnedReadHalf,
    outbox: Arc<Outbox>,
}

impl ReadSide {
    pub(crate) fn new(socket: OwnedReadHalf, outbox: Arc<Outbox>) -> Self {
        ReadSide { socket, outbox }
    }
}

impl AsyncRead for ReadSide {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for ReadSide {
    /// tungstenite writes whole frames (pongs, its close reply): they join the outbox.
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.outbox.send_control(Bytes::copy_from_slice(buf));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
