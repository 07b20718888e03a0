//! Data passes through as the client wrote it: keys in the order sent, numbers as written
//! (no rounding to 64-bit floats, no re-spelling), unicode intact whether raw or escaped.
//! Compared on the raw text of the frames.

use sessionserver_tests::{cmd, json, spelling_tests, Client, Spelling, Target, Value};

spelling_tests!(
    numbers_and_key_order_survive_every_path,
    unicode_raw_and_escaped_survives,
    escaped_keys_are_the_same_keys,
);

/// Numbers a float round-trip would change, keys out of alphabetical order, nesting.
const SESSION: &str = r#"{"zeta":1.000000000001,"alpha":1543236582000,"mid":{"z":-20,"a":3.23,"big":123456789012345678901234567890},"list":[1.0,2.50,1e3,-0.0,1E-7,12345678901234567890]}"#;
const PLAYER: &str =
    r#"{"name":"héllo 🎮","score":123456789012345678901234567890,"pos":{"y":-20,"x":3.23}}"#;
const PLAYER2: &str = r#"{"pos":{"x":1.000000000001,"y":1543236582000},"score":-123456789012345678901234567890.5e-3,"name":"🎮"}"#;
const SESSION2: &str =
    r#"{"b":{"d":[{"y":1,"x":2}],"c":0.30000000000000004},"a":99999999999999999999}"#;

/// The next frame must be exactly `expected`, byte for byte.
async fn expect_text(client: &mut Client, expected: &str) {
    let text = client.recv_text().await;
    assert_eq!(
        text,
        expected,
        "{}: the frame differs from the data as sent",
        client.name()
    );
}

