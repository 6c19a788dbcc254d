//! The `docket` command line, for operators and for your own binaries.
//!
//! The `docket` binary (`cargo install docket-tasks --features cli`) inspects and steers a docket:
//!
//! ```text
//! docket snapshot                      # what waits, runs and died, with counts per task
//! docket workers                       # the workers serving the docket
//! docket strike scan_copyright         # hold every run of a task, fleet-wide
//! docket strike scan_copyright track_id == 42
//! docket restore scan_copyright track_id == 42
//! docket cancel KEY                    # a waiting task, or a running one
//! docket watch KEY                     # one task's state and progress, live, until it ends
//! docket clear                         # remove every queued and scheduled task
//! docket dead list | docket dead replay KEY | docket dead replay --all | docket dead remove KEY
//! docket dashboard --listen 127.0.0.1:8080 [--actions]   # with the `dashboard` feature
//! docket version
//! ```
//!
//! `--url` and `--name` default to `DOCKET_URL` and `DOCKET_NAME`; `--json` prints one JSON
//! document instead of a table. Call [`run`] from your own `main` to get the same commands plus
//! `worker`, which runs a worker with every `#[docket::task]` of your binary:
//!
//! ```no_run
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     docket::cli::run().await
//! }
//! ```

mod duration;
mod output;
mod watch;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use self::duration::parse_duration;
use crate::error::{Chain, Error, Result};
use crate::handle::Docket;
use crate::strike::{Operator, Strike};

/// The command line of `docket` and of binaries calling [`run`]. Its `Debug` hides the
/// password in `--url`.
#[derive(Parser)]
#[command(
    name = "docket",
    version,
    about = "Inspect and steer a docket of background tasks"
)]
struct Cli {
    /// The docket's URL: redis://, rediss://, unix://, redis+cluster://h:p,h:p,
    /// redis+sentinel://h:p,h:p/name or memory://. Prefer setting DOCKET_URL: a password in
    /// --url shows in the process list.
    #[arg(long, env = "DOCKET_URL", global = true, hide_env_values = true)]
    url: Option<String>,

    /// The docket's name (its Redis key prefix).
    #[arg(long, env = "DOCKET_NAME", global = true, default_value = crate::config::DEFAULT_NAME)]
    name: String,

    /// For rediss://: a PEM file of the CA certificates to trust (a private CA) instead of
    /// the system's roots.
    #[arg(long, env = "DOCKET_TLS_CA_FILE", global = true, value_name = "PATH")]
    tls_ca_file: Option<String>,

    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("url", &self.url.as_deref().map(crate::config::redact))
            .field("name", &self.name)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("json", &self.json)
            .field("command", &self.command)
            .finish()
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what waits, is scheduled, runs, is held, and how many tasks died, per task.
    Snapshot,
    /// List the workers serving the docket.
    Workers,
    /// Hold a task (or the runs with an argument value) across the fleet until restored.
    Strike(StrikeArgs),
    /// Lift a strike and queue the tasks it held.
    Restore(StrikeArgs),
    /// List the strikes in place.
    Strikes,
    /// Cancel a task by key: remove it if it waits, stop it if it runs.
    Cancel {
        /// The task's key.
        key: String,
    },
    /// Remove every queued and scheduled task (running, held and dead ones stay).
    Clear,
    /// Follow one task (of those that keep results) live: each state and progress report, until
    /// it ends. Exits 0 when it completed, 1 when it failed or was cancelled.
    Watch {
        /// The task's key.
        key: String,
    },
    /// Dead letters: tasks that will not run again on their own.
    #[command(subcommand)]
    Dead(Dead),
    /// Run a worker with every task registered in this binary, until ctrl-c or SIGTERM.
    Worker(WorkerArgs),
    /// Serve the web dashboard (see `docket::dashboard`) until ctrl-c or SIGTERM: read-only
    /// unless --actions; beyond loopback only with DOCKET_DASHBOARD_TOKEN set.
    #[cfg(feature = "dashboard")]
    Dashboard(DashboardArgs),
    /// Print docket's version.
    Version,
}

#[cfg(feature = "dashboard")]
#[derive(Debug, Args)]
struct DashboardArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Let the dashboard replay and delete dead letters, cancel tasks, strike and restore.
    #[arg(long)]
    actions: bool,
}

