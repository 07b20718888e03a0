//! The sans-IO state machine, driven with no network and a made-up clock: what it sends,
//! how replies settle requests, the kept session, and reconnecting.

use std::time::Duration;

use serde_json::json;
use sessionserver_client::{
    Data, Error, Event, LostReason, Machine, Options, ReconnectOptions, Replay, Reply, RequestId,
    SessionOptions, Spelling, Target, Transmit,
};

const T0: Duration = Duration::ZERO;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn data(v: serde_json::Value) -> Data {
    Data::from(v)
}

/// Every frame to send now (other transmits are returned too, as `<Connect>` and so on).
fn sent(m: &mut Machine) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(t) = m.poll_transmit() {
        out.push(match t {
            Transmit::Text(text) => text,
            Transmit::Connect => "<Connect>".to_owned(),
            Transmit::Disconnect => "<Disconnect>".to_owned(),
            Transmit::Close { code, reason } => format!("<Close {code} {reason}>"),
        });
    }
    out
}

fn events(m: &mut Machine) -> Vec<Event> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

fn completions(m: &mut Machine) -> Vec<(RequestId, Result<Reply, Error>)> {
    std::iter::from_fn(|| m.poll_completion()).collect()
}

fn only_completion(m: &mut Machine, id: RequestId) -> Result<Reply, Error> {
    let mut all = completions(m);
    assert_eq!(all.len(), 1, "one completion: {all:?}");
    let (got, result) = all.pop().unwrap();
    assert_eq!(got, id);
    result
}

/// The default options with the `host` extension asked for (the tests check it).
fn opts() -> Options {
    Options {
        host: true,
        ..Options::default()
    }
}

fn fast() -> Options {
    Options {
        host: true,
        reconnect: Some(ReconnectOptions {
            max_attempts: 5,
            max_time: ms(10_000),
            base_delay: ms(100),
            max_delay: ms(1_000),
            attempt_timeout: ms(500),
        }),
        ..Options::default()
    }
}

