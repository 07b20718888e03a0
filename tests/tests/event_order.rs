//! One order of events per session, seen by every member: players updating at the same time
//! all see the same sequence of frames.

use sessionserver_tests::{
    cmd, frames, json, spelling_tests, Client, Room, Spelling, Target, Value,
};
use tokio::task::JoinHandle;

spelling_tests!(
    concurrent_player_updates_are_seen_in_one_order,
    concurrent_updates_and_session_updates_are_seen_in_one_order,
    a_joiner_sees_a_consistent_snapshot_amid_updates,
);

const UPDATES: usize = 40;

/// Sends `frames_to_send` (as fast as it can), then reads `to_read` frames; returns the
/// connection and the frames read, as text.
fn spawn_member(
    mut client: Client,
    frames_to_send: Vec<String>,
    to_read: usize,
) -> JoinHandle<(Client, Vec<String>)> {
    tokio::spawn(async move {
        for f in &frames_to_send {
            client.send_json(f).await;
        }
        let mut seen = Vec::with_capacity(to_read);
        for _ in 0..to_read {
            seen.push(client.recv_text().await);
        }
        (client, seen)
    })
}

fn updates_of(sp: Spelling, who: usize) -> Vec<String> {
    (0..UPDATES)
        .map(|n| cmd::update_player(sp, &json!({"who": who, "n": n})))
        .collect()
}

/// All members' sequences are one sequence; returns it parsed.
fn one_order(sequences: &[Vec<String>]) -> Vec<Value> {
    for (i, s) in sequences.iter().enumerate().skip(1) {
        if let Some(at) =
            (0..s.len().max(sequences[0].len())).find(|&k| s.get(k) != sequences[0].get(k))
        {
            panic!(
                "member {i} saw another order than member 0 from frame {at} on:\n  member 0: {:?}\n  member {i}: {:?}",
                sequences[0].get(at),
                s.get(at)
            );
        }
    }
    sequences[0]
        .iter()
        .map(|f| serde_json::from_str(f).expect("a JSON frame"))
        .collect()
}

/// In `frames`, the playerUpdates of player `id` say n = 0, 1, 2, … in the order sent, with
/// the given `who`.
fn check_sender_order(sp: Spelling, frames: &[Value], id: u64, who: usize) {
    let mine: Vec<&Value> = frames
        .iter()
        .filter(|f| f["command"] == "playerUpdate" && f["playerID"] == id)
        .collect();
    assert_eq!(
        mine.len(),
        UPDATES,
        "player {id}'s updates all arrive, once each"
    );
    for (n, f) in mine.iter().enumerate() {
        sessionserver_tests::assert_same(
            f,
            &frames::player_update(sp, id, &json!({"who": who, "n": n})),
            format!("player {id}'s update {n}, in the order it sent them"),
        );
    }
}

async fn concurrent_player_updates_are_seen_in_one_order(sp: Spelling) {
    let t = Target::start().await;
    let n = 4;
    let room = Room::open(&t, sp, n, &json!({}), &json!({"who": 0, "n": 0})).await;
    let ids: Vec<u64> = room.members.iter().map(|m| m.id).collect();
    let tasks: Vec<_> = room
        .members
        .into_iter()
        .enumerate()
        .map(|(who, m)| spawn_member(m.client, updates_of(sp, who), n * UPDATES))
        .collect();
    let mut clients = Vec::new();
    let mut sequences = Vec::new();
    for task in tasks {
        let (client, seen) = task.await.expect("a member task");
        clients.push(client);
        sequences.push(seen);
    }
    let frames = one_order(&sequences);
    for (who, id) in ids.iter().enumerate() {
        check_sender_order(sp, &frames, *id, who);
    }
    for c in &mut clients {
        c.expect_nothing_pending().await;
    }
    t.shutdown().await;
}

