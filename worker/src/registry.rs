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
//! Requests: `/add?id=N`, `/remove?id=N`, `/latest[?gone=N]` (200 with the ID, or 404: none).

use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, SqlStorageValue, State,
};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS live (
    seq INTEGER PRIMARY KEY,
    id INTEGER NOT NULL UNIQUE
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

    async fn fetch(&self, req: Request) -> Result<Response> {
        let url = req.url()?;
        let id = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.parse::<i64>().ok())
        };
        let sql = self.state.storage().sql();
        sql.exec(SCHEMA, None)?;
        match (url.path(), id("id"), id("gone")) {
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
