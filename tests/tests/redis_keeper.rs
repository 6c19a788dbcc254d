//! The fleet's clock on Redis: one worker at a time (the keeper) runs the periodic checks, so an
//! idle fleet costs the same whatever its size; a future task falling due is moved by one or
//! two workers, not by every one; and a keeper that dies is replaced, its deliveries run again.
//!
//! Counted with `INFO commandstats` (every call, Lua-internal ones included, as a pay-per-command
//! service bills them), never timed; one test compares the gaps between runs with a pause the
//! protocol must not wait out, half of it the line.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use docket::{Docket, Worker};
use tests::background::Background;
use tests::eventually;
use tests::probe::Probe;
use tests::redis_server::{RedisServer, Reply, unique_name};
use tokio::sync::Notify;

mod layout;
use self::layout::layout;

#[docket::task]
async fn note(probe: String) {
    Probe::find(&probe).start("ran").finish();
}

/// `workers` idle workers, each with its own docket handle (as separate processes would have),
/// on `name`; stopped by notifying the returned `Notify`.
async fn idle_fleet(
    server: &RedisServer,
    name: &str,
    workers: usize,
    redelivery: Duration,
) -> (std::sync::Arc<Notify>, Vec<tokio::task::JoinHandle<()>>) {
    idle_spread_fleet(server, name, workers, redelivery, 1).await
}

/// The same on a docket spread over `partitions`.
async fn idle_spread_fleet(
    server: &RedisServer,
    name: &str,
    workers: usize,
    redelivery: Duration,
    partitions: u16,
) -> (std::sync::Arc<Notify>, Vec<tokio::task::JoinHandle<()>>) {
    let stop = std::sync::Arc::new(Notify::new());
    let mut running = Vec::new();
    for _ in 0..workers {
        let docket = Docket::connect(server.url())
            .name(name)
            .redelivery_timeout(redelivery)
            .partitions(partitions)
            .await
            .unwrap();
        let stopped = stop.clone();
        running.push(tokio::spawn(async move {
            Worker::new(&docket)
                .run_until(async move { stopped.notified().await })
                .await
                .unwrap();
        }));
    }
    (stop, running)
}

async fn stop_fleet(stop: std::sync::Arc<Notify>, running: Vec<tokio::task::JoinHandle<()>>) {
    stop.notify_waiters();
    for worker in running {
        worker.await.unwrap();
    }
}

/// Every call the server made while `fleet` workers sat idle for `window`, past their start, on
/// a docket of `partitions`.
async fn idle_calls(fleet: usize, redelivery: Duration, window: Duration, partitions: u16) -> u64 {
    let server = RedisServer::start();
    let name = unique_name("keeper-idle");
    let (stop, running) = idle_spread_fleet(&server, &name, fleet, redelivery, partitions).await;
    // Past the start: each worker has looked at the lease once, and joined the fleet.
    tokio::time::sleep(redelivery).await;
    server.command(&["CONFIG", "RESETSTAT"]);
    tokio::time::sleep(window).await;
    let calls = server.calls();
    println!(
        "{fleet} idle worker(s), {partitions} partition(s), {window:?}: {calls} calls {:?}",
        server.command_stats()
    );
    stop_fleet(stop, running).await;
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_fleet_costs_about_the_same_whatever_its_size() {
    // A short redelivery timeout makes the checks frequent: one every half timeout (500 ms).
    let redelivery = Duration::from_secs(1);
    let window = Duration::from_secs(6);
    let one = idle_calls(1, redelivery, window, 1).await;
    let eight = idle_calls(8, redelivery, window, 1).await;
    // The keeper's checks cost the same in both; the seven others look at the lease about once
    // a check period between them, one call each. Were each worker to check on its own, eight
    // would cost eight times one.
    assert!(one > 0, "the keeper checks now and then");
    assert!(
        eight <= one * 2 + 8,
        "8 idle workers made {eight} calls in {window:?}, 1 made {one}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_fleet_costs_about_the_same_on_three_partitions_as_on_one() {
    let redelivery = Duration::from_secs(1);
    let window = Duration::from_secs(6);
    let one = idle_calls(2, redelivery, window, 1).await;
    let three = idle_calls(2, redelivery, window, 3).await;
    // Partition 0's keeper checks the other two while anything is pending or queued there, and
    // otherwise waits on them in a blocking read, which costs nothing until an entry comes.
    // Were each partition to keep its own clock, three would cost three times one.
    assert!(one > 0, "the keeper checks now and then");
    assert!(
        three <= one + one / 4 + 4,
        "2 idle workers made {three} calls in {window:?} on three partitions, {one} on one"
    );
}

/// Should the keeper's blocking read on a cold partition fail at once, again and again (here
/// the server refuses `XREAD`; a full connection table or a stale replica would do the same),
/// the keeper checks that partition once a check period, as a warm one, not in a busy loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_partition_whose_read_keeps_failing_costs_no_more_than_a_warm_one() {
    let server = RedisServer::start();
    let name = unique_name("keeper-refused");
    let redelivery = Duration::from_secs(1);
    let (stop, running) = idle_spread_fleet(&server, &name, 1, redelivery, 3).await;
    // Its first checks find partitions 1 and 2 cold.
    tokio::time::sleep(redelivery * 2).await;
    server.command(&["ACL", "SETUSER", "default", "-xread"]);
    let Reply::Bulk(clients) = server.command(&["CLIENT", "LIST"]) else {
        panic!("CLIENT LIST did not answer with text");
    };
    let blocked: Vec<&str> = clients
        .lines()
        .filter(|client| client.contains(" cmd=xread "))
        .filter_map(|client| client.strip_prefix("id=")?.split(' ').next())
        .collect();
    assert!(
        blocked.len() >= 2,
        "the keeper waits on both cold partitions (with the signals feeds): {clients}"
    );
    for id in blocked {
        server.command(&["CLIENT", "KILL", "ID", id]);
    }
    server.command(&["CONFIG", "RESETSTAT"]);
    tokio::time::sleep(redelivery * 2).await;
    let stats = server.command_stats();
    let checks = stats.get("evalsha").copied().unwrap_or(0);
    println!("refused reads, {:?}: {stats:?}", redelivery * 2);
    // Two partitions, a check each half second at most, and partition 0's full checks.
    assert!(
        checks <= 16,
        "{checks} scripts in {:?}: the keeper checks a partition whose read fails in a loop",
        redelivery * 2
    );
    stop_fleet(stop, running).await;
}

/// A worker on a runtime of its own, on a thread of its own, that can crash: every task it runs
/// is dropped where it stands, and nothing settles, as when its process is killed.
struct Crashable {
    crash: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Crashable {
    fn start(url: String, name: String, redelivery: Duration, partitions: u16) -> Crashable {
        let (crash, crashed) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let docket = Docket::connect(url)
                    .name(name)
                    .redelivery_timeout(redelivery)
                    .partitions(partitions)
                    .await
                    .unwrap();
                tokio::select! {
                    _ = crashed => {}
                    result = Worker::new(&docket).concurrency(8).read_ahead(0).run() => {
                        panic!("the worker ended before its crash: {result:?}")
                    }
                }
            });
            runtime.shutdown_background();
        });
        Crashable {
            crash: Some(crash),
            thread: Some(thread),
        }
    }

    fn crash(&mut self) {
        let _ = self.crash.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap();
    }
}

