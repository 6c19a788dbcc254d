//! Runs by task name over the last few minutes: the rolling window each worker keeps in
//! process, the compact summary it publishes now and then, and the sum over a fleet's summaries
//! the dashboard shows.
//!
//! Counting costs no Redis command per task: a worker adds each run to its window in memory,
//! and publishes the window (a few dozen bytes a task name) at most once per publication
//! period, only when it changed (see `worker/stats.rs`). The window is minute buckets: a
//! summary names the newest minute it holds, and each bucket by its age from there, so a
//! summary read minutes later still says which of its runs fall in the reader's window.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// How many minutes a window spans: the current one and the four before it.
pub(crate) const WINDOW_MINUTES: u64 = 5;

/// The most task names one window tracks; runs of further names count under [`OTHER`].
pub(crate) const MAX_NAMES: usize = 64;

/// The name runs of task names past [`MAX_NAMES`] are counted under (no task is named so: a
/// task name is never empty).
pub(crate) const OTHER: &str = "";

/// Runs, failures and the time they took, of one task name over some minutes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Attempts that ended: succeeded, failed or cancelled.
    pub(crate) runs: u64,
    /// Of those, the ones that failed (an error, a timeout, a panic, arguments that no longer
    /// decode); a cancelled run is no failure.
    pub(crate) failures: u64,
    /// The time they took together, in milliseconds.
    pub(crate) millis: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.runs = self.runs.saturating_add(other.runs);
        self.failures = self.failures.saturating_add(other.failures);
        self.millis = self.millis.saturating_add(other.millis);
    }

    /// The mean time a run took; `None` without runs.
    #[cfg_attr(not(feature = "dashboard"), allow(dead_code))] // The dashboard reads it.
    pub(crate) fn mean(&self) -> Option<Duration> {
        (self.runs > 0).then(|| Duration::from_millis(self.millis / self.runs))
    }
}

/// The minute `at` falls in, counted from the Unix epoch.
pub(crate) fn minute_of(at: SystemTime) -> u64 {
    crate::time::millis(at) / 60_000
}

/// One worker's runs by task name and minute, over the last [`WINDOW_MINUTES`] minutes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Window {
    /// The newest minute a run was recorded in.
    newest: u64,
    /// Each task name's tallies by minute: only minutes within the window of `newest`.
    names: BTreeMap<String, BTreeMap<u64, Tally>>,
}

/// A window as published: `{"m":<newest minute>,"t":{"<task>":[[<age>,<runs>,<failures>,<ms>],…]}}`,
/// the age in minutes before the newest. `m` comes first: `keep.lua` reads it to forget the
/// summaries of workers silent for longer than the window.
#[derive(Serialize, Deserialize)]
struct Wire {
    m: u64,
    t: BTreeMap<String, Vec<[u64; 4]>>,
}

impl Window {
    /// Count a run of `task` that ended in `minute` after taking `took`.
    ///
    /// A run older than the window (a clock moved back) is not counted.
    pub(crate) fn record(&mut self, task: &str, minute: u64, took: Duration, failed: bool) {
        if minute > self.newest {
            self.newest = minute;
            self.expire();
        }
        if !self.holds(minute) {
            return;
        }
        let tracked = self.names.len() - usize::from(self.names.contains_key(OTHER));
        let name = match self.names.contains_key(task) || tracked < MAX_NAMES {
            true => task,
            false => OTHER,
        };
        let tally = self
            .names
            .entry(name.to_owned())
            .or_default()
            .entry(minute)
            .or_default();
        tally.add(Tally {
            runs: 1,
            failures: u64::from(failed),
            millis: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        });
    }

    /// Whether `minute` is within the window of the newest.
    fn holds(&self, minute: u64) -> bool {
        minute <= self.newest && self.newest - minute < WINDOW_MINUTES
    }

    /// Forget the minutes that fell out of the window, and the names left without any.
    fn expire(&mut self) {
        let newest = self.newest;
        for minutes in self.names.values_mut() {
            minutes.retain(|&minute, _| minute <= newest && newest - minute < WINDOW_MINUTES);
        }
        self.names.retain(|_, minutes| !minutes.is_empty());
    }

    /// Add this window's runs within the window of `now` (a minute) to `totals`, by task name.
    #[cfg_attr(not(feature = "dashboard"), allow(dead_code))] // The dashboard reads it.
    pub(crate) fn add_to(&self, now: u64, totals: &mut BTreeMap<String, Tally>) {
        for (name, minutes) in &self.names {
            for (&minute, tally) in minutes {
                if minute <= now && now - minute < WINDOW_MINUTES {
                    totals.entry(name.clone()).or_default().add(*tally);
                }
            }
        }
    }

