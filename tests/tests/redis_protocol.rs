//! The delivery protocol on Redis, one regression test per finding of the Redis protocol audit
//! (`shared/reviews/redis-protocol-audit.md`, R1–R16): outages, lost replies, stale copies,
//! cancels, set-aside copies, large batches and many pending entries leave every task run
//! exactly as promised. Where a finding applies to the memory backend too, its test runs on both.
//!
//! Some tests play a worker directly on the server (`XREADGROUP` as a consumer that never runs
//! what it read): the protocol must hold against any sequence Redis allows, not only those one
//! docket worker happens to produce. The tests that need injected faults (`failpoints`) are in
//! `redis_protocol/faults.rs`.

#[path = "redis_protocol/faults.rs"]
mod faults;

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use docket::{Disposition, Docket, Task, Worker, strike::Strike};
use tests::background::Background;
use tests::probe::Probe;
use tests::redis_server::{RedisServer, Reply, unique_name};
use tests::{PATIENCE, eventually, finish};

// ---------------------------------------------------------------------------------------------
// Tasks

/// Records one run, labelled `label`.
#[docket::task]
async fn note(probe: String, label: String) {
    Probe::find(&probe).start(label).finish();
}

/// Records a run labelled `label` that lasts until the test releases it.
#[docket::task]
async fn hold(probe: String, label: String) {
    let probe = Probe::find(&probe);
    let run = probe.start(label);
    probe.released().await;
    run.finish();
}

/// One run at a time across the docket; `wait`: until the test releases it.
#[docket::task(concurrency = 1)]
async fn one_at_a_time(probe: String, label: String, wait: bool) {
    let probe = Probe::find(&probe);
    let run = probe.start(label);
    if wait {
        probe.released().await;
    }
    run.finish();
}

/// Fails for good: a dead letter at once.
#[docket::task]
async fn fail_for_good(probe: String, label: String) -> Result<(), docket::Fail> {
    Probe::find(&probe).start(label).finish();
    Err(docket::Fail::because("the file is not audio"))
}

/// Probes whose first run is frozen: the thread running it blocks until [`thaw`].
static THAWED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);

