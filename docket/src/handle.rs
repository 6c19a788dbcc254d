//! The [`Docket`] handle: where tasks are scheduled, cancelled and inspected.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use tokio::sync::OnceCell;
use tracing::Instrument;

use crate::backend::memory::MemoryBackend;
use crate::backend::redis::{RedisBackend, RedisOptions};
use crate::backend::{AnyBackend, Backend, KeyMode, Message};
use crate::config::{self, Settings, Target};
use crate::error::{Error, Result};
use crate::inspect::{DeadLetter, Snapshot, WorkerInfo};
use crate::registry::{Registration, Registry};
use crate::schedule::Disposition;
use crate::schedule::{Placement, Schedule, Scheduled};
use crate::state::Provided;
use crate::task::Task;
use crate::trace::TraceContext;

/// The most tasks one call to the queue stores; `add_many` sends larger batches in chunks.
const PLACE_CHUNK: usize = 500;

/// The default docket, made from the environment on first use or set with
/// [`Docket::set_global`].
static DEFAULT: OnceCell<Docket> = OnceCell::const_new();

/// A handle on one docket: a named set of tasks in one backend. Cheap to clone.
///
/// ```
/// # async fn demo() -> docket::Result<()> {
/// let docket = docket::Docket::connect("memory://").name("plyr").await?;
/// assert_eq!(docket.name(), "plyr");
/// assert!(docket.snapshot().await?.is_empty());
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct Docket {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    concurrency: usize,
    /// Run a task in-process when the backend cannot be reached, rather than fail.
    fallback: bool,
    /// Where tasks wait. In in-process mode, a private memory backend served by `auto_worker`.
    backend: AnyBackend,
    in_process: bool,
    /// The worker an in-process docket starts on the runtime that schedules its first task
    /// (and again if that runtime has gone).
    auto_worker: Mutex<Option<AutoWorker>>,
    /// The in-process docket fallback tasks run on, made when first needed.
    fallback_docket: OnceLock<Docket>,
    /// Values injected into tasks' `State<T>` parameters.
    provided: Provided,
}

impl Docket {
    /// Open the docket the environment describes: `DOCKET_URL`, `DOCKET_NAME` and
    /// `DOCKET_WORKER_CONCURRENCY`. With `DOCKET_URL` unset, tasks run in-process.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable when one is invalid: a `DOCKET_NAME` other than
    /// ASCII letters, digits, `-`, `_` and `.`; a `DOCKET_WORKER_CONCURRENCY` that is not a
    /// whole number from 1 to what a tokio semaphore holds; a `DOCKET_TLS_CA_FILE` that cannot
    /// be read, holds no certificate or one that does not parse. [`Error::UnsupportedUrl`] for
    /// a `DOCKET_URL` of another scheme.
    pub async fn from_env() -> Result<Docket> {
        Docket::open(Settings::from_env()?).await
    }

    /// Open the docket at `url` — `redis://host:port/db`, `rediss://…` (TLS), `memory://`, or
    /// `""` for in-process — named `docket` unless [`Connect::name`] says otherwise. Redis is
    /// reached lazily: an unreachable server shows on first use, not here.
    pub fn connect(url: impl Into<String>) -> Connect {
        Connect {
            url: url.into(),
            name: None,
            concurrency: None,
            redis: RedisOptions::default(),
            fallback: true,
        }
    }

    /// A docket with no durable queue: tasks wait in this process's memory and run on the
    /// caller's tokio runtime, served by a worker the docket starts by itself. Every policy
    /// (keys, retries, limits, results) behaves as with a queue; nothing survives the process.
    pub fn in_process() -> Docket {
        Docket::build(
            config::DEFAULT_NAME.into(),
            config::DEFAULT_CONCURRENCY,
            None,
            true,
            Provided::default(),
        )
    }

    /// A fresh, empty docket held in this process's memory, served by [`Worker`](crate::Worker)s
    /// of this process.
    pub fn memory() -> Docket {
        Docket::build(
            config::DEFAULT_NAME.into(),
            config::DEFAULT_CONCURRENCY,
            Some(AnyBackend::Memory(MemoryBackend::new())),
            true,
            Provided::default(),
        )
    }

