//! The findings whose windows only injected faults open (docket's `failpoints` feature): a
//! read's reply lost, a delivery held up before its worker starts it, a worker's renewals
//! failing for a while, a part of a batch that cannot be sent.
//!
//! The failpoint rule is process-wide; each test aims its own at one thread (a worker's, or
//! the test's), so tests running side by side never hit each other's faults.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Once};
use std::time::Duration;

use docket::failpoint::{self, Fault};
use docket::{Docket, Worker};
use tests::background::Background;
use tests::probe::Probe;
use tests::redis_server::{RedisServer, unique_name};
use tests::{PATIENCE, eventually};

use super::{
    Events, Hold, Note, OneAtATime, ThreadWorker, clients_with, count, indexed_id, keys,
    open_memory, open_redis, pending, pending_entry, queued_keys, running_keys, until_empty,
    until_renewed,
};

type Rule = Arc<dyn Fn(&str) -> Option<Fault> + Send + Sync>;

/// The rule of each thread that has one, by thread name.
static RULES: LazyLock<Mutex<HashMap<String, Rule>>> = LazyLock::new(Mutex::default);

/// `rule` answers every failpoint reached on the thread named `thread`, until the returned
/// guard drops.
#[must_use = "the rule is removed when the guard drops"]
fn aim(thread: &str, rule: impl Fn(&str) -> Option<Fault> + Send + Sync + 'static) -> Aimed {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        failpoint::set(|site| {
            let current = std::thread::current();
            let rule = RULES.lock().unwrap().get(current.name()?).cloned()?;
            rule(site)
        });
    });
    RULES
        .lock()
        .unwrap()
        .insert(thread.to_owned(), Arc::new(rule));
    Aimed(thread.to_owned())
}

struct Aimed(String);

impl Drop for Aimed {
    fn drop(&mut self) {
        RULES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.0);
    }
}

/// Hold up every delivery on `thread` for `pause` as its settle step starts: after the worker
/// took it, before it is tracked, admitted or started.
fn delay_starts(thread: &str, pause: Duration) -> Aimed {
    aim(thread, move |site| {
        (site == "settle.start").then_some(Fault::Delay(pause))
    })
}

/// A worker of concurrency 4 on a thread of its own named `thread` (so that rules can aim at
/// its calls), with a redelivery timeout far past the test, once it blocks in its read.
async fn blocked_worker(server: &RedisServer, name: &str, thread: &str) -> ThreadWorker {
    let (url, name) = (server.url(), name.to_owned());
    let worker = ThreadWorker::start(
        thread,
        async move {
            Docket::connect(url)
                .name(name)
                .redelivery_timeout(Duration::from_secs(60))
                .await
                .unwrap()
        },
        4,
    );
    until_reading(server, 1).await;
    worker
}

/// R4, R1: a read whose reply is lost after Redis handed its entries over (a dropped
/// connection): the worker finds them in its pending list at its next claim and runs them at
/// once, long before the redelivery timeout, at the delivery count they had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_whose_reply_was_lost_runs_its_tasks_at_once_without_counting() {
    let server = RedisServer::start();
    let (docket, name) = open_redis(&server, "lost-read").await;
    let stream = keys(&name).stream;
    let thread = unique_name("lost-read");
    let worker = blocked_worker(&server, &name, &thread).await;
    // The next reply of the worker's blocked read.
    let armed = Arc::new(AtomicBool::new(true));
    let _lost = {
        let armed = armed.clone();
        aim(&thread, move |site| {
            (site == "redis.read.reply" && armed.swap(false, Ordering::SeqCst))
                .then_some(Fault::Fail)
        })
    };
    let probe = Probe::new();
    Hold::schedule(probe.id(), "read, reply lost".into())
        .on(&docket)
        .await
        .unwrap();

    eventually(
        "the task to run, well before the redelivery timeout",
        Duration::from_secs(5),
        async || probe.starts() == 1,
    )
    .await;
    assert!(!armed.load(Ordering::SeqCst), "the read's reply was lost");
    let entries = pending(&server, &stream);
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0].deliveries, 1, "{entries:#?}");
    probe.release(1);
    eventually("its acknowledgement", PATIENCE, async || {
        count(&server, &["XLEN", &stream]) == 0
    })
    .await;
    worker.stop().await;
    assert_eq!(probe.starts(), 1);
}

