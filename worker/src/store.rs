//! A session in its object's SQLite storage: everything that must survive hibernation.
//!
//! Table `session` has one row: the ID, the spelling, the sessionData and the default
//! playerData, and its options and lock (`access`, JSON, NULL for none: the password only as
//! its SHA-256, see [`persist::access_text`]); once the session is over only `ended = 1` stays, so that its ID is never handed
//! out again. Table `member` has one row per member, in join order (rowid), with its playerData,
//! NULL while that is the session's default, the secret of its resume token (32 hex digits,
//! NULL if it has none), while it is away, when its grace period ends (`away_until`,
//! milliseconds since the epoch; NULL while connected), and its subject (who its connection
//! was found to be by connect-time auth; NULL for none), set when it joins. Storage written
//! before resume existed lacks `secret` and `away_until`, storage written before auth lacks
//! `subject`: they are added when such a session is loaded. Table `batch` holds the flushed
//! playerData of the whole session ([`persist::encode_batch`], cut into rows of at most
//! [`persist::BATCH_PART_BYTES`], `part` 0, 1, …: one row unless the changed playerData passes
//! 1 MB): each member whose data changed since its member row was written, with that data; a
//! load reads the member rows, then the batch over them. Storage written before the batch
//! lacks the table: it is made when such a session is loaded (its member rows hold the data).
//!
//! Every change the core reports (`Output::Changed`) is written through
//! [`crate::persist::store`]: in the event that made it, except a member's playerData, which
//! is written at most about once a second for the whole session, in the batch, by [`crate::persist::flush`] (the
//! object's flush timer, its last socket closing, its alarm). The platform holds the frames an
//! event sends until its writes are durable: for joins, leaves, seats and the format no member
//! ever sees a state that a restart could take back; for playerData a restart takes back at
//! most the last flush period (worker/README.md, "Storage"), and a broadcast of an
//! `updatePlayer` waits for no write.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use sessionserver_core::{
    JsonObject, Limits, PlayerId, Session, SessionId, Spelling, StoredMember,
};
use worker::{Error, Result, SqlCursor, SqlStorage, SqlStorageValue, State};

use crate::persist::{self, Rows};

const SCHEMA: &str = "\
CREATE TABLE session (
    k INTEGER PRIMARY KEY CHECK (k = 0),
    id INTEGER NOT NULL,
    spelling TEXT NOT NULL,
    session_data TEXT,
    player_default TEXT,
    ended INTEGER NOT NULL DEFAULT 0,
    access TEXT,
    registry INTEGER
);
CREATE TABLE member (
    seq INTEGER PRIMARY KEY,
    player INTEGER NOT NULL UNIQUE,
    data TEXT,
    secret TEXT,
    away_until INTEGER,
    subject TEXT
);
CREATE TABLE batch (
    part INTEGER PRIMARY KEY,
    data TEXT NOT NULL
);";

/// What the object's storage holds.
#[derive(Debug)]
pub enum Stored {
    /// Nothing: no session was ever created under this ID.
    Vacant,
    /// A live session.
    Live(Session),
    /// The session ended; its ID stays taken.
    Ended(SessionId),
}

/// The SQL storage of one session object.
pub struct Store {
    sql: Sql,
    /// The number of registry shards now (`REGISTRY_SHARDS`): a new session's shard.
    shards: u32,
    /// The registry shard the session is in (`session.registry`; 0 for a session stored
    /// before sharding, which the single registry, now shard 0, knows).
    registry: Cell<u32>,
}

/// The object's SQL storage, counting the rows its statements write (what the platform
/// bills), for the test hook that reports them ([`Store::rows_written`]).
struct Sql {
    inner: SqlStorage,
    written: Cell<u64>,
}

impl Sql {
    fn exec(
        &self,
        query: &str,
        bindings: impl Into<Option<Vec<SqlStorageValue>>>,
    ) -> Result<SqlCursor> {
        let cursor = self.inner.exec(query, bindings)?;
        // A statement that returns no rows has run to its end in `exec`.
        let written = self
            .written
            .get()
            .saturating_add(cursor.rows_written() as u64);
        self.written.set(written);
        Ok(cursor)
    }
}