#[derive(Debug, Args)]
struct StrikeArgs {
    /// The task name, or `*` for every task.
    task: String,
    /// An argument to compare (with OPERATOR and VALUE).
    #[arg(requires_all = ["operator", "value"])]
    param: Option<String>,
    /// One of == != > >= < <=.
    #[arg(value_parser = parse_operator, allow_hyphen_values = true)]
    operator: Option<Operator>,
    /// The value, as JSON (`42`, `"rock"`, `true`); text that is not JSON is a string.
    #[arg(allow_hyphen_values = true)]
    value: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Dead {
    /// List the dead letters, oldest first.
    List,
    /// Queue dead letters again as first attempts.
    Replay {
        /// The keys to replay.
        #[arg(required_unless_present = "all")]
        keys: Vec<String>,
        /// Replay every dead letter.
        #[arg(long, conflicts_with = "keys")]
        all: bool,
    },
    /// Forget dead letters for good.
    Remove {
        /// The keys to forget.
        #[arg(required_unless_present = "all")]
        keys: Vec<String>,
        /// Forget every dead letter.
        #[arg(long, conflicts_with = "keys")]
        all: bool,
    },
}

#[derive(Debug, Args)]
struct WorkerArgs {
    /// How many tasks to run at once (default `DOCKET_WORKER_CONCURRENCY`, or 10).
    #[arg(long, env = "DOCKET_WORKER_CONCURRENCY")]
    concurrency: Option<usize>,
    /// How long a silent worker's tasks wait before another worker takes them over
    /// (`100ms`, `1.5s`, `5m`, `1h`).
    #[arg(long, value_parser = parse_duration)]
    redelivery_timeout: Option<Duration>,
    /// Serve Prometheus metrics on this port (at `/metrics`), and report queue depth.
    #[cfg(feature = "prometheus")]
    #[arg(long)]
    metrics_port: Option<u16>,
    /// The address the metrics endpoint listens on.
    #[cfg(feature = "prometheus")]
    #[arg(long, default_value = "0.0.0.0", requires = "metrics_port")]
    metrics_address: std::net::IpAddr,
}

fn parse_operator(text: &str) -> std::result::Result<Operator, String> {
    text.parse().map_err(|error: Error| error.to_string())
}

/// Parse the process's arguments and run the command, printing to stdout (errors to stderr).
pub async fn run() -> ExitCode {
    let mut stdout = std::io::stdout();
    run_from(std::env::args_os(), &mut stdout).await
}

/// Run the command in `args` (the first is the program name), printing to `out`; errors go to
/// stderr. For tests and for embedding.
pub async fn run_from<I, T>(args: I, out: &mut (dyn Write + Send)) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = match error.use_stderr() {
                true => error.print(),
                false => write!(out, "{error}"),
            };
            return ExitCode::from(code);
        }
    };
    match execute(cli, out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("docket: {}", Chain(&error));
            ExitCode::FAILURE
        }
    }
}

