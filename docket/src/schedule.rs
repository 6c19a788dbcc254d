//! The producer's path: the [`Schedule`] builder every `MyTask::schedule(..)` returns, the
//! `Docket` methods that add tasks (`add`, `add_many`, `add_json`), placement (the queue, or the
//! in-process fallback when the queue cannot be reached), and the receipt, [`Scheduled`].

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::backend::{Backend, CooldownGate, KeyMode, Message};
use crate::error::{Error, Result};
use crate::handle::Docket;
use crate::registry::{Registration, Registry};
use crate::results::TaskRecord;
use crate::task::Task;
use crate::trace::TraceContext;

/// A task about to be scheduled: set when and under which key, then `.await` it.
///
/// ```no_run
/// # #[docket::task] async fn transcode(track_id: i64, format: String) {}
/// # async fn demo() -> docket::Result<()> {
/// use std::time::Duration;
///
/// Transcode::schedule(7, "opus".into())
///     .after(Duration::from_secs(30))
///     .key("transcode-7-opus")
///     .await?;
/// # Ok(()) }
/// ```
///
/// Without [`Schedule::on`] the task goes to the default docket, made from the environment on
/// first use (see [`Docket::global`]).
///
/// # Errors
///
/// Awaiting it checks the inputs before anything is stored: a key that is empty, over 1024
/// bytes or holds a control character is an [`Error::InvalidKey`]; a due time after the end of
/// the year 9999 is an [`Error::InvalidDue`]; arguments that do not encode are an
/// [`Error::Encode`]; an argument a per-argument limit counts by (`concurrency(arg)`,
/// `rate_limit(arg)`) whose value is over 1024 bytes as JSON is an [`Error::ScopeTooLong`].
/// The backend's refusals follow ([`Error::PayloadTooLarge`],
/// [`Error::Backend`], or [`Error::Unavailable`] when the in-process fallback is off).
/// Without [`Schedule::on`], opening the default docket may fail first, as [`Docket::global`]
/// does; a docket that runs tasks in-process returns [`Error::NoRuntime`] outside a tokio
/// runtime.
///
/// # Cancel safety
///
/// The task is stored in one atomic step: dropping the future before it completes leaves it
/// either scheduled or not, never half-written. Which one is unknown once the request has gone
/// to Redis, and a generated key is lost with the receipt. To make trying again safe, give the
/// task a [key](Schedule::key): while a first try's task waits or runs, the second is a
/// [`Disposition::Duplicate`].
#[must_use = "a schedule does nothing until it is `.await`ed"]
pub struct Schedule<T> {
    task: T,
    when: When,
    key: Option<String>,
    mode: KeyMode,
    docket: Option<Docket>,
}

#[derive(Debug, Clone, Copy)]
enum When {
    Now,
    At(SystemTime),
    After(Duration),
}

impl<T: Task> Schedule<T> {
    /// Schedule `task` to run now, under a fresh unique key, on the default docket.
    pub fn new(task: T) -> Self {
        Schedule {
            task,
            when: When::Now,
            key: None,
            mode: KeyMode::Add,
            docket: None,
        }
    }

    /// Run the task at `when` (now, if it has passed).
    ///
    /// A time after the end of the year 9999 is an [`Error::InvalidDue`] when the schedule is
    /// awaited.
    pub fn at(mut self, when: SystemTime) -> Self {
        self.when = When::At(when);
        self
    }

    /// Run the task `delay` after it is scheduled.
    ///
    /// A delay reaching past the end of the year 9999 (such as `Duration::MAX`) is an
    /// [`Error::InvalidDue`] when the schedule is awaited.
    pub fn after(mut self, delay: Duration) -> Self {
        self.when = When::After(delay);
        self
    }

    /// Give the task a key. While a task with this key waits or runs, scheduling another with
    /// the same key does nothing (see [`Disposition::Duplicate`]), unless [`Schedule::replace`]
    /// is set. [`Docket::cancel`] takes the key.
    ///
    /// The key must be non-empty, at most 1024 bytes, and free of control characters; any
    /// other is an [`Error::InvalidKey`] when the schedule is awaited, and nothing is scheduled.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Replace a waiting task with the same key instead of keeping it. A running one is not
    /// interrupted: this task is added beside it and may start before it ends.
    pub fn replace(mut self) -> Self {
        self.mode = KeyMode::Replace;
        self
    }

