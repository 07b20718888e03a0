//! Connections that hold a permit before any upgrade: silent ones, unfinished request heads,
//! and idle keep-alives after one plain request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::ResultLine;

use super::{spread, Ctx};

/// One group of connections: what each writes first, and when each was closed (its read met
/// the end of the stream or an error), from its connect.
struct Group {
    name: &'static str,
    closed: Arc<Mutex<Vec<Option<Duration>>>>,
}

pub async fn pre_upgrade(ctx: &Ctx, line: &mut ResultLine) -> Result<(), String> {
    let per_group = ctx.connections(100);
    let last_check = ctx.seconds(40.0);
    let checks = [Duration::from_secs(15).min(last_check), last_check];
    let requests: [(&'static str, String); 3] = [
        ("silent", String::new()),
        ("unfinished_head", "GET / HTTP/1.1\r\nHost: x\r\n".into()),
        (
            "keep_alive",
            format!("GET /metrics HTTP/1.1\r\nHost: {}\r\n\r\n", ctx.addr),
        ),
    ];
    let started = Instant::now();
    let mut groups = Vec::new();
    let mut tasks = Vec::new();
    for (name, request) in requests {
        let closed = Arc::new(Mutex::new(vec![None; per_group]));
        for i in 0..per_group {
            let mut tcp = TcpStream::connect(&ctx.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let connected = Instant::now();
            if !request.is_empty() {
                tcp.write_all(request.as_bytes())
                    .await
                    .map_err(|e| format!("write: {e}"))?;
            }
            let closed = closed.clone();
            tasks.push(tokio::spawn(async move {
                // Reads whatever comes (the keep-alive's response) until the server closes.
                let mut sink = [0u8; 4096];
                loop {
                    match tcp.read(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                closed.lock().unwrap()[i] = Some(connected.elapsed());
            }));
        }
        groups.push(Group { name, closed });
    }
    line.put("per_group", per_group)
        .num("open_s", started.elapsed().as_secs_f64(), 2);
    for check in checks {
        tokio::time::sleep_until((started + check).into()).await;
        for group in &groups {
            let open = group
                .closed
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.is_none())
                .count();
            line.put(
                &format!("{}_open_at_{}s", group.name, check.as_secs()),
                open,
            );
        }
    }
    ctx.probe.phase().put(line, "attack");
    for group in &groups {
        let times = group
            .closed
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .copied()
            .collect();
        line.put(
            &format!("{}_closed_after_s_min_med_max", group.name),
            spread(times),
        );
    }
    for task in tasks {
        task.abort();
    }
    Ok(())
}
