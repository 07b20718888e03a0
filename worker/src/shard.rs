//! The registry's shards: which shard a session registers in, which shards a `joinSession -1`
//! asks, and how the relay merges the shards' answers to `listSessions` and `joinOrCreate`
//! into one, with a cursor that is one integer. Touches no platform API: compiled (and
//! tested) on every target.
//!
//! # The scheme
//! - **Shards.** The registry is `REGISTRY_SHARDS` objects (1 to [`MAX_SHARDS`], default
//!   [`DEFAULT_SHARDS`]) named by [`shard_name`]: shard 0 keeps the name of the one registry of
//!   before sharding (`"registry"`), so a deployment that had it finds every session it knew
//!   in shard 0, which is asked like any other.
//! - **A session's shard** is its ID modulo the number of shards ([`shard_of`]). IDs are
//!   random below 2^53 (unchanged, as original clients expect), so a creator lands in a shard
//!   at random and registrations spread evenly; nothing global is counted. The session object
//!   stores the shard it registered in and keeps sending its listing and its removal there,
//!   so a change of `REGISTRY_SHARDS` never strands a session (sessions from before sharding
//!   have none stored: shard 0).
//! - **Order.** Each shard stamps a session when it first hears of it with
//!   `max(now in ms, its latest stamp + 1)` (a session of the single registry keeps its place
//!   as its stamp: smaller than every new one). A session's place in the deployment's order
//!   is its [`order_key`], `stamp × 256 + shard`: unique, newest first by key, and below 2^53
//!   (exact as a JavaScript number) until the year 3085.
//! - **listSessions** asks every shard for a page of its own below the cursor and merges them
//!   ([`merge`]); the cursor (`next`) is the order key of the page's last session: the next
//!   page is what comes below it, in every shard ([`stamp_bound`] turns it into each shard's
//!   bound). One integer whatever the number of shards, opaque to the client.
//! - **`joinSession -1`** asks one shard chosen at random; only if it knows no session, the
//!   others ([`latest_order`]: at most [`LATEST_SHARDS`] shards in all) at once, taking the
//!   newest of their answers ([`newest`]). So it finds a recent session of the deployment,
//!   not always the very latest: the latest of the shard it asked.
//! - **joinOrCreate** asks every shard for its best match and takes the best of those
//!   ([`best`]): the most players, then the newest.

use sessionserver_core::command::MAX_LIST_PAGE;
use sessionserver_core::{Listing, SessionId};

/// The most shards `REGISTRY_SHARDS` may name: the shard is the low byte of an order key.
pub const MAX_SHARDS: u32 = 256;

/// The number of shards when `REGISTRY_SHARDS` is unset.
pub const DEFAULT_SHARDS: u32 = 16;

/// The most shards one `joinSession -1` asks: the random one, then up to this many in all.
pub const LATEST_SHARDS: u32 = 16;

/// Stamps below this keep [`order_key`] below 2^53.
const MAX_STAMP: u64 = 1 << 45;

/// The shard of the session `id`, among `shards` (at least 1).
pub fn shard_of(id: SessionId, shards: u32) -> u32 {
    // The remainder is below `shards`, a u32.
    (id.0 % u64::from(shards.max(1))) as u32
}

/// The object name of shard `shard`: shard 0 has the single registry's name of before.
pub fn shard_name(shard: u32) -> String {
    match shard {
        0 => "registry".to_owned(),
        k => format!("registry-{k}"),
    }
}

/// A session's place in the deployment's order: its shard's `stamp` and the shard. `None`
/// for a stamp that does not fit (not before the year 3085).
pub fn order_key(stamp: u64, shard: u32) -> Option<u64> {
    if stamp >= MAX_STAMP || shard >= MAX_SHARDS {
        return None;
    }
    Some(stamp * u64::from(MAX_SHARDS) + u64::from(shard))
}

/// What a cursor `after` (an order key, from the client: any number) leaves of shard
/// `shard`: the stamps below the returned bound have a key below `after`.
pub fn stamp_bound(after: u64, shard: u32) -> u64 {
    // Keys of this shard below `after`: stamp × 256 + shard < after, i.e. stamp < ⌈(after -
    // shard) / 256⌉. No addition to the client's number.
    after
        .saturating_sub(u64::from(shard))
        .div_ceil(u64::from(MAX_SHARDS))
}

/// The shards a `joinSession -1` asks, in order: `start` (drawn at random) first, then the
/// ones after it, at most [`LATEST_SHARDS`] in all.
pub fn latest_order(start: u32, shards: u32) -> Vec<u32> {
    let shards = shards.clamp(1, MAX_SHARDS);
    let start = start % shards;
    (0..shards.min(LATEST_SHARDS))
        .map(|i| (start + i) % shards)
        .collect()
}

/// The newest of the shards' answers to `-1` (each a session and its order key).
pub fn newest(found: impl IntoIterator<Item = (SessionId, u64)>) -> Option<SessionId> {
    found
        .into_iter()
        .max_by_key(|&(_, key)| key)
        .map(|(id, _)| id)
}

