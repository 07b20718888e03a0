//! [`Counted`]: what counts one open WebSocket connection, in one value, so that it is let
//! go in one place (its `Drop`, however the connection's task ends) and never by hand.

use tokio::sync::{mpsc, OwnedSemaphorePermit};

use crate::memory::OccupancyGuard;

/// Held by a WebSocket connection for as long as it is open:
/// - its `--max-connections` permit (taken when the TCP connection was accepted);
/// - its place in the count of open connections ([`crate::memory::Occupancy`]), which the
///   `/metrics` gauge and `RunningServer::connection_count` read, and which trims the heap
///   when it falls to zero;
/// - a sender of the channel the shutdown waits on until every connection is gone.
///
/// Dropping it releases all three: there is no other way to count a connection, or to stop
/// counting it.
pub(crate) struct Counted {
    _permit: OwnedSemaphorePermit,
    _open: OccupancyGuard,
    _alive: mpsc::Sender<()>,
}

impl Counted {
    pub(crate) fn new(
        permit: OwnedSemaphorePermit,
        open: OccupancyGuard,
        alive: mpsc::Sender<()>,
    ) -> Self {
        Counted {
            _permit: permit,
            _open: open,
            _alive: alive,
        }
    }
}
