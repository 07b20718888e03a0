//! The attacker's client: a WebSocket over a plain tokio `TcpStream`, the handshake and the
//! frames built by hand (`crate::ws`), so an attack can write what a real client never would
//! (a fragment left open, 20,000 frames in one write) and read only when it chooses to.

use std::io;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode;

use crate::ws::{self, Xorshift, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};

/// How long a connect plus handshake may take before the attack gives up on it.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct RawWs {
    pub stream: TcpStream,
    /// Bytes read and not yet parsed start at `start`: a cursor, so that reading thousands of
    /// small frames out of one large read does not move the buffer for each one.
    buf: Vec<u8>,
    start: usize,
    rng: Xorshift,
}

/// How a connection ended, as the attacker saw it.
#[derive(Debug, Default, Clone)]
pub struct Ending {
    /// The server's close code; `None` when the stream ended without a close frame (1006).
    pub code: Option<u16>,
    /// After the close frame, the stream ended with a FIN (not a reset or an error).
    pub clean: bool,
    /// Text frames received before the end, and their payload bytes.
    pub texts: u64,
    pub text_bytes: u64,
    /// When the end came (the close frame, or the end of the stream).
    pub at: Option<Instant>,
    /// A read error, if the stream ended with one.
    pub error: Option<String>,
}

impl RawWs {
    /// Connects and upgrades; the key and masks come from `seed`.
    pub async fn connect(addr: &str, seed: u64) -> io::Result<RawWs> {
        let attempt = async {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let mut ws = RawWs {
                stream,
                buf: Vec::with_capacity(4096),
                start: 0,
                rng: Xorshift::new(seed),
            };
            let request = ws::upgrade_request(addr, "/", &mut ws.rng);
            ws.stream.write_all(request.as_bytes()).await?;
            loop {
                if ws.fill().await? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed during the handshake",
                    ));
                }
                if let Some(end) = ws::upgrade_response(&ws.buf).map_err(io::Error::other)? {
                    ws.start = end;
                    return Ok(ws);
                }
            }
        };
        tokio::time::timeout(HANDSHAKE_TIMEOUT, attempt)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "handshake")))
    }

    /// A masked client frame, ready to write.
    pub fn frame(&mut self, is_final: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() + 14);
        ws::put_client_fragment(&mut out, is_final, opcode, payload, self.rng.mask());
        out
    }

    pub async fn send_text(&mut self, text: &str) -> io::Result<()> {
        let frame = self.frame(true, OP_TEXT, text.as_bytes());
        self.stream.write_all(&frame).await
    }

    /// Reads once more into the buffer; 0 at the end of the stream.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(64 << 10);
        self.stream.read_buf(&mut self.buf).await
    }

    /// The next server frame, `None` at the end of the stream.
    pub async fn next_frame(&mut self) -> io::Result<Option<(OpCode, Vec<u8>)>> {
        loop {
            let parsed =
                ws::parse_server_frame(&self.buf[self.start..]).map_err(io::Error::other)?;
            if let Some((frame, used)) = parsed {
                let out = (frame.opcode, frame.payload.to_vec());
                self.start += used;
                return Ok(Some(out));
            }
            if self.fill().await? == 0 {
                return Ok(None);
            }
        }
    }

    /// The next text frame, answering pings on the way; `None` when the connection ends first.
    pub async fn next_text(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            match self.next_frame().await? {
                Some((OP_TEXT, payload)) => return Ok(Some(payload)),
                Some((OP_PING, payload)) => {
                    let pong = self.frame(true, OP_PONG, &payload);
                    self.stream.write_all(&pong).await?;
                }
                Some((OP_CLOSE, _)) | None => return Ok(None),
                Some(_) => {}
            }
        }
    }

    /// Reads until the connection ends: answers pings (when `answer_pings`), and after the
    /// server's close frame echoes it and reads on to the end of the stream, to tell a clean
    /// end from a reset.
    pub async fn until_end(mut self, answer_pings: bool) -> Ending {
        let mut ending = Ending::default();
        loop {
            match self.next_frame().await {
                Ok(Some((OP_TEXT, payload))) => {
                    ending.texts += 1;
                    ending.text_bytes += payload.len() as u64;
                }
                Ok(Some((OP_PING, payload))) if answer_pings => {
                    let pong = self.frame(true, OP_PONG, &payload);
                    // A failed write shows up as the read's end below.
                    let _ = self.stream.write_all(&pong).await;
                }
                Ok(Some((OP_CLOSE, payload))) => {
                    ending.at = Some(Instant::now());
                    ending.code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    let echo = self.frame(true, OP_CLOSE, &payload[..payload.len().min(2)]);
                    let _ = self.stream.write_all(&echo).await;
                    ending.clean = self.read_to_eof().await.is_ok();
                    return ending;
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    ending.at = Some(Instant::now());
                    return ending;
                }
                Err(e) => {
                    ending.at = Some(Instant::now());
                    ending.error = Some(e.to_string());
                    return ending;
                }
            }
        }
    }

    /// Reads and discards until the end of the stream.
    async fn read_to_eof(&mut self) -> io::Result<()> {
        let mut sink = vec![0u8; 64 << 10];
        while self.stream.read(&mut sink).await? > 0 {}
        Ok(())
    }
}

/// `GET path` on a connection of its own (`Connection: close`): the whole response.
pub async fn http_get(addr: &str, path: &str) -> io::Result<String> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}
