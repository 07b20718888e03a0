//! One TCP connection: hyper reads the HTTP request; a WebSocket upgrade (on any path, like
//! the original) becomes a player connection, anything else gets a plain HTTP answer. An
//! upgrade passes the auth check (`Config::authorize`, auth.rs) before it is answered; its
//! subject goes to the connection's task.
//!
//! Before its upgrade a connection holds one of the `--max-connections` permits (taken when
//! it is accepted, see server.rs) and always has a deadline: hyper's header-read timeout for
//! a request head, and [`ConnState`]'s keep-alive deadline once a response is ready.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::assets;
use crate::auth::{Authorizer, UpgradeRequest};
use crate::connection::{self, Shared};
use crate::counting::Counted;
use crate::deflate::{self, Agreement, Deflate};
use crate::frame_reader::FrameReader;
use crate::response::{asset, text};
use crate::session_task::SessionMsg;
use crate::socket::Outbox;

pub(crate) struct Context {
    pub(crate) shared: Arc<Shared>,
    /// Largest message accepted from a client, in bytes.
    pub(crate) max_message_size: usize,
    /// Whether a client's permessage-deflate offer is accepted (`Config::deflate`).
    pub(crate) deflate: bool,
    /// Held by every connection task; shutdown waits until all are dropped.
    pub(crate) alive: tokio::sync::mpsc::Sender<()>,
    /// One permit per open TCP connection (plain HTTP, before or after its upgrade).
    pub(crate) connections: Arc<Semaphore>,
    /// Connections being answered 503 because `connections` has none left (see [`refuse`]).
    pub(crate) refusing: Arc<Semaphore>,
    pub(crate) admin: crate::admin::Admin,
    pub(crate) occupancy: crate::memory::Occupancy,
    /// Time allowed for a request head (hyper's header-read timeout).
    pub(crate) header_timeout: Duration,
    /// Time allowed after a response until the next request's head has arrived.
    pub(crate) keep_alive: Duration,
    /// Origins allowed to open a WebSocket; `None`: any.
    pub(crate) allowed_origins: Option<Vec<String>>,
    /// The check every upgrade passes; `None`: anyone may connect.
    pub(crate) authorize: Option<Authorizer>,
}

/// What one TCP connection's HTTP side holds: its connection permit (until an upgrade moves
/// it into the WebSocket connection), and the keep-alive deadline.
pub(crate) struct ConnState {
    permit: Mutex<Option<OwnedSemaphorePermit>>,
    /// `None` while a request is being answered; then when the connection is closed unless
    /// another request has arrived.
    deadline: watch::Sender<Option<Instant>>,
}

impl ConnState {
    pub(crate) fn new(permit: OwnedSemaphorePermit) -> Self {
        ConnState {
            permit: Mutex::new(Some(permit)),
            deadline: watch::Sender::new(None),
        }
    }

    fn take_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.permit.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Resolves once the keep-alive deadline has passed with no request being answered.
    /// hyper's own header-read timeout also runs then; this one also covers a response that
    /// the client does not read (hyper has no write timeout).
    pub(crate) async fn idle_too_long(&self) {
        let mut deadline = self.deadline.subscribe();
        loop {
            let at = *deadline.borrow_and_update();
            match at {
                Some(at) => tokio::select! {
                    () = tokio::time::sleep_until(at) => return,
                    _ = deadline.changed() => {}
                },
                // The sender lives in `self`, so this only waits for the next change.
                None => {
                    let _ = deadline.changed().await;
                }
            }
        }
    }
}

/// Answers one request: [`route`], then the headers every response carries, then the
/// keep-alive deadline starts.
pub(crate) async fn serve(
    req: Request<Incoming>,
    addr: SocketAddr,
    ctx: Arc<Context>,
    conn: Arc<ConnState>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    conn.deadline.send_replace(None);
    let private = matches!(req.uri().path(), "/metrics" | "/sessions" | "/monitor");
    let mut res = route(req, addr, &ctx, &conn).await;
    let upgrading = res.status() == StatusCode::SWITCHING_PROTOCOLS;
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !upgrading {
        // No page of this server may be framed by another (clickjacking): the old header for
        // old browsers, the CSP one for the rest. The demo loads its scripts and opens its
        // WebSocket on its own origin, which neither restricts.
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
    }
    if private {
        // Live data and the admin page (whose URL may hold the token): never stored by a
        // browser or a cache, never sent on as a Referer.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    conn.deadline
        .send_replace(Some(Instant::now() + ctx.keep_alive));
    Ok(res)
}

/// The answer to a connection accepted when every connection permit is taken: a fixed 503,
/// written without reading the request. The socket is then half-closed and drained for at
/// most a second (so the client reads the 503 rather than a reset), by at most
/// `ctx.refusing`'s permits at once; beyond those it is closed at once.
pub(crate) fn refuse(mut stream: TcpStream, ctx: &Context) {
    const BODY: &str = "The server holds its maximum of connections; try again later.\n";
    ctx.shared.metrics.connection_refused();
    let Ok(permit) = ctx.refusing.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let busy = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
             x-content-type-options: nosniff\r\ncache-control: no-store\r\n\
             connection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
            BODY.len()
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            stream.write_all(busy.as_bytes()).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            let mut left = 64 * 1024usize;
            while left > 0 {
                let n = stream.read(&mut sink).await?;
                if n == 0 {
                    break;
                }
                left = left.saturating_sub(n);
            }
            Ok::<(), std::io::Error>(())
        })
        .await;
    });
}

