//! Batches of any size (audit R3): `add_many` stores a batch in chunks of 500, one after the
//! other, each task with its own outcome. From the first chunk that cannot reach Redis on, the
//! rest runs in-process: the chunks before it are in the queue, and nothing runs twice.
//!
//! One test in this binary: the failpoint rule it sets is process-wide.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use docket::failpoint::{self, Fault};
use docket::{Docket, Placement, Worker};
use tests::redis_server::{RedisServer, unique_name};

static RAN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

#[docket::task]
async fn batched(n: u32) {
    RAN.lock().unwrap().push(n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_the_chunk_that_cannot_reach_redis_on_the_batch_runs_in_process() {
    const TASKS: u32 = 1200; // three chunks of at most 500
    let server = RedisServer::start();
    let docket = Docket::connect(server.url())
        .name(unique_name("batches"))
        .await
        .unwrap();
    // The docket reads its layout with its first operation: then the batch's calls are the
    // only ones below.
    docket.snapshot().await.unwrap();
    // The second call sent to Redis (the second chunk) fails before it is sent.
    let calls = AtomicUsize::new(0);
    failpoint::set(move |site| {
        (site == "redis.send" && calls.fetch_add(1, Ordering::SeqCst) == 1).then_some(Fault::Fail)
    });
    let receipts = docket.add_many((0..TASKS).map(Batched::schedule)).await;
    failpoint::clear();
    let receipts = receipts.unwrap();
    assert_eq!(receipts.len(), TASKS as usize);

    let placements: Vec<Placement> = receipts.iter().map(|r| r.placement()).collect();
    let fell_back = placements
        .iter()
        .filter(|p| **p == Placement::Fallback)
        .count();
    assert_eq!(fell_back, 700, "the second chunk and the rest fell back");
    assert!(placements[..500].iter().all(|p| *p == Placement::Queue));
    assert!(placements[500..].iter().all(|p| *p == Placement::Fallback));

    tokio::time::timeout(
        Duration::from_secs(60),
        Worker::new(&docket).run_until_finished(),
    )
    .await
    .expect("the worker finishes")
    .unwrap();
    let ran = RAN.lock().unwrap().clone();
    let distinct: HashSet<u32> = ran.iter().copied().collect();
    assert_eq!(distinct.len(), TASKS as usize, "every task ran");
    assert_eq!(ran.len(), TASKS as usize, "and ran once");
}
