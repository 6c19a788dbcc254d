//! The [`Worker`]: claims due tasks, runs them under a concurrency limit, settles each one.

pub(crate) mod execution;
mod health;
pub(crate) mod hooks;
pub(crate) mod in_process;
mod process;
mod read_ahead;
pub(crate) mod recurrence;
mod signals;
mod stats;
mod upkeep;

pub use self::execution::Context;
pub use self::health::{Health, Unhealthy};
pub use self::hooks::{HookOutput, Outcome, TaskEvent};

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::process::{process_guarded, release_dropped};
use self::read_ahead::{Buffer, DEFAULT_READ_AHEAD, Pace};
use self::signals::{RunningTasks, listen, subscribe};
use self::upkeep::{Renewals, acknowledge, joined, renew, report_depth, retry_while_unavailable};
use crate::backend::{AnyBackend, Backend, Delivery, KeyMode, Message};
use crate::error::{Chain, Error, Result};
use crate::handle::Docket;
use crate::registry::Registry;
use crate::strike::Strike;
use crate::worker::recurrence::Recurring;

/// How long to wait before claiming again after the backend failed.
pub(super) const BACKEND_RETRY: Duration = Duration::from_millis(500);

/// The shortest interval between two depth reports: a zero interval would loop on Redis.
pub(super) const MIN_DEPTH_EVERY: Duration = Duration::from_secs(1);