async fn concurrent_updates_and_session_updates_are_seen_in_one_order(sp: Spelling) {
    let t = Target::start().await;
    let n = 4;
    let player = json!({"who": 0, "n": 0});
    let room = Room::open(&t, sp, n, &json!({"round": -1}), &player).await;
    let ids: Vec<u64> = room.members.iter().map(|m| m.id).collect();
    // Member 0 updates the session (same player structure, so no update is ever rejected);
    // the others update their playerData, all at once.
    let rounds = 10;
    let total = (n - 1) * UPDATES + rounds;
    let tasks: Vec<_> = room
        .members
        .into_iter()
        .enumerate()
        .map(|(who, m)| {
            let to_send = if who == 0 {
                (0..rounds)
                    .map(|r| cmd::update_session(sp, &json!({"round": r}), &player))
                    .collect()
            } else {
                updates_of(sp, who)
            };
            spawn_member(m.client, to_send, total)
        })
        .collect();
    let mut clients = Vec::new();
    let mut sequences = Vec::new();
    for task in tasks {
        let (client, seen) = task.await.expect("a member task");
        clients.push(client);
        sequences.push(seen);
    }
    let frames = one_order(&sequences);
    for (who, id) in ids.iter().enumerate().skip(1) {
        check_sender_order(sp, &frames, *id, who);
    }
    let rounds_seen: Vec<&Value> = frames
        .iter()
        .filter(|f| f["command"] == "sessionUpdate")
        .collect();
    assert_eq!(
        rounds_seen.len(),
        rounds,
        "every sessionUpdate arrives once"
    );
    for (r, f) in rounds_seen.iter().enumerate() {
        sessionserver_tests::assert_same(
            f,
            &frames::session_update(sp, &json!({"round": r}), &player),
            "sessionUpdates in the order sent",
        );
    }
    for c in &mut clients {
        c.expect_nothing_pending().await;
    }
    t.shutdown().await;
}

async fn a_joiner_sees_a_consistent_snapshot_amid_updates(sp: Spelling) {
    let t = Target::start().await;
    let n = 3;
    let player = json!({"who": -1, "n": -1});
    // Members 0..n update; member n only watches, to send the join in mid-stream.
    let mut room = Room::open(&t, sp, n + 1, &json!({}), &player).await;
    let (sid, session) = (room.id, room.session.clone());
    // Every member's ID in join order, the watcher's last.
    let ids: Vec<u64> = room.members.iter().map(|m| m.id).collect();
    let mut watcher = room.members.pop().expect("the watcher").client;
    // Everyone updates; meanwhile a newcomer joins. The members see n * UPDATES playerUpdates
    // and one playerJoin, all in one order.
    let total = n * UPDATES + 1;
    let tasks: Vec<_> = room
        .members
        .into_iter()
        .enumerate()
        .map(|(who, m)| spawn_member(m.client, updates_of(sp, who), total))
        .collect();
    let mut watched = Vec::new();
    for _ in 0..UPDATES / 2 {
        watched.push(watcher.recv_text().await);
    }
    let mut joiner = t.connect("joiner").await;
    joiner.send_json(&cmd::join_id(sid)).await;
    while watched.len() < total {
        watched.push(watcher.recv_text().await);
    }
    // The members stay connected to the end: a closed connection would be a leave.
    let mut clients = vec![watcher];
    let mut sequences = vec![watched];
    for task in tasks {
        let (client, seen) = task.await.expect("a member task");
        clients.push(client);
        sequences.push(seen);
    }
    let frames = one_order(&sequences);
    let at = frames
        .iter()
        .position(|f| f["command"] == "playerJoin")
        .expect("the members see the joiner's playerJoin");

    // The joiner's view: sessionJoin, the members' data as of that point, then the rest.
    let reply = joiner.expect("sessionJoin").await;
    let joiner_id = reply["playerID"].as_u64().unwrap();
    sessionserver_tests::assert_same(
        &reply,
        &frames::session_join(sp, sid, joiner_id, &session, &player),
        "the joiner's sessionJoin",
    );
    sessionserver_tests::assert_same(
        &frames[at],
        &frames::player_join(sp, joiner_id, &player),
        "the members' playerJoin of the joiner",
    );
    for id in &ids {
        let latest = frames[..at]
            .iter()
            .rev()
            .find(|f| f["playerID"] == *id)
            .map_or(player.clone(), |f| f[sp.player()].clone());
        joiner
            .expect_frame(&frames::player_join(sp, *id, &latest))
            .await;
    }
    for f in &frames[at + 1..] {
        joiner.expect_frame(f).await;
    }
    joiner.expect_nothing_pending().await;
    for c in &mut clients {
        c.expect_nothing_pending().await;
    }
    t.shutdown().await;
}
