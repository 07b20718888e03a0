//! `attack <kind>`: one hostile client pattern against an already running server, with the
//! server watched throughout (VmRSS every 50 ms, the memory gauges of `/metrics`), so that
//! RELIABILITY.md can give, for each attack, what the server held and what the attacker saw.
//!
//! Every attack prints one `RESULT scenario=attack kind=…` line: the server's RSS before (idle),
//! the peaks of each phase (`setup_…` where the attack needs a session built first,
//! `attack_…` while it goes on), the RSS and gauges after the attacker has gone, and what the
//! attacker observed (close codes, whether the stream ended cleanly, times to close).

mod frames;
mod http;
mod probe;
mod raw;
mod sessions;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::common::ResultLine;

use probe::{mib, Probe};
use raw::{Ending, RawWs};

#[derive(clap::Args, Debug, Clone)]
pub struct AttackArgs {
    /// The attack to run.
    #[arg(value_enum)]
    pub kind: Kind,
    /// PID of the server, whose /proc/PID/status is sampled.
    #[arg(long)]
    pub server_pid: u32,
    /// The server's address (WebSocket and `/metrics`).
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub addr: String,
    /// Connections of the attack where it has many (fragments: 1,000; the non-reading
    /// joiners of join-amplification and big-join: 30).
    #[arg(long)]
    pub connections: Option<usize>,
    /// How long the attack goes on, in seconds (each kind has its own default).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Seconds to wait after the attacker has gone before the "after" figures.
    #[arg(long, default_value_t = 3.0)]
    pub settle: f64,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum Kind {
    /// One connection sends 125-byte pings as fast as it can and never reads.
    Pings,
    /// Joiners that never read, of a session whose members have 64 KB of data each.
    JoinAmplification,
    /// TCP connections that never finish (or never send) a request, and idle keep-alives.
    PreUpgrade,
    /// Many connections each holding an unfinished fragmented message of 60 KiB.
    Fragments,
    /// A 2 MiB text frame in one write.
    BigMessage,
    /// 20,000 commands in one write.
    Flood,
    /// Server CPU per command: 65 KB of deeply nested JSON against 65 KB of flat JSON.
    Nested,
    /// A member of 300 broadcasting 60 KB sessionData over and over.
    Egress,
    /// Joiners (one reading, the others not) of 1,200 members with 60 KB each.
    BigJoin,
}

/// What every attack gets: where the server is, its probe, its options.
pub struct Ctx {
    pub addr: String,
    pub probe: Probe,
    pub args: AttackArgs,
    seeds: AtomicU64,
}

impl Ctx {
    pub async fn connect(&self) -> Result<RawWs, String> {
        let seed = self.seeds.fetch_add(1, Relaxed);
        RawWs::connect(&self.addr, seed)
            .await
            .map_err(|e| format!("connect to {}: {e}", self.addr))
    }

    pub fn seconds(&self, default: f64) -> Duration {
        Duration::from_secs_f64(self.args.seconds.unwrap_or(default))
    }

    pub fn connections(&self, default: usize) -> usize {
        self.args.connections.unwrap_or(default)
    }
}

pub async fn run(args: AttackArgs) -> Result<(), String> {
    let probe = Probe::start(args.server_pid, args.addr.clone());
    let ctx = Arc::new(Ctx {
        addr: args.addr.clone(),
        probe,
        args: args.clone(),
        seeds: AtomicU64::new(0x5eed),
    });
    // A few samples of the idle server first: the "before".
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = ctx.probe.phase();
    let kind = clap::ValueEnum::to_possible_value(&args.kind)
        .map_or_else(String::new, |v| v.get_name().to_string());
    let mut line = ResultLine::new("attack", "native");
    line.put("kind", &kind)
        .num("rss_before_mib", mib(idle.rss_last_kib), 1)
        .put("budget", idle.last_gauges.budget);
    match args.kind {
        Kind::Pings => frames::pings(&ctx, &mut line).await?,
        Kind::BigMessage => frames::big_message(&ctx, &mut line).await?,
        Kind::Flood => frames::flood(&ctx, &mut line).await?,
        Kind::Fragments => frames::fragments(&ctx, &mut line).await?,
        Kind::Nested => frames::nested(&ctx, &mut line).await?,
        Kind::PreUpgrade => http::pre_upgrade(&ctx, &mut line).await?,
        Kind::JoinAmplification => sessions::join_amplification(&ctx, &mut line).await?,
        Kind::Egress => sessions::egress(&ctx, &mut line).await?,
        Kind::BigJoin => sessions::big_join(&ctx, &mut line).await?,
    }
    // Each attack has dropped its connections on return.
    ctx.probe.phase();
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let after = ctx.probe.phase();
    line.num("rss_after_mib", mib(after.rss_last_kib), 1)
        .put("outbox_after", after.last_gauges.outbox)
        .put("inbound_after", after.last_gauges.inbound)
        .put("session_after", after.last_gauges.session);
    line.print();
    Ok(())
}

/// `1008:997,none:3`: how many connections ended with each close code (`none`: no close frame,
/// `open`: not ended).
pub fn code_counts<'a>(endings: impl IntoIterator<Item = Option<&'a Ending>>) -> String {
    let mut counts = BTreeMap::<String, usize>::new();
    for ending in endings {
        let key = match ending {
            None => "open".to_string(),
            Some(Ending {
                code: Some(code), ..
            }) => code.to_string(),
            Some(Ending { error: Some(_), .. }) => "error".to_string(),
            Some(_) => "none".to_string(),
        };
        *counts.entry(key).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{k}:{n}")).collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(",")
    }
}

/// Min / median / max of some durations, in seconds, as `a/b/c` (`-` without any).
pub fn spread(mut times: Vec<Duration>) -> String {
    if times.is_empty() {
        return "-".into();
    }
    times.sort_unstable();
    let s = |d: Duration| format!("{:.2}", d.as_secs_f64());
    format!(
        "{}/{}/{}",
        s(times[0]),
        s(times[times.len() / 2]),
        s(times[times.len() - 1])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_codes_and_spreads_times() {
        let closed = Ending {
            code: Some(1008),
            ..Ending::default()
        };
        let dropped = Ending::default();
        let failed = Ending {
            error: Some("reset".into()),
            ..Ending::default()
        };
        assert_eq!(
            code_counts([
                Some(&closed),
                Some(&closed),
                None,
                Some(&dropped),
                Some(&failed)
            ]),
            "1008:2,error:1,none:1,open:1"
        );
        assert_eq!(code_counts([]), "-");
        let ms = Duration::from_millis;
        assert_eq!(spread(vec![ms(3000), ms(1000), ms(2000)]), "1.00/2.00/3.00");
        assert_eq!(spread(vec![]), "-");
    }
}