    /// Whether this window holds nothing a reader at `other`'s newest minute (or later) would
    /// count: all its runs are older than that reader's window.
    pub(crate) fn is_stale_beside(&self, other: &Window) -> bool {
        self.newest + WINDOW_MINUTES <= other.newest
    }

    /// Whether no run is recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The summary a worker publishes.
    pub(crate) fn encode(&self) -> String {
        let t = self
            .names
            .iter()
            .map(|(name, minutes)| {
                let buckets = minutes
                    .iter()
                    .rev()
                    .map(|(minute, tally)| {
                        [
                            self.newest - minute,
                            tally.runs,
                            tally.failures,
                            tally.millis,
                        ]
                    })
                    .collect();
                (name.clone(), buckets)
            })
            .collect();
        serde_json::to_string(&Wire { m: self.newest, t }).expect("a window always encodes")
    }

    /// A published summary; `None` when it does not decode. What does not fit a window (ages
    /// past it, names past the cap) is left out: a summary is read from Redis, where anything
    /// may have written it.
    #[cfg_attr(not(feature = "dashboard"), allow(dead_code))] // The dashboard reads it.
    pub(crate) fn decode(json: &[u8]) -> Option<Window> {
        let wire: Wire = serde_json::from_slice(json).ok()?;
        let mut window = Window {
            newest: wire.m,
            names: BTreeMap::new(),
        };
        for (name, buckets) in wire.t.into_iter().take(MAX_NAMES + 1) {
            let mut minutes = BTreeMap::new();
            for [age, runs, failures, millis] in buckets {
                if age < WINDOW_MINUTES && age <= wire.m {
                    let tally = Tally {
                        runs,
                        failures: failures.min(runs),
                        millis,
                    };
                    minutes
                        .entry(wire.m - age)
                        .or_insert_with(Tally::default)
                        .add(tally);
                }
            }
            if !minutes.is_empty() {
                window.names.insert(name, minutes);
            }
        }
        Some(window)
    }
}

