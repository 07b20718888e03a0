//! A lean WebSocket client for the fan-out's hot path (RFC 6455, client side only): the HTTP/1.1
//! upgrade written and checked by hand, server frames parsed in place from the caller's read
//! buffer, client frames masked into the caller's reused buffer. Frame headers are
//! tungstenite's (`FrameHeader::parse` and `format`): they work on a slice and a `Vec`, with no
//! allocation or copy of a payload, so only the rules of this client and the masking are here.
//!
//! Why not tungstenite's WebSocket here: the generator shares the machine with the server it
//! measures, so every microsecond it spends per delivery is taken from the server. This needs
//! no allocation per frame and never zero-fills a buffer before a read.
//!
//! What it leaves out, because the session server never sends it: fragmented messages
//! (continuation frames are a protocol error here), subprotocols, and every extension but
//! permessage-deflate with no context takeover (`--deflate`: [`DEFLATE_OFFER`], [`Inflater`]). The server's
//! `Sec-WebSocket-Accept` is not verified either: the server is ours and on loopback, and a
//! wrong upgrade shows up at once as frames that do not parse.

use std::fmt::Write as _;
use std::io::Cursor;

use tokio_tungstenite::tungstenite::error::{Error, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

pub const OP_TEXT: OpCode = OpCode::Data(Data::Text);
pub const OP_BINARY: OpCode = OpCode::Data(Data::Binary);
pub const OP_CLOSE: OpCode = OpCode::Control(Control::Close);
pub const OP_PING: OpCode = OpCode::Control(Control::Ping);
pub const OP_PONG: OpCode = OpCode::Control(Control::Pong);

/// Larger frames are treated as a protocol error rather than buffered without limit.
pub const MAX_FRAME: usize = 16 << 20;

/// One server frame, its payload borrowed from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub opcode: OpCode,
    pub payload: &'a [u8],
    /// RSV1: the payload is compressed (permessage-deflate; only with [`parse_frame_deflate`]).
    pub compressed: bool,
}

/// The first complete server frame at the start of `buf` and the bytes it takes, `Ok(None)`
/// when `buf` holds only part of one (read more and call again with the same start).
pub fn parse_server_frame(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, String> {
    parse_frame_deflate(buf, false)
}

/// [`parse_server_frame`] for a connection that agreed to permessage-deflate (`deflate`):
/// RSV1 is then allowed on a data frame.
pub fn parse_frame_deflate(
    buf: &[u8],
    deflate: bool,
) -> Result<Option<(Frame<'_>, usize)>, String> {
    let mut cursor = Cursor::new(buf);
    let (header, len) = match FrameHeader::parse(&mut cursor) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Ok(None),
        Err(Error::Protocol(ProtocolError::InvalidOpcode(other))) => {
            return Err(format!("unknown opcode {other:#x}"))
        }
        Err(e) => return Err(format!("a server frame: {e}")),
    };
    let rsv1_allowed = deflate && matches!(header.opcode, OP_TEXT | OP_BINARY);
    if (header.rsv1 && !rsv1_allowed) || header.rsv2 || header.rsv3 {
        return Err(format!(
            "reserved bits set in a server frame ({:#04x})",
            buf[0]
        ));
    }
    if header.mask.is_some() {
        return Err("a masked server frame".into());
    }
    match header.opcode {
        OP_TEXT | OP_BINARY if header.is_final => {}
        OP_CLOSE | OP_PING | OP_PONG if header.is_final && len <= 125 => {}
        // A continuation (the parser refuses reserved opcodes).
        OpCode::Data(_) => return Err("a fragmented server message".into()),
        OpCode::Control(_) => return Err("a fragmented or long control frame".into()),
    }
    if len > MAX_FRAME as u64 {
        return Err(format!("a server frame of {len} bytes"));
    }
    // At most 14 header bytes and MAX_FRAME payload bytes: no overflow.
    let start = cursor.position() as usize;
    let end = start + len as usize;
    match buf.get(start..end) {
        Some(payload) => Ok(Some((
            Frame {
                opcode: header.opcode,
                payload,
                compressed: header.rsv1,
            },
            end,
        ))),
        None => Ok(None),
    }
}

