//! Messages and ping (issue 17), black-box, on every host: `sendMessage` to all, to some,
//! to a stranger; members without the `messages` feature get nothing; data verbatim; `ping`
//! answered in the lobby and in a session with `t` as sent and the host's clock.

use sessionserver_tests::{is_error_with_message, json, Client, Spelling, Target};

const SP: Spelling = Spelling::Short;

async fn hello_messages(client: &mut Client) {
    client
        .send_json(r#"{"command":"hello","features":["messages"]}"#)
        .await;
    let reply = client.expect("hello").await;
    assert_eq!(reply["features"], json!(["messages"]), "{reply}");
}

#[tokio::test]
async fn messages_to_all_to_some_and_not_to_legacy_members() {
    let t = Target::start().await;
    let mut a = t.connect("a").await;
    hello_messages(&mut a).await;
    let (session, a_id) = a.create(SP, &json!({}), &json!({})).await;
    let mut b = t.connect_to_session("b", session).await;
    hello_messages(&mut b).await;
    let b_id = b
        .join(SP, session, &json!({}), &json!({}), &[(a_id, json!({}))])
        .await;
    a.expect("playerJoin").await;
    let mut legacy = t.connect("legacy").await;
    let members = [(a_id, json!({})), (b_id, json!({}))];
    legacy
        .join(SP, session, &json!({}), &json!({}), &members)
        .await;
    a.expect("playerJoin").await;
    b.expect("playerJoin").await;

    let data = r#"{"text":"gg", "n":1e400, "deep":[{"x":[]}]}"#;
    a.send_json(&format!(r#"{{"command":"sendMessage","data":{data}}}"#))
        .await;
    assert_eq!(
        b.recv_text().await,
        format!(r#"{{"command":"message","error":0,"playerID":{a_id},"data":{data}}}"#)
    );
    assert_eq!(
        a.recv_text().await,
        r#"{"command":"messageSent","error":0,"recipients":1}"#
    );
    legacy.expect_nothing_pending().await;

    b.send_json(&format!(
        r#"{{"command":"sendMessage","data":"psst","to":[{b_id}]}}"#
    ))
    .await;
    assert_eq!(b.expect("message").await["data"], "psst");
    assert_eq!(b.expect("messageSent").await["recipients"], 1);
    a.expect_nothing_pending().await;

    a.rejects(
        r#"{"command":"sendMessage","data":1,"to":[12345]}"#,
        "messageSent",
        31,
    )
    .await;
    b.expect_nothing_pending().await;
    legacy.expect_nothing_pending().await;
    t.shutdown().await;
}

#[tokio::test]
async fn ping_is_answered_in_the_lobby_and_in_a_session() {
    let t = Target::start().await;
    let mut c = t.connect("c").await;
    c.send_json(r#"{"command":"ping","t":{"seq":1}}"#).await;
    let pong = c.expect("pong").await;
    assert_eq!(pong["t"], json!({"seq":1}));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let server = pong["serverTime"].as_i64().expect("serverTime");
    // The same machine's clock: milliseconds since the epoch, not some other origin.
    assert!((server - now).abs() < 60_000, "{server} vs {now}");
    c.create(SP, &json!({}), &json!({"x":0})).await;
    c.send_json(&sessionserver_tests::cmd::update_player(
        SP,
        &json!({"x":1}),
    ))
    .await;
    c.send_json(r#"{"command":"ping","t":"after"}"#).await;
    c.expect("playerUpdate").await;
    assert_eq!(c.expect("pong").await["t"], "after");
    c.send_json(r#"{"command":"sendMessage"}"#).await;
    let refused = c.recv().await;
    assert!(
        is_error_with_message(&refused, "messageSent", 13),
        "{refused}"
    );
    t.shutdown().await;
}
