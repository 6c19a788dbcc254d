//! What the dashboard's pages cost over a large docket: `QUEUED` queued tasks (100,000 by
//! default), a tenth as many scheduled, a hundred held by a strike and a hundred dead letters on
//! a private `redis-server`; each page is asked for `SAMPLES` times over loopback HTTP and the
//! median and slowest answer times are printed (the server's time, plus a loopback round trip),
//! with the Redis commands each answer sent. The overview is asked of a fresh dashboard each
//! time, so its counts are read every time rather than taken from the shared poll.
//!
//! ```sh
//! cargo run --release -p tests --bin docket-dashboard-bench -- 100000 20
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use docket::dashboard::Dashboard;
use docket::strike::Strike;
use docket::{Docket, Worker};
use tests::redis_server::{RedisServer, free_port, unique_name};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[docket::task]
async fn bench_item(n: u64) {
    std::hint::black_box(n);
}

#[docket::task]
async fn bench_held(n: u64) {
    std::hint::black_box(n);
}

#[docket::task]
async fn bench_doomed(n: u64) -> Result<(), docket::Fail> {
    Err(docket::Fail::because(format!("item {n} is broken")))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let queued: u64 = args.next().map_or(100_000, |n| n.parse().expect("a count"));
    let samples: usize = args.next().map_or(20, |n| n.parse().expect("a count"));

    let server = RedisServer::start();
    let docket = Docket::connect(server.url())
        .name(unique_name("dash-bench"))
        .await
        .expect("open the docket");
    let started = Instant::now();
    // Dead letters and held tasks first, with a worker; then the queue, with none.
    let dead = docket
        .add_many((0..100).map(BenchDoomed::schedule))
        .await
        .expect("schedule");
    docket
        .strike(Strike::task("bench_held"))
        .await
        .expect("strike");
    docket
        .add_many((0..100).map(BenchHeld::schedule))
        .await
        .expect("schedule");
    Worker::new(&docket)
        .run_until_finished()
        .await
        .expect("the worker runs");
    let mut keys = Vec::new();
    for chunk in (0..queued).collect::<Vec<_>>().chunks(10_000) {
        let receipts = docket
            .add_many(chunk.iter().map(|&n| BenchItem::schedule(n)))
            .await
            .expect("schedule");
        keys.push(receipts[receipts.len() / 2].key().to_owned());
    }
    for chunk in (0..queued / 10).collect::<Vec<_>>().chunks(10_000) {
        docket
            .add_many(
                chunk
                    .iter()
                    .map(|&n| BenchItem::schedule(n).after(Duration::from_secs(3600 + n))),
            )
            .await
            .expect("schedule");
    }
    println!(
        "docket: {queued} queued, {} scheduled, 100 held, {} dead; loaded in {:.1} s",
        queued / 10,
        dead.len(),
        started.elapsed().as_secs_f64()
    );

    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let serving = Dashboard::new(&docket).without_token().actions(true);
    tokio::spawn(serving.serve(address));
    wait_for(address).await;

    let middle = &keys[keys.len() / 2];
    let pages = [
        "/tasks/queued".to_owned(),
        "/tasks/queued?task=bench_item&key=zzz".to_owned(),
        "/tasks/scheduled".to_owned(),
        format!("/tasks/scheduled?after={}", queued / 20),
        "/tasks/running".to_owned(),
        "/tasks/held".to_owned(),
        "/dead".to_owned(),
        format!("/task?key={middle}"),
        "/strikes".to_owned(),
    ];
    println!("| page | median ms | slowest ms | Redis commands |");
    println!("|---|--:|--:|--:|");
    // The overview, each time from a fresh dashboard: its counts are read, not shared.
    let mut times = Vec::new();
    let mut commands = 0;
    for _ in 0..samples {
        let fresh = SocketAddr::from(([127, 0, 0, 1], free_port()));
        tokio::spawn(Dashboard::new(&docket).without_token().serve(fresh));
        wait_for(fresh).await;
        let before = docket.commands_sent();
        times.push(time_get(fresh, "/").await);
        commands = docket.commands_sent() - before;
    }
    report("/ (overview, counts read)", &mut times, commands);
    for page in &pages {
        let mut times = Vec::new();
        let mut commands = 0;
        for _ in 0..samples {
            let before = docket.commands_sent();
            times.push(time_get(address, page).await);
            commands = docket.commands_sent() - before;
        }
        report(page, &mut times, commands);
    }
}

/// Print one row: the median and slowest of `times`.
fn report(page: &str, times: &mut [Duration], commands: u64) {
    times.sort();
    let ms = |time: Duration| time.as_secs_f64() * 1000.0;
    println!(
        "| `{page}` | {:.1} | {:.1} | {commands} |",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
}

/// Wait until the dashboard at `address` takes connections.
async fn wait_for(address: SocketAddr) {
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the dashboard did not listen on {address}");
}

/// How long a `GET` of `path` takes to answer whole; fails on any status but 200.
async fn time_get(address: SocketAddr, path: &str) -> Duration {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let start = Instant::now();
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let took = start.elapsed();
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{path}: {}",
        String::from_utf8_lossy(&response[..response.len().min(300)])
    );
    took
}
