//! joinSession: sessionJoin, then the members' current data in join order; the members hear of
//! the newcomer; -1 is the latest session; errors 5, 6 and 7.

use sessionserver_tests::{cmd, frames, json, spelling_tests, Room, Spelling, Target};

spelling_tests!(
    joiner_gets_members_current_data_in_join_order,
    join_latest_is_most_recent_existing_session,
    join_while_in_session_is_error_5,
);

async fn joiner_gets_members_current_data_in_join_order(sp: Spelling) {
    let t = Target::start().await;
    let session = json!({"mode": "ctf", "limits": {"score": 3}});
    let player = json!({"name": "__unset__", "team": 0});
    let mut room = Room::open(&t, sp, 4, &session, &player).await;
    // p2 and p0 change their data (in that order); p1 and p3 keep the default.
    room.update_player(2, sp, &json!({"name": "NowYouSeeMe", "team": 1}))
        .await;
    room.update_player(0, sp, &json!({"team": 2, "name": "CloudOfDust"}))
        .await;
    // p1 leaves: the order of the others stays the join order.
    room.leave(1).await;

    let mut joiner = t.connect("joiner").await;
    joiner.send_json(&cmd::join_id(room.id)).await;
    let reply = joiner.expect("sessionJoin").await;
    let joiner_id = reply["playerID"].as_u64().expect("an unsigned playerID");
    sessionserver_tests::assert_same(
        &reply,
        &frames::session_join(sp, room.id, joiner_id, &session, &player),
        "sessionJoin of a joiner (player = the default playerData)",
    );
    for m in &room.members {
        joiner
            .expect_frame(&frames::player_join(sp, m.id, &m.data))
            .await;
    }
    joiner.expect_nothing_pending().await;
    // Every member hears of the newcomer, with the default data.
    room.expect_all(&frames::player_join(sp, joiner_id, &player))
        .await;
    room.expect_quiet().await;
    assert!(
        room.members.iter().all(|m| m.id != joiner_id),
        "the joiner has a playerID of its own"
    );
    t.shutdown().await;
}

