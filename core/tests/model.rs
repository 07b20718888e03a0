//! Model-based property test: random command sequences from several players, run against the
//! core's `Server` and against a small, obviously-correct model of the protocol written from
//! PROTOCOL.md. Every player must receive exactly the frames the model predicts.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Value};
use sessionserver_core::{Output, PlayerId, Server};

const PLAYER_DATA: [&str; 6] = [
    r#"{"name":"a","pos":{"x":1,"y":2}}"#,
    r#"{"pos":{"y":0,"x":"s"},"name":[1]}"#,
    r#"{"name":"a","pos":5}"#,
    r#"{"name":"b"}"#,
    r#"{}"#,
    r#"{"name":{"x":1},"pos":{"x":1,"y":2}}"#,
];
const SESSION_DATA: [&str; 3] = [r#"{"map":"a"}"#, "{}", r#"{"round":2,"list":[1,{"a":1}]}"#];

#[derive(Clone, Debug)]
enum Op {
    Connect,
    Close(usize),
    Create(usize, usize, usize, bool),
    Join(usize, i64),
    UpdatePlayer(usize, usize, bool),
    UpdateSession(usize, usize, usize, bool),
    Leave(usize),
    Garbage(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Connect),
        1 => any::<usize>().prop_map(Op::Close),
        2 => (any::<usize>(), 0..SESSION_DATA.len(), 0..PLAYER_DATA.len(), any::<bool>())
            .prop_map(|(p, s, d, l)| Op::Create(p, s, d, l)),
        3 => (any::<usize>(), -2i64..5).prop_map(|(p, id)| Op::Join(p, id)),
        4 => (any::<usize>(), 0..PLAYER_DATA.len(), any::<bool>())
            .prop_map(|(p, d, l)| Op::UpdatePlayer(p, d, l)),
        1 => (any::<usize>(), 0..SESSION_DATA.len(), 0..PLAYER_DATA.len(), any::<bool>())
            .prop_map(|(p, s, d, l)| Op::UpdateSession(p, s, d, l)),
        2 => any::<usize>().prop_map(Op::Leave),
        1 => any::<usize>().prop_map(Op::Garbage),
    ]
}

struct ModelSession {
    long: bool,
    data: Value,
    default: Value,
    members: Vec<(u64, Value)>,
}

#[derive(Default)]
struct Model {
    players: BTreeMap<u64, Option<u64>>,
    sessions: BTreeMap<u64, ModelSession>,
    next_player: u64,
    next_session: u64,
    sent: Vec<(u64, Value)>,
}

/// Same keys at every level; objects where objects are, non-objects where non-objects are.
fn same_structure(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same_structure(v, w)))
        }
        (Value::Object(_), _) | (_, Value::Object(_)) => false,
        _ => true,
    }
}

fn names(long: bool) -> (&'static str, &'static str) {
    if long {
        ("sessionData", "playerData")
    } else {
        ("session", "player")
    }
}

impl Model {
    fn send(&mut self, to: u64, v: Value) {
        self.sent.push((to, v));
    }

    fn broadcast(&mut self, session: u64, v: Value) {
        let members: Vec<u64> = self.sessions[&session]
            .members
            .iter()
            .map(|m| m.0)
            .collect();
        for m in members {
            self.send(m, v.clone());
        }
    }

    fn remove(&mut self, player: u64, session: u64) {
        let s = self.sessions.get_mut(&session).unwrap();
        s.members.retain(|m| m.0 != player);
        if s.members.is_empty() {
            self.sessions.remove(&session);
        } else {
            self.broadcast(
                session,
                json!({"command":"playerLeave","error":0,"playerID":player}),
            );
        }
        self.players.insert(player, None);
    }

