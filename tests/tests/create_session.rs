//! createSession: the creator gets `sessionJoin` with the default playerData; error 4 while in
//! a session; missing data is `{}`.

use sessionserver_tests::{cmd, frames, json, spelling_tests, Spelling, Target};

spelling_tests!(
    creator_gets_session_join_with_default_player_data,
    missing_player_data_is_empty_object,
    missing_session_data_is_empty_object,
    create_while_in_session_is_error_4_and_creates_nothing,
    create_after_leaving_makes_a_new_session,
);

async fn creator_gets_session_join_with_default_player_data(sp: Spelling) {
    let t = Target::start().await;
    let mut a = t.connect("a").await;
    let session = json!({"endTimeInMS": 1262304000, "map": {"name": "dust", "size": [3, 4]}});
    let player = json!({"name": "__unset__", "pos": {"x": 0, "y": 0}});
    a.send_json(&cmd::create(sp, &session, &player)).await;
    let reply = a.expect("sessionJoin").await;
    let session_id = reply["sessionID"].as_u64().expect("an unsigned sessionID");
    let player_id = reply["playerID"].as_u64().expect("an unsigned playerID");
    // Field order, spelling and data: exactly the protocol's frame.
    sessionserver_tests::assert_same(
        &reply,
        &frames::session_join(sp, session_id, player_id, &session, &player),
        "sessionJoin after createSession",
    );
    a.expect_nothing_pending().await;
    t.shutdown().await;
}

async fn missing_player_data_is_empty_object(sp: Spelling) {
    let t = Target::start().await;
    let mut a = t.connect("a").await;
    let session = json!({"round": 1});
    a.send_json(&format!(
        r#"{{"command":"createSession","{}":{{"round":1}}}}"#,
        sp.session()
    ))
    .await;
    let reply = a.expect("sessionJoin").await;
    let (sid, pid) = (
        reply["sessionID"].as_u64().unwrap(),
        reply["playerID"].as_u64().unwrap(),
    );
    sessionserver_tests::assert_same(
        &reply,
        &frames::session_join(sp, sid, pid, &session, &json!({})),
        "createSession without playerData",
    );
    // The default is {}: only {} matches it.
    a.send_json(&cmd::update_player(sp, &json!({}))).await;
    a.expect_frame(&frames::player_update(sp, pid, &json!({})))
        .await;
    a.send_json(&cmd::update_player(sp, &json!({"name": "x"})))
        .await;
    a.expect_error("playerUpdate", 4).await;
    t.shutdown().await;
}

