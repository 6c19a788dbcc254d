//! A task's lifecycle record has one writer per change: the step that makes the change writes
//! it. Scheduling writes the first record as it stores the task; cancelling marks it cancelled
//! as it cancels; the worker writes what it does. These tests hold each of those steps to it,
//! on memory and on a real Redis.

use std::time::Duration;

use docket::results::Status;
use docket::{Docket, Error, Worker};
use tests::redis_server::{RedisServer, Reply, unique_name};

/// Adds the numbers and keeps the sum for an hour.
#[docket::task(result)]
async fn sum(numbers: Vec<u32>) -> Result<u32, String> {
    Ok(numbers.iter().sum())
}

/// Keeps nothing.
#[docket::task]
async fn forget(_n: u32) {}

/// Asks for a retry after `wait_ms` on its first attempt; returns `n` on the second.
#[docket::task(result, retries = 1)]
async fn second_time(n: u32, wait_ms: u64, ctx: docket::Context) -> Result<u32, docket::Retry> {
    match ctx.attempt() {
        1 => Err(docket::Retry::after(Duration::from_millis(wait_ms))),
        _ => Ok(n),
    }
}

async fn memory() -> Docket {
    Docket::connect("memory://")
        .name(unique_name("records-memory"))
        .await
        .unwrap()
}

async fn redis(server: &RedisServer) -> Docket {
    Docket::connect(server.url())
        .name(unique_name("records-redis"))
        .await
        .unwrap()
}

/// Run the docket's due tasks, then stop.
async fn drain(docket: &Docket) {
    tokio::time::timeout(
        Duration::from_secs(30),
        Worker::new(docket).run_until_finished(),
    )
    .await
    .expect("drained in time")
    .unwrap();
}

async fn first_records_are_written_as_tasks_are_stored(docket: Docket) {
    let now = Sum::schedule(vec![1, 2]).on(&docket).await.unwrap();
    let later = Sum::schedule(vec![3])
        .after(Duration::from_secs(3600))
        .on(&docket)
        .await
        .unwrap();
    let untracked = Forget::schedule(1).on(&docket).await.unwrap();

    let now = docket.status(now.key()).await.unwrap().expect("a record");
    let later = docket.status(later.key()).await.unwrap().expect("a record");
    assert_eq!((now.status, now.attempt), (Status::Queued, 1));
    assert_eq!((later.status, later.attempt), (Status::Scheduled, 1));
    assert_eq!(now.task, "sum");
    assert_eq!(docket.status(untracked.key()).await.unwrap(), None);
}

async fn a_duplicate_leaves_the_record_of_the_task_it_found(docket: Docket) {
    Sum::schedule(vec![1]).key("dup").on(&docket).await.unwrap();
    drain(&docket).await;
    let done = docket.status("dup").await.unwrap().expect("a record");
    assert_eq!(done.status, Status::Completed);

    // The key is free again once the task ended: this one is stored, with a new record.
    Sum::schedule(vec![2])
        .key("dup")
        .after(Duration::from_secs(3600))
        .on(&docket)
        .await
        .unwrap();
    // This one finds it waiting: a duplicate, which writes nothing.
    let duplicate = Sum::schedule(vec![3]).key("dup").on(&docket).await.unwrap();
    assert_eq!(duplicate.disposition(), docket::Disposition::Duplicate);
    let record = docket.status("dup").await.unwrap().expect("a record");
    assert_eq!(record.status, Status::Scheduled, "{record:#?}");
}

async fn cancelling_marks_only_a_record_that_has_not_ended(docket: Docket) {
    let done = Sum::schedule(vec![2]).on(&docket).await.unwrap();
    drain(&docket).await;
    let waiting = Sum::schedule(vec![1])
        .after(Duration::from_secs(3600))
        .on(&docket)
        .await
        .unwrap();

    assert!(docket.cancel(waiting.key()).await.unwrap());
    let cancelled = docket
        .status(waiting.key())
        .await
        .unwrap()
        .expect("a record");
    assert_eq!(cancelled.status, Status::Cancelled);
    assert_eq!((cancelled.task.as_str(), cancelled.attempt), ("sum", 1));

    // Nothing is left to cancel, and the completed record is not touched.
    assert!(!docket.cancel(done.key()).await.unwrap());
    let completed = docket.status(done.key()).await.unwrap().expect("a record");
    assert_eq!(completed.status, Status::Completed);
    assert_eq!(done.result::<u32>().await.unwrap(), 2);
}

