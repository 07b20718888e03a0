//! One TCP connection: hyper reads the HTTP request; a WebSocket upgrade (on any path, like
//! the original) becomes a player connection, anything else gets a plain HTTP answer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::assets;
use crate::connection::{self, Shared};
use crate::frame_reader::FrameReader;
use crate::session_task::SessionMsg;
use crate::socket::Outbox;

pub(crate) struct Context {
    pub(crate) shared: Arc<Shared>,
    /// Largest message accepted from a client, in bytes.
    pub(crate) max_message_size: usize,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Held by every connection task; shutdown waits until all are dropped.
    pub(crate) alive: tokio::sync::mpsc::Sender<()>,
    /// One permit per open WebSocket connection.
    pub(crate) connections: Arc<Semaphore>,
    pub(crate) admin: crate::admin::Admin,
    pub(crate) occupancy: crate::memory::Occupancy,
}

pub(crate) async fn route(
    req: Request<Incoming>,
    addr: SocketAddr,
    ctx: Arc<Context>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if is_upgrade(&req) {
        return Ok(upgrade(req, addr, ctx));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(
            StatusCode::METHOD_NOT_ALLOWED,
            "Only GET is served here.\n",
        ));
    }
    let response = match req.uri().path() {
        "/" | "/index.html" => asset("text/html; charset=utf-8", assets::INDEX_HTML),
        "/demo.js" => asset("text/javascript; charset=utf-8", assets::DEMO_JS),
        "/sessionserver.js" => asset("text/javascript; charset=utf-8", assets::CLIENT_JS),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/metrics" => {
            let body = ctx
                .shared
                .metrics
                .render(ctx.shared.registry.session_count());
            let mut res = Response::new(Full::new(Bytes::from(body)));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            res
        }
        "/sessions" | "/monitor" if !ctx.admin.allows(&req) => ctx.admin.refusal(),
        "/sessions" => sessions_json(&ctx).await,
        "/monitor" => asset("text/html; charset=utf-8", assets::MONITOR_HTML),
        _ => text(
            StatusCode::NOT_FOUND,
            "Not found. WebSocket clients connect on any path (ws://host:port/).\n",
        ),
    };
    Ok(response)
}

fn asset(content_type: &'static str, body: &'static str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// Every session, asked of each session task in turn.
async fn sessions_json(ctx: &Context) -> Response<Full<Bytes>> {
    let mut body = String::from("{\"sessions\":[");
    let mut first = true;
    for handle in ctx.shared.registry.sessions() {
        let (reply, described) = tokio::sync::oneshot::channel();
        if handle.send(SessionMsg::Describe { reply }).await.is_err() {
            continue;
        }
        // A session that ended meanwhile has nothing to describe.
        if let Ok(json) = described.await {
            if !first {
                body.push(',');
            }
            first = false;
            body.push_str(&json);
        }
    }
    body.push_str("]}");
    let mut res = Response::new(Full::new(Bytes::from(body)));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

fn header_has(req: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.method() == Method::GET
        && header_has(req, header::CONNECTION, "upgrade")
        && header_has(req, header::UPGRADE, "websocket")
}

fn upgrade(
    mut req: Request<Incoming>,
    addr: SocketAddr,
    ctx: Arc<Context>,
) -> Response<Full<Bytes>> {
    let version_ok = req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let Some(key) = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|_| version_ok)
    else {
        return text(
            StatusCode::BAD_REQUEST,
            "WebSocket upgrade needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13\n",
        );
    };
    let Ok(permit) = ctx.connections.clone().try_acquire_owned() else {
        ctx.shared.metrics.connection_refused();
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server holds its maximum of connections; try again later.\n",
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        // Held for as long as the connection lasts (they count it), then dropped.
        let held = (ctx.alive.clone(), permit, ctx.occupancy.enter());
        match on_upgrade.await {
            Ok(upgraded) => {
                // Back to the plain TCP stream (and whatever hyper read past the request), so
                // that writes can go straight to the socket (see socket.rs).
                let parts = match upgraded.downcast::<TokioIo<TcpStream>>() {
                    Ok(parts) => parts,
                    Err(_) => {
                        tracing::error!(%addr, "upgraded connection is not a TCP stream");
                        return;
                    }
                };
                // Copy what hyper read past the request (usually nothing) and let go of its
                // read buffer, which would otherwise stay allocated for the whole connection.
                let already_read = parts.read_buf.to_vec();
                let (read, write) = parts.io.into_inner().into_split();
                drop(parts.read_buf);
                let outbox = Outbox::new(write, ctx.shared.send_queue);
                let reader = FrameReader::new(read, already_read, ctx.max_message_size);
                // A task of its own: this one's state (hyper's upgrade, the context) is then
                // freed, and an open connection's task holds only the connection.
                let shared = ctx.shared.clone();
                tokio::spawn(connection::run(reader, outbox, addr, shared, held));
            }
            Err(e) => tracing::debug!(%addr, error = %e, "upgrade failed"),
        }
    });
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = res.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    res
}
