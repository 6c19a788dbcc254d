//! docket's benchmark: speed and cost on Redis, measured against the same Redis's raw ceiling
//! in one run.
//!
//! ```text
//! cargo run --release -p examples --example bench -- [--quick] [--json] [--redis-url URL]
//! cargo run --release -p examples --example bench -- --cluster [--quick] [--json]
//! ```
//!
//! Without `--redis-url` it starts its own `redis-server` (from the `PATH`) on a free loopback
//! port, keeping nothing on disk, and stops it at exit. With `--redis-url` it uses that server,
//! which must be on loopback and should be a dedicated one: the bench resets its statistics
//! (`CONFIG RESETSTAT`) and deletes the keys of the dockets it made.
//!
//! It prints one Markdown table of figures and targets on stdout; with `--json`, one JSON object
//! with the same figures instead. Progress goes to stderr. `--quick` runs a smaller version in
//! well under a minute. `--idle-seconds S` watches the idle worker for S seconds instead of 60
//! (10 with `--quick`): an idle worker wakes about every 75 s, so a longer window averages better.
//!
//! With `--cluster` it measures instead what one docket gains from a Redis Cluster
//! ([`cluster`]): it starts one single server and one cluster of three masters (no replicas),
//! and prints the raw and docket drains on both, their ratios, and each master's share.
//!
//! Every drain runs in a worker child process (this binary again, with the hidden
//! `--worker-child` mode), so its peak RSS is the worker's alone.
//!
//! The worker reads ahead as far as `Worker`'s default lets it; `DOCKET_BENCH_READ_AHEAD=N`
//! sets another cap (`Worker::read_ahead(N)`, 0 for none), to compare them.

mod child;
mod cluster;
mod report;
mod scenarios;
mod server;
mod stats;
mod tasks;

use std::net::IpAddr;
use std::process::ExitCode;

/// Every error the bench meets ends it, with its message.
type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// What the command line asks for.
#[derive(Debug)]
enum Mode {
    Bench(Options),
    WorkerChild(child::Args),
}

#[derive(Debug, Default)]
struct Options {
    quick: bool,
    json: bool,
    /// `--cluster`: the cluster comparison instead of the single-server scenarios.
    cluster: bool,
    redis_url: Option<String>,
    /// Overrides how long the idle worker is watched.
    idle_seconds: Option<u64>,
}

const USAGE: &str = "usage: bench [--quick] [--json] [--redis-url redis://127.0.0.1:PORT] \
                     [--idle-seconds S]\n       bench --cluster [--quick] [--json]";

fn main() -> ExitCode {
    let mode = match parse_args(std::env::args().skip(1)) {
        Ok(mode) => mode,
        Err(message) => {
            eprintln!("bench: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    let result = match mode {
        Mode::WorkerChild(args) => runtime.block_on(child::serve(args)),
        Mode::Bench(options) => bench(&runtime, options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Run every scenario against our own server or the given one, then print the figures.
fn bench(runtime: &tokio::runtime::Runtime, options: Options) -> Result<()> {
    if options.cluster {
        return bench_cluster(runtime, options);
    }
    // Started outside the runtime and dropped last: the server is stopped on every way out,
    // a panic included.
    let (_server, url) = match options.redis_url {
        Some(url) => {
            ensure_loopback(&url)?;
            (None, url)
        }
        None => {
            let server = tests::redis_server::RedisServer::start();
            eprintln!("bench: started redis-server on {}", server.url());
            let url = server.url();
            (Some(server), url)
        }
    };
    let mut plan = match options.quick {
        true => scenarios::Plan::quick(),
        false => scenarios::Plan::full(),
    };
    if let Some(seconds) = options.idle_seconds {
        plan = plan.idle_for(std::time::Duration::from_secs(seconds));
    }
    let figures = runtime.block_on(scenarios::run_all(&url, plan))?;
    match options.json {
        true => println!("{}", serde_json::to_string_pretty(&figures)?),
        false => print!("{}", figures.table()),
    }
    Ok(())
}

/// `--cluster`: start a single server and a cluster, compare them, print the figures.
fn bench_cluster(runtime: &tokio::runtime::Runtime, options: Options) -> Result<()> {
    // Started outside the runtime and dropped last, as in `bench`.
    let single = tests::redis_server::RedisServer::start();
    let cluster = server::LocalCluster::start()?;
    let servers = cluster::Servers {
        single: single.url(),
        cluster: cluster.url(),
        masters: cluster.master_urls(),
    };
    eprintln!(
        "bench: started redis-server on {} and a cluster on {}",
        servers.single, servers.cluster
    );
    let plan = match options.quick {
        true => scenarios::Plan::quick(),
        false => scenarios::Plan::full(),
    };
    let figures = runtime.block_on(cluster::run_all(&servers, plan))?;
    match options.json {
        true => println!("{}", serde_json::to_string_pretty(&figures)?),
        false => print!("{}", figures.table()),
    }
    Ok(())
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Mode, String> {
    let mut options = Options::default();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--json" => options.json = true,
            "--cluster" => options.cluster = true,
            "--redis-url" => {
                options.redis_url = Some(args.next().ok_or("--redis-url needs a URL")?);
            }
            "--idle-seconds" => {
                let seconds = args.next().and_then(|s| s.parse().ok()).filter(|&s| s > 0);
                options.idle_seconds =
                    Some(seconds.ok_or("--idle-seconds needs a whole number above 0")?);
            }
            "--worker-child" => return child::Args::parse(args).map(Mode::WorkerChild),
            "-h" | "--help" => return Err("the options are".into()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if options.cluster && (options.redis_url.is_some() || options.idle_seconds.is_some()) {
        return Err("--cluster starts its own servers and has no idle scenario".into());
    }
    Ok(Mode::Bench(options))
}

/// The bench floods the server and resets its statistics: only ever on this machine.
fn ensure_loopback(url: &str) -> Result<()> {
    let client = redis::Client::open(url)?;
    let host = match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, _) => host.clone(),
        redis::ConnectionAddr::TcpTls { host, .. } => host.clone(),
        other => return Err(format!("--redis-url must be TCP on loopback, not {other}").into()),
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match loopback {
        true => Ok(()),
        false => Err(format!("--redis-url must point at a loopback address, not `{host}`").into()),
    }
}