/// The states in a record's history, and that their times never go back.
async fn history(docket: &Docket, key: &str) -> Vec<(Status, u32)> {
    let record = docket.status(key).await.unwrap().expect("a record");
    let history = record.history();
    assert!(
        history.windows(2).all(|two| two[0].at_ms <= two[1].at_ms),
        "{history:?}"
    );
    history
        .iter()
        .map(|change| (change.status, change.attempt))
        .collect()
}

async fn a_record_holds_the_history_of_its_state_changes(docket: Docket) {
    use Status::*;
    let done = Sum::schedule(vec![2]).on(&docket).await.unwrap();
    let retried = SecondTime::schedule(7, 10).on(&docket).await.unwrap();
    drain(&docket).await;
    assert_eq!(
        history(&docket, done.key()).await,
        [(Queued, 1), (Running, 1), (Completed, 1)]
    );
    // A retried task's history starts at its first retry: the worker writes the record
    // without reading it, from what the task's message holds.
    assert_eq!(
        history(&docket, retried.key()).await,
        [(Scheduled, 2), (Queued, 2), (Running, 2), (Completed, 2)]
    );

    // A cancel adds the state it ends, to a record without changes (the first one) ...
    let waiting = Sum::schedule(vec![1])
        .after(Duration::from_secs(3600))
        .on(&docket)
        .await
        .unwrap();
    assert!(docket.cancel(waiting.key()).await.unwrap());
    assert_eq!(
        history(&docket, waiting.key()).await,
        [(Scheduled, 1), (Cancelled, 1)]
    );
    // ... and to one with changes (a worker's).
    let again = SecondTime::schedule(8, 3_600_000)
        .on(&docket)
        .await
        .unwrap();
    drain_until(&docket, async || {
        docket.status(again.key()).await.unwrap().unwrap().status == Scheduled
    })
    .await;
    assert!(docket.cancel(again.key()).await.unwrap());
    assert_eq!(
        history(&docket, again.key()).await,
        [(Queued, 1), (Running, 1), (Scheduled, 2), (Cancelled, 2)]
    );
}

/// Run a worker until `done` holds.
async fn drain_until(docket: &Docket, done: impl AsyncFn() -> bool) {
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(Worker::new(docket).run_until(stop.clone().cancelled_owned()));
    tests::eventually("the worker to get there", tests::PATIENCE, done).await;
    stop.cancel();
    worker.await.unwrap().unwrap();
}

async fn a_result_asked_for_as_the_wrong_type_is_a_result_decode_error(docket: Docket) {
    let scheduled = Sum::schedule(vec![4, 5]).on(&docket).await.unwrap();
    drain(&docket).await;

    match scheduled.result::<String>().await {
        Err(Error::ResultDecode { key, type_name, .. }) => {
            assert_eq!(key, scheduled.key());
            assert!(type_name.contains("String"), "{type_name}");
        }
        other => panic!("expected ResultDecode, got {other:?}"),
    }
    assert_eq!(scheduled.result::<u32>().await.unwrap(), 9);
}

#[tokio::test]
async fn memory_first_records_are_written_as_tasks_are_stored() {
    first_records_are_written_as_tasks_are_stored(memory().await).await;
}

#[tokio::test]
async fn memory_a_duplicate_leaves_the_record_of_the_task_it_found() {
    a_duplicate_leaves_the_record_of_the_task_it_found(memory().await).await;
}

#[tokio::test]
async fn memory_cancelling_marks_only_a_record_that_has_not_ended() {
    cancelling_marks_only_a_record_that_has_not_ended(memory().await).await;
}

