//! Finding a game (issue 17), black-box, on a server of its own (listing sees every public
//! session of the server, so a shared server's other tests would show up): metadata,
//! `listSessions` with a filter and `available`, private sessions absent.

use sessionserver_tests::{json, Target};

#[tokio::test]
async fn public_sessions_are_listed_with_their_metadata_and_private_ones_are_not() {
    let t = Target::start().await;
    if !t.private_or_skip("public_sessions_are_listed_...") {
        return;
    }
    let mut a = t.connect("a").await;
    a.send_json(
        r#"{"command":"createSession","options":{"maxPlayers":4,"metadata":{"mode":"ctf"}}}"#,
    )
    .await;
    let ctf = a.expect("sessionJoin").await["sessionID"].as_u64().unwrap();
    let mut b = t.connect("b").await;
    b.send_json(
        r#"{"command":"createSession","options":{"private":true,"metadata":{"mode":"ctf"}}}"#,
    )
    .await;
    b.expect("sessionJoin").await;
    let mut c = t.connect("c").await;
    c.send_json(
        r#"{"command":"createSession","options":{"metadata":{"mode":"ffa"},"password":"x"}}"#,
    )
    .await;
    let ffa = c.expect("sessionJoin").await["sessionID"].as_u64().unwrap();

    let mut browser = t.connect("browser").await;
    browser.send_json(r#"{"command":"listSessions"}"#).await;
    let all = browser.expect("sessionList").await;
    assert_eq!(
        all["sessions"],
        json!([
            {"sessionID":ffa,"players":1,"maxPlayers":null,"metadata":{"mode":"ffa"}},
            {"sessionID":ctf,"players":1,"maxPlayers":4,"metadata":{"mode":"ctf"}},
        ])
    );
    assert_eq!(all["next"], json!(null));
    browser
        .send_json(r#"{"command":"listSessions","filter":{"mode":"ctf"},"available":true}"#)
        .await;
    let open = browser.expect("sessionList").await;
    assert_eq!(open["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(open["sessions"][0]["sessionID"], ctf);
    // The host changes the metadata; the list shows it.
    a.send_json(r#"{"command":"setMetadata","metadata":{"mode":"ctf","round":2}}"#)
        .await;
    a.expect("sessionMetadata").await;
    browser
        .send_json(r#"{"command":"listSessions","filter":{"round":2}}"#)
        .await;
    let round = browser.expect("sessionList").await;
    assert_eq!(
        round["sessions"][0]["metadata"],
        json!({"mode":"ctf","round":2})
    );
    t.shutdown().await;
}

#[tokio::test]
async fn join_or_create_fills_to_max_players_and_racers_never_share_the_last_seat() {
    let t = Target::start().await;
    if !t.private_or_skip("join_or_create_...") {
        return;
    }
    let frame = r#"{"command":"joinOrCreate","filter":{"mode":"duel"},"options":{"maxPlayers":2}}"#;
    let mut host = t.connect("host").await;
    host.send_json(frame).await;
    let s = host.expect("sessionJoin").await["sessionID"]
        .as_u64()
        .unwrap();
    // Two racers for the one seat left, sent at once.
    let mut x = t.connect("x").await;
    let mut y = t.connect("y").await;
    x.send_json(frame).await;
    y.send_json(frame).await;
    let rx = x.expect("sessionJoin").await;
    let ry = y.expect("sessionJoin").await;
    let seated = [&rx, &ry]
        .into_iter()
        .filter(|r| r["sessionID"] == s)
        .count();
    assert_eq!(seated, 1, "{rx} {ry}");
    let other = if rx["sessionID"] == s { &ry } else { &rx };
    let mut browser = t.connect("browser").await;
    browser
        .send_json(r#"{"command":"listSessions","filter":{"mode":"duel"}}"#)
        .await;
    let list = browser.expect("sessionList").await;
    assert_eq!(
        list["sessions"],
        json!([
            {"sessionID":other["sessionID"],"players":1,"maxPlayers":2,"metadata":{"mode":"duel"}},
            {"sessionID":s,"players":2,"maxPlayers":2,"metadata":{"mode":"duel"}},
        ])
    );
    t.shutdown().await;
}
