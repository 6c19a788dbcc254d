//! The scenarios, one function per run of each; [`run_all`] repeats them and keeps the medians.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use docket::{Docket, Worker};
use redis::Value;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot};

use crate::Result;
use crate::child;
use crate::report::{Drain, Enqueue, Figures, Idle, Latency, Lateness, Machine, RawCeiling};
use crate::server::{Admin, client_sent_usec, sent_by_docket};
use crate::stats::{MachineCpu, Spread, median, median_of};
use crate::tasks::{self, Noop, Ping, Stamp, Start};

/// Producers in the concurrent enqueue scenario.
const PRODUCERS: u64 = 100;

/// Tasks per `add_many` call, and entries per raw pipeline or read.
const BATCH: u64 = 1000;

/// The drain scenario's worker concurrencies.
const DRAIN_CONCURRENCY: [usize; 3] = [10, 100, 1000];

/// The concurrency of the worker that waits for tasks in the latency, lateness and idle
/// scenarios.
const LIVE_CONCURRENCY: usize = 100;

/// How far ahead the first scheduled task of the lateness scenario is due.
const LATENESS_LEAD: Duration = Duration::from_secs(2);

/// How long a task may take to start before the bench gives up on it.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// How much work each scenario does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) quick: bool,
    /// N: tasks per enqueue, drain and raw ceiling run.
    pub(crate) tasks: u64,
    /// Runs of each scenario; the median is reported.
    pub(crate) runs: usize,
    latency_tasks: u64,
    lateness_tasks: u64,
    /// Over how long the spread-out lateness tasks fall due.
    lateness_spread: Duration,
    idle_window: Duration,
}

impl Plan {
    /// Watch the idle worker for `window` instead.
    pub(crate) fn idle_for(self, window: Duration) -> Plan {
        Plan {
            idle_window: window,
            ..self
        }
    }

    pub(crate) fn full() -> Plan {
        Plan {
            quick: false,
            tasks: 100_000,
            runs: 3,
            latency_tasks: 10_000,
            lateness_tasks: 10_000,
            lateness_spread: Duration::from_secs(10),
            idle_window: Duration::from_secs(60),
        }
    }

    pub(crate) fn quick() -> Plan {
        Plan {
            quick: true,
            tasks: 10_000,
            runs: 1,
            latency_tasks: 1_000,
            lateness_tasks: 2_000,
            lateness_spread: Duration::from_secs(2),
            idle_window: Duration::from_secs(10),
        }
    }
}

/// What every scenario needs: the server, the plan, and fresh docket names.
pub(crate) struct Bench {
    url: String,
    /// Counts over every server the dockets may use.
    pub(crate) admin: Admin,
    pub(crate) plan: Plan,
    /// How many partitions each docket is spread over.
    partitions: u16,
    next: AtomicU32,
}

impl Bench {
    /// Dockets of `partitions` partitions at `url`, counted by `admin`.
    pub(crate) fn new(url: &str, admin: Admin, plan: Plan, partitions: u16) -> Bench {
        Bench {
            url: url.to_owned(),
            admin,
            plan,
            partitions,
            next: AtomicU32::new(0),
        }
    }

    /// A docket under a name no other run uses.
    ///
    /// Scheduling never falls back to running in this process: that would make the figures
    /// meaningless, so an unreachable Redis is an error.
    async fn docket(&self, label: &str) -> Result<Docket> {
        let docket = Docket::connect(&self.url)
            .name(self.unique(label))
            .partitions(self.partitions)
            .in_process_fallback(false)
            .await?;
        Ok(docket)
    }

    pub(crate) fn unique(&self, label: &str) -> String {
        let run = self.next.fetch_add(1, Ordering::Relaxed);
        format!("bench-{}-{run}-{label}", std::process::id())
    }

    /// Delete what a run left in Redis.
    async fn done(&self, docket: &Docket) -> Result<()> {
        self.admin.forget(docket.name()).await
    }

