//! [`Directory`]: the live sessions by ID, and which was created last (`joinSession -1`).

use std::collections::{BTreeMap, HashMap};

use crate::command::{JoinTarget, ListRequest};
use crate::data::JsonObject;
use crate::error::ErrorCode;
use crate::ids::SessionId;

/// What `listSessions` shows of a public session, kept by its host's directory from what the
/// session reports ([`crate::Output::Listing`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Its members (those away for `resume` included).
    pub players: u32,
    /// Its `maxPlayers`, if it has one.
    pub max_players: Option<u32>,
    /// Locked by its host.
    pub locked: bool,
    /// It has a password.
    pub password: bool,
    /// Its metadata.
    pub metadata: Option<JsonObject>,
}

/// Live sessions by ID, each with a host-chosen handle `H` (the session itself, a channel to
/// its task, …), in order of creation. Private sessions are in it by ID only: `-1` never
/// finds them.
#[derive(Debug)]
pub struct Directory<H> {
    /// Each session's place in the order of creation; `None`: unlisted (private).
    by_id: HashMap<SessionId, (Option<u64>, H)>,
    by_creation: BTreeMap<u64, SessionId>,
    created: u64,
    /// What the public sessions reported for `listSessions`.
    listings: HashMap<SessionId, Listing>,
}

impl<H> Default for Directory<H> {
    fn default() -> Self {
        Directory {
            by_id: HashMap::new(),
            by_creation: BTreeMap::new(),
            created: 0,
            listings: HashMap::new(),
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
        self.listings.remove(&id);
        Some(handle)
    }

    /// What public session `id` shows in `listSessions` from now on (a private one, or one
    /// not in the directory, is never listed).
    pub fn set_listing(&mut self, id: SessionId, listing: Listing) {
        if matches!(self.by_id.get(&id), Some((Some(_), _))) {
            self.listings.insert(id, listing);
        }
    }

    /// The public session a `joinOrCreate` with `filter` joins: of those that match it and
    /// have room (not full, not locked, no password), the one with the most players (they
    /// fill up before new ones start), the newest of those. `max_players` is the host's
    /// players-per-session limit.
    pub fn best_match(
        &self,
        filter: &[(String, serde_json::Value)],
        max_players: usize,
    ) -> Option<SessionId> {
        let request = ListRequest {
            filter: filter.to_vec(),
            available: true,
            after: None,
            limit: usize::MAX,
        };
        let mut best: Option<(u32, SessionId)> = None;
        for id in self.by_creation.values().rev() {
            let Some(listing) = self.listings.get(id) else {
                continue;
            };
            if matches(listing, &request, max_players)
                && best.is_none_or(|(players, _)| listing.players > players)
            {
                best = Some((listing.players, *id));
            }
        }
        best.map(|(_, id)| id)
    }

    /// A page of `listSessions`: the public sessions `request` asks for, newest first, each
    /// with what it reported, and the cursor of the next page (`None`: this was the last).
    /// `max_players` is the host's players-per-session limit (for `available`).
    pub fn list(
        &self,
        request: &ListRequest,
        max_players: usize,
    ) -> (Vec<(SessionId, &Listing)>, Option<u64>) {
        let upto = request.after.unwrap_or(u64::MAX);
        let mut page = Vec::new();
        for (&order, id) in self.by_creation.range(..upto).rev() {
            let Some(listing) = self.listings.get(id) else {
                continue;
            };
            if !matches(listing, request, max_players) {
                continue;
            }
            if page.len() == request.limit {
                // One more exists: the next page starts after the last one listed.
                return (page, Some(order + 1));
            }
            page.push((*id, listing));
        }
        (page, None)
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

/// Whether `listing` is one `request` asks for.
fn matches(listing: &Listing, request: &ListRequest, max_players: usize) -> bool {
    if request.available {
        let cap = listing.max_players.map_or(max_players, |m| {
            usize::try_from(m).unwrap_or(usize::MAX).min(max_players)
        });
        let full = usize::try_from(listing.players).unwrap_or(usize::MAX) >= cap;
        if full || listing.locked || listing.password {
            return false;
        }
    }
    if request.filter.is_empty() {
        return true;
    }
    let Some(metadata) = &listing.metadata else {
        return false;
    };
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(metadata.as_str()) else {
        return false;
    };
    request
        .filter
        .iter()
        .all(|(key, value)| fields.get(key) == Some(value))
}
