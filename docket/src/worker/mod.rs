//! The [`Worker`]: claims due tasks, runs them under a concurrency limit, settles each one.

pub(crate) mod execution;
mod health;
pub(crate) mod in_process;
pub(crate) mod recurrence;

pub use self::execution::Context;
pub use self::health::{Health, Unhealthy};

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::execution::{AttemptError, NextRun, run_attempt};
use crate::backend::{
    Admission, AnyBackend, Backend, Burial, Delivery, DeliveryId, Gate, KeyMode, Message, Signal,
    SignalFeed,
};
use crate::error::{Chain, Error, Result};
use crate::failure::TaskErrorKind;
use crate::handle::Docket;
use crate::inspect::FailedAttempt;
use crate::metrics;
use crate::policy::Policy;
use crate::registry::Registry;
use crate::results::{self, Status, TaskRecord};
use crate::strike::Strike;
use crate::sync::Locked;
use crate::worker::recurrence::Recurring;

/// How often `run_until_finished` looks again whether work remains while tasks run elsewhere.
const FINISH_POLL: Duration = Duration::from_millis(25);

/// The most acknowledgements settled in one backend call.
const ACK_BATCH: usize = 1024;

/// How long a settlement is tried again while the backend is unreachable.
const SETTLE_PATIENCE: Duration = Duration::from_secs(60);

/// How long to wait before claiming again after the backend failed.
const BACKEND_RETRY: Duration = Duration::from_millis(500);

/// The shortest interval between two depth reports: a zero interval would loop on Redis.
const MIN_DEPTH_EVERY: Duration = Duration::from_secs(1);

/// How soon a failed renewal is tried again (not a whole renewal period later: two missed
/// periods would let another worker take the deliveries over).
const RENEW_RETRY: Duration = Duration::from_secs(1);

/// How long a cancel signal for a delivery this worker has not started yet is remembered: the
/// signal and the delivery travel on different connections, so either may arrive first.
const CANCEL_MEMORY: Duration = Duration::from_secs(300);

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
    /// The worker an in-process docket starts by itself.
    automatic: bool,
    health: Health,
    /// How often to report the queue and schedule depth gauges, if at all.
    depth_every: Option<Duration>,
}

impl Worker {
    /// A worker for `docket`, with the docket's default concurrency
    /// (`DOCKET_WORKER_CONCURRENCY`, or 10).
    pub fn new(docket: &Docket) -> Worker {
        Worker {
            docket: docket.clone(),
            concurrency: docket.worker_concurrency(),
            id: worker_id(),
            automatic: false,
            health: Health::default(),
            depth_every: None,
        }
    }

    /// A handle that reports whether this worker runs, reaches its backend and its loop moves;
    /// take it before starting the worker.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Report the `docket_queue_depth` and `docket_schedule_depth` gauges every `interval`
    /// (one round trip of two commands on Redis each time), at most once a second. Off by
    /// default, so an idle worker sends nothing.
    pub fn report_depth(mut self, interval: Duration) -> Self {
        self.depth_every = Some(interval.max(MIN_DEPTH_EVERY));
        self
    }

    pub(crate) fn automatic(mut self) -> Self {
        self.automatic = true;
        self
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
    /// for tests and batch jobs. It does not start recurring tasks (their chains never end);
    /// one already scheduled keeps it working until the task stops itself.
    pub async fn run_until_finished(self) -> Result<()> {
        self.work(CancellationToken::new(), true).await
    }

    /// Check that every registered task can run here: its state was provided and its
    /// recurrence parses. Returns the recurring tasks.
    fn check(&self, registry: &Registry) -> Result<HashMap<&'static str, Recurring>> {
        let mut recurring = HashMap::new();
        for registration in registry.iter() {
            for requirement in registration.required_state() {
                if self.docket.provided().has(&requirement) {
                    continue;
                }
                let missing = Error::MissingState {
                    task: registration.name(),
                    type_name: requirement.type_name(),
                };
                if !self.automatic {
                    return Err(missing);
                }
                // An in-process docket's own worker serves every task scheduled on it; only
                // the tasks missing their state fail (for good, saying why).
                tracing::warn!(error = %missing, "in-process tasks of this type will fail");
            }
            if let Some(recurrence) = registration.policy().recurrence() {
                recurring.insert(
                    registration.name(),
                    Recurring::parse(registration.name(), recurrence)?,
                );
            }
        }
        Ok(recurring)
    }

