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
    timeout: Option<Duration>,
}

impl Policy {
    /// No retries, no timeout.
    pub const fn new() -> Self {
        Policy {
            retries: 0,
            backoff: Backoff::Fixed(Duration::ZERO),
            timeout: None,
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

    /// The longest one attempt may run; past it the attempt is cancelled and counts as failed.
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
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

    /// The timeout set with [`Policy::timeout`], if any.
    pub const fn attempt_timeout(&self) -> Option<Duration> {
        self.timeout
    }
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

    /// The delay before retry number `retry` (the first retry is 1).
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
}

impl TaskError {
    /// A failed attempt with a message, retried as the task's policy allows.
    pub fn failed(message: impl fmt::Display) -> Self {
        TaskError {
            kind: TaskErrorKind::Failed,
            message: message.to_string(),
        }
    }

    pub(crate) fn timed_out(timeout: Duration) -> Self {
        TaskError {
            kind: TaskErrorKind::TimedOut,
            message: format!("timed out after {timeout:?}"),
        }
    }

    pub(crate) fn panicked(message: String) -> Self {
        TaskError {
            kind: TaskErrorKind::Panicked,
            message: format!("panicked: {message}"),
        }
    }

    /// The class of failure.
    pub fn kind(&self) -> TaskErrorKind {
        self.kind
    }

    /// The message: the task's error text, or what went wrong around it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TaskError {}

/// What a `#[docket::task]` function may return: `()`, or `Result<T, E>` where `E: Display`.
///
/// An `Err` is a failed attempt; its `Display` text is kept with the task's history.
#[diagnostic::on_unimplemented(
    message = "`#[docket::task]` functions must return `()` or `Result<T, E>` where `E: Display`, not `{Self}`",
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

impl<T, E: fmt::Display> TaskOutput for Result<T, E> {
    fn into_outcome(self) -> Result<(), TaskError> {
        self.map(drop).map_err(TaskError::failed)
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
}
