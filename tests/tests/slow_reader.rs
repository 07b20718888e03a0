//! A member that stops reading holds no one up: while it reads nothing, the other members get
//! every update, in the session's order, each within the suite's timeout. What the member
//! itself gets depends on the host. Natively its send queue is bounded (`--send-queue-bytes`;
//! here 256 KiB, so that the ~7 MB sent to it overflow the queue and the kernel's buffers):
//! once that fills it is closed with 4001, after a prefix of the updates. At the edge the
//! runtime shows no socket's backlog (worker/README.md, "A client that stops reading"), so it
//! stays connected and, once it reads again, gets every update in order. Either is accepted;
//! anything else (a gap, a reordering, another close) fails.

use sessionserver_tests::{cmd, frames, json, Client, Room, Spelling, Target, Value};
use std::time::Duration;

/// Members sending updates, the member that stops reading, one that keeps reading.
const SENDERS: usize = 6;
/// Rounds: in each every sender sends one update, and every reading member gets them all
/// before the next round.
const ROUNDS: usize = 300;
/// One round per this interval keeps each sender under the rate limit (100 commands a second,
/// one token per started 4 KiB).
const ROUND_EVERY: Duration = Duration::from_millis(12);
/// Bytes of data per update: one rate token (the frame stays under 4 KiB).
const DATA_BYTES: usize = 3900;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_reading_holds_no_one_up() {
    let t = Target::start_with(|c| c.send_queue_bytes = 256 << 10).await;
    let sp = Spelling::Short;
    let mut room = Room::open(&t, sp, SENDERS + 2, &json!({}), &json!({"d": ""})).await;
    let (slow, reader) = (SENDERS, SENDERS + 1);
    let filler = "x".repeat(DATA_BYTES);
    let leave = frames::player_leave(room.members[slow].id);
    let mut left = false;
    let mut checked = false;

    // From here on the slow member is not polled: its frames wait in its kernel buffers, then
    // in the server's.
    let mut order: Vec<Value> = Vec::with_capacity(SENDERS * ROUNDS);
    let mut tick = tokio::time::interval(ROUND_EVERY);
    for round in 0..ROUNDS {
        tick.tick().await;
        let mut expected: Vec<Value> = (0..SENDERS)
            .map(|i| {
                let data = json!({ "d": format!("{round}/{i}/{filler}") });
                frames::player_update(sp, room.members[i].id, &data)
            })
            .collect();
        for (i, frame) in expected.iter().enumerate() {
            let data = &frame["player"];
            room.client(i)
                .send_json(&cmd::update_player(sp, data))
                .await;
        }
        // Each reading member gets this round's updates in one order, the session's (the
        // senders' connections race, so the order within a round is not known before).
        // Natively the slow member's close (4001) is a leave: its `playerLeave` may come
        // among them, once.
        let mut seen: Vec<Value> = Vec::with_capacity(SENDERS + 1);
        while !expected.is_empty() {
            let frame = room.client(reader).recv().await;
            if frame == leave && !left {
                left = true;
            } else {
                let at = expected
                    .iter()
                    .position(|e| *e == frame)
                    .unwrap_or_else(|| {
                        panic!("reader: round {round}: unexpected or repeated frame {frame:.200}")
                    });
                expected.remove(at);
            }
            seen.push(frame);
        }
        for i in 0..SENDERS {
            for frame in &seen {
                let got = room.client(i).recv().await;
                assert_eq!(
                    &got, frame,
                    "sender {i}: round {round}: another order than the reader's"
                );
            }
        }
        order.extend(seen.into_iter().filter(|f| *f != leave));
        if left && !checked {
            // Natively its 4001 close waits only a second for a client that stopped reading
            // (native/src/connection.rs, `finish`): read it now, the rounds go on without it.
            checked = true;
            read_slow(room.client(slow), &order, true).await;
        }
    }
    if !left {
        read_slow(room.client(slow), &order, false).await;
        room.client(slow).expect_nothing_pending().await;
    }
    for i in (0..SENDERS).chain([reader]) {
        room.client(i).expect_nothing_pending().await;
    }
    t.shutdown().await;
}

/// The slow member reads again: the same updates in the same order, all of them, or (when
/// the others saw it leave) a prefix and then close 4001.
async fn read_slow(slow: &mut Client, order: &[Value], left: bool) {
    let total = order.len();
    for (n, expected) in order.iter().enumerate() {
        match slow.recv_text_or_close().await {
            Ok(text) => {
                let got: Value = serde_json::from_str(&text).expect("a JSON frame");
                assert_eq!(
                    &got, expected,
                    "slow member: update {n}: a gap or another order"
                );
            }
            Err(code) => {
                assert!(left, "slow member: closed ({code:?}) after {n} of {total} updates, but the others never saw it leave");
                assert_eq!(
                    code,
                    Some(4001),
                    "slow member: closed after {n} of {total} updates"
                );
                eprintln!("slow member: closed with 4001 after {n} of {total} updates");
                return;
            }
        }
    }
    assert!(
        !left,
        "the others saw the slow member leave, yet it got all {total} updates and no close"
    );
    eprintln!("slow member: got all {total} updates");
}
