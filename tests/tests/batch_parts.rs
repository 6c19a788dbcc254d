//! A batch too large for one request goes in several, one after the other: when one fails,
//! `Error::BatchIncomplete` counts exactly the tasks stored before it, and none after it is.
//!
//! One test in its own binary: the failpoint it sets answers every Redis call of the process.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use docket::failpoint::{self, Fault};
use docket::{Docket, Error};
use tests::redis_server::{RedisServer, Reply, unique_name};

#[docket::task]
async fn upload(_n: u32, _bytes: String) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_part_of_a_large_batch_leaves_exactly_the_parts_before_it_stored() {
    let server = RedisServer::start();
    let name = unique_name("parts");
    let docket = Docket::connect(server.url())
        .name(name.as_str())
        .in_process_fallback(false)
        .await
        .unwrap();
    // The stream and group first, so that the batch's calls are the only ones below.
    docket.snapshot().await.unwrap();

    // Three tasks of 300 KB: each is a request of its own (a request holds about 512 KiB).
    let bytes = "x".repeat(300_000);
    let sends = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&sends);
    failpoint::set(move |site| {
        (site == "redis.send" && counted.fetch_add(1, Ordering::SeqCst) == 1).then_some(Fault::Fail)
    });
    let result = docket
        .add_many((0..3).map(|n| Upload::schedule(n, bytes.clone())))
        .await;
    failpoint::clear();

    match result {
        Err(Error::BatchIncomplete { stored, .. }) => assert_eq!(stored, 1),
        other => panic!("expected BatchIncomplete, got {other:?}"),
    }
    assert!(sends.load(Ordering::SeqCst) >= 2);
    let stream = format!("{{{name}}}:stream");
    assert_eq!(server.command(&["XLEN", &stream]), Reply::Integer(1));
}
