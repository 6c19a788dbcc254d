//! What docket reports through the [`metrics`] facade. Install any recorder (the `prometheus`
//! feature's exporter, or your own) to collect them; without one they cost next to nothing.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `docket_tasks_added_total` | counter (tasks stored: added or replaced) | `task` |
//! | `docket_tasks_started_total` | counter | `task` |
//! | `docket_tasks_succeeded_total` | counter | `task` |
//! | `docket_tasks_failed_total` | counter (each failed attempt) | `task` |
//! | `docket_tasks_retried_total` | counter | `task` |
//! | `docket_tasks_dead_lettered_total` | counter | `task` |
//! | `docket_tasks_redelivered_total` | counter (runs of a task seen before) | `task` |
//! | `docket_task_duration_seconds` | histogram (one attempt) | `task` |
//! | `docket_task_punctuality_seconds` | histogram (start minus due) | `task` |
//! | `docket_queue_depth` | gauge (due tasks waiting) | `docket` |
//! | `docket_schedule_depth` | gauge (future tasks) | `docket` |
//!
//! Labels stay bounded: a task name only when a task of that name is registered in the binary
//! (`unknown` otherwise), never a key.
//!
//! # pydocket's names, for a mixed fleet
//!
//! A fleet that runs pydocket workers beside docket ones can show both on one dashboard: with
//! [`Names::AlsoPydocket`] (set with [`set_names`], or `DOCKET_METRICS_NAMES=pydocket` in the
//! environment of a docket opened with [`Docket::from_env`](crate::Docket::from_env)), docket
//! also reports under the names and labels pydocket's Prometheus endpoint uses. pydocket's
//! OpenTelemetry attributes `docket.name`, `docket.worker` and `docket.task` reach Prometheus as
//! `docket_name`, `docket_worker` and `docket_task`.
//!
//! Where both name a measurement alike (`docket_tasks_started_total`, ...), there is still one
//! series: docket's own, with pydocket's labels added beside `task` (or `docket`), so a sum over
//! the name counts each task once, and a dashboard of either kind finds it. pydocket's names
//! that docket lacks are reported beside:
//!
//! | pydocket's name | docket's measurement | labels added |
//! |---|---|---|
//! | `docket_tasks_added_total` | docket's own, one series (tasks stored, replacing ones included) | `docket_name`, `docket_task` |
//! | `docket_tasks_replaced_total` | tasks that replaced a waiting one | `docket_name`, `docket_task` |
//! | `docket_tasks_scheduled_total` | tasks stored: added or replaced | `docket_name`, `docket_task` |
//! | `docket_tasks_started_total`, `docket_tasks_redelivered_total`, `docket_tasks_succeeded_total`, `docket_tasks_failed_total`, `docket_tasks_retried_total`, `docket_tasks_dead_lettered_total` | docket's own, one series | `docket_name`, `docket_worker`, `docket_task` |
//! | `docket_tasks_completed_total` | attempts that ended, in any state | `docket_name`, `docket_worker`, `docket_task` |
//! | `docket_tasks_running` | gauge: attempts running now | `docket_name`, `docket_worker`, `docket_task` |
//! | `docket_task_duration_seconds`, `docket_task_punctuality_seconds` | docket's own, one series | `docket_name`, `docket_worker`, `docket_task` |
//! | `docket_queue_depth`, `docket_schedule_depth` | docket's own, one series | `docket_name` |
//!
//! The one difference in meaning: pydocket counts a task that replaced another in
//! `docket_tasks_replaced_total` and not in `docket_tasks_added_total`; docket counts it in both
//! (added means stored, here). pydocket's `cancelled`, `stricken`,
//! `superseded`, `perpetuated`, `strikes_in_effect`, `redis_disruptions` and `cache_size` have
//! no docket counterpart and are not reported. Off (the default), none of this is reported and
//! nothing is added to docket's series.
//!
//! ```
//! docket::metrics::set_names(docket::metrics::Names::AlsoPydocket);
//! assert_eq!(docket::metrics::names(), docket::metrics::Names::AlsoPydocket);
//! let names: docket::metrics::Names = "pydocket".parse()?;
//! assert_eq!(names, docket::metrics::Names::AlsoPydocket);
//! # docket::metrics::set_names(docket::metrics::Names::Docket);
//! # Ok::<(), docket::Error>(())
//! ```

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use ::metrics::Label;