async fn join_latest_is_most_recent_existing_session(sp: Spelling) {
    let t = Target::start().await;
    if !t.private_or_skip("join_latest_is_most_recent_existing_session") {
        return;
    }
    let mut a = t.connect("a").await;
    let mut b = t.connect("b").await;
    let (sa, pa) = a.create(sp, &json!({"who": "a"}), &json!({"x": 0})).await;
    let (sb, pb) = b.create(sp, &json!({"who": "b"}), &json!({"y": 0})).await;

    // The latest is b's.
    let mut c = t.connect("c").await;
    c.send_json(&cmd::join(-1)).await;
    let reply = c.expect("sessionJoin").await;
    let pc = reply["playerID"].as_u64().unwrap();
    sessionserver_tests::assert_same(
        &reply,
        &frames::session_join(sp, sb, pc, &json!({"who": "b"}), &json!({"y": 0})),
        "joinSession -1 joins the most recently created session",
    );
    c.expect_frame(&frames::player_join(sp, pb, &json!({"y": 0})))
        .await;
    b.expect_frame(&frames::player_join(sp, pc, &json!({"y": 0})))
        .await;

    // Joining does not make a session the latest; only creating does.
    let mut d = t.connect("d").await;
    d.join(
        sp,
        sa,
        &json!({"who": "a"}),
        &json!({"x": 0}),
        &[(pa, json!({"x": 0}))],
    )
    .await;
    let mut e = t.connect("e").await;
    e.send_json(&cmd::join(-1)).await;
    let reply = e.expect("sessionJoin").await;
    assert_eq!(
        reply["sessionID"], sb,
        "joining a's session made it the latest: {reply}"
    );
    let pe = reply["playerID"].as_u64().unwrap();
    e.expect_frame(&frames::player_join(sp, pb, &json!({"y": 0})))
        .await;
    e.expect_frame(&frames::player_join(sp, pc, &json!({"y": 0})))
        .await;
    for m in [&mut b, &mut c] {
        m.expect_frame(&frames::player_join(sp, pe, &json!({"y": 0})))
            .await;
    }
    e.send_json(&cmd::leave()).await;
    e.expect_frame(&frames::session_leave()).await;
    for m in [&mut b, &mut c] {
        m.expect_frame(&frames::player_leave(pe)).await;
    }

    // b's session is destroyed once b and c have left; -1 then finds a's, which still exists.
    b.send_json(&cmd::leave()).await;
    b.expect_frame(&frames::session_leave()).await;
    c.expect_frame(&frames::player_leave(pb)).await;
    c.send_json(&cmd::leave()).await;
    c.expect_frame(&frames::session_leave()).await;
    let mut f = t.connect("f").await;
    f.send_json(&cmd::join(-1)).await;
    let reply = f.expect("sessionJoin").await;
    assert_eq!(
        reply["sessionID"], sa,
        "joinSession -1 after the latest was destroyed: {reply}"
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_latest_with_no_session_is_error_6() {
    let t = Target::start().await;
    if !t.private_or_skip("join_latest_with_no_session_is_error_6") {
        return;
    }
    let mut a = t.connect("a").await;
    a.send_json(&cmd::join(-1)).await;
    a.expect_error("sessionJoin", 6).await;
    // Once every session is gone again, 6 again.
    let mut b = t.connect("b").await;
    b.create(Spelling::Short, &json!({}), &json!({})).await;
    b.send_json(&cmd::leave()).await;
    b.expect_frame(&frames::session_leave()).await;
    a.send_json(&cmd::join(-1)).await;
    a.expect_error("sessionJoin", 6).await;
    // The failed joins left a in no session: it can create.
    a.create(Spelling::Long, &json!({}), &json!({})).await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_unknown_session_is_error_7() {
    let t = Target::start().await;
    // (On the direct path these IDs are other sessions' (34), or have no URL (404): direct.rs.)
    if !t.relay_only_or_skip("join_unknown_session_is_error_7") {
        return;
    }
    let mut owner = t.connect("owner").await;
    let (sid, owner_id) = owner.create(Spelling::Short, &json!({}), &json!({})).await;
    let mut a = t.connect("a").await;
    let unknown = [
        // No session has been created with these IDs (yet).
        format!("{}", sid + 1_000_000),
        // Negative IDs other than -1.
        "-2".to_owned(),
        "-100".to_owned(),
        // IDs too large for any session.
        "9007199254740992".to_owned(),
        "18446744073709551615".to_owned(),
        "18446744073709551616".to_owned(),
        "123456789012345678901234567890".to_owned(),
        "-123456789012345678901234567890".to_owned(),
    ];
    for id in &unknown {
        a.send_json(&format!(r#"{{"command":"joinSession","sessionID":{id}}}"#))
            .await;
        a.expect_error("sessionJoin", 7).await;
    }
    // None of that joined anything: a can still join a real session.
    let pa = a
        .join(
            Spelling::Short,
            sid,
            &json!({}),
            &json!({}),
            &[(owner_id, json!({}))],
        )
        .await;
    owner
        .expect_frame(&frames::player_join(Spelling::Short, pa, &json!({})))
        .await;
    t.shutdown().await;
}

async fn join_while_in_session_is_error_5(sp: Spelling) {
    let t = Target::start().await;
    let mut a = t.connect("a").await;
    let mut b = t.connect("b").await;
    let (sa, pa) = a.create(sp, &json!({"a": 1}), &json!({"v": 0})).await;
    let (sb, pb) = b.create(sp, &json!({"b": 1}), &json!({"v": 0})).await;
    // Another session, its own session, -1, an unknown ID: all 5 while in a session.
    for id in [sb as i64, sa as i64, -1, 1 << 40] {
        a.send_json(&cmd::join(id)).await;
        a.expect_error("sessionJoin", 5).await;
    }
    b.expect_nothing_pending().await;
    // a is still in its session and only there.
    a.send_json(&cmd::update_player(sp, &json!({"v": 1}))).await;
    a.expect_frame(&frames::player_update(sp, pa, &json!({"v": 1})))
        .await;
    b.send_json(&cmd::update_player(sp, &json!({"v": 2}))).await;
    b.expect_frame(&frames::player_update(sp, pb, &json!({"v": 2})))
        .await;
    a.expect_nothing_pending().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroyed_session_cannot_be_joined() {
    let t = Target::start().await;
    let mut a = t.connect("a").await;
    let mut b = t.connect("b").await;
    let (sid, pa) = a.create(Spelling::Long, &json!({}), &json!({})).await;
    let pb = b
        .join(
            Spelling::Long,
            sid,
            &json!({}),
            &json!({}),
            &[(pa, json!({}))],
        )
        .await;
    a.expect_frame(&frames::player_join(Spelling::Long, pb, &json!({})))
        .await;
    a.send_json(&cmd::leave()).await;
    a.expect_frame(&frames::session_leave()).await;
    b.expect_frame(&frames::player_leave(pa)).await;
    b.send_json(&cmd::leave()).await;
    b.expect_frame(&frames::session_leave()).await;
    // Empty: destroyed at once, for everyone, its ID is never used again.
    for c in [&mut a, &mut b] {
        c.send_json(&cmd::join_id(sid)).await;
        c.expect_error("sessionJoin", 7).await;
    }
    let mut c = if t.is_direct() {
        // On the direct path the ID of a session that is gone has no URL: refused with 404.
        let refused = t.try_connect_to_session("c", sid).await.err();
        assert_eq!(refused, Some(404), "the upgrade to a destroyed session");
        t.connect("c").await
    } else {
        let mut c = t.connect("c").await;
        c.send_json(&cmd::join_id(sid)).await;
        c.expect_error("sessionJoin", 7).await;
        c
    };
    let (new_sid, _) = c.create(Spelling::Long, &json!({}), &json!({})).await;
    t.assert_new_id("session", &[sid], new_sid);
    t.shutdown().await;
}
