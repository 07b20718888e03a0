//! Messages that are not state, and ping (issue 17), on the reference composition both hosts
//! run: `sendMessage` reaches the members that asked for `messages`, verbatim, one frame
//! shared; nothing is kept; `ping` is answered with `t` as sent and the host's clock.

mod common;

use common::{id, Harness};
use serde_json::json;
use sessionserver_core::{ConnectionConfig, Features, Limits, PlayerId, Server};
use wasm_bindgen_test::wasm_bindgen_test;

fn game() -> Harness {
    let config = ConnectionConfig {
        features: Features::HOST.union(Features::MESSAGES),
        ..ConnectionConfig::default()
    };
    Harness::with_server(Server::with_config(Limits::default(), config))
}

fn hello(h: &mut Harness, p: PlayerId) {
    h.send(p, r#"{"command":"hello","features":["messages"]}"#);
    assert_eq!(h.recv(p)["features"], json!(["messages"]));
}

/// A session of `a` (creator, messages), `b` (messages) and `legacy` (no hello).
fn three(h: &mut Harness) -> (PlayerId, PlayerId, PlayerId) {
    let (a, b, legacy) = (h.connect(), h.connect(), h.connect());
    hello(h, a);
    hello(h, b);
    let s = h.create(a, r#"{"command":"createSession"}"#);
    for p in [b, legacy] {
        h.send(
            p,
            &format!(r#"{{"command":"joinSession","sessionID":{s}}}"#),
        );
    }
    for p in [a, b, legacy] {
        h.take_all(p);
    }
    (a, b, legacy)
}

#[wasm_bindgen_test(unsupported = test)]
fn a_message_reaches_the_others_that_asked_verbatim_and_the_sender_gets_a_count() {
    let mut h = game();
    let (a, b, legacy) = three(&mut h);
    let data = r#"{ "text" : "gg", "n":1.000000000001, "big":12345678901234567890 }"#;
    h.send(a, &format!(r#"{{"command":"sendMessage","data":{data}}}"#));
    assert_eq!(
        h.recv_text(b),
        format!(
            r#"{{"command":"message","error":0,"playerID":{},"data":{data}}}"#,
            id(a)
        )
    );
    assert_eq!(
        h.recv_text(a),
        r#"{"command":"messageSent","error":0,"recipients":1}"#
    );
    // The original client sees nothing; so does the sender, not being in `to`.
    h.assert_quiet(legacy);
    h.assert_quiet(a);
    // Any JSON value is data.
    for value in ["5", r#""x""#, "null", "[1,[2]]", "true"] {
        h.send(b, &format!(r#"{{"command":"sendMessage","data":{value}}}"#));
        assert_eq!(
            h.recv(a)["data"],
            serde_json::from_str::<serde_json::Value>(value).unwrap()
        );
        assert_eq!(h.recv(b)["recipients"], 1);
    }
    h.assert_quiet(legacy);
}

#[wasm_bindgen_test(unsupported = test)]
fn to_some_reaches_only_those_and_a_stranger_in_to_sends_nothing() {
    let mut h = game();
    let (a, b, legacy) = three(&mut h);
    h.send(
        a,
        &format!(
            r#"{{"command":"sendMessage","data":1,"to":[{},{}]}}"#,
            id(a),
            id(legacy)
        ),
    );
    // The sender is in `to`: it gets it; the legacy member is in `to` but did not ask.
    assert_eq!(h.recv(a)["command"], "message");
    assert_eq!(h.recv(a)["recipients"], 1);
    h.assert_quiet(b);
    h.assert_quiet(legacy);
    h.send(
        a,
        &format!(
            r#"{{"command":"sendMessage","data":1,"to":[{},424242]}}"#,
            id(b)
        ),
    );
    let refused = h.recv(a);
    assert_eq!(refused["command"], "messageSent");
    assert_eq!(refused["error"], 31, "{refused}");
    h.assert_quiet(b);
    for bad in [
        r#"{"command":"sendMessage"}"#,
        r#"{"command":"sendMessage","data":1,"to":5}"#,
        r#"{"command":"sendMessage","data":1,"to":[-1]}"#,
        r#"{"command":"sendMessage","data":1,"to":["1"]}"#,
    ] {
        h.send(a, bad);
        let reply = h.recv(a);
        assert_eq!(
            (reply["command"].as_str(), reply["error"].as_u64()),
            (Some("messageSent"), Some(13)),
            "{bad}: {reply}"
        );
    }
    let lobby = h.connect();
    h.send(lobby, r#"{"command":"sendMessage","data":1}"#);
    assert_eq!(h.recv_text(lobby), r#"{"command":"messageSent","error":2}"#);
}

#[wasm_bindgen_test(unsupported = test)]
fn messages_are_not_session_events() {
    // Not kept: a member that joins later gets none of them, and they are not in the log a
    // resume replays (they are not counted: the events count stays the same).
    let mut h = game();
    let (a, b, _) = three(&mut h);
    h.send(a, r#"{"command":"sendMessage","data":"early"}"#);
    h.take_all(a);
    h.take_all(b);
    let late = h.connect();
    hello(&mut h, late);
    let s = h.server.session_of(a).unwrap().0;
    h.send(
        late,
        &format!(r#"{{"command":"joinSession","sessionID":{s}}}"#),
    );
    let frames = h.take_all(late);
    assert!(frames.iter().all(|f| !f.contains("early")), "{frames:?}");
}

#[wasm_bindgen_test(unsupported = test)]
fn ping_is_answered_with_t_as_sent_and_the_hosts_clock() {
    let mut h = game();
    h.advance_time(1_700_000_000_000);
    let p = h.connect();
    h.send(p, r#"{"command":"ping","t":{"seq":7, "at":1.50}}"#);
    assert_eq!(
        h.recv_text(p),
        r#"{"command":"pong","error":0,"t":{"seq":7, "at":1.50},"serverTime":1700000000000}"#
    );
    h.send(p, r#"{"command":"ping"}"#);
    assert_eq!(
        h.recv_text(p),
        r#"{"command":"pong","error":0,"serverTime":1700000000000}"#
    );
    // In a session too, in order with the session's replies.
    h.create(p, r#"{"command":"createSession","player":{"x":0}}"#);
    h.send(p, r#"{"command":"updatePlayer","player":{"x":1}}"#);
    h.send(p, r#"{"command":"ping","t":1}"#);
    assert_eq!(h.recv(p)["command"], "playerUpdate");
    assert_eq!(h.recv(p)["t"], 1);
}
