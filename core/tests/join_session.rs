mod common;

use common::{id, Harness};
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test(unsupported = test)]
fn joiner_sees_members_in_join_order_and_members_see_the_joiner() {
    let mut h = Harness::new();
    let (a, b, c) = (h.connect(), h.connect(), h.connect());
    let s = h.create(
        a,
        r#"{"command":"createSession","session":{"map":"x"},"player":{"name":""}}"#,
    );
    h.send(
        b,
        &format!(r#"{{"command":"joinSession","sessionID":{s}}}"#),
    );
    h.recv(b);
    h.recv(b); // playerJoin of a
    h.recv(a); // playerJoin of b
    h.send(b, r#"{"command":"updatePlayer","player":{"name":"bee"}}"#);
    h.recv(a);
    h.recv(b);

    h.send(
        c,
        &format!(r#"{{"command":"joinSession","sessionID":{s}}}"#),
    );
    assert_eq!(
        h.recv_text(c),
        format!(
            r#"{{"command":"sessionJoin","error":0,"sessionID":{s},"playerID":{},"session":{{"map":"x"}},"player":{{"name":""}}}}"#,
            id(c)
        )
    );
    assert_eq!(
        h.recv_text(c),
        format!(
            r#"{{"command":"playerJoin","error":0,"playerID":{},"player":{{"name":""}}}}"#,
            id(a)
        )
    );
    assert_eq!(
        h.recv_text(c),
        format!(
            r#"{{"command":"playerJoin","error":0,"playerID":{},"player":{{"name":"bee"}}}}"#,
            id(b)
        )
    );
    let announce = format!(
        r#"{{"command":"playerJoin","error":0,"playerID":{},"player":{{"name":""}}}}"#,
        id(c)
    );
    assert_eq!(h.recv_text(a), announce);
    assert_eq!(h.recv_text(b), announce);
    for p in [a, b, c] {
        h.assert_quiet(p);
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn minus_one_joins_the_latest_live_session() {
    let mut h = Harness::new();
    let (a, b, c) = (h.connect(), h.connect(), h.connect());
    let first = h.create(a, r#"{"command":"createSession"}"#);
    let second = h.create(b, r#"{"command":"createSession"}"#);
    h.send(c, r#"{"command":"joinSession","sessionID":-1}"#);
    assert_eq!(h.recv(c)["sessionID"], second);
    h.send(c, r#"{"command":"leaveSession"}"#);
    h.send(b, r#"{"command":"leaveSession"}"#); // second is now empty and destroyed
    h.take_all(b);
    h.take_all(c);
    h.send(c, r#"{"command":"joinSession","sessionID":-1}"#);
    assert_eq!(h.recv(c)["sessionID"], first);
}

#[wasm_bindgen_test(unsupported = test)]
fn minus_one_with_no_session_is_error_6() {
    let mut h = Harness::new();
    let p = h.connect();
    h.send(p, r#"{"command":"joinSession","sessionID":-1}"#);
    assert_eq!(h.recv_text(p), r#"{"command":"sessionJoin","error":6}"#);
}

#[wasm_bindgen_test(unsupported = test)]
fn unknown_ids_are_error_7() {
    let mut h = Harness::new();
    let p = h.connect();
    let q = h.connect();
    h.create(q, r#"{"command":"createSession"}"#);
    for bad in ["1", "-2", "99999999999999999999999"] {
        h.send(
            p,
            &format!(r#"{{"command":"joinSession","sessionID":{bad}}}"#),
        );
        assert_eq!(
            h.recv_text(p),
            r#"{"command":"sessionJoin","error":7}"#,
            "{bad}"
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn join_while_in_a_session_is_error_5() {
    let mut h = Harness::new();
    let (a, b) = (h.connect(), h.connect());
    let s = h.create(a, r#"{"command":"createSession"}"#);
    h.create(b, r#"{"command":"createSession"}"#);
    for target in [s.to_string(), "-1".into(), "12345".into()] {
        h.send(
            b,
            &format!(r#"{{"command":"joinSession","sessionID":{target}}}"#),
        );
        assert_eq!(h.recv_text(b), r#"{"command":"sessionJoin","error":5}"#);
    }
    h.assert_quiet(a);
}
