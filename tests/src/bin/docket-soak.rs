//! Flat memory: a worker runs 1,000,000 no-op tasks, and its resident memory at the end is
//! compared with what it had after the first 10,000. Run by hand (BENCHMARKS.md reports it):
//!
//! ```text
//! cargo run --release -p tests --bin docket-soak [-- --tasks N]
//! ```
//!
//! The tasks are queued first, then a worker in a child process (this binary again, with
//! `--worker`) drains them and reports its own `VmRSS` as it goes.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tests::redis_server::{RedisServer, unique_name};

static DONE: AtomicU64 = AtomicU64::new(0);

/// Does nothing but count itself.
#[docket::task]
async fn soak(n: u64) {
    std::hint::black_box(n);
    DONE.fetch_add(1, Ordering::Relaxed);
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        return work(&args[1], &args[2], args[3].parse()?).await;
    }
    let tasks: u64 = match args.iter().position(|arg| arg == "--tasks") {
        Some(i) => args[i + 1].parse()?,
        None => 1_000_000,
    };
    let server = RedisServer::start();
    let name = unique_name("soak");
    let docket = docket::Docket::connect(server.url()).name(&name).await?;
    let started = Instant::now();
    for batch in 0..tasks.div_ceil(1000) {
        let first = batch * 1000;
        let last = (first + 1000).min(tasks);
        docket.add_many((first..last).map(Soak::schedule)).await?;
    }
    eprintln!("soak: queued {tasks} tasks in {:.1?}", started.elapsed());
    let status = Command::new(std::env::current_exe()?)
        .args(["--worker", &server.url(), &name, &tasks.to_string()])
        .stdout(Stdio::inherit())
        .status()?;
    assert!(status.success(), "the worker failed: {status}");
    Ok(())
}

/// Drain `tasks` tasks at concurrency 100, reporting RSS after 10,000 and at the end.
async fn work(url: &str, name: &str, tasks: u64) -> Result<(), Box<dyn std::error::Error>> {
    let docket = docket::Docket::connect(url).name(name).await?;
    let watch = tokio::spawn(async move {
        let mut early = None;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            let done = DONE.load(Ordering::Relaxed);
            if early.is_none() && done >= 10_000 {
                early = Some((done, rss_kib()));
            }
            if done >= tasks {
                return early;
            }
        }
    });
    let started = Instant::now();
    docket::Worker::new(&docket)
        .concurrency(100)
        .run_until_finished()
        .await?;
    let elapsed = started.elapsed();
    let end = rss_kib();
    let (at, early) = watch.await?.unwrap_or((0, 0));
    println!(
        "soak: {tasks} tasks in {elapsed:.1?}; worker RSS {:.1} MiB after {at} tasks, {:.1} MiB at the end ({:+.1} %)",
        early as f64 / 1024.0,
        end as f64 / 1024.0,
        (end as f64 - early as f64) / early.max(1) as f64 * 100.0,
    );
    Ok(())
}
