//! The access extension (issue 16) through the client: passwords, maxPlayers, private
//! sessions, the host (hostID, hostChange), kickPlayer, lockSession and
//! hostOnlySessionUpdates, with their error codes.

mod common;

use common::{answer, connect, until, with_host, TestServer};
use serde_json::json;
use sessionserver_client::{Error, Event, SessionOptions, Target};

#[tokio::test]
async fn passwords_and_max_players() {
    let target = TestServer::start(|_| {}).await;
    let addr = target.addr;
    let host = connect(addr, with_host()).await;
    let options = SessionOptions {
        password: Some("sesame \"quoted\"".to_owned()),
        max_players: Some(2),
        ..SessionOptions::default()
    };
    let s = answer(host.create_session(&json!({}), &json!({}), options))
        .await
        .unwrap();
    let b = connect(addr, with_host()).await;
    let err = answer(b.join_session(s.id, None)).await.unwrap_err();
    let Error::Session(e) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (e.code, e.command.as_str(), e.meaning),
        (
            26,
            "sessionJoin",
            "the session has a password: joinSession needs the right one"
        )
    );
    let err = answer(b.join_session(s.id, Some("sesame")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(26));
    answer(b.join_session(s.id, Some("sesame \"quoted\"")))
        .await
        .expect("the right password");
    let c = connect(addr, with_host()).await;
    let err = answer(c.join_session(s.id, Some("sesame \"quoted\"")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(16), "the session holds its maxPlayers");
    for client in [host, b, c] {
        answer(client.close()).await;
    }
    target.shutdown().await;
}

#[tokio::test]
async fn a_private_session_is_not_the_latest() {
    let target = TestServer::start(|_| {}).await;
    let addr = target.addr;
    let host = connect(addr, with_host()).await;
    let private = SessionOptions {
        private: Some(true),
        ..SessionOptions::default()
    };
    let s = answer(host.create_session(&json!({}), &json!({}), private))
        .await
        .unwrap();
    let b = connect(addr, with_host()).await;
    // -1 never finds it: with no other session that is error 6; on a shared server it may
    // find another one.
    match answer(b.join_session(Target::Latest, None)).await {
        Err(err) => assert_eq!(err.code(), Some(6)),
        Ok(other) => {
            assert!(!target.is_private(), "no other session exists");
            assert_ne!(other.id, s.id);
            answer(b.leave_session()).await.unwrap();
        }
    }
    answer(b.join_session(s.id, None)).await.expect("by its ID");
    answer(host.close()).await;
    answer(b.close()).await;
    target.shutdown().await;
}

#[tokio::test]
async fn the_host_kicks_and_locks_and_members_may_not() {
    let target = TestServer::start(|_| {}).await;
    let addr = target.addr;
    let host = connect(addr, with_host()).await;
    let b = connect(addr, with_host()).await;
    let c = connect(addr, with_host()).await;
    let s = answer(host.create_session(&json!({}), &json!({}), SessionOptions::default()))
        .await
        .unwrap();
    answer(b.join_session(s.id, None)).await.unwrap();
    let b_id = b.player_id().unwrap();
    assert!(host.is_host());
    assert!(!b.is_host());
    assert_eq!(b.session().unwrap().host_id, host.player_id());

    // A member may not lock or kick.
    let err = answer(b.lock_session(true)).await.unwrap_err();
    assert_eq!((err.code(), err.to_string().is_empty()), (Some(29), false));
    let err = answer(b.kick_player(host.player_id().unwrap()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(29));

    // The host locks: b hears of it, a joiner is refused.
    assert!(answer(host.lock_session(true)).await.unwrap());
    until(&b, |e| {
        matches!(
            e,
            Event::SessionLock {
                locked: true,
                is_self: false
            }
        )
        .then_some(())
    })
    .await;
    assert!(b.session().unwrap().locked);
    let err = answer(c.join_session(s.id, None)).await.unwrap_err();
    let Error::Session(e) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (e.code, e.meaning),
        (28, "the session's host locked it: it takes no new players")
    );
    assert!(!answer(host.lock_session(false)).await.unwrap());
    answer(c.join_session(s.id, None)).await.expect("unlocked");
    let c_id = c.player_id().unwrap();

    // The host kicks b: b is back in the lobby, the others see it leave.
    let err = answer(host.kick_player(999_999)).await.unwrap_err();
    assert_eq!(err.code(), Some(30));
    answer(host.kick_player(b_id)).await.expect("kicked");
    let (kicked, _) = until(&b, |e| match e {
        Event::SessionLeave { kicked, .. } => Some(*kicked),
        _ => None,
    })
    .await;
    assert!(kicked);
    assert!(b.session().is_none());
    until(&c, |e| {
        matches!(e, Event::PlayerLeave { player_id, .. } if *player_id == b_id).then_some(())
    })
    .await;
    assert!(!host.session().unwrap().players.contains_key(&b_id));
    let (by_us, _) = until(&host, |e| match e {
        Event::PlayerLeave {
            player_id, kicked, ..
        } if *player_id == b_id => Some(*kicked),
        _ => None,
    })
    .await;
    assert!(
        by_us,
        "the host's playerLeave of b is the reply to its kick"
    );

    // The host leaves: c is the host now.
    answer(host.leave_session()).await.unwrap();
    let (new_host, _) = until(&c, |e| match e {
        Event::HostChange { player_id } => Some(*player_id),
        _ => None,
    })
    .await;
    assert_eq!(new_host, c_id);
    assert!(c.is_host());
    assert!(
        answer(c.lock_session(true)).await.unwrap(),
        "the new host may lock"
    );
    for client in [host, b, c] {
        answer(client.close()).await;
    }
    target.shutdown().await;
}

#[tokio::test]
async fn host_only_session_updates() {
    let target = TestServer::start(|_| {}).await;
    let addr = target.addr;
    let host = connect(addr, with_host()).await;
    let b = connect(addr, with_host()).await;
    let options = SessionOptions {
        host_only_session_updates: Some(true),
        ..SessionOptions::default()
    };
    let s = answer(host.create_session(&json!({"round":1}), &json!({}), options))
        .await
        .unwrap();
    answer(b.join_session(s.id, None)).await.unwrap();
    let err = answer(b.update_session(&json!({"round":2}), &json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(29));
    let updated = answer(host.update_session(&json!({"round":2}), &json!({})))
        .await
        .unwrap();
    assert_eq!(updated.data.as_str(), r#"{"round":2}"#);
    answer(host.close()).await;
    answer(b.close()).await;
    target.shutdown().await;
}
