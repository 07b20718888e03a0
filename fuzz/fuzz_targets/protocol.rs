//! Arbitrary sequences of connect / frame / close from several connections, fed to the core's
//! `Server` (the same `Player` and `Session` machines both hosts run), with the messages between
//! the machines delivered when the fuzzer says (`Step`, `Settle`): so a session can end while a
//! join is on its way, a connection can close while its leave is. The invariants are checked
//! after every step (the stronger, settled ones at the end), and every output frame is checked
//! to be a JSON object with a `command` and an `error`.
//!
//! Frames are random text, random bytes, or valid commands built from the fuzzer's data and
//! then mutated, so that both the parser's edges and deep protocol states are reached. The
//! `resume` extension is offered: connections say `hello`, and resume with tokens the server
//! gave out (kept from its frames), with a grace period that `Tick` runs out.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

use sessionserver_core::{ConnectionConfig, Features, Limits, Output, PlayerId, Server};

#[derive(Arbitrary, Debug)]
enum Data {
    Value(u8),
    Object(Vec<(u8, Data)>),
}

impl Data {
    fn write(&self, out: &mut String, depth: usize) {
        match self {
            Data::Object(entries) if depth < 6 => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    // Few distinct keys, so that structures often match.
                    out.push_str(&format!("\"k{}\":", key % 4));
                    value.write(out, depth + 1);
                }
                out.push('}');
            }
            Data::Object(_) => out.push_str("{}"),
            Data::Value(v) => out.push_str(match v % 6 {
                0 => "0",
                1 => "-1.5e3",
                2 => "\"s\"",
                3 => "null",
                4 => "[1,{\"a\":2}]",
                _ => "true",
            }),
        }
    }

    fn json(&self) -> String {
        let mut out = String::new();
        match self {
            Data::Value(_) => Data::Object(Vec::new()).write(&mut out, 0),
            _ => self.write(&mut out, 0),
        }
        out
    }
}

#[derive(Arbitrary, Debug)]
enum Mutation {
    None,
    Truncate(u16),
    Insert(u16, u8),
    Flip(u16),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Connect,
    Close(u8),
    Raw(u8, String),
    Binary(u8),
    Create(u8, Data, Data, bool, Mutation),
    Join(u8, i8, Mutation),
    UpdateSession(u8, Data, Data, bool, Mutation),
    UpdatePlayer(u8, Data, bool, Mutation),
    Leave(u8),
    /// hello, asking for `resume` or nothing.
    Hello(u8, bool),
    /// resumeSession with one of the tokens seen so far (used ones included), and maybe a
    /// count of events received (right, too high, too low: whatever the input says).
    Resume(u8, u8, Option<u8>, Mutation),
    /// createSession with options: maxPlayers (0: none), private, a password, host-only
    /// updates.
    CreateWithOptions(u8, u8, bool, bool, bool, Mutation),
    /// joinSession with a password, right or wrong.
    JoinWithPassword(u8, i8, bool),
    /// kickPlayer naming one of the players (from whoever sends it).
    Kick(u8, u8),
    /// lockSession.
    Lock(u8, bool),
    /// ping, with or without `t`.
    Ping(u8, Option<u8>),
    /// sendMessage to everyone, or to two of the players.
    SendMessage(u8, Option<(u8, u8)>, Mutation),
    /// Deliver this many messages between the machines.
    Step(u8),
    /// Deliver every message on its way.
    Settle,
    /// Let this many milliseconds pass (heartbeats and rate limits).
    Tick(u16),
}

fn field(long: bool, short: &'static str, long_name: &'static str) -> &'static str {
    if long {
        long_name
    } else {
        short
    }
}

/// A createSession or updateSession frame in either spelling.
fn format_session(command: &str, session: &Data, player: &Data, long: bool) -> String {
    format!(
        r#"{{"command":"{command}","{}":{},"{}":{}}}"#,
        field(long, "session", "sessionData"),
        session.json(),
        field(long, "player", "playerData"),
        player.json()
    )
}

