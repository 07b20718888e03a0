//! The one signal that stops a server: [`Stopping`].

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Set once the server stops. The accept loop, every HTTP connection and every WebSocket
/// connection wait on it: a `Notified` is less than half the size of a watch receiver's
/// future (memory per idle connection).
#[derive(Default)]
pub(crate) struct Stopping {
    stopped: AtomicBool,
    notify: Notify,
    /// Test-only seam: makes every task waiting in [`Stopping::wait`] panic. An open
    /// connection's task polls its wait for the stop alongside whatever else it awaits (a
    /// frame, room in its session's inbox, the session's answer), so a panic raised here
    /// unwinds the task from exactly the await point it is parked at, the way a bug anywhere
    /// in it would. No other code path changes, and none of it is compiled outside tests.
    #[cfg(test)]
    panic: AtomicBool,
}

impl Stopping {
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Test-only: every connection task of this server panics where it waits.
    #[cfg(test)]
    pub(crate) fn panic_waiters(&self) {
        self.panic.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Resolves once the server stops (at once if it has).
    pub(crate) async fn wait(&self) {
        // Made before the flag is read, so a stop in between is not missed: a `Notified` sees
        // every `notify_waiters` from its creation on, polled or not. (Not pinned and enabled
        // first: that pin is a word more in every connection's task.)
        let notified = self.notify.notified();
        if !self.stopped.load(Ordering::SeqCst) {
            notified.await;
        }
        #[cfg(test)]
        if self.panic.load(Ordering::SeqCst) {
            panic!("test: the connection task panics where it waits");
        }
    }
}
