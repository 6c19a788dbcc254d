//! Where tasks report what they did, so a test can assert on effects.
//!
//! A task's arguments can only be data, so a test hands its task the probe's id (`probe.id()`),
//! and the task looks the probe up again with [`Probe::find`]. Every test makes its own probe, so
//! tests running side by side in one process never see each other's runs.
//!
//! ```ignore
//! /// Records one run, labelled `label`.
//! #[docket::task]
//! async fn note_run(probe: String, label: String) {
//!     Probe::find(&probe).start(label).finish();
//! }
//!
//! let probe = Probe::new();
//! NoteRun::schedule(probe.id(), "now".into()).on(&docket).await?;
//! tests::finish(&docket).await;
//! assert_eq!(probe.labels(), ["now"]);
//! ```

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;

use crate::PATIENCE;

/// Every probe of the process, by id.
static PROBES: LazyLock<Mutex<HashMap<String, Arc<Probe>>>> = LazyLock::new(Mutex::default);

/// What one test's tasks did.
#[derive(Debug)]
pub struct Probe {
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
pub struct Run {
    /// What the task said about this run, such as its arguments.
    pub label: String,
    /// When the body started.
    pub started: Instant,
    /// When the body reached its end; `None` if it has not, or never will.
    pub finished: Option<Instant>,
}

/// What a task saw of one attempt through its [`docket::Context`].
#[derive(Debug, Clone)]
pub struct Seen {
    /// [`docket::Context::key`].
    pub key: String,
    /// [`docket::Context::attempt`]: 1 for the first.
    pub attempt: u32,
    /// [`docket::Context::due`].
    pub due: SystemTime,
    /// The name of the docket [`docket::Context::docket`] gave.
    pub docket: String,
    /// When the task looked.
    pub at: SystemTime,
}

/// A run in progress. Dropping it without [`Running::finish`] (a timeout, a panic) ends the
/// run without marking it finished.
#[derive(Debug)]
pub struct Running {
    probe: Arc<Probe>,
    index: usize,
}

impl Probe {
    /// A new probe, findable by its id until the process exits.
    pub fn new() -> Arc<Probe> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Probe::named(&format!("probe-{}", NEXT.fetch_add(1, Ordering::Relaxed)))
    }

    /// A new probe with the id `id`, for tasks that cannot be handed an id: recurring tasks take
    /// no arguments, so they look up the probe named after their docket.
    pub fn named(id: &str) -> Arc<Probe> {
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
    pub fn find(id: &str) -> Arc<Probe> {
        Probe::lookup(id).unwrap_or_else(|| panic!("no probe `{id}`; pass a task `probe.id()`"))
    }

    /// The probe with this id, if there is one.
    pub fn lookup(id: &str) -> Option<Arc<Probe>> {
        lock(&PROBES).get(id).cloned()
    }

    /// The id to pass to a task.
    pub fn id(&self) -> String {
        self.id.clone()
    }

    /// Record that a task body started.
    pub fn start(self: &Arc<Self>, label: impl Into<String>) -> Running {
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
    pub fn runs(&self) -> Vec<Run> {
        lock(&self.runs).clone()
    }

    /// The one run so far; fails the test if there were none, or more than one.
    #[track_caller]
    pub fn only_run(&self) -> Run {
        let mut runs = self.runs();
        assert_eq!(runs.len(), 1, "{runs:#?}");
        runs.remove(0)
    }

    /// How many runs started.
    pub fn starts(&self) -> usize {
        lock(&self.runs).len()
    }

    /// How many runs reached their end.
    pub fn finishes(&self) -> usize {
        lock(&self.runs)
            .iter()
            .filter(|run| run.finished.is_some())
            .count()
    }

    /// The labels of the runs that finished, each once.
    pub fn finished_labels(&self) -> std::collections::BTreeSet<String> {
        lock(&self.runs)
            .iter()
            .filter(|run| run.finished.is_some())
            .map(|run| run.label.clone())
            .collect()
    }

    /// The labels of the runs, in the order they started.
    pub fn labels(&self) -> Vec<String> {
        lock(&self.runs)
            .iter()
            .map(|run| run.label.clone())
            .collect()
    }

    /// The labels of the runs, sorted: for runs whose order is not part of the test.
    pub fn sorted_labels(&self) -> Vec<String> {
        let mut labels = self.labels();
        labels.sort();
        labels
    }

    /// The time between each start and the next.
    pub fn gaps(&self) -> Vec<Duration> {
        let runs = lock(&self.runs);
        runs.windows(2)
            .map(|pair| pair[1].started.duration_since(pair[0].started))
            .collect()
    }

    /// The most runs that were in progress at one moment.
    pub fn most_running(&self) -> usize {
        self.most_running.load(Ordering::SeqCst)
    }

    /// The most runs labelled `label` that were in progress at one moment.
    pub fn most_running_of(&self, label: &str) -> usize {
        lock(&self.by_label).get(label).map_or(0, |(_, most)| *most)
    }

    /// How many runs are in progress now: started, and neither finished nor dropped.
    pub fn in_progress(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Record what a task sees of its attempt through its context.
    pub fn saw(&self, context: &docket::Context) {
        lock(&self.seen).push(Seen {
            key: context.key().to_owned(),
            attempt: context.attempt(),
            due: context.due(),
            docket: context.docket().name().to_owned(),
            at: SystemTime::now(),
        });
    }

    /// Everything tasks saw of their attempts, in the order they looked.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }

    /// Let `n` tasks waiting in [`Probe::released`] go on.
    pub fn release(&self, n: usize) {
        self.gate.add_permits(n);
    }

    /// Wait until the test calls [`Probe::release`].
    pub async fn released(&self) {
        self.gate
            .acquire()
            .await
            .expect("the gate is never closed")
            .forget();
    }

    /// Wait until the first run has started; only then await `start_second`, which starts
    /// another (by scheduling a task, say); then wait until that second run has started too.
    /// What `start_second` returned.
    pub async fn while_the_first_runs<F: IntoFuture>(&self, start_second: F) -> F::Output {
        self.until("the first run starts", |p| p.starts() == 1)
            .await;
        let started = start_second.await;
        self.until("the second run starts", |p| p.starts() == 2)
            .await;
        started
    }

    /// Wait until `done` holds for this probe; fail the test, naming `what` and listing the runs,
    /// if it does not within [`PATIENCE`].
    pub async fn until(&self, what: &str, done: impl Fn(&Probe) -> bool) {
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
    pub fn finish(self) {
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