async fn route(
    req: Request<Incoming>,
    addr: SocketAddr,
    ctx: &Arc<Context>,
    conn: &ConnState,
) -> Response<Full<Bytes>> {
    if is_upgrade(&req) {
        return upgrade(req, addr, ctx, conn);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "Only GET is served here.\n");
    }
    let response = match req.uri().path() {
        "/" | "/index.html" => asset("text/html; charset=utf-8", assets::INDEX_HTML),
        "/demo.js" => asset("text/javascript; charset=utf-8", assets::DEMO_JS),
        "/sessionserver.js" => asset("text/javascript; charset=utf-8", assets::CLIENT_JS),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/metrics" => {
            let mut body = ctx
                .shared
                .metrics
                .render(ctx.occupancy.count(), ctx.shared.registry.session_count());
            ctx.shared.budget.render(&mut body);
            let mut res = Response::new(Full::new(Bytes::from(body)));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            res
        }
        "/sessions" | "/monitor" if !ctx.admin.allows(&req, addr) => ctx.admin.refusal(),
        "/sessions" => sessions_json(ctx).await,
        "/monitor" => asset("text/html; charset=utf-8", assets::MONITOR_HTML),
        _ => text(
            StatusCode::NOT_FOUND,
            "Not found. WebSocket clients connect on any path (ws://host:port/).\n",
        ),
    };
    response
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

/// Whether an upgrade's `Origin` (if it sends one) is allowed by `--allowed-origins`.
fn origin_allowed(req: &Request<Incoming>, allowed: Option<&[String]>) -> bool {
    let Some(allowed) = allowed else {
        return true;
    };
    req.headers().get_all(header::ORIGIN).iter().all(|origin| {
        origin.to_str().is_ok_and(|origin| {
            let origin = origin.trim().trim_end_matches('/');
            allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
        })
    })
}

fn upgrade(
    mut req: Request<Incoming>,
    addr: SocketAddr,
    ctx: &Arc<Context>,
    conn: &ConnState,
) -> Response<Full<Bytes>> {
    let version_ok = req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    if !version_ok {
        // RFC 6455 §4.4: name the version this server speaks.
        let mut res = text(
            StatusCode::UPGRADE_REQUIRED,
            "This server speaks WebSocket version 13 only (Sec-WebSocket-Version: 13).\n",
        );
        res.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return res;
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return text(
            StatusCode::BAD_REQUEST,
            "A WebSocket upgrade needs Sec-WebSocket-Key.\n",
        );
    };
    if !origin_allowed(&req, ctx.allowed_origins.as_deref()) {
        return text(
            StatusCode::FORBIDDEN,
            "Pages of this origin may not open a WebSocket here (see --allowed-origins).\n",
        );
    }
    // Who the connection is, when an auth check is set; refused here, before the upgrade.
    let subject = match &ctx.authorize {
        None => None,
        Some(authorize) => {
            match authorize.check(&UpgradeRequest::new(req.uri(), req.headers(), addr)) {
                Ok(subject) => subject,
                Err(rejection) => {
                    ctx.shared.metrics.upgrade_unauthorized();
                    tracing::debug!(
                        %addr,
                        status = rejection.status(),
                        reason = rejection.message(),
                        "upgrade refused by the auth check"
                    );
                    return rejection.response();
                }
            }
        }
    };
    if ctx.shared.budget.near() {
        // The memory budget is nearly spent: no new connection until it is not.
        ctx.shared.budget.refused();
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is at its memory budget; try again later.\n",
        );
    }
    // The permit this connection took when it was accepted now stays with the WebSocket.
    // (Only one upgrade can happen on a connection, so it is always there.)
    let Some(permit) = conn
        .take_permit()
        .or_else(|| ctx.connections.clone().try_acquire_owned().ok())
    else {
        ctx.shared.metrics.connection_refused();
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server holds its maximum of connections; try again later.\n",
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    // permessage-deflate (RFC 7692), when enabled and offered in a form the server accepts.
    let agreement = ctx
        .deflate
        .then(|| {
            let offers = req.headers().get_all(header::SEC_WEBSOCKET_EXTENSIONS);
            deflate::negotiate(offers.iter().map(HeaderValue::as_bytes))
        })
        .flatten();
    let deflate = agreement.as_ref().map_or(Deflate::OFF, Agreement::deflate);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let ctx = ctx.clone();
    tokio::spawn(async move {
        // Held for as long as the connection lasts (they count it), then dropped.
        let counted = Counted::new(permit, ctx.occupancy.enter(), ctx.alive.clone());
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
                let budget = ctx.shared.budget.clone();
                let outbox =
                    Outbox::with_deflate(write, ctx.shared.send_queue_bytes, budget, deflate);
                let reader = FrameReader::new(read, already_read, ctx.max_message_size)
                    .with_deflate(deflate.is_on());
                // A task of its own: this one's state (hyper's upgrade, the context) is then
                // freed, and an open connection's task holds only the connection.
                let shared = ctx.shared.clone();
                if let Some(task) = connection::run(reader, outbox, addr, shared, counted, subject)
                {
                    tokio::spawn(task);
                }
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
    if let Some(agreement) = agreement {
        if let Ok(value) = HeaderValue::from_str(&agreement.response()) {
            headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, value);
        }
    }
    res
}
