//! Where tasks report what they did, so a test can assert on effects.
//!
//! A task's arguments can only be data, so a test hands its task the probe's id (`probe.id()`),
//! and the task looks the probe up again with [`Probe::find`]. Every test makes its own probe, so
//! tests running side by side in one process never see each other's runs.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

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
    /// Per label: runs in progress now, and the most ever in progress at once.
    by_label: Mutex<HashMap<String, (usize, usize)>>,
    /// What tasks saw of their own execution (see [`Probe::saw`]).
    seen: Mutex<Vec<Seen>>,
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

/// What a task saw of one attempt through its [`docket::Context`].
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) key: String,
    pub(crate) attempt: u32,
    pub(crate) due: SystemTime,
    /// The name of the docket [`docket::Context::docket`] gave.
    pub(crate) docket: String,
    /// When the task looked.
    pub(crate) at: SystemTime,
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
        Probe::named(&format!("probe-{}", NEXT.fetch_add(1, Ordering::Relaxed)))
    }

    /// A new probe with the id `id`, for tasks that cannot be handed an id: recurring tasks take
    /// no arguments, so they look up the probe named after their docket.
    pub(crate) fn named(id: &str) -> Arc<Probe> {
        let probe = Arc::new(Probe {
            id: id.to_owned(),
            runs: Mutex::default(),
            running: AtomicUsize::new(0),
            most_running: AtomicUsize::new(0),
            by_label: Mutex::default(),
            seen: Mutex::default(),
            gate: Semaphore::new(0),
        });
        lock(&PROBES).insert(id.to_owned(), probe.clone());
        probe
    }

    /// The probe with this id: what a task calls with the id it was given.
    pub(crate) fn find(id: &str) -> Arc<Probe> {
        Probe::lookup(id).unwrap_or_else(|| panic!("no probe `{id}`; pass a task `probe.id()`"))
    }

    /// The probe with this id, if there is one.
    pub(crate) fn lookup(id: &str) -> Option<Arc<Probe>> {
        lock(&PROBES).get(id).cloned()
    }

    /// The id to pass to a task.
    pub(crate) fn id(&self) -> String {
        self.id.clone()
    }

    /// Record that a task body started.
    pub(crate) fn start(self: &Arc<Self>, label: impl Into<String>) -> Running {
        let label = label.into();
        {
            let mut by_label = lock(&self.by_label);
            let (now, most) = by_label.entry(label.clone()).or_default();
            *now += 1;
            *most = (*most).max(*now);
        }
        let index = {
            let mut runs = lock(&self.runs);
            runs.push(Run {
                label,
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

    /// The most runs labelled `label` that were in progress at one moment.
    pub(crate) fn most_running_of(&self, label: &str) -> usize {
        lock(&self.by_label).get(label).map_or(0, |(_, most)| *most)
    }

    /// How many runs are in progress now: started, and neither finished nor dropped.
    pub(crate) fn in_progress(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Record what a task sees of its attempt through its context.
    pub(crate) fn saw(&self, context: &docket::Context) {
        lock(&self.seen).push(Seen {
            key: context.key().to_owned(),
            attempt: context.attempt(),
            due: context.due(),
            docket: context.docket().name().to_owned(),
            at: SystemTime::now(),
        });
    }

    /// Everything tasks saw of their attempts, in the order they looked.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
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
        let label = lock(&self.probe.runs)[self.index].label.clone();
        if let Some((now, _)) = lock(&self.probe.by_label).get_mut(&label) {
            *now -= 1;
        }
        self.probe.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Lock `mutex`, even if a panicking task poisoned it: the data is a log, always consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