/// The runs by task name of several workers' windows, within the window of `now`: task names
/// in order, [`OTHER`] (if any) last.
#[cfg_attr(not(feature = "dashboard"), allow(dead_code))] // The dashboard reads it.
pub(crate) fn totals<'a>(
    windows: impl IntoIterator<Item = &'a Window>,
    now: SystemTime,
) -> Vec<(String, Tally)> {
    let now = minute_of(now);
    let mut totals = BTreeMap::new();
    for window in windows {
        window.add_to(now, &mut totals);
    }
    let other = totals.remove(OTHER);
    let mut totals: Vec<(String, Tally)> = totals.into_iter().collect();
    totals.extend(other.map(|tally| (OTHER.to_owned(), tally)));
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift64*), so a failing sequence can be replayed.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
        }
    }

    /// One recorded run, as the model keeps it.
    #[derive(Debug, Clone)]
    struct Run {
        task: String,
        minute: u64,
        millis: u64,
        failed: bool,
    }

    /// The model: every run counted within `(now - 5, now]` of its own minute, whatever came
    /// after.
    fn model(runs: &[Run], now: u64) -> BTreeMap<String, Tally> {
        let mut totals: BTreeMap<String, Tally> = BTreeMap::new();
        for run in runs {
            if run.minute <= now && now - run.minute < WINDOW_MINUTES {
                totals.entry(run.task.clone()).or_default().add(Tally {
                    runs: 1,
                    failures: u64::from(run.failed),
                    millis: run.millis,
                });
            }
        }
        totals
    }

    fn sums(window: &Window, now: u64) -> BTreeMap<String, Tally> {
        let mut totals = BTreeMap::new();
        window.add_to(now, &mut totals);
        totals
    }

    #[test]
    fn random_runs_sum_as_the_model_says_and_survive_publication() {
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut window = Window::default();
            let mut counted: Vec<Run> = Vec::new();
            let mut clock = 28_000_000 + rng.below(1_000);
            for step in 0..200 {
                // Time goes on by 0 to 3 minutes, now and then by more than a window.
                clock += match rng.below(20) {
                    0 => 7,
                    n if n < 12 => 0,
                    n => n % 4,
                };
                // A run may end in a minute a little before the newest (workers' runs end out
                // of order), or, rarely, long before it (a clock moved back).
                let minute = match rng.below(10) {
                    0 => clock.saturating_sub(rng.below(8)),
                    _ => clock,
                };
                let run = Run {
                    task: format!("task{}", rng.below(4)),
                    minute,
                    millis: rng.below(5_000),
                    failed: rng.below(3) == 0,
                };
                let newest = counted
                    .iter()
                    .map(|run| run.minute)
                    .chain([minute, window.newest])
                    .max()
                    .unwrap_or(0);
                window.record(
                    &run.task,
                    run.minute,
                    Duration::from_millis(run.millis),
                    run.failed,
                );
                // The model counts what the window promises to keep: runs within the window of
                // the newest minute at the time they were recorded.
                if newest - run.minute < WINDOW_MINUTES {
                    counted.push(run);
                }
                let now = window.newest + rng.below(7);
                assert_eq!(
                    sums(&window, now),
                    model(&counted, now),
                    "seed {seed}, step {step}, now {now}"
                );
                let published = Window::decode(window.encode().as_bytes()).unwrap();
                assert_eq!(published, window, "seed {seed}, step {step}");
            }
        }
    }

    #[test]
    fn buckets_expire_as_the_minutes_pass() {
        let mut window = Window::default();
        window.record("scan", 100, Duration::from_millis(300), false);
        window.record("scan", 101, Duration::from_millis(100), true);
        window.record("mail", 101, Duration::from_millis(50), false);
        let at = |now| sums(&window, now);
        assert_eq!(
            at(101)["scan"],
            Tally {
                runs: 2,
                failures: 1,
                millis: 400
            }
        );
        assert_eq!(at(101)["scan"].mean(), Some(Duration::from_millis(200)));
        // Minute 100 leaves the window at 105, minute 101 at 106.
        assert_eq!(at(104)["scan"].runs, 2);
        assert_eq!(at(105)["scan"].runs, 1);
        assert!(at(106).is_empty());
        // A run at minute 106 drops the buckets it no longer covers from the window itself.
        window.record("mail", 106, Duration::from_millis(10), false);
        assert!(!window.names.contains_key("scan"));
        assert_eq!(window.names["mail"].len(), 1);
        // A run from before the window is not counted.
        window.record("scan", 101, Duration::from_millis(10), false);
        assert!(!window.names.contains_key("scan"));
        // A window whose newest minute left the window of another's is stale beside it.
        let mut older = Window::default();
        older.record("scan", 102, Duration::ZERO, false);
        assert!(!older.is_stale_beside(&window));
        older.newest = 101;
        assert!(older.is_stale_beside(&window));
    }

    #[test]
    fn names_past_the_cap_count_as_other_tasks() {
        let mut window = Window::default();
        for n in 0..MAX_NAMES + 3 {
            window.record(&format!("task{n:03}"), 7, Duration::ZERO, false);
        }
        window.record("task000", 7, Duration::ZERO, false);
        let totals = totals(
            [&window],
            SystemTime::UNIX_EPOCH + Duration::from_secs(7 * 60),
        );
        assert_eq!(totals.len(), MAX_NAMES + 1);
        assert_eq!(totals[0], ("task000".to_owned(), tally(2, 0, 0)));
        assert_eq!(totals.last().unwrap(), &(OTHER.to_owned(), tally(3, 0, 0)));
        // Once the tracked names leave the window, new ones are tracked again.
        window.record("fresh", 7 + WINDOW_MINUTES, Duration::ZERO, false);
        assert_eq!(window.names.keys().collect::<Vec<_>>(), ["fresh"]);
    }

    fn tally(runs: u64, failures: u64, millis: u64) -> Tally {
        Tally {
            runs,
            failures,
            millis,
        }
    }

    #[test]
    fn several_workers_summaries_add_up() {
        let mut one = Window::default();
        let mut two = Window::default();
        one.record("scan", 50, Duration::from_millis(100), false);
        two.record("scan", 52, Duration::from_millis(300), true);
        two.record("mail", 52, Duration::from_millis(1), false);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(53 * 60 + 59);
        assert_eq!(
            totals([&one, &two], now),
            [
                ("mail".to_owned(), tally(1, 0, 1)),
                ("scan".to_owned(), tally(2, 1, 400))
            ]
        );
    }

    #[test]
    fn a_summary_from_anywhere_decodes_into_a_window_or_nothing() {
        assert_eq!(Window::decode(b"not json"), None);
        assert_eq!(Window::decode(br#"{"t":{}}"#), None);
        // Ages past the window and before minute 0 are left out; failures never exceed runs.
        let window =
            Window::decode(br#"{"m":3,"t":{"a":[[0,2,9,10],[4,1,0,1],[9,1,1,1]],"b":[]}}"#)
                .unwrap();
        assert_eq!(window.names.len(), 1);
        assert_eq!(window.names["a"][&3], tally(2, 2, 10));
        assert_eq!(window.encode(), r#"{"m":3,"t":{"a":[[0,2,2,10]]}}"#);
    }
}
