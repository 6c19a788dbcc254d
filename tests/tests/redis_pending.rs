//! What a worker leaves pending on Redis, for managed services that limit it: never more than
//! 1,000 entries pending to one worker, at any concurrency; stopping needs no `CLIENT`
//! command (Upstash has no `CLIENT UNBLOCK`); and what a stopping worker was handed but never
//! started runs at once elsewhere, not a redelivery timeout later.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use docket::{Docket, Worker};
use tests::redis_server::{RedisServer, Reply, unique_name};
use tokio::sync::Notify;

/// Runs started of `hold`.
static STARTED: AtomicUsize = AtomicUsize::new(0);
/// Lets every `hold` finish.
static RELEASE: Notify = Notify::const_new();

#[docket::task]
async fn hold(_n: u32) {
    STARTED.fetch_add(1, Ordering::SeqCst);
    RELEASE.notified().await;
}

/// Runs of `note`.
static NOTED: AtomicUsize = AtomicUsize::new(0);

#[docket::task]
async fn note(_n: u32) {
    NOTED.fetch_add(1, Ordering::SeqCst);
}

async fn open(server: &RedisServer, name: &str) -> Docket {
    Docket::connect(server.url())
        .name(name)
        .redelivery_timeout(Duration::from_secs(3600))
        .await
        .unwrap()
}

/// Entries pending to `consumer`, from `XPENDING`'s summary by consumer.
fn pending_to(server: &RedisServer, name: &str, consumer: &str) -> i64 {
    let stream = format!("{{{name}}}:stream");
    let Reply::Array(summary) = server.command(&["XPENDING", &stream, "workers"]) else {
        panic!("XPENDING answered something else");
    };
    let Some(Reply::Array(consumers)) = summary.get(3) else {
        return 0;
    };
    for row in consumers {
        if let Reply::Array(row) = row
            && let (Some(Reply::Bulk(name)), Some(Reply::Bulk(count))) = (row.first(), row.get(1))
            && name == consumer
        {
            return count.parse().unwrap();
        }
    }
    0
}

fn calls_of(server: &RedisServer, command: &str) -> u64 {
    server.command_stats().get(command).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_never_holds_more_than_a_thousand_pending_entries() {
    let server = RedisServer::start();
    let name = unique_name("pending-cap");
    let docket = open(&server, &name).await;
    docket
        .add_many((0..1200).map(Hold::schedule))
        .await
        .unwrap();
    let worker = Worker::new(&docket).concurrency(1500);
    let id = worker.id().to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));

    let deadline = Instant::now() + Duration::from_secs(30);
    while STARTED.load(Ordering::SeqCst) < 1000 {
        assert!(Instant::now() < deadline, "1,000 runs did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give the worker time to read more, were it to.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pending = pending_to(&server, &name, &id);
    assert_eq!(STARTED.load(Ordering::SeqCst), 1000, "runs past the cap");
    assert!(pending <= 1000, "{pending} entries pending to one worker");

    // As runs end, the rest are read.
    let release = tokio::spawn(async {
        loop {
            RELEASE.notify_waiters();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !docket.snapshot().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the rest did not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    release.abort();
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    assert_eq!(STARTED.load(Ordering::SeqCst), 1200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_gives_back_what_it_never_started_and_sends_no_client_command() {
    let server = RedisServer::start();
    let name = unique_name("pending-stop");
    let docket = open(&server, &name).await;
    let stream = format!("{{{name}}}:stream");
    server.command(&["XGROUP", "CREATE", &stream, "workers", "0", "MKSTREAM"]);
    let first = Worker::new(&docket);
    let id = first.id().to_owned();
    Note::schedule(1).on(&docket).await.unwrap();
    // The entry reaches the first worker's consumer without the worker seeing it, as the
    // entries of a read it drops when it stops do.
    server.command(&[
        "XREADGROUP",
        "GROUP",
        "workers",
        &id,
        "COUNT",
        "1",
        "STREAMS",
        &stream,
        ">",
    ]);
    assert_eq!(pending_to(&server, &name, &id), 1);
    server.command(&["CONFIG", "RESETSTAT"]);

    // It runs a while, blocked in its read, and stops.
    first
        .run_until(tokio::time::sleep(Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(
        NOTED.load(Ordering::SeqCst),
        0,
        "the first worker never saw it"
    );
    assert_eq!(pending_to(&server, &name, &id), 0, "given back");

    // Another worker runs it now, not an hour (the redelivery timeout) later.
    let started = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(10),
        Worker::new(&docket).run_until_finished(),
    )
    .await
    .expect("the task given back ran at once")
    .unwrap();
    assert_eq!(NOTED.load(Ordering::SeqCst), 1);
    assert!(started.elapsed() < Duration::from_secs(10));
    let client =
        ["client|unblock", "client|id", "client|kill"].map(|command| calls_of(&server, command));
    assert_eq!(client, [0, 0, 0], "CLIENT commands sent");
}

/// The lines of `CLIENT LIST`, less the one asking's.
fn client_list(server: &RedisServer) -> Vec<String> {
    let Reply::Bulk(list) = server.command(&["CLIENT", "LIST"]) else {
        panic!("CLIENT LIST answered something else");
    };
    list.lines()
        .filter(|line| !line.trim().is_empty() && !line.contains(" cmd=client|list "))
        .map(str::to_owned)
        .collect()
}

/// Clients connected to the server, less the one asking.
fn clients(server: &RedisServer) -> usize {
    client_list(server).len()
}

/// A worker whose future is dropped, not stopped, still ends its helpers: its signals feed and
/// its blocked read close their connections; only the docket's own shared connection stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_worker_future_ends_its_helpers() {
    let server = RedisServer::start();
    let docket = open(&server, &unique_name("pending-drop")).await;
    docket.snapshot().await.unwrap();
    // Connecting asked the server whether it is a cluster node, on a connection of its own that
    // closes once its task sees it dropped: counted while it lingers, it would stand for one of
    // the worker's.
    let deadline = Instant::now() + Duration::from_secs(10);
    while client_list(&server)
        .iter()
        .any(|line| line.contains(" cmd=info "))
    {
        assert!(
            Instant::now() < deadline,
            "the cluster probe's connection stayed open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let alone = clients(&server);

    let worker = tokio::spawn(Worker::new(&docket).run());
    let deadline = Instant::now() + Duration::from_secs(10);
    while clients(&server) < alone + 2 {
        assert!(Instant::now() < deadline, "the worker did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.abort();
    let _ = worker.await;

    let deadline = Instant::now() + Duration::from_secs(10);
    while clients(&server) > alone {
        assert!(
            Instant::now() < deadline,
            "{} connections left open by a dropped worker",
            clients(&server) - alone
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
