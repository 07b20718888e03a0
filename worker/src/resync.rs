//! What a relay keeps of its player's seat, so that it can take the seat back itself when its
//! link to the session object breaks (the object was reset or restarted, or the link failed)
//! while it still holds the client's socket: the seat's latest resume token, how many session
//! events the client got since its last welcome (`received`), and, for a client that did not
//! ask for `resume`, a small view of the session, so that what such a resume brings reaches the
//! client in the original protocol's frames. Platform-free: tested natively.
//!
//! The relay asks for `resume` on behalf of every client while the host has a grace period,
//! so every member has a token. What a client sees:
//!
//! - A client that asked for `resume` sees what the protocol says: its token in
//!   `sessionJoin`. The relay does not resume for it (it would use up the client's token): it
//!   closes it with 1012 and the client resumes itself.
//! - A client that did not (an original client) sees the original protocol byte for byte: its
//!   `sessionJoin` without `resumeToken` (cut off the end, where the session puts it), and
//!   never a `sessionResume`. After a resume with the frames form it gets the replayed frames,
//!   which are original frames; after one with the snapshot form (the object restarted: what
//!   it missed was in memory only) it gets the difference between what it had been told and
//!   the snapshot, as the original frames that make that difference: `sessionUpdate` (the
//!   sessionData or the default playerData changed), `playerLeave` (a member is gone),
//!   `playerJoin` with the default then `playerUpdate` (a member joined, as the original
//!   announces a joiner), `playerUpdate` (a member's or its own playerData changed). A member
//!   that left and joined again while the relay was away is told so (leave, then join), so the
//!   client's join order stays the session's.
//!
//! The view holds a 64-bit digest of each text, not the text (a relay must not hold a copy
//! of a session's data): 16 bytes per member.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use serde::Deserialize;
use serde_json::value::RawValue;
use sessionserver_core::{reply, JsonObject, PlayerId, ServerCommand, Spelling};

/// How long a relay waits before its `attempt`th try (from 0) to take its player's seat back
/// after its link broke, or `None`: it has tried enough and gives the seat up (the client is
/// closed with 1011, as when a session is lost). Exponential, bounded: at most 8 tries within
/// about 10 s, the first at once; a token whose grace period ends before is refused anyway.
pub fn relink_delay_ms(attempt: u32) -> Option<u64> {
    const DELAYS: [u64; 8] = [0, 100, 200, 400, 800, 1600, 3200, 3200];
    DELAYS.get(attempt as usize).copied()
}

/// What the relay knows of its player's seat, from the frames it relayed.
#[derive(Debug, Default)]
pub struct Tracker {
    seat: Option<Seat>,
}

#[derive(Debug)]
struct Seat {
    /// The latest token: the one its `sessionJoin` or last `sessionResume` carried.
    token: String,
    /// Session events (`playerJoin`, `playerUpdate`, `playerLeave`, `sessionUpdate`, error
    /// 0) relayed since the last `sessionJoin` or `sessionResume`.
    received: u64,
    /// For a client that did not ask for `resume`: what it has been told.
    view: Option<View>,
}

/// What an original client has been told of its session, as digests.
#[derive(Clone, Debug, PartialEq, Eq)]
struct View {
    spelling: Spelling,
    own: PlayerId,
    session: u64,
    default: u64,
    own_data: u64,
    /// The other members in join order, with their playerData.
    members: Vec<(PlayerId, u64)>,
}

/// The fields of a server frame the tracker reads.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(rename = "playerID")]
    player_id: Option<u64>,
    #[serde(borrow)]
    session: Option<&'a RawValue>,
    #[serde(borrow, rename = "sessionData")]
    session_long: Option<&'a RawValue>,
    #[serde(borrow)]
    player: Option<&'a RawValue>,
    #[serde(borrow, rename = "playerData")]
    player_long: Option<&'a RawValue>,
    #[serde(rename = "resumeToken")]
    resume_token: Option<String>,
    replay: Option<String>,
}

