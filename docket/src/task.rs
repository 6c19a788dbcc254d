//! The [`Task`] trait that `#[docket::task]` implements, and a task's [`Policy`].

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::execution::Context;

/// A unit of background work: a serializable argument struct plus the code that runs it.
///
/// You rarely implement this by hand: `#[docket::task]` on an `async fn` generates the argument
/// struct and this impl. The struct is what travels through the queue, as JSON; nothing in the
/// queue is ever executed as code, it only selects a function compiled into the worker.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a docket task",
    label = "not a task",
    note = "declare tasks with `#[docket::task]` on an `async fn`"
)]
pub trait Task: Serialize + DeserializeOwned + Send + 'static {
    /// The name the task is registered under and stored with in the queue.
    ///
    /// Keep it stable: a queued task names the function a worker will run. `#[docket::task]`
    /// uses the function's name unless `name = "..."` overrides it.
    const NAME: &'static str;

    /// How the task is retried and timed out. The default retries nothing and has no timeout.
    fn policy() -> Policy {
        Policy::new()
    }

    /// The [`State`](crate::State) types the task is given; a worker refuses to start while one
    /// was not provided. `#[docket::task]` lists its `State<T>` parameters here.
    #[doc(hidden)]
    fn required_state() -> Vec<crate::state::Requirement> {
        Vec::new()
    }

    /// Run the task once. An `Err` is a failed attempt, retried as [`Task::policy`] allows.
    fn run(self, context: Context) -> impl Future<Output = Result<(), TaskError>> + Send;
}

/// Retry and timeout settings of a task, declared on `#[docket::task(...)]`.
///
/// ```
/// use std::time::Duration;
/// use docket::{Backoff, Policy};
///
/// let policy = Policy::new()
///     .retries(3)
///     .backoff(Backoff::exponential(Duration::from_secs(1), Duration::from_secs(60)))
///     .timeout(Duration::from_secs(30));
/// assert_eq!(policy.max_attempts(), 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    retries: u32,
    backoff: Backoff,
    jitter: u8,
    timeout: Option<Duration>,
    recurrence: Option<Recurrence>,
    concurrency: Option<Limit>,
    rate: Option<RateLimit>,
    debounce: Option<Debounce>,
    results: Option<Duration>,
}

impl Policy {
    /// No retries, no timeout, no limits.
    pub const fn new() -> Self {
        Policy {
            retries: 0,
            backoff: Backoff::Fixed(Duration::ZERO),
            jitter: 0,
            timeout: None,
            recurrence: None,
            concurrency: None,
            rate: None,
            debounce: None,
            results: None,
        }
    }

    /// How many times a failed task is tried again after its first attempt.
    ///
    /// `retries(3)` means up to four attempts in all.
    pub const fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// How long to wait before each retry.
    pub const fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Spread retries out: each delay is moved by a random amount of up to `percent` of it,
    /// earlier or later, so tasks that failed together do not all retry in the same instant.
    /// Values above 100 count as 100.
    pub const fn jitter_percent(mut self, percent: u8) -> Self {
        self.jitter = if percent > 100 { 100 } else { percent };
        self
    }

    /// The longest one attempt may run; past it the attempt is cancelled and counts as failed.
    /// A task can push its own deadline later with [`Context::extend_timeout`].
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Run the task on its own every `period`, on one worker of the fleet at a time.
    ///
    /// The first run is due when the first worker starts; each next run is due one period after
    /// the previous one was due. Recurring tasks take no arguments.
    pub const fn every(mut self, period: Duration) -> Self {
        self.recurrence = Some(Recurrence::Every(period));
        self
    }

    /// Run the task on its own at each time a five-field cron expression names
    /// (`"*/5 * * * *"`), in the IANA time zone `tz` (`"UTC"`, `"Europe/Paris"`), on one worker
    /// of the fleet at a time. A worker refuses to start when the expression or zone is invalid.
    pub const fn cron(mut self, expression: &'static str, tz: &'static str) -> Self {
        self.recurrence = Some(Recurrence::Cron { expression, tz });
        self
    }

