//! Medians and percentiles, and how busy the machine's CPUs were.

use serde::Serialize;

/// The median of the runs of one figure.
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty(), "a figure needs at least one run");
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() % 2 {
        1 => values[middle],
        _ => (values[middle - 1] + values[middle]) / 2.0,
    }
}

/// The median of one field over several runs.
pub(crate) fn median_of<T>(runs: &[T], field: impl Fn(&T) -> f64) -> f64 {
    median(runs.iter().map(field).collect())
}

/// min, p50, p99 and max of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Spread {
    pub(crate) min_ms: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}

impl Spread {
    /// Nearest-rank percentiles of `samples_ms`.
    pub(crate) fn of(mut samples_ms: Vec<f64>) -> Spread {
        assert!(!samples_ms.is_empty(), "percentiles need samples");
        samples_ms.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let rank = (p * samples_ms.len() as f64).ceil() as usize;
            samples_ms[rank.clamp(1, samples_ms.len()) - 1]
        };
        Spread {
            min_ms: samples_ms[0],
            p50_ms: rank(0.50),
            p99_ms: rank(0.99),
            max_ms: samples_ms[samples_ms.len() - 1],
        }
    }

    /// Each percentile's median over several runs.
    pub(crate) fn median(runs: &[Spread]) -> Spread {
        Spread {
            min_ms: median_of(runs, |run| run.min_ms),
            p50_ms: median_of(runs, |run| run.p50_ms),
            p99_ms: median_of(runs, |run| run.p99_ms),
            max_ms: median_of(runs, |run| run.max_ms),
        }
    }
}

/// The whole machine's CPU counters at one instant (the first line of `/proc/stat`), to tell
/// how many cores every process together kept busy over an interval: the bench's own servers
/// and worker, and whatever else runs on the machine.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MachineCpu {
    busy: u64,
    total: u64,
}

impl MachineCpu {
    /// The counters now; zeros where `/proc/stat` cannot be read (the figure is then NaN).
    pub(crate) fn now() -> MachineCpu {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks: Vec<u64> = stat
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("cpu "))
            .map_or(Vec::new(), |rest| {
                rest.split_whitespace()
                    .filter_map(|value| value.parse().ok())
                    .collect()
            });
        // user nice system idle iowait irq softirq steal (guest time is inside user already).
        let total: u64 = ticks.iter().take(8).sum();
        let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
        MachineCpu {
            busy: total - idle,
            total,
        }
    }

    /// How many of the machine's cores were busy, on average, since `self`.
    pub(crate) fn busy_cores_since(self) -> f64 {
        let now = MachineCpu::now();
        let cpus = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        (now.busy - self.busy) as f64 / (now.total - self.total) as f64 * cpus
    }
}
