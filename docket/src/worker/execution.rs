//! Running one attempt of a task: decoding, the timeout, panics, and the execution span.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, ready};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::backend::Message;
use crate::failure::TaskError;
use crate::handle::Docket;
use crate::policy::Policy;
use crate::registry::{Attempt, Registration};
use crate::sync::Locked;
use crate::trace::TraceContext;

/// What a running task knows about its own execution, and how it talks back to the worker.
///
/// Write a parameter of this type in a `#[docket::task]` function to receive it:
///
/// ```
/// use std::time::Duration;
///
/// #[docket::task(timeout = "30s")]
/// async fn normalize(track_id: u64, ctx: docket::Context) {
///     println!("attempt {} of {}", ctx.attempt(), ctx.key());
///     ctx.extend_timeout(Duration::from_secs(60)); // a long file: allow another minute
///     ctx.progress(1, 2, "decoded").await;
/// }
/// ```
#[derive(Clone)]
pub struct Context {
    run: Arc<Run>,
}

/// The shared record of one attempt.
struct Run {
    key: String,
    task: String,
    attempt: u32,
    due: SystemTime,
    docket: Docket,
    results: Option<Duration>,
    /// How far the task pushed its deadline.
    extension: Mutex<Duration>,
    next_run: Mutex<Option<NextRun>>,
    result: Mutex<Option<String>>,
    cancel: CancellationToken,
    /// For tasks that keep results, the states before the current one, as the records the
    /// worker writes carry them (`TaskRecord::changes`).
    changes: Mutex<Vec<crate::results::Change>>,
}

/// What a recurring task asked about its next run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NextRun {
    At(SystemTime),
    Stop,
}

impl Context {
    pub(crate) fn new(message: &Message, docket: &Docket, policy: &Policy) -> Self {
        Context {
            run: Arc::new(Run {
                key: message.key.clone(),
                task: message.task.clone(),
                attempt: message.attempt,
                due: message.due,
                docket: docket.clone(),
                results: policy.result_ttl(),
                extension: Mutex::new(Duration::ZERO),
                next_run: Mutex::new(None),
                result: Mutex::new(None),
                cancel: CancellationToken::new(),
                changes: Mutex::new(match policy.result_ttl() {
                    Some(_) => crate::results::Change::before_run(message),
                    None => Vec::new(),
                }),
            }),
        }
    }

    /// The states before the current one, for a record of this run.
    pub(crate) fn changes(&self) -> Vec<crate::results::Change> {
        lock(&self.run.changes).clone()
    }

    /// Add `state` (the run's start) to the states before the current one.
    pub(crate) fn push_change(&self, state: &crate::results::TaskRecord) {
        lock(&self.run.changes).push(crate::results::Change::of(state));
    }

    /// The task's key.
    pub fn key(&self) -> &str {
        &self.run.key
    }

    /// The registered task name.
    pub fn task(&self) -> &str {
        &self.run.task
    }

    /// Which attempt this is: 1 for the first run, 2 for the first retry, and so on.
    pub fn attempt(&self) -> u32 {
        self.run.attempt
    }

    /// When the task was due to start.
    pub fn due(&self) -> SystemTime {
        self.run.due
    }

    /// The docket the task came from, to schedule follow-up work.
    pub fn docket(&self) -> &Docket {
        &self.run.docket
    }

    /// Push this attempt's deadline `by` later. Without a timeout on the task this does nothing.
    /// A deadline pushed beyond what the clock can represent (`Duration::MAX`, say) means no
    /// deadline for this attempt.
    pub fn extend_timeout(&self, by: Duration) {
        let mut extension = lock(&self.run.extension);
        *extension = extension.saturating_add(by);
    }