/// How often `run_until_finished` looks again whether work remains while tasks run elsewhere.
const FINISH_POLL: Duration = Duration::from_millis(25);
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
    /// The most deliveries claimed ahead of free slots.
    read_ahead: usize,
    /// The user's hooks (see `hooks.rs`).
    hooks: hooks::Hooks,
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
            read_ahead: DEFAULT_READ_AHEAD,
            hooks: hooks::Hooks::default(),
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
        self.hooks = self.docket.auto_hooks().clone();
        self
    }

    /// Run at most `concurrency` tasks at once: from 1 to what a tokio semaphore holds. Any
    /// other value is an [`Error::Config`] when the worker is run.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Claim up to `most` deliveries ahead of free slots (on Redis; 256 unless set, 0 turns it
    /// off). Short tasks then start as slots free up, without a round trip to Redis each time:
    /// at concurrency 10, a drain of short tasks runs about 2.8 times as fast, with half the
    /// commands.
    ///
    /// The worker reads ahead only as many deliveries as its slots finish in about 20 ms at the
    /// pace it measures, so a worker of slow tasks reads nothing ahead and never sits on work
    /// that an idle worker could start. A delivery read ahead is held like a waiting task of
    /// this worker: renewed; a cancel of its key, a `replace` of it or a strike reaches it
    /// before it starts; and it is given back at once when the worker stops. Read-ahead and
    /// running deliveries together stay within the 1,000 pending entries a managed Redis allows
    /// a consumer.
    ///
    /// What it costs: a worker that crashes holding deliveries read ahead leaves them, like its
    /// running ones, for the fleet to take over after the redelivery timeout; and snapshots and
    /// the dashboard list them as running on the worker (to Redis they are delivered).
    pub fn read_ahead(mut self, most: usize) -> Self {
        self.read_ahead = most;
        self
    }

    /// This worker's name, unique to this process and run: it is recorded with the tasks it runs.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Work until ctrl-c or SIGTERM, then stop taking tasks and let the running ones finish:
    /// [`Worker::run_until`] with [`shutdown_signal`].
    ///
    /// # Errors
    ///
    /// Only when it cannot start, before it takes any task:
    /// - [`Error::Config`] for a [concurrency](Worker::concurrency) of 0 or above what a tokio
    ///   semaphore holds, or for a recurring task whose period is zero, whose cron expression
    ///   does not parse or whose time zone is unknown;
    /// - [`Error::DuplicateTask`] when two tasks of the binary are registered under one name;
    /// - [`Error::MissingState`] when a task needs a [`State`](crate::State) value nobody
    ///   [provided](Docket::provide);
    /// - [`Error::Unavailable`] when the first runs of the recurring tasks cannot be stored
    ///   because Redis stays unreachable for a minute, and [`Error::Backend`] when Redis refuses
    ///   them;
    /// - [`Error::NoRuntime`] when the docket runs tasks in-process and there is no tokio
    ///   runtime to start its worker on.
    ///
    /// Once it runs, backend failures do not end it: it logs them, shows them in
    /// [`Worker::health`], and tries again.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future is no shutdown. See [`Worker::run_until`].
    ///
    /// # Panics
    ///
    /// When polled outside a tokio runtime, or in one without I/O or time enabled (see
    /// [`shutdown_signal`] and [`Worker::run_until`]).
    pub async fn run(self) -> Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Work until `shutdown` completes, then stop taking tasks and let the running ones finish.
    ///
    /// # Errors
    ///
    /// Only when it cannot start, before it takes any task:
    /// - [`Error::Config`] for a [concurrency](Worker::concurrency) of 0 or above what a tokio
    ///   semaphore holds, or for a recurring task whose period is zero, whose cron expression
    ///   does not parse or whose time zone is unknown;
    /// - [`Error::DuplicateTask`] when two tasks of the binary are registered under one name;
    /// - [`Error::MissingState`] when a task needs a [`State`](crate::State) value nobody
    ///   [provided](Docket::provide);
    /// - [`Error::Unavailable`] when the first runs of the recurring tasks cannot be stored
    ///   because Redis stays unreachable for a minute, and [`Error::Backend`] when Redis refuses
    ///   them;
    /// - [`Error::NoRuntime`] when the docket runs tasks in-process and there is no tokio
    ///   runtime to start its worker on.
    ///
    /// Once it runs, backend failures do not end it: it logs them, shows them in
    /// [`Worker::health`], and tries again.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: stop a worker by completing `shutdown`, not by dropping this future.
    /// Dropping it (as a `tokio::select!` branch that loses, or `tokio::time::timeout`, does)
    /// skips the shutdown:
    /// - tasks that started keep running on the runtime until they end, and are settled as
    ///   usual, but nothing waits for them;
    /// - the worker's helpers (its signal feed, renewals, acknowledgements) go on while those
    ///   tasks run, and end with the last of them; the worker is not retired: on Redis it stays
    ///   listed in [`Docket::workers`] until another worker's check forgets it;
    /// - on Redis, a delivery the worker was handed but had not started, or whose reply was
    ///   still on its way, is taken over by another worker after the
    ///   [redelivery timeout](crate::Connect::redelivery_timeout).
    ///
    /// # Panics
    ///
    /// For a docket with a queue, when polled outside a tokio runtime, or in one without time
    /// (and, on Redis, I/O) enabled, as tokio's own `spawn` and timers do.
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
    ///
    /// # Errors
    ///
    /// Only when it cannot start, before it takes any task:
    /// - [`Error::Config`] for a [concurrency](Worker::concurrency) of 0 or above what a tokio
    ///   semaphore holds, or for a recurring task whose period is zero, whose cron expression
    ///   does not parse or whose time zone is unknown;
    /// - [`Error::DuplicateTask`] when two tasks of the binary are registered under one name;
    /// - [`Error::MissingState`] when a task needs a [`State`](crate::State) value nobody
    ///   [provided](Docket::provide);
    /// - [`Error::NoRuntime`] when the docket runs tasks in-process and there is no tokio
    ///   runtime to start its worker on.
    ///
    /// Once it runs, backend failures do not end it: it logs them, shows them in
    /// [`Worker::health`], and tries again.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future is no shutdown, with the same effects as for
    /// [`Worker::run_until`].
    ///
    /// # Panics
    ///
    /// For a docket with a queue, when polled outside a tokio runtime, or in one without time
    /// (and, on Redis, I/O) enabled, as tokio's own `spawn` and timers do.
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
        let now = self.docket.clock().now();
        let batch: Vec<(Message, KeyMode)> = recurring
            .iter()
            .map(|(name, recurring)| {
                let message = Message::first_attempt(*name, *name, "{}", recurring.first_due(now));
                (message, KeyMode::Add)
            })
            .collect();
        if !batch.is_empty() {
            retry_while_unavailable(|| async {
                self.docket.backend().enqueue(&batch, None).await.map(drop)
            })
            .await?;
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
            // In-process mode: the docket's own worker runs the tasks, with this one's hooks;
            // wait beside it.
            let _hooks = self.lend_hooks();
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
            hooks: self.hooks.clone(),
            stats: Arc::default(),
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
        let busy = Arc::new(Busy::default());
        // Reading ahead saves round trips; an in-memory docket has none to save. Without it,
        // no task's time is measured.
        let read_ahead = match backend.leases_deliveries() {
            true => self.read_ahead,
            false => 0,
        };
        let pace = (read_ahead > 0).then(|| Arc::new(Pace::default()));
        let mut buffer = Buffer::default();
        // Should this future be dropped instead of stopped, the helpers above still end: once
        // the tasks already started have ended (they run on, renewed, as spawned tasks do).
        let mut abandoned = Abandoned {
            running: running.clone(),
            finished: finished.clone(),
            armed: true,
        };
        let acker = tokio::spawn(acknowledge(self.docket.clone(), self.id.clone(), acked));
        let publisher = tokio::spawn(stats::publish(
            self.docket.clone(),
            self.id.clone(),
            shared.stats.clone(),
            finished.clone(),
        ));
        let clock = {
            let (docket, id, finished) = (self.docket.clone(), self.id.clone(), finished.clone());
            tokio::spawn(async move { docket.backend().keep_time(&id, &finished).await })
        };
        {
            let (docket, id) = (self.docket.clone(), self.id.clone());
            self.health
                .parked_when(move || docket.backend().parked(&id));
        }
        let renewals = backend
            .renew_every()
            .map(|every| Arc::new(Renewals::new(every)));
        let renewer = renewals.as_ref().map(|renewals| {
            let (docket, id, finished) = (self.docket.clone(), self.id.clone(), finished.clone());
            tokio::spawn(renew(docket, id, finished, Arc::clone(renewals)))
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
            // Across a lapse of the renewals, what was read ahead may have been taken over and
            // run elsewhere: it goes back (what another worker took over is only forgotten here).
            if let Some(mark) = renewals
                .as_ref()
                .and_then(|renewals| renewals.suspect_before())
            {
                let mut held = buffer.take_claimed_before(mark);
                give_back_unstarted(&self.id, &shared, backend, &mut held).await;
            }
            // What was read ahead starts first.
            while free.num_permits() > 0
                && let Some(delivery) = buffer.pop()
            {
                let slot = free.split(1).expect("a slot is free");
                start(&running, &shared, &busy, &pace, delivery, slot);
            }
            if free.num_permits() == 0 {
                continue;
            }
            if until_finished && busy.is_idle() {
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
            let ahead = pace
                .as_ref()
                .map_or(0, |pace| pace.ahead(self.concurrency, read_ahead));
            let want = free.num_permits() + ahead;
            self.health.claiming();
            // Finishing: when the last running task ends while the claim waits and nothing is
            // left anywhere (the docket's depth is zero: no entry is on its way to this worker
            // either), the claim is cut short, so the worker returns as soon as that task is
            // settled. The depth is looked at again once, shortly, should the task's
            // acknowledgement still have been on its way.
            let claim_stop = stop.child_token();
            let claimed_at = Instant::now();
            let claim = backend.claim(&self.id, want, wait, &claim_stop);
            tokio::pin!(claim);
            let claimed = match until_finished && !busy.is_idle() {
                true => tokio::select! {
                    claimed = &mut claim => claimed,
                    () = nothing_left(&busy, backend) => {
                        claim_stop.cancel();
                        claim.await
                    }
                },
                false => claim.await,
            };
            let deliveries = match claimed {
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
                match free.split(1) {
                    Some(slot) => start(&running, &shared, &busy, &pace, delivery, slot),
                    None => {
                        // A cancel of its key reaches it while it waits.
                        shared.running.wait(&delivery);
                        buffer.push(delivery, claimed_at);
                    }
                }
            }
        }
        // Stopping: what was read ahead goes back at once, for another worker to start.
        give_back_unstarted(&self.id, &shared, backend, &mut buffer).await;

        running.close();
        running.wait().await;
        abandoned.armed = false;
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
        joined(publisher).await;
        joined(clock).await;
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

/// Give back what `buffer` holds, read ahead and not started, for another worker to start.
async fn give_back_unstarted(
    worker: &str,
    shared: &Arc<Shared>,
    backend: &AnyBackend,
    buffer: &mut Buffer,
) {
    let unstarted: Vec<Delivery> = buffer.drain().collect();
    for delivery in &unstarted {
        shared.running.forget(delivery);
    }
    if !unstarted.is_empty()
        && let Err(error) = backend.give_back(worker, &unstarted).await
    {
        tracing::warn!(%worker, count = unstarted.len(), error = %Chain(&error), "could not give back the tasks read ahead; they are given back when the worker retires");
    }
}

/// Ends a worker's helpers (signals, renewals, depth reports) when its future is dropped before
/// it stopped: after the tasks it started have ended, or at once outside a runtime.
struct Abandoned {
    running: TaskTracker,
    finished: CancellationToken,
    armed: bool,
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.running.close();
        let (running, finished) = (self.running.clone(), self.finished.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                drop(runtime.spawn(async move {
                    running.wait().await;
                    finished.cancel();
                }));
            }
            Err(_) => finished.cancel(),
        }
    }
}

/// Start `delivery` in `slot`, measuring how long it holds the slot when the worker reads
/// ahead.
fn start(
    running: &TaskTracker,
    shared: &Arc<Shared>,
    busy: &Arc<Busy>,
    pace: &Option<Arc<Pace>>,
    delivery: Delivery,
    slot: tokio::sync::OwnedSemaphorePermit,
) {
    let (shared, busy, pace) = (shared.clone(), busy.clone(), pace.clone());
    busy.enter();
    running.spawn(async move {
        let started = pace.is_some().then(tokio::time::Instant::now);
        // Boxed: the task tokio spawns stays a few bytes, so spawning it does not copy the
        // whole processing future (3.3 KiB) from place to place, as it otherwise does several
        // times.
        Box::pin(process_guarded(&shared, delivery)).await;
        if let (Some(pace), Some(started)) = (pace, started) {
            pace.record(started.elapsed());
        }
        drop(slot);
        busy.leave();
    });
}

/// Resolves once no delivery runs here and the backend holds nothing (never, should it hold
/// something after a second look).
async fn nothing_left(busy: &Busy, backend: &crate::backend::AnyBackend) {
    busy.idle().await;
    for pause in [Duration::ZERO, Duration::from_millis(2)] {
        tokio::time::sleep(pause).await;
        if matches!(backend.outstanding().await, Ok(0)) {
            return;
        }
    }
    std::future::pending().await
}

/// How many deliveries a worker runs, and a wake-up for when none is left.
#[derive(Debug, Default)]
struct Busy {
    running: AtomicUsize,
    idle: Notify,
}

impl Busy {
    fn enter(&self) {
        self.running.fetch_add(1, Ordering::SeqCst);
    }

    fn leave(&self) {
        if self.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    fn is_idle(&self) -> bool {
        self.running.load(Ordering::SeqCst) == 0
    }

    /// Resolves once no delivery runs.
    async fn idle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.is_idle() {
                return;
            }
            idle.await;
        }
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
    hooks: hooks::Hooks,
    /// Its runs by task name over the last minutes, for the dashboard.
    stats: Arc<stats::Recorder>,
}

impl Shared {
    /// Where this worker's measurements come from, for the metrics' labels.
    fn metrics_source(&self) -> crate::metrics::Source<'_> {
        crate::metrics::Source {
            docket: self.docket.name(),
            worker: Some(&self.worker),
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

/// Resolves on ctrl-c, or SIGTERM on Unix: what [`Worker::run`] stops on, for servers that shut
/// down beside their worker (`axum::serve(..).with_graceful_shutdown(docket::shutdown_signal())`).
///
/// # Panics
///
/// When polled outside a tokio runtime, or in one without I/O enabled (`enable_io` or
/// `enable_all` on its builder; `#[tokio::main]` enables it), as `tokio::signal` does.
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
