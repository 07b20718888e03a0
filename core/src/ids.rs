//! Player and session identifiers.
//!
//! Both are non-negative integers below 2^53, so that JavaScript clients read them exactly.
//! Core never makes one up: the host passes them in.

use std::fmt;

/// The largest ID a client can read exactly as a JavaScript number (2^53 - 1).
pub const MAX_ID: u64 = (1 << 53) - 1;

/// A connected player. One connection is one player; its ID does not change while it is
/// connected, also across leaving and joining sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlayerId(pub u64);

/// A session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl fmt::Display for PlayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Hands out 0, 1, 2, ... and never the same number twice, like the original server.
///
/// The native host keeps one for players and one for sessions.
#[derive(Debug, Default)]
pub struct IdCounter {
    next: u64,
}

impl IdCounter {
    /// A counter starting at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next ID, or `None` once all 2^53 IDs are used (at a million IDs a second, after
    /// 285 years): the host then refuses new connections or sessions instead of reusing one.
    pub fn next_id(&mut self) -> Option<u64> {
        let id = self.next;
        if id > MAX_ID {
            return None;
        }
        self.next += 1;
        Some(id)
    }
}
