//! Connect-time auth: with an auth check set (`--auth-secret`, or a library's own
//! `Authorizer`), every WebSocket upgrade must pass it before it is answered; a refusal is a
//! plain HTTP answer that says why. Plain HTTP requests are not checked.
//!
//! The test tokens are signed here with HMAC-SHA256 (hmac + sha2), not by the server's code.
//! Their times are an hour or more from now, so the test does not depend on how fast it runs.

mod common;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{body, http_get, http_raw, next_json, sample, send, Client};
use sessionserver::{Authorizer, Config, Rejection, RunningServer};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Error as WsError;

const SECRET: &str = "the test secret, thirty-two bytes or more";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWT of this header and these claims (JSON text), signed HS256 with `secret`.
fn jwt(header: &str, claims: &str, secret: &str) -> String {
    sessionserver_core::auth::sign_hs256(header, claims, secret.as_bytes())
}

/// A good token for `sub`, valid for the next hour.
fn good(sub: &str) -> String {
    let claims = format!(r#"{{"sub":"{sub}","exp":{}}}"#, now() + 3600);
    jwt(r#"{"alg":"HS256","typ":"JWT"}"#, &claims, SECRET)
}

async fn jwt_server() -> RunningServer {
    common::start(Config {
        authorize: Some(Authorizer::jwt_hs256(SECRET).unwrap()),
        ..Config::default()
    })
    .await
}

/// A WebSocket handshake for `target` with `extra` header lines (each starting with
/// `\r\n`), written by hand; the whole response (a refusal: the server then closes).
async fn upgrade_raw(server: &RunningServer, target: &str, extra: &str) -> String {
    let addr = server.local_addr();
    http_raw(
        addr,
        &format!(
            "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13{extra}"
        ),
    )
    .await
}

fn status(response: &str) -> &str {
    response.get(9..12).unwrap_or("")
}

/// The value of the response's header `name`, if it has one.
fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next().unwrap_or("");
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Asserts a 401 whose body says `why` and whose challenge is `challenge`.
fn assert_401(response: &str, why: &str, challenge: &str) {
    assert_eq!(status(response), "401", "{response}");
    assert!(body(response).contains(why), "{response}");
    assert_eq!(
        header(response, "www-authenticate"),
        Some(challenge),
        "{response}"
    );
    assert_eq!(
        header(response, "content-type"),
        Some("text/plain; charset=utf-8")
    );
}

/// The challenge of a refused token (RFC 6750 §3), with the body's sentence.
fn invalid_token(response: &str) -> String {
    let why = body(response).trim_end();
    format!("Bearer error=\"invalid_token\", error_description=\"{why}\"")
}

/// A WebSocket client for `target`, with `Authorization: Bearer <bearer>` if given.
async fn connect(
    server: &RunningServer,
    target: &str,
    bearer: Option<&str>,
) -> Result<Client, WsError> {
    let mut request = format!("ws://{}{target}", server.local_addr())
        .into_client_request()
        .unwrap();
    if let Some(token) = bearer {
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
    }
    connect_async(request).await.map(|(ws, _)| ws)
}

/// The connection is a player: it creates a session and gets its `sessionJoin`.
async fn plays(client: &mut Client) {
    send(client, r#"{"command":"createSession","session":{"n":1}}"#).await;
    let reply = next_json(client).await;
    assert_eq!(reply["command"], "sessionJoin", "{reply}");
    assert_eq!(reply["error"], 0, "{reply}");
    assert_eq!(reply["session"]["n"], 1, "{reply}");
}

#[tokio::test]
async fn an_upgrade_without_a_token_gets_401() {
    let server = jwt_server().await;
    let response = upgrade_raw(&server, "/", "").await;
    // No token at all: a challenge without an error code (RFC 6750 §3.1).
    assert_401(&response, "no token", "Bearer");
    assert!(header(&response, "upgrade").is_none(), "{response}");
    // Other query parameters and other schemes are no token.
    let response = upgrade_raw(&server, "/?tokens=x&t=1", "\r\nAuthorization: Basic YTpi").await;
    assert_401(&response, "no token", "Bearer");
    assert_eq!(server.connection_count(), 0);
    assert_eq!(
        sample(
            &common::metrics(server.local_addr()).await,
            "sessionserver_upgrades_unauthorized_total"
        ),
        Some(2)
    );
    // Refused before the upgrade: no player ID was used, the first player is player 0.
    let mut client = connect(&server, &format!("/?token={}", good("ada")), None)
        .await
        .expect("the upgrade");
    send(&mut client, r#"{"command":"createSession"}"#).await;
    assert_eq!(next_json(&mut client).await["playerID"], 0);
}

#[tokio::test]
async fn a_good_token_in_the_query_upgrades_and_plays() {
    let server = jwt_server().await;
    let mut client = connect(&server, &format!("/?token={}", good("ada")), None)
        .await
        .expect("the upgrade");
    plays(&mut client).await;
    // Percent-encoded (the dots as %2E), among other parameters, on another path.
    let encoded = good("bob").replace('.', "%2E");
    let mut client = connect(&server, &format!("/game/3?room=a&token={encoded}&x"), None)
        .await
        .expect("the upgrade");
    plays(&mut client).await;
    assert_eq!(server.session_count(), 2);
}

#[tokio::test]
async fn a_good_token_as_a_bearer_header_upgrades_and_plays() {
    let server = jwt_server().await;
    let mut client = connect(&server, "/", Some(&good("ada")))
        .await
        .expect("the upgrade");
    plays(&mut client).await;
}

#[tokio::test]
async fn an_expired_token_gets_401() {
    let server = jwt_server().await;
    let claims = format!(r#"{{"sub":"ada","exp":{}}}"#, now() - 3600);
    let token = jwt(r#"{"alg":"HS256"}"#, &claims, SECRET);
    let response = upgrade_raw(&server, &format!("/?token={token}"), "").await;
    assert_401(&response, "expired", &invalid_token(&response));
    // As a bearer header too.
    let response = upgrade_raw(&server, "/", &format!("\r\nAuthorization: Bearer {token}")).await;
    assert_401(&response, "expired", &invalid_token(&response));
    // And one that is not valid yet.
    let claims = format!(r#"{{"nbf":{}}}"#, now() + 3600);
    let token = jwt(r#"{"alg":"HS256"}"#, &claims, SECRET);
    let response = upgrade_raw(&server, &format!("/?token={token}"), "").await;
    assert_401(&response, "not valid yet", &invalid_token(&response));
}

#[tokio::test]
async fn an_unsigned_alg_none_token_gets_401() {
    let server = jwt_server().await;
    let claims = format!(r#"{{"sub":"root","exp":{}}}"#, now() + 3600);
    let token = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(claims.as_bytes()));
    let response = upgrade_raw(&server, &format!("/?token={token}"), "").await;
    assert_401(&response, "alg is not HS256", &invalid_token(&response));
    // Signed with the right secret, but naming another algorithm.
    let token = jwt(r#"{"alg":"HS384"}"#, &claims, SECRET);
    let response = upgrade_raw(&server, &format!("/?token={token}"), "").await;
    assert_401(&response, "alg is not HS256", &invalid_token(&response));
}

#[tokio::test]
async fn a_token_signed_with_another_secret_gets_401() {
    let server = jwt_server().await;
    let claims = format!(r#"{{"sub":"ada","exp":{}}}"#, now() + 3600);
    let token = jwt(
        r#"{"alg":"HS256"}"#,
        &claims,
        "another secret, also thirty-two bytes",
    );
    let response = upgrade_raw(&server, "/", &format!("\r\nAuthorization: Bearer {token}")).await;
    assert_401(&response, "wrong signature", &invalid_token(&response));
    // And through the client library: the handshake fails with the 401.
    match connect(&server, &format!("/?token={token}"), None).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected a 401, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_tokens_get_401_and_two_tokens_400() {
    let server = jwt_server().await;
    for (token, why) in [
        ("", "not three base64url parts"),
        ("abc.def", "not three base64url parts"),
        ("a=.b.c", "not base64url or a dot"),
        ("%FF.b.c", "not base64url or a dot"),
        ("e30.e30.e30.e30", "not three base64url parts"),
    ] {
        let response = upgrade_raw(&server, &format!("/?token={token}"), "").await;
        assert_401(&response, why, &invalid_token(&response));
    }
    let token = good("ada");
    let response = upgrade_raw(
        &server,
        &format!("/?token={token}"),
        &format!("\r\nAuthorization: Bearer {token}"),
    )
    .await;
    assert_eq!(status(&response), "400", "{response}");
    assert!(
        body(&response).contains("more than one token"),
        "{response}"
    );
    assert!(
        header(&response, "www-authenticate")
            .is_some_and(|c| c.starts_with("Bearer error=\"invalid_request\"")),
        "{response}"
    );
}

#[tokio::test]
async fn plain_http_is_not_checked() {
    let server = jwt_server().await;
    let response = http_get(server.local_addr(), "/healthz", "").await;
    assert_eq!(status(&response), "200", "{response}");
    assert_eq!(body(&response), "ok\n");
}

#[tokio::test]
async fn without_an_auth_check_tokens_are_not_looked_at() {
    let server = common::start(Config::default()).await;
    // Neither none nor a bad one stands in the way.
    let mut client = connect(&server, "/", None).await.expect("the upgrade");
    plays(&mut client).await;
    let mut client = connect(&server, "/?token=not-a-jwt", Some("nor-this"))
        .await
        .expect("the upgrade");
    plays(&mut client).await;
}

/// What a check saw of a request: its path, query and `X-Game-Key`.
type Seen = (String, Option<String>, Option<String>);

#[tokio::test]
async fn a_library_plugs_in_its_own_check() {
    // The check records what it saw, and lets through the one game key it knows.
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = seen.clone();
    let authorize = Authorizer::new(move |req| {
        assert!(req.peer_addr().ip().is_loopback());
        record.lock().unwrap().push((
            req.path().to_owned(),
            req.query().map(str::to_owned),
            req.header("X-Game-Key").map(str::to_owned),
        ));
        match req.header("x-game-key") {
            Some("k-7f3a") => Ok(Some("tablet".to_owned())),
            Some(_) => Err(Rejection::forbidden("That game key is not known here.")),
            None => Err(Rejection::unauthorized("Send X-Game-Key.")),
        }
    });
    let server = common::start(Config {
        authorize: Some(authorize),
        ..Config::default()
    })
    .await;

    let response = upgrade_raw(&server, "/lobby?v=2", "").await;
    assert_eq!(status(&response), "401", "{response}");
    assert_eq!(body(&response), "Send X-Game-Key.\n");
    assert_eq!(header(&response, "www-authenticate"), Some("Bearer"));

    let response = upgrade_raw(&server, "/", "\r\nX-Game-Key: guess").await;
    assert_eq!(status(&response), "403", "{response}");
    assert_eq!(body(&response), "That game key is not known here.\n");
    assert_eq!(header(&response, "www-authenticate"), None);

    let mut request = format!("ws://{}/play", server.local_addr())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("x-game-key", HeaderValue::from_static("k-7f3a"));
    let (mut client, _) = connect_async(request).await.expect("the upgrade");
    plays(&mut client).await;

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            ("/lobby".to_owned(), Some("v=2".to_owned()), None),
            ("/".to_owned(), None, Some("guess".to_owned())),
            ("/play".to_owned(), None, Some("k-7f3a".to_owned())),
        ]
    );
}

#[tokio::test]
async fn a_check_that_panics_refuses_with_500_and_the_server_goes_on() {
    let authorize = Authorizer::new(|req| match req.query() {
        Some("boom") => panic!("a bug in the check"),
        _ => Ok(None),
    });
    let server = common::start(Config {
        authorize: Some(authorize),
        ..Config::default()
    })
    .await;
    let response = upgrade_raw(&server, "/?boom", "").await;
    assert_eq!(status(&response), "500", "{response}");
    let mut client = connect(&server, "/", None).await.expect("the upgrade");
    plays(&mut client).await;
}

/// Starts the binary with `args` and `env`, and returns it with its port once it listens.
fn spawn_binary(args: &[&str], env: &[(&str, &str)]) -> (std::process::Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessionserver"))
        .args(["--bind", "127.0.0.1", "--port", "0"])
        .args(args)
        .env_remove("AUTH_SECRET")
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let port = common::listening_port(&mut child);
    (child, port)
}

/// Whether a WebSocket upgrade on `port` with `?token=<token>` (none: no query) gets 101,
/// or else its HTTP status.
async fn upgrade_status(port: u16, token: Option<String>) -> Result<(), u16> {
    let query = token.map_or(String::new(), |t| format!("?token={t}"));
    match connect_async(format!("ws://127.0.0.1:{port}/{query}")).await {
        Ok(_) => Ok(()),
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("the handshake failed: {e}"),
    }
}

#[tokio::test]
async fn the_flag_beats_the_environment() {
    let flag = "the secret given as a flag, 32 bytes+";
    let env = "the secret in the environment, 32 bytes+";
    let claims = format!(r#"{{"sub":"ada","exp":{}}}"#, now() + 3600);
    let signed = |secret| Some(jwt(r#"{"alg":"HS256"}"#, &claims, secret));

    let (mut child, port) = spawn_binary(&["--auth-secret", flag], &[("AUTH_SECRET", env)]);
    let results = [
        upgrade_status(port, signed(flag)).await,
        upgrade_status(port, signed(env)).await,
        upgrade_status(port, None).await,
    ];
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(results, [Ok(()), Err(401), Err(401)]);

    // The environment alone sets it.
    let (mut child, port) = spawn_binary(&[], &[("AUTH_SECRET", env)]);
    let results = [
        upgrade_status(port, signed(env)).await,
        upgrade_status(port, None).await,
    ];
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(results, [Ok(()), Err(401)]);
}

#[test]
fn a_short_secret_is_refused_at_start_without_showing_it() {
    for (args, env) in [
        (&["--auth-secret", "hunter2"][..], None),
        (&[][..], Some("hunter2")),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sessionserver"));
        command.args(["--port", "0"]).args(args);
        if let Some(secret) = env {
            command.env("AUTH_SECRET", secret);
        }
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("at least 32"), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

/// The subject stays with the seat: `/sessions` shows it, and a resume token in the hands of
/// another subject is as good as none (22), while the seat's own subject resumes it.
#[tokio::test]
async fn a_seat_keeps_its_subject_and_resumes_only_for_it() {
    let server = jwt_server().await;
    let mut ada = connect(&server, &format!("/?token={}", good("ada")), None)
        .await
        .expect("the upgrade");
    send(&mut ada, r#"{"command":"hello","features":["resume"]}"#).await;
    assert_eq!(next_json(&mut ada).await["command"], "hello");
    let token = plays_resumable(&mut ada).await;
    let sessions = body(&http_get(server.local_addr(), "/sessions", "").await).to_owned();
    assert!(sessions.contains(r#""subject":"ada""#), "{sessions}");
    drop(ada);
    for (who, error) in [("eve", 22), ("ada", 0)] {
        let mut client = connect(&server, &format!("/?token={}", good(who)), None)
            .await
            .expect("the upgrade");
        let frame = format!(r#"{{"command":"resumeSession","resumeToken":"{token}"}}"#);
        send(&mut client, &frame).await;
        let reply = next_json(&mut client).await;
        assert_eq!(reply["command"], "sessionResume", "{who}: {reply}");
        assert_eq!(reply["error"], error, "{who}: {reply}");
    }
}

/// As [`plays`], for a connection that asked for `resume`: the `resumeToken` of its
/// `sessionJoin`.
async fn plays_resumable(client: &mut Client) -> String {
    send(client, r#"{"command":"createSession","session":{"n":1}}"#).await;
    let reply = next_json(client).await;
    assert_eq!(reply["error"], 0, "{reply}");
    reply["resumeToken"].as_str().expect("a token").to_owned()
}
