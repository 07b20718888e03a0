//! leaveSession: the leaver gets sessionLeave, the others playerLeave; the leaver hears no more
//! of the session; an empty session is destroyed at once; error 2 outside a session.

use sessionserver_tests::{cmd, frames, json, spelling_tests, Room, Spelling, Target};

spelling_tests!(
    leaver_gets_session_leave_and_others_player_leave,
    leaver_can_rejoin_and_sees_current_data,
    creator_leaving_does_not_end_the_session,
);

async fn leaver_gets_session_leave_and_others_player_leave(sp: Spelling) {
    let t = Target::start().await;
    let mut room = Room::open(&t, sp, 4, &json!({"s": 0}), &json!({"v": 0})).await;
    let mut left = room.leave(1).await;
    left.client.expect_nothing_pending().await;
    // The leaver hears nothing of what happens in the session now.
    room.update_player(0, sp, &json!({"v": 1})).await;
    room.update_session(2, sp, &json!({"s": 1}), &json!({"v": 2}))
        .await;
    left.client.expect_nothing_pending().await;
    room.expect_quiet().await;
    t.shutdown().await;
}

async fn leaver_can_rejoin_and_sees_current_data(sp: Spelling) {
    let t = Target::start().await;
    let mut room = Room::open(&t, sp, 3, &json!({"s": 0}), &json!({"v": 0})).await;
    room.update_player(0, sp, &json!({"v": 10})).await;
    room.update_player(1, sp, &json!({"v": 11})).await;
    let left = room.leave(1).await;
    let old_id = left.id;
    // (p2 is member 1 now.)
    room.update_player(1, sp, &json!({"v": 12})).await;
    // Rejoining: the same playerID, the default data, the others' current data in join order.
    let index = room.add_client(left.client).await;
    assert_eq!(
        room.pid(index),
        old_id,
        "a connection's playerID never changes"
    );
    room.expect_quiet().await;
    t.shutdown().await;
}

async fn creator_leaving_does_not_end_the_session(sp: Spelling) {
    let t = Target::start().await;
    let mut room = Room::open(&t, sp, 3, &json!({"s": 0}), &json!({"v": 0})).await;
    room.leave(0).await;
    room.update_player(0, sp, &json!({"v": 1})).await;
    room.add(&t, "late").await;
    room.expect_quiet().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_outside_a_session_is_error_2() {
    let t = Target::start().await;
    let mut a = t.connect("a").await;
    a.send_json(&cmd::leave()).await;
    a.expect_error("sessionLeave", 2).await;
    a.create(Spelling::Long, &json!({}), &json!({})).await;
    a.send_json(&cmd::leave()).await;
    a.expect_frame(&frames::session_leave()).await;
    // Leaving twice: the second is an error.
    a.send_json(&cmd::leave()).await;
    a.expect_error("sessionLeave", 2).await;
    a.expect_nothing_pending().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_leaver_destroys_the_session_at_once() {
    let t = Target::start().await;
    let sp = Spelling::Short;
    let mut room = Room::open(&t, sp, 3, &json!({}), &json!({})).await;
    let sid = room.id;
    let mut gone = Vec::new();
    while !room.members.is_empty() {
        gone.push(room.leave(0).await.client);
    }
    // Destroyed as soon as the last sessionLeave was sent: its ID is unknown to everyone.
    for c in &mut gone {
        c.send_json(&cmd::join_id(sid)).await;
        c.expect_error("sessionJoin", 7).await;
    }
    if t.is_direct() {
        // On the direct path the ID of a session that is gone has no URL: refused with 404.
        let refused = t.try_connect_to_session("fresh", sid).await.err();
        assert_eq!(refused, Some(404), "the upgrade to a destroyed session");
        t.shutdown().await;
        return;
    }
    let mut fresh = t.connect("fresh").await;
    fresh.send_json(&cmd::join_id(sid)).await;
    fresh.expect_error("sessionJoin", 7).await;
    if t.private_or_skip("last_leaver_destroys_the_session_at_once (joinSession -1 part)") {
        fresh.send_json(&cmd::join(-1)).await;
        fresh.expect_error("sessionJoin", 6).await;
    }
    t.shutdown().await;
}