    /// Add the first run of each recurring task, unless its chain exists already.
    async fn seed(&self, recurring: &HashMap<&'static str, Recurring>) -> Result<()> {
        let now = SystemTime::now();
        let batch: Vec<(Message, KeyMode)> = recurring
            .iter()
            .map(|(name, recurring)| {
                let message = Message {
                    task: (*name).to_owned(),
                    key: (*name).to_owned(),
                    args: "{}".to_owned(),
                    attempt: 1,
                    due: recurring.first_due(now),
                    history: Vec::new(),
                    trace: None,
                };
                (message, KeyMode::Add)
            })
            .collect();
        if !batch.is_empty() {
            persist(|| async { self.docket.backend().enqueue(&batch).await.map(drop) }).await?;
        }
        Ok(())
    }

    async fn work(self, stop: CancellationToken, until_finished: bool) -> Result<()> {
        crate::config::validate_concurrency(self.concurrency, "`Worker::concurrency`")?;
        let registry = Registry::global()?;
        let recurring = self.check(registry)?;
        if !self.automatic && !until_finished {
            self.seed(&recurring).await?;
        }
        if !self.docket.has_queue() && !self.automatic {
            // In-process mode: the docket's own worker runs the tasks; wait beside it.
            self.docket.ensure_auto_worker()?;
            self.health.started();
            match until_finished {
                true => wait_idle(&self.docket).await,
                false => {
                    stop.cancelled().await;
                    // Stop taking tasks, and let the running ones finish.
                    self.docket.stop_auto_worker().await;
                }
            }
            self.health.stopped();
            return Ok(());
        }
        let backend = self.docket.backend();
        tracing::info!(worker = %self.id, docket = self.docket.name(), concurrency = self.concurrency, "docket worker started");

        let Some(signals) = subscribe(backend, None, &stop).await else {
            return Ok(());
        };
        let (acks, acked) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            docket: self.docket.clone(),
            registry,
            acks,
            running: RunningTasks::default(),
            worker: self.id.clone(),
            strikes: RwLock::new(Vec::new()),
            recurring,
        });
        let finished = CancellationToken::new();
        self.health.started();
        let depth = self
            .depth_every
            .map(|every| tokio::spawn(report_depth(self.docket.clone(), every, finished.clone())));
        let mut signals = signals;
        // The first signal is the strike list: know it before running anything.
        if let Some(first) = signals.signals.recv().await {
            shared.apply(first);
        }
        let listener = tokio::spawn(listen(shared.clone(), signals, finished.clone()));

        let slots = Arc::new(Semaphore::new(self.concurrency));
        let running = TaskTracker::new();
        let acker = tokio::spawn(acknowledge(self.docket.clone(), self.id.clone(), acked));
        let renewer = backend.renew_every().map(|every| {
            let (docket, id, finished) = (self.docket.clone(), self.id.clone(), finished.clone());
            tokio::spawn(renew(docket, id, every, finished))
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
            if until_finished && running.is_empty() {
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
            self.health.claiming();
            let deliveries = match backend
                .claim(&self.id, free.num_permits(), wait, &stop)
                .await
            {
                Ok(deliveries) => {
                    self.health.backend(None);
                    deliveries
                }
                Err(error) => {
                    self.health.backend(Some(Chain(&error).to_string()));
                    tracing::warn!(worker = %self.id, error = %Chain(&error), "claiming tasks failed; trying again");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(BACKEND_RETRY) => continue,
                    }
                }
            };
            release_dropped(&shared, backend).await;
            failpoint!(step "claim.handover");
            for delivery in deliveries {
                let slot = free.split(1).expect("one slot was taken per delivery");
                let shared = shared.clone();
                running.spawn(async move {
                    settle_guarded(&shared, delivery).await;
                    drop(slot);
                });
            }
        }

        running.close();
        running.wait().await;
        // The listener holds the last other handle on `shared`, whose sender the acknowledger
        // waits on.
        finished.cancel();
        joined(listener).await;
        if let Some(depth) = depth {
            joined(depth).await;
        }
        self.health.stopped();
        drop(shared);
        joined(acker).await;
        if let Some(renewer) = renewer {
            joined(renewer).await;
        }
        if let Err(error) = backend.retire(&self.id).await {
            tracing::debug!(worker = %self.id, error = %Chain(&error), "could not retire the worker");
        }
        match (until_finished, self.docket.fallback_if_made()) {
            (true, Some(fallback)) => wait_idle(fallback).await,
            // Tasks that fell back to this process finish too.
            (false, Some(_)) if !self.automatic => self.docket.stop_auto_worker().await,
            _ => {}
        }
        tracing::info!(worker = %self.id, "docket worker stopped");
        Ok(())
    }
}

