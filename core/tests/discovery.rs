//! Finding a game (issue 17), on the reference composition: session metadata, the host's
//! `setMetadata`, and `listSessions` with filters, `available` and pages; private sessions
//! are never listed.

mod common;

use common::Harness;
use serde_json::{json, Value};
use sessionserver_core::{ConnectionConfig, Features, Limits, PlayerId, Server};
use wasm_bindgen_test::wasm_bindgen_test;

fn game() -> Harness {
    let config = ConnectionConfig {
        features: Features::HOST,
        ..ConnectionConfig::default()
    };
    Harness::with_server(Server::with_config(Limits::default(), config))
}

fn list(h: &mut Harness, p: PlayerId, frame: &str) -> Value {
    h.send(p, frame);
    let reply = h.recv(p);
    assert_eq!(reply["command"], "sessionList", "{reply}");
    reply
}

fn ids(reply: &Value) -> Vec<u64> {
    reply["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessionID"].as_u64().unwrap())
        .collect()
}

#[wasm_bindgen_test(unsupported = test)]
fn public_sessions_are_listed_newest_first_with_players_max_and_metadata() {
    let mut h = game();
    let browser = h.connect();
    assert_eq!(
        h.send_and_recv_text(browser, r#"{"command":"listSessions"}"#),
        r#"{"command":"sessionList","error":0,"sessions":[],"next":null}"#
    );
    let a = h.connect();
    let ctf = h.create(
        a,
        r#"{"command":"createSession","options":{"maxPlayers":4,"metadata":{"mode":"ctf", "map":"dust"}}}"#,
    );
    let b = h.connect();
    let plain = h.create(b, r#"{"command":"createSession"}"#);
    let c = h.connect();
    h.create(
        c,
        r#"{"command":"createSession","options":{"private":true,"metadata":{"mode":"ctf"}}}"#,
    );
    let reply = list(&mut h, browser, r#"{"command":"listSessions"}"#);
    assert_eq!(
        reply["sessions"],
        json!([
            {"sessionID":plain,"players":1,"maxPlayers":null,"metadata":{}},
            {"sessionID":ctf,"players":1,"maxPlayers":4,"metadata":{"mode":"ctf","map":"dust"}},
        ])
    );
    // Metadata is passed on as the creator wrote it.
    let text = h.send_and_recv_text(
        browser,
        r#"{"command":"listSessions","filter":{"mode":"ctf"}}"#,
    );
    assert!(
        text.contains(r#""metadata":{"mode":"ctf", "map":"dust"}"#),
        "{text}"
    );
    // Players come and go in the listing.
    let d = h.connect();
    h.send(
        d,
        &format!(r#"{{"command":"joinSession","sessionID":{ctf}}}"#),
    );
    h.take_all(d);
    h.take_all(a);
    let reply = list(
        &mut h,
        browser,
        r#"{"command":"listSessions","filter":{"mode":"ctf"}}"#,
    );
    assert_eq!(ids(&reply), [ctf]);
    assert_eq!(reply["sessions"][0]["players"], 2);
    h.send(b, r#"{"command":"leaveSession"}"#);
    let reply = list(&mut h, browser, r#"{"command":"listSessions"}"#);
    assert_eq!(ids(&reply), [ctf], "an ended session is not listed");
}

#[wasm_bindgen_test(unsupported = test)]
fn filters_available_and_pages() {
    let mut h = game();
    let browser = h.connect();
    let mut made = Vec::new();
    for i in 0..7 {
        let p = h.connect();
        let options = match i % 3 {
            0 => r#"{"metadata":{"mode":"ctf"},"maxPlayers":1}"#,
            1 => r#"{"metadata":{"mode":"ctf"},"password":"pw"}"#,
            _ => r#"{"metadata":{"mode":"ffa","level":2}}"#,
        };
        made.push(h.create(
            p,
            &format!(r#"{{"command":"createSession","options":{options}}}"#),
        ));
    }
    let newest_first: Vec<u64> = made.iter().rev().copied().collect();
    let all = list(&mut h, browser, r#"{"command":"listSessions"}"#);
    assert_eq!(ids(&all), newest_first);
    assert_eq!(all["next"], Value::Null);
    let ffa = list(
        &mut h,
        browser,
        r#"{"command":"listSessions","filter":{"mode":"ffa","level":2}}"#,
    );
    assert_eq!(ids(&ffa), [made[5], made[2]]);
    let none = list(
        &mut h,
        browser,
        r#"{"command":"listSessions","filter":{"level":"2"}}"#,
    );
    assert_eq!(ids(&none), Vec::<u64>::new());
    // Available: not full (maxPlayers 1 with its creator in), not locked, no password.
    let open = list(
        &mut h,
        browser,
        r#"{"command":"listSessions","available":true}"#,
    );
    assert_eq!(ids(&open), [made[5], made[2]]);
    // Pages of 3, following `next`.
    let mut seen = Vec::new();
    let mut frame = r#"{"command":"listSessions","limit":3}"#.to_owned();
    loop {
        let page = list(&mut h, browser, &frame);
        assert!(ids(&page).len() <= 3);
        seen.extend(ids(&page));
        match page["next"].as_u64() {
            Some(next) => {
                frame = format!(r#"{{"command":"listSessions","limit":3,"after":{next}}}"#)
            }
            None => break,
        }
    }
    assert_eq!(seen, newest_first);
    for bad in [
        r#"{"command":"listSessions","filter":[]}"#,
        r#"{"command":"listSessions","limit":0}"#,
        r#"{"command":"listSessions","limit":51}"#,
        r#"{"command":"listSessions","after":-1}"#,
        r#"{"command":"listSessions","available":1}"#,
    ] {
        let reply = list(&mut h, browser, bad);
        assert_eq!(reply["error"], 13, "{bad}: {reply}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn the_host_changes_the_metadata_and_members_list_from_the_lobby_only() {
    let mut h = game();
    let host = h.connect();
    let s = h.create(
        host,
        r#"{"command":"createSession","options":{"metadata":{"round":1}}}"#,
    );
    let guest = h.connect();
    h.send(
        guest,
        &format!(r#"{{"command":"joinSession","sessionID":{s}}}"#),
    );
    h.take_all(guest);
    h.take_all(host);
    h.send(guest, r#"{"command":"setMetadata","metadata":{"round":9}}"#);
    let refused = h.recv(guest);
    assert_eq!(
        (refused["command"].as_str(), refused["error"].as_u64()),
        (Some("sessionMetadata"), Some(29))
    );
    assert_eq!(
        h.send_and_recv_text(host, r#"{"command":"setMetadata","metadata":{"round":2}}"#),
        r#"{"command":"sessionMetadata","error":0,"metadata":{"round":2}}"#
    );
    let big = format!(
        r#"{{"command":"setMetadata","metadata":{{"x":"{}"}}}}"#,
        "y".repeat(5000)
    );
    h.send(host, &big);
    assert_eq!(h.recv(host)["error"], 13);
    h.send(guest, r#"{"command":"listSessions"}"#);
    assert_eq!(h.recv(guest)["error"], 32);
    h.send(host, r#"{"command":"leaveSession"}"#);
    h.take_all(host);
    let reply = list(&mut h, host, r#"{"command":"listSessions"}"#);
    assert_eq!(reply["sessions"][0]["metadata"], json!({"round":2}));
    let lobby = h.connect();
    h.send(lobby, r#"{"command":"setMetadata","metadata":{}}"#);
    assert_eq!(
        h.recv_text(lobby),
        r#"{"command":"sessionMetadata","error":2}"#
    );
}
