//! Which stored rows each of the session's [`Change`]s writes. The session object applies every
//! `Output::Changed` it drains through [`store`], onto its SQLite tables ([`crate::store`]);
//! the session says what changed, so nothing here guesses it from the command that was sent
//! (a refused `updateSession` changes nothing, and writes nothing). Compiled on every target,
//! so that `cargo test` checks natively that the rows always describe the live session.
//!
//! Writes are batched where they are frequent: a member's playerData (`updatePlayer`, the bulk
//! of a game's traffic) is only marked in [`Pending`], and [`flush`] writes the data of every
//! marked member at once, in **one row for the whole session** (the *batch*,
//! [`encode_batch`]): the batch holds each member whose data changed since its own member row
//! was written, and replaces the previous batch; a load reads member rows, then the batch over
//! them. The object flushes at most about once a second ([`FLUSH_MS`]) and whenever it could
//! stop running with data unwritten (its last socket closed, its alarm): at steady state one
//! row a second per session, whatever the number of members and their update rate; a restart
//! of the object loses at most that window of playerData (worker/README.md, "Storage"). Every
//! other change (members, the format, seats) is rare and written at once, in the event that
//! made it.

use std::collections::HashSet;

use sessionserver_core::{Access, Change, JsonObject, PasswordDigest, PlayerId, Session};

/// How long a member's changed playerData may stay unwritten, in milliseconds: the object
/// flushes this long after the first change it has not written.
pub const FLUSH_MS: u64 = 1000;

/// The rows of one stored session.
pub trait Rows {
    /// What a failed write reports.
    type Error;
    /// A new session: its ID, spelling, sessionData and default playerData, and no members.
    fn create(&mut self, session: &Session) -> Result<(), Self::Error>;
    /// A member, after the others, unless it is stored already, with the secret of its
    /// resume token if it has one, and its subject (who its connection was found to be at
    /// connect time) if it has one: both are needed to honour its token after a restart.
    fn add_member(
        &mut self,
        player: PlayerId,
        data: Option<&JsonObject>,
        secret: Option<u128>,
        subject: Option<&str>,
    ) -> Result<(), Self::Error>;
    /// A member is gone.
    fn remove_member(&mut self, player: PlayerId) -> Result<(), Self::Error>;
    /// The session's options and lock ([`access_text`]: `None` for none).
    fn save_access(&mut self, access: Option<String>) -> Result<(), Self::Error>;
    /// New sessionData and default playerData, and every member back to the default.
    fn save_format(&mut self, session: &Session) -> Result<(), Self::Error>;
    /// The batch of flushed playerData ([`encode_batch`]), replacing the one stored before,
    /// in the rows [`batch_parts`] cuts it into: one unless the session's changed playerData
    /// passes [`BATCH_PART_BYTES`] (an empty batch: no rows).
    fn save_batch(&mut self, parts: &[&str]) -> Result<(), Self::Error>;
    /// One member's resume state: its token's secret, and while it is away the end of its
    /// grace period (`None`: connected).
    fn save_seat(
        &mut self,
        player: PlayerId,
        secret: Option<u128>,
        away_until_ms: Option<u64>,
    ) -> Result<(), Self::Error>;
}

/// The members whose playerData changed since it was last written, and those whose data is in
/// the stored batch (their member rows hold older data).
#[derive(Debug, Default)]
pub struct Pending {
    players: HashSet<PlayerId>,
    batched: HashSet<PlayerId>,
}

impl Pending {
    /// After a load: `batched` are the members the stored batch holds ([`decode_batch`]).
    pub fn restored(batched: impl IntoIterator<Item = PlayerId>) -> Pending {
        Pending {
            players: HashSet::new(),
            batched: batched.into_iter().collect(),
        }
    }

    /// Whether something waits for [`flush`].
    pub fn is_empty(&self) -> bool {
        self.players.is_empty()
    }

    /// Nothing waits any more, and no batch is stored: the session ended (its rows are
    /// deleted) or every member's data was written to its own row.
    pub fn clear(&mut self) {
        self.players.clear();
        self.batched.clear();
    }
}

/// The most text one row of the batch holds (the platform's row limit is 2 MB): the batch of
/// a session whose changed playerData is larger takes one more row per this many bytes (the
/// core bounds a session's data to 4 MiB in all: at most 5 rows).
pub const BATCH_PART_BYTES: usize = 1_000_000;