/// The best of the shards' matches for joinOrCreate (each a session, its players and its
/// order key): the most players, the newest of those, as one registry chose.
pub fn best(found: impl IntoIterator<Item = (SessionId, u32, u64)>) -> Option<SessionId> {
    found
        .into_iter()
        .max_by_key(|&(_, players, key)| (players, key))
        .map(|(id, ..)| id)
}

/// One shard's answer to a page: its sessions that match, newest first, below the cursor,
/// at most the page's size, each with its stamp; `more` if it has further ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShardPage {
    /// The sessions: stamp, ID, listing.
    pub sessions: Vec<(u64, SessionId, Listing)>,
    /// The shard has more below the last of `sessions`.
    pub more: bool,
}

impl ShardPage {
    /// As the shard sends it: `{"more":…,"sessions":[[stamp,id,"<listing>"],…]}`.
    pub fn encode(&self) -> String {
        let sessions: Vec<serde_json::Value> = self
            .sessions
            .iter()
            .map(|(stamp, id, listing)| serde_json::json!([stamp, id.0, listing.encode()]))
            .collect();
        serde_json::json!({ "more": self.more, "sessions": sessions }).to_string()
    }

    /// Reads [`ShardPage::encode`]'s text back; `None` if it is not one.
    pub fn decode(text: &str) -> Option<ShardPage> {
        #[derive(serde::Deserialize)]
        struct Page {
            more: bool,
            sessions: Vec<(u64, u64, String)>,
        }
        let page: Page = serde_json::from_str(text).ok()?;
        let sessions = page
            .sessions
            .into_iter()
            .map(|(stamp, id, listing)| Some((stamp, SessionId(id), Listing::decode(&listing)?)))
            .collect::<Option<Vec<_>>>()?;
        Some(ShardPage {
            sessions,
            more: page.more,
        })
    }
}

/// One shard's page of `listed` (its sessions that match, newest first by stamp) below the
/// stamp `before` (`None`: from the newest), at most `limit`.
pub fn shard_page(
    listed: impl IntoIterator<Item = (u64, SessionId, Listing)>,
    before: Option<u64>,
    limit: usize,
) -> ShardPage {
    let limit = limit.clamp(1, MAX_LIST_PAGE);
    let before = before.unwrap_or(u64::MAX);
    let mut page = ShardPage::default();
    for entry in listed.into_iter().filter(|(stamp, ..)| *stamp < before) {
        if page.sessions.len() == limit {
            page.more = true;
            break;
        }
        page.sessions.push(entry);
    }
    page
}