/// Found by the fault model (seed 4823711907611590775): a worker whose read's reply was lost
/// lists what it holds, then claims it back; a delivery another worker took over in between
/// (it had stalled meanwhile) stays with that worker. Claiming it back would run it twice at
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_read_recovered_after_another_worker_took_it_over_stays_with_that_worker() {
    let server = RedisServer::start();
    let (docket, name) = open_redis(&server, "recover-race").await;
    let stream = keys(&name).stream;
    let thread = unique_name("recover-race");
    let worker = blocked_worker(&server, &name, &thread).await;
    // The read's reply is lost; the worker's look at what it holds waits a while before it
    // claims anything back.
    let armed = Arc::new(AtomicBool::new(true));
    let listed = Arc::new(AtomicBool::new(false));
    let _rule = {
        let (armed, listed) = (armed.clone(), listed.clone());
        aim(&thread, move |site| match site {
            "redis.read.reply" if armed.swap(false, Ordering::SeqCst) => Some(Fault::Fail),
            "claim.recover" if !listed.swap(true, Ordering::SeqCst) => {
                Some(Fault::Delay(Duration::from_millis(500)))
            }
            _ => None,
        })
    };
    let probe = Probe::new();
    Hold::schedule(probe.id(), "taken over meanwhile".into())
        .on(&docket)
        .await
        .unwrap();
    eventually("the worker to list its lost read", PATIENCE, async || {
        listed.load(Ordering::SeqCst)
    })
    .await;
    let entries = pending(&server, &stream);
    assert_eq!(entries.len(), 1, "{entries:#?}");
    // Another worker takes it over (as a reclaim does) while the first one waits.
    server.command(&[
        "XCLAIM",
        &stream,
        "workers",
        "another-worker",
        "0",
        &entries[0].id,
    ]);

    // Its claim goes on to read again once the recovery is done.
    until_reading(&server, 1).await;
    let entries = pending(&server, &stream);
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0].consumer, "another-worker", "{entries:#?}");
    assert_eq!(probe.starts(), 0, "{:#?}", probe.runs());
    worker.stop().await;
}

/// The docket `name` at `url`, spread over three partitions, without the in-process fallback,
/// whose deliveries are taken over only after a minute.
async fn spread(url: String, name: String) -> Docket {
    Docket::connect(url)
        .name(name)
        .partitions(3)
        .in_process_fallback(false)
        .redelivery_timeout(Duration::from_secs(60))
        .await
        .unwrap()
}

/// Wait until `reads` blocking reads wait on `server`.
async fn until_reading(server: &RedisServer, reads: usize) {
    eventually("the worker's reads to block", PATIENCE, async || {
        clients_with(server, &["cmd=xreadgroup", "flags=b"]).len() == reads
    })
    .await;
}

/// Found by the fault model (seed 4823711907611590775): on a docket of three partitions, the
/// reads a worker has in progress on each can all lose their replies at once (a dropped
/// connection). Its claim fails on the first and the worker pauses; the others' failures,
/// which came during that pause, are not each worth a pause of their own: its next claim
/// recovers what all of them handed over. (It paused once per partition, which with three
/// partitions is as long as a redelivery timeout: long enough for another worker to take the
/// deliveries over while their owner recovered them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_lost_on_several_partitions_cost_the_worker_one_pause() {
    let server = RedisServer::start();
    let name = unique_name("lost-spread");
    let docket = spread(server.url(), name.clone()).await;
    docket.snapshot().await.unwrap();
    let thread = unique_name("lost-spread");
    let lost = Arc::new(AtomicUsize::new(0));
    let _rule = {
        let lost = lost.clone();
        aim(&thread, move |site| {
            (site == "redis.read.reply" && lost.fetch_add(1, Ordering::SeqCst) < 3)
                .then_some(Fault::Fail)
        })
    };
    let pauses = Events::of("claiming tasks failed; trying again");
    let worker = ThreadWorker::start_traced(
        &thread,
        spread(server.url(), name.clone()),
        4,
        pauses.dispatch(),
    );
    until_reading(&server, 3).await;
    // A task in each partition, one after another: the first read's failure starts the
    // worker's pause, the other two fail during it.
    let probe = Probe::new();
    let key_in = |part: usize| {
        (0..)
            .map(|n| format!("lost-spread-{n}"))
            .find(|key| tests::redis_server::partition_of_key(key, 3) == part)
            .unwrap()
    };
    Hold::schedule(probe.id(), "partition 0".into())
        .key(key_in(0))
        .on(&docket)
        .await
        .unwrap();
    eventually("the first read to fail", PATIENCE, async || {
        pauses.count() == 1
    })
    .await;
    for part in [1, 2] {
        Hold::schedule(probe.id(), format!("partition {part}"))
            .key(key_in(part))
            .on(&docket)
            .await
            .unwrap();
    }
    probe
        .until("the three tasks start", |probe| probe.starts() == 3)
        .await;
    assert!(
        lost.load(Ordering::SeqCst) >= 3,
        "the three reads lost their replies"
    );
    assert_eq!(pauses.count(), 1, "the worker paused once per lost read");
    probe.release(3);
    until_empty(&docket).await;
    worker.stop().await;
}

