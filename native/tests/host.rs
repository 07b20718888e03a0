//! What the native host does beyond the protocol: its library API, shutdown, limits, HTTP.

mod common;

use common::{connect, local, next, next_text};
use futures_util::SinkExt;
use sessionserver::Config;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn port_zero_binds_a_free_port_that_serves_the_protocol() {
    let server = sessionserver::start(local(Config::default()))
        .await
        .unwrap();
    assert_ne!(server.local_addr().port(), 0);
    let mut client = connect(&server).await;
    client
        .send(Message::text(r#"{"command":"createSession"}"#))
        .await
        .unwrap();
    let reply = next_text(&mut client).await;
    assert!(
        reply.starts_with(r#"{"command":"sessionJoin","error":0,"sessionID":0,"playerID":0"#),
        "{reply}"
    );
    assert_eq!(server.session_count(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001() {
    let server = sessionserver::start(local(Config::default()))
        .await
        .unwrap();
    let mut in_session = connect(&server).await;
    let mut idle = connect(&server).await;
    in_session
        .send(Message::text(r#"{"command":"createSession"}"#))
        .await
        .unwrap();
    let reply = next_text(&mut in_session).await;
    assert!(reply.contains("sessionJoin"), "{reply}");
    // The idle client's connection is registered once it has been answered once.
    idle.send(Message::text("{}")).await.unwrap();
    assert!(next_text(&mut idle).await.contains(r#""error":11"#));
    server.shutdown().await;
    for client in [&mut in_session, &mut idle] {
        match next(client).await {
            Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Away),
            other => panic!("expected close 1001, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_message_over_the_limit_closes_with_1009() {
    let config = local(Config {
        max_message_size: 1024,
        ..Config::default()
    });
    let server = sessionserver::start(config).await.unwrap();
    let mut client = connect(&server).await;
    let big = format!(
        r#"{{"command":"createSession","session":{{"pad":"{}"}}}}"#,
        "x".repeat(2048)
    );
    client.send(Message::text(big)).await.unwrap();
    match next(&mut client).await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected close 1009, got {other:?}"),
    }
    // The server goes on serving others.
    let mut other = connect(&server).await;
    other
        .send(Message::text(r#"{"command":"joinSession","sessionID":-1}"#))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut other).await,
        r#"{"command":"sessionJoin","error":6}"#
    );
    server.shutdown().await;
}

#[tokio::test]
async fn plain_http_answers_healthz_and_404_elsewhere() {
    let server = sessionserver::start(local(Config::default()))
        .await
        .unwrap();
    for (path, status) in [("/healthz", "200 OK"), ("/nowhere", "404 Not Found")] {
        let response = common::http_raw(
            server.local_addr(),
            &format!("GET {path} HTTP/1.1\r\nHost: x"),
        )
        .await;
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status}")),
            "{path}: {response}"
        );
    }
    server.shutdown().await;
}

async fn http_get(server: &sessionserver::RunningServer, path: &str, extra: &str) -> String {
    common::http_get(server.local_addr(), path, extra).await
}

#[tokio::test]
async fn metrics_count_connections_commands_and_replies_by_code() {
    let server = sessionserver::start(local(Config::default()))
        .await
        .unwrap();
    let mut client = connect(&server).await;
    client
        .send(Message::text(r#"{"command":"createSession"}"#))
        .await
        .unwrap();
    next_text(&mut client).await;
    client
        .send(Message::text(r#"{"command":"joinSession","sessionID":0}"#))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut client).await,
        r#"{"command":"sessionJoin","error":5}"#
    );
    client.send(Message::text("nope")).await.unwrap();
    next_text(&mut client).await;
    let metrics = http_get(&server, "/metrics", "").await;
    for line in [
        "sessionserver_connections 1",
        "sessionserver_sessions 1",
        "sessionserver_players 1",
        "sessionserver_commands_total{command=\"createSession\"} 1",
        "sessionserver_commands_total{command=\"joinSession\"} 1",
        "sessionserver_commands_total{command=\"invalid\"} 1",
        "sessionserver_replies_total{command=\"sessionJoin\",error=\"0\"} 1",
        "sessionserver_replies_total{command=\"sessionJoin\",error=\"5\"} 1",
        "sessionserver_replies_total{command=\"error\",error=\"9\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn sessions_are_listed_on_loopback_and_need_the_token_when_one_is_set() {
    let open = sessionserver::start(local(Config::default()))
        .await
        .unwrap();
    let mut client = connect(&open).await;
    client
        .send(Message::text(
            r#"{"command":"createSession","sessionData":{"map":"x"},"playerData":{"n":1}}"#,
        ))
        .await
        .unwrap();
    next_text(&mut client).await;
    let listing = http_get(&open, "/sessions", "").await;
    assert!(listing.starts_with("HTTP/1.1 200"), "{listing}");
    assert!(
        listing.ends_with(r#"{"sessions":[{"sessionID":0,"spelling":"long","sessionData":{"map":"x"},"defaultPlayerData":{"n":1},"players":[{"playerID":0,"playerData":{"n":1}}]}]}"#),
        "{listing}"
    );
    open.shutdown().await;

    let locked = sessionserver::start(local(Config {
        admin_token: Some("s3cret".into()),
        ..Config::default()
    }))
    .await
    .unwrap();
    for (path, extra, status) in [
        ("/sessions", "", "401"),
        ("/sessions?token=wrong", "", "401"),
        ("/monitor", "", "401"),
        ("/sessions?token=s3cret", "", "200"),
        ("/sessions", "\r\nAuthorization: Bearer s3cret", "200"),
        ("/monitor?token=s3cret", "", "200"),
    ] {
        let response = http_get(&locked, path, extra).await;
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status}")),
            "{path}{extra}: {response}"
        );
    }
    locked.shutdown().await;
}

#[tokio::test]
async fn the_demo_and_the_js_client_are_served() {
    let server = sessionserver::start(local(Config::default()))
        .await
        .unwrap();
    for (path, content_type) in [
        ("/", "text/html"),
        ("/demo.js", "text/javascript"),
        ("/sessionserver.js", "text/javascript"),
    ] {
        let response = http_get(&server, path, "").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{path}: {response}");
        assert!(
            response
                .to_ascii_lowercase()
                .contains(&format!("content-type: {content_type}")),
            "{path}: {response}"
        );
    }
    server.shutdown().await;
}
