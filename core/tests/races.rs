//! What happens between the machines: random commands and closes from several players, with
//! the messages between the player and session machines delivered when the test says (the way
//! a host's channels and tasks deliver them late). Sessions end while joins are on their way,
//! connections close while their join or leave is on its way, `-1` finds a session that is
//! just ending. After every step the server's invariants hold; once everything is delivered no
//! player waits, no session outlives its members, and no member is a closed connection.
#![cfg(not(target_arch = "wasm32"))]

use proptest::prelude::*;
use sessionserver_core::{Limits, Output, PlayerId, Server};

#[derive(Clone, Debug)]
enum Op {
    Connect,
    Close(usize),
    Create(usize),
    Join(usize, i64),
    Update(usize),
    Leave(usize),
    Step(u8),
    Settle,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Connect),
        2 => any::<usize>().prop_map(Op::Close),
        2 => any::<usize>().prop_map(Op::Create),
        4 => (any::<usize>(), -1i64..4).prop_map(|(p, id)| Op::Join(p, id)),
        2 => any::<usize>().prop_map(Op::Update),
        3 => any::<usize>().prop_map(Op::Leave),
        4 => (0u8..4).prop_map(Op::Step),
        1 => Just(Op::Settle),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn messages_delivered_late_leave_no_ghost(ops in proptest::collection::vec(op(), 1..120)) {
        let mut server = Server::with_limits(Limits {
            max_players_per_session: 3,
            max_sessions: 3,
            ..Limits::default()
        });
        let mut players: Vec<PlayerId> = Vec::new();
        for op in &ops {
            let pick = |i: usize| players[i % players.len()];
            match op {
                Op::Connect => players.extend(server.connect()),
                _ if players.is_empty() => continue,
                Op::Close(i) => {
                    let p = pick(*i);
                    server.feed_close(p);
                    players.retain(|q| *q != p);
                }
                Op::Create(i) => server.feed_text(
                    pick(*i),
                    r#"{"command":"createSession","session":{},"player":{"x":0}}"#,
                ),
                Op::Join(i, id) => server.feed_text(
                    pick(*i),
                    &format!(r#"{{"command":"joinSession","sessionID":{id}}}"#),
                ),
                Op::Update(i) => server.feed_text(
                    pick(*i),
                    r#"{"command":"updatePlayer","player":{"x":1}}"#,
                ),
                Op::Leave(i) => server.feed_text(pick(*i), r#"{"command":"leaveSession"}"#),
                Op::Step(n) => {
                    for _ in 0..*n {
                        server.step();
                    }
                }
                Op::Settle => server.settle(),
            }
            while let Some(Output::Send { to, .. }) = server.poll_output() {
                prop_assert!(players.contains(&to), "a frame for closed connection {}", to);
            }
            prop_assert_eq!(server.check_invariants(), Ok(()), "after {:?}", op);
        }
        server.settle();
        while server.poll_output().is_some() {}
        prop_assert_eq!(server.check_invariants(), Ok(()));
        for player in players.drain(..) {
            server.disconnect(player);
        }
        prop_assert_eq!(server.sessions().count(), 0, "sessions outlive every player");
    }
}
