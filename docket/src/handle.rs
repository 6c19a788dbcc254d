//! The [`Docket`] handle: opening one, the default docket, and what it answers about its tasks.
//! Scheduling is in `schedule.rs`, the builder in `connect.rs`.

use std::fmt;
use std::sync::{Arc, OnceLock};

use tokio::sync::OnceCell;

use crate::backend::memory::MemoryBackend;
use crate::backend::redis::partitions::Partitions;
use crate::backend::{AnyBackend, Backend};
use crate::config::{self, Settings, Target};
use crate::connect::Connect;
use crate::error::{Error, Result};
use crate::inspect::{DeadLetter, Snapshot, WorkerInfo};
use crate::state::Provided;
use crate::worker::in_process::AutoWorker;

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
///
/// # Panics
///
/// On a Redis docket, its `async` methods panic when polled outside a tokio runtime with I/O and
/// time enabled, as tokio's own I/O does; `#[tokio::main]` and `#[tokio::test]` provide one.
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
    auto_worker: AutoWorker,
    /// The in-process docket fallback tasks run on, made when first needed.
    fallback_docket: OnceLock<Docket>,
    /// Values injected into tasks' `State<T>` parameters.
    provided: Provided,
}

impl Docket {
    /// Open the docket the environment describes: `DOCKET_URL`, `DOCKET_NAME` and
    /// `DOCKET_WORKER_CONCURRENCY`. With `DOCKET_URL` unset, tasks run in-process.
    /// `DOCKET_METRICS_NAMES=pydocket` also reports metrics under pydocket's names, from now on
    /// in the whole process (see [`metrics`](crate::metrics)).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable when one is invalid: a `DOCKET_NAME` other than
    /// ASCII letters, digits, `-`, `_` and `.`; a `DOCKET_WORKER_CONCURRENCY` that is not a
    /// whole number from 1 to what a tokio semaphore holds; a `DOCKET_TLS_CA_FILE` that cannot
    /// be read, holds no certificate or one that does not parse; a `DOCKET_METRICS_NAMES` other
    /// than `docket` or `pydocket`. [`Error::UnsupportedUrl`] for
    /// a `DOCKET_URL` of another scheme, and [`Error::Config`] for a Redis URL that does not
    /// parse. Nothing is connected yet, so an unreachable server is no error
    /// here.
    pub async fn from_env() -> Result<Docket> {
        Docket::open(Settings::from_env()?).await
    }

    /// Open the docket at `url` — `redis://host:port/db`, `rediss://…` (TLS),
    /// `unix:///path/to/redis.sock`, `redis+cluster://host:port,host:port` (a Redis Cluster),
    /// `redis+sentinel://host:port,host:port/name` (a master watched by Sentinels), `memory://`,
    /// or `""` for in-process — named `docket` unless [`Connect::name`] says otherwise. Redis is
    /// reached lazily: an unreachable server shows on first use, not here. See [`Connect`] for
    /// the errors awaiting it returns.
    pub fn connect(url: impl Into<String>) -> Connect {
        Connect::new(url.into())
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

    /// A docket on the memory backend `memory` (the `docket::testing` time machine's).
    #[cfg(feature = "testing")]
    pub(crate) fn on_memory(memory: MemoryBackend) -> Docket {
        Docket::build(
            config::DEFAULT_NAME.into(),
            config::DEFAULT_CONCURRENCY,
            Some(AnyBackend::Memory(memory)),
            false,
            Provided::default(),
        )
    }

    /// The docket `MyTask::schedule(..)` uses when no [`Schedule::on`](crate::Schedule::on) is
    /// given: the one set with [`Docket::set_global`], or else one opened with
    /// [`Docket::from_env`] on first use.
    ///
    /// # Errors
    ///
    /// Those of [`Docket::from_env`], while no default docket is made: an invalid environment
    /// fails every call until one succeeds or [`Docket::set_global`] installs one.
    pub async fn global() -> Result<Docket> {
        DEFAULT.get_or_try_init(Docket::from_env).await.cloned()
    }

    /// Make this docket the default one.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when a default docket is already in place: installed by an earlier call,
    /// or made from the environment by [`Docket::global`] (as the first `schedule` without
    /// [`Schedule::on`](crate::Schedule::on) does). The default stays what it was.
    pub fn set_global(&self) -> Result<()> {
        DEFAULT.set(self.clone()).map_err(|_| {
            Error::Config(
                "a default docket is already in use; install it before the first `schedule`".into(),
            )
        })
    }

    pub(crate) async fn open(settings: Settings) -> Result<Docket> {
        if let Some(names) = settings.metrics_names {
            crate::metrics::set_names(names);
        }
        #[cfg(feature = "pydocket")]
        if settings.redis.protocol == crate::connect::Protocol::Pydocket
            && !matches!(settings.target, Target::Redis(_))
        {
            return Err(Error::Config(
                "the pydocket protocol needs a Redis URL (`redis://`, `rediss://`, `redis+sentinel://`)".into(),
            ));
        }
        let backend = match settings.target {
            Target::InProcess => None,
            Target::Memory => Some(AnyBackend::Memory(MemoryBackend::with_dead_letters(
                settings.redis.dead_letters_kept,
                settings.redis.dead_letter_age,
            ))),
            #[cfg(feature = "pydocket")]
            Target::Redis(url) if settings.redis.protocol == crate::connect::Protocol::Pydocket => {
                Some(AnyBackend::Pydocket(Box::new(
                    crate::backend::redis::pydocket::PydocketBackend::open(
                        &url,
                        &settings.name,
                        settings.redis,
                    )?,
                )))
            }
            Target::Redis(url) => Some(AnyBackend::Redis(Box::new(
                Partitions::connect(&url, &settings.name, settings.redis).await?,
            ))),
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
                auto_worker: AutoWorker::default(),
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
        self.inner.auto_worker.ensure(self)
    }

    /// Where this docket reads the time: the system's clock, or the virtual one of a
    /// `docket::testing` docket.
    pub(crate) fn clock(&self) -> crate::time::Clock {
        match self.backend() {
            AnyBackend::Memory(memory) => memory.clock(),
            _ => crate::time::Clock::System,
        }
    }

    /// The hooks this in-process docket's own worker runs.
    pub(crate) fn auto_hooks(&self) -> &crate::worker::hooks::Hooks {
        self.inner.auto_worker.hooks()
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
        docket.inner.auto_worker.stop().await;
    }

    /// Whether `schedule` runs a task in-process when the backend cannot be reached.
    pub(crate) fn falls_back(&self) -> bool {
        self.inner.fallback
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
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(redis) => redis.commands_sent(),
            AnyBackend::Memory(_) => 0,
        }
    }

    /// Cancel the task with this key: a waiting task is removed; a running one is told to stop,
    /// wherever it runs, and is dropped at its next await point (best effort: code between two
    /// awaits runs to the next one). Fallback tasks of this process are cancelled too. Returns
    /// `false` when no task with the key was waiting or running. A task that keeps results
    /// and had not ended has its record say cancelled, in the same step.
    ///
    /// # Errors
    ///
    /// On a Redis docket, [`Error::Unavailable`] when Redis cannot be reached or does not answer
    /// in time, and [`Error::Backend`] when it refuses the command. Other dockets never fail here.
    pub async fn cancel(&self, key: &str) -> Result<bool> {
        let local = match self.fallback_if_made() {
            Some(fallback) => fallback.inner.backend.cancel(key).await?,
            None => false,
        };
        let queued = self.inner.backend.cancel(key).await?;
        Ok(local || queued)
    }

    /// Everything waiting, scheduled, running and held by strikes.
    ///
    /// # Errors
    ///
    /// On a Redis docket, [`Error::Unavailable`] when Redis cannot be reached or does not answer
    /// in time, and [`Error::Backend`] when it refuses the command. Other dockets never fail here.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        let mut snapshot = self.inner.backend.snapshot().await?;
        snapshot.fill_attempts();
        Ok(snapshot)
    }

