//! Player and session IDs: one playerID per connection, fixed while it is connected; never
//! reused; on the native host they count up from 0.

use sessionserver_tests::{cmd, frames, json, Spelling, Target};

const SP: Spelling = Spelling::Short;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_count_up_from_zero_on_a_fresh_server() {
    let t = Target::start().await;
    if !t.private_or_skip("ids_count_up_from_zero_on_a_fresh_server") {
        return;
    }
    let mut a = t.connect("a").await;
    let mut b = t.connect("b").await;
    let mut c = t.connect("c").await;
    // IDs are the connections' order, whatever order they first act in.
    let (s0, pc) = c.create(SP, &json!({}), &json!({})).await;
    let (s1, pa) = a.create(SP, &json!({}), &json!({})).await;
    let pb = b
        .join(SP, s0, &json!({}), &json!({}), &[(pc, json!({}))])
        .await;
    assert_eq!((s0, s1), (0, 1), "session IDs count from 0");
    assert_eq!(
        (pa, pb, pc),
        (0, 1, 2),
        "player IDs count from 0 in connection order"
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn player_id_is_fixed_across_leave_create_and_join() {
    let t = Target::start().await;
    if !t.relay_only_or_skip("player_id_is_fixed_across_leave_create_and_join") {
        return;
    }
    let mut a = t.connect("a").await;
    let mut b = t.connect("b").await;
    let (s, pb) = b.create(SP, &json!({}), &json!({})).await;
    let (s2, pa) = a.create(SP, &json!({}), &json!({})).await;
    let mut sessions = vec![s, s2];
    for _ in 0..3 {
        a.send_json(&cmd::leave()).await;
        a.expect_frame(&frames::session_leave()).await;
        let again = a
            .join(SP, s, &json!({}), &json!({}), &[(pb, json!({}))])
            .await;
        assert_eq!(again, pa, "a connection's playerID never changes");
        b.expect_frame(&frames::player_join(SP, pa, &json!({})))
            .await;
        a.send_json(&cmd::leave()).await;
        a.expect_frame(&frames::session_leave()).await;
        b.expect_frame(&frames::player_leave(pa)).await;
        let (s3, again) = a.create(SP, &json!({}), &json!({})).await;
        assert_eq!(again, pa, "a connection's playerID never changes");
        t.assert_new_id("session", &sessions, s3);
        sessions.push(s3);
    }
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_never_reused() {
    let t = Target::start().await;
    let mut seen_players = Vec::new();
    let mut seen_sessions = Vec::new();
    for i in 0..5 {
        let mut c = t.connect(&format!("c{i}")).await;
        let (s, p) = c.create(SP, &json!({}), &json!({})).await;
        // Leaving destroys the (now empty) session; closing ends the player.
        c.send_json(&cmd::leave()).await;
        c.expect_frame(&frames::session_leave()).await;
        c.close().await;
        t.assert_new_id("player", &seen_players, p);
        t.assert_new_id("session", &seen_sessions, s);
        seen_players.push(p);
        seen_sessions.push(s);
    }
    t.shutdown().await;
}
