//! Attacks through a session: joiners that never read what a join sends them, and a member
//! broadcasting large updates to many.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::common::{self, ResultLine};

use super::raw::RawWs;
use super::{code_counts, Ctx};

/// Frames at least this long are the attack's large ones (60 KB of data and their envelope).
const LARGE_FRAME: usize = 60_000;

/// What the draining members received, all together.
#[derive(Default)]
struct Received {
    frames: AtomicU64,
    bytes: AtomicU64,
    large_frames: AtomicU64,
}

/// Reads a member's frames until its connection ends, answering pings (a reading member).
fn drain(mut ws: RawWs, received: Arc<Received>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(Some(text)) = ws.next_text().await {
            received.frames.fetch_add(1, Relaxed);
            received.bytes.fetch_add(text.len() as u64, Relaxed);
            if text.len() >= LARGE_FRAME {
                received.large_frames.fetch_add(1, Relaxed);
            }
        }
    })
}

/// Reads until a frame of `command` arrives; it is returned.
async fn until_command(ws: &mut RawWs, command: &str) -> Result<String, String> {
    loop {
        let text = ws
            .next_text()
            .await
            .map_err(|e| format!("waiting for {command}: {e}"))?
            .ok_or_else(|| format!("closed while waiting for {command}"))?;
        let text = String::from_utf8_lossy(&text).into_owned();
        if common::command_of(&text) == command {
            return Ok(text);
        }
    }
}

/// A new session with `player` as its default playerData: its creator and its ID.
async fn create(ctx: &Ctx, player: &str) -> Result<(RawWs, i64), String> {
    let mut ws = ctx.connect().await?;
    ws.send_text(&format!(
        r#"{{"command":"createSession","session":{{}},"player":{player}}}"#
    ))
    .await
    .map_err(|e| e.to_string())?;
    let reply = until_command(&mut ws, "sessionJoin").await?;
    let id = common::int_field(&reply, "\"sessionID\":")
        .filter(|_| common::int_field(&reply, "\"error\":") == Some(0))
        .ok_or_else(|| format!("createSession refused: {reply:.200}"))?;
    Ok((ws, id))
}