async fn missing_session_data_is_empty_object(sp: Spelling) {
    let t = Target::start().await;
    let mut a = t.connect("a").await;
    let player = json!({"name": "n"});
    a.send_json(&format!(
        r#"{{"command":"createSession","{}":{{"name":"n"}}}}"#,
        sp.player()
    ))
    .await;
    let reply = a.expect("sessionJoin").await;
    let (sid, pid) = (
        reply["sessionID"].as_u64().unwrap(),
        reply["playerID"].as_u64().unwrap(),
    );
    // The spelling is the one the creator used, here only in the playerData field.
    sessionserver_tests::assert_same(
        &reply,
        &frames::session_join(sp, sid, pid, &json!({}), &player),
        "createSession without sessionData",
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_without_any_data_has_empty_objects_in_short_spelling() {
    let t = Target::start().await;
    let mut a = t.connect("a").await;
    a.send_json(r#"{"command":"createSession"}"#).await;
    let reply = a.expect("sessionJoin").await;
    let (sid, pid) = (
        reply["sessionID"].as_u64().unwrap(),
        reply["playerID"].as_u64().unwrap(),
    );
    sessionserver_tests::assert_same(
        &reply,
        &frames::session_join(Spelling::Short, sid, pid, &json!({}), &json!({})),
        "createSession without data (the original code's spelling is the default)",
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_ignored() {
    let t = Target::start().await;
    let mut a = t.connect("a").await;
    a.send_json(r#"{"extra":[1,{"x":2}],"command":"createSession","session":{"a":1},"player":{"b":2},"more":null}"#)
        .await;
    let reply = a.expect("sessionJoin").await;
    let (sid, pid) = (
        reply["sessionID"].as_u64().unwrap(),
        reply["playerID"].as_u64().unwrap(),
    );
    sessionserver_tests::assert_same(
        &reply,
        &frames::session_join(
            Spelling::Short,
            sid,
            pid,
            &json!({"a": 1}),
            &json!({"b": 2}),
        ),
        "createSession with unknown fields",
    );
    a.send_json(r#"{"command":"leaveSession","sessionID":"whatever"}"#)
        .await;
    a.expect_frame(&frames::session_leave()).await;
    t.shutdown().await;
}

async fn create_while_in_session_is_error_4_and_creates_nothing(sp: Spelling) {
    let t = Target::start().await;
    let mut a = t.connect("a").await;
    let session = json!({"s": 1});
    let player = json!({"p": 1});
    let (sid, a_id) = a.create(sp, &session, &player).await;

    // Either spelling, other data: the same error, exactly {"command":"sessionJoin","error":4}.
    a.send_json(&cmd::create(sp, &json!({"other": true}), &json!({"q": 2})))
        .await;
    a.expect_error("sessionJoin", 4).await;
    a.send_json(&cmd::create(sp.other(), &json!({}), &json!({})))
        .await;
    a.expect_error("sessionJoin", 4).await;
    a.send_json(r#"{"command":"createSession"}"#).await;
    a.expect_error("sessionJoin", 4).await;

    // a is still in its session, which is unchanged: a joiner sees the original data and a.
    let mut b = t.connect("b").await;
    let b_id = b
        .join(sp, sid, &session, &player, &[(a_id, player.clone())])
        .await;
    a.expect_frame(&frames::player_join(sp, b_id, &player))
        .await;

    // And no other session was created: the latest session is still a's.
    if t.private_or_skip("create_while_in_session (joinSession -1 part)") {
        let mut c = t.connect("c").await;
        c.send_json(&cmd::join(-1)).await;
        let reply = c.expect("sessionJoin").await;
        assert_eq!(
            reply["sessionID"], sid,
            "joinSession -1 found another session: {reply}"
        );
    }
    t.shutdown().await;
}

async fn create_after_leaving_makes_a_new_session(sp: Spelling) {
    let t = Target::start().await;
    if !t.relay_only_or_skip("create_after_leaving_makes_a_new_session") {
        return;
    }
    let mut a = t.connect("a").await;
    let (first, a_id) = a.create(sp, &json!({"n": 1}), &json!({"v": 1})).await;
    a.send_json(&cmd::leave()).await;
    a.expect_frame(&frames::session_leave()).await;
    // The other spelling this time: the new session answers in it.
    let (second, a_id2) = a
        .create(sp.other(), &json!({"n": 2}), &json!({"w": 2}))
        .await;
    assert_eq!(a_id, a_id2, "a connection's playerID never changes");
    t.assert_new_id("session", &[first], second);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_creators_get_distinct_sessions() {
    let t = Target::start().await;
    let mut a = t.connect("a").await;
    let mut b = t.connect("b").await;
    let (sa, pa) = a
        .create(Spelling::Short, &json!({"who": "a"}), &json!({}))
        .await;
    let (sb, pb) = b
        .create(Spelling::Long, &json!({"who": "b"}), &json!({}))
        .await;
    t.assert_new_id("session", &[sa], sb);
    assert_ne!(pa, pb, "two connections, two playerIDs");
    // Neither hears of the other.
    a.send_json(&cmd::update_player(Spelling::Short, &json!({})))
        .await;
    a.expect_frame(&frames::player_update(Spelling::Short, pa, &json!({})))
        .await;
    b.expect_nothing_pending().await;
    a.expect_nothing_pending().await;
    t.shutdown().await;
}
