//! Reading ahead on Redis: a worker of short tasks claims more than its free slots, and what it
//! holds that way is treated like a running task. The worker here has one slot; a slow task
//! holds it while the worker sits on the short tasks it read ahead of it. Then:
//!
//! - stopping the worker gives them back at once: another worker runs them long before the
//!   redelivery timeout (a minute here) would have let it take them over;
//! - a cancel of one of them, or a strike on their task, reaches them: when the slot frees, the
//!   cancelled one never runs and the struck ones are held;
//! - a replace of one of them reaches it as it reaches a queued task: it never runs, its
//!   replacement does, and a cancel of its key after the replace stops both;
//! - read-ahead is on by default; with it off (`read_ahead(0)`), the worker holds only the task
//!   it runs;
//! - a worker paused longer than the redelivery timeout (a stop-the-world pause: its tasks and
//!   renewals frozen) does not start, after the pause, what it read ahead before it, which
//!   another worker took over and ran meanwhile.

use std::time::Duration;

use docket::{Docket, Worker};
use tests::background::Background;
use tests::probe::Probe;
use tests::redis_server::{RedisServer, Reply, unique_name};
use tests::{PATIENCE, eventually};

/// A few milliseconds of work, labelled with its number.
#[docket::task]
async fn short(probe: String, n: u32) {
    let run = Probe::find(&probe).start(n.to_string());
    run.finish();
}

/// Holds its worker's slot until the test releases it.
#[docket::task]
async fn slow(probe: String) {
    let probe = Probe::find(&probe);
    let run = probe.start("slow");
    probe.released().await;
    run.finish();
}

/// Short tasks before the slow one, so the worker learns its pace and reads ahead.
const BEFORE: u32 = 40;
/// Short tasks after the slow one: some of them are read ahead while it runs.
const AFTER: u32 = 60;

/// A docket on `server` whose stalled deliveries would only be taken over after a minute.
async fn open(server: &RedisServer) -> (Docket, String) {
    let name = unique_name("read-ahead");
    let docket = Docket::connect(server.url())
        .name(&name)
        .redelivery_timeout(Duration::from_secs(60))
        .await
        .unwrap();
    (docket, name)
}

/// Queue `BEFORE` short tasks, the slow one, then `AFTER` short tasks (keys `short-N`), all
/// before any worker runs.
async fn queue(docket: &Docket, probe: &Probe) {
    for n in 0..BEFORE {
        Short::schedule(probe.id(), n)
            .key(format!("short-{n}"))
            .on(docket)
            .await
            .unwrap();
    }
    Slow::schedule(probe.id()).on(docket).await.unwrap();
    for n in BEFORE..BEFORE + AFTER {
        Short::schedule(probe.id(), n)
            .key(format!("short-{n}"))
            .on(docket)
            .await
            .unwrap();
    }
}

/// How many deliveries are pending to `worker` on the server.
fn pending_to(server: &RedisServer, name: &str, worker: &str) -> i64 {
    let stream = format!("{{{name}}}:stream");
    let Reply::Array(consumers) = server.command(&["XINFO", "CONSUMERS", &stream, "workers"])
    else {
        return 0;
    };
    for consumer in consumers {
        let Reply::Array(fields) = consumer else {
            continue;
        };
        let named = fields
            .chunks(2)
            .any(|pair| pair == [Reply::Bulk("name".into()), Reply::Bulk(worker.into())]);
        if !named {
            continue;
        }
        for pair in fields.chunks(2) {
            if let [Reply::Bulk(field), Reply::Integer(pending)] = pair
                && field == "pending"
            {
                return *pending;
            }
        }
    }
    0
}

