mod common;

use common::Harness;
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test(unsupported = test)]
fn a_session_answers_in_its_creators_spelling_whatever_members_write() {
    for (create, session_field, player_field) in [
        (
            r#"{"command":"createSession","session":{"s":1},"player":{"p":1}}"#,
            "session",
            "player",
        ),
        (
            r#"{"command":"createSession","sessionData":{"s":1},"playerData":{"p":1}}"#,
            "sessionData",
            "playerData",
        ),
    ] {
        let mut h = Harness::new();
        let (a, b) = (h.connect(), h.connect());
        h.send(a, create);
        let join = h.recv(a);
        assert!(
            join.get(session_field).is_some() && join.get(player_field).is_some(),
            "{join}"
        );
        h.send(b, r#"{"command":"joinSession","sessionID":-1}"#);
        assert!(h.recv(b).get(session_field).is_some());
        assert!(h.recv(b).get(player_field).is_some());
        assert!(h.recv(a).get(player_field).is_some());

        // Members write both spellings; replies keep the creator's.
        for frame in [
            r#"{"command":"updatePlayer","player":{"p":2}}"#,
            r#"{"command":"updatePlayer","playerData":{"p":3}}"#,
        ] {
            h.send(b, frame);
            for p in [a, b] {
                let reply = h.recv(p);
                assert!(reply.get(player_field).is_some(), "{reply}");
                assert_eq!(reply.as_object().unwrap().len(), 4, "{reply}");
            }
        }
        for frame in [
            r#"{"command":"updateSession","session":{"s":2},"player":{"p":0}}"#,
            r#"{"command":"updateSession","sessionData":{"s":3},"playerData":{"p":0}}"#,
        ] {
            h.send(b, frame);
            for p in [a, b] {
                let reply = h.recv(p);
                assert!(
                    reply.get(session_field).is_some() && reply.get(player_field).is_some(),
                    "{reply}"
                );
            }
        }
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn both_spellings_of_one_field_is_error_13() {
    let mut h = Harness::new();
    let a = h.connect();
    h.send(
        a,
        r#"{"command":"createSession","session":{},"sessionData":{}}"#,
    );
    let reply = h.recv(a);
    assert_eq!(
        (reply["command"].as_str(), reply["error"].as_u64()),
        (Some("sessionJoin"), Some(13))
    );
    assert_eq!(h.server.sessions().count(), 0);
}
