//! The least an event-driven fan-out server can do per update, as a reference point: one
//! thread, one level-triggered epoll, one `recv` per readable socket, the broadcast frame
//! built once in a reused buffer and one `send` per member, no async runtime, no allocation
//! per update, no JSON parsing (the fields are found by substring, as the generator finds
//! them). It speaks only what the `fanout` scenario sends (createSession, joinSession,
//! updatePlayer; pings are answered) and checks nothing a real server must: no limits, no
//! fragmented messages, no heartbeats. A member whose socket is full gets the rest later.
//!
//! What it measures: the CPU per delivery that the kernel work around each update (the
//! wake-up, the `recv`, waking the readers) costs at a given load on this machine, beyond the
//! loopback floor's plain writes. The real server cannot go below it without batching updates.
//!
//! Run: `sessionserver-bench relay-server --port 7200`, then `fanout --url ws://127.0.0.1:7200/`.

use std::collections::HashMap;
use std::io::{Cursor, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::time::Duration;

use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

use crate::epoll::{Epoll, Event, EPOLLIN, EPOLLOUT};
use crate::{common, reference, ws};

#[derive(clap::Args, Debug, Clone)]
pub struct RelayServerArgs {
    /// TCP port on 127.0.0.1.
    #[arg(long, default_value_t = 7200)]
    pub port: u16,
}

const LISTENER: u64 = u64::MAX;

struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet taken as a request or frames.
    input: Vec<u8>,
    /// Bytes the socket did not take yet.
    output: Vec<u8>,
    upgraded: bool,
    /// (session, player) once joined.
    joined: Option<(i64, i64)>,
}

struct Relay {
    epoll: Epoll,
    conns: Vec<Option<Conn>>,
    sessions: HashMap<i64, Vec<usize>>,
    ids: reference::Ids,
    /// The broadcast being sent, its text and its frame, reused.
    body: String,
    frame: Vec<u8>,
    read_buf: Vec<u8>,
}

pub fn run(args: RelayServerArgs) -> Result<(), String> {
    let listener = TcpListener::bind(("127.0.0.1", args.port)).map_err(|e| format!("bind: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut relay = Relay {
        epoll: Epoll::new(256).map_err(|e| e.to_string())?,
        conns: Vec::new(),
        sessions: HashMap::new(),
        ids: reference::Ids::default(),
        body: String::with_capacity(4096),
        frame: Vec::with_capacity(4096),
        read_buf: vec![0; 64 * 1024],
    };
    relay
        .epoll
        .add(listener.as_raw_fd(), EPOLLIN, LISTENER)
        .map_err(|e| e.to_string())?;
    let mut events: Vec<Event> = Vec::new();
    loop {
        relay
            .epoll
            .wait(&mut events, Duration::from_secs(3600))
            .map_err(|e| e.to_string())?;
        for event in &events {
            if event.token == LISTENER {
                while let Ok((stream, _)) = listener.accept() {
                    relay.accept(stream);
                }
            } else {
                let idx = event.token as usize;
                if event.events & EPOLLOUT as u32 != 0 {
                    relay.flush(idx);
                }
                if event.events & !(EPOLLOUT as u32) != 0 {
                    relay.readable(idx);
                }
            }
        }
    }
}

/// The first whole client frame in `buf`, unmasked in place: (opcode, payload range, bytes
/// taken); `Ok(None)` until one is whole. The header is tungstenite's to parse; an unknown
/// opcode, an unmasked frame or one over `ws::MAX_FRAME` is an error (the connection closes).
pub(crate) fn client_frame(
    buf: &mut [u8],
) -> Result<Option<(OpCode, Range<usize>, usize)>, String> {
    let mut cursor = Cursor::new(&*buf);
    let Some((header, len)) = FrameHeader::parse(&mut cursor).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let Some(mask) = header.mask else {
        return Err("an unmasked client frame".into());
    };
    if len > ws::MAX_FRAME as u64 {
        return Err(format!("a client frame of {len} bytes"));
    }
    // At most 14 header bytes and MAX_FRAME payload bytes: no overflow.
    let at = cursor.position() as usize;
    let end = at + len as usize;
    let Some(payload) = buf.get_mut(at..end) else {
        return Ok(None);
    };
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Ok(Some((header.opcode, at..end, end)))
}

/// What a client's first bytes are, read as a WebSocket upgrade request.
pub(crate) enum Handshake {
    /// The request is not whole yet.
    Incomplete,
    /// No `Sec-WebSocket-Key`.
    Invalid,
    /// The response to send, and the bytes the request took.
    Accept { response: String, taken: usize },
}

pub(crate) fn handshake(input: &[u8]) -> Handshake {
    let Some(end) = memchr::memmem::find(input, b"\r\n\r\n") else {
        return Handshake::Incomplete;
    };
    let request = String::from_utf8_lossy(&input[..end]);
    let key = request.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim().to_string())
    });
    let Some(key) = key else {
        return Handshake::Invalid;
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    Handshake::Accept {
        response,
        taken: end + 4,
    }
}