    /// The docket `MyTask::schedule(..)` uses when no [`Schedule::on`] is given: the one set with
    /// [`Docket::set_global`], or else one opened with [`Docket::from_env`] on first use.
    pub async fn global() -> Result<Docket> {
        DEFAULT.get_or_try_init(Docket::from_env).await.cloned()
    }

    /// Make this docket the default one. Fails if a default was already installed or made.
    pub fn set_global(&self) -> Result<()> {
        DEFAULT.set(self.clone()).map_err(|_| {
            Error::Config(
                "a default docket is already in use; install it before the first `schedule`".into(),
            )
        })
    }

    async fn open(settings: Settings) -> Result<Docket> {
        let backend = match settings.target {
            Target::InProcess => None,
            Target::Memory => Some(AnyBackend::Memory(MemoryBackend::with_dead_letters(
                settings.redis.dead_letters_kept,
                settings.redis.dead_letter_age,
            ))),
            Target::Redis(url) => Some(AnyBackend::Redis(Box::new(RedisBackend::open(
                &url,
                &settings.name,
                settings.redis,
            )?))),
        };
        Ok(Docket::build(
            settings.name,
            settings.concurrency,
            backend,
            settings.fallback,
            Provided::default(),
        ))
    }

    /// A docket on `backend`, or in-process when there is none.
    fn build(
        name: String,
        concurrency: usize,
        backend: Option<AnyBackend>,
        fallback: bool,
        provided: Provided,
    ) -> Docket {
        let in_process = backend.is_none();
        Docket {
            inner: Arc::new(Inner {
                name,
                concurrency,
                fallback,
                backend: backend.unwrap_or_else(|| AnyBackend::Memory(MemoryBackend::new())),
                in_process,
                auto_worker: Mutex::new(None),
                fallback_docket: OnceLock::new(),
                provided,
            }),
        }
    }