async fn execute(cli: Cli, out: &mut (dyn Write + Send)) -> Result<()> {
    if let Command::Version = cli.command {
        return output::version(out, cli.json);
    }
    let Some(url) = cli.url.clone().filter(|url| !url.is_empty()) else {
        return Err(Error::Config(
            "no docket to talk to: set DOCKET_URL or pass --url (redis://host:port)".into(),
        ));
    };
    let mut connect = Docket::connect(url)
        .name(&cli.name)
        .in_process_fallback(false);
    if let Some(path) = cli.tls_ca_file.as_deref().filter(|path| !path.is_empty()) {
        connect = connect.tls_ca_pem(crate::config::read_ca_file(path)?);
    }
    if let Command::Worker(args) = &cli.command {
        if let Some(concurrency) = args.concurrency {
            connect = connect.worker_concurrency(concurrency);
        }
        if let Some(timeout) = args.redelivery_timeout {
            connect = connect.redelivery_timeout(timeout);
        }
    }
    let docket = connect.await?;
    let json = cli.json;
    match cli.command {
        Command::Version => unreachable!("handled above"),
        Command::Snapshot => output::snapshot(out, json, &docket.snapshot().await?),
        Command::Workers => output::workers(out, json, &docket.workers().await?),
        Command::Strike(args) => {
            let strike = args.strike()?;
            let added = docket.strike(strike.clone()).await?;
            output::changed(
                out,
                json,
                "struck",
                &strike.to_string(),
                added,
                usize::from(added),
            )
        }
        Command::Restore(args) => {
            let strike = args.strike()?;
            let in_place = docket.strikes().await?.contains(&strike);
            let released = docket.restore(strike.clone()).await?;
            output::changed(
                out,
                json,
                "restored",
                &strike.to_string(),
                in_place,
                released,
            )
        }
        Command::Strikes => output::strikes(out, json, &docket.strikes().await?),
        Command::Cancel { key } => {
            let cancelled = docket.cancel(&key).await?;
            output::changed(
                out,
                json,
                "cancelled",
                &key,
                cancelled,
                usize::from(cancelled),
            )
        }
        Command::Clear => {
            let removed = docket.clear().await?;
            output::changed(out, json, "cleared", docket.name(), removed > 0, removed)
        }
        // Boxed: inline, its loop made the future of `execute` deeper than rustc's query depth
        // limit in a crate awaiting `run_from` (tests/tests/cli_tls.rs).
        Command::Watch { key } => Box::pin(watch::watch(out, json, &docket, &key)).await,
        Command::Dead(Dead::List) => output::dead(out, json, &docket.dead_letters().await?),
        Command::Dead(Dead::Replay { keys, all }) => {
            let mut replayed = Vec::new();
            for key in dead_keys(&docket, keys, all).await? {
                if docket.replay(&key).await? {
                    replayed.push(key);
                }
            }
            output::dead_letters_changed(out, json, "replayed", &replayed)
        }
        Command::Dead(Dead::Remove { keys, all }) => {
            let mut removed = Vec::new();
            for key in dead_keys(&docket, keys, all).await? {
                if docket.remove_dead_letter(&key).await? {
                    removed.push(key);
                }
            }
            output::dead_letters_changed(out, json, "removed", &removed)
        }
        Command::Worker(args) => {
            #[allow(unused_mut)]
            let mut worker = crate::worker::Worker::new(&docket);
            #[cfg(feature = "prometheus")]
            if let Some(port) = args.metrics_port {
                serve_metrics(std::net::SocketAddr::new(args.metrics_address, port))?;
                worker = worker.report_depth(Duration::from_secs(15));
            }
            let _ = args;
            worker.run().await
        }
        #[cfg(feature = "dashboard")]
        Command::Dashboard(args) => {
            let dashboard = crate::dashboard::Dashboard::new(&docket).actions(args.actions);
            writeln!(out, "docket dashboard: http://{}/", args.listen)
                .and_then(|()| out.flush())
                .map_err(output::io)?;
            dashboard.serve(args.listen).await
        }
    }
}

/// The keys named, or with `all`, the key of every dead letter.
async fn dead_keys(docket: &Docket, keys: Vec<String>, all: bool) -> Result<Vec<String>> {
    if !all {
        return Ok(keys);
    }
    let letters = docket.dead_letters().await?;
    Ok(letters.into_iter().map(|dead| dead.key).collect())
}

/// Install the Prometheus recorder with its HTTP listener.
#[cfg(feature = "prometheus")]
fn serve_metrics(address: std::net::SocketAddr) -> Result<()> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(address)
        .install()
        .map_err(|error| Error::Config(format!("cannot serve metrics on {address}: {error}")))?;
    tracing::info!(%address, "serving Prometheus metrics at /metrics");
    Ok(())
}

impl StrikeArgs {
    fn strike(&self) -> Result<Strike> {
        let strike = match self.task.as_str() {
            "*" => Strike::any(),
            task => Strike::task(task),
        };
        match (&self.param, self.operator, &self.value) {
            (Some(param), Some(op), Some(value)) => {
                let value = serde_json::from_str(value)
                    .unwrap_or_else(|_| serde_json::Value::String(value.clone()));
                Ok(strike.when(param.clone(), op, value))
            }
            (None, None, None) if self.task == "*" => Err(Error::Config(
                "striking every task needs a condition: `* PARAM OPERATOR VALUE`".into(),
            )),
            (None, None, None) => Ok(strike),
            _ => Err(Error::Config(
                "a strike condition needs all three of PARAM OPERATOR VALUE".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    #[test]
    fn the_parsed_command_line_never_shows_the_password() {
        for password in ["hunter2", "s3cr%t/x", "ab#cd"] {
            let url = format!("rediss://default:{password}@127.0.0.1:6380");
            let cli = Cli::try_parse_from(["docket", "--url", &url, "snapshot"]).unwrap();
            let debug = format!("{cli:?}");
            assert!(!debug.contains(password), "{debug}");
            assert!(debug.contains("default:***@127.0.0.1:6380"), "{debug}");
        }
    }
}