#[docket::task]
async fn stall(probe: String, n: u32) {
    let probe = Probe::find(&probe);
    let run = probe.start(n.to_string());
    probe.released().await;
    run.finish();
}

/// On a docket of three partitions, partition 0's keeper stops checking a partition with
/// nothing pending or queued, and waits on it instead: a task that arrives there afterwards,
/// and stalls in a worker that dies, is still taken over within a redelivery timeout or two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_stalled_in_a_partition_gone_cold_is_taken_over() {
    let server = RedisServer::start();
    let name = unique_name("keeper-cold");
    let redelivery = Duration::from_secs(2);
    let docket = spread(&server, &name, redelivery).await;
    // Two keys of one partition other than 0.
    let keys: Vec<String> = (0..)
        .map(|n| format!("cold-{n}"))
        .filter(|key| tests::redis_server::partition_of_key(key, 3) == 2)
        .take(2)
        .collect();

    // The keeper, blocked in a read of every partition before the other worker starts, so it is
    // served first.
    let (keeper, keeper_id) = start_keeper(
        &server,
        &name,
        Worker::new(&docket).concurrency(2).read_ahead(0),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut victim = Crashable::start(server.url(), name.clone(), redelivery, 3);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A first task in partition 2 goes to the keeper, which reads that partition again only
    // after it, behind the other worker.
    let first = Probe::new();
    first.release(1);
    Stall::schedule(first.id(), 0)
        .key(&keys[0])
        .on(&docket)
        .await
        .unwrap();
    first
        .until("the keeper runs the first task", |p| p.finishes() == 1)
        .await;
    // Its next check finds the partition empty, and cold: from then on the keeper checks only
    // partition 0 (one `XPENDING` a second), and waits on the others.
    tokio::time::sleep(redelivery).await;
    server.command(&["CONFIG", "RESETSTAT"]);
    tokio::time::sleep(redelivery).await;
    let checked = server.command_stats().get("xpending").copied().unwrap_or(0);
    assert!(
        (1..=3).contains(&checked),
        "only partition 0 checked, about twice in {redelivery:?}: {checked} XPENDING calls"
    );

    // The second goes to the other worker, which dies running it.
    let probe = Probe::new();
    Stall::schedule(probe.id(), 1)
        .key(&keys[1])
        .on(&docket)
        .await
        .unwrap();
    probe
        .until("the other worker starts it", |p| p.starts() == 1)
        .await;
    assert_eq!(
        partitions_of(&server, &name, keys[1..].iter().cloned()),
        [2],
        "it lives in partition 2, as the first did"
    );
    let tag = layout(&server, &name)[2].clone();
    let Reply::Array(pending) = server.command(&[
        "XPENDING",
        &format!("{{{tag}}}:stream"),
        "workers",
        "-",
        "+",
        "10",
    ]) else {
        panic!("XPENDING did not answer with a list");
    };
    assert!(
        matches!(pending.as_slice(), [Reply::Array(row)] if row.get(1) != Some(&Reply::Bulk(keeper_id.clone()))),
        "the other worker holds it, not the keeper: {pending:?}"
    );
    victim.crash();
    probe.release(1);
    probe
        .until("the keeper's worker takes it over", |p| p.finishes() == 1)
        .await;
    keeper.stop().await;
}