    /// Give tasks a shared value: every task with a `State<T>` parameter receives a clone of it.
    /// Provide each type once, before starting workers (a later call replaces the value for
    /// tasks that start afterwards). Clones of this handle share the values.
    pub fn provide<T: Clone + Send + Sync + 'static>(&self, value: T) -> &Self {
        self.inner.provided.insert(value);
        self
    }

    pub(crate) fn provided(&self) -> &Provided {
        &self.inner.provided
    }

    /// The in-process docket fallback tasks run on (this docket itself in in-process mode).
    pub(crate) fn fallback_docket(&self) -> &Docket {
        if self.inner.in_process {
            return self;
        }
        self.inner.fallback_docket.get_or_init(|| {
            Docket::build(
                self.inner.name.clone(),
                self.inner.concurrency,
                None,
                false,
                self.inner.provided.clone(),
            )
        })
    }

    /// The fallback docket, if one was made.
    pub(crate) fn fallback_if_made(&self) -> Option<&Docket> {
        self.inner.fallback_docket.get()
    }

    /// In in-process mode, make sure a worker serves this docket on the current runtime.
    pub(crate) fn ensure_auto_worker(&self) -> Result<()> {
        if !self.inner.in_process {
            return Ok(());
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let mut worker = self
            .inner
            .auto_worker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if worker.as_ref().is_none_or(|auto| auto.handle.is_finished()) {
            let auto = crate::worker::Worker::new(self).automatic();
            let stop = tokio_util::sync::CancellationToken::new();
            let stopped = stop.clone().cancelled_owned();
            let handle = runtime.spawn(async move {
                if let Err(error) = auto.run_until(stopped).await {
                    tracing::error!(error = %crate::error::Chain(&error), "the in-process docket worker stopped");
                }
            });
            *worker = Some(AutoWorker { handle, stop });
        }
        Ok(())
    }

    /// Stop the worker of an in-process docket (or of this docket's fallback) from taking
    /// tasks, and wait for the ones it runs. A later schedule starts a new one.
    pub(crate) async fn stop_auto_worker(&self) {
        let docket = match self.inner.in_process {
            true => self,
            false => match self.fallback_if_made() {
                Some(fallback) => fallback,
                None => return,
            },
        };
        let auto = docket
            .inner
            .auto_worker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(auto) = auto {
            auto.stop.cancel();
            let _ = auto.handle.await;
        }
    }

    /// The docket's name: the namespace of its storage.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The concurrency a [`Worker`](crate::Worker) of this docket uses unless told otherwise.
    pub fn worker_concurrency(&self) -> usize {
        self.inner.concurrency
    }

    /// Whether tasks go to a queue (`memory://` or a durable backend) rather than running
    /// in-process.
    pub fn has_queue(&self) -> bool {
        !self.inner.in_process
    }

    /// How many Redis commands this handle has sent, for watching what a workload costs
    /// (0 unless the docket is on Redis).
    pub fn commands_sent(&self) -> u64 {
        match &self.inner.backend {
            AnyBackend::Redis(redis) => redis.commands_sent(),
            AnyBackend::Memory(_) => 0,
        }
    }

    /// Schedule `task` on this docket; set options on the returned builder, then `.await` it.
    pub fn add<T: Task>(&self, task: T) -> Schedule<T> {
        Schedule::new(task).on(self)
    }

    /// Cancel the task with this key: a waiting task is removed; a running one is told to stop,
    /// wherever it runs, and is dropped at its next await point (best effort: code between two
    /// awaits runs to the next one). Fallback tasks of this process are cancelled too. Returns
    /// `false` when no task with the key was waiting or running.
    pub async fn cancel(&self, key: &str) -> Result<bool> {
        let local = match self.fallback_if_made() {
            Some(fallback) => fallback.inner.backend.cancel(key).await?,
            None => false,
        };
        let queued = self.inner.backend.cancel(key).await?;
        if local || queued {
            crate::results::record_cancelled(self, key).await;
        }
        Ok(local || queued)
    }

    /// Everything waiting, scheduled, running and held by strikes.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        self.inner.backend.snapshot().await
    }

    /// The workers serving this docket: on Redis every consumer of its group, with how many
    /// tasks each runs and how long since it was last heard from.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        self.inner.backend.workers().await
    }

    /// Remove every queued and scheduled task (running, held and dead ones stay); returns how
    /// many were removed.
    pub async fn clear(&self) -> Result<usize> {
        self.inner.backend.clear().await
    }

    /// Tasks that will not run again on their own, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        self.inner.backend.dead_letters().await
    }

    /// Forget the dead letter with this key, for good. Returns `false` when there is none.
    /// Dead letters also go by themselves past [`Connect::dead_letters`]' limits.
    pub async fn remove_dead_letter(&self, key: &str) -> Result<bool> {
        self.inner.backend.remove_dead_letter(key).await
    }

    /// Queue the dead letter with this key again as a first attempt. Returns `false` when there
    /// is no such dead letter, or a live task holds its key.
    pub async fn replay(&self, key: &str) -> Result<bool> {
        self.inner.backend.replay(key).await
    }

    /// Schedule a task by name, with its arguments as a JSON object, to run now.
    ///
    /// For producers that do not link the task's code, such as a web tier scheduling work for
    /// workers built separately, and for operators. Nothing is checked against the task's
    /// argument types here: a worker that cannot decode the arguments, or does not know the name,
    /// keeps the task as a [`DeadLetter`]. Prefer the typed `MyTask::schedule(..)` where the
    /// task's crate is at hand. In in-process mode the name must be a task of this binary.
    pub async fn add_json(&self, task: &str, args: &str) -> Result<Scheduled> {
        let parsed: serde_json::Value =
            serde_json::from_str(args).map_err(|source| Error::Json {
                task: task.to_owned(),
                source,
            })?;
        if !parsed.is_object() {
            return Err(Error::Config(format!(
                "the arguments of `{task}` must be a JSON object, not `{args}`"
            )));
        }
        let message = Message {
            task: task.to_owned(),
            key: crate::key::unique(),
            args: args.to_owned(),
            attempt: 1,
            due: SystemTime::now(),
            history: Vec::new(),
            trace: None,
        };
        // Without it the task cannot run in-process, as a fallback or otherwise.
        let registration = Registry::global()?.get(task).copied();
        self.schedule_one(registration, message, KeyMode::Fresh)
            .await
    }

    /// Schedule many tasks of one type in one round trip to the queue: the fast way to enqueue
    /// a large amount of work. Each [`Schedule`] keeps its own options (`key`, `after`, ...); its
    /// `on` is ignored in favour of this docket. The receipts come back in order.
    ///
    /// ```
    /// # #[docket::task] async fn thumbnail(upload_id: u64) {}
    /// # async fn demo() -> docket::Result<()> {
    /// let docket = docket::Docket::connect("memory://").await?;
    /// let receipts = docket.add_many((0..1000).map(Thumbnail::schedule)).await?;
    /// assert_eq!(receipts.len(), 1000);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// Every schedule is checked before anything is sent: one with an invalid key
    /// ([`Error::InvalidKey`]), a due time past the year 9999 ([`Error::InvalidDue`]) or
    /// arguments that do not encode fails the whole batch, and nothing of it is stored. An
    /// encoded task over the payload limit of a Redis docket is an [`Error::PayloadTooLarge`],
    /// also before anything is stored; the backend's own failures are [`Error::Backend`] or
    /// [`Error::Unavailable`].
    pub async fn add_many<T: Task>(
        &self,
        schedules: impl IntoIterator<Item = Schedule<T>>,
    ) -> Result<Vec<Scheduled>> {
        let batch = schedules
            .into_iter()
            .map(Schedule::into_message)
            .collect::<Result<Vec<_>>>()?;
        let span = tracing::info_span!(
            "docket.schedule",
            task = T::NAME,
            count = batch.len(),
            placement = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        self.place(Some(Registration::of::<T>()), batch)
            .instrument(span)
            .await
    }

    pub(crate) fn backend(&self) -> &AnyBackend {
        &self.inner.backend
    }

    /// Hand one task to the queue, or run it in-process, inside its `docket.schedule` span.
    pub(crate) async fn schedule_one(
        &self,
        registration: Option<Registration>,
        message: Message,
        mode: KeyMode,
    ) -> Result<Scheduled> {
        let span = tracing::info_span!(
            "docket.schedule",
            task = %message.task,
            key = %message.key,
            placement = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        let mut receipts = self
            .place(registration, vec![(message, mode)])
            .instrument(span)
            .await?;
        Ok(receipts.pop().expect("one receipt per task"))
    }

    /// Hand the batch to the queue; run it in-process when there is none or it is unreachable
    /// (given the task's `registration`, without which it cannot run here).
    async fn place(
        &self,
        registration: Option<Registration>,
        mut batch: Vec<(Message, KeyMode)>,
    ) -> Result<Vec<Scheduled>> {
        let Some(task) = batch.first().map(|(message, _)| message.task.clone()) else {
            return Ok(Vec::new());
        };
        let trace = TraceContext::for_schedule();
        let span = tracing::Span::current();
        span.record("trace_id", trace.trace_hex());
        span.record("span_id", trace.span_hex());
        let traceparent = trace.to_string();
        for (message, _) in &mut batch {
            message.trace = Some(traceparent.clone());
        }
        let count = batch.len();
        // Each part of the batch lands somewhere: all in-process, or each chunk in the queue or,
        // when the queue cannot be reached, in-process instead.
        let placed: Vec<(Placement, Vec<Disposition>, &Docket)> = if self.inner.in_process {
            if registration.is_none() {
                return Err(Error::Config(format!(
                    "no task named `{task}` is registered in this binary, so it cannot run in-process"
                )));
            }
            self.ensure_auto_worker()?;
            tracing::debug!(count, "running {task} in-process (DOCKET_URL is unset)");
            let dispositions = self.inner.backend.enqueue(&batch).await?;
            vec![(Placement::InProcess, dispositions, self)]
        } else {
            self.enqueue_in_chunks(registration.is_some(), &task, &batch)
                .await?
        };
        let fell_back = placed
            .iter()
            .any(|(placement, ..)| *placement == Placement::Fallback);
        let placement = match placed.first() {
            Some((Placement::InProcess, ..)) => Placement::InProcess,
            _ if fell_back => Placement::Fallback,
            _ => Placement::Queue,
        };
        tracing::Span::current().record("placement", placement.as_str());
        let added = placed
            .iter()
            .flat_map(|(_, dispositions, _)| dispositions)
            .filter(|disposition| **disposition != Disposition::Duplicate)
            .count();
        crate::metrics::added(&task, added as u64);
        let mut batch = batch.into_iter();
        let mut receipts = Vec::with_capacity(count);
        for (placement, dispositions, docket) in placed {
            let part: Vec<Scheduled> = batch
                .by_ref()
                .zip(dispositions)
                .map(|((message, _), disposition)| Scheduled {
                    task: message.task,
                    key: message.key,
                    due: message.due,
                    placement,
                    disposition,
                    docket: docket.clone(),
                })
                .collect();
            if let Some(ttl) = registration.and_then(|r| r.policy().result_ttl()) {
                crate::results::record_scheduled(docket, &part, ttl).await;
            }
            receipts.extend(part);
        }
        Ok(receipts)
    }

    /// Hand `batch` to the queue in chunks of at most [`PLACE_CHUNK`] tasks, one after the
    /// other; from the first chunk that cannot reach the queue on, the rest runs in-process
    /// instead (when the task is registered here and the fallback is on). One entry per chunk,
    /// in order.
    ///
    /// Chunks go one at a time so that a failure leaves a known part stored: the tasks before
    /// it ([`Error::BatchIncomplete`] says how many), never an unknown subset. Every task of a
    /// batch larger than one chunk is checked before anything is sent, so a predictable refusal
    /// (a payload over the limit) writes nothing.
    async fn enqueue_in_chunks<'a>(
        &'a self,
        registered: bool,
        task: &str,
        batch: &[(Message, KeyMode)],
    ) -> Result<Vec<(Placement, Vec<Disposition>, &'a Docket)>> {
        if batch.len() > PLACE_CHUNK {
            self.inner.backend.check(batch)?;
        }
        let mut placed = Vec::new();
        let mut stored = 0;
        for chunk in batch.chunks(PLACE_CHUNK) {
            match self.inner.backend.enqueue(chunk).await {
                Ok(dispositions) => {
                    tracing::debug!(count = chunk.len(), "scheduled {task} via docket");
                    placed.push((Placement::Queue, dispositions, self));
                    stored += chunk.len();
                }
                Err(error) if error.is_unavailable() && registered && self.inner.fallback => {
                    tracing::warn!(
                        count = batch.len() - stored,
                        error = %crate::error::Chain(&error),
                        "docket scheduling failed, falling back to in-process"
                    );
                    let fallback = self.fallback_docket();
                    fallback.ensure_auto_worker()?;
                    let rest = &batch[stored..];
                    let dispositions = fallback.inner.backend.enqueue(rest).await?;
                    placed.push((Placement::Fallback, dispositions, fallback));
                    return Ok(placed);
                }
                Err(error) if stored == 0 => return Err(error),
                Err(error) => {
                    return Err(Error::BatchIncomplete {
                        stored,
                        source: Box::new(error),
                    });
                }
            }
        }
        Ok(placed)
    }
}

