//! Messages and ping through the client, against a real server: sendMessage to every other
//! member and to some, `Event::Message` only for members that asked for `messages`, error
//! 31, and ping's round trip and server clock.

mod common;

use common::{answer, connect, until, TestServer};
use serde_json::json;
use sessionserver_client::{Error, Event, Options, SessionOptions};

fn with_messages() -> Options {
    Options {
        messages: true,
        ..Options::default()
    }
}

#[tokio::test]
async fn players_exchange_messages_and_ping() {
    let target = TestServer::start(|_| {}).await;
    let addr = target.addr;
    let a = connect(addr, with_messages()).await;
    let b = connect(addr, with_messages()).await;
    let c = connect(addr, Options::default()).await; // no `messages`: gets none
    let s = answer(a.create_session(&json!({}), &json!({}), SessionOptions::default()))
        .await
        .unwrap();
    answer(b.join_session(s.id, None)).await.unwrap();
    answer(c.join_session(s.id, None)).await.unwrap();
    let (a_id, b_id) = (a.player_id().unwrap(), b.player_id().unwrap());
    assert!(a.features().unwrap().contains(&"messages".to_owned()));

    // To every other member: only b asked for messages.
    assert_eq!(
        answer(a.send_message(&json!({"text":"gg"}), None))
            .await
            .unwrap(),
        1
    );
    let (got, _) = until(&b, |e| match e {
        Event::Message { player_id, data } => Some((*player_id, data.as_str().to_owned())),
        _ => None,
    })
    .await;
    assert_eq!(got, (a_id, r#"{"text":"gg"}"#.to_owned()));

    // To some: b answers a alone, any JSON value.
    assert_eq!(
        answer(b.send_message(&json!("ready"), Some(&[a_id])))
            .await
            .unwrap(),
        1
    );
    let (got, _) = until(&a, |e| match e {
        Event::Message { player_id, data } => Some((*player_id, data.as_str().to_owned())),
        _ => None,
    })
    .await;
    assert_eq!(got, (b_id, r#""ready""#.to_owned()));

    // A recipient not in the session: 31, and nobody gets it.
    let err = answer(a.send_message(&json!(1), Some(&[b_id, 999_999])))
        .await
        .unwrap_err();
    let Error::Session(e) = err else {
        panic!("{err:?}")
    };
    assert_eq!(e.code, 31);
    assert_eq!(
        e.meaning,
        "sendMessage names a recipient that is no member of the session; nothing was sent"
    );

    // c never got a message: its next event after a's update is that update.
    answer(a.update_player(&json!({}))).await.unwrap();
    let (_, before) = until(&c, |e| {
        matches!(e, Event::PlayerUpdate { player_id, .. } if *player_id == a_id).then_some(())
    })
    .await;
    assert!(
        !before.iter().any(|e| matches!(e, Event::Message { .. })),
        "{before:?}"
    );

    let pong = answer(a.ping()).await.expect("pong");
    assert!(
        pong.server_time > 1_700_000_000_000,
        "the server's clock in ms: {pong:?}"
    );
    // Ping works in the lobby too.
    let lobby = connect(addr, Options::default()).await;
    answer(lobby.ping()).await.expect("pong in the lobby");

    for client in [a, b, c, lobby] {
        answer(client.close()).await;
    }
    target.shutdown().await;
}
