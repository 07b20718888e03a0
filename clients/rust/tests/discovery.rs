//! Finding a game: listSessions (public sessions, newest first, by metadata, available ones,
//! pages) and setMetadata by the host. The edge host does not list sessions yet (error 12), so
//! this file runs against the native host only.

mod common;

use common::{answer, connect, TestServer};
use serde_json::json;
use sessionserver_client::{Data, ListOptions, Options, SessionOptions};

#[tokio::test]
async fn sessions_are_listed_by_metadata_and_the_host_sets_it() {
    let target = TestServer::start(|_| {}).await;
    if !target.private_or_skip("discovery (the list is the whole server's)") {
        return;
    }
    let addr = target.addr;
    let ctf = SessionOptions {
        metadata: Some(Data::from(json!({"mode":"ctf","map":"dust"}))),
        max_players: Some(4),
        ..SessionOptions::default()
    };
    let a = connect(addr, Options::default()).await;
    let s1 = answer(a.create_session(&json!({}), &json!({}), ctf.clone()))
        .await
        .unwrap();
    let b = connect(addr, Options::default()).await;
    let locked = SessionOptions {
        password: Some("pw".to_owned()),
        ..ctf
    };
    let s2 = answer(b.create_session(&json!({}), &json!({}), locked))
        .await
        .unwrap();
    let c = connect(addr, Options::default()).await;
    let private = SessionOptions {
        private: Some(true),
        ..SessionOptions::default()
    };
    answer(c.create_session(&json!({}), &json!({}), private))
        .await
        .unwrap();

    let lobby = connect(addr, Options::default()).await;
    let all = answer(lobby.list_sessions(ListOptions::default()))
        .await
        .unwrap();
    let ids: Vec<u64> = all.sessions.iter().map(|s| s.session_id).collect();
    assert_eq!(ids, [s2.id, s1.id], "public ones, newest first");
    assert_eq!(all.next, None);
    let first = &all.sessions[1];
    assert_eq!((first.players, first.max_players), (1, Some(4)));
    assert_eq!(
        first.metadata.to_value(),
        json!({"mode":"ctf","map":"dust"})
    );

    let open = ListOptions {
        filter: Some(Data::from(json!({"mode":"ctf"}))),
        available: Some(true),
        ..ListOptions::default()
    };
    let found = answer(lobby.list_sessions(open.clone())).await.unwrap();
    assert_eq!(
        found
            .sessions
            .iter()
            .map(|s| s.session_id)
            .collect::<Vec<_>>(),
        [s1.id]
    );

    // Pages of one.
    let page = ListOptions {
        limit: Some(1),
        ..ListOptions::default()
    };
    let p1 = answer(lobby.list_sessions(page.clone())).await.unwrap();
    let p2 = answer(lobby.list_sessions(ListOptions {
        after: p1.next,
        ..page
    }))
    .await
    .unwrap();
    assert_eq!(p1.sessions[0].session_id, s2.id);
    assert_eq!(p2.sessions[0].session_id, s1.id);

    // The host changes its metadata; a member may not; nobody lists from a session.
    let set = answer(a.set_metadata(&json!({"mode":"dm"}))).await.unwrap();
    assert_eq!(set.as_str(), r#"{"mode":"dm"}"#);
    assert!(answer(lobby.list_sessions(open))
        .await
        .unwrap()
        .sessions
        .is_empty());
    answer(lobby.join_session(s1.id, None)).await.unwrap();
    assert_eq!(
        answer(lobby.set_metadata(&json!({})))
            .await
            .unwrap_err()
            .code(),
        Some(29)
    );
    let err = answer(lobby.list_sessions(ListOptions::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(32));

    for client in [a, b, c, lobby] {
        answer(client.close()).await;
    }
    target.shutdown().await;
}

#[tokio::test]
async fn join_or_create_finds_a_match_or_makes_one() {
    let target = TestServer::start(|_| {}).await;
    if !target.private_or_skip("joinOrCreate (it needs the server's sessions to itself)") {
        return;
    }
    let addr = target.addr;
    let ctf = json!({"mode":"ctf"});
    let a = connect(addr, Options::default()).await;
    let first =
        answer(a.join_or_create(&ctf, &json!({}), &json!({"x":0}), SessionOptions::default()))
            .await
            .expect("created");
    assert_eq!(first.players.len(), 1);
    let b = connect(addr, Options::default()).await;
    let second =
        answer(b.join_or_create(&ctf, &json!({}), &json!({"x":0}), SessionOptions::default()))
            .await
            .expect("joined");
    assert_eq!(second.id, first.id, "the match is joined");
    let c = connect(addr, Options::default()).await;
    let other = answer(c.join_or_create(
        &json!({"mode":"dm"}),
        &json!({}),
        &json!({}),
        SessionOptions::default(),
    ))
    .await
    .expect("created");
    assert_ne!(other.id, first.id);
    // The created session's metadata is the filter, and both players are in it.
    let lobby = connect(addr, Options::default()).await;
    let found = answer(lobby.list_sessions(ListOptions {
        filter: Some(Data::from(ctf)),
        ..ListOptions::default()
    }))
    .await
    .unwrap();
    assert_eq!(found.sessions.len(), 1);
    assert_eq!(
        (found.sessions[0].session_id, found.sessions[0].players),
        (first.id, 2)
    );
    assert_eq!(found.sessions[0].metadata.to_value(), json!({"mode":"ctf"}));
    for client in [a, b, c, lobby] {
        answer(client.close()).await;
    }
    target.shutdown().await;
}
