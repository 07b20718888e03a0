//! Attacks of one connection's frames: pings never read, a message too large, a flood, open
//! fragments, and the CPU of nested JSON.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::common::{self, ResultLine};
use crate::ws::{OP_PING, OP_PONG, OP_TEXT};

use super::{code_counts, spread, Ctx};

/// Pings of 125 bytes (the most a control frame holds) written as fast as the socket takes
/// them, never reading: the server may keep at most one pong waiting.
pub async fn pings(ctx: &Ctx, line: &mut ResultLine) -> Result<(), String> {
    let mut ws = ctx.connect().await?;
    // 512 pings per write: the writes, not the framing, are the attacker's cost.
    let mut batch = Vec::new();
    for i in 0..512u32 {
        let mut payload = [b'p'; 125];
        payload[..4].copy_from_slice(&i.to_be_bytes());
        batch.extend(ws.frame(true, OP_PING, &payload));
    }
    let started = Instant::now();
    let deadline = started + ctx.seconds(10.0);
    let mut written = 0u64;
    let mut write_error = None;
    while Instant::now() < deadline {
        match tokio::time::timeout_at(deadline.into(), ws.stream.write_all(&batch)).await {
            Ok(Ok(())) => written += batch.len() as u64,
            Ok(Err(e)) => {
                write_error = Some(e.to_string());
                break;
            }
            // The server stopped reading (TCP back-pressure) until the end of the attack.
            Err(_) => break,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    ctx.probe.phase().put(line, "attack");
    // Now read what waited: the pongs, and a close frame if the server closed.
    let mut pongs = 0u64;
    let mut close = None;
    let mut ended = false;
    let reading = Instant::now() + Duration::from_secs(2);
    loop {
        match tokio::time::timeout_at(reading.into(), ws.next_frame()).await {
            Ok(Ok(Some((OP_PONG, _)))) => pongs += 1,
            Ok(Ok(Some((crate::ws::OP_CLOSE, payload)))) => {
                close = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                break;
            }
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) | Ok(Err(_)) => {
                ended = true;
                break;
            }
            Err(_) => break,
        }
    }
    line.num("pings_in_mib", written as f64 / (1 << 20) as f64, 1)
        .num("ping_write_s", elapsed, 1)
        .put("pongs_read_after", pongs)
        .put("close_code", close.map_or("none".into(), |c| c.to_string()))
        .put("ended", ended)
        .put("write_error", write_error.unwrap_or_else(|| "none".into()));
    Ok(())
}

/// A 2 MiB text frame (32 times the 64 KiB limit) in one write.
pub async fn big_message(ctx: &Ctx, line: &mut ResultLine) -> Result<(), String> {
    let mut ws = ctx.connect().await?;
    let frame = ws.frame(true, OP_TEXT, &vec![b'x'; 2 << 20]);
    let started = Instant::now();
    let write = ws.stream.write_all(&frame).await;
    let ending = tokio::time::timeout(Duration::from_secs(20), ws.until_end(false)).await;
    ctx.probe.phase().put(line, "attack");
    line.put(
        "write",
        write.map_or_else(|e| e.to_string().replace(' ', "_"), |()| "ok".into()),
    );
    put_ending(line, ending.ok().as_ref(), started);
    Ok(())
}

/// 20,000 small commands in one write: over the rate limit (a burst of 200, then 100/s).
pub async fn flood(ctx: &Ctx, line: &mut ResultLine) -> Result<(), String> {
    let mut ws = ctx.connect().await?;
    let mut bytes = Vec::new();
    for _ in 0..20_000 {
        bytes.extend(ws.frame(true, OP_TEXT, br#"{"command":"leaveSession"}"#));
    }
    let started = Instant::now();
    let write = ws.stream.write_all(&bytes).await;
    let ending = tokio::time::timeout(Duration::from_secs(20), ws.until_end(false)).await;
    ctx.probe.phase().put(line, "attack");
    line.put("commands", 20_000)
        .put("flood_bytes", bytes.len())
        .put(
            "write",
            write.map_or_else(|e| e.to_string().replace(' ', "_"), |()| "ok".into()),
        );
    put_ending(line, ending.ok().as_ref(), started);
    Ok(())
}

/// The attacker's view of one connection's end, timed from `started`.
fn put_ending(line: &mut ResultLine, ending: Option<&super::Ending>, started: Instant) {
    match ending {
        None => {
            line.put("close_code", "open_after_20s");
        }
        Some(ending) => {
            line.put("replies", ending.texts)
                .put(
                    "close_code",
                    ending.code.map_or("none".into(), |c| c.to_string()),
                )
                .put("clean_end", ending.clean)
                .num(
                    "close_after_s",
                    ending
                        .at
                        .map_or(f64::NAN, |at| (at - started).as_secs_f64()),
                    3,
                );
            if let Some(e) = &ending.error {
                line.put("read_error", e.replace(' ', "_"));
            }
        }
    }
}

/// N connections, each sending the first 60 KiB fragment (FIN clear) of a text message it
/// never finishes, then answering pings: only the fragment deadline closes them.
pub async fn fragments(ctx: &Ctx, line: &mut ResultLine) -> Result<(), String> {
    let connections = ctx.connections(1_000);
    let mut fragment = br#"{"command":"updatePlayer","player":{"x":""#.to_vec();
    fragment.resize(60 << 10, b'x');
    let fragment = Arc::new(fragment);
    let mut tasks = Vec::with_capacity(connections);
    let started = Instant::now();
    for _ in 0..connections {
        // One handshake at a time: a burst of thousands would meet the listen backlog.
        let mut ws = ctx.connect().await?;
        let frame = ws.frame(false, OP_TEXT, &fragment);
        tasks.push(tokio::spawn(async move {
            ws.stream.write_all(&frame).await.ok()?;
            let sent = Instant::now();
            let ending = tokio::time::timeout(Duration::from_secs(40), ws.until_end(true))
                .await
                .ok()?;
            Some((sent, ending))
        }));
    }
    let opened_s = started.elapsed().as_secs_f64();
    let mut endings = Vec::with_capacity(connections);
    for task in tasks {
        endings.push(task.await.ok().flatten());
    }
    ctx.probe.phase().put(line, "attack");
    let times = endings
        .iter()
        .flatten()
        .filter_map(|(sent, ending)| Some(ending.at? - *sent))
        .collect();
    line.put("connections", connections)
        .num("open_s", opened_s, 1)
        .put("fragment_bytes", fragment.len())
        .put(
            "codes",
            code_counts(endings.iter().map(|e| e.as_ref().map(|(_, ending)| ending))),
        )
        .put(
            "clean_ends",
            endings.iter().flatten().filter(|(_, e)| e.clean).count(),
        )
        .put("close_after_s_min_med_max", spread(times));
    Ok(())
}

/// Server CPU per command for 65 KB frames of JSON nested as deep as it goes and of flat
/// JSON, each kind sent by several connections at 5 frames per second (80 of the rate limit's
/// 100 tokens per second: no frame is refused), beside the server's CPU over as long idle.
pub async fn nested(ctx: &Ctx, line: &mut ResultLine) -> Result<(), String> {
    const SIZE: usize = 65_000;
    let connections = ctx.connections(10);
    let per_connection = 20;
    let head = r#"{"command":"updatePlayer","player":{"a":"#;
    let deep = format!("{head}{}", "[".repeat(SIZE - head.len()));
    let mut flat = format!("{head}[0");
    while flat.len() < SIZE - 4 {
        flat.push_str(",0");
    }
    flat.push_str("]}}");
    let pid = ctx.args.server_pid.to_string();

    let idle_cpu = {
        let before = common::cpu_seconds(&pid);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(per_connection as f64 / 5.0)).await;
        common::delta(before, common::cpu_seconds(&pid)) / started.elapsed().as_secs_f64()
    };
    line.num("idle_cpu_pct", 100.0 * idle_cpu, 1);
    for (name, frame) in [("flat", &flat), ("nested", &deep)] {
        let mut clients = Vec::new();
        for _ in 0..connections {
            clients.push(ctx.connect().await?);
        }
        let before = common::cpu_seconds(&pid);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for mut ws in clients {
            let frame = frame.clone();
            tasks.push(tokio::spawn(async move {
                let mut first_reply = None;
                for i in 0..per_connection {
                    tokio::time::sleep_until((started + Duration::from_millis(200 * i)).into())
                        .await;
                    ws.send_text(&frame).await.map_err(|e| e.to_string())?;
                    let reply = ws
                        .next_text()
                        .await
                        .map_err(|e| e.to_string())?
                        .ok_or("closed")?;
                    first_reply.get_or_insert(String::from_utf8_lossy(&reply).into_owned());
                }
                Ok::<_, String>(first_reply)
            }));
        }
        let mut reply = None;
        for task in tasks {
            reply = task.await.map_err(|e| e.to_string())??;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = common::delta(before, common::cpu_seconds(&pid)) - idle_cpu * elapsed;
        let commands = (connections * per_connection as usize) as f64;
        let reply = reply.unwrap_or_default();
        line.put(&format!("{name}_commands"), commands)
            .put(&format!("{name}_frame_bytes"), frame.len())
            .num(
                &format!("{name}_cpu_us_per_command"),
                cpu * 1e6 / commands,
                0,
            )
            .put(
                &format!("{name}_reply"),
                format!(
                    "{}/{}",
                    common::command_of(&reply),
                    common::int_field(&reply, "\"error\":").unwrap_or(-1)
                ),
            );
    }
    ctx.probe.phase().put(line, "attack");
    Ok(())
}