/// A machine whose socket is open and whose hello was granted `resume` and `host`.
fn open(options: Options) -> Machine {
    let mut m = Machine::new(options, 7, T0);
    m.handle_open(T0);
    let hello = sent(&mut m);
    assert_eq!(hello.len(), 1);
    assert!(
        hello[0].starts_with(r#"{"command":"hello","features":["resume","host""#),
        "{hello:?}"
    );
    m.handle_text(
        T0,
        r#"{"command":"hello","error":0,"playerID":3,"features":["resume","host"]}"#,
    );
    assert_eq!(
        m.features(),
        Some(&["resume".to_owned(), "host".to_owned()][..])
    );
    m
}

/// `open`, then in session 1 as player 3 (the host), with token `1.3.t0`, one other member
/// (player 4, `{"x":0}`) and nothing pending.
fn in_session(options: Options) -> Machine {
    let mut m = open(options);
    let id = m.create_session(
        &data(json!({})),
        &data(json!({"x":0})),
        &SessionOptions::default(),
    );
    sent(&mut m);
    m.handle_text(T0, r#"{"command":"sessionJoin","error":0,"sessionID":1,"playerID":3,"session":{},"player":{"x":0},"resumeToken":"1.3.t0","hostID":3}"#);
    assert!(matches!(only_completion(&mut m, id), Ok(Reply::Session(_))));
    m.handle_text(
        T0,
        r#"{"command":"playerJoin","error":0,"playerID":4,"player":{"x":0}}"#,
    );
    events(&mut m);
    assert!(m.is_host());
    m
}

#[test]
fn hello_goes_first_and_requests_made_before_the_socket_opens_wait_for_it() {
    let mut m = Machine::new(opts(), 1, T0);
    let id = m.join_session(Target::Latest, None);
    assert!(
        sent(&mut m).is_empty(),
        "nothing is sent before the socket is open"
    );
    m.handle_open(T0);
    assert_eq!(
        sent(&mut m),
        [
            r#"{"command":"hello","features":["resume","host"]}"#,
            r#"{"command":"joinSession","sessionID":-1}"#
        ]
    );
    assert_eq!(m.features(), None);
    m.handle_text(
        T0,
        r#"{"command":"hello","error":0,"playerID":0,"features":["resume"]}"#,
    );
    assert_eq!(m.features(), Some(&["resume".to_owned()][..]));
    m.handle_text(T0, r#"{"command":"sessionJoin","error":6}"#);
    let err = only_completion(&mut m, id).unwrap_err();
    assert_eq!(err.code(), Some(6));
}

#[test]
fn by_default_hello_asks_for_resume_only() {
    let mut m = Machine::new(Options::default(), 1, T0);
    m.handle_open(T0);
    assert_eq!(
        sent(&mut m),
        [r#"{"command":"hello","features":["resume"]}"#]
    );
}

#[test]
fn without_reconnect_or_host_no_hello_is_sent() {
    let options = Options {
        reconnect: None,
        host: false,
        ..Options::default()
    };
    let mut m = Machine::new(options, 1, T0);
    m.handle_open(T0);
    assert!(sent(&mut m).is_empty());
    assert_eq!(m.features(), None);
}

#[test]
fn a_server_that_ignores_hello_grants_nothing() {
    let mut m = Machine::new(opts(), 1, T0);
    m.handle_open(T0);
    let id = m.create_session(
        &data(json!({})),
        &data(json!({})),
        &SessionOptions::default(),
    );
    sent(&mut m);
    // The original server answers createSession and says nothing to hello.
    m.handle_text(T0, r#"{"command":"sessionJoin","error":0,"sessionID":0,"playerID":0,"session":{},"player":{}}"#);
    assert!(matches!(only_completion(&mut m, id), Ok(Reply::Session(_))));
    assert_eq!(m.features(), Some(&[][..]));
    assert_eq!(m.resume_token(), None);
}

#[test]
fn create_session_sends_the_data_and_options_and_settles_on_session_join() {
    let mut m = open(opts());
    let options = SessionOptions {
        max_players: Some(2),
        private: Some(true),
        password: Some("p\"w".to_owned()),
        host_only_session_updates: Some(true),
        metadata: Some(data(json!({"mode":"ctf"}))),
    };
    let id = m.create_session(
        &data(json!({"title":"dots"})),
        &data(json!({"x":0})),
        &options,
    );
    assert_eq!(
        sent(&mut m),
        [
            r#"{"command":"createSession","session":{"title":"dots"},"player":{"x":0},"options":{"maxPlayers":2,"private":true,"password":"p\"w","hostOnlySessionUpdates":true,"metadata":{"mode":"ctf"}}}"#
        ]
    );
    // Data is kept as the server sent it: spacing, number spelling and key order.
    m.handle_text(T0, r#"{"command":"sessionJoin","error":0,"sessionID":5,"playerID":3,"session":{"title":"dots", "b":1.000000000001},"player":{"x":0},"resumeToken":"5.3.aa","hostID":3}"#);
    let Ok(Reply::Session(session)) = only_completion(&mut m, id) else {
        panic!("a session")
    };
    assert_eq!(session.id, 5);
    assert_eq!(
        session.data.as_str(),
        r#"{"title":"dots", "b":1.000000000001}"#
    );
    assert_eq!(session.host_id, Some(3));
    assert_eq!(m.player_id(), Some(3));
    assert_eq!(m.resume_token(), Some("5.3.aa"));
    match &events(&mut m)[..] {
        [Event::SessionJoin {
            session_id: 5,
            player_id: 3,
            created: true,
            host_id: Some(3),
            ..
        }] => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn join_with_a_password_escapes_it() {
    let mut m = open(opts());
    m.join_session(Target::Id(9), Some("a\\b\"c"));
    assert_eq!(
        sent(&mut m),
        [r#"{"command":"joinSession","sessionID":9,"password":"a\\b\"c"}"#]
    );
}

#[test]
fn the_long_spelling_is_sent_and_both_are_read() {
    let mut m = open(Options {
        spelling: Spelling::Long,
        ..opts()
    });
    m.create_session(
        &data(json!({"a":1})),
        &data(json!({"x":0})),
        &SessionOptions::default(),
    );
    m.update_player(&data(json!({"x":1})));
    assert_eq!(
        sent(&mut m),
        [
            r#"{"command":"createSession","sessionData":{"a":1},"playerData":{"x":0}}"#,
            r#"{"command":"updatePlayer","playerData":{"x":1}}"#
        ]
    );
    m.handle_text(T0, r#"{"command":"sessionJoin","error":0,"sessionID":1,"playerID":3,"sessionData":{"a":1},"playerData":{"x":0}}"#);
    m.handle_text(
        T0,
        r#"{"command":"playerUpdate","error":0,"playerID":3,"playerData":{"x":1}}"#,
    );
    let session = m.session().unwrap();
    assert_eq!(session.data.as_str(), r#"{"a":1}"#);
    assert_eq!(session.players[&3].as_str(), r#"{"x":1}"#);
}

#[test]
fn players_are_kept_in_order_and_received_counts_session_events() {
    let mut m = open(opts());
    m.join_session(Target::Id(1), None);
    sent(&mut m);
    m.handle_text(T0, r#"{"command":"sessionJoin","error":0,"sessionID":1,"playerID":3,"session":{},"player":{"x":0},"resumeToken":"1.3.t"}"#);
    m.handle_text(
        T0,
        r#"{"command":"playerJoin","error":0,"playerID":2,"player":{"x":5}}"#,
    );
    m.handle_text(
        T0,
        r#"{"command":"playerJoin","error":0,"playerID":1,"player":{"x":6}}"#,
    );
    m.handle_text(
        T0,
        r#"{"command":"playerUpdate","error":0,"playerID":2,"player":{"x":7}}"#,
    );
    m.handle_text(T0, r#"{"command":"playerLeave","error":0,"playerID":1}"#);
    // An error reply is no session event.
    m.handle_text(T0, r#"{"command":"playerUpdate","error":2}"#);
    assert_eq!(m.received(), 4);
    let players: Vec<(u64, String)> = m
        .session()
        .unwrap()
        .players
        .iter()
        .map(|(id, d)| (*id, d.as_str().to_owned()))
        .collect();
    assert_eq!(
        players,
        [(3, r#"{"x":0}"#.to_owned()), (2, r#"{"x":7}"#.to_owned())]
    );
    let evs = events(&mut m);
    assert!(matches!(&evs[1], Event::PlayerJoin { player_id: 2, .. }));
    assert!(matches!(
        &evs[3],
        Event::PlayerUpdate {
            player_id: 2,
            is_self: false,
            ..
        }
    ));
    match &evs[4] {
        Event::PlayerLeave {
            player_id: 1,
            data: Some(d),
            kicked: false,
        } => assert_eq!(d.as_str(), r#"{"x":6}"#),
        other => panic!("{other:?}"),
    }
    // The unanswered error reply is reported, with its meaning.
    match &evs[5] {
        Event::Error(Error::Session(e)) => {
            assert_eq!((e.code, e.meaning), (2, "not in a session"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn own_updates_settle_requests_and_those_of_others_do_not() {
    let mut m = in_session(opts());
    let id = m.update_player(&data(json!({"x":1})));
    // Another member's update comes first: an event only.
    m.handle_text(
        T0,
        r#"{"command":"playerUpdate","error":0,"playerID":4,"player":{"x":9}}"#,
    );
    assert!(completions(&mut m).is_empty());
    m.handle_text(
        T0,
        r#"{"command":"playerUpdate","error":0,"playerID":3,"player":{"x":1}}"#,
    );
    let Ok(Reply::Player(d)) = only_completion(&mut m, id) else {
        panic!()
    };
    assert_eq!(d.as_str(), r#"{"x":1}"#);
    let evs = events(&mut m);
    assert!(matches!(
        &evs[..],
        [
            Event::PlayerUpdate { is_self: false, .. },
            Event::PlayerUpdate { is_self: true, .. }
        ]
    ));

    let id = m.update_session(&data(json!({"round":2})), &data(json!({"y":0})));
    m.handle_text(
        T0,
        r#"{"command":"sessionUpdate","error":0,"session":{"round":1},"player":{"y":0}}"#,
    );
    assert!(
        completions(&mut m).is_empty(),
        "another member's sessionUpdate"
    );
    m.handle_text(
        T0,
        r#"{"command":"sessionUpdate","error":0,"session":{"round":2},"player":{"y":0}}"#,
    );
    let Ok(Reply::Session(s)) = only_completion(&mut m, id) else {
        panic!()
    };
    assert_eq!(s.data.as_str(), r#"{"round":2}"#);
    assert!(
        s.players.values().all(|d| d.as_str() == r#"{"y":0}"#),
        "every member reset"
    );
    let evs = events(&mut m);
    assert!(matches!(
        &evs[..],
        [
            Event::SessionUpdate { is_self: false, .. },
            Event::SessionUpdate { is_self: true, .. }
        ]
    ));
}

#[test]
fn error_replies_carry_code_meaning_and_message() {
    let mut m = in_session(opts());
    let id = m.update_player(&data(json!({"y":1})));
    m.handle_text(T0, r#"{"command":"playerUpdate","error":4}"#);
    let Err(Error::Session(e)) = only_completion(&mut m, id) else {
        panic!()
    };
    assert_eq!(e.code, 4);
    assert_eq!(e.command, "playerUpdate");
    assert_eq!(
        e.meaning,
        "playerData's key structure differs from the session's default; nothing changes"
    );
    assert_eq!(e.server_message, None);

    let id = m.join_session(Target::Id(2), None);
    m.handle_text(T0, r#"{"command":"sessionJoin","error":5}"#);
    let Err(e) = only_completion(&mut m, id) else {
        panic!()
    };
    assert_eq!(e.code(), Some(5));

    let id = m.update_player(&data(json!({"x":1})));
    m.handle_text(
        T0,
        r#"{"command":"error","error":12,"message":"unknown command"}"#,
    );
    let Err(Error::Session(e)) = only_completion(&mut m, id) else {
        panic!()
    };
    assert_eq!(
        (e.code, e.server_message.as_deref()),
        (12, Some("unknown command"))
    );
    assert_eq!(e.to_string(), "error 12: unknown command");
}

#[test]
fn kick_lock_and_host_changes() {
    let mut m = in_session(opts());
    let id = m.kick_player(4);
    assert_eq!(sent(&mut m), [r#"{"command":"kickPlayer","playerID":4}"#]);
    m.handle_text(T0, r#"{"command":"playerLeave","error":0,"playerID":4}"#);
    assert!(matches!(only_completion(&mut m, id), Ok(Reply::Kicked)));
    assert!(!m.session().unwrap().players.contains_key(&4));

    let id = m.kick_player(4);
    m.handle_text(
        T0,
        r#"{"command":"playerLeave","error":30,"message":"no such other member"}"#,
    );
    assert_eq!(only_completion(&mut m, id).unwrap_err().code(), Some(30));

    let id = m.lock_session(true);
    assert_eq!(
        sent(&mut m),
        [
            r#"{"command":"kickPlayer","playerID":4}"#,
            r#"{"command":"lockSession","locked":true}"#
        ]
    );
    m.handle_text(T0, r#"{"command":"sessionLock","error":0,"locked":true}"#);
    assert!(matches!(
        only_completion(&mut m, id),
        Ok(Reply::Locked(true))
    ));
    assert!(m.session().unwrap().locked);

    m.handle_text(T0, r#"{"command":"hostChange","error":0,"playerID":8}"#);
    assert_eq!(m.session().unwrap().host_id, Some(8));
    assert!(!m.is_host());
    // Now a member: the host's sessionLock is an event, and our own lockSession is refused.
    let id = m.lock_session(false);
    m.handle_text(T0, r#"{"command":"sessionLock","error":0,"locked":false}"#);
    assert!(completions(&mut m).is_empty());
    m.handle_text(
        T0,
        r#"{"command":"sessionLock","error":29,"message":"only the host may do that"}"#,
    );
    let Err(Error::Session(e)) = only_completion(&mut m, id) else {
        panic!()
    };
    assert_eq!(
        (e.code, e.meaning),
        (29, "only the session's host may do that")
    );
    let evs = events(&mut m);
    assert!(evs
        .iter()
        .any(|e| matches!(e, Event::HostChange { player_id: 8 })));
    assert!(evs.iter().any(|e| matches!(
        e,
        Event::SessionLock {
            locked: false,
            is_self: false
        }
    )));

    // Kicked: back in the lobby, told as an event.
    m.handle_text(T0, r#"{"command":"sessionLeave","error":0,"kicked":true}"#);
    assert!(m.session().is_none());
    assert!(matches!(
        &events(&mut m)[..],
        [Event::SessionLeave {
            session_id: Some(1),
            kicked: true
        }]
    ));
}

#[test]
fn a_drop_resumes_with_token_and_received_and_replays_missed_frames() {
    let mut m = in_session(fast());
    m.handle_text(
        T0,
        r#"{"command":"playerUpdate","error":0,"playerID":4,"player":{"x":1}}"#,
    );
    let in_flight = m.update_player(&data(json!({"x":2})));
    sent(&mut m);
    events(&mut m);
    assert_eq!(m.received(), 2);

    m.handle_close(ms(1000), 1006, "reset");
    // The request in flight fails at once: whether the server carried it out is unknown.
    let Err(Error::ConnectionClosed(e)) = only_completion(&mut m, in_flight) else {
        panic!()
    };
    assert_eq!(e.code, 1006);
    let Some(Event::Reconnecting {
        attempt: 1,
        delay,
        code: 1006,
        ..
    }) = m.poll_event()
    else {
        panic!()
    };
    assert!(
        delay <= ms(100),
        "the first delay is within base_delay: {delay:?}"
    );
    assert_eq!(m.poll_timeout(), Some(ms(1000) + delay));
    assert_eq!(m.session().unwrap().players.len(), 2, "the session is kept");

    // Requests made now wait for the resume.
    let waiting = m.update_player(&data(json!({"x":3})));
    assert!(sent(&mut m).is_empty());
    m.handle_timeout(ms(1000) + delay);
    assert_eq!(sent(&mut m), ["<Connect>"]);
    m.handle_open(ms(1200));
    assert_eq!(
        sent(&mut m),
        [
            r#"{"command":"hello","features":["resume","host"]}"#,
            r#"{"command":"resumeSession","resumeToken":"1.3.t0","received":2}"#
        ]
    );
    m.handle_text(
        ms(1201),
        r#"{"command":"hello","error":0,"playerID":7,"features":["resume","host"]}"#,
    );
    m.handle_text(ms(1202), r#"{"command":"sessionResume","error":0,"sessionID":1,"playerID":3,"resumeToken":"1.3.t1","replay":"frames","missed":2,"hostID":3}"#);
    assert!(
        sent(&mut m).is_empty(),
        "the waiting request goes after the replay"
    );
    m.handle_text(
        ms(1203),
        r#"{"command":"playerUpdate","error":0,"playerID":3,"player":{"x":2}}"#,
    );
    m.handle_text(
        ms(1204),
        r#"{"command":"playerUpdate","error":0,"playerID":4,"player":{"x":5}}"#,
    );
    assert_eq!(
        sent(&mut m),
        [r#"{"command":"updatePlayer","player":{"x":3}}"#]
    );
    assert_eq!(m.resume_token(), Some("1.3.t1"));
    assert_eq!(m.received(), 2, "counted again from the sessionResume");
    assert_eq!(m.player_id(), Some(3));
    let evs = events(&mut m);
    assert!(
        matches!(
            &evs[..],
            [
                Event::PlayerUpdate {
                    player_id: 3,
                    is_self: true,
                    ..
                },
                Event::PlayerUpdate { player_id: 4, .. },
                Event::Resumed {
                    replay: Replay::Frames,
                    missed: Some(2),
                    attempts: 1
                },
            ]
        ),
        "{evs:?}"
    );
    assert!(m.reconnecting().is_none());
    m.handle_text(
        ms(1205),
        r#"{"command":"playerUpdate","error":0,"playerID":3,"player":{"x":3}}"#,
    );
    assert!(matches!(
        only_completion(&mut m, waiting),
        Ok(Reply::Player(_))
    ));
}

#[test]
fn a_snapshot_rebuilds_the_session_and_drops_members_not_in_it() {
    let mut m = in_session(fast());
    m.handle_close(ms(10), 4000, "heartbeat");
    let at = m.poll_timeout().unwrap();
    m.handle_timeout(at);
    m.handle_open(at);
    sent(&mut m);
    m.handle_text(at, r#"{"command":"sessionResume","error":0,"sessionID":1,"playerID":3,"resumeToken":"1.3.t1","replay":"snapshot","members":1,"session":{"round":9},"player":{"x":4}}"#);
    m.handle_text(
        at,
        r#"{"command":"playerJoin","error":0,"playerID":6,"player":{"x":1}}"#,
    );
    let s = m.session().unwrap();
    assert_eq!(s.data.as_str(), r#"{"round":9}"#);
    let ids: Vec<u64> = s.players.keys().copied().collect();
    assert_eq!(ids, [3, 6], "player 4 is gone, 6 is new");
    assert_eq!(s.players[&3].as_str(), r#"{"x":4}"#);
    let evs = events(&mut m);
    assert!(
        matches!(
            &evs[..],
            [
                Event::Reconnecting { code: 4000, .. },
                Event::PlayerJoin { player_id: 6, .. },
                Event::PlayerLeave { player_id: 4, .. },
                Event::Resumed {
                    replay: Replay::Snapshot,
                    missed: None,
                    attempts: 1
                },
            ]
        ),
        "{evs:?}"
    );
}

#[test]
fn a_refused_resume_loses_the_seat_and_stays_connected_in_the_lobby() {
    let mut m = in_session(fast());
    m.handle_close(ms(10), 1006, "");
    let at = m.poll_timeout().unwrap();
    let waiting = m.leave_session();
    m.handle_timeout(at);
    m.handle_open(at);
    sent(&mut m);
    m.handle_text(
        at,
        r#"{"command":"sessionResume","error":22,"message":"no such token"}"#,
    );
    let Err(Error::SessionLost(lost)) = only_completion(&mut m, waiting) else {
        panic!()
    };
    assert_eq!(
        (lost.reason, lost.session_id),
        (LostReason::Rejected, Some(1))
    );
    assert_eq!(lost.cause.code(), Some(22));
    assert!(m.session().is_none());
    assert_eq!(m.player_id(), None);
    assert!(m.closed().is_none(), "connected, in the lobby");
    let evs = events(&mut m);
    assert!(matches!(
        evs.last(),
        Some(Event::Lost {
            reason: LostReason::Rejected,
            session_id: Some(1),
            ..
        })
    ));
    // It may join again on this connection.
    m.join_session(Target::Latest, None);
    assert_eq!(
        sent(&mut m),
        [r#"{"command":"joinSession","sessionID":-1}"#]
    );
}

#[test]
fn error_24_tries_again_and_error_25_resumes_without_received() {
    let mut m = in_session(fast());
    m.handle_close(ms(10), 1006, "");
    let at = m.poll_timeout().unwrap();
    m.handle_timeout(at);
    m.handle_open(at);
    sent(&mut m);
    m.handle_text(at, r#"{"command":"sessionResume","error":24}"#);
    assert_eq!(sent(&mut m), ["<Disconnect>"]);
    let evs = events(&mut m);
    match evs.last() {
        Some(Event::Reconnecting {
            attempt: 2,
            error: Some(e),
            ..
        }) => assert_eq!(e.code(), Some(24)),
        other => panic!("{other:?}"),
    }
    let at = m.poll_timeout().unwrap();
    m.handle_timeout(at);
    m.handle_open(at);
    sent(&mut m);
    m.handle_text(
        at,
        r#"{"command":"sessionResume","error":25,"message":"too many"}"#,
    );
    assert_eq!(
        sent(&mut m),
        [r#"{"command":"resumeSession","resumeToken":"1.3.t0"}"#]
    );
    m.handle_text(at, r#"{"command":"sessionResume","error":0,"sessionID":1,"playerID":3,"resumeToken":"1.3.t2","replay":"frames","missed":0}"#);
    let evs = events(&mut m);
    assert!(
        matches!(&evs[..], [Event::Error(Error::Session(e)), Event::Resumed { attempts: 2, .. }] if e.code == 25),
        "{evs:?}"
    );
}

#[test]
fn attempts_back_off_within_their_bounds_and_give_up() {
    let mut m = in_session(fast());
    let mut now = ms(10);
    m.handle_close(now, 1006, "");
    let mut bounds = Vec::new();
    loop {
        let evs = events(&mut m);
        if let Some(Event::Reconnecting { attempt, delay, .. }) = evs.last() {
            let bound = ms(100).saturating_mul(1 << (attempt - 1)).min(ms(1000));
            assert!(*delay <= bound, "attempt {attempt}: {delay:?} > {bound:?}");
            bounds.push(*attempt);
            now = m.poll_timeout().unwrap();
            m.handle_timeout(now);
            assert_eq!(sent(&mut m), ["<Connect>"]);
            // The attempt cannot connect.
            m.handle_close(now, 1006, "refused");
        } else {
            assert!(
                matches!(
                    &evs[..],
                    [
                        Event::Lost {
                            reason: LostReason::Timeout,
                            session_id: Some(1),
                            ..
                        },
                        Event::Close { code: 1006, .. },
                    ]
                ),
                "{evs:?}"
            );
            break;
        }
    }
    assert_eq!(bounds, [1, 2, 3, 4, 5], "max_attempts");
    assert_eq!(m.closed().map(|(c, _)| c), Some(1006));
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn an_attempt_without_an_answer_in_time_is_dropped_and_the_next_follows() {
    let mut m = in_session(fast());
    m.handle_close(ms(10), 1006, "");
    let at = m.poll_timeout().unwrap();
    m.handle_timeout(at);
    sent(&mut m);
    assert_eq!(m.poll_timeout(), Some(at + ms(500)));
    m.handle_timeout(at + ms(499));
    assert!(sent(&mut m).is_empty(), "not yet");
    m.handle_timeout(at + ms(500));
    assert_eq!(sent(&mut m), ["<Disconnect>"]);
    assert!(matches!(
        events(&mut m).last(),
        Some(Event::Reconnecting { attempt: 2, .. })
    ));
}

#[test]
fn final_close_codes_do_not_reconnect() {
    for code in [1000, 1001, 1008, 4003] {
        let mut m = in_session(fast());
        let id = m.update_player(&data(json!({"x":1})));
        m.handle_close(ms(1), code, "bye");
        assert_eq!(
            only_completion(&mut m, id).unwrap_err().to_string(),
            format!(
                "connection closed ({code}: bye): {}",
                sessionserver_client::error::close_meaning(code)
            )
        );
        assert!(matches!(&events(&mut m)[..], [Event::Close { code: c, .. }] if *c == code));
        assert!(m.session().is_none());
        assert_eq!(m.poll_timeout(), None);
    }
}

#[test]
fn an_attempt_closed_for_good_loses_the_seat() {
    let mut m = in_session(fast());
    m.handle_close(ms(1), 1006, "");
    let at = m.poll_timeout().unwrap();
    m.handle_timeout(at);
    m.handle_open(at);
    m.handle_close(at, 1001, "shutting down");
    let evs = events(&mut m);
    assert!(
        matches!(
            &evs[1..],
            [
                Event::Lost {
                    reason: LostReason::Closed,
                    ..
                },
                Event::Close { code: 1001, .. },
            ]
        ),
        "{evs:?}"
    );
}

#[test]
fn close_leaves_first_then_closes_and_later_requests_fail() {
    let mut m = in_session(opts());
    m.close(1000, "done");
    assert_eq!(
        sent(&mut m),
        [r#"{"command":"leaveSession"}"#, "<Close 1000 done>"]
    );
    m.handle_text(T0, r#"{"command":"sessionLeave","error":0}"#);
    m.handle_close(T0, 1000, "done");
    let evs = events(&mut m);
    assert!(
        matches!(&evs[..], [Event::Close { code: 1000, .. }]),
        "the internal leave is no event: {evs:?}"
    );
    let id = m.update_player(&data(json!({"x":1})));
    let Err(Error::ConnectionClosed(e)) = only_completion(&mut m, id) else {
        panic!()
    };
    assert_eq!(e.code, 1000);
    assert!(m.send_raw("{}").is_err());
}

#[test]
fn close_while_reconnecting_stops_the_attempts() {
    let mut m = in_session(fast());
    m.handle_close(ms(1), 1006, "");
    let waiting = m.update_player(&data(json!({"x":1})));
    m.close(1000, "");
    assert!(only_completion(&mut m, waiting).is_err());
    assert_eq!(m.poll_timeout(), None);
    assert!(matches!(
        events(&mut m).last(),
        Some(Event::Close { code: 1000, .. })
    ));
}

#[test]
fn bad_frames_are_reported_and_change_nothing() {
    let mut m = in_session(fast());
    for frame in [
        "not json",
        "[1,2]",
        r#"{"error":0}"#,
        r#"{"command":7}"#,
        r#"{"command":"playerUpdate","error":"x"}"#,
        r#"{"command":"surprise","error":0}"#,
        r#"{"command":"playerJoin","error":0}"#,
        r#"{"command":"sessionJoin","error":0}"#,
    ] {
        m.handle_text(T0, frame);
        assert!(
            matches!(&events(&mut m)[..], [Event::Error(Error::Protocol(_))]),
            "{frame}"
        );
    }
    m.handle_binary(T0);
    assert!(matches!(
        &events(&mut m)[..],
        [Event::Error(Error::Protocol(_))]
    ));
    assert_eq!(m.session().unwrap().players.len(), 2);
    // A huge count from the server is no trouble either.
    m.handle_close(ms(1), 1006, "");
    let at = m.poll_timeout().unwrap();
    m.handle_timeout(at);
    m.handle_open(at);
    m.handle_text(at, &format!(r#"{{"command":"sessionResume","error":0,"sessionID":1,"playerID":3,"resumeToken":"x","replay":"frames","missed":{}}}"#, u64::MAX));
    m.handle_text(at, r#"{"command":"playerLeave","error":0,"playerID":4}"#);
    assert!(m.session().unwrap().players.len() == 1);
}

#[test]
fn different_seeds_draw_different_delays() {
    let delays: Vec<Duration> = (0..8)
        .map(|seed| {
            let mut m = Machine::new(fast(), seed, T0);
            m.handle_open(T0);
            m.handle_text(T0, r#"{"command":"sessionJoin","error":0,"sessionID":1,"playerID":3,"session":{},"player":{},"resumeToken":"t"}"#);
            m.handle_close(T0, 1006, "");
            m.poll_timeout().unwrap()
        })
        .collect();
    let mut distinct = delays.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() > 1, "{delays:?}");
}

#[test]
fn settings_at_their_extremes_neither_overflow_nor_stall() {
    let huge = Options {
        reconnect: Some(ReconnectOptions {
            max_attempts: u32::MAX,
            max_time: Duration::MAX,
            base_delay: Duration::MAX,
            max_delay: Duration::MAX,
            attempt_timeout: Duration::MAX,
        }),
        ..opts()
    };
    let mut m = in_session(huge);
    m.handle_close(ms(5), 1006, "");
    let at = m.poll_timeout().expect("an attempt is scheduled");
    m.handle_timeout(at);
    assert_eq!(sent(&mut m), ["<Connect>"]);
    assert_eq!(
        m.poll_timeout(),
        Some(Duration::MAX),
        "the attempt's deadline saturates"
    );

    // No time at all to reconnect: the seat is given up at once.
    let none = Options {
        reconnect: Some(ReconnectOptions {
            max_time: Duration::ZERO,
            ..ReconnectOptions::default()
        }),
        ..opts()
    };
    let mut m = in_session(none);
    m.handle_close(ms(5), 1006, "");
    let evs = events(&mut m);
    assert!(
        matches!(
            &evs[..],
            [
                Event::Lost {
                    reason: LostReason::Timeout,
                    ..
                },
                Event::Close { .. }
            ]
        ),
        "{evs:?}"
    );
}

#[test]
fn messages_ping_listing_and_metadata() {
    let mut m = in_session(Options {
        messages: true,
        ..opts()
    });
    let received = m.received();
    let sent_to = m.send_message(&data(json!({"text":"gg"})), Some(&[4, 9]));
    let to_all = m.send_message(&data(json!("ready")), None);
    let ping = m.ping(ms(1000));
    let meta = m.set_metadata(&data(json!({"round":2})));
    assert_eq!(
        sent(&mut m),
        [
            r#"{"command":"sendMessage","data":{"text":"gg"},"to":[4,9]}"#,
            r#"{"command":"sendMessage","data":"ready"}"#,
            r#"{"command":"ping","t":1000}"#,
            r#"{"command":"setMetadata","metadata":{"round":2}}"#,
        ]
    );
    m.handle_text(
        ms(1001),
        r#"{"command":"message","error":0,"playerID":4,"data":{"text":"hi"}}"#,
    );
    m.handle_text(
        ms(1002),
        r#"{"command":"messageSent","error":31,"message":"player 9 is no member"}"#,
    );
    m.handle_text(
        ms(1003),
        r#"{"command":"messageSent","error":0,"recipients":1}"#,
    );
    m.handle_text(
        ms(1040),
        r#"{"command":"pong","error":0,"t":1000,"serverTime":1767225600000}"#,
    );
    m.handle_text(
        ms(1041),
        r#"{"command":"sessionMetadata","error":0,"metadata":{"round":2}}"#,
    );
    assert_eq!(m.received(), received, "messages are no session events");
    let mut done = completions(&mut m);
    assert_eq!(done.len(), 4);
    let (id, result) = done.remove(0);
    assert_eq!((id, result.unwrap_err().code()), (sent_to, Some(31)));
    let (id, result) = done.remove(0);
    assert!(id == to_all && matches!(result, Ok(Reply::MessageSent(1))));
    let (id, result) = done.remove(0);
    assert_eq!(id, ping);
    let Ok(Reply::Pong { rtt, server_time }) = result else {
        panic!("{result:?}")
    };
    assert_eq!((rtt, server_time), (ms(40), 1_767_225_600_000));
    let (id, result) = done.remove(0);
    assert_eq!(id, meta);
    let Ok(Reply::Metadata(d)) = result else {
        panic!("{result:?}")
    };
    assert_eq!(d.as_str(), r#"{"round":2}"#);
    match &events(&mut m)[..] {
        [Event::Message { player_id: 4, data }] => assert_eq!(data.as_str(), r#"{"text":"hi"}"#),
        other => panic!("{other:?}"),
    }
}

#[test]
fn hello_asks_for_messages_when_told() {
    let mut m = Machine::new(
        Options {
            messages: true,
            reconnect: None,
            ..Options::default()
        },
        1,
        T0,
    );
    m.handle_open(T0);
    assert_eq!(
        sent(&mut m),
        [r#"{"command":"hello","features":["messages"]}"#]
    );
}

#[test]
fn list_sessions_sends_its_options_and_reads_the_page() {
    let mut m = open(opts());
    let all = m.list_sessions(&sessionserver_client::ListOptions::default());
    let some = m.list_sessions(&sessionserver_client::ListOptions {
        filter: Some(data(json!({"mode":"ctf"}))),
        available: Some(true),
        after: Some(7),
        limit: Some(2),
    });
    assert_eq!(
        sent(&mut m),
        [
            r#"{"command":"listSessions"}"#,
            r#"{"command":"listSessions","filter":{"mode":"ctf"},"available":true,"after":7,"limit":2}"#,
        ]
    );
    m.handle_text(
        T0,
        r#"{"command":"sessionList","error":0,"sessions":[],"next":null}"#,
    );
    m.handle_text(T0, r#"{"command":"sessionList","error":0,"sessions":[{"sessionID":5,"players":3,"maxPlayers":null,"metadata":{"mode": "ctf"}}],"next":5}"#);
    let done = completions(&mut m);
    let [(a, Ok(Reply::SessionList(first))), (b, Ok(Reply::SessionList(second)))] = &done[..]
    else {
        panic!("{done:?}")
    };
    assert_eq!((*a, *b), (all, some));
    assert!(first.sessions.is_empty() && first.next.is_none());
    assert_eq!(second.next, Some(5));
    let info = &second.sessions[0];
    assert_eq!(
        (info.session_id, info.players, info.max_players),
        (5, 3, None)
    );
    assert_eq!(info.metadata.as_str(), r#"{"mode": "ctf"}"#, "verbatim");
}

#[test]
fn join_or_create_sends_filter_data_and_options() {
    let mut m = open(opts());
    let options = SessionOptions {
        max_players: Some(4),
        ..SessionOptions::default()
    };
    let id = m.join_or_create(
        &data(json!({"mode":"ctf"})),
        &data(json!({})),
        &data(json!({"x":0})),
        &options,
    );
    assert_eq!(
        sent(&mut m),
        [
            r#"{"command":"joinOrCreate","filter":{"mode":"ctf"},"session":{},"player":{"x":0},"options":{"maxPlayers":4}}"#
        ]
    );
    m.handle_text(T0, r#"{"command":"sessionJoin","error":0,"sessionID":2,"playerID":3,"session":{},"player":{"x":0}}"#);
    assert!(matches!(only_completion(&mut m, id), Ok(Reply::Session(s)) if s.id == 2));
}