impl Relay {
    fn accept(&mut self, stream: TcpStream) {
        if stream.set_nonblocking(true).is_err() || stream.set_nodelay(true).is_err() {
            return;
        }
        let idx = match self.conns.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        if self
            .epoll
            .add(stream.as_raw_fd(), EPOLLIN, idx as u64)
            .is_ok()
        {
            self.conns[idx] = Some(Conn {
                stream,
                input: Vec::new(),
                output: Vec::new(),
                upgraded: false,
                joined: None,
            });
        }
    }

    fn close(&mut self, idx: usize) {
        if let Some(conn) = self.conns[idx].take() {
            if let Some((session, _)) = conn.joined {
                if let Some(members) = self.sessions.get_mut(&session) {
                    members.retain(|m| *m != idx);
                }
            }
        }
    }

    /// One `recv`; level-triggered epoll reports the socket again if more is waiting.
    fn readable(&mut self, idx: usize) {
        let Some(conn) = self.conns[idx].as_mut() else {
            return;
        };
        let got = match conn.stream.read(&mut self.read_buf) {
            Ok(0) => return self.close(idx),
            Ok(got) => got,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                return;
            }
            Err(_) => return self.close(idx),
        };
        let mut input = std::mem::take(&mut conn.input);
        input.extend_from_slice(&self.read_buf[..got]);
        let upgraded = conn.upgraded;
        let taken = if upgraded {
            self.frames(idx, &mut input)
        } else {
            self.upgrade(idx, &input)
        };
        input.drain(..taken.min(input.len()));
        if let Some(conn) = self.conns[idx].as_mut() {
            conn.input = input;
        }
    }

    /// Answers the HTTP upgrade once the request is whole; the bytes it took.
    fn upgrade(&mut self, idx: usize, input: &[u8]) -> usize {
        match handshake(input) {
            Handshake::Incomplete => 0,
            Handshake::Invalid => {
                self.close(idx);
                input.len()
            }
            Handshake::Accept { response, taken } => {
                if let Some(conn) = self.conns[idx].as_mut() {
                    conn.upgraded = true;
                }
                self.send(idx, response.as_bytes());
                taken
            }
        }
    }

    /// Handles every whole frame in `input`; the bytes they took.
    fn frames(&mut self, idx: usize, input: &mut [u8]) -> usize {
        let mut taken = 0;
        loop {
            let (opcode, payload, len) = match client_frame(&mut input[taken..]) {
                Ok(Some(frame)) => frame,
                Ok(None) => return taken,
                Err(_) => {
                    self.close(idx);
                    return input.len();
                }
            };
            let payload = taken + payload.start..taken + payload.end;
            taken += len;
            match opcode {
                ws::OP_TEXT => self.command(idx, &input[payload]),
                ws::OP_CLOSE => {
                    self.close(idx);
                    return input.len();
                }
                ws::OP_PING => {
                    let mut pong = Vec::new();
                    ws::put_server_frame(&mut pong, ws::OP_PONG, &input[payload]);
                    self.send(idx, &pong);
                }
                _ => {}
            }
        }
    }

    fn command(&mut self, idx: usize, text: &[u8]) {
        let text = std::str::from_utf8(text).unwrap_or("");
        let Some(joined) = self.conns[idx].as_ref().map(|c| c.joined) else {
            return;
        };
        match (common::command_of(text), joined) {
            (command @ ("createSession" | "joinSession"), None) => {
                let (session, player) = self.ids.join(command, text);
                self.send_text(idx, reference::session_join(session, player).as_bytes());
                let members = self.sessions.entry(session).or_default().clone();
                let joins = reference::player_join(player);
                for member in members {
                    self.send_text(member, joins.as_bytes());
                    let Some(id) = self.conns[member].as_ref().and_then(|c| c.joined) else {
                        continue;
                    };
                    self.send_text(idx, reference::player_join(id.1).as_bytes());
                }
                self.sessions.entry(session).or_default().push(idx);
                if let Some(conn) = self.conns[idx].as_mut() {
                    conn.joined = Some((session, player));
                }
            }
            ("updatePlayer", Some((session, player))) => {
                // Built once, in reused buffers, and written to each member.
                let mut frame = std::mem::take(&mut self.frame);
                reference::player_update(&mut self.body, player, text);
                frame.clear();
                ws::put_server_frame(&mut frame, ws::OP_TEXT, self.body.as_bytes());
                let mut members = self.sessions.remove(&session).unwrap_or_default();
                for &member in &members {
                    self.send(member, &frame);
                }
                // A member whose write failed was closed meanwhile: its slot may be reused.
                members.retain(|&member| self.conns[member].is_some());
                self.sessions.insert(session, members);
                self.frame = frame;
            }
            _ => {}
        }
    }

    fn send_text(&mut self, idx: usize, text: &[u8]) {
        let mut frame = Vec::with_capacity(text.len() + 10);
        ws::put_server_frame(&mut frame, ws::OP_TEXT, text);
        self.send(idx, &frame);
    }

    /// One `send`; what the socket does not take waits for EPOLLOUT.
    fn send(&mut self, idx: usize, bytes: &[u8]) {
        let Some(conn) = self.conns[idx].as_mut() else {
            return;
        };
        if !conn.output.is_empty() {
            conn.output.extend_from_slice(bytes);
            return;
        }
        let written = match conn.stream.write(bytes) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => 0,
            Err(_) => return self.close(idx),
        };
        if written < bytes.len() {
            conn.output.extend_from_slice(&bytes[written..]);
            let _ = self
                .epoll
                .modify(conn.stream.as_raw_fd(), EPOLLIN | EPOLLOUT, idx as u64);
        }
    }

    fn flush(&mut self, idx: usize) {
        let Some(conn) = self.conns[idx].as_mut() else {
            return;
        };
        match conn.stream.write(&conn.output) {
            Ok(n) => {
                conn.output.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return self.close(idx),
        }
        if conn.output.is_empty() {
            let _ = self
                .epoll
                .modify(conn.stream.as_raw_fd(), EPOLLIN, idx as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmasks_a_client_frame_once_whole() {
        let mask = [1, 2, 3, 4];
        let text = b"{\"command\":\"updatePlayer\",\"player\":{\"seq\":1}}";
        let mut wire = vec![0x81, 0x80 | text.len() as u8];
        wire.extend_from_slice(&mask);
        wire.extend(text.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        assert_eq!(client_frame(&mut wire.clone()[..wire.len() - 1]), Ok(None));
        let (opcode, payload, taken) = client_frame(&mut wire).unwrap().unwrap();
        assert_eq!((opcode, taken), (ws::OP_TEXT, wire.len()));
        assert_eq!(&wire[payload], text);
    }

    #[test]
    fn refuses_what_is_no_client_frame() {
        // Unmasked, an unknown opcode, a 64-bit length beyond the limit.
        for mut bad in [
            vec![0x81, 1, b'x'],
            vec![0x83, 0x80, 1, 2, 3, 4],
            [
                &[0x82, 0x80 | 127][..],
                &u64::MAX.to_be_bytes(),
                &[1, 2, 3, 4],
            ]
            .concat(),
        ] {
            assert!(client_frame(&mut bad).is_err(), "{bad:?}");
        }
    }
}
