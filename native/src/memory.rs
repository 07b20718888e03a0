//! Giving memory back to the operating system when the server falls idle.
//!
//! glibc's malloc keeps freed memory for reuse: after a crowd of players leaves, the process
//! would stay at its peak size. When the last connection closes, `malloc_trim` returns the
//! free pages of every arena. It runs inline on that connection's task: a few milliseconds,
//! once, when the server has nobody left to serve.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts open WebSocket connections; when the count falls to zero, trims the heap.
#[derive(Clone, Default)]
pub(crate) struct Occupancy {
    open: Arc<AtomicUsize>,
}

/// Held while a connection is open.
pub(crate) struct OccupancyGuard {
    open: Arc<AtomicUsize>,
}

impl Occupancy {
    /// Open connections right now.
    pub(crate) fn count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    pub(crate) fn enter(&self) -> OccupancyGuard {
        self.open.fetch_add(1, Ordering::Relaxed);
        OccupancyGuard {
            open: self.open.clone(),
        }
    }
}

impl Drop for OccupancyGuard {
    fn drop(&mut self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            trim();
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: malloc_trim only releases free memory held by the allocator; it takes no
    // pointers and is safe to call from any thread at any time.
    #[allow(unsafe_code)]
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
