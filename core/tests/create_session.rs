mod common;

use common::{id, Harness};
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test(unsupported = test)]
fn creator_joins_at_once_with_the_default_player_data() {
    let mut h = Harness::new();
    let p = h.connect();
    h.send(
        p,
        r#"{"command":"createSession","session":{"end":1262304000},"player":{"name":"__unset__"}}"#,
    );
    assert_eq!(
        h.recv_text(p),
        format!(
            r#"{{"command":"sessionJoin","error":0,"sessionID":0,"playerID":{},"session":{{"end":1262304000}},"player":{{"name":"__unset__"}}}}"#,
            id(p)
        )
    );
    h.assert_quiet(p);
}

#[wasm_bindgen_test(unsupported = test)]
fn missing_data_means_empty_objects() {
    let mut h = Harness::new();
    let p = h.connect();
    h.send(p, r#"{"command":"createSession"}"#);
    let reply = h.recv(p);
    assert_eq!(reply["session"], serde_json::json!({}));
    assert_eq!(reply["player"], serde_json::json!({}));
}

#[wasm_bindgen_test(unsupported = test)]
fn create_while_in_a_session_is_error_4_and_creates_nothing() {
    let mut h = Harness::new();
    let p = h.connect();
    let first = h.create(p, r#"{"command":"createSession","session":{}}"#);
    h.send(p, r#"{"command":"createSession","session":{"other":1}}"#);
    assert_eq!(h.recv_text(p), r#"{"command":"sessionJoin","error":4}"#);
    assert_eq!(h.server.sessions().count(), 1);
    assert_eq!(h.server.session_of(p).map(|s| s.0), Some(first));
}

#[wasm_bindgen_test(unsupported = test)]
fn session_ids_count_up_and_are_never_reused() {
    let mut h = Harness::new();
    let p = h.connect();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(h.create(p, r#"{"command":"createSession"}"#));
        h.send(p, r#"{"command":"leaveSession"}"#);
        assert_eq!(h.recv(p)["command"], "sessionLeave");
    }
    assert_eq!(ids, vec![0, 1, 2]);
}

#[wasm_bindgen_test(unsupported = test)]
fn data_that_is_not_an_object_is_refused() {
    let mut h = Harness::new();
    let p = h.connect();
    for bad in ["5", "null", "[]", "\"x\"", "true"] {
        h.send(
            p,
            &format!(r#"{{"command":"createSession","session":{bad}}}"#),
        );
        let reply = h.recv(p);
        assert_eq!(reply["command"], "sessionJoin");
        assert_eq!(reply["error"], 13, "{bad}: {reply}");
        assert!(
            reply["message"].as_str().unwrap().contains("session"),
            "{reply}"
        );
    }
    assert_eq!(h.server.sessions().count(), 0);
}
