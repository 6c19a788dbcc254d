//! One docket spread over three partitions (`Connect::partitions`), on one `redis-server`: the
//! whole behaviour suite; tasks spread over every partition; every process follows the stored
//! layout; and a docket moved from one partition to three strands nothing it held before.
//! (The same on a cluster, each partition on its own master, is in `redis_cluster.rs`.)

mod behaviour;
mod layout;

use std::time::Duration;

use docket::{Docket, Worker, strike::Strike};
use tests::PATIENCE;
use tests::probe::Probe;
use tests::redis_server::{RedisServer, Reply, unique_name};

use self::layout::layout;

/// A fresh docket of three partitions on a server of its own.
async fn open() -> (Docket, RedisServer) {
    let server = RedisServer::start();
    let docket = Docket::connect(server.url())
        .name(unique_name("behaviour-partitions"))
        .partitions(3)
        .await
        .expect("open a docket of three partitions");
    (docket, server)
}

behaviour::behaviour_suite!(open);

/// The docket `name` on `server`, spread over three partitions, without the in-process
/// fallback.
async fn spread(server: &RedisServer, name: &str) -> Docket {
    Docket::connect(server.url())
        .name(name)
        .partitions(3)
        .in_process_fallback(false)
        .await
        .expect("open a docket of three partitions")
}

#[docket::task]
async fn spread_note(probe: String, n: u32) {
    Probe::find(&probe).start(n.to_string()).finish();
}

#[docket::task(result)]
async fn spread_double(n: u64) -> Result<u64, std::io::Error> {
    Ok(n * 2)
}

#[docket::task]
async fn spread_fail() -> Result<(), std::io::Error> {
    Err(std::io::Error::other("fails for good"))
}

