//! [`JoinBurst`]: the `playerJoin`s a joiner gets of the members already in a session, taken
//! when it joined and encoded one at a time, as its socket takes them.
//!
//! A session of N members owes each joiner N frames, with each member's playerData: in a big
//! session (4,096 members, 64 KB of data each) that is hundreds of megabytes, too much to
//! build at once or to hold for a client that does not read. The burst holds what those frames
//! will say instead: one `(ID, data)` pair per member, whose data is shared with the session
//! ([`JsonObject`] clones share their text), so a burst costs about 24 bytes per member
//! whatever the data. A member whose data changes while the burst waits keeps, in the burst,
//! the data it had at the join: the joiner sees `playerJoin` with that data and then the
//! `playerUpdate` that followed, exactly the frames an eager burst gives. The most a burst can
//! hold alive on its own is one version of each member's data (the session's data limit),
//! plus one default playerData.

use crate::data::{JsonObject, Spelling};
use crate::ids::PlayerId;
use crate::reply::{self, ServerCommand, ServerFrame};

/// The `playerJoin`s owed to one joiner, in the members' join order. An iterator of frames.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinBurst {
    spelling: Spelling,
    /// The session's default playerData when the joiner joined.
    default: JsonObject,
    /// Each member and its own data (`None`: the default), in join order.
    members: Vec<(PlayerId, Option<JsonObject>)>,
    /// How many frames were taken.
    next: usize,
}

impl JoinBurst {
    pub(crate) fn new(
        spelling: Spelling,
        default: JsonObject,
        members: Vec<(PlayerId, Option<JsonObject>)>,
    ) -> Self {
        JoinBurst {
            spelling,
            default,
            members,
            next: 0,
        }
    }

    /// How many frames are left.
    pub fn remaining(&self) -> usize {
        self.members.len() - self.next
    }

    /// Whether every frame was taken.
    pub fn is_done(&self) -> bool {
        self.remaining() == 0
    }

    /// What the burst holds apart from the data it shares with its session: what a host
    /// counts in its memory while the burst waits.
    pub fn held_bytes(&self) -> usize {
        self.remaining() * std::mem::size_of::<(PlayerId, Option<JsonObject>)>()
    }

    /// The members (and each one's data, as of the join) whose frames are left.
    pub fn members(&self) -> impl ExactSizeIterator<Item = (PlayerId, &JsonObject)> {
        let default = &self.default;
        self.members[self.next..]
            .iter()
            .map(move |(id, data)| (*id, data.as_ref().unwrap_or(default)))
    }
}

impl Iterator for JoinBurst {
    type Item = ServerFrame;

    /// The next member's `playerJoin`, encoded now; its data is let go.
    fn next(&mut self) -> Option<ServerFrame> {
        let (id, data) = self.members.get_mut(self.next)?;
        self.next += 1;
        let data = data.take();
        let data = data.as_ref().unwrap_or(&self.default);
        Some(reply::player_data(
            ServerCommand::PlayerJoin,
            self.spelling,
            *id,
            data,
        ))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining(), Some(self.remaining()))
    }
}

impl ExactSizeIterator for JoinBurst {}

impl std::fmt::Debug for JoinBurst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.members()).finish()
    }
}
