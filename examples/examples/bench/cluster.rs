//! `--cluster`: what spreading one docket over a cluster's masters gains, against what the same
//! masters gain the `redis` crate alone, in one run.
//!
//! The bench starts one single server and one cluster of [`MASTERS`] masters (no replicas), and
//! measures on the same machine: the raw drain on the single server, the raw drain spread over
//! the masters (a stream on each, drained at once), and docket's drain on the single server, on
//! the cluster at one partition and on the cluster at one partition a master. The targets
//! compare ratios, not rates: on a small machine the masters, the worker and the bench share
//! the same cores, so neither the raw nor docket's drain can grow as it would on as many
//! machines, and what docket must show is that it keeps most of what the cluster gains.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::Result;
use crate::report::{Bound, Check, Drain, Machine, Row, Unit, checks, markdown, thousands};
use crate::scenarios::{Bench, DrainRun, Plan, RawSpread, drain, raw_drain_spread};
use crate::server::{Admin, MASTERS};
use crate::stats::{median, median_of};

/// The drain's worker concurrencies.
const CONCURRENCY: [usize; 2] = [10, 100];

/// The concurrency the targets are checked at.
const CHECKED: usize = 100;

/// The servers `--cluster` measures.
#[derive(Debug)]
pub(crate) struct Servers {
    /// The single server's `redis://` URL.
    pub(crate) single: String,
    /// docket's `redis+cluster://` URL for the cluster.
    pub(crate) cluster: String,
    /// Each master's plain `redis://` URL.
    pub(crate) masters: Vec<String>,
}

/// Everything one `--cluster` run measured; each figure the median of its runs.
#[derive(Debug, Serialize)]
pub(crate) struct ClusterFigures {
    /// `quick` or `full`.
    pub(crate) mode: &'static str,
    /// N: entries per raw run, tasks per drain run.
    pub(crate) tasks: u64,
    pub(crate) runs: usize,
    pub(crate) machine: Machine,
    pub(crate) masters: usize,
    pub(crate) replicas: usize,
    /// Raw read + ack + delete on the single server.
    pub(crate) raw_single: Raw,
    /// The same on every master at once, a stream on each.
    pub(crate) raw_cluster: Raw,
    pub(crate) drains: Vec<Setup>,
    pub(crate) targets: Vec<Check>,
}

/// The raw drain (`XREADGROUP` + `XACK` + `XDEL`) on one server or on every master at once.
#[derive(Debug, Serialize)]
pub(crate) struct Raw {
    /// Entries per second, over every server.
    pub(crate) per_s: f64,
    /// Cores kept busy meanwhile, by every process on the machine.
    pub(crate) machine_cores: f64,
    /// By the servers.
    pub(crate) redis_cores: f64,
    /// By the bench's own process, which drives the drain.
    pub(crate) bench_cores: f64,
}

/// Where a setup's docket lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// The single server.
    Single,
    /// The cluster.
    Cluster,
}

/// docket's drain in one setup at one concurrency.
#[derive(Debug, Serialize)]
pub(crate) struct Setup {
    pub(crate) servers: Kind,
    pub(crate) partitions: u16,
    #[serde(flatten)]
    pub(crate) drain: Drain,
    /// Each server's share of the commands.
    pub(crate) shares: Vec<f64>,
    /// Server commands per task by command name (over every run).
    pub(crate) commands: BTreeMap<String, f64>,
    /// Redis CPU while draining over the drain's time: how many cores the servers kept busy.
    pub(crate) redis_cores: f64,
    /// The worker process's CPU over the drain's time.
    pub(crate) worker_cores: f64,
    /// Every process on the machine's CPU over the drain's time: the servers, the worker, and
    /// anything else running.
    pub(crate) machine_cores: f64,
    /// The servers' socket reads while draining, per task.
    pub(crate) socket_reads_per_task: f64,
}

impl Setup {
    fn label(&self) -> String {
        match self.servers {
            Kind::Single => "one server".to_owned(),
            Kind::Cluster => format!(
                "cluster, {} partition{}",
                self.partitions,
                if self.partitions == 1 { "" } else { "s" }
            ),
        }
    }

