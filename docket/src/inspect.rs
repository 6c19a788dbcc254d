//! A point-in-time view of a docket: what waits, what runs, what died.

use crate::backend::Message;
use crate::policy::Attempts;
use std::time::{Duration, SystemTime};

/// Every task of a docket at one moment, from [`Docket::snapshot`](crate::Docket::snapshot).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Snapshot {
    /// When the snapshot was taken.
    pub taken: SystemTime,
    /// Tasks that are due and wait for a worker, oldest first.
    pub queued: Vec<TaskInfo>,
    /// Tasks due in the future, soonest first.
    pub scheduled: Vec<TaskInfo>,
    /// Tasks a worker is running now.
    pub running: Vec<TaskInfo>,
    /// Tasks set aside by a strike, until it is restored.
    pub held: Vec<TaskInfo>,
    /// How many dead letters are kept (see [`Docket::dead_letters`](crate::Docket::dead_letters)).
    pub dead: usize,
}

impl Snapshot {
    /// Queued, scheduled, running and held tasks together.
    pub fn len(&self) -> usize {
        self.queued.len() + self.scheduled.len() + self.running.len() + self.held.len()
    }

    /// Set each task's [`TaskInfo::attempts`] from the tasks this binary registers.
    pub(crate) fn fill_attempts(&mut self) {
        let Ok(registry) = crate::registry::Registry::global() else {
            return;
        };
        let sections = [
            &mut self.queued,
            &mut self.scheduled,
            &mut self.running,
            &mut self.held,
        ];
        for task in sections.into_iter().flatten() {
            task.attempts = registry
                .get(&task.task)
                .map(|registration| registration.policy().attempts());
        }
    }

    /// Whether no task waits or runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One task in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskInfo {
    /// The task's key.
    pub key: String,
    /// The registered task name.
    pub task: String,
    /// When the task is (or was) due.
    pub due: SystemTime,
    /// Which attempt this is, from 1.
    pub attempt: u32,
    /// The worker running it, for running tasks.
    pub worker: Option<String>,
    /// How many attempts it may take (`retries = "forever"`: unlimited), when this binary
    /// registers the task; `None` for a task it does not know (the `docket` binary knows none).
    pub attempts: Option<Attempts>,
}

impl TaskInfo {
    /// What a snapshot shows of `message`, run by `worker` when it runs.
    pub(crate) fn of(message: &Message, worker: Option<&str>) -> TaskInfo {
        TaskInfo {
            key: message.key.clone(),
            task: message.task.clone(),
            due: message.due,
            attempt: message.attempt,
            worker: worker.map(str::to_owned),
            attempts: None,
        }
    }
}

/// A task that will not run again on its own: it failed its last attempt, its arguments no longer
/// decode, or no worker knows its name. [`Docket::replay`](crate::Docket::replay) queues it again.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The task's key.
    pub key: String,
    /// The task name it was stored with.
    pub task: String,
    /// Its arguments as stored, JSON.
    pub args: String,
    /// The attempt that failed last.
    pub attempt: u32,
    /// Why it died.
    pub reason: String,
    /// When it died.
    pub died: SystemTime,
    /// The failed attempts, oldest first (the last one's error is also the `reason`): the last
    /// [`FailedAttempt::KEPT`] of them; the attempt numbers show any earlier ones dropped.
    pub history: Vec<FailedAttempt>,
}

/// One failed attempt in a task's history.
///
/// A task carries its history from retry to retry, so both are bounded: an error text is kept up
/// to [`FailedAttempt::MAX_ERROR_BYTES`], and a history keeps the last [`FailedAttempt::KEPT`]
/// attempts. A chatty error cannot push a task past the docket's payload limit.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailedAttempt {
    /// Which attempt it was, from 1.
    pub attempt: u32,
    /// Why it failed; a longer text is cut to [`FailedAttempt::MAX_ERROR_BYTES`], ending in `…`.
    pub error: String,
    /// When it failed.
    pub at: SystemTime,
}

impl FailedAttempt {
    /// The most bytes of an error text kept, the `…` marking a cut included.
    pub const MAX_ERROR_BYTES: usize = 2048;

    /// The most failed attempts a history keeps: the latest ones.
    pub const KEPT: usize = 20;

    /// A failed attempt, its error text cut to [`FailedAttempt::MAX_ERROR_BYTES`].
    pub(crate) fn new(attempt: u32, error: String, at: SystemTime) -> Self {
        FailedAttempt {
            attempt,
            error: cut(error, FailedAttempt::MAX_ERROR_BYTES),
            at,
        }
    }

    /// Add `failed` to `history`, dropping the oldest entries beyond [`FailedAttempt::KEPT`]:
    /// where a history grows, instead of `history.push(failed)`.
    pub(crate) fn record(history: &mut Vec<FailedAttempt>, failed: FailedAttempt) {
        history.push(failed);
        let excess = history.len().saturating_sub(FailedAttempt::KEPT);
        history.drain(..excess);
    }
}

/// `text` cut on a character boundary so that, with a closing `…`, it fits in `max` bytes.
fn cut(mut text: String, max: usize) -> String {
    const MARK: &str = "…";
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(MARK);
    text
}

/// A worker of a docket, from [`Docket::workers`](crate::Docket::workers).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// The worker's name (`host.pid.random`).
    pub name: String,
    /// How many tasks it is running.
    pub running: usize,
    /// How long since the worker last claimed or renewed a task.
    pub idle: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_error_texts_are_cut_on_a_character_boundary() {
        let now = SystemTime::now();
        let short = FailedAttempt::new(1, "disk full".into(), now);
        assert_eq!(short.error, "disk full");
        let exact = "e".repeat(FailedAttempt::MAX_ERROR_BYTES);
        assert_eq!(FailedAttempt::new(1, exact.clone(), now).error, exact);
        for filler in ["e", "é", "€", "𝄞"] {
            let long = filler.repeat(10_000);
            let kept = FailedAttempt::new(1, long.clone(), now).error;
            assert!(kept.len() <= FailedAttempt::MAX_ERROR_BYTES, "{filler}");
            assert!(kept.len() > FailedAttempt::MAX_ERROR_BYTES - 8, "{filler}");
            assert!(kept.ends_with('…'));
            assert!(long.starts_with(kept.trim_end_matches('…')));
        }
    }

    #[test]
    fn a_history_keeps_the_latest_attempts() {
        let mut history = Vec::new();
        for attempt in 1..=100 {
            let failed = FailedAttempt::new(attempt, "x".repeat(100_000), SystemTime::now());
            FailedAttempt::record(&mut history, failed);
        }
        assert_eq!(history.len(), FailedAttempt::KEPT);
        let attempts: Vec<u32> = history.iter().map(|failed| failed.attempt).collect();
        assert_eq!(attempts, (81..=100).collect::<Vec<_>>());
        let bytes: usize = history.iter().map(|failed| failed.error.len()).sum();
        assert!(bytes <= FailedAttempt::KEPT * FailedAttempt::MAX_ERROR_BYTES);
    }
}
