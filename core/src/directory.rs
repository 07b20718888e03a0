//! [`Directory`]: the live sessions by ID, and which was created last (`joinSession -1`).

use std::collections::{BTreeMap, HashMap};

use crate::command::JoinTarget;
use crate::error::ErrorCode;
use crate::ids::SessionId;

/// Live sessions by ID, each with a host-chosen handle `H` (the session itself, a channel to
/// its task, …), in order of creation. Private sessions are in it by ID only: `-1` never
/// finds them.
#[derive(Debug)]
pub struct Directory<H> {
    /// Each session's place in the order of creation; `None`: unlisted (private).
    by_id: HashMap<SessionId, (Option<u64>, H)>,
    by_creation: BTreeMap<u64, SessionId>,
    created: u64,
}

impl<H> Default for Directory<H> {
    fn default() -> Self {
        Directory {
            by_id: HashMap::new(),
            by_creation: BTreeMap::new(),
            created: 0,
        }
    }
}

impl<H> Directory<H> {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a newly created session; it becomes the latest. Returns `false`, changing nothing,
    /// if the ID is taken.
    pub fn insert(&mut self, id: SessionId, handle: H) -> bool {
        if self.by_id.contains_key(&id) {
            return false;
        }
        let order = self.created;
        self.created += 1;
        self.by_id.insert(id, (Some(order), handle));
        self.by_creation.insert(order, id);
        true
    }

    /// Adds a newly created private session: found by its ID only, never the latest.
    /// Returns `false`, changing nothing, if the ID is taken.
    pub fn insert_unlisted(&mut self, id: SessionId, handle: H) -> bool {
        if self.by_id.contains_key(&id) {
            return false;
        }
        self.by_id.insert(id, (None, handle));
        true
    }

    /// Removes a destroyed session.
    pub fn remove(&mut self, id: SessionId) -> Option<H> {
        let (order, handle) = self.by_id.remove(&id)?;
        if let Some(order) = order {
            self.by_creation.remove(&order);
        }
        Some(handle)
    }

    /// The session with this ID.
    pub fn get(&self, id: SessionId) -> Option<&H> {
        self.by_id.get(&id).map(|(_, h)| h)
    }

    /// The session with this ID, mutably.
    pub fn get_mut(&mut self, id: SessionId) -> Option<&mut H> {
        self.by_id.get_mut(&id).map(|(_, h)| h)
    }

    /// The most recently created listed (not private) session that still exists.
    pub fn latest(&self) -> Option<SessionId> {
        self.by_creation.values().next_back().copied()
    }

    /// The session a `joinSession` asks for, or the error code to answer.
    pub fn resolve(&self, target: JoinTarget) -> Result<SessionId, ErrorCode> {
        match target {
            JoinTarget::Latest => self.latest().ok_or(ErrorCode::NoSessionExists),
            JoinTarget::Id(id) => {
                let id = SessionId(id);
                if self.by_id.contains_key(&id) {
                    Ok(id)
                } else {
                    Err(ErrorCode::SessionNotFound)
                }
            }
        }
    }

    /// How many sessions exist.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no session exists.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every session, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (SessionId, &H)> {
        self.by_id.iter().map(|(id, (_, h))| (*id, h))
    }
}