    /// Run at most `limit` of these tasks at once across every worker.
    ///
    /// Tasks over the limit wait, kept in the queue, and the next one starts as soon as a
    /// running one ends. A limit of 0 counts as 1.
    pub const fn concurrency(mut self, limit: u32) -> Self {
        self.concurrency = Some(Limit {
            param: None,
            limit: nonzero(limit),
        });
        self
    }

    /// Run at most `limit` of these tasks at once per value of the argument `param`, across
    /// every worker: `concurrency_by("track_id", 1)` runs one task per track at a time.
    pub const fn concurrency_by(mut self, param: &'static str, limit: u32) -> Self {
        self.concurrency = Some(Limit {
            param: Some(param),
            limit: nonzero(limit),
        });
        self
    }

    /// Start at most `count` of these tasks in any `window` of time (a sliding window, across
    /// every worker). A task over the limit waits until the window lets it start.
    pub const fn rate_limit(mut self, count: u32, window: Duration) -> Self {
        self.rate = Some(RateLimit {
            param: None,
            count: nonzero(count),
            window,
        });
        self
    }

    /// Like [`Policy::rate_limit`], counted separately per value of the argument `param`.
    pub const fn rate_limit_by(
        mut self,
        param: &'static str,
        count: u32,
        window: Duration,
    ) -> Self {
        self.rate = Some(RateLimit {
            param: Some(param),
            count: nonzero(count),
            window,
        });
        self
    }

    /// Wait for scheduling to settle: each schedule replaces the waiting one and moves its start
    /// to `settle` from now, so the task runs once, with the newest arguments, after `settle` has
    /// passed with no new schedule.
    pub const fn debounce(mut self, settle: Duration) -> Self {
        self.debounce = Some(Debounce {
            param: None,
            settle,
        });
        self
    }

    /// Like [`Policy::debounce`], separately per value of the argument `param`.
    pub const fn debounce_by(mut self, param: &'static str, settle: Duration) -> Self {
        self.debounce = Some(Debounce {
            param: Some(param),
            settle,
        });
        self
    }

    /// Keep each run's state and return value for `ttl` after it ends, for
    /// [`Scheduled::result`](crate::Scheduled::result) and
    /// [`Docket::result`](crate::Docket::result). Tasks that do not keep results cost nothing for
    /// it.
    pub const fn keep_results(mut self, ttl: Duration) -> Self {
        self.results = Some(ttl);
        self
    }

    /// The retry count set with [`Policy::retries`].
    pub const fn retry_limit(&self) -> u32 {
        self.retries
    }

    /// The first attempt plus every retry.
    pub const fn max_attempts(&self) -> u32 {
        self.retries.saturating_add(1)
    }

    /// The backoff set with [`Policy::backoff`].
    pub const fn retry_backoff(&self) -> Backoff {
        self.backoff
    }

    /// The jitter set with [`Policy::jitter_percent`].
    pub const fn retry_jitter_percent(&self) -> u8 {
        self.jitter
    }

    /// The timeout set with [`Policy::timeout`], if any.
    pub const fn attempt_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// When the task runs on its own, if it does.
    pub const fn recurrence(&self) -> Option<Recurrence> {
        self.recurrence
    }

    /// The concurrency limit, if any.
    pub const fn concurrency_limit(&self) -> Option<Limit> {
        self.concurrency
    }

    /// The rate limit, if any.
    pub const fn rate(&self) -> Option<RateLimit> {
        self.rate
    }

    /// The debounce, if any.
    pub const fn debounce_window(&self) -> Option<Debounce> {
        self.debounce
    }

    /// How long results are kept, when the task keeps them.
    pub const fn results_ttl(&self) -> Option<Duration> {
        self.results
    }