    /// Schedule on `docket` rather than on the default docket.
    pub fn on(mut self, docket: &Docket) -> Self {
        self.docket = Some(docket.clone());
        self
    }

    /// The stored form of the task: its encoded arguments, key and due time.
    ///
    /// Checks every input first, so that a bad schedule in a batch fails the batch before
    /// anything of it is sent.
    #[cfg(test)]
    pub(crate) fn into_message(self) -> Result<(Message, KeyMode)> {
        self.into_message_at(SystemTime::now())
    }

    /// [`Schedule::into_message`], with the docket's clock reading `now`.
    pub(crate) fn into_message_at(self, now: SystemTime) -> Result<(Message, KeyMode)> {
        let args = serde_json::to_string(&self.task).map_err(|source| Error::Encode {
            task: T::NAME,
            source,
        })?;
        let policy = T::policy();
        check_scopes(T::NAME, &policy, &args)?;
        let (key, mode) = match (self.key, policy.debounce()) {
            (Some(key), _) => {
                crate::key::validate(&key)?;
                (key, self.mode)
            }
            // Debounced: one key per scope, each schedule replacing the waiting one.
            (None, Some(debounce)) => {
                let key = debounce_key(T::NAME, debounce.param, &args);
                crate::key::validate(&key)?;
                (key, KeyMode::Replace)
            }
            (None, None) => (crate::key::unique(), KeyMode::Fresh),
        };
        let when = match (self.when, policy.debounce()) {
            (When::Now, Some(debounce)) => When::After(debounce.window),
            (when, _) => when,
        };
        let due = match when {
            When::Now => Some(now),
            When::At(when) => Some(when).filter(|when| *when <= crate::time::latest_due()),
            When::After(delay) => crate::time::checked_due(now, delay),
        };
        let due = due.ok_or_else(|| Error::InvalidDue {
            task: T::NAME.to_owned(),
        })?;
        let mut message = Message::first_attempt(T::NAME, key, args, due);
        message.cooldown = policy.cooldown().map(|cooldown| CooldownGate {
            scope: cooldown_scope(T::NAME, cooldown.param, &message.args),
            window: cooldown.window,
        });
        Ok((message, mode))
    }

    async fn schedule(mut self) -> Result<Scheduled> {
        let docket = match self.docket.take() {
            Some(docket) => docket,
            None => Docket::global().await?,
        };
        let (message, mode) = self.into_message_at(docket.clock().now())?;
        docket
            .schedule_one(Some(Registration::of::<T>()), message, mode)
            .await
    }
}

/// The longest value, as JSON, of an argument that a per-argument limit (`concurrency(arg)`,
/// `rate_limit(arg)`) counts by, and of the value a strike compares with: the value becomes part
/// of a Redis key (`{name}:slot:task:arg=value`) or sorted-set member, which managed Redis
/// services cap (Upstash: 32 KB), so it is bounded like a task key (see
/// [`crate::key::MAX_KEY_BYTES`]).
pub(crate) const MAX_SCOPE_BYTES: usize = 1024;

/// The value of the argument `param` in the decoded arguments `fields`, as the JSON text that
/// names a per-argument limit's scope (`null` when the argument is missing).
pub(crate) fn scope_value(
    fields: Option<&serde_json::Map<String, serde_json::Value>>,
    param: &str,
) -> String {
    fields
        .and_then(|fields| fields.get(param))
        .unwrap_or(&serde_json::Value::Null)
        .to_string()
}

