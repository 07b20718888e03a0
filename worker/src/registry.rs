//! [`RegistryObject`]: one shard of the registry, a Durable Object that knows the live sessions
//! of its shard in order of creation, for `joinSession -1` (the latest session that still
//! exists). The deployment has `REGISTRY_SHARDS` of them ([`crate::shard`]: which session is
//! in which shard, and how the relay merges their answers); each is this same object, which
//! does not know its own shard number: it answers with its stamps, which the relay turns into
//! the deployment's order.
//!
//! It is off the message path and off the creator's: a session object tells it when it was
//! created (the request leaves before its creator's `sessionJoin`, which does not wait for the
//! answer) and when it ended (by alarm, retried until done), and a relay asks it for the
//! latest session only on `joinSession -1` (error 6 if it cannot be asked). A relay that finds that session already
//! gone says so in its next question (`gone=`), so the answer is right even while the ended
//! session's own notice is still on its way.
//!
//! It also keeps what `listSessions` shows of each public session (its players, `maxPlayers`,
//! lock, password flag and metadata, [`Listing`]), sent by the session object whenever that
//! changes, and answers `listSessions` and `joinOrCreate`'s search from it with the core's own
//! rules ([`Listing::matches`]). This listing is eventually consistent: a change reaches it
//! one request after the session made it.
//!
//! Requests: `/add?id=N`, `/remove?id=N`, `/latest[?gone=N]` (200 with the ID and its stamp in
//! the header `Stamp`, or 404: none), `POST /listing?id=N` (body: [`Listing::encode`]),
//! `POST /list` (body: the listSessions command, its `after` a bound on this shard's stamps;
//! 200 with a [`shard::ShardPage`]), `POST /match` (body: the filter as a JSON object; 200
//! with the ID of the best match, its players and stamp in the headers `Players` and `Stamp`,
//! or 404).
//!
//! Each row has a stamp, given when the shard first hears of the session (its add or its
//! listing): `max(now in ms, the latest stamp + 1)`. Rows of the single registry of before
//! sharding (shard 0's object) have none: their place in the order (`seq`) is their stamp,
//! below every new one.

use std::cell::Cell;
use std::time::Duration;

use sessionserver_core::{Command, Limits, ListRequest, Listing, SessionId};
use worker::{
    durable_object, Delay, DurableObject, Env, Request, Response, Result, SqlStorageValue, State,
};

use crate::shard;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS live (
    seq INTEGER PRIMARY KEY,
    id INTEGER NOT NULL UNIQUE,
    listing TEXT,
    stamp INTEGER
)";

/// The stamp of a session this shard has not heard of before (bound to the time now, in ms).
const NEW_STAMP: &str = "(SELECT max(coalesce((SELECT coalesce(stamp, seq) FROM live \
     ORDER BY seq DESC LIMIT 1), 0) + 1, ?))";

fn now_ms() -> i64 {
    worker::js_sys::Date::now() as i64
}

/// The registry object. It only answers requests (`fetch`): it accepts no sockets and sets no
/// alarm, so no other handler is exported.
#[durable_object(fetch)]
pub struct RegistryObject {
    state: State,
    env: Env,
    /// Test hook ([`crate::settings::TEST_HOOKS_VAR`], `POST /__test/stall-listings?on=1`):
    /// listings wait until it is turned off (at most a minute), as a registry far away or
    /// overloaded would keep them: a test shows that no session waits for them.
    stalled: Cell<bool>,
}

/// The longest the stall hook holds a listing.
const STALL_MAX_MS: u64 = 60_000;

