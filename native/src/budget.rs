//! One memory budget for the whole server (`--memory-budget`).
//!
//! Three kinds of memory grow with what clients do, and all three are counted here in one
//! shared account of relaxed atomics:
//! - **outbox**: frames queued for clients that the socket has not taken yet (counted by each
//!   `socket::Outbox` while a backlog waits; a frame written at once is never counted), with a
//!   fixed cost per queued frame for the queue slot and its allocation;
//! - **inbound**: bytes a connection's frame reader holds (a partial frame, a fragmented
//!   message so far), counted by the connection after each frame;
//! - **session**: the JSON each session stores (sessionData, the default playerData, members'
//!   own playerData), counted by the session task from the session's changes.
//!
//! When the account reaches [`Budget::NEAR_PERCENT`] of the budget, new WebSocket upgrades are
//! refused with HTTP 503, and the connections holding the largest backlogs are closed with
//! code 4002 ([`MEMORY_BUDGET_CODE`]) until the account is back under
//! [`Budget::RELIEVED_PERCENT`] (or no backlog is left to close). Their queued frames are let go
//! at once, not when their tasks get round to closing.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};

use crate::socket::Outbox;

/// The close code of a connection closed to keep the server within its memory budget.
pub(crate) const MEMORY_BUDGET_CODE: u16 = 4002;
/// Its reason text.
pub(crate) const MEMORY_BUDGET_TEXT: &str = "server memory budget exceeded";

/// The server's memory account.
pub(crate) struct Budget {
    limit: usize,
    outbox: AtomicUsize,
    inbound: AtomicUsize,
    session: AtomicUsize,
    /// Outboxes with a backlog (a writer task running), by address: the candidates to close.
    backlogged: Mutex<HashMap<usize, Weak<Outbox>>>,
    /// A pass of [`Budget::shed`] is under way.
    shedding: AtomicBool,
    shed_total: AtomicU64,
    refused_total: AtomicU64,
}

