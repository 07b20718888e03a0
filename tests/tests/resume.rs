//! The `resume` extension, black-box, on every host that offers it (the in-process native
//! server, and the edge host through `SESSIONSERVER_URL`): a member whose TCP connection is
//! destroyed mid-game takes its seat back on a new connection with its token, with its ID and
//! every update it missed in order, and nobody sees it leave; a used or forged token is
//! refused (22); an original client in the same session sees the original protocol only.
//! Without a resume the others see the member leave when the grace period ends.

use sessionserver_tests::{
    assert_same, frames, is_error_with_message, json, keys, Client, Spelling, Target, Value,
    TIMEOUT,
};

const SP: Spelling = Spelling::Short;

async fn hello(client: &mut Client) {
    client
        .send_json(r#"{"command":"hello","features":["resume"]}"#)
        .await;
    let reply = client.expect("hello").await;
    assert_eq!(reply["features"], json!(["resume"]), "{reply}");
}

/// A `sessionJoin` that carries a token after the original fields; returns the token.
fn token_of(reply: &Value, original: &Value) -> String {
    let token = reply["resumeToken"]
        .as_str()
        .unwrap_or_else(|| panic!("no resumeToken in {reply}"))
        .to_owned();
    let mut without = reply.clone();
    without.as_object_mut().unwrap().remove("resumeToken");
    assert_same(&without, original, "sessionJoin's original fields");
    assert_eq!(keys(reply).last(), Some(&"resumeToken"), "{reply}");
    token
}

fn resume_frame(token: &str, received: Option<u64>) -> String {
    match received {
        Some(n) => {
            format!(r#"{{"command":"resumeSession","resumeToken":"{token}","received":{n}}}"#)
        }
        None => format!(r#"{{"command":"resumeSession","resumeToken":"{token}"}}"#),
    }
}

/// A player that said hello with `resume` and created a session: `(client, session, id)`.
async fn resumable_creator(t: &Target, name: &str, player: &Value) -> (Client, u64, u64) {
    let mut client = t.connect(name).await;
    hello(&mut client).await;
    client
        .send_json(&sessionserver_tests::cmd::create(SP, &json!({}), player))
        .await;
    let reply = client.expect("sessionJoin").await;
    let (session, id) = (
        reply["sessionID"].as_u64().unwrap(),
        reply["playerID"].as_u64().unwrap(),
    );
    token_of(
        &reply,
        &frames::session_join(SP, session, id, &json!({}), player),
    );
    (client, session, id)
}

/// A player that said hello with `resume` and joined `session`, whose members are
/// `members`: `(client, id, token)`. The members get its playerJoin.
async fn resumable_joiner(
    t: &Target,
    name: &str,
    session: u64,
    default: &Value,
    members: &mut [(&mut Client, u64)],
) -> (Client, u64, String) {
    let mut client = t.connect_to_session(name, session).await;
    hello(&mut client).await;
    client
        .send_json(&sessionserver_tests::cmd::join_id(session))
        .await;
    let reply = client.expect("sessionJoin").await;
    let id = reply["playerID"].as_u64().unwrap();
    let token = token_of(
        &reply,
        &frames::session_join(SP, session, id, &json!({}), default),
    );
    for (_, member) in members.iter() {
        client
            .expect_frame(&frames::player_join(SP, *member, default))
            .await;
    }
    for (member, _) in members.iter_mut() {
        member
            .expect_frame(&frames::player_join(SP, id, default))
            .await;
    }
    (client, id, token)
}

/// A session of three: a (its creator) and b asked for `resume`, c is an original client.
struct Game {
    a: Client,
    session: u64,
    a_id: u64,
    b: Client,
    b_id: u64,
    /// b's resume token.
    token: String,
    c: Client,
    c_id: u64,
}

impl Game {
    async fn start(t: &Target, zero: &Value) -> Game {
        let (mut a, session, a_id) = resumable_creator(t, "a", zero).await;
        let (b, b_id, token) = resumable_joiner(t, "b", session, zero, &mut [(&mut a, a_id)]).await;
        // An original client: no hello. Its sessionJoin is the original's, exactly.
        let mut c = t.connect("c (original)").await;
        let members = [(a_id, zero.clone()), (b_id, zero.clone())];
        let c_id = c.join(SP, session, &json!({}), zero, &members).await;
        a.expect_frame(&frames::player_join(SP, c_id, zero)).await;
        Game {
            a,
            session,
            a_id,
            b,
            b_id,
            token,
            c,
            c_id,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroyed_connection_resumes_with_its_id_and_every_update_it_missed() {
    let t = Target::start().await;
    if t.resume_grace().is_some_and(|g| g.is_zero()) {
        eprintln!("SKIPPED: the server offers no resume (grace 0)");
        return;
    }
    let zero = json!({"x": 0});
    let Game {
        mut a,
        session,
        a_id,
        b,
        b_id,
        token,
        mut c,
        c_id,
    } = Game::start(&t, &zero).await;
    // b got two events since its sessionJoin: a's playerJoin and c's. (b's frames are not
    // read: they count as received once the server wrote them.)
    let received = 2;

    // b's TCP connection is destroyed (no close frame, no leave) while a keeps playing.
    b.drop_connection();
    let updates: Vec<Value> = (1..=5).map(|x| json!({"x": x})).collect();
    for data in &updates {
        a.send_json(&sessionserver_tests::cmd::update_player(SP, data))
            .await;
        let update = frames::player_update(SP, a_id, data);
        a.expect_frame(&update).await;
        c.expect_frame(&update).await;
    }

    // A new connection takes b's seat back.
    let mut b2 = t.connect_to_session("b2", session).await;
    hello(&mut b2).await;
    b2.send_json(&resume_frame(&token, Some(received))).await;
    let reply = b2.expect("sessionResume").await;
    assert_eq!(reply["sessionID"], session, "{reply}");
    assert_eq!(reply["playerID"], b_id, "b has its own ID again: {reply}");
    let new_token = reply["resumeToken"]
        .as_str()
        .expect("a new token")
        .to_owned();
    assert_ne!(new_token, token, "a token is good once");
    match reply["replay"].as_str() {
        Some("frames") => {
            // Exactly what it missed, in order: a's five updates.
            assert_eq!(reply["missed"], updates.len(), "{reply}");
            for data in &updates {
                b2.expect_frame(&frames::player_update(SP, a_id, data))
                    .await;
            }
        }
        // The edge host after its session object restarted (what b missed was in memory
        // only): the session now, and every other member with its data now.
        Some("snapshot") if !t.is_private() => {
            assert_same(&reply["session"], &json!({}), "snapshot's sessionData");
            assert_same(&reply["player"], &zero, "snapshot's own playerData");
            b2.expect_frame(&frames::player_join(SP, a_id, &updates[4]))
                .await;
            b2.expect_frame(&frames::player_join(SP, c_id, &zero)).await;
        }
        _ => panic!("a sessionResume the protocol does not define: {reply}"),
    }

    // Its updates reach the others as b, and nobody saw b leave: this is the next frame
    // everyone gets.
    let data = json!({"x": 42});
    b2.send_json(&sessionserver_tests::cmd::update_player(SP, &data))
        .await;
    let update = frames::player_update(SP, b_id, &data);
    for client in [&mut a, &mut b2, &mut c] {
        client.expect_frame(&update).await;
    }

    // The used token and a forged one (the same seat, another secret) are refused with 22,
    // and the connections stay in the lobby, usable.
    let (seat, _) = token.rsplit_once('.').expect("a token");
    let forged = format!("{seat}.{}", "0".repeat(32));
    for (name, bad) in [("reused", token.as_str()), ("forged", forged.as_str())] {
        let mut thief = t.connect(name).await;
        thief.send_json(&resume_frame(bad, None)).await;
        let refusal = thief.recv().await;
        assert!(
            is_error_with_message(&refusal, "sessionResume", 22),
            "{name} token: {refusal}"
        );
        thief.expect_nothing_pending().await;
        thief.close().await;
    }

    // The original client saw the original protocol only: every frame it got was checked
    // above (a sessionJoin without resumeToken, playerJoins, playerUpdates), and nothing else
    // is waiting for it.
    c.expect_nothing_pending().await;
    a.expect_nothing_pending().await;
    b2.expect_nothing_pending().await;
    for client in [a, b2, c] {
        client.close().await;
    }
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_resume_the_others_see_the_member_leave_when_the_grace_ends() {
    let t = Target::start_with(|config| config.limits.resume_grace_ms = 1500).await;
    let Some(grace) = t.resume_grace().filter(|g| !g.is_zero()) else {
        eprintln!(
            "SKIPPED: the server's resume grace period is not known: set {}",
            sessionserver_tests::RESUME_GRACE_VAR
        );
        return;
    };
    let zero = json!({"x": 0});
    let Game {
        mut a,
        b,
        b_id,
        token,
        c,
        c_id,
        ..
    } = Game::start(&t, &zero).await;

    // b's connection is destroyed, then the original client c goes (with a close): c leaves
    // at once, as without resume, and b only when its grace period ends, so a sees c's
    // leave first.
    b.drop_connection();
    c.close().await;
    a.expect_frame(&frames::player_leave(c_id)).await;
    a.expect_frame_within(&frames::player_leave(b_id), grace + TIMEOUT)
        .await;

    // The seat is gone: its token with it.
    let mut late = t.connect("late").await;
    late.send_json(&resume_frame(&token, None)).await;
    let refusal = late.recv().await;
    assert!(
        is_error_with_message(&refusal, "sessionResume", 22),
        "{refusal}"
    );
    a.expect_nothing_pending().await;
    late.close().await;
    a.close().await;
    t.shutdown().await;
}