#[derive(Deserialize)]
struct SessionRow {
    id: u64,
    spelling: String,
    session_data: Option<String>,
    player_default: Option<String>,
    ended: u8,
    access: Option<String>,
    registry: Option<u32>,
}

#[derive(Deserialize)]
struct MemberRow {
    player: u64,
    data: Option<String>,
    secret: Option<String>,
    away_until: Option<f64>,
    subject: Option<String>,
}

fn int(id: u64) -> SqlStorageValue {
    // IDs are below 2^53: exact as i64 and as a JavaScript number.
    SqlStorageValue::Integer(id as i64)
}

fn text(data: &JsonObject) -> SqlStorageValue {
    SqlStorageValue::String(data.as_str().to_owned())
}

fn secret(secret: Option<u128>) -> SqlStorageValue {
    match secret {
        Some(secret) => SqlStorageValue::String(format!("{secret:032x}")),
        None => SqlStorageValue::Null,
    }
}

fn object(text: Option<String>, what: &str) -> Result<JsonObject> {
    let text = text.ok_or_else(|| Error::RustError(format!("stored {what} is missing")))?;
    JsonObject::parse(&text).map_err(|e| Error::RustError(format!("stored {what}: {e}")))
}

impl Store {
    /// The object's storage. Nothing is written until a session is created: a join to an ID
    /// that was never used leaves no storage behind.
    pub fn open(state: &State, shards: u32) -> Store {
        Store {
            sql: Sql {
                inner: state.storage().sql(),
                written: Cell::new(0),
            },
            shards,
            registry: Cell::new(0),
        }
    }

    /// The registry shard the stored session is in ([`crate::shard`]): where its listing and
    /// its removal go.
    pub fn registry_shard(&self) -> u32 {
        self.registry.get()
    }

    /// Rows written through this store since it was opened (the object's last load).
    pub fn rows_written(&self) -> u64 {
        self.sql.written.get()
    }

    /// Reads the session back (after a start or a wake from hibernation), with `limits` and
    /// a fresh `seed` for its resume secrets ([`Session::restore_members`]). `sockets` are
    /// the members that still have a socket, each with the connection it speaks for. A member
    /// with a token and no socket that was connected when stored lost its connection while
    /// the object was down: it is away from `now_ms` for the grace period (stored so; its
    /// resume gets the snapshot form, like every resume after a restart).
    pub fn load(
        &self,
        limits: Limits,
        seed: Option<[u8; 32]>,
        sockets: &HashMap<PlayerId, PlayerId>,
        now_ms: u64,
    ) -> Result<(Stored, Vec<PlayerId>)> {
        let created = self
            .sql
            .exec(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'session'",
                None,
            )?
            .raw()
            .next()
            .is_some();
        if !created {
            return Ok((Stored::Vacant, Vec::new()));
        }
        self.migrate_session()?;
        let rows: Vec<SessionRow> = self
            .sql
            .exec(
                "SELECT id, spelling, session_data, player_default, ended, access, registry \
                 FROM session",
                None,
            )?
            .to_array()?;
        let Some(row) = rows.into_iter().next() else {
            return Ok((Stored::Vacant, Vec::new()));
        };
        self.registry.set(row.registry.unwrap_or(0));
        if row.ended != 0 {
            return Ok((Stored::Ended(SessionId(row.id)), Vec::new()));
        }
        let spelling = match row.spelling.as_str() {
            "long" => Spelling::Long,
            _ => Spelling::Short,
        };
        let session_data = object(row.session_data, "sessionData")?;
        let player_default = object(row.player_default, "default playerData")?;
        self.migrate()?;
        let members: Vec<MemberRow> = self
            .sql
            .exec(
                "SELECT player, data, secret, away_until, subject FROM member ORDER BY seq",
                None,
            )?
            .to_array()?;
        #[derive(Deserialize)]
        struct PartRow {
            data: String,
        }
        let parts: Vec<PartRow> = self
            .sql
            .exec("SELECT data FROM batch ORDER BY part", None)?
            .to_array()?;
        let batch_text: String = parts.into_iter().map(|p| p.data).collect();
        let batch: HashMap<PlayerId, Option<&str>> = persist::decode_batch(&batch_text)
            .ok_or_else(|| Error::RustError("stored batch of playerData is not one".into()))?
            .into_iter()
            .collect();
        // Every player the batch holds, members or not: one that left since the batch was
        // written and comes back must have the batch written again (`persist::store`).
        let batched: Vec<PlayerId> = batch.keys().copied().collect();
        let mut restored = Vec::with_capacity(members.len());
        for m in members {
            // The batch's data if it holds the member's (newer than its row's).
            let text = match batch.get(&PlayerId(m.player)) {
                Some(data) => data.map(str::to_owned),
                None => m.data,
            };
            let data = match text {
                Some(text) => Some(object(Some(text), "playerData")?),
                None => None,
            };
            let secret = match m.secret {
                Some(hex) => Some(u128::from_str_radix(&hex, 16).map_err(|_| {
                    Error::RustError(format!("stored secret of player {} is no secret", m.player))
                })?),
                None => None,
            };
            let id = PlayerId(m.player);
            let mut away_until_ms = m.away_until.map(|ms| ms as u64);
            let lost = !sockets.contains_key(&id) && away_until_ms.is_none();
            if lost && secret.is_some() && limits.resume_grace_ms > 0 {
                let deadline = now_ms.saturating_add(limits.resume_grace_ms);
                away_until_ms = Some(deadline);
                self.write_seat(id, secret, away_until_ms)?;
            }
            restored.push(StoredMember {
                id,
                data,
                secret,
                away_until_ms,
                connection: sockets.get(&id).copied().filter(|&c| c != id),
                subject: m.subject.map(Arc::new),
            });
        }
        let access = match row.access {
            Some(text) => persist::access_of(&text)
                .ok_or_else(|| Error::RustError(format!("stored access {text:?} is not one")))?,
            None => Default::default(),
        };
        let session = Session::restore_members(
            SessionId(row.id),
            spelling,
            session_data,
            player_default,
            restored,
            limits,
            seed,
        )
        .with_access(access);
        Ok((Stored::Live(session), batched))
    }

