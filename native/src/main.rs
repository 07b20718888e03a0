//! `sessionserver`: the session server, listening on port 7000 by default.

use std::net::IpAddr;
use std::time::Duration;

use clap::Parser;
use sessionserver::Config;
use tracing_subscriber::EnvFilter;

/// A session server for multiplayer games, speaking the npm `sessionserver` protocol over
/// WebSocket (JSON text frames). See PROTOCOL.md.
#[derive(Parser, Debug)]
#[command(name = "sessionserver", version)]
struct Args {
    /// TCP port to listen on.
    #[arg(long, env = "PORT", default_value_t = 7000)]
    port: u16,
    /// Address to listen on; 127.0.0.1 keeps the server private to this machine.
    #[arg(long, env = "BIND", default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Frames that may wait for one client; a client that falls this far behind is
    /// disconnected (close code 1008).
    #[arg(long, env = "SEND_QUEUE", default_value_t = 1024)]
    send_queue: usize,
    /// Largest message a client may send, in bytes; larger ones close the connection (1009).
    #[arg(long, env = "MAX_MESSAGE_SIZE", default_value_t = 64 * 1024)]
    max_message_size: usize,
    /// Seconds shutdown waits for connections to close.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value_t = 5)]
    shutdown_grace: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // Logs go to stderr; RUST_LOG sets the level (info by default).
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = Config {
        bind: args.bind,
        port: args.port,
        send_queue: args.send_queue,
        max_message_size: args.max_message_size,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
    };
    let server = sessionserver::start(config).await?;
    println!(
        "[SessionServer] Listening on port {}",
        server.local_addr().port()
    );
    wait_for_signal().await;
    tracing::info!("signal received");
    server.shutdown().await;
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
