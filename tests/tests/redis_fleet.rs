//! Policies across a fleet on one Redis: results read in another process than the one that ran
//! the task, a running task cancelled from another process or another docket handle, and
//! concurrency limits held by two workers on two handles, and a cooldown that lets one schedule
//! through when many handles schedule at once.
//!
//! The other process is `docket-test-worker`; its tasks log `start N PID` and `done N PID`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use docket::{Docket, Error, Worker, results::Status};
use tests::background::Background;
use tests::probe::Probe;
use tests::redis_server::{RedisServer, unique_name};
use tests::{PATIENCE, eventually, in_time};

// Tasks of `docket-test-worker` this binary schedules by type, declared the same way there: a
// producer that links a task records its state from the moment it is scheduled. Workers of this
// binary never see their dockets.

/// Multiply, keeping the product as the task's result.
#[docket::task(result)]
async fn multiply(a: u64, b: u64) -> Result<u64, std::io::Error> {
    Ok(a * b)
}

/// Hold for `hold_ms`, keeping its state.
#[docket::task(result)]
async fn hold_keeping_state(n: u32, hold_ms: u64) -> Result<u32, std::io::Error> {
    tokio::time::sleep(Duration::from_millis(hold_ms)).await;
    Ok(n)
}

// Tasks this binary's own workers run.

/// Sleeps in 10ms steps for a minute, with retries to spare; a cancel cuts it short.
#[docket::task(retries = 3, backoff = "fixed 10ms")]
async fn loop_on_sleeps(probe: String) {
    let run = Probe::find(&probe).start("loop_on_sleeps");
    for _ in 0..6000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    run.finish();
}

/// One run per track at a time, each a few milliseconds long, labelled with its track.
#[docket::task(concurrency(track_id) = 1)]
async fn one_per_track(probe: String, track_id: u32) {
    let run = Probe::find(&probe).start(track_id.to_string());
    tokio::time::sleep(Duration::from_millis(5)).await;
    run.finish();
}

/// At most four runs at once, each a few milliseconds long.
#[docket::task(concurrency = 4)]
async fn four_at_once(probe: String) {
    let run = Probe::find(&probe).start("four_at_once");
    tokio::time::sleep(Duration::from_millis(5)).await;
    run.finish();
}

/// Lets one schedule a customer through a minute.
#[docket::task(cooldown(customer) = "1m")]
async fn remind_once(customer: u32) {
    let _ = customer;
}

/// A fresh docket on `server`, as `handles` handles with connections of their own.
async fn open(server: &RedisServer, handles: usize) -> Vec<Docket> {
    let name = unique_name("fleet");
    let mut dockets = Vec::new();
    for _ in 0..handles {
        dockets.push(Docket::connect(server.url()).name(&name).await.unwrap());
    }
    dockets
}

/// `docket-test-worker` processes, killed when the test ends.
struct Processes {
    children: Vec<Child>,
    log: PathBuf,
}

impl Processes {
    fn new(server: &RedisServer) -> Processes {
        Processes {
            children: Vec::new(),
            log: server.dir().join("runs.log"),
        }
    }

