//! A connection's bounded queue of frames to send, filled by its session and lobby, drained by
//! its writer task.
//!
//! Lighter than a tokio mpsc channel for this one job: an idle connection's queue holds no
//! buffer at all (a channel keeps a block of 32 slots, ~1.3 KB, per connection), and the writer
//! takes everything queued at once, to send with one flush.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use sessionserver_core::CloseReason;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// What the writer task is asked to do.
pub(crate) enum Outbound {
    /// A frame's text; broadcasts share one buffer among all recipients.
    Text(Utf8Bytes),
    Ping,
    /// Send this close frame (or, with `None`, complete the client's close handshake) and stop.
    Close(Option<CloseReason>),
}

/// The queue was full: the client is not reading.
pub(crate) struct Full;

pub(crate) struct SendQueue {
    items: Mutex<VecDeque<Outbound>>,
    capacity: usize,
    ready: Notify,
}

impl SendQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        SendQueue {
            items: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            ready: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Outbound>> {
        // Nothing can panic while the lock is held (pushes and a swap), so a poisoned lock
        // still holds a consistent queue.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame or ping, unless `capacity` items are waiting already.
    pub(crate) fn push(&self, item: Outbound) -> Result<(), Full> {
        let mut items = self.lock();
        if items.len() >= self.capacity {
            return Err(Full);
        }
        let was_empty = items.is_empty();
        items.push_back(item);
        drop(items);
        if was_empty {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Queues the close, after everything already queued, whatever the capacity.
    pub(crate) fn close(&self, reason: Option<CloseReason>) {
        self.lock().push_back(Outbound::Close(reason));
        self.ready.notify_one();
    }

    /// Waits for and takes everything queued.
    pub(crate) async fn take(&self) -> VecDeque<Outbound> {
        loop {
            let items = std::mem::take(&mut *self.lock());
            if !items.is_empty() {
                return items;
            }
            // A push between the take above and this wait stores a permit, so none is missed.
            self.ready.notified().await;
        }
    }
}
