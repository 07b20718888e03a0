//! [`Peer`]: the way to one player's connection, held by its own task and by its session's.

use std::sync::Arc;

use bytes::Bytes;
use sessionserver_core::{CloseReason, JoinBurst, ServerFrame};

use crate::deflate::Deflate;
use crate::metrics::Metrics;
use crate::socket::{self, Full, Outbox};

/// The way to one player's connection: its outbox, and the server's metrics.
#[derive(Clone)]
pub(crate) struct Peer {
    pub(crate) outbox: Arc<Outbox>,
    metrics: Arc<Metrics>,
}

impl Peer {
    pub(crate) fn new(outbox: Arc<Outbox>, metrics: Arc<Metrics>) -> Self {
        Peer { outbox, metrics }
    }

    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Sends a frame without waiting. A full outbox means the client stopped reading; it is
    /// disconnected rather than slowing down its session or growing the server's memory.
    pub(crate) fn send(&self, frame: &ServerFrame) {
        self.metrics.frame_out(frame);
        if self.outbox.send(self.ws_frame(frame)).is_err() {
            self.outbox.end(CloseReason::SendQueueFull);
        }
    }

    /// `frame` as this client's WebSocket frame: compressed when it agreed to
    /// permessage-deflate and the frame is large enough to gain (see `deflate.rs`).
    pub(crate) fn ws_frame(&self, frame: &ServerFrame) -> Bytes {
        ws_frame_for(self.outbox.deflate(), frame)
    }

    /// Queues a frame for the session's next flush, with its WebSocket frame already built
    /// (once per broadcast; the session counts it in the metrics). Returns the outbox when the
    /// caller must flush it.
    pub(crate) fn queue(&self, ws_frame: Bytes) -> Option<Arc<Outbox>> {
        match self.outbox.queue(ws_frame) {
            Ok(true) => Some(self.outbox.clone()),
            Ok(false) => None,
            Err(Full) => {
                self.outbox.end(CloseReason::SendQueueFull);
                None
            }
        }
    }

    /// Queues a joiner's burst: its frames are made (and counted in the metrics) as the socket
    /// takes them. Returns the outbox when the caller must flush it.
    pub(crate) fn queue_burst(&self, burst: JoinBurst) -> Option<Arc<Outbox>> {
        let metrics = self.metrics.clone();
        let deflate = self.outbox.deflate();
        let frames = burst.inspect(move |frame| metrics.frame_out(frame));
        let source = if deflate.is_on() {
            crate::deflate::burst_frames(deflate, frames)
        } else {
            Box::new(frames.map(|frame| ws_frame_of(&frame)))
        };
        self.outbox
            .queue_source(source)
            .then(|| self.outbox.clone())
    }

    /// Asks the connection's task to close with `reason`.
    pub(crate) fn end(&self, reason: CloseReason) {
        self.outbox.end(reason);
    }
}

/// A core frame as a WebSocket text frame, ready to write.
pub(crate) fn ws_frame_of(frame: &ServerFrame) -> Bytes {
    socket::frame(1, frame.bytes())
}

/// A core frame as the WebSocket frame for a client that agreed to `deflate`: compressed
/// (RSV1) when it takes frames of this size and compression makes it shorter, else plain.
pub(crate) fn ws_frame_for(deflate: Deflate, frame: &ServerFrame) -> Bytes {
    let payload = frame.bytes();
    if deflate.takes(payload.len()) {
        if let Some(compressed) = crate::deflate::text_frame(payload) {
            return compressed;
        }
    }
    ws_frame_of(frame)
}
