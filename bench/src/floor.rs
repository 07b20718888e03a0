//! The loopback floor: what one small write to a loopback TCP socket costs in CPU, kernel
//! included, on this machine right now. A thread writes `size`-byte messages round-robin over
//! as many loopback connections as the fan-out has players, at the fan-out's delivery rate;
//! readers on another thread drain them (as the generator's clients do). The writer thread's
//! own CPU time per write is the floor: a server cannot deliver a frame to a socket for less.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::common::{self, ResultLine};

#[derive(clap::Args, Debug, Clone)]
pub struct FloorArgs {
    /// Loopback connections written to, round-robin.
    #[arg(long, default_value_t = 1000)]
    pub sockets: usize,
    /// Writes per second in total, in 1 ms batches; 0 writes as fast as possible.
    #[arg(long, default_value_t = 50_000.0)]
    pub rate: f64,
    /// Bytes per write.
    #[arg(long, default_value_t = 120)]
    pub size: usize,
    /// Seconds of writing.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Label in the result line.
    #[arg(long, default_value = "loopback")]
    pub server: String,
}

pub fn run(args: FloorArgs) -> Result<(), String> {
    let n = args.sockets.max(1);
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut writers = Vec::with_capacity(n);
    let mut readers = Vec::with_capacity(n);
    for _ in 0..n {
        let client = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        let (server_side, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        server_side.set_nodelay(true).map_err(|e| e.to_string())?;
        client.set_nonblocking(true).map_err(|e| e.to_string())?;
        writers.push(server_side);
        readers.push(client);
    }

    let received = Arc::new(AtomicU64::new(0));
    let reader_thread = {
        let received = received.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(async move {
                let mut tasks = Vec::with_capacity(readers.len());
                for client in readers {
                    let received = received.clone();
                    let Ok(mut stream) = tokio::net::TcpStream::from_std(client) else {
                        continue;
                    };
                    tasks.push(tokio::spawn(async move {
                        let mut buf = vec![0u8; 4096];
                        while let Ok(got) = stream.read(&mut buf).await {
                            if got == 0 {
                                break;
                            }
                            received.fetch_add(got as u64, Ordering::Relaxed);
                        }
                    }));
                }
                for task in tasks {
                    let _ = task.await;
                }
            });
        })
    };

    let payload = vec![b'x'; args.size.max(1)];
    let process_cpu0 = common::own_cpu();
    let cpu0 = common::thread_cpu_ns().ok_or("no /proc/thread-self/schedstat")?;
    let begin = Instant::now();
    let end = begin + Duration::from_secs_f64(args.duration);
    let mut written = 0u64;
    let mut next = 0usize;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let target = if args.rate > 0.0 {
            (args.rate * (now - begin).as_secs_f64()) as u64
        } else {
            written + n as u64
        };
        while written < target {
            writers[next]
                .write_all(&payload)
                .map_err(|e| format!("write: {e}"))?;
            next = (next + 1) % n;
            written += 1;
        }
        if args.rate > 0.0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let cpu1 = common::thread_cpu_ns().ok_or("no /proc/thread-self/schedstat")?;
    let elapsed = begin.elapsed().as_secs_f64();
    let expected = written * payload.len() as u64;
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < drain_deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let process_cpu1 = common::own_cpu();
    drop(writers);
    let _ = reader_thread.join();

    let writer_cpu = (cpu1 - cpu0) as f64 / 1e9;
    let mut line = ResultLine::new("floor", &args.server);
    line.put("sockets", n)
        .num("rate", args.rate, 0)
        .put("size", payload.len())
        .put("writes", written)
        .put("received_bytes", received.load(Ordering::Relaxed))
        .put("expected_bytes", expected)
        .num("writes_per_s", written as f64 / elapsed, 0)
        .num("writer_cpu_s", writer_cpu, 3)
        .num(
            "floor_us_per_write",
            common::ratio(writer_cpu * 1e6, written as f64),
            2,
        )
        .num("gen_cpu_s", process_cpu1 - process_cpu0, 2);
    line.print();
    Ok(())
}