/// A claim on one partition of a spread docket that panics (here at a failpoint, after a lost
/// read) fails that partition's claim: the partition is claimed again, its task runs, and the
/// worker still stops. (Its claim runs in a task of its own, whose panic no one would see: the
/// partition stayed armed for good, never read again, and the stopping worker waited for its
/// answer for ever.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitions_claim_that_panics_is_claimed_again_and_the_worker_still_stops() {
    let server = RedisServer::start();
    let name = unique_name("claim-panics");
    let docket = spread(server.url(), name.clone()).await;
    docket.snapshot().await.unwrap();
    let thread = unique_name("claim-panics");
    let (lost, panicked) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let _rule = {
        let (lost, panicked) = (lost.clone(), panicked.clone());
        aim(&thread, move |site| match site {
            "redis.read.reply" if !lost.swap(true, Ordering::SeqCst) => Some(Fault::Fail),
            "claim.recover" if !panicked.swap(true, Ordering::SeqCst) => Some(Fault::Panic),
            _ => None,
        })
    };
    let worker = ThreadWorker::start(&thread, spread(server.url(), name.clone()), 2);
    until_reading(&server, 3).await;
    let probe = Probe::new();
    Note::schedule(probe.id(), "after a panic".into())
        .key("claim-panics-1")
        .on(&docket)
        .await
        .unwrap();
    probe
        .until("the task runs", |probe| probe.finishes() == 1)
        .await;
    assert!(panicked.load(Ordering::SeqCst), "the claim panicked");
    worker.stop().await;
}

/// R6d on both backends: a cancel that reaches the worker after it took the task but before it
/// started it keeps the task from starting.
async fn a_cancel_before_the_worker_starts_the_task_keeps_it_from_starting(docket: Docket) {
    let probe = Probe::new();
    let thread = unique_name("late-start");
    let _delayed = delay_starts(&thread, Duration::from_secs(2));
    Note::schedule(probe.id(), "never".into())
        .key("k")
        .on(&docket)
        .await
        .unwrap();
    let worker = {
        let docket = docket.clone();
        ThreadWorker::start(&thread, async move { docket }, 1)
    };
    eventually("the worker to take the task", PATIENCE, async || {
        running_keys(&docket.snapshot().await.unwrap()).contains("k")
    })
    .await;

    assert!(docket.cancel("k").await.unwrap());

    until_empty(&docket).await;
    worker.stop().await;
    assert_eq!(probe.starts(), 0, "it started: {:#?}", probe.runs());
}

mod memory {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancel_before_the_worker_starts_the_task_keeps_it_from_starting() {
        super::a_cancel_before_the_worker_starts_the_task_keeps_it_from_starting(
            super::open_memory().await,
        )
        .await;
    }
}

mod redis {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancel_before_the_worker_starts_the_task_keeps_it_from_starting() {
        let server = tests::redis_server::RedisServer::start();
        let (docket, _) = super::open_redis(&server, "late-start").await;
        super::a_cancel_before_the_worker_starts_the_task_keeps_it_from_starting(docket).await;
    }
}