/// The worker an in-process docket runs by itself, and how to stop it.
struct AutoWorker {
    handle: tokio::task::JoinHandle<()>,
    stop: tokio_util::sync::CancellationToken,
}

impl fmt::Debug for Docket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Docket");
        debug.field("name", &self.inner.name);
        match &self.inner.backend {
            _ if self.inner.in_process => debug.field("backend", &"in-process"),
            AnyBackend::Memory(_) => debug.field("backend", &"memory://"),
            AnyBackend::Redis(redis) => debug.field("backend", redis),
        };
        debug.finish_non_exhaustive()
    }
}

/// Options for opening a docket from a URL; `.await` it to connect.
///
/// # Errors
///
/// Awaiting it checks every setting before anything is connected, and returns
/// [`Error::Config`] naming the setting and its valid range for: a name other than ASCII
/// letters, digits, `-`, `_` and `.`; a worker concurrency of 0 or above what a tokio semaphore
/// holds; a redelivery timeout outside 100 ms ..= 7 days; a payload limit outside 256 bytes ..=
/// 512 MiB; `max_deliveries(0)`; a CA that holds no certificate, or one that does not parse. A
/// URL of another scheme is an [`Error::UnsupportedUrl`]. Errors and `Debug` output show the URL
/// with its password replaced by `***`.
#[must_use = "a connection is only made when `.await`ed"]
pub struct Connect {
    url: String,
    name: Option<String>,
    concurrency: Option<usize>,
    redis: RedisOptions,
    fallback: bool,
}

