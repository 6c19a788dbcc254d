//! The [`Worker`]: claims due tasks, runs them under a concurrency limit, settles each one.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::{AnyBackend, Backend, Burial, Delivery};
use crate::error::{Chain, Error, Result};
use crate::execution::{AttemptError, run_attempt};
use crate::handle::Docket;
use crate::registry::Registry;

/// How often `run_until_finished` looks again whether work remains while tasks run elsewhere.
const FINISH_POLL: Duration = Duration::from_millis(25);

/// The most acknowledgements settled in one backend call.
const ACK_BATCH: usize = 1024;

/// How long a settlement is tried again while the backend is unreachable.
const SETTLE_PATIENCE: Duration = Duration::from_secs(60);

/// How long to wait before claiming again after the backend failed.
const BACKEND_RETRY: Duration = Duration::from_millis(500);

/// Runs the tasks of a docket.
///
/// A worker knows every `#[docket::task]` linked into the binary. It takes due tasks as slots
/// free up, never running more than its [concurrency](Worker::concurrency) at once, and on
/// shutdown stops taking tasks and lets the running ones finish.
///
/// ```no_run
/// # async fn demo() -> docket::Result<()> {
/// let docket = docket::Docket::from_env().await?;
/// docket::Worker::new(&docket).concurrency(10).run().await?; // until ctrl-c or SIGTERM
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Worker {
    docket: Docket,
    concurrency: usize,
    id: String,
}

impl Worker {
    /// A worker for `docket`, with the docket's default concurrency
    /// (`DOCKET_WORKER_CONCURRENCY`, or 10).
    pub fn new(docket: &Docket) -> Worker {
        Worker {
            docket: docket.clone(),
            concurrency: docket.worker_concurrency(),
            id: worker_id(),
        }
    }

    /// Run at most `concurrency` tasks at once.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// This worker's name, unique to this process and run: it is recorded with the tasks it runs.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Work until ctrl-c or SIGTERM, then stop taking tasks and let the running ones finish.
    pub async fn run(self) -> Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Work until `shutdown` completes, then stop taking tasks and let the running ones finish.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        let stop = CancellationToken::new();
        let work = self.work(stop.clone(), false);
        tokio::pin!(work);
        tokio::select! {
            result = &mut work => return result,
            () = shutdown => stop.cancel(),
        }
        work.await
    }

    /// Work until nothing is left: no task queued, scheduled (even far ahead) or running. Meant
    /// for tests and batch jobs.
    pub async fn run_until_finished(self) -> Result<()> {
        self.work(CancellationToken::new(), true).await
    }

    async fn work(self, stop: CancellationToken, until_finished: bool) -> Result<()> {
        if self.concurrency == 0 {
            return Err(Error::Config("worker concurrency must be above 0".into()));
        }
        let registry = Registry::global()?;
        let local = self.docket.local().clone();
        let Some(backend) = self.docket.backend() else {
            // In-process mode: tasks already run where they were scheduled.
            match until_finished {
                true => local.wait_idle().await,
                false => stop.cancelled().await,
            }
            return Ok(());
        };
        tracing::info!(worker = %self.id, docket = self.docket.name(), concurrency = self.concurrency, "docket worker started");

        let slots = Arc::new(Semaphore::new(self.concurrency));
        let running = TaskTracker::new();
        let (acks, acked) = mpsc::unbounded_channel();
        let acker = tokio::spawn(acknowledge(self.docket.clone(), acked));
        let finished = CancellationToken::new();
        let renewer = backend.renew_every().map(|every| {
            let (docket, id, running, finished) = (
                self.docket.clone(),
                self.id.clone(),
                running.clone(),
                finished.clone(),
            );
            tokio::spawn(renew(docket, id, every, running, finished))
        });

        loop {
            let mut free = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                permit = slots.clone().acquire_many_owned(1) => permit.expect("the semaphore is never closed"),
            };
            if let Ok(more) = slots
                .clone()
                .try_acquire_many_owned(slots.available_permits() as u32)
            {
                free.merge(more);
            }
            if until_finished && running.is_empty() && local.outstanding() == 0 {
                match backend.outstanding().await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(worker = %self.id, error = %Chain(&error), "counting outstanding tasks failed; trying again");
                        tokio::time::sleep(BACKEND_RETRY).await;
                        continue;
                    }
                }
            }
            let wait = until_finished.then_some(FINISH_POLL);
            let deliveries = match backend
                .claim(&self.id, free.num_permits(), wait, &stop)
                .await
            {
                Ok(deliveries) => deliveries,
                Err(error) => {
                    tracing::warn!(worker = %self.id, error = %Chain(&error), "claiming tasks failed; trying again");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(BACKEND_RETRY) => continue,
                    }
                }
            };
            for delivery in deliveries {
                let slot = free.split(1).expect("one slot was taken per delivery");
                let (docket, acks) = (self.docket.clone(), acks.clone());
                running.spawn(async move {
                    settle(&docket, registry, delivery, &acks).await;
                    drop(slot);
                });
            }
        }

        running.close();
        running.wait().await;
        drop(acks);
        acker.await.expect("the acknowledger does not panic");
        finished.cancel();
        if let Some(renewer) = renewer {
            renewer.await.expect("the renewer does not panic");
        }
        if let Err(error) = backend.retire(&self.id).await {
            tracing::debug!(worker = %self.id, error = %Chain(&error), "could not retire the worker");
        }
        if until_finished {
            local.wait_idle().await;
        }
        tracing::info!(worker = %self.id, "docket worker stopped");
        Ok(())
    }
}