    /// The delay before retry number `retry`, with the jitter applied; `Duration::MAX` at most,
    /// however large the backoff.
    pub(crate) fn retry_delay(&self, retry: u32) -> Duration {
        self.jittered(self.backoff.delay(retry), crate::key::random_unit())
    }

    /// `delay` moved by `unit` (in `[0, 1)`) across the jitter's spread, saturating.
    fn jittered(&self, delay: Duration, unit: f64) -> Duration {
        if self.jitter == 0 || delay.is_zero() {
            return delay;
        }
        let spread = delay.as_secs_f64() * f64::from(self.jitter) / 100.0;
        let offset = (unit * 2.0 - 1.0) * spread;
        Duration::try_from_secs_f64((delay.as_secs_f64() + offset).max(0.0))
            .unwrap_or(Duration::MAX)
    }
}

const fn nonzero(value: u32) -> u32 {
    if value == 0 { 1 } else { value }
}

/// When a recurring task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recurrence {
    /// Every period, counted from the previous due time.
    Every(Duration),
    /// At each time a cron expression names, in a time zone.
    Cron {
        /// A five-field cron expression: minute, hour, day of month, month, day of week.
        expression: &'static str,
        /// An IANA time zone name such as `"UTC"` or `"America/New_York"`.
        tz: &'static str,
    },
}

/// A concurrency limit: how many runs at once, per task or per argument value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The argument whose value the limit is counted by; `None` counts all runs of the task.
    pub param: Option<&'static str>,
    /// How many may run at once.
    pub limit: u32,
}

/// A rate limit: how many starts in a sliding window, per task or per argument value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// The argument whose value the limit is counted by; `None` counts all runs of the task.
    pub param: Option<&'static str>,
    /// How many starts the window allows.
    pub count: u32,
    /// The window.
    pub window: Duration,
}

/// A debounce: schedules closer together than `settle` collapse into one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debounce {
    /// The argument whose value scopes the debounce; `None` debounces the task as a whole.
    pub param: Option<&'static str>,
    /// How long scheduling must be quiet before the task runs.
    pub settle: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::new()
    }
}

/// The wait before a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backoff {
    /// The same delay before every retry (`backoff = "fixed 5s"`).
    Fixed(Duration),
    /// A delay that doubles with each retry, from `min` up to `max`
    /// (`backoff = "exponential 1s..60s"`).
    Exponential {
        /// The delay before the first retry.
        min: Duration,
        /// The longest delay.
        max: Duration,
    },
}

impl Backoff {
    /// The same delay before every retry.
    pub const fn fixed(delay: Duration) -> Self {
        Backoff::Fixed(delay)
    }

    /// A delay that starts at `min` and doubles with each retry, never above `max`.
    pub const fn exponential(min: Duration, max: Duration) -> Self {
        Backoff::Exponential { min, max }
    }

    /// The delay before retry number `retry` (the first retry is 1). Never overflows: an
    /// exponential delay stops at `max`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use docket::Backoff;
    ///
    /// let backoff = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(5));
    /// let delays: Vec<u64> = (1..=5).map(|n| backoff.delay(n).as_secs()).collect();
    /// assert_eq!(delays, [1, 2, 4, 5, 5]);
    /// ```
    pub fn delay(&self, retry: u32) -> Duration {
        match *self {
            Backoff::Fixed(delay) => delay,
            Backoff::Exponential { min, max } => {
                let doublings = retry.saturating_sub(1).min(63);
                min.checked_mul(1u32.checked_shl(doublings).unwrap_or(u32::MAX))
                    .unwrap_or(max)
                    .min(max)
            }
        }
    }
}

/// Why one attempt of a task failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    kind: TaskErrorKind,
    message: String,
    retry_after: Option<Duration>,
}

/// The class of a [`TaskError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskErrorKind {
    /// The task returned an error.
    Failed,
    /// The attempt ran past the task's timeout and was cancelled.
    TimedOut,
    /// The task panicked.
    Panicked,
    /// The task asked to be tried again after a delay ([`Retry`]).
    RetryRequested,
    /// The task failed in a way no retry can fix ([`Fail`]); it is not retried.
    Permanent,
    /// The task was cancelled while it ran.
    Cancelled,
}

