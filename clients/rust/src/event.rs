//! [`Session`], the state the client keeps, and [`Event`], what it tells the game.

use std::time::Duration;

use indexmap::IndexMap;

use crate::{Data, Error};

/// The session this player is in, kept up to date by the client (also while it reconnects).
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// The session's ID.
    pub id: u64,
    /// The sessionData.
    pub data: Data,
    /// The default playerData: what every member starts with, and its key structure.
    pub player_data: Data,
    /// Every member's playerData by player ID: this client's own first, then the others in
    /// the order it learned of them.
    pub players: IndexMap<u64, Data>,
    /// The host (with the `host` feature: the creator, then the earliest remaining member);
    /// `None` when the server did not say.
    pub host_id: Option<u64>,
    /// Whether the host locked the session, as far as this client was told (the host's own
    /// lockSession, or any with the `host` extension); false at first.
    pub locked: bool,
}

/// How a resume brought the client up to date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// The missed frames came as the usual events.
    Frames,
    /// The state was rebuilt from a snapshot: redraw from [`crate::Machine::session`]
    /// (sessionData and this player's own playerData may have changed without an event).
    Snapshot,
}

/// What happened, in the order it happened. The same events as the JavaScript client's
/// (`client.on(name, …)`), named in Rust's way.
#[derive(Clone, Debug)]
pub enum Event {
    /// This client created (`created`) or joined a session.
    SessionJoin {
        /// The session's ID.
        session_id: u64,
        /// This player's ID.
        player_id: u64,
        /// The sessionData.
        data: Data,
        /// The default playerData.
        player_data: Data,
        /// True when this client's createSession made it (after a joinOrCreate: false, the
        /// reply does not say; the playerJoins that follow show who else is there).
        created: bool,
        /// The host, with the `host` feature.
        host_id: Option<u64>,
    },
    /// This client left its session, or was kicked (`kicked`) out of it.
    SessionLeave {
        /// The session left.
        session_id: Option<u64>,
        /// True when the host kicked this player (servers with the `host` feature say so).
        kicked: bool,
    },
    /// A player joined (or, after this client joined, was there already).
    PlayerJoin {
        /// The player.
        player_id: u64,
        /// Its playerData.
        data: Data,
    },
    /// A member changed its playerData.
    PlayerUpdate {
        /// The member.
        player_id: u64,
        /// Its new playerData.
        data: Data,
        /// True for this client's own update.
        is_self: bool,
    },
    /// A member left (or was kicked, or its connection closed).
    PlayerLeave {
        /// The member.
        player_id: u64,
        /// Its last playerData.
        data: Option<Data>,
        /// True when this client kicked it (the reply to its kick_player).
        kicked: bool,
    },
    /// The sessionData and default playerData were replaced; every member's playerData was
    /// reset to the new default.
    SessionUpdate {
        /// The new sessionData.
        data: Data,
        /// The new default playerData.
        player_data: Data,
        /// True for this client's own update.
        is_self: bool,
    },
    /// The host locked or unlocked the session.
    SessionLock {
        /// Locked now.
        locked: bool,
        /// True for this client's own lockSession.
        is_self: bool,
    },
    /// Another member's sendMessage (with the `messages` extension).
    Message {
        /// The sender.
        player_id: u64,
        /// What it sent, as it sent it.
        data: Data,
    },
    /// The host changed (the host left): with the `host` feature.
    HostChange {
        /// The new host.
        player_id: u64,
    },
    /// The connection dropped in a session (or an attempt failed): an attempt to resume
    /// follows after `delay`.
    Reconnecting {
        /// 1 for the first attempt after a drop, then 2, 3, …
        attempt: u32,
        /// The wait before this attempt (full jitter).
        delay: Duration,
        /// The close code of the connection lost (attempt 1) or of the failed attempt before.
        code: u16,
        /// Its reason.
        reason: String,
        /// The server's refusal of the attempt before, if it was one (error 24).
        error: Option<Error>,
    },
    /// The seat is back, with the same player ID, and what was missed has been applied.
    Resumed {
        /// Frames or a snapshot.
        replay: Replay,
        /// How many frames were replayed; `None` for a snapshot.
        missed: Option<u64>,
        /// The attempts it took.
        attempts: u32,
    },
    /// The seat could not be taken back; the session is gone from the client. After
    /// `Timeout` and `Closed`, [`Event::Close`] follows.
    Lost {
        /// Why.
        reason: crate::LostReason,
        /// The session that was lost.
        session_id: Option<u64>,
        /// The error behind it.
        error: Error,
    },
    /// The connection closed for good; the last event.
    Close {
        /// The close code.
        code: u16,
        /// Its reason.
        reason: String,
        /// What the code means.
        meaning: &'static str,
    },
    /// Something not tied to a request went wrong: an unexpected frame, an error reply no
    /// request was waiting for.
    Error(Error),
}