fn stream_length(server: &RedisServer, tag: &str) -> i64 {
    match server.command(&["XLEN", &format!("{{{tag}}}:stream")]) {
        Reply::Integer(length) => length,
        other => panic!("XLEN answered {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_spread_over_every_partition_and_all_run() {
    let server = RedisServer::start();
    let name = unique_name("spread");
    let docket = spread(&server, &name).await;
    let probe = Probe::new();
    docket
        .add_many((0..300).map(|n| SpreadNote::schedule(probe.id(), n)))
        .await
        .unwrap();
    let tags = layout(&server, &name);
    assert_eq!(tags.len(), 3, "{tags:?}");
    assert_eq!(tags[0], name, "partition 0 is the docket's own keys");
    assert!(tags[1].starts_with(&format!("{name}:1.")), "{tags:?}");
    assert!(tags[2].starts_with(&format!("{name}:2.")), "{tags:?}");
    let lengths: Vec<i64> = tags.iter().map(|tag| stream_length(&server, tag)).collect();
    assert_eq!(lengths.iter().sum::<i64>(), 300, "{lengths:?}");
    for length in &lengths {
        // Generated keys hash evenly: about 100 each.
        assert!((50..=150).contains(length), "{lengths:?}");
    }
    assert_eq!(docket.snapshot().await.unwrap().queued.len(), 300);

    tokio::time::timeout(
        PATIENCE,
        Worker::new(&docket).concurrency(8).run_until_finished(),
    )
    .await
    .expect("the worker finished in time")
    .unwrap();
    assert_eq!(probe.finishes(), 300);
    assert_eq!(probe.finished_labels().len(), 300, "each task ran");
    assert_eq!(docket.snapshot().await.unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_follows_the_stored_layout_whatever_it_asked_for() {
    let server = RedisServer::start();
    let name = unique_name("follow-layout");
    let spread = spread(&server, &name).await;
    let probe = Probe::new();
    for n in 0..30 {
        SpreadNote::schedule(probe.id(), n)
            .key(format!("follow-{n}"))
            .on(&spread)
            .await
            .unwrap();
    }
    // Processes asking for one partition, and for five, find the three stored.
    for asked in [1, 5] {
        let other = Docket::connect(server.url())
            .name(&name)
            .partitions(asked)
            .in_process_fallback(false)
            .await
            .unwrap();
        for n in 0..30 {
            let again = SpreadNote::schedule(probe.id(), 100 + n)
                .key(format!("follow-{n}"))
                .on(&other)
                .await
                .unwrap();
            assert_ne!(
                again.disposition(),
                docket::Disposition::Added,
                "the key is found in its partition, asked for {asked}"
            );
        }
        assert_eq!(other.snapshot().await.unwrap().queued.len(), 30);
    }
    assert_eq!(layout(&server, &name).len(), 3);
    tokio::time::timeout(PATIENCE, Worker::new(&spread).run_until_finished())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        probe.sorted_labels().len(),
        30,
        "the first of each key ran, once"
    );
    assert!(
        probe
            .labels()
            .iter()
            .all(|label| label.parse::<u32>().unwrap() < 30)
    );
}

/// A docket of one partition holds tasks in every state; processes of three partitions then
/// take over. Nothing is stranded: every queued, scheduled, held and dead task is still found by
/// its key, and everything runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_docket_from_one_partition_to_three_strands_nothing() {
    let server = RedisServer::start();
    let name = unique_name("one-to-three");
    let single = Docket::connect(server.url())
        .name(&name)
        .in_process_fallback(false)
        .await
        .unwrap();
    let probe = Probe::new();
    // A dead letter and a task held by a strike, made by a worker of the old docket.
    SpreadFail::schedule()
        .key("dead")
        .on(&single)
        .await
        .unwrap();
    let strike = Strike::task("spread_note").when("n", docket::strike::Operator::Eq, 50);
    single.strike(strike.clone()).await.unwrap();
    SpreadNote::schedule(probe.id(), 50)
        .key("held")
        .on(&single)
        .await
        .unwrap();
    Worker::new(&single).run_until_finished().await.unwrap();
    assert_eq!(single.dead_letters().await.unwrap().len(), 1);
    assert_eq!(single.snapshot().await.unwrap().held.len(), 1);
    // Queued (keyed, results kept), scheduled, and one to cancel.
    for n in 0..20 {
        SpreadDouble::schedule(n)
            .key(format!("queued-{n}"))
            .on(&single)
            .await
            .unwrap();
    }
    for n in 0..10 {
        SpreadNote::schedule(probe.id(), n)
            .key(format!("later-{n}"))
            .after(Duration::from_millis(800))
            .on(&single)
            .await
            .unwrap();
    }
    SpreadNote::schedule(probe.id(), 99)
        .key("cancelled")
        .on(&single)
        .await
        .unwrap();
    drop(single);

    let spread = spread(&server, &name).await;
    let snapshot = spread.snapshot().await.unwrap();
    assert_eq!(
        (
            snapshot.queued.len(),
            snapshot.scheduled.len(),
            snapshot.held.len(),
            snapshot.dead
        ),
        (21, 10, 1, 1),
        "the spread docket sees every old task"
    );
    assert!(
        spread.cancel("cancelled").await.unwrap(),
        "an old key is found to cancel"
    );
    assert!(
        spread.status("queued-3").await.unwrap().is_some(),
        "an old task's record is found"
    );
    assert!(
        spread.replay("dead").await.unwrap(),
        "an old dead letter replays"
    );
    assert_eq!(
        spread.restore(strike).await.unwrap(),
        1,
        "the held task is released"
    );
    tokio::time::timeout(PATIENCE, Worker::new(&spread).run_until_finished())
        .await
        .unwrap()
        .unwrap();
    for n in 0..20u64 {
        let record = spread
            .status(&format!("queued-{n}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.result.as_deref(), Some((n * 2).to_string().as_str()));
    }
    let labels = probe.sorted_labels();
    assert!(
        labels.contains(&"50".to_owned()),
        "the held task ran: {labels:?}"
    );
    assert!(
        !labels.contains(&"99".to_owned()),
        "the cancelled task never ran"
    );
    for n in 0..10 {
        assert!(labels.contains(&n.to_string()), "later-{n} ran: {labels:?}");
    }
    assert_eq!(spread.snapshot().await.unwrap().len(), 0);
    // The replayed task failed again: one dead letter, found through the spread docket.
    assert_eq!(spread.dead_letters().await.unwrap().len(), 1);
}

/// At most one run at once, each a few milliseconds long.
#[docket::task(concurrency = 1)]
async fn spread_one_at_a_time(probe: String, n: u32) {
    let run = Probe::find(&probe).start(n.to_string());
    tokio::time::sleep(Duration::from_millis(5)).await;
    run.finish();
}

/// A producer that does not know a task's limits (a process that schedules it by name without
/// defining or declaring it, or an older version without them) stores it in its key's
/// partition, as the entries written here stand for. Workers count its limit in that partition:
/// every task runs once, at most one at once in each partition, and nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_task_stored_outside_partition_0_runs_once_under_its_partitions_limit() {
    let server = RedisServer::start();
    let name = unique_name("limits-apart");
    let docket = spread(&server, &name).await;
    // Its first operation stores the layout.
    assert_eq!(docket.snapshot().await.unwrap().len(), 0);
    let tags = layout(&server, &name);
    let probe = Probe::new();
    for n in 0..12u32 {
        // As enqueue stores a due task: the entry, then the index pointing at it.
        let tag = &tags[1 + n as usize % 2];
        let key = format!("foreign-{n}");
        let message = format!(
            r#"{{"task":"spread_one_at_a_time","attempt":1,"due":0,"args":{{"probe":"{}","n":{n}}}}}"#,
            probe.id()
        );
        let stream = format!("{{{tag}}}:stream");
        let Reply::Bulk(id) = server.command(&["XADD", &stream, "*", "k", &key, "m", &message])
        else {
            panic!("XADD answers the entry's id");
        };
        server.command(&["HSET", &format!("{{{tag}}}:index"), &key, &id]);
    }
    assert_eq!(docket.snapshot().await.unwrap().queued.len(), 12);

    tokio::time::timeout(
        PATIENCE,
        Worker::new(&docket).concurrency(8).run_until_finished(),
    )
    .await
    .expect("the worker finished in time")
    .unwrap();
    assert_eq!(probe.finished_labels().len(), 12, "every task ran");
    assert_eq!(probe.finishes(), 12, "once");
    let most = probe.most_running();
    assert!(
        (1..=2).contains(&most),
        "one at once in each of two partitions: {most}"
    );
    for tag in &tags {
        assert_eq!(
            server.command(&["HLEN", &format!("{{{tag}}}:index")]),
            Reply::Integer(0),
            "nothing is left in {tag}"
        );
    }
    assert_eq!(docket.snapshot().await.unwrap().len(), 0);
}

/// A task this process only declares, with a limit: it lives in partition 0 as the task's
/// definition elsewhere would put it, from the policy the declaration states.
#[docket::task(name = "spread_remote_limited", concurrency = 2)]
async fn spread_remote_limited(n: u32);

/// The tasks a producer knows to have limits (defined here, or declared with them) are stored in
/// partition 0, where their limits are counted; others spread by key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_with_limits_are_stored_in_partition_0_and_the_others_spread() {
    let server = RedisServer::start();
    let name = unique_name("limits-home");
    let docket = spread(&server, &name).await;
    let probe = Probe::new();
    for n in 0..20 {
        SpreadOneAtATime::schedule(probe.id(), n)
            .key(format!("defined-{n}"))
            .on(&docket)
            .await
            .unwrap();
        SpreadRemoteLimited::schedule(n)
            .key(format!("declared-{n}"))
            .on(&docket)
            .await
            .unwrap();
    }
    let tags = layout(&server, &name);
    let lengths: Vec<i64> = tags.iter().map(|tag| stream_length(&server, tag)).collect();
    assert_eq!(lengths, [40, 0, 0], "every limited task in partition 0");
    docket
        .add_many((0..30).map(|n| SpreadNote::schedule(probe.id(), n)))
        .await
        .unwrap();
    let lengths: Vec<i64> = tags.iter().map(|tag| stream_length(&server, tag)).collect();
    assert!(
        lengths[1] > 0 && lengths[2] > 0,
        "the others spread: {lengths:?}"
    );
}

/// A strike in place before the docket is spread holds its tasks in every partition after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strike_made_before_the_docket_was_spread_holds_in_every_partition() {
    let server = RedisServer::start();
    let name = unique_name("strike-spread");
    let single = Docket::connect(server.url())
        .name(&name)
        .in_process_fallback(false)
        .await
        .unwrap();
    let strike = Strike::task("spread_note").when("n", docket::strike::Operator::Eq, 50);
    single.strike(strike.clone()).await.unwrap();
    drop(single);
    let spread = spread(&server, &name).await;
    let probe = Probe::new();
    for n in 0..30 {
        SpreadNote::schedule(probe.id(), 50)
            .key(format!("struck-{n}"))
            .on(&spread)
            .await
            .unwrap();
    }
    let tags = layout(&server, &name);
    assert!(
        tags.iter().all(|tag| stream_length(&server, tag) > 0),
        "the struck tasks are in every partition"
    );
    Worker::new(&spread).run_until_finished().await.unwrap();
    assert_eq!(probe.starts(), 0, "no struck task ran");
    assert_eq!(spread.snapshot().await.unwrap().held.len(), 30);
    assert_eq!(spread.restore(strike).await.unwrap(), 30);
    Worker::new(&spread).run_until_finished().await.unwrap();
    assert_eq!(probe.finishes(), 30);
}

#[docket::task]
async fn spread_sleep(probe: String, label: String, millis: u64) {
    let run = Probe::find(&probe).start(label);
    tokio::time::sleep(Duration::from_millis(millis)).await;
    run.finish();
}

/// Draining a spread docket costs what draining one partition does: a small share of each
/// batched read and settlement a task. Answers of a worker's claims in progress that come
/// between two of its claims (under load, most of them) are handed to its next claim, not given
/// back and read again (which cost nine more commands a task).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spread_docket_drains_without_giving_back_what_its_worker_reads() {
    let server = RedisServer::start();
    let name = unique_name("spread-drain");
    let docket = spread(&server, &name).await;
    let probe = Probe::new();
    let tasks = 3_000;
    docket
        .add_many((0..tasks).map(|n| SpreadNote::schedule(probe.id(), n)))
        .await
        .unwrap();
    server.command(&["CONFIG", "RESETSTAT"]);
    tokio::time::timeout(
        PATIENCE * 3,
        Worker::new(&docket).concurrency(100).run_until_finished(),
    )
    .await
    .expect("the worker finished in time")
    .unwrap();
    assert_eq!(
        probe.finished_labels().len(),
        tasks as usize,
        "each task ran"
    );
    let calls = server.calls();
    let stats = server.command_stats();
    let given_back = stats.get("xrange").copied().unwrap_or(0);
    println!("drained {tasks} tasks: {calls} calls {stats:?}");
    // Reads, settlements and the keeper's checks, counted with the commands their scripts
    // call: far under one a task.
    assert!(
        calls < u64::from(tasks) / 2,
        "the drain cost {calls} calls for {tasks} tasks ({given_back} deliveries given back)"
    );
}