    /// Run a scenario `plan.runs` times, logging each run's headline to stderr.
    async fn repeat<T>(
        &self,
        what: &str,
        mut run: impl AsyncFnMut() -> Result<T>,
        headline: impl Fn(&T) -> String,
    ) -> Result<Vec<T>> {
        let mut runs = Vec::with_capacity(self.plan.runs);
        for i in 1..=self.plan.runs {
            let result = run().await?;
            eprintln!(
                "bench: {what}, run {i}/{}: {}",
                self.plan.runs,
                headline(&result)
            );
            runs.push(result);
        }
        Ok(runs)
    }

    /// The median rate over `plan.runs` runs.
    async fn rate(&self, what: &str, run: impl AsyncFnMut() -> Result<f64>) -> Result<f64> {
        let runs = self
            .repeat(what, run, |rate| format!("{rate:.0}/s"))
            .await?;
        Ok(median(runs))
    }

    /// The median percentiles over `plan.runs` runs.
    async fn spread(&self, what: &str, run: impl AsyncFnMut() -> Result<Spread>) -> Result<Spread> {
        let runs = self
            .repeat(what, run, |spread| {
                format!(
                    "min {:.3} ms, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                    spread.min_ms, spread.p50_ms, spread.p99_ms, spread.max_ms
                )
            })
            .await?;
        Ok(Spread::median(&runs))
    }
}

/// Every scenario, in order, each repeated; the medians.
pub(crate) async fn run_all(url: &str, plan: Plan) -> Result<Figures> {
    let admin = Admin::connect(url).await?;
    let machine = Machine::describe(admin.version().await?);
    let bench = Bench::new(url, admin, plan, 1);
    let b = &bench;

    let one = b
        .repeat(
            "enqueue one at a time",
            async || enqueue_one(b).await,
            |one| {
                format!(
                    "{:.0}/s, commands {:.1} µs per task",
                    one.per_s, one.command_usec
                )
            },
        )
        .await?;
    let enqueue = Enqueue {
        one_at_a_time: median_of(&one, |one| one.per_s),
        command_usec_one_at_a_time: median_of(&one, |one| one.command_usec),
        concurrent_100: b
            .rate("enqueue from 100 tasks", async || {
                enqueue_concurrent(b).await
            })
            .await?,
        batched_1000: b
            .rate("enqueue add_many x1000", async || enqueue_batched(b).await)
            .await?,
    };

    let raw = b
        .repeat(
            "raw ceiling",
            async || raw_ceiling(b).await,
            |raw| {
                format!(
                    "XADD one at a time {:.0}/s, pipelined {:.0}/s, read+ack+del {:.0}/s",
                    raw.xadd_one_per_s, raw.xadd_per_s, raw.drain_per_s
                )
            },
        )
        .await?;
    let raw_ceiling = RawCeiling {
        xadd_one_per_s: median_of(&raw, |raw| raw.xadd_one_per_s),
        xadd_per_s: median_of(&raw, |raw| raw.xadd_per_s),
        drain_per_s: median_of(&raw, |raw| raw.drain_per_s),
        redis_usec_per_task: median_of(&raw, |raw| raw.redis_usec_per_task),
        command_usec_per_task: median_of(&raw, |raw| raw.command_usec_per_task),
    };

    let mut drains = Vec::new();
    for concurrency in DRAIN_CONCURRENCY {
        let runs = b
            .repeat(
                &format!("drain at concurrency {concurrency}"),
                async || drain(b, concurrency).await,
                DrainRun::headline,
            )
            .await?;
        drains.push(Drain::median(concurrency, &runs));
    }

    let latency = b.spread("latency", async || latency(b).await).await?;
    let lateness_burst = b
        .spread("lateness, all due at once", async || {
            lateness(b, Duration::ZERO).await
        })
        .await?;
    let lateness_spread = b
        .spread("lateness, spread out", async || {
            lateness(b, plan.lateness_spread).await
        })
        .await?;

    eprintln!(
        "bench: idle worker, counting its commands for {} s",
        plan.idle_window.as_secs()
    );
    let idle = idle(b).await?;

    let drain_c100_to_ceiling = drains
        .iter()
        .find(|drain| drain.concurrency == 100)
        .map_or(f64::NAN, |drain| {
            drain.tasks_per_s / raw_ceiling.drain_per_s
        });
    let peak_rss_mib = drains.last().map_or(f64::NAN, |drain| drain.peak_rss_mib);
    let figures = Figures {
        mode: match plan.quick {
            true => "quick",
            false => "full",
        },
        tasks: plan.tasks,
        runs: plan.runs,
        machine,
        enqueue,
        raw_ceiling,
        drain: drains,
        drain_c100_to_ceiling,
        latency: Latency {
            tasks: plan.latency_tasks,
            spread: latency,
        },
        lateness: Lateness {
            tasks: plan.lateness_tasks,
            lead_s: LATENESS_LEAD.as_secs_f64(),
            all_at_once: lateness_burst,
            spread_out: lateness_spread,
            spread_s: plan.lateness_spread.as_secs_f64(),
        },
        idle,
        peak_rss_mib,
        targets: Vec::new(),
    };
    Ok(figures.checked())
}