/// Block the whole thread (a GC pause, a stopped VM) until the test thaws `probe`.
fn freeze_until_thawed(probe: &str) {
    let deadline = Instant::now() + PATIENCE * 3;
    while !THAWED.lock().unwrap().contains(probe) {
        assert!(Instant::now() < deadline, "never thawed");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn thaw(probe: &Probe) {
    THAWED.lock().unwrap().insert(probe.id());
}

/// The first run freezes its thread until thawed, then fails (to be retried); later runs
/// succeed.
#[docket::task(retries = 1, backoff = "fixed 10ms")]
async fn freeze_then_fail(probe: String) -> Result<(), String> {
    let found = Probe::find(&probe);
    if found.starts() == 0 {
        let _run = found.start("frozen");
        freeze_until_thawed(&probe);
        return Err("failed after a long pause".to_owned());
    }
    found.start("again").finish();
    Ok(())
}

/// As [`freeze_then_fail`], without retries: its failure is a dead letter.
#[docket::task]
async fn freeze_then_fail_once(probe: String) -> Result<(), String> {
    let found = Probe::find(&probe);
    if found.starts() == 0 {
        let _run = found.start("frozen");
        freeze_until_thawed(&probe);
        return Err("failed after a long pause".to_owned());
    }
    found.start("again").finish();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The server side

/// The Redis keys of a docket.
struct Keys {
    stream: String,
    index: String,
    dead: String,
    died: String,
}

fn keys(name: &str) -> Keys {
    let key = |suffix: &str| format!("{{{name}}}:{suffix}");
    Keys {
        stream: key("stream"),
        index: key("index"),
        dead: key("dead"),
        died: key("died"),
    }
}

/// One delivery pending in the consumer group.
#[derive(Debug, Clone)]
struct Pending {
    id: String,
    consumer: String,
    idle: i64,
    deliveries: i64,
}

fn text(reply: &Reply) -> String {
    match reply {
        Reply::Bulk(text) | Reply::Status(text) => text.clone(),
        other => panic!("expected text, got {other:?}"),
    }
}

fn int(reply: &Reply) -> i64 {
    match reply {
        Reply::Integer(n) => *n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

/// The deliveries pending in `stream`'s group (none while there is no group).
fn pending(server: &RedisServer, stream: &str) -> Vec<Pending> {
    match server.try_command(&["XPENDING", stream, "workers", "-", "+", "100000"]) {
        Ok(Reply::Array(rows)) => rows
            .iter()
            .map(|row| match row {
                Reply::Array(fields) => Pending {
                    id: text(&fields[0]),
                    consumer: text(&fields[1]),
                    idle: int(&fields[2]),
                    deliveries: int(&fields[3]),
                },
                other => panic!("XPENDING row {other:?}"),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The pending delivery `id`, if it is pending.
fn pending_entry(server: &RedisServer, stream: &str, id: &str) -> Option<Pending> {
    pending(server, stream).into_iter().find(|row| row.id == id)
}

fn count(server: &RedisServer, command: &[&str]) -> i64 {
    int(&server.command(command))
}

fn hget(server: &RedisServer, hash: &str, field: &str) -> Option<String> {
    match server.command(&["HGET", hash, field]) {
        Reply::Nil => None,
        reply => Some(text(&reply)),
    }
}

/// Make the consumer group, as the first worker would.
fn create_group(server: &RedisServer, stream: &str) {
    server.command(&["XGROUP", "CREATE", stream, "workers", "0", "MKSTREAM"]);
}

/// Read one new entry as `consumer`, which never runs it: a worker that died right after its
/// read, or a read whose reply never reached its worker. Its stream id.
fn read_as(server: &RedisServer, stream: &str, consumer: &str) -> String {
    let reply = server.command(&[
        "XREADGROUP",
        "GROUP",
        "workers",
        consumer,
        "COUNT",
        "1",
        "STREAMS",
        stream,
        ">",
    ]);
    // [[stream, [[id, fields]]]]
    let Reply::Array(streams) = reply else {
        panic!("nothing to read: {reply:?}")
    };
    let Reply::Array(stream) = &streams[0] else {
        panic!("{streams:?}")
    };
    let Reply::Array(entries) = &stream[1] else {
        panic!("{stream:?}")
    };
    let Reply::Array(entry) = &entries[0] else {
        panic!("{entries:?}")
    };
    text(&entry[0])
}

/// The stream id `key`'s index entry names, its mark (`g`, `x`) taken off.
fn indexed_id(server: &RedisServer, index: &str, key: &str) -> String {
    let current = hget(server, index, key).unwrap_or_else(|| panic!("{key} is not indexed"));
    current.trim_start_matches(['g', 'x']).to_owned()
}

/// The ids of the server's clients whose `CLIENT LIST` line has every field of `fields`, such
/// as `cmd=xread` (the last command) and `flags=b` (blocked in it).
fn clients_with(server: &RedisServer, fields: &[&str]) -> Vec<String> {
    let Reply::Bulk(list) = server.command(&["CLIENT", "LIST"]) else {
        panic!("CLIENT LIST did not answer with text");
    };
    list.lines()
        .filter(|line| {
            fields
                .iter()
                .all(|wanted| line.split(' ').any(|field| field == *wanted))
        })
        .filter_map(|line| line.split(' ').find_map(|field| field.strip_prefix("id=")))
        .map(str::to_owned)
        .collect()
}

async fn open_redis(server: &RedisServer, prefix: &str) -> (Docket, String) {
    let name = unique_name(prefix);
    let docket = Docket::connect(server.url())
        .name(&name)
        .in_process_fallback(false)
        .await
        .expect("open a Redis docket");
    (docket, name)
}

async fn stop_all(workers: impl IntoIterator<Item = Background>) {
    for worker in workers {
        worker.stop().await;
    }
}

/// Until the snapshot shows nothing queued, scheduled, running or held.
async fn until_empty(docket: &Docket) {
    eventually("the docket to be empty", PATIENCE, async || {
        docket.snapshot().await.is_ok_and(|s| s.is_empty())
    })
    .await;
}

fn queued_keys(snapshot: &docket::inspect::Snapshot) -> BTreeSet<String> {
    snapshot
        .queued
        .iter()
        .map(|task| task.key.clone())
        .collect()
}

fn running_keys(snapshot: &docket::inspect::Snapshot) -> BTreeSet<String> {
    snapshot
        .running
        .iter()
        .map(|task| task.key.clone())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests on both backends

/// One `#[tokio::test]` per behaviour on the memory backend and one on Redis (a private server
/// each), every behaviour an `async fn(Docket)` of this module.
macro_rules! on_both_backends {
    ($($behaviour:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    super::$behaviour(super::open_memory().await).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let server = tests::redis_server::RedisServer::start();
                    let (docket, _) = super::open_redis(&server, "both").await;
                    super::$behaviour(docket).await;
                }
            )*
        }
    };
}

async fn open_memory() -> Docket {
    Docket::connect("memory://")
        .name(unique_name("memory"))
        .await
        .expect("open a memory docket")
}

on_both_backends!(
    cancel_removes_a_task_held_beside_a_newer_one,
    a_replacement_scheduled_while_its_key_runs_waits_for_a_concurrency_slot,
);

/// R6c: a strike holds a task; a newer one is scheduled under its key with `replace`, for later
/// (added beside the held copy). `cancel` must remove both: restoring the strike runs nothing.
async fn cancel_removes_a_task_held_beside_a_newer_one(docket: Docket) {
    let probe = Probe::new();
    let strike = Strike::task(Note::NAME);
    assert!(docket.strike(strike.clone()).await.unwrap());
    Note::schedule(probe.id(), "held".into())
        .key("k")
        .on(&docket)
        .await
        .unwrap();
    let worker = Background::start(Worker::new(&docket));
    eventually("the task to be held", PATIENCE, async || {
        docket.snapshot().await.unwrap().held.len() == 1
    })
    .await;
    Note::schedule(probe.id(), "newer".into())
        .key("k")
        .replace()
        .after(Duration::from_secs(3600))
        .on(&docket)
        .await
        .unwrap();

    assert!(docket.cancel("k").await.unwrap());
    let restored = docket.restore(strike).await.unwrap();

    assert_eq!(restored, 0, "the held copy survived the cancel");
    let snapshot = docket.snapshot().await.unwrap();
    assert!(snapshot.is_empty(), "{snapshot:#?}");
    worker.stop().await;
    assert_eq!(probe.starts(), 0, "{:#?}", probe.runs());
}

/// R15: with `concurrency = 1`, a `replace` scheduled while a run of the key goes on is a
/// second run that needs the slot too: it waits until the first ends, never runs beside it.
async fn a_replacement_scheduled_while_its_key_runs_waits_for_a_concurrency_slot(docket: Docket) {
    let probe = Probe::new();
    let marker = Probe::new();
    OneAtATime::schedule(probe.id(), "first".into(), true)
        .key("k")
        .on(&docket)
        .await
        .unwrap();
    let worker = Background::start(Worker::new(&docket).concurrency(4));
    probe
        .until("the first run starts", |p| p.starts() == 1)
        .await;

    OneAtATime::schedule(probe.id(), "second".into(), true)
        .key("k")
        .replace()
        .on(&docket)
        .await
        .unwrap();
    // Taken after the second (it is due later), so once it ran the second was taken too: it
    // then either runs, or waits for the slot, queued.
    Note::schedule(marker.id(), "after the second".into())
        .on(&docket)
        .await
        .unwrap();
    eventually(
        "the second run to start or wait for the slot",
        PATIENCE,
        async || {
            probe.starts() == 2
                || (marker.finishes() == 1
                    && queued_keys(&docket.snapshot().await.unwrap()).contains("k"))
        },
    )
    .await;
    assert_eq!(probe.most_running(), 1, "{:#?}", probe.runs());

    probe.release(1);
    probe
        .until("the second run starts", |p| p.starts() == 2)
        .await;
    probe.release(1);
    probe.until("both runs end", |p| p.finishes() == 2).await;
    worker.stop().await;
    assert_eq!(probe.labels(), ["first", "second"]);
    assert_eq!(probe.most_running(), 1, "{:#?}", probe.runs());
}

// ---------------------------------------------------------------------------------------------
// R1: outages, lost replies and live owners' reclaims are no deliveries

/// Until the owner has renewed `id` since the last outage: pending to `owner`, idle under the
/// redelivery timeout, and still at its first delivery.
async fn until_renewed(
    server: &RedisServer,
    docket: &Docket,
    stream: &str,
    id: &str,
    owner: &str,
    timeout: Duration,
) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let Some(entry) = pending_entry(server, stream, id) else {
            panic!(
                "the running task is no longer pending to its live worker; dead letters: {:#?}",
                docket.dead_letters().await
            );
        };
        assert_eq!(
            entry.consumer, owner,
            "taken from its live worker: {entry:?}"
        );
        assert_eq!(entry.deliveries, 1, "counted as delivered again: {entry:?}");
        if entry.idle < timeout.as_millis() as i64 {
            return;
        }
        assert!(Instant::now() < deadline, "never renewed: {entry:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// R1: a task whose worker stays alive and renews it is neither taken over nor counted towards
/// `max_deliveries` when Redis restarts (down longer than the redelivery timeout, so the task's
/// idle time is past it when Redis is back) or cuts every connection, even with
/// `max_deliveries(1)`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_task_survives_redis_restarts_and_cuts_without_being_counted_or_taken_over() {
    const TIMEOUT: Duration = Duration::from_secs(1);
    let mut server = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]);
    let name = unique_name("restarts");
    let docket = Docket::connect(server.url())
        .name(&name)
        .redelivery_timeout(TIMEOUT)
        .max_deliveries(1)
        .in_process_fallback(false)
        .await
        .unwrap();
    let stream = keys(&name).stream;
    let probe = Probe::new();
    Hold::schedule(probe.id(), "long".into())
        .key("long")
        .on(&docket)
        .await
        .unwrap();
    let worker = Worker::new(&docket);
    let worker_id = worker.id().to_owned();
    let worker = Background::start(worker);
    probe.until("the task starts", |p| p.starts() == 1).await;
    let id = indexed_id(&server, &keys(&name).index, "long");

    for _ in 0..2 {
        server.kill();
        // Down for longer than the redelivery timeout: the task's idle time (wall clock, kept
        // in the append-only file) is past it when the server is back.
        tokio::time::sleep(TIMEOUT * 3 / 2).await;
        server.restart();
        until_renewed(&server, &docket, &stream, &id, &worker_id, TIMEOUT).await;
        for _ in 0..3 {
            server.command(&["CLIENT", "KILL", "TYPE", "normal"]);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        until_renewed(&server, &docket, &stream, &id, &worker_id, TIMEOUT).await;
    }

    probe.release(1);
    probe.until("the task ends", |p| p.finishes() == 1).await;
    eventually("its acknowledgement", PATIENCE, async || {
        count(&server, &["XLEN", &stream]) == 0
    })
    .await;
    worker.stop().await;
    assert_eq!(probe.starts(), 1, "{:#?}", probe.runs());
    assert!(docket.dead_letters().await.unwrap().is_empty());
}

/// Counts the events of one message on a worker's thread (as a tracing subscriber of it):
/// `settling failed; trying again`, say.
#[derive(Clone)]
pub(crate) struct Events {
    message: &'static str,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Events {
    pub(crate) fn of(message: &'static str) -> Events {
        Events {
            message,
            count: std::sync::Arc::default(),
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn dispatch(&self) -> tracing::Dispatch {
        use tracing_subscriber::layer::SubscriberExt;
        tracing::Dispatch::new(tracing_subscriber::registry().with(self.clone()))
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(&'static str, bool);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.1 = format!("{value:?}") == self.0;
                }
            }
        }
        let mut message = Message(self.message, false);
        event.record(&mut message);
        if message.1 {
            self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// R1: a task that finished while Redis was down, its acknowledgement not yet through, is
/// neither run again nor counted (with `max_deliveries(1)`, buried) when Redis comes back: its
/// worker still holds the delivery, and renews it, until it is settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_finished_during_an_outage_is_acknowledged_not_run_again() {
    let mut server = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]);
    let name = unique_name("finished");
    let docket = Docket::connect(server.url())
        .name(&name)
        .in_process_fallback(false)
        .await
        .unwrap();
    let stream = keys(&name).stream;
    let probe = Probe::new();
    Hold::schedule(probe.id(), "once".into())
        .on(&docket)
        .await
        .unwrap();
    let failures = Events::of("settling failed; trying again");
    let worker = {
        let (url, name) = (server.url(), name.clone());
        ThreadWorker::start_traced(
            &unique_name("finished"),
            async move {
                Docket::connect(url)
                    .name(name)
                    .redelivery_timeout(Duration::from_secs(1))
                    .max_deliveries(1)
                    .await
                    .unwrap()
            },
            10,
            failures.dispatch(),
        )
    };
    probe.until("the task starts", |p| p.starts() == 1).await;

    server.kill();
    let killed = std::time::Instant::now();
    probe.release(1);
    // Its acknowledgement fails, and is tried again after a pause that doubles each time; the
    // worker claims again every 500 ms meanwhile. Redis stays down for three redelivery
    // timeouts, and until the acknowledgement failed twice (each try first waits out the
    // connection's own reconnect attempts: about a second, more on a loaded machine): the
    // delivery idles past the timeout, and the worker still holds it.
    eventually(
        "the acknowledgement to fail twice",
        3 * PATIENCE,
        async || failures.count() >= 2,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(killed.elapsed())).await;
    server.restart();
    // Tried again after a pause of up to 2 s, behind the connection's own reconnects.
    eventually("the acknowledgement", 3 * PATIENCE, async || {
        count(&server, &["XLEN", &stream]) == 0
    })
    .await;

    // Let any copy run again end, so that the worker can stop.
    probe.release(10);
    worker.stop().await;
    assert_eq!(probe.starts(), 1, "{:#?}", probe.runs());
    assert_eq!(count(&server, &["HLEN", &keys(&name).dead]), 0, "buried");
}

/// R1: a delivery whose owner was heard from lately (a read whose reply was lost: the owner
/// lives on, reading and renewing) is taken over at the delivery count it had. With
/// `max_deliveries(1)` it runs, rather than being buried as poison.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taking_over_a_delivery_from_an_owner_heard_from_lately_does_not_count_it() {
    let server = RedisServer::start();
    let name = unique_name("heard");
    let docket = Docket::connect(server.url())
        .name(&name)
        .redelivery_timeout(Duration::from_secs(2))
        .max_deliveries(1)
        .await
        .unwrap();
    let stream = keys(&name).stream;
    let probe = Probe::new();
    create_group(&server, &stream);
    Hold::schedule(probe.id(), "taken over".into())
        .on(&docket)
        .await
        .unwrap();
    let id = read_as(&server, &stream, "alive");
    // Its owner lives on, with other work (here a wake-up entry) that it keeps renewing.
    server.command(&["XADD", &stream, "*", "w", "1"]);
    let other = read_as(&server, &stream, "alive");
    let keep_in_touch =
        || server.command(&["XCLAIM", &stream, "workers", "alive", "0", &other, "JUSTID"]);
    // The entry aged past the timeout meanwhile (`XCLAIM ... IDLE` sets its age).
    server.command(&[
        "XCLAIM", &stream, "workers", "alive", "0", &id, "IDLE", "5000", "JUSTID",
    ]);

    let worker = Background::start(Worker::new(&docket));
    eventually("the task to run or be buried", PATIENCE, async || {
        keep_in_touch();
        probe.starts() == 1 || !docket.dead_letters().await.unwrap().is_empty()
    })
    .await;

    assert!(
        docket.dead_letters().await.unwrap().is_empty(),
        "buried as poison: {:#?}",
        docket.dead_letters().await
    );
    let entry = pending_entry(&server, &stream, &id).expect("the run is pending");
    assert_eq!(entry.deliveries, 1, "{entry:?}");
    assert_ne!(entry.consumer, "alive");
    probe.release(1);
    probe.until("the task ends", |p| p.finishes() == 1).await;
    worker.stop().await;
}

// ---------------------------------------------------------------------------------------------
// R2: a stale copy's settlement

/// A worker on a thread of its own with a current-thread runtime and its own connection: a
/// task that blocks the thread freezes all of it (its renewals, its connection) like a stopped
/// process. Stopped (and joined) with [`ThreadWorker::stop`].
pub(crate) struct ThreadWorker {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<docket::Result<()>>>,
}

impl ThreadWorker {
    /// Start a worker of concurrency `concurrency` on the thread `thread`, on the docket
    /// `docket` resolves to there.
    pub(crate) fn start(
        thread: &str,
        docket: impl Future<Output = Docket> + Send + 'static,
        concurrency: usize,
    ) -> ThreadWorker {
        ThreadWorker::start_traced(thread, docket, concurrency, tracing::Dispatch::none())
    }

    /// As [`ThreadWorker::start`], tracing the worker to `dispatch`.
    pub(crate) fn start_traced(
        thread: &str,
        docket: impl Future<Output = Docket> + Send + 'static,
        concurrency: usize,
        dispatch: tracing::Dispatch,
    ) -> ThreadWorker {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(thread.to_owned())
            .spawn(move || {
                let _traced = tracing::dispatcher::set_default(&dispatch);
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the worker");
                runtime.block_on(async move {
                    let docket = docket.await;
                    Worker::new(&docket)
                        .concurrency(concurrency)
                        .run_until(async {
                            let _ = stopped.await;
                        })
                        .await
                })
            })
            .expect("start the worker's thread");
        ThreadWorker {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stop the worker, letting its tasks end, and wait for its thread.
    pub(crate) async fn stop(mut self) {
        let _ = self.stop.take().expect("stopped once").send(());
        let thread = self.thread.take().expect("stopped once");
        // Polled, not joined on a blocking thread: a worker that never stops fails the test
        // instead of hanging the runtime's shutdown.
        let deadline = Instant::now() + PATIENCE * 3;
        while !thread.is_finished() {
            assert!(Instant::now() < deadline, "the worker did not stop in time");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        thread
            .join()
            .expect("the worker did not panic")
            .expect("the worker ran without error");
    }
}

impl Drop for ThreadWorker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A worker frozen in its first run of a task (its renewals stopped with it) loses the task
/// to another worker, which runs it to success; then the frozen run fails. Returns the docket,
/// server and probe after the frozen worker has settled that failure and stopped.
async fn a_frozen_run_fails_after_another_copy_succeeded(
    schedule: impl AsyncFnOnce(&Docket, &Probe),
) -> (Docket, RedisServer, std::sync::Arc<Probe>, Background) {
    const TIMEOUT: Duration = Duration::from_millis(500);
    let server = RedisServer::start();
    let name = unique_name("stale");
    let connect = {
        let (url, name) = (server.url(), name.clone());
        move || {
            Docket::connect(url.clone())
                .name(&name)
                .redelivery_timeout(TIMEOUT)
                .in_process_fallback(false)
        }
    };
    let docket = connect().await.unwrap();
    let stream = keys(&name).stream;
    let probe = Probe::new();
    schedule(&docket, &probe).await;
    let frozen = {
        let connect = connect.clone();
        ThreadWorker::start(
            &unique_name("frozen"),
            async move { connect().await.unwrap() },
            1,
        )
    };
    probe
        .until("the first run starts", |p| p.starts() == 1)
        .await;

    let other = Background::start(Worker::new(&docket));
    probe
        .until("another worker runs it to the end", |p| p.finishes() == 1)
        .await;
    eventually("its success to be settled", PATIENCE, async || {
        count(&server, &["XLEN", &stream]) == 0 && pending(&server, &stream).is_empty()
    })
    .await;
    thaw(&probe);
    frozen.stop().await;
    (docket, server, probe, other)
}

/// R2: a stale copy's failure does not queue a retry of a task that already succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_copy_failing_after_its_task_succeeded_does_not_retry_it() {
    let (docket, _server, probe, other) =
        a_frozen_run_fails_after_another_copy_succeeded(async |docket, probe| {
            FreezeThenFail::schedule(probe.id())
                .on(docket)
                .await
                .unwrap();
        })
        .await;

    let snapshot = docket.snapshot().await.unwrap();
    other.stop().await;
    assert!(snapshot.is_empty(), "a retry was stored: {snapshot:#?}");
    assert_eq!(probe.labels(), ["frozen", "again"]);
    assert!(docket.dead_letters().await.unwrap().is_empty());
}

/// R2: a stale copy's failure does not make a dead letter of a task that already succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_copy_failing_for_good_after_its_task_succeeded_is_no_dead_letter() {
    let (docket, _server, probe, other) =
        a_frozen_run_fails_after_another_copy_succeeded(async |docket, probe| {
            FreezeThenFailOnce::schedule(probe.id())
                .on(docket)
                .await
                .unwrap();
        })
        .await;

    let dead = docket.dead_letters().await.unwrap();
    let snapshot = docket.snapshot().await.unwrap();
    other.stop().await;
    assert!(dead.is_empty(), "{dead:#?}");
    assert!(snapshot.is_empty(), "{snapshot:#?}");
    assert_eq!(probe.labels(), ["frozen", "again"]);
}

// ---------------------------------------------------------------------------------------------
// R3: large batches

/// R3: `add_many` of 12,000 due tasks stores them all, indexed, and each runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_many_of_twelve_thousand_due_tasks_stores_and_runs_each_once() {
    const TASKS: usize = 12_000;
    let server = RedisServer::start();
    let (docket, name) = open_redis(&server, "batch").await;
    let probe = Probe::new();

    let receipts = docket
        .add_many((0..TASKS).map(|n| Note::schedule(probe.id(), n.to_string())))
        .await
        .expect("the batch is stored");

    assert_eq!(receipts.len(), TASKS);
    assert!(
        receipts
            .iter()
            .all(|receipt| receipt.disposition() == Disposition::Added)
    );
    let keys = keys(&name);
    assert_eq!(count(&server, &["XLEN", &keys.stream]), TASKS as i64);
    assert_eq!(count(&server, &["HLEN", &keys.index]), TASKS as i64);
    tokio::time::timeout(
        PATIENCE * 3,
        Worker::new(&docket).concurrency(500).run_until_finished(),
    )
    .await
    .expect("the worker finished in time")
    .unwrap();
    let labels: BTreeSet<String> = probe.labels().into_iter().collect();
    assert_eq!(labels.len(), TASKS);
    assert_eq!(probe.starts(), TASKS);
}

/// R3: a batch with one task over the payload limit is refused whole, before any part of it is
/// stored (the batch is sent in several calls; none may go out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_with_one_task_over_the_payload_limit_stores_none_of_it() {
    let server = RedisServer::start();
    let name = unique_name("oversized");
    let docket = Docket::connect(server.url())
        .name(&name)
        .max_payload(1024)
        .await
        .unwrap();
    let probe = Probe::new();
    let batch = (0..2_000).map(|n| {
        let label = match n {
            1_999 => "x".repeat(2_000),
            n => n.to_string(),
        };
        Note::schedule(probe.id(), label)
    });

    let error = docket.add_many(batch).await.unwrap_err();

    assert!(
        matches!(error, docket::Error::PayloadTooLarge { .. }),
        "{error:?}"
    );
    assert_eq!(
        server.command(&["EXISTS", &keys(&name).stream]),
        Reply::Integer(0)
    );
    assert!(docket.snapshot().await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// R4: no delivery is orphaned after the hand-over

/// R4: an entry handed to a worker's consumer whose reply never reached it (the worker never
/// saw it) is not renewed by that worker while it stays busy with other work: it ages out and
/// another worker takes it over, at the delivery count it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_its_busy_worker_never_saw_is_taken_over_without_counting() {
    const TIMEOUT: Duration = Duration::from_secs(2);
    let server = RedisServer::start();
    let name = unique_name("unseen");
    let connect = || {
        Docket::connect(server.url())
            .name(&name)
            .redelivery_timeout(TIMEOUT)
            .in_process_fallback(false)
    };
    let docket = connect().await.unwrap();
    let stream = keys(&name).stream;
    let busy = Probe::new();
    let probe = Probe::new();
    Hold::schedule(busy.id(), "busy".into())
        .on(&docket)
        .await
        .unwrap();
    // One slot, taken by the busy task: this worker reads nothing else meanwhile.
    let worker = Worker::new(&docket).concurrency(1);
    let worker_id = worker.id().to_owned();
    let worker = Background::start(worker);
    busy.until("the busy task starts", |p| p.starts() == 1)
        .await;
    Hold::schedule(probe.id(), "unseen".into())
        .on(&docket)
        .await
        .unwrap();
    let id = read_as(&server, &stream, &worker_id);

    let peer = Background::start(Worker::new(&connect().await.unwrap()));
    eventually(
        "the unseen delivery to run while its worker is busy",
        PATIENCE,
        async || probe.starts() == 1,
    )
    .await;

    assert_eq!(busy.finishes(), 0, "the busy task still runs");
    let entry = pending_entry(&server, &stream, &id).expect("its run is pending");
    assert_ne!(entry.consumer, worker_id);
    assert_eq!(entry.deliveries, 1, "{entry:?}");
    probe.release(1);
    busy.release(1);
    eventually("both to be settled", PATIENCE, async || {
        count(&server, &["XLEN", &stream]) == 0
    })
    .await;
    stop_all([worker, peer]).await;
    assert_eq!(probe.starts(), 1);
    assert_eq!(busy.starts(), 1);
}

/// R4: tasks read together with an entry that is no task, whose burial fails (here the dead
/// letters cannot be written), still run at once: sorting what was read loses no delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_read_beside_an_entry_that_cannot_be_buried_still_run_at_once() {
    let server = RedisServer::start();
    let name = unique_name("unburied");
    let docket = Docket::connect(server.url())
        .name(&name)
        // Far longer than the test waits: only a prompt run passes.
        .redelivery_timeout(Duration::from_secs(60))
        .in_process_fallback(false)
        .await
        .unwrap();
    let keys = keys(&name);
    // Writing any dead letter fails (WRONGTYPE).
    server.command(&["SET", &keys.dead, "not a hash"]);
    server.command(&["XADD", &keys.stream, "*", "junk", "1"]);
    let probe = Probe::new();
    for n in 0..3 {
        Note::schedule(probe.id(), n.to_string())
            .on(&docket)
            .await
            .unwrap();
    }

    let worker = Background::start(Worker::new(&docket));
    eventually("the tasks to run", Duration::from_secs(5), async || {
        probe.finishes() == 3
    })
    .await;
    worker.stop().await;
    assert_eq!(probe.starts(), 3);
}

// ---------------------------------------------------------------------------------------------
// R6: a cancel that returns true stops the task

/// R6a: a task delivered to a worker that then died is cancelled: `cancel` answers `true`, the
/// worker that takes the delivery over drops it instead of running it, and the key is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_task_pending_on_a_dead_worker_never_runs() {
    let server = RedisServer::start();
    let name = unique_name("dead-owner");
    let docket = Docket::connect(server.url())
        .name(&name)
        .redelivery_timeout(Duration::from_millis(300))
        .in_process_fallback(false)
        .await
        .unwrap();
    let stream = keys(&name).stream;
    let probe = Probe::new();
    create_group(&server, &stream);
    Note::schedule(probe.id(), "cancelled".into())
        .key("k")
        .on(&docket)
        .await
        .unwrap();
    read_as(&server, &stream, "died-after-reading");

    assert!(docket.cancel("k").await.unwrap());
    let worker = Background::start(Worker::new(&docket));
    eventually(
        "the delivery to be taken over and settled",
        PATIENCE,
        async || pending(&server, &stream).is_empty() && count(&server, &["XLEN", &stream]) == 0,
    )
    .await;
    assert_eq!(
        probe.starts(),
        0,
        "the cancelled task ran: {:#?}",
        probe.runs()
    );

    let again = Note::schedule(probe.id(), "again".into())
        .key("k")
        .on(&docket)
        .await
        .unwrap();
    assert_eq!(again.disposition(), Disposition::Added);
    probe
        .until("the new task runs", |p| p.finishes() == 1)
        .await;
    worker.stop().await;
    assert_eq!(probe.labels(), ["again"]);
}

/// R6b: a cancel sent while a worker's signal feed is down (its connection cut) still reaches
/// it when the feed comes back: the running task stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_sent_while_the_signal_feed_is_down_still_stops_the_task() {
    let server = RedisServer::start();
    let (docket, _) = open_redis(&server, "feed").await;
    let probe = Probe::new();
    Hold::schedule(probe.id(), "cancelled".into())
        .key("k")
        .on(&docket)
        .await
        .unwrap();
    let worker = Background::start(Worker::new(&docket));
    probe.until("the task starts", |p| p.starts() == 1).await;

    let feeds = clients_with(&server, &["cmd=xread"]);
    assert_eq!(feeds.len(), 1, "one signal feed: {feeds:?}");
    server.command(&["CLIENT", "KILL", "ID", &feeds[0]]);
    assert!(docket.cancel("k").await.unwrap());

    eventually("the running task to stop", PATIENCE, async || {
        probe.in_progress() == 0
    })
    .await;
    worker.stop().await;
    assert_eq!(probe.finishes(), 0, "it ran to its end");
}

// ---------------------------------------------------------------------------------------------
// R7: the newer copy wins

/// R7: two copies of a key both wait for a concurrency slot: the older delivery (taken over
/// from a worker that died) and its `replace`ment. Only the replacement runs, with its
/// arguments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_copies_waiting_for_a_slot_only_the_newer_one_runs() {
    let server = RedisServer::start();
    let name = unique_name("newer");
    let docket = Docket::connect(server.url())
        .name(&name)
        .redelivery_timeout(Duration::from_secs(1))
        .in_process_fallback(false)
        .await
        .unwrap();
    let keys = keys(&name);
    let probe = Probe::new();
    create_group(&server, &keys.stream);
    OneAtATime::schedule(probe.id(), "old".into(), false)
        .key("k")
        .on(&docket)
        .await
        .unwrap();
    let old = read_as(&server, &keys.stream, "died-after-reading");
    OneAtATime::schedule(probe.id(), "holder".into(), true)
        .key("holder")
        .on(&docket)
        .await
        .unwrap();
    let worker = Background::start(Worker::new(&docket).concurrency(4));
    probe
        .until("the slot's holder starts", |p| p.starts() == 1)
        .await;

    OneAtATime::schedule(probe.id(), "new".into(), false)
        .key("k")
        .replace()
        .on(&docket)
        .await
        .unwrap();
    eventually("the new copy to wait for the slot", PATIENCE, async || {
        hget(&server, &keys.index, "k").is_some_and(|current| current.starts_with('g'))
    })
    .await;
    eventually(
        "the old copy to be taken over and set aside",
        PATIENCE,
        async || pending_entry(&server, &keys.stream, &old).is_none(),
    )
    .await;
    probe.release(1);
    eventually("the copy of k to run", PATIENCE, async || {
        probe.finishes() == 2
    })
    .await;
    until_empty(&docket).await;
    worker.stop().await;
    assert_eq!(probe.labels(), ["holder", "new"]);
}

// ---------------------------------------------------------------------------------------------
// R8: scripts are failure-atomic

/// R8: before any worker made the consumer group, a batch that `replace`s a queued task stores
/// each of its tasks once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_replacing_a_queued_task_before_any_worker_stores_each_task_once() {
    let server = RedisServer::start();
    let (docket, name) = open_redis(&server, "no-group").await;
    let stream = keys(&name).stream;
    let probe = Probe::new();
    Note::schedule(probe.id(), "a, old".into())
        .key("a")
        .on(&docket)
        .await
        .unwrap();

    let receipts = docket
        .add_many([
            Note::schedule(probe.id(), "x".into()).key("x"),
            Note::schedule(probe.id(), "a, new".into())
                .key("a")
                .replace(),
        ])
        .await
        .unwrap();

    let dispositions: Vec<_> = receipts.iter().map(|r| r.disposition()).collect();
    assert_eq!(dispositions, [Disposition::Added, Disposition::Replaced]);
    assert_eq!(count(&server, &["XLEN", &stream]), 2);
    finish(&docket).await;
    let mut labels = probe.labels();
    labels.sort();
    assert_eq!(labels, ["a, new", "x"]);
}

// ---------------------------------------------------------------------------------------------
// R14: renewal of many deliveries

/// R14: a process whose workers hold more than 8,000 running tasks keeps them all its own: none
/// is taken over (run again, or counted) past the redelivery timeout. One worker holds at most
/// 1,000 (the pending-entries limit of managed Redis), so it takes nine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_running_more_than_eight_thousand_tasks_keep_renewing_them() {
    const TASKS: usize = 8_100;
    const TIMEOUT: Duration = Duration::from_secs(2);
    let server = RedisServer::start();
    let name = unique_name("renew");
    let docket = Docket::connect(server.url())
        .name(&name)
        .redelivery_timeout(TIMEOUT)
        .in_process_fallback(false)
        .await
        .unwrap();
    let stream = keys(&name).stream;
    let probe = Probe::new();
    for first in (0..TASKS).step_by(2_025) {
        docket
            .add_many((first..first + 2_025).map(|n| Hold::schedule(probe.id(), n.to_string())))
            .await
            .unwrap();
    }
    let workers: Vec<Background> = (0..9)
        .map(|_| Background::start(Worker::new(&docket).concurrency(1_000)))
        .collect();
    eventually("every task to start", PATIENCE * 3, async || {
        probe.starts() >= TASKS
    })
    .await;

    // The span under test: longer than the redelivery timeout, in which failed renewals would
    // let the deliveries be taken over.
    tokio::time::sleep(TIMEOUT * 3 / 2).await;
    let pending = pending(&server, &stream);
    assert_eq!(probe.starts(), TASKS, "tasks were taken over and run again");
    assert_eq!(pending.len(), TASKS);
    let stale: Vec<&Pending> = pending
        .iter()
        .filter(|row| row.deliveries != 1 || row.idle >= TIMEOUT.as_millis() as i64)
        .take(5)
        .collect();
    assert!(stale.is_empty(), "not renewed: {stale:#?}");

    probe.release(TASKS);
    eventually("every task to be settled", PATIENCE * 3, async || {
        count(&server, &["XLEN", &stream]) == 0
    })
    .await;
    for worker in workers {
        worker.stop().await;
    }
}