/// Appends a masked client frame (FIN set) to `out`. Clients must mask every frame (RFC 6455
/// 5.3); the key needs no cryptographic quality for a load generator.
pub fn put_client_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8], mask: [u8; 4]) {
    put_client_fragment(out, true, opcode, payload, mask);
}

/// Appends a masked client frame with FIN as given: `false` begins (or continues) a
/// fragmented message, which the attacks need.
pub fn put_client_fragment(
    out: &mut Vec<u8>,
    is_final: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: [u8; 4],
) {
    put_header(out, is_final, opcode, Some(mask), payload.len());
    // Masked while copied: one pass over the payload (tungstenite masks in place, after).
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

/// Appends an unmasked server frame (FIN set) to `out`: what the reference servers send.
pub fn put_server_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    put_header(out, true, opcode, None, payload.len());
    out.extend_from_slice(payload);
}

/// The header of a frame without extensions.
fn put_header(
    out: &mut Vec<u8>,
    is_final: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    len: usize,
) {
    let header = FrameHeader {
        is_final,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask,
    };
    header
        .format(len as u64, out)
        .expect("writing to a Vec cannot fail");
}

/// A cheap xorshift64 source for mask keys and handshake keys.
pub struct Xorshift(u64);

impl Xorshift {
    pub fn new(seed: u64) -> Self {
        Xorshift(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn mask(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_le_bytes()
    }
}

/// Appends game-like entities, `{"id":k,"x":…,"y":…,"hp":…}` with random positions and health
/// and commas between them, to `out` until it is at least `until` bytes long (the realistic
/// JSON of `--payload-bytes` and of the snapshot's playerData).
pub fn push_entities(out: &mut Vec<u8>, rng: &mut Xorshift, until: usize) {
    use std::io::Write as _;
    let mut k = 0;
    while out.len() < until {
        let r = rng.next_u64();
        if k > 0 {
            out.push(b',');
        }
        let _ = write!(
            out,
            r#"{{"id":{k},"x":{}.{},"y":{}.{},"hp":{}}}"#,
            r % 1000,
            (r >> 10) % 100,
            (r >> 20) % 1000,
            (r >> 30) % 100,
            (r >> 40) % 101
        );
        k += 1;
    }
}

/// `host:port` and the path of a `ws://host:port/path` URL.
pub fn split_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("not a ws:// URL: {url}"))?;
    Ok(match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    })
}

/// What `fanout --deflate` offers: what browsers offer, and `server_no_context_takeover`, so
/// that every message stands alone (a thread's [`Inflater`] serves all its connections; the
/// server's broadcasts stand alone for every client anyway, only join bursts would not).
pub const DEFLATE_OFFER: &str =
    "permessage-deflate; server_no_context_takeover; client_max_window_bits";

/// What browsers offer (Chrome, Firefox): the server may then compress a join burst with one
/// context across its frames; inflate with [`Inflater::with_context`].
pub const BROWSER_DEFLATE_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// Inflates permessage-deflate messages (no context takeover: reset per message) into one
/// reused buffer. The server compresses a broadcast once and sends the same bytes to every
/// member, and with no context takeover equal compressed bytes are the same message: the last
/// [`INFLATED_KEPT`] messages are kept, so that a thread holding several members of a session
/// inflates each broadcast once (the generator's CPU is taken from the server's).
pub struct Inflater {
    decompress: flate2::Decompress,
    /// One connection's, keeping its context between messages (no reset, nothing kept).
    context: bool,
    /// (compressed, inflated), the oldest replaced next at `next`.
    kept: Vec<(Vec<u8>, Vec<u8>)>,
    next: usize,
}

/// Messages an [`Inflater`] remembers.
pub const INFLATED_KEPT: usize = 16;

impl Default for Inflater {
    fn default() -> Self {
        Inflater {
            decompress: flate2::Decompress::new(false),
            context: false,
            kept: Vec::new(),
            next: 0,
        }
    }
}

impl Inflater {
    /// An inflater for one connection whose messages may refer to earlier ones (the server
    /// did not answer `server_no_context_takeover`), as a browser's.
    pub fn with_context() -> Self {
        Inflater {
            context: true,
            ..Inflater::default()
        }
    }

