//! The reference point the performance issue names: a bare, single-threaded tokio-tungstenite
//! fan-out server, written the way its examples write one. It speaks only what the `fanout`
//! scenario sends (createSession, joinSession, updatePlayer) and checks nothing: no limits,
//! no heartbeats, no leave handling beyond dropping a closed player. Its CPU per delivery,
//! measured by the same `fanout` run, says what any server built on these crates pays at a
//! given load on this machine, next to the loopback floor and the real server.
//!
//! Run: `sessionserver-bench bare-server --port 7200`, then `fanout --url ws://127.0.0.1:7200/`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::{common, reference};

#[derive(clap::Args, Debug, Clone)]
pub struct BareServerArgs {
    /// TCP port on 127.0.0.1.
    #[arg(long, default_value_t = 7200)]
    pub port: u16,
}

/// One session: its members' ids and outgoing queues.
type Members = Vec<(i64, mpsc::UnboundedSender<Message>)>;

#[derive(Default)]
struct State {
    sessions: HashMap<i64, Members>,
    ids: reference::Ids,
}

pub fn run(args: BareServerArgs) -> Result<(), String> {
    let state = Rc::new(RefCell::new(State::default()));
    reference::serve_on_one_thread(args.port, move |stream| serve(stream, state.clone()))
}

async fn serve(stream: TcpStream, state: Rc<RefCell<State>>) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    // The writer: one `send` (a write and a flush) per frame, as the crate's examples do.
    tokio::task::spawn_local(async move {
        while let Some(message) = rx.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
    });
    let mut joined: Option<(i64, i64)> = None;
    while let Some(Ok(message)) = source.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let text = text.as_str();
        let mut state = state.borrow_mut();
        match (common::command_of(text), joined) {
            (command @ ("createSession" | "joinSession"), None) => {
                let (session, player) = state.ids.join(command, text);
                let members = state.sessions.entry(session).or_default();
                let _ = tx.send(Message::text(reference::session_join(session, player)));
                let joins = Message::text(reference::player_join(player));
                for (id, member) in members.iter() {
                    let _ = member.send(joins.clone());
                    let _ = tx.send(Message::text(reference::player_join(*id)));
                }
                members.push((player, tx.clone()));
                joined = Some((session, player));
            }
            ("updatePlayer", Some((session, player))) => {
                // Encoded once, cloned (a reference count) per member.
                let mut update = String::new();
                reference::player_update(&mut update, player, text);
                let update = Message::text(update);
                for (_, member) in state.sessions.get(&session).into_iter().flatten() {
                    let _ = member.send(update.clone());
                }
            }
            _ => {}
        }
    }
    if let Some((session, player)) = joined {
        if let Some(members) = state.borrow_mut().sessions.get_mut(&session) {
            members.retain(|(id, _)| *id != player);
        }
    }
}
