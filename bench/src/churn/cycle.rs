//! One churn cycle as a state machine over the bytes the server sends, with no socket in it, so
//! it can be tested against a scripted byte stream: upgrade (HTTP 101) → createSession, answered
//! by `sessionJoin` → leaveSession, answered by `sessionLeave` → our close frame → the server's
//! close frame → its FIN.
//!
//! It keeps what the tokio-tungstenite client counted as success and failure: a reply with
//! another `command` is skipped (only the awaited one decides), a ping is answered, a close or
//! the end of the connection before the close handshake is a failure. Once our close frame is
//! sent, nothing the server does is a failure any more: its close frame, unreadable bytes, a
//! reset or its FIN all lead to the end of the cycle (the worker waits at most `FIN_WAIT` for
//! the FIN after the close frame, as the old client did).

use crate::common;
use crate::ws::{self, Xorshift};

pub const CREATE: &str = r#"{"command":"createSession","session":{},"player":{}}"#;
pub const LEAVE: &str = r#"{"command":"leaveSession"}"#;

/// What the cycle waits for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    /// The upgrade request is sent: the HTTP 101.
    Upgrading,
    /// createSession is sent: `sessionJoin`.
    Joining,
    /// leaveSession is sent: `sessionLeave`.
    Leaving,
    /// Our close frame is sent: the server's.
    Closing,
    /// The server's close frame came (or bytes that do not parse): only its FIN.
    Closed,
}

pub struct Cycle {
    pub phase: Phase,
}

impl Cycle {
    pub fn new() -> Self {
        Cycle {
            phase: Phase::Upgrading,
        }
    }

    /// Whether the connection ending now ends the cycle well (it is a failure before our
    /// close frame).
    pub fn closing(&self) -> bool {
        matches!(self.phase, Phase::Closing | Phase::Closed)
    }