    fn apply(&mut self, player: u64, op: &Op) {
        let place = self.players[&player];
        match (op, place) {
            (Op::Garbage(_), _) => self.send(player, json!({"command":"error","error":12,"message":"unknown command \"nope\": expected createSession, joinSession, updateSession, updatePlayer or leaveSession"})),
            (Op::Create(..), Some(_)) => self.send(player, json!({"command":"sessionJoin","error":4})),
            (Op::Create(_, s, d, long), None) => {
                let id = self.next_session;
                self.next_session += 1;
                let default: Value = serde_json::from_str(PLAYER_DATA[*d]).unwrap();
                let data: Value = serde_json::from_str(SESSION_DATA[*s]).unwrap();
                let (sf, pf) = names(*long);
                self.send(player, json!({"command":"sessionJoin","error":0,"sessionID":id,"playerID":player, sf: data, pf: default}));
                self.sessions.insert(id, ModelSession { long: *long, data, default: default.clone(), members: vec![(player, default)] });
                self.players.insert(player, Some(id));
            }
            (Op::Join(..), Some(_)) => self.send(player, json!({"command":"sessionJoin","error":5})),
            (Op::Join(_, target), None) => {
                let id = match *target {
                    -1 => match self.sessions.keys().next_back() {
                        Some(id) => *id,
                        None => return self.send(player, json!({"command":"sessionJoin","error":6})),
                    },
                    id if id >= 0 && self.sessions.contains_key(&(id as u64)) => id as u64,
                    _ => return self.send(player, json!({"command":"sessionJoin","error":7})),
                };
                let s = &self.sessions[&id];
                let (sf, pf) = names(s.long);
                let default = s.default.clone();
                let mut frames = vec![json!({"command":"sessionJoin","error":0,"sessionID":id,"playerID":player, sf: s.data, pf: default})];
                for (m, d) in &s.members {
                    frames.push(json!({"command":"playerJoin","error":0,"playerID":m, pf: d}));
                }
                for f in frames {
                    self.send(player, f);
                }
                self.broadcast(id, json!({"command":"playerJoin","error":0,"playerID":player, pf: default}));
                self.sessions.get_mut(&id).unwrap().members.push((player, default));
                self.players.insert(player, Some(id));
            }
            (Op::UpdatePlayer(..), None) => self.send(player, json!({"command":"playerUpdate","error":2})),
            (Op::UpdatePlayer(_, d, _), Some(id)) => {
                let data: Value = serde_json::from_str(PLAYER_DATA[*d]).unwrap();
                let s = self.sessions.get_mut(&id).unwrap();
                if !same_structure(&s.default, &data) {
                    return self.send(player, json!({"command":"playerUpdate","error":4}));
                }
                let pf = names(s.long).1;
                s.members.iter_mut().find(|m| m.0 == player).unwrap().1 = data.clone();
                self.broadcast(id, json!({"command":"playerUpdate","error":0,"playerID":player, pf: data}));
            }
            (Op::UpdateSession(..), None) => self.send(player, json!({"command":"sessionUpdate","error":2})),
            (Op::UpdateSession(_, sd, d, _), Some(id)) => {
                let default: Value = serde_json::from_str(PLAYER_DATA[*d]).unwrap();
                let data: Value = serde_json::from_str(SESSION_DATA[*sd]).unwrap();
                let s = self.sessions.get_mut(&id).unwrap();
                let (sf, pf) = names(s.long);
                s.data = data.clone();
                s.default = default.clone();
                for m in &mut s.members {
                    m.1 = default.clone();
                }
                self.broadcast(id, json!({"command":"sessionUpdate","error":0, sf: data, pf: default}));
            }
            (Op::Leave(_), None) => self.send(player, json!({"command":"sessionLeave","error":2})),
            (Op::Leave(_), Some(id)) => {
                self.send(player, json!({"command":"sessionLeave","error":0}));
                self.remove(player, id);
            }
            (Op::Connect | Op::Close(_), _) => unreachable!("handled by the driver"),
        }
    }
}

fn frame(op: &Op) -> String {
    match op {
        Op::Create(_, s, d, long) => {
            let (sf, pf) = names(*long);
            format!(
                r#"{{"command":"createSession","{sf}":{},"{pf}":{}}}"#,
                SESSION_DATA[*s], PLAYER_DATA[*d]
            )
        }
        Op::Join(_, id) => format!(r#"{{"command":"joinSession","sessionID":{id}}}"#),
        Op::UpdatePlayer(_, d, long) => {
            format!(
                r#"{{"command":"updatePlayer","{}":{}}}"#,
                names(*long).1,
                PLAYER_DATA[*d]
            )
        }
        Op::UpdateSession(_, s, d, long) => {
            let (sf, pf) = names(*long);
            format!(
                r#"{{"command":"updateSession","{sf}":{},"{pf}":{}}}"#,
                SESSION_DATA[*s], PLAYER_DATA[*d]
            )
        }
        Op::Leave(_) => r#"{"command":"leaveSession"}"#.into(),
        Op::Garbage(_) => r#"{"command":"nope"}"#.into(),
        Op::Connect | Op::Close(_) => unreachable!(),
    }
}

fn target(op: &Op) -> usize {
    match op {
        Op::Close(i) | Op::Join(i, _) | Op::Leave(i) | Op::Garbage(i) => *i,
        Op::Create(i, ..) | Op::UpdatePlayer(i, ..) | Op::UpdateSession(i, ..) => *i,
        Op::Connect => 0,
    }
}

fn by_recipient(frames: Vec<(u64, Value)>) -> BTreeMap<u64, Vec<Value>> {
    let mut map: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    for (to, v) in frames {
        map.entry(to).or_default().push(v);
    }
    map
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_core_does_what_the_model_does(ops in proptest::collection::vec(op(), 1..80)) {
        let mut server = Server::new();
        let mut model = Model::default();
        let mut connected: Vec<u64> = Vec::new();
        for op in &ops {
            match op {
                Op::Connect => {
                    let id = server.connect().unwrap().0;
                    prop_assert_eq!(id, model.next_player);
                    model.next_player += 1;
                    model.players.insert(id, None);
                    connected.push(id);
                }
                _ if connected.is_empty() => continue,
                Op::Close(i) => {
                    let p = connected.remove(i % connected.len());
                    server.disconnect(PlayerId(p));
                    if let Some(Some(s)) = model.players.get(&p).copied() {
                        model.remove(p, s);
                    }
                    model.players.remove(&p);
                }
                _ => {
                    let p = connected[target(op) % connected.len()];
                    server.handle_text(PlayerId(p), &frame(op));
                    model.apply(p, op);
                }
            }
            let mut actual = Vec::new();
            while let Some(Output::Send { to, frame }) = server.poll_output() {
                actual.push((to.0, serde_json::from_str::<Value>(frame.as_str()).unwrap()));
            }
            let expected = std::mem::take(&mut model.sent);
            prop_assert_eq!(by_recipient(actual), by_recipient(expected), "after {:?}", op);
            prop_assert_eq!(server.check_invariants(), Ok(()));
        }
    }
}
