//! How an attempt fails: [`TaskError`] as the worker records it, and the two errors a task
//! returns to steer what happens next, [`Retry`] (try again after a delay) and [`Fail`] (fail for
//! good, no retry).

use std::fmt;
use std::time::Duration;

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
    /// The task returned an error; retried as its policy allows.
    Returned,
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
    /// An error the task returned, with its message; retried as the task's policy allows.
    pub fn msg(message: impl fmt::Display) -> Self {
        TaskError::new(TaskErrorKind::Returned, message.to_string())
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
