//! Recurring tasks (`every`, `cron`) on the memory backend, on Redis and in-process: they run on
//! their own, once per period however many workers start together, and can stop themselves or
//! move their next run.
//!
//! A binary of its own: every worker starts every recurring task registered in its binary. Here
//! each test's docket runs all of them, and each run reports to the probe named after its
//! docket, so a test sees its own docket's runs only.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use docket::{Context, Docket, Task, Worker};
use tests::background::Background;
use tests::probe::{Probe, Seen};
use tests::redis_server::{RedisServer, unique_name};
use tests::{PATIENCE, same_time};

/// Slack allowed above an expected time before it counts as not honoured.
const SLACK: Duration = Duration::from_secs(2);

/// Record a run with the probe named after the task's docket, if its test made one.
fn report(context: &Context) -> Option<Arc<Probe>> {
    let probe = Probe::lookup(context.docket().name())?;
    probe.start(context.key()).finish();
    probe.saw(context);
    Some(probe)
}

/// How many runs of `key` `probe` saw.
fn runs_of(probe: &Probe, key: &str) -> usize {
    probe.labels().iter().filter(|label| *label == key).count()
}

/// Runs every second.
#[docket::task(every = "1s")]
async fn every_second(ctx: Context) {
    report(&ctx);
}

/// Runs every 200ms, and stops itself on its second run (on its first where no test watches).
#[docket::task(every = "200ms")]
async fn stop_on_second_run(ctx: Context) {
    let runs = report(&ctx).map_or(2, |probe| runs_of(&probe, ctx.key()));
    if runs >= 2 {
        ctx.stop_recurring();
    }
}

/// Runs every hour, but asks for its second run 300ms after its first.
#[docket::task(every = "1h")]
async fn move_next_run(ctx: Context) {
    if report(&ctx).is_some_and(|probe| runs_of(&probe, ctx.key()) == 1) {
        ctx.next_run_after(Duration::from_millis(300));
    }
}

/// Runs every second, on a six-field cron expression (seconds first).
#[docket::task(cron = "* * * * * *", tz = "UTC")]
async fn every_second_by_cron(ctx: Context) {
    report(&ctx);
}

/// Where a test's docket lives.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Memory,
    Redis,
    InProcess,
}

/// A fresh docket, as `handles` handles onto it (separate connections on Redis), a probe named
/// after it, and what must live as long as the test.
async fn open(backend: Backend, handles: usize) -> (Vec<Docket>, Arc<Probe>, Option<RedisServer>) {
    let name = unique_name("recurring");
    let (dockets, server) = match backend {
        Backend::Memory => {
            let docket = Docket::connect("memory://").name(&name).await.unwrap();
            (vec![docket; handles], None)
        }
        Backend::InProcess => {
            let docket = Docket::connect("").name(&name).await.unwrap();
            (vec![docket; handles], None)
        }
        Backend::Redis => {
            let server = RedisServer::start();
            let mut dockets = Vec::new();
            for _ in 0..handles {
                dockets.push(Docket::connect(server.url()).name(&name).await.unwrap());
            }
            (dockets, Some(server))
        }
    };
    (dockets, Probe::named(&name), server)
}

/// What the runs of `key` saw, in the order they ran.
fn seen_of(probe: &Probe, key: &str) -> Vec<Seen> {
    probe.seen().into_iter().filter(|s| s.key == key).collect()
}

/// Wait until `key` has run `runs` times.
async fn until_runs(probe: &Probe, key: &str, runs: usize) {
    probe
        .until(&format!("{key} runs {runs} times"), |p| {
            runs_of(p, key) >= runs
        })
        .await;
}

/// Assert that no run of `seen` shared its due time with another, and each started once due.
#[track_caller]
fn assert_once_per_due_time(seen: &[Seen]) {
    let dues: BTreeSet<SystemTime> = seen.iter().map(|s| s.due).collect();
    assert_eq!(
        dues.len(),
        seen.len(),
        "two runs for one due time: {seen:#?}"
    );
    assert!(
        seen.iter().all(|s| s.due <= s.at),
        "ran before due: {seen:#?}"
    );
}

