//! What docket costs on Redis, counted (not timed): commands per task, server-side from
//! `INFO commandstats` (Lua-internal calls included) and client-side from the docket's own count,
//! and the commands of an idle worker. DESIGN.md's ceilings: 6 server and 2.1 client commands per
//! plain task, amortized; at most 2 commands a minute from an idle worker.

use std::time::{Duration, Instant};

use docket::{Docket, Worker};
use tests::probe::Probe;
use tests::redis_server::{RedisServer, Reply, unique_name};

#[docket::task]
async fn noop(n: u32) {
    std::hint::black_box(n);
}

#[docket::task]
async fn note(probe: String) {
    Probe::find(&probe).start("ran").finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_task_costs_at_most_six_server_and_two_point_one_client_commands() {
    const TASKS: u32 = 2000;
    let server = RedisServer::start();
    let docket = Docket::connect(server.url())
        .name(unique_name("cost"))
        .await
        .unwrap();
    server.command(&["CONFIG", "RESETSTAT"]);

    for n in 0..TASKS {
        Noop::schedule(n).on(&docket).await.unwrap();
    }
    Worker::new(&docket)
        .concurrency(100)
        .run_until_finished()
        .await
        .unwrap();

    let server_side = server.calls() as f64 / f64::from(TASKS);
    let client_side = docket.commands_sent() as f64 / f64::from(TASKS);
    println!(
        "per task: {server_side:.2} server-side, {client_side:.2} client-side; {:?}",
        server.command_stats()
    );
    assert!(
        server_side <= 6.0,
        "{server_side:.2} server-side commands per task"
    );
    assert!(
        client_side <= 2.1,
        "{client_side:.2} client-side commands per task"
    );
    assert!(docket.snapshot().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_sends_no_commands_between_its_rare_checks() {
    let server = RedisServer::start();
    let docket = Docket::connect(server.url())
        .name(unique_name("idle"))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(Worker::new(&docket).run_until(async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(500)).await; // connect, create the group, block
    server.command(&["CONFIG", "RESETSTAT"]);
    let sent_before = docket.commands_sent();

    tokio::time::sleep(Duration::from_secs(3)).await;

    let calls = server.calls();
    let sent = docket.commands_sent() - sent_before;
    println!("idle for 3 s: {calls} server-side, {sent} client-side commands");
    assert!(calls <= 1, "an idle worker made {calls} calls in 3 s");
    assert!(sent <= 1, "an idle worker sent {sent} commands in 3 s");
    stop.send(()).unwrap();
    worker.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_stops_cleanly_leaves_no_consumer_behind() {
    let server = RedisServer::start();
    let name = unique_name("retire");
    let docket = Docket::connect(server.url()).name(&name).await.unwrap();
    Noop::schedule(1).on(&docket).await.unwrap();
    Worker::new(&docket).run_until_finished().await.unwrap();
    let consumers = server.command(&[
        "XINFO",
        "CONSUMERS",
        &format!("{{{name}}}:stream"),
        "workers",
    ]);
    assert_eq!(consumers, Reply::Array(Vec::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_wakes_for_a_task_due_before_its_next_check() {
    let server = RedisServer::start();
    let docket = Docket::connect(server.url())
        .name(unique_name("wake"))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(Worker::new(&docket).run_until(async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(300)).await; // parked until its next check

    let probe = Probe::new();
    let scheduled = Instant::now();
    Note::schedule(probe.id())
        .after(Duration::from_millis(200))
        .on(&docket)
        .await
        .unwrap();
    let deadline = scheduled + Duration::from_secs(10);
    while probe.finishes() == 0 {
        assert!(
            Instant::now() < deadline,
            "the parked worker never woke for the task"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(scheduled.elapsed() >= Duration::from_millis(200));
    stop.send(()).unwrap();
    worker.await.unwrap().unwrap();
}