// ---------------------------------------------------------------------------------------------
// R16: dead letters are bounded

/// Write `letters` (key, age in ms) as dead letters directly, as burials would have: the letter
/// by key, and when it died.
fn write_dead_letters(server: &RedisServer, name: &str, letters: &[(String, u64)]) {
    let keys = keys(name);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let letter = r#"{"task":"fail_for_good","attempt":1,"due":0,"args":{}}"#;
    let mut hset = vec!["HSET".to_owned(), keys.dead.clone()];
    let mut zadd = vec!["ZADD".to_owned(), keys.died.clone()];
    for (key, age) in letters {
        hset.extend([key.clone(), letter.to_owned()]);
        zadd.extend([(now - age).to_string(), key.clone()]);
    }
    for command in [hset, zadd] {
        let command: Vec<&str> = command.iter().map(String::as_str).collect();
        server.command(&command);
    }
}

/// Make `n` tasks fail for good (dead letters `new-0`, `new-1`, ...) through a worker.
async fn bury_through_tasks(docket: &Docket, n: usize) {
    let probe = Probe::new();
    docket
        .add_many(
            (0..n)
                .map(|i| FailForGood::schedule(probe.id(), i.to_string()).key(format!("new-{i}"))),
        )
        .await
        .unwrap();
    // One at a time: the letters die in the order scheduled. Ten thousand burials take
    // seconds in a debug build (8 s alone on a loaded 2-core machine): a minute, not PATIENCE.
    tokio::time::timeout(
        Duration::from_secs(60),
        Worker::new(docket).concurrency(1).run_until_finished(),
    )
    .await
    .expect("the worker finished in time")
    .unwrap();
    assert_eq!(probe.starts(), n);
}

