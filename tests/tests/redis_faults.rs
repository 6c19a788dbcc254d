//! The Redis backend under bad input and failures: garbage in the stream, an unreachable or
//! restarting server, secrets in URLs. The worker keeps running and nothing is lost.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use docket::{Docket, Placement, Worker};
use tests::background::Background;
use tests::probe::Probe;
use tests::redis_server::{RedisServer, free_port, unique_name};
use tests::{eventually, finish};

use tests::capture::Capture;

/// Records one run, labelled `label`.
#[docket::task]
async fn note(probe: String, label: String) {
    Probe::find(&probe).start(label).finish();
}

/// The numbers seen by `count_up`, across every test of this binary that uses it.
static COUNTED: Mutex<BTreeSet<(String, u32)>> = Mutex::new(BTreeSet::new());

/// Records its number, after a short pause so that some runs are in flight at any moment.
#[docket::task]
async fn count_up(run: String, n: u32) {
    tokio::time::sleep(Duration::from_millis(5)).await;
    COUNTED.lock().unwrap().insert((run, n));
}

fn counted(run: &str) -> usize {
    COUNTED
        .lock()
        .unwrap()
        .iter()
        .filter(|(r, _)| r == run)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_the_stream_becomes_dead_letters_and_the_worker_keeps_going() {
    let server = RedisServer::start();
    let name = unique_name("garbage");
    let docket = Docket::connect(server.url())
        .name(&name)
        .max_payload(1024)
        .await
        .unwrap();
    let stream = format!("{{{name}}}:stream");
    let message = |task: &str, args: &str| {
        format!(r#"{{"task":"{task}","attempt":1,"due":0,"args":{args}}}"#)
    };
    let oversized = message(
        "note",
        &format!(r#"{{"probe":"{}","label":""}}"#, "x".repeat(2000)),
    );
    let unknown = message("no_such_task", "{}");
    let wrong_args = message("note", r#"{"wrong":1}"#);
    let entries: [&[&str]; 6] = [
        &["junk", "1"],
        &["k", "no-message"],
        &["k", "bad-json", "m", "{not json"],
        &["k", "unknown", "m", &unknown],
        &["k", "wrong-args", "m", &wrong_args],
        &["k", "oversized", "m", &oversized],
    ];
    for fields in entries {
        let mut command = vec!["XADD", stream.as_str(), "*"];
        command.extend_from_slice(fields);
        server.command(&command);
    }
    let probe = Probe::new();
    Note::schedule(probe.id(), "after the garbage".into())
        .on(&docket)
        .await
        .unwrap();

    finish(&docket).await;

    assert_eq!(probe.labels(), ["after the garbage"]);
    let dead = docket.dead_letters().await.unwrap();
    let reason = |key: &str| {
        dead.iter()
            .find(|letter| letter.key == key)
            .map(|letter| letter.reason.clone())
            .unwrap_or_else(|| panic!("no dead letter for {key}: {dead:#?}"))
    };
    let garbled = dead
        .iter()
        .find(|letter| letter.key.starts_with("garbled:"));
    assert!(
        garbled.is_some_and(|letter| letter.args.contains("junk")),
        "{dead:#?}"
    );
    assert!(reason("no-message").contains("no message field"));
    assert!(reason("bad-json").contains("not valid"));
    assert!(reason("unknown").contains("unknown task `no_such_task`"));
    assert!(reason("wrong-args").contains("do not decode"));
    assert!(reason("oversized").contains("over the limit of 1024"));
    assert_eq!(dead.len(), 6, "{dead:#?}");
    assert!(docket.snapshot().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_over_the_payload_limit_is_refused_when_scheduled() {
    let server = RedisServer::start();
    let docket = Docket::connect(server.url())
        .name(unique_name("limit"))
        .max_payload(256)
        .await
        .unwrap();
    let error = Note::schedule("p".into(), "x".repeat(300))
        .on(&docket)
        .await
        .unwrap_err();
    assert!(
        matches!(error, docket::Error::PayloadTooLarge { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("over the limit of 256"),
        "{error}"
    );
    assert!(docket.snapshot().await.unwrap().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn scheduling_falls_back_to_in_process_when_redis_is_unreachable() {
    let capture = Capture::new();
    let _traced = tracing::subscriber::set_default(capture.subscriber());
    let docket = Docket::connect(format!("redis://127.0.0.1:{}", free_port()))
        .name(unique_name("fallback"))
        .await
        .expect("connecting is lazy: an unreachable server is no error yet");
    let probe = Probe::new();

    let scheduled = Note::schedule(probe.id(), "ran anyway".into())
        .on(&docket)
        .await
        .unwrap();

    assert_eq!(scheduled.placement(), Placement::Fallback);
    eventually(
        "the task to run in-process",
        Duration::from_secs(10),
        async || probe.finishes() == 1,
    )
    .await;
    assert_eq!(probe.labels(), ["ran anyway"]);
    let messages = capture.messages_in("docket.schedule");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("docket scheduling failed, falling back to in-process")),
        "{messages:?}"
    );
    let span = &capture.spans("docket.schedule")[0];
    assert_eq!(span.field("placement"), Some("fallback"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_show_in_debug_output_or_errors() {
    let port = free_port();
    let docket = Docket::connect(format!("redis://docket:hunter2@127.0.0.1:{port}"))
        .await
        .unwrap();
    let debug = format!("{docket:?}");
    assert!(
        !debug.contains("hunter2") && debug.contains("docket:***@"),
        "{debug}"
    );
    let error = docket.snapshot().await.unwrap_err();
    let chain = format!("{error} {:?}", std::error::Error::source(&error));
    assert!(!chain.contains("hunter2"), "{chain}");
    let bad = Docket::connect("redis://docket:hunter2@[not-a-host")
        .await
        .unwrap_err();
    assert!(!bad.to_string().contains("hunter2"), "{bad}");
}

/// Kill or restart Redis in the middle of a run; every task still completes.
async fn survive_restarts(server: &mut RedisServer, restart: fn(&mut RedisServer)) {
    let run = unique_name("restart");
    let docket = Docket::connect(server.url()).name(&run).await.unwrap();
    const NOW: u32 = 150;
    const LATER: u32 = 150;
    for n in 0..NOW {
        CountUp::schedule(run.clone(), n).on(&docket).await.unwrap();
    }
    for n in NOW..NOW + LATER {
        CountUp::schedule(run.clone(), n)
            .after(Duration::from_millis(u64::from(n - NOW) * 10))
            .on(&docket)
            .await
            .unwrap();
    }
    let worker = Background::start(Worker::new(&docket).concurrency(4));

    eventually("some tasks to run", Duration::from_secs(10), async || {
        counted(&run) >= 20
    })
    .await;
    // Several restarts while tasks run: a read whose reply dies with the connection is likely
    // at least once.
    for _ in 0..4 {
        restart(server);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eventually("every task to run", Duration::from_secs(30), async || {
        counted(&run) == (NOW + LATER) as usize
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let snapshot = docket.snapshot().await;
        if snapshot.as_ref().is_ok_and(|s| s.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tasks were left behind: {snapshot:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_completes_when_redis_is_killed_and_restarted() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    survive_restarts(&mut server, RedisServer::restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_completes_when_redis_shuts_down_cleanly_and_restarts() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "everysec"]);
    survive_restarts(&mut server, |server| {
        server.shutdown();
        server.restart();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_fallback_an_unreachable_redis_is_an_error_to_the_caller() {
    let docket = Docket::connect(format!("redis://127.0.0.1:{}", free_port()))
        .name(unique_name("no-fallback"))
        .in_process_fallback(false)
        .await
        .unwrap();
    let probe = Probe::new();

    let error = Note::schedule(probe.id(), "must not run".into())
        .on(&docket)
        .await
        .unwrap_err();

    assert!(error.is_unavailable(), "{error:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(probe.starts(), 0, "the task ran in-process anyway");
}

/// Redis comes back empty (no persistence, a flush, a failover to an empty replica): the running
/// worker makes its consumer group again and takes new tasks, and its health says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_carries_on_after_redis_restarts_without_its_data() {
    let mut server = RedisServer::start();
    let docket = Docket::connect(server.url())
        .name(unique_name("emptied"))
        .in_process_fallback(false)
        .await
        .unwrap();
    let worker = Worker::new(&docket);
    let health = worker.health();
    let background = Background::start(worker);
    let run = unique_name("emptied-run");
    CountUp::schedule(run.clone(), 1).on(&docket).await.unwrap();
    eventually("the first task", Duration::from_secs(10), async || {
        counted(&run) == 1
    })
    .await;

    server.kill();
    eventually(
        "the worker to notice",
        Duration::from_secs(10),
        async || health.check().is_err(),
    )
    .await;
    server.restart();
    eventually(
        "the worker to be healthy again",
        Duration::from_secs(15),
        async || health.check().is_ok(),
    )
    .await;
    eventually(
        "a new task to be accepted",
        Duration::from_secs(10),
        async || CountUp::schedule(run.clone(), 2).on(&docket).await.is_ok(),
    )
    .await;
    eventually("the new task to run", Duration::from_secs(10), async || {
        counted(&run) == 2
    })
    .await;
    background.stop().await;
}
