//! What the reference servers (`bare_server`, `relay_server`, `tokio_relay`) say: the few
//! frames of the protocol that the `fanout` scenario needs, written the same way by all of them
//! so that they differ only in how they move bytes.

use std::fmt::Write as _;

/// The answer to createSession / joinSession.
pub fn session_join(session: i64, player: i64) -> String {
    format!(
        r#"{{"command":"sessionJoin","error":0,"sessionID":{session},"playerID":{player},"session":{{}},"player":{{}}}}"#
    )
}

/// Tells a member that `player` is in the session.
pub fn player_join(player: i64) -> String {
    format!(r#"{{"command":"playerJoin","playerID":{player},"player":{{}}}}"#)
}

/// Writes the `playerUpdate` broadcast for `player`'s updatePlayer `command` into `out`
/// (cleared first, so a caller can reuse one buffer).
pub fn player_update(out: &mut String, player: i64, command: &str) {
    out.clear();
    let _ = write!(
        out,
        r#"{{"command":"playerUpdate","error":0,"playerID":{player},"player":{}}}"#,
        player_object(command)
    );
}

/// The `player` object of an updatePlayer frame, as sent: the fan-out's frames end with it.
fn player_object(command: &str) -> &str {
    const KEY: &str = "\"player\":";
    match command.find(KEY) {
        Some(at) => {
            let rest = command[at + KEY.len()..].trim_end();
            rest.strip_suffix('}').unwrap_or(rest)
        }
        None => "{}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_carries_the_player_object_as_sent() {
        let mut out = String::from("left over");
        player_update(
            &mut out,
            7,
            r#"{"command":"updatePlayer","player":{"seq":4,"t":17}}"#,
        );
        assert_eq!(
            out,
            r#"{"command":"playerUpdate","error":0,"playerID":7,"player":{"seq":4,"t":17}}"#
        );
        player_update(&mut out, 7, r#"{"command":"updatePlayer"}"#);
        assert_eq!(
            out,
            r#"{"command":"playerUpdate","error":0,"playerID":7,"player":{}}"#
        );
    }
}