/// R16: past 10,000 dead letters, each burial drops the oldest, so the letters stay at 10,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_stay_at_ten_thousand_dropping_the_oldest() {
    let server = RedisServer::start();
    let (docket, name) = open_redis(&server, "capped").await;
    let keys = keys(&name);
    // 9,990 letters from the last day, the lowest numbers the oldest.
    let old: Vec<(String, u64)> = (0..9_990u64)
        .map(|n| (format!("old-{n:04}"), 86_400_000 - n * 1_000))
        .collect();
    write_dead_letters(&server, &name, &old);

    bury_through_tasks(&docket, 20).await;

    assert_eq!(count(&server, &["HLEN", &keys.dead]), 10_000);
    assert_eq!(count(&server, &["ZCARD", &keys.died]), 10_000);
    for n in 0..20 {
        let new = format!("new-{n}");
        assert_eq!(count(&server, &["HEXISTS", &keys.dead, &new]), 1, "{new}");
    }
    for n in 0..10 {
        let gone = format!("old-{n:04}");
        assert_eq!(count(&server, &["HEXISTS", &keys.dead, &gone]), 0, "{gone}");
    }
    assert_eq!(count(&server, &["HEXISTS", &keys.dead, "old-0010"]), 1);
}

/// R16: a burial drops the dead letters older than 30 days.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_older_than_thirty_days_are_dropped() {
    const DAY: u64 = 86_400_000;
    let server = RedisServer::start();
    let (docket, name) = open_redis(&server, "aged").await;
    let keys = keys(&name);
    let mut letters: Vec<(String, u64)> = (0..5)
        .map(|n| (format!("aged-{n}"), 31 * DAY + n))
        .collect();
    letters.push(("recent".to_owned(), 29 * DAY));
    write_dead_letters(&server, &name, &letters);

    bury_through_tasks(&docket, 1).await;

    let mut kept: Vec<String> = docket
        .dead_letters()
        .await
        .unwrap()
        .into_iter()
        .map(|letter| letter.key)
        .collect();
    kept.sort();
    assert_eq!(kept, ["new-0", "recent"]);
    assert_eq!(count(&server, &["ZCARD", &keys.died]), 2);
}

/// R16 on the memory backend: 10,005 tasks that fail for good leave the newest 10,000 letters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_dead_letters_stay_at_ten_thousand_dropping_the_oldest() {
    let docket = open_memory().await;
    bury_through_tasks(&docket, 10_005).await;

    let dead = docket.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 10_000);
    let keys: HashSet<&str> = dead.iter().map(|letter| letter.key.as_str()).collect();
    assert!(keys.contains("new-10004"));
    assert!(!keys.contains("new-0"));
}