/// The batch's text: for each member, `"<player ID> <length>\n<data>\n"`, its playerData's
/// JSON text as the session holds it (`length` in bytes), or `"<player ID> -\n"` for the
/// session's default.
pub fn encode_batch<'a>(
    entries: impl IntoIterator<Item = (PlayerId, Option<&'a JsonObject>)>,
) -> String {
    let mut out = String::new();
    for (player, data) in entries {
        match data {
            Some(data) => {
                let text = data.as_str();
                out.push_str(&format!("{} {}\n", player.0, text.len()));
                out.push_str(text);
                out.push('\n');
            }
            None => out.push_str(&format!("{} -\n", player.0)),
        }
    }
    out
}

/// Reads [`encode_batch`]'s text back: each member with its data's text (`None`: the
/// default). `None` if the text is not a batch.
pub fn decode_batch(mut text: &str) -> Option<Vec<(PlayerId, Option<&str>)>> {
    let mut out = Vec::new();
    while !text.is_empty() {
        let (header, rest) = text.split_once('\n')?;
        let (id, length) = header.split_once(' ')?;
        let player = PlayerId(id.parse().ok()?);
        if length == "-" {
            out.push((player, None));
            text = rest;
            continue;
        }
        let length: usize = length.parse().ok()?;
        // `get` checks the length against the rest (and a character boundary): nothing is
        // added to a stored number.
        let data = rest.get(..length)?;
        text = rest.get(length..)?.strip_prefix('\n')?;
        out.push((player, Some(data)));
    }
    Some(out)
}

/// The batch's text cut into rows of at most [`BATCH_PART_BYTES`] bytes, each on a character
/// boundary; none for an empty batch.
pub fn batch_parts(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(BATCH_PART_BYTES);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (part, tail) = rest.split_at(end);
        parts.push(part);
        rest = tail;
    }
    parts
}

/// Writes what `change` changed, reading it from `session` (its state once the input that
/// made the change has been handled; each change only names the rows to write), or for a
/// member's playerData marks it in `pending` for the next [`flush`].
pub fn store<R: Rows>(
    change: Change,
    session: &Session,
    rows: &mut R,
    pending: &mut Pending,
) -> Result<(), R::Error> {
    match change {
        Change::Created => {
            pending.clear();
            rows.create(session)?;
            if let Some(text) = access_text(session.access()) {
                rows.save_access(Some(text))?;
            }
            for (player, _) in session.members() {
                add_member(player, session, rows)?;
            }
            Ok(())
        }
        // Written with its data as it is now; still marked if it was (a member stored
        // already is not written again). A member the batch still holds from an earlier seat
        // (it left and came back) would be read back with that data: the batch is written
        // again at once, without it (rare: a rejoin under the same ID).
        Change::MemberAdded(player) => {
            add_member(player, session, rows)?;
            if pending.batched.remove(&player) {
                write_batch(session, rows, pending)?;
            }
            Ok(())
        }
        // The batch may keep its data: a load reads the batch only for stored members.
        Change::MemberRemoved(player) => {
            pending.players.remove(&player);
            rows.remove_member(player)
        }
        // Every member's data is the default now, and written so (the batch is deleted).
        Change::Format => {
            pending.clear();
            rows.save_format(session)
        }
        Change::PlayerData(player) => {
            pending.players.insert(player);
            Ok(())
        }
        Change::MemberAway(player) | Change::MemberBack(player) => rows.save_seat(
            player,
            session.secret_of(player),
            session.away_until(player),
        ),
        Change::Access => rows.save_access(access_text(session.access())),
    }
}

/// Writes the playerData of every member marked in `pending`, in one batch for the session
/// (with those the stored batch held already, as their data is now): one row (more only past
/// [`BATCH_PART_BYTES`]) whatever the number of members and of their changes. Returns the
/// rows written. After a failed write the members stay marked.
pub fn flush<R: Rows>(
    session: &Session,
    rows: &mut R,
    pending: &mut Pending,
) -> Result<usize, R::Error> {
    if pending.is_empty() {
        return Ok(0);
    }
    write_batch(session, rows, pending)
}

