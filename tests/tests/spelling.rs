//! Both spellings of the data fields are accepted; a session answers in the spelling its
//! creator used in createSession, to every member, whatever spelling a member writes.

use sessionserver_tests::{cmd, frames, json, spelling_tests, Room, Spelling, Target};

spelling_tests!(
    members_writing_the_other_spelling_get_the_creators,
    sessions_of_both_spellings_side_by_side,
);

async fn members_writing_the_other_spelling_get_the_creators(sp: Spelling) {
    let t = Target::start().await;
    let mut room = Room::open(&t, sp, 3, &json!({"s": 1}), &json!({"name": ""})).await;
    // updatePlayer in the other spelling: playerUpdate in the creator's, to all.
    room.update_player(1, sp.other(), &json!({"name": "other"}))
        .await;
    room.update_player(2, sp, &json!({"name": "same"})).await;
    // updateSession in the other spelling, and in a mix of both.
    room.update_session(
        2,
        sp.other(),
        &json!({"s": 2}),
        &json!({"name": "", "hp": 1}),
    )
    .await;
    room.client(0)
        .send_json(&format!(
            r#"{{"command":"updateSession","{}":{{"s":3}},"{}":{{"hp":2}}}}"#,
            sp.other().session(),
            sp.player()
        ))
        .await;
    room.expect_all(&frames::session_update(
        sp,
        &json!({"s": 3}),
        &json!({"hp": 2}),
    ))
    .await;
    room.session = json!({"s": 3});
    room.default_player = json!({"hp": 2});
    for m in &mut room.members {
        m.data = json!({"hp": 2});
    }
    room.update_player(0, sp.other(), &json!({"hp": 5})).await;
    // A joiner is answered in the creator's spelling too (joinSession has no data fields).
    room.add(&t, "late").await;
    room.expect_quiet().await;
    t.shutdown().await;
}

async fn sessions_of_both_spellings_side_by_side(sp: Spelling) {
    let t = Target::start().await;
    if !t.relay_only_or_skip("sessions_of_both_spellings_side_by_side") {
        return;
    }
    let mut a = t.connect("a").await;
    let mut b = t.connect("b").await;
    let mut walker = t.connect("walker").await;
    let (sa, pa) = a.create(sp, &json!({"in": "a"}), &json!({"v": 0})).await;
    let (sb, pb) = b
        .create(sp.other(), &json!({"in": "b"}), &json!({"v": 0}))
        .await;

    // One connection walks from one session to the other, always writing `sp`: it is answered
    // in each session's spelling, not its own.
    let pw = walker
        .join(
            sp,
            sa,
            &json!({"in": "a"}),
            &json!({"v": 0}),
            &[(pa, json!({"v": 0}))],
        )
        .await;
    a.expect_frame(&frames::player_join(sp, pw, &json!({"v": 0})))
        .await;
    walker
        .send_json(&cmd::update_player(sp, &json!({"v": 1})))
        .await;
    walker
        .expect_frame(&frames::player_update(sp, pw, &json!({"v": 1})))
        .await;
    a.expect_frame(&frames::player_update(sp, pw, &json!({"v": 1})))
        .await;
    walker.send_json(&cmd::leave()).await;
    walker.expect_frame(&frames::session_leave()).await;
    a.expect_frame(&frames::player_leave(pw)).await;

    let o = sp.other();
    walker
        .join(
            o,
            sb,
            &json!({"in": "b"}),
            &json!({"v": 0}),
            &[(pb, json!({"v": 0}))],
        )
        .await;
    b.expect_frame(&frames::player_join(o, pw, &json!({"v": 0})))
        .await;
    walker
        .send_json(&cmd::update_player(sp, &json!({"v": 2})))
        .await;
    walker
        .expect_frame(&frames::player_update(o, pw, &json!({"v": 2})))
        .await;
    b.expect_frame(&frames::player_update(o, pw, &json!({"v": 2})))
        .await;
    walker
        .send_json(&cmd::update_session(
            sp,
            &json!({"in": "b2"}),
            &json!({"w": 0}),
        ))
        .await;
    walker
        .expect_frame(&frames::session_update(
            o,
            &json!({"in": "b2"}),
            &json!({"w": 0}),
        ))
        .await;
    b.expect_frame(&frames::session_update(
        o,
        &json!({"in": "b2"}),
        &json!({"w": 0}),
    ))
    .await;

    for c in [&mut a, &mut b, &mut walker] {
        c.expect_nothing_pending().await;
    }
    t.shutdown().await;
}