    /// Adds the `access` column (a session's options and lock) to a session table made
    /// before it existed.
    fn migrate_session(&self) -> Result<()> {
        #[derive(Deserialize)]
        struct Table {
            sql: String,
        }
        let tables: Vec<Table> = self
            .sql
            .exec(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'session'",
                None,
            )?
            .to_array()?;
        if tables.iter().any(|t| !t.sql.contains("access")) {
            self.sql
                .exec("ALTER TABLE session ADD COLUMN access TEXT", None)?;
        }
        if tables.iter().any(|t| !t.sql.contains("registry")) {
            self.sql
                .exec("ALTER TABLE session ADD COLUMN registry INTEGER", None)?;
        }
        Ok(())
    }

    /// Adds the resume columns and the subject column to a member table made before they
    /// existed.
    fn migrate(&self) -> Result<()> {
        #[derive(Deserialize)]
        struct Table {
            sql: String,
        }
        let tables: Vec<Table> = self
            .sql
            .exec(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'member'",
                None,
            )?
            .to_array()?;
        if tables.iter().any(|t| !t.sql.contains("away_until")) {
            self.sql
                .exec("ALTER TABLE member ADD COLUMN secret TEXT", None)?;
            self.sql
                .exec("ALTER TABLE member ADD COLUMN away_until INTEGER", None)?;
        }
        if tables.iter().any(|t| !t.sql.contains("subject")) {
            self.sql
                .exec("ALTER TABLE member ADD COLUMN subject TEXT", None)?;
        }
        let batch = self
            .sql
            .exec(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'batch'",
                None,
            )?
            .raw()
            .next()
            .is_some();
        if !batch {
            self.sql.exec(
                "CREATE TABLE batch (part INTEGER PRIMARY KEY, data TEXT NOT NULL)",
                None,
            )?;
        }
        Ok(())
    }

