//! Starting, running and stopping a server.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::connection::Shared;
use crate::http::{self, Context};
use crate::registry::Registry;

/// A server accepting connections, until [`RunningServer::shutdown`].
pub struct RunningServer {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    registry: Registry,
    occupancy: crate::memory::Occupancy,
}

impl RunningServer {
    /// The address it listens on (with the real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How many sessions exist right now.
    pub fn session_count(&self) -> usize {
        self.registry.session_count()
    }

    /// How many WebSocket connections are open right now (their tasks still running).
    pub fn connection_count(&self) -> usize {
        self.occupancy.count()
    }

    /// Stops accepting, closes every WebSocket with code 1001 (going away), and returns once
    /// all connections have ended or the configured grace period has passed.
    pub async fn shutdown(mut self) {
        self.shared.stopping.stop();
        let _ = (&mut self.task).await;
    }
}

impl Drop for RunningServer {
    /// A server whose handle is dropped stops too (without waiting for its connections).
    fn drop(&mut self) {
        self.shared.stopping.stop();
    }
}

/// Connections answered 503 at once (see `http::refuse`); beyond these they are just closed.
const REFUSING_AT_ONCE: usize = 64;

/// Binds the listening socket and starts serving on the current tokio runtime.
///
/// It first raises the process's soft limit of open files to its hard limit (each connection
/// is a file descriptor), and logs a warning when `max_connections` cannot fit in it.
pub async fn start(config: Config) -> io::Result<RunningServer> {
    let max_connections = config.max_connections.clamp(1, Config::MAX_CONNECTIONS);
    raise_fd_limit(max_connections);
    let limits = sessionserver_core::Limits {
        max_depth: config.limits.max_depth.min(Config::MAX_DEPTH),
        ..config.limits
    };
    let listener = TcpListener::bind((config.bind, config.port)).await?;
    let local_addr = listener.local_addr()?;
    let registry = Registry::default();
    let (alive, all_done) = mpsc::channel(1);
    let occupancy = crate::memory::Occupancy::default();
    let shared = Arc::new(Shared {
        registry: registry.clone(),
        send_queue_bytes: config.send_queue_bytes.max(1),
        budget: crate::budget::Budget::new(
            config
                .memory_budget
                .unwrap_or_else(crate::budget::default_memory_budget),
        ),
        fragment_timeout: config.fragment_timeout,
        player_limits: Arc::new(limits),
        limits,
        // The native host carries out resume whenever a grace period is set.
        connection: sessionserver_core::ConnectionConfig {
            features: {
                use sessionserver_core::Features;
                let always = Features::HOST.union(Features::MESSAGES);
                if limits.resume_grace_ms > 0 {
                    Features::RESUME.union(always)
                } else {
                    always
                }
            },
            ..config.connection
        },
        epoch: std::time::Instant::now(),
        metrics: Default::default(),
        stopping: Default::default(),
    });
    let ctx = Arc::new(Context {
        shared: shared.clone(),
        connections: Arc::new(Semaphore::new(max_connections)),
        refusing: Arc::new(Semaphore::new(REFUSING_AT_ONCE)),
        occupancy: occupancy.clone(),
        admin: crate::admin::Admin::new(config.admin_token.clone(), config.bind),
        header_timeout: config.header_timeout,
        keep_alive: config.keep_alive.max(Duration::from_millis(1)),
        allowed_origins: config.allowed_origins.clone(),
        authorize: config.authorize.clone(),
        max_message_size: config.max_message_size,
        deflate: config.deflate,
        alive,
    });
    let task = tokio::spawn(accept_loop(listener, ctx, all_done, config.shutdown_grace));
    Ok(RunningServer {
        local_addr,
        shared,
        task,
        registry,
        occupancy,
    })
}

async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<Context>,
    mut all_done: mpsc::Receiver<()>,
    grace: Duration,
) {
    let mut backoff = Duration::from_millis(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    backoff = Duration::from_millis(1);
                    // Every connection takes its permit here, before its first byte: those
                    // still before (or without) an upgrade count against the cap too.
                    match ctx.connections.clone().try_acquire_owned() {
                        Ok(permit) => {
                            tokio::spawn(serve_http(stream, addr, ctx.clone(), permit));
                        }
                        Err(_) => http::refuse(stream, &ctx),
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            },
            () = ctx.shared.stopping.wait() => break,
        }
    }
    drop(listener);
    // Every connection heard the same signal, and closes.
    tracing::info!("shutting down: closing every connection");
    drop(ctx);
    // Every connection task holds a clone of the sender; recv() yields None once all are gone.
    if tokio::time::timeout(grace, all_done.recv()).await.is_err() {
        tracing::warn!(?grace, "some connections did not close in time");
    }
}

async fn serve_http(
    stream: TcpStream,
    addr: SocketAddr,
    ctx: Arc<Context>,
    permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let alive = ctx.alive.clone();
    let state = Arc::new(http::ConnState::new(permit));
    let service_ctx = ctx.clone();
    let service_state = state.clone();
    let service =
        service_fn(move |req| http::serve(req, addr, service_ctx.clone(), service_state.clone()));
    // The timer makes hyper's header-read timeout work: it runs from the connection's start
    // and again from each response until the next request head is complete.
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(ctx.header_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::select! {
        result = conn => {
            if let Err(e) = result {
                tracing::debug!(%addr, error = %e, "http connection failed");
            }
        }
        () = state.idle_too_long() => {
            tracing::debug!(%addr, "http connection closed: keep-alive timeout");
        }
        () = ctx.shared.stopping.wait() => {}
    }
    drop(alive);
}

/// Raises the soft limit of open files to the hard limit, and warns when `max_connections`
/// (plus a margin for the listener, the runtime and 503 answers) cannot fit in it: accepts
/// would then fail (and be retried) before the cap is reached.
fn raise_fd_limit(max_connections: usize) {
    // The listener, stdio, the runtime's own descriptors, and connections being refused.
    const MARGIN: u64 = 64 + REFUSING_AT_ONCE as u64;
    let soft = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the limit of open files");
            return;
        }
    };
    let needed = (max_connections as u64).saturating_add(MARGIN);
    if soft < needed {
        tracing::warn!(
            max_connections,
            open_files_limit = soft,
            "--max-connections does not fit in the limit of open files: accepts will fail at \
             about {} connections; raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower \
             --max-connections",
            soft.saturating_sub(MARGIN)
        );
    }
}
