//! Durability across worker crashes: a worker process is SIGKILLed mid-task, and another worker
//! takes its tasks over after the redelivery timeout; a task that kills every worker that runs it
//! ends as a dead letter; SIGTERM lets running tasks finish. Nothing is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tests::eventually;
use tests::redis_server::{RedisServer, Reply, unique_name};

const TASKS: u32 = 20;

/// A `docket-test-worker` process on `server`'s docket `name`, logging to `log`.
fn spawn_worker(server: &RedisServer, name: &str, log: &Path, concurrency: u32) -> Child {
    Command::new(env!("CARGO_BIN_EXE_docket-test-worker"))
        .env("DOCKET_URL", server.url())
        .env("DOCKET_NAME", name)
        .env("DOCKET_WORKER_CONCURRENCY", concurrency.to_string())
        .env("DOCKET_TEST_LOG", log)
        .env("DOCKET_TEST_REDELIVERY_MS", "1000")
        .env("DOCKET_TEST_MAX_DELIVERIES", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the test worker")
}

/// `(event, task) → pids` from the log lines `start N PID` and `done N PID`.
fn read_log(log: &Path) -> BTreeMap<(String, u32), Vec<u32>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut events: BTreeMap<(String, u32), Vec<u32>> = BTreeMap::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        if let [event @ ("start" | "done"), n, pid] = parts[..] {
            events
                .entry((event.to_owned(), n.parse().unwrap()))
                .or_default()
                .push(pid.parse().unwrap());
        }
    }
    events
}

fn count(events: &BTreeMap<(String, u32), Vec<u32>>, event: &str) -> usize {
    events.keys().filter(|(name, _)| name == event).count()
}

/// How long to wait for the worker processes here, which start, run a thousand tasks, or stop.
/// Far longer than they take; it only turns a hang into a readable failure.
const PATIENCE: Duration = Duration::from_secs(30);

