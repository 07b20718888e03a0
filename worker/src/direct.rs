//! The direct path: a client socket that ends in its session's object, not in the Worker.
//!
//! A Worker's CPU limit counts for a request's whole life, and a relayed WebSocket is one
//! request: the relay spends CPU on every frame and is cut after tens of minutes of play. A
//! socket accepted by a Durable Object is billed and limited per message instead. So a client
//! may open its socket on the session's own URL:
//!
//! - `wss://host/session/new`: a fresh session object; on it the client creates that object's
//!   session (once);
//! - `wss://host/session/<id>`: the object of session `<id>`, to join it, or to resume a seat
//!   of it. The upgrade is refused with 404 if no live session has that ID.
//!
//! The object runs a core [`sessionserver_core::Player`] for each such socket, with the
//! lobby's rules for this one session (`SessionObject`'s `pump`), and keeps it in the socket's
//! attachment across hibernation. Whatever would take the connection to another session (a
//! second create, a join of another ID or of `-1`, another session's resume token,
//! `joinOrCreate`, `listSessions`) is answered with error 34: the client connects again.
//! `wss://host/` stays the relay ([`crate::relay`]) and serves every client as before.
//!
//! Here: the Worker's part, the routing of those two URLs to the object, with the same
//! connect-time auth as the relay's.

#[cfg(target_arch = "wasm32")]
use std::sync::Arc;

use sessionserver_core::ids::MAX_ID;
#[cfg(target_arch = "wasm32")]
use sessionserver_core::PlayerId;
#[cfg(target_arch = "wasm32")]
use worker::{Env, Response, Result};

#[cfg(target_arch = "wasm32")]
use crate::link::{self, status, Ask};

/// Session IDs drawn for one `/session/new` before giving up (as the relay's creates).
#[cfg(target_arch = "wasm32")]
const NEW_ATTEMPTS: usize = 8;

/// Which direct URL a path is, if it is one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/session/new`.
    New,
    /// `/session/<id>`.
    Session(u64),
    /// `/session/<anything else>`: refused with 404.
    Invalid,
}

/// The direct route of `path`; `None` for the relay's paths.
pub fn route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/session/")?;
    Some(match rest {
        "new" => Route::New,
        id => match id.parse::<u64>() {
            // One spelling per session: no sign, no leading zeros.
            Ok(n) if n <= MAX_ID && n.to_string() == id => Route::Session(n),
            _ => Route::Invalid,
        },
    })
}

/// Hands the upgrade `route` asks for to its session object, for connection `player` (a
/// fresh random ID) known as `subject`; the object's answer (the socket, or a refusal) goes
/// back to the client as it is.
#[cfg(target_arch = "wasm32")]
pub async fn connect(
    env: &Env,
    route: Route,
    player: PlayerId,
    subject: Option<Arc<String>>,
) -> Result<Response> {
    let ask = |new| Ask::direct(player, subject.clone(), new);
    match route {
        Route::Invalid => Response::error(
            "Not found. The direct path is /session/new or /session/<session ID>.\n",
            404,
        ),
        Route::Session(id) => {
            let ask = ask(false);
            let answer = open(env, id, &ask).await?;
            if answer.status_code() == status::NOT_FOUND {
                return Response::error(format!("no session {id}\n"), 404);
            }
            Ok(answer)
        }
        Route::New => {
            let ask = ask(true);
            for _ in 0..NEW_ATTEMPTS {
                let answer = open(env, link::random_id()?, &ask).await?;
                // Taken (p = sessions ever created / 2^53): draw again.
                if answer.status_code() != status::CONFLICT {
                    return Ok(answer);
                }
            }
            Response::error("no free session ID; try again\n", 503)
        }
    }
}

/// The object's answer to `ask`, asked again with a new stub while it fails retryably.
#[cfg(target_arch = "wasm32")]
async fn open(env: &Env, id: u64, ask: &Ask) -> Result<Response> {
    link::retrying("opening a direct socket", || async move {
        link::session_stub(env, id)?
            .fetch_with_request(ask.request()?)
            .await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_urls_and_only_them() {
        assert_eq!(route("/session/new"), Some(Route::New));
        assert_eq!(route("/session/0"), Some(Route::Session(0)));
        assert_eq!(route("/session/41"), Some(Route::Session(41)));
        assert_eq!(
            route(&format!("/session/{MAX_ID}")),
            Some(Route::Session(MAX_ID))
        );
        // One spelling per session, and IDs a session can have.
        for path in [
            "/session/",
            "/session/01",
            "/session/+1",
            "/session/-1",
            "/session/1.0",
            "/session/new/",
            "/session/41/x",
            "/session/NEW",
            "/session/9007199254740992",
        ] {
            assert_eq!(route(path), Some(Route::Invalid), "{path}");
        }
        // The relay's paths.
        for path in ["/", "/sessions/new", "/healthz", "/x/session/new"] {
            assert_eq!(route(path), None, "{path}");
        }
    }
}