/// What every task run of one worker shares.
struct Shared {
    docket: Docket,
    registry: &'static Registry,
    acks: mpsc::UnboundedSender<Delivery>,
    running: RunningTasks,
    /// This worker's name.
    worker: String,
    /// The strikes in place, as last heard.
    strikes: RwLock<Vec<Strike>>,
    recurring: HashMap<&'static str, Recurring>,
}

impl Shared {
    /// The strike holding `message`, if any.
    fn struck(&self, message: &Message) -> Option<Strike> {
        let strikes = self
            .strikes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if strikes.is_empty() {
            return None;
        }
        crate::strike::first_match(&strikes, &message.task, &message.args).cloned()
    }

    fn apply(&self, signal: Signal) {
        match signal {
            Signal::Cancel { key, delivery } => {
                if self.running.cancel(&key, delivery.as_ref()) {
                    tracing::info!(%key, "cancelling a running task");
                }
            }
            Signal::Strikes(strikes) => {
                *self
                    .strikes
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = strikes;
            }
        }
    }
}

/// Subscribe to the worker signals, going on where `ended` stopped, trying again while the
/// backend is unreachable.
async fn subscribe(
    backend: &AnyBackend,
    ended: Option<&SignalFeed>,
    stop: &CancellationToken,
) -> Option<SignalFeed> {
    loop {
        match backend.signals(ended).await {
            Ok(signals) => return Some(signals),
            Err(error) => {
                tracing::warn!(error = %Chain(&error), "could not subscribe to worker signals; trying again");
                tokio::select! {
                    () = stop.cancelled() => return None,
                    () = tokio::time::sleep(BACKEND_RETRY) => {}
                }
            }
        }
    }
}

/// Follow the worker signals (cancels, strikes) until the worker finishes, subscribing again
/// whenever the feed is lost.
async fn listen(shared: Arc<Shared>, mut feed: SignalFeed, finished: CancellationToken) {
    let backend = shared.docket.backend();
    loop {
        loop {
            tokio::select! {
                () = finished.cancelled() => return,
                signal = feed.signals.recv() => match signal {
                    Some(signal) => shared.apply(signal),
                    None => break,
                },
            }
        }
        tokio::select! {
            () = finished.cancelled() => return,
            () = tokio::time::sleep(BACKEND_RETRY) => {}
        }
        feed = match subscribe(backend, Some(&feed), &finished).await {
            Some(feed) => feed,
            None => return,
        };
    }
}

/// The cancellation tokens of the deliveries this worker holds, by key; and cancels that came
/// for deliveries it has not started yet.
#[derive(Default)]
struct RunningTasks {
    next: AtomicU64,
    by_key: Mutex<Runs>,
}

#[derive(Default)]
struct Runs {
    by_key: HashMap<String, Vec<Run>>,
    /// Cancelled deliveries not (yet) held here, and when their cancel came.
    early: HashMap<DeliveryId, tokio::time::Instant>,
}

struct Run {
    id: u64,
    delivery: DeliveryId,
    token: CancellationToken,
}

impl RunningTasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, Runs> {
        self.by_key.locked()
    }

    /// Track a delivery from the moment the worker holds it until the returned guard drops. A
    /// delivery cancelled before it got here starts cancelled.
    fn track<'a>(&'a self, delivery: &Delivery, token: &CancellationToken) -> Tracked<'a> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let key = delivery.message.key.clone();
        let mut runs = self.lock();
        if runs.early.remove(&delivery.id).is_some() {
            token.cancel();
        }
        runs.by_key.entry(key.clone()).or_default().push(Run {
            id,
            delivery: delivery.id.clone(),
            token: token.clone(),
        });
        Tracked {
            tasks: self,
            key,
            id,
        }
    }

    /// Cancel the runs of `key` delivered as `delivery` or before it (every run of the key when
    /// `None`); whether one runs here. A delivery not here yet is remembered for a while, in case it is
    /// on its way.
    fn cancel(&self, key: &str, delivery: Option<&DeliveryId>) -> bool {
        let mut runs = self.lock();
        let mut found = false;
        if let Some(tracked) = runs.by_key.get(key) {
            for run in tracked {
                if delivery.is_none_or(|delivery| run.delivery.not_after(delivery)) {
                    run.token.cancel();
                    found = true;
                }
            }
        }
        if let (false, Some(delivery)) = (found, delivery) {
            let now = tokio::time::Instant::now();
            runs.early
                .retain(|_, at| now.duration_since(*at) < CANCEL_MEMORY);
            runs.early.insert(delivery.clone(), now);
        }
        found
    }
}

