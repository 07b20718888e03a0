//! `sessionserver`: the session server, listening on port 7000 by default.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use sessionserver::{Authorizer, Config};
use sessionserver_core::{ConnectionConfig, Limits};
use tracing_subscriber::EnvFilter;

/// A session server for multiplayer games, speaking the npm `sessionserver` protocol over
/// WebSocket (JSON text frames). See PROTOCOL.md.
///
/// Every option can also be set by the environment variable shown, or in a TOML file given
/// with --config (keys are the option names: `max_sessions = 100`). A flag beats the
/// environment, which beats the file.
#[derive(Parser, Debug)]
#[command(name = "sessionserver", version)]
struct Args {
    /// A TOML file of options.
    #[arg(long, env = "SESSIONSERVER_CONFIG")]
    config: Option<PathBuf>,
    /// TCP port to listen on.
    #[arg(long, env = "PORT", default_value_t = 7000)]
    port: u16,
    /// Address to listen on; 127.0.0.1 keeps the server private to this machine.
    #[arg(long, env = "BIND", default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Open connections held at once, counted from their accept: WebSocket ones and plain HTTP
    /// ones (before an upgrade too). More are answered HTTP 503 and closed.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 100_000,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=Config::MAX_CONNECTIONS as u64))]
    max_connections: usize,
    /// Bytes that may wait for one client (frames, pongs and pings, each counted with 64 bytes
    /// of bookkeeping); a client that falls this far behind is disconnected (close code 4001).
    #[arg(long, env = "SEND_QUEUE_BYTES", default_value_t = 4 << 20,
          value_parser = RangedU64ValueParser::<usize>::new().range(1024..))]
    send_queue_bytes: usize,
    /// Memory budget of the whole server in bytes: queued outgoing frames, partial incoming
    /// messages and session data. At 90% of it upgrades get HTTP 503 and the connections with
    /// the largest backlogs are closed (4002). Default: a quarter of RAM (or of the cgroup's
    /// memory limit).
    #[arg(long, env = "MEMORY_BUDGET",
          value_parser = RangedU64ValueParser::<usize>::new().range(1024..))]
    memory_budget: Option<usize>,
    /// Milliseconds a client has to finish a fragmented message it began; then it is closed
    /// (1008).
    #[arg(long, env = "FRAGMENT_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    fragment_timeout_ms: u64,
    /// Largest message a client may send, in bytes; larger ones close the connection (1009).
    #[arg(long, env = "MAX_MESSAGE_SIZE", default_value_t = 64 * 1024)]
    max_message_size: usize,
    /// permessage-deflate (RFC 7692) for clients that offer it: `on` compresses messages of
    /// 128 bytes or more to them and inflates theirs (no context takeover), `off` declines.
    #[arg(long, env = "DEFLATE", default_value = "on", value_parser = ["on", "off"])]
    deflate: String,
    /// Deepest nesting of objects and arrays in a frame (error 15 beyond); at most 512.
    #[arg(long, env = "MAX_DEPTH", default_value_t = Limits::default().max_depth,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=Config::MAX_DEPTH as u64))]
    max_depth: usize,
    /// Players one session may hold (error 16 beyond).
    #[arg(long, env = "MAX_PLAYERS_PER_SESSION", default_value_t = Limits::default().max_players_per_session)]
    max_players_per_session: usize,
    /// Bytes of JSON one session may hold in all (error 19 beyond).
    #[arg(long, env = "MAX_SESSION_DATA_BYTES", default_value_t = Limits::default().max_session_data_bytes)]
    max_session_data_bytes: usize,
    /// Bytes per second one member may broadcast, counted as frame bytes × recipients (error 20 beyond)
    #[arg(long, env = "EGRESS_BYTES_PER_SECOND", default_value_t = Limits::default().egress_bytes_per_second, value_parser = clap::value_parser!(u64).range(1..))]
    egress_bytes_per_second: u64,
    /// Bytes × recipients one member may broadcast at once above the sustained rate
    #[arg(long, env = "EGRESS_BURST_BYTES", default_value_t = Limits::default().egress_burst_bytes, value_parser = clap::value_parser!(u64).range(1..))]
    egress_burst_bytes: u64,
    /// Milliseconds a player that asked for `resume` keeps its seat after its connection is
    /// lost without a leave (0: no grace, and resume is not offered).
    #[arg(long, env = "RESUME_GRACE_MS", default_value_t = Limits::default().resume_grace_ms)]
    resume_grace_ms: u64,
    /// Bytes of its latest events a session keeps for resumes (one log for all its members, only
    /// while one asked for `resume`); a resume that needs older ones gets a snapshot.
    #[arg(long, env = "RESUME_REPLAY_BYTES", default_value_t = Limits::default().resume_replay_bytes)]
    resume_replay_bytes: usize,
    /// Sessions the server may hold (error 17 beyond).
    #[arg(long, env = "MAX_SESSIONS", default_value_t = Limits::default().max_sessions)]
    max_sessions: usize,
    /// Milliseconds of silence from a client after which the server pings it.
    #[arg(long, env = "PING_AFTER_MS", default_value_t = ConnectionConfig::default().ping_after_ms)]
    ping_after_ms: u64,
    /// Milliseconds of silence after which a client is taken for dead and closed (4000).
    #[arg(long, env = "HEARTBEAT_TIMEOUT_MS", default_value_t = ConnectionConfig::default().timeout_ms)]
    heartbeat_timeout_ms: u64,
    /// Commands per second a client may send, sustained (error 18 beyond).
    #[arg(long, env = "COMMANDS_PER_SECOND", default_value_t = ConnectionConfig::default().commands_per_second)]
    commands_per_second: u32,
    /// Commands a client may send at once above the sustained rate.
    #[arg(long, env = "COMMAND_BURST", default_value_t = ConnectionConfig::default().command_burst)]
    command_burst: u32,
    /// Refused commands (regaining one per second) before a client is closed (1008).
    #[arg(long, env = "MAX_REFUSED", default_value_t = ConnectionConfig::default().max_refused)]
    max_refused: u32,
    /// Seconds shutdown waits for connections to close.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value_t = 5)]
    shutdown_grace: u64,
    /// Token that unlocks GET /sessions and /monitor (every player's data). Without one they
    /// are served only when --bind is a loopback address.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Milliseconds a client has to send a complete HTTP request head (the WebSocket handshake
    /// included), from its connection's accept or its previous response; then it is closed.
    #[arg(long, env = "HEADER_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    header_timeout_ms: u64,
    /// Milliseconds an HTTP connection may stay open after a response without the next
    /// request's head arriving (keep-alive); no longer than --header-timeout-ms in effect.
    #[arg(long, env = "KEEP_ALIVE_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    keep_alive_ms: u64,
    /// Comma-separated origins (https://game.example) whose pages may open a WebSocket; an
    /// upgrade with another Origin gets HTTP 403, one without Origin (native apps) is served.
    /// `*`: any origin.
    #[arg(long, env = "ALLOWED_ORIGINS", default_value = "*")]
    allowed_origins: String,
    /// Secret (32 bytes or more) for HS256-signed JWTs: every WebSocket upgrade must then
    /// carry one, valid now (exp, nbf; no leeway), as ?token=<JWT> or Authorization: Bearer
    /// <JWT>, else it gets HTTP 401 saying why; its `sub` names the player. Set it in the
    /// environment or the --config file: a flag shows in `ps`.
    #[arg(long, env = "AUTH_SECRET", hide_env_values = true)]
    auth_secret: Option<String>,
}

