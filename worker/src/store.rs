//! A session in its object's SQLite storage: everything that must survive hibernation.
//!
//! Table `session` has one row: the ID, the spelling, the sessionData and the default
//! playerData; once the session is over only `ended = 1` stays, so that its ID is never handed
//! out again. Table `member` has one row per member, in join order (rowid), with its playerData,
//! NULL while that is the session's default.
//!
//! Every change the core reports (`Output::Changed`) is written in the event that made it,
//! through [`crate::persist::store`]. The platform holds the frames an event sends until its
//! writes are durable, so no member ever sees a state that a restart could take back.

use serde::Deserialize;
use sessionserver_core::{JsonObject, PlayerId, Session, SessionId, Spelling};
use worker::{Error, Result, SqlStorage, SqlStorageValue, State};

use crate::persist::Rows;

const SCHEMA: &str = "\
CREATE TABLE session (
    k INTEGER PRIMARY KEY CHECK (k = 0),
    id INTEGER NOT NULL,
    spelling TEXT NOT NULL,
    session_data TEXT,
    player_default TEXT,
    ended INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE member (
    seq INTEGER PRIMARY KEY,
    player INTEGER NOT NULL UNIQUE,
    data TEXT
);";

/// What the object's storage holds.
#[derive(Debug)]
pub enum Stored {
    /// Nothing: no session was ever created under this ID.
    Vacant,
    /// A live session.
    Live(Session),
    /// The session ended; the ID stays taken.
    Ended,
}

/// The SQL storage of one session object.
pub struct Store {
    sql: SqlStorage,
}

#[derive(Deserialize)]
struct SessionRow {
    id: u64,
    spelling: String,
    session_data: Option<String>,
    player_default: Option<String>,
    ended: u8,
}

#[derive(Deserialize)]
struct MemberRow {
    player: u64,
    data: Option<String>,
}

fn int(id: u64) -> SqlStorageValue {
    // IDs are below 2^53: exact as i64 and as a JavaScript number.
    SqlStorageValue::Integer(id as i64)
}

fn text(data: &JsonObject) -> SqlStorageValue {
    SqlStorageValue::String(data.as_str().to_owned())
}

fn object(text: Option<String>, what: &str) -> Result<JsonObject> {
    let text = text.ok_or_else(|| Error::RustError(format!("stored {what} is missing")))?;
    JsonObject::parse(&text).map_err(|e| Error::RustError(format!("stored {what}: {e}")))
}

impl Store {
    /// The object's storage. Nothing is written until a session is created: a join to an ID
    /// that was never used leaves no storage behind.
    pub fn open(state: &State) -> Store {
        Store {
            sql: state.storage().sql(),
        }
    }

    /// Reads the session back (after a start or a wake from hibernation).
    pub fn load(&self) -> Result<Stored> {
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
            return Ok(Stored::Vacant);
        }
        let rows: Vec<SessionRow> = self
            .sql
            .exec(
                "SELECT id, spelling, session_data, player_default, ended FROM session",
                None,
            )?
            .to_array()?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(Stored::Vacant);
        };
        if row.ended != 0 {
            return Ok(Stored::Ended);
        }
        let spelling = match row.spelling.as_str() {
            "long" => Spelling::Long,
            _ => Spelling::Short,
        };
        let session_data = object(row.session_data, "sessionData")?;
        let player_default = object(row.player_default, "default playerData")?;
        let members: Vec<MemberRow> = self
            .sql
            .exec("SELECT player, data FROM member ORDER BY seq", None)?
            .to_array()?;
        let mut restored = Vec::with_capacity(members.len());
        for m in members {
            let data = match m.data {
                Some(text) => Some(object(Some(text), "playerData")?),
                None => None,
            };
            restored.push((PlayerId(m.player), data));
        }
        Ok(Stored::Live(Session::restore(
            SessionId(row.id),
            spelling,
            session_data,
            player_default,
            restored,
            crate::link::limits(),
        )))
    }

    /// The last member is gone: only the fact that this ID was used stays.
    pub fn end(&self) -> Result<()> {
        self.sql.exec("DELETE FROM member", None)?;
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
        self.sql.exec(
            "INSERT INTO session (k, id, spelling, session_data, player_default) \
             VALUES (0, ?, ?, ?, ?)",
            vec![
                int(session.id().0),
                spelling.into(),
                text(session.session_data()),
                text(session.default_player_data()),
            ],
        )?;
        Ok(())
    }

    fn add_member(&mut self, player: PlayerId, data: Option<&JsonObject>) -> Result<()> {
        self.sql.exec(
            "INSERT OR IGNORE INTO member (player, data) VALUES (?, ?)",
            vec![
                int(player.0),
                data.map(text).unwrap_or(SqlStorageValue::Null),
            ],
        )?;
        Ok(())
    }

    fn remove_member(&mut self, player: PlayerId) -> Result<()> {
        self.sql
            .exec("DELETE FROM member WHERE player = ?", vec![int(player.0)])?;
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
        Ok(())
    }

    fn save_player(&mut self, player: PlayerId, data: Option<&JsonObject>) -> Result<()> {
        self.sql.exec(
            "UPDATE member SET data = ? WHERE player = ?",
            vec![
                data.map(text).unwrap_or(SqlStorageValue::Null),
                int(player.0),
            ],
        )?;
        Ok(())
    }
}