struct Tracked<'a> {
    tasks: &'a RunningTasks,
    key: String,
    id: u64,
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        let mut runs = self.tasks.lock();
        if let Some(tracked) = runs.by_key.get_mut(&self.key) {
            tracked.retain(|run| run.id != self.id);
            if tracked.is_empty() {
                runs.by_key.remove(&self.key);
            }
        }
    }
}

/// Wait until `docket` has nothing waiting or running (polling its backend).
async fn wait_idle(docket: &Docket) {
    loop {
        match docket.backend().outstanding().await {
            Ok(0) => return,
            _ => tokio::time::sleep(FINISH_POLL).await,
        }
    }
}

/// Give back the concurrency slots of deliveries the backend settled without running them (a
/// crashed worker's delivery found cancelled or superseded, or buried as poison), so tasks
/// waiting for those slots go on.
async fn release_dropped(shared: &Shared, backend: &AnyBackend) {
    for delivery in backend.dropped(&shared.worker) {
        let Some(registration) = shared.registry.get(&delivery.message.task) else {
            continue;
        };
        let Some(gate) = gate(&registration.policy(), &delivery.message) else {
            continue;
        };
        if let Err(error) = persist(|| backend.release(&delivery, &gate)).await {
            tracing::warn!(key = %delivery.message.key, error = %Chain(&error), "could not give back the slot of a dropped task; the next admission finds it");
        }
    }
}

/// Settle `delivery`; should that crash (a bug, or an injected fault), give it up so that it is
/// run again rather than held, unsettled, for ever.
async fn settle_guarded(shared: &Shared, delivery: Delivery) {
    use futures_util::FutureExt;

    let held = delivery.clone();
    let settled = std::panic::AssertUnwindSafe(settle(shared, delivery))
        .catch_unwind()
        .await;
    if settled.is_err() {
        tracing::error!(key = %held.message.key, "settling a task crashed; it will run again");
        shared.docket.backend().abandon(&shared.worker, &held);
    }
}