    /// Report how far the task has come. Tasks that keep results store it with their state
    /// (one Redis command per call), where [`Docket::watch`](crate::Docket::watch) sees it;
    /// for the others it is a tracing event only.
    pub async fn progress(&self, current: u64, total: u64, message: impl Into<String>) {
        let message = message.into();
        tracing::info!(key = %self.key(), current, total, message = %message, "task progress");
        if let Some(ttl) = self.run.results {
            crate::results::record_progress(self, ttl, current, total, message).await;
        }
    }

    /// Run this recurring task next after `delay` from now, instead of at its next period.
    /// A delay past the end of the year 9999 (the latest due time docket stores) counts as that
    /// time.
    pub fn next_run_after(&self, delay: Duration) {
        self.next_run_at(crate::time::saturating_due(
            self.run.docket.clock().now(),
            delay,
        ));
    }

    /// Run this recurring task next at `when`, instead of at its next period. A time past the
    /// end of the year 9999 (the latest due time docket stores) counts as that time.
    pub fn next_run_at(&self, when: SystemTime) {
        let when = when.min(crate::time::latest_due());
        *lock(&self.run.next_run) = Some(NextRun::At(when));
    }

    /// Do not run this recurring task again (until a worker starts and schedules it anew).
    pub fn stop_recurring(&self) {
        *lock(&self.run.next_run) = Some(NextRun::Stop);
    }

    /// Keep `value` as this run's result, for tasks that keep results. `#[docket::task(result)]`
    /// calls it with the function's return value.
    pub fn set_result<T: Serialize + ?Sized>(&self, value: &T) {
        match serde_json::to_string(value) {
            Ok(json) => *lock(&self.run.result) = Some(json),
            Err(error) => {
                tracing::warn!(key = %self.key(), %error, "the task's result does not serialize; it is not kept");
            }
        }
    }

