//! The figures of one bench run, their targets, and the two ways they are printed: a Markdown
//! table, or (`--json`) one JSON object.

use std::fmt::Write;

use serde::Serialize;

use crate::scenarios::{CommandUsec, DrainRun};
use crate::stats::{Spread, median_of};

/// Everything one bench run measured. Rates are tasks (or entries) per second; each figure is
/// the median of its runs.
#[derive(Debug, Serialize)]
pub(crate) struct Figures {
    /// `quick` or `full`.
    pub(crate) mode: &'static str,
    /// N: tasks per enqueue, drain and raw ceiling run.
    pub(crate) tasks: u64,
    /// Runs of each scenario (the idle count runs once).
    pub(crate) runs: usize,
    pub(crate) machine: Machine,
    pub(crate) enqueue: Enqueue,
    pub(crate) raw_ceiling: RawCeiling,
    pub(crate) drain: Vec<Drain>,
    /// Drain at concurrency 100 over the raw ceiling's drain.
    pub(crate) drain_c100_to_ceiling: f64,
    pub(crate) latency: Latency,
    pub(crate) lateness: Lateness,
    pub(crate) idle: Idle,
    /// The worker process's peak RSS while draining at concurrency 1000.
    pub(crate) peak_rss_mib: f64,
    /// Every figure that has a target, with the target and whether it was met.
    pub(crate) targets: Vec<Check>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Machine {
    pub(crate) cpus: usize,
    pub(crate) cpu_model: String,
    pub(crate) redis_version: String,
}

impl Machine {
    pub(crate) fn describe(redis_version: String) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or("unknown", |(_, model)| model.trim())
            .to_owned();
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            redis_version,
        }
    }
}

/// Tasks per second through `schedule` and `add_many`.
#[derive(Debug, Serialize)]
pub(crate) struct Enqueue {
    pub(crate) one_at_a_time: f64,
    pub(crate) concurrent_100: f64,
    pub(crate) batched_1000: f64,
    /// The servers' command execution time per task (`INFO commandstats`), one at a time.
    pub(crate) command_usec_one_at_a_time: f64,
}

/// The `redis` crate alone: entries per second.
#[derive(Debug, Serialize)]
pub(crate) struct RawCeiling {
    /// One `XADD` round trip at a time.
    pub(crate) xadd_one_per_s: f64,
    /// Pipelined `XADD`, 1000 per round trip.
    pub(crate) xadd_per_s: f64,
    /// `XREADGROUP COUNT 1000`, then pipelined `XACK` + `XDEL`.
    pub(crate) drain_per_s: f64,
    /// The server's CPU time per entry over the pipelined `XADD` and the drain.
    pub(crate) redis_usec_per_task: f64,
    /// The server's command execution time per entry (`INFO commandstats`) over the same.
    pub(crate) command_usec_per_task: f64,
}

/// One worker process draining N queued tasks.
#[derive(Debug, Serialize)]
pub(crate) struct Drain {
    pub(crate) concurrency: usize,
    pub(crate) tasks_per_s: f64,
    /// How long `run_until_finished` took to return after the last task started: part of the
    /// drain time, though no task ran in it.
    pub(crate) finish_tail_ms: f64,
    /// Executed by Redis over each task's whole life (`add_many`, delivery, acknowledgement),
    /// Lua-internal calls included.
    pub(crate) server_commands_per_task: f64,
    /// Sent by the enqueuing and the working process together.
    pub(crate) client_commands_per_task: f64,
    /// The server's CPU time per task (`INFO cpu`), while `add_many` stored the tasks.
    pub(crate) redis_usec_enqueue: f64,
    /// The server's CPU time per task while the worker drained them.
    pub(crate) redis_usec_drain: f64,
    /// The servers' command execution time per task (`INFO commandstats`), by step.
    pub(crate) command_usec: CommandUsec,
    pub(crate) peak_rss_mib: f64,
    /// The peak resident set less the mapped files' pages (the binary's code).
    pub(crate) peak_data_mib: f64,
}

