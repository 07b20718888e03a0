//! Surviving a dropped connection: a member's TCP connection is cut (through a proxy, no
//! close frame) while the other keeps updating; the client reconnects by itself, takes its
//! seat back with the same player ID, sees every missed update exactly once and in order,
//! and the other never sees it leave. Then a snapshot resume, and a seat lost when the grace
//! period ends.

mod common;

use common::{answer, connect, quick, until, Proxy, TestServer};
use serde_json::json;
use sessionserver_client::{Event, LostReason, Replay, SessionOptions};

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
    let ((replay, attempts), before) = until(&b, |e| match e {
        Event::Resumed {
            replay, attempts, ..
        } => Some((*replay, *attempts)),
        _ => None,
    })
    .await;
    assert_eq!(replay, Replay::Frames);
    assert!(attempts >= 1);
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
    // Every update a made, once each, in order (those b had read before the cut, too).
    let xs: Vec<serde_json::Value> = before
        .iter()
        .filter_map(|e| match e {
            Event::PlayerUpdate {
                player_id, data, ..
            } if *player_id == a_id => Some(data.to_value()["x"].clone()),
            _ => None,
        })
        .collect();
    assert_eq!(xs, [json!(1), json!(2), json!(3)], "{before:?}");
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
    let (_, before) = until(&b, |e| matches!(e, Event::Resumed { .. }).then_some(())).await;
    let xs: Vec<String> = before
        .iter()
        .filter_map(|e| match e {
            Event::PlayerUpdate {
                player_id, data, ..
            } if *player_id == a_id => Some(data.as_str().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(xs, [r#"{"x":4}"#]);

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
    let b = connect(proxy.addr, quick()).await;
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
