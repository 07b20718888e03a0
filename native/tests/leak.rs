//! No memory leak: rounds of players connecting, creating, joining, updating, leaving,
//! dropping their connections and resuming (after a drop, or taking over a connection still
//! open) must leave the process's live heap where the previous round left
//! it. Counted with a global allocator, so the allocator's caching and fragmentation (which
//! blur RSS, see the soak) do not hide a leak of a few bytes per connection.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use futures_util::{SinkExt, StreamExt};
use sessionserver::Config;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is only
// arithmetic on the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

async fn text(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> serde_json::Value {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

/// Resumes `token`'s seat on a new connection, then leaves and closes it.
async fn resume_and_leave(url: &str, token: &str) {
    let (mut ws, _) = connect_async(url).await.unwrap();
    ws.send(Message::text(format!(
        r#"{{"command":"resumeSession","resumeToken":"{token}"}}"#
    )))
    .await
    .unwrap();
    assert_eq!(text(&mut ws).await["error"], 0);
    ws.send(Message::text(r#"{"command":"leaveSession"}"#))
        .await
        .unwrap();
    while text(&mut ws).await["command"] != "sessionLeave" {}
    ws.close(None).await.unwrap();
}

/// 20 sessions of 10 players (asking for `resume`): create, join, updates, then leave, close,
/// drop, drop and resume, or resume from another connection.
async fn round(url: &str) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let (mut host, _) = connect_async(&url).await.unwrap();
            host.send(Message::text(
                r#"{"command":"createSession","player":{"n":0}}"#,
            ))
            .await
            .unwrap();
            let id = text(&mut host).await["sessionID"].as_u64().unwrap();
            let mut players = Vec::new();
            for _ in 0..9 {
                let (mut ws, _) = connect_async(&url).await.unwrap();
                ws.send(Message::text(
                    r#"{"command":"hello","features":["resume"]}"#,
                ))
                .await
                .unwrap();
                assert_eq!(text(&mut ws).await["command"], "hello");
                ws.send(Message::text(format!(
                    r#"{{"command":"joinSession","sessionID":{id}}}"#
                )))
                .await
                .unwrap();
                let join = text(&mut ws).await;
                assert_eq!(join["error"], 0);
                let token = join["resumeToken"].as_str().unwrap().to_owned();
                players.push((ws, token));
            }
            for (i, (ws, _)) in players.iter_mut().enumerate() {
                ws.send(Message::text(format!(
                    r#"{{"command":"updatePlayer","player":{{"n":{i}}}}}"#
                )))
                .await
                .unwrap();
                while text(ws).await["command"] != "playerUpdate" {}
            }
            for (i, (mut ws, token)) in players.into_iter().enumerate() {
                match i % 3 {
                    0 if i == 0 => {
                        drop(ws);
                        resume_and_leave(&url, &token).await;
                    }
                    0 if i == 3 => {
                        // The old connection is still open: the resume takes it over.
                        resume_and_leave(&url, &token).await;
                        while ws.next().await.is_some() {}
                    }
                    0 => drop(ws),
                    1 => {
                        ws.send(Message::text(r#"{"command":"leaveSession"}"#))
                            .await
                            .unwrap();
                        while text(&mut ws).await["command"] != "sessionLeave" {}
                        ws.close(None).await.unwrap();
                    }
                    _ => ws.close(None).await.unwrap(),
                }
            }
            host.close(None).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_of_players_leave_no_memory_behind() {
    // A short grace: members that dropped without resuming leave soon after.
    let config = Config {
        limits: sessionserver_core::Limits {
            resume_grace_ms: 200,
            ..sessionserver_core::Limits::default()
        },
        ..Config::default()
    };
    let server = common::start(config).await;
    let url = format!("ws://{}/", server.local_addr());
    let mut live = Vec::new();
    for _ in 0..6 {
        round(&url).await;
        // Wait until the server has closed every connection and destroyed every session.
        let settled = async {
            while server.connection_count() > 0 || server.session_count() > 0 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), settled)
            .await
            .expect("the server still had connections or sessions 30 s after the round");
        live.push(LIVE_BYTES.load(Ordering::Relaxed));
    }
    println!("LEAK live heap after each round (bytes): {live:?}");
    // The first rounds fill pools that are kept and reused (tokio's I/O slab, the registry's
    // maps); from then on a round of 200 connections must add nothing.
    let growth = live[4].min(live[5]) - live[2];
    assert!(
        growth < 16 * 1024,
        "the live heap grew by {growth} bytes over 3 rounds: {live:?}"
    );
    server.shutdown().await;
}