/// R1 (the grace after an outage): a worker whose read was cut waits a whole redelivery
/// timeout before it takes over a peer's delivery, for the peer (cut off too, in an outage)
/// needs that long to renew. Here the peer's renewals fail for a third of a timeout after the
/// cut, and its delivery looks stalled (its owner heard from just now); the worker must leave
/// it alone. (A regression test of commit deb8573.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_its_read_is_cut_a_worker_waits_a_whole_timeout_before_taking_over_a_peers_task() {
    const TIMEOUT: Duration = Duration::from_secs(3);
    let server = RedisServer::start();
    let name = unique_name("grace");
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
    let keys = keys(&name);
    let probe = Probe::new();
    let owner_thread = unique_name("owner");
    let renewals_fail = Arc::new(AtomicBool::new(false));
    let _renewals = {
        let renewals_fail = renewals_fail.clone();
        aim(&owner_thread, move |site| {
            (site == "renew" && renewals_fail.load(Ordering::SeqCst)).then_some(Fault::Fail)
        })
    };
    Hold::schedule(probe.id(), "long".into())
        .key("long")
        .on(&docket)
        .await
        .unwrap();
    // One slot, taken by the task: the owner reads nothing meanwhile.
    let owner = {
        let connect = connect.clone();
        ThreadWorker::start(&owner_thread, async move { connect().await.unwrap() }, 1)
    };
    probe.until("the task starts", |p| p.starts() == 1).await;
    let id = indexed_id(&server, &keys.index, "long");
    let owner_id = pending_entry(&server, &keys.stream, &id)
        .expect("the task is pending")
        .consumer;
    let worker = Background::start(Worker::new(&connect().await.unwrap()));
    let readers = {
        let mut readers = Vec::new();
        eventually("the worker to block in its read", PATIENCE, async || {
            readers = clients_with(&server, &["cmd=xreadgroup", "flags=b"]);
            readers.len() == 1
        })
        .await;
        readers
    };

    renewals_fail.store(true, Ordering::SeqCst);
    server.command(&["CLIENT", "KILL", "ID", &readers[0]]);
    server.command(&[
        "XCLAIM",
        &keys.stream,
        "workers",
        &owner_id,
        "0",
        &id,
        "IDLE",
        "5000",
        "JUSTID",
    ]);
    // The span under test: the worker claims again (every 500 ms after a failure) and must
    // not take the delivery over; then the owner renews it, well within the timeout.
    tokio::time::sleep(Duration::from_secs(1)).await;
    renewals_fail.store(false, Ordering::SeqCst);
    until_renewed(&server, &docket, &keys.stream, &id, &owner_id, TIMEOUT).await;

    assert_eq!(probe.starts(), 1, "{:#?}", probe.runs());
    probe.release(1);
    eventually("its acknowledgement", PATIENCE, async || {
        count(&server, &["XLEN", &keys.stream]) == 0
    })
    .await;
    worker.stop().await;
    owner.stop().await;
    assert_eq!(probe.starts(), 1, "{:#?}", probe.runs());
}

/// R1 (the grace after an outage): after an outage longer than the redelivery timeout (and the
/// reconnect delay), a worker back in touch with Redis still waits before it takes over a live
/// peer's task: the peer was cut off as long, and needs time to renew. Here the peer's renewals
/// fail for 1.5 s after Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_long_outage_a_worker_waits_before_taking_over_a_live_peers_task() {
    const TIMEOUT: Duration = Duration::from_secs(1);
    let mut server = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]);
    let name = unique_name("long-outage");
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
    let keys = keys(&name);
    let probe = Probe::new();
    let owner_thread = unique_name("owner");
    let renewals_fail = Arc::new(AtomicBool::new(false));
    let _renewals = {
        let renewals_fail = renewals_fail.clone();
        aim(&owner_thread, move |site| {
            (site == "renew" && renewals_fail.load(Ordering::SeqCst)).then_some(Fault::Fail)
        })
    };
    Hold::schedule(probe.id(), "long".into())
        .key("long")
        .on(&docket)
        .await
        .unwrap();
    // One slot, taken by the task: the owner reads nothing meanwhile.
    let owner = {
        let connect = connect.clone();
        ThreadWorker::start(&owner_thread, async move { connect().await.unwrap() }, 1)
    };
    probe.until("the task starts", |p| p.starts() == 1).await;
    let id = indexed_id(&server, &keys.index, "long");
    let owner_id = pending_entry(&server, &keys.stream, &id)
        .expect("the task is pending")
        .consumer;
    let worker = Background::start(Worker::new(&connect().await.unwrap()));
    until_reading(&server, 1).await;

    renewals_fail.store(true, Ordering::SeqCst);
    server.kill();
    // Longer than the timeout and the reconnect delay together.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    server.restart();
    // The span under test: the worker claims again within 500 ms, and must not take the
    // delivery over; then the owner renews it.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    renewals_fail.store(false, Ordering::SeqCst);
    until_renewed(&server, &docket, &keys.stream, &id, &owner_id, TIMEOUT).await;

    assert_eq!(probe.starts(), 1, "{:#?}", probe.runs());
    // Let any copy run again end, so that the workers can stop.
    probe.release(10);
    eventually("its acknowledgement", PATIENCE, async || {
        count(&server, &["XLEN", &keys.stream]) == 0
    })
    .await;
    worker.stop().await;
    owner.stop().await;
    assert_eq!(probe.starts(), 1, "{:#?}", probe.runs());
}

