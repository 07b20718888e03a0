//! [`RegistryObject`]: the one Durable Object that knows the live sessions in order of
//! creation, for `joinSession -1` (the latest session that still exists).
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
//! Requests: `/add?id=N`, `/remove?id=N`, `/latest[?gone=N]` (200 with the ID, or 404: none),
//! `POST /listing?id=N` (body: [`Listing::encode`]), `POST /list` (body: the listSessions
//! command; 200 with the `sessionList` frame), `POST /match` (body: the filter as a JSON
//! object; 200 with the ID of the best match, or 404).

use sessionserver_core::command::MAX_LIST_PAGE;
use sessionserver_core::{reply, Command, Limits, ListRequest, Listing, SessionId};
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, SqlStorageValue, State,
};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS live (
    seq INTEGER PRIMARY KEY,
    id INTEGER NOT NULL UNIQUE,
    listing TEXT
)";

/// The registry object. It only answers requests (`fetch`): it accepts no sockets and sets no
/// alarm, so no other handler is exported.
#[durable_object(fetch)]
pub struct RegistryObject {
    state: State,
}

impl DurableObject for RegistryObject {
    fn new(state: State, _env: Env) -> Self {
        RegistryObject { state }
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
            ("/listing", Some(id), _) => {
                let text = req.text().await?;
                if Listing::decode(&text).is_none() {
                    return Response::error("not a listing", 400);
                }
                // An upsert: the listing may overtake the session's own `add`.
                sql.exec(
                    "INSERT INTO live (id, listing) VALUES (?, ?) \
                     ON CONFLICT(id) DO UPDATE SET listing = excluded.listing",
                    vec![SqlStorageValue::Integer(id), SqlStorageValue::String(text)],
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
                let (page, next) = page(&listed(&sql)?, &request);
                let refs: Vec<(SessionId, &Listing)> =
                    page.iter().map(|(id, l)| (*id, l)).collect();
                Response::ok(reply::session_list(&refs, next).as_str())
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
                let mut best: Option<(u32, SessionId)> = None;
                for (_, id, listing) in listed(&sql)? {
                    if listing.matches(&request, max)
                        && best.is_none_or(|(players, _)| listing.players > players)
                    {
                        best = Some((listing.players, id));
                    }
                }
                match best {
                    Some((_, id)) => Response::ok(id.to_string()),
                    None => Response::error("no match", 404),
                }
            }
            ("/add", Some(id), _) => {
                sql.exec(
                    "INSERT OR IGNORE INTO live (id) VALUES (?)",
                    vec![SqlStorageValue::Integer(id)],
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
                }
                let rows: Vec<Row> = sql
                    .exec("SELECT id FROM live ORDER BY seq DESC LIMIT 1", None)?
                    .to_array()?;
                match rows.first() {
                    Some(row) => Response::ok(row.id.to_string()),
                    None => Response::error("no session", 404),
                }
            }
            _ => Response::error("not a registry request", 400),
        }
    }
}

/// Adds the `listing` column to a table made before it existed.
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
    Ok(())
}

/// Every public session with a listing, newest first, with its place in the order.
fn listed(sql: &worker::SqlStorage) -> Result<Vec<(u64, SessionId, Listing)>> {
    #[derive(serde::Deserialize)]
    struct Row {
        seq: u64,
        id: u64,
        listing: Option<String>,
    }
    let rows: Vec<Row> = sql
        .exec(
            "SELECT seq, id, listing FROM live WHERE listing IS NOT NULL ORDER BY seq DESC",
            None,
        )?
        .to_array()?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let listing = Listing::decode(row.listing.as_deref()?)?;
            Some((row.seq, SessionId(row.id), listing))
        })
        .collect())
}

/// A page of `request` from `listed` (newest first), and the cursor of the next one: as the
/// native host's directory pages (`Directory::list`), by place in the order.
fn page(
    listed: &[(u64, SessionId, Listing)],
    request: &ListRequest,
) -> (Vec<(SessionId, Listing)>, Option<u64>) {
    let max = Limits::default().max_players_per_session;
    let upto = request.after.unwrap_or(u64::MAX);
    let limit = request.limit.min(MAX_LIST_PAGE);
    let mut out = Vec::new();
    for (seq, id, listing) in listed.iter().filter(|(seq, ..)| *seq < upto) {
        if !listing.matches(request, max) {
            continue;
        }
        if out.len() == limit {
            return (out, Some(seq + 1));
        }
        out.push((*id, listing.clone()));
    }
    (out, None)
}