/// Run one delivery and settle it: acknowledge, retry or bury.
async fn settle(
    docket: &Docket,
    registry: &Registry,
    delivery: Delivery,
    acks: &mpsc::UnboundedSender<Delivery>,
) {
    let backend = docket.backend().expect("workers only run with a backend");
    let message = &delivery.message;
    let Some(registration) = registry.get(&message.task) else {
        let reason = format!(
            "unknown task `{}`: no task of that name is registered in this worker",
            message.task
        );
        return bury(backend, &delivery, reason).await;
    };
    let error = match run_attempt(registration, message, docket).await {
        Ok(()) => {
            // The acknowledger has stopped only if this worker is gone, and then the task is
            // redelivered anyway.
            let _ = acks.send(delivery);
            return;
        }
        Err(AttemptError::Undecodable(error)) => {
            let reason = format!(
                "the arguments do not decode into `{}`: {error}",
                message.task
            );
            return bury(backend, &delivery, reason).await;
        }
        Err(AttemptError::Failed(error)) => error,
    };
    let policy = registration.policy();
    if message.attempt < policy.max_attempts() {
        let delay = policy.retry_backoff().delay(message.attempt);
        let due = SystemTime::now() + delay;
        if let Err(failure) = persist(|| backend.retry(&delivery, due)).await {
            tracing::error!(key = %message.key, error = %Chain(&failure), "could not schedule a retry; the task will be redelivered");
        }
    } else {
        let reason = format!(
            "failed on attempt {} of {}: {error}",
            message.attempt,
            policy.max_attempts()
        );
        bury(backend, &delivery, reason).await;
    }
}

async fn bury(backend: &AnyBackend, delivery: &Delivery, reason: String) {
    let message = &delivery.message;
    tracing::error!(task = %message.task, key = %message.key, %reason, "task moved to the dead letters");
    let burial = Burial { reason };
    if let Err(error) = persist(|| backend.bury(delivery, burial.clone())).await {
        tracing::error!(key = %message.key, error = %Chain(&error), "could not record a dead letter; the task will be redelivered");
    }
}

/// Acknowledge successful deliveries in batches: as many as have finished since the last call.
async fn acknowledge(docket: Docket, mut acked: mpsc::UnboundedReceiver<Delivery>) {
    let backend = docket.backend().expect("workers only run with a backend");
    let mut batch = Vec::with_capacity(ACK_BATCH);
    while acked.recv_many(&mut batch, ACK_BATCH).await > 0 {
        if let Err(error) = persist(|| backend.complete(&batch)).await {
            tracing::error!(count = batch.len(), error = %Chain(&error), "could not acknowledge tasks; they will be redelivered");
        }
        batch.clear();
    }
}

/// Settle with the backend, trying again while it is unreachable (a restart, a dropped
/// connection) for up to [`SETTLE_PATIENCE`]. Settling twice is harmless, so a try whose answer
/// was lost may be repeated. A task that cannot be settled stays with this worker and is
/// redelivered after the redelivery timeout: late, never lost.
async fn persist<F: Future<Output = Result<()>>>(mut settle: impl FnMut() -> F) -> Result<()> {
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

/// Keep this worker's tasks its own while any run, so no other worker takes them over.
async fn renew(
    docket: Docket,
    worker: String,
    every: Duration,
    running: TaskTracker,
    finished: CancellationToken,
) {
    let backend = docket.backend().expect("workers only run with a backend");
    loop {
        tokio::select! {
            () = finished.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        if running.is_empty() {
            continue;
        }
        if let Err(error) = backend.renew(&worker).await {
            tracing::warn!(%worker, error = %Chain(&error), "could not renew running tasks");
        }
    }
}

/// ctrl-c, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received; finishing running tasks");
}

/// `host.pid.random`: unique per process and run, so no two workers ever share a name.
fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    let suffix = &crate::key::unique()[..8];
    format!("{host}.{}.{suffix}", std::process::id())
}
