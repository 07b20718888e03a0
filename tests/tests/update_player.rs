//! updatePlayer: accepted only with the key structure of the session's default playerData;
//! then every member, the sender included, gets playerUpdate. A mismatch is error 4 to the
//! sender alone and changes nothing.

use sessionserver_tests::{cmd, frames, json, spelling_tests, Room, Spelling, Target, Value};

spelling_tests!(
    update_is_broadcast_to_every_member,
    same_structure_in_any_key_order_and_value_types_is_accepted,
    structure_mismatch_is_error_4_to_sender_only,
    empty_default_accepts_only_empty_object,
);

fn default_player() -> Value {
    json!({"name": "__unset__", "score": 0, "pos": {"x": 0, "y": 0, "meta": {"floor": 1}}, "tags": []})
}

async fn update_is_broadcast_to_every_member(sp: Spelling) {
    let t = Target::start().await;
    let mut room = Room::open(&t, sp, 3, &json!({"map": "dust"}), &default_player()).await;
    for (who, n) in [(0, 1), (2, 2), (1, 3), (2, 4)] {
        let data = json!({"name": format!("p{who}"), "score": n, "pos": {"x": n, "y": -n, "meta": {"floor": n}}, "tags": ["a"]});
        room.update_player(who, sp, &data).await;
    }
    room.expect_quiet().await;
    // A newcomer sees everyone's latest data.
    room.add(&t, "late").await;
    room.expect_quiet().await;
    t.shutdown().await;
}

async fn same_structure_in_any_key_order_and_value_types_is_accepted(sp: Spelling) {
    let t = Target::start().await;
    let mut room = Room::open(&t, sp, 3, &json!({}), &default_player()).await;
    let accepted = [
        // Keys in another order, at every level; the data is forwarded in the order sent.
        json!({"tags": [], "pos": {"meta": {"floor": 2}, "y": 1, "x": 1}, "score": 5, "name": "n"}),
        // Non-object values of other types: numbers, strings, null, booleans, arrays.
        json!({"name": 7, "score": "high", "pos": {"x": null, "y": [1, {"z": 1}], "meta": {"floor": true}}, "tags": "none"}),
        json!({"name": ["a"], "score": 1.5, "pos": {"x": false, "y": 0, "meta": {"floor": "2"}}, "tags": null}),
    ];
    for data in &accepted {
        room.update_player(1, sp, data).await;
    }
    // But an object where the default has a non-object value is a mismatch, even `{}`.
    for data in [
        json!({"name": "n", "score": 0, "pos": {"x": 0, "y": 0, "meta": {"floor": 1}}, "tags": {"k": 1}}),
        json!({"name": {}, "score": 0, "pos": {"x": 0, "y": 0, "meta": {"floor": 1}}, "tags": []}),
    ] {
        room.client(1)
            .send_json(&cmd::update_player(sp, &data))
            .await;
        room.client(1).expect_error("playerUpdate", 4).await;
    }
    room.expect_quiet().await;
    t.shutdown().await;
}

