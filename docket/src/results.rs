//! Results and state of tasks that keep them (`#[docket::task(result)]`): what a run returned,
//! how far it got, and every change of state, for a time-to-live after the task ends.
//!
//! Only tasks that opt in are recorded; the others cost nothing here.

use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::backend::{Backend, Message};
use crate::error::{Chain, Error, Result};
use crate::handle::Docket;
use crate::worker::execution::Context;

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Status {
    /// Waiting for a future due time (its first run, or a retry).
    Scheduled,
    /// Due, waiting for a worker (or for a concurrency or rate limit).
    Queued,
    /// A worker is running it.
    Running,
    /// It succeeded; the result is kept.
    Completed,
    /// It failed its last attempt.
    Failed,
    /// It was cancelled.
    Cancelled,
}

impl Status {
    /// Whether the task has ended: completed, failed or cancelled.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }
}

/// How far a running task has come, as it reported with [`Context::progress`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Progress {
    /// Units done.
    pub current: u64,
    /// Units in all.
    pub total: u64,
    /// What it is doing.
    pub message: String,
}

/// The recorded state of one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskRecord {
    /// The task's key.
    pub key: String,
    /// The registered task name.
    pub task: String,
    /// Where it is in its life.
    pub status: Status,
    /// The attempt this state belongs to, from 1.
    pub attempt: u32,
    /// The latest progress report of the running attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// The result as JSON, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The latest error: why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When this state was recorded, in milliseconds since the Unix epoch.
    pub updated_ms: u64,
    /// The states before this one, oldest first, as far as the record knows them (see
    /// [`TaskRecord::history`]). Kept last in the encoding: `cancel.lua` appends to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
}

/// One state a task was in, and since when: an entry of [`TaskRecord::history`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Change {
    /// The state.
    pub status: Status,
    /// The attempt it belongs to, from 1.
    pub attempt: u32,
    /// When the task entered it, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl Change {
    /// The state `record` holds now.
    pub(crate) fn of(record: &TaskRecord) -> Change {
        Change {
            status: record.status,
            attempt: record.attempt,
            at_ms: record.updated_ms,
        }
    }

    /// What the message of a task about to run tells of its earlier states, for a record the
    /// worker writes without reading the one before: each failed attempt it keeps (a retry was
    /// scheduled then), and when the current attempt fell due (queued from then on). The
    /// schedule's own time and earlier attempts' starts are not in the message, so not here.
    pub(crate) fn before_run(message: &Message) -> Vec<Change> {
        let at_ms = crate::time::millis;
        let mut changes: Vec<Change> = message
            .history
            .iter()
            .map(|failed| Change {
                status: Status::Scheduled,
                attempt: failed.attempt.saturating_add(1),
                at_ms: at_ms(failed.at),
            })
            .collect();
        changes.push(Change {
            status: Status::Queued,
            attempt: message.attempt,
            at_ms: at_ms(message.due),
        });
        changes
    }
}

impl TaskRecord {
    pub(crate) fn new(key: &str, task: &str, status: Status, attempt: u32) -> Self {
        TaskRecord {
            key: key.to_owned(),
            task: task.to_owned(),
            status,
            attempt,
            progress: None,
            result: None,
            error: None,
            updated_ms: crate::time::millis(SystemTime::now()),
            changes: Vec::new(),
        }
    }

    /// Every state the record knows the task was in, oldest first, ending with the current
    /// one ([`TaskRecord::status`] since [`TaskRecord::updated_ms`]).
    ///
    /// Each writer adds what it knows without reading the record before it (which would cost a
    /// Redis command a change): the schedule writes the first state; the worker, when the
    /// current attempt fell due, the retries before it (from its failed attempts) and when it
    /// started; a cancel, the state it ended. So the history of a task that was retried starts
    /// at its first retry, and a report of progress does not move the start of its run.
    ///
    /// ```
    /// # async fn demo(docket: docket::Docket) -> docket::Result<()> {
    /// if let Some(record) = docket.status("scan-7").await? {
    ///     for change in record.history() {
    ///         println!("{:?} (attempt {}) at {} ms", change.status, change.attempt, change.at_ms);
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn history(&self) -> Vec<Change> {
        let mut history = self.changes.clone();
        let current = Change::of(self);
        // A progress report rewrites the running state; the run started at the earlier entry.
        match history.last() {
            Some(last) if (last.status, last.attempt) == (current.status, current.attempt) => {}
            _ => history.push(current),
        }
        history
    }

    /// A new task's first record: scheduled when it is due after `now`, else queued. Written
    /// by the backend as it stores the task.
    pub(crate) fn first(message: &Message, now: SystemTime) -> Self {
        let status = if message.due > now {
            Status::Scheduled
        } else {
            Status::Queued
        };
        let mut record = TaskRecord::new(&message.key, &message.task, status, 1);
        record.updated_ms = crate::time::millis(now);
        record
    }

