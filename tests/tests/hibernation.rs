//! A session whose members go quiet for a while goes on afterwards as if nothing happened.
//!
//! On the edge host an idle session's Durable Object hibernates: its memory is dropped while
//! the members' sockets stay open, and the next frame wakes it. This test has the members idle
//! for `SESSIONSERVER_HIBERNATION_WAIT_SECS` seconds (set by scripts/edge-test.sh to more than
//! the platform's idle time before hibernation), then checks that the members, their
//! playerData (byte for byte), the sessionData, the format and the spelling are intact, and
//! that updates, joins, leaves and disconnects still work. Without the variable it returns at
//! once: on a native server nothing hibernates, and the suite never sleeps otherwise.

use std::time::Duration;

use sessionserver_tests::{
    assert_same, cmd, frames, json, spelling_tests, Member, Room, Spelling, Target,
};

/// The environment variable with the idle time, in seconds.
const WAIT_VAR: &str = "SESSIONSERVER_HIBERNATION_WAIT_SECS";

/// playerData whose numbers JSON libraries like to rewrite: it must come back as sent.
const RAW_PLAYER: &str =
    r#"{"name":"Ünïcødé ✓","pos":{"x":1.000000000001,"y":-0.0},"id":12345678901234567890123}"#;

spelling_tests!(members_idle_past_hibernation_then_the_session_goes_on);

async fn members_idle_past_hibernation_then_the_session_goes_on(sp: Spelling) {
    let Some(wait) = std::env::var(WAIT_VAR)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        eprintln!("SKIPPED hibernation test: set {WAIT_VAR} to idle the session that long");
        return;
    };
    let t = Target::start().await;
    let session = json!({"map": {"name": "dust", "size": [3, 4]}, "round": 1});
    let player = json!({"name": "__unset__", "pos": {"x": 0, "y": 0}, "id": 0});
    let mut room = Room::open(&t, sp, 3, &session, &player).await;

    // A new format first, so that what survives is not just what createSession said.
    let session = json!({"map": {"name": "nuke", "size": [5, 6]}, "round": 2});
    room.update_session(1, sp, &session, &player).await;
    // Member 0 has data of its own, member 1 the default, member 2 data sent as raw text.
    room.update_player(
        0,
        sp,
        &json!({"name": "p0", "pos": {"x": 1, "y": 2}, "id": 7}),
    )
    .await;
    let raw = RAW_PLAYER;
    let pid2 = room.pid(2);
    room.client(2)
        .send_json(&cmd::update_player_raw(sp, raw))
        .await;
    for m in &mut room.members {
        let text = m.client.recv_text().await;
        assert!(
            text.contains(raw),
            "{}: playerUpdate does not carry the data as sent: {text}",
            m.client.name()
        );
    }
    room.members[2].data = serde_json::from_str(raw).expect("RAW_PLAYER is JSON");
    room.expect_quiet().await;

    eprintln!("idling {wait} s so that the session can hibernate");
    tokio::time::sleep(Duration::from_secs(wait)).await;

    // A newcomer sees every member, in join order, with its data byte for byte, and the
    // session's data and format in the creator's spelling.
    let mut late = t.connect("late").await;
    late.send_json(&cmd::join_id(room.id)).await;
    let welcome = late.expect("sessionJoin").await;
    let late_id = welcome["playerID"].as_u64().expect("an unsigned playerID");
    assert_same(
        &welcome,
        &frames::session_join(sp, room.id, late_id, &session, &player),
        "late: sessionJoin after hibernation",
    );
    for m in &room.members {
        let text = late.recv_text().await;
        let frame: serde_json::Value = serde_json::from_str(&text).expect("a JSON frame");
        assert_same(
            &frame,
            &frames::player_join(sp, m.id, &m.data),
            "late: playerJoin after hibernation",
        );
        if m.id == pid2 {
            assert!(text.contains(raw), "late: data not as sent: {text}");
        }
    }
    room.expect_all(&frames::player_join(sp, late_id, &player))
        .await;
    room.members.push(Member {
        client: late,
        id: late_id,
        data: player.clone(),
    });
    room.expect_quiet().await;

    // Updates go on, in the session's spelling whatever the sender writes, and the format
    // is still the one set before the idle time.
    room.update_player(
        1,
        sp.other(),
        &json!({"name": "p1", "pos": {"x": 3, "y": 4}, "id": 1}),
    )
    .await;
    room.client(3)
        .send_json(&cmd::update_player(sp, &json!({"name": "wrong shape"})))
        .await;
    room.client(3).expect_error("playerUpdate", 4).await;
    room.update_session(2, sp, &json!({"round": 3}), &json!({"score": 0}))
        .await;
    room.update_player(3, sp, &json!({"score": 10})).await;

    // Leaving and disconnecting still tell the others.
    let left = room.leave(0).await;
    room.disconnect(0).await;
    room.expect_quiet().await;
    room.add_client(left.client).await;
    room.expect_quiet().await;
    room.close().await;
    t.shutdown().await;
}
