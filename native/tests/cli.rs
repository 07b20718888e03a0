//! The `sessionserver` binary's options: flags, environment and the --config file.

mod common;

use std::process::{Command, Stdio};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn write_config(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "sessionserver-test-{}-{name}.toml",
        std::process::id()
    ));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn an_unknown_config_key_is_refused_with_its_name() {
    let path = write_config("bad", "max_sesions = 3\n");
    let out = Command::new(env!("CARGO_BIN_EXE_sessionserver"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown option `max_sesions`"), "{stderr}");
}

#[tokio::test]
async fn the_config_file_sets_options_and_flags_override_it() {
    let path = write_config("good", "bind = \"127.0.0.1\"\nport = 1\nmax_sessions = 1\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessionserver"))
        .arg("--config")
        .arg(&path)
        .args(["--port", "0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let port = common::listening_port(&mut child);
    assert_ne!(port, 1, "the --port flag beats the file");
    let url = format!("ws://127.0.0.1:{port}/");
    let (mut a, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut b, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let mut replies = Vec::new();
    for ws in [&mut a, &mut b] {
        ws.send(Message::text(r#"{"command":"createSession"}"#))
            .await
            .unwrap();
        let reply = ws.next().await.unwrap().unwrap().into_text().unwrap();
        replies.push(reply.to_string());
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(replies[0].contains(r#""error":0"#), "{replies:?}");
    assert!(
        replies[1].starts_with(r#"{"command":"sessionJoin","error":17"#),
        "max_sessions = 1 from the file: {replies:?}"
    );
}
