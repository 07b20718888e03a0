mod common;

use common::{id, Harness};
use sessionserver_core::PlayerId;
use wasm_bindgen_test::wasm_bindgen_test;

const DEFAULT: &str = r#"{"name":"","pos":{"x":0,"y":0},"tags":[]}"#;

fn session_of_two() -> (Harness, PlayerId, PlayerId) {
    let mut h = Harness::new();
    let (a, b) = (h.connect(), h.connect());
    let s = h.create(
        a,
        &format!(r#"{{"command":"createSession","player":{DEFAULT}}}"#),
    );
    h.send(
        b,
        &format!(r#"{{"command":"joinSession","sessionID":{s}}}"#),
    );
    h.recv(b);
    h.recv(b);
    h.recv(a);
    (h, a, b)
}

#[wasm_bindgen_test(unsupported = test)]
fn same_structure_in_any_order_and_types_is_broadcast_to_all() {
    let (mut h, a, b) = session_of_two();
    let data = r#"{"tags":"none","pos":{"y":"up","x":[1]},"name":7}"#;
    h.send(
        b,
        &format!(r#"{{"command":"updatePlayer","player":{data}}}"#),
    );
    let expected = format!(
        r#"{{"command":"playerUpdate","error":0,"playerID":{},"player":{data}}}"#,
        id(b)
    );
    assert_eq!(h.recv_text(a), expected);
    assert_eq!(h.recv_text(b), expected);
}

#[wasm_bindgen_test(unsupported = test)]
fn any_structural_difference_is_error_4_to_the_sender_only() {
    let (mut h, a, b) = session_of_two();
    let mismatches = [
        r#"{"name":"","pos":{"x":0,"y":0}}"#,                  // removed
        r#"{"name":"","pos":{"x":0,"y":0},"tags":[],"hp":1}"#, // added
        r#"{"nick":"","pos":{"x":0,"y":0},"tags":[]}"#,        // renamed
        r#"{"name":"","pos":{"x":0},"tags":[]}"#,              // nested key removed
        r#"{"name":"","pos":{"x":0,"z":0},"tags":[]}"#,        // nested key renamed
        r#"{"name":"","pos":5,"tags":[]}"#,                    // flattened
        r#"{"name":"","x":0,"y":0,"tags":[]}"#,                // flattened into parent
        r#"{"name":{"first":""},"pos":{"x":0,"y":0},"tags":[]}"#, // nested
        r#"{"name":"","pos":{"x":{"v":0},"y":0},"tags":[]}"#,  // nested deeper
        r#"{}"#,
    ];
    for data in mismatches {
        h.send(
            b,
            &format!(r#"{{"command":"updatePlayer","player":{data}}}"#),
        );
        assert_eq!(
            h.recv_text(b),
            r#"{"command":"playerUpdate","error":4}"#,
            "{data}"
        );
        h.assert_quiet(a);
    }
    // Nothing changed: a newcomer still sees b's default data.
    let c = h.connect();
    h.send(c, r#"{"command":"joinSession","sessionID":-1}"#);
    h.recv(c);
    h.recv(c);
    assert_eq!(h.recv(c)["player"]["pos"], serde_json::json!({"x":0,"y":0}));
}

#[wasm_bindgen_test(unsupported = test)]
fn missing_or_non_object_data_is_error_13() {
    let (mut h, a, b) = session_of_two();
    for frame in [
        r#"{"command":"updatePlayer"}"#,
        r#"{"command":"updatePlayer","player":[1]}"#,
        r#"{"command":"updatePlayer","player":{},"playerData":{}}"#,
    ] {
        h.send(b, frame);
        let reply = h.recv(b);
        assert_eq!(
            (reply["command"].as_str(), reply["error"].as_u64()),
            (Some("playerUpdate"), Some(13)),
            "{frame}"
        );
        h.assert_quiet(a);
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn outside_a_session_is_error_2() {
    let mut h = Harness::new();
    let p = h.connect();
    h.send(p, r#"{"command":"updatePlayer","player":{}}"#);
    assert_eq!(h.recv_text(p), r#"{"command":"playerUpdate","error":2}"#);
}
