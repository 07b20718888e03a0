mod common;

use common::Harness;
use sessionserver_core::Limits;
use wasm_bindgen_test::wasm_bindgen_test;

fn code(reply: &serde_json::Value) -> (Option<&str>, Option<u64>) {
    (reply["command"].as_str(), reply["error"].as_u64())
}

#[wasm_bindgen_test(unsupported = test)]
fn a_full_session_refuses_joins_with_16_until_someone_leaves() {
    let mut h = Harness::with_limits(Limits {
        max_players_per_session: 2,
        ..Limits::default()
    });
    let (a, b, c) = (h.connect(), h.connect(), h.connect());
    h.create(a, r#"{"command":"createSession"}"#);
    h.send(b, r#"{"command":"joinSession","sessionID":0}"#);
    h.take_all(a);
    h.take_all(b);
    h.send(c, r#"{"command":"joinSession","sessionID":0}"#);
    let reply = h.recv(c);
    assert_eq!(code(&reply), (Some("sessionJoin"), Some(16)), "{reply}");
    assert!(reply["message"].as_str().unwrap().contains('2'));
    h.assert_quiet(a);
    assert_eq!(h.server.session_of(c), None);
    h.send(b, r#"{"command":"leaveSession"}"#);
    h.send(c, r#"{"command":"joinSession","sessionID":0}"#);
    assert_eq!(code(&h.recv(c)), (Some("sessionJoin"), Some(0)));
}

#[wasm_bindgen_test(unsupported = test)]
fn the_server_refuses_sessions_beyond_its_maximum_with_17() {
    let mut h = Harness::with_limits(Limits {
        max_sessions: 1,
        ..Limits::default()
    });
    let (a, b) = (h.connect(), h.connect());
    h.create(a, r#"{"command":"createSession"}"#);
    h.send(b, r#"{"command":"createSession"}"#);
    assert_eq!(code(&h.recv(b)), (Some("sessionJoin"), Some(17)));
    h.send(a, r#"{"command":"leaveSession"}"#);
    h.send(b, r#"{"command":"createSession"}"#);
    let reply = h.recv(b);
    assert_eq!(code(&reply), (Some("sessionJoin"), Some(0)));
    assert_eq!(reply["sessionID"], 1, "no ID is used up by a refusal");
}

#[wasm_bindgen_test(unsupported = test)]
fn session_data_beyond_the_limit_is_19_and_changes_nothing() {
    let mut h = Harness::with_limits(Limits {
        max_session_data_bytes: 100,
        ..Limits::default()
    });
    let (a, b) = (h.connect(), h.connect());
    let pad = "x".repeat(100);
    h.send(
        a,
        &format!(r#"{{"command":"createSession","session":{{"p":"{pad}"}}}}"#),
    );
    assert_eq!(code(&h.recv(a)), (Some("sessionJoin"), Some(19)));
    assert_eq!(h.server.sessions().count(), 0);

    // 2 + 21 bytes of format; each member may then add its own data.
    h.create(
        a,
        r#"{"command":"createSession","player":{"name":"0123456789"}}"#,
    );
    h.send(b, r#"{"command":"joinSession","sessionID":-1}"#);
    h.take_all(a);
    h.take_all(b);
    let name = |n: usize| {
        format!(
            r#"{{"command":"updatePlayer","player":{{"name":"{}"}}}}"#,
            "n".repeat(n)
        )
    };
    h.send(a, &name(30)); // 23 + 41 = 64
    assert_eq!(code(&h.recv(a)), (Some("playerUpdate"), Some(0)));
    h.take_all(b);
    h.send(b, &name(30)); // 64 + 41 = 105 > 100
    assert_eq!(code(&h.recv(b)), (Some("playerUpdate"), Some(19)));
    h.assert_quiet(a);
    h.send(b, &name(20)); // 64 + 31 = 95
    assert_eq!(code(&h.recv(b)), (Some("playerUpdate"), Some(0)));
    h.take_all(a);
    // Replacing one's own data counts only the difference.
    h.send(a, &name(34)); // 95 - 41 + 45 = 99
    assert_eq!(code(&h.recv(a)), (Some("playerUpdate"), Some(0)));
    h.take_all(b);
    h.send(
        a,
        &format!(r#"{{"command":"updateSession","session":{{"p":"{pad}"}}}}"#),
    );
    assert_eq!(code(&h.recv(a)), (Some("sessionUpdate"), Some(19)));
    h.assert_quiet(b);
    // A member leaving frees its data.
    h.send(b, r#"{"command":"leaveSession"}"#);
    h.take_all(a);
    h.take_all(b);
    h.send(a, &name(64)); // 99 - 31 (b) - 45 + 75 = 98
    assert_eq!(code(&h.recv(a)), (Some("playerUpdate"), Some(0)));
}

#[wasm_bindgen_test(unsupported = test)]
fn the_depth_limit_is_configurable() {
    let mut h = Harness::with_limits(Limits {
        max_depth: 3,
        ..Limits::default()
    });
    let a = h.connect();
    h.send(a, r#"{"command":"createSession","session":{"a":{"b":{}}}}"#);
    assert_eq!(code(&h.recv(a)), (Some("error"), Some(15)));
    h.send(a, r#"{"command":"createSession","session":{"a":{"b":1}}}"#);
    assert_eq!(code(&h.recv(a)), (Some("sessionJoin"), Some(0)));
}