    /// The workers serving this docket: on Redis every consumer of its group, with how many
    /// tasks each runs and how long since it was last heard from.
    ///
    /// # Errors
    ///
    /// On a Redis docket, [`Error::Unavailable`] when Redis cannot be reached or does not answer
    /// in time, and [`Error::Backend`] when it refuses the command. Other dockets never fail here.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        self.inner.backend.workers().await
    }

    /// Remove every queued and scheduled task (running, held and dead ones stay); returns how
    /// many were removed.
    ///
    /// # Errors
    ///
    /// On a Redis docket, [`Error::Unavailable`] when Redis cannot be reached or does not answer
    /// in time, and [`Error::Backend`] when it refuses the command. Other dockets never fail here.
    pub async fn clear(&self) -> Result<usize> {
        self.inner.backend.clear().await
    }

    /// Tasks that will not run again on their own, oldest first.
    ///
    /// # Errors
    ///
    /// On a Redis docket, [`Error::Unavailable`] when Redis cannot be reached or does not answer
    /// in time, and [`Error::Backend`] when it refuses the command. Other dockets never fail here.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        self.inner.backend.dead_letters().await
    }

    /// Forget the dead letter with this key, for good. Returns `false` when there is none.
    /// Dead letters also go by themselves past [`Connect::dead_letters`]' limits.
    ///
    /// # Errors
    ///
    /// On a Redis docket, [`Error::Unavailable`] when Redis cannot be reached or does not answer
    /// in time, and [`Error::Backend`] when it refuses the command. Other dockets never fail here.
    pub async fn remove_dead_letter(&self, key: &str) -> Result<bool> {
        self.inner.backend.remove_dead_letter(key).await
    }

    /// Queue the dead letter with this key again as a first attempt. Returns `false` when there
    /// is no such dead letter, or a live task holds its key.
    ///
    /// # Errors
    ///
    /// On a Redis docket, [`Error::Unavailable`] when Redis cannot be reached or does not answer
    /// in time, and [`Error::Backend`] when it refuses the command. Other dockets never fail here.
    pub async fn replay(&self, key: &str) -> Result<bool> {
        self.inner.backend.replay(key).await
    }

    pub(crate) fn backend(&self) -> &AnyBackend {
        &self.inner.backend
    }
}

impl fmt::Debug for Docket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Docket");
        debug.field("name", &self.inner.name);
        match &self.inner.backend {
            _ if self.inner.in_process => debug.field("backend", &"in-process"),
            AnyBackend::Memory(_) => debug.field("backend", &"memory://"),
            AnyBackend::Redis(redis) => debug.field("backend", redis),
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(redis) => debug.field("backend", redis),
        };
        debug.finish_non_exhaustive()
    }
}
