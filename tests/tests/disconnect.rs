//! A closed or dropped connection is a leave: the others get playerLeave, and the last one
//! out destroys the session.

use sessionserver_tests::{cmd, frames, json, spelling_tests, Room, Spelling, Target};

spelling_tests!(closed_connection_is_a_leave, dropped_connection_is_a_leave);

async fn closed_connection_is_a_leave(sp: Spelling) {
    let t = Target::start().await;
    let mut room = Room::open(&t, sp, 3, &json!({"s": 1}), &json!({"v": 0})).await;
    room.update_player(1, sp, &json!({"v": 1})).await;
    // With a close handshake.
    room.disconnect(1).await;
    room.expect_quiet().await;
    // The session goes on without it; a newcomer does not see it.
    room.update_player(1, sp, &json!({"v": 2})).await;
    room.add(&t, "late").await;
    room.expect_quiet().await;
    t.shutdown().await;
}

async fn dropped_connection_is_a_leave(sp: Spelling) {
    let t = Target::start().await;
    let mut room = Room::open(&t, sp, 4, &json!({"s": 1}), &json!({"v": 0})).await;
    // Without a close handshake: the TCP connection just goes.
    let member = room.members.remove(2);
    let id = member.id;
    member.client.drop_connection();
    room.expect_all(&frames::player_leave(id)).await;
    room.expect_quiet().await;
    room.update_player(0, sp, &json!({"v": 3})).await;
    room.add(&t, "late").await;
    room.expect_quiet().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_after_leaving_is_not_a_second_leave() {
    let t = Target::start().await;
    let sp = Spelling::Short;
    let mut room = Room::open(&t, sp, 3, &json!({}), &json!({})).await;
    let left = room.leave(0).await;
    left.client.close().await;
    // The next frame the others get is the next event, not another playerLeave.
    room.update_player(0, sp, &json!({})).await;
    room.expect_quiet().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_outside_a_session_disturbs_nobody() {
    let t = Target::start().await;
    let sp = Spelling::Long;
    let mut room = Room::open(&t, sp, 2, &json!({}), &json!({})).await;
    let loner = t.connect("loner").await;
    loner.close().await;
    let dropped = t.connect("dropped").await;
    dropped.drop_connection();
    room.update_player(1, sp, &json!({})).await;
    room.expect_quiet().await;
    t.shutdown().await;
}

/// The last member's connection ends; then the session's ID must be unknown.
///
/// A disconnect and another connection's join are not ordered by the protocol: a join sent
/// just after the close may reach the server first. If it does, the joiner is let in and must
/// then see the last member's playerLeave (disconnect is a leave); the scenario is then run
/// again with a new session. A server that never destroys the session fails every round.
async fn last_disconnect_destroys_the_session(drop_without_close: bool) {
    let t = Target::start().await;
    let sp = Spelling::Short;
    for _round in 0..20 {
        let mut last = t.connect("last").await;
        let (sid, last_id) = last.create(sp, &json!({}), &json!({})).await;
        if drop_without_close {
            last.drop_connection();
        } else {
            last.close().await;
        }
        // On the direct path a session that is gone has no URL: the upgrade is refused (404).
        let mut probe = match t.try_connect_to_session("probe", sid).await {
            Ok(probe) => probe,
            Err(status) => {
                assert_eq!(status, 404, "the upgrade to a session that is gone");
                t.shutdown().await;
                return;
            }
        };
        probe.send_json(&cmd::join_id(sid)).await;
        let reply = probe.recv().await;
        if sessionserver_tests::same(&reply, &frames::error("sessionJoin", 7)) {
            if t.private_or_skip("last_disconnect_destroys_the_session (joinSession -1 part)") {
                probe.send_json(&cmd::join(-1)).await;
                probe.expect_error("sessionJoin", 6).await;
            }
            t.shutdown().await;
            return;
        }
        // The join came first.
        let probe_id = reply["playerID"].as_u64().unwrap_or(u64::MAX);
        sessionserver_tests::assert_same(
            &reply,
            &frames::session_join(sp, sid, probe_id, &json!({}), &json!({})),
            "a join racing the last member's disconnect gets either error 7 or the session",
        );
        probe
            .expect_frame(&frames::player_join(sp, last_id, &json!({})))
            .await;
        probe.expect_frame(&frames::player_leave(last_id)).await;
        probe.close().await;
    }
    panic!("in 20 rounds, a join after the last member disconnected never got error 7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_close_destroys_the_session() {
    last_disconnect_destroys_the_session(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_drop_destroys_the_session() {
    last_disconnect_destroys_the_session(true).await;
}