/// A worker whose only slot is busy does not sit on a task another, idle, worker could start:
/// what its claims kept in progress on the other partitions deliver meanwhile is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_worker_leaves_a_new_task_to_an_idle_one() {
    let server = RedisServer::start();
    let name = unique_name("busy-idle");
    let (busy, idle) = (spread(&server, &name).await, spread(&server, &name).await);
    let probe = Probe::new();
    let first =
        tests::background::Background::start(Worker::new(&busy).concurrency(1).read_ahead(0));
    SpreadSleep::schedule(probe.id(), "long".into(), 3_000)
        .on(&busy)
        .await
        .unwrap();
    probe.until("the long task runs", |p| p.starts() == 1).await;
    let second =
        tests::background::Background::start(Worker::new(&idle).concurrency(1).read_ahead(0));
    // Both workers' claims are in progress on every partition by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = std::time::Instant::now();
    for n in 0..6 {
        SpreadSleep::schedule(probe.id(), format!("short-{n}"), 1)
            .on(&busy)
            .await
            .unwrap();
    }
    probe
        .until("the short tasks ran", |p| p.finishes() == 6)
        .await;
    let waited = sent.elapsed();
    assert!(
        waited < Duration::from_millis(1_500),
        "the short tasks waited {waited:?} for the busy worker"
    );
    first.stop().await;
    second.stop().await;
}