    /// Start a worker process on `docket`.
    fn spawn(&mut self, server: &RedisServer, docket: &Docket) -> u32 {
        let child = Command::new(env!("CARGO_BIN_EXE_docket-test-worker"))
            .env("DOCKET_URL", server.url())
            .env("DOCKET_NAME", docket.name())
            .env("DOCKET_TEST_LOG", &self.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the test worker");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// The log lines so far, split into words.
    fn lines(&self) -> Vec<Vec<String>> {
        read(&self.log)
    }

    /// How many lines are `event n` (from any process).
    fn count(&self, event: &str, n: u32) -> usize {
        let n = n.to_string();
        self.lines()
            .iter()
            .filter(|line| line.len() == 3 && line[0] == event && line[1] == n)
            .count()
    }

    /// Whether every worker process still runs.
    fn all_alive(&mut self) -> bool {
        self.children
            .iter_mut()
            .all(|child| matches!(child.try_wait(), Ok(None)))
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read(log: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| line.split(' ').map(str::to_owned).collect())
        .collect()
}

// Results.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_is_returned_to_another_process_than_the_one_that_ran_the_task() {
    let server = RedisServer::start();
    let docket = open(&server, 1).await.remove(0);
    let scheduled = Multiply::schedule(6, 7).on(&docket).await.unwrap();
    let mut processes = Processes::new(&server);

    let waiting = tokio::spawn({
        let scheduled = scheduled.clone();
        async move { scheduled.result::<u64>().await }
    });
    let pid = processes.spawn(&server, &docket);
    let product = in_time("the result", waiting).await.unwrap().unwrap();
    let again: u64 = in_time("the result again", docket.result(scheduled.key()))
        .await
        .unwrap();

    assert_eq!((product, again), (42, 42));
    let ran: Vec<Vec<String>> = processes
        .lines()
        .into_iter()
        .filter(|line| line[0] == "multiply")
        .collect();
    assert_eq!(ran, [vec!["multiply", "6", "7", &pid.to_string()]]);
    let state = docket.status(scheduled.key()).await.unwrap().unwrap();
    assert_eq!(state.status, Status::Completed);
}

// Cancelling a running task elsewhere.

/// Wait until the snapshot of `docket` is empty: everything settled.
async fn until_settled(docket: &Docket) {
    eventually("everything is settled", PATIENCE, || async {
        docket.snapshot().await.unwrap().is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_running_in_another_process_is_cancelled() {
    let server = RedisServer::start();
    let docket = open(&server, 1).await.remove(0);
    let scheduled = docket
        .add_json("crash_probe", r#"{"n":1,"hold_ms":60000}"#)
        .await
        .unwrap();
    let mut processes = Processes::new(&server);
    processes.spawn(&server, &docket);
    eventually("the task runs in the worker process", PATIENCE, || async {
        processes.count("start", 1) == 1
    })
    .await;

    assert!(
        docket.cancel(scheduled.key()).await.unwrap(),
        "cancel finds the task running elsewhere"
    );
    until_settled(&docket).await;
    // A retry would start within this.
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert_eq!(processes.count("start", 1), 1, "not retried");
    assert_eq!(processes.count("done", 1), 0, "stopped before its end");
    assert_eq!(docket.dead_letters().await.unwrap(), []);
    assert!(processes.all_alive(), "the worker process keeps running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_keeping_state_cancelled_in_another_process_is_recorded_as_cancelled() {
    let server = RedisServer::start();
    let docket = open(&server, 1).await.remove(0);
    let scheduled = HoldKeepingState::schedule(2, 60_000)
        .key("hold-2")
        .on(&docket)
        .await
        .unwrap();
    let mut processes = Processes::new(&server);
    processes.spawn(&server, &docket);
    eventually("the task runs in the worker process", PATIENCE, || async {
        processes.count("start", 2) == 1
    })
    .await;

    assert!(docket.cancel("hold-2").await.unwrap());
    let result = in_time("the result", scheduled.result::<u32>()).await;
    until_settled(&docket).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert!(
        matches!(&result, Err(Error::TaskCancelled { key }) if key == "hold-2"),
        "{result:?}"
    );
    let state = docket.status("hold-2").await.unwrap().unwrap();
    assert_eq!(state.status, Status::Cancelled);
    assert_eq!(processes.count("start", 2), 1, "not retried");
    assert_eq!(processes.count("done", 2), 0, "stopped before its end");
    assert!(processes.all_alive(), "the worker process keeps running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_running_on_a_worker_of_another_handle_is_cancelled() {
    let server = RedisServer::start();
    let dockets = open(&server, 2).await;
    let probe = Probe::new();
    LoopOnSleeps::schedule(probe.id())
        .key("loop-1")
        .on(&dockets[0])
        .await
        .unwrap();
    let worker = Background::start(Worker::new(&dockets[1]));
    probe.until("the task runs", |p| p.starts() == 1).await;

    assert!(dockets[0].cancel("loop-1").await.unwrap());
    probe
        .until("the cancelled run is dropped", |p| p.in_progress() == 0)
        .await;
    until_settled(&dockets[0]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    worker.stop().await;

    assert_eq!(probe.only_run().finished, None, "stopped before its end");
    assert_eq!(dockets[0].dead_letters().await.unwrap(), []);
}

// Limits across workers.

/// Run everything on two workers, on two handles, each able to run 50 tasks at once.
async fn finish_on_two_workers(dockets: &[Docket]) {
    let (first, second) = in_time("both workers to finish", async {
        tokio::join!(
            Worker::new(&dockets[0])
                .concurrency(50)
                .run_until_finished(),
            Worker::new(&dockets[1])
                .concurrency(50)
                .run_until_finished(),
        )
    })
    .await;
    first.expect("the first worker ran without error");
    second.expect("the second worker ran without error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_limit_per_argument_value_holds_across_two_workers() {
    const TRACKS: u32 = 8;
    let server = RedisServer::start();
    let dockets = open(&server, 2).await;
    let probe = Probe::new();
    dockets[0]
        .add_many((0..200).map(|n| OnePerTrack::schedule(probe.id(), n % TRACKS)))
        .await
        .unwrap();

    finish_on_two_workers(&dockets).await;

    assert_eq!(probe.finishes(), 200, "every waiting task runs");
    for track in 0..TRACKS {
        assert_eq!(
            probe.most_running_of(&track.to_string()),
            1,
            "track {track} ran more than one task at once"
        );
    }
    assert!(dockets[0].snapshot().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_limit_holds_across_two_workers() {
    let server = RedisServer::start();
    let dockets = open(&server, 2).await;
    let probe = Probe::new();
    dockets[0]
        .add_many((0..200).map(|_| FourAtOnce::schedule(probe.id())))
        .await
        .unwrap();

    finish_on_two_workers(&dockets).await;

    assert_eq!(probe.finishes(), 200, "every waiting task runs");
    assert_eq!(
        probe.most_running(),
        4,
        "at most 4 at once, and 4 when 200 wait"
    );
    assert!(dockets[0].snapshot().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooldown_lets_one_schedule_through_when_many_handles_schedule_at_once() {
    const CUSTOMERS: u32 = 5;
    let server = RedisServer::start();
    let dockets = open(&server, 4).await;
    let mut schedules = tokio::task::JoinSet::new();
    for docket in &dockets {
        for _ in 0..10 {
            for customer in 0..CUSTOMERS {
                let docket = docket.clone();
                schedules.spawn(async move {
                    let receipt = RemindOnce::schedule(customer)
                        .after(Duration::from_secs(3600))
                        .on(&docket)
                        .await
                        .unwrap();
                    (customer, receipt.disposition())
                });
            }
        }
    }
    let mut added = [0; CUSTOMERS as usize];
    while let Some(joined) = schedules.join_next().await {
        let (customer, disposition) = joined.unwrap();
        match disposition {
            docket::Disposition::Added => added[customer as usize] += 1,
            docket::Disposition::CooledDown => {}
            other => panic!("customer {customer}: {other:?}"),
        }
    }
    assert_eq!(
        added, [1; CUSTOMERS as usize],
        "one schedule a customer, of 40 each"
    );
    assert_eq!(
        dockets[0].snapshot().await.unwrap().len(),
        CUSTOMERS as usize
    );
}