fn join_command(session: i64) -> String {
    format!(r#"{{"command":"joinSession","sessionID":{session}}}"#)
}

/// A member of `session`, its `sessionJoin` read.
async fn join(ctx: &Ctx, session: i64) -> Result<RawWs, String> {
    let mut ws = ctx.connect().await?;
    ws.send_text(&join_command(session))
        .await
        .map_err(|e| e.to_string())?;
    let reply = until_command(&mut ws, "sessionJoin").await?;
    if common::int_field(&reply, "\"error\":") != Some(0) {
        return Err(format!("joinSession refused: {reply:.200}"));
    }
    Ok(ws)
}

/// Joiners that send their joinSession and never read a byte after the handshake.
async fn silent_joiners(ctx: &Ctx, session: i64, count: usize) -> Result<Vec<RawWs>, String> {
    let mut joiners = Vec::with_capacity(count);
    for _ in 0..count {
        let mut ws = ctx.connect().await?;
        ws.send_text(&join_command(session))
            .await
            .map_err(|e| e.to_string())?;
        joiners.push(ws);
    }
    Ok(joiners)
}

/// `count` reading members of `session`, a few dozen handshakes in flight at once.
async fn reading_members(
    ctx: &Arc<Ctx>,
    session: i64,
    count: usize,
    received: &Arc<Received>,
) -> Result<Vec<JoinHandle<()>>, String> {
    let in_flight = Arc::new(Semaphore::new(32));
    let mut joins = Vec::with_capacity(count);
    for _ in 0..count {
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let (ctx, received) = (ctx.clone(), received.clone());
        joins.push(tokio::spawn(async move {
            let ws = join(&ctx, session).await;
            drop(permit);
            ws.map(|ws| drain(ws, received))
        }));
    }
    let mut drains = Vec::with_capacity(count);
    for join in joins {
        drains.push(join.await.map_err(|e| e.to_string())??);
    }
    Ok(drains)
}

/// After the attack: reads what each non-reader was sent (at most `patience`) to see whether
/// the server closed it, and with what.
async fn read_out(joiners: Vec<RawWs>, patience: Duration, line: &mut ResultLine) {
    let tasks: Vec<_> = joiners
        .into_iter()
        .map(|ws| tokio::spawn(tokio::time::timeout(patience, ws.until_end(false))))
        .collect();
    let mut endings = Vec::new();
    for task in tasks {
        endings.push(task.await.ok().and_then(Result::ok));
    }
    let bytes: u64 = endings.iter().flatten().map(|e| e.text_bytes).sum();
    line.put(
        "non_reader_codes",
        code_counts(endings.iter().map(Option::as_ref)),
    )
    .put("non_reader_bytes_read_after", bytes);
}

/// One member has 64 KB of default playerData, 62 more join and read, then joiners that
/// never read: each is owed the 63 members' data (4 MB) the moment it joins.
pub async fn join_amplification(ctx: &Arc<Ctx>, line: &mut ResultLine) -> Result<(), String> {
    let non_readers = ctx.connections(30);
    let hold = ctx.seconds(35.0);
    let blob = format!(r#"{{"blob":"{}"}}"#, "x".repeat(64_000));
    let received = Arc::new(Received::default());
    let (creator, session) = create(ctx, &blob).await?;
    let mut drains = vec![drain(creator, received.clone())];
    for _ in 0..62 {
        drains.push(drain(join(ctx, session).await?, received.clone()));
    }
    ctx.probe.phase().put(line, "setup");
    let joiners = silent_joiners(ctx, session, non_readers).await?;
    tokio::time::sleep(hold).await;
    ctx.probe.phase().put(line, "attack");
    line.put("members", 63)
        .put("default_player_bytes", blob.len())
        .put("non_readers", non_readers)
        .num("hold_s", hold.as_secs_f64(), 0);
    read_out(joiners, Duration::from_secs(10), line).await;
    for drain in drains {
        drain.abort();
    }
    Ok(())
}

/// A session of 300 reading members; one sends updateSession with 60 KB of sessionData five
/// times a second (within the rate limit): each broadcast costs 300 × 60 KB of its egress
/// budget (bursts of 16 MiB, 8 MiB/s), so most are refused with error 20.
pub async fn egress(ctx: &Arc<Ctx>, line: &mut ResultLine) -> Result<(), String> {
    let members = ctx.connections(300);
    let duration = ctx.seconds(10.0);
    let received = Arc::new(Received::default());
    let (mut sender, session) = create(ctx, "{}").await?;
    let drains = reading_members(ctx, session, members - 1, &received).await?;
    ctx.probe.phase().put(line, "setup");
    let update = format!(
        r#"{{"command":"updateSession","session":{{"blob":"{}"}},"player":{{}}}}"#,
        "x".repeat(60_000)
    );
    let bytes_before = received.bytes.load(Relaxed);
    let large_before = received.large_frames.load(Relaxed);
    let started = Instant::now();
    let deadline = started + duration;
    let mut every = tokio::time::interval(Duration::from_millis(200));
    let (mut sent, mut broadcast, mut refused) = (0u64, 0u64, 0u64);
    let mut broadcast_before_first_refusal = None;
    // Replies still on their way at the deadline are read for a second more.
    while Instant::now() < deadline + Duration::from_secs(1) {
        tokio::select! {
            _ = every.tick(), if Instant::now() < deadline => {
                sender.send_text(&update).await.map_err(|e| e.to_string())?;
                sent += 1;
            }
            text = sender.next_text() => {
                let text = text.map_err(|e| e.to_string())?.ok_or("the sender was closed")?;
                if text.len() > 300 {
                    // The broadcast: only its head is needed.
                    let head = String::from_utf8_lossy(&text[..300]).into_owned();
                    count_reply(&head, &mut broadcast, &mut refused, &mut broadcast_before_first_refusal);
                } else {
                    let text = String::from_utf8_lossy(&text).into_owned();
                    count_reply(&text, &mut broadcast, &mut refused, &mut broadcast_before_first_refusal);
                }
            }
            _ = tokio::time::sleep_until((deadline + Duration::from_secs(1)).into()) => {}
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    ctx.probe.phase().put(line, "attack");
    let bytes_out = received.bytes.load(Relaxed) - bytes_before;
    line.put("members", members)
        .put("update_bytes", update.len())
        .put("updates_sent", sent)
        .put("broadcast", broadcast)
        .put("refused_20", refused)
        .put(
            "broadcast_before_first_20",
            broadcast_before_first_refusal.map_or("none".into(), |n: u64| n.to_string()),
        )
        .put(
            "large_frames_to_others",
            received.large_frames.load(Relaxed) - large_before,
        )
        .put("bytes_to_others", bytes_out)
        .num("window_s", elapsed, 1)
        .num(
            "mib_per_s_to_others",
            bytes_out as f64 / (1 << 20) as f64 / elapsed,
            1,
        );
    for drain in drains {
        drain.abort();
    }
    Ok(())
}

/// Counts the sender's `sessionUpdate`s: its own broadcast (error 0) or a refusal (20).
fn count_reply(text: &str, broadcast: &mut u64, refused: &mut u64, first: &mut Option<u64>) {
    if common::command_of(text) != "sessionUpdate" {
        return;
    }
    match common::int_field(text, "\"error\":") {
        Some(0) => *broadcast += 1,
        Some(20) => {
            *refused += 1;
            first.get_or_insert(*broadcast);
        }
        _ => {}
    }
}

/// A session of 1,200 reading members given 60 KB of default playerData each (one
/// updateSession: the server must run with `--egress-burst-bytes 1073741824`), then one
/// reading joiner, owed 72 MB of playerJoins, and joiners that never read.
pub async fn big_join(ctx: &Arc<Ctx>, line: &mut ResultLine) -> Result<(), String> {
    const MEMBERS: usize = 1_200;
    let non_readers = ctx.connections(30);
    let hold = ctx.seconds(15.0);
    let received = Arc::new(Received::default());
    let (creator, session) = create(ctx, "{}").await?;
    let mut drains = vec![drain(creator, received.clone())];
    drains.extend(reading_members(ctx, session, MEMBERS - 2, &received).await?);
    let mut updater = join(ctx, session).await?;
    updater
        .send_text(&format!(
            r#"{{"command":"updateSession","session":{{}},"player":{{"blob":"{}"}}}}"#,
            "x".repeat(60_000)
        ))
        .await
        .map_err(|e| e.to_string())?;
    let reply = until_command(&mut updater, "sessionUpdate").await?;
    let error = common::int_field(&reply[..reply.len().min(300)], "\"error\":");
    if error != Some(0) {
        return Err(format!("updateSession refused (error {error:?}); is the server run with --egress-burst-bytes 1073741824?"));
    }
    drains.push(drain(updater, received.clone()));
    // The setup ends once every other member has its 60 KB sessionUpdate.
    let waiting = Instant::now();
    while received.large_frames.load(Relaxed) < (MEMBERS - 1) as u64
        && waiting.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    line.put("members", MEMBERS)
        .put("members_updated", received.large_frames.load(Relaxed) + 1);
    ctx.probe.phase().put(line, "setup");

    let started = Instant::now();
    let joiners = silent_joiners(ctx, session, non_readers).await?;
    let mut reading = ctx.connect().await?;
    let reading_started = Instant::now();
    reading
        .send_text(&join_command(session))
        .await
        .map_err(|e| e.to_string())?;
    // Every member and every non-reader, each announced once.
    let expected = (MEMBERS + non_readers) as u64;
    let (mut player_joins, mut bytes) = (0u64, 0u64);
    let mut welcome = None;
    while player_joins < expected && reading_started.elapsed() < Duration::from_secs(60) {
        let Ok(Ok(Some(text))) =
            tokio::time::timeout(Duration::from_secs(10), reading.next_text()).await
        else {
            break;
        };
        bytes += text.len() as u64;
        match common::command_of(&String::from_utf8_lossy(&text[..text.len().min(200)])) {
            "playerJoin" => player_joins += 1,
            "sessionJoin" => welcome = Some(reading_started.elapsed()),
            _ => {}
        }
    }
    let all_in = reading_started.elapsed();
    let rest = hold.saturating_sub(started.elapsed());
    tokio::time::sleep(rest).await;
    ctx.probe.phase().put(line, "attack");
    line.put("non_readers", non_readers)
        .put("reader_player_joins", player_joins)
        .put("reader_expected", expected)
        .put("reader_bytes", bytes)
        .num(
            "reader_session_join_s",
            welcome.map_or(f64::NAN, |d| d.as_secs_f64()),
            3,
        )
        .num("reader_all_s", all_in.as_secs_f64(), 2)
        .num("hold_s", hold.as_secs_f64(), 0);
    drop(joiners);
    drop(reading);
    for drain in drains {
        drain.abort();
    }
    Ok(())
}
