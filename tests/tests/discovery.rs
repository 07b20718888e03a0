//! Finding a game (issue 17), black-box, on every host: metadata, `listSessions` with a filter
//! and `available`, private sessions absent, `joinOrCreate` filling a session and racers for
//! its last seat. Each test's sessions carry a metadata value of their own (`run`), and every
//! listing filters on it, so other tests' sessions on a shared server never show up. The edge
//! host's listing is eventually consistent (its registry hears of a change one request after
//! the session made it), so a listing is asked again until it shows what the test made.

use sessionserver_tests::{json, Client, Target, Value, TIMEOUT};

/// A metadata value no other test (or run) uses.
fn run_id(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{test}-{nanos}")
}

/// Lists with `frame` until `done` holds for the `sessionList` (the edge's listing may lag),
/// and returns it; panics with the last one after [`TIMEOUT`].
async fn list_until(client: &mut Client, frame: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        client.send_json(frame).await;
        let list = client.expect("sessionList").await;
        if done(&list) {
            return list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listing never showed what was expected; last: {list}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn public_sessions_are_listed_with_their_metadata_and_private_ones_are_not() {
    let t = Target::start().await;
    if !t.relay_only_or_skip(
        "public_sessions_are_listed_with_their_metadata_and_private_ones_are_not",
    ) {
        return;
    }
    let run = run_id("listing");
    let mut a = t.connect("a").await;
    a.send_json(
        &json!({"command":"createSession","options":{"maxPlayers":4,"metadata":{"run":run,"mode":"ctf"}}})
            .to_string(),
    )
    .await;
    let ctf = a.expect("sessionJoin").await["sessionID"].as_u64().unwrap();
    let mut b = t.connect("b").await;
    b.send_json(
        &json!({"command":"createSession","options":{"private":true,"metadata":{"run":run,"mode":"ctf"}}})
            .to_string(),
    )
    .await;
    b.expect("sessionJoin").await;
    let mut c = t.connect("c").await;
    c.send_json(
        &json!({"command":"createSession","options":{"metadata":{"run":run,"mode":"ffa"},"password":"x"}})
            .to_string(),
    )
    .await;
    let ffa = c.expect("sessionJoin").await["sessionID"].as_u64().unwrap();

    let mut browser = t.connect("browser").await;
    let all = json!({"command":"listSessions","filter":{"run":run}}).to_string();
    let expected = json!([
        {"sessionID":ffa,"players":1,"maxPlayers":null,"metadata":{"run":run,"mode":"ffa"}},
        {"sessionID":ctf,"players":1,"maxPlayers":4,"metadata":{"run":run,"mode":"ctf"}},
    ]);
    let listed = list_until(&mut browser, &all, |l| l["sessions"] == expected).await;
    assert_eq!(listed["next"], json!(null));
    let open = json!({"command":"listSessions","filter":{"run":run,"mode":"ctf"},"available":true})
        .to_string();
    let open = list_until(&mut browser, &open, |l| {
        l["sessions"].as_array().is_some_and(|s| !s.is_empty())
    })
    .await;
    assert_eq!(open["sessions"].as_array().unwrap().len(), 1, "{open}");
    assert_eq!(open["sessions"][0]["sessionID"], ctf);
    // The host changes the metadata; the list shows it.
    a.send_json(
        &json!({"command":"setMetadata","metadata":{"run":run,"mode":"ctf","round":2}}).to_string(),
    )
    .await;
    a.expect("sessionMetadata").await;
    let round = json!({"command":"listSessions","filter":{"run":run,"round":2}}).to_string();
    let round = list_until(&mut browser, &round, |l| {
        l["sessions"].as_array().is_some_and(|s| s.len() == 1)
    })
    .await;
    assert_eq!(round["sessions"][0]["sessionID"], ctf);
    t.shutdown().await;
}

#[tokio::test]
async fn join_or_create_fills_to_max_players_and_racers_never_share_the_last_seat() {
    let t = Target::start().await;
    if !t.relay_only_or_skip(
        "join_or_create_fills_to_max_players_and_racers_never_share_the_last_seat",
    ) {
        return;
    }
    let run = run_id("quickplay");
    let frame = json!({"command":"joinOrCreate","filter":{"run":run},"options":{"maxPlayers":2}})
        .to_string();
    let mut host = t.connect("host").await;
    host.send_json(&frame).await;
    let s = host.expect("sessionJoin").await["sessionID"]
        .as_u64()
        .unwrap();
    // Until the listing shows it (the edge's registry), a joinOrCreate would create another.
    let mut browser = t.connect("browser").await;
    let list = json!({"command":"listSessions","filter":{"run":run}}).to_string();
    list_until(&mut browser, &list, |l| {
        l["sessions"].as_array().is_some_and(|s| s.len() == 1)
    })
    .await;
    // Two racers for the one seat left, sent at once.
    let mut x = t.connect("x").await;
    let mut y = t.connect("y").await;
    x.send_json(&frame).await;
    y.send_json(&frame).await;
    let rx = x.expect("sessionJoin").await;
    let ry = y.expect("sessionJoin").await;
    let seated = [&rx, &ry]
        .into_iter()
        .filter(|r| r["sessionID"] == s)
        .count();
    assert_eq!(seated, 1, "exactly one racer has the seat: {rx} {ry}");
    let other = if rx["sessionID"] == s { &ry } else { &rx };
    let expected = json!([
        {"sessionID":other["sessionID"],"players":1,"maxPlayers":2,"metadata":{"run":run}},
        {"sessionID":s,"players":2,"maxPlayers":2,"metadata":{"run":run}},
    ]);
    list_until(&mut browser, &list, |l| l["sessions"] == expected).await;
    t.shutdown().await;
}

#[tokio::test]
async fn a_listing_comes_in_pages_that_follow_next() {
    let t = Target::start().await;
    if !t.relay_only_or_skip("a_listing_comes_in_pages_that_follow_next") {
        return;
    }
    let run = run_id("pages");
    let mut creators = Vec::new();
    let mut made = Vec::new();
    for i in 0..5 {
        let mut c = t.connect(&format!("c{i}")).await;
        c.send_json(
            &json!({"command":"createSession","options":{"metadata":{"run":run}}}).to_string(),
        )
        .await;
        made.push(c.expect("sessionJoin").await["sessionID"].as_u64().unwrap());
        creators.push(c);
    }
    let newest_first: Vec<u64> = made.iter().rev().copied().collect();
    let mut browser = t.connect("browser").await;
    let all = json!({"command":"listSessions","filter":{"run":run}}).to_string();
    list_until(&mut browser, &all, |l| {
        l["sessions"].as_array().is_some_and(|s| s.len() == 5)
    })
    .await;
    let mut seen = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let mut frame = json!({"command":"listSessions","filter":{"run":run},"limit":2});
        if let Some(after) = after {
            frame["after"] = json!(after);
        }
        browser.send_json(&frame.to_string()).await;
        let page = browser.expect("sessionList").await;
        let ids: Vec<u64> = page["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["sessionID"].as_u64().unwrap())
            .collect();
        assert!(ids.len() <= 2, "{page}");
        seen.extend(ids);
        match page["next"].as_u64() {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, newest_first);
    t.shutdown().await;
}
