//! `docket watch KEY` against a private `redis-server`: each state and progress report of one
//! task, printed as it happens, until the task ends; the exit code says how it ended.

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use docket::{Docket, Worker};
use serde_json::Value;
use tests::background::Background;
use tests::probe::Probe;
use tests::redis_server::{RedisServer, unique_name};
use tests::{PATIENCE, eventually, in_time};

#[docket::task(result)]
async fn watched(probe: String, ctx: docket::Context) -> Result<u32, String> {
    let probe = Probe::find(&probe);
    let run = probe.start("watched");
    ctx.progress(1, 2, "halfway").await;
    probe.released().await;
    run.finish();
    Ok(42)
}

#[docket::task(retries = "forever", backoff = "exponential 1s..5m")]
async fn poll_feed() -> Result<(), String> {
    Err("the feed does not answer".into())
}

#[docket::task(result, retries = 1, backoff = "fixed 50ms")]
async fn watched_failing() -> Result<(), String> {
    Err("the disk is full".into())
}

/// What the command printed so far, shared with the test while it runs.
#[derive(Clone, Default)]
struct Printed(Arc<Mutex<Vec<u8>>>);

impl Write for Printed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Printed {
    /// Each JSON line printed so far.
    fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn statuses(&self) -> Vec<String> {
        self.lines()
            .iter()
            .map(|line| line["status"].as_str().unwrap().to_owned())
            .collect()
    }
}

struct Fixture {
    server: RedisServer,
    name: String,
    docket: Docket,
}

async fn fixture() -> Fixture {
    let server = RedisServer::start();
    let name = unique_name("cli-watch");
    let docket = Docket::connect(server.url()).name(&name).await.unwrap();
    Fixture {
        server,
        name,
        docket,
    }
}

/// Start `docket --json watch KEY` in the background, printing into the returned buffer.
fn watch(fixture: &Fixture, key: &str) -> (Printed, tokio::task::JoinHandle<ExitCode>) {
    let printed = Printed::default();
    let argv: Vec<String> = [
        "docket",
        "--url",
        &fixture.server.url(),
        "--name",
        &fixture.name,
        "--json",
        "watch",
        key,
    ]
    .map(str::to_owned)
    .to_vec();
    let mut out = printed.clone();
    let handle = tokio::spawn(async move { docket::cli::run_from(argv, &mut out).await });
    (printed, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_each_state_and_progress_live_and_exits_zero_on_completion() {
    let fixture = fixture().await;
    let probe = Probe::new();
    Watched::schedule(probe.id())
        .key("track-7")
        .on(&fixture.docket)
        .await
        .unwrap();
    let (printed, watching) = watch(&fixture, "track-7");
    eventually("the queued state is printed", PATIENCE, async || {
        printed.statuses() == ["queued"]
    })
    .await;

    let worker = Background::start(Worker::new(&fixture.docket));
    eventually("the progress is printed", PATIENCE, async || {
        printed
            .lines()
            .iter()
            .any(|line| line["progress"]["message"] == "halfway")
    })
    .await;
    assert!(!watching.is_finished(), "still watching the running task");
    probe.release(1);
    let code = in_time("the watch to end", watching).await.unwrap();
    worker.stop().await;

    assert_eq!(code, ExitCode::SUCCESS);
    let statuses = printed.statuses();
    assert_eq!(statuses.first().unwrap(), "queued");
    assert_eq!(statuses.last().unwrap(), "completed");
    assert!(statuses.contains(&"running".to_owned()), "{statuses:?}");
    let last = printed.lines().pop().unwrap();
    assert_eq!(last["result"], 42);
    assert_eq!(last["key"], "track-7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_a_retry_to_the_failure_and_exits_non_zero() {
    let fixture = fixture().await;
    WatchedFailing::schedule()
        .key("doomed")
        .on(&fixture.docket)
        .await
        .unwrap();
    let (printed, watching) = watch(&fixture, "doomed");
    eventually("the first state is printed", PATIENCE, async || {
        !printed.lines().is_empty()
    })
    .await;
    let worker = Background::start(Worker::new(&fixture.docket));
    let code = in_time("the watch to end", watching).await.unwrap();
    worker.stop().await;

    assert_eq!(code, ExitCode::FAILURE);
    let lines = printed.lines();
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "failed");
    assert_eq!(last["attempt"], 2);
    assert!(
        last["error"].as_str().unwrap().contains("the disk is full"),
        "{last}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line["status"] == "scheduled" && line["attempt"] == 2),
        "the retry shows as scheduled: {lines:#?}"
    );
}

/// Not `watch`, but the other place `retries = "forever"` shows on the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_shows_a_task_retried_forever_and_the_attempts_of_the_others() {
    let fixture = fixture().await;
    let later = std::time::Duration::from_secs(3600);
    let poll = PollFeed::schedule().after(later).on(&fixture.docket);
    poll.await.unwrap();
    let failing = WatchedFailing::schedule().after(later).on(&fixture.docket);
    failing.await.unwrap();
    let argv = [
        "docket",
        "--url",
        &fixture.server.url(),
        "--name",
        &fixture.name,
    ];
    let mut out = Vec::new();
    let json = [&argv[..], &["--json", "snapshot"]].concat();
    assert_eq!(
        docket::cli::run_from(json, &mut out).await,
        ExitCode::SUCCESS
    );
    let snapshot: Value = serde_json::from_slice(&out).unwrap();
    let attempts = |task: &str| {
        let scheduled = snapshot["scheduled"].as_array().unwrap();
        let found = scheduled.iter().find(|entry| entry["task"] == task);
        found.unwrap()["attempts"].clone()
    };
    assert_eq!(attempts("poll_feed"), "forever");
    assert_eq!(attempts("watched_failing"), 2);

    let mut out = Vec::new();
    let table = [&argv[..], &["snapshot"]].concat();
    assert_eq!(
        docket::cli::run_from(table, &mut out).await,
        ExitCode::SUCCESS
    );
    let table = String::from_utf8(out).unwrap();
    assert!(table.contains("1/forever"), "{table}");
    assert!(table.contains("1/2"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_a_key_with_no_record_fails_at_once() {
    let fixture = fixture().await;
    let (printed, watching) = watch(&fixture, "nothing-here");
    let code = in_time("the watch to give up", watching).await.unwrap();
    assert_eq!(code, ExitCode::FAILURE);
    assert!(printed.lines().is_empty());
}
