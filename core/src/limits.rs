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
    /// Bytes per second one member may have its session broadcast, sustained: each
    /// broadcast of its `updatePlayer` or `updateSession` counts the frame's bytes times its
    /// recipients. A broadcast is carried out while the member's budget is above zero and
    /// takes its whole cost (the budget may go below zero, and refills at this rate); one that
    /// finds the budget used up gets error 20 and nothing is broadcast or changed.
    pub egress_bytes_per_second: u64,
    /// What a member's egress budget holds at most (and starts with): the burst above
    /// [`Limits::egress_bytes_per_second`]. A member that leaves keeps what it has used up:
    /// its session remembers the budget until it has refilled, so leaving and joining again
    /// gives no new burst.
    pub egress_burst_bytes: u64,
    /// How long a member that asked for `resume` keeps its seat after its connection is
    /// gone without a leave, in milliseconds; then it leaves (`playerLeave`). 0: no grace.
    pub resume_grace_ms: u64,
    /// Bytes of its latest events (broadcasts) a session keeps for resumes: one log for all
    /// its members, kept while one of them asked for `resume`. A resume that needs older
    /// events is given a snapshot instead.
    pub resume_replay_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_players_per_session: 4096,
            max_session_data_bytes: 4 << 20,
            max_sessions: 100_000,
            egress_bytes_per_second: 8 << 20,
            egress_burst_bytes: 16 << 20,
            resume_grace_ms: 30_000,
            resume_replay_bytes: 256 << 10,
        }
    }
}
