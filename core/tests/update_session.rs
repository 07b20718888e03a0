mod common;

use common::{id, Harness};
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test(unsupported = test)]
fn replaces_the_format_and_resets_every_member() {
    let mut h = Harness::new();
    let (a, b) = (h.connect(), h.connect());
    h.create(
        a,
        r#"{"command":"createSession","session":{"round":1},"player":{"score":0}}"#,
    );
    h.send(b, r#"{"command":"joinSession","sessionID":-1}"#);
    h.recv(b);
    h.recv(b);
    h.recv(a);
    h.send(a, r#"{"command":"updatePlayer","player":{"score":5}}"#);
    h.recv(a);
    h.recv(b);

    h.send(
        b,
        r#"{"command":"updateSession","session":{"round":2},"player":{"hp":{"now":3}}}"#,
    );
    let expected =
        r#"{"command":"sessionUpdate","error":0,"session":{"round":2},"player":{"hp":{"now":3}}}"#;
    assert_eq!(h.recv_text(a), expected);
    assert_eq!(h.recv_text(b), expected);
    h.assert_quiet(a);
    h.assert_quiet(b);

    // The old structure is now a mismatch, the new one is accepted.
    h.send(a, r#"{"command":"updatePlayer","player":{"score":1}}"#);
    assert_eq!(h.recv_text(a), r#"{"command":"playerUpdate","error":4}"#);
    h.send(a, r#"{"command":"updatePlayer","player":{"hp":{"now":2}}}"#);
    assert_eq!(h.recv(b)["player"]["hp"]["now"], 2);
    h.recv(a);

    // Members' data was reset: a newcomer sees b at the new default.
    let c = h.connect();
    h.send(c, r#"{"command":"joinSession","sessionID":-1}"#);
    assert_eq!(h.recv(c)["session"]["round"], 2);
    let first = h.recv(c);
    let second = h.recv(c);
    assert_eq!(
        (first["playerID"].as_u64(), &first["player"]["hp"]["now"]),
        (Some(id(a)), &2.into())
    );
    assert_eq!(
        (second["playerID"].as_u64(), &second["player"]["hp"]["now"]),
        (Some(id(b)), &3.into())
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn missing_data_means_empty_objects() {
    let mut h = Harness::new();
    let a = h.connect();
    h.create(
        a,
        r#"{"command":"createSession","session":{"x":1},"player":{"y":1}}"#,
    );
    h.send(a, r#"{"command":"updateSession"}"#);
    assert_eq!(
        h.recv_text(a),
        r#"{"command":"sessionUpdate","error":0,"session":{},"player":{}}"#
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn outside_a_session_is_error_2_and_bad_data_is_13() {
    let mut h = Harness::new();
    let a = h.connect();
    h.send(a, r#"{"command":"updateSession","session":{}}"#);
    assert_eq!(h.recv_text(a), r#"{"command":"sessionUpdate","error":2}"#);
    h.create(a, r#"{"command":"createSession"}"#);
    h.send(a, r#"{"command":"updateSession","player":"x"}"#);
    let reply = h.recv(a);
    assert_eq!(
        (reply["command"].as_str(), reply["error"].as_u64()),
        (Some("sessionUpdate"), Some(13))
    );
}
