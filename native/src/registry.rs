//! The live sessions by ID, and the ID counters.
//!
//! One mutex, held only for a lookup or an insert: on createSession, joinSession, a new
//! connection and a session's end. Messages inside a session never touch it.

use std::sync::{Arc, Mutex, MutexGuard};

use sessionserver_core::ids::MAX_ID;
use sessionserver_core::{
    Directory, IdCounter, JoinTarget, ListRequest, Listing, MatchRequest, PlayerId, ServerFrame,
    SessionId,
};

use crate::session_task::SessionHandle;

#[derive(Default)]
struct Inner {
    sessions: Directory<SessionHandle>,
    session_ids: IdCounter,
    player_ids: IdCounter,
}

/// Shared by every connection and session task of one server.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    inner: Arc<Mutex<Inner>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps half-updated (each update is
        // one call), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new player ID, never used before on this server.
    pub(crate) fn new_player_id(&self) -> Option<PlayerId> {
        self.lock().player_ids.next_id().map(PlayerId)
    }

    /// Registers a new session under a new ID; `None` if `max_sessions` exist already, or no
    /// ID is free. A public session's ID comes from the counter (0, 1, 2, … like the
    /// original's); a private one's is random below 2^53, from the OS's secure source, so
    /// that it cannot be guessed, and it is not found by `joinSession -1`.
    pub(crate) fn create_session(
        &self,
        handle: SessionHandle,
        max_sessions: usize,
        private: bool,
    ) -> Option<SessionId> {
        let mut inner = self.lock();
        if inner.sessions.len() >= max_sessions {
            return None;
        }
        if private {
            // A few draws: each is taken with p = sessions / 2^53.
            for _ in 0..8 {
                let mut bytes = [0u8; 8];
                if let Err(e) = getrandom::fill(&mut bytes) {
                    tracing::error!(error = %e, "no secure random source: no private session");
                    return None;
                }
                let id = SessionId(u64::from_le_bytes(bytes) & MAX_ID);
                if inner.sessions.insert_unlisted(id, handle.clone()) {
                    return Some(id);
                }
            }
            return None;
        }
        // The counter skips IDs a private session drew.
        loop {
            let id = SessionId(inner.session_ids.next_id()?);
            if inner.sessions.insert(id, handle.clone()) {
                return Some(id);
            }
        }
    }

    /// The session a joinSession asks for, if there is one.
    pub(crate) fn resolve(&self, target: JoinTarget) -> Option<(SessionId, SessionHandle)> {
        let inner = self.lock();
        let id = inner.sessions.resolve(target).ok()?;
        inner.sessions.get(id).map(|handle| (id, handle.clone()))
    }

    /// Forgets a session whose last member left (or whose task failed). Nothing happens if it
    /// is already forgotten.
    pub(crate) fn remove_session(&self, id: SessionId) {
        self.lock().sessions.remove(id);
    }

    /// A handle to every live session, for `GET /sessions`.
    pub(crate) fn sessions(&self) -> Vec<SessionHandle> {
        self.lock()
            .sessions
            .iter()
            .map(|(_, h)| h.clone())
            .collect()
    }

    /// A public session's listing changed.
    pub(crate) fn set_listing(&self, id: SessionId, listing: Listing) {
        self.lock().sessions.set_listing(id, listing);
    }

    /// The `sessionList` frame for a `listSessions`.
    pub(crate) fn list(&self, request: &ListRequest, max_players: usize) -> ServerFrame {
        let inner = self.lock();
        let (page, next) = inner.sessions.list(request, max_players);
        sessionserver_core::reply::session_list(&page, next)
    }

    /// The session a `joinOrCreate` with `filter` joins, if one has room.
    pub(crate) fn best_match(
        &self,
        request: &MatchRequest,
        max_players: usize,
    ) -> Option<SessionId> {
        self.lock()
            .sessions
            .best_match(&request.filter, max_players)
    }

    /// How many sessions exist.
    pub(crate) fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }
}