/// A batch stored partition by partition, one of whose shares fails: the error lists the tasks
/// that were stored, which are not the first ones of the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_share_fails_in_one_partition_says_which_tasks_are_stored() {
    let server = RedisServer::start();
    let name = unique_name("batch-share");
    let docket = spread(&server, &name).await;
    assert_eq!(docket.snapshot().await.unwrap().len(), 0);
    let tags = layout(&server, &name);
    // Partition 1 refuses every write to its stream.
    server.command(&["SET", &format!("{{{}}}:stream", tags[1]), "not a stream"]);
    let probe = Probe::new();
    let batch: Vec<_> = (0..30)
        .map(|n| SpreadNote::schedule(probe.id(), n).key(format!("share-{n}")))
        .collect();
    let error = docket.add_many(batch).await.unwrap_err();
    let docket::Error::BatchPartlyStored { stored, .. } = error else {
        panic!("expected BatchPartlyStored, got {error:?}");
    };
    // What the error lists is exactly what the other partitions hold.
    let mut held: Vec<usize> = Vec::new();
    for tag in [&tags[0], &tags[2]] {
        let Reply::Array(keys) = server.command(&["HKEYS", &format!("{{{tag}}}:index")]) else {
            panic!("HKEYS answers an array");
        };
        for key in keys {
            let Reply::Bulk(key) = key else {
                panic!("a key")
            };
            held.push(key.trim_start_matches("share-").parse().unwrap());
        }
    }
    held.sort_unstable();
    assert_eq!(stored, held);
    assert!(!stored.is_empty() && stored.len() < 30, "{stored:?}");
    assert!(stored.windows(2).all(|pair| pair[0] < pair[1]), "in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_count_out_of_range_or_a_broken_layout_is_a_clear_error() {
    let server = RedisServer::start();
    for count in [0, 65] {
        let error = Docket::connect(server.url())
            .partitions(count)
            .await
            .unwrap_err();
        assert!(
            matches!(error, docket::Error::Config(_)) && error.to_string().contains("1 to 64"),
            "{count}: {error}"
        );
    }
    // A layout record this version cannot read (written by hand, or by a later version): every
    // operation says so, and nothing is stored elsewhere meanwhile.
    let name = unique_name("broken-layout");
    for broken in [
        "not json",
        r#"{"v":2,"partitions":["x"]}"#,
        r#"{"v":1,"partitions":[]}"#,
    ] {
        let broken = broken.replace('x', &name);
        server.command(&["SET", &format!("{{{name}}}:layout"), &broken]);
        let docket = Docket::connect(server.url())
            .name(&name)
            .in_process_fallback(false)
            .await
            .unwrap();
        let error = SpreadDouble::schedule(1).on(&docket).await.unwrap_err();
        assert!(error.to_string().contains("layout"), "{broken}: {error}");
        let Reply::Array(keys) = server.command(&["KEYS", "*"]) else {
            panic!("KEYS answers an array");
        };
        assert_eq!(keys.len(), 1, "only the layout record: {keys:?}");
    }
}