fn mutate(frame: String, mutation: &Mutation) -> String {
    let mut bytes = frame.into_bytes();
    match *mutation {
        Mutation::None => {}
        Mutation::Truncate(at) => bytes.truncate(usize::from(at) % (bytes.len() + 1)),
        Mutation::Insert(at, b) => {
            let at = usize::from(at) % (bytes.len() + 1);
            bytes.insert(at, b);
        }
        Mutation::Flip(at) if !bytes.is_empty() => {
            let at = usize::from(at) % bytes.len();
            bytes[at] ^= 0x20;
        }
        Mutation::Flip(_) => {}
    }
    // Hosts only hand the core valid UTF-8 text (WebSocket text frames are UTF-8).
    String::from_utf8_lossy(&bytes).into_owned()
}

fuzz_target!(|ops: Vec<Op>| {
    let limits = Limits {
        max_players_per_session: 3,
        max_session_data_bytes: 400,
        max_sessions: 4,
        resume_grace_ms: 2_000,
        resume_replay_bytes: 300,
        ..Limits::default()
    };
    let config = ConnectionConfig {
        features: Features::RESUME.union(Features::HOST).union(Features::MESSAGES),
        ..ConnectionConfig::default()
    };
    let mut server = Server::with_config(limits, config).with_secrets([3; 32]);
    let mut tokens: Vec<String> = Vec::new();
    // The connections that sent a resume for a player: the one that succeeds becomes it.
    let mut resuming: HashMap<u64, Vec<PlayerId>> = HashMap::new();
    let mut players: Vec<PlayerId> = Vec::new();
    let mut now: u64 = 0;
    let pick = |players: &[PlayerId], i: u8| -> Option<PlayerId> {
        (!players.is_empty()).then(|| players[usize::from(i) % players.len()])
    };
    let ops: Vec<&Op> = ops.iter().take(200).collect();
    for (n, op) in ops.iter().enumerate() {
        let last = n + 1 == ops.len();
        match op {
            Op::Connect => {
                if players.len() < 8 {
                    players.extend(server.connect());
                }
            }
            Op::Close(i) => {
                if let Some(p) = pick(&players, *i) {
                    server.feed_close(p);
                    players.retain(|q| *q != p);
                }
            }
            Op::Raw(i, text) => {
                if let Some(p) = pick(&players, *i) {
                    server.feed_text(p, text);
                }
            }
            Op::Binary(i) => {
                if let Some(p) = pick(&players, *i) {
                    server.handle_binary(p);
                }
            }
            Op::Create(i, s, d, long, m) => {
                if let Some(p) = pick(&players, *i) {
                    let frame = format_session("createSession", s, d, *long);
                    server.feed_text(p, &mutate(frame, m));
                }
            }
            Op::Join(i, id, m) => {
                if let Some(p) = pick(&players, *i) {
                    let frame = format!(r#"{{"command":"joinSession","sessionID":{id}}}"#);
                    server.feed_text(p, &mutate(frame, m));
                }
            }
            Op::UpdateSession(i, s, d, long, m) => {
                if let Some(p) = pick(&players, *i) {
                    let frame = format_session("updateSession", s, d, *long);
                    server.feed_text(p, &mutate(frame, m));
                }
            }
            Op::UpdatePlayer(i, d, long, m) => {
                if let Some(p) = pick(&players, *i) {
                    let frame = format!(
                        r#"{{"command":"updatePlayer","{}":{}}}"#,
                        field(*long, "player", "playerData"),
                        d.json()
                    );
                    server.feed_text(p, &mutate(frame, m));
                }
            }
            Op::CreateWithOptions(i, max, private, password, host_only, m) => {
                if let Some(p) = pick(&players, *i) {
                    let max = if *max == 0 { String::new() } else { format!(r#""maxPlayers":{max},"#) };
                    let password = if *password { r#""password":"pw","# } else { "" };
                    let frame = format!(
                        r#"{{"command":"createSession","options":{{{max}{password}"private":{private},"hostOnlySessionUpdates":{host_only}}}}}"#
                    );
                    server.feed_text(p, &mutate(frame, m));
                }
            }
            Op::JoinWithPassword(i, id, right) => {
                if let Some(p) = pick(&players, *i) {
                    let password = if *right { "pw" } else { "wrong" };
                    let frame = format!(
                        r#"{{"command":"joinSession","sessionID":{id},"password":"{password}"}}"#
                    );
                    server.feed_text(p, &frame);
                }
            }
            Op::Kick(i, target) => {
                if let (Some(p), Some(t)) = (pick(&players, *i), pick(&players, *target)) {
                    let frame = format!(r#"{{"command":"kickPlayer","playerID":{t}}}"#);
                    server.feed_text(p, &frame);
                }
            }
            Op::Lock(i, locked) => {
                if let Some(p) = pick(&players, *i) {
                    let frame = format!(r#"{{"command":"lockSession","locked":{locked}}}"#);
                    server.feed_text(p, &frame);
                }
            }
            Op::Ping(i, t) => {
                if let Some(p) = pick(&players, *i) {
                    let t = t.map_or(String::new(), |t| format!(r#","t":{t}"#));
                    server.feed_text(p, &format!(r#"{{"command":"ping"{t}}}"#));
                }
            }
            Op::SendMessage(i, to, m) => {
                if let Some(p) = pick(&players, *i) {
                    let to = match to.and_then(|(a, b)| Some((pick(&players, a)?, pick(&players, b)?))) {
                        Some((a, b)) => format!(r#","to":[{a},{b}]"#),
                        None => String::new(),
                    };
                    let frame = format!(r#"{{"command":"sendMessage","data":{{"hi":[1,"x"]}}{to}}}"#);
                    server.feed_text(p, &mutate(frame, m));
                }
            }
            Op::Leave(i) => {
                if let Some(p) = pick(&players, *i) {
                    server.feed_text(p, r#"{"command":"leaveSession"}"#);
                }
            }
            Op::Hello(i, resume) => {
                if let Some(p) = pick(&players, *i) {
                    let features = if *resume { r#"["resume","host","messages"]"# } else { "[]" };
                    let frame = format!(r#"{{"command":"hello","features":{features}}}"#);
                    server.feed_text(p, &frame);
                }
            }
            Op::Resume(i, t, received, m) => {
                if let (Some(p), false) = (pick(&players, *i), tokens.is_empty()) {
                    let token = &tokens[usize::from(*t) % tokens.len()];
                    if let Some(player) = token.split('.').nth(1).and_then(|s| s.parse().ok()) {
                        resuming.entry(player).or_default().push(p);
                    }
                    let received = received.map_or(String::new(), |n| format!(r#","received":{n}"#));
                    let frame = format!(
                        r#"{{"command":"resumeSession","resumeToken":"{token}"{received}}}"#
                    );
                    server.feed_text(p, &mutate(frame, m));
                }
            }
            Op::Step(count) => {
                for _ in 0..*count {
                    server.step();
                }
            }
            Op::Settle => server.settle(),
            Op::Tick(ms) => {
                now += u64::from(*ms) * 50;
                server.advance_time(now);
            }
        }
        if last {
            server.settle();
        }
        while let Some((closed, _reason)) = server.poll_close() {
            players.retain(|q| *q != closed);
        }
        while let Some(Output::Send { to, frame }) = server.poll_output() {
            let value: serde_json::Value = serde_json::from_str(frame.as_str())
                .unwrap_or_else(|e| panic!("server sent invalid JSON {frame:?}: {e}"));
            if value["command"] == "sessionResume" && value["error"] == 0 {
                // The connection that asked is this player now: the one of those that asked
                // that the server no longer knows by its old ID.
                let live: Vec<PlayerId> = server.players().map(|(p, _)| p).collect();
                for connection in resuming.remove(&to.0).unwrap_or_default() {
                    if !live.contains(&connection) {
                        players.retain(|q| *q != connection);
                    }
                }
                if !players.contains(&to) {
                    players.push(to);
                }
            }
            if let Some(token) = value["resumeToken"].as_str() {
                tokens.push(token.to_owned());
            }
            assert!(
                players.contains(&to),
                "frame for a closed connection: {frame:?}"
            );
            assert!(value["command"].is_string(), "{frame:?}");
            assert!(value["error"].is_u64(), "{frame:?}");
        }
        if let Err(broken) = server.check_invariants() {
            panic!("invariant broken after {op:?}: {broken}");
        }
    }
});