/// Every argument a per-argument limit of `policy` counts by has a value of at most
/// [`MAX_SCOPE_BYTES`] as JSON; else the [`Error::ScopeTooLong`] of the first that has not.
/// (A debounce needs no check: [`debounce_key`] shortens a long value itself.)
fn check_scopes(task: &str, policy: &crate::policy::Policy, args: &str) -> Result<()> {
    let scoped = [
        (
            "concurrency",
            policy.concurrency().and_then(|limit| limit.param),
        ),
        (
            "rate_limit",
            policy.rate_limit().and_then(|limit| limit.param),
        ),
    ];
    if scoped.iter().all(|(_, param)| param.is_none()) {
        return Ok(());
    }
    let fields = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(args).ok();
    for (policy, param) in scoped {
        let Some(param) = param else {
            continue;
        };
        let len = scope_value(fields.as_ref(), param).len();
        if len > MAX_SCOPE_BYTES {
            return Err(Error::ScopeTooLong {
                task: task.to_owned(),
                param: param.to_owned(),
                policy,
                len,
                limit: MAX_SCOPE_BYTES,
            });
        }
    }
    Ok(())
}

/// The key a debounced task is stored under: the task name, plus the scoping argument's value
/// (see [`scope_name`]).
fn debounce_key(task: &str, param: Option<&str>, args: &str) -> String {
    scope_name(&format!("{task}:debounce"), param, args)
}

/// The scope a cooldown counts by: the task name, plus the scoping argument's value (see
/// [`scope_name`]). The backend keeps the scope's window under it (on Redis, in the key
/// `{name}:cooldown:<scope>`).
fn cooldown_scope(task: &str, param: Option<&str>, args: &str) -> String {
    scope_name(task, param, args)
}

/// `prefix` alone, or `{prefix}:{param}={value}` for the value of the argument `param` in the
/// JSON object `args` (`null` when it is missing).
///
/// A value too long for a key (see [`crate::key::MAX_KEY_BYTES`]) is replaced by a stable
/// digest of it, `{prefix}:{param}#{16 hex digits}`, so that every process derives the same
/// name and a large argument still counts. (The JSON text of a value has no control
/// characters: serde_json escapes them.)
fn scope_name(prefix: &str, param: Option<&str>, args: &str) -> String {
    let Some(param) = param else {
        return prefix.to_owned();
    };
    let value = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(args)
        .ok()
        .and_then(|mut fields| fields.remove(param))
        .unwrap_or(serde_json::Value::Null);
    let key = format!("{prefix}:{param}={value}");
    if key.len() <= crate::key::MAX_KEY_BYTES {
        return key;
    }
    let digest = crate::key::digest(value.to_string().as_bytes());
    format!("{prefix}:{param}#{digest}")
}

impl<T: Task> IntoFuture for Schedule<T> {
    type Output = Result<Scheduled>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Scheduled>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.schedule())
    }
}

impl<T: fmt::Debug> fmt::Debug for Schedule<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("task", &self.task)
            .field("when", &self.when)
            .field("key", &self.key)
            .field("mode", &self.mode)
            .field("docket", &self.docket.as_ref().map(Docket::name))
            .finish()
    }
}

/// What scheduling did with a task, by its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disposition {
    /// The task was stored.
    Added,
    /// The task took the place of a waiting task with the same key.
    Replaced,
    /// A task with the same key was already waiting or running, so nothing changed.
    Duplicate,
    /// The task has a [cooldown](crate::policy::Policy::with_cooldown), and another of its
    /// scope was accepted less than the window ago, so the task was dropped: nothing changed.
    CooledDown,
}

impl Disposition {
    /// Whether the task was stored: [`Disposition::Added`] or [`Disposition::Replaced`], not
    /// dropped as a [`Disposition::Duplicate`] or [`Disposition::CooledDown`].
    pub fn stored(self) -> bool {
        matches!(self, Disposition::Added | Disposition::Replaced)
    }
}

/// Where a scheduled task went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Placement {
    /// Into the docket's queue, for a worker to take.
    Queue,
    /// Onto this process's tokio runtime, because the docket has no queue (`DOCKET_URL` unset).
    InProcess,
    /// Onto this process's tokio runtime, because the queue could not be reached. The task is
    /// not durable; the failure was logged.
    Fallback,
}

impl Placement {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Placement::Queue => "queue",
            Placement::InProcess => "in-process",
            Placement::Fallback => "fallback",
        }
    }
}

/// The receipt of a scheduled task.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub(crate) task: String,
    pub(crate) key: String,
    pub(crate) due: SystemTime,
    pub(crate) placement: Placement,
    pub(crate) disposition: Disposition,
    /// Where the task went: the docket, or its in-process fallback.
    pub(crate) docket: Docket,
}

