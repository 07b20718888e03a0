//! A joiner's `playerJoin`s come as one [`JoinBurst`]: the members as they were when it joined,
//! holding their data without copying it, and encoded one frame at a time.

use sessionserver_core::{
    CreateRequest, Features, JoinBurst, Limits, Output, PlayerId, ServerFrame, Session,
    SessionFormat, ToSession,
};
use wasm_bindgen_test::wasm_bindgen_test;

fn format(text: &str) -> SessionFormat {
    match sessionserver_core::parse(text, &Limits::default()) {
        Ok(sessionserver_core::Command::CreateSession(new)) => new.format,
        other => panic!("not a createSession: {other:?}"),
    }
}

fn command(session: &mut Session, player: u64, text: &str) {
    let command = sessionserver_core::parse(text, &Limits::default());
    session.handle(
        0,
        ToSession::Command {
            player: PlayerId(player),
            command,
        },
    );
}

/// Drains the session: the burst sent to `joiner`, if any, and the frames sent to it.
fn drain(session: &mut Session, joiner: u64) -> (Option<JoinBurst>, Vec<ServerFrame>) {
    let (mut burst, mut frames) = (None, Vec::new());
    while let Some(output) = session.poll_output() {
        match output {
            Output::SendJoinBurst { to, burst: b } if to == PlayerId(joiner) => {
                assert!(burst.is_none(), "two bursts for one join");
                assert!(frames.len() == 1, "the burst comes right after sessionJoin");
                burst = Some(b);
            }
            Output::Send { to, frame } if to == PlayerId(joiner) => frames.push(frame),
            _ => {}
        }
    }
    (burst, frames)
}

fn join(session: &mut Session, player: u64) -> Option<JoinBurst> {
    session.handle(
        0,
        ToSession::Join {
            player: PlayerId(player),
            features: Features::NONE,
            subject: None,
            password: None,
            quiet: false,
        },
    );
    let (burst, frames) = drain(session, player);
    assert!(frames[0]
        .as_str()
        .starts_with(r#"{"command":"sessionJoin""#));
    burst
}

fn texts(burst: JoinBurst) -> Vec<String> {
    burst.map(|frame| frame.as_str().to_owned()).collect()
}

fn player_join(id: u64, data: &str) -> String {
    format!(r#"{{"command":"playerJoin","error":0,"playerID":{id},"player":{data}}}"#)
}

#[wasm_bindgen_test(unsupported = test)]
fn a_burst_is_the_members_as_they_were_at_the_join_sharing_their_data() {
    let big = format!(r#"{{"name":"{}"}}"#, "d".repeat(1000));
    let request = CreateRequest {
        features: Features::NONE,
        subject: None,
        player: PlayerId(1),
        format: format(&format!(
            r#"{{"command":"createSession","session":{{}},"player":{big}}}"#
        )),
        options: Default::default(),
    };
    let mut session = Session::create(sessionserver_core::SessionId(0), request, Limits::default());
    // The creator has nobody to be told of.
    assert!(drain(&mut session, 1).0.is_none());
    assert!(join(&mut session, 2).is_some());
    command(
        &mut session,
        2,
        r#"{"command":"updatePlayer","player":{"name":"bee"}}"#,
    );
    drain(&mut session, 2);

    let burst = join(&mut session, 3).expect("a burst for the third player");
    assert_eq!(burst.len(), 2);
    // Its data is the session's own text, not a copy.
    let members: Vec<_> = session.members().collect();
    for ((id, data), (member, member_data)) in burst.members().zip(&members) {
        assert_eq!(id, *member);
        assert!(data.shares_text_with(member_data), "member {id}");
    }
    // Less than a word per byte of data: what it holds apart from the shared text.
    assert!(burst.held_bytes() <= 2 * 32, "{}", burst.held_bytes());

    // Members change after the join: the burst still says what they were, as an eager
    // burst's frames, already queued, would have; the changes follow it as broadcasts.
    command(
        &mut session,
        2,
        r#"{"command":"updatePlayer","player":{"name":"b2"}}"#,
    );
    command(
        &mut session,
        1,
        r#"{"command":"updateSession","session":{},"player":{"name":"new"}}"#,
    );
    drain(&mut session, 3);
    assert_eq!(
        texts(burst.clone()),
        [player_join(1, &big), player_join(2, r#"{"name":"bee"}"#)]
    );
    // A burst taken in part goes on from where it was.
    let mut partial = burst;
    partial.next();
    assert_eq!(partial.remaining(), 1);
    assert_eq!(texts(partial), [player_join(2, r#"{"name":"bee"}"#)]);

    // A later joiner gets the members as they are now, the third one included.
    let later = join(&mut session, 4).expect("a burst");
    let new = r#"{"name":"new"}"#;
    assert_eq!(
        texts(later),
        [
            player_join(1, new),
            player_join(2, new),
            player_join(3, new)
        ]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_burst_of_a_big_session_holds_no_copy_of_the_data() {
    let default = format!(r#"{{"blob":"{}"}}"#, "x".repeat(60_000));
    let request = CreateRequest {
        features: Features::NONE,
        subject: None,
        player: PlayerId(1),
        format: format(&format!(
            r#"{{"command":"createSession","session":{{}},"player":{default}}}"#
        )),
        options: Default::default(),
    };
    let limits = Limits {
        max_players_per_session: 2_000,
        ..Limits::default()
    };
    let mut session = Session::create(sessionserver_core::SessionId(0), request, limits);
    for player in 2..=1_200 {
        session.handle(
            0,
            ToSession::Join {
                player: PlayerId(player),
                features: Features::NONE,
                subject: None,
                password: None,
                quiet: false,
            },
        );
        while session.poll_output().is_some() {}
    }
    let burst = join(&mut session, 1_201).expect("a burst");
    assert_eq!(burst.len(), 1_200);
    // 1,200 frames of 60 KB would be 72 MB; the burst holds IDs and shared references.
    assert!(burst.held_bytes() <= 1_200 * 32);
    let default = session.default_player_data().clone();
    assert!(burst
        .members()
        .all(|(_, data)| data.shares_text_with(&default)));
    let frames: Vec<_> = burst.collect();
    assert_eq!(frames.len(), 1_200);
    assert!(frames.iter().all(|f| f.as_str().len() > 60_000));
}