impl DurableObject for RegistryObject {
    fn new(state: State, env: Env) -> Self {
        RegistryObject {
            state,
            env,
            stalled: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let url = req.url()?;
        let id = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.parse::<i64>().ok())
        };
        let sql = self.state.storage().sql();
        sql.exec(SCHEMA, None)?;
        migrate(&sql)?;
        match (url.path(), id("id"), id("gone")) {
            ("/stall", _, _) if crate::link::test_hooks(&self.env) => {
                self.stalled.set(id("on") == Some(1));
                Response::ok("")
            }
            ("/listing", Some(id), _) => {
                let text = req.text().await?;
                // Other requests are served meanwhile: a timer does not close the input gate.
                let mut waited = 0;
                while self.stalled.get() && waited < STALL_MAX_MS {
                    Delay::from(Duration::from_millis(20)).await;
                    waited += 20;
                }
                if Listing::decode(&text).is_none() {
                    return Response::error("not a listing", 400);
                }
                // An upsert: the listing may overtake the session's own `add`.
                sql.exec(
                    &format!(
                        "INSERT INTO live (id, listing, stamp) VALUES (?, ?, {NEW_STAMP}) \
                         ON CONFLICT(id) DO UPDATE SET listing = excluded.listing"
                    ),
                    vec![
                        SqlStorageValue::Integer(id),
                        SqlStorageValue::String(text),
                        SqlStorageValue::Integer(now_ms()),
                    ],
                )?;
                Response::ok("")
            }
            ("/list", _, _) => {
                let text = req.text().await?;
                let Ok(Command::ListSessions(request)) =
                    sessionserver_core::parse(&text, &Limits::default())
                else {
                    return Response::error("not a listSessions", 400);
                };
                // The relay made `after` a bound on this shard's stamps.
                let max = Limits::default().max_players_per_session;
                let matching = listed(&sql)?
                    .into_iter()
                    .filter(|(_, _, listing)| listing.matches(&request, max));
                let page = shard::shard_page(matching, request.after, request.limit);
                Response::ok(page.encode())
            }
            ("/match", _, _) => {
                let text = req.text().await?;
                let Ok(serde_json::Value::Object(filter)) = serde_json::from_str(&text) else {
                    return Response::error("not a filter", 400);
                };
                let request = ListRequest {
                    filter: filter.into_iter().collect(),
                    available: true,
                    after: None,
                    limit: usize::MAX,
                };
                let max = Limits::default().max_players_per_session;
                // The fullest that has room; the newest of those (`listed` is newest first).
                let mut best: Option<(u32, SessionId, u64)> = None;
                for (stamp, id, listing) in listed(&sql)? {
                    if listing.matches(&request, max)
                        && best.is_none_or(|(players, ..)| listing.players > players)
                    {
                        best = Some((listing.players, id, stamp));
                    }
                }
                match best {
                    Some((players, id, stamp)) => {
                        let mut response = Response::ok(id.to_string())?;
                        response
                            .headers_mut()
                            .set("Players", &players.to_string())?;
                        response.headers_mut().set("Stamp", &stamp.to_string())?;
                        Ok(response)
                    }
                    None => Response::error("no match", 404),
                }
            }
            ("/add", Some(id), _) => {
                sql.exec(
                    &format!("INSERT OR IGNORE INTO live (id, stamp) VALUES (?, {NEW_STAMP})"),
                    vec![
                        SqlStorageValue::Integer(id),
                        SqlStorageValue::Integer(now_ms()),
                    ],
                )?;
                Response::ok("")
            }
            ("/remove", Some(id), _) => {
                sql.exec(
                    "DELETE FROM live WHERE id = ?",
                    vec![SqlStorageValue::Integer(id)],
                )?;
                Response::ok("")
            }
            ("/latest", _, gone) => {
                if let Some(gone) = gone {
                    sql.exec(
                        "DELETE FROM live WHERE id = ?",
                        vec![SqlStorageValue::Integer(gone)],
                    )?;
                }
                #[derive(serde::Deserialize)]
                struct Row {
                    id: u64,
                    stamp: u64,
                }
                let rows: Vec<Row> = sql
                    .exec(
                        "SELECT id, coalesce(stamp, seq) AS stamp FROM live \
                         ORDER BY seq DESC LIMIT 1",
                        None,
                    )?
                    .to_array()?;
                match rows.first() {
                    Some(row) => {
                        let mut response = Response::ok(row.id.to_string())?;
                        response
                            .headers_mut()
                            .set("Stamp", &row.stamp.to_string())?;
                        Ok(response)
                    }
                    None => Response::error("no session", 404),
                }
            }
            _ => Response::error("not a registry request", 400),
        }
    }
}

/// Adds the `listing` and `stamp` columns to a table made before they existed.
fn migrate(sql: &worker::SqlStorage) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Table {
        sql: String,
    }
    let tables: Vec<Table> = sql
        .exec(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'live'",
            None,
        )?
        .to_array()?;
    if tables.iter().any(|t| !t.sql.contains("listing")) {
        sql.exec("ALTER TABLE live ADD COLUMN listing TEXT", None)?;
    }
    if tables.iter().any(|t| !t.sql.contains("stamp")) {
        sql.exec("ALTER TABLE live ADD COLUMN stamp INTEGER", None)?;
    }
    Ok(())
}

/// Every public session with a listing, newest first, with its stamp.
fn listed(sql: &worker::SqlStorage) -> Result<Vec<(u64, SessionId, Listing)>> {
    #[derive(serde::Deserialize)]
    struct Row {
        stamp: u64,
        id: u64,
        listing: Option<String>,
    }
    let rows: Vec<Row> = sql
        .exec(
            "SELECT coalesce(stamp, seq) AS stamp, id, listing FROM live \
             WHERE listing IS NOT NULL ORDER BY seq DESC",
            None,
        )?
        .to_array()?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let listing = Listing::decode(row.listing.as_deref()?)?;
            Some((row.stamp, SessionId(row.id), listing))
        })
        .collect())
}