    /// The medians of `runs`, each of `tasks` tasks.
    fn from_runs(
        servers: Kind,
        partitions: u16,
        concurrency: usize,
        tasks: u64,
        runs: &[DrainRun],
    ) -> Setup {
        let count = runs[0].calls_by_server.len();
        let shares = (0..count)
            .map(|index| {
                median(
                    runs.iter()
                        .map(|run| {
                            run.calls_by_server[index] as f64
                                / run.calls_by_server.iter().sum::<u64>().max(1) as f64
                        })
                        .collect(),
                )
            })
            .collect();
        let all_tasks = runs.len() as f64 * tasks as f64;
        let mut commands = BTreeMap::new();
        for run in runs {
            for (name, calls) in &run.calls_by_command {
                *commands.entry(name.clone()).or_insert(0.0) += *calls as f64 / all_tasks;
            }
        }
        Setup {
            servers,
            partitions,
            drain: Drain::median(concurrency, runs),
            shares,
            commands,
            redis_cores: median(
                runs.iter()
                    .map(|run| run.redis_usec_drain * run.tasks_per_s / 1e6)
                    .collect(),
            ),
            machine_cores: median_of(runs, |run| run.machine_cores),
            socket_reads_per_task: median_of(runs, |run| run.socket_reads_per_task),
            worker_cores: median(
                runs.iter()
                    .map(|run| run.worker_cpu_s / run.elapsed_s)
                    .collect(),
            ),
        }
    }
}

/// Every measurement of `--cluster`, in order.
pub(crate) async fn run_all(servers: &Servers, plan: Plan) -> Result<ClusterFigures> {
    let single = Admin::connect(&servers.single).await?;
    let masters = Admin::connect_all(&servers.masters).await?;
    let machine = Machine::describe(single.version().await?);
    let n = MASTERS as u16;
    let setups = [
        (
            Kind::Single,
            1,
            Bench::new(&servers.single, single, plan, 1),
        ),
        (
            Kind::Cluster,
            1,
            Bench::new(&servers.cluster, masters.clone(), plan, 1),
        ),
        (
            Kind::Cluster,
            n,
            Bench::new(&servers.cluster, masters, plan, n),
        ),
    ];
    let (one, spread) = (&setups[0].2, &setups[2].2);

    // Round after round of every measurement, rather than each measurement's runs in a row: a
    // burst of other work on the machine then slows one run of each, not every run of one.
    let mut raw_runs: [Vec<RawSpread>; 2] = Default::default();
    let mut drain_runs: Vec<Vec<DrainRun>> = vec![Vec::new(); setups.len() * CONCURRENCY.len()];
    for round in 1..=plan.runs {
        for (runs, (what, bench)) in raw_runs
            .iter_mut()
            .zip([("one server", one), ("every master at once", spread)])
        {
            let run = raw_drain_spread(bench).await?;
            eprintln!(
                "bench: round {round}/{}: raw drain, {what}: {:.0}/s, the machine's CPUs {:.2} \
                 cores busy",
                plan.runs, run.per_s, run.machine_cores
            );
            runs.push(run);
        }
        let mut runs = drain_runs.iter_mut();
        for (servers, partitions, bench) in &setups {
            for concurrency in CONCURRENCY {
                let run = drain(bench, concurrency).await?;
                let calls: Vec<String> = run.calls_by_server.iter().map(u64::to_string).collect();
                eprintln!(
                    "bench: round {round}/{}: docket drain, {servers:?}, {partitions} \
                     partition(s), c={concurrency}: {}; commands by server {}; {:.3} socket \
                     reads per task; the machine's CPUs {:.2} cores busy",
                    plan.runs,
                    run.headline(),
                    calls.join(" / "),
                    run.socket_reads_per_task,
                    run.machine_cores
                );
                runs.next()
                    .expect("a list per setup and concurrency")
                    .push(run);
            }
        }
    }
    let [raw_single, raw_cluster] = raw_runs.map(|runs| Raw {
        per_s: median_of(&runs, |run| run.per_s),
        machine_cores: median_of(&runs, |run| run.machine_cores),
        redis_cores: median_of(&runs, |run| run.redis_cores),
        bench_cores: median_of(&runs, |run| run.bench_cores),
    });
    let mut runs = drain_runs.iter();
    let mut drains = Vec::new();
    for (servers, partitions, _) in &setups {
        for concurrency in CONCURRENCY {
            let runs = runs.next().expect("a list per setup and concurrency");
            drains.push(Setup::from_runs(
                *servers,
                *partitions,
                concurrency,
                plan.tasks,
                runs,
            ));
        }
    }

    let figures = ClusterFigures {
        mode: match plan.quick {
            true => "quick",
            false => "full",
        },
        tasks: plan.tasks,
        runs: plan.runs,
        machine,
        masters: MASTERS,
        replicas: 0,
        raw_single,
        raw_cluster,
        drains,
        targets: Vec::new(),
    };
    Ok(ClusterFigures {
        targets: checks(figures.rows()),
        ..figures
    })
}

