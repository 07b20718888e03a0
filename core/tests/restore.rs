//! A session rebuilt from storage with its members' resume state (the edge host after a
//! restart of its session object): away members keep their seats until their deadline, their
//! tokens stay good and get the snapshot form, and the restored session draws fresh secrets.

use std::sync::Arc;

use serde_json::Value;
use sessionserver_core::{
    parse, Change, Command, CreateRequest, Features, JsonObject, Limits, Output, PlayerId,
    ResumeRequest, ResumeToken, Session, SessionId, Spelling, StoredMember, ToPlayer, ToSession,
};
use wasm_bindgen_test::wasm_bindgen_test;

const GRACE_MS: u64 = 30_000;

fn limits() -> Limits {
    Limits {
        resume_grace_ms: GRACE_MS,
        ..Limits::default()
    }
}

/// Everything the session output, as (recipient, frame text) and the other outputs.
fn drain(session: &mut Session) -> (Vec<(Option<PlayerId>, String)>, Vec<Output>) {
    let mut frames = Vec::new();
    let mut other = Vec::new();
    while let Some(output) = session.poll_output() {
        match output {
            Output::Send { to, frame } => frames.push((Some(to), frame.as_str().to_owned())),
            Output::Broadcast { frame, .. } => frames.push((None, frame.as_str().to_owned())),
            Output::SendJoinBurst { to, burst } => {
                frames.extend(burst.map(|f| (Some(to), f.as_str().to_owned())))
            }
            output => other.push(output),
        }
    }
    (frames, other)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// Session 5 created by player 1 and joined by 2 (both with `resume`) and 3 (without).
fn game() -> (Session, String, String) {
    let Ok(Command::CreateSession(format)) = parse(
        r#"{"command":"createSession","session":{"s":1},"player":{"x":0}}"#,
        &limits(),
    ) else {
        panic!("createSession parses");
    };
    let request = CreateRequest {
        player: PlayerId(1),
        format: format.format,
        features: Features::RESUME,
        subject: None,
        options: Default::default(),
    };
    let mut session = Session::create_seeded(SessionId(5), request, limits(), Some([3; 32]));
    let (frames, _) = drain(&mut session);
    let token1 = json(&frames[0].1)["resumeToken"]
        .as_str()
        .unwrap()
        .to_owned();
    session.handle(
        0,
        ToSession::Join {
            player: PlayerId(2),
            features: Features::RESUME,
            subject: None,
            password: None,
            quiet: false,
        },
    );
    let (frames, _) = drain(&mut session);
    let token2 = json(&frames[0].1)["resumeToken"]
        .as_str()
        .unwrap()
        .to_owned();
    session.handle(
        0,
        ToSession::Join {
            player: PlayerId(3),
            features: Features::NONE,
            subject: None,
            password: None,
            quiet: false,
        },
    );
    drain(&mut session);
    (session, token1, token2)
}

/// The members as a host would store them, read through the session's accessors.
fn stored(session: &Session) -> Vec<StoredMember> {
    session
        .member_ids()
        .map(|id| StoredMember {
            id,
            data: session.stored_player_data(id).cloned(),
            secret: session.secret_of(id),
            away_until_ms: session.away_until(id),
            connection: None,
            subject: session.subject_of(id).cloned(),
        })
        .collect()
}

fn restore(session: &Session, seed: [u8; 32]) -> Session {
    Session::restore_members(
        session.id(),
        Spelling::Short,
        session.session_data().clone(),
        session.default_player_data().clone(),
        stored(session),
        limits(),
        Some(seed),
    )
}

fn resume(connection: u64, token: &str) -> ToSession {
    resume_received(connection, token, None)
}

fn resume_received(connection: u64, token: &str, received: Option<u64>) -> ToSession {
    ToSession::Resume {
        player: PlayerId(connection),
        request: Box::new(ResumeRequest {
            token: ResumeToken::parse(token).expect("a token"),
            received,
        }),
        subject: None,
        features: Features::RESUME,
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn the_session_says_when_a_member_goes_away_and_comes_back() {
    let (mut session, _, token2) = game();
    session.handle(
        1000,
        ToSession::Disconnect {
            player: PlayerId(2),
        },
    );
    let (_, outputs) = drain(&mut session);
    assert!(outputs.contains(&Output::Changed(Change::MemberAway(PlayerId(2)))));
    assert_eq!(session.away_until(PlayerId(2)), Some(1000 + GRACE_MS));
    let before = session.secret_of(PlayerId(2)).expect("a secret");
    session.handle(2000, resume(9, &token2));
    let (_, outputs) = drain(&mut session);
    assert!(outputs.contains(&Output::Changed(Change::MemberBack(PlayerId(2)))));
    assert_eq!(session.away_until(PlayerId(2)), None);
    assert_ne!(session.secret_of(PlayerId(2)), Some(before));
    // A member without resume has no secret and leaves at once.
    assert_eq!(session.secret_of(PlayerId(3)), None);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_restored_away_member_resumes_with_a_snapshot_and_the_others_keep_their_seats() {
    let (mut session, token1, token2) = game();
    let update = parse(r#"{"command":"updatePlayer","player":{"x":7}}"#, &limits());
    session.handle(
        0,
        ToSession::Command {
            player: PlayerId(1),
            command: update,
        },
    );
    session.handle(
        1000,
        ToSession::Disconnect {
            player: PlayerId(2),
        },
    );
    drain(&mut session);
    let before = session.describe();

    let mut restored = restore(&session, [4; 32]);
    assert_eq!(
        restored.describe(),
        before,
        "the same members, data and away seats"
    );
    assert_eq!(restored.poll_timeout(), Some(1000 + GRACE_MS));
    assert!(
        restored.poll_output().is_none(),
        "nothing is sent on restore"
    );

    // The away member's token is still good; what it missed was not stored: a snapshot,
    // whatever the client says it received (the restored session cannot check it: no 25).
    restored.handle(5000, resume_received(9, &token2, Some(40)));
    let (frames, outputs) = drain(&mut restored);
    let reply = json(&frames[0].1);
    assert_eq!(frames[0].0, Some(PlayerId(2)));
    assert_eq!(reply["command"], "sessionResume");
    assert_eq!(reply["error"], 0);
    assert_eq!(reply["playerID"], 2);
    assert_eq!(reply["replay"], "snapshot");
    assert_eq!(reply["session"], json(r#"{"s":1}"#));
    assert_eq!(reply["player"], json(r#"{"x":0}"#));
    let joins: Vec<Value> = frames[1..].iter().map(|(_, f)| json(f)).collect();
    assert_eq!(
        joins,
        [
            json(r#"{"command":"playerJoin","error":0,"playerID":1,"player":{"x":7}}"#),
            json(r#"{"command":"playerJoin","error":0,"playerID":3,"player":{"x":0}}"#),
        ]
    );
    assert!(outputs.contains(&Output::ToPlayer {
        to: PlayerId(2),
        event: ToPlayer::Resumed {
            session: SessionId(5),
            player: PlayerId(2),
        },
    }));
    // The new token is fresh: not the old one, and the old one is used up.
    let new_token = reply["resumeToken"].as_str().unwrap().to_owned();
    assert_ne!(new_token, token2);
    restored.handle(6000, resume(10, &token2));
    let (frames, _) = drain(&mut restored);
    assert_eq!(json(&frames[0].1)["error"], 22);

    // A connected member (restored with its secret) goes away, not out, when its connection
    // is found gone; without a resume it leaves when the grace ends.
    restored.handle(
        7000,
        ToSession::Disconnect {
            player: PlayerId(1),
        },
    );
    let (frames, _) = drain(&mut restored);
    assert!(frames.is_empty(), "nobody is told: {frames:?}");
    assert_eq!(restored.poll_timeout(), Some(7000 + GRACE_MS));
    restored.handle_timeout(7000 + GRACE_MS - 1);
    assert!(drain(&mut restored).0.is_empty());
    restored.handle_timeout(7000 + GRACE_MS);
    let (frames, outputs) = drain(&mut restored);
    assert_eq!(
        frames,
        [(
            None,
            r#"{"command":"playerLeave","error":0,"playerID":1}"#.to_owned()
        )]
    );
    assert!(outputs.contains(&Output::Changed(Change::MemberRemoved(PlayerId(1)))));
    let _ = token1;
}

#[wasm_bindgen_test(unsupported = test)]
fn a_restored_session_draws_fresh_secrets_from_its_new_seed() {
    let (session, _, _) = game();
    // Two restores of the same storage with different seeds give different secrets; with the
    // creator's seed they would repeat the creator's draws.
    let secrets: Vec<u128> = [[4; 32], [5; 32]]
        .into_iter()
        .map(|seed| {
            let mut restored = restore(&session, seed);
            restored.handle(
                0,
                ToSession::Join {
                    player: PlayerId(8),
                    features: Features::RESUME,
                    subject: None,
                    password: None,
                    quiet: false,
                },
            );
            drain(&mut restored);
            restored.secret_of(PlayerId(8)).expect("a secret")
        })
        .collect();
    assert_ne!(secrets[0], secrets[1]);
    assert!(![
        session.secret_of(PlayerId(1)),
        session.secret_of(PlayerId(2))
    ]
    .contains(&Some(secrets[0])));

    // Without a seed nobody is given a token (as Session::create without one).
    let mut unseeded = Session::restore_members(
        session.id(),
        Spelling::Short,
        JsonObject::empty(),
        JsonObject::empty(),
        stored(&session),
        limits(),
        None,
    );
    unseeded.handle(
        0,
        ToSession::Join {
            player: PlayerId(8),
            features: Features::RESUME,
            subject: None,
            password: None,
            quiet: false,
        },
    );
    let (frames, _) = drain(&mut unseeded);
    assert!(
        json(&frames[0].1).get("resumeToken").is_none(),
        "{frames:?}"
    );
}

/// A seat's subject is stored with it and restored: the restored session still refuses a
/// resume of that seat by another subject (or by none), and takes the subject's own.
#[wasm_bindgen_test(unsupported = test)]
fn a_restored_seat_keeps_its_subject() {
    let (mut session, _, _) = game();
    let bob = Some(Arc::new("bob".to_owned()));
    session.handle(
        0,
        ToSession::Join {
            player: PlayerId(4),
            features: Features::RESUME,
            subject: bob.clone(),
            password: None,
            quiet: false,
        },
    );
    let (frames, _) = drain(&mut session);
    let token4 = json(&frames[0].1)["resumeToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(session.subject_of(PlayerId(4)), bob.as_ref());
    assert_eq!(session.subject_of(PlayerId(2)), None);
    session.handle(
        1000,
        ToSession::Disconnect {
            player: PlayerId(4),
        },
    );
    drain(&mut session);

    let mut restored = restore(&session, [4; 32]);
    assert_eq!(restored.describe(), session.describe());
    assert!(restored.describe().contains(r#""subject":"bob""#));
    let as_subject = |subject: Option<&str>| {
        let ToSession::Resume {
            player, request, ..
        } = resume(9, &token4)
        else {
            unreachable!()
        };
        ToSession::Resume {
            player,
            request,
            subject: subject.map(|s| Arc::new(s.to_owned())),
            features: Features::RESUME,
        }
    };
    for other in [None, Some("ada")] {
        restored.handle(2000, as_subject(other));
        let (frames, _) = drain(&mut restored);
        let reply = json(&frames[0].1);
        assert_eq!(
            (reply["command"].as_str(), reply["error"].as_u64()),
            (Some("sessionResume"), Some(22)),
            "{other:?}"
        );
    }
    restored.handle(3000, as_subject(Some("bob")));
    let (frames, _) = drain(&mut restored);
    let reply = json(&frames[0].1);
    assert_eq!(reply["error"], 0, "{reply}");
    assert_eq!(reply["playerID"], 4);
}