/// Receipts are equal when they describe the same scheduling, whatever handle made them.
impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.task,
            &self.key,
            self.due,
            self.placement,
            self.disposition,
        ) == (
            &other.task,
            &other.key,
            other.due,
            other.placement,
            other.disposition,
        )
    }
}

impl Eq for Scheduled {}

impl Scheduled {
    /// The task's registered name.
    pub fn task(&self) -> &str {
        &self.task
    }

    /// The task's key: the one given with [`Schedule::key`], or a generated unique one. (For a
    /// task dropped by its cooldown, the key it would have had: nothing holds it.)
    pub fn key(&self) -> &str {
        &self.key
    }

    /// When the task is due.
    pub fn due(&self) -> SystemTime {
        self.due
    }

    /// Whether the task went to the queue or runs in this process.
    pub fn placement(&self) -> Placement {
        self.placement
    }

    /// Whether the task was added, replaced a waiting one, or was dropped: a duplicate of one,
    /// or by its cooldown ([`Disposition::stored`] tells the two kinds apart).
    pub fn disposition(&self) -> Disposition {
        self.disposition
    }

    /// Wait for the task to end and return its result, decoded as `R`; for tasks that keep
    /// results (`#[docket::task(result)]`). See [`Docket::result`].
    ///
    /// # Errors
    ///
    /// As for [`Docket::result`]: [`Error::TaskFailed`], [`Error::TaskCancelled`],
    /// [`Error::ResultDecode`], [`Error::NoResult`], and on Redis [`Error::Unavailable`] or
    /// [`Error::Backend`].
    ///
    /// # Cancel safety
    ///
    /// This method only reads, and waits with no time limit, possibly for ever: bound the wait
    /// with `tokio::time::timeout`, as shown for [`Docket::result`].
    pub async fn result<R: DeserializeOwned>(&self) -> Result<R> {
        self.docket.result(&self.key).await
    }

    /// The task's state now, for tasks that keep results. See [`Docket::status`].
    ///
    /// # Errors
    ///
    /// As for [`Docket::status`]: on Redis, [`Error::Unavailable`] or [`Error::Backend`].
    pub async fn status(&self) -> Result<Option<TaskRecord>> {
        self.docket.status(&self.key).await
    }
}

/// The most tasks one call to the queue stores; `add_many` sends larger batches in chunks.
const PLACE_CHUNK: usize = 500;

impl Docket {
    /// Schedule `task` on this docket; set options on the returned builder, then `.await` it.
    pub fn add<T: Task>(&self, task: T) -> Schedule<T> {
        Schedule::new(task).on(self)
    }