impl<'a> Fields<'a> {
    fn read(frame: &'a str) -> Option<Fields<'a>> {
        serde_json::from_str(frame).ok()
    }

    fn session(&self) -> Option<&'a str> {
        self.session.or(self.session_long).map(RawValue::get)
    }

    fn player(&self) -> Option<&'a str> {
        self.player.or(self.player_long).map(RawValue::get)
    }

    fn spelling(&self) -> Spelling {
        match (self.session_long, self.player_long) {
            (Some(_), _) | (None, Some(_)) => Spelling::Long,
            _ => Spelling::Short,
        }
    }
}

/// The command of a server frame, if it succeeded (`"error":0`). Frames are the core's, whose
/// first two fields are always `command` and `error`.
fn succeeded(frame: &str) -> Option<&str> {
    let rest = frame.strip_prefix(r#"{"command":""#)?;
    let (command, rest) = rest.split_once('"')?;
    let rest = rest.strip_prefix(r#","error":0"#)?;
    matches!(rest.as_bytes().first(), Some(b',' | b'}')).then_some(command)
}

/// The player ID and playerData of a `playerJoin`, `playerUpdate` or `playerLeave` (no data)
/// the core made, read without parsing the data: these frames are `{"command":…,"error":0,
/// "playerID":N}` or `…,"playerID":N,"player":DATA}` (either spelling), and most of what a relay
/// relays. `None` for any other frame.
fn player_event(frame: &str) -> Option<(PlayerId, Option<&str>)> {
    let rest = frame.strip_prefix(r#"{"command":""#)?;
    let (_, rest) = rest.split_once('"')?;
    let rest = rest.strip_prefix(r#","error":0,"playerID":"#)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = PlayerId(rest[..digits].parse().ok()?);
    let rest = &rest[digits..];
    if rest == "}" {
        return Some((id, None));
    }
    let data = rest
        .strip_prefix(r#","player":"#)
        .or_else(|| rest.strip_prefix(r#","playerData":"#))?
        .strip_suffix('}')?;
    Some((id, Some(data)))
}

fn is_event(command: &str) -> bool {
    matches!(
        command,
        "playerJoin" | "playerUpdate" | "playerLeave" | "sessionUpdate"
    )
}

fn digest(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// `frame`, a `sessionJoin` the session made, without its `resumeToken` (the last field):
/// the original protocol's `sessionJoin`. `None` if it has none.
pub fn without_token(frame: &str) -> Option<String> {
    let at = frame.rfind(r#","resumeToken":""#)?;
    let token = frame[at..]
        .strip_prefix(r#","resumeToken":""#)?
        .strip_suffix(r#""}"#)?;
    let plain = token
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'.'));
    plain.then(|| format!("{}}}", &frame[..at]))
}

impl View {
    fn joined(fields: &Fields) -> Option<View> {
        let default = digest(fields.player()?);
        Some(View {
            spelling: fields.spelling(),
            own: PlayerId(fields.player_id?),
            session: digest(fields.session()?),
            default,
            own_data: default,
            members: Vec::new(),
        })
    }

    /// Follows one successful event (`frame`, whose command is `command`).
    fn follow(&mut self, command: &str, frame: &str) {
        if command != "sessionUpdate" {
            if let Some((id, data)) = player_event(frame) {
                self.apply(command, Some(id), data.map(digest), None);
            }
        } else if let Some(fields) = Fields::read(frame) {
            let session = fields.session().map(digest);
            let default = fields.player().map(digest);
            self.apply(command, None, default, session);
        }
    }

    /// An event: its player, the digest of its playerData and, for `sessionUpdate`, of its
    /// sessionData.
    fn apply(
        &mut self,
        command: &str,
        id: Option<PlayerId>,
        data: Option<u64>,
        session: Option<u64>,
    ) {
        match (command, id, data) {
            ("playerJoin", Some(id), Some(data))
                if id != self.own && !self.members.iter().any(|(m, _)| *m == id) =>
            {
                self.members.push((id, data));
            }
            ("playerUpdate", Some(id), Some(data)) if id == self.own => self.own_data = data,
            ("playerUpdate", Some(id), Some(data)) => {
                if let Some(member) = self.members.iter_mut().find(|(m, _)| *m == id) {
                    member.1 = data;
                }
            }
            ("playerLeave", Some(id), _) => self.members.retain(|(m, _)| *m != id),
            ("sessionUpdate", _, Some(default)) => {
                self.session = session.unwrap_or(0);
                self.default = default;
                self.own_data = default;
                for member in &mut self.members {
                    member.1 = default;
                }
            }
            _ => {}
        }
    }

    /// The original frames that take a client from this view to the snapshot (`session`,
    /// `own` playerData, the `default` playerData, the other `members` in join order), and the
    /// view after them.
    fn translate(
        &self,
        session: &str,
        own: &str,
        default: &str,
        members: &[(PlayerId, &str)],
    ) -> Result<(Vec<String>, View), String> {
        let sp = self.spelling;
        let object = |text: &str| {
            JsonObject::parse(text).map_err(|e| format!("the snapshot's data is not JSON: {e}"))
        };
        let join = |id: PlayerId, default: &JsonObject| {
            reply::player_data(ServerCommand::PlayerJoin, sp, id, default)
                .as_str()
                .to_owned()
        };
        let update = |id: PlayerId, data: &str| -> Result<String, String> {
            let frame = reply::player_data(ServerCommand::PlayerUpdate, sp, id, &object(data)?);
            Ok(frame.as_str().to_owned())
        };
        let leave = |id: PlayerId| reply::player_leave(id).as_str().to_owned();
        let default_object = object(default)?;
        let (new_session, new_default) = (digest(session), digest(default));
        let mut out = Vec::new();
        let mut told: Vec<(PlayerId, u64)> = self.members.clone();
        let mut own_told = self.own_data;
        if new_session != self.session || new_default != self.default {
            let frame = reply::session_update(sp, &object(session)?, &default_object);
            out.push(frame.as_str().to_owned());
            for member in &mut told {
                member.1 = new_default;
            }
            own_told = new_default;
        }
        let present: HashSet<PlayerId> = members.iter().map(|(id, _)| *id).collect();
        for (id, _) in &told {
            if !present.contains(id) {
                out.push(leave(*id));
            }
        }
        let position: HashMap<PlayerId, usize> = told
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (*id, i))
            .collect();
        // Members keep their join order: one found before the last one kept left and came
        // back meanwhile.
        // back meanwhile; so did one found after a member that is new (joiners come last).
        let mut kept_up_to = 0;
        let mut after_new = false;
        for &(id, data) in members.iter().filter(|(id, _)| *id != self.own) {
            let now = digest(data);
            match position.get(&id) {
                Some(&i) if i >= kept_up_to && !after_new => {
                    kept_up_to = i + 1;
                    if told[i].1 != now {
                        out.push(update(id, data)?);
                    }
                }
                back => {
                    match back {
                        Some(_) => out.push(leave(id)),
                        None => after_new = true,
                    }
                    out.push(join(id, &default_object));
                    if now != new_default {
                        out.push(update(id, data)?);
                    }
                }
            }
        }
        let own_now = digest(own);
        if own_now != own_told {
            out.push(update(self.own, own)?);
        }
        let view = View {
            spelling: sp,
            own: self.own,
            session: new_session,
            default: new_default,
            own_data: own_now,
            members: members
                .iter()
                .filter(|(id, _)| *id != self.own)
                .map(|(id, data)| (*id, digest(data)))
                .collect(),
        };
        Ok((out, view))
    }
}

impl Tracker {
    /// A frame the session sent for the client: returns what the client is to get, which is
    /// the frame itself but for an original client's `sessionJoin` (`original`: the client
    /// did not ask for `resume`), whose token is cut off.
    pub fn relay(&mut self, frame: String, original: bool) -> String {
        let Some(command) = succeeded(&frame) else {
            return frame;
        };
        match command {
            "sessionJoin" => {
                let Some(fields) = Fields::read(&frame) else {
                    self.seat = None;
                    return frame;
                };
                let view = if original {
                    View::joined(&fields)
                } else {
                    None
                };
                self.seat = fields.resume_token.map(|token| Seat {
                    token,
                    received: 0,
                    view,
                });
                if original {
                    if let Some(plain) = without_token(&frame) {
                        return plain;
                    }
                }
                frame
            }
            "sessionResume" => {
                let token = Fields::read(&frame).and_then(|f| f.resume_token);
                self.seat = token.map(|token| Seat {
                    token,
                    received: 0,
                    view: None,
                });
                frame
            }
            "sessionLeave" => {
                self.seat = None;
                frame
            }
            command if is_event(command) => {
                if let Some(seat) = &mut self.seat {
                    seat.received += 1;
                    if let Some(view) = &mut seat.view {
                        view.follow(command, &frame);
                    }
                }
                frame
            }
            _ => frame,
        }
    }

    /// The token to take the seat back with, and how many events the client received since
    /// the welcome that token came with; `None` if the seat has no token.
    pub fn resume_with(&self) -> Option<(&str, u64)> {
        let seat = self.seat.as_ref()?;
        Some((&seat.token, seat.received))
    }

    /// The seat is gone (the relay gave it up).
    pub fn forget(&mut self) {
        self.seat = None;
    }

    /// The answer to a resume the relay made itself: `welcome` is what the session sent
    /// before its end marker (the `sessionResume`, then the replayed frames or the snapshot's
    /// `playerJoin`s), `default` the session's default playerData. Returns what the client is
    /// to get; an error if the welcome is no successful resume of this seat.
    pub fn relinked(&mut self, welcome: &[String], default: &str) -> Result<Vec<String>, String> {
        let seat = self.seat.as_mut().ok_or("no seat to resume")?;
        let first = welcome.first().ok_or("an empty welcome")?;
        let fields = Fields::read(first)
            .filter(|_| succeeded(first) == Some("sessionResume"))
            .ok_or_else(|| format!("the resume was answered {first:.200}"))?;
        let token = fields
            .resume_token
            .clone()
            .ok_or("sessionResume without a token")?;
        let replayed = &welcome[1..];
        let events = replayed
            .iter()
            .filter(|f| succeeded(f).is_some_and(is_event))
            .count() as u64;
        // A client that asked for `resume` resumes itself (the relay closes it with 1012).
        let view = seat.view.take().ok_or("the client resumes itself")?;
        let (out, view) = match fields.replay.as_deref() {
            Some("snapshot") => {
                let session = fields.session().ok_or("a snapshot without sessionData")?;
                let own = fields.player().ok_or("a snapshot without playerData")?;
                let mut members = Vec::with_capacity(replayed.len());
                for frame in replayed {
                    let joined = player_event(frame)
                        .filter(|_| succeeded(frame) == Some("playerJoin"))
                        .and_then(|(id, data)| Some((id, data?)));
                    members.push(joined.ok_or_else(|| format!("not a playerJoin: {frame:.200}"))?);
                }
                view.translate(session, own, default, &members)?
            }
            _ => {
                // The frames form: what the client missed, as the others got it.
                let mut view = view;
                for frame in replayed {
                    if let Some(command) = succeeded(frame).filter(|c| is_event(c)) {
                        view.follow(command, frame);
                    }
                }
                (replayed.to_vec(), view)
            }
        };
        *seat = Seat {
            token,
            received: events,
            view: Some(view),
        };
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "3.9.0123456789abcdef0123456789abcdef";

    fn join_frame(long: bool) -> String {
        let (s, p) = if long {
            ("sessionData", "playerData")
        } else {
            ("session", "player")
        };
        format!(
            r#"{{"command":"sessionJoin","error":0,"sessionID":3,"playerID":9,"{s}":{{"a":1,"resumeToken":"1.2.ab"}},"{p}":{{"x":0}},"resumeToken":"{TOKEN}"}}"#
        )
    }

    fn frame(command: &str, id: u64, data: &str) -> String {
        format!(r#"{{"command":"{command}","error":0,"playerID":{id},"player":{data}}}"#)
    }

    fn leave(id: u64) -> String {
        format!(r#"{{"command":"playerLeave","error":0,"playerID":{id}}}"#)
    }

    fn resume(replay: &str) -> String {
        let token = "3.9.ffffffffffffffffffffffffffffffff";
        format!(
            r#"{{"command":"sessionResume","error":0,"sessionID":3,"playerID":9,"resumeToken":"{token}","replay":{replay}}}"#
        )
    }

    /// An original client in session 3 with members 1 (x 1) and 2 (x 2), as player 9.
    fn original() -> Tracker {
        let mut t = Tracker::default();
        let sent = t.relay(join_frame(false), true);
        assert_eq!(
            sent,
            r#"{"command":"sessionJoin","error":0,"sessionID":3,"playerID":9,"session":{"a":1,"resumeToken":"1.2.ab"},"player":{"x":0}}"#
        );
        for f in [
            frame("playerJoin", 1, r#"{"x":1}"#),
            frame("playerJoin", 2, r#"{"x":0}"#),
            frame("playerUpdate", 2, r#"{"x":2}"#),
        ] {
            assert_eq!(t.relay(f.clone(), true), f);
        }
        assert_eq!(t.resume_with(), Some((TOKEN, 3)));
        t
    }

    #[test]
    fn an_original_client_gets_its_session_join_without_the_token_byte_for_byte() {
        for long in [false, true] {
            let frame = join_frame(long);
            let plain = without_token(&frame).unwrap();
            assert!(frame.starts_with(&plain[..plain.len() - 1]));
            assert_eq!(
                frame.len() - plain.len(),
                format!(r#","resumeToken":"{TOKEN}""#).len()
            );
            let mut t = Tracker::default();
            assert_eq!(t.relay(frame.clone(), true), plain);
            // A client that asked for resume gets it as the session made it.
            let mut t = Tracker::default();
            assert_eq!(t.relay(frame.clone(), false), frame);
            assert_eq!(t.resume_with(), Some((TOKEN, 0)));
        }
        assert_eq!(
            without_token(r#"{"command":"sessionJoin","error":0}"#),
            None
        );
        // Errors and other frames pass untouched and count nothing.
        let mut t = original();
        for f in [
            r#"{"command":"playerUpdate","error":4}"#.to_owned(),
            r#"{"command":"sessionJoin","error":5}"#.to_owned(),
            r#"{"command":"error","error":12,"message":"unknown"}"#.to_owned(),
        ] {
            assert_eq!(t.relay(f.clone(), true), f);
        }
        assert_eq!(t.resume_with(), Some((TOKEN, 3)));
        t.relay(r#"{"command":"sessionLeave","error":0}"#.to_owned(), true);
        assert_eq!(t.resume_with(), None);
    }

    #[test]
    fn after_a_frames_replay_an_original_client_gets_the_frames() {
        let mut t = original();
        let replay = [
            resume(r#""frames","missed":2"#),
            frame("playerUpdate", 1, r#"{"x":5}"#),
            leave(2),
        ];
        let out = t.relinked(&replay, r#"{"x":0}"#).unwrap();
        assert_eq!(out, replay[1..]);
        assert_eq!(
            t.resume_with(),
            Some(("3.9.ffffffffffffffffffffffffffffffff", 2))
        );
        // A snapshot now finds nothing new to say.
        let snapshot = [
            resume(r#""snapshot","session":{"a":1,"resumeToken":"1.2.ab"},"player":{"x":0}"#),
            frame("playerJoin", 1, r#"{"x":5}"#),
        ];
        assert_eq!(
            t.relinked(&snapshot, r#"{"x":0}"#).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn after_a_snapshot_an_original_client_gets_the_difference_as_original_frames() {
        let mut t = original();
        // Member 1 changed, 2 left and came back, 4 joined with data of its own, 9 itself
        // changed (an update the relay had sent on before the link broke).
        let snapshot = [
            resume(r#""snapshot","session":{"a":1,"resumeToken":"1.2.ab"},"player":{"x":3}"#),
            frame("playerJoin", 1, r#"{"x":7}"#),
            frame("playerJoin", 4, r#"{"x":4}"#),
            frame("playerJoin", 2, r#"{"x":0}"#),
        ];
        let out = t.relinked(&snapshot, r#"{"x":0}"#).unwrap();
        assert_eq!(
            out,
            [
                frame("playerUpdate", 1, r#"{"x":7}"#),
                frame("playerJoin", 4, r#"{"x":0}"#),
                frame("playerUpdate", 4, r#"{"x":4}"#),
                leave(2),
                frame("playerJoin", 2, r#"{"x":0}"#),
                frame("playerUpdate", 9, r#"{"x":3}"#),
            ]
        );
        assert_eq!(t.resume_with().unwrap().1, 3);
        // The view follows: the same snapshot again says nothing.
        assert!(t.relinked(&snapshot, r#"{"x":0}"#).unwrap().is_empty());
    }

    #[test]
    fn a_new_format_in_a_snapshot_is_a_session_update_first() {
        let mut t = original();
        let snapshot = [
            resume(r#""snapshot","session":{"round":2},"player":{"y":0}"#),
            frame("playerJoin", 2, r#"{"y":5}"#),
        ];
        let out = t.relinked(&snapshot, r#"{"y":0}"#).unwrap();
        assert_eq!(
            out,
            [
                r#"{"command":"sessionUpdate","error":0,"session":{"round":2},"player":{"y":0}}"#
                    .to_owned(),
                leave(1),
                frame("playerUpdate", 2, r#"{"y":5}"#),
            ]
        );
    }

    #[test]
    fn a_client_that_asked_for_resume_is_not_resumed_by_the_relay() {
        let mut t = Tracker::default();
        t.relay(join_frame(true), false);
        t.relay(frame("playerJoin", 1, r#"{"x":1}"#), false);
        assert_eq!(t.resume_with(), Some((TOKEN, 1)));
        let snapshot = [
            resume(r#""snapshot","session":{},"player":{"x":0}"#),
            frame("playerJoin", 1, r#"{"x":1}"#),
        ];
        assert!(t.relinked(&snapshot, r#"{"x":0}"#).is_err());
    }

    #[test]
    fn player_events_are_read_without_parsing_their_data() {
        let data = r#"{"a":"}","b":{"c":[1,2]}}"#;
        for frame in [frame("playerUpdate", 7, data), frame("playerJoin", 7, data)] {
            assert_eq!(player_event(&frame), Some((PlayerId(7), Some(data))));
            let parsed = Fields::read(&frame).unwrap();
            assert_eq!(parsed.player(), Some(data));
        }
        let long =
            format!(r#"{{"command":"playerUpdate","error":0,"playerID":7,"playerData":{data}}}"#);
        assert_eq!(player_event(&long), Some((PlayerId(7), Some(data))));
        assert_eq!(player_event(&leave(12)), Some((PlayerId(12), None)));
        for other in [
            r#"{"command":"playerUpdate","error":4}"#,
            r#"{"command":"sessionUpdate","error":0,"player":{}}"#,
            r#"{"command":"playerUpdate","error":0,"playerID":7,"other":{}}"#,
        ] {
            assert_eq!(player_event(other), None, "{other}");
        }
    }

    #[test]
    fn relinks_back_off_and_end() {
        let delays: Vec<u64> = (0..).map_while(relink_delay_ms).collect();
        assert_eq!(delays.len(), 8);
        assert_eq!(delays[0], 0);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert!(delays.iter().sum::<u64>() < 10_000);
    }

    #[test]
    fn a_refused_resume_is_an_error() {
        let mut t = original();
        let refused = [r#"{"command":"sessionResume","error":22,"message":"no"}"#.to_owned()];
        assert!(t.relinked(&refused, "{}").is_err());
        assert!(Tracker::default()
            .relinked(&[resume(r#""frames","missed":0"#)], "{}")
            .is_err());
    }
}