impl TaskError {
    /// A failed attempt with a message, retried as the task's policy allows.
    pub fn failed(message: impl fmt::Display) -> Self {
        TaskError::new(TaskErrorKind::Failed, message.to_string())
    }

    fn new(kind: TaskErrorKind, message: String) -> Self {
        TaskError {
            kind,
            message,
            retry_after: None,
        }
    }

    pub(crate) fn timed_out(timeout: Duration) -> Self {
        TaskError::new(
            TaskErrorKind::TimedOut,
            format!("timed out after {timeout:?}"),
        )
    }

    pub(crate) fn panicked(message: String) -> Self {
        TaskError::new(TaskErrorKind::Panicked, format!("panicked: {message}"))
    }

    pub(crate) fn cancelled() -> Self {
        TaskError::new(
            TaskErrorKind::Cancelled,
            "cancelled while running".to_owned(),
        )
    }

    /// The class of failure.
    pub fn kind(&self) -> TaskErrorKind {
        self.kind
    }

    /// The message: the task's error text, or what went wrong around it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The delay the task asked for with [`Retry::after`].
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TaskError {}

/// Return this error to be tried again after a given delay, instead of the policy's backoff.
///
/// It still counts as an attempt: once the task's retries are used up it is dead-lettered.
///
/// ```
/// use std::time::Duration;
///
/// #[docket::task(retries = 10)]
/// async fn poll_transcoder(job: u64) -> Result<(), docket::Retry> {
///     let ready = job % 2 == 0;
///     if !ready {
///         return Err(docket::Retry::after(Duration::from_secs(30)).because("still transcoding"));
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    delay: Duration,
    reason: Option<String>,
}

impl Retry {
    /// Try again after `delay`.
    pub fn after(delay: Duration) -> Self {
        Retry {
            delay,
            reason: None,
        }
    }

    /// Say why, for the task's history.
    pub fn because(mut self, reason: impl fmt::Display) -> Self {
        self.reason = Some(reason.to_string());
        self
    }

    /// The requested delay.
    pub fn delay(&self) -> Duration {
        self.delay
    }
}

impl fmt::Display for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Some(reason) => write!(f, "retry requested in {:?}: {reason}", self.delay),
            None => write!(f, "retry requested in {:?}", self.delay),
        }
    }
}

impl std::error::Error for Retry {}

impl From<Retry> for TaskError {
    fn from(retry: Retry) -> TaskError {
        TaskError {
            kind: TaskErrorKind::RetryRequested,
            message: retry.to_string(),
            retry_after: Some(retry.delay),
        }
    }
}

/// Return this error to fail for good: the task is dead-lettered at once, whatever retries its
/// policy allows. For input that can never succeed, such as a file that is not audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    reason: String,
}

