//! The player machine on its own, driven as a host drives it: what it asks the host to do for
//! each input, including the inputs only a host sees (a session gone, a join refused, frames
//! that arrive while it waits).

use sessionserver_core::player::MAX_HELD;
use sessionserver_core::{
    CloseReason, Command, ConnectionConfig, JoinTarget, Limits, Player, PlayerId, PlayerOutput,
    SessionId, ToPlayer, ToSession,
};
use wasm_bindgen_test::wasm_bindgen_test;

fn player() -> Player {
    Player::new(
        PlayerId(7),
        Limits::default(),
        ConnectionConfig::default(),
        0,
    )
}

fn outputs(player: &mut Player) -> Vec<PlayerOutput> {
    std::iter::from_fn(|| player.poll_output()).collect()
}

const JOIN_LATEST: &str = r#"{"command":"joinSession","sessionID":-1}"#;
const UPDATE: &str = r#"{"command":"updatePlayer","player":{"x":1}}"#;

#[wasm_bindgen_test(unsupported = test)]
fn frames_that_arrive_while_joining_wait_and_go_to_the_session_in_order() {
    let mut p = player();
    p.handle_text(0, JOIN_LATEST);
    assert!(matches!(
        outputs(&mut p)[..],
        [PlayerOutput::Join {
            target: JoinTarget::Latest,
            skip: None,
            ..
        }]
    ));
    assert!(p.is_waiting());
    p.handle_text(0, UPDATE);
    p.handle_text(0, r#"{"command":"leaveSession"}"#);
    assert_eq!(
        outputs(&mut p),
        vec![],
        "nothing goes out while the join is on its way"
    );
    p.handle_from_session(ToPlayer::Joined {
        session: SessionId(3),
    });
    let out = outputs(&mut p);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(matches!(
        &out[0],
        PlayerOutput::ToSession(ToSession::Command {
            command: Ok(Command::UpdatePlayer(_)),
            ..
        })
    ));
    assert!(matches!(
        &out[1],
        PlayerOutput::ToSession(ToSession::Command {
            command: Ok(Command::LeaveSession),
            ..
        })
    ));
    assert!(p.is_waiting(), "the leave waits for its answer");
    assert_eq!(p.session(), Some(SessionId(3)));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_latest_join_whose_session_ended_looks_again_without_it() {
    let mut p = player();
    p.handle_text(0, JOIN_LATEST);
    let _ = outputs(&mut p);
    p.handle_session_gone(SessionId(5));
    assert!(matches!(
        outputs(&mut p)[..],
        [PlayerOutput::Join {
            target: JoinTarget::Latest,
            skip: Some(SessionId(5)),
            ..
        }]
    ));
    p.handle_no_such_session();
    match &outputs(&mut p)[..] {
        [PlayerOutput::Send(frame)] => {
            assert_eq!(frame.as_str(), r#"{"command":"sessionJoin","error":6}"#)
        }
        other => panic!("expected error 6, got {other:?}"),
    }
    assert!(!p.is_waiting());
}

#[wasm_bindgen_test(unsupported = test)]
fn a_join_of_an_id_whose_session_ended_is_error_7() {
    let mut p = player();
    p.handle_text(0, r#"{"command":"joinSession","sessionID":5}"#);
    let _ = outputs(&mut p);
    p.handle_session_gone(SessionId(5));
    match &outputs(&mut p)[..] {
        [PlayerOutput::Send(frame)] => {
            assert_eq!(frame.as_str(), r#"{"command":"sessionJoin","error":7}"#)
        }
        other => panic!("expected error 7, got {other:?}"),
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_connection_that_closes_while_joining_or_in_a_session_leaves_and_in_the_lobby_does_not() {
    let mut lobby = player();
    lobby.handle_closed();
    assert_eq!(outputs(&mut lobby), vec![]);

    let mut joining = player();
    joining.handle_text(0, JOIN_LATEST);
    let _ = outputs(&mut joining);
    joining.handle_closed();
    assert_eq!(
        outputs(&mut joining),
        vec![PlayerOutput::ToSession(ToSession::Disconnect {
            player: PlayerId(7)
        })]
    );
    joining.handle_closed();
    assert_eq!(
        outputs(&mut joining),
        vec![],
        "a second close changes nothing"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_client_that_keeps_sending_while_waiting_is_closed_not_buffered_without_end() {
    let mut p = Player::new(
        PlayerId(1),
        Limits::default(),
        ConnectionConfig {
            command_burst: 100_000,
            ..ConnectionConfig::default()
        },
        0,
    );
    p.handle_text(0, JOIN_LATEST);
    let _ = outputs(&mut p);
    for _ in 0..MAX_HELD {
        p.handle_text(0, UPDATE);
    }
    assert_eq!(outputs(&mut p), vec![]);
    p.handle_text(0, UPDATE);
    assert_eq!(
        outputs(&mut p),
        vec![PlayerOutput::Close(CloseReason::RateLimit)]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_member_whose_session_is_lost_is_closed_with_1011_and_leaves_nothing_behind() {
    let mut p = player();
    p.handle_text(0, JOIN_LATEST);
    let _ = outputs(&mut p);
    p.handle_from_session(ToPlayer::Joined {
        session: SessionId(2),
    });
    p.handle_session_gone(SessionId(2));
    assert_eq!(
        outputs(&mut p),
        vec![PlayerOutput::Close(CloseReason::SessionLost)]
    );
    p.handle_closed();
    assert_eq!(
        outputs(&mut p),
        vec![],
        "no disconnect to a session that is gone"
    );
}

/// The text of the frames among `out`.
fn sent(out: &[PlayerOutput]) -> Vec<&str> {
    out.iter()
        .filter_map(|o| match o {
            PlayerOutput::Send(frame) => Some(frame.as_str()),
            _ => None,
        })
        .collect()
}

#[wasm_bindgen_test(unsupported = test)]
fn a_create_join_resume_or_match_for_another_session_is_error_34_and_stays_in_the_lobby() {
    let here = Some(SessionId(40));
    for (command, reply) in [
        (r#"{"command":"createSession"}"#, "sessionJoin"),
        (r#"{"command":"joinSession","sessionID":41}"#, "sessionJoin"),
        (JOIN_LATEST, "sessionJoin"),
        (r#"{"command":"joinOrCreate"}"#, "sessionJoin"),
        (
            r#"{"command":"resumeSession","resumeToken":"41.3.00000000000000000000000000000000"}"#,
            "sessionResume",
        ),
    ] {
        let config = ConnectionConfig {
            features: sessionserver_core::Features::RESUME,
            ..ConnectionConfig::default()
        };
        let mut p = Player::new(PlayerId(7), Limits::default(), config, 0);
        p.handle_text(0, command);
        let _ = outputs(&mut p);
        assert!(p.is_waiting(), "{command} waits for the host");
        // Held meanwhile, answered after the refusal.
        p.handle_text(0, UPDATE);
        p.handle_other_session(here);
        let out = outputs(&mut p);
        let frames = sent(&out);
        assert_eq!(frames.len(), 2, "{command}: {out:?}");
        let refusal: serde_json::Value = serde_json::from_str(frames[0]).unwrap();
        assert_eq!(refusal["command"], reply, "{command}");
        assert_eq!(refusal["error"], 34, "{command}");
        assert!(
            refusal["message"]
                .as_str()
                .is_some_and(|m| m.contains("session 40") && m.contains("/session/new")),
            "{command}: {refusal}"
        );
        let held: serde_json::Value = serde_json::from_str(frames[1]).unwrap();
        assert_eq!(
            held["error"], 2,
            "the held update is answered from the lobby"
        );
        assert!(!p.is_waiting() && p.session().is_none());
    }
    // Nothing waits: nothing to refuse.
    let mut p = player();
    p.handle_other_session(here);
    assert_eq!(outputs(&mut p), vec![]);
    // listSessions is the host's to answer: the player gives it the refusal, in order.
    p.handle_text(0, r#"{"command":"listSessions"}"#);
    assert!(matches!(
        outputs(&mut p)[..],
        [PlayerOutput::ListSessions(_)]
    ));
    p.answer_list_elsewhere(None);
    let out = outputs(&mut p);
    let refusal: serde_json::Value = serde_json::from_str(sent(&out)[0]).unwrap();
    assert_eq!(refusal["command"], "sessionList");
    assert_eq!(refusal["error"], 34);
    assert!(refusal["message"]
        .as_str()
        .unwrap()
        .contains("a new session"));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_restored_player_is_where_it_was_with_its_ids_and_extensions() {
    let config = ConnectionConfig {
        features: sessionserver_core::Features::RESUME,
        ..ConnectionConfig::default()
    };
    let asked = sessionserver_core::Features::RESUME.union(sessionserver_core::Features::HOST);
    // A member that resumed the seat of player 3 on connection 9.
    let mut p = Player::restore(
        PlayerId(3),
        PlayerId(9),
        Some(SessionId(40)),
        asked,
        Limits::default(),
        config,
        0,
    );
    assert_eq!((p.id(), p.connection()), (PlayerId(3), PlayerId(9)));
    assert_eq!(p.session(), Some(SessionId(40)));
    assert_eq!(
        p.features(),
        sessionserver_core::Features::RESUME,
        "only what the host offers"
    );
    assert!(!p.is_waiting());
    // Its commands go to its session as the member's; its close is the connection's.
    p.handle_text(0, UPDATE);
    assert!(matches!(
        outputs(&mut p)[..],
        [PlayerOutput::ToSession(ToSession::Command {
            player: PlayerId(3),
            command: Ok(Command::UpdatePlayer(_)),
        })]
    ));
    p.handle_closed();
    assert_eq!(
        outputs(&mut p),
        vec![PlayerOutput::ToSession(ToSession::Disconnect {
            player: PlayerId(9)
        })]
    );
    // One in the lobby sends its session commands nowhere.
    let mut p = Player::restore(
        PlayerId(5),
        PlayerId(5),
        None,
        sessionserver_core::Features::NONE,
        Limits::default(),
        ConnectionConfig::default(),
        0,
    );
    p.handle_text(0, UPDATE);
    let out = outputs(&mut p);
    let frame: serde_json::Value = serde_json::from_str(sent(&out)[0]).unwrap();
    assert_eq!(frame["error"], 2);
    p.handle_closed();
    assert_eq!(outputs(&mut p), vec![]);
}
