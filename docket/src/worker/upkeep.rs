//! A worker's background chores beside its tasks: acknowledging in batches, renewing the
//! deliveries it holds, reporting the queue depth, and retrying a backend call while the
//! backend is unreachable.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, Delivery};
use crate::error::{Chain, Result};
use crate::handle::Docket;
use crate::metrics;

/// How long a settlement is tried again while the backend is unreachable.
const SETTLE_PATIENCE: Duration = Duration::from_secs(60);

/// The most acknowledgements settled in one backend call.
const ACK_BATCH: usize = 1024;

/// How soon a failed renewal is tried again (not a whole renewal period later: two missed
/// periods would let another worker take the deliveries over).
const RENEW_RETRY: Duration = Duration::from_secs(1);

/// When a worker's deliveries were last renewed. Gone unrenewed for more than two renewal
/// periods (the process was paused, or the backend was away), they may have been taken over
/// by another worker, and run there: what the worker read ahead across such a lapse is given
/// back rather than started late, after its copy ran.
#[derive(Debug)]
pub(super) struct Renewals {
    every: Duration,
    start: Instant,
    /// Milliseconds from `start` to the last renewal.
    last: AtomicU64,
    /// Milliseconds from `start` to the last renewal that ended a lapse (0: none yet).
    lapse_ended: AtomicU64,
}

impl Renewals {
    pub(super) fn new(every: Duration) -> Renewals {
        Renewals {
            every,
            start: Instant::now(),
            last: AtomicU64::new(0),
            lapse_ended: AtomicU64::new(0),
        }
    }

    fn renewed(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last.swap(now, Ordering::Relaxed);
        if Duration::from_millis(now.saturating_sub(last)) > self.every * 2 {
            self.lapse_ended.store(now, Ordering::Relaxed);
        }
    }

    /// Deliveries claimed before this instant may have been taken over during a lapse of the
    /// renewals: now, while one lasts; else when the last one ended. `None` before any lapse.
    pub(super) fn suspect_before(&self) -> Option<Instant> {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        if self.start.elapsed().saturating_sub(last) > self.every * 2 {
            return Some(Instant::now());
        }
        match self.lapse_ended.load(Ordering::Relaxed) {
            0 => None,
            ended => Some(self.start + Duration::from_millis(ended)),
        }
    }
}

/// Acknowledge successful deliveries in batches: as many as have finished since the last call.
pub(super) async fn acknowledge(
    docket: Docket,
    worker: String,
    mut acked: mpsc::UnboundedReceiver<Delivery>,
) {
    let backend = docket.backend();
    let mut batch = Vec::with_capacity(ACK_BATCH);
    while acked.recv_many(&mut batch, ACK_BATCH).await > 0 {
        if let Err(error) = retry_while_unavailable(|| backend.complete(&batch)).await {
            tracing::error!(count = batch.len(), error = %Chain(&error), "could not acknowledge tasks; they will run again");
            for delivery in &batch {
                backend.abandon(&worker, delivery);
            }
        }
        batch.clear();
    }
}

/// Settle with the backend, trying again while it is unreachable (a restart, a dropped
/// connection) for up to [`SETTLE_PATIENCE`]. Settling twice is harmless, so a try whose answer
/// was lost may be repeated. A task that cannot be settled stays with this worker and is
/// redelivered after the redelivery timeout: late, never lost.
pub(super) async fn retry_while_unavailable<T, F: Future<Output = Result<T>>>(
    mut settle: impl FnMut() -> F,
) -> Result<T> {
    let give_up = tokio::time::Instant::now() + SETTLE_PATIENCE;
    let mut pause = Duration::from_millis(50);
    loop {
        match settle().await {
            Err(error) if error.is_unavailable() && tokio::time::Instant::now() < give_up => {
                tracing::debug!(error = %Chain(&error), ?pause, "settling failed; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            result => return result,
        }
    }
}

/// Wait for a helper task of the worker. Its panic is the worker's; its cancellation means the
/// runtime is shutting down, and there is nothing left to wait for.
pub(super) async fn joined(helper: tokio::task::JoinHandle<()>) {
    if let Err(error) = helper.await
        && error.is_panic()
    {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// Set the depth gauges every `every` until the worker finishes.
pub(super) async fn report_depth(docket: Docket, every: Duration, finished: CancellationToken) {
    loop {
        match docket.backend().depth().await {
            Ok((queued, scheduled)) => metrics::depth(docket.name(), queued, scheduled),
            Err(error) => tracing::debug!(error = %Chain(&error), "could not read the queue depth"),
        }
        tokio::select! {
            () = finished.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Keep the deliveries this worker holds (running, or being settled) its own, so no other
/// worker takes them over; the backend sends nothing when it holds none. A failed renewal is
/// tried again soon. Each successful renewal is noted in `renewals`, for the worker's loop to
/// tell a lapse.
pub(super) async fn renew(
    docket: Docket,
    worker: String,
    finished: CancellationToken,
    renewals: Arc<Renewals>,
) {
    let backend = docket.backend();
    let every = renewals.every;
    let mut pause = every;
    loop {
        tokio::select! {
            () = finished.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = match backend.renew(&worker).await {
            Ok(()) => {
                renewals.renewed();
                every
            }
            Err(error) => {
                tracing::warn!(%worker, error = %Chain(&error), "could not renew running tasks; trying again");
                RENEW_RETRY.min(every)
            }
        };
    }
}
