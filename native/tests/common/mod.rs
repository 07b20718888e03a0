//! Helpers shared by the native host's tests (each test file uses some of them): a server on
//! 127.0.0.1 and a free port, client frames built by hand (masked, as a browser sends them),
//! and plain HTTP requests with the Host header the admin endpoints expect.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use sessionserver::{Config, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
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
