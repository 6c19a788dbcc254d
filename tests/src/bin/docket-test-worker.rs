//! A worker process for the crash and fleet tests: the tests start it, SIGKILL it mid-task, and
//! start another, or read its tasks' results and cancel them from their own process. Its tasks
//! append `start N PID` and `done N PID` lines (`multiply A B PID` for `multiply`) to the file
//! named by `DOCKET_TEST_LOG`, so the test can tell what ran, where, and whether it finished.
//!
//! Environment: `DOCKET_URL`, `DOCKET_NAME`, `DOCKET_WORKER_CONCURRENCY` as usual;
//! `DOCKET_TEST_LOG` (required), `DOCKET_TEST_REDELIVERY_MS` (default 1000) and
//! `DOCKET_TEST_MAX_DELIVERIES` (default 5).

use std::io::Write;
use std::time::Duration;

/// Record the start, hold for `hold_ms`, record the end.
#[docket::task]
async fn crash_probe(n: u32, hold_ms: u64) -> Result<(), std::io::Error> {
    record(&format!("start {n} {}", std::process::id()))?;
    tokio::time::sleep(Duration::from_millis(hold_ms)).await;
    record(&format!("done {n} {}", std::process::id()))
}

/// Multiply, keeping the product as the task's result, for a test in another process to read.
#[docket::task(result)]
async fn multiply(a: u64, b: u64) -> Result<u64, std::io::Error> {
    record(&format!("multiply {a} {b} {}", std::process::id()))?;
    Ok(a * b)
}

/// [`crash_probe`], keeping its state and returning `n` as its result.
#[docket::task(result)]
async fn hold_keeping_state(n: u32, hold_ms: u64) -> Result<u32, std::io::Error> {
    record(&format!("start {n} {}", std::process::id()))?;
    tokio::time::sleep(Duration::from_millis(hold_ms)).await;
    record(&format!("done {n} {}", std::process::id()))?;
    Ok(n)
}

/// Kill the worker process from inside a task, as a task that aborts or runs out of memory would.
#[docket::task]
async fn exit_process() {
    record(&format!("exiting {}", std::process::id())).ok();
    std::process::exit(3);
}

fn record(line: &str) -> Result<(), std::io::Error> {
    let path = std::env::var("DOCKET_TEST_LOG").map_err(std::io::Error::other)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // One write per line: appends of a few bytes land whole.
    file.write_all(format!("{line}\n").as_bytes())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DOCKET_URL")?;
    let name = std::env::var("DOCKET_NAME")?;
    let redelivery = std::env::var("DOCKET_TEST_REDELIVERY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(1000);
    let max_deliveries = std::env::var("DOCKET_TEST_MAX_DELIVERIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    let docket = docket::Docket::connect(url)
        .name(name)
        .redelivery_timeout(Duration::from_millis(redelivery))
        .max_deliveries(max_deliveries)
        .await?;
    let concurrency = std::env::var("DOCKET_WORKER_CONCURRENCY")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    record(&format!("worker {}", std::process::id()))?;
    docket::Worker::new(&docket)
        .concurrency(concurrency)
        .run()
        .await?;
    record(&format!("stopped {}", std::process::id()))?;
    Ok(())
}
