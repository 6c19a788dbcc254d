//! Running one attempt of a task: decoding, the timeout, panics, and the execution span.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Poll, ready};
use std::time::SystemTime;

use tracing::Instrument;

use crate::backend::Message;
use crate::handle::Docket;
use crate::registry::{Attempt, Registration};
use crate::task::TaskError;

/// What a running task knows about its own execution.
///
/// Every `Task::run` receives one. Injecting it into `#[docket::task]` functions is planned.
#[derive(Clone)]
pub struct Context {
    key: String,
    attempt: u32,
    due: SystemTime,
    docket: Docket,
}

impl Context {
    pub(crate) fn new(message: &Message, docket: &Docket) -> Self {
        Context {
            key: message.key.clone(),
            attempt: message.attempt,
            due: message.due,
            docket: docket.clone(),
        }
    }

    /// The task's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Which attempt this is: 1 for the first run, 2 for the first retry, and so on.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the task was due to start.
    pub fn due(&self) -> SystemTime {
        self.due
    }

    /// The docket the task came from, to schedule follow-up work.
    pub fn docket(&self) -> &Docket {
        &self.docket
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("key", &self.key)
            .field("attempt", &self.attempt)
            .field("due", &self.due)
            .field("docket", &self.docket.name())
            .finish()
    }
}

/// Why an attempt did not succeed.
#[derive(Debug)]
pub(crate) enum AttemptError {
    /// The stored arguments do not decode into the task's argument struct: retrying cannot help.
    Undecodable(serde_json::Error),
    /// The task ran and failed, timed out or panicked.
    Failed(TaskError),
}

/// Run one attempt of `message` under the task's timeout, inside a `docket.task` span.
///
/// A panic inside the task is caught and becomes a failed attempt.
pub(crate) async fn run_attempt(
    registration: &Registration,
    message: &Message,
    docket: &Docket,
) -> Result<(), AttemptError> {
    let span = tracing::info_span!(
        "docket.task",
        task = registration.name(),
        key = %message.key,
        attempt = message.attempt,
        outcome = tracing::field::Empty,
    );
    let result = async {
        let attempt = registration
            .start(&message.args, Context::new(message, docket))
            .map_err(AttemptError::Undecodable)?;
        let attempt = CatchUnwind(attempt);
        let outcome = match registration.policy().attempt_timeout() {
            Some(limit) => match tokio::time::timeout(limit, attempt).await {
                Ok(outcome) => outcome,
                Err(_) => Err(TaskError::timed_out(limit)),
            },
            None => attempt.await,
        };
        outcome.map_err(AttemptError::Failed)
    }
    .instrument(span.clone())
    .await;
    let outcome = match &result {
        Ok(()) => "succeeded",
        Err(AttemptError::Undecodable(_)) => "undecodable",
        Err(AttemptError::Failed(error)) => {
            tracing::warn!(parent: &span, error = %error, "task attempt failed");
            "failed"
        }
    };
    span.record("outcome", outcome);
    result
}

/// Turns a panic while polling the attempt into a [`TaskError`].
struct CatchUnwind(Attempt);

impl Future for CatchUnwind {
    type Output = Result<(), TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let attempt = &mut self.0;
        // The attempt is dropped right after a panic and never polled again, so no broken
        // invariant inside it can be observed.
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| attempt.as_mut().poll(cx)));
        Poll::Ready(match polled {
            Ok(poll) => ready!(poll),
            Err(payload) => Err(TaskError::panicked(panic_message(payload.as_ref()))),
        })
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}
