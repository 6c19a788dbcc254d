//! A worker's runs by task name over the last minutes (`crate::stats`): counted in process as
//! each attempt ends, published for the dashboard at most once per publication period, and
//! only when they changed.
//!
//! On Redis a publication is one `HSET` of the worker's summary into `{name}:stats`: nothing
//! per task, at most one command a period while the worker's counts change, none while it is
//! idle, and none at all unless a dashboard shows the runs (it asks for them for ten minutes at
//! a time: `Signal::StatsWanted`). On the memory backend it is a write under a lock, made at
//! once, always.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::Chain;
use crate::handle::Docket;
use crate::stats::{Window, minute_of};
use crate::sync::Locked;

/// One worker's window, a wake-up for its publisher, and until when a dashboard wants it.
#[derive(Debug, Default)]
pub(super) struct Recorder {
    window: Mutex<Window>,
    changed: Notify,
    wanted_until: Mutex<Option<tokio::time::Instant>>,
}

impl Recorder {
    /// Count a run of `task` that ended at `now` after `took`.
    pub(super) fn record(&self, task: &str, now: SystemTime, took: Duration, failed: bool) {
        self.window
            .locked()
            .record(task, minute_of(now), took, failed);
        // A permit is kept when the publisher is not waiting: it publishes when it next looks.
        self.changed.notify_one();
    }

    /// A dashboard wants the runs for `wanted` from now: publish them at once, then as they
    /// change.
    pub(super) fn want(&self, wanted: Duration) {
        *self.wanted_until.locked() = Some(tokio::time::Instant::now() + wanted);
        self.changed.notify_one();
    }

    /// Whether a dashboard wants the runs now.
    fn wanted(&self) -> bool {
        self.wanted_until
            .locked()
            .is_some_and(|until| tokio::time::Instant::now() < until)
    }

    fn summary(&self) -> Option<Window> {
        let window = self.window.locked();
        (!window.is_empty()).then(|| window.clone())
    }
}

/// Publish `recorder`'s window each time it changed, at most once per the backend's period,
/// until `finished` fires; then once more if it changed since.
pub(super) async fn publish(
    docket: Docket,
    worker: String,
    recorder: std::sync::Arc<Recorder>,
    finished: CancellationToken,
) {
    let backend = docket.backend();
    let every = backend.stats_every();
    loop {
        tokio::select! {
            () = recorder.changed.notified() => {}
            () = finished.cancelled() => break,
        }
        // Where publishing costs a command, only while a dashboard wants the runs.
        if !every.is_zero() && !recorder.wanted() {
            continue;
        }
        publish_once(&docket, &worker, &recorder).await;
        if !every.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = finished.cancelled() => break,
            }
        }
    }
    // The runs since the last publication, if any: a permit is left when they changed.
    let last = recorder.changed.notified();
    tokio::pin!(last);
    if last.as_mut().enable() && (every.is_zero() || recorder.wanted()) {
        publish_once(&docket, &worker, &recorder).await;
    }
}

async fn publish_once(docket: &Docket, worker: &str, recorder: &Recorder) {
    let Some(summary) = recorder.summary() else {
        return;
    };
    if let Err(error) = docket.backend().publish_stats(worker, &summary).await {
        // The next change publishes again; the dashboard's table lags meanwhile.
        tracing::debug!(worker, error = %Chain(&error), "could not publish the worker's run counts");
    }
}