/// Run one delivery and settle it: acknowledge, retry or bury; or first hold it for a strike,
/// or park it behind a concurrency or rate limit.
async fn settle(shared: &Shared, delivery: Delivery) {
    failpoint!(step "settle.start");
    let docket = &shared.docket;
    let backend = docket.backend();
    let message = &delivery.message;
    let Some(registration) = shared.registry.get(&message.task) else {
        let reason = format!(
            "unknown task `{}`: no task of that name is registered in this worker",
            message.task
        );
        return bury(shared, &delivery, reason, None).await;
    };
    let policy = registration.policy();
    let context = Context::new(message, docket, &policy);
    // Tracked from here, so a cancel that comes before the run starts is not missed.
    let _tracked = shared.running.track(&delivery, context.cancel_token());
    if let Some(strike) = shared.struck(message) {
        match persist(|| backend.hold(&delivery, &strike)).await {
            Ok(true) => {
                tracing::info!(task = %message.task, key = %message.key, %strike, "task held by a strike");
                return;
            }
            Ok(false) => {} // Restored meanwhile: run it.
            Err(error) => {
                tracing::error!(key = %message.key, error = %Chain(&error), "could not hold a struck task; it will run again");
                backend.abandon(&shared.worker, &delivery);
                return;
            }
        }
    }
    let gate = gate(&policy, message);
    if let Some(gate) = &gate {
        match persist(|| backend.admit(&delivery, gate)).await {
            Ok(Admission::Run) => {}
            Ok(Admission::Waiting) => {
                tracing::debug!(key = %message.key, "task waits for a concurrency slot");
                return;
            }
            Ok(Admission::Deferred(due)) => {
                tracing::debug!(key = %message.key, ?due, "task deferred by its rate limit");
                return;
            }
            Err(error) => {
                tracing::error!(key = %message.key, error = %Chain(&error), "could not check the task's limits; it will run again");
                backend.abandon(&shared.worker, &delivery);
                return;
            }
        }
    }

    let ttl = policy.result_ttl();
    if let Some(ttl) = ttl {
        let state = TaskRecord::new(
            &message.key,
            &message.task,
            Status::Running,
            message.attempt,
        );
        results::record(docket, &state, ttl).await;
    }
    failpoint!(step "settle.run");
    metrics::started(registration.name(), message.due, delivery.redelivered);
    let started = tokio::time::Instant::now();
    let outcome = run_attempt(registration, message, &context).await;
    metrics::finished(registration.name(), started.elapsed(), outcome.is_ok());
    failpoint!(step "settle.finish");
    if let Some(gate) = &gate {
        // Released before settling: a crash in between runs the task again, never strands
        // its slot.
        if let Err(error) = persist(|| backend.release(&delivery, gate)).await {
            tracing::error!(key = %message.key, error = %Chain(&error), "could not release a concurrency slot");
        }
    }
    if let Some(recurring) = shared.recurring.get(registration.name()) {
        return finish_recurring(shared, delivery, recurring, &context, outcome).await;
    }

    let error = match outcome {
        Ok(()) => {
            if let Some(ttl) = ttl {
                let mut state = TaskRecord::new(
                    &message.key,
                    &message.task,
                    Status::Completed,
                    message.attempt,
                );
                state.result = context.take_result();
                results::record(docket, &state, ttl).await;
            }
            // The acknowledger has stopped only if this worker is gone, and then the task is
            // redelivered anyway.
            let _ = shared.acks.send(delivery);
            return;
        }
        Err(AttemptError::Undecodable(error)) => {
            let reason = format!(
                "the arguments do not decode into `{}`: {error}",
                message.task
            );
            return bury(shared, &delivery, reason, ttl.map(|ttl| (docket, ttl))).await;
        }
        Err(AttemptError::Failed(error)) => error,
    };
    if error.kind() == TaskErrorKind::Cancelled {
        tracing::info!(key = %message.key, "task cancelled while running");
        if let Some(ttl) = ttl {
            let mut state = TaskRecord::new(
                &message.key,
                &message.task,
                Status::Cancelled,
                message.attempt,
            );
            state.error = Some(error.to_string());
            results::record(docket, &state, ttl).await;
        }
        let _ = shared.acks.send(delivery);
        return;
    }
    let mut history = message.history.clone();
    FailedAttempt::record(
        &mut history,
        FailedAttempt::new(message.attempt, error.to_string(), SystemTime::now()),
    );
    let retryable = error.kind() != TaskErrorKind::Permanent;
    if retryable && message.attempt < policy.max_attempts() {
        let delay = error
            .retry_after()
            .unwrap_or_else(|| policy.retry_delay(message.attempt));
        let next = Message {
            attempt: message.attempt + 1,
            due: crate::time::saturating_due(SystemTime::now(), delay),
            history,
            ..message.clone()
        };
        if let Some(ttl) = ttl {
            let mut state =
                TaskRecord::new(&message.key, &message.task, Status::Scheduled, next.attempt);
            state.error = Some(error.to_string());
            results::record(docket, &state, ttl).await;
        }
        metrics::retried(registration.name());
        if let Err(failure) = persist(|| backend.retry(&delivery, &next)).await {
            tracing::error!(key = %message.key, error = %Chain(&failure), "could not schedule a retry; the task will run again");
            backend.abandon(&shared.worker, &delivery);
        }
    } else {
        let reason = if retryable {
            format!(
                "failed on attempt {} of {}: {error}",
                message.attempt,
                policy.max_attempts()
            )
        } else {
            format!("failed for good on attempt {}: {error}", message.attempt)
        };
        let delivery = Delivery {
            message: Message {
                history,
                ..delivery.message.clone()
            },
            ..delivery
        };
        bury(shared, &delivery, reason, ttl.map(|ttl| (docket, ttl))).await;
    }
}

/// End a run of a recurring task: put the next run in its place (unless the task stopped
/// itself or was cancelled), then acknowledge this one. A failed run is logged, not retried or
/// buried: the next period is its retry.
async fn finish_recurring(
    shared: &Shared,
    delivery: Delivery,
    recurring: &Recurring,
    context: &Context,
    outcome: Result<(), AttemptError>,
) {
    let message = &delivery.message;
    let backend = shared.docket.backend();
    let cancelled = matches!(&outcome, Err(AttemptError::Failed(error)) if error.kind() == TaskErrorKind::Cancelled);
    if let Err(error) = &outcome {
        let error = match error {
            AttemptError::Undecodable(error) => error.to_string(),
            AttemptError::Failed(error) => error.to_string(),
        };
        tracing::error!(task = %message.task, key = %message.key, %error, "recurring task failed; it runs again at its next time");
    }
    let next_due = match context.take_next_run() {
        _ if cancelled => None,
        Some(NextRun::Stop) => None,
        Some(NextRun::At(when)) => Some(when),
        None => Some(recurring.next_due(message.due, SystemTime::now())),
    };
    if let Some(due) = next_due {
        let next = Message {
            attempt: 1,
            due,
            history: Vec::new(),
            ..message.clone()
        };
        let batch = [(next, KeyMode::Replace)];
        if let Err(error) = persist(|| async { backend.enqueue(&batch).await.map(drop) }).await {
            tracing::error!(task = %message.task, error = %Chain(&error), "could not schedule the next run of a recurring task; a worker starting adds it again");
        }
    } else {
        tracing::info!(task = %message.task, "recurring task stopped");
    }
    let _ = shared.acks.send(delivery);
}