impl Drain {
    pub(crate) fn median(concurrency: usize, runs: &[DrainRun]) -> Drain {
        Drain {
            concurrency,
            tasks_per_s: median_of(runs, |run| run.tasks_per_s),
            finish_tail_ms: median_of(runs, |run| run.finish_tail_ms),
            server_commands_per_task: median_of(runs, |run| run.server_commands_per_task),
            client_commands_per_task: median_of(runs, |run| run.client_commands_per_task),
            redis_usec_enqueue: median_of(runs, |run| run.redis_usec_enqueue),
            redis_usec_drain: median_of(runs, |run| run.redis_usec_drain),
            command_usec: CommandUsec {
                enqueue: median_of(runs, |run| run.command_usec.enqueue),
                read: median_of(runs, |run| run.command_usec.read),
                settle: median_of(runs, |run| run.command_usec.settle),
            },
            peak_rss_mib: median_of(runs, |run| run.peak_rss_mib),
            peak_data_mib: median_of(runs, |run| run.peak_data_mib),
        }
    }
}

/// Schedule call to task body start, one task at a time on an idle worker.
#[derive(Debug, Serialize)]
pub(crate) struct Latency {
    pub(crate) tasks: u64,
    #[serde(flatten)]
    pub(crate) spread: Spread,
}

/// Task body start minus due time.
#[derive(Debug, Serialize)]
pub(crate) struct Lateness {
    /// Tasks in each of the two runs.
    pub(crate) tasks: u64,
    /// How far ahead the first task is due when they are scheduled.
    pub(crate) lead_s: f64,
    /// All due at one instant.
    pub(crate) all_at_once: Spread,
    /// Due evenly over `spread_s` seconds.
    pub(crate) spread_out: Spread,
    pub(crate) spread_s: f64,
}

/// Commands of one idle worker, per minute.
#[derive(Debug, Serialize)]
pub(crate) struct Idle {
    pub(crate) window_s: f64,
    pub(crate) server_per_min: f64,
    pub(crate) client_per_min: f64,
}

/// A figure against its target.
#[derive(Debug, Serialize)]
pub(crate) struct Check {
    pub(crate) figure: String,
    pub(crate) value: f64,
    pub(crate) target: String,
    pub(crate) met: bool,
}

/// One line of the table.
pub(crate) struct Row {
    pub(crate) figure: String,
    pub(crate) value: f64,
    pub(crate) unit: Unit,
    pub(crate) bound: Option<Bound>,
}

