//! Watching the server during an attack: its VmRSS from /proc/PID/status (a thread of its own,
//! so a busy runtime does not skip samples) and the memory gauges of `/metrics`, every
//! `SAMPLE_EVERY`; the peaks are kept per phase of the attack.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{self, ResultLine};

use super::raw;

pub const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// The budget's gauges of one `/metrics` text, in bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Gauges {
    pub outbox: u64,
    pub inbound: u64,
    pub session: u64,
    pub budget: u64,
}

impl Gauges {
    /// The gauges in a `/metrics` text; a missing line counts 0.
    pub fn parse(metrics: &str) -> Gauges {
        let sample = |name: &str| {
            metrics
                .lines()
                .find_map(|line| {
                    line.strip_prefix(name)?
                        .strip_prefix(' ')?
                        .trim()
                        .parse()
                        .ok()
                })
                .unwrap_or(0)
        };
        Gauges {
            outbox: sample("sessionserver_memory_held_bytes{kind=\"outbox\"}"),
            inbound: sample("sessionserver_memory_held_bytes{kind=\"inbound\"}"),
            session: sample("sessionserver_memory_held_bytes{kind=\"session\"}"),
            budget: sample("sessionserver_memory_budget_bytes"),
        }
    }

    fn max(self, other: Gauges) -> Gauges {
        Gauges {
            outbox: self.outbox.max(other.outbox),
            inbound: self.inbound.max(other.inbound),
            session: self.session.max(other.session),
            budget: self.budget.max(other.budget),
        }
    }

    fn held(self) -> u64 {
        self.outbox + self.inbound + self.session
    }
}

/// What was seen in one phase.
#[derive(Debug, Default, Clone, Copy)]
pub struct Peaks {
    pub rss_peak_kib: u64,
    /// The latest RSS sample (the phase's end).
    pub rss_last_kib: u64,
    /// The peak of each gauge (not necessarily at the same moment), and of their sum.
    pub gauges: Gauges,
    pub held_peak: u64,
    pub last_gauges: Gauges,
    pub rss_samples: u32,
    pub metrics_samples: u32,
    pub metrics_failures: u32,
}

impl Peaks {
    fn add_rss(&mut self, kib: u64) {
        self.rss_peak_kib = self.rss_peak_kib.max(kib);
        self.rss_last_kib = kib;
        self.rss_samples += 1;
    }

    fn add_gauges(&mut self, gauges: Gauges) {
        self.gauges = self.gauges.max(gauges);
        self.held_peak = self.held_peak.max(gauges.held());
        self.last_gauges = gauges;
        self.metrics_samples += 1;
    }

    /// `<phase>_rss_peak_mib=… <phase>_outbox_peak=…` (gauges in bytes).
    pub fn put(&self, line: &mut ResultLine, phase: &str) {
        line.num(&format!("{phase}_rss_peak_mib"), mib(self.rss_peak_kib), 1)
            .num(&format!("{phase}_rss_end_mib"), mib(self.rss_last_kib), 1)
            .put(&format!("{phase}_outbox_peak"), self.gauges.outbox)
            .put(&format!("{phase}_inbound_peak"), self.gauges.inbound)
            .put(&format!("{phase}_session_peak"), self.gauges.session)
            .put(&format!("{phase}_held_peak"), self.held_peak)
            .put(&format!("{phase}_samples"), self.rss_samples)
            .put(&format!("{phase}_metrics_samples"), self.metrics_samples);
        if self.metrics_failures > 0 {
            line.put(&format!("{phase}_metrics_failures"), self.metrics_failures);
        }
    }
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub struct Probe {
    current: Arc<Mutex<Peaks>>,
    stop: Arc<AtomicBool>,
}

impl Probe {
    /// Starts sampling the server `pid`, whose `/metrics` is at `addr`.
    pub fn start(pid: u32, addr: String) -> Probe {
        let current = Arc::new(Mutex::new(Peaks::default()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (current, stop) = (current.clone(), stop.clone());
            let pid = pid.to_string();
            std::thread::spawn(move || {
                while !stop.load(Relaxed) {
                    if let Some(kib) = common::status_kib(&pid, "VmRSS") {
                        current.lock().unwrap().add_rss(kib);
                    }
                    std::thread::sleep(SAMPLE_EVERY);
                }
            });
        }
        {
            let (current, stop) = (current.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    // A fetch that takes long (a loaded server) is a sample late, not lost.
                    match tokio::time::timeout(
                        Duration::from_secs(5),
                        raw::http_get(&addr, "/metrics"),
                    )
                    .await
                    {
                        Ok(Ok(text)) => current.lock().unwrap().add_gauges(Gauges::parse(&text)),
                        _ => current.lock().unwrap().metrics_failures += 1,
                    }
                    tokio::time::sleep(SAMPLE_EVERY).await;
                }
            });
        }
        Probe { current, stop }
    }

    /// The peaks since the last call (or the start), and a fresh phase from now.
    pub fn phase(&self) -> Peaks {
        std::mem::take(&mut *self.current.lock().unwrap())
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_budget_gauges() {
        let metrics = "# HELP sessionserver_memory_budget_bytes The memory budget.\n\
             # TYPE sessionserver_memory_budget_bytes gauge\n\
             sessionserver_memory_budget_bytes 6442450944\n\
             sessionserver_memory_held_bytes{kind=\"outbox\"} 4194304\n\
             sessionserver_memory_held_bytes{kind=\"inbound\"} 61440\n\
             sessionserver_memory_held_bytes{kind=\"session\"} 0\n\
             sessionserver_memory_shed_total 3\n";
        assert_eq!(
            Gauges::parse(metrics),
            Gauges {
                outbox: 4_194_304,
                inbound: 61_440,
                session: 0,
                budget: 6_442_450_944
            }
        );
        assert_eq!(Gauges::parse("HTTP/1.1 503\r\n\r\n"), Gauges::default());
    }

    #[test]
    fn peaks_are_per_gauge_and_of_the_sum() {
        let mut peaks = Peaks::default();
        peaks.add_gauges(Gauges {
            outbox: 10,
            inbound: 1,
            ..Gauges::default()
        });
        peaks.add_gauges(Gauges {
            outbox: 2,
            inbound: 5,
            ..Gauges::default()
        });
        peaks.add_rss(100);
        peaks.add_rss(90);
        assert_eq!((peaks.gauges.outbox, peaks.gauges.inbound), (10, 5));
        assert_eq!(peaks.held_peak, 11);
        assert_eq!(peaks.last_gauges.outbox, 2);
        assert_eq!((peaks.rss_peak_kib, peaks.rss_last_kib), (100, 90));
    }
}
