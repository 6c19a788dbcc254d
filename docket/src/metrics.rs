//! What docket reports through the [`metrics`] facade. Install any recorder (the `prometheus`
//! feature's exporter, or your own) to collect them; without one they cost next to nothing.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `docket_tasks_added_total` | counter | `task` |
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

use std::time::{Duration, SystemTime};

use crate::registry::Registry;

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

pub(crate) fn added(task: &str, count: u64) {
    ::metrics::counter!("docket_tasks_added_total", "task" => label(task)).increment(count);
}

/// A registered task started; `task` is its registered name (the worker has looked it up).
pub(crate) fn started(task: &'static str, due: SystemTime, now: SystemTime, redelivered: bool) {
    ::metrics::counter!("docket_tasks_started_total", "task" => task).increment(1);
    if redelivered {
        ::metrics::counter!("docket_tasks_redelivered_total", "task" => task).increment(1);
    }
    let late = now.duration_since(due).unwrap_or(Duration::ZERO);
    ::metrics::histogram!("docket_task_punctuality_seconds", "task" => task).record(late);
}

pub(crate) fn finished(task: &'static str, took: Duration, succeeded: bool) {
    ::metrics::histogram!("docket_task_duration_seconds", "task" => task).record(took);
    match succeeded {
        true => ::metrics::counter!("docket_tasks_succeeded_total", "task" => task).increment(1),
        false => ::metrics::counter!("docket_tasks_failed_total", "task" => task).increment(1),
    }
}

pub(crate) fn retried(task: &'static str) {
    ::metrics::counter!("docket_tasks_retried_total", "task" => task).increment(1);
}

pub(crate) fn dead_lettered(task: &str) {
    ::metrics::counter!("docket_tasks_dead_lettered_total", "task" => label(task)).increment(1);
}

pub(crate) fn depth(docket: &str, queued: usize, scheduled: usize) {
    ::metrics::gauge!("docket_queue_depth", "docket" => docket.to_owned()).set(queued as f64);
    ::metrics::gauge!("docket_schedule_depth", "docket" => docket.to_owned()).set(scheduled as f64);
}