/// R1, R4 (a delivery stays held until settled): a worker never takes over a delivery it still
/// runs. When its renewals fall behind (here they fail; under load they lag), another worker
/// may take the task over once the timeout passed, but the worker's own reclaim check must not
/// hand it a second copy to run beside the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_never_takes_over_a_delivery_it_still_runs() {
    const TIMEOUT: Duration = Duration::from_secs(1);
    let server = RedisServer::start();
    let (docket, name) = open_redis(&server, "own").await;
    let thread = unique_name("own");
    let _renewals_fail = aim(&thread, |site| (site == "renew").then_some(Fault::Fail));
    let probe = Probe::new();
    Hold::schedule(probe.id(), "long".into())
        .on(&docket)
        .await
        .unwrap();
    let worker = {
        let (url, name) = (server.url(), name.clone());
        ThreadWorker::start(
            &thread,
            async move {
                Docket::connect(url)
                    .name(name)
                    .redelivery_timeout(TIMEOUT)
                    .await
                    .unwrap()
            },
            2,
        )
    };
    probe.until("the task starts", |p| p.starts() == 1).await;

    // The span under test: the worker's reclaim check runs every quarter timeout, and the
    // delivery is past the timeout after one.
    let end = std::time::Instant::now() + TIMEOUT * 5 / 2;
    while std::time::Instant::now() < end {
        assert_eq!(probe.starts(), 1, "a second copy runs: {:#?}", probe.runs());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    probe.release(probe.starts());
    eventually("its acknowledgement", PATIENCE, async || {
        count(&server, &["XLEN", &keys(&name).stream]) == 0
    })
    .await;
    worker.stop().await;
}

/// R7 on the memory backend: two copies of a key both wait for a concurrency slot, the older
/// one (taken before its `replace`ment was scheduled, and held up before its worker admitted
/// it) and the replacement. Only the replacement runs, with its arguments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_of_two_copies_waiting_for_a_slot_only_the_newer_one_runs() {
    let docket = open_memory().await;
    let probe = Probe::new();
    let marker = Probe::new();
    let thread = unique_name("late-admit");
    let _delayed = delay_starts(&thread, Duration::from_secs(2));
    OneAtATime::schedule(probe.id(), "old".into(), false)
        .key("k")
        .on(&docket)
        .await
        .unwrap();
    let late = {
        let docket = docket.clone();
        ThreadWorker::start(&thread, async move { docket }, 1)
    };
    eventually("the old copy to be taken", PATIENCE, async || {
        running_keys(&docket.snapshot().await.unwrap()).contains("k")
    })
    .await;
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
    // Taken after the new copy, so once it ran the new copy was taken too, and waits queued.
    Note::schedule(marker.id(), "after the new copy".into())
        .on(&docket)
        .await
        .unwrap();
    eventually("the new copy to wait for the slot", PATIENCE, async || {
        marker.finishes() == 1 && queued_keys(&docket.snapshot().await.unwrap()).contains("k")
    })
    .await;
    eventually(
        "the old copy to be admitted, and set aside",
        PATIENCE,
        async || !running_keys(&docket.snapshot().await.unwrap()).contains("k"),
    )
    .await;
    probe.release(1);
    eventually("a copy of k to run", PATIENCE, async || {
        probe.finishes() >= 2
    })
    .await;
    until_empty(&docket).await;
    worker.stop().await;
    late.stop().await;
    assert_eq!(probe.labels(), ["holder", "new"]);
}