/// The keeper does not take stalled deliveries over in its own process: once one has stalled, each
/// check asks whichever worker reads that partition next, with a wake-up `w reclaim` in its
/// stream. So a task that kills its process (one that exits) takes down only what that process
/// held, not every stalled delivery with each keeper in turn (the chaos harness is the test of
/// what that buys). A delivery renewed as it runs, however long, is no cause to ask: each ask
/// would wait in the stream, unread, while every worker is busy.
async fn the_keeper_asks_a_reader_once_a_delivery_stalls(partitions: u16) {
    let server = RedisServer::start();
    let name = unique_name("keeper-asks");
    let redelivery = Duration::from_secs(1);
    let docket = Docket::connect(server.url())
        .name(&name)
        .redelivery_timeout(redelivery)
        .partitions(partitions)
        .await
        .unwrap();
    // Both tasks in the last partition (partition 0 when there is one).
    let last = usize::from(partitions) - 1;
    let keys: Vec<String> = (0..)
        .map(|n| format!("asks-{n}"))
        .filter(|key| tests::redis_server::partition_of_key(key, partitions.into()) == last)
        .take(2)
        .collect();
    let added = || server.command_stats().get("xadd").copied().unwrap_or(0);

    // The keeper (the only worker so far): its one slot held by a long task, renewed as it runs.
    let keeper = Background::start(Worker::new(&docket).concurrency(1).read_ahead(0));
    let held = Probe::new();
    Stall::schedule(held.id(), 0)
        .key(&keys[0])
        .on(&docket)
        .await
        .unwrap();
    held.until("the long task runs", |p| p.starts() == 1).await;
    server.command(&["CONFIG", "RESETSTAT"]);
    // Six checks.
    tokio::time::sleep(redelivery * 3).await;
    assert_eq!(
        added(),
        0,
        "the keeper asked for a reclaim while the only delivery was renewed"
    );

    // Another worker takes a task and dies running it: its delivery stalls.
    let mut victim = Crashable::start(server.url(), name.clone(), redelivery, partitions);
    let probe = Probe::new();
    Stall::schedule(probe.id(), 1)
        .key(&keys[1])
        .on(&docket)
        .await
        .unwrap();
    probe
        .until("the other worker starts it", |p| p.starts() == 1)
        .await;
    victim.crash();
    probe.release(1);
    server.command(&["CONFIG", "RESETSTAT"]);
    eventually(
        "the keeper to ask a reader, a redelivery timeout after the crash",
        Duration::from_secs(10),
        async || added() > 0,
    )
    .await;
    // The keeper's one slot frees: it reads the ask, and takes the stalled task over.
    held.release(1);
    probe
        .until("the stalled task is taken over", |p| p.finishes() == 1)
        .await;
    assert_eq!(probe.starts(), 2, "it ran again, once");
    keeper.stop().await;
}

#[docket::task]
async fn nap(probe: String) {
    let probe = Probe::find(&probe);
    let run = probe.start("nap");
    tokio::time::sleep(Duration::from_millis(250)).await;
    run.finish();
}

/// The keeper's wake-up waits its turn in the stream: while it waits unread behind a backlog,
/// the keeper's own process takes the stalled delivery over, without waiting for the backlog to
/// drain. The keeper runs as the README's least-privileged user, which may look at the group
/// (`XINFO GROUPS`) to tell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_stalled_behind_a_backlog_is_taken_over_before_the_backlog_drains() {
    let server = RedisServer::start();
    let name = unique_name("keeper-backlog");
    server.add_least_privileged_user("docket", "s3cret", &name);
    let redelivery = Duration::from_secs(1);
    let docket = Docket::connect(server.url_as("docket", "s3cret"))
        .name(&name)
        .redelivery_timeout(redelivery)
        .await
        .unwrap();
    // The keeper, its two slots held for now.
    let (keeper, _) = start_keeper(
        &server,
        &name,
        Worker::new(&docket).concurrency(2).read_ahead(0),
    )
    .await;
    // Its look at stalled deliveries as it starts (once a process's grace of a redelivery
    // timeout has passed) finds none: the stall below is left to the keeper's checks.
    tokio::time::sleep(redelivery * 2).await;
    let held = Probe::new();
    for n in 0..2 {
        Stall::schedule(held.id(), n).on(&docket).await.unwrap();
    }
    held.until("the keeper is busy", |p| p.starts() == 2).await;

    // Another worker takes a task and dies running it.
    let mut victim = Crashable::start(server.url(), name.clone(), redelivery, 1);
    let stalled = Probe::new();
    Stall::schedule(stalled.id(), 9).on(&docket).await.unwrap();
    stalled
        .until("the other worker starts it", |p| p.starts() == 1)
        .await;
    victim.crash();
    stalled.release(1);
    // A backlog of 60 quarter-second tasks: 7.5 s of work for the keeper's two slots, all of it
    // ahead of any wake-up in the stream.
    let backlog = Probe::new();
    docket
        .add_many((0..60).map(|_| Nap::schedule(backlog.id())))
        .await
        .unwrap();
    held.release(2);
    stalled
        .until("the stalled task is taken over", |p| p.finishes() == 1)
        .await;
    assert!(
        backlog.finishes() < 40,
        "taken over only as the backlog drained: {} of its 60 tasks had ended",
        backlog.finishes()
    );
    // The keeper found its ask unread by looking at the group, which the user may do.
    let looked = server.command_stats().get("xinfo|groups").copied();
    assert!(
        looked.is_some_and(|calls| calls > 0),
        "the keeper never looked at the group (refused?): {looked:?}"
    );
    keeper.stop().await;
}

