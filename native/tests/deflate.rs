//! permessage-deflate (RFC 7692) over real sockets, with a raw client of the test's own
//! (tokio-tungstenite does not speak the extension): the handshake's answer, compressed
//! broadcasts and client messages, small frames sent plain, clients that did not offer it
//! seeing exactly today's bytes, and an inflate bomb closed with 1009.

mod common;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use sessionserver::{Config, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::PATIENCE;

const AGREED: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A server frame: its first byte (FIN, RSV1-3, opcode) and its payload as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    first: u8,
    payload: Vec<u8>,
}

impl Frame {
    fn compressed(&self) -> bool {
        self.first & 0x40 != 0
    }

    /// The message's text, inflated if it came compressed.
    fn text(&self) -> String {
        let bytes = if self.compressed() {
            inflate(&self.payload)
        } else {
            self.payload.clone()
        };
        String::from_utf8(bytes).expect("UTF-8")
    }
}

/// Connects and upgrades, offering `extensions` (none: no header). Returns the client and the
/// response head.
async fn connect(server: &RunningServer, extensions: Option<&str>) -> (Raw, String) {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut request = String::from(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    );
    if let Some(extensions) = extensions {
        request.push_str(&format!("Sec-WebSocket-Extensions: {extensions}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Raw {
        stream,
        buf: Vec::new(),
    };
    let head = loop {
        if let Some(end) = raw.buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(raw.buf[..end].to_vec()).unwrap();
            raw.buf.drain(..end + 4);
            break head;
        }
        raw.fill().await;
    };
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    (raw, head)
}

/// The response's Sec-WebSocket-Extensions, if any.
fn extensions_of(head: &str) -> Option<String> {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|(_, value)| value.trim().to_owned())
}

impl Raw {
    async fn fill(&mut self) {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(PATIENCE, self.stream.read(&mut chunk))
            .await
            .expect("the server said nothing within 10 s")
            .unwrap();
        assert!(n > 0, "the server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The next whole frame, with the bytes it came in.
    async fn frame_bytes(&mut self) -> (Frame, Vec<u8>) {
        loop {
            if self.buf.len() >= 2 {
                let (len, at) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => (
                        u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    let bytes: Vec<u8> = self.buf.drain(..at + len).collect();
                    let frame = Frame {
                        first: bytes[0],
                        payload: bytes[at..].to_vec(),
                    };
                    return (frame, bytes);
                }
            }
            self.fill().await;
        }
    }

    /// The next data frame (pings skipped).
    async fn frame(&mut self) -> Frame {
        loop {
            let (frame, _) = self.frame_bytes().await;
            if frame.first & 0x0f != 9 {
                return frame;
            }
        }
    }

    /// The next data frame whose text holds `needle`.
    async fn until(&mut self, needle: &str) -> Frame {
        loop {
            let frame = self.frame().await;
            if frame.text().contains(needle) {
                return frame;
            }
        }
    }

    async fn send_raw(&mut self, first: u8, payload: &[u8]) {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        self.stream.write_all(&out).await.unwrap();
    }

    async fn send_text(&mut self, text: &str) {
        self.send_raw(0x81, text.as_bytes()).await;
    }

    async fn send_compressed(&mut self, text: &str) {
        self.send_raw(0xC1, &deflate(text.as_bytes())).await;
    }
}

/// Raw deflate of one message with a sync flush, its tail stripped (what a client sends).
fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(bytes.len() + 1024);
    c.compress_vec(bytes, &mut out, FlushCompress::Sync)
        .unwrap();
    assert!(out.ends_with(&TAIL));
    out.truncate(out.len() - 4);
    out
}

fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut d = Decompress::new(false);
    let input = [payload, &TAIL].concat();
    let mut out = Vec::with_capacity(1 << 20);
    d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .unwrap();
    assert_eq!(d.total_in() as usize, input.len(), "inflated whole");
    out
}