/// The limits `message` must pass, named by task and, for a per-argument limit, the value.
fn gate(policy: &Policy, message: &Message) -> Option<Gate> {
    let concurrency = policy.concurrency();
    let rate = policy.rate_limit();
    if concurrency.is_none() && rate.is_none() {
        return None;
    }
    let args: Option<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&message.args).ok();
    let scope = |param: Option<&str>| match param {
        None => message.task.clone(),
        Some(param) => {
            let value = args
                .as_ref()
                .and_then(|args| args.get(param))
                .unwrap_or(&serde_json::Value::Null);
            format!("{}:{param}={value}", message.task)
        }
    };
    Some(Gate {
        slot: concurrency.map(|limit| (scope(limit.param), limit.max)),
        rate: rate.map(|rate| (scope(rate.param), rate.count, rate.window)),
    })
}

/// Keep the delivery as a dead letter (recording its failed state when it keeps results).
async fn bury(
    shared: &Shared,
    delivery: &Delivery,
    reason: String,
    results: Option<(&Docket, Duration)>,
) {
    let backend = shared.docket.backend();
    let message = &delivery.message;
    tracing::error!(task = %message.task, key = %message.key, %reason, "task moved to the dead letters");
    metrics::dead_lettered(&message.task);
    if let Some((docket, ttl)) = results {
        let mut state =
            TaskRecord::new(&message.key, &message.task, Status::Failed, message.attempt);
        state.error = Some(reason.clone());
        results::record(docket, &state, ttl).await;
    }
    let mut history = message.history.clone();
    if history
        .last()
        .is_none_or(|last| last.attempt != message.attempt)
    {
        FailedAttempt::record(
            &mut history,
            FailedAttempt::new(message.attempt, reason.clone(), SystemTime::now()),
        );
    }
    let burial = Burial { reason, history };
    if let Err(error) = persist(|| backend.bury(delivery, burial.clone())).await {
        tracing::error!(key = %message.key, error = %Chain(&error), "could not record a dead letter; the task will run again");
        backend.abandon(&shared.worker, delivery);
    }
}

/// Acknowledge successful deliveries in batches: as many as have finished since the last call.
async fn acknowledge(docket: Docket, worker: String, mut acked: mpsc::UnboundedReceiver<Delivery>) {
    let backend = docket.backend();
    let mut batch = Vec::with_capacity(ACK_BATCH);
    while acked.recv_many(&mut batch, ACK_BATCH).await > 0 {
        if let Err(error) = persist(|| backend.complete(&batch)).await {
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
async fn persist<T, F: Future<Output = Result<T>>>(mut settle: impl FnMut() -> F) -> Result<T> {
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
async fn joined(helper: tokio::task::JoinHandle<()>) {
    if let Err(error) = helper.await {
        if error.is_panic() {
            std::panic::resume_unwind(error.into_panic());
        }
    }
}

/// Set the depth gauges every `every` until the worker finishes.
async fn report_depth(docket: Docket, every: Duration, finished: CancellationToken) {
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
/// tried again soon.
async fn renew(docket: Docket, worker: String, every: Duration, finished: CancellationToken) {
    let backend = docket.backend();
    let mut pause = every;
    loop {
        tokio::select! {
            () = finished.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = match backend.renew(&worker).await {
            Ok(()) => every,
            Err(error) => {
                tracing::warn!(%worker, error = %Chain(&error), "could not renew running tasks; trying again");
                RENEW_RETRY.min(every)
            }
        };
    }
}

/// Resolves on ctrl-c, or SIGTERM on Unix: what [`Worker::run`] stops on, for servers that shut
/// down beside their worker (`axum::serve(..).with_graceful_shutdown(docket::shutdown_signal())`).
pub async fn shutdown_signal() {
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
