//! `State<T>` injection: a value provided on the docket is handed to each task that asks for it,
//! on the memory backend, on Redis and in-process; a worker refuses to start while one is
//! missing.
//!
//! A binary of its own: a worker refuses to start when any task registered in its binary misses
//! its state, so a task with a `State` parameter in the shared suite would stop every worker
//! there.

use std::time::Duration;

use docket::{Docket, Error, State, Worker};
use tests::probe::Probe;
use tests::redis_server::{RedisServer, unique_name};
use tests::{finish, in_time};

/// What the greeting task is given rather than sent.
#[derive(Debug, Clone)]
struct Greeting(String);

/// Records the provided greeting with the name it was scheduled for.
#[docket::task]
async fn greet(probe: String, name: String, State(greeting): State<Greeting>) {
    Probe::find(&probe)
        .start(format!("{} {name}", greeting.0))
        .finish();
}

async fn memory() -> Docket {
    Docket::connect("memory://")
        .name(unique_name("state-memory"))
        .await
        .unwrap()
}

async fn redis(server: &RedisServer) -> Docket {
    Docket::connect(server.url())
        .name(unique_name("state-redis"))
        .await
        .unwrap()
}

async fn in_process() -> Docket {
    Docket::connect("")
        .name(unique_name("state-in-process"))
        .await
        .unwrap()
}

/// Provide a greeting, run a greeting task: it was given the greeting.
async fn a_task_is_given_the_state_provided(docket: Docket) {
    let probe = Probe::new();
    docket.provide(Greeting("hello".into()));
    Greet::schedule(probe.id(), "ada".into())
        .on(&docket)
        .await
        .unwrap();

    finish(&docket).await;

    assert_eq!(probe.labels(), ["hello ada"]);
}

/// Without a greeting provided, a worker refuses to start, naming the task and the type, and
/// runs nothing; once it is provided, the waiting task runs.
async fn a_worker_refuses_to_start_while_a_state_is_missing(docket: Docket) {
    let probe = Probe::new();
    Greet::schedule(probe.id(), "ada".into())
        .on(&docket)
        .await
        .unwrap();

    let finished = in_time("the refusal", Worker::new(&docket).run_until_finished()).await;
    let running = in_time(
        "the refusal",
        Worker::new(&docket).run_until(std::future::pending()),
    )
    .await;

    for result in [finished, running] {
        let error = result.expect_err("a worker without the greeting does not start");
        match &error {
            Error::MissingState { task, type_name } => {
                assert_eq!(*task, "greet");
                assert!(type_name.ends_with("Greeting"), "{type_name}");
            }
            other => panic!("expected MissingState, got {other:?}"),
        }
        assert!(error.to_string().contains("provide"), "{error}");
    }
    assert_eq!(probe.starts(), 0);

    docket.provide(Greeting("hello".into()));
    finish(&docket).await;
    assert_eq!(
        probe.labels(),
        ["hello ada"],
        "the task waited, and runs now"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_task_is_given_the_state_provided() {
    a_task_is_given_the_state_provided(memory().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_worker_refuses_to_start_while_a_state_is_missing() {
    a_worker_refuses_to_start_while_a_state_is_missing(memory().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_task_is_given_the_state_provided() {
    let server = RedisServer::start();
    a_task_is_given_the_state_provided(redis(&server).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_worker_refuses_to_start_while_a_state_is_missing() {
    let server = RedisServer::start();
    a_worker_refuses_to_start_while_a_state_is_missing(redis(&server).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_a_task_is_given_the_state_provided() {
    a_task_is_given_the_state_provided(in_process().await).await;
}

/// In-process, the docket's own worker runs whatever is scheduled on it: a task whose state is
/// missing fails for good, saying what to provide, and a worker started by hand still refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_a_task_whose_state_is_missing_fails_for_good() {
    let docket = in_process().await;
    let probe = Probe::new();
    let scheduled = Greet::schedule(probe.id(), "ada".into())
        .on(&docket)
        .await
        .unwrap();

    let dead = in_time("the dead letter", async {
        loop {
            let dead = docket.dead_letters().await.unwrap();
            if !dead.is_empty() {
                return dead;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let refused = in_time("the refusal", Worker::new(&docket).run_until_finished()).await;

    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0].key, scheduled.key());
    assert_eq!(dead[0].attempt, 1, "a missing state is not retried");
    assert!(
        dead[0].reason.contains("Greeting") && dead[0].reason.contains("provide"),
        "{:?}",
        dead[0].reason
    );
    assert_eq!(probe.starts(), 0);
    assert!(
        matches!(refused, Err(Error::MissingState { task: "greet", .. })),
        "{refused:?}"
    );
}
