//! The default docket (`MyTask::schedule(..)` without `.on(..)`) works from every tokio runtime:
//! several `#[tokio::test]`s in one binary, each on its own runtime, or a program that makes and
//! drops runtimes in a loop, all schedule into the queue, never into the silent in-process
//! fallback.
//!
//! `DOCKET_URL` must be set before the default docket is first made, and a test cannot set the
//! environment of its own process, so the parent test runs this binary again, with the
//! environment pointing at a private Redis, for the `child_` tests (ignored in a plain run).

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use docket::{Docket, Placement, Worker};
use tests::redis_server::{RedisServer, unique_name};

static RAN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

#[docket::task]
async fn bump(n: u32) {
    RAN.lock().unwrap().push(n);
}

async fn schedule_through_the_default_docket(n: u32) {
    let scheduled = Bump::schedule(n).await.unwrap();
    assert_eq!(scheduled.placement(), Placement::Queue, "task {n}");
}

#[tokio::test]
#[ignore = "run by the parent test, with DOCKET_URL set"]
async fn child_first_runtime() {
    schedule_through_the_default_docket(1).await;
}

#[tokio::test]
#[ignore = "run by the parent test, with DOCKET_URL set"]
async fn child_second_runtime() {
    schedule_through_the_default_docket(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the parent test, with DOCKET_URL set"]
async fn child_third_runtime() {
    schedule_through_the_default_docket(3).await;
}

#[test]
#[ignore = "run by the parent test, with DOCKET_URL set"]
fn child_runtimes_made_and_dropped_in_a_loop() {
    for n in 10..15 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(schedule_through_the_default_docket(n));
        drop(runtime);
    }
}

/// Run the `child_` tests in a process of their own whose default docket is `name` on `url`.
fn run_children(url: &str, name: &str, threads: &str) {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--test-threads", threads, "child_"])
        .env("DOCKET_URL", url)
        .env("DOCKET_NAME", name)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the children failed with {threads} test thread(s):\n{printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("4 passed"), "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_runtime_schedules_into_the_queue_through_the_default_docket() {
    let server = RedisServer::start();
    for threads in ["1", "4"] {
        let name = unique_name("default");
        run_children(&server.url(), &name, threads);
        // Every task is in Redis, for a worker (this process) to run.
        let docket = Docket::connect(server.url()).name(&name).await.unwrap();
        RAN.lock().unwrap().clear();
        tokio::time::timeout(
            Duration::from_secs(30),
            Worker::new(&docket).run_until_finished(),
        )
        .await
        .expect("the worker finishes")
        .unwrap();
        let mut ran = RAN.lock().unwrap().clone();
        ran.sort_unstable();
        assert_eq!(ran, [1, 2, 3, 10, 11, 12, 13, 14], "{threads} thread(s)");
    }
}
