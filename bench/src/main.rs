//! `sessionserver-bench`: a load generator for the session server, over real sockets.
//!
//! Scenarios (one subcommand each), each printing one `RESULT key=value ...` line:
//! - `fanout`: M sessions × K players sending `updatePlayer` on a fixed schedule; loss,
//!   per-sender order, latency percentiles, deliveries/s, server CPU per delivery;
//! - `idle`: N players held open; the server's memory per player;
//! - `churn`: connect → createSession → leaveSession → close cycles per second;
//! - `floor`: the CPU cost of one small write to a loopback TCP socket (no server involved);
//! - `bare-server`: not a scenario but a reference server for `fanout`, the bare
//!   single-threaded tokio-tungstenite fan-out the performance targets were set against;
//! - `relay-server`: the other reference, the least an event-driven fan-out server does per
//!   update (one epoll thread, one `recv` per update, one `send` per delivery);
//! - `tokio-relay-server`: the relay's work on a tokio current-thread runtime (a task per
//!   connection, `try_write` per member): what tokio itself adds per update;
//! - `soak`: sessions whose members drop and resume at random for minutes; every update must
//!   reach every member once and in order, and the server must end where it started;
//! - `attack`: one hostile client pattern (pings never read, joiners that never read, open
//!   fragments, floods, …) with the server's RSS and memory gauges watched throughout.
//!
//! Every run also prints the generator's own CPU use, so a reader can tell when the generator,
//! not the server, was the limit. `scripts/bench.sh` runs them all against the native server
//! and the original npm package and prints the comparison; see BENCHMARKS.md.

mod attack;
mod bare_server;
mod churn;
mod common;
mod epoll;
mod fanout;
mod floor;
mod idle;
mod reference;
mod relay_server;
mod snapshot;
mod soak;
mod tokio_relay;
mod ws;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "sessionserver-bench", version, about)]
struct Cli {
    /// Worker threads of the generator (default: one per CPU): the epoll threads of `fanout`
    /// and `churn`, the tokio runtime's workers for `idle`.
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// M sessions × K players, each sending updatePlayer R times a second (open loop).
    Fanout(fanout::FanoutArgs),
    /// N connected idle players: the server's memory per player.
    Idle(idle::IdleArgs),
    /// connect → createSession → leaveSession → close cycles per second.
    Churn(churn::ChurnArgs),
    /// CPU per write to a loopback TCP socket: the floor for a delivery.
    Floor(floor::FloorArgs),
    /// A bare single-threaded tokio-tungstenite fan-out server (the reference point).
    BareServer(bare_server::BareServerArgs),
    /// The least an event-driven fan-out server can do per update (the second reference).
    RelayServer(relay_server::RelayServerArgs),
    /// The relay's work on tokio (a third reference: what the runtime adds).
    TokioRelayServer(tokio_relay::TokioRelayArgs),
    /// One attack against a running server, watching its memory (RSS, budget gauges).
    Attack(attack::AttackArgs),
    /// Members dropping and resuming at random: nothing lost, nothing left over.
    Soak(soak::SoakArgs),
    /// Bytes on the wire of a join snapshot, with and without permessage-deflate.
    Snapshot(snapshot::SnapshotArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.scenario {
        Scenario::Floor(args) => floor::run(args),
        Scenario::BareServer(args) => bare_server::run(args),
        Scenario::RelayServer(args) => relay_server::run(args),
        Scenario::TokioRelayServer(args) => tokio_relay::run(args),
        // Their own threads, each an epoll loop over a share of the clients: no async runtime.
        Scenario::Fanout(args) => fanout::run(args, epoll_threads(cli.threads)),
        Scenario::Churn(args) => churn::run(args, epoll_threads(cli.threads)),
        Scenario::Snapshot(args) => snapshot::run(args),
        scenario => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.enable_all();
            if let Some(threads) = cli.threads {
                builder.worker_threads(threads.max(1));
            }
            let runtime = builder.build().expect("a tokio runtime");
            runtime.block_on(async move {
                match scenario {
                    Scenario::Idle(args) => idle::run(args).await,
                    Scenario::Attack(args) => attack::run(args).await,
                    Scenario::Soak(args) => soak::run(args).await,
                    Scenario::Floor(_)
                    | Scenario::Fanout(_)
                    | Scenario::Churn(_)
                    | Scenario::Snapshot(_)
                    | Scenario::BareServer(_)
                    | Scenario::TokioRelayServer(_)
                    | Scenario::RelayServer(_) => {
                        unreachable!("run above, outside tokio")
                    }
                }
            })
        }
    };
    if let Err(e) = result {
        eprintln!("sessionserver-bench: {e}");
        std::process::exit(1);
    }
}

/// `--threads`, or one per CPU.
fn epoll_threads(threads: Option<usize>) -> usize {
    threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}
