//! Every kind of bad input gets its error reply (codes 9 to 15, each with a message), changes
//! nothing, and leaves the connection usable: each case is followed by a valid command on the
//! same connection, in no session and in a session (where the other members hear nothing).

use sessionserver_tests::{cmd, frames, json, Client, Room, Spelling, Target};

/// Frames that are not valid JSON, or repeat a protocol field: error 9.
const INVALID_JSON: &[&str] = &[
    "not json",
    "",
    " ",
    "{",
    "}",
    r#"{"command":"createSession""#,
    r#"{"command":"createSession",}"#,
    r#"{'command':'createSession'}"#,
    r#"{command:"createSession"}"#,
    r#"{"command":createSession}"#,
    r#"{"command":"leaveSession"} trailing"#,
    r#"{"command":"leaveSession"}{"command":"leaveSession"}"#,
    r#"{"command":"leaveSession","x":01}"#,
    r#"{"command":"leaveSession","x":1.}"#,
    r#"{"command":"leaveSession","x":"\x"}"#,
    "{\"command\":\"leave\nSession\"}",
    r#"{"command":"leaveSession","x":NaN}"#,
    r#"{"command":"leaveSession","x":undefined}"#,
    "[1,2",
    "nul",
    // A protocol field given twice.
    r#"{"command":"createSession","command":"joinSession"}"#,
    r#"{"command":"leaveSession","command":"leaveSession"}"#,
    r#"{"command":"joinSession","sessionID":1,"sessionID":2}"#,
    r#"{"command":"createSession","session":{},"session":{}}"#,
    r#"{"command":"createSession","sessionData":{},"player":{},"sessionData":{}}"#,
    r#"{"command":"updatePlayer","player":{},"player":{}}"#,
    r#"{"command":"updatePlayer","playerData":{},"playerData":{}}"#,
];

/// JSON, but not an object: error 10.
const NOT_AN_OBJECT: &[&str] = &[
    "[]",
    r#"[{"command":"createSession"}]"#,
    "42",
    "-1.5",
    r#""createSession""#,
    "null",
    "true",
    "false",
    " [ ] ",
];

/// No `command`, or not a string: error 11.
const NO_COMMAND: &[&str] = &[
    "{}",
    r#"{"Command":"createSession"}"#,
    r#"{"sessionID":1}"#,
    r#"{"session":{},"player":{}}"#,
    r#"{"command":null}"#,
    r#"{"command":5}"#,
    r#"{"command":true}"#,
    r#"{"command":["createSession"]}"#,
    r#"{"command":{"name":"createSession"}}"#,
];

/// A `command` that names no client command: error 12.
const UNKNOWN_COMMAND: &[&str] = &[
    r#"{"command":""}"#,
    r#"{"command":"createsession"}"#,
    r#"{"command":"CreateSession"}"#,
    r#"{"command":" createSession"}"#,
    r#"{"command":"createSession "}"#,
    r#"{"command":"create_session"}"#,
    r#"{"command":"sessionJoin"}"#,
    r#"{"command":"playerUpdate","player":{}}"#,
    r#"{"command":"error"}"#,
    r#"{"command":"createSession\u0000"}"#,
];

