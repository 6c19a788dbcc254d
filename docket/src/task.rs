//! The [`Task`] trait that `#[docket::task]` implements, and [`TaskOutput`], what a task
//! function may return.

use std::fmt;
use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::failure::{Fail, Retry, TaskError};
use crate::policy::Policy;
use crate::worker::execution::Context;

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

    /// The names of the task's arguments, in the function's order (injected [`Context`] and
    /// [`State`](crate::State) parameters left out): how positional arguments from another
    /// language, such as pydocket's `args`, are bound to the argument struct's fields.
    /// `#[docket::task]` lists them; the default is none.
    const PARAMS: &'static [&'static str] = &[];

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

    /// Run the task once.
    ///
    /// # Errors
    ///
    /// An `Err` is a failed attempt. While the retries of [`Task::policy`] last, the task is
    /// tried again after the policy's backoff, or after the delay a [`Retry`] names; an error
    /// made from a [`Fail`] is not retried. After the last attempt the task is a dead letter.
    /// (A recurring task is never retried: its next run is its retry.)
    fn run(self, context: Context) -> impl Future<Output = Result<(), TaskError>> + Send;
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
    ///
    /// # Errors
    ///
    /// The function's `Err`: a [`TaskError`], [`Retry`] or [`Fail`] keeps its meaning; any other
    /// error becomes [`TaskError::msg`] of its `Display` text.
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
                TaskError::msg(error)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::failure::TaskErrorKind;

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
}