// Enqueue ------------------------------------------------------------------------------------

/// One run of [`enqueue_one`].
#[derive(Debug, Clone, Copy)]
struct EnqueueOne {
    per_s: f64,
    /// Command execution time per task (`INFO commandstats`).
    command_usec: f64,
}

/// One `schedule().await` after another, from one task.
async fn enqueue_one(bench: &Bench) -> Result<EnqueueOne> {
    let docket = bench.docket("enqueue-one").await?;
    warm_up(&docket).await?;
    let tasks = bench.plan.tasks;
    let usec_before = client_sent_usec(&bench.admin.usec_by_command().await?);
    let started = Instant::now();
    for n in 0..tasks {
        Noop::schedule(n).on(&docket).await?;
    }
    let per_s = per_second(tasks, started);
    let usec_after = client_sent_usec(&bench.admin.usec_by_command().await?);
    bench.done(&docket).await?;
    Ok(EnqueueOne {
        per_s,
        command_usec: (usec_after - usec_before) as f64 / tasks as f64,
    })
}

/// [`PRODUCERS`] tokio tasks, each scheduling its share one at a time.
async fn enqueue_concurrent(bench: &Bench) -> Result<f64> {
    let docket = bench.docket("enqueue-concurrent").await?;
    warm_up(&docket).await?;
    let share = bench.plan.tasks / PRODUCERS;
    let started = Instant::now();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|producer| {
            let docket = docket.clone();
            tokio::spawn(async move {
                for n in producer * share..(producer + 1) * share {
                    Noop::schedule(n).on(&docket).await?;
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .collect();
    for producer in producers {
        producer.await??;
    }
    let rate = per_second(share * PRODUCERS, started);
    bench.done(&docket).await?;
    Ok(rate)
}

/// `Docket::add_many` in batches of [`BATCH`].
async fn enqueue_batched(bench: &Bench) -> Result<f64> {
    let docket = bench.docket("enqueue-batched").await?;
    warm_up(&docket).await?;
    let started = Instant::now();
    fill(&docket, bench.plan.tasks).await?;
    let rate = per_second(bench.plan.tasks, started);
    bench.done(&docket).await?;
    Ok(rate)
}

/// Queue `tasks` no-op tasks with `add_many`.
async fn fill(docket: &Docket, tasks: u64) -> Result<()> {
    for low in (0..tasks).step_by(BATCH as usize) {
        let high = (low + BATCH).min(tasks);
        docket.add_many((low..high).map(Noop::schedule)).await?;
    }
    Ok(())
}

/// One task through the queue first, so that connecting and loading the script are not timed.
async fn warm_up(docket: &Docket) -> Result<()> {
    Noop::schedule(u64::MAX).on(docket).await?;
    Ok(())
}

// Drain and raw ceiling ----------------------------------------------------------------------

/// One drain run, as the worker child reports it and `INFO commandstats` counts it.
#[derive(Debug, Clone)]
pub(crate) struct DrainRun {
    pub(crate) tasks_per_s: f64,
    /// How long `run_until_finished` took to return after the last task started.
    pub(crate) finish_tail_ms: f64,
    /// Whole life: `add_many`, delivery, run, acknowledgement.
    pub(crate) server_commands_per_task: f64,
    pub(crate) client_commands_per_task: f64,
    pub(crate) redis_usec_enqueue: f64,
    pub(crate) redis_usec_drain: f64,
    /// Command execution time per task (`INFO commandstats`), by step.
    pub(crate) command_usec: CommandUsec,
    pub(crate) peak_rss_mib: f64,
    /// The peak resident set less the pages of mapped files: the worker's own data (heap,
    /// stacks), near enough.
    pub(crate) peak_data_mib: f64,
    /// From the worker's start to its last acknowledgement.
    pub(crate) elapsed_s: f64,
    /// CPU time (user and system) the worker process used, start-up included.
    pub(crate) worker_cpu_s: f64,
    /// How many cores every process on the machine kept busy while the worker drained: the
    /// servers, the worker, and anything else running.
    pub(crate) machine_cores: f64,
    /// The servers' socket reads while the worker drained, per task (the bench's own
    /// `INFO` included, a handful a run).
    pub(crate) socket_reads_per_task: f64,
    /// Each server's commands (one, or each master of a cluster), as counted for
    /// `server_commands_per_task`.
    pub(crate) calls_by_server: Vec<u64>,
    /// The servers' commands by name, summed over the servers.
    pub(crate) calls_by_command: BTreeMap<String, u64>,
}

/// Microseconds a task of the servers' command execution (`INFO commandstats` `usec`), by step
/// of its life: what ChasquiMQ's figures count, without parsing, replies and networking.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct CommandUsec {
    /// `add_many`: the enqueue script.
    pub(crate) enqueue: f64,
    /// The drain's stream reads (`XREADGROUP`, and `XREAD` of the signals).
    pub(crate) read: f64,
    /// The drain's scripts: settling each task, and the worker's upkeep.
    pub(crate) settle: f64,
}

impl CommandUsec {
    /// From the stats after the fill (`filled`, the servers' counters reset before it) and
    /// after the drain.
    fn between(
        filled: &BTreeMap<String, u64>,
        drained: &BTreeMap<String, u64>,
        tasks: u64,
    ) -> Self {
        let sum = |stats: &BTreeMap<String, u64>, read: bool| -> u64 {
            stats
                .iter()
                .filter(|(name, _)| sent_by_docket(name) && name.starts_with("xread") == read)
                .map(|(_, usec)| usec)
                .sum()
        };
        let per_task = |usec: u64| usec as f64 / tasks as f64;
        CommandUsec {
            enqueue: per_task(sum(filled, false) + sum(filled, true)),
            read: per_task(sum(drained, true) - sum(filled, true)),
            settle: per_task(sum(drained, false) - sum(filled, false)),
        }
    }

    /// A task's whole life.
    pub(crate) fn whole_life(&self) -> f64 {
        self.enqueue + self.read + self.settle
    }
}

impl DrainRun {
    /// What the bench logs of each run.
    pub(crate) fn headline(&self) -> String {
        format!(
            "{:.0}/s ({:.0} ms after the last start), {:.2} server / {:.2} client commands per \
             task, Redis CPU {:.1} + {:.1} µs per task, commands {:.1} + {:.1} + {:.1} µs per \
             task, peak RSS {:.1} MiB",
            self.tasks_per_s,
            self.finish_tail_ms,
            self.server_commands_per_task,
            self.client_commands_per_task,
            self.redis_usec_enqueue,
            self.redis_usec_drain,
            self.command_usec.enqueue,
            self.command_usec.read,
            self.command_usec.settle,
            self.peak_rss_mib
        )
    }
}

/// N tasks queued with `add_many`, then drained by one worker process at `concurrency`.
pub(crate) async fn drain(bench: &Bench, concurrency: usize) -> Result<DrainRun> {
    let tasks = bench.plan.tasks;
    let docket = bench.docket(&format!("drain-c{concurrency}")).await?;
    bench.admin.reset_stats().await?;
    let cpu_before = bench.admin.server_cpu_usec().await?;
    fill(&docket, tasks).await?;
    let cpu_filled = bench.admin.server_cpu_usec().await?;
    let usec_filled = bench.admin.usec_by_command().await?;
    let (machine, reads_before) = (MachineCpu::now(), bench.admin.socket_reads().await?);
    let worker = child::drain(&bench.url, docket.name(), concurrency).await?;
    let machine_cores = machine.busy_cores_since();
    let socket_reads = bench.admin.socket_reads().await? - reads_before;
    let cpu_drained = bench.admin.server_cpu_usec().await?;
    let calls_by_server = bench.admin.calls_by_server().await?;
    let calls_by_command = bench.admin.calls_by_command().await?;
    let usec_drained = bench.admin.usec_by_command().await?;
    let server_calls: u64 = calls_by_server.iter().sum();
    let client_calls = docket.commands_sent() + worker.commands_sent;
    let left = docket.snapshot().await?.len() + docket.dead_letters().await?.len();
    if left > 0 {
        return Err(format!("the worker finished with {left} tasks left or dead").into());
    }
    bench.done(&docket).await?;
    Ok(DrainRun {
        tasks_per_s: tasks as f64 / worker.elapsed_s,
        finish_tail_ms: (worker.elapsed_s - worker.last_start_s) * 1000.0,
        server_commands_per_task: server_calls as f64 / tasks as f64,
        client_commands_per_task: client_calls as f64 / tasks as f64,
        redis_usec_enqueue: (cpu_filled - cpu_before) / tasks as f64,
        redis_usec_drain: (cpu_drained - cpu_filled) / tasks as f64,
        command_usec: CommandUsec::between(&usec_filled, &usec_drained, tasks),
        peak_rss_mib: worker.peak_rss_kib as f64 / 1024.0,
        peak_data_mib: worker.peak_rss_kib.saturating_sub(worker.file_rss_kib) as f64 / 1024.0,
        elapsed_s: worker.elapsed_s,
        worker_cpu_s: worker.cpu_s,
        machine_cores,
        socket_reads_per_task: socket_reads as f64 / tasks as f64,
        calls_by_server,
        calls_by_command,
    })
}

/// One run of the raw ceiling.
#[derive(Debug, Clone, Copy)]
struct RawRun {
    xadd_one_per_s: f64,
    xadd_per_s: f64,
    drain_per_s: f64,
    redis_usec_per_task: f64,
    command_usec_per_task: f64,
}

/// The minimal durable cycle on the `redis` crate alone: pipelined `XADD` of N entries shaped
/// like docket's, then `XREADGROUP COUNT 1000` and a pipelined `XACK` + `XDEL` until they are all
/// gone. One connection, one batch at a time. Also one `XADD` round trip at a time, the floor
/// under `schedule().await`.
async fn raw_ceiling(bench: &Bench) -> Result<RawRun> {
    let tasks = bench.plan.tasks;
    let name = bench.unique("raw");
    let stream = format!("{{{name}}}:stream");
    let mut connection = bench.admin.connection().await?;
    raw_stream(&mut connection, &stream).await?;
    let due = millis(SystemTime::now());

    let started = Instant::now();
    for n in 0..tasks {
        raw_entry(&stream, n, due)
            .exec_async(&mut connection)
            .await?;
    }
    let xadd_one_per_s = per_second(tasks, started);
    redis::cmd("XTRIM")
        .arg(&stream)
        .arg("MAXLEN")
        .arg(0)
        .exec_async(&mut connection)
        .await?;

    let cpu_before = bench.admin.server_cpu_usec().await?;
    let usec_before = raw_usec(&bench.admin.usec_by_command().await?);
    let started = Instant::now();
    raw_fill(&mut connection, &stream, tasks).await?;
    let xadd_per_s = per_second(tasks, started);

    let started = Instant::now();
    raw_drain(&mut connection, &stream, tasks).await?;
    let drain_per_s = per_second(tasks, started);
    let redis_usec_per_task = (bench.admin.server_cpu_usec().await? - cpu_before) / tasks as f64;
    let usec_after = raw_usec(&bench.admin.usec_by_command().await?);
    bench.admin.forget(&name).await?;
    Ok(RawRun {
        xadd_one_per_s,
        xadd_per_s,
        drain_per_s,
        redis_usec_per_task,
        command_usec_per_task: (usec_after - usec_before) as f64 / tasks as f64,
    })
}

/// The execution time of the raw ceiling's own commands.
fn raw_usec(usec: &BTreeMap<String, u64>) -> u64 {
    ["xadd", "xreadgroup", "xack", "xdel"]
        .iter()
        .filter_map(|name| usec.get(*name))
        .sum()
}

/// The raw drain spread over every server the bench counts (one, or each master of a cluster):
/// a stream on each, holding its share of N entries, all drained at once, each on a connection
/// of its own.
pub(crate) async fn raw_drain_spread(bench: &Bench) -> Result<RawSpread> {
    let tasks = bench.plan.tasks;
    let servers = bench.admin.servers();
    let name = bench.unique("raw-spread");
    let mut lanes = Vec::with_capacity(servers);
    for index in 0..servers {
        let stream = format!("{{{}}}:stream", tag_on(bench, index, &name).await?);
        let mut connection = bench.admin.connection_to(index).await?;
        raw_stream(&mut connection, &stream).await?;
        let share = tasks / servers as u64 + u64::from((index as u64) < tasks % servers as u64);
        raw_fill(&mut connection, &stream, share).await?;
        lanes.push((connection, stream, share));
    }
    let machine = MachineCpu::now();
    let (redis_before, bench_before) = (bench.admin.server_cpu_usec().await?, child::cpu_s()?);
    let started = Instant::now();
    let drains: Vec<_> = lanes
        .into_iter()
        .map(|(mut connection, stream, share)| {
            tokio::spawn(async move { raw_drain(&mut connection, &stream, share).await })
        })
        .collect();
    for drain in drains {
        drain.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let machine_cores = machine.busy_cores_since();
    let redis_cores = (bench.admin.server_cpu_usec().await? - redis_before) / 1e6 / elapsed;
    let bench_cores = (child::cpu_s()? - bench_before) / elapsed;
    bench.admin.forget(&name).await?;
    Ok(RawSpread {
        per_s: tasks as f64 / elapsed,
        machine_cores,
        redis_cores,
        bench_cores,
    })
}

/// One run of [`raw_drain_spread`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawSpread {
    /// Entries per second, over every server.
    pub(crate) per_s: f64,
    /// How many cores every process on the machine kept busy meanwhile.
    pub(crate) machine_cores: f64,
    /// How many the servers kept busy.
    pub(crate) redis_cores: f64,
    /// How many the bench's own process kept busy (the `redis` crate's side).
    pub(crate) bench_cores: f64,
}

/// A hash tag under `name` (`name:i.k`) whose slot server `index` serves: any, on a single
/// server.
async fn tag_on(bench: &Bench, index: usize, name: &str) -> Result<String> {
    if bench.admin.servers() == 1 {
        return Ok(format!("{name}:{index}.0"));
    }
    for k in 0..10_000 {
        let tag = format!("{name}:{index}.{k}");
        if bench.admin.serves(index, &tag).await? {
            return Ok(tag);
        }
    }
    Err(format!("no tag under `{name}` lands on server {index}").into())
}

/// An empty stream with the consumer group `workers`.
async fn raw_stream(connection: &mut MultiplexedConnection, stream: &str) -> Result<()> {
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg("workers")
        .arg("0")
        .arg("MKSTREAM")
        .exec_async(connection)
        .await?;
    Ok(())
}

/// An `XADD` of entry `n`, shaped like docket's: a key and a message.
fn raw_entry(stream: &str, n: u64, due: u64) -> redis::Cmd {
    let mut xadd = redis::cmd("XADD");
    xadd.arg(stream)
        .arg("*")
        .arg("k")
        .arg(format!("{:032x}", u128::from(n) * 0x9e37_79b9_7f4a_7c15))
        .arg("m")
        .arg(format!(
            r#"{{"task":"noop","attempt":1,"due":{due},"args":{{"n":{n}}}}}"#
        ));
    xadd
}

/// Pipelined `XADD` of `tasks` entries, [`BATCH`] per round trip.
async fn raw_fill(connection: &mut MultiplexedConnection, stream: &str, tasks: u64) -> Result<()> {
    let due = millis(SystemTime::now());
    for low in (0..tasks).step_by(BATCH as usize) {
        let mut pipeline = redis::pipe();
        for n in low..(low + BATCH).min(tasks) {
            pipeline.add_command(raw_entry(stream, n, due)).ignore();
        }
        pipeline.exec_async(connection).await?;
    }
    Ok(())
}

/// `XREADGROUP COUNT 1000`, then a pipelined `XACK` + `XDEL`, until `tasks` entries are gone.
async fn raw_drain(connection: &mut MultiplexedConnection, stream: &str, tasks: u64) -> Result<()> {
    let mut drained = 0;
    while drained < tasks {
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("workers")
            .arg("raw")
            .arg("COUNT")
            .arg(BATCH)
            .arg("STREAMS")
            .arg(stream)
            .arg(">")
            .query_async(connection)
            .await?;
        let ids = entry_ids(reply);
        if ids.is_empty() {
            return Err(format!("the raw stream ran dry after {drained} entries").into());
        }
        redis::pipe()
            .cmd("XACK")
            .arg(stream)
            .arg("workers")
            .arg(&ids)
            .ignore()
            .cmd("XDEL")
            .arg(stream)
            .arg(&ids)
            .ignore()
            .exec_async(connection)
            .await?;
        drained += ids.len() as u64;
    }
    Ok(())
}

/// The entry ids of the one stream in an `XREADGROUP` reply (RESP2 or RESP3).
fn entry_ids(reply: Value) -> Vec<Vec<u8>> {
    let entries = match reply {
        Value::Array(mut streams) if !streams.is_empty() => match streams.swap_remove(0) {
            Value::Array(mut pair) if pair.len() == 2 => pair.swap_remove(1),
            _ => Value::Nil,
        },
        Value::Map(mut streams) if !streams.is_empty() => streams.swap_remove(0).1,
        _ => Value::Nil,
    };
    let Value::Array(entries) = entries else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|entry| match entry {
            Value::Array(mut pair) if !pair.is_empty() => match pair.swap_remove(0) {
                Value::BulkString(id) => Some(id),
                Value::SimpleString(id) => Some(id.into_bytes()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

// Latency, lateness, idle --------------------------------------------------------------------

/// A worker in this process, waiting for tasks until stopped.
struct LiveWorker {
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<docket::Result<()>>,
}

impl LiveWorker {
    /// Start a worker on `docket` and see one task through it, so that it is connected and
    /// waiting when this returns.
    async fn start(docket: &Docket, starts: &mut mpsc::UnboundedReceiver<Start>) -> Result<Self> {
        let (stop, stopped) = oneshot::channel::<()>();
        let worker = Worker::new(docket).concurrency(LIVE_CONCURRENCY);
        let handle = tokio::spawn(worker.run_until(async {
            let _ = stopped.await;
        }));
        Ping::schedule(u64::MAX).on(docket).await?;
        next_start(starts, START_PATIENCE).await?;
        // Let it acknowledge and go back to waiting.
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(LiveWorker { stop, handle })
    }

    async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        Ok(self.handle.await??)
    }
}

async fn next_start(
    starts: &mut mpsc::UnboundedReceiver<Start>,
    patience: Duration,
) -> Result<Start> {
    match tokio::time::timeout(patience, starts.recv()).await {
        Ok(Some(start)) => Ok(start),
        Ok(None) => Err("the probe closed".into()),
        Err(_) => Err(format!("no task started within {patience:?}").into()),
    }
}

/// Schedule one task at a time on an idle worker, waiting for each to start: schedule call to
/// task body start.
async fn latency(bench: &Bench) -> Result<Spread> {
    let docket = bench.docket("latency").await?;
    let mut starts = tasks::listen();
    let worker = LiveWorker::start(&docket, &mut starts).await?;
    let mut samples = Vec::with_capacity(bench.plan.latency_tasks as usize);
    for seq in 0..bench.plan.latency_tasks {
        let scheduled = Instant::now();
        Ping::schedule(seq).on(&docket).await?;
        let start = next_start(&mut starts, START_PATIENCE).await?;
        if start.seq != seq {
            return Err(format!("task {} started while waiting for {seq}", start.seq).into());
        }
        samples.push(milliseconds(start.at - scheduled));
    }
    worker.stop().await?;
    bench.done(&docket).await?;
    Ok(Spread::of(samples))
}

/// Tasks due [`LATENESS_LEAD`] ahead, at one instant (`spread` zero) or evenly over `spread`:
/// body start minus due time.
async fn lateness(bench: &Bench, spread: Duration) -> Result<Spread> {
    let tasks = bench.plan.lateness_tasks;
    let docket = bench.docket("lateness").await?;
    let mut starts = tasks::listen();
    let worker = LiveWorker::start(&docket, &mut starts).await?;
    let first_ms = millis(SystemTime::now() + LATENESS_LEAD);
    let due_ms = |n: u64| first_ms + millis_of(spread) * n / tasks;
    for low in (0..tasks).step_by(BATCH as usize) {
        let batch = (low..(low + BATCH).min(tasks)).map(|n| {
            Stamp::schedule(n, due_ms(n)).at(UNIX_EPOCH + Duration::from_millis(due_ms(n)))
        });
        docket.add_many(batch).await?;
    }
    if millis(SystemTime::now()) >= first_ms {
        return Err("scheduling the lateness tasks took longer than their lead".into());
    }
    let mut samples = Vec::with_capacity(tasks as usize);
    while samples.len() < tasks as usize {
        let start = next_start(&mut starts, LATENESS_LEAD + START_PATIENCE).await?;
        let due = UNIX_EPOCH + Duration::from_millis(start.due_ms);
        samples.push(match start.wall.duration_since(due) {
            Ok(late) => milliseconds(late),
            Err(early) => -milliseconds(early.duration()),
        });
    }
    worker.stop().await?;
    bench.done(&docket).await?;
    Ok(Spread::of(samples))
}

/// Commands of one idle worker over the plan's window, scaled to a minute.
async fn idle(bench: &Bench) -> Result<Idle> {
    let docket = bench.docket("idle").await?;
    let mut starts = tasks::listen();
    let worker = LiveWorker::start(&docket, &mut starts).await?;
    bench.admin.reset_stats().await?;
    let sent = docket.commands_sent();
    let window = bench.plan.idle_window;
    tokio::time::sleep(window).await;
    let server_calls = bench.admin.server_calls().await?;
    let client_calls = docket.commands_sent() - sent;
    worker.stop().await?;
    bench.done(&docket).await?;
    let per_minute = |calls: u64| calls as f64 * 60.0 / window.as_secs_f64();
    eprintln!(
        "bench: idle worker: {server_calls} server-side, {client_calls} client-side commands in {} s",
        window.as_secs()
    );
    Ok(Idle {
        window_s: window.as_secs_f64(),
        server_per_min: per_minute(server_calls),
        client_per_min: per_minute(client_calls),
    })
}

// Units --------------------------------------------------------------------------------------

fn per_second(tasks: u64, started: Instant) -> f64 {
    tasks as f64 / started.elapsed().as_secs_f64()
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn millis(time: SystemTime) -> u64 {
    millis_of(time.duration_since(UNIX_EPOCH).unwrap_or_default())
}

fn millis_of(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