/// The partition of the docket (its layout's `tags`) whose index holds `key`.
fn partition_holding(server: &RedisServer, tags: &[String], key: &str) -> usize {
    tags.iter()
        .position(|tag| {
            server.command(&["HEXISTS", &format!("{{{tag}}}:index"), key]) == Reply::Integer(1)
        })
        .unwrap_or_else(|| panic!("no partition holds `{key}`"))
}

/// Make the queued task `key` a suspect, as a worker killed by it twice would leave it: pending
/// to a consumer that is never heard from again, delivered twice, idle for `waited` already.
/// Returns when it was made so (its idle time counts from then, plus `waited`).
fn stall_as_suspect(
    server: &RedisServer,
    tag: &str,
    key: &str,
    waited: Duration,
) -> std::time::Instant {
    let stream = format!("{{{tag}}}:stream");
    // The group exists once the docket made it; made here otherwise.
    if let Err(error) =
        server.try_command(&["XGROUP", "CREATE", &stream, "workers", "0", "MKSTREAM"])
    {
        assert!(error.starts_with("BUSYGROUP"), "{error}");
    }
    let Reply::Bulk(id) = server.command(&["HGET", &format!("{{{tag}}}:index"), key]) else {
        panic!("`{key}` is queued in its partition");
    };
    // The ghost reads every entry not read yet (the others of its partition too).
    server.command(&[
        "XREADGROUP",
        "GROUP",
        "workers",
        "ghost",
        "STREAMS",
        &stream,
        ">",
    ]);
    let Reply::Array(pending) =
        server.command(&["XPENDING", &stream, "workers", "-", "+", "100", "ghost"])
    else {
        panic!("XPENDING answers an array");
    };
    assert!(
        pending.iter().any(
            |row| matches!(row, Reply::Array(row) if row.first() == Some(&Reply::Bulk(id.clone())))
        ),
        "`{key}` is pending to the ghost: {pending:?}"
    );
    let claimed = server.command(&[
        "XCLAIM",
        &stream,
        "workers",
        "ghost",
        "0",
        &id,
        "IDLE",
        &waited.as_millis().to_string(),
        "RETRYCOUNT",
        "2",
        "JUSTID",
    ]);
    assert_eq!(claimed, Reply::Array(vec![Reply::Bulk(id)]));
    std::time::Instant::now()
}

