//! Starting, running and stopping a server.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::connection::Shared;
use crate::http::{self, Context};
use crate::registry::Registry;

/// A server accepting connections, until [`RunningServer::shutdown`].
pub struct RunningServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
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
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Binds the listening socket and starts serving on the current tokio runtime.
pub async fn start(config: Config) -> io::Result<RunningServer> {
    let listener = TcpListener::bind((config.bind, config.port)).await?;
    let local_addr = listener.local_addr()?;
    let registry = Registry::default();
    let (stop, shutdown) = watch::channel(false);
    let (alive, all_done) = mpsc::channel(1);
    let occupancy = crate::memory::Occupancy::default();
    let ctx = Arc::new(Context {
        shared: Arc::new(Shared {
            registry: registry.clone(),
            send_queue: config.send_queue.max(1),
            limits: config.limits,
            connection: config.connection,
            epoch: std::time::Instant::now(),
            metrics: Default::default(),
            stopping: Default::default(),
        }),
        connections: Arc::new(tokio::sync::Semaphore::new(config.max_connections)),
        occupancy: occupancy.clone(),
        admin: crate::admin::Admin::new(config.admin_token.clone(), config.bind),
        max_message_size: config.max_message_size,
        shutdown,
        alive,
    });
    let task = tokio::spawn(accept_loop(listener, ctx, all_done, config.shutdown_grace));
    Ok(RunningServer {
        local_addr,
        stop,
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
    let mut shutdown = ctx.shutdown.clone();
    let mut backoff = Duration::from_millis(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    backoff = Duration::from_millis(1);
                    tokio::spawn(serve_http(stream, addr, ctx.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            },
            () = stopped(&mut shutdown) => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: closing every connection");
    ctx.shared.stopping.stop();
    drop(ctx);
    // Every connection task holds a clone of the sender; recv() yields None once all are gone.
    if tokio::time::timeout(grace, all_done.recv()).await.is_err() {
        tracing::warn!(?grace, "some connections did not close in time");
    }
}

async fn serve_http(stream: TcpStream, addr: SocketAddr, ctx: Arc<Context>) {
    let _ = stream.set_nodelay(true);
    let alive = ctx.alive.clone();
    let mut shutdown = ctx.shutdown.clone();
    let service_ctx = ctx.clone();
    let service = service_fn(move |req| http::route(req, addr, service_ctx.clone()));
    let conn = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::select! {
        result = conn => {
            if let Err(e) = result {
                tracing::debug!(%addr, error = %e, "http connection failed");
            }
        }
        () = stopped(&mut shutdown) => {}
    }
    drop(alive);
}

/// Resolves once shutdown has begun (or the server is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