fn field(name: &str, value: impl std::fmt::Display) -> String {
    format!(r#""{name}":{value}"#)
}

async fn numbers_and_key_order_survive_every_path(sp: Spelling) {
    let t = Target::start().await;
    let (s, p) = (sp.session(), sp.player());
    let mut a = t.connect("a").await;
    a.send_json(&cmd::create_raw(sp, SESSION, PLAYER)).await;
    let reply = a.recv_text().await;
    let v: Value = serde_json::from_str(&reply).expect("JSON");
    let (sid, pa) = (
        v["sessionID"].as_u64().unwrap(),
        v["playerID"].as_u64().unwrap(),
    );
    assert_eq!(
        reply,
        format!(
            r#"{{"command":"sessionJoin","error":0,"sessionID":{sid},"playerID":{pa},{},{}}}"#,
            field(s, SESSION),
            field(p, PLAYER)
        ),
        "sessionJoin after createSession"
    );

    // a changes its data; a joiner gets it as a's playerJoin.
    a.send_json(&cmd::update_player_raw(sp, PLAYER2)).await;
    let update_a = format!(
        r#"{{"command":"playerUpdate","error":0,"playerID":{pa},{}}}"#,
        field(p, PLAYER2)
    );
    expect_text(&mut a, &update_a).await;

    let mut b = t.connect("b").await;
    b.send_json(&cmd::join_id(sid)).await;
    let reply = b.recv_text().await;
    let v: Value = serde_json::from_str(&reply).expect("JSON");
    let pb = v["playerID"].as_u64().unwrap();
    assert_eq!(
        reply,
        format!(
            r#"{{"command":"sessionJoin","error":0,"sessionID":{sid},"playerID":{pb},{},{}}}"#,
            field(s, SESSION),
            field(p, PLAYER)
        ),
        "sessionJoin of a joiner"
    );
    expect_text(
        &mut b,
        &format!(
            r#"{{"command":"playerJoin","error":0,"playerID":{pa},{}}}"#,
            field(p, PLAYER2)
        ),
    )
    .await;
    expect_text(
        &mut a,
        &format!(
            r#"{{"command":"playerJoin","error":0,"playerID":{pb},{}}}"#,
            field(p, PLAYER)
        ),
    )
    .await;

    // b's update reaches both.
    b.send_json(&cmd::update_player_raw(sp, PLAYER2)).await;
    let update_b = format!(
        r#"{{"command":"playerUpdate","error":0,"playerID":{pb},{}}}"#,
        field(p, PLAYER2)
    );
    expect_text(&mut b, &update_b).await;
    expect_text(&mut a, &update_b).await;

    // A new session format from b, written in the other spelling, reaches both.
    b.send_json(&cmd::update_session_raw(sp.other(), SESSION2, PLAYER2))
        .await;
    let update = format!(
        r#"{{"command":"sessionUpdate","error":0,{},{}}}"#,
        field(s, SESSION2),
        field(p, PLAYER2)
    );
    expect_text(&mut b, &update).await;
    expect_text(&mut a, &update).await;
    a.expect_nothing_pending().await;
    b.expect_nothing_pending().await;
    t.shutdown().await;
}

async fn unicode_raw_and_escaped_survives(sp: Spelling) {
    let t = Target::start().await;
    let mut a = t.connect("a").await;
    let mut b = t.connect("b").await;
    let raw = "héllo 🎮";
    // The same text, escaped: \u00e9 and a surrogate pair; and the other escapes JSON has.
    let session = r#"{"raw":"héllo 🎮","escaped":"h\u00e9llo \ud83c\udfae","others":"q\"b\\s\/n\nt\tr\r\u0000\u001f","ключ":"值","e\u0301":"é"}"#;
    let player = r#"{"name":"héllo 🎮","tag":"\ud83c\udfae"}"#;
    let (sid, pa) = {
        a.send_json(&cmd::create_raw(sp, session, player)).await;
        let reply = a.recv().await;
        (
            reply["sessionID"].as_u64().unwrap(),
            reply["playerID"].as_u64().unwrap(),
        )
    };
    b.send_json(&cmd::join_id(sid)).await;
    let text = b.recv_text().await;
    // Raw unicode arrives as the same UTF-8 bytes.
    assert!(
        text.contains(r#""raw":"héllo 🎮""#),
        "raw unicode changed on the way: {text}"
    );
    // Escaped text arrives as the same string (escaped or not).
    let v: Value = serde_json::from_str(&text).expect("JSON");
    let data = &v[sp.session()];
    assert_eq!(data["raw"], raw);
    assert_eq!(data["escaped"], raw);
    assert_eq!(data["others"], "q\"b\\s/n\nt\tr\r\u{0}\u{1f}");
    assert_eq!(data["ключ"], "值");
    assert_eq!(data["e\u{301}"], "é");
    let expected: Value = serde_json::from_str(session).unwrap();
    sessionserver_tests::assert_same(data, &expected, "sessionData with unicode");
    let expected_player: Value = serde_json::from_str(player).unwrap();
    sessionserver_tests::assert_same(&v[sp.player()], &expected_player, "playerData with unicode");

    // Escaped and raw playerData are the same structure, and arrive as the same strings.
    let v = b.expect("playerJoin").await;
    assert_eq!(v["playerID"], pa, "{v}");
    sessionserver_tests::assert_same(&v[sp.player()], &expected_player, "a's playerJoin");
    a.expect("playerJoin").await;
    b.send_json(&cmd::update_player_raw(
        sp,
        r#"{"name":"\u0068\u00e9llo \uD83C\uDFAE","tag":"🎮"}"#,
    ))
    .await;
    for c in [&mut b, &mut a] {
        let v = c.recv().await;
        assert_eq!(v["command"], "playerUpdate", "{v}");
        assert_eq!(v["error"], 0, "{v}");
        sessionserver_tests::assert_same(
            &v[sp.player()],
            &json!({"name": "héllo 🎮", "tag": "🎮"}),
            "escaped playerData",
        );
    }
    a.expect_nothing_pending().await;
    t.shutdown().await;
}

async fn escaped_keys_are_the_same_keys(sp: Spelling) {
    let t = Target::start().await;
    let mut a = t.connect("a").await;
    a.send_json(&cmd::create_raw(sp, "{}", r#"{"kéy":{"🎮":1}}"#))
        .await;
    let pa = a.expect("sessionJoin").await["playerID"].as_u64().unwrap();
    // The same keys, escaped: the structure matches.
    a.send_json(&cmd::update_player_raw(
        sp,
        r#"{"k\u00e9y":{"\ud83c\udfae":2}}"#,
    ))
    .await;
    let v = a.expect("playerUpdate").await;
    assert_eq!(v["playerID"], pa);
    sessionserver_tests::assert_same(&v[sp.player()], &json!({"kéy": {"🎮": 2}}), "escaped keys");
    // A key that only looks alike (e + combining accent) is another key.
    a.send_json(&cmd::update_player_raw(sp, r#"{"ke\u0301y":{"🎮":3}}"#))
        .await;
    a.expect_error("playerUpdate", 4).await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_command_names_and_fields_are_the_same_names() {
    let t = Target::start().await;
    let mut a = t.connect("a").await;
    // "createSession" and "session" with escapes are the same names.
    a.send_json(r#"{"\u0063ommand":"create\u0053ession","sess\u0069on":{"x":1},"player":{}}"#)
        .await;
    let v = a.expect("sessionJoin").await;
    sessionserver_tests::assert_same(
        &v["session"],
        &json!({"x": 1}),
        "sessionData via escaped names",
    );
    a.send_json(r#"{"command":"leave\u0053ession"}"#).await;
    a.expect_frame(&sessionserver_tests::frames::session_leave())
        .await;
    a.send_json(r#"{"command":"leave\u0053ession"}"#).await;
    a.expect_error("sessionLeave", 2).await;
    t.shutdown().await;
}
