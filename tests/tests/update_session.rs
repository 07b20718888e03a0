//! updateSession: replaces sessionData and the default playerData (any structure), resets every
//! member's playerData to the new default; every member, the sender included, gets one
//! sessionUpdate and no playerUpdate follows.

use sessionserver_tests::{cmd, frames, json, spelling_tests, Room, Spelling, Target};

spelling_tests!(
    update_session_is_broadcast_and_resets_player_data,
    new_structure_applies_to_later_player_updates,
    missing_data_in_update_session_is_empty_object,
);

async fn update_session_is_broadcast_and_resets_player_data(sp: Spelling) {
    let t = Target::start().await;
    let player = json!({"name": "__unset__", "ready": false});
    let mut room = Room::open(&t, sp, 3, &json!({"round": 1}), &player).await;
    room.update_player(0, sp, &json!({"name": "zero", "ready": true}))
        .await;
    room.update_player(2, sp, &json!({"name": "two", "ready": true}))
        .await;

    // A member who is not the creator updates; the same structure still resets everyone.
    room.update_session(1, sp, &json!({"round": 2}), &player)
        .await;
    // No playerUpdate follows the sessionUpdate, to anyone.
    room.expect_quiet().await;
    // A newcomer sees every member at the new default.
    room.add(&t, "late").await;
    room.expect_quiet().await;
    t.shutdown().await;
}

async fn new_structure_applies_to_later_player_updates(sp: Spelling) {
    let t = Target::start().await;
    let old = json!({"name": "", "hp": 100});
    let mut room = Room::open(&t, sp, 3, &json!({"phase": "lobby"}), &old).await;
    room.update_player(1, sp, &json!({"name": "one", "hp": 80}))
        .await;

    // Any structure: deeper sessionData, other player keys.
    let session = json!({"phase": "match", "board": {"w": 8, "h": 8, "cells": [[0, 1], [1, 0]]}});
    let new = json!({"seat": {"row": 0, "col": 0}, "color": "none"});
    room.update_session(2, sp, &session, &new).await;
    room.expect_quiet().await;

    // The old structure is now a mismatch; the new one is accepted.
    room.client(1)
        .send_json(&cmd::update_player(sp, &json!({"name": "one", "hp": 70})))
        .await;
    room.client(1).expect_error("playerUpdate", 4).await;
    room.update_player(
        1,
        sp,
        &json!({"color": "red", "seat": {"col": 3, "row": 2}}),
    )
    .await;

    // Back to an empty default: only {} is accepted.
    room.update_session(0, sp, &json!({}), &json!({})).await;
    room.client(2)
        .send_json(&cmd::update_player(
            sp,
            &json!({"color": "red", "seat": {"col": 3, "row": 2}}),
        ))
        .await;
    room.client(2).expect_error("playerUpdate", 4).await;
    room.update_player(2, sp, &json!({})).await;
    room.expect_quiet().await;
    t.shutdown().await;
}

async fn missing_data_in_update_session_is_empty_object(sp: Spelling) {
    let t = Target::start().await;
    let mut room = Room::open(&t, sp, 2, &json!({"a": 1}), &json!({"b": 2})).await;

    room.client(1)
        .send_json(r#"{"command":"updateSession"}"#)
        .await;
    room.expect_all(&frames::session_update(sp, &json!({}), &json!({})))
        .await;

    room.client(0)
        .send_json(&format!(
            r#"{{"command":"updateSession","{}":{{"c":3}}}}"#,
            sp.session()
        ))
        .await;
    room.expect_all(&frames::session_update(sp, &json!({"c": 3}), &json!({})))
        .await;

    room.client(1)
        .send_json(&format!(
            r#"{{"command":"updateSession","{}":{{"d":4}}}}"#,
            sp.player()
        ))
        .await;
    room.expect_all(&frames::session_update(sp, &json!({}), &json!({"d": 4})))
        .await;
    room.expect_quiet().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_session_outside_a_session_is_error_2() {
    let t = Target::start().await;
    let mut b = t.connect("b").await;
    let (sid, pb) = b
        .create(Spelling::Short, &json!({"keep": 1}), &json!({"k": 0}))
        .await;
    // (On the direct path, a socket that ends in b's session, which a joins below.)
    let mut a = t.connect_to_session("a", sid).await;
    for sp in Spelling::BOTH {
        a.send_json(&cmd::update_session(sp, &json!({"x": 1}), &json!({"y": 1})))
            .await;
        a.expect_error("sessionUpdate", 2).await;
    }
    a.send_json(r#"{"command":"updateSession"}"#).await;
    a.expect_error("sessionUpdate", 2).await;
    b.expect_nothing_pending().await;
    // After leaving a session too; and the session it left is not touched.
    let pa = a
        .join(
            Spelling::Short,
            sid,
            &json!({"keep": 1}),
            &json!({"k": 0}),
            &[(pb, json!({"k": 0}))],
        )
        .await;
    b.expect_frame(&frames::player_join(Spelling::Short, pa, &json!({"k": 0})))
        .await;
    a.send_json(&cmd::leave()).await;
    a.expect_frame(&frames::session_leave()).await;
    b.expect_frame(&frames::player_leave(pa)).await;
    a.send_json(&cmd::update_session(
        Spelling::Short,
        &json!({"x": 1}),
        &json!({}),
    ))
    .await;
    a.expect_error("sessionUpdate", 2).await;
    b.expect_nothing_pending().await;
    a.join(
        Spelling::Short,
        sid,
        &json!({"keep": 1}),
        &json!({"k": 0}),
        &[(pb, json!({"k": 0}))],
    )
    .await;
    t.shutdown().await;
}