use crate::sync::{FastMap, Locked};

use crate::registry::Registry;
use crate::schedule::Disposition;

/// Which names docket reports its metrics under. See the [module](self) docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Names {
    /// docket's own names and labels alone (the default; `DOCKET_METRICS_NAMES=docket`).
    #[default]
    Docket,
    /// docket's own, and pydocket's names and labels beside them
    /// (`DOCKET_METRICS_NAMES=pydocket`).
    AlsoPydocket,
}

impl std::str::FromStr for Names {
    type Err = crate::Error;

    /// `docket` or `pydocket`, as `DOCKET_METRICS_NAMES` takes them.
    fn from_str(value: &str) -> crate::Result<Names> {
        match value.trim() {
            "docket" => Ok(Names::Docket),
            "pydocket" => Ok(Names::AlsoPydocket),
            other => Err(crate::Error::Config(format!(
                "DOCKET_METRICS_NAMES is `{other}`; expected `docket` (docket's metric names \
                 alone) or `pydocket` (pydocket's beside them)"
            ))),
        }
    }
}

/// The names in use: [`Names::Docket`] until [`set_names`] (or `DOCKET_METRICS_NAMES`) says
/// otherwise.
static NAMES: AtomicU8 = AtomicU8::new(0);

/// Report metrics under `names` from now on, in the whole process (a metrics recorder is
/// process-wide too). Series reported before keep their labels.
pub fn set_names(names: Names) {
    let value = match names {
        Names::Docket => 0,
        Names::AlsoPydocket => 1,
    };
    NAMES.store(value, Ordering::Relaxed);
}

/// The names metrics are reported under now.
pub fn names() -> Names {
    match NAMES.load(Ordering::Relaxed) {
        0 => Names::Docket,
        _ => Names::AlsoPydocket,
    }
}

fn pydocket() -> bool {
    names() == Names::AlsoPydocket
}

/// Where a measurement was made: the docket, and the worker when a worker made it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    pub(crate) docket: &'a str,
    pub(crate) worker: Option<&'a str>,
}

impl Source<'_> {
    /// docket's `task` label, and pydocket's labels (`docket_name`, `docket_worker` when a
    /// worker measured, `docket_task`).
    fn labels(&self, task: &'static str) -> Vec<Label> {
        let mut labels = vec![
            Label::from_static_parts("task", task),
            Label::new("docket_name", self.docket.to_owned()),
        ];
        if let Some(worker) = self.worker {
            labels.push(Label::new("docket_worker", worker.to_owned()));
        }
        labels.push(Label::from_static_parts("docket_task", task));
        labels
    }
}

/// What docket's own series are registered with: what the `metrics` macros would give them
/// here.
static METADATA: ::metrics::Metadata<'static> =
    ::metrics::Metadata::new(module_path!(), ::metrics::Level::INFO, Some(module_path!()));

/// docket's key `name` with the `task` label `task`. A worker measures each task four times,
/// and a key built each time (as the `metrics` macros build one) allocated its label list and
/// hashed the whole key, recorder or not. Each key is made once (the names are docket's, the
/// tasks the registered ones and `unknown`) and kept for the process's life.
fn task_key(name: &'static str, task: &'static str) -> &'static ::metrics::Key {
    type Keys = FastMap<(&'static str, &'static str), &'static ::metrics::Key>;
    static KEYS: LazyLock<Mutex<Keys>> = LazyLock::new(Mutex::default);
    KEYS.locked().entry((name, task)).or_insert_with(|| {
        let labels = Box::leak(Box::new([Label::from_static_parts("task", task)]));
        Box::leak(Box::new(::metrics::Key::from_static_parts(name, labels)))
    })
}

/// docket's counter `name` for `task`, with pydocket's labels when they are on.
fn counter(name: &'static str, source: &Source<'_>, task: &'static str) -> ::metrics::Counter {
    match pydocket() {
        false => {
            let key = task_key(name, task);
            ::metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA))
        }
        true => ::metrics::counter!(name, source.labels(task)),
    }
}