    /// Schedule a task by name, with its arguments as a JSON object, to run now.
    ///
    /// For producers that do not link the task's code, such as a web tier scheduling work for
    /// workers built separately, and for operators. Nothing is checked against the task's
    /// argument types here: a worker that cannot decode the arguments, or does not know the name,
    /// keeps the task as a [`DeadLetter`](crate::inspect::DeadLetter). Prefer the typed
    /// `MyTask::schedule(..)` where the task's crate is at hand. In in-process mode the name
    /// must be a task of this binary.
    ///
    /// Nor are the limits of the task's policy checked: a value too long to name a
    /// per-argument limit (see [`Error::ScopeTooLong`]) is stored, and the worker counts the
    /// task under a digest of that value. Its cooldown, a producer's check, is not applied
    /// either: the task is stored whatever the window.
    ///
    /// # Errors
    ///
    /// - [`Error::Json`] when `args` is not JSON, and [`Error::Config`] when it is not an object;
    /// - [`Error::DuplicateTask`] when two tasks of this binary are registered under one name;
    /// - on a docket that runs tasks in-process, [`Error::Config`] when no task named `task` is
    ///   registered in this binary;
    /// - [`Error::NoRuntime`] when the task is to run in-process (no queue, or the fallback)
    ///   outside a tokio runtime;
    /// - on Redis, [`Error::PayloadTooLarge`] over the payload limit, [`Error::Backend`] when
    ///   Redis refuses the task, and [`Error::Unavailable`] when Redis cannot be reached and the
    ///   task cannot run in-process instead (the fallback is off, or no task of that name is
    ///   registered in this binary).
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
        let now = self.clock().now();
        let message = Message::first_attempt(task, crate::key::unique(), args, now);
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
    /// ([`Error::InvalidKey`]), a due time past the year 9999 ([`Error::InvalidDue`]), a limit's
    /// argument value over 1024 bytes ([`Error::ScopeTooLong`]) or arguments that do not encode
    /// ([`Error::Encode`]) fails the whole batch, and nothing of it is stored. An
    /// encoded task over the payload limit of a Redis docket is an [`Error::PayloadTooLarge`],
    /// also before anything is stored; the backend's own failures are [`Error::Backend`] or
    /// [`Error::Unavailable`] (only when the in-process fallback is off). A batch of more than
    /// 500 tasks is stored in parts, one after the other: when a part fails after others were
    /// stored, the error is an [`Error::BatchIncomplete`] saying how many tasks, from the start
    /// of the batch, the parts before it stored. On a docket spread over partitions, each
    /// partition's share of a part is stored on its own: when a share fails after others were
    /// stored, the error is an [`Error::BatchPartlyStored`] listing the stored tasks'
    /// positions. A docket that runs tasks in-process returns
    /// [`Error::NoRuntime`] outside a tokio runtime.
    ///
    /// # Cancel safety
    ///
    /// Parts of at most 500 tasks are stored one after the other, each task in one atomic step.
    /// Dropping the future before it completes leaves the parts acknowledged before stored, some
    /// or all of the part in flight possibly stored, and none of the later ones. Tasks with keys
    /// can then be scheduled again whole: those already stored are duplicates while they wait or
    /// run.
    pub async fn add_many<T: Task>(
        &self,
        schedules: impl IntoIterator<Item = Schedule<T>>,
    ) -> Result<Vec<Scheduled>> {
        let now = self.clock().now();
        let batch = schedules
            .into_iter()
            .map(|schedule| schedule.into_message_at(now))
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
    pub(crate) async fn place(
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
        // Where a spread docket keeps the task: known from its policy, when this process
        // defines or declares it.
        let home = registration.map(|r| r.policy().counted_in_one_place());
        for (message, _) in &mut batch {
            message.trace = Some(traceparent.clone());
            message.home = home;
        }
        let count = batch.len();
        // Tasks that keep results get their first record as they are stored.
        let keep = registration.and_then(|r| r.policy().result_ttl());
        // Each part of the batch lands somewhere: all in-process, or each chunk in the queue or,
        // when the queue cannot be reached, in-process instead.
        let placed: Vec<(Placement, Vec<Disposition>, &Docket)> = if !self.has_queue() {
            if registration.is_none() {
                return Err(Error::Config(format!(
                    "no task named `{task}` is registered in this binary, so it cannot run in-process"
                )));
            }
            self.ensure_auto_worker()?;
            tracing::debug!(count, "running {task} in-process (DOCKET_URL is unset)");
            let dispositions = self.backend().enqueue(&batch, keep).await?;
            vec![(Placement::InProcess, dispositions, self)]
        } else {
            self.enqueue_in_chunks(registration.is_some(), &task, &batch, keep)
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
        let dispositions = placed.iter().flat_map(|(_, dispositions, _)| dispositions);
        crate::metrics::added(self.name(), &task, dispositions);
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
        keep: Option<Duration>,
    ) -> Result<Vec<(Placement, Vec<Disposition>, &'a Docket)>> {
        if batch.len() > PLACE_CHUNK {
            self.backend().check(batch)?;
        }
        let mut placed = Vec::new();
        let mut stored = 0;
        for chunk in batch.chunks(PLACE_CHUNK) {
            match self.backend().enqueue(chunk, keep).await {
                Ok(dispositions) => {
                    tracing::debug!(count = chunk.len(), "scheduled {task} via docket");
                    placed.push((Placement::Queue, dispositions, self));
                    stored += chunk.len();
                }
                // The backend stored the first tasks of this chunk, then failed: those are
                // stored, the rest are not. No fallback, whose receipts would leave them out.
                Err(Error::BatchIncomplete {
                    stored: part,
                    source,
                }) => {
                    return Err(Error::BatchIncomplete {
                        stored: stored + part,
                        source,
                    });
                }
                // A spread docket stored some of this chunk's tasks, not the first ones only.
                Err(Error::BatchPartlyStored {
                    stored: part,
                    source,
                }) => {
                    let part = part.into_iter().map(|index| stored + index);
                    return Err(Error::BatchPartlyStored {
                        stored: (0..stored).chain(part).collect(),
                        source,
                    });
                }
                Err(error) if error.is_unavailable() && registered && self.falls_back() => {
                    tracing::warn!(
                        count = batch.len() - stored,
                        error = %crate::error::Chain(&error),
                        "docket scheduling failed, falling back to in-process"
                    );
                    let fallback = self.fallback_docket();
                    fallback.ensure_auto_worker()?;
                    let rest = &batch[stored..];
                    let dispositions = fallback.backend().enqueue(rest, keep).await?;
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::*;
    use crate::failure::TaskError;
    use crate::policy::Policy;
    use crate::worker::execution::Context;

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Upload {
        name: String,
    }

    impl Task for Upload {
        const NAME: &'static str = "upload";
        fn policy() -> Policy {
            Policy::new().with_debounce_by("name", Duration::from_secs(1))
        }
        async fn run(self, _: Context) -> Result<(), TaskError> {
            Ok(())
        }
    }

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Plain;

    impl Task for Plain {
        const NAME: &'static str = "plain";
        async fn run(self, _: Context) -> Result<(), TaskError> {
            Ok(())
        }
    }

    #[test]
    fn bad_keys_are_refused_before_anything_is_stored() {
        for key in [String::new(), "k".repeat(1025), "a\tb".into()] {
            let error = Schedule::new(Plain).key(key.clone()).into_message();
            assert!(
                matches!(error, Err(Error::InvalidKey { .. })),
                "{key:?}: {error:?}"
            );
        }
        assert!(Schedule::new(Plain).key("k").into_message().is_ok());
    }

    #[test]
    fn due_times_past_the_year_9999_are_refused_not_a_panic() {
        let refused = |schedule: Schedule<Plain>| matches!(schedule.into_message(), Err(Error::InvalidDue { task }) if task == "plain");
        assert!(refused(Schedule::new(Plain).after(Duration::MAX)));
        assert!(refused(
            Schedule::new(Plain).after(Duration::from_secs(9000 * 366 * 86_400))
        ));
        let year_10000 = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        assert!(refused(Schedule::new(Plain).at(year_10000)));
        let last = year_10000 - Duration::from_millis(1);
        let (message, _) = Schedule::new(Plain).at(last).into_message().unwrap();
        assert_eq!(message.due, last);
        let (message, _) = Schedule::new(Plain).at(UNIX_EPOCH).into_message().unwrap();
        assert_eq!(message.due, UNIX_EPOCH, "a past time runs now");
        let before = SystemTime::now();
        let (message, _) = Schedule::new(Plain)
            .after(Duration::from_secs(60))
            .into_message()
            .unwrap();
        assert!(message.due >= before + Duration::from_secs(60));
    }

    #[test]
    fn a_long_debounce_value_is_digested_into_a_stable_key() {
        let short = Schedule::new(Upload { name: "a".into() });
        let (message, mode) = short.into_message().unwrap();
        assert_eq!(message.key, r#"upload:debounce:name="a""#);
        assert_eq!(mode, KeyMode::Replace);
        let long = || {
            Schedule::new(Upload {
                name: "x".repeat(5000),
            })
            .into_message()
            .unwrap()
            .0
            .key
        };
        let key = long();
        assert!(key.len() <= crate::key::MAX_KEY_BYTES, "{key}");
        assert!(key.starts_with("upload:debounce:name#"), "{key}");
        assert_eq!(key, long(), "the same value gives the same key");
        let other = Schedule::new(Upload {
            name: "y".repeat(5000),
        })
        .into_message()
        .unwrap()
        .0
        .key;
        assert_ne!(key, other, "another value gives another key");
    }
}