async fn structure_mismatch_is_error_4_to_sender_only(sp: Spelling) {
    let t = Target::start().await;
    let mut room = Room::open(&t, sp, 3, &json!({"s": 1}), &default_player()).await;
    let before = json!({"name": "kept", "score": 9, "pos": {"x": 9, "y": 9, "meta": {"floor": 9}}, "tags": [9]});
    room.update_player(1, sp, &before).await;

    let mismatches = [
        // A key renamed.
        json!({"nick": "n", "score": 0, "pos": {"x": 0, "y": 0, "meta": {"floor": 1}}, "tags": []}),
        // A key added.
        json!({"name": "n", "score": 0, "pos": {"x": 0, "y": 0, "meta": {"floor": 1}}, "tags": [], "hp": 3}),
        // A key removed.
        json!({"name": "n", "pos": {"x": 0, "y": 0, "meta": {"floor": 1}}, "tags": []}),
        // A nested key renamed, added, removed.
        json!({"name": "n", "score": 0, "pos": {"x": 0, "z": 0, "meta": {"floor": 1}}, "tags": []}),
        json!({"name": "n", "score": 0, "pos": {"x": 0, "y": 0, "z": 0, "meta": {"floor": 1}}, "tags": []}),
        json!({"name": "n", "score": 0, "pos": {"x": 0, "meta": {"floor": 1}}, "tags": []}),
        // Two levels down.
        json!({"name": "n", "score": 0, "pos": {"x": 0, "y": 0, "meta": {"level": 1}}, "tags": []}),
        json!({"name": "n", "score": 0, "pos": {"x": 0, "y": 0, "meta": {}}, "tags": []}),
        // Flattened: an object replaced by a value.
        json!({"name": "n", "score": 0, "pos": 5, "tags": []}),
        json!({"name": "n", "score": 0, "pos": {"x": 0, "y": 0, "meta": null}, "tags": []}),
        json!({"name": "n", "score": 0, "pos": {"x": 0, "y": 0, "meta": [1]}, "tags": []}),
        // Nested: a value replaced by an object.
        json!({"name": {"first": "n"}, "score": 0, "pos": {"x": 0, "y": 0, "meta": {"floor": 1}}, "tags": []}),
        json!({"name": "n", "score": 0, "pos": {"x": 0, "y": 0, "meta": {"floor": {}}}, "tags": []}),
        // Keys moved into or out of a nested object.
        json!({"name": "n", "score": 0, "x": 0, "y": 0, "pos": {"meta": {"floor": 1}}, "tags": []}),
        json!({"name": "n", "score": 0, "pos": {"x": 0, "y": 0, "meta": {"floor": 1}, "tags": []}}),
        // Case matters.
        json!({"Name": "n", "score": 0, "pos": {"x": 0, "y": 0, "meta": {"floor": 1}}, "tags": []}),
        // Empty.
        json!({}),
    ];
    for data in &mismatches {
        // Written in either spelling: the error is the same and exact.
        for written in [sp, sp.other()] {
            room.client(1)
                .send_json(&cmd::update_player(written, data))
                .await;
            room.client(1).expect_error("playerUpdate", 4).await;
        }
    }
    // Nobody else heard anything: their next frame is p1's next valid update.
    let after = json!({"name": "after", "score": 1, "pos": {"x": 1, "y": 1, "meta": {"floor": 1}}, "tags": []});
    room.update_player(1, sp, &after).await;
    // Nothing changed for the rejected ones: a newcomer sees p1's last accepted data, and the
    // default is still the default.
    room.add(&t, "late").await;
    room.expect_quiet().await;
    t.shutdown().await;
}

async fn empty_default_accepts_only_empty_object(sp: Spelling) {
    let t = Target::start().await;
    let mut room = Room::open(&t, sp, 2, &json!({"x": 1}), &json!({})).await;
    room.update_player(0, sp, &json!({})).await;
    for data in [json!({"a": 1}), json!({"": null})] {
        room.client(0)
            .send_json(&cmd::update_player(sp, &data))
            .await;
        room.client(0).expect_error("playerUpdate", 4).await;
    }
    room.expect_quiet().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_player_outside_a_session_is_error_2() {
    let t = Target::start().await;
    let mut a = t.connect("a").await;
    // Never in a session.
    for sp in Spelling::BOTH {
        a.send_json(&cmd::update_player(sp, &json!({"name": "x"})))
            .await;
        a.expect_error("playerUpdate", 2).await;
    }
    // After leaving one.
    a.create(Spelling::Short, &json!({}), &json!({"name": ""}))
        .await;
    a.send_json(&cmd::leave()).await;
    a.expect_frame(&frames::session_leave()).await;
    a.send_json(&cmd::update_player(Spelling::Short, &json!({"name": "x"})))
        .await;
    a.expect_error("playerUpdate", 2).await;
    a.expect_nothing_pending().await;
    t.shutdown().await;
}