    /// One message's payload inflated (`00 00 ff ff` appended), at most [`MAX_FRAME`] bytes.
    pub fn inflate(&mut self, payload: &[u8]) -> Result<&[u8], String> {
        if let Some(i) = self
            .kept
            .iter()
            .position(|(c, _)| !self.context && !c.is_empty() && c[..] == *payload)
        {
            return Ok(&self.kept[i].1);
        }
        let room = if self.context { 1 } else { INFLATED_KEPT };
        if self.kept.len() < room {
            self.kept.push((Vec::new(), Vec::with_capacity(4096)));
            self.next = self.kept.len() - 1;
        }
        let slot = self.next;
        self.next = (self.next + 1) % room;
        let (compressed, out) = &mut self.kept[slot];
        compressed.clear();
        out.clear();
        if !self.context {
            self.decompress.reset(false);
        }
        for part in [payload, &[0, 0, 0xff, 0xff][..]] {
            let mut part = part;
            loop {
                if out.capacity() - out.len() < 4096 {
                    if out.len() >= MAX_FRAME {
                        return Err("a compressed message inflates past 16 MiB".into());
                    }
                    out.reserve(out.capacity().max(4096));
                }
                let before = self.decompress.total_in();
                self.decompress
                    .decompress_vec(part, out, flate2::FlushDecompress::Sync)
                    .map_err(|e| format!("a compressed message: {e}"))?;
                let used = (self.decompress.total_in() - before) as usize;
                part = &part[used..];
                if part.is_empty() && out.len() < out.capacity() {
                    break;
                }
            }
        }
        compressed.extend_from_slice(payload);
        Ok(out)
    }
}

/// The HTTP/1.1 upgrade request, with a fresh `Sec-WebSocket-Key` (16 random bytes, base64).
pub fn upgrade_request(host: &str, path: &str, rng: &mut Xorshift) -> String {
    upgrade_request_with(host, path, rng, None)
}