/// A known command with a field of the wrong type, missing, or in both spellings: error 13,
/// with the command's usual reply command.
fn invalid_fields() -> Vec<(String, &'static str)> {
    let mut cases = Vec::new();
    let join = "sessionJoin";
    for id in [
        "",
        r#","sessionID":"3""#,
        r#","sessionID":"-1""#,
        r#","sessionID":1.5"#,
        r#","sessionID":-1.5"#,
        r#","sessionID":null"#,
        r#","sessionID":true"#,
        r#","sessionID":[]"#,
        r#","sessionID":[1]"#,
        r#","sessionID":{}"#,
    ] {
        cases.push((format!(r#"{{"command":"joinSession"{id}}}"#), join));
    }
    let not_objects = ["5", r#""x""#, "null", "[]", "[{}]", "true", "-1"];
    for (command, reply) in [("createSession", join), ("updateSession", "sessionUpdate")] {
        for sp in Spelling::BOTH {
            for bad in not_objects {
                cases.push((
                    format!(
                        r#"{{"command":"{command}","{}":{bad},"{}":{{}}}}"#,
                        sp.session(),
                        sp.player()
                    ),
                    reply,
                ));
                cases.push((
                    format!(
                        r#"{{"command":"{command}","{}":{{}},"{}":{bad}}}"#,
                        sp.session(),
                        sp.player()
                    ),
                    reply,
                ));
                cases.push((
                    format!(r#"{{"command":"{command}","{}":{bad}}}"#, sp.player()),
                    reply,
                ));
            }
        }
        // Both spellings of one field.
        cases.push((
            format!(r#"{{"command":"{command}","session":{{}},"sessionData":{{}}}}"#),
            reply,
        ));
        cases.push((
            format!(r#"{{"command":"{command}","player":{{}},"playerData":{{}}}}"#),
            reply,
        ));
        cases.push((
            format!(
                r#"{{"command":"{command}","session":{{}},"playerData":{{}},"sessionData":{{}}}}"#
            ),
            reply,
        ));
    }
    let update = "playerUpdate";
    cases.push((r#"{"command":"updatePlayer"}"#.to_owned(), update));
    cases.push((
        r#"{"command":"updatePlayer","session":{}}"#.to_owned(),
        update,
    ));
    for sp in Spelling::BOTH {
        for bad in not_objects {
            cases.push((
                format!(r#"{{"command":"updatePlayer","{}":{bad}}}"#, sp.player()),
                update,
            ));
        }
    }
    cases.push((
        r#"{"command":"updatePlayer","player":{},"playerData":{}}"#.to_owned(),
        update,
    ));
    cases
}

/// Sends every case and checks each reply.
async fn send_all_bad(c: &mut Client) {
    for f in INVALID_JSON {
        c.rejects(f, "error", 9).await;
    }
    for f in NOT_AN_OBJECT {
        c.rejects(f, "error", 10).await;
    }
    for f in NO_COMMAND {
        c.rejects(f, "error", 11).await;
    }
    for f in UNKNOWN_COMMAND {
        c.rejects(f, "error", 12).await;
    }
    for (f, reply) in invalid_fields() {
        c.rejects(&f, reply, 13).await;
    }
    for bytes in [
        &br#"{"command":"createSession"}"#[..],
        b"",
        &[0xff, 0x00, 0x7b],
    ] {
        c.send_binary(bytes).await;
        c.expect_error_message("error", 14).await;
    }
    for f in too_deep() {
        c.rejects(&f, "error", 15).await;
    }
}

/// Frames nesting objects and arrays deeper than 64 levels (the frame itself is level 1).
fn too_deep() -> Vec<String> {
    let nest = |open: &str, close: &str, levels: usize| {
        format!("{}1{}", open.repeat(levels), close.repeat(levels))
    };
    vec![
        // 65 levels: the frame, then 64 more.
        format!(
            r#"{{"command":"createSession","session":{}}}"#,
            nest(r#"{"a":"#, "}", 63).replacen("1", r#"{"b":1}"#, 1)
        ),
        format!(
            r#"{{"command":"updatePlayer","player":{{"x":{}}}}}"#,
            nest("[", "]", 63)
        ),
        format!(
            r#"{{"command":"leaveSession","ignored":{}}}"#,
            nest("[", "]", 64)
        ),
        format!(
            r#"{{"command":"nonsense","x":{}}}"#,
            nest(r#"{"a":"#, "}", 200)
        ),
        nest("[", "]", 65),
        nest("[", "]", 10_000),
    ]
}

/// Checks a frame's nesting depth as the server must count it (outside strings).
fn depth(frame: &str) -> usize {
    let (mut d, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for c in frame.chars() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' => {
                d += 1;
                max = max.max(d);
            }
            '}' | ']' => d -= 1,
            _ => {}
        }
    }
    max
}

#[test]
fn too_deep_frames_are_too_deep() {
    for f in too_deep() {
        assert!(depth(&f) > 64, "depth {} of {f:.80}", depth(&f));
    }
    assert_eq!(depth(&deepest_allowed().0), 64);
}

/// A createSession nesting exactly 64 levels, with its sessionData.
fn deepest_allowed() -> (String, serde_json::Value) {
    // Level 1 the frame, level 2 sessionData, 62 more inside, the innermost an array.
    let inner = format!("{}{}", r#"{"a":"#.repeat(61), "[1]") + &"}".repeat(61);
    let session =
        format!(r#"{{"deep":{inner},"brackets":"[[[[{{{{{{{{{{{{{{{{]]]]","esc":"\"[{{\\"}}"#);
    let frame = format!(r#"{{"command":"createSession","session":{session},"player":{{}}}}"#);
    let value = serde_json::from_str(&session).expect("valid JSON");
    (frame, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_outside_a_session_changes_nothing() {
    let t = Target::start().await;
    let mut a = t.connect("a").await;
    send_all_bad(&mut a).await;
    // Still connected, still in no session: the state checks answer as before.
    a.send_json(&cmd::leave()).await;
    a.expect_error("sessionLeave", 2).await;
    a.send_json(&cmd::update_player(Spelling::Short, &json!({})))
        .await;
    a.expect_error("playerUpdate", 2).await;
    // Nothing was created by the binary createSession or anything else.
    if t.private_or_skip("bad_input_outside_a_session_changes_nothing (joinSession -1 part)") {
        a.send_json(&cmd::join(-1)).await;
        a.expect_error("sessionJoin", 6).await;
    }
    // And a valid command works.
    a.create(Spelling::Long, &json!({"ok": true}), &json!({}))
        .await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_inside_a_session_changes_nothing() {
    let t = Target::start().await;
    for sp in Spelling::BOTH {
        let mut room = Room::open(&t, sp, 3, &json!({"s": 1}), &json!({"v": 0})).await;
        room.update_player(1, sp, &json!({"v": 1})).await;
        send_all_bad(room.client(1)).await;
        // The others heard nothing: their next frame is p1's next update, and p1 is still a
        // member with its data; a newcomer sees it.
        room.update_player(1, sp, &json!({"v": 2})).await;
        room.add(&t, "late").await;
        room.expect_quiet().await;
        room.close().await;
    }
    t.shutdown().await;
}

/// Each kind of bad input, then at once a valid command, on one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_input_is_followed_by_a_working_command() {
    let t = Target::start().await;
    let mut b = t.connect("b").await;
    let (sid, pb) = b
        .create(Spelling::Short, &json!({}), &json!({"v": 0}))
        .await;
    // (On the direct path, a socket that ends in b's session: its first frames are bad.)
    let mut a = t.connect_to_session("a", sid).await;
    let mut data = 0;
    let mut pa = None;
    let cases: Vec<(String, &str, u64)> = vec![
        ("not json".into(), "error", 9),
        ("[]".into(), "error", 10),
        ("{}".into(), "error", 11),
        (r#"{"command":"nope"}"#.into(), "error", 12),
        (
            r#"{"command":"joinSession","sessionID":"0"}"#.into(),
            "sessionJoin",
            13,
        ),
        (too_deep()[0].clone(), "error", 15),
    ];
    for (f, reply, code) in &cases {
        a.rejects(f, reply, *code).await;
        match pa {
            None => {
                pa = Some(
                    a.join(
                        Spelling::Short,
                        sid,
                        &json!({}),
                        &json!({"v": 0}),
                        &[(pb, json!({"v": 0}))],
                    )
                    .await,
                );
                b.expect_frame(&frames::player_join(
                    Spelling::Short,
                    pa.unwrap(),
                    &json!({"v": 0}),
                ))
                .await;
            }
            Some(id) => {
                data += 1;
                a.send_json(&cmd::update_player(Spelling::Short, &json!({"v": data})))
                    .await;
                a.expect_frame(&frames::player_update(
                    Spelling::Short,
                    id,
                    &json!({"v": data}),
                ))
                .await;
                b.expect_frame(&frames::player_update(
                    Spelling::Short,
                    id,
                    &json!({"v": data}),
                ))
                .await;
            }
        }
    }
    a.send_binary(b"\x00").await;
    a.expect_error_message("error", 14).await;
    a.send_json(&cmd::leave()).await;
    a.expect_frame(&frames::session_leave()).await;
    b.expect_frame(&frames::player_leave(pa.unwrap())).await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_checks_come_before_state_checks() {
    let t = Target::start().await;
    let mut a = t.connect("a").await;
    // In no session: an updatePlayer/updateSession with bad fields is 13, not 2.
    a.rejects(r#"{"command":"updatePlayer"}"#, "playerUpdate", 13)
        .await;
    a.rejects(
        r#"{"command":"updatePlayer","player":5}"#,
        "playerUpdate",
        13,
    )
    .await;
    a.rejects(
        r#"{"command":"updateSession","session":[]}"#,
        "sessionUpdate",
        13,
    )
    .await;
    a.rejects(
        r#"{"command":"updateSession","player":{},"playerData":{}}"#,
        "sessionUpdate",
        13,
    )
    .await;
    // A join with a bad ID is 13, not 6 or 7.
    a.rejects(
        r#"{"command":"joinSession","sessionID":"-1"}"#,
        "sessionJoin",
        13,
    )
    .await;
    a.rejects(r#"{"command":"joinSession"}"#, "sessionJoin", 13)
        .await;
    // In a session: a createSession or joinSession with bad fields is 13, not 4 or 5.
    let (sid, _) = a.create(Spelling::Short, &json!({}), &json!({})).await;
    a.rejects(
        r#"{"command":"createSession","session":null}"#,
        "sessionJoin",
        13,
    )
    .await;
    a.rejects(
        r#"{"command":"createSession","playerData":{},"player":{}}"#,
        "sessionJoin",
        13,
    )
    .await;
    a.rejects(
        &format!(r#"{{"command":"joinSession","sessionID":"{sid}"}}"#),
        "sessionJoin",
        13,
    )
    .await;
    a.rejects(
        r#"{"command":"joinSession","sessionID":0.5}"#,
        "sessionJoin",
        13,
    )
    .await;
    // While well-formed, the state errors as usual.
    a.send_json(&cmd::create(Spelling::Short, &json!({}), &json!({})))
        .await;
    a.expect_error("sessionJoin", 4).await;
    a.send_json(&cmd::join_id(sid)).await;
    a.expect_error("sessionJoin", 5).await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nesting_up_to_64_levels_and_brackets_in_strings_are_fine() {
    let t = Target::start().await;
    let mut a = t.connect("a").await;
    let (frame, session) = deepest_allowed();
    a.send_json(&frame).await;
    let v = a.expect("sessionJoin").await;
    sessionserver_tests::assert_same(&v["session"], &session, "the 64-level sessionData");
    // Brackets inside strings are not nesting, however many.
    let brackets = "[{".repeat(5000);
    a.send_json(&format!(
        r#"{{"command":"updateSession","session":{{"s":"{brackets}"}}}}"#
    ))
    .await;
    let v = a.expect("sessionUpdate").await;
    assert_eq!(v["session"]["s"], brackets.as_str());
    t.shutdown().await;
}