    /// How long a first record is kept: `keep` after the task is due.
    pub(crate) fn first_ttl(message: &Message, now: SystemTime, keep: Duration) -> Duration {
        keep.saturating_add(message.due.duration_since(now).unwrap_or_default())
    }

    pub(crate) fn encode(&self) -> String {
        serde_json::to_string(self).expect("a task state always encodes")
    }

    pub(crate) fn decode(json: &[u8]) -> std::result::Result<Self, serde_json::Error> {
        serde_json::from_slice(json)
    }
}

/// A live feed of one task's state changes, from [`Docket::watch`].
#[derive(Debug)]
pub struct Watch {
    current: Option<TaskRecord>,
    changes: mpsc::UnboundedReceiver<TaskRecord>,
}

impl Watch {
    /// The next state: first the one recorded when the watch began (if any), then each change
    /// as it happens. `None` once the feed has ended (the connection was lost); watch again to
    /// go on.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: changes are buffered as they arrive, so dropping its future
    /// (as a losing `tokio::select!` branch does) loses none of them; the next call returns the
    /// state the dropped one would have.
    pub async fn next(&mut self) -> Option<TaskRecord> {
        if let Some(current) = self.current.take() {
            return Some(current);
        }
        self.changes.recv().await
    }
}

impl Docket {
    /// The recorded state of the task with this key, for tasks that keep results; `None` when
    /// nothing is kept for it.
    ///
    /// # Errors
    ///
    /// On a Redis docket, [`Error::Unavailable`] when Redis cannot be reached or does not answer
    /// in time, and [`Error::Backend`] when it refuses the command or the stored record does not
    /// decode. Other dockets never fail here.
    pub async fn status(&self, key: &str) -> Result<Option<TaskRecord>> {
        self.backend().status(key).await
    }

    /// Follow the task with this key: its current state, then every change (scheduled, queued,
    /// running, progress, completed, failed, cancelled), across processes. Only tasks that keep
    /// results record their state: for any other key the watch starts empty and stays silent.
    ///
    /// # Errors
    ///
    /// On a Redis docket, [`Error::Unavailable`] when subscribing or reading the current state
    /// fails to reach Redis or gets no answer in time, and [`Error::Backend`] when Redis refuses
    /// either or the stored record does not decode. Other dockets never fail here.
    pub async fn watch(&self, key: &str) -> Result<Watch> {
        let changes = self.backend().watch(key).await?;
        let current = self.backend().status(key).await?;
        Ok(Watch { current, changes })
    }