/// playerData of about 400 bytes of JSON: a realistic update, well over the threshold.
fn big_player(i: u32) -> String {
    let items: Vec<String> = (0..12)
        .map(|k| format!(r#"{{"item":"potion-of-healing","slot":{k},"count":{i}}}"#))
        .collect();
    format!(
        r#"{{"name":"player-{i}","x":{i},"y":20,"inventory":[{}]}}"#,
        items.join(",")
    )
}

async fn server(deflate: bool) -> RunningServer {
    common::start(Config {
        deflate,
        ..Config::default()
    })
    .await
}

#[tokio::test]
async fn the_offer_is_answered_and_the_server_keeps_to_what_was_asked() {
    let server = server(true).await;
    // The browsers' offer: the client keeps its context, so the server may use it.
    let (_, head) = connect(&server, Some("permessage-deflate; client_max_window_bits")).await;
    assert_eq!(
        extensions_of(&head).as_deref(),
        Some("permessage-deflate; client_no_context_takeover")
    );
    let (_, head) = connect(
        &server,
        Some("permessage-deflate; server_no_context_takeover"),
    )
    .await;
    assert_eq!(extensions_of(&head).as_deref(), Some(AGREED));
    // server_max_window_bits is echoed (and every message then stands alone); an offer with
    // an unknown parameter is skipped for the next one.
    let (_, head) = connect(
        &server,
        Some("permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=10"),
    )
    .await;
    assert_eq!(
        extensions_of(&head),
        Some(format!("{AGREED}; server_max_window_bits=10"))
    );
    // Nothing the server can accept: no extension.
    let (_, head) = connect(
        &server,
        Some("permessage-deflate; server_max_window_bits=7"),
    )
    .await;
    assert_eq!(extensions_of(&head), None);
    let (_, head) = connect(&server, None).await;
    assert_eq!(extensions_of(&head), None);
    // With --deflate off the offer is declined.
    let off = server_off().await;
    let (_, head) = connect(&off, Some("permessage-deflate")).await;
    assert_eq!(extensions_of(&head), None);
}

async fn server_off() -> RunningServer {
    server(false).await
}

#[tokio::test]
async fn broadcasts_go_compressed_once_to_those_that_agreed_and_plain_to_the_rest() {
    let server = server(true).await;
    let (mut a, _) = connect(&server, Some("permessage-deflate")).await;
    let (mut b, _) = connect(&server, Some("permessage-deflate")).await;
    let (mut plain, _) = connect(&server, None).await;
    let create = format!(
        r#"{{"command":"createSession","session":{{}},"player":{}}}"#,
        big_player(0)
    );
    // A compressed client message is taken like a plain one.
    a.send_compressed(&create).await;
    let join = a.until("sessionJoin").await;
    assert!(
        join.compressed(),
        "a sessionJoin of 500 bytes goes compressed"
    );
    assert!(join.text().contains(r#""error":0"#), "{}", join.text());
    for client in [&mut b, &mut plain] {
        client
            .send_text(r#"{"command":"joinSession","sessionID":-1}"#)
            .await;
        assert!(client
            .until("sessionJoin")
            .await
            .text()
            .contains(r#""error":0"#));
    }
    // Let the joins' playerJoins pass.
    a.send_compressed(&format!(
        r#"{{"command":"updatePlayer","player":{}}}"#,
        big_player(7)
    ))
    .await;
    let to_a = a.until(r#""name":"player-7""#).await;
    let to_b = b.until(r#""name":"player-7""#).await;
    let to_plain = plain.until(r#""name":"player-7""#).await;
    assert!(to_a.compressed() && to_b.compressed());
    assert_eq!(to_a, to_b, "one compressed frame, shared");
    assert_eq!(to_plain.first, 0x81, "plain text frame, FIN, no RSV1");
    assert_eq!(to_a.text().as_bytes(), &to_plain.payload[..]);
    assert!(
        to_a.payload.len() * 2 < to_plain.payload.len(),
        "compressed well"
    );
    // A small update goes plain to everyone.
    a.send_text(r#"{"command":"updateSession","session":{"n":1},"player":{"x":1}}"#)
        .await;
    for client in [&mut a, &mut b, &mut plain] {
        let small = client.until("sessionUpdate").await;
        assert_eq!(small.first, 0x81, "{}", small.text());
        assert!(small.payload.len() < 128);
    }
}

#[tokio::test]
async fn a_join_burst_shares_one_context_for_a_client_that_keeps_it() {
    let server = server(true).await;
    let (mut first, _) = connect(&server, None).await;
    first
        .send_text(&format!(
            r#"{{"command":"createSession","session":{{}},"player":{}}}"#,
            big_player(0)
        ))
        .await;
    let join = first.until("sessionJoin").await.text();
    let id: u64 = join
        .split(r#""sessionID":"#)
        .nth(1)
        .unwrap()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut members = vec![first];
    for i in 1..20 {
        let (mut member, _) = connect(&server, None).await;
        member
            .send_text(&format!(r#"{{"command":"joinSession","sessionID":{id}}}"#))
            .await;
        member.until("sessionJoin").await;
        member
            .send_text(&format!(
                r#"{{"command":"updatePlayer","player":{}}}"#,
                big_player(i)
            ))
            .await;
        member.until(&format!(r#""name":"player-{i}""#)).await;
        members.push(member);
    }
    let (mut browser, head) =
        connect(&server, Some("permessage-deflate; client_max_window_bits")).await;
    assert!(!extensions_of(&head)
        .unwrap()
        .contains("server_no_context_takeover"));
    let (mut plain, _) = connect(&server, None).await;
    let mut bursts = Vec::new();
    for client in [&mut browser, &mut plain] {
        client
            .send_text(&format!(r#"{{"command":"joinSession","sessionID":{id}}}"#))
            .await;
        // sessionJoin, then a playerJoin of each of the 20 members.
        let mut frames = Vec::new();
        for _ in 0..21 {
            frames.push(client.frame().await);
        }
        bursts.push(frames);
    }
    let (compressed, plain) = (&bursts[0], &bursts[1]);
    // As the client keeps it: one inflater for every compressed message, in order (the
    // sessionJoin, which differs by the joiner's ID, included).
    let mut inflater = Decompress::new(false);
    for (i, got) in compressed.iter().enumerate() {
        if !got.compressed() {
            assert_eq!(i, 0, "every frame of the burst is compressed");
            continue;
        }
        let input = [&got.payload[..], &TAIL].concat();
        let mut out = Vec::with_capacity(1 << 16);
        inflater
            .decompress_vec(&input, &mut out, FlushDecompress::Sync)
            .unwrap();
        if i > 0 {
            assert_eq!(
                out, plain[i].payload,
                "inflated with the context: the plain frame"
            );
        }
    }
    let sent: usize = compressed[1..].iter().map(|f| f.payload.len()).sum();
    let text: usize = plain[1..].iter().map(|f| f.payload.len()).sum();
    assert!(sent * 3 < text, "{sent} bytes compressed, {text} plain");
}

/// What a client that offers nothing receives: every byte, from the handshake's end on.
async fn plain_transcript(server: &RunningServer) -> Vec<u8> {
    let (mut a, head) = connect(server, None).await;
    assert_eq!(extensions_of(&head), None);
    let create = format!(
        r#"{{"command":"createSession","session":{{"big":{}}},"player":{}}}"#,
        big_player(1),
        big_player(0)
    );
    a.send_text(&create).await;
    let mut bytes = Vec::new();
    let (frame, raw) = a.frame_bytes().await;
    assert!(frame.text().contains("sessionJoin"));
    bytes.extend(raw);
    a.send_text(&format!(
        r#"{{"command":"updatePlayer","player":{}}}"#,
        big_player(3)
    ))
    .await;
    let (frame, raw) = a.frame_bytes().await;
    assert!(frame.text().contains("playerUpdate"));
    bytes.extend(raw);
    a.send_text(r#"{"command":"leaveSession"}"#).await;
    let (frame, raw) = a.frame_bytes().await;
    assert!(frame.text().contains("sessionLeave"));
    bytes.extend(raw);
    bytes
}

#[tokio::test]
async fn a_client_that_offers_nothing_gets_the_same_bytes_with_deflate_on_or_off() {
    let on = plain_transcript(&server(true).await).await;
    let off = plain_transcript(&server_off().await).await;
    assert_eq!(on, off);
    // Every frame plain: FIN + text, RSV1 clear.
    assert_eq!(on[0], 0x81);
}

#[tokio::test]
async fn an_inflate_bomb_is_closed_with_1009_and_rsv1_unagreed_with_1002() {
    let server = server(true).await;
    let (mut bomber, _) = connect(&server, Some("permessage-deflate")).await;
    // 10 MB of spaces inside a JSON string, a few kilobytes compressed: under the 64 KiB
    // message limit on the wire, far over it inflated.
    let bomb = format!(
        r#"{{"command":"updatePlayer","player":{{"x":"{}"}}}}"#,
        " ".repeat(10 << 20)
    );
    let compressed = deflate(bomb.as_bytes());
    assert!(compressed.len() < 64 * 1024);
    bomber.send_raw(0xC1, &compressed).await;
    let close = bomber.frame().await;
    assert_eq!(close.first, 0x88);
    assert_eq!(&close.payload[..2], &1009u16.to_be_bytes());
    // The server goes on serving others.
    let (mut other, _) = connect(&server, None).await;
    other.send_text(r#"{"command":"createSession"}"#).await;
    assert!(other
        .until("sessionJoin")
        .await
        .text()
        .contains(r#""error":0"#));
    // RSV1 from a client that did not agree to the extension: protocol error.
    other.send_compressed(r#"{"command":"leaveSession"}"#).await;
    let close = other.frame().await;
    assert_eq!(close.first, 0x88);
    assert_eq!(&close.payload[..2], &1002u16.to_be_bytes());
}