/// R3: without the in-process fallback, a batch large enough to go to Redis in several calls,
/// one of which cannot be sent, is not stored in part: the caller told the batch failed must
/// not find some of it queued (a retry would queue those twice). (With the fallback on, that
/// chunk alone runs in-process: `tests/tests/batches.rs`.)
#[tokio::test(flavor = "current_thread")]
async fn without_the_fallback_a_batch_whose_second_part_cannot_be_sent_says_which_part_is_stored() {
    let server = RedisServer::start();
    let (docket, name) = open_redis(&server, "part-sent").await;
    // The docket reads its layout with its first operation: the batch's calls are counted after.
    docket.snapshot().await.unwrap();
    let thread = std::thread::current()
        .name()
        .expect("tests run on named threads")
        .to_owned();
    let sends = AtomicUsize::new(0);
    let _second_fails = aim(&thread, move |site| {
        (site == "redis.send" && sends.fetch_add(1, Ordering::SeqCst) == 1).then_some(Fault::Fail)
    });
    let probe = Probe::new();

    let error = docket
        .add_many((0..1_200).map(|n| Note::schedule(probe.id(), n.to_string())))
        .await
        .unwrap_err();

    // The first chunk (500 tasks) is stored, and the error says so; nothing after it is.
    let docket::Error::BatchIncomplete { stored, source } = &error else {
        panic!("expected BatchIncomplete, got {error:?}");
    };
    assert_eq!(*stored, 500);
    assert!(source.is_unavailable(), "{source:?}");
    let stream = keys(&name).stream;
    assert_eq!(
        count(&server, &["XLEN", &stream]),
        500,
        "exactly the part it names"
    );
}

/// Found by the fault-injection model test (seed 13818830650579567313): a worker holds a struck
/// task, but the replies of its `hold` calls are lost; meanwhile the strike is restored and the
/// held task queued again. When the worker's retried `hold` finds the strike lifted, its own copy
/// was settled by its first call: it must not run it. The task runs once, its queued copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_whose_reply_was_lost_does_not_run_its_copy_once_the_strike_is_lifted() {
    let server = RedisServer::start();
    let (docket, name) = open_redis(&server, "hold-lost").await;
    let strike = docket::strike::Strike::task(<Note as docket::Task>::NAME);
    assert!(docket.strike(strike.clone()).await.unwrap());
    let thread = unique_name("hold-lost");
    let worker = blocked_worker(&server, &name, &thread).await;
    // The read delivering the task passes; once its settle task starts (where it holds the
    // struck task), every reply on the worker's thread is lost until the rule is lifted: the
    // hold runs on Redis, its answer never arrives, and it is tried again.
    let started = Arc::new(AtomicBool::new(false));
    let lost_replies = Arc::new(AtomicUsize::new(0));
    let lost = Arc::new(AtomicBool::new(true));
    let _lost = {
        let (started, lost_replies, lost) = (started.clone(), lost_replies.clone(), lost.clone());
        aim(&thread, move |site| {
            if site == "settle.start" {
                started.store(true, Ordering::SeqCst);
            }
            let reply = site == "redis.reply" || site == "redis.read.reply";
            let lose = reply && started.load(Ordering::SeqCst) && lost.load(Ordering::SeqCst);
            lost_replies.fetch_add(usize::from(lose), Ordering::SeqCst);
            lose.then_some(Fault::Fail)
        })
    };
    let probe = Probe::new();
    Note::schedule(probe.id(), "held, then restored".into())
        .on(&docket)
        .await
        .unwrap();
    eventually("the task to be held", PATIENCE, async || {
        docket.snapshot().await.is_ok_and(|s| s.held.len() == 1)
    })
    .await;
    assert!(
        lost_replies.load(Ordering::SeqCst) >= 1,
        "the hold's reply was lost"
    );

    assert_eq!(docket.restore(strike).await.unwrap(), 1);
    lost.store(false, Ordering::SeqCst);
    until_empty(&docket).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.stop().await;
    assert_eq!(probe.starts(), 1, "{:#?}", probe.runs());
}
