//! What an idle fleet costs on a pay-per-command Redis: `WORKERS` workers (in this process, each
//! with its own docket handle, as separate processes would have) sit idle on a private
//! `redis-server` behind the Upstash proxy for `SECONDS`, and the proxy's bill is printed:
//! billed commands in all and per minute, client-sent and script-internal.
//!
//! ```sh
//! cargo run --release -p tests --bin docket-idle-cost -- 3 160
//! ```

use std::time::Duration;

use docket::{Docket, Worker};
use tests::managed::Upstash;
use tests::redis_server::{RedisServer, unique_name};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let workers: usize = args
        .next()
        .map_or(3, |n| n.parse().expect("a worker count"));
    let seconds: u64 = args.next().map_or(160, |s| s.parse().expect("seconds"));

    let server = RedisServer::start();
    let proxy = Upstash::start(&server).await;
    let name = unique_name("idle");
    let mut running = Vec::new();
    let stop = tokio_stop();
    for _ in 0..workers {
        let docket = Docket::connect(proxy.url())
            .name(name.as_str())
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
    stop.notify_waiters();
    for worker in running {
        let _ = worker.await;
    }
}

fn tokio_stop() -> std::sync::Arc<tokio::sync::Notify> {
    std::sync::Arc::new(tokio::sync::Notify::new())
}