/// A docket of three partitions whose deliveries are taken over after `timeout`.
async fn spread_with_timeout(server: &RedisServer, name: &str, timeout: Duration) -> Docket {
    Docket::connect(server.url())
        .name(name)
        .partitions(3)
        .redelivery_timeout(timeout)
        .in_process_fallback(false)
        .await
        .expect("open a docket of three partitions")
}

/// A suspect (a stalled delivery that was delivered before: it may be what killed its workers)
/// goes only to a worker that holds nothing in *any* partition, as it does on a docket of one:
/// here the worker runs a long task of another partition, and the suspect waits for the
/// fallback of three timeouts instead of joining it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspect_waits_for_a_worker_that_holds_nothing_in_any_partition() {
    let server = RedisServer::start();
    let name = unique_name("suspect-alone");
    let timeout = Duration::from_secs(2);
    let docket = spread_with_timeout(&server, &name, timeout).await;
    let probe = Probe::new();
    SpreadSleep::schedule(probe.id(), "suspect".into(), 100)
        .key("suspect")
        .on(&docket)
        .await
        .unwrap();
    let tags = layout(&server, &name);
    let suspect_in = partition_holding(&server, &tags, "suspect");
    // A long task in another partition.
    let long = (0..)
        .map(|n| format!("long-{n}"))
        .find(|key| tests::redis_server::partition_of_key(key, tags.len()) != suspect_in)
        .unwrap();
    let stalled = stall_as_suspect(&server, &tags[suspect_in], "suspect", Duration::ZERO);
    SpreadSleep::schedule(probe.id(), "long".into(), 9_000)
        .key(&long)
        .on(&docket)
        .await
        .unwrap();
    assert_ne!(partition_holding(&server, &tags, &long), suspect_in);
    let worker =
        tests::background::Background::start(Worker::new(&docket).concurrency(4).read_ahead(0));
    tokio::time::timeout(
        PATIENCE,
        probe.until("the suspect ran", |p| {
            p.finished_labels().contains("suspect")
        }),
    )
    .await
    .expect("the suspect ran in time");
    let runs = probe.runs();
    let started = |label: &str| {
        runs.iter()
            .find(|run| run.label == label)
            .map(|run| run.started)
            .unwrap()
    };
    let waited = started("suspect").duration_since(stalled);
    assert!(
        started("long") < started("suspect"),
        "the long task ran first: {runs:#?}"
    );
    // Taken with the long task running: only once it had waited three timeouts.
    assert!(
        waited >= timeout * 3 - Duration::from_millis(200),
        "the suspect joined a worker that held a task of another partition, {waited:?} after it \
         stalled: {runs:#?}"
    );
    worker.stop().await;
    assert_eq!(probe.starts(), 2, "{runs:#?}");
}

/// Two suspects, in partitions 1 and 2, each running `millis` once taken, stalled `waited`
/// ago; one idle worker drains them. Returns their probe, once both ran.
async fn two_suspects_in_two_partitions(
    prefix: &str,
    timeout: Duration,
    waited: Duration,
    millis: u64,
) -> std::sync::Arc<Probe> {
    let server = RedisServer::start();
    let name = unique_name(prefix);
    let docket = spread_with_timeout(&server, &name, timeout).await;
    let probe = Probe::new();
    let tags = layout_after_first_use(&server, &name, &docket).await;
    for part in [1, 2] {
        let key = (0..)
            .map(|n| format!("{prefix}-{n}"))
            .find(|key| tests::redis_server::partition_of_key(key, tags.len()) == part)
            .unwrap();
        SpreadSleep::schedule(probe.id(), key.clone(), millis)
            .key(&key)
            .on(&docket)
            .await
            .unwrap();
        assert_eq!(partition_holding(&server, &tags, &key), part);
        stall_as_suspect(&server, &tags[part], &key, waited);
    }
    // The dead consumer silent for longer than a timeout, as a dead worker's is: else its
    // deliveries count as lost on the way, and are taken over whoever holds what.
    tokio::time::sleep(timeout * 2).await;
    let worker =
        tests::background::Background::start(Worker::new(&docket).concurrency(4).read_ahead(0));
    tokio::time::timeout(
        PATIENCE,
        probe.until("both suspects ran", |p| p.finishes() == 2),
    )
    .await
    .expect("both suspects ran in time");
    worker.stop().await;
    assert_eq!(probe.runs().len(), 2, "each ran once: {:#?}", probe.runs());
    probe
}

