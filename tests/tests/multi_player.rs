//! Whole flows with several players: joins, updates, leaves, disconnects and session updates
//! mixed, every frame to every member checked; sessions side by side do not hear each other.

use sessionserver_tests::{frames, json, spelling_tests, Room, Spelling, Target};

spelling_tests!(
    a_whole_game_with_five_players,
    sessions_side_by_side_are_isolated
);

async fn a_whole_game_with_five_players(sp: Spelling) {
    let t = Target::start().await;
    let lobby = json!({"phase": "lobby", "endTimeInMS": 1262304000});
    let player = json!({"name": "__unset__", "ready": false});
    let mut room = Room::open(&t, sp, 5, &lobby, &player).await;

    // Everyone names themselves, some in the other spelling.
    for i in 0..5 {
        let written = if i % 2 == 0 { sp } else { sp.other() };
        room.update_player(
            i,
            written,
            &json!({"ready": false, "name": format!("player{i}")}),
        )
        .await;
    }
    // p3 leaves; p1 loses its connection.
    room.leave(3).await;
    let lost = room.members.remove(1);
    let lost_id = lost.id;
    lost.client.drop_connection();
    room.expect_all(&frames::player_leave(lost_id)).await;
    room.expect_quiet().await;

    // A latecomer gets p0, p2, p4 with their names, in join order.
    let late = room.add(&t, "late").await;
    room.update_player(late, sp, &json!({"name": "late", "ready": true}))
        .await;

    // The latecomer starts the match: new formats, everyone reset.
    let game = json!({"phase": "match", "board": {"w": 3, "h": 3}});
    let seat = json!({"seat": {"row": -1, "col": -1}});
    room.update_session(late, sp, &game, &seat).await;
    room.expect_quiet().await;
    for i in 0..room.members.len() {
        room.update_player(i, sp, &json!({"seat": {"col": i, "row": 0}}))
            .await;
    }
    // The creator leaves mid-match, another closes; the rest go on.
    room.leave(0).await;
    room.disconnect(0).await;
    room.update_player(0, sp, &json!({"seat": {"col": 2, "row": 2}}))
        .await;
    room.update_session(1, sp.other(), &json!({"phase": "over"}), &json!({}))
        .await;
    room.add(&t, "spectator").await;
    room.expect_quiet().await;
    assert_eq!(room.members.len(), 3);
    t.shutdown().await;
}

async fn sessions_side_by_side_are_isolated(sp: Spelling) {
    let t = Target::start().await;
    let mut red = Room::open(&t, sp, 3, &json!({"team": "red"}), &json!({"v": 0})).await;
    let mut blue = Room::open(
        &t,
        sp.other(),
        3,
        &json!({"team": "blue"}),
        &json!({"v": 0}),
    )
    .await;
    assert_ne!(red.id, blue.id);
    for round in 1..4 {
        red.update_player(round % 3, sp, &json!({"v": round})).await;
        blue.update_player((round + 1) % 3, sp, &json!({"v": -(round as i64)}))
            .await;
    }
    red.update_session(0, sp, &json!({"team": "red", "round": 2}), &json!({"v": 0}))
        .await;
    red.leave(2).await;
    blue.disconnect(1).await;
    red.expect_quiet().await;
    blue.expect_quiet().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twelve_players_join_one_by_one() {
    let t = Target::start().await;
    let sp = Spelling::Long;
    // Each newcomer gets every earlier member in join order; each member every newcomer.
    let mut room = Room::open(&t, sp, 6, &json!({"size": 12}), &json!({"n": 0})).await;
    for i in 0..room.members.len() {
        room.update_player(i, sp, &json!({"n": i})).await;
    }
    for i in 6..12 {
        room.add(&t, &format!("p{i}")).await;
    }
    let ids: Vec<u64> = room.members.iter().map(|m| m.id).collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 12, "12 players, 12 IDs: {ids:?}");
    room.expect_quiet().await;
    t.shutdown().await;
}
