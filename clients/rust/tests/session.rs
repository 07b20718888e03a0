//! The client against a real native server: create a session, another joins, updates both
//! ways, the kept session and player list, both spellings, error codes with their meanings,
//! leaving and closing.

mod common;

use common::{answer, connect, until, TestServer};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sessionserver_client::{
    Error, Event, Options, ReconnectOptions, SessionOptions, Spelling, Target,
};

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Dot {
    name: String,
    x: i64,
    y: i64,
}

#[tokio::test]
async fn two_players_create_join_update_and_leave() {
    let target = TestServer::start(|_| {}).await;
    let addr = target.addr;
    let a = connect(addr, common::with_host()).await;
    let b = connect(addr, common::with_host()).await;

    let dot = Dot {
        name: String::new(),
        x: 0,
        y: 0,
    };
    let session =
        answer(a.create_session(&json!({"title":"dots"}), &dot, SessionOptions::default()))
            .await
            .expect("created");
    let a_id = a.player_id().expect("a has an ID");
    assert_eq!(session.players.keys().copied().collect::<Vec<_>>(), [a_id]);
    assert_eq!(session.host_id, Some(a_id), "the host feature was granted");
    assert_eq!(
        a.features(),
        Some(vec!["resume".to_owned(), "host".to_owned()])
    );
    let (created, _) = until(&a, |e| match e {
        Event::SessionJoin { created, .. } => Some(*created),
        _ => None,
    })
    .await;
    assert!(created);

    let joined = answer(b.join_session(session.id, None))
        .await
        .expect("joined");
    let b_id = b.player_id().expect("b has an ID");
    assert_eq!(joined.id, session.id);
    assert_eq!(joined.data.as_str(), r#"{"title":"dots"}"#);
    // b learns of a as a playerJoin after its sessionJoin; a learns of b.
    let (_, _) = until(&b, |e| {
        matches!(e, Event::PlayerJoin { player_id, .. } if *player_id == a_id).then_some(())
    })
    .await;
    let (data, _) = until(&a, |e| match e {
        Event::PlayerJoin { player_id, data } if *player_id == b_id => Some(data.clone()),
        _ => None,
    })
    .await;
    assert_eq!(data.parse::<Dot>().unwrap(), dot);

    // Updates: your own resolves your request; the other sees it as an event.
    let ada = Dot {
        name: "Ada".into(),
        x: 10,
        y: 20,
    };
    let echoed = answer(a.update_player(&ada)).await.expect("updated");
    assert_eq!(echoed.parse::<Dot>().unwrap(), ada);
    let (seen, _) = until(&b, |e| match e {
        Event::PlayerUpdate {
            player_id,
            data,
            is_self: false,
        } if *player_id == a_id => Some(data.parse::<Dot>().unwrap()),
        _ => None,
    })
    .await;
    assert_eq!(seen, ada);
    assert_eq!(
        b.session().unwrap().players[&a_id].parse::<Dot>().unwrap(),
        ada
    );

    let bob = Dot {
        name: "Bob".into(),
        x: -1,
        y: 3,
    };
    answer(b.update_player(&bob)).await.expect("updated");
    let (seen, _) = until(&a, |e| match e {
        Event::PlayerUpdate {
            player_id, data, ..
        } if *player_id == b_id => Some(data.parse::<Dot>().unwrap()),
        _ => None,
    })
    .await;
    assert_eq!(seen, bob);
    let order: Vec<u64> = a.session().unwrap().players.keys().copied().collect();
    assert_eq!(order, [a_id, b_id], "own first, then in the order learned");

    // updateSession resets everyone's playerData.
    let s = answer(b.update_session(
        &json!({"title":"round 2"}),
        &json!({"name":"", "x":0, "y":0}),
    ))
    .await
    .expect("session updated");
    assert_eq!(s.data.as_str(), r#"{"title":"round 2"}"#);
    let (reset, _) = until(&a, |e| match e {
        Event::SessionUpdate {
            data,
            is_self: false,
            ..
        } => Some(data.clone()),
        _ => None,
    })
    .await;
    assert_eq!(reset.to_value(), json!({"title":"round 2"}));
    assert_eq!(
        a.session().unwrap().players[&a_id].as_str(),
        r#"{"name":"","x":0,"y":0}"#
    );

    answer(b.leave_session()).await.expect("left");
    assert!(b.session().is_none());
    let (left, _) = until(&a, |e| match e {
        Event::PlayerLeave {
            player_id, data, ..
        } => Some((*player_id, data.clone())),
        _ => None,
    })
    .await;
    assert_eq!(left.0, b_id);
    assert_eq!(
        left.1.unwrap().as_str(),
        r#"{"name":"","x":0,"y":0}"#,
        "its last data"
    );
    assert!(!a.session().unwrap().players.contains_key(&b_id));

    assert_eq!(answer(a.close()).await.0, 1000);
    assert_eq!(answer(b.close()).await.0, 1000);
    assert!(a.closed().is_some());
    target.shutdown().await;
}

#[tokio::test]
async fn error_codes_come_with_their_meaning() {
    let target = TestServer::start(|_| {}).await;
    let addr = target.addr;
    let a = connect(addr, Options::default()).await;

    if target.private_or_skip("error 6 (no session at all)") {
        let err = answer(a.join_session(Target::Latest, None))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(6));
        assert_eq!(
            err.to_string(),
            "error 6: joinSession -1 while no session exists"
        );
    }

    let err = answer(a.update_player(&json!({"x":1}))).await.unwrap_err();
    let Error::Session(e) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (e.code, e.command.as_str(), e.meaning),
        (2, "playerUpdate", "not in a session")
    );

    let err = answer(a.join_session(123_456, None)).await.unwrap_err();
    assert_eq!(err.code(), Some(7));

    answer(a.create_session(&json!({}), &json!({"x":0}), SessionOptions::default()))
        .await
        .unwrap();
    let err = answer(a.update_player(&json!({"y":1}))).await.unwrap_err();
    let Error::Session(e) = err else {
        panic!("{err:?}")
    };
    assert_eq!(e.code, 4);
    assert_eq!(
        e.meaning,
        "playerData's key structure differs from the session's default; nothing changes"
    );

    let err = answer(a.create_session(&json!({}), &json!({}), SessionOptions::default()))
        .await
        .unwrap_err();
    let Error::Session(e) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (e.code, e.meaning),
        (4, "createSession while in a session; nothing is created")
    );

    // Data that is not an object: the server's 13, with its own message.
    let err = answer(a.update_player(&json!([1, 2]))).await.unwrap_err();
    let Error::Session(e) = err else {
        panic!("{err:?}")
    };
    assert_eq!(e.code, 13);
    assert!(e.server_message.is_some(), "{e:?}");

    // After errors the connection still works.
    answer(a.update_player(&json!({"x":"left"})))
        .await
        .expect("same keys");
    answer(a.close()).await;
    target.shutdown().await;
}