    /// The last member is gone: only the fact that this ID was used stays.
    pub fn end(&self) -> Result<()> {
        self.sql.exec("DELETE FROM member", None)?;
        self.sql.exec("DELETE FROM batch", None)?;
        self.sql.exec(
            "UPDATE session SET ended = 1, session_data = NULL, player_default = NULL \
             WHERE k = 0",
            None,
        )?;
        Ok(())
    }
}

impl Rows for Store {
    type Error = Error;

    fn create(&mut self, session: &Session) -> Result<()> {
        self.sql.exec(SCHEMA, None)?;
        let spelling = match session.spelling() {
            Spelling::Short => "short",
            Spelling::Long => "long",
        };
        // The shard its relay-side registration went to (the same rule, `shard_of`).
        let registry = crate::shard::shard_of(session.id(), self.shards);
        self.sql.exec(
            "INSERT INTO session (k, id, spelling, session_data, player_default, registry) \
             VALUES (0, ?, ?, ?, ?, ?)",
            vec![
                int(session.id().0),
                spelling.into(),
                text(session.session_data()),
                text(session.default_player_data()),
                int(u64::from(registry)),
            ],
        )?;
        self.registry.set(registry);
        Ok(())
    }

    fn add_member(
        &mut self,
        player: PlayerId,
        data: Option<&JsonObject>,
        secret_of: Option<u128>,
        subject: Option<&str>,
    ) -> Result<()> {
        self.sql.exec(
            "INSERT OR IGNORE INTO member (player, data, secret, subject) VALUES (?, ?, ?, ?)",
            vec![
                int(player.0),
                data.map(text).unwrap_or(SqlStorageValue::Null),
                secret(secret_of),
                subject.map_or(SqlStorageValue::Null, |s| s.into()),
            ],
        )?;
        Ok(())
    }

    fn remove_member(&mut self, player: PlayerId) -> Result<()> {
        self.sql
            .exec("DELETE FROM member WHERE player = ?", vec![int(player.0)])?;
        Ok(())
    }

    fn save_access(&mut self, access: Option<String>) -> Result<()> {
        self.sql.exec(
            "UPDATE session SET access = ? WHERE k = 0",
            vec![access.map_or(SqlStorageValue::Null, SqlStorageValue::String)],
        )?;
        Ok(())
    }

    fn save_format(&mut self, session: &Session) -> Result<()> {
        self.sql.exec(
            "UPDATE session SET session_data = ?, player_default = ? WHERE k = 0",
            vec![
                text(session.session_data()),
                text(session.default_player_data()),
            ],
        )?;
        self.sql.exec("UPDATE member SET data = NULL", None)?;
        self.sql.exec("DELETE FROM batch", None)?;
        Ok(())
    }

    fn save_batch(&mut self, parts: &[&str]) -> Result<()> {
        // One upsert per part (one row written each), then the parts no longer needed (none
        // at steady state: no row is touched).
        for (part, data) in parts.iter().enumerate() {
            self.sql.exec(
                "INSERT INTO batch (part, data) VALUES (?, ?) \
                 ON CONFLICT(part) DO UPDATE SET data = excluded.data",
                vec![
                    int(part as u64),
                    SqlStorageValue::String((*data).to_owned()),
                ],
            )?;
        }
        self.sql.exec(
            "DELETE FROM batch WHERE part >= ?",
            vec![int(parts.len() as u64)],
        )?;
        Ok(())
    }

    fn save_seat(
        &mut self,
        player: PlayerId,
        secret_of: Option<u128>,
        away_until_ms: Option<u64>,
    ) -> Result<()> {
        self.write_seat(player, secret_of, away_until_ms)
    }
}

impl Store {
    fn write_seat(
        &self,
        player: PlayerId,
        secret_of: Option<u128>,
        away_until_ms: Option<u64>,
    ) -> Result<()> {
        let away = match away_until_ms {
            // Milliseconds since the epoch: far below 2^53, exact as a JavaScript number.
            Some(ms) => SqlStorageValue::Integer(ms as i64),
            None => SqlStorageValue::Null,
        };
        self.sql.exec(
            "UPDATE member SET secret = ?, away_until = ? WHERE player = ?",
            vec![secret(secret_of), away, int(player.0)],
        )?;
        Ok(())
    }
}
