//! What the features a user opts into cost on Redis, counted as `redis_cost.rs` counts a plain
//! task: server-side commands from `INFO commandstats` (Lua-internal calls included) and
//! client-side from the docket's own count, per task, beside a plain task measured the same
//! way. Hooks cost nothing: they run in the worker, after the settlement's own commands. A
//! cooldown costs two commands inside the enqueue script per stored task and one per dropped
//! task, no round trip; a task without one costs nothing for it.

use std::time::{Duration, SystemTime};

use docket::{Docket, Worker};
use tests::redis_server::{RedisServer, unique_name};

#[docket::task]
async fn noop(n: u32) {
    std::hint::black_box(n);
}

/// Cooled down per `n`: every task of a batch of distinct `n` is stored.
#[docket::task(cooldown(n) = "1h")]
async fn cooled_noop(n: u32) {
    std::hint::black_box(n);
}

const TASKS: u32 = 500;

/// Server-side and client-side commands per task, from a fresh server, for scheduling what
/// `schedule` schedules and running it all.
async fn cost_per_task<F>(what: &str, worker: impl Fn(&Docket) -> Worker, schedule: F) -> (f64, f64)
where
    F: AsyncFnOnce(&Docket),
{
    let server = RedisServer::start();
    let docket = Docket::connect(server.url())
        .name(unique_name("feature-cost"))
        .await
        .unwrap();
    server.command(&["CONFIG", "RESETSTAT"]);
    schedule(&docket).await;
    worker(&docket)
        .concurrency(100)
        .run_until_finished()
        .await
        .unwrap();
    assert!(docket.snapshot().await.unwrap().is_empty());
    let server_side = server.calls() as f64 / f64::from(TASKS);
    let client_side = docket.commands_sent() as f64 / f64::from(TASKS);
    println!(
        "{what}: {server_side:.2} server-side, {client_side:.2} client-side per task; {:?}",
        server.command_stats()
    );
    (server_side, client_side)
}

async fn plain(docket: &Docket) {
    docket
        .add_many((0..TASKS).map(Noop::schedule))
        .await
        .unwrap();
}

/// Server-side and client-side commands per task of `schedule` alone, on a fresh server.
async fn scheduling_cost<F>(what: &str, schedule: F) -> (f64, f64)
where
    F: AsyncFnOnce(&Docket),
{
    let server = RedisServer::start();
    let docket = Docket::connect(server.url())
        .name(unique_name("feature-cost"))
        .await
        .unwrap();
    docket.snapshot().await.unwrap(); // connected, scripts loaded
    server.command(&["CONFIG", "RESETSTAT"]);
    let sent = docket.commands_sent();
    schedule(&docket).await;
    let server_side = server.calls() as f64 / f64::from(TASKS);
    let client_side = (docket.commands_sent() - sent) as f64 / f64::from(TASKS);
    println!(
        "{what}: {server_side:.2} server-side, {client_side:.2} client-side per task; {:?}",
        server.command_stats()
    );
    (server_side, client_side)
}

/// Scattering a batch costs what adding the same batch with keys and due times by hand does:
/// one round trip per 500 tasks. (Running it then costs what any task due later costs: each
/// distinct due time is a timer the fleet's clock moves to the queue; that part depends on how
/// many due times share a wake-up, so it is measured in the note, not asserted here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scattering_costs_what_adding_the_same_keyed_batch_by_hand_does() {
    let over = Duration::from_secs(3600);
    let (by_hand_server, by_hand_client) =
        scheduling_cost("add_many, keyed, spread by hand", async |docket| {
            let start = SystemTime::now();
            let spread = (0..TASKS).map(|n| {
                Noop::schedule(n)
                    .at(start + over * n / TASKS)
                    .key(format!("noop:scatter:{n:016x}"))
            });
            docket.add_many(spread).await.unwrap();
        })
        .await;
    let (server_side, client_side) = scheduling_cost("scatter", async |docket| {
        let batch = (0..TASKS).map(Noop::schedule);
        docket.scatter(batch, over, Duration::ZERO).await.unwrap();
    })
    .await;
    assert_eq!(server_side, by_hand_server);
    assert_eq!(client_side, by_hand_client);
    assert!(
        client_side * f64::from(TASKS) <= 4.0,
        "a few commands for the whole batch, not some per task: {client_side}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_cost_no_command() {
    let (plain_server, plain_client) = cost_per_task("no hooks", Worker::new, plain).await;
    let (server_side, client_side) = cost_per_task(
        "four hooks",
        |docket| {
            Worker::new(docket)
                .on_success(|_| async {})
                .on_failure(|_| async {})
                .on_retry(|_| async {})
                .on_dead_letter(|_| async {})
        },
        plain,
    )
    .await;
    // The same work, give or take the rounding of batched acknowledgements.
    assert!(
        server_side <= plain_server + 0.2,
        "{server_side} vs {plain_server}"
    );
    assert!(
        client_side <= plain_client + 0.2,
        "{client_side} vs {plain_client}"
    );
}

/// A cooldown checks and sets its key inside the enqueue script: `EXISTS` and `SET` for a task
/// it lets through, `EXISTS` alone for one it drops, and no round trip of its own; a task
/// without a cooldown sends neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooldown_costs_commands_inside_the_enqueue_script_and_no_round_trip() {
    let (plain_server, plain_client) = scheduling_cost("no cooldown", plain).await;
    let (server_side, client_side) = scheduling_cost("cooldown, all let through", async |docket| {
        docket
            .add_many((0..TASKS).map(CooledNoop::schedule))
            .await
            .unwrap();
    })
    .await;
    assert_eq!(client_side, plain_client, "no round trip of its own");
    assert_eq!(
        server_side,
        plain_server + 2.0,
        "an EXISTS and a SET per task let through"
    );

    // One schedule at a time, each dropped by the window the first opened.
    let server = RedisServer::start();
    let docket = Docket::connect(server.url())
        .name(unique_name("feature-cost"))
        .await
        .unwrap();
    let first = CooledNoop::schedule(7).on(&docket).await.unwrap();
    assert_eq!(first.disposition(), docket::Disposition::Added);
    server.command(&["CONFIG", "RESETSTAT"]);
    let sent = docket.commands_sent();
    for _ in 0..TASKS {
        let again = CooledNoop::schedule(7).on(&docket).await.unwrap();
        assert_eq!(again.disposition(), docket::Disposition::CooledDown);
    }
    let stats = server.command_stats();
    println!("cooldown, dropped one at a time: {stats:?}");
    assert_eq!(
        docket.commands_sent() - sent,
        u64::from(TASKS),
        "one call each"
    );
    assert_eq!(stats.get("exists"), Some(&u64::from(TASKS)));
    assert_eq!(stats.get("evalsha"), Some(&u64::from(TASKS)));
    assert_eq!(
        server.calls(),
        2 * u64::from(TASKS),
        "nothing else: {stats:?}"
    );

    // And a task without a cooldown touches no cooldown key.
    server.command(&["CONFIG", "RESETSTAT"]);
    plain(&docket).await;
    let stats = server.command_stats();
    assert!(
        !stats.contains_key("exists") && !stats.contains_key("set"),
        "{stats:?}"
    );
}
