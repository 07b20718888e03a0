//! The egress budget: bytes × recipients per second per member, checked before a broadcast;
//! error 20 to the sender only, and nothing broadcast or changed.

use serde_json::Value;
use sessionserver_core::{Limits, Output, PlayerId, Server};
use wasm_bindgen_test::wasm_bindgen_test;

/// 1000 bytes per second, bursts of 2000.
fn limits() -> Limits {
    Limits {
        egress_bytes_per_second: 1000,
        egress_burst_bytes: 2000,
        ..Limits::default()
    }
}

/// Every frame sent since the last call.
fn sent(server: &mut Server) -> Vec<(PlayerId, Value)> {
    let mut frames = Vec::new();
    while let Some(output) = server.poll_output() {
        match output {
            Output::Send { to, frame } => {
                frames.push((to, serde_json::from_str(frame.as_str()).unwrap()))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    frames
}

/// A session of `members` players (the first created it), all frames drained.
fn session(server: &mut Server, members: usize) -> Vec<PlayerId> {
    let players: Vec<PlayerId> = (0..members).map(|_| server.connect().unwrap()).collect();
    server.handle_text(
        players[0],
        r#"{"command":"createSession","player":{"x":0}}"#,
    );
    for p in &players[1..] {
        server.handle_text(*p, r#"{"command":"joinSession","sessionID":0}"#);
    }
    sent(server);
    players
}

/// An updatePlayer whose `playerUpdate` frame is exactly `bytes` long for player IDs < 10.
fn update(bytes: usize) -> String {
    // {"command":"playerUpdate","error":0,"playerID":N,"player":{"x":"…"}}
    let overhead = r#"{"command":"playerUpdate","error":0,"playerID":0,"player":{"x":""}}"#.len();
    let pad = "p".repeat(bytes - overhead);
    format!(r#"{{"command":"updatePlayer","player":{{"x":"{pad}"}}}}"#)
}

/// How many of `count` updates of 100-byte frames from `from` at the present time are
/// broadcast before the first error 20; checks that a refusal goes to the sender only.
fn broadcast_before_refused(server: &mut Server, from: PlayerId, count: usize) -> usize {
    let mut broadcast = 0;
    for _ in 0..count {
        server.handle_text(from, &update(100));
        let frames = sent(server);
        if frames.iter().any(|(_, f)| f["error"] == 20) {
            assert_eq!(frames.len(), 1, "{frames:?}");
            assert_eq!(frames[0].0, from);
            assert_eq!(frames[0].1["command"], "playerUpdate");
            assert!(frames[0].1["message"]
                .as_str()
                .unwrap()
                .contains("nothing was broadcast"));
            return broadcast;
        }
        assert!(frames.iter().all(|(_, f)| f["error"] == 0), "{frames:?}");
        broadcast += 1;
    }
    broadcast
}

#[wasm_bindgen_test(unsupported = test)]
fn broadcasts_cost_bytes_times_recipients_and_refill_with_time() {
    let mut server = Server::with_limits(limits());
    let players = session(&mut server, 4);
    let a = players[0];
    {
        // The broadcast frame is exactly 100 bytes.
        let mut server = Server::with_limits(limits());
        let alone = session(&mut server, 1);
        server.handle_text(alone[0], &update(100));
        match server.poll_output() {
            Some(Output::Send { frame, .. }) => assert_eq!(frame.as_str().len(), 100),
            other => panic!("unexpected {other:?}"),
        }
    }
    // 4 recipients × 100 bytes: 2000 bytes of burst take 5 broadcasts; the sixth finds the
    // budget at zero.
    assert_eq!(broadcast_before_refused(&mut server, a, 20), 5);
    // Another member's budget is its own.
    assert_eq!(broadcast_before_refused(&mut server, players[1], 2), 2);
    // 400 ms bring back 400 bytes: one more broadcast, then refused again.
    server.advance_time(400);
    sent(&mut server);
    assert_eq!(broadcast_before_refused(&mut server, a, 20), 1);
    // Alone in a session, the same burst takes 20 broadcasts of 100 bytes.
    let mut server = Server::with_limits(limits());
    let alone = session(&mut server, 1);
    assert_eq!(broadcast_before_refused(&mut server, alone[0], 40), 20);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_refused_update_changes_nothing() {
    let mut server = Server::with_limits(limits());
    let players = session(&mut server, 4);
    let (a, b) = (players[0], players[1]);
    assert_eq!(broadcast_before_refused(&mut server, a, 20), 5);
    let session_id = server.session_of(a).unwrap();
    let data_of_a = |server: &Server| {
        let s = server.session(session_id).unwrap();
        s.members().next().unwrap().1.as_str().to_owned()
    };
    let before = data_of_a(&server);
    server.handle_text(a, r#"{"command":"updatePlayer","player":{"x":"new"}}"#);
    assert_eq!(sent(&mut server)[0].1["error"], 20);
    assert_eq!(data_of_a(&server), before);

    // b sets its data; a's refused updateSession resets nothing and broadcasts nothing.
    server.handle_text(b, r#"{"command":"updatePlayer","player":{"x":"bee"}}"#);
    sent(&mut server);
    server.handle_text(
        a,
        r#"{"command":"updateSession","session":{"s":1},"player":{"y":0}}"#,
    );
    let frames = sent(&mut server);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].0, a);
    assert_eq!(frames[0].1["command"], "sessionUpdate");
    assert_eq!(frames[0].1["error"], 20);
    let s = server.session(session_id).unwrap();
    assert_eq!(s.session_data().as_str(), "{}");
    assert_eq!(s.default_player_data().as_str(), r#"{"x":0}"#);
    assert_eq!(s.stored_player_data(b).unwrap().as_str(), r#"{"x":"bee"}"#);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_broadcast_larger_than_the_burst_passes_once_then_the_sender_waits() {
    let mut server = Server::with_limits(limits());
    let players = session(&mut server, 4);
    let a = players[0];
    // 4 × 3000 = 12,000 bytes: taken from a full budget of 2000, leaving it 10,000 short.
    server.handle_text(a, &update(3000));
    assert!(sent(&mut server).iter().all(|(_, f)| f["error"] == 0));
    server.advance_time(9_999);
    sent(&mut server);
    server.handle_text(a, &update(100));
    assert_eq!(sent(&mut server)[0].1["error"], 20);
    server.advance_time(10_001);
    sent(&mut server);
    server.handle_text(a, &update(100));
    assert_eq!(sent(&mut server).len(), 4);
}

#[wasm_bindgen_test(unsupported = test)]
fn leaving_and_joining_again_gives_no_new_budget() {
    let mut server = Server::with_limits(limits());
    let players = session(&mut server, 4);
    let a = players[1];
    assert_eq!(broadcast_before_refused(&mut server, a, 20), 5);
    server.handle_text(a, r#"{"command":"leaveSession"}"#);
    server.handle_text(a, r#"{"command":"joinSession","sessionID":0}"#);
    sent(&mut server);
    assert_eq!(broadcast_before_refused(&mut server, a, 20), 0);
    // Once it has refilled (2 s), the session forgets it: a full burst again.
    server.advance_time(2_000);
    server.handle_text(a, r#"{"command":"leaveSession"}"#);
    server.handle_text(a, r#"{"command":"joinSession","sessionID":0}"#);
    sent(&mut server);
    assert_eq!(broadcast_before_refused(&mut server, a, 20), 5);
}