impl Budget {
    /// At this share of the budget, upgrades are refused and the largest backlogs closed.
    pub(crate) const NEAR_PERCENT: usize = 90;
    /// Closing stops once the account is below this share.
    pub(crate) const RELIEVED_PERCENT: usize = 75;

    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Budget {
            limit: limit.max(1),
            outbox: AtomicUsize::new(0),
            inbound: AtomicUsize::new(0),
            session: AtomicUsize::new(0),
            backlogged: Mutex::new(HashMap::new()),
            shedding: AtomicBool::new(false),
            shed_total: AtomicU64::new(0),
            refused_total: AtomicU64::new(0),
        })
    }

    /// Bytes held in all.
    pub(crate) fn held(&self) -> usize {
        self.outbox.load(Relaxed) + self.inbound.load(Relaxed) + self.session.load(Relaxed)
    }

    /// Bytes queued in outboxes.
    #[cfg(test)]
    pub(crate) fn outbox_bytes(&self) -> usize {
        self.outbox.load(Relaxed)
    }

    /// The account is at [`Budget::NEAR_PERCENT`] of the budget or above.
    pub(crate) fn near(&self) -> bool {
        self.held() >= self.share(Self::NEAR_PERCENT)
    }

    fn share(&self, percent: usize) -> usize {
        (self.limit / 100).saturating_mul(percent)
    }

    /// An upgrade was refused because the budget is near.
    pub(crate) fn refused(&self) {
        self.refused_total.fetch_add(1, Relaxed);
    }

    /// Moves the outbox account from `from` bytes to `to` for one outbox (which must hold a
    /// strong reference, `this`); when the account grew near the budget, a pass closing the
    /// largest backlogs is started. Never called with the outbox's lock held by another.
    pub(crate) fn outbox_moved(self: &Arc<Self>, from: usize, to: usize) {
        adjust(&self.outbox, from, to);
        if to > from && self.near() {
            self.start_shedding();
        }
    }

    /// Inbound bytes of one connection went from `from` to `to`.
    pub(crate) fn inbound_moved(self: &Arc<Self>, from: usize, to: usize) {
        adjust(&self.inbound, from, to);
        if to > from && self.near() {
            self.start_shedding();
        }
    }

    /// Session data of one session went from `from` to `to` bytes.
    pub(crate) fn session_moved(self: &Arc<Self>, from: usize, to: usize) {
        adjust(&self.session, from, to);
        if to > from && self.near() {
            self.start_shedding();
        }
    }

    /// An outbox now has a backlog.
    pub(crate) fn backlogged(&self, outbox: &Arc<Outbox>) {
        let key = Arc::as_ptr(outbox) as usize;
        self.lock().insert(key, Arc::downgrade(outbox));
    }

    /// An outbox's backlog is gone.
    pub(crate) fn caught_up(&self, outbox: &Outbox) {
        let key = outbox as *const Outbox as usize;
        self.lock().remove(&key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Weak<Outbox>>> {
        // Nothing panics while the lock is held.
        self.backlogged.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one pass of [`Budget::shed`] on a task of its own (the caller may hold an outbox's
    /// lock), unless one is under way.
    fn start_shedding(self: &Arc<Self>) {
        if self.shedding.swap(true, Relaxed) {
            return;
        }
        let budget = self.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                budget.shed();
                budget.shedding.store(false, Relaxed);
            });
        } else {
            self.shedding.store(false, Relaxed);
        }
    }

    /// Closes the connections with the largest backlogs until the account is below
    /// [`Budget::RELIEVED_PERCENT`] of the budget. Returns how many were closed.
    pub(crate) fn shed(&self) -> usize {
        let candidates: Vec<Arc<Outbox>> = self.lock().values().filter_map(Weak::upgrade).collect();
        let mut sized: Vec<(usize, Arc<Outbox>)> = candidates
            .into_iter()
            .map(|outbox| (outbox.queued_bytes(), outbox))
            .collect();
        sized.sort_unstable_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
        let target = self.share(Self::RELIEVED_PERCENT);
        let mut closed = 0;
        for (bytes, outbox) in sized {
            if self.held() < target || bytes == 0 {
                break;
            }
            if outbox.shed() {
                closed += 1;
            }
        }
        if closed > 0 {
            self.shed_total.fetch_add(closed as u64, Relaxed);
            tracing::warn!(
                closed,
                held = self.held(),
                budget = self.limit,
                "memory budget near: closed the connections with the largest backlogs (4002)"
            );
        }
        closed
    }

    /// The budget's lines of `/metrics`.
    pub(crate) fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP sessionserver_memory_budget_bytes The memory budget (--memory-budget).\n\
             # TYPE sessionserver_memory_budget_bytes gauge\n\
             sessionserver_memory_budget_bytes {}",
            self.limit
        );
        let _ = writeln!(
            out,
            "# HELP sessionserver_memory_held_bytes Bytes counted against the memory budget, by \
             what holds them (outbox: frames queued for clients; inbound: partial messages read; \
             session: stored session and player data).\n\
             # TYPE sessionserver_memory_held_bytes gauge"
        );
        for (kind, value) in [
            ("outbox", &self.outbox),
            ("inbound", &self.inbound),
            ("session", &self.session),
        ] {
            let _ = writeln!(
                out,
                "sessionserver_memory_held_bytes{{kind=\"{kind}\"}} {}",
                value.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP sessionserver_memory_shed_total Connections closed (4002) to stay within the \
             memory budget.\n# TYPE sessionserver_memory_shed_total counter\n\
             sessionserver_memory_shed_total {}",
            self.shed_total.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP sessionserver_memory_refused_total WebSocket upgrades refused (503) near the \
             memory budget.\n# TYPE sessionserver_memory_refused_total counter\n\
             sessionserver_memory_refused_total {}",
            self.refused_total.load(Relaxed)
        );
    }
}

fn adjust(counter: &AtomicUsize, from: usize, to: usize) {
    if to > from {
        counter.fetch_add(to - from, Relaxed);
    } else if from > to {
        counter.fetch_sub(from - to, Relaxed);
    }
}

/// The default budget: a quarter of the memory this process may use (the machine's RAM, or
/// its cgroup's limit when lower); 1 GiB when neither can be read.
pub fn default_memory_budget() -> usize {
    let ram = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib.saturating_mul(1024))
    });
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    let total = match (ram, cgroup) {
        (Some(r), Some(c)) => r.min(c),
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => 4 << 30,
    };
    usize::try_from(total / 4).unwrap_or(usize::MAX)
}