async fn a_task_every_second_runs_once_a_second_on_two_workers_started_together(backend: Backend) {
    let (dockets, probe, _server) = open(backend, 2).await;
    let workers = [
        Background::start(Worker::new(&dockets[0])),
        Background::start(Worker::new(&dockets[1])),
    ];

    until_runs(&probe, "every_second", 3).await;
    for worker in workers {
        worker.stop().await;
    }

    let seen = seen_of(&probe, "every_second");
    assert_once_per_due_time(&seen);
    for pair in seen.windows(2) {
        assert!(
            same_time(pair[1].due, pair[0].due + Duration::from_secs(1)),
            "each run is due a period after the one before: {seen:#?}"
        );
    }
}

async fn a_cron_task_runs_once_a_tick_on_two_workers_started_together(backend: Backend) {
    let (dockets, probe, _server) = open(backend, 2).await;
    let workers = [
        Background::start(Worker::new(&dockets[0])),
        Background::start(Worker::new(&dockets[1])),
    ];

    until_runs(&probe, EverySecondByCron::NAME, 3).await;
    for worker in workers {
        worker.stop().await;
    }

    let seen = seen_of(&probe, EverySecondByCron::NAME);
    assert_once_per_due_time(&seen);
    for s in &seen {
        let since_epoch = s.due.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(
            since_epoch.subsec_nanos(),
            0,
            "due on a whole second: {s:#?}"
        );
    }
    assert!(
        seen.windows(2).all(|pair| pair[0].due < pair[1].due),
        "ticks run in order: {seen:#?}"
    );
}

async fn a_recurring_task_that_stops_itself_runs_no_more(backend: Backend) {
    let (dockets, probe, _server) = open(backend, 1).await;
    let worker = Background::start(Worker::new(&dockets[0]));

    until_runs(&probe, "stop_on_second_run", 2).await;
    // Three periods more: a run it did not stop would show.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let snapshot = dockets[0].snapshot().await.unwrap();
    worker.stop().await;

    let seen = seen_of(&probe, "stop_on_second_run");
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(
        same_time(seen[1].due, seen[0].due + Duration::from_millis(200)),
        "{seen:#?}"
    );
    let waiting = [&snapshot.queued, &snapshot.scheduled, &snapshot.running];
    assert!(
        waiting
            .iter()
            .flat_map(|tasks| tasks.iter())
            .all(|task| task.key != "stop_on_second_run"),
        "no next run waits: {snapshot:#?}"
    );
}

async fn a_recurring_task_can_move_its_next_run(backend: Backend) {
    let (dockets, probe, _server) = open(backend, 1).await;
    let docket = &dockets[0];
    let worker = Background::start(Worker::new(docket));

    until_runs(&probe, "move_next_run", 2).await;
    let seen = seen_of(&probe, "move_next_run");
    // After the second run, the chain goes back to its period.
    let next_due = seen[1].due + Duration::from_secs(60 * 60);
    let mut snapshot = docket.snapshot().await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !snapshot
        .scheduled
        .iter()
        .any(|task| task.key == "move_next_run" && same_time(task.due, next_due))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run an hour later is never scheduled: {snapshot:#?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        snapshot = docket.snapshot().await.unwrap();
    }
    worker.stop().await;

    assert_eq!(seen.len(), 2, "{seen:#?}");
    let moved = seen[1].due.duration_since(seen[0].at).unwrap_or_default();
    // The first run asked, after it looked, for the next one 300ms later (less a millisecond of
    // storage precision); without it the next run would be an hour away.
    assert!(
        moved + Duration::from_millis(1) >= Duration::from_millis(300),
        "{seen:#?}"
    );
    assert!(moved < Duration::from_millis(300) + SLACK, "{seen:#?}");
}

/// One `#[tokio::test]` per recurring behaviour, in a module per backend.
macro_rules! on {
    ($module:ident, $backend:expr) => {
        mod $module {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_task_every_second_runs_once_a_second_on_two_workers_started_together() {
                super::a_task_every_second_runs_once_a_second_on_two_workers_started_together(
                    $backend,
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_cron_task_runs_once_a_tick_on_two_workers_started_together() {
                super::a_cron_task_runs_once_a_tick_on_two_workers_started_together($backend).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_recurring_task_that_stops_itself_runs_no_more() {
                super::a_recurring_task_that_stops_itself_runs_no_more($backend).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_recurring_task_can_move_its_next_run() {
                super::a_recurring_task_can_move_its_next_run($backend).await;
            }
        }
    };
}

on!(memory, super::Backend::Memory);
on!(redis, super::Backend::Redis);
on!(in_process, super::Backend::InProcess);