/// Writes the batch of the members marked or batched in `pending` that are in the session.
fn write_batch<R: Rows>(
    session: &Session,
    rows: &mut R,
    pending: &mut Pending,
) -> Result<usize, R::Error> {
    let batched: Vec<PlayerId> = session
        .member_ids()
        .filter(|p| pending.players.contains(p) || pending.batched.contains(p))
        .collect();
    let text = encode_batch(batched.iter().map(|&p| (p, session.stored_player_data(p))));
    let parts = batch_parts(&text);
    rows.save_batch(&parts)?;
    pending.players.clear();
    pending.batched = batched.into_iter().collect();
    Ok(parts.len())
}

/// A session's options and lock as the text its row keeps: a JSON object of those that are
/// set (the password as its SHA-256 in hex), `None` when none is.
pub fn access_text(access: &Access) -> Option<String> {
    let mut fields = serde_json::Map::new();
    if let Some(max) = access.max_players {
        fields.insert("maxPlayers".into(), max.into());
    }
    if let Some(digest) = &access.password {
        fields.insert("passwordSha256".into(), digest.to_hex().into());
    }
    if let Some(metadata) = &access.metadata {
        // As its text: kept verbatim (key order, number spelling).
        fields.insert("metadata".into(), metadata.as_str().into());
    }
    for (set, name) in [
        (access.private, "private"),
        (access.host_only_session_updates, "hostOnlySessionUpdates"),
        (access.locked, "locked"),
    ] {
        if set {
            fields.insert(name.into(), true.into());
        }
    }
    (!fields.is_empty()).then(|| serde_json::Value::Object(fields).to_string())
}

/// Reads [`access_text`]'s text back; `None` if it is not one.
pub fn access_of(text: &str) -> Option<Access> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let fields = value.as_object()?;
    let flag = |name: &str| fields.get(name).and_then(|v| v.as_bool()).unwrap_or(false);
    let mut access = Access::default();
    access.max_players = match fields.get("maxPlayers") {
        Some(max) => Some(u32::try_from(max.as_u64()?).ok()?),
        None => None,
    };
    access.password = match fields.get("passwordSha256") {
        Some(hex) => Some(PasswordDigest::from_hex(hex.as_str()?)?),
        None => None,
    };
    access.metadata = match fields.get("metadata") {
        Some(text) => Some(JsonObject::parse(text.as_str()?).ok()?),
        None => None,
    };
    access.private = flag("private");
    access.host_only_session_updates = flag("hostOnlySessionUpdates");
    access.locked = flag("locked");
    Some(access)
}

