//! The worker child process: this binary run again with `--worker-child`, draining one docket
//! with one worker so that its time, commands and peak RSS are the worker's alone.

use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use docket::{Docket, Worker};
use serde::{Deserialize, Serialize};

use crate::Result;

/// What the parent asks the child to drain.
#[derive(Debug)]
pub(crate) struct Args {
    url: String,
    name: String,
    concurrency: usize,
}

impl Args {
    /// `--redis-url URL --name NAME --concurrency N`, after `--worker-child`.
    pub(crate) fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let (mut url, mut name, mut concurrency) = (None, None, None);
        while let Some(flag) = args.next() {
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--redis-url" => url = Some(value),
                "--name" => name = Some(value),
                "--concurrency" => concurrency = value.parse().ok(),
                other => return Err(format!("unknown worker-child argument `{other}`")),
            }
        }
        Ok(Args {
            url: url.ok_or("--worker-child needs --redis-url")?,
            name: name.ok_or("--worker-child needs --name")?,
            concurrency: concurrency.ok_or("--worker-child needs a numeric --concurrency")?,
        })
    }
}

/// The child's answer, one JSON line on its stdout.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Report {
    /// From the worker's start to its last acknowledgement (`run_until_finished` returning).
    pub(crate) elapsed_s: f64,
    /// From the worker's start to the start of the last task.
    pub(crate) last_start_s: f64,
    /// Redis commands the child's docket sent.
    pub(crate) commands_sent: u64,
    /// The child's peak resident set (`VmHWM`), KiB.
    pub(crate) peak_rss_kib: u64,
    /// Of its resident set at the end, the pages of mapped files (`RssFile`), KiB: the code of
    /// this binary (which holds the whole bench) and of its libraries, not the worker's data.
    pub(crate) file_rss_kib: u64,
    /// The CPU time (user and system) the child used, in seconds.
    pub(crate) cpu_s: f64,
}

/// The child: drain the docket, then report.
pub(crate) async fn serve(args: Args) -> Result<()> {
    let docket = Docket::connect(&args.url).name(&args.name).await?;
    let (started, started_at) = (Instant::now(), SystemTime::now());
    let mut worker = Worker::new(&docket).concurrency(args.concurrency);
    // The worker's default read-ahead, unless `DOCKET_BENCH_READ_AHEAD` sets another cap.
    if let Some(most) = std::env::var("DOCKET_BENCH_READ_AHEAD")
        .ok()
        .and_then(|value| value.parse().ok())
    {
        worker = worker.read_ahead(most);
    }
    worker.run_until_finished().await?;
    let report = Report {
        elapsed_s: started.elapsed().as_secs_f64(),
        last_start_s: crate::tasks::last_noop()
            .duration_since(started_at)
            .unwrap_or_default()
            .as_secs_f64(),
        commands_sent: docket.commands_sent(),
        peak_rss_kib: peak_rss_kib()?,
        file_rss_kib: status_kib("RssFile")?,
        cpu_s: cpu_s()?,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The parent: drain `name` in a child process at `concurrency`, and collect its report.
pub(crate) async fn drain(url: &str, name: &str, concurrency: usize) -> Result<Report> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["--worker-child", "--redis-url", url, "--name", name])
        .args(["--concurrency", &concurrency.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("the worker child failed with {}: {stdout}", output.status).into());
    }
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .map_err(|error| format!("the worker child answered `{line}`: {error}").into())
}

/// `VmHWM` from `/proc/self/status`: the most this process ever had resident.
fn peak_rss_kib() -> Result<u64> {
    status_kib("VmHWM")
}

/// A field of `/proc/self/status` counted in kB.
fn status_kib(field: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/self/status").into())
}

/// This process's `utime` + `stime` from `/proc/self/stat`, in seconds (Linux counts them in
/// ticks of 1/100 s, `USER_HZ`, on every architecture it runs on).
pub(crate) fn cpu_s() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The fields after the command name, which is in parentheses and may hold spaces: `state`
    // is field 3, `utime` 14 and `stime` 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |field: usize| {
        fields
            .get(field - 3)
            .and_then(|value| value.parse::<u64>().ok())
    };
    match (ticks(14), ticks(15)) {
        (Some(user), Some(system)) => Ok((user + system) as f64 / 100.0),
        _ => Err("no utime and stime in /proc/self/stat".into()),
    }
}
