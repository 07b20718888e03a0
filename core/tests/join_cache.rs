//! A join costs one reference count per member: each member's `playerJoin` is encoded once and
//! shared by every joiner, and stays right across updatePlayer and updateSession.

use sessionserver_core::{Output, PlayerId, Server, ServerFrame};
use wasm_bindgen_test::wasm_bindgen_test;

/// Every frame the server sent since the last call, per recipient, in order.
fn sent(server: &mut Server) -> Vec<(PlayerId, ServerFrame)> {
    let mut frames = Vec::new();
    while let Some(output) = server.poll_output() {
        match output {
            Output::Send { to, frame } => frames.push((to, frame)),
            other => panic!("unexpected {other:?}"),
        }
    }
    frames
}

/// The `playerJoin` frames `to` got, in order.
fn joins_for(frames: &[(PlayerId, ServerFrame)], to: PlayerId) -> Vec<ServerFrame> {
    frames
        .iter()
        .filter(|(p, f)| *p == to && f.as_str().starts_with(r#"{"command":"playerJoin""#))
        .map(|(_, f)| f.clone())
        .collect()
}

fn join(server: &mut Server) -> (PlayerId, Vec<ServerFrame>) {
    let player = server.connect().unwrap();
    server.handle_text(player, r#"{"command":"joinSession","sessionID":0}"#);
    let frames = sent(server);
    (player, joins_for(&frames, player))
}

fn same_bytes(a: &ServerFrame, b: &ServerFrame) -> bool {
    a.bytes().as_ptr() == b.bytes().as_ptr() && a.bytes().len() == b.bytes().len()
}

#[wasm_bindgen_test(unsupported = test)]
fn joiners_share_each_members_frame_and_it_follows_the_members_data() {
    let mut server = Server::new();
    let big = "d".repeat(1000);
    let a = server.connect().unwrap();
    server.handle_text(
        a,
        &format!(r#"{{"command":"createSession","player":{{"name":"{big}"}}}}"#),
    );
    let (b, _) = join(&mut server);
    server.handle_text(b, r#"{"command":"updatePlayer","player":{"name":"bee"}}"#);
    let frames = sent(&mut server);
    assert_eq!(frames.len(), 2, "{frames:?}");

    // Two joiners get the same bytes for a (default data) and for b (its own data).
    let (c, c_joins) = join(&mut server);
    let (d, d_joins) = join(&mut server);
    let expected_a = format!(
        r#"{{"command":"playerJoin","error":0,"playerID":{a},"player":{{"name":"{big}"}}}}"#
    );
    let expected_b =
        format!(r#"{{"command":"playerJoin","error":0,"playerID":{b},"player":{{"name":"bee"}}}}"#);
    assert_eq!(c_joins.len(), 2);
    assert_eq!(c_joins[0].as_str(), expected_a);
    assert_eq!(c_joins[1].as_str(), expected_b);
    assert_eq!(d_joins.len(), 3);
    for i in 0..2 {
        assert!(same_bytes(&c_joins[i], &d_joins[i]), "member {i}");
    }
    // What d got of c is the announcement the members got when c joined.
    assert_eq!(
        d_joins[2].as_str(),
        format!(
            r#"{{"command":"playerJoin","error":0,"playerID":{c},"player":{{"name":"{big}"}}}}"#
        )
    );

    // b changes its data: the next joiner gets the new data, a's frame is still the shared one.
    server.handle_text(b, r#"{"command":"updatePlayer","player":{"name":"b2"}}"#);
    sent(&mut server);
    let (_, e_joins) = join(&mut server);
    assert!(same_bytes(&e_joins[0], &c_joins[0]));
    assert!(!same_bytes(&e_joins[1], &c_joins[1]));
    assert_eq!(
        e_joins[1].as_str(),
        format!(r#"{{"command":"playerJoin","error":0,"playerID":{b},"player":{{"name":"b2"}}}}"#)
    );
    let (_, f_joins) = join(&mut server);
    assert!(same_bytes(&f_joins[1], &e_joins[1]));

    // updateSession resets everyone to the new default: every frame is rebuilt with it.
    server.handle_text(
        d,
        r#"{"command":"updateSession","session":{},"player":{"name":"new"}}"#,
    );
    sent(&mut server);
    let (g, g_joins) = join(&mut server);
    let (_, h_joins) = join(&mut server);
    let members = server
        .session(server.session_of(g).unwrap())
        .unwrap()
        .member_ids()
        .collect::<Vec<_>>();
    // g got every member before it; h joined after it.
    assert_eq!(g_joins.len(), members.len() - 2);
    for (i, (frame, member)) in g_joins.iter().zip(&members).enumerate() {
        assert_eq!(
            frame.as_str(),
            format!(
                r#"{{"command":"playerJoin","error":0,"playerID":{member},"player":{{"name":"new"}}}}"#
            )
        );
        assert!(same_bytes(frame, &h_joins[i]), "member {member}");
    }
}