fn add_member<R: Rows>(player: PlayerId, session: &Session, rows: &mut R) -> Result<(), R::Error> {
    let data = session.stored_player_data(player);
    let subject = session.subject_of(player).map(|s| s.as_str());
    rows.add_member(player, data, session.secret_of(player), subject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use sessionserver_core::{
        parse, CreateRequest, Features, Limits, Output, ResumeRequest, ResumeToken, SessionId,
        Spelling, StoredMember, ToSession,
    };

    /// The rows in memory, as the SQL tables hold them.
    #[derive(Default)]
    struct Memory {
        session: Option<(SessionId, Spelling, JsonObject, JsonObject)>,
        members: Vec<StoredMember>,
        /// Rows written so far (inserted, updated or deleted), as SQLite bills them.
        written: usize,
        access: Option<String>,
        /// The batch's rows ([`Rows::save_batch`]).
        batch: Vec<String>,
    }

    impl Rows for Memory {
        type Error = String;
        fn create(&mut self, s: &Session) -> Result<(), String> {
            self.written += 1;
            let row = (
                s.id(),
                s.spelling(),
                s.session_data().clone(),
                s.default_player_data().clone(),
            );
            match self.session.replace(row) {
                None => Ok(()),
                Some(_) => Err("created twice".into()),
            }
        }
        fn add_member(
            &mut self,
            p: PlayerId,
            data: Option<&JsonObject>,
            secret: Option<u128>,
            subject: Option<&str>,
        ) -> Result<(), String> {
            if !self.members.iter().any(|m| m.id == p) {
                self.written += 1;
                self.members.push(StoredMember {
                    id: p,
                    data: data.cloned(),
                    secret,
                    away_until_ms: None,
                    connection: None,
                    subject: subject.map(|s| Arc::new(s.to_owned())),
                });
            }
            Ok(())
        }
        fn remove_member(&mut self, p: PlayerId) -> Result<(), String> {
            self.written += 1;
            self.members.retain(|m| m.id != p);
            Ok(())
        }
        fn save_access(&mut self, access: Option<String>) -> Result<(), String> {
            self.written += 1;
            self.access = access;
            Ok(())
        }
        fn save_format(&mut self, s: &Session) -> Result<(), String> {
            self.written += 1 + self.members.len() + self.batch.len();
            self.batch.clear();
            let row = self.session.as_mut().ok_or("no session")?;
            row.2 = s.session_data().clone();
            row.3 = s.default_player_data().clone();
            for member in &mut self.members {
                member.data = None;
            }
            Ok(())
        }
        fn save_batch(&mut self, parts: &[&str]) -> Result<(), String> {
            // Each part's row upserted, the rows of parts no longer needed deleted.
            self.written += parts.len() + self.batch.len().saturating_sub(parts.len());
            self.batch = parts.iter().map(|p| (*p).to_owned()).collect();
            Ok(())
        }
        fn save_seat(
            &mut self,
            p: PlayerId,
            secret: Option<u128>,
            away_until_ms: Option<u64>,
        ) -> Result<(), String> {
            self.written += 1;
            let member = self.members.iter_mut().find(|m| m.id == p);
            let member = member.ok_or("no such member")?;
            member.secret = secret;
            member.away_until_ms = away_until_ms;
            Ok(())
        }
    }

    impl Memory {
        /// What a load knows of the stored batch ([`Pending::restored`]).
        fn pending(&self) -> Pending {
            let batch = self.batch.concat();
            let batched = decode_batch(&batch).expect("the batch reads back");
            Pending::restored(batched.into_iter().map(|(player, _)| player))
        }

        /// The session these rows give back after a wake from hibernation or a restart.
        fn restore(&self, limits: Limits) -> Session {
            let (id, spelling, data, default) = self.session.clone().expect("created");
            let mut members = self.members.clone();
            // As `Store::load`: the member rows, then the batch over them.
            let batch = self.batch.concat();
            for (player, data) in decode_batch(&batch).expect("the batch reads back") {
                if let Some(member) = members.iter_mut().find(|m| m.id == player) {
                    member.data = data.map(|text| JsonObject::parse(text).expect("JSON"));
                }
            }
            let access = match &self.access {
                Some(text) => access_of(text).expect("stored access reads back"),
                None => Default::default(),
            };
            Session::restore_members(id, spelling, data, default, members, limits, Some([1; 32]))
                .with_access(access)
        }
    }

    /// Small enough that a 64 KiB frame can hit error 19 (as it cannot at the defaults).
    const LIMITS: Limits = Limits {
        max_depth: 64,
        max_players_per_session: 3,
        max_session_data_bytes: 60,
        max_sessions: 10,
        egress_bytes_per_second: 8 << 20,
        egress_burst_bytes: 16 << 20,
        resume_grace_ms: 0,
        resume_replay_bytes: 0,
    };

    /// Drains the session as the object does (storage from `Changed` only) and checks that
    /// the rows give back the same session. Returns the frames sent, as text.
    fn settle(session: &mut Session, rows: &mut Memory) -> Vec<String> {
        settle_with(session, rows, LIMITS)
    }

    /// Each drain is followed by a flush here, as if every event came a flush period after
    /// the one before.
    fn settle_with(session: &mut Session, rows: &mut Memory, limits: Limits) -> Vec<String> {
        // As the object has it after a load: the members the stored batch holds.
        let mut pending = rows.pending();
        let (frames, ended) = drain(session, rows, &mut pending);
        flush(session, rows, &mut pending).unwrap();
        assert!(pending.is_empty());
        if !ended {
            let restored = rows.restore(limits);
            assert_eq!(
                restored.describe(),
                session.describe(),
                "the rows no longer describe the session (after {frames:?})"
            );
            for player in session.member_ids() {
                assert_eq!(restored.secret_of(player), session.secret_of(player));
                assert_eq!(restored.away_until(player), session.away_until(player));
                assert_eq!(restored.subject_of(player), session.subject_of(player));
            }
        }
        frames
    }

    /// Drains the session as the object does, without flushing: the frames sent, and whether
    /// it ended.
    fn drain(
        session: &mut Session,
        rows: &mut Memory,
        pending: &mut Pending,
    ) -> (Vec<String>, bool) {
        let mut frames = Vec::new();
        let mut ended = false;
        while let Some(output) = session.poll_output() {
            match output {
                Output::Send { frame, .. } | Output::Broadcast { frame, .. } => {
                    frames.push(frame.as_str().to_owned())
                }
                Output::SendJoinBurst { burst, .. } => {
                    frames.extend(burst.map(|frame| frame.as_str().to_owned()))
                }
                Output::Changed(change) => store(change, session, rows, pending).unwrap(),
                Output::ToPlayer { .. }
                | Output::Rebind { .. }
                | Output::Away { .. }
                | Output::Release { .. }
                | Output::Pong { .. }
                | Output::Listing(_)
                | Output::Replaced { .. } => {}
                Output::Ended => ended = true,
            }
        }
        if ended {
            pending.clear();
        }
        (frames, ended)
    }

    fn subject(name: &str) -> Option<Arc<String>> {
        Some(Arc::new(name.to_owned()))
    }

    fn command(player: u64, frame: &str) -> ToSession {
        ToSession::Command {
            player: PlayerId(player),
            command: parse(frame, &LIMITS),
        }
    }

    /// Player `player` joins (no extensions, no password).
    fn join(player: u64) -> ToSession {
        ToSession::Join {
            player: PlayerId(player),
            features: Features::NONE,
            subject: None,
            password: None,
            quiet: false,
        }
    }

    #[test]
    fn the_rows_follow_the_session_and_a_refused_command_writes_nothing() {
        let mut rows = Memory::default();
        let Ok(sessionserver_core::Command::CreateSession(format)) = parse(
            r#"{"command":"createSession","sessionData":{"s":1},"playerData":{"x":0}}"#,
            &LIMITS,
        ) else {
            panic!("createSession parses");
        };
        let request = CreateRequest {
            player: PlayerId(1),
            format: format.format,
            features: Features::NONE,
            subject: subject("ada"),
            options: Default::default(),
        };
        let mut session = Session::create(SessionId(7), request, LIMITS);
        settle(&mut session, &mut rows);
        for input in [
            ToSession::Join {
                player: PlayerId(2),
                features: Features::NONE,
                subject: subject("bob"),
                password: None,
                quiet: false,
            },
            join(3),
            command(1, r#"{"command":"updatePlayer","playerData":{"x":5}}"#),
            command(3, r#"{"command":"updatePlayer","playerData":{"x":6}}"#),
        ] {
            session.handle(0, input);
            settle(&mut session, &mut rows);
        }
        // Each member's subject is stored with it (a resume must come from the same one).
        let subjects: Vec<Option<&str>> = rows
            .members
            .iter()
            .map(|m| m.subject.as_deref().map(String::as_str))
            .collect();
        assert_eq!(subjects, [Some("ada"), Some("bob"), None]);
        // A full session refuses a fourth player: nothing is stored.
        session.handle(0, join(4));
        let frames = settle(&mut session, &mut rows);
        assert!(frames[0].contains(r#""error":16"#), "{frames:?}");

        // Error 19: the new format would pass the data limit. The session keeps its format
        // and every member its playerData, in memory and in the rows (the bug this module
        // fixes: the object stored a format for every updateSession and reset every member).
        let big = format!(
            r#"{{"command":"updateSession","sessionData":{{"s":"{}"}},"playerData":{{"x":0}}}}"#,
            "z".repeat(60)
        );
        session.handle(0, command(2, &big));
        let frames = settle(&mut session, &mut rows);
        assert!(frames[0].contains(r#""error":19"#), "{frames:?}");
        // (Read back as a load does: the member rows, then the batch over them.)
        let restored = rows.restore(LIMITS);
        let first = restored.member_ids().next().expect("a member");
        assert_eq!(
            restored.stored_player_data(first).map(JsonObject::as_str),
            Some(r#"{"x":5}"#)
        );

        // Error 4 (the playerData's structure differs) and 19 (too large) for updatePlayer.
        session.handle(
            0,
            command(1, r#"{"command":"updatePlayer","playerData":{"y":5}}"#),
        );
        assert!(settle(&mut session, &mut rows)[0].contains(r#""error":4"#));
        let big = format!(
            r#"{{"command":"updatePlayer","playerData":{{"x":"{}"}}}}"#,
            "z".repeat(40)
        );
        session.handle(0, command(1, &big));
        assert!(settle(&mut session, &mut rows)[0].contains(r#""error":19"#));

        // An accepted updateSession resets every member's data, in the rows too.
        session.handle(
            0,
            command(
                3,
                r#"{"command":"updateSession","sessionData":{"t":2},"playerData":{"q":1}}"#,
            ),
        );
        settle(&mut session, &mut rows);
        assert!(rows.members.iter().all(|m| m.data.is_none()));
        assert_eq!(rows.session.as_ref().unwrap().3.as_str(), r#"{"q":1}"#);

        // Leaving, a disconnect, a rejected frame, and the end.
        for input in [
            command(2, r#"{"command":"leaveSession"}"#),
            command(1, r#"{"command":"joinSession","sessionID":7}"#),
            command(1, "not json"),
            command(1, r#"{"command":"updatePlayer","playerData":{"q":9}}"#),
            ToSession::Disconnect {
                player: PlayerId(3),
            },
        ] {
            session.handle(0, input);
            settle(&mut session, &mut rows);
        }
        assert_eq!(rows.members.len(), 1);
        session.handle(
            0,
            ToSession::Disconnect {
                player: PlayerId(1),
            },
        );
        settle(&mut session, &mut rows);
        assert!(session.is_empty() && rows.members.is_empty());
    }

    #[test]
    fn the_rows_keep_the_seats_of_members_that_may_resume() {
        let limits = Limits {
            resume_grace_ms: 1000,
            resume_replay_bytes: 1 << 20,
            ..LIMITS
        };
        let mut rows = Memory::default();
        let Ok(sessionserver_core::Command::CreateSession(format)) =
            parse(r#"{"command":"createSession","player":{"x":0}}"#, &limits)
        else {
            panic!("createSession parses");
        };
        let request = CreateRequest {
            player: PlayerId(1),
            format: format.format,
            features: Features::RESUME,
            subject: None,
            options: Default::default(),
        };
        let mut session = Session::create_seeded(SessionId(7), request, limits, Some([2; 32]));
        let frames = settle_with(&mut session, &mut rows, limits);
        assert!(rows.members[0].secret.is_some(), "{frames:?}");
        session.handle(
            10,
            ToSession::Join {
                player: PlayerId(2),
                features: Features::RESUME,
                subject: subject("bob"),
                password: None,
                quiet: false,
            },
        );
        let frames = settle_with(&mut session, &mut rows, limits);
        let token = frames[0]
            .split(r#""resumeToken":""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(ResumeToken::parse)
            .expect("a token");
        // Away, then back with a new secret, then away again and out when the grace ends.
        session.handle(
            20,
            ToSession::Disconnect {
                player: PlayerId(2),
            },
        );
        settle_with(&mut session, &mut rows, limits);
        assert_eq!(rows.members[1].away_until_ms, Some(1020));
        let old_secret = rows.members[1].secret;
        session.handle(
            30,
            ToSession::Resume {
                player: PlayerId(3),
                request: Box::new(ResumeRequest {
                    token,
                    received: None,
                }),
                subject: subject("bob"),
                features: Features::RESUME,
            },
        );
        settle_with(&mut session, &mut rows, limits);
        assert_eq!(rows.members[1].away_until_ms, None);
        assert_ne!(rows.members[1].secret, old_secret);
        session.handle(
            40,
            ToSession::Disconnect {
                player: PlayerId(3),
            },
        );
        settle_with(&mut session, &mut rows, limits);
        assert_eq!(rows.members[1].away_until_ms, Some(1040));
        session.handle_timeout(1040);
        settle_with(&mut session, &mut rows, limits);
        assert_eq!(rows.members.len(), 1);
    }

    #[test]
    fn updates_write_one_row_per_session_per_flush_not_one_per_update_or_member() {
        let mut rows = Memory::default();
        let Ok(sessionserver_core::Command::CreateSession(format)) =
            parse(r#"{"command":"createSession","player":{"x":0}}"#, &LIMITS)
        else {
            panic!("createSession parses");
        };
        let request = CreateRequest {
            player: PlayerId(1),
            format: format.format,
            features: Features::NONE,
            subject: None,
            options: Default::default(),
        };
        let mut session = Session::create(SessionId(7), request, LIMITS);
        settle(&mut session, &mut rows);
        for player in [2, 3] {
            session.handle(0, join(player));
            settle(&mut session, &mut rows);
        }
        let mut pending = Pending::default();
        // Steady state: ten flush periods, in each of which every member updates ten times
        // (a 3-player game at 10 updates a second). The updates write nothing; each flush
        // writes one row for the whole session: the batch, with each member's latest data.
        let mut now = 0;
        for period in 0..10u64 {
            let before = rows.written;
            for round in 0..10u64 {
                for player in 1..=3u64 {
                    now += 1;
                    let x = period * 100 + round * 10 + player;
                    let frame = format!(r#"{{"command":"updatePlayer","playerData":{{"x":{x}}}}}"#);
                    session.handle(now, command(player, &frame));
                    let (frames, _) = drain(&mut session, &mut rows, &mut pending);
                    assert!(frames[0].contains(r#""error":0"#), "{frames:?}");
                }
            }
            assert_eq!(rows.written, before, "updates wrote rows before the flush");
            assert!(!pending.is_empty());
            assert_eq!(flush(&session, &mut rows, &mut pending), Ok(1));
            assert_eq!(rows.written, before + 1, "one row per session per flush");
            assert_eq!(rows.batch.len(), 1);
            assert!(pending.is_empty());
            assert_eq!(rows.restore(LIMITS).describe(), session.describe());
        }
        // 300 updatePlayers of 3 members, 10 rows: one per flush period.
        assert_eq!(flush(&session, &mut rows, &mut pending), Ok(0));

        // A member that leaves with data unwritten: its row is deleted, and the next batch
        // leaves it out.
        session.handle(
            now,
            command(2, r#"{"command":"updatePlayer","playerData":{"x":-1}}"#),
        );
        session.handle(
            now,
            command(3, r#"{"command":"updatePlayer","playerData":{"x":-2}}"#),
        );
        drain(&mut session, &mut rows, &mut pending);
        session.handle(now, command(2, r#"{"command":"leaveSession"}"#));
        drain(&mut session, &mut rows, &mut pending);
        let before = rows.written;
        assert_eq!(flush(&session, &mut rows, &mut pending), Ok(1));
        assert_eq!(rows.written, before + 1);
        assert_eq!(rows.restore(LIMITS).describe(), session.describe());

        // An updateSession resets everyone and writes that at once: nothing is left to flush.
        session.handle(
            now,
            command(1, r#"{"command":"updatePlayer","playerData":{"x":4}}"#),
        );
        drain(&mut session, &mut rows, &mut pending);
        session.handle(
            now,
            command(
                3,
                r#"{"command":"updateSession","sessionData":{"t":2},"playerData":{"q":1}}"#,
            ),
        );
        drain(&mut session, &mut rows, &mut pending);
        assert_eq!(flush(&session, &mut rows, &mut pending), Ok(0));
        assert_eq!(rows.restore(LIMITS).describe(), session.describe());

        // Unflushed data is what a restart loses (at most one flush period): the rows still
        // hold the data of the last flush.
        session.handle(
            now,
            command(1, r#"{"command":"updatePlayer","playerData":{"q":7}}"#),
        );
        drain(&mut session, &mut rows, &mut pending);
        assert_ne!(rows.restore(LIMITS).describe(), session.describe());
        assert_eq!(flush(&session, &mut rows, &mut pending), Ok(1));
        assert_eq!(rows.restore(LIMITS).describe(), session.describe());

        // A member whose data is in the batch leaves and comes back under the same ID: the
        // batch is written again at once, so that it is not read back with its old data.
        session.handle(
            now,
            command(3, r#"{"command":"updatePlayer","playerData":{"q":5}}"#),
        );
        drain(&mut session, &mut rows, &mut pending);
        assert_eq!(flush(&session, &mut rows, &mut pending), Ok(1));
        session.handle(now, command(3, r#"{"command":"leaveSession"}"#));
        drain(&mut session, &mut rows, &mut pending);
        session.handle(now, join(3));
        let before = rows.written;
        drain(&mut session, &mut rows, &mut pending);
        assert_eq!(rows.written, before + 2, "its member row and the batch");
        assert!(!rows.batch.concat().contains(r#"{"q":5}"#));
        assert_eq!(rows.restore(LIMITS).describe(), session.describe());

        // The same with a load between the leave and the return (`settle` loads what the
        // rows know of the batch each time, and checks what they give back).
        session.handle(
            now,
            command(3, r#"{"command":"updatePlayer","playerData":{"q":6}}"#),
        );
        settle(&mut session, &mut rows);
        session.handle(now, command(3, r#"{"command":"leaveSession"}"#));
        settle(&mut session, &mut rows);
        assert!(
            rows.batch.concat().contains(r#"{"q":6}"#),
            "kept after the leave"
        );
        session.handle(now, join(3));
        settle(&mut session, &mut rows);
        assert!(!rows.batch.concat().contains(r#"{"q":6}"#));
    }

    #[test]
    fn the_batch_reads_back_and_refuses_what_is_not_one() {
        let a = JsonObject::parse("{\"name\":\"Zoë\",\n \"x\": 1.50}").unwrap();
        let b = JsonObject::parse("{}").unwrap();
        let entries = [
            (PlayerId(9_007_199_254_740_991), Some(&a)),
            (PlayerId(0), None),
            (PlayerId(3), Some(&b)),
        ];
        let text = encode_batch(entries);
        let back = decode_batch(&text).expect("a batch");
        assert_eq!(
            back,
            vec![
                (PlayerId(9_007_199_254_740_991), Some(a.as_str())),
                (PlayerId(0), None),
                (PlayerId(3), Some("{}")),
            ]
        );
        assert_eq!(decode_batch(""), Some(Vec::new()));
        // Lengths past the end (or past u64), a cut in a character, no separator, no ID.
        for bad in [
            "3 3\n{}\n",
            "3 99999999999999999999999\n{}\n",
            "3 1\n\u{e9}\n",
            "3 2\n{}",
            "3 2\n{}x",
            "x -\n",
            "3\n",
            "-1 -\n",
        ] {
            assert_eq!(decode_batch(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_large_batch_is_cut_into_rows_on_character_boundaries() {
        assert!(batch_parts("").is_empty());
        assert_eq!(batch_parts("12 -\n"), vec!["12 -\n"]);
        // 'é' is two bytes: a cut at an odd byte would fall inside one.
        let text = "é".repeat(BATCH_PART_BYTES);
        let parts = batch_parts(&text);
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.len() <= BATCH_PART_BYTES));
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn options_and_the_lock_are_stored_and_the_password_only_as_its_digest() {
        let frame = r#"{"command":"createSession","options":{"maxPlayers":2,"private":true,"password":"pw","hostOnlySessionUpdates":true,"metadata":{"map":"dust", "n":1.50}}}"#;
        let Ok(sessionserver_core::Command::CreateSession(new)) = parse(frame, &LIMITS) else {
            panic!("a create");
        };
        let request = CreateRequest {
            player: PlayerId(1),
            format: new.format,
            features: Features::NONE,
            subject: None,
            options: new.options,
        };
        let mut rows = Memory::default();
        let mut session = Session::create(SessionId(9), request, LIMITS);
        settle(&mut session, &mut rows);
        let stored = rows.access.clone().expect("options are stored");
        assert!(!stored.contains("\"pw\""), "{stored}");
        session.handle(0, command(1, r#"{"command":"lockSession","locked":true}"#));
        settle(&mut session, &mut rows);
        let restored = rows.restore(LIMITS);
        assert_eq!(restored.access(), session.access());
        assert!(restored.access().locked);
        // The password still works after a restore; a wrong one does not.
        let mut restored = restored;
        for (password, error) in [("nope", "26"), ("pw", "0")] {
            restored.handle(
                0,
                ToSession::Join {
                    player: PlayerId(2),
                    features: Features::NONE,
                    subject: None,
                    password: Some(sessionserver_core::Password::guess(password)),
                    quiet: false,
                },
            );
            let frames = settle(&mut restored, &mut rows);
            // Locked: a right password is answered 28, a wrong one 26 (the password first).
            let expected = if error == "0" { "28" } else { error };
            assert!(
                frames[0].contains(&format!(r#""error":{expected}"#)),
                "{password}: {frames:?}"
            );
        }
        assert_eq!(access_of("{}"), Some(Default::default()));
        assert_eq!(access_of(r#"{"passwordSha256":"zz"}"#), None);
    }
}
