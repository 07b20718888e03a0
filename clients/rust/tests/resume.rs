//! Surviving a dropped connection: a member's TCP connection is cut (through a proxy, no
//! close frame) while the other keeps updating; the client reconnects by itself, takes its
//! seat back with the same player ID, sees every missed update exactly once and in order,
//! and the other never sees it leave. Then a snapshot resume, and a seat lost when the grace
//! period ends.

mod common;

use std::time::Duration;

use common::{answer, connect, next, quick, until, Proxy, TestServer};
use serde_json::json;
use sessionserver_client::{
    Client, Event, LostReason, Options, ReconnectOptions, Replay, SessionOptions,
};

/// `client`'s events until it has resumed and has seen `from`'s update to `last` (in the
/// replay or live after it), that one included.
async fn until_resumed_and(client: &Client, from: u64, last: &str) -> Vec<Event> {
    let mut seen = Vec::new();
    let (mut resumed, mut got_last) = (false, false);
    while !(resumed && got_last) {
        let event = next(client).await;
        resumed |= matches!(event, Event::Resumed { .. });
        got_last |= matches!(&event, Event::PlayerUpdate { player_id, data, .. }
            if *player_id == from && data.as_str() == last);
        seen.push(event);
    }
    seen
}

/// The data of `from`'s updates among `events`, in order.
fn updates_of(events: &[Event], from: u64) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::PlayerUpdate {
                player_id, data, ..
            } if *player_id == from => Some(data.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_cut_connection_resumes_with_its_id_and_every_missed_update() {
    let target = TestServer::start(|_| {}).await;
    let proxy = Proxy::start(target.addr).await;
    let a = connect(target.addr, quick()).await;
    let b = connect(proxy.addr, quick()).await;
    let s = answer(a.create_session(&json!({}), &json!({"x":0}), SessionOptions::default()))
        .await
        .unwrap();
    answer(b.join_session(s.id, None)).await.unwrap();
    let (a_id, b_id) = (a.player_id().unwrap(), b.player_id().unwrap());
    answer(b.update_player(&json!({"x":1}))).await.unwrap();
    until(&a, |e| {
        matches!(e, Event::PlayerUpdate { player_id, .. } if *player_id == b_id).then_some(())
    })
    .await;

    proxy.cut().await;
    for x in 1..=3 {
        answer(a.update_player(&json!({"x":x}))).await.unwrap();
    }
    // What b sees until it is back and has a's last update (which may come in the replay
    // or, if a sent it after the resume, live).
    let before = until_resumed_and(&b, a_id, r#"{"x":3}"#).await;
    let replay = before.iter().find_map(|e| match e {
        Event::Resumed { replay, .. } => Some(*replay),
        _ => None,
    });
    assert_eq!(replay, Some(Replay::Frames));
    assert!(
        matches!(
            before
                .iter()
                .find(|e| matches!(e, Event::Reconnecting { .. })),
            Some(Event::Reconnecting {
                attempt: 1,
                code: 1006,
                ..
            })
        ),
        "{before:?}"
    );
    // Every update a made, once each, in order.
    assert_eq!(
        updates_of(&before, a_id),
        [r#"{"x":1}"#, r#"{"x":2}"#, r#"{"x":3}"#],
        "{before:?}"
    );
    assert_eq!(b.player_id(), Some(b_id), "the same player");
    assert_eq!(b.session().unwrap().players[&a_id].as_str(), r#"{"x":3}"#);
    assert!(b.reconnecting().is_none());

    // It plays on as the same player; a never saw it leave.
    answer(b.update_player(&json!({"x":9}))).await.unwrap();
    let (x, seen) = until(&a, |e| match e {
        Event::PlayerUpdate {
            player_id, data, ..
        } if *player_id == b_id => Some(data.as_str().to_owned()),
        _ => None,
    })
    .await;
    assert_eq!(x, r#"{"x":9}"#);
    assert!(
        !seen.iter().any(|e| matches!(e, Event::PlayerLeave { .. })),
        "{seen:?}"
    );

    // A second drop resumes too.
    proxy.cut().await;
    answer(a.update_player(&json!({"x":4}))).await.unwrap();
    let before = until_resumed_and(&b, a_id, r#"{"x":4}"#).await;
    assert_eq!(updates_of(&before, a_id), [r#"{"x":4}"#], "{before:?}");

    answer(b.leave_session()).await.unwrap();
    let (gone, _) = until(&a, |e| match e {
        Event::PlayerLeave { player_id, .. } => Some(*player_id),
        _ => None,
    })
    .await;
    assert_eq!(gone, b_id);
    answer(a.close()).await;
    answer(b.close()).await;
    target.shutdown().await;
}

#[tokio::test]
async fn requests_made_while_reconnecting_are_sent_after_the_resume() {
    let target = TestServer::start(|_| {}).await;
    let proxy = Proxy::start(target.addr).await;
    let a = connect(target.addr, quick()).await;
    let b = connect(proxy.addr, quick()).await;
    let s = answer(a.create_session(&json!({}), &json!({"x":0}), SessionOptions::default()))
        .await
        .unwrap();
    answer(b.join_session(s.id, None)).await.unwrap();
    let b_id = b.player_id().unwrap();

    // Down while the client notices the drop, so that it is surely reconnecting.
    proxy.down();
    proxy.cut().await;
    until(&b, |e| {
        matches!(e, Event::Reconnecting { .. }).then_some(())
    })
    .await;
    assert!(b.reconnecting().is_some());
    let waiting = tokio::spawn({
        let b = b.clone();
        async move { b.update_player(&json!({"x":7})).await }
    });
    proxy.up();
    let echoed = answer(waiting)
        .await
        .expect("the task ran")
        .expect("sent after the resume");
    assert_eq!(echoed.as_str(), r#"{"x":7}"#);
    let (x, seen) = until(&a, |e| match e {
        Event::PlayerUpdate {
            player_id, data, ..
        } if *player_id == b_id => Some(data.as_str().to_owned()),
        _ => None,
    })
    .await;
    assert_eq!(x, r#"{"x":7}"#, "from the same player");
    assert!(
        !seen.iter().any(|e| matches!(e, Event::PlayerLeave { .. })),
        "{seen:?}"
    );
    answer(a.close()).await;
    answer(b.close()).await;
    target.shutdown().await;
}

#[tokio::test]
async fn more_missed_than_the_server_keeps_resumes_from_a_snapshot() {
    let target = TestServer::start(|c| c.limits.resume_replay_bytes = 1).await;
    if !target.private_or_skip("the snapshot test (it needs --resume-replay-bytes 1)") {
        return;
    }
    let proxy = Proxy::start(target.addr).await;
    let a = connect(target.addr, quick()).await;
    let b = connect(proxy.addr, quick()).await;
    let c = connect(target.addr, quick()).await;
    let s = answer(a.create_session(
        &json!({"round":1}),
        &json!({"x":0}),
        SessionOptions::default(),
    ))
    .await
    .unwrap();
    answer(b.join_session(s.id, None)).await.unwrap();
    answer(c.join_session(s.id, None)).await.unwrap();
    let (a_id, c_id) = (a.player_id().unwrap(), c.player_id().unwrap());
    until(&b, |e| {
        matches!(e, Event::PlayerJoin { player_id, .. } if *player_id == c_id).then_some(())
    })
    .await;

    proxy.cut().await;
    answer(a.update_player(&json!({"x":5}))).await.unwrap();
    answer(c.leave_session()).await.unwrap();
    let (replay, before) = until(&b, |e| match e {
        Event::Resumed { replay, missed, .. } => Some((*replay, *missed)),
        _ => None,
    })
    .await;
    assert_eq!(replay, (Replay::Snapshot, None));
    assert!(
        before
            .iter()
            .any(|e| matches!(e, Event::PlayerLeave { player_id, .. } if *player_id == c_id)),
        "c is gone: {before:?}"
    );
    let session = b.session().unwrap();
    assert_eq!(
        session.players.keys().copied().collect::<Vec<_>>(),
        [b.player_id().unwrap(), a_id]
    );
    assert_eq!(session.players[&a_id].as_str(), r#"{"x":5}"#);
    for client in [a, b, c] {
        answer(client.close()).await;
    }
    target.shutdown().await;
}

#[tokio::test]
async fn the_seat_is_lost_when_the_grace_period_ends_and_the_client_stays_in_the_lobby() {
    let target = TestServer::start(|c| c.limits.resume_grace_ms = 300).await;
    if !target.grace_known() {
        return;
    }
    let proxy = Proxy::start(target.addr).await;
    let a = connect(target.addr, quick()).await;
    // Attempts that go on for as long as the grace period may last (the proxy refuses them
    // meanwhile).
    let patient = Options {
        reconnect: Some(ReconnectOptions {
            max_attempts: u32::MAX,
            max_time: Duration::from_secs(60),
            ..quick().reconnect.unwrap()
        }),
        ..Options::default()
    };
    let b = connect(proxy.addr, patient).await;
    let s = answer(a.create_session(&json!({}), &json!({}), SessionOptions::default()))
        .await
        .unwrap();
    answer(b.join_session(s.id, None)).await.unwrap();
    let b_id = b.player_id().unwrap();

    proxy.down();
    proxy.cut().await;
    // The grace period ends: a sees b leave. Then b gets through, and is refused.
    let (gone, _) = until(&a, |e| match e {
        Event::PlayerLeave { player_id, .. } => Some(*player_id),
        _ => None,
    })
    .await;
    assert_eq!(gone, b_id);
    proxy.up();
    let ((reason, session_id, code), before) = until(&b, |e| match e {
        Event::Lost {
            reason,
            session_id,
            error,
        } => Some((*reason, *session_id, error.code())),
        _ => None,
    })
    .await;
    assert_eq!(
        (reason, session_id, code),
        (LostReason::Rejected, Some(s.id), Some(22))
    );
    assert!(
        before
            .iter()
            .filter(|e| matches!(e, Event::Reconnecting { .. }))
            .count()
            >= 2,
        "attempts failed while the proxy was down: {before:?}"
    );
    assert!(b.session().is_none());
    assert!(b.closed().is_none());
    // Still connected: it can join again, as a new player.
    answer(b.join_session(s.id, None))
        .await
        .expect("joins again");
    assert_ne!(b.player_id(), Some(b_id));
    answer(a.close()).await;
    answer(b.close()).await;
    target.shutdown().await;
}