/// Workers that died holding deliveries leave the fleet's count at the keeper's next full check,
/// before their deliveries are taken over: the count spaces out the others' looks at the lease,
/// and one inflated by the dead (a crash storm leaves dozens) would put the next keeper off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_that_died_holding_deliveries_leave_the_fleets_count() {
    let server = RedisServer::start();
    let name = unique_name("keeper-dead");
    let stream = format!("{{{name}}}:stream");
    let redelivery = Duration::from_secs(1);
    let docket = Docket::connect(server.url())
        .name(&name)
        .redelivery_timeout(redelivery)
        .await
        .unwrap();
    // Five workers that said they run, each took a task, and died.
    server.command(&["XGROUP", "CREATE", &stream, "workers", "0", "MKSTREAM"]);
    let probe = Probe::new();
    for n in 0..5 {
        let ghost = format!("ghost-{n}");
        Note::schedule(probe.id()).on(&docket).await.unwrap();
        server.command(&[
            "XREADGROUP",
            "GROUP",
            "workers",
            &ghost,
            "COUNT",
            "1",
            "STREAMS",
            &stream,
            ">",
        ]);
        server.command(&[
            "ZADD",
            &format!("{{{name}}}:fleet"),
            &millis_now().to_string(),
            &ghost,
        ]);
    }
    // The keeper, whose one slot stays taken: nothing is taken over meanwhile.
    let (keeper, keeper_id) = start_keeper(
        &server,
        &name,
        Worker::new(&docket).concurrency(1).read_ahead(0),
    )
    .await;
    let held = Probe::new();
    Stall::schedule(held.id(), 0).on(&docket).await.unwrap();
    held.until("the keeper is busy", |p| p.starts() == 1).await;
    let counted = || match server.command(&["GET", &format!("{{{name}}}:keeper")]) {
        Reply::Bulk(value) => value.split_once(' ').map(|(count, _)| count.to_owned()),
        _ => None,
    };
    eventually(
        "the keeper to count only itself",
        Duration::from_secs(15),
        async || counted().as_deref() == Some("1"),
    )
    .await;
    assert!(holds_lease(&server, &name, &keeper_id));
    assert_eq!(
        probe.starts(),
        0,
        "the dead workers' deliveries were not taken over meanwhile"
    );
    held.release(1);
    probe
        .until("their deliveries are taken over", |p| p.finishes() == 5)
        .await;
    keeper.stop().await;
}

