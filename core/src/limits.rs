//! The limits the core enforces, with their defaults. Hosts expose each as an option.

/// Limits on what clients may ask of the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How deeply objects and arrays may nest in a frame (the frame itself is level 1).
    /// Deeper frames get error 15.
    pub max_depth: usize,
    /// Players one session may hold; joinSession to a full session gets error 16.
    pub max_players_per_session: usize,
    /// Bytes of JSON one session may hold in all: its sessionData, its default playerData and
    /// every member's own playerData. A command that would pass it gets error 19.
    pub max_session_data_bytes: usize,
    /// Sessions one server may hold; createSession beyond it gets error 17. The host checks
    /// it where it keeps its sessions (the core's [`crate::Server`], the native registry).
    pub max_sessions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_players_per_session: 4096,
            max_session_data_bytes: 4 << 20,
            max_sessions: 100_000,
        }
    }
}