impl Args {
    /// The server's config; `Err` for an auth secret too short (checked here rather than by
    /// clap, whose errors would show the value).
    fn config(&self) -> Result<Config, String> {
        // `--auth-secret`: its bytes as given, at least 32 of them.
        let authorize = match &self.auth_secret {
            None => None,
            Some(secret) => Some(
                Authorizer::jwt_hs256(secret.as_str())
                    .map_err(|e| format!("--auth-secret: {e}"))?,
            ),
        };
        Ok(Config {
            bind: self.bind,
            port: self.port,
            max_connections: self.max_connections,
            send_queue_bytes: self.send_queue_bytes,
            memory_budget: self.memory_budget,
            fragment_timeout: Duration::from_millis(self.fragment_timeout_ms),
            max_message_size: self.max_message_size,
            deflate: self.deflate == "on",
            limits: Limits {
                max_depth: self.max_depth,
                max_players_per_session: self.max_players_per_session,
                max_session_data_bytes: self.max_session_data_bytes,
                max_sessions: self.max_sessions,
                egress_bytes_per_second: self.egress_bytes_per_second,
                egress_burst_bytes: self.egress_burst_bytes,
                resume_grace_ms: self.resume_grace_ms,
                resume_replay_bytes: self.resume_replay_bytes,
            },
            connection: ConnectionConfig {
                ping_after_ms: self.ping_after_ms,
                timeout_ms: self.heartbeat_timeout_ms,
                commands_per_second: self.commands_per_second,
                command_burst: self.command_burst,
                max_refused: self.max_refused,
                ..ConnectionConfig::default()
            },
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            admin_token: self.admin_token.clone(),
            header_timeout: Duration::from_millis(self.header_timeout_ms),
            keep_alive: Duration::from_millis(self.keep_alive_ms),
            allowed_origins: origins(&self.allowed_origins),
            authorize,
        })
    }

    /// Parses the command line, the environment and the --config file.
    fn load() -> Result<Args, String> {
        let argv: Vec<OsString> = std::env::args_os().collect();
        let matches = Args::command().get_matches_from(&argv);
        let Some(path) = matches.get_one::<PathBuf>("config") else {
            return Args::from_arg_matches(&matches).map_err(|e| e.to_string());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e| format!("{} is not valid TOML: {e}", path.display()))?;
        // File values become flags, placed where the command line and environment say nothing,
        // so clap checks and converts them like any other.
        let mut argv = argv;
        let command = Args::command();
        for (key, value) in table {
            let id = key.replace('-', "_");
            let known = command.get_arguments().any(|a| a.get_id() == id.as_str());
            if !known || id == "config" {
                return Err(format!("{}: unknown option `{key}`", path.display()));
            }
            if matches!(
                matches.value_source(&id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            ) {
                continue;
            }
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => return Err(format!("{}: `{key}` cannot be {other}", path.display())),
            };
            argv.push(format!("--{}", id.replace('_', "-")).into());
            argv.push(value.into());
        }
        Args::try_parse_from(argv).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// `--allowed-origins`: `None` for any (`*`, or a list with `*` in it), else the origins as
/// browsers send them (no trailing slash).
fn origins(list: &str) -> Option<Vec<String>> {
    let origins: Vec<String> = list
        .split(',')
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    (!origins.iter().any(|o| o == "*")).then_some(origins)
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
    let config = match Args::load().and_then(|args| args.config()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sessionserver: {e}");
            std::process::exit(2);
        }
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
