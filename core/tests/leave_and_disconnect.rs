mod common;

use common::{id, Harness};
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test(unsupported = test)]
fn leaver_gets_session_leave_and_the_others_player_leave() {
    let mut h = Harness::new();
    let (a, b, c) = (h.connect(), h.connect(), h.connect());
    h.create(a, r#"{"command":"createSession"}"#);
    for p in [b, c] {
        h.send(p, r#"{"command":"joinSession","sessionID":-1}"#);
    }
    for p in [a, b, c] {
        h.take_all(p);
    }
    h.send(b, r#"{"command":"leaveSession"}"#);
    assert_eq!(h.recv_text(b), r#"{"command":"sessionLeave","error":0}"#);
    let gone = format!(
        r#"{{"command":"playerLeave","error":0,"playerID":{}}}"#,
        id(b)
    );
    assert_eq!(h.recv_text(a), gone);
    assert_eq!(h.recv_text(c), gone);
    for p in [a, b, c] {
        h.assert_quiet(p);
    }
    assert_eq!(h.server.session_of(b), None);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_closed_connection_leaves_like_leave_session() {
    let mut h = Harness::new();
    let (a, b) = (h.connect(), h.connect());
    h.create(a, r#"{"command":"createSession"}"#);
    h.send(b, r#"{"command":"joinSession","sessionID":-1}"#);
    h.recv(b);
    h.recv(b);
    h.recv(a);
    h.disconnect(b);
    assert_eq!(
        h.recv_text(a),
        format!(
            r#"{{"command":"playerLeave","error":0,"playerID":{}}}"#,
            id(b)
        )
    );
    h.assert_quiet(a);
}

#[wasm_bindgen_test(unsupported = test)]
fn the_empty_session_is_destroyed_at_once() {
    let mut h = Harness::new();
    let (a, b) = (h.connect(), h.connect());
    let s = h.create(a, r#"{"command":"createSession"}"#);
    h.disconnect(a);
    assert_eq!(h.server.sessions().count(), 0);
    h.send(
        b,
        &format!(r#"{{"command":"joinSession","sessionID":{s}}}"#),
    );
    assert_eq!(h.recv_text(b), r#"{"command":"sessionJoin","error":7}"#);
    h.send(b, r#"{"command":"joinSession","sessionID":-1}"#);
    assert_eq!(h.recv_text(b), r#"{"command":"sessionJoin","error":6}"#);
}

#[wasm_bindgen_test(unsupported = test)]
fn leave_outside_a_session_is_error_2() {
    let mut h = Harness::new();
    let a = h.connect();
    h.send(a, r#"{"command":"leaveSession"}"#);
    assert_eq!(h.recv_text(a), r#"{"command":"sessionLeave","error":2}"#);
}

#[wasm_bindgen_test(unsupported = test)]
fn the_player_id_stays_across_leave_and_join() {
    let mut h = Harness::new();
    let (a, b) = (h.connect(), h.connect());
    h.create(a, r#"{"command":"createSession"}"#);
    h.create(b, r#"{"command":"createSession"}"#);
    h.send(a, r#"{"command":"leaveSession"}"#);
    h.recv(a);
    h.send(a, r#"{"command":"joinSession","sessionID":-1}"#);
    assert_eq!(h.recv(a)["playerID"], id(a));
    h.send(a, r#"{"command":"leaveSession"}"#);
    h.take_all(a);
    h.send(a, r#"{"command":"createSession"}"#);
    assert_eq!(h.recv(a)["playerID"], id(a));
    assert_eq!((id(a), id(b)), (0, 1));
}
