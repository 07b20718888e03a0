//! The live sessions by ID, and the ID counters.
//!
//! One mutex, held only for a lookup or an insert: on createSession, joinSession, a new
//! connection and a session's end. Messages inside a session never touch it.

use std::sync::{Arc, Mutex, MutexGuard};

use sessionserver_core::{Directory, IdCounter, JoinTarget, PlayerId, SessionId};

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

    /// Registers a new session under a new ID; `None` if `max_sessions` exist already.
    pub(crate) fn create_session(
        &self,
        handle: SessionHandle,
        max_sessions: usize,
    ) -> Option<SessionId> {
        let mut inner = self.lock();
        if inner.sessions.len() >= max_sessions {
            return None;
        }
        let id = SessionId(inner.session_ids.next_id()?);
        let inserted = inner.sessions.insert(id, handle);
        debug_assert!(
            inserted,
            "session IDs come from a counter and are never reused"
        );
        Some(id)
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

    /// How many sessions exist.
    pub(crate) fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }
}