impl ClusterFigures {
    fn setup(&self, servers: Kind, partitions: u16, concurrency: usize) -> Option<&Setup> {
        self.drains.iter().find(|setup| {
            setup.servers == servers
                && setup.partitions == partitions
                && setup.drain.concurrency == concurrency
        })
    }

    fn rows(&self) -> Vec<Row> {
        use Bound::{AtLeast, AtMost, Between};
        use Unit::{Cores, Micros, PerSecond, PerTask, Ratio, Share};
        let row = Row::new;
        let n = MASTERS as u16;
        let raw_ratio = self.raw_cluster.per_s / self.raw_single.per_s;
        let mut rows = vec![
            row(
                "raw drain, one server",
                self.raw_single.per_s,
                PerSecond,
                None,
            ),
            row(
                &format!("raw drain, {n} masters at once (a stream on each)"),
                self.raw_cluster.per_s,
                PerSecond,
                None,
            ),
            row("raw ratio: cluster / one server", raw_ratio, Ratio, None),
        ];
        let masters = format!("{n} masters");
        for (label, raw) in [
            ("one server", &self.raw_single),
            (masters.as_str(), &self.raw_cluster),
        ] {
            rows.extend([
                row(
                    &format!("CPU while draining raw, {label}: Redis"),
                    raw.redis_cores,
                    Cores,
                    None,
                ),
                row(
                    &format!("CPU while draining raw, {label}: the bench's client"),
                    raw.bench_cores,
                    Cores,
                    None,
                ),
                row(
                    &format!("CPU while draining raw, {label}: other processes"),
                    raw.machine_cores - raw.redis_cores - raw.bench_cores,
                    Cores,
                    None,
                ),
            ]);
        }
        for setup in &self.drains {
            rows.push(row(
                &format!(
                    "docket drain, {}, c={}",
                    setup.label(),
                    setup.drain.concurrency
                ),
                setup.drain.tasks_per_s,
                PerSecond,
                None,
            ));
        }
        for concurrency in CONCURRENCY {
            let (Some(single), Some(one), Some(spread)) = (
                self.setup(Kind::Single, 1, concurrency),
                self.setup(Kind::Cluster, 1, concurrency),
                self.setup(Kind::Cluster, n, concurrency),
            ) else {
                continue;
            };
            let ratio = spread.drain.tasks_per_s / single.drain.tasks_per_s;
            let checked = concurrency == CHECKED;
            rows.extend([
                row(
                    &format!("docket ratio, c={concurrency}: cluster {n} partitions / one server"),
                    ratio,
                    Ratio,
                    None,
                ),
                row(
                    &format!("docket ratio / raw ratio, c={concurrency}"),
                    ratio / raw_ratio,
                    Ratio,
                    checked.then_some(AtLeast(0.7)),
                ),
                row(
                    &format!(
                        "docket, c={concurrency}: cluster {n} partitions / cluster 1 partition"
                    ),
                    spread.drain.tasks_per_s / one.drain.tasks_per_s,
                    Ratio,
                    None,
                ),
            ]);
        }
        for setup in &self.drains {
            let c = setup.drain.concurrency;
            let one = self.setup(Kind::Cluster, 1, c);
            let bound = (setup.partitions == n && c == CHECKED)
                .then_some(one.map(|one| AtMost(1.1 * one.drain.server_commands_per_task)))
                .flatten();
            rows.push(row(
                &format!("server commands per task, {}, c={c}", setup.label()),
                setup.drain.server_commands_per_task,
                PerTask,
                bound,
            ));
        }
        for setup in &self.drains {
            rows.push(row(
                &format!(
                    "client commands per task, {}, c={}",
                    setup.label(),
                    setup.drain.concurrency
                ),
                setup.drain.client_commands_per_task,
                PerTask,
                None,
            ));
        }
        if let Some(spread) = self.setup(Kind::Cluster, n, CHECKED) {
            let fair = 1.0 / f64::from(n);
            for (index, share) in spread.shares.iter().enumerate() {
                rows.push(row(
                    &format!(
                        "master {}'s share of commands, {n} partitions, c={CHECKED}",
                        index + 1
                    ),
                    *share,
                    Share,
                    Some(Between(0.9 * fair, 1.1 * fair)),
                ));
            }
        }
        for setup in self
            .drains
            .iter()
            .filter(|s| s.drain.concurrency == CHECKED)
        {
            let label = setup.label();
            rows.extend([
                row(
                    &format!("Redis CPU per task, whole life, {label}, c={CHECKED}"),
                    setup.drain.redis_usec_enqueue + setup.drain.redis_usec_drain,
                    Micros,
                    None,
                ),
                row(
                    &format!("Redis socket reads per task while draining, {label}, c={CHECKED}"),
                    setup.socket_reads_per_task,
                    PerTask,
                    None,
                ),
                row(
                    &format!("CPU while draining, {label}, c={CHECKED}: Redis"),
                    setup.redis_cores,
                    Cores,
                    None,
                ),
                row(
                    &format!("CPU while draining, {label}, c={CHECKED}: the worker"),
                    setup.worker_cores,
                    Cores,
                    None,
                ),
                row(
                    &format!("CPU while draining, {label}, c={CHECKED}: other processes"),
                    setup.machine_cores - setup.redis_cores - setup.worker_cores,
                    Cores,
                    None,
                ),
            ]);
        }
        rows
    }

