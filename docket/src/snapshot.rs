//! A point-in-time view of a docket: what waits, what runs, what died.

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
    /// Every failed attempt, oldest first (the last one's error is also the `reason`).
    pub history: Vec<FailedAttempt>,
}

/// One failed attempt in a task's history.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailedAttempt {
    /// Which attempt it was, from 1.
    pub attempt: u32,
    /// Why it failed.
    pub error: String,
    /// When it failed.
    pub at: SystemTime,
}

impl FailedAttempt {
    pub(crate) fn new(attempt: u32, error: String, at: SystemTime) -> Self {
        FailedAttempt { attempt, error, at }
    }
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