struct Cleanup(Vec<Child>, PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_redelivered_after_its_worker_dies() {
    let server = RedisServer::start();
    let name = unique_name("crash");
    let log = server.dir().join("runs.log");
    let docket = docket::Docket::connect(server.url())
        .name(&name)
        .await
        .unwrap();
    for n in 0..TASKS {
        let args = format!(r#"{{"n":{n},"hold_ms":1500}}"#);
        docket.add_json("crash_probe", &args).await.unwrap();
    }

    let mut cleanup = Cleanup(Vec::new(), log.clone());
    cleanup.0.push(spawn_worker(&server, &name, &log, 5));
    eventually(
        "the first worker to start five tasks",
        PATIENCE,
        async || count(&read_log(&log), "start") >= 5,
    )
    .await;
    let victim = cleanup.0[0].id();
    cleanup.0[0].kill().expect("SIGKILL the first worker");
    cleanup.0[0].wait().unwrap();
    let interrupted: BTreeSet<u32> = read_log(&log)
        .iter()
        .filter(|((event, _), pids)| event == "start" && pids.contains(&victim))
        .map(|((_, n), _)| *n)
        .collect();
    assert!(!interrupted.is_empty());

    cleanup.0.push(spawn_worker(&server, &name, &log, 10));
    eventually("every task to finish", PATIENCE, async || {
        count(&read_log(&log), "done") == TASKS as usize
    })
    .await;

    let events = read_log(&log);
    for n in 0..TASKS {
        assert!(
            events.contains_key(&("done".to_owned(), n)),
            "task {n} never finished: {events:?}"
        );
    }
    for n in &interrupted {
        let starts = &events[&("start".to_owned(), *n)];
        assert!(
            starts.len() >= 2 && starts.iter().any(|pid| *pid != victim),
            "task {n}, interrupted by the crash, was not run again elsewhere: {starts:?}"
        );
    }
    // The last acknowledgements may still be on their way.
    eventually(
        "every task to be settled, none left behind",
        Duration::from_secs(10),
        async || docket.snapshot().await.unwrap().is_empty(),
    )
    .await;
    assert!(docket.dead_letters().await.unwrap().is_empty());

    // The dead worker's consumer is forgotten once silent for twice the redelivery timeout
    // (the keeper tidies the group); the live worker is still listed among the workers.
    let stream = format!("{{{name}}}:stream");
    let victim_consumers = || match server.command(&["XINFO", "CONSUMERS", &stream, "workers"]) {
        Reply::Array(consumers) => consumers
            .iter()
            .filter(|consumer| format!("{consumer:?}").contains(&format!(".{victim}.")))
            .count(),
        other => panic!("XINFO CONSUMERS answered {other:?}"),
    };
    eventually(
        "the dead worker's consumer to be removed",
        PATIENCE,
        async || victim_consumers() == 0,
    )
    .await;
    let live = cleanup.0[1].id();
    let workers = docket.workers().await.unwrap();
    assert!(
        workers
            .iter()
            .any(|worker| worker.name.contains(&format!(".{live}."))),
        "the live worker is listed: {workers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_kills_every_worker_becomes_a_dead_letter() {
    let server = RedisServer::start();
    let name = unique_name("poison");
    let log = server.dir().join("runs.log");
    let docket = docket::Docket::connect(server.url())
        .name(&name)
        .await
        .unwrap();
    let poison = docket.add_json("exit_process", "{}").await.unwrap();
    for n in 0..3 {
        let args = format!(r#"{{"n":{n},"hold_ms":10}}"#);
        docket.add_json("crash_probe", &args).await.unwrap();
    }

    let mut cleanup = Cleanup(Vec::new(), log.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let dead = docket.dead_letters().await.unwrap();
        if !dead.is_empty() {
            break dead;
        }
        assert!(
            Instant::now() < deadline,
            "the poison task was never buried"
        );
        // Replace each worker the poison task killed.
        let running = cleanup
            .0
            .iter_mut()
            .filter_map(|child| child.try_wait().unwrap().is_none().then_some(()))
            .count();
        if running == 0 {
            cleanup.0.push(spawn_worker(&server, &name, &log, 1));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0].key, poison.key());
    assert!(
        dead[0].reason.contains("delivered 3 times"),
        "{}",
        dead[0].reason
    );
    let exits = std::fs::read_to_string(&log)
        .unwrap()
        .matches("exiting")
        .count();
    assert_eq!(
        exits, 2,
        "the poison ran more often than max_deliveries allows"
    );
    // The innocent tasks beside it all ran.
    eventually("the other tasks to finish", PATIENCE, async || {
        count(&read_log(&log), "done") == 3
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_tasks_finish_and_loses_none() {
    const MANY: u32 = 2000;
    let server = RedisServer::start();
    let name = unique_name("sigterm");
    let log = server.dir().join("runs.log");
    let docket = docket::Docket::connect(server.url())
        .name(&name)
        .await
        .unwrap();
    for n in 0..MANY {
        let args = format!(r#"{{"n":{n},"hold_ms":1000}}"#);
        docket.add_json("crash_probe", &args).await.unwrap();
    }

    // Half the tasks, 1,000, run when SIGTERM arrives.
    let mut cleanup = Cleanup(Vec::new(), log.clone());
    cleanup.0.push(spawn_worker(&server, &name, &log, MANY / 2));
    eventually("the worker to start its tasks", PATIENCE, async || {
        count(&read_log(&log), "start") == (MANY / 2) as usize
    })
    .await;
    let status = Command::new("kill")
        .args(["-TERM", &cleanup.0[0].id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::block_in_place(|| cleanup.0[0].wait()).unwrap();
    assert!(exit.success(), "the worker did not stop cleanly: {exit}");

    let events = read_log(&log);
    let started = count(&events, "start");
    assert_eq!(
        count(&events, "done"),
        started,
        "running tasks were cut off"
    );
    let snapshot = docket.snapshot().await.unwrap();
    assert!(snapshot.running.is_empty(), "{:?}", snapshot.running);
    assert_eq!(snapshot.queued.len(), MANY as usize - started);

    // Another worker runs the rest, and nothing runs twice.
    cleanup.0.push(spawn_worker(&server, &name, &log, MANY / 2));
    eventually("every task to finish", PATIENCE, async || {
        count(&read_log(&log), "done") == MANY as usize
    })
    .await;
    let events = read_log(&log);
    let twice: Vec<_> = events.iter().filter(|(_, pids)| pids.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "ran twice after a graceful stop: {twice:?}"
    );
}

static HELD: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Counts its starts, then holds its worker slot for `ms`.
#[docket::task]
async fn hold(ms: u64) {
    HELD.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_running_past_the_redelivery_timeout_stay_with_their_live_worker() {
    let server = RedisServer::start();
    let name = unique_name("renew");
    let open = || {
        docket::Docket::connect(server.url())
            .name(&name)
            .redelivery_timeout(Duration::from_millis(400))
    };
    let (first, second) = (open().await.unwrap(), open().await.unwrap());
    for _ in 0..6 {
        Hold::schedule(1500).on(&first).await.unwrap();
    }

    let (a, b) = tokio::join!(
        docket::Worker::new(&first)
            .concurrency(3)
            .run_until_finished(),
        docket::Worker::new(&second)
            .concurrency(3)
            .run_until_finished(),
    );
    a.unwrap();
    b.unwrap();

    let starts = HELD.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(starts, 6, "live workers' tasks were taken over");
}