/// docket's histogram `name` for `task`, with pydocket's labels when they are on.
fn histogram(name: &'static str, source: &Source<'_>, task: &'static str) -> ::metrics::Histogram {
    match pydocket() {
        false => {
            let key = task_key(name, task);
            ::metrics::with_recorder(|recorder| recorder.register_histogram(key, &METADATA))
        }
        true => ::metrics::histogram!(name, source.labels(task)),
    }
}

/// A pydocket-only measurement, under pydocket's labels alone.
fn pydocket_labels(source: &Source<'_>, task: &'static str) -> Vec<Label> {
    let mut labels = source.labels(task);
    labels.remove(0);
    labels
}

/// The `task` label for `name`: registered names only, so garbage in the queue cannot grow
/// the label set.
fn label(name: &str) -> &'static str {
    match Registry::global()
        .ok()
        .and_then(|registry| registry.get(name))
    {
        Some(registration) => registration.name(),
        None => "unknown",
    }
}

/// A batch of `task` was scheduled on the docket `docket`, with these dispositions.
pub(crate) fn added<'a>(
    docket: &str,
    task: &str,
    dispositions: impl Iterator<Item = &'a Disposition> + Clone,
) {
    let task = label(task);
    let count = |which: Disposition| dispositions.clone().filter(|d| **d == which).count() as u64;
    let (added, replaced) = (count(Disposition::Added), count(Disposition::Replaced));
    let source = Source {
        docket,
        worker: None,
    };
    counter("docket_tasks_added_total", &source, task).increment(added + replaced);
    if pydocket() {
        let labels = pydocket_labels(&source, task);
        ::metrics::counter!("docket_tasks_replaced_total", labels.clone()).increment(replaced);
        ::metrics::counter!("docket_tasks_scheduled_total", labels).increment(added + replaced);
    }
}

/// A registered task started; `task` is its registered name (the worker has looked it up).
pub(crate) fn started(
    source: &Source<'_>,
    task: &'static str,
    due: SystemTime,
    now: SystemTime,
    redelivered: bool,
) {
    counter("docket_tasks_started_total", source, task).increment(1);
    if redelivered {
        counter("docket_tasks_redelivered_total", source, task).increment(1);
    }
    let late = now.duration_since(due).unwrap_or(Duration::ZERO);
    histogram("docket_task_punctuality_seconds", source, task).record(late);
    if pydocket() {
        ::metrics::gauge!("docket_tasks_running", pydocket_labels(source, task)).increment(1.0);
    }
}

pub(crate) fn finished(source: &Source<'_>, task: &'static str, took: Duration, succeeded: bool) {
    histogram("docket_task_duration_seconds", source, task).record(took);
    match succeeded {
        true => counter("docket_tasks_succeeded_total", source, task).increment(1),
        false => counter("docket_tasks_failed_total", source, task).increment(1),
    }
    if pydocket() {
        let labels = pydocket_labels(source, task);
        ::metrics::gauge!("docket_tasks_running", labels.clone()).decrement(1.0);
        ::metrics::counter!("docket_tasks_completed_total", labels).increment(1);
    }
}

pub(crate) fn retried(source: &Source<'_>, task: &'static str) {
    counter("docket_tasks_retried_total", source, task).increment(1);
}

pub(crate) fn dead_lettered(source: &Source<'_>, task: &str) {
    counter("docket_tasks_dead_lettered_total", source, label(task)).increment(1);
}

pub(crate) fn depth(docket: &str, queued: usize, scheduled: usize) {
    if pydocket() {
        let labels = [
            Label::new("docket", docket.to_owned()),
            Label::new("docket_name", docket.to_owned()),
        ];
        ::metrics::gauge!("docket_queue_depth", labels.to_vec()).set(queued as f64);
        ::metrics::gauge!("docket_schedule_depth", labels.to_vec()).set(scheduled as f64);
        return;
    }
    ::metrics::gauge!("docket_queue_depth", "docket" => docket.to_owned()).set(queued as f64);
    ::metrics::gauge!("docket_schedule_depth", "docket" => docket.to_owned()).set(scheduled as f64);
}
