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
