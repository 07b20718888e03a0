mod common;

use common::Harness;
use wasm_bindgen_test::wasm_bindgen_test;

/// Each bad frame gets its reply and the next valid command still works.
#[wasm_bindgen_test(unsupported = test)]
fn every_kind_of_bad_input_is_answered_and_the_connection_goes_on() {
    let deep = format!(
        r#"{{"command":"createSession","session":{}{}}}"#,
        "[".repeat(70),
        "]".repeat(70)
    );
    let cases: Vec<(String, &str, u64)> = vec![
        ("not json".into(), "error", 9),
        (r#"{"command":"createSession""#.into(), "error", 9),
        (
            r#"{"command":"leaveSession","command":"leaveSession"}"#.into(),
            "error",
            9,
        ),
        ("[1,2]".into(), "error", 10),
        ("42".into(), "error", 10),
        (r#""createSession""#.into(), "error", 10),
        ("{}".into(), "error", 11),
        (r#"{"command":5}"#.into(), "error", 11),
        (r#"{"command":"dance"}"#.into(), "error", 12),
        (r#"{"command":"joinSession"}"#.into(), "sessionJoin", 13),
        (
            r#"{"command":"joinSession","sessionID":"3"}"#.into(),
            "sessionJoin",
            13,
        ),
        (
            r#"{"command":"joinSession","sessionID":1.5}"#.into(),
            "sessionJoin",
            13,
        ),
        (
            r#"{"command":"joinSession","sessionID":1e3}"#.into(),
            "sessionJoin",
            13,
        ),
        (
            r#"{"command":"createSession","player":7}"#.into(),
            "sessionJoin",
            13,
        ),
        (
            r#"{"command":"updateSession","sessionData":[]}"#.into(),
            "sessionUpdate",
            13,
        ),
        (deep, "error", 15),
    ];
    let mut h = Harness::new();
    let p = h.connect();
    for (frame, command, code) in &cases {
        h.send(p, frame);
        let reply = h.recv(p);
        assert_eq!(reply["command"], *command, "{frame}: {reply}");
        assert_eq!(reply["error"], *code, "{frame}: {reply}");
        assert!(
            !reply["message"].as_str().unwrap_or("").is_empty(),
            "{frame}: {reply}"
        );
        h.assert_quiet(p);
    }
    h.send_binary(p);
    let reply = h.recv(p);
    assert_eq!(
        (reply["command"].as_str(), reply["error"].as_u64()),
        (Some("error"), Some(14))
    );
    h.create(p, r#"{"command":"createSession"}"#);
    // The same inside a session: answered, and the membership is unchanged.
    for (frame, command, code) in &cases {
        h.send(p, frame);
        let reply = h.recv(p);
        assert_eq!(
            (reply["command"].as_str(), reply["error"].as_u64()),
            (Some(*command), Some(*code)),
            "{frame}"
        );
    }
    h.send(p, r#"{"command":"leaveSession"}"#);
    assert_eq!(h.recv(p)["command"], "sessionLeave");
}

#[wasm_bindgen_test(unsupported = test)]
fn unknown_fields_are_ignored() {
    let mut h = Harness::new();
    let p = h.connect();
    h.create(
        p,
        r#"{"command":"createSession","extra":{"a":[1,2]},"session":{}}"#,
    );
}
