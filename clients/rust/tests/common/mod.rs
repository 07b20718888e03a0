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

/// A native server on 127.0.0.1:0 with `tune`'s options.
pub async fn server(tune: impl FnOnce(&mut sessionserver::Config)) -> sessionserver::RunningServer {
    let mut config = sessionserver::Config {
        bind: "127.0.0.1".parse().expect("an IP address"),
        port: 0,
        ..Default::default()
    };
    tune(&mut config);
    sessionserver::start(config)
        .await
        .expect("the server starts on 127.0.0.1:0")
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