    /// Handles the complete parts at the start of `bytes` (the upgrade response, then frames),
    /// appending the frames to send to `out`; returns the bytes used. The incomplete rest is
    /// to be given again, with what comes after it.
    pub fn on_bytes(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        rng: &mut Xorshift,
    ) -> Result<usize, String> {
        let mut pos = 0;
        if self.phase == Phase::Upgrading {
            let Some(end) = ws::upgrade_response(bytes)? else {
                return Ok(0);
            };
            pos = end;
            ws::put_client_frame(out, ws::OP_TEXT, CREATE.as_bytes(), rng.mask());
            self.phase = Phase::Joining;
        }
        while self.phase != Phase::Closed {
            let (frame, used) = match ws::parse_server_frame(&bytes[pos..]) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => return Ok(pos),
                // After our close, what the server sends no longer matters: wait for the FIN.
                Err(_) if self.phase == Phase::Closing => {
                    self.phase = Phase::Closed;
                    break;
                }
                Err(e) => return Err(format!("receive: {e}")),
            };
            pos += used;
            match frame.opcode {
                ws::OP_TEXT if self.phase != Phase::Closing => {
                    let text = std::str::from_utf8(frame.payload)
                        .map_err(|_| "receive: a text frame that is not UTF-8".to_string())?;
                    self.on_text(text, out, rng)?;
                }
                ws::OP_PING => ws::put_client_frame(out, ws::OP_PONG, frame.payload, rng.mask()),
                ws::OP_CLOSE if self.phase == Phase::Closing => self.phase = Phase::Closed,
                ws::OP_CLOSE => return Err(format!("closed while waiting for {}", self.awaited())),
                _ => {}
            }
        }
        // Closed: the rest is of no interest.
        Ok(bytes.len())
    }

    /// The connection ended (FIN or error) at this point of the cycle: the cycle's end, or a
    /// failure.
    pub fn on_end(&self) -> Result<(), String> {
        if self.closing() {
            Ok(())
        } else {
            Err(format!("closed while waiting for {}", self.awaited()))
        }
    }

    fn on_text(&mut self, text: &str, out: &mut Vec<u8>, rng: &mut Xorshift) -> Result<(), String> {
        let awaited = self.awaited();
        if common::command_of(text) != awaited {
            return Ok(());
        }
        if common::int_field(text, "\"error\":") != Some(0) {
            return Err(format!("{awaited} failed: {text}"));
        }
        if self.phase == Phase::Joining {
            ws::put_client_frame(out, ws::OP_TEXT, LEAVE.as_bytes(), rng.mask());
            self.phase = Phase::Leaving;
        } else {
            // A close frame without a status code, as tungstenite's `close(None)` sent.
            ws::put_client_frame(out, ws::OP_CLOSE, &[], rng.mask());
            self.phase = Phase::Closing;
        }
        Ok(())
    }

    fn awaited(&self) -> &'static str {
        match self.phase {
            Phase::Upgrading => "the upgrade",
            Phase::Joining => "sessionJoin",
            Phase::Leaving => "sessionLeave",
            Phase::Closing | Phase::Closed => "the close",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode;
    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

    use super::*;

    const UPGRADE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n";
    const JOIN: &str = r#"{"command":"sessionJoin","error":0,"sessionID":3,"playerID":9,"session":{},"player":{}}"#;
    const LEFT: &str = r#"{"command":"sessionLeave","error":0}"#;

    fn frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        ws::put_server_frame(&mut f, opcode, payload);
        f
    }

    /// A client frame's opcode and unmasked payload.
    type Sent = (OpCode, Vec<u8>);

    /// The client frames in `out`, read by tungstenite's parser and unmasked.
    fn client_frames(out: &[u8]) -> Vec<Sent> {
        let mut frames = Vec::new();
        let mut cursor = Cursor::new(out);
        while (cursor.position() as usize) < out.len() {
            let (header, len) = FrameHeader::parse(&mut cursor).unwrap().expect("whole");
            assert!(header.is_final, "FIN");
            let mask = header.mask.expect("masked");
            let at = cursor.position() as usize;
            let payload = out[at..at + len as usize]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            frames.push((header.opcode, payload));
            cursor.set_position(at as u64 + len);
        }
        frames
    }

    /// Feeds `stream` to a new cycle in pieces cut at `cuts`, as reads would bring it, keeping
    /// the unused rest like the worker does; returns the cycle, what it sent, and the first
    /// error.
    fn feed(stream: &[u8], cuts: &[usize]) -> (Cycle, Vec<Sent>, Result<(), String>) {
        let mut cycle = Cycle::new();
        let mut rng = Xorshift::new(7);
        let mut out = Vec::new();
        let mut kept = Vec::new();
        let mut from = 0;
        for &to in cuts.iter().chain([&stream.len()]) {
            kept.extend_from_slice(&stream[from..to]);
            from = to;
            match cycle.on_bytes(&kept, &mut out, &mut rng) {
                Ok(used) => drop(kept.drain(..used)),
                Err(e) => return (cycle, client_frames(&out), Err(e)),
            }
        }
        (cycle, client_frames(&out), Ok(()))
    }

    fn happy_stream() -> Vec<u8> {
        [
            UPGRADE.to_vec(),
            frame(ws::OP_TEXT, JOIN.as_bytes()),
            frame(ws::OP_TEXT, LEFT.as_bytes()),
            frame(ws::OP_CLOSE, &[]),
        ]
        .concat()
    }

    #[test]
    fn a_whole_cycle_in_any_pieces() {
        let stream = happy_stream();
        let expected = vec![
            (ws::OP_TEXT, CREATE.as_bytes().to_vec()),
            (ws::OP_TEXT, LEAVE.as_bytes().to_vec()),
            (ws::OP_CLOSE, vec![]),
        ];
        // At once, cut once anywhere, and byte by byte.
        let every: Vec<usize> = (1..stream.len()).collect();
        let mut splits: Vec<Vec<usize>> = vec![vec![], every];
        splits.extend((1..stream.len()).map(|cut| vec![cut]));
        for cuts in splits {
            let (cycle, sent, result) = feed(&stream, &cuts);
            assert_eq!(result, Ok(()), "cuts {cuts:?}");
            assert_eq!(sent, expected, "cuts {cuts:?}");
            assert_eq!(cycle.phase, Phase::Closed, "cuts {cuts:?}");
            assert_eq!(cycle.on_end(), Ok(()));
        }
    }

    #[test]
    fn each_step_waits_for_its_reply() {
        let join_at = UPGRADE.len();
        let (cycle, sent, _) = feed(&happy_stream()[..join_at], &[]);
        assert_eq!((cycle.phase, sent.len()), (Phase::Joining, 1));
        assert!(
            cycle.on_end().is_err(),
            "the FIN before the close is a failure"
        );
        let left_at = join_at + 2 + JOIN.len();
        let (cycle, sent, _) = feed(&happy_stream()[..left_at], &[]);
        assert_eq!((cycle.phase, sent.len()), (Phase::Leaving, 2));
        assert_eq!(
            cycle.on_end(),
            Err("closed while waiting for sessionLeave".into())
        );
        // The close is sent: the FIN ends the cycle even before the server's close frame.
        let (cycle, sent, _) = feed(&happy_stream()[..left_at + 2 + LEFT.len()], &[]);
        assert_eq!((cycle.phase, sent.len()), (Phase::Closing, 3));
        assert_eq!(cycle.on_end(), Ok(()));
    }

    #[test]
    fn other_replies_are_skipped_and_pings_answered() {
        let stream = [
            UPGRADE.to_vec(),
            frame(ws::OP_PING, b"p"),
            frame(
                ws::OP_TEXT,
                br#"{"command":"playerJoin","error":0,"playerID":1}"#,
            ),
            frame(ws::OP_TEXT, JOIN.as_bytes()),
            frame(ws::OP_TEXT, LEFT.as_bytes()),
            // After our close: text and garbage do not matter.
            frame(ws::OP_TEXT, b"\xFF"),
            vec![0x83, 0],
        ]
        .concat();
        let (cycle, sent, result) = feed(&stream, &[]);
        assert_eq!(result, Ok(()));
        assert_eq!(cycle.phase, Phase::Closed);
        let opcodes: Vec<OpCode> = sent.iter().map(|f| f.0).collect();
        assert_eq!(
            opcodes,
            [ws::OP_TEXT, ws::OP_PONG, ws::OP_TEXT, ws::OP_CLOSE]
        );
        assert_eq!(sent[1].1, b"p");
    }

    #[test]
    fn failures() {
        let refused = frame(ws::OP_TEXT, br#"{"command":"sessionJoin","error":4}"#);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
                "upgrade refused",
            ),
            ([UPGRADE, &refused].concat(), "sessionJoin failed"),
            (
                [UPGRADE, &frame(ws::OP_CLOSE, &[0x03, 0xE8])].concat(),
                "closed while waiting for sessionJoin",
            ),
            (
                [UPGRADE, &frame(ws::OP_TEXT, b"\xFF")].concat(),
                "not UTF-8",
            ),
            ([UPGRADE, &[0x83, 0][..]].concat(), "unknown opcode"),
            (
                [
                    UPGRADE,
                    &frame(ws::OP_TEXT, JOIN.as_bytes()),
                    &frame(ws::OP_TEXT, br#"{"command":"sessionLeave","error":2}"#),
                ]
                .concat(),
                "sessionLeave failed",
            ),
        ];
        for (stream, expected) in cases {
            let (_, _, result) = feed(&stream, &[]);
            let e = result.expect_err(expected);
            assert!(e.contains(expected), "{e}");
        }
    }
}