impl Fail {
    /// Fail for good, saying why.
    pub fn because(reason: impl fmt::Display) -> Self {
        Fail {
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Fail {}

impl From<Fail> for TaskError {
    fn from(fail: Fail) -> TaskError {
        TaskError::new(TaskErrorKind::Permanent, fail.reason)
    }
}

/// What a `#[docket::task]` function may return: `()`, or `Result<T, E>` where `E: Display`.
///
/// An `Err` is a failed attempt; its `Display` text is kept with the task's history. An error of
/// type [`Retry`], [`Fail`] or [`TaskError`] keeps its meaning.
#[diagnostic::on_unimplemented(
    message = "`#[docket::task]` functions must return `()` or `Result<T, E>` where `E: Display + 'static`, not `{Self}`",
    label = "unsupported return type",
    note = "return `Result<(), E>` to report failures, or nothing at all"
)]
pub trait TaskOutput {
    /// Turn the function's output into the outcome of one attempt.
    fn into_outcome(self) -> Result<(), TaskError>;
}

impl TaskOutput for () {
    fn into_outcome(self) -> Result<(), TaskError> {
        Ok(())
    }
}

impl<T, E: fmt::Display + 'static> TaskOutput for Result<T, E> {
    fn into_outcome(self) -> Result<(), TaskError> {
        self.map(drop).map_err(|error| {
            let any: &dyn std::any::Any = &error;
            if let Some(error) = any.downcast_ref::<TaskError>() {
                error.clone()
            } else if let Some(retry) = any.downcast_ref::<Retry>() {
                retry.clone().into()
            } else if let Some(fail) = any.downcast_ref::<Fail>() {
                fail.clone().into()
            } else {
                TaskError::failed(error)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_backoff_is_the_same_every_retry() {
        let backoff = Backoff::fixed(Duration::from_millis(250));
        assert!((1..10).all(|n| backoff.delay(n) == Duration::from_millis(250)));
    }

    #[test]
    fn exponential_backoff_saturates_instead_of_overflowing() {
        let backoff = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(backoff.delay(1), Duration::from_secs(1));
        assert_eq!(backoff.delay(3), Duration::from_secs(4));
        assert_eq!(backoff.delay(40), Duration::from_secs(60));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn results_with_displayable_errors_are_outputs() {
        let ok: Result<u8, String> = Ok(1);
        assert_eq!(ok.into_outcome(), Ok(()));
        let err: Result<(), &str> = Err("disk full");
        assert_eq!(err.into_outcome().unwrap_err().message(), "disk full");
    }

    #[test]
    fn typed_errors_keep_their_meaning() {
        let retry: Result<(), Retry> = Err(Retry::after(Duration::from_secs(3)));
        let error = retry.into_outcome().unwrap_err();
        assert_eq!(error.kind(), TaskErrorKind::RetryRequested);
        assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
        let fail: Result<(), Fail> = Err(Fail::because("not audio"));
        let error = fail.into_outcome().unwrap_err();
        assert_eq!(
            (error.kind(), error.message()),
            (TaskErrorKind::Permanent, "not audio")
        );
        let wrapped: Result<(), TaskError> = Err(Fail::because("no").into());
        assert_eq!(
            wrapped.into_outcome().unwrap_err().kind(),
            TaskErrorKind::Permanent
        );
    }

    #[test]
    fn huge_delays_with_jitter_saturate_instead_of_panicking() {
        let policy = Policy::new()
            .backoff(Backoff::fixed(Duration::MAX))
            .jitter_percent(100);
        assert_eq!(policy.jittered(Duration::MAX, 0.999_999), Duration::MAX);
        assert!(policy.jittered(Duration::MAX, 0.0) < Duration::from_secs(1));
        for _ in 0..100 {
            let _ = policy.retry_delay(1);
        }
        let exponential = Policy::new()
            .backoff(Backoff::exponential(Duration::MAX, Duration::MAX))
            .jitter_percent(50);
        assert_eq!(exponential.jittered(Duration::MAX, 0.999), Duration::MAX);
        assert_eq!(
            Backoff::exponential(Duration::from_secs(u64::MAX / 2), Duration::MAX).delay(3),
            Duration::MAX
        );
    }

    #[test]
    fn jitter_moves_delays_within_the_percentage() {
        let policy = Policy::new()
            .backoff(Backoff::fixed(Duration::from_secs(10)))
            .jitter_percent(20);
        let delays: Vec<Duration> = (0..500).map(|_| policy.retry_delay(1)).collect();
        assert!(
            delays
                .iter()
                .all(|d| *d >= Duration::from_secs(8) && *d <= Duration::from_secs(12))
        );
        assert!(delays.iter().any(|d| *d < Duration::from_secs(9)));
        assert!(delays.iter().any(|d| *d > Duration::from_secs(11)));
        assert_eq!(
            Policy::new().jitter_percent(250).retry_jitter_percent(),
            100
        );
    }
}
