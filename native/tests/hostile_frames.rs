//! Frames a client may not send, over real sockets: the server answers with the close code
//! RFC 6455 asks for, and the connection's player leaves its session as after any disconnect.
//! The client here writes raw bytes, so that it can send what WebSocket libraries refuse to.

mod common;

use common::{client_frame, client_frame_header, next_text, start, PATIENCE};
use futures_util::SinkExt;
use sessionserver::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket connection on which the test writes raw bytes.
async fn raw_connect(server: &sessionserver::RunningServer) -> TcpStream {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut byte))
            .await
            .expect("no handshake reply within 10 s")
            .unwrap();
        assert_eq!(n, 1, "the server closed during the handshake");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream
}

/// Reads the server's frames until its close frame, and returns the close code.
async fn close_code(stream: &mut TcpStream) -> Option<u16> {
    loop {
        let mut head = [0; 2];
        tokio::time::timeout(PATIENCE, stream.read_exact(&mut head))
            .await
            .expect("no frame within 10 s")
            .expect("the connection ended without a close frame");
        let length = match head[1] & 0x7f {
            126 => {
                let mut n = [0; 2];
                stream.read_exact(&mut n).await.unwrap();
                u64::from(u16::from_be_bytes(n))
            }
            127 => {
                let mut n = [0; 8];
                stream.read_exact(&mut n).await.unwrap();
                u64::from_be_bytes(n)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0; length as usize];
        stream.read_exact(&mut payload).await.unwrap();
        if head[0] & 0x0f == 8 {
            return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
        }
    }
}

#[tokio::test]
async fn a_continuation_length_near_2_64_closes_with_1002_and_the_player_leaves() {
    let server = start(Config::default()).await;
    let url = format!("ws://{}/", server.local_addr());
    let (mut host, _) = connect_async(&url).await.unwrap();
    host.send(Message::text(r#"{"command":"createSession"}"#))
        .await
        .unwrap();
    let created = next_text(&mut host).await;
    assert!(created.starts_with(r#"{"command":"sessionJoin","error":0,"sessionID":0"#));
    for between in [&[][..], &client_frame(true, 9, b"ping")[..]] {
        let mut attacker = raw_connect(&server).await;
        attacker
            .write_all(&client_frame(
                true,
                1,
                br#"{"command":"joinSession","sessionID":0}"#,
            ))
            .await
            .unwrap();
        // The joiner's playerJoin tells the host its ID.
        let joined = next_text(&mut host).await;
        let id = joined
            .strip_prefix(r#"{"command":"playerJoin","error":0,"playerID":"#)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .unwrap_or_else(|| panic!("expected a playerJoin, got {joined}"))
            .to_string();
        // A fragment, maybe a ping, then a continuation whose length wrapped the old sum.
        let mut poison = client_frame(false, 1, b"{\"command\":");
        poison.extend_from_slice(between);
        poison.extend_from_slice(&client_frame_header(true, 0, u64::MAX - 1));
        poison.extend_from_slice(&[b'x'; 64]);
        attacker.write_all(&poison).await.unwrap();
        assert_eq!(close_code(&mut attacker).await, Some(1002));
        assert_eq!(
            next_text(&mut host).await,
            format!(r#"{{"command":"playerLeave","error":0,"playerID":{id}}}"#)
        );
    }
    assert_eq!(server.session_count(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn close_frames_are_answered_as_rfc_6455_says() {
    let server = start(Config::default()).await;
    let mut bad_reason = 1000u16.to_be_bytes().to_vec();
    bad_reason.extend_from_slice(&[0xce, 0xba, 0xe1, 0xbd, 0x80, 0x80]);
    let cases: [(&str, Vec<u8>, Option<u16>); 9] = [
        ("one byte", vec![0x03], Some(1002)),
        ("code 0", 0u16.to_be_bytes().to_vec(), Some(1002)),
        ("code 999", 999u16.to_be_bytes().to_vec(), Some(1002)),
        ("code 1005", 1005u16.to_be_bytes().to_vec(), Some(1002)),
        ("code 1016", 1016u16.to_be_bytes().to_vec(), Some(1002)),
        ("code 5000", 5000u16.to_be_bytes().to_vec(), Some(1002)),
        ("reason not UTF-8", bad_reason, Some(1007)),
        ("code 4000", 4000u16.to_be_bytes().to_vec(), Some(4000)),
        (
            "code 1000 with a reason",
            b"\x03\xe8bye".to_vec(),
            Some(1000),
        ),
    ];
    for (name, payload, expected) in cases {
        let mut client = raw_connect(&server).await;
        client
            .write_all(&client_frame(true, 8, &payload))
            .await
            .unwrap();
        assert_eq!(close_code(&mut client).await, expected, "{name}");
    }
    server.shutdown().await;
}