    /// The figures as Markdown: the table of figures and targets, then server commands per task
    /// by command name at the checked concurrency.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        let machine = &self.machine;
        let _ = writeln!(
            out,
            "docket bench --cluster ({}): N = {} tasks, median of {} run(s); {} masters, {} \
             replicas, and one single server; {} CPUs ({}), Redis {}\n",
            self.mode,
            thousands(self.tasks as f64),
            self.runs,
            self.masters,
            self.replicas,
            machine.cpus,
            machine.cpu_model,
            machine.redis_version
        );
        out.push_str(&markdown(self.rows()));
        let checked: Vec<&Setup> = self
            .drains
            .iter()
            .filter(|setup| setup.drain.concurrency == CHECKED)
            .collect();
        let mut names: Vec<&String> = checked
            .iter()
            .flat_map(|setup| setup.commands.keys())
            .collect();
        names.sort();
        names.dedup();
        let _ = writeln!(
            out,
            "\nServer commands per task by command, c={CHECKED} (at least 0.01 in one setup):\n"
        );
        let labels: Vec<String> = checked.iter().map(|setup| setup.label()).collect();
        let _ = writeln!(out, "| command | {} |", labels.join(" | "));
        let _ = writeln!(out, "|---|{}", "--:|".repeat(labels.len()));
        for name in names {
            let values: Vec<f64> = checked
                .iter()
                .map(|setup| setup.commands.get(name).copied().unwrap_or(0.0))
                .collect();
            if values.iter().all(|&value| value < 0.01) {
                continue;
            }
            let cells: Vec<String> = values.iter().map(|value| format!("{value:.3}")).collect();
            let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
        }
        out
    }
}