/// Two suspects in two partitions, and an idle worker: each partition's reclaim finds the
/// worker empty-handed in its own partition, but only one of them may hand it a suspect; the
/// other waits until the first is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspects_of_two_partitions_never_run_side_by_side() {
    let probe =
        two_suspects_in_two_partitions("apart", Duration::from_secs(2), Duration::ZERO, 1_500)
            .await;
    assert_eq!(
        probe.most_running(),
        1,
        "two suspects ran side by side on one worker: {:#?}",
        probe.runs()
    );
}

/// A suspect that waited three redelivery timeouts (a fleet that is never idle would starve
/// it) goes to a worker that holds other deliveries, but never to one that holds a suspect
/// already: two starved suspects, in two partitions, and one idle worker: the first is taken
/// alone, and the second waits for it to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_holds_one_starved_suspect_at_a_time() {
    let timeout = Duration::from_secs(1);
    // Past three timeouts already.
    let probe = two_suspects_in_two_partitions("starved", timeout, timeout * 4, 2_000).await;
    assert_eq!(
        probe.most_running(),
        1,
        "a worker held two suspects at once: {:#?}",
        probe.runs()
    );
}

/// Suspects go one at a time, but not one a check period: an idle worker takes the next as
/// soon as the last is done. Eight suspects of one partition, with checks a second apart, all
/// run within a few seconds, never two at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspects_run_one_after_another_without_waiting_for_checks() {
    let span = suspects_in_turn(20).await;
    // One a check period (a second) would take eight seconds.
    assert!(
        span < Duration::from_secs(4),
        "eight suspects took {span:?}"
    );
}

/// The same with suspects that run longer than the pause between a worker's looks at those it
/// left (100 ms): the worker takes the next as the last is settled, not at the next check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspects_that_take_a_while_run_one_after_another_without_waiting_for_checks() {
    let span = suspects_in_turn(300).await;
    // Eight runs of 0.3 s take 2.4 s; one a check period would take over eight.
    assert!(
        span < Duration::from_secs(5),
        "eight suspects took {span:?}"
    );
}

/// Eight suspects of one partition, each running `work_ms`, taken over by one idle worker with
/// checks a second apart: how long from the first start to the last end. Never two at once.
async fn suspects_in_turn(work_ms: u64) -> Duration {
    let server = RedisServer::start();
    let name = unique_name("suspects-in-turn");
    let timeout = Duration::from_secs(2);
    let docket = spread_with_timeout(&server, &name, timeout).await;
    let probe = Probe::new();
    let tags = layout_after_first_use(&server, &name, &docket).await;
    let keys: Vec<String> = (0..)
        .map(|n| format!("in-turn-{n}"))
        .filter(|key| tests::redis_server::partition_of_key(key, tags.len()) == 1)
        .take(8)
        .collect();
    for key in &keys {
        SpreadSleep::schedule(probe.id(), key.clone(), work_ms)
            .key(key)
            .on(&docket)
            .await
            .unwrap();
    }
    for key in &keys {
        stall_as_suspect(&server, &tags[1], key, Duration::ZERO);
    }
    tokio::time::sleep(timeout).await;
    let worker =
        tests::background::Background::start(Worker::new(&docket).concurrency(4).read_ahead(0));
    tokio::time::timeout(
        PATIENCE * 2,
        probe.until("every suspect ran", |p| p.finishes() == keys.len()),
    )
    .await
    .expect("every suspect ran in time");
    worker.stop().await;
    let runs = probe.runs();
    assert_eq!(probe.most_running(), 1, "two suspects at once: {runs:#?}");
    let first = runs.iter().map(|run| run.started).min().unwrap();
    let last = runs.iter().filter_map(|run| run.finished).max().unwrap();
    last - first
}

/// The docket's layout, stored by its first operation.
async fn layout_after_first_use(server: &RedisServer, name: &str, docket: &Docket) -> Vec<String> {
    docket.snapshot().await.unwrap();
    layout(server, name)
}
