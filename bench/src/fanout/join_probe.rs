//! A join probe: a fresh client joins a session whose members are all connected and reading,
//! and times the join as a player sees it: from its `joinSession` written to the last
//! `playerJoin` of the burst (one per member already there) read. Then it leaves (a close
//! frame and the socket's FIN).
//!
//! A blocking client of its own, on the coordinator's thread: one connection at a time, after
//! the fan-out's traffic has drained, so it shares the machine with nothing but the members'
//! reads of its `playerJoin`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::Shared;
use crate::common;
use crate::ws::{self, Xorshift};

/// How long one probe may take, from connecting to the end of its burst.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// Joins `session` (which has `members` members) and returns the time from `joinSession`
/// sent to the last of the `members` `playerJoin`s received.
pub fn run(shared: &Shared, session: i64, members: usize, seed: u64) -> Result<Duration, String> {
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut rng = Xorshift::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut stream = TcpStream::connect_timeout(&shared.addr, Duration::from_secs(10))
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    let request = ws::upgrade_request(&shared.host, &shared.path, &mut rng);
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut buf: Vec<u8> = Vec::with_capacity(256 << 10);
    let upgraded = loop {
        read_more(&mut stream, &mut buf, deadline)?;
        if let Some(end) = ws::upgrade_response(&buf)? {
            break end;
        }
    };
    buf.drain(..upgraded);

    let mut frame = Vec::new();
    let join = format!(r#"{{"command":"joinSession","sessionID":{session}}}"#);
    ws::put_client_frame(&mut frame, ws::OP_TEXT, join.as_bytes(), rng.mask());
    let sent = Instant::now();
    stream.write_all(&frame).map_err(|e| format!("send: {e}"))?;
    let mut own_id = None;
    let mut joins = 0usize;
    let took = 'read: loop {
        let mut pos = 0;
        while let Some((f, used)) = ws::parse_server_frame(&buf[pos..])? {
            pos += used;
            if f.opcode == ws::OP_CLOSE {
                return Err("closed by the server".into());
            }
            if f.opcode != ws::OP_TEXT {
                continue;
            }
            let text = std::str::from_utf8(f.payload).map_err(|e| e.to_string())?;
            match common::command_of(text) {
                "sessionJoin" => {
                    if common::int_field(text, "\"error\":") != Some(0) {
                        return Err(format!("join refused: {text}"));
                    }
                    own_id = common::int_field(text, "\"playerID\":");
                }
                "playerJoin" => {
                    let id = common::int_field(text, "\"playerID\":");
                    if id.is_some() && id != own_id {
                        joins += 1;
                        if joins == members && own_id.is_some() {
                            break 'read sent.elapsed();
                        }
                    }
                }
                _ => {}
            }
        }
        buf.drain(..pos);
        read_more(&mut stream, &mut buf, deadline)?;
    };
    let mut close = Vec::new();
    ws::put_client_frame(&mut close, ws::OP_CLOSE, &1000u16.to_be_bytes(), rng.mask());
    let _ = stream.write_all(&close);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(took)
}

/// Appends what the socket has (waiting up to its read timeout), until `deadline`.
fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> Result<(), String> {
    let mut chunk = [0u8; 64 << 10];
    loop {
        if Instant::now() > deadline {
            return Err(format!("no end after {PROBE_TIMEOUT:?}"));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err("connection ended".into()),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
}