/// Shows the URL with its password replaced by `***`, never the password.
impl fmt::Debug for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connect")
            .field("url", &config::redact(&self.url))
            .field("name", &self.name)
            .field("concurrency", &self.concurrency)
            .field("redis", &self.redis)
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl Connect {
    /// The docket's name, its storage namespace (default `docket`): ASCII letters, digits, `-`,
    /// `_` and `.`, so that it can stand in Redis ACL key patterns as it is.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The concurrency workers of this docket use by default (default 10); from 1 to what a
    /// tokio semaphore holds.
    pub fn worker_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = Some(concurrency);
        self
    }

    /// How long a running task's worker may go silent before another worker takes the task
    /// over and runs it again (default 5 minutes). Live workers renew their tasks well within
    /// it, so it bounds how late a crashed worker's tasks restart, not how long a task may run.
    /// From 100 ms to 7 days.
    pub fn redelivery_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.redis.redelivery_timeout = timeout;
        self
    }

    /// The largest encoded task accepted, in bytes (default 1 MiB). Scheduling a larger one is
    /// an [`Error::PayloadTooLarge`]; a worker keeps a larger one it finds as a dead letter.
    /// From 256 bytes to 512 MiB; give producers and workers the same limit.
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.redis.max_payload = bytes;
        self
    }

    /// Whether `schedule` runs a task in-process when the backend cannot be reached (the
    /// default), or returns the [`Error::Unavailable`] so the caller can decide. Turn it off
    /// where running the work in this process is worse than failing the request, or when the
    /// caller retries on its own.
    pub fn in_process_fallback(mut self, enabled: bool) -> Self {
        self.fallback = enabled;
        self
    }

    /// How many times a task may be handed to a worker that then vanishes without settling it
    /// (default 5). Past that, the task is a dead letter: it most likely kills its worker, by
    /// exiting the process or exhausting memory. Failures that workers report count against
    /// `retries` instead. At least 1.
    pub fn max_deliveries(mut self, deliveries: u32) -> Self {
        self.redis.max_deliveries = u64::from(deliveries);
        self
    }

    /// Keep at most `kept` dead letters (default 10,000), none older than `age` (default 30
    /// days); past either, the oldest go first, as the next one is written. Bounds what a
    /// docket keeps of failed tasks' arguments, and the size of its dead-letter hash (managed
    /// Redis services cap one record's size). `kept` at least 1, `age` at least a minute.
    pub fn dead_letters(mut self, kept: usize, age: std::time::Duration) -> Self {
        self.redis.dead_letters_kept = kept;
        self.redis.dead_letter_age = age;
        self
    }

    /// For `rediss://`: trust the certificates in this PEM (a private CA) instead of the
    /// system's roots. `DOCKET_TLS_CA_FILE` names such a file for [`Docket::from_env`]. It must
    /// hold at least one `-----BEGIN CERTIFICATE-----` block, and every such block must parse.
    pub fn tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.redis.tls_ca = Some(pem.into());
        self
    }

    async fn open(self) -> Result<Docket> {
        let name = match self.name {
            Some(name) => config::validate_name(&name)?.to_owned(),
            None => config::DEFAULT_NAME.to_owned(),
        };
        let concurrency = config::validate_concurrency(
            self.concurrency.unwrap_or(config::DEFAULT_CONCURRENCY),
            "`Connect::worker_concurrency`, `--concurrency`",
        )?;
        config::validate_options(&self.redis)?;
        Docket::open(Settings {
            target: Target::parse(&self.url)?,
            name,
            concurrency,
            redis: self.redis,
            fallback: self.fallback,
        })
        .await
    }
}

impl IntoFuture for Connect {
    type Output = Result<Docket>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Docket>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.open())
    }
}
