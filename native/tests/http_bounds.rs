//! Before the upgrade everything is bounded: every HTTP connection has a deadline and a
//! permit, the handshake names the WebSocket version, the admin endpoints are served only
//! to whom they should be, every response carries the security headers, `--allowed-origins`
//! holds, and the options that could crash the server are refused by clap.
//!
//! Deadlines are set to a few hundred milliseconds and the closes awaited for up to 10 s, so
//! a slow machine makes these tests slower, never wrong.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{start, Client, PATIENCE};
use futures_util::{SinkExt, StreamExt};
use sessionserver::{Config, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Reads until the server closes the connection (EOF or a reset); whatever it sends first
/// (such as a 408) is allowed. Panics if it is still open after [`PATIENCE`].
async fn closed_by_server(tcp: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let outcome = tokio::time::timeout(PATIENCE, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "the connection is still open after 10 s");
}

/// One request written as is (`head` without its final blank line), on a connection of its
/// own, and the whole response.
async fn raw(server: &RunningServer, head: &str) -> String {
    common::http_raw(server.local_addr(), head).await
}

/// `GET path` with Host `127.0.0.1:port` and `extra` header lines.
async fn get(server: &RunningServer, path: &str, extra: &str) -> String {
    common::http_get(server.local_addr(), path, extra).await
}

fn status(response: &str) -> &str {
    response.get(9..12).unwrap_or("")
}

fn has_header(response: &str, name: &str, value: &str) -> bool {
    let head = response.split("\r\n\r\n").next().unwrap_or("");
    head.lines().skip(1).any(|line| {
        line.split_once(':').is_some_and(|(n, v)| {
            n.trim().eq_ignore_ascii_case(name) && v.trim().eq_ignore_ascii_case(value)
        })
    })
}

#[tokio::test]
async fn a_silent_connection_is_closed_by_the_header_deadline() {
    let server = start(Config {
        header_timeout: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    closed_by_server(&mut tcp).await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_unfinished_request_head_is_closed_by_the_header_deadline() {
    let server = start(Config {
        header_timeout: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    closed_by_server(&mut tcp).await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_by_its_timeout() {
    let server = start(Config {
        // Long, so that only the keep-alive timeout can close it.
        header_timeout: Duration::from_secs(60),
        keep_alive: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    // The whole response ("ok\n"), and the connection kept alive after it.
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    while !response.ends_with(b"\r\n\r\nok\n") {
        let n = tokio::time::timeout(PATIENCE, tcp.read(&mut buf))
            .await
            .expect("a response within 10 s")
            .unwrap();
        assert_ne!(n, 0, "closed before the response was complete");
        response.extend_from_slice(&buf[..n]);
    }
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(!has_header(&response, "connection", "close"), "{response}");
    closed_by_server(&mut tcp).await;
    server.shutdown().await;
}

#[tokio::test]
async fn connections_before_the_upgrade_count_against_the_cap() {
    let server = start(Config {
        max_connections: 2,
        header_timeout: Duration::from_secs(60),
        ..Config::default()
    })
    .await;
    // Two connections that never send a byte hold both permits (they are accepted in order,
    // before the upgrade below).
    let silent = TcpStream::connect(server.local_addr()).await.unwrap();
    let _other = TcpStream::connect(server.local_addr()).await.unwrap();
    let url = format!("ws://{}/", server.local_addr());
    match connect_async(&url).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    // A plain request is refused alike, with the security headers.
    let refused = get(&server, "/healthz", "").await;
    assert_eq!(status(&refused), "503", "{refused}");
    assert!(has_header(&refused, "x-content-type-options", "nosniff"));
    // Once one of them has gone, its permit is free again.
    drop(silent);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut ws = loop {
        match connect_async(&url).await {
            Ok((ws, _)) => break ws,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "still refused: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    ws.send(Message::text(r#"{"command":"leaveSession"}"#))
        .await
        .unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn another_websocket_version_gets_426_naming_version_13() {
    let server = start(Config::default()).await;
    let response = get(
        &server,
        "/",
        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8",
    )
    .await;
    assert!(
        matches!(status(&response), "426" | "400"),
        "expected 426 or 400: {response}"
    );
    assert!(
        has_header(&response, "sec-websocket-version", "13"),
        "{response}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn without_a_token_admin_is_served_only_to_local_requests_to_a_loopback_host() {
    let server = start(Config::default()).await;
    let port = server.local_addr().port();
    for (path, extra, expected) in [
        // DNS rebinding: the browser sends the attacker's host name.
        ("/sessions", "\r\nHost: evil.example".to_string(), "403"),
        ("/monitor", format!("\r\nHost: evil.example:{port}"), "403"),
        // A reverse proxy on this machine: it comes from loopback, but says it forwards.
        (
            "/sessions",
            format!("\r\nHost: 127.0.0.1:{port}\r\nX-Forwarded-For: 203.0.113.7"),
            "403",
        ),
        (
            "/sessions",
            format!("\r\nHost: 127.0.0.1:{port}\r\nForwarded: for=203.0.113.7"),
            "403",
        ),
        ("/sessions", format!("\r\nHost: 127.0.0.1:{port}"), "200"),
        ("/sessions", format!("\r\nHost: localhost:{port}"), "200"),
        ("/monitor", format!("\r\nHost: [::1]:{port}"), "200"),
    ] {
        let response = raw(&server, &format!("GET {path} HTTP/1.1{extra}")).await;
        assert_eq!(status(&response), expected, "{path}{extra}: {response}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn with_a_token_admin_needs_it_even_from_loopback() {
    let server = start(Config {
        admin_token: Some("a+b/c=d==".into()),
        ..Config::default()
    })
    .await;
    for (path, extra, expected) in [
        ("/sessions", "", "401"),
        ("/monitor", "", "401"),
        ("/sessions?token=wrong", "", "401"),
        ("/sessions?token=a%2Bb", "", "401"),
        ("/sessions", "\r\nAuthorization: Bearer a+b/c=d=", "401"),
        // Percent-encoded, as the monitor page and encodeURIComponent write it.
        ("/sessions?token=a%2Bb%2Fc%3Dd%3D%3D", "", "200"),
        ("/monitor?token=a%2Bb%2Fc%3Dd%3D%3D", "", "200"),
        // As typed: a "+" is a plus.
        ("/sessions?x=1&token=a+b/c=d==", "", "200"),
        ("/sessions", "\r\nAuthorization: Bearer a+b/c=d==", "200"),
        // The token works whatever the Host; it is what makes a proxy safe.
        (
            "/sessions?token=a%2Bb%2Fc%3Dd%3D%3D",
            "\r\nX-Forwarded-For: 203.0.113.7",
            "200",
        ),
    ] {
        let response = get(&server, path, extra).await;
        assert_eq!(status(&response), expected, "{path}{extra}: {response}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let server = start(Config::default()).await;
    for (path, private) in [
        ("/", false),
        ("/demo.js", false),
        ("/sessionserver.js", false),
        ("/healthz", false),
        ("/nowhere", false),
        ("/metrics", true),
        ("/sessions", true),
        ("/monitor", true),
    ] {
        let response = get(&server, path, "").await;
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("content-security-policy", "frame-ancestors 'none'"),
        ] {
            assert!(has_header(&response, name, value), "{path}: {response}");
        }
        assert_eq!(
            has_header(&response, "cache-control", "no-store"),
            private,
            "{path}: {response}"
        );
    }
    // A refused admin request is not cached either.
    let refused = raw(&server, "GET /sessions HTTP/1.1\r\nHost: evil.example").await;
    assert_eq!(status(&refused), "403", "{refused}");
    assert!(has_header(&refused, "cache-control", "no-store"));
    server.shutdown().await;
}

async fn connect_from(server: &RunningServer, origin: Option<&str>) -> Result<Client, WsError> {
    let mut request = format!("ws://{}/", server.local_addr())
        .into_client_request()
        .unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_str(origin).unwrap());
    }
    connect_async(request).await.map(|(ws, _)| ws)
}

#[tokio::test]
async fn an_origin_outside_allowed_origins_gets_403() {
    let server = start(Config {
        allowed_origins: Some(vec![
            "https://game.example".into(),
            "http://localhost:8080".into(),
        ]),
        ..Config::default()
    })
    .await;
    match connect_from(&server, Some("https://evil.example")).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected HTTP 403, got {other:?}"),
    }
    for origin in [
        Some("https://game.example"),
        Some("http://LOCALHOST:8080"),
        None,
    ] {
        let mut ws = connect_from(&server, origin)
            .await
            .unwrap_or_else(|e| panic!("{origin:?}: {e}"));
        ws.send(Message::text(r#"{"command":"joinSession","sessionID":-1}"#))
            .await
            .unwrap();
        let reply = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap();
        assert_eq!(
            reply.unwrap().unwrap().into_text().unwrap().as_str(),
            r#"{"command":"sessionJoin","error":6}"#
        );
    }
    server.shutdown().await;

    // The default, like the original: any origin.
    let open = start(Config::default()).await;
    connect_from(&open, Some("https://evil.example"))
        .await
        .expect("any origin by default");
    open.shutdown().await;
}

#[test]
fn values_that_would_crash_the_server_are_refused_by_clap() {
    for args in [
        ["--max-connections", "999999999999"],
        ["--max-connections", "0"],
        ["--max-depth", "1000000"],
        ["--max-depth", "513"],
        ["--header-timeout-ms", "0"],
        ["--keep-alive-ms", "0"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sessionserver"))
            .args(args)
            .args(["--port", "0", "--bind", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A server that took the value would run on: wait a bounded time, then stop it.
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if started.elapsed() > PATIENCE {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = child.wait_with_output().unwrap();
        assert_eq!(status.and_then(|s| s.code()), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(args[0]) && stderr.contains("is not in"),
            "{args:?}: {stderr}"
        );
    }
}

/// `{"a":{"a":…{}…}}`: `depth` objects, one inside the other.
fn nested(depth: usize) -> String {
    format!(
        "{}{{}}{}",
        r#"{"a":"#.repeat(depth - 1),
        "}".repeat(depth - 1)
    )
}

/// The deepest frame `--max-depth` allows, whose data the core's key-structure check walks
/// recursively, is handled by a debug build on tokio's default 2 MiB worker stacks (set here
/// explicitly): the cap is what keeps the recursion within the stack.
#[test]
fn the_deepest_allowed_frame_fits_a_2_mib_stack() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(2 << 20)
        .enable_all()
        .build()
        .unwrap();
    // The test's own thread only drives the client; the server's tasks run on the workers.
    runtime.block_on(async {
        let server = tokio::spawn(start(Config {
            limits: sessionserver_core::Limits {
                max_depth: Config::MAX_DEPTH,
                ..Default::default()
            },
            max_message_size: 1 << 20,
            ..Config::default()
        }))
        .await
        .unwrap();
        let (mut ws, _) = connect_async(format!("ws://{}/", server.local_addr()))
            .await
            .unwrap();
        // The frame is one level, its player data the rest.
        let data = nested(Config::MAX_DEPTH - 1);
        for (frame, reply) in [
            (
                format!(r#"{{"command":"createSession","player":{data}}}"#),
                r#"{"command":"sessionJoin","error":0"#,
            ),
            (
                format!(r#"{{"command":"updatePlayer","player":{data}}}"#),
                r#"{"command":"playerUpdate","error":0"#,
            ),
            (
                format!(
                    r#"{{"command":"updatePlayer","player":{}}}"#,
                    nested(Config::MAX_DEPTH)
                ),
                r#"{"command":"error","error":15"#,
            ),
        ] {
            ws.send(Message::text(frame)).await.unwrap();
            let got = tokio::time::timeout(PATIENCE, ws.next())
                .await
                .expect("a reply within 10 s")
                .expect("the connection is open")
                .expect("a frame");
            let got = got.into_text().unwrap();
            assert!(got.starts_with(reply), "expected {reply}…, got {got}");
        }
        server.shutdown().await;
    });
}

/// The server raises its soft limit of open files to the hard one, and warns when
/// `--max-connections` does not fit in it.
#[cfg(target_os = "linux")]
#[test]
fn the_open_files_limit_is_raised_and_a_cap_beyond_it_is_warned_about() {
    use std::io::{BufRead, BufReader, Read};
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -Sn 256 && ulimit -Hn 512 && exec '{}' --port 0 --bind 127.0.0.1 \
             --max-connections 100000",
            env!("CARGO_BIN_EXE_sessionserver")
        ))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(banner.contains("Listening on port"), "{banner}{stderr}");
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = open_files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers, ["512", "512"], "{open_files}");
    assert!(stderr.contains("does not fit"), "{stderr}");
}
