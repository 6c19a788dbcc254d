//! What an idle fleet costs on a pay-per-command Redis: `WORKERS` workers (in this process, each
//! with its own docket handle, as separate processes would have) sit idle on a private
//! `redis-server` behind the Upstash proxy for `SECONDS`, and the proxy's bill is printed:
//! billed commands in all and per minute, client-sent and script-internal.
//!
//! With `TASKS`, a small service's day is measured next: a producer schedules that many plain
//! tasks one at a time, a second apart (as requests would), and the bill per task is printed,
//! with what a day of the idle fleet and 100 such tasks costs.
//!
//! `DOCKET_PARTITIONS=N` spreads the docket over N partitions (`Connect::partitions`).
//!
//! ```sh
//! cargo run --release -p tests --bin docket-idle-cost -- 3 160
//! cargo run --release -p tests --bin docket-idle-cost -- 2 600 60
//! ```

use std::time::Duration;

use docket::{Docket, Worker};
use tests::managed::Upstash;
use tests::redis_server::{RedisServer, unique_name};

#[docket::task]
async fn noop(n: u32) {
    std::hint::black_box(n);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let workers: usize = args
        .next()
        .map_or(3, |n| n.parse().expect("a worker count"));
    let seconds: u64 = args.next().map_or(160, |s| s.parse().expect("seconds"));
    let tasks: u32 = args.next().map_or(0, |n| n.parse().expect("a task count"));

    let server = RedisServer::start();
    let proxy = Upstash::start(&server).await;
    let name = unique_name("idle");
    let mut running = Vec::new();
    let stop = tokio_stop();
    for _ in 0..workers {
        let docket = Docket::connect(proxy.url())
            .name(name.as_str())
            .partitions(partitions())
            .await
            .expect("open the docket");
        let stopped = stop.clone();
        running.push(tokio::spawn(async move {
            Worker::new(&docket)
                .run_until(async move { stopped.notified().await })
                .await
        }));
    }
    // Past the start-up (group creation, first ticks, signal subscriptions).
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxy.reset_billing().await;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let bill = proxy.bill().await;
    let per_minute = bill.total() as f64 * 60.0 / seconds as f64;
    println!(
        "{workers} idle worker(s), {seconds} s: {} billed commands, {per_minute:.2} a minute, {:.0} a day",
        bill.total(),
        per_minute * 60.0 * 24.0
    );
    println!("{bill}");
    if tasks > 0 {
        let producer = Docket::connect(proxy.url())
            .name(name.as_str())
            .partitions(partitions())
            .await
            .expect("open the producer's docket");
        // Looks at the queue through the proxy's own door: not billed.
        let stream = format!("{{{name}}}:stream");
        proxy.reset_billing().await;
        let started = std::time::Instant::now();
        for n in 0..tasks {
            Noop::schedule(n).on(&producer).await.expect("schedule");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        while proxy.command(&["XLEN", &stream]).await != Ok(tests::redis_server::Reply::Integer(0))
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The last acknowledgement, then the bill less the idle fleet's share of the time.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let spent = proxy.bill().await;
        let minutes = started.elapsed().as_secs_f64() / 60.0;
        let per_task = (spent.total() as f64 - per_minute * minutes) / f64::from(tasks);
        println!(
            "{tasks} plain tasks one at a time: {} billed commands in {minutes:.1} min, \
             {per_task:.2} a task beyond the idle fleet's share",
            spent.total()
        );
        println!("{spent}");
        println!(
            "a day of {workers} worker(s) and 100 such tasks: {:.0} billed commands",
            per_minute * 60.0 * 24.0 + per_task * 100.0
        );
    }
    stop.notify_waiters();
    for worker in running {
        let _ = worker.await;
    }
}

fn tokio_stop() -> std::sync::Arc<tokio::sync::Notify> {
    std::sync::Arc::new(tokio::sync::Notify::new())
}

/// `DOCKET_PARTITIONS`, or 1.
fn partitions() -> u16 {
    std::env::var("DOCKET_PARTITIONS")
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(1)
}
