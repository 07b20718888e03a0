//! What the client's tests against a real server share: an in-process native server on
//! 127.0.0.1:0, a TCP proxy that cuts connections the way a network does, and waiting for
//! events with a timeout (a missing event is a failure, never a pass).

#![allow(dead_code)] // each test file uses its own part of this

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sessionserver_client::{Client, Event, Options, ReconnectOptions};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long any one event, reply or connect may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The environment variable naming another server to test instead (`ws://host:port/`, as
/// the black-box suite's), e.g. the edge host under `wrangler dev`.
pub const URL_VAR: &str = "SESSIONSERVER_URL";

/// That server's resume grace period in milliseconds, for the test that waits for it to end.
pub const RESUME_GRACE_VAR: &str = "SESSIONSERVER_RESUME_GRACE_MS";

/// The server under test: one started in this process on 127.0.0.1:0 for this test, or the
/// one at [`URL_VAR`].
pub struct TestServer {
    /// Where it listens (a proxy connects here too).
    pub addr: SocketAddr,
    server: Option<sessionserver::RunningServer>,
}

impl TestServer {
    /// A native server with `tune`'s options, or the server at [`URL_VAR`] as it is.
    pub async fn start(tune: impl FnOnce(&mut sessionserver::Config)) -> TestServer {
        if let Some(url) = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()) {
            let host = url
                .trim_start_matches("ws://")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            let addr = tokio::net::lookup_host(&host)
                .await
                .ok()
                .and_then(|mut addrs| addrs.next())
                .unwrap_or_else(|| panic!("{URL_VAR}={url}: want ws://host:port/"));
            return TestServer { addr, server: None };
        }
        let mut config = sessionserver::Config {
            bind: "127.0.0.1".parse().expect("an IP address"),
            port: 0,
            ..Default::default()
        };
        tune(&mut config);
        let server = sessionserver::start(config)
            .await
            .expect("the server starts on 127.0.0.1:0");
        TestServer {
            addr: server.local_addr(),
            server: Some(server),
        }
    }

    /// Whether the server is this test's own (started in this process for it).
    pub fn is_private(&self) -> bool {
        self.server.is_some()
    }

    /// Whether the server is this test's own (so its options are the test's, and global
    /// state such as the latest session is its own); else says on stderr that `what` is
    /// skipped.
    pub fn private_or_skip(&self, what: &str) -> bool {
        if self.server.is_none() {
            eprintln!("SKIPPED {what}: it needs a server of its own, and {URL_VAR} names one");
        }
        self.server.is_some()
    }

    /// Whether the server's resume grace period is short and known (the in-process one's,
    /// or [`RESUME_GRACE_VAR`] given and shorter than the wait for an event less 2 s): else
    /// says the test is skipped.
    pub fn grace_known(&self) -> bool {
        let known = self.server.is_some()
            || std::env::var(RESUME_GRACE_VAR)
                .ok()
                .and_then(|ms| ms.parse::<u64>().ok())
                .is_some_and(|ms| ms.saturating_add(2000) < TIMEOUT.as_millis() as u64);
        if !known {
            eprintln!("SKIPPED: waiting for the grace period to end needs {RESUME_GRACE_VAR} (under 8000)");
        }
        known
    }

    /// Shuts the in-process server down (an external one is left alone); `None` if there is
    /// none to shut down.
    pub async fn shutdown(self) -> Option<()> {
        self.server?.shutdown().await;
        Some(())
    }
}

pub fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/")
}

/// Options that reconnect quickly (the defaults wait up to 250 ms before the first attempt).
pub fn quick() -> Options {
    Options {
        reconnect: Some(ReconnectOptions {
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            ..ReconnectOptions::default()
        }),
        ..Options::default()
    }
}

/// The default options with the `host` extension.
pub fn with_host() -> Options {
    Options {
        host: true,
        ..Options::default()
    }
}

pub async fn connect(addr: SocketAddr, options: Options) -> Client {
    tokio::time::timeout(TIMEOUT, Client::connect(&url(addr), options))
        .await
        .expect("connected in time")
        .expect("connected")
}

/// Awaits `f` (a request) with the test's timeout.
pub async fn answer<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, f)
        .await
        .expect("an answer in time")
}

/// The client's next event.
pub async fn next(client: &Client) -> Event {
    tokio::time::timeout(TIMEOUT, client.next_event())
        .await
        .expect("an event in time")
        .expect("the client is not closed")
}

/// Events until `pick` picks one; returns what it picked and the events before it.
pub async fn until<T>(
    client: &Client,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> (T, Vec<Event>) {
    let mut before = Vec::new();
    loop {
        let event = next(client).await;
        if let Some(picked) = pick(&event) {
            return (picked, before);
        }
        before.push(event);
    }
}

/// A TCP proxy on 127.0.0.1:0 in front of `upstream` (like clients/js/test/proxy.mjs):
/// `cut()` ends every connection through it at once, without a WebSocket close frame (the
/// client sees 1006, the server finds its connection gone); `down()` / `up()` refuse new
/// connections (accepted, then closed at once) / take them again.
pub struct Proxy {
    pub addr: SocketAddr,
    pairs: Arc<Mutex<Vec<JoinHandle<()>>>>,
    refusing: Arc<Mutex<bool>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("its address");
        let pairs: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let refusing: Arc<Mutex<bool>> = Arc::default();
        let accept = tokio::spawn({
            let (pairs, refusing) = (pairs.clone(), refusing.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if *refusing.lock().unwrap() {
                        drop(client);
                        continue;
                    }
                    let pair = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    pairs.lock().unwrap().push(pair);
                }
            }
        });
        Proxy {
            addr,
            pairs,
            refusing,
            accept,
        }
    }

    /// Ends every connection through the proxy now (both of its sockets are dropped); what
    /// was on its way is lost.
    pub async fn cut(&self) {
        let pairs: Vec<JoinHandle<()>> = std::mem::take(&mut *self.pairs.lock().unwrap());
        for pair in pairs {
            pair.abort();
            let _ = pair.await;
        }
    }

    pub fn down(&self) {
        *self.refusing.lock().unwrap() = true;
    }

    pub fn up(&self) {
        *self.refusing.lock().unwrap() = false;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for pair in self.pairs.lock().unwrap().iter() {
            pair.abort();
        }
    }
}