    /// The value of type `T` provided with [`Docket::provide`](crate::Docket::provide).
    pub fn state<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.run.docket.provided().get::<T>()
    }

    /// Resolves when the task is cancelled while running ([`Docket::cancel`]); not when its
    /// attempt times out, nor when its worker shuts down.
    ///
    /// The worker drops the task's future as soon as the cancel arrives, without polling it
    /// again, so code after this `.await` in the task's own future never runs (nor does a
    /// `tokio::select!` branch on it there). It is for work the task hands elsewhere: give a
    /// clone of the context to a task it spawns, which the worker does not stop, so that it
    /// stops too.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: dropping its future misses nothing, and a later call
    /// resolves at once if the task was cancelled meanwhile.
    pub async fn cancelled(&self) {
        self.run.cancel.cancelled().await;
    }

    pub(crate) fn cancel_token(&self) -> &CancellationToken {
        &self.run.cancel
    }

    pub(crate) fn take_next_run(&self) -> Option<NextRun> {
        lock(&self.run.next_run).take()
    }

    pub(crate) fn take_result(&self) -> Option<String> {
        lock(&self.run.result).take()
    }

    fn extension(&self) -> Duration {
        *lock(&self.run.extension)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.locked()
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("key", &self.run.key)
            .field("task", &self.run.task)
            .field("attempt", &self.run.attempt)
            .field("due", &self.run.due)
            .field("docket", &self.run.docket.name())
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
    context: &Context,
) -> Result<(), AttemptError> {
    let span = tracing::info_span!(
        "docket.task",
        task = registration.name(),
        key = %message.key,
        attempt = message.attempt,
        outcome = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        link = tracing::field::Empty,
    );
    let scheduled_by = message.trace.as_deref().and_then(TraceContext::parse);
    if let Some(scheduled_by) = scheduled_by.as_ref().filter(|_| !span.is_disabled()) {
        span.record("trace_id", scheduled_by.trace_hex());
        span.record("link", scheduled_by.span_hex());
        #[cfg(feature = "opentelemetry")]
        crate::trace::otel::link(&span, scheduled_by);
    }
    // What the task schedules joins its trace.
    let running = scheduled_by.unwrap_or_else(TraceContext::for_schedule);
    let result = async {
        let attempt = registration
            .start(&message.args, context.clone())
            .map_err(AttemptError::Undecodable)?;
        let attempt = CatchUnwind(attempt);
        let cancel = context.cancel_token().clone();
        let outcome = tokio::select! {
            biased;
            () = cancel.cancelled() => Err(TaskError::cancelled()),
            outcome = within_deadline(attempt, registration.policy().timeout(), context) => outcome,
        };
        outcome.map_err(AttemptError::Failed)
    }
    .instrument(span.clone());
    let result = running.scope(result).await;
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

/// Run `attempt` until it ends or its deadline (the timeout plus any extension the task asked
/// for) passes. A deadline the monotonic clock cannot represent is no deadline.
async fn within_deadline<F>(
    attempt: F,
    timeout: Option<Duration>,
    context: &Context,
) -> Result<(), TaskError>
where
    F: Future<Output = Result<(), TaskError>>,
{
    let Some(limit) = timeout else {
        return attempt.await;
    };
    let started = tokio::time::Instant::now();
    let allowed = || limit.saturating_add(context.extension());
    tokio::pin!(attempt);
    loop {
        let Some(deadline) = started.checked_add(allowed()) else {
            return attempt.await;
        };
        tokio::select! {
            outcome = &mut attempt => return outcome,
            () = tokio::time::sleep_until(deadline) => {
                let allowed = allowed();
                let passed = started
                    .checked_add(allowed)
                    .is_some_and(|deadline| deadline <= tokio::time::Instant::now());
                if passed {
                    return Err(TaskError::timed_out(allowed));
                }
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context {
        let message = Message {
            task: "t".into(),
            key: "k".into(),
            args: "{}".into(),
            attempt: 1,
            due: SystemTime::now(),
            history: Vec::new(),
            trace: None,
            cooldown: None,
            home: None,
        };
        Context::new(&message, &Docket::memory(), &Policy::new())
    }

    #[tokio::test]
    async fn an_unbounded_extension_means_no_deadline_not_a_panic() {
        let context = context();
        context.extend_timeout(Duration::MAX);
        context.extend_timeout(Duration::MAX);
        let slow = async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            Ok(())
        };
        let outcome = within_deadline(slow, Some(Duration::from_millis(1)), &context).await;
        assert_eq!(outcome, Ok(()));
    }

    #[tokio::test]
    async fn an_unbounded_timeout_means_no_deadline_not_a_panic() {
        let context = context();
        let quick = async { Ok(()) };
        assert_eq!(
            within_deadline(quick, Some(Duration::MAX), &context).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn an_extension_made_while_running_is_honoured() {
        let context = context();
        let extended = context.clone();
        let slow = async move {
            extended.extend_timeout(Duration::MAX);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(())
        };
        let outcome = within_deadline(slow, Some(Duration::from_millis(10)), &context).await;
        assert_eq!(outcome, Ok(()));
    }

    #[tokio::test]
    async fn the_timeout_still_applies() {
        let context = context();
        let stuck = std::future::pending();
        let outcome = within_deadline(stuck, Some(Duration::from_millis(10)), &context).await;
        assert_eq!(
            outcome.map_err(|error| error.kind()),
            Err(crate::failure::TaskErrorKind::TimedOut)
        );
    }

    #[test]
    fn next_runs_past_the_year_9999_are_capped_not_a_panic() {
        let context = context();
        context.next_run_after(Duration::MAX);
        assert_eq!(
            context.take_next_run(),
            Some(NextRun::At(crate::time::latest_due()))
        );
        let far = std::time::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        context.next_run_at(far);
        assert_eq!(
            context.take_next_run(),
            Some(NextRun::At(crate::time::latest_due()))
        );
        let soon = SystemTime::now() + Duration::from_secs(5);
        context.next_run_at(soon);
        assert_eq!(context.take_next_run(), Some(NextRun::At(soon)));
    }
}