#[tokio::test]
async fn memory_a_result_asked_for_as_the_wrong_type_is_a_result_decode_error() {
    a_result_asked_for_as_the_wrong_type_is_a_result_decode_error(memory().await).await;
}

#[tokio::test]
async fn memory_a_record_holds_the_history_of_its_state_changes() {
    a_record_holds_the_history_of_its_state_changes(memory().await).await;
}

#[tokio::test]
async fn redis_records_follow_the_same_rules() {
    let server = RedisServer::start();
    first_records_are_written_as_tasks_are_stored(redis(&server).await).await;
    a_duplicate_leaves_the_record_of_the_task_it_found(redis(&server).await).await;
    cancelling_marks_only_a_record_that_has_not_ended(redis(&server).await).await;
    a_result_asked_for_as_the_wrong_type_is_a_result_decode_error(redis(&server).await).await;
    a_record_holds_the_history_of_its_state_changes(redis(&server).await).await;
}

/// A future task's first record outlives its wait: it is kept for the result TTL after the task
/// is due, not after it was scheduled (an hour, the default, for `sum`).
#[tokio::test]
async fn redis_a_future_tasks_first_record_is_kept_until_it_is_due_and_then_some() {
    let server = RedisServer::start();
    let name = unique_name("records-ttl");
    let docket = Docket::connect(server.url())
        .name(name.as_str())
        .await
        .unwrap();
    let day = Duration::from_secs(24 * 3600);
    let scheduled = Sum::schedule(vec![1]).after(day).on(&docket).await.unwrap();
    let key = format!("{{{name}}}:state:{}", scheduled.key());
    let Reply::Integer(ttl) = server.command(&["PTTL", &key]) else {
        panic!("PTTL answered something else");
    };
    let hour = 3600 * 1000;
    let expected = i64::try_from((day.as_millis()) + hour).unwrap();
    assert!(
        ttl > expected - 60_000 && ttl <= expected,
        "the record expires in {ttl} ms, not about a day and an hour"
    );
}

/// Schedule `tasks` with `schedule`, drain them at concurrency 100; the commands per task,
/// executed by Redis (Lua-internal included) and sent by the docket.
async fn cost_per_task<F, Fut>(server: &RedisServer, tasks: u32, schedule: F) -> (f64, f64)
where
    F: Fn(Docket, u32) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let docket = redis(server).await;
    server.command(&["CONFIG", "RESETSTAT"]);
    let sent_before = docket.commands_sent();
    for n in 0..tasks {
        schedule(docket.clone(), n).await;
    }
    Worker::new(&docket)
        .concurrency(100)
        .run_until_finished()
        .await
        .unwrap();
    let executed = server.calls() as f64 / f64::from(tasks);
    let sent = (docket.commands_sent() - sent_before) as f64 / f64::from(tasks);
    (executed, sent)
}

/// Keeping a result costs its records and nothing else: the first is written by the call that
/// stores the task (a `SET` and a `PUBLISH` inside it), then one call per record the worker
/// writes (running, completed), each a `SET` and a `PUBLISH`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_kept_result_costs_two_calls_and_eight_commands_more_than_a_plain_task() {
    const TASKS: u32 = 500;
    let server = RedisServer::start();
    let (plain_executed, plain_sent) = cost_per_task(&server, TASKS, |docket, n| async move {
        Forget::schedule(n).on(&docket).await.unwrap();
    })
    .await;
    let (kept_executed, kept_sent) = cost_per_task(&server, TASKS, |docket, n| async move {
        Sum::schedule(vec![n]).on(&docket).await.unwrap();
    })
    .await;
    let (executed, sent) = (kept_executed - plain_executed, kept_sent - plain_sent);
    println!(
        "a kept result costs {executed:.2} executed and {sent:.2} sent commands more per task \
         (plain: {plain_executed:.2} / {plain_sent:.2})"
    );
    assert!(
        (7.5..=8.5).contains(&executed),
        "{executed:.2} more commands executed per task"
    );
    assert!(
        (1.9..=2.1).contains(&sent),
        "{sent:.2} more commands sent per task"
    );
}
