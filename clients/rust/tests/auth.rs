//! Connect-time auth (PROTOCOL.md): a server with a secret refuses a client without a token
//! (the HTTP 401 surfaces as `Error::WebSocket`); a JWT in the URL (`?token=`) gets through,
//! and reconnects reuse that URL, so the seat is taken back after a drop.

mod common;

use common::{answer, quick, until, Proxy, TestServer};
use serde_json::json;
use sessionserver_client::{Client, Error, Event, Options, Replay, SessionOptions};

const SECRET: &str = "a secret of at least thirty-two bytes, for this test only";

fn token(subject: &str) -> String {
    sessionserver_core::auth::sign_hs256(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &format!(r#"{{"sub":"{subject}"}}"#),
        SECRET.as_bytes(),
    )
}

#[tokio::test]
async fn a_token_in_the_url_gets_through_and_reconnects_reuse_it() {
    let target = TestServer::start(|c| {
        c.authorize = Some(sessionserver::Authorizer::jwt_hs256(SECRET).expect("long enough"));
    })
    .await;
    if !target.private_or_skip("the auth test (it needs a server with its secret)") {
        return;
    }
    let url = format!("ws://{}/", target.addr);
    let refused = answer(Client::connect(&url, Options::default())).await;
    let Err(err @ Error::WebSocket(_)) = refused else {
        panic!("refused without a token")
    };
    assert!(err.to_string().contains("401"), "{err}");

    let a = answer(Client::connect(
        &format!("{url}?token={}", token("ada")),
        quick(),
    ))
    .await
    .expect("a token gets through");
    let s = answer(a.create_session(&json!({}), &json!({"x":0}), SessionOptions::default()))
        .await
        .unwrap();

    // Through a proxy that cuts the connection: the reconnect carries the token again.
    let proxy = Proxy::start(target.addr).await;
    let b_url = format!("ws://{}/?token={}", proxy.addr, token("bob"));
    let b = answer(Client::connect(&b_url, quick()))
        .await
        .expect("bob connects");
    answer(b.join_session(s.id, None)).await.unwrap();
    let b_id = b.player_id().unwrap();
    proxy.cut().await;
    let (replay, _) = until(&b, |e| match e {
        Event::Resumed { replay, .. } => Some(*replay),
        Event::Lost { .. } => panic!("lost: {e:?}"),
        _ => None,
    })
    .await;
    assert_eq!(replay, Replay::Frames);
    assert_eq!(b.player_id(), Some(b_id));
    answer(a.close()).await;
    answer(b.close()).await;
    target.shutdown().await;
}
