//! What the reference servers (`bare_server`, `relay_server`, `tokio_relay`) share: the few
//! frames of the protocol that the `fanout` scenario needs and the IDs they hand out, written
//! once so that the servers differ only in how they move bytes; and the accept loop of the two
//! on tokio.

use std::fmt::Write as _;
use std::future::Future;

use tokio::net::{TcpListener, TcpStream};

/// The session and player IDs the reference servers hand out.
#[derive(Default)]
pub struct Ids {
    last_session: i64,
    last_player: i64,
}

impl Ids {
    /// The (session, player) of a createSession (a new session) or a joinSession (the one
    /// named in `text`; -1 when it names none) from a new player.
    pub fn join(&mut self, command: &str, text: &str) -> (i64, i64) {
        let session = if command == "createSession" {
            self.last_session += 1;
            self.last_session
        } else {
            crate::common::int_field(text, "\"sessionID\":").unwrap_or(-1)
        };
        self.last_player += 1;
        (session, self.last_player)
    }
}

/// Accepts connections on 127.0.0.1:`port` on one current-thread tokio runtime, each served
/// by a task of its own (`serve`, on this thread: the tokio reference servers share their
/// state without locks).
pub fn serve_on_one_thread<F, Fut>(port: u16, mut serve: F) -> Result<(), String>
where
    F: FnMut(TcpStream) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("bind: {e}"))?;
        loop {
            let (stream, _) = listener
                .accept()
                .await
                .map_err(|e| format!("accept: {e}"))?;
            let _ = stream.set_nodelay(true);
            tokio::task::spawn_local(serve(stream));
        }
    })
}

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
    fn a_create_makes_a_session_and_every_join_a_new_player() {
        let mut ids = Ids::default();
        assert_eq!(
            ids.join("createSession", r#"{"command":"createSession"}"#),
            (1, 1)
        );
        let join = r#"{"command":"joinSession","sessionID":1}"#;
        assert_eq!(ids.join("joinSession", join), (1, 2));
        assert_eq!(
            ids.join("createSession", r#"{"command":"createSession"}"#),
            (2, 3)
        );
        assert_eq!(
            ids.join("joinSession", r#"{"command":"joinSession"}"#),
            (-1, 4)
        );
    }

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