/// [`upgrade_request`] offering `extensions` (`Sec-WebSocket-Extensions`), if any.
pub fn upgrade_request_with(
    host: &str,
    path: &str,
    rng: &mut Xorshift,
    extensions: Option<&str>,
) -> String {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    key[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
    let mut request = String::with_capacity(200);
    let _ = write!(
        request,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
        base64(&key)
    );
    if let Some(extensions) = extensions {
        let _ = write!(request, "Sec-WebSocket-Extensions: {extensions}\r\n");
    }
    request.push_str("\r\n");
    request
}

/// Where the response head ends (the bytes after it are frames), `None` while incomplete;
/// an error unless the status is 101 Switching Protocols.
pub fn upgrade_response(buf: &[u8]) -> Result<Option<usize>, String> {
    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        if buf.len() > 16 << 10 {
            return Err("no end to the upgrade response".into());
        }
        return Ok(None);
    };
    let head = &buf[..end];
    let status = head.split(|&b| b == b'\r').next().unwrap_or_default();
    if status.starts_with(b"HTTP/1.1 101") {
        Ok(Some(end + 4))
    } else {
        Err(format!(
            "upgrade refused: {}",
            String::from_utf8_lossy(status)
        ))
    }
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unmasked frame as the server sends it.
    fn server_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        put_server_frame(&mut f, opcode, payload);
        f
    }

    /// Every frame in `buf` and the bytes left over.
    fn parse_all(buf: &[u8]) -> (Vec<(OpCode, Vec<u8>)>, usize) {
        let mut pos = 0;
        let mut frames = Vec::new();
        while let Some((frame, used)) = parse_server_frame(&buf[pos..]).unwrap() {
            frames.push((frame.opcode, frame.payload.to_vec()));
            pos += used;
        }
        (frames, buf.len() - pos)
    }

    #[test]
    fn several_frames_in_one_buffer() {
        let mut buf = server_frame(OP_TEXT, b"{\"a\":1}");
        buf.extend(server_frame(OP_PING, b"hi"));
        buf.extend(server_frame(OP_TEXT, b""));
        let (frames, left) = parse_all(&buf);
        assert_eq!(
            frames,
            vec![
                (OP_TEXT, b"{\"a\":1}".to_vec()),
                (OP_PING, b"hi".to_vec()),
                (OP_TEXT, vec![])
            ]
        );
        assert_eq!(left, 0);
    }

    #[test]
    fn a_frame_split_anywhere_waits_for_the_rest() {
        let payload: Vec<u8> = (0..300u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut buf = server_frame(OP_TEXT, b"first");
        buf.extend(server_frame(OP_TEXT, &payload));
        for cut in 0..buf.len() {
            // What a reader does: parse what it has, keep the rest, append the next read.
            let (mut frames, left) = parse_all(&buf[..cut]);
            let rest = [&buf[cut - left..cut], &buf[cut..]].concat();
            let (more, left) = parse_all(&rest);
            frames.extend(more);
            assert_eq!(left, 0, "cut at {cut}");
            assert_eq!(frames.len(), 2, "cut at {cut}");
            assert_eq!(frames[1].1, payload, "cut at {cut}");
        }
    }

    #[test]
    fn lengths_of_16_and_64_bits() {
        let medium = vec![7u8; 126];
        let f = server_frame(OP_BINARY, &medium);
        assert_eq!(&f[1..4], &[126, 0, 126]);
        let (frame, used) = parse_server_frame(&f).unwrap().unwrap();
        assert_eq!((frame.payload, used), (&medium[..], 4 + 126));

        let large = vec![9u8; 70_000];
        let f = server_frame(OP_TEXT, &large);
        assert_eq!(f[1], 127);
        assert_eq!(parse_server_frame(&f[..f.len() - 1]).unwrap(), None);
        let (frame, used) = parse_server_frame(&f).unwrap().unwrap();
        assert_eq!((frame.payload.len(), used), (70_000, 10 + 70_000));
    }

    #[test]
    fn ping_and_close() {
        let mut buf = server_frame(OP_PING, b"p");
        buf.extend(server_frame(OP_CLOSE, &[0x03, 0xE8]));
        let (frames, _) = parse_all(&buf);
        assert_eq!(
            frames,
            vec![(OP_PING, b"p".to_vec()), (OP_CLOSE, vec![0x03, 0xE8])]
        );
    }

    #[test]
    fn protocol_errors() {
        // Masked, fragmented, a continuation, a long ping, reserved bits, an unknown opcode.
        for bad in [
            vec![0x81, 0x80 | 1, 0, 0, 0, 0, b'x'],
            vec![0x01, 1, b'x'],
            vec![0x80, 1, b'x'],
            [vec![0x89, 126, 0, 200], vec![0; 200]].concat(),
            vec![0xC1, 1, b'x'],
            vec![0x83, 0],
        ] {
            assert!(parse_server_frame(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn client_frames_are_masked() {
        let mask = [1, 2, 3, 4];
        for len in [0usize, 5, 125, 126, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = Vec::new();
            put_client_frame(&mut out, OP_TEXT, &payload, mask);
            assert_eq!(out[0], 0x81);
            assert_eq!(out[1] & 0x80, 0x80, "mask bit");
            let header = match len {
                0..=125 => 2,
                126..=0xFFFF => 4,
                _ => 10,
            };
            assert_eq!(&out[header..header + 4], &mask);
            let unmasked: Vec<u8> = out[header + 4..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(unmasked, payload);
        }
    }

    #[test]
    fn upgrade() {
        let (host, path) = split_url("ws://127.0.0.1:7000/").unwrap();
        assert_eq!((host, path), ("127.0.0.1:7000", "/"));
        assert_eq!(split_url("ws://h:1").unwrap(), ("h:1", "/"));
        assert_eq!(split_url("ws://h:1/a/b").unwrap(), ("h:1", "/a/b"));
        assert!(split_url("http://h:1/").is_err());
        let request = upgrade_request(host, path, &mut Xorshift::new(1));
        assert!(request.starts_with("GET / HTTP/1.1\r\nHost: 127.0.0.1:7000\r\n"));
        assert!(request.ends_with("\r\n\r\n"));
        let key = request.split("Sec-WebSocket-Key: ").nth(1).unwrap();
        assert_eq!(key.find("\r\n"), Some(24));
        assert!(key[..22]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
        assert_eq!(&key[22..24], "==");

        let ok = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00";
        assert_eq!(upgrade_response(&ok[..20]), Ok(None));
        assert_eq!(upgrade_response(ok), Ok(Some(ok.len() - 2)));
        assert!(upgrade_response(b"HTTP/1.1 400 Bad Request\r\n\r\n").is_err());
        assert_eq!(base64(b"any carnal pleas"), "YW55IGNhcm5hbCBwbGVhcw==");
        assert_eq!(base64(b"Man"), "TWFu");
    }
}