    /// Wait until the task with this key ends, and return its result decoded as `R`; for tasks
    /// that keep results (`#[docket::task(result)]`).
    ///
    /// # Errors
    ///
    /// - [`Error::TaskFailed`], with its last error, when the task ended without success (it
    ///   became a dead letter);
    /// - [`Error::TaskCancelled`] when it was cancelled;
    /// - [`Error::ResultDecode`] when it succeeded but its result does not decode as `R`;
    /// - [`Error::NoResult`] when nothing is kept for the key as the wait starts (or resumes,
    ///   after a lost connection): the task keeps no results, they expired, or no task with this
    ///   key was scheduled;
    /// - on a Redis docket, [`Error::Unavailable`] or [`Error::Backend`] when following the task
    ///   fails, as for [`Docket::watch`].
    ///
    /// # Cancel safety
    ///
    /// This method only reads: dropping its future changes nothing about the task, and calling
    /// it again waits anew.
    ///
    /// It waits until the task ends, by design with no time limit: for a task scheduled far
    /// ahead, held by a strike, or still retrying, that may be a very long time, and for one
    /// that never ends, for ever. Bound the wait with `tokio::time::timeout`; when it expires,
    /// the task goes on:
    ///
    /// ```no_run
    /// # async fn demo(docket: docket::Docket) -> docket::Result<()> {
    /// use std::time::Duration;
    ///
    /// let wait = docket.result::<String>("transcode-7-opus");
    /// match tokio::time::timeout(Duration::from_secs(30), wait).await {
    ///     Ok(result) => println!("ended with {}", result?),
    ///     Err(_elapsed) => println!("not done after 30 s; it goes on running"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn result<R: DeserializeOwned>(&self, key: &str) -> Result<R> {
        loop {
            let mut watch = self.watch(key).await?;
            if watch.current.is_none() {
                return Err(Error::NoResult {
                    key: key.to_owned(),
                });
            }
            while let Some(state) = watch.next().await {
                if state.status.is_final() {
                    return outcome(state);
                }
            }
            // The feed ended (a dropped connection): look again on a new one.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn outcome<R: DeserializeOwned>(state: TaskRecord) -> Result<R> {
    match state.status {
        Status::Completed => {
            let json = state.result.as_deref().unwrap_or("null");
            serde_json::from_str(json).map_err(|source| Error::ResultDecode {
                key: state.key,
                type_name: std::any::type_name::<R>(),
                source,
            })
        }
        Status::Cancelled => Err(Error::TaskCancelled { key: state.key }),
        _ => Err(Error::TaskFailed {
            key: state.key,
            message: state.error.unwrap_or_default(),
        }),
    }
}

/// Record a state, logging instead of failing: the task itself is not affected.
pub(crate) async fn record(docket: &Docket, state: &TaskRecord, ttl: Duration) {
    if let Err(error) = docket.backend().record(state, ttl).await {
        tracing::warn!(key = %state.key, status = ?state.status, error = %Chain(&error), "could not record the task's state");
    }
}

/// A progress report of a running task that keeps results.
pub(crate) async fn record_progress(
    context: &Context,
    ttl: Duration,
    current: u64,
    total: u64,
    message: String,
) {
    let mut state = TaskRecord::new(
        context.key(),
        context.task(),
        Status::Running,
        context.attempt(),
    );
    state.changes = context.changes();
    state.progress = Some(Progress {
        current,
        total,
        message,
    });
    record(context.docket(), &state, ttl).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cancel.lua` rewrites a kept record's status and time in place, by pattern: the
    /// encoding must keep writing those two fields this way, and nowhere else unescaped.
    #[test]
    fn a_record_encodes_status_and_time_where_cancel_lua_rewrites_them() {
        let mut record = TaskRecord::new("k \"status\":\"x\"", "scan", Status::Running, 2);
        record.result = Some(r#"{"status":"completed","updated_ms":1}"#.to_owned());
        record.updated_ms = 1_764_480_000_000;
        let json = record.encode();
        assert_eq!(json.matches(r#""status":"running""#).count(), 1);
        assert_eq!(json.matches(r#""updated_ms":1764480000000"#).count(), 1);
        // What cancel.lua does: the first match of each pattern, nothing else.
        let cancelled = json
            .replacen(r#""status":"running""#, r#""status":"cancelled""#, 1)
            .replacen(
                r#""updated_ms":1764480000000"#,
                r#""updated_ms":1764480000001"#,
                1,
            );
        let decoded = TaskRecord::decode(cancelled.as_bytes()).unwrap();
        assert_eq!(decoded.status, Status::Cancelled);
        assert_eq!(decoded.updated_ms, 1_764_480_000_001);
        assert_eq!((decoded.key, decoded.result), (record.key, record.result));
    }

    /// `cancel.lua` appends the state it ends to `changes`, by position: the field must come
    /// last, after the top-level `attempt` and `updated_ms` it copies.
    #[test]
    fn a_records_changes_come_last_where_cancel_lua_appends_to_them() {
        let mut record = TaskRecord::new("k", "scan", Status::Running, 3);
        record.error = Some(r#"x"}]}"#.to_owned());
        assert!(
            !record.encode().ends_with("}]}"),
            "no changes, no `}}]}}` at the end"
        );
        record.changes = vec![Change {
            status: Status::Queued,
            attempt: 3,
            at_ms: 5,
        }];
        record.updated_ms = 9;
        let json = record.encode();
        assert!(json.ends_with(r#","changes":[{"status":"queued","attempt":3,"at_ms":5}]}"#));
        assert!(json.find(r#""attempt":3"#) < json.find(r#""changes""#));
        // What cancel.lua does.
        let appended = format!(
            "{},{}]}}",
            &json[..json.len() - 2],
            r#"{"status":"running","attempt":3,"at_ms":9}"#
        )
        .replacen(r#""status":"running""#, r#""status":"cancelled""#, 1)
        .replacen(r#""updated_ms":9"#, r#""updated_ms":12"#, 1);
        let cancelled = TaskRecord::decode(appended.as_bytes()).unwrap();
        let history: Vec<(Status, u64)> = cancelled
            .history()
            .iter()
            .map(|change| (change.status, change.at_ms))
            .collect();
        assert_eq!(
            history,
            [
                (Status::Queued, 5),
                (Status::Running, 9),
                (Status::Cancelled, 12)
            ]
        );
    }

    #[test]
    fn a_progress_report_does_not_move_the_start_of_the_run() {
        let mut record = TaskRecord::new("k", "scan", Status::Running, 1);
        record.changes = vec![Change {
            status: Status::Running,
            attempt: 1,
            at_ms: 5,
        }];
        record.updated_ms = 50;
        assert_eq!(record.history(), record.changes);
    }
}
