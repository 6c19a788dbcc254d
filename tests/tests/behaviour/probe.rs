//! Where tasks report what they did, so a test can assert on effects.
//!
//! A task's arguments can only be data, so a test hands its task the probe's id (`probe.id()`),
//! and the task looks the probe up again with [`Probe::find`]. Every test makes its own probe, so
//! tests running side by side in one process never see each other's runs.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// Every probe of the process, by id.
static PROBES: LazyLock<Mutex<HashMap<String, Arc<Probe>>>> = LazyLock::new(Mutex::default);

/// How long [`Probe::until`] waits before declaring the test failed. Far longer than any test
/// needs; it only turns a hang into a readable failure.
const PATIENCE: Duration = Duration::from_secs(10);

/// What one test's tasks did.
#[derive(Debug)]
pub(crate) struct Probe {
    id: String,
    runs: Mutex<Vec<Run>>,
    /// Runs started and not yet ended (finished, failed, timed out or panicked).
    running: AtomicUsize,
    /// The most runs that were ever in progress at once.
    most_running: AtomicUsize,
    /// Permits for tasks that wait to be let go (see [`Probe::released`]).
    gate: Semaphore,
}

/// One run of a task body: an attempt, as the task itself saw it.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// What the task said about this run, such as its arguments.
    pub(crate) label: String,
    /// When the body started.
    pub(crate) started: Instant,
    /// When the body reached its end; `None` if it has not, or never will.
    pub(crate) finished: Option<Instant>,
}

/// A run in progress. Dropping it without [`Running::finish`] (a timeout, a panic) ends the
/// run without marking it finished.
#[derive(Debug)]
pub(crate) struct Running {
    probe: Arc<Probe>,
    index: usize,
}

impl Probe {
    /// A new probe, findable by its id until the process exits.
    pub(crate) fn new() -> Arc<Probe> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = format!("probe-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let probe = Arc::new(Probe {
            id: id.clone(),
            runs: Mutex::default(),
            running: AtomicUsize::new(0),
            most_running: AtomicUsize::new(0),
            gate: Semaphore::new(0),
        });
        lock(&PROBES).insert(id, probe.clone());
        probe
    }

    /// The probe with this id: what a task calls with the id it was given.
    pub(crate) fn find(id: &str) -> Arc<Probe> {
        lock(&PROBES)
            .get(id)
            .cloned()
            .unwrap_or_else(|| panic!("no probe `{id}`; pass a task `probe.id()`"))
    }

    /// The id to pass to a task.
    pub(crate) fn id(&self) -> String {
        self.id.clone()
    }

    /// Record that a task body started.
    pub(crate) fn start(self: &Arc<Self>, label: impl Into<String>) -> Running {
        let index = {
            let mut runs = lock(&self.runs);
            runs.push(Run {
                label: label.into(),
                started: Instant::now(),
                finished: None,
            });
            runs.len() - 1
        };
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_running.fetch_max(now, Ordering::SeqCst);
        Running {
            probe: self.clone(),
            index,
        }
    }

    /// Every run so far, in the order they started.
    pub(crate) fn runs(&self) -> Vec<Run> {
        lock(&self.runs).clone()
    }

    /// The one run so far; fails the test if there were none, or more than one.
    #[track_caller]
    pub(crate) fn only_run(&self) -> Run {
        let mut runs = self.runs();
        assert_eq!(runs.len(), 1, "{runs:#?}");
        runs.remove(0)
    }

    /// How many runs started.
    pub(crate) fn starts(&self) -> usize {
        lock(&self.runs).len()
    }

    /// How many runs reached their end.
    pub(crate) fn finishes(&self) -> usize {
        lock(&self.runs)
            .iter()
            .filter(|run| run.finished.is_some())
            .count()
    }

    /// The labels of the runs, in the order they started.
    pub(crate) fn labels(&self) -> Vec<String> {
        lock(&self.runs)
            .iter()
            .map(|run| run.label.clone())
            .collect()
    }

    /// The time between each start and the next.
    pub(crate) fn gaps(&self) -> Vec<Duration> {
        let runs = lock(&self.runs);
        runs.windows(2)
            .map(|pair| pair[1].started.duration_since(pair[0].started))
            .collect()
    }

    /// The most runs that were in progress at one moment.
    pub(crate) fn most_running(&self) -> usize {
        self.most_running.load(Ordering::SeqCst)
    }

    /// Let `n` tasks waiting in [`Probe::released`] go on.
    pub(crate) fn release(&self, n: usize) {
        self.gate.add_permits(n);
    }

    /// Wait until the test calls [`Probe::release`].
    pub(crate) async fn released(&self) {
        self.gate
            .acquire()
            .await
            .expect("the gate is never closed")
            .forget();
    }

    /// Wait until the first run has started; only then await `start_second`, which starts
    /// another (by scheduling a task, say); then wait until that second run has started too.
    /// What `start_second` returned.
    pub(crate) async fn while_the_first_runs<F: IntoFuture>(&self, start_second: F) -> F::Output {
        self.until("the first run starts", |p| p.starts() == 1)
            .await;
        let started = start_second.await;
        self.until("the second run starts", |p| p.starts() == 2)
            .await;
        started
    }

    /// Wait until `done` holds for this probe; fail the test, naming `what`, if it never does.
    pub(crate) async fn until(&self, what: &str, done: impl Fn(&Probe) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "gave up waiting until {what}; runs so far: {:#?}",
                self.runs()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Running {
    /// Record that the body reached its end.
    pub(crate) fn finish(self) {
        lock(&self.probe.runs)[self.index].finished = Some(Instant::now());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.probe.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Lock `mutex`, even if a panicking task poisoned it: the data is a log, always consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
