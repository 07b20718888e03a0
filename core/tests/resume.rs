//! `hello` and `resume` (issue 14), on the reference composition both hosts run: a member
//! whose connection drops keeps its seat for the grace period, and a new connection that
//! sends its token takes it back with the same ID and every frame it missed, in order.

use std::collections::HashMap;

use serde_json::Value;
use sessionserver_core::{
    CloseReason, ConnectionConfig, Features, Limits, Output, PlayerId, Server, SessionId,
};
use wasm_bindgen_test::wasm_bindgen_test;

const GRACE_MS: u64 = 30_000;

struct Game {
    server: Server,
    inbox: HashMap<PlayerId, Vec<String>>,
    now: u64,
}

impl Game {
    fn new(limits: Limits) -> Self {
        let config = ConnectionConfig {
            features: Features::RESUME,
            ..ConnectionConfig::default()
        };
        Game {
            server: Server::with_config(limits, config).with_secrets([7; 32]),
            inbox: HashMap::new(),
            now: 0,
        }
    }

    fn connect(&mut self) -> PlayerId {
        self.server.connect().unwrap()
    }

    fn send(&mut self, player: PlayerId, frame: &str) {
        self.server.handle_text(player, frame);
        self.check();
    }

    fn drop_connection(&mut self, player: PlayerId) {
        self.server.disconnect(player);
        self.check();
    }

    fn advance(&mut self, ms: u64) {
        self.now += ms;
        self.server.advance_time(self.now);
        self.check();
    }

    fn check(&mut self) {
        while let Some(Output::Send { to, frame }) = self.server.poll_output() {
            self.inbox
                .entry(to)
                .or_default()
                .push(frame.as_str().to_owned());
        }
        self.server.check_invariants().unwrap();
    }

    fn take(&mut self, player: PlayerId) -> Vec<Value> {
        let frames = self.inbox.remove(&player).unwrap_or_default();
        frames
            .iter()
            .map(|f| serde_json::from_str(f).unwrap())
            .collect()
    }

    fn take_text(&mut self, player: PlayerId) -> Vec<String> {
        self.inbox.remove(&player).unwrap_or_default()
    }

