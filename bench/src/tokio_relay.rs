//! A third reference: the relay's work per update (one read, the frame built once in a reused
//! buffer, one write per member) done on tokio, the runtime the native server runs on. One
//! current-thread runtime, one task per connection that waits for its socket to be readable,
//! and each member's frame written at once with `try_write` on its socket (what a socket
//! cannot take is written later by a task of its own). No channels, no session task, no JSON
//! parsing, no limits or heartbeats; it speaks only what the `fanout` scenario sends.
//!
//! What it measures: beside the epoll relay, what tokio's readiness and task machinery add per
//! update; beside the native server, what the server's own work adds on the same runtime.
//!
//! Run: `sessionserver-bench tokio-relay-server --port 7200`, then
//! `fanout --url ws://127.0.0.1:7200/`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::rc::Rc;

use tokio::net::TcpStream;

use crate::relay_server::{client_frame, handshake, Handshake};
use crate::{common, reference, ws};

#[derive(clap::Args, Debug, Clone)]
pub struct TokioRelayArgs {
    /// TCP port on 127.0.0.1.
    #[arg(long, default_value_t = 7200)]
    pub port: u16,
}

struct Conn {
    stream: TcpStream,
    /// Bytes the socket did not take yet; a writer task sends them when it can.
    output: RefCell<Vec<u8>>,
    writer: Cell<bool>,
}

#[derive(Default)]
struct State {
    sessions: HashMap<i64, Vec<(i64, Rc<Conn>)>>,
    ids: reference::Ids,
    /// The broadcast being sent, its text and its frame, reused.
    body: String,
    frame: Vec<u8>,
}

pub fn run(args: TokioRelayArgs) -> Result<(), String> {
    let state = Rc::new(RefCell::new(State::default()));
    reference::serve_on_one_thread(args.port, move |stream| {
        let conn = Rc::new(Conn {
            stream,
            output: RefCell::new(Vec::new()),
            writer: Cell::new(false),
        });
        serve(conn, state.clone())
    })
}

/// Reads until the client goes: one `try_read` per readiness, every whole frame handled.
async fn serve(conn: Rc<Conn>, state: Rc<RefCell<State>>) {
    let mut input = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut upgraded = false;
    let mut joined: Option<(i64, i64)> = None;
    'read: loop {
        if conn.stream.readable().await.is_err() {
            break;
        }
        match conn.stream.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => input.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(_) => break,
        }
        if !upgraded {
            match handshake(&input) {
                Handshake::Incomplete => continue,
                Handshake::Invalid => break,
                Handshake::Accept { response, taken } => {
                    send(&conn, response.as_bytes());
                    input.drain(..taken);
                    upgraded = true;
                }
            }
        }
        let mut taken = 0;
        loop {
            let (opcode, payload, len) = match client_frame(&mut input[taken..]) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(_) => break 'read,
            };
            let payload = taken + payload.start..taken + payload.end;
            taken += len;
            match opcode {
                ws::OP_TEXT => {
                    let text = std::str::from_utf8(&input[payload]).unwrap_or("");
                    command(&conn, &mut state.borrow_mut(), &mut joined, text);
                }
                ws::OP_CLOSE => break 'read,
                ws::OP_PING => {
                    let mut pong = Vec::new();
                    ws::put_server_frame(&mut pong, ws::OP_PONG, &input[payload]);
                    send(&conn, &pong);
                }
                _ => {}
            }
        }
        input.drain(..taken);
    }
    if let Some((session, player)) = joined {
        if let Some(members) = state.borrow_mut().sessions.get_mut(&session) {
            members.retain(|(id, _)| *id != player);
        }
    }
}

fn command(conn: &Rc<Conn>, state: &mut State, joined: &mut Option<(i64, i64)>, text: &str) {
    match (common::command_of(text), *joined) {
        (command @ ("createSession" | "joinSession"), None) => {
            let (session, player) = state.ids.join(command, text);
            send_text(conn, &reference::session_join(session, player));
            let members = state.sessions.entry(session).or_default();
            let joins = reference::player_join(player);
            for (id, member) in members.iter() {
                send_text(member, &joins);
                send_text(conn, &reference::player_join(*id));
            }
            members.push((player, conn.clone()));
            *joined = Some((session, player));
        }
        ("updatePlayer", Some((session, player))) => {
            reference::player_update(&mut state.body, player, text);
            state.frame.clear();
            ws::put_server_frame(&mut state.frame, ws::OP_TEXT, state.body.as_bytes());
            for (_, member) in state.sessions.get(&session).into_iter().flatten() {
                send(member, &state.frame);
            }
        }
        _ => {}
    }
}

fn send_text(conn: &Rc<Conn>, text: &str) {
    let mut frame = Vec::with_capacity(text.len() + 10);
    ws::put_server_frame(&mut frame, ws::OP_TEXT, text.as_bytes());
    send(conn, &frame);
}

/// One `try_write`; what the socket does not take goes to a writer task.
fn send(conn: &Rc<Conn>, bytes: &[u8]) {
    if conn.writer.get() {
        conn.output.borrow_mut().extend_from_slice(bytes);
        return;
    }
    let written = match conn.stream.try_write(bytes) {
        Ok(n) => n,
        Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
        Err(_) => return,
    };
    if written < bytes.len() {
        conn.output
            .borrow_mut()
            .extend_from_slice(&bytes[written..]);
        conn.writer.set(true);
        tokio::task::spawn_local(write_later(conn.clone()));
    }
}

async fn write_later(conn: Rc<Conn>) {
    loop {
        if conn.stream.writable().await.is_err() {
            break;
        }
        let mut output = conn.output.borrow_mut();
        match conn.stream.try_write(&output) {
            Ok(n) => {
                output.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        if output.is_empty() {
            break;
        }
    }
    conn.writer.set(false);
}
