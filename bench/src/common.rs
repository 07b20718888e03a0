//! What every scenario shares: reading a process's CPU time and memory from /proc, latency
//! percentiles, the result line, and the WebSocket client.

use std::fmt::Write as _;
use std::io;
use std::sync::LazyLock;
use std::time::Duration;

use memchr::memmem::Finder;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;

/// Clock ticks per second of /proc/<pid>/stat's utime and stime.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// User + system CPU seconds a process has used so far (all its threads, dead ones included).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the man page, utime 14, stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// A line of /proc/<pid>/status in KiB, e.g. `VmRSS`.
pub fn status_kib(pid: &str, key: &str) -> Option<u64> {
    status_field(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        key,
    )
}

/// The number of a `key:` line of a /proc/<pid>/status text (`VmRSS:\t  9876 kB` → 9876).
pub fn status_field(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// CPU nanoseconds the calling thread has spent on a CPU, kernel included.
pub fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// The measured process: the server, when `--server-pid` was given.
#[derive(Clone, Debug)]
pub struct Watched {
    pid: Option<String>,
}

impl Watched {
    pub fn new(pid: Option<u32>) -> Self {
        Watched {
            pid: pid.map(|p| p.to_string()),
        }
    }

    pub fn cpu(&self) -> Option<f64> {
        cpu_seconds(self.pid.as_deref()?)
    }

    pub fn rss_kib(&self) -> Option<u64> {
        status_kib(self.pid.as_deref()?, "VmRSS")
    }

    pub fn alive(&self) -> bool {
        match &self.pid {
            Some(pid) => std::path::Path::new(&format!("/proc/{pid}")).exists(),
            None => true,
        }
    }
}

/// `after - before`, or NaN when either is unknown (a figure the run could not read).
pub fn delta(before: Option<f64>, after: Option<f64>) -> f64 {
    match (before, after) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    }
}

/// The clocks at one moment: the server's and the generator's CPU seconds, and the time.
pub struct Snapshot {
    server_cpu: Option<f64>,
    gen_cpu: f64,
    at: std::time::Instant,
}

/// What was used between two snapshots.
pub struct CpuUse {
    pub seconds: f64,
    /// NaN when the server's CPU could not be read (no `--server-pid`).
    pub server_cpu: f64,
    pub gen_cpu: f64,
}

impl Snapshot {
    pub fn take(watched: &Watched) -> Self {
        Snapshot {
            server_cpu: watched.cpu(),
            gen_cpu: own_cpu(),
            at: std::time::Instant::now(),
        }
    }

    /// The use from this snapshot to `later`.
    pub fn until(&self, later: &Snapshot) -> CpuUse {
        CpuUse {
            seconds: (later.at - self.at).as_secs_f64(),
            server_cpu: delta(self.server_cpu, later.server_cpu),
            gen_cpu: later.gen_cpu - self.gen_cpu,
        }
    }
}

/// This process's CPU seconds (the generator's own use).
pub fn own_cpu() -> f64 {
    cpu_seconds("self").unwrap_or(f64::NAN)
}

/// Sorted latencies (µs) and the percentiles taken from them.
pub struct Percentiles {
    sorted: Vec<u32>,
}

impl Percentiles {
    pub fn new(mut samples: Vec<u32>) -> Self {
        samples.sort_unstable();
        Percentiles { sorted: samples }
    }

    pub fn count(&self) -> usize {
        self.sorted.len()
    }

