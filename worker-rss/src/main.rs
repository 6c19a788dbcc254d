//! A worker's memory, as a user's binary has it. This package holds a worker and one no-op task
//! and depends on docket with its default features only: built by itself (not beside the tests,
//! whose features a build of both would share), it is what a user ships. The bench's worker
//! child is the bench binary, harness and all, so its peak RSS also counts pages of code no user
//! has.
//!
//! It stores 100,000 no-op tasks from a child process (so that storing them costs the worker
//! nothing), drains them with one worker at concurrency 1,000, and prints the worker's peak
//! resident set and its parts, with the drain's rate and the worker's CPU time per task (its
//! own, on all its threads, from `/proc/self/stat`: a figure that the machine's other load
//! moves far less than a rate). By hand, on a Redis of your own on loopback:
//!
//! ```sh
//! redis-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes
//! cargo build --release -p worker-rss && target/release/worker-rss redis://127.0.0.1:6390
//! cargo build --profile lean -p worker-rss && target/lean/worker-rss redis://127.0.0.1:6390
//! ```
//!
//! The `lean` profile is the release profile with whole-program optimisation (`lto = "fat"`,
//! `codegen-units = 1`), as a service may build its workers.
//!
//! `--tasks N` and `--concurrency C` change the drain (100,000 tasks at 1,000 by default). A
//! smaller drain is what to profile the worker's instructions with, Redis outside the profiler:
//!
//! ```sh
//! valgrind --tool=callgrind target/release/worker-rss redis://127.0.0.1:6390 --tasks 20000 --concurrency 100
//! ```

use std::process::Command;

use docket::{Docket, Worker};

/// How many tasks are drained, unless `--tasks` says otherwise.
const TASKS: u64 = 100_000;

/// How many tasks one `add_many` stores.
const BATCH: u64 = 5_000;

/// The worker's concurrency, unless `--concurrency` says otherwise.
const CONCURRENCY: usize = 1_000;

/// Does nothing: what is measured is the worker alone.
#[docket::task]
async fn noop(n: u64) {
    std::hint::black_box(n);
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    const USAGE: &str = "usage: worker-rss redis://127.0.0.1:PORT [--tasks N] [--concurrency C]";
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or(USAGE)?;
    if !is_loopback(&url) {
        return Err(
            format!("`{url}` is not a loopback address (127.0.0.1, ::1, localhost)").into(),
        );
    }
    let (mut tasks, mut concurrency, mut fill) = (TASKS, CONCURRENCY, None);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or(format!("{flag} needs a value; {USAGE}"))?;
        match flag.as_str() {
            "--tasks" => {
                tasks = value
                    .parse()
                    .map_err(|_| format!("--tasks {value}: not a count"))?
            }
            "--concurrency" => {
                concurrency = value
                    .parse()
                    .map_err(|_| format!("--concurrency {value}: not a count"))?;
            }
            // The child that stores the tasks, given the docket's name.
            "--fill" => fill = Some(value),
            _ => return Err(format!("unknown flag {flag}; {USAGE}").into()),
        }
    }
    if let Some(name) = fill {
        let docket = Docket::connect(&url).name(name).await?;
        for first in (0..tasks).step_by(BATCH as usize) {
            let last = (first + BATCH).min(tasks);
            docket.add_many((first..last).map(Noop::schedule)).await?;
        }
        return Ok(());
    }
    let name = format!("worker-rss-{}", std::process::id());
    let filled = Command::new(std::env::current_exe()?)
        .args([&url, "--fill", &name, "--tasks", &tasks.to_string()])
        .status()?;
    if !filled.success() {
        return Err(format!("storing the tasks failed: {filled}").into());
    }
    let docket = Docket::connect(&url).name(name).await?;
    let (cpu_before, started) = (cpu_seconds()?, std::time::Instant::now());
    Worker::new(&docket)
        .concurrency(concurrency)
        .run_until_finished()
        .await?;
    let cpu_after = cpu_seconds()?;
    let took = started.elapsed();
    let per_task = |seconds: f64| seconds * 1e6 / tasks as f64;
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = |field: &str| -> Result<u64, String> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or(format!("no {field} in /proc/self/status"))
    };
    println!(
        "worker-rss: {tasks} no-op tasks drained by one worker at concurrency {concurrency}\n"
    );
    println!("| figure | value |\n|---|--:|");
    println!(
        "| drain (wall time) | {:.0} tasks/s |",
        tasks as f64 / took.as_secs_f64()
    );
    println!(
        "| the worker's CPU time per task, all threads: user | {:.1} µs |",
        per_task(cpu_after.0 - cpu_before.0)
    );
    println!(
        "| … and system (the kernel: sockets, wake-ups) | {:.1} µs |",
        per_task(cpu_after.1 - cpu_before.1)
    );
    for (figure, field) in [
        ("peak resident set (VmHWM)", "VmHWM"),
        ("resident set at the end (VmRSS)", "VmRSS"),
        (
            "… of which pages of mapped files: code, shared (RssFile)",
            "RssFile",
        ),
        ("… of which the worker's own data (RssAnon)", "RssAnon"),
    ] {
        println!("| {figure} | {:.1} MiB |", kib(field)? as f64 / 1024.0);
    }
    Ok(())
}

/// This process's CPU time so far, user and system, every thread (not the child that stored
/// the tasks), from `/proc/self/stat` in clock ticks of 1/100 s.
fn cpu_seconds() -> Result<(f64, f64), String> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|error| error.to_string())?;
    // The fields after the command name (in parentheses, which may hold spaces): utime and
    // stime are the 14th and 15th fields of the line, the 12th and 13th after the name.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: Vec<u64> = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse().ok())
        .collect();
    match ticks[..] {
        [user, system] => Ok((user as f64 / 100.0, system as f64 / 100.0)),
        _ => Err("no utime and stime in /proc/self/stat".into()),
    }
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