fn millis_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_one_partition_the_keeper_asks_a_reader_once_a_delivery_stalls() {
    the_keeper_asks_a_reader_once_a_delivery_stalls(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_three_partitions_the_keeper_asks_a_reader_once_a_delivery_stalls() {
    the_keeper_asks_a_reader_once_a_delivery_stalls(3).await;
}

/// On a docket of three partitions, a keeper whose checks of one partition keep failing (its
/// master unreachable from the keeper's process, say; here the partition's stream is not a
/// stream) gives partition 0's lease up after a lease's length, so that another worker can keep
/// that partition: stalled deliveries there would otherwise wait for the safety net, hours
/// away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keeper_whose_checks_of_a_partition_keep_failing_gives_the_lease_up() {
    let server = RedisServer::start();
    let name = unique_name("keeper-failing");
    let redelivery = Duration::from_secs(2);
    let docket = spread(&server, &name, redelivery).await;
    let (worker, _) = start_keeper(
        &server,
        &name,
        Worker::new(&docket).concurrency(1).read_ahead(0),
    )
    .await;
    // A task running in partition 2 keeps it warm: the keeper checks it every check period
    // (a cold partition is only watched, and a watch on a key that changes type waits on).
    let key = (0..)
        .map(|n| format!("failing-{n}"))
        .find(|key| tests::redis_server::partition_of_key(key, 3) == 2)
        .unwrap();
    let probe = Probe::new();
    Stall::schedule(probe.id(), 0)
        .key(&key)
        .on(&docket)
        .await
        .unwrap();
    probe.until("the task runs", |p| p.starts() == 1).await;
    tokio::time::sleep(redelivery).await;
    let tag = layout(&server, &name)[2].clone();
    // Every check of partition 2 fails from now on.
    server.command(&["DEL", &format!("{{{tag}}}:stream")]);
    server.command(&["SET", &format!("{{{tag}}}:stream"), "not a stream"]);
    server.command(&["CONFIG", "RESETSTAT"]);
    // A lease's length of failures, a check period, and the keeper gives the lease up: it frees
    // it and adds a hand-off wake-up to partition 0's stream (nothing else adds an entry here:
    // nothing is scheduled, and the keeper's asks of partition 2 fail with its checks). The
    // only worker may take the lease again at once, so the lease itself is no witness.
    eventually(
        "the keeper gives the lease up",
        redelivery * 8,
        async || server.command_stats().get("xadd").copied().unwrap_or(0) >= 1,
    )
    .await;
    server.command(&["DEL", &format!("{{{tag}}}:stream")]);
    probe.release(1);
    worker.stop().await;
}

/// The docket `name` on `server`, spread over three partitions, its deliveries taken over after
/// `redelivery`.
async fn spread(server: &RedisServer, name: &str, redelivery: Duration) -> Docket {
    Docket::connect(server.url())
        .name(name)
        .redelivery_timeout(redelivery)
        .partitions(3)
        .await
        .unwrap()
}

/// Whether the keeper's lease of the docket `name` is in `worker`'s name.
fn holds_lease(server: &RedisServer, name: &str, worker: &str) -> bool {
    matches!(
        server.command(&["GET", &format!("{{{name}}}:keeper")]),
        Reply::Bulk(value) if value.ends_with(worker)
    )
}

/// Start `worker`, the only one on its docket, and wait until it holds the keeper's lease; also
/// returns its name.
async fn start_keeper(server: &RedisServer, name: &str, worker: Worker) -> (Background, String) {
    let id = worker.id().to_owned();
    let running = Background::start(worker);
    eventually(
        "the only worker to take the lease",
        Duration::from_secs(10),
        async || holds_lease(server, name, &id),
    )
    .await;
    (running, id)
}

/// The partition each of `keys` lives in, by the index that names it.
fn partitions_of(
    server: &RedisServer,
    name: &str,
    keys: impl Iterator<Item = String>,
) -> Vec<usize> {
    let tags = layout(server, name);
    keys.map(|key| {
        tags.iter()
            .position(|tag| {
                server.command(&["HEXISTS", &format!("{{{tag}}}:index"), &key]) == Reply::Integer(1)
            })
            .unwrap_or_else(|| panic!("`{key}` is in no partition's index"))
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_keeper_holds_the_lease_and_a_stopping_keeper_frees_it() {
    let server = RedisServer::start();
    let name = unique_name("keeper-lease");
    let lease = format!("{{{name}}}:keeper");
    // Checks every second: the keeper's first two count the fleet, so the second counts the
    // workers that joined after the first.
    let (stop, running) = idle_fleet(&server, &name, 3, Duration::from_secs(2)).await;
    let holder = || match server.command(&["GET", &lease]) {
        Reply::Bulk(value) => Some(value),
        _ => None,
    };
    eventually(
        "the keeper to count all three workers",
        Duration::from_secs(10),
        async || holder().is_some_and(|value| value.starts_with("3 ")),
    )
    .await;
    let value = holder().unwrap();
    let (workers, consumer) = value.split_once(' ').expect("`<workers> <consumer>`");
    assert_eq!(workers, "3", "the keeper counted the fleet: {value}");
    assert!(
        consumer.contains(&format!(".{}.", std::process::id())),
        "a worker of this process: {value}"
    );
    let fleet = server.command(&["ZCARD", &format!("{{{name}}}:fleet")]);
    assert_eq!(fleet, Reply::Integer(3));

    stop_fleet(stop, running).await;
    assert_eq!(holder(), None, "the stopping keeper frees the lease");
    let fleet = server.command(&["ZCARD", &format!("{{{name}}}:fleet")]);
    assert_eq!(fleet, Reply::Integer(0), "stopped workers leave the fleet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_task_falling_due_wakes_one_or_two_workers_not_the_fleet() {
    // The calls between scheduling one future task and its end, with 1 and with 6 idle workers.
    // Checks are an hour apart here: none falls in the window.
    async fn calls_for_one_future_task(fleet: usize) -> u64 {
        let server = RedisServer::start();
        let name = unique_name("keeper-due");
        let (stop, running) = idle_fleet(&server, &name, fleet, Duration::from_secs(3600)).await;
        let docket = Docket::connect(server.url()).name(&name).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.command(&["CONFIG", "RESETSTAT"]);
        let probe = Probe::new();
        Note::schedule(probe.id())
            .after(Duration::from_millis(300))
            .on(&docket)
            .await
            .unwrap();
        probe.until("the task runs", |p| p.finishes() == 1).await;
        // Its acknowledgement, and any late tick.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let calls = server.calls();
        println!(
            "{fleet} worker(s), one future task: {calls} calls {:?}",
            server.command_stats()
        );
        stop_fleet(stop, running).await;
        calls
    }
    let one = calls_for_one_future_task(1).await;
    let six = calls_for_one_future_task(6).await;
    // The worker the wake-up reached and the keeper may both tick (two calls each when the
    // other was first); the four others never do.
    assert!(
        six <= one + 6,
        "one future task cost {six} calls with 6 workers, {one} with 1"
    );
}

/// A `docket-test-worker` process on `server`'s docket `name`, logging to `log`.
fn spawn_worker(server: &RedisServer, name: &str, log: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_docket-test-worker"))
        .env("DOCKET_URL", server.url())
        .env("DOCKET_NAME", name)
        .env("DOCKET_WORKER_CONCURRENCY", "2")
        .env("DOCKET_TEST_LOG", log)
        .env("DOCKET_TEST_REDELIVERY_MS", "1000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the test worker")
}

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_keeper_is_replaced_and_its_deliveries_run_again() {
    let server = RedisServer::start();
    let name = unique_name("keeper-kill");
    let log = server.dir().join("runs.log");
    let lease = format!("{{{name}}}:keeper");
    let mut children = Children((0..3).map(|_| spawn_worker(&server, &name, &log)).collect());
    let pids: Vec<u32> = children.0.iter().map(Child::id).collect();
    let keeper_pid = || match server.command(&["GET", &lease]) {
        Reply::Bulk(value) => pids
            .iter()
            .copied()
            .find(|pid| value.contains(&format!(".{pid}."))),
        _ => None,
    };
    eventually(
        "a worker to take the lease",
        Duration::from_secs(10),
        async || keeper_pid().is_some(),
    )
    .await;
    let keeper = keeper_pid().unwrap();

    // Enough long tasks that the keeper holds two of them when it dies.
    let docket = Docket::connect(server.url()).name(&name).await.unwrap();
    for n in 0..6 {
        let args = format!(r#"{{"n":{n},"hold_ms":3000}}"#);
        docket.add_json("crash_probe", &args).await.unwrap();
    }
    let started_by = |pid: u32| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.starts_with("start ") && line.ends_with(&format!(" {pid}")))
            .count()
    };
    eventually(
        "the keeper to start two tasks",
        Duration::from_secs(10),
        async || started_by(keeper) == 2,
    )
    .await;
    let victim = children
        .0
        .iter_mut()
        .find(|child| child.id() == keeper)
        .unwrap();
    victim.kill().expect("SIGKILL the keeper");
    victim.wait().unwrap();

    // Another worker takes the lease once it lapses, and its reclaim runs the two again.
    eventually(
        "another worker to take the lease",
        Duration::from_secs(20),
        async || keeper_pid().is_some_and(|pid| pid != keeper),
    )
    .await;
    eventually(
        "every task to finish",
        Duration::from_secs(30),
        async || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter(|line| line.starts_with("done "))
                .map(|line| line.split(' ').nth(1).unwrap().to_owned())
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                == 6
        },
    )
    .await;
    eventually("nothing to be left", Duration::from_secs(10), async || {
        docket.snapshot().await.unwrap().is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_tasks_fall_due_on_time_one_after_another_with_checks_an_hour_apart() {
    // Only the first is the schedule's new head when scheduled (one wake-up); the others become
    // the head in turn as the ones before them move. Each must still run on time, long before
    // the keeper's next check.
    let server = RedisServer::start();
    let name = unique_name("keeper-chain");
    let (stop, running) = idle_fleet(&server, &name, 3, Duration::from_secs(3600)).await;
    let docket = Docket::connect(server.url()).name(&name).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let probe = Probe::new();
    let scheduled = std::time::Instant::now();
    for n in 1..=4u64 {
        Note::schedule(probe.id())
            .after(Duration::from_millis(300 * n))
            .on(&docket)
            .await
            .unwrap();
    }
    probe.until("all four run", |p| p.finishes() == 4).await;
    let last = probe
        .runs()
        .iter()
        .map(|run| run.started.duration_since(scheduled))
        .max()
        .unwrap();
    assert!(
        last < Duration::from_secs(5),
        "the last of four tasks due within 1.2 s started after {last:?}"
    );
    stop_fleet(stop, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keeper_whose_slots_are_all_busy_still_moves_due_tasks_on_time() {
    #[docket::task]
    async fn hold(probe: String) {
        let probe = Probe::find(&probe);
        let run = probe.start("hold");
        probe.released().await;
        run.finish();
    }

    let server = RedisServer::start();
    let name = unique_name("keeper-busy");
    let keeper_docket = Docket::connect(server.url())
        .name(&name)
        .redelivery_timeout(Duration::from_secs(3600))
        .await
        .unwrap();
    let stop = std::sync::Arc::new(Notify::new());
    let stopped = stop.clone();
    let keeper = Worker::new(&keeper_docket).concurrency(1);
    let keeper_id = keeper.id().to_owned();
    let keeper_run = tokio::spawn(async move {
        keeper
            .run_until(async move { stopped.notified().await })
            .await
            .unwrap()
    });
    eventually(
        "the only worker to take the lease",
        Duration::from_secs(10),
        async || holds_lease(&server, &name, &keeper_id),
    )
    .await;
    // Its one slot is taken; then a second worker starts, idle, and the keeper schedules.
    let holder = Probe::new();
    Hold::schedule(holder.id())
        .on(&keeper_docket)
        .await
        .unwrap();
    holder
        .until("the keeper holds its slot", |p| p.starts() == 1)
        .await;
    let (others, running) = idle_fleet(&server, &name, 1, Duration::from_secs(3600)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let probe = Probe::new();
    // Scheduled while the schedule is empty: its wake-up reaches the idle worker. A second one,
    // not the head when scheduled, is the keeper's to move.
    let scheduled = std::time::Instant::now();
    Note::schedule(probe.id())
        .after(Duration::from_millis(300))
        .on(&keeper_docket)
        .await
        .unwrap();
    Note::schedule(probe.id())
        .after(Duration::from_millis(600))
        .on(&keeper_docket)
        .await
        .unwrap();
    probe
        .until("both run on the idle worker", |p| p.finishes() == 2)
        .await;
    assert!(scheduled.elapsed() < Duration::from_secs(5));
    holder.release(1);
    holder
        .until("the held task ends", |p| p.finishes() == 1)
        .await;
    stop_fleet(others, running).await;
    stop.notify_waiters();
    keeper_run.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_takes_stalled_work_over_for_a_keeper_too_busy_to() {
    #[docket::task]
    async fn occupy(probe: String) {
        let probe = Probe::find(&probe);
        let run = probe.start("occupy");
        probe.released().await;
        run.finish();
    }

    let server = RedisServer::start();
    let name = unique_name("keeper-handoff");
    let stream = format!("{{{name}}}:stream");
    let open = async || {
        Docket::connect(server.url())
            .name(&name)
            .redelivery_timeout(Duration::from_secs(1))
            .await
            .unwrap()
    };
    // The keeper: its one slot held by a task that does not end until released.
    let busy_docket = open().await;
    let holder = Probe::new();
    Occupy::schedule(holder.id())
        .on(&busy_docket)
        .await
        .unwrap();
    let stop = std::sync::Arc::new(Notify::new());
    let (stopped, busy) = (stop.clone(), Worker::new(&busy_docket).concurrency(1));
    let busy_id = busy.id().to_owned();
    let busy_run = tokio::spawn(async move {
        busy.run_until(async move { stopped.notified().await })
            .await
            .unwrap()
    });
    holder
        .until("the keeper is busy", |p| p.starts() == 1)
        .await;
    eventually("it holds the lease", Duration::from_secs(10), async || {
        holds_lease(&server, &name, &busy_id)
    })
    .await;

    // A task delivered to a worker that then died: it stalls, and only a worker with a free slot
    // can take it over.
    let probe = Probe::new();
    Note::schedule(probe.id()).on(&busy_docket).await.unwrap();
    server.command(&[
        "XREADGROUP",
        "GROUP",
        "workers",
        "ghost",
        "COUNT",
        "1",
        "STREAMS",
        &stream,
        ">",
    ]);
    let (others, idle) = idle_fleet(&server, &name, 1, Duration::from_secs(1)).await;

    probe
        .until("an idle worker takes the stalled task over", |p| {
            p.finishes() == 1
        })
        .await;
    // The keeper asked a reader (`w reclaim`), the idle worker, instead of its own process: it
    // had no cause to hand its lease over.
    assert!(
        holds_lease(&server, &name, &busy_id),
        "the busy keeper keeps its lease"
    );
    holder.release(1);
    stop_fleet(others, idle).await;
    stop.notify_waiters();
    busy_run.await.unwrap();
}

/// Workers' run counts (`{name}:stats`, for the dashboard) that fell out of their window are
/// forgotten by the keeper, at its first check and now and then after; recent ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keeper_forgets_the_run_counts_of_workers_silent_for_longer_than_their_window() {
    let server = RedisServer::start();
    let name = unique_name("keeper-stats");
    let stats = format!("{{{name}}}:stats");
    let minute = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60;
    let summary = |minute: u64| format!(r#"{{"m":{minute},"t":{{"scan":[[0,1,0,5]]}}}}"#);
    server.command(&[
        "HSET",
        &stats,
        "silent.1.a",
        &summary(minute - 5),
        "recent.2.b",
        &summary(minute - 1),
        "garbled.3.c",
        "not a summary",
    ]);
    let (stop, running) = idle_fleet(&server, &name, 1, Duration::from_secs(1)).await;
    eventually(
        "the keeper to forget the stale counts",
        tests::PATIENCE,
        async || {
            server.command(&["HKEYS", &stats])
                == Reply::Array(vec![Reply::Bulk("recent.2.b".into())])
        },
    )
    .await;
    stop_fleet(stop, running).await;
}

/// Deliver every entry of `stream` not yet delivered to the consumer `gone` (a worker that
/// died holding them), making the group if no worker has yet; their ids.
fn hand_to_a_gone_worker(server: &RedisServer, stream: &str) -> Vec<String> {
    let _ = server.try_command(&["XGROUP", "CREATE", stream, "workers", "0", "MKSTREAM"]);
    let reply = server.command(&[
        "XREADGROUP",
        "GROUP",
        "workers",
        "gone",
        "COUNT",
        "1000",
        "STREAMS",
        stream,
        ">",
    ]);
    let Reply::Array(streams) = reply else {
        panic!("XREADGROUP answered {reply:?}");
    };
    let Some(Reply::Array(read)) = streams.first() else {
        panic!("XREADGROUP answered no stream");
    };
    let Some(Reply::Array(entries)) = read.get(1) else {
        panic!("XREADGROUP answered no entries");
    };
    entries
        .iter()
        .map(|entry| match entry {
            Reply::Array(fields) => match fields.first() {
                Some(Reply::Bulk(id)) => id.clone(),
                other => panic!("an entry without an id: {other:?}"),
            },
            other => panic!("an entry that is not a list: {other:?}"),
        })
        .collect()
}

/// Make each of `ids` look delivered `times` times to `gone`, `idle` ago (zero: just now, its
/// idle time starting again).
fn gone_worker_delivered(
    server: &RedisServer,
    stream: &str,
    ids: &[String],
    times: u32,
    idle: Duration,
) {
    let (times, idle) = (times.to_string(), idle.as_millis().to_string());
    for id in ids {
        server.command(&[
            "XCLAIM",
            stream,
            "workers",
            "gone",
            "0",
            id,
            "IDLE",
            &idle,
            "RETRYCOUNT",
            &times,
        ]);
    }
}

/// Schedule `count` tasks on `docket` (named `name`), each reporting to `probe`, and make each a
/// suspect: delivered twice already, to a worker that is gone.
async fn suspects_of_a_gone_worker(
    server: &RedisServer,
    docket: &Docket,
    name: &str,
    probe: &Probe,
    count: usize,
) {
    for n in 0..count {
        Note::schedule(probe.id())
            .key(format!("suspect-{n}"))
            .on(docket)
            .await
            .unwrap();
    }
    let stream = format!("{{{name}}}:stream");
    let ids = hand_to_a_gone_worker(server, &stream);
    assert_eq!(ids.len(), count);
    gone_worker_delivered(server, &stream, &ids, 2, Duration::ZERO);
}

/// The consumer a pending entry of `stream` is delivered to, if it is pending.
fn owner_of(server: &RedisServer, stream: &str, id: &str) -> Option<String> {
    match server.command(&["XPENDING", stream, "workers", id, id, "1"]) {
        Reply::Array(rows) => rows.first().and_then(|row| match row {
            Reply::Array(fields) => match fields.get(1) {
                Some(Reply::Bulk(owner)) => Some(owner.clone()),
                _ => None,
            },
            _ => None,
        }),
        other => panic!("XPENDING answered {other:?}"),
    }
}

/// While the fleet has workers in other processes, the keeper's process leaves suspects (stalled
/// deliveries that were delivered before: perhaps tasks that kill their process) to them, so
/// that a poison task does not take the fleet's clock down with it. Here the keeper's worker is
/// the first reader in line for the keeper's ask, and holds nothing: it would take the suspect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keepers_process_leaves_suspects_to_the_fleets_other_processes() {
    let server = RedisServer::start();
    let name = unique_name("keeper-patient");
    let redelivery = Duration::from_secs(1);
    let connect = || async {
        Docket::connect(server.url())
            .name(&name)
            .redelivery_timeout(redelivery)
            .await
            .unwrap()
    };
    let stream = format!("{{{name}}}:stream");
    // The suspect: delivered twice already, to a worker that is gone. Its delivery is kept fresh
    // until the fleet is ready.
    let (keeper_process, other_process) = (connect().await, connect().await);
    let probe = Probe::new();
    Stall::schedule(probe.id(), 0)
        .key("suspect")
        .on(&keeper_process)
        .await
        .unwrap();
    let ids = hand_to_a_gone_worker(&server, &stream);
    let id = &ids[0];
    let refresh = || gone_worker_delivered(&server, &stream, &ids, 2, Duration::ZERO);
    refresh();

    // The keeper first (its reader is first in line), then a worker of another process.
    let (keeper, _) = start_keeper(
        &server,
        &name,
        Worker::new(&keeper_process).concurrency(1).read_ahead(0),
    )
    .await;
    let other = Worker::new(&other_process).concurrency(1).read_ahead(0);
    let other_id = other.id().to_owned();
    let other = Background::start(other);
    let lease = format!("{{{name}}}:keeper");
    eventually(
        "the keeper to count both workers",
        Duration::from_secs(15),
        async || {
            refresh();
            matches!(server.command(&["GET", &lease]), Reply::Bulk(value) if value.starts_with("2 "))
        },
    )
    .await;
    refresh();

    probe
        .until("the suspect is taken over", |p| p.starts() == 1)
        .await;
    assert_eq!(
        owner_of(&server, &stream, id).as_deref(),
        Some(other_id.as_str()),
        "the keeper's process took the suspect"
    );
    probe.release(1);
    probe.until("it finishes", |p| p.finishes() == 1).await;
    other.stop().await;
    keeper.stop().await;
}

/// A crash storm leaves suspects whose next delivery would pass `max_deliveries`: they are
/// buried without running, so one reclaim takes them all over and buries them, rather than one
/// a look (a backlog of hundreds took minutes, each look 100 ms apart, on top of the keeper's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspects_past_their_limit_are_buried_in_bulk() {
    let server = RedisServer::start();
    let name = unique_name("doomed");
    let docket = Docket::connect(server.url())
        .name(&name)
        .redelivery_timeout(Duration::from_secs(1))
        .max_deliveries(2)
        .await
        .unwrap();
    let probe = Probe::new();
    let count = 20;
    // The next delivery of each is the third.
    suspects_of_a_gone_worker(&server, &docket, &name, &probe, count).await;
    server.command(&["CONFIG", "RESETSTAT"]);

    let worker = Background::start(Worker::new(&docket).concurrency(1));
    eventually(
        "every suspect to be buried",
        Duration::from_secs(20),
        async || docket.dead_letters().await.unwrap().len() == count,
    )
    .await;
    worker.stop().await;
    assert_eq!(probe.starts(), 0, "a suspect past its limit ran");
    let claims = server.command_stats().get("xclaim").copied().unwrap_or(0);
    assert!(
        claims < 5,
        "{claims} XCLAIM calls to take {count} doomed suspects over"
    );
}

/// Suspects a crash storm leaves that turn out healthy run one after another, each alone: a
/// worker that settles one takes the next at once, not after the pause before a look at the
/// suspects it left (100 ms: in `docket-chaos --long` a backlog of them drained at ten a second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_suspects_run_one_after_another_without_a_pause_between_them() {
    const PAUSE: Duration = Duration::from_millis(100);
    let server = RedisServer::start();
    let name = unique_name("suspects");
    let docket = Docket::connect(server.url())
        .name(&name)
        .redelivery_timeout(Duration::from_secs(1))
        .await
        .unwrap();
    let probe = Probe::new();
    let count = 20;
    // Under the limit of 5.
    suspects_of_a_gone_worker(&server, &docket, &name, &probe, count).await;

    let worker = Background::start(Worker::new(&docket).concurrency(4));
    probe
        .until("every suspect ran", |p| p.finishes() == count)
        .await;
    worker.stop().await;

    let mut runs = probe.runs();
    runs.sort_by_key(|run| run.started);
    let mut gaps: Vec<Duration> = runs
        .windows(2)
        .map(|pair| {
            let finished = pair[0].finished.expect("every run finished");
            assert!(
                pair[1].started >= finished,
                "a suspect ran beside another: {runs:#?}"
            );
            pair[1].started - finished
        })
        .collect();
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    assert!(
        median < PAUSE / 2,
        "the next suspect waited out the pause: median gap {median:?}, gaps {gaps:?}"
    );
}

/// A worker looks at stalled deliveries once as it starts (as soon as the grace a process gives
/// live workers to renew allows: a redelivery timeout), as a reclaim of its own, rather than
/// waiting for the keeper's next ask: a process started after a crash takes over what waits
/// (after a crash storm, a backlog) while the keeper is busy, or dead with its lease not lapsed.
/// Here the lease is held by a keeper that never asks, and the safety net's next reclaim of
/// its own is 24 to 40 s away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_starts_takes_stalled_deliveries_over_without_the_keeper() {
    let server = RedisServer::start();
    let name = unique_name("starting");
    let docket = Docket::connect(server.url())
        .name(&name)
        .redelivery_timeout(Duration::from_secs(2))
        .await
        .unwrap();
    let stream = format!("{{{name}}}:stream");
    let probe = Probe::new();
    Stall::schedule(probe.id(), 0)
        .key("stalled")
        .on(&docket)
        .await
        .unwrap();
    // Delivered once to a worker that is gone, a minute ago: stalled.
    let ids = hand_to_a_gone_worker(&server, &stream);
    gone_worker_delivered(&server, &stream, &ids, 1, Duration::from_secs(60));
    server.command(&[
        "SET",
        &format!("{{{name}}}:keeper"),
        "1 a-keeper-that-never-asks",
        "PX",
        "600000",
    ]);

    let worker = Worker::new(&docket).concurrency(1);
    let worker_id = worker.id().to_owned();
    let worker = Background::start(worker);
    probe
        .until("the stalled delivery is taken over", |p| p.starts() == 1)
        .await;
    assert_eq!(
        owner_of(&server, &stream, &ids[0]).as_deref(),
        Some(worker_id.as_str())
    );
    probe.release(1);
    probe.until("it finishes", |p| p.finishes() == 1).await;
    worker.stop().await;
}