    /// The value below which `q` of the samples fall (nearest rank); 0 without samples.
    pub fn at(&self, q: f64) -> u32 {
        if self.sorted.is_empty() {
            return 0;
        }
        let rank = (q * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    pub fn max(&self) -> u32 {
        self.sorted.last().copied().unwrap_or(0)
    }
}

/// One `RESULT key=value ...` line, the machine-readable output of a run.
pub struct ResultLine(String);

impl ResultLine {
    pub fn new(scenario: &str, server: &str) -> Self {
        ResultLine(format!("RESULT scenario={scenario} server={server}"))
    }

    pub fn put(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        let _ = write!(self.0, " {key}={value}");
        self
    }

    /// A float with `digits` decimals, or `NA` when it is not a number (nothing measured).
    pub fn num(&mut self, key: &str, value: f64, digits: usize) -> &mut Self {
        if value.is_finite() {
            let _ = write!(self.0, " {key}={value:.digits$}");
        } else {
            let _ = write!(self.0, " {key}=NA");
        }
        self
    }

    /// The measured window and the CPU both sides used in it, so a reader can tell which one
    /// was the limit.
    pub fn window_and_cpu(&mut self, window_s: f64, gen_cpu: f64, server_cpu: f64) -> &mut Self {
        self.num("window_s", window_s, 3)
            .num("gen_cpu_s", gen_cpu, 2)
            .num("gen_cpu_pct", 100.0 * gen_cpu / window_s, 0)
            .num("server_cpu_s", server_cpu, 2)
            .num("server_cpu_pct", 100.0 * server_cpu / window_s, 0)
    }

    pub fn print(&self) {
        println!("{}", self.0);
    }
}

/// `a / b`, or NaN when there is nothing to divide by.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

/// `host:port` of a `ws://host:port/path` URL.
pub fn socket_addr_of(url: &str) -> String {
    let rest = url.strip_prefix("ws://").unwrap_or(url);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// Small buffers: the generator may hold tens of thousands of connections, and its frames are
/// a hundred bytes.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Opens one WebSocket connection (TCP_NODELAY, like a game client wants).
pub async fn connect(url: &str, timeout: Duration) -> io::Result<Ws> {
    let attempt = async {
        let stream = TcpStream::connect(socket_addr_of(url)).await?;
        stream.set_nodelay(true)?;
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(url, stream, Some(client_config()))
                .await
                .map_err(io::Error::other)?;
        Ok(ws)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    }
}

/// The `command` of a server frame, without parsing the rest.
pub fn command_of(text: &str) -> &str {
    const KEY: &str = "\"command\":\"";
    // Built once: building a searcher costs more than searching a 100-byte frame.
    static FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(KEY));
    let Some(start) = FINDER.find(text.as_bytes()) else {
        return "";
    };
    let rest = &text[start + KEY.len()..];
    &rest[..memchr::memchr(b'"', rest.as_bytes()).unwrap_or(0)]
}

/// The integer after `"key":` (the key given with its quotes and colon, e.g. `"\"error\":"`).
pub fn int_field(text: &str, key: &str) -> Option<i64> {
    let start = memchr::memmem::find(text.as_bytes(), key.as_bytes())? + key.len();
    int_at(&text[start..])
}

/// A key looked up in many frames (`int_field` with its searcher built once).
pub struct Field(Finder<'static>);

impl Field {
    pub fn new(key: &'static str) -> Self {
        Field(Finder::new(key))
    }

    pub fn int_in(&self, text: &str) -> Option<i64> {
        let start = self.0.find(text.as_bytes())? + self.0.needle().len();
        int_at(&text[start..])
    }
}

/// The integer at the start of `rest` (after blanks).
fn int_at(rest: &str) -> Option<i64> {
    let rest = rest.trim_start();
    let (negative, digits) = match rest.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, rest),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let value: i64 = digits[..end].parse().ok()?;
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_a_player_update() {
        let frame =
            r#"{"command":"playerUpdate","error":0,"playerID":17,"player":{"seq":42,"t":-3}}"#;
        assert_eq!(command_of(frame), "playerUpdate");
        assert_eq!(int_field(frame, "\"error\":"), Some(0));
        assert_eq!(int_field(frame, "\"playerID\":"), Some(17));
        assert_eq!(int_field(frame, "\"seq\":"), Some(42));
        assert_eq!(int_field(frame, "\"t\":"), Some(-3));
        assert_eq!(int_field(frame, "\"sessionID\":"), None);
        assert_eq!(Field::new("\"seq\":").int_in(frame), Some(42));
        assert_eq!(Field::new("\"t\":").int_in(frame), Some(-3));
        assert_eq!(Field::new("\"sessionID\":").int_in(frame), None);
        assert_eq!(command_of(r#"{"error":0}"#), "");
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let p = Percentiles::new((1..=1000).rev().collect());
        assert_eq!(p.at(0.5), 500);
        assert_eq!(p.at(0.99), 990);
        assert_eq!(p.at(0.999), 999);
        assert_eq!(p.max(), 1000);
        assert_eq!(Percentiles::new(vec![]).at(0.5), 0);
    }

    #[test]
    fn reads_a_status_field() {
        let status = "Name:\tsessionserver\nVmHWM:\t   12000 kB\nVmRSS:\t    9876 kB\n";
        assert_eq!(status_field(status, "VmRSS"), Some(9876));
        assert_eq!(status_field(status, "VmHWM"), Some(12000));
        // A key is matched whole, not as a prefix of a longer one.
        assert_eq!(status_field(status, "VmR"), None);
        assert_eq!(status_field("VmRSS:\tlots kB\n", "VmRSS"), None);
    }

    #[test]
    fn reads_own_proc_entries() {
        assert!(cpu_seconds("self").is_some());
        assert!(status_kib("self", "VmRSS").unwrap() > 0);
        assert!(thread_cpu_ns().is_some());
        assert_eq!(socket_addr_of("ws://127.0.0.1:7000/"), "127.0.0.1:7000");
    }
}

/// Which server a scenario runs against, and how it is named and watched.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// Server URL.
    #[arg(long, default_value = "ws://127.0.0.1:7000/")]
    pub url: String,
    /// Label of the server in the result line.
    #[arg(long, default_value = "server")]
    pub server: String,
    /// PID of the server, to read its CPU time and memory (VmRSS).
    #[arg(long)]
    pub server_pid: Option<u32>,
}