impl Row {
    pub(crate) fn new(figure: &str, value: f64, unit: Unit, bound: Option<Bound>) -> Row {
        Row {
            figure: figure.to_owned(),
            value,
            unit,
            bound,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Unit {
    PerSecond,
    /// A fraction, printed as a percentage.
    Share,
    /// CPU cores kept busy.
    Cores,
    Ms,
    Ratio,
    PerTask,
    PerMinute,
    MiB,
    Micros,
}

impl Unit {
    fn format(self, value: f64) -> String {
        match self {
            Unit::PerSecond => format!("{} /s", thousands(value)),
            Unit::Share => format!("{:.1} %", value * 100.0),
            Unit::Cores => format!("{value:.2} cores"),
            Unit::Ms => format!("{value:.3} ms"),
            Unit::Ratio => format!("{value:.2}"),
            Unit::PerTask => format!("{value:.2}"),
            Unit::PerMinute => format!("{value:.1} /min"),
            Unit::MiB => format!("{value:.1} MiB"),
            Unit::Micros => format!("{value:.2} µs"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Bound {
    AtLeast(f64),
    AtMost(f64),
    /// From the first to the second, both included.
    Between(f64, f64),
}

impl Bound {
    fn met(self, value: f64) -> bool {
        match self {
            Bound::AtLeast(bound) => value >= bound,
            Bound::AtMost(bound) => value <= bound,
            Bound::Between(low, high) => (low..=high).contains(&value),
        }
    }

    fn describe(self, unit: Unit) -> String {
        match self {
            Bound::AtLeast(bound) => format!("≥ {}", unit.format(bound)),
            Bound::AtMost(bound) => format!("≤ {}", unit.format(bound)),
            Bound::Between(low, high) => format!("{} to {}", unit.format(low), unit.format(high)),
        }
    }
}

impl Figures {
    /// Fill in [`Figures::targets`] from the figures.
    pub(crate) fn checked(mut self) -> Figures {
        self.targets = checks(self.rows());
        self
    }

    fn drain_at(&self, concurrency: usize) -> Option<&Drain> {
        self.drain.iter().find(|d| d.concurrency == concurrency)
    }

    fn rows(&self) -> Vec<Row> {
        let row = Row::new;
        use Bound::{AtLeast, AtMost};
        use Unit::*;
        let mut rows = vec![
            row(
                "enqueue, one `schedule().await` at a time",
                self.enqueue.one_at_a_time,
                PerSecond,
                Some(AtLeast(12_000.0)),
            ),
            row(
                "enqueue, from 100 concurrent tasks",
                self.enqueue.concurrent_100,
                PerSecond,
                None,
            ),
            row(
                "enqueue, `add_many` in batches of 1,000",
                self.enqueue.batched_1000,
                PerSecond,
                Some(AtLeast(200_000.0)),
            ),
            row(
                "raw ceiling: one XADD round trip at a time",
                self.raw_ceiling.xadd_one_per_s,
                PerSecond,
                None,
            ),
            row(
                "raw ceiling: pipelined XADD, 1,000 per round trip",
                self.raw_ceiling.xadd_per_s,
                PerSecond,
                None,
            ),
            row(
                "raw ceiling: XREADGROUP 1,000 + XACK + XDEL",
                self.raw_ceiling.drain_per_s,
                PerSecond,
                None,
            ),
        ];
        rows.extend([
            row(
                "enqueue one at a time / raw XADD one at a time",
                self.enqueue.one_at_a_time / self.raw_ceiling.xadd_one_per_s,
                Ratio,
                Some(AtLeast(0.9)),
            ),
            row(
                "Redis command time per task, enqueue one at a time",
                self.enqueue.command_usec_one_at_a_time,
                Micros,
                None,
            ),
            row(
                "enqueue `add_many` / raw pipelined XADD",
                self.enqueue.batched_1000 / self.raw_ceiling.xadd_per_s,
                Ratio,
                None,
            ),
        ]);
        for drain in &self.drain {
            rows.push(row(
                &format!("drain, concurrency {}", drain.concurrency),
                drain.tasks_per_s,
                PerSecond,
                None,
            ));
        }
        rows.push(row(
            "drain at concurrency 100 / raw ceiling",
            self.drain_c100_to_ceiling,
            Ratio,
            Some(AtLeast(0.7)),
        ));
        if let (Some(c10), Some(c100)) = (self.drain_at(10), self.drain_at(100)) {
            rows.push(row(
                "drain at concurrency 10 / at concurrency 100",
                c10.tasks_per_s / c100.tasks_per_s,
                Ratio,
                Some(AtLeast(0.8)),
            ));
        }
        for drain in &self.drain {
            rows.push(row(
                &format!(
                    "`run_until_finished` tail after the last start, c={}",
                    drain.concurrency
                ),
                drain.finish_tail_ms,
                Ms,
                Some(AtMost(10.0)),
            ));
        }
        rows.extend([
            row(
                "raw ceiling: Redis CPU per entry, pipelined XADD + XREADGROUP + XACK + XDEL",
                self.raw_ceiling.redis_usec_per_task,
                Micros,
                None,
            ),
            row(
                "raw ceiling: Redis command time per entry, the same",
                self.raw_ceiling.command_usec_per_task,
                Micros,
                None,
            ),
        ]);
        for drain in &self.drain {
            let c = drain.concurrency;
            rows.extend([
                row(
                    &format!("Redis CPU per task, c={c}: `add_many`"),
                    drain.redis_usec_enqueue,
                    Micros,
                    None,
                ),
                row(
                    &format!("Redis CPU per task, c={c}: drain"),
                    drain.redis_usec_drain,
                    Micros,
                    None,
                ),
                row(
                    &format!("Redis CPU per task, c={c}: whole life"),
                    drain.redis_usec_enqueue + drain.redis_usec_drain,
                    Micros,
                    None,
                ),
                row(
                    &format!("Redis command time per task, c={c}: `add_many`"),
                    drain.command_usec.enqueue,
                    Micros,
                    None,
                ),
                row(
                    &format!("Redis command time per task, c={c}: stream reads"),
                    drain.command_usec.read,
                    Micros,
                    None,
                ),
                row(
                    &format!("Redis command time per task, c={c}: scripts while draining"),
                    drain.command_usec.settle,
                    Micros,
                    None,
                ),
                row(
                    &format!("Redis command time per task, c={c}: whole life"),
                    drain.command_usec.whole_life(),
                    Micros,
                    (c == 100).then_some(AtMost(6.0)),
                ),
            ]);
        }
        let spread = &self.latency.spread;
        rows.extend([
            row("latency p50", spread.p50_ms, Ms, Some(AtMost(0.3))),
            row("latency p99", spread.p99_ms, Ms, Some(AtMost(1.0))),
            row("latency max", spread.max_ms, Ms, None),
        ]);
        let lateness = &self.lateness;
        for (label, spread) in [
            ("all due at once", &lateness.all_at_once),
            ("spread out", &lateness.spread_out),
        ] {
            rows.extend([
                row(&format!("lateness, {label}, min"), spread.min_ms, Ms, None),
                row(&format!("lateness, {label}, p50"), spread.p50_ms, Ms, None),
                row(
                    &format!("lateness, {label}, p99"),
                    spread.p99_ms,
                    Ms,
                    Some(AtMost(5.0)),
                ),
                row(&format!("lateness, {label}, max"), spread.max_ms, Ms, None),
            ]);
        }
        if let Some(drain) = self.drain_at(100) {
            // The 99th percentile task of a burst cannot start before 99% of the burst has gone
            // through the worker.
            rows.push(row(
                "lateness, all due at once: p99 floor at the c=100 drain rate",
                0.99 * lateness.tasks as f64 / drain.tasks_per_s * 1000.0,
                Ms,
                None,
            ));
        }
        for drain in &self.drain {
            rows.push(row(
                &format!("server commands per task, c={}", drain.concurrency),
                drain.server_commands_per_task,
                PerTask,
                Some(AtMost(6.0)),
            ));
            rows.push(row(
                &format!("client commands per task, c={}", drain.concurrency),
                drain.client_commands_per_task,
                PerTask,
                Some(AtMost(2.1)),
            ));
        }
        rows.extend([
            row(
                "idle worker, server-side commands",
                self.idle.server_per_min,
                PerMinute,
                Some(AtMost(2.0)),
            ),
            row(
                "idle worker, client-side commands",
                self.idle.client_per_min,
                PerMinute,
                Some(AtMost(2.0)),
            ),
        ]);
        for drain in &self.drain {
            let bound = (drain.concurrency == 1000).then_some(AtMost(12.0));
            rows.push(row(
                &format!("worker peak RSS, c={}", drain.concurrency),
                drain.peak_rss_mib,
                MiB,
                bound,
            ));
        }
        for drain in &self.drain {
            rows.push(row(
                &format!(
                    "worker peak RSS less mapped files (the bench binary's code), c={}",
                    drain.concurrency
                ),
                drain.peak_data_mib,
                MiB,
                None,
            ));
        }
        rows
    }

    /// The figures as a Markdown table, with a heading naming the run and the machine.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        let machine = &self.machine;
        let _ = writeln!(
            out,
            "docket bench ({}): N = {} tasks, median of {} run(s); {} CPUs ({}), Redis {}\n",
            self.mode,
            thousands(self.tasks as f64),
            self.runs,
            machine.cpus,
            machine.cpu_model,
            machine.redis_version
        );
        out.push_str(&markdown(self.rows()));
        let _ = writeln!(
            out,
            "\nlatency: {} tasks; lateness: {} tasks due {} s ahead, at once or over {} s; idle: \
             one worker for {} s, scaled to a minute.",
            thousands(self.latency.tasks as f64),
            thousands(self.lateness.tasks as f64),
            self.lateness.lead_s,
            self.lateness.spread_s,
            self.idle.window_s
        );
        out
    }
}

/// The rows that have a target, checked.
pub(crate) fn checks(rows: Vec<Row>) -> Vec<Check> {
    rows.into_iter()
        .filter_map(|row| {
            let bound = row.bound?;
            Some(Check {
                target: bound.describe(row.unit),
                met: bound.met(row.value),
                value: row.value,
                figure: row.figure,
            })
        })
        .collect()
}

/// The rows as a Markdown table: figure, value, target, and whether it was met.
pub(crate) fn markdown(rows: Vec<Row>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| figure | value | target | |");
    let _ = writeln!(out, "|---|--:|--:|---|");
    for row in rows {
        let (target, status) = match row.bound {
            Some(bound) => (
                bound.describe(row.unit),
                if bound.met(row.value) {
                    "met"
                } else {
                    "**missed**"
                },
            ),
            None => (String::new(), ""),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {target} | {status} |",
            row.figure,
            row.unit.format(row.value)
        );
    }
    out
}

/// `1234567.8` as `1,234,568`.
pub(crate) fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match value < 0.0 {
        true => format!("-{grouped}"),
        false => grouped,
    }
}