/// Start a one-slot worker and wait until the slow task holds its slot; how many deliveries
/// the worker then holds on the server.
async fn while_slow_runs(
    server: &RedisServer,
    name: &str,
    probe: &Probe,
    worker: Worker,
) -> (Background, i64) {
    let id = worker.id().to_owned();
    let background = Background::start(worker);
    probe
        .until("the slow task starts", |p| {
            p.labels().iter().any(|label| label == "slow")
        })
        .await;
    // The read that handed the slow task over took what it read ahead along with it.
    let pending = pending_to(server, name, &id);
    (background, pending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_read_ahead_are_given_back_at_once_when_the_worker_stops() {
    let server = RedisServer::start();
    let (docket, name) = open(&server).await;
    let probe = Probe::new();
    queue(&docket, &probe).await;

    let first = Worker::new(&docket).concurrency(1).read_ahead(256);
    let (first, pending) = while_slow_runs(&server, &name, &probe, first).await;
    assert!(
        pending > 1,
        "the worker read nothing ahead of the slow task ({pending} pending to it)"
    );

    // Stopping waits for the slow task; what the worker read ahead goes back at once.
    let stopping = tokio::spawn(first.stop());
    let second = Background::start(Worker::new(&docket).concurrency(4));
    probe
        .until(
            "every short task has run (well before a takeover could)",
            |p| p.finishes() == (BEFORE + AFTER) as usize,
        )
        .await;
    probe.release(1);
    stopping.await.unwrap();
    second.stop().await;

    let mut labels = probe.sorted_labels();
    labels.retain(|label| label != "slow");
    let mut expected: Vec<String> = (0..BEFORE + AFTER).map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(labels, expected, "each short task ran exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_and_a_strike_reach_tasks_read_ahead() {
    let server = RedisServer::start();
    let (docket, name) = open(&server).await;
    let probe = Probe::new();
    queue(&docket, &probe).await;

    let worker = Worker::new(&docket).concurrency(1).read_ahead(256);
    let (worker, pending) = while_slow_runs(&server, &name, &probe, worker).await;
    assert!(pending > 1, "nothing was read ahead ({pending} pending)");
    // The first task after the slow one is read ahead (reads are in stream order).
    let first_after = format!("short-{BEFORE}");
    assert!(
        docket.cancel(&first_after).await.unwrap(),
        "the task read ahead was found"
    );
    let strike = docket::strike::Strike::task(<Short as docket::Task>::NAME);
    assert!(docket.strike(strike.clone()).await.unwrap());
    // The worker hears of both before the slot frees.
    tokio::time::sleep(Duration::from_millis(300)).await;
    probe.release(1);

    eventually("the rest to be held by the strike", PATIENCE, async || {
        docket
            .snapshot()
            .await
            .is_ok_and(|s| s.held.len() == AFTER as usize - 1)
    })
    .await;
    assert!(
        !probe.labels().contains(&BEFORE.to_string()),
        "the cancelled task ran: {:?}",
        probe.labels()
    );
    assert_eq!(
        probe.starts(),
        BEFORE as usize + 1,
        "only the tasks before the slow one, and it, ran"
    );

    assert_eq!(docket.restore(strike).await.unwrap(), AFTER as usize - 1);
    probe
        .until("the restored tasks run", |p| {
            p.finishes() == (BEFORE + AFTER) as usize
        })
        .await;
    worker.stop().await;
    assert!(!probe.labels().contains(&BEFORE.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replace_reaches_tasks_read_ahead_as_it_reaches_queued_ones() {
    let server = RedisServer::start();
    let (docket, name) = open(&server).await;
    let probe = Probe::new();
    queue(&docket, &probe).await;

    // The default worker reads ahead.
    let worker = Worker::new(&docket).concurrency(1);
    let (worker, pending) = while_slow_runs(&server, &name, &probe, worker).await;
    assert!(pending > 2, "too little was read ahead ({pending} pending)");
    // The first two tasks after the slow one are read ahead (reads are in stream order). One is
    // replaced; the other is replaced, then its key cancelled.
    let (replaced, cancelled) = (BEFORE, BEFORE + 1);
    Short::schedule(probe.id(), 1000 + replaced)
        .key(format!("short-{replaced}"))
        .replace()
        .on(&docket)
        .await
        .unwrap();
    Short::schedule(probe.id(), 1000 + cancelled)
        .key(format!("short-{cancelled}"))
        .replace()
        .on(&docket)
        .await
        .unwrap();
    assert!(docket.cancel(&format!("short-{cancelled}")).await.unwrap());
    // The worker hears of them before the slot frees.
    tokio::time::sleep(Duration::from_millis(300)).await;
    probe.release(1);

    let expected = BEFORE + AFTER + 1 - 2 + 1;
    probe
        .until("every task left has run", |p| {
            p.finishes() == expected as usize
        })
        .await;
    // Long enough for a dropped one to have run, had it not been dropped.
    tokio::time::sleep(Duration::from_millis(200)).await;
    worker.stop().await;

    let labels = probe.sorted_labels();
    for gone in [replaced, cancelled, 1000 + cancelled] {
        assert!(
            !labels.contains(&gone.to_string()),
            "task {gone} ran, though it was replaced or cancelled before it started: {labels:?}"
        );
    }
    let replacement = (1000 + replaced).to_string();
    assert_eq!(
        labels.iter().filter(|label| **label == replacement).count(),
        1,
        "the replacement ran once: {labels:?}"
    );
    assert_eq!(labels.len(), expected as usize, "{labels:?}");
    let snapshot = docket.snapshot().await.unwrap();
    assert_eq!(
        (snapshot.queued.len(), snapshot.running.len()),
        (0, 0),
        "nothing is left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_read_ahead_off_the_worker_holds_only_what_it_runs() {
    let server = RedisServer::start();
    let (docket, name) = open(&server).await;
    let probe = Probe::new();
    queue(&docket, &probe).await;

    let worker = Worker::new(&docket).concurrency(1).read_ahead(0);
    let (worker, pending) = while_slow_runs(&server, &name, &probe, worker).await;
    assert_eq!(pending, 1, "only the slow task is pending to the worker");
    probe.release(1);
    probe
        .until("every task has run", |p| {
            p.finishes() == (BEFORE + AFTER) as usize + 1
        })
        .await;
    worker.stop().await;
}

/// Blocks its worker's thread (on a runtime of one thread: the whole worker, renewals too), as a
/// stop-the-world pause would.
#[docket::task]
async fn pause_the_worker(probe: String, label: String, millis: u64) {
    let run = Probe::find(&probe).start(label);
    std::thread::sleep(Duration::from_millis(millis));
    run.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_paused_worker_read_ahead_is_not_started_after_another_ran_it() {
    let server = RedisServer::start();
    let name = unique_name("read-ahead-pause");
    let redelivery = Duration::from_millis(400);
    let docket = Docket::connect(server.url())
        .name(&name)
        .redelivery_timeout(redelivery)
        .await
        .unwrap();
    let probe = Probe::new();
    // The paused worker: one slot, on a thread and runtime of its own.
    let stop = tokio_util::sync::CancellationToken::new();
    let paused = {
        let (url, name, stop) = (server.url(), name.clone(), stop.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let docket = Docket::connect(url)
                    .name(&name)
                    .redelivery_timeout(redelivery)
                    .await
                    .unwrap();
                Worker::new(&docket)
                    .concurrency(1)
                    .run_until(stop.cancelled_owned())
                    .await
                    .unwrap();
            });
        })
    };
    // Short tasks, so that it learns its pace and reads ahead.
    for n in 0..BEFORE {
        Short::schedule(probe.id(), n).on(&docket).await.unwrap();
    }
    probe
        .until("the short tasks ran", |p| p.finishes() == BEFORE as usize)
        .await;
    // The pause and a task after it, stored together: one read takes both, the second read
    // ahead while the pause holds the slot.
    docket
        .add_many([
            PauseTheWorker::schedule(probe.id(), "pause".into(), 2_500),
            PauseTheWorker::schedule(probe.id(), "after".into(), 0),
        ])
        .await
        .unwrap();
    probe
        .until("the pause began", |p| p.starts() == BEFORE as usize + 1)
        .await;
    // Another worker takes over what the paused one holds and runs it.
    let other = Background::start(Worker::new(&docket));
    let ran = |label: &str, p: &Probe| p.runs().iter().filter(|run| run.label == label).count();
    probe
        .until("the task read ahead ran elsewhere", |p| {
            ran("after", p) == 1
        })
        .await;
    // The pause ends (the other worker, which took it over too, may run it as well); the paused
    // worker must not start the task it read ahead again.
    probe
        .until("the pause ended", |p| {
            p.runs()
                .iter()
                .any(|run| run.label == "pause" && run.finished.is_some())
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    tokio::task::spawn_blocking(move || paused.join().unwrap())
        .await
        .unwrap();
    other.stop().await;
    let after: Vec<_> = probe
        .runs()
        .into_iter()
        .filter(|run| run.label == "after")
        .collect();
    assert_eq!(
        after.len(),
        1,
        "the task read ahead ran once, on the other worker: {after:#?}"
    );
}
