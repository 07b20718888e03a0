//! Commands sent back to back, without waiting for any reply, are answered in the order sent,
//! also across createSession, joinSession and leaveSession, whose answers the server has to
//! wait for before it takes the next command (on the edge host: a Durable Object's answer
//! over the network, while the client's frames keep arriving).

use sessionserver_tests::{cmd, frames, json, spelling_tests, Spelling, Target, SENTINEL};

spelling_tests!(
    a_burst_across_create_and_leave_is_answered_in_order,
    a_burst_across_join_and_leave_is_answered_in_order,
);

async fn a_burst_across_create_and_leave_is_answered_in_order(sp: Spelling) {
    let t = Target::start().await;
    if !t.relay_only_or_skip("a_burst_across_create_and_leave_is_answered_in_order") {
        return;
    }
    let mut a = t.connect("a").await;
    let (first, second) = (
        (json!({"s": 0}), json!({"v": 0})),
        (json!({"s": 1}), json!({"w": 0})),
    );
    for frame in [
        cmd::create(sp, &first.0, &first.1),
        cmd::update_player(sp, &json!({"v": 1})),
        "not json".to_owned(),
        cmd::leave(),
        cmd::update_player(sp, &json!({"v": 2})),
        cmd::create(sp, &second.0, &second.1),
        cmd::update_player(sp, &json!({"w": 3})),
        cmd::leave(),
        SENTINEL.to_owned(),
    ] {
        a.send_json(&frame).await;
    }
    let join = a.expect("sessionJoin").await;
    let (session, player) = (
        join["sessionID"].as_u64().unwrap(),
        join["playerID"].as_u64().unwrap(),
    );
    a.expect_frame(&frames::player_update(sp, player, &json!({"v": 1})))
        .await;
    // A frame that is no command, answered by the session's host in its place among the
    // session's replies.
    a.expect_error_message("error", 9).await;
    a.expect_frame(&frames::session_leave()).await;
    // In the lobby again: error 2.
    a.expect_error("playerUpdate", 2).await;
    let join = a.expect("sessionJoin").await;
    assert_ne!(
        join["sessionID"].as_u64(),
        Some(session),
        "a new session: {join}"
    );
    assert_eq!(
        join["playerID"].as_u64(),
        Some(player),
        "the same player: {join}"
    );
    a.expect_frame(&frames::player_update(sp, player, &json!({"w": 3})))
        .await;
    a.expect_frame(&frames::session_leave()).await;
    a.expect_error_message("error", 12).await;
    a.expect_nothing_pending().await;
    a.close().await;
    t.shutdown().await;
}

async fn a_burst_across_join_and_leave_is_answered_in_order(sp: Spelling) {
    let t = Target::start().await;
    let mut host = t.connect("host").await;
    let (session_data, default) = (json!({"s": 0}), json!({"v": 0}));
    let (session, host_id) = host.create(sp, &session_data, &default).await;
    let mut b = t.connect_to_session("b", session).await;
    b.send_binary(b"\x01").await;
    for frame in [
        cmd::join_id(session),
        cmd::update_player(sp, &json!({"v": 4})),
        cmd::join_id(session),
        cmd::leave(),
        cmd::join_id(session),
        cmd::update_player(sp, &json!({"v": 5})),
        cmd::leave(),
        SENTINEL.to_owned(),
    ] {
        b.send_json(&frame).await;
    }
    b.send_binary(b"\x02").await;
    // The binary frame's error 14 came before the join.
    b.expect_error_message("error", 14).await;
    let join = b.expect("sessionJoin").await;
    let b_id = join["playerID"].as_u64().unwrap();
    let welcome = frames::session_join(sp, session, b_id, &session_data, &default);
    sessionserver_tests::assert_same(&join, &welcome, "b's first sessionJoin");
    b.expect_frame(&frames::player_join(sp, host_id, &default))
        .await;
    b.expect_frame(&frames::player_update(sp, b_id, &json!({"v": 4})))
        .await;
    b.expect_error("sessionJoin", 5).await;
    b.expect_frame(&frames::session_leave()).await;
    b.expect_frame(&welcome).await;
    b.expect_frame(&frames::player_join(sp, host_id, &default))
        .await;
    b.expect_frame(&frames::player_update(sp, b_id, &json!({"v": 5})))
        .await;
    b.expect_frame(&frames::session_leave()).await;
    b.expect_error_message("error", 12).await;
    b.expect_error_message("error", 14).await;
    b.expect_nothing_pending().await;
    // The host saw the same story, in the same order.
    for expected in [
        frames::player_join(sp, b_id, &default),
        frames::player_update(sp, b_id, &json!({"v": 4})),
        frames::player_leave(b_id),
        frames::player_join(sp, b_id, &default),
        frames::player_update(sp, b_id, &json!({"v": 5})),
        frames::player_leave(b_id),
    ] {
        host.expect_frame(&expected).await;
    }
    host.expect_nothing_pending().await;
    b.close().await;
    host.close().await;
    t.shutdown().await;
}