#[tokio::test]
async fn both_spellings_and_data_kept_verbatim() {
    let target = TestServer::start(|_| {}).await;
    let addr = target.addr;
    let long = Options {
        spelling: Spelling::Long,
        ..Options::default()
    };
    let a = connect(addr, long).await;
    let b = connect(addr, Options::default()).await;
    let session_data =
        sessionserver_client::Data::from_json(r#"{"z":1.000000000001, "a":12345678901234567890}"#)
            .unwrap();
    let s = answer(a.create_session(&session_data, &json!({"x":0}), SessionOptions::default()))
        .await
        .unwrap();
    assert_eq!(
        s.data.as_str(),
        r#"{"z":1.000000000001, "a":12345678901234567890}"#
    );
    let joined = answer(b.join_session(s.id, None)).await.unwrap();
    assert_eq!(
        joined.data.as_str(),
        session_data.as_str(),
        "passed through verbatim, in the creator's spelling"
    );
    answer(b.update_player(&json!({"x":2})))
        .await
        .expect("the short spelling works in a long session");
    let b_id = b.player_id().unwrap();
    let (x, _) = until(&a, |e| match e {
        Event::PlayerUpdate {
            player_id, data, ..
        } if *player_id == b_id => Some(data.to_value()["x"].clone()),
        _ => None,
    })
    .await;
    assert_eq!(x, json!(2));
    answer(a.close()).await;
    answer(b.close()).await;
    target.shutdown().await;
}

#[tokio::test]
async fn close_in_a_session_leaves_at_once_and_later_requests_fail() {
    let target = TestServer::start(|_| {}).await;
    let addr = target.addr;
    let a = connect(addr, Options::default()).await;
    let b = connect(addr, Options::default()).await;
    let s = answer(a.create_session(&json!({}), &json!({}), SessionOptions::default()))
        .await
        .unwrap();
    answer(b.join_session(s.id, None)).await.unwrap();
    let b_id = b.player_id().unwrap();
    // b asked for resume, so without its leave the server would keep its seat for 30 s.
    // (The reason is the server's: the edge answers "bye".)
    assert_eq!(answer(b.close()).await.0, 1000);
    let (gone, _) = until(&a, |e| match e {
        Event::PlayerLeave { player_id, .. } => Some(*player_id),
        _ => None,
    })
    .await;
    assert_eq!(gone, b_id);
    let err = answer(b.update_player(&json!({}))).await.unwrap_err();
    assert!(
        matches!(err, Error::ConnectionClosed(ref e) if e.code == 1000),
        "{err:?}"
    );
    // Its last events: no sessionLeave for the close's own leave, then Close.
    let mut last = None;
    while let Ok(Some(e)) = tokio::time::timeout(common::TIMEOUT, b.next_event()).await {
        assert!(!matches!(e, Event::SessionLeave { .. }), "{e:?}");
        last = Some(e);
    }
    assert!(
        matches!(last, Some(Event::Close { code: 1000, .. })),
        "{last:?}"
    );
    answer(a.close()).await;
    target.shutdown().await;
}

#[tokio::test]
async fn a_server_shutdown_is_a_final_close() {
    let target = TestServer::start(|_| {}).await;
    if !target.private_or_skip("a_server_shutdown_is_a_final_close") {
        return;
    }
    let a = connect(
        target.addr,
        Options {
            reconnect: Some(ReconnectOptions::default()),
            ..Options::default()
        },
    )
    .await;
    answer(a.create_session(&json!({}), &json!({}), SessionOptions::default()))
        .await
        .unwrap();
    target.shutdown().await.expect("a server of its own");
    // The events as a stream: it ends after Close.
    let all: Vec<Event> = answer(futures_util::StreamExt::collect(a.events())).await;
    let Some(Event::Close { code, meaning, .. }) = all.last() else {
        panic!("the last event is Close: {all:?}")
    };
    assert_eq!((*code, *meaning), (1001, "the server is shutting down"));
    assert_eq!(a.closed().map(|(code, _)| code), Some(1001));
    assert!(
        !all.iter().any(|e| matches!(e, Event::Reconnecting { .. })),
        "1001 is final: {all:?}"
    );
}
