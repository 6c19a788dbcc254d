//! A worker's memory, as a user's binary has it. This package holds a worker and one no-op task
//! and depends on docket with its default features only: built by itself (not beside the tests,
//! whose features a build of both would share), it is what a user ships. The bench's worker
//! child is the bench binary, harness and all, so its peak RSS also counts pages of code no user
//! has.
//!
//! It stores 100,000 no-op tasks from a child process (so that storing them costs the worker
//! nothing), drains them with one worker at concurrency 1,000, and prints the worker's peak
//! resident set and its parts. By hand, on a Redis of your own on loopback:
//!
//! ```sh
//! redis-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes
//! cargo build --release -p worker-rss && target/release/worker-rss redis://127.0.0.1:6390
//! cargo build --profile lean -p worker-rss && target/lean/worker-rss redis://127.0.0.1:6390
//! ```
//!
//! The `lean` profile is the release profile with whole-program optimisation (`lto = "fat"`,
//! `codegen-units = 1`), as a service may build its workers.

use std::process::Command;

use docket::{Docket, Worker};

/// How many tasks are drained.
const TASKS: u64 = 100_000;

/// How many tasks one `add_many` stores.
const BATCH: u64 = 5_000;

/// The worker's concurrency.
const CONCURRENCY: usize = 1_000;

/// Does nothing: what is measured is the worker alone.
#[docket::task]
async fn noop(n: u64) {
    std::hint::black_box(n);
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: worker-rss redis://127.0.0.1:PORT")?;
    if !is_loopback(&url) {
        return Err(
            format!("`{url}` is not a loopback address (127.0.0.1, ::1, localhost)").into(),
        );
    }
    let name = format!("worker-rss-{}", std::process::id());
    if args.next().as_deref() == Some("--fill") {
        let name = args.next().ok_or("--fill needs the docket's name")?;
        let docket = Docket::connect(&url).name(name).await?;
        for first in (0..TASKS).step_by(BATCH as usize) {
            docket
                .add_many((first..first + BATCH).map(Noop::schedule))
                .await?;
        }
        return Ok(());
    }
    let filled = Command::new(std::env::current_exe()?)
        .args([&url, "--fill", &name])
        .status()?;
    if !filled.success() {
        return Err(format!("storing the tasks failed: {filled}").into());
    }
    let docket = Docket::connect(&url).name(name).await?;
    Worker::new(&docket)
        .concurrency(CONCURRENCY)
        .run_until_finished()
        .await?;
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = |field: &str| -> Result<u64, String> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or(format!("no {field} in /proc/self/status"))
    };
    println!(
        "worker-rss: {TASKS} no-op tasks drained by one worker at concurrency {CONCURRENCY}\n"
    );
    println!("| figure | MiB |\n|---|--:|");
    for (figure, field) in [
        ("peak resident set (VmHWM)", "VmHWM"),
        ("resident set at the end (VmRSS)", "VmRSS"),
        (
            "… of which pages of mapped files: code, shared (RssFile)",
            "RssFile",
        ),
        ("… of which the worker's own data (RssAnon)", "RssAnon"),
    ] {
        println!("| {figure} | {:.1} |", kib(field)? as f64 / 1024.0);
    }
    Ok(())
}

/// Whether `url` names a server on this machine's loopback interface.
fn is_loopback(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let host_port = rest.split(['/', '?']).next().unwrap_or_default();
    let host = host_port
        .rsplit_once('@')
        .map_or(host_port, |(_, host)| host);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    matches!(host, "127.0.0.1" | "::1" | "localhost")
}
