//! Helpers shared by the native host's tests (each test file uses some of them): a server on
//! 127.0.0.1 and a free port, client frames built by hand (masked, as a browser sends them),
//! and plain HTTP requests with the Host header the admin endpoints expect.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sessionserver::{Config, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Upper bound for anything the server should do soon: a hang fails the test after it.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// `config` on 127.0.0.1 and a free port.
pub fn local(config: Config) -> Config {
    Config {
        bind: "127.0.0.1".parse().unwrap(),
        port: 0,
        ..config
    }
}

/// A server on 127.0.0.1 and a free port, in this process.
pub async fn start(config: Config) -> RunningServer {
    sessionserver::start(local(config)).await.unwrap()
}

/// A WebSocket client connected to `server`.
pub async fn connect(server: &RunningServer) -> Client {
    let url = format!("ws://{}/", server.local_addr());
    connect_async(url).await.expect("connect").0
}

/// The next message (pings included), within 20 s so a hang fails the test; `None` when the
/// connection ended or failed.
pub async fn next_any<S>(client: &mut WebSocketStream<S>) -> Option<Message>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::time::timeout(Duration::from_secs(20), client.next())
        .await
        .expect("no message within 20 s")
        .and_then(Result::ok)
}

/// The next message that is not a ping or pong, within [`PATIENCE`]; `None` when the
/// connection ended or failed.
pub async fn next(client: &mut Client) -> Option<Message> {
    loop {
        let msg = tokio::time::timeout(PATIENCE, client.next())
            .await
            .expect("no message within 10 s");
        match msg {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(m)) => return Some(m),
            _ => return None,
        }
    }
}

/// The next text frame (pings and pongs skipped), within [`PATIENCE`].
pub async fn next_text(client: &mut Client) -> String {
    match next(client).await {
        Some(Message::Text(t)) => t.to_string(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// The next text frame (pings and pongs skipped, 20 s each), parsed as JSON.
pub async fn next_json(client: &mut Client) -> serde_json::Value {
    loop {
        match next_any(client).await {
            Some(Message::Text(t)) => return serde_json::from_str(&t).unwrap(),
            Some(Message::Ping(_) | Message::Pong(_)) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Sends one text frame.
pub async fn send(client: &mut Client, frame: &str) {
    client.send(Message::text(frame)).await.unwrap();
}

/// The close code the server sends, skipping anything before it. A connection that ends
/// without a close frame (a reset: what the client reports as 1006) fails the test.
pub async fn close_code<S>(client: &mut WebSocketStream<S>) -> CloseCode
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match next_any(client).await {
            Some(Message::Close(Some(frame))) => return frame.code,
            Some(Message::Close(None)) | None => panic!("closed without a close frame (1006)"),
            Some(_) => continue,
        }
    }
}

/// The mask every hand-built client frame uses (any key will do; the server must unmask).
const MASK: [u8; 4] = [9, 8, 7, 6];

/// The header of a masked client frame that says its payload is `length` bytes long (any
/// length, true or not: for frames that lie), its mask key included.
pub fn client_frame_header(fin: bool, opcode: u8, length: u64) -> Vec<u8> {
    let mut header = vec![u8::from(fin) << 7 | opcode];
    match length {
        n if n < 126 => header.push(0x80 | n as u8),
        n if n <= 0xffff => {
            header.push(0x80 | 126);
            header.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            header.push(0x80 | 127);
            header.extend_from_slice(&n.to_be_bytes());
        }
    }
    header.extend_from_slice(&MASK);
    header
}

/// A whole masked client frame, as a browser sends it.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = client_frame_header(fin, opcode, payload.len() as u64);
    frame.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

/// Writes raw bytes to the client's socket, under the WebSocket library.
pub async fn write_raw(client: &mut Client, bytes: &[u8]) {
    match client.get_mut() {
        MaybeTlsStream::Plain(tcp) => tcp.write_all(bytes).await.unwrap(),
        _ => unreachable!("plain ws://"),
    }
}

/// One request written as is (`head`: the request line and header lines, without the final
/// blank line), on a connection of its own, with `Connection: close`; the whole response.
pub async fn http_raw(addr: SocketAddr, head: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut response))
        .await
        .expect("a response within 10 s")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// `GET path` with `Host: 127.0.0.1:port` (a loopback host: the admin endpoints are served
/// to it without a token) and `extra` header lines (each starting with `\r\n`).
pub async fn http_get(addr: SocketAddr, path: &str, extra: &str) -> String {
    http_raw(addr, &format!("GET {path} HTTP/1.1\r\nHost: {addr}{extra}")).await
}

/// The body of an HTTP response.
pub fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// `GET /metrics`, its body.
pub async fn metrics(addr: SocketAddr) -> String {
    body(&http_get(addr, "/metrics", "").await).to_owned()
}

/// The value of one sample line of `/metrics` (`name` with its labels), if present.
pub fn sample(metrics: &str, name: &str) -> Option<u64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// The port a `sessionserver` binary started with its stdout piped listens on, read from its
/// first line ("[SessionServer] Listening on port N"): once this returns, it accepts
/// connections.
pub fn listening_port(child: &mut std::process::Child) -> u16 {
    use std::io::{BufRead, BufReader};
    let mut banner = String::new();
    BufReader::new(child.stdout.take().expect("the binary's stdout piped"))
        .read_line(&mut banner)
        .unwrap();
    let port = banner
        .trim()
        .strip_prefix("[SessionServer] Listening on port ");
    port.and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not the banner: {banner:?}"))
}