/// The page the client gets from the shards' pages (`pages[k]` is shard `k`'s, each newest
/// first), at most `limit` sessions, newest first across shards, and the cursor of the next
/// page (`None`: the last page).
pub fn merge(pages: &[ShardPage], limit: usize) -> (Vec<(SessionId, Listing)>, Option<u64>) {
    let limit = limit.clamp(1, MAX_LIST_PAGE);
    let mut all: Vec<(u64, SessionId, &Listing)> = Vec::new();
    for (shard, page) in pages.iter().enumerate() {
        let Ok(shard) = u32::try_from(shard) else {
            break;
        };
        for (stamp, id, listing) in &page.sessions {
            // A stamp past the year 3085 has no key: left out rather than misplaced.
            if let Some(key) = order_key(*stamp, shard) {
                all.push((key, *id, listing));
            }
        }
    }
    all.sort_unstable_by_key(|entry| std::cmp::Reverse(entry.0));
    let more = all.len() > limit || pages.iter().any(|p| p.more);
    all.truncate(limit);
    let next = match (more, all.last()) {
        (true, Some(&(key, ..))) => Some(key),
        _ => None,
    };
    let page = all
        .into_iter()
        .map(|(_, id, listing)| (id, listing.clone()))
        .collect();
    (page, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(players: u32) -> Listing {
        Listing {
            players,
            ..Listing::default()
        }
    }

    #[test]
    fn a_session_s_shard_is_its_id_modulo_the_shards_and_shard_0_keeps_the_old_name() {
        assert_eq!(shard_of(SessionId(0), 16), 0);
        assert_eq!(shard_of(SessionId(35), 16), 3);
        assert_eq!(shard_of(SessionId((1 << 53) - 1), 16), 15);
        assert_eq!(shard_of(SessionId(35), 1), 0);
        // Zero shards is read as one, never a division by zero.
        assert_eq!(shard_of(SessionId(35), 0), 0);
        // Random IDs spread over the shards: 1,600 consecutive IDs, 100 in each of 16.
        let mut counts = [0u32; 16];
        for id in 1_000_000..1_001_600u64 {
            counts[shard_of(SessionId(id), 16) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c == 100), "{counts:?}");
        assert_eq!(shard_name(0), "registry");
        assert_eq!(shard_name(7), "registry-7");
    }

    #[test]
    fn minus_one_asks_the_random_shard_first_then_the_others_at_most_latest_shards() {
        assert_eq!(latest_order(2, 4), vec![2, 3, 0, 1]);
        assert_eq!(latest_order(9, 4), vec![1, 2, 3, 0]);
        assert_eq!(latest_order(0, 1), vec![0]);
        let many = latest_order(250, 256);
        assert_eq!(many.len(), LATEST_SHARDS as usize);
        assert_eq!(many[..7], [250, 251, 252, 253, 254, 255, 0]);
        // The newest answer wins; none is none.
        assert_eq!(
            newest([(SessionId(5), 10), (SessionId(6), 30), (SessionId(7), 20)]),
            Some(SessionId(6))
        );
        assert_eq!(newest([]), None);
        // joinOrCreate: the most players, then the newest.
        assert_eq!(
            best([
                (SessionId(1), 3, 100),
                (SessionId(2), 3, 300),
                (SessionId(3), 1, 900)
            ]),
            Some(SessionId(2))
        );
        assert_eq!(best([]), None);
    }

    #[test]
    fn order_keys_are_unique_below_2_53_and_the_cursor_bounds_each_shard() {
        let now = 1_780_000_000_000u64; // 2026, in ms
        let key = order_key(now, 255).expect("fits");
        assert!(key < 1 << 53);
        assert_eq!(order_key(MAX_STAMP - 1, 255), Some((1 << 53) - 1));
        assert_eq!(order_key(MAX_STAMP, 0), None);
        assert_eq!(order_key(now, MAX_SHARDS), None);
        // Same stamp, two shards: two keys, the higher shard first.
        assert!(order_key(now, 3) > order_key(now, 2));
        // A shard's bound for a cursor: exactly the stamps whose key is below it.
        for after in [0, 1, 255, 256, 257, key, key + 1, u64::MAX] {
            for shard in [0, 1, 3, 255] {
                let bound = stamp_bound(after, shard);
                for stamp in [bound.saturating_sub(1), bound] {
                    let below = order_key(stamp, shard).is_some_and(|k| k < after);
                    let fits = order_key(stamp, shard).is_some();
                    if fits {
                        assert_eq!(
                            below,
                            stamp < bound,
                            "after {after} shard {shard} stamp {stamp}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn pages_merge_newest_first_across_shards_and_the_cursor_goes_on_without_gaps() {
        // Three shards; session n has stamp 100 + n (newer: larger) in shard n % 3.
        let all: Vec<(u64, SessionId, Listing)> = (0..20u64)
            .map(|n| (100 + n, SessionId(1000 + n), listing(n as u32)))
            .collect();
        let shard = |k: u64| -> Vec<(u64, SessionId, Listing)> {
            let mut mine: Vec<_> = all.iter().filter(|e| e.0 % 3 == k).cloned().collect();
            mine.reverse(); // newest first
            mine
        };
        let mut seen = Vec::new();
        let mut after: Option<u64> = None;
        let mut pages = 0;
        loop {
            let shard_pages: Vec<ShardPage> = (0..3u32)
                .map(|k| {
                    let before = after.map(|a| stamp_bound(a, k));
                    let page = shard_page(shard(u64::from(k)), before, 6);
                    // Over the wire and back.
                    ShardPage::decode(&page.encode()).expect("a page")
                })
                .collect();
            let (page, next) = merge(&shard_pages, 6);
            assert!(page.len() <= 6);
            seen.extend(page.iter().map(|(id, _)| id.0));
            pages += 1;
            match next {
                Some(next) => {
                    assert!(next < 1 << 53);
                    assert!(after.is_none_or(|a| next < a), "the cursor moves on");
                    after = Some(next);
                }
                None => break,
            }
            assert!(pages < 10, "no end");
        }
        // Every session once, newest first: 1019, 1018, … 1000, in 4 pages (6, 6, 6, 2).
        let expected: Vec<u64> = (1000..1020).rev().collect();
        assert_eq!(seen, expected);
        assert_eq!(pages, 4);
    }

    #[test]
    fn a_shard_with_more_makes_a_next_page_and_the_last_page_has_none() {
        let pages = [
            ShardPage {
                sessions: vec![
                    (10, SessionId(1), listing(1)),
                    (9, SessionId(2), listing(1)),
                ],
                more: true,
            },
            ShardPage::default(),
        ];
        let (page, next) = merge(&pages, 2);
        assert_eq!(page.len(), 2);
        assert_eq!(next, order_key(9, 0));
        let (page, next) = merge(&pages[1..], 2);
        assert!(page.is_empty());
        assert_eq!(next, None);
        // Exactly a full page and nothing more: no next.
        let (page, next) = merge(
            &[ShardPage {
                more: false,
                ..pages[0].clone()
            }],
            2,
        );
        assert_eq!(page.len(), 2);
        assert_eq!(next, None);
        // Not a page.
        assert_eq!(ShardPage::decode(r#"{"more":true}"#), None);
        assert_eq!(
            ShardPage::decode(r#"{"more":false,"sessions":[[1,2,"x"]]}"#),
            None
        );
    }
}