    /// A connection that said hello with `resume` and joined session 0 (created by the first).
    fn resumable_member(&mut self, create: bool) -> (PlayerId, String) {
        let player = self.connect();
        self.send(
            player,
            r#"{"command":"hello","features":["resume","teleport"]}"#,
        );
        let hello = self.take(player);
        assert_eq!(
            hello[0],
            serde_json::json!({"command":"hello","error":0,"playerID":player.0,"features":["resume"]})
        );
        if create {
            self.send(
                player,
                r#"{"command":"createSession","session":{},"player":{"x":0}}"#,
            );
        } else {
            self.send(player, r#"{"command":"joinSession","sessionID":0}"#);
        }
        let frames = self.take_text(player);
        let join: Value = serde_json::from_str(&frames[0]).unwrap();
        assert_eq!(join["command"], "sessionJoin");
        let token = join["resumeToken"]
            .as_str()
            .expect("a resume token")
            .to_owned();
        // After the original fields.
        assert!(
            frames[0].ends_with(&format!(r#"{{"x":0}},"resumeToken":"{token}"}}"#)),
            "{}",
            frames[0]
        );
        (player, token)
    }
}

fn resume(token: &str) -> String {
    format!(r#"{{"command":"resumeSession","resumeToken":"{token}"}}"#)
}

#[wasm_bindgen_test(unsupported = test)]
fn a_dropped_member_resumes_with_its_id_and_every_frame_it_missed_in_order() {
    let mut game = Game::new(Limits::default());
    let (a, _) = game.resumable_member(true);
    let (b, token) = game.resumable_member(false);
    // A legacy member: no hello.
    let c = game.connect();
    game.send(c, r#"{"command":"joinSession","sessionID":0}"#);
    game.take(a);
    game.take(b);
    game.take(c);

    game.drop_connection(b);
    // Nobody is told: b is away.
    assert!(game.take(a).is_empty());
    assert!(game.take(c).is_empty());
    for i in 1..=3 {
        game.send(
            a,
            &format!(r#"{{"command":"updatePlayer","player":{{"x":{i}}}}}"#),
        );
    }
    game.send(c, r#"{"command":"updatePlayer","player":{"x":9}}"#);
    let missed_by_b: Vec<String> = game.take_text(c).into_iter().collect();
    assert_eq!(missed_by_b.len(), 4, "{missed_by_b:?}");
    game.advance(GRACE_MS - 1);

    let fresh = game.connect();
    game.send(fresh, &resume(&token));
    let got = game.take_text(b);
    let reply: Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(reply["command"], "sessionResume");
    assert_eq!(reply["error"], 0);
    assert_eq!(reply["sessionID"], 0);
    assert_eq!(reply["playerID"], b.0);
    assert_eq!(reply["replay"], "frames");
    assert_eq!(reply["missed"], 4);
    let new_token = reply["resumeToken"].as_str().unwrap().to_owned();
    assert_ne!(new_token, token);
    // Exactly what the others were sent, in order.
    assert_eq!(got[1..], missed_by_b[..]);

    // Nobody saw b leave.
    for other in [a, c] {
        assert!(game
            .take_text(other)
            .iter()
            .all(|f| !f.contains("playerLeave")));
    }
    // It acts as b again.
    game.send(b, r#"{"command":"updatePlayer","player":{"x":5}}"#);
    for other in [a, c] {
        let frames = game.take(other);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0]["command"], "playerUpdate");
        assert_eq!(frames[0]["playerID"], b.0);
    }
    // The legacy member saw the original protocol only: no frame names resume or away.
    assert!(missed_by_b.iter().all(|f| !f.contains("resume")));

    // The old token is used up; the new one works once b drops again.
    let thief = game.connect();
    game.send(thief, &resume(&token));
    let refused = game.take(thief);
    assert_eq!(refused[0]["command"], "sessionResume");
    assert_eq!(refused[0]["error"], 22);
    // A valid token while b's connection still seems open (a network switch not noticed
    // yet): the new connection takes the seat over and the old one is closed with 4003.
    game.take(b);
    let switched = game.connect();
    game.send(switched, &resume(&new_token));
    let taken = game.take(b);
    assert_eq!(taken[0]["command"], "sessionResume");
    assert_eq!(taken[0]["error"], 0);
    assert_eq!(taken[0]["playerID"], b.0);
    assert_eq!(game.server.poll_close(), Some((b, CloseReason::Replaced)));
    // The old connection's disconnect concerned no one: b is no away member, and nobody was
    // told anything.
    let session = game.server.session(SessionId(0)).unwrap();
    assert!(session.contains(b) && !session.is_away(b));
    assert!(game.take(a).is_empty() && game.take(c).is_empty());
    let newest = taken[0]["resumeToken"].as_str().unwrap().to_owned();
    game.drop_connection(b);
    let back = game.connect();
    game.send(back, &resume(&newest));
    assert_eq!(game.take(b)[0]["error"], 0);
}

fn resume_after(token: &str, received: u64) -> String {
    format!(r#"{{"command":"resumeSession","resumeToken":"{token}","received":{received}}}"#)
}

fn update(x: u64) -> String {
    format!(r#"{{"command":"updatePlayer","player":{{"x":{x}}}}}"#)
}

#[wasm_bindgen_test(unsupported = test)]
fn what_was_in_flight_when_the_connection_died_is_replayed_from_received() {
    let mut game = Game::new(Limits::default());
    let (a, _) = game.resumable_member(true);
    let (b, token) = game.resumable_member(false);
    game.take(a);
    // b's join burst was a's playerJoin: one event, which its client got.
    for x in 1..=5 {
        game.send(a, &update(x));
    }
    // Sent to b's old connection, but only the first two reached its client.
    let sent_to_b = game.take_text(b);
    assert_eq!(sent_to_b.len(), 5);
    game.take(a);
    game.drop_connection(b);
    game.send(a, &update(6));
    let after_drop = game.take_text(a);

    // A count beyond what was sent is refused, and the token stays good.
    let liar = game.connect();
    game.send(liar, &resume_after(&token, 8));
    let refused = game.take(liar);
    assert_eq!(refused[0]["command"], "sessionResume");
    assert_eq!(refused[0]["error"], 25);
    assert!(game.server.session(SessionId(0)).unwrap().is_away(b));

    let fresh = game.connect();
    game.send(fresh, &resume_after(&token, 1 + 2));
    let got = game.take_text(b);
    let reply: Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(reply["error"], 0);
    assert_eq!(reply["replay"], "frames");
    assert_eq!(reply["missed"], 4);
    // The three it never read, then the one sent while it was away, in order.
    assert_eq!(got[1..4], sent_to_b[2..]);
    assert_eq!(got[4..], after_drop[..]);

    // The count starts again at the resume, replayed frames included.
    let token = reply["resumeToken"].as_str().unwrap().to_owned();
    game.send(a, &update(7));
    game.take(a);
    let live = game.take_text(b);
    game.drop_connection(b);
    let again = game.connect();
    game.send(again, &resume_after(&token, 4));
    let got = game.take_text(b);
    assert!(
        got[0].contains(r#""replay":"frames","missed":1"#),
        "{}",
        got[0]
    );
    assert_eq!(got[1..], live[..]);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_join_burst_cut_short_or_a_bad_count_gets_a_snapshot_or_an_error() {
    let mut game = Game::new(Limits::default());
    let (a, _) = game.resumable_member(true);
    let (_b, _) = game.resumable_member(false);
    let (c, token) = game.resumable_member(false);
    game.take(a);
    // c's join burst held two playerJoins; its client got only one.
    game.drop_connection(c);
    let bad = game.connect();
    game.send(
        bad,
        &format!(r#"{{"command":"resumeSession","resumeToken":"{token}","received":-1}}"#),
    );
    let refused = game.take(bad);
    assert_eq!(refused[0]["command"], "sessionResume");
    assert_eq!(refused[0]["error"], 13);
    let fresh = game.connect();
    game.send(fresh, &resume_after(&token, 1));
    let got = game.take(c);
    assert_eq!(got[0]["replay"], "snapshot");
    assert_eq!(
        got.len(),
        3,
        "the snapshot and a playerJoin of each other member"
    );
    assert!(got[1..].iter().all(|f| f["command"] == "playerJoin"));
}

#[wasm_bindgen_test(unsupported = test)]
fn without_a_resume_the_others_see_the_leave_when_the_grace_ends() {
    let mut game = Game::new(Limits::default());
    let (a, _) = game.resumable_member(true);
    let (b, token) = game.resumable_member(false);
    game.take(a);
    game.drop_connection(b);
    game.advance(GRACE_MS - 1);
    assert!(game.take(a).is_empty());
    game.advance(1);
    let frames = game.take(a);
    assert_eq!(
        frames,
        [serde_json::json!({"command":"playerLeave","error":0,"playerID":b.0})]
    );
    let late = game.connect();
    game.send(late, &resume(&token));
    assert_eq!(game.take(late)[0]["error"], 22);
    // The last member away and gone: the session ends.
    game.drop_connection(a);
    game.advance(GRACE_MS);
    assert_eq!(game.server.sessions().count(), 0);
    let after = game.connect();
    game.send(after, r#"{"command":"joinSession","sessionID":0}"#);
    assert_eq!(game.take(after)[0]["error"], 7);
}

#[wasm_bindgen_test(unsupported = test)]
fn more_missed_than_the_buffer_holds_gives_a_snapshot() {
    let mut game = Game::new(Limits {
        resume_replay_bytes: 1_000,
        ..Limits::default()
    });
    let (a, _) = game.resumable_member(true);
    let (b, token) = game.resumable_member(false);
    let c = game.connect();
    game.send(c, r#"{"command":"joinSession","sessionID":0}"#);
    game.take(b);
    game.drop_connection(b);
    for i in 0..100 {
        game.send(
            a,
            &format!(r#"{{"command":"updatePlayer","player":{{"x":{i}}}}}"#),
        );
    }
    game.send(
        a,
        r#"{"command":"updateSession","session":{"round":2},"player":{"x":-1}}"#,
    );
    game.send(c, r#"{"command":"updatePlayer","player":{"x":7}}"#);
    let fresh = game.connect();
    game.send(fresh, &resume(&token));
    let frames = game.take(b);
    assert_eq!(frames[0]["command"], "sessionResume");
    assert_eq!(frames[0]["replay"], "snapshot");
    assert_eq!(frames[0]["session"], serde_json::json!({"round":2}));
    assert_eq!(frames[0]["player"], serde_json::json!({"x":-1}));
    // Then every other member as it is now.
    assert_eq!(
        frames[1..],
        [
            serde_json::json!({"command":"playerJoin","error":0,"playerID":a.0,"player":{"x":-1}}),
            serde_json::json!({"command":"playerJoin","error":0,"playerID":c.0,"player":{"x":7}}),
        ]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn forged_and_malformed_tokens_and_legacy_clients() {
    let mut game = Game::new(Limits::default());
    let (_a, token) = game.resumable_member(true);
    game.drop_connection(_a);
    let (session, rest) = token.split_once('.').unwrap();
    let (player, secret) = rest.split_once('.').unwrap();
    let flipped = format!(
        "{session}.{player}.{}{}",
        if secret.starts_with('0') { '1' } else { '0' },
        &secret[1..]
    );
    for bad in [
        flipped,
        format!("{session}.{}.{secret}", player.parse::<u64>().unwrap() + 1),
        format!("9.{player}.{secret}"),
        "nonsense".to_owned(),
    ] {
        let p = game.connect();
        game.send(p, &resume(&bad));
        let frames = game.take(p);
        assert_eq!(frames[0]["command"], "sessionResume", "{bad}");
        assert_eq!(frames[0]["error"], 22, "{bad}");
    }
    let p = game.connect();
    game.send(p, r#"{"command":"resumeSession","resumeToken":5}"#);
    assert_eq!(game.take(p)[0]["error"], 13);
    // The real one still works after the forgeries.
    let p = game.connect();
    game.send(p, &resume(&token));
    let frames = game.take(_a);
    assert_eq!(frames[0]["error"], 0);
    // hello in a session is refused, in order with the session's replies.
    game.send(_a, r#"{"command":"hello","features":["resume"]}"#);
    assert_eq!(game.take(_a)[0]["error"], 21);

    // A client that never says hello gets the original sessionJoin and leaves at once.
    let legacy = game.connect();
    game.send(legacy, r#"{"command":"joinSession","sessionID":0}"#);
    let join = game.take(legacy);
    assert!(join[0].get("resumeToken").is_none());
    game.take(_a);
    game.drop_connection(legacy);
    assert_eq!(
        game.take(_a),
        [serde_json::json!({"command":"playerLeave","error":0,"playerID":legacy.0})]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_server_that_does_not_offer_resume_lists_no_feature() {
    let mut server = Server::new();
    let p = server.connect().unwrap();
    server.handle_text(p, r#"{"command":"hello","features":["resume"]}"#);
    let Some(Output::Send { frame, .. }) = server.poll_output() else {
        panic!("no hello reply");
    };
    assert_eq!(
        frame.as_str(),
        format!(r#"{{"command":"hello","error":0,"playerID":{p},"features":[]}}"#)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_resume_whose_connection_closes_on_the_way_leaves_no_ghost() {
    let mut game = Game::new(Limits::default());
    let (a, _) = game.resumable_member(true);
    let (b, token) = game.resumable_member(false);
    game.drop_connection(b);
    game.take(a);
    // The resume and then the new connection's close are both on their way.
    let fresh = game.connect();
    game.server.feed_text(fresh, &resume(&token));
    game.server.feed_close(fresh);
    game.server.check_invariants().unwrap();
    game.server.settle();
    game.check();
    // b took its seat back and lost it again: away, not a ghost; the grace then ends.
    let session = game.server.sessions().next().unwrap();
    assert!(session.is_away(b), "b is away again");
    game.advance(GRACE_MS);
    assert_eq!(
        game.take(a),
        [serde_json::json!({"command":"playerLeave","error":0,"playerID":b.0})]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_seat_keeps_its_subject_for_operators_and_for_resumes() {
    use sessionserver_core::{
        parse, Command, CreateRequest, ResumeRequest, ResumeToken, Session, ToSession,
    };
    use std::sync::Arc;
    let Ok(Command::CreateSession(format)) = parse(
        r#"{"command":"createSession","session":{},"player":{}}"#,
        &Limits::default(),
    ) else {
        panic!("a createSession");
    };
    let subject = Some(Arc::new(r#"ada "the first""#.to_owned()));
    let request = CreateRequest {
        player: PlayerId(1),
        format: format.format,
        features: Features::RESUME,
        subject: subject.clone(),
        options: Default::default(),
    };
    let mut session =
        Session::create_seeded(SessionId(4), request, Limits::default(), Some([5; 32]));
    let mut token = None;
    while let Some(output) = session.poll_output() {
        if let Output::Send { frame, .. } = output {
            let join: Value = serde_json::from_str(frame.as_str()).unwrap();
            token = join["resumeToken"].as_str().map(str::to_owned);
        }
    }
    // Shown to operators, escaped as JSON.
    assert!(
        session
            .describe()
            .contains(r#""playerID":1,"playerData":{},"subject":"ada \"the first\""}"#),
        "{}",
        session.describe()
    );
    session.handle(
        0,
        ToSession::Disconnect {
            player: PlayerId(1),
        },
    );
    let token = ResumeToken::parse(&token.expect("a token")).unwrap();
    let mut resume = |connection: u64, who: Option<Arc<String>>| {
        session.handle(
            0,
            ToSession::Resume {
                player: PlayerId(connection),
                request: Box::new(ResumeRequest {
                    token,
                    received: None,
                }),
                subject: who,
                features: Features::RESUME,
            },
        );
        let mut error = None;
        while let Some(output) = session.poll_output() {
            if let Output::Send { frame, .. } = output {
                let reply: Value = serde_json::from_str(frame.as_str()).unwrap();
                error = error.or(reply["error"].as_u64());
            }
        }
        error
    };
    // Another subject, or none, holding the token: as good as no token.
    assert_eq!(resume(7, Some(Arc::new("eve".into()))), Some(22));
    assert_eq!(resume(8, None), Some(22));
    assert_eq!(resume(9, subject), Some(0));
}
