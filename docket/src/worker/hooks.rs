//! Hooks a user writes: code a [`Worker`](super::Worker) runs after it settled a task, for
//! alerting and bookkeeping ([`Worker::on_success`](super::Worker::on_success) and its
//! siblings).
//!
//! A hook runs once the outcome is stored (the acknowledgement handed to the batcher, the retry
//! or the dead letter written), in the task's own slot, so a worker never has more hooks running
//! than its concurrency. An error or a panic in a hook is logged and goes no further: the task's
//! outcome is already settled, so a hook can neither lose a task nor make it run again. A
//! delivery whose settlement failed (and that will therefore run again) fires no hook.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures_util::FutureExt;

use super::Worker;
use crate::sync::Locked;

/// What happened to one task, as a hook sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEvent {
    task: String,
    key: String,
    attempt: u32,
    worker: String,
    outcome: Outcome,
}

/// How one attempt of a task was settled.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The attempt succeeded and the task is complete.
    Succeeded,
    /// The attempt failed; the next one is stored, due `at`.
    Retried {
        /// The attempt's error, as its `Display` text.
        error: String,
        /// When the next attempt is due.
        at: SystemTime,
    },
    /// The task is now a dead letter: its retries ran out, it failed for good, its arguments do
    /// not decode or no task of its name is registered.
    DeadLettered {
        /// Why, as the dead letter keeps it.
        reason: String,
    },
    /// A run of a recurring task failed; the next period is its retry.
    Failed {
        /// The run's error, as its `Display` text.
        error: String,
    },
}

impl TaskEvent {
    pub(crate) fn new(
        task: impl Into<String>,
        key: impl Into<String>,
        attempt: u32,
        worker: impl Into<String>,
        outcome: Outcome,
    ) -> TaskEvent {
        TaskEvent {
            task: task.into(),
            key: key.into(),
            attempt,
            worker: worker.into(),
            outcome,
        }
    }

    /// The registered task name.
    pub fn task(&self) -> &str {
        &self.task
    }

    /// The task's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The attempt this event ends: 1 for the first run.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The id of the worker that settled the task.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// How the attempt was settled.
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// The error or dead-letter reason; `None` for a success.
    pub fn error(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Succeeded => None,
            Outcome::Retried { error, .. } | Outcome::Failed { error } => Some(error),
            Outcome::DeadLettered { reason } => Some(reason),
        }
    }
}

/// What a hook may return: nothing, or a `Result` whose error is logged.
#[diagnostic::on_unimplemented(
    message = "a docket hook must return `()` or `Result<(), E>` where `E: Display`, not `{Self}`",
    label = "unsupported hook output"
)]
pub trait HookOutput {
    /// The hook's error as text, if it failed.
    fn into_error(self) -> Option<String>;
}

impl HookOutput for () {
    fn into_error(self) -> Option<String> {
        None
    }
}

impl<E: fmt::Display> HookOutput for Result<(), E> {
    fn into_error(self) -> Option<String> {
        self.err().map(|error| error.to_string())
    }
}

/// The events a hook asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum On {
    Success,
    Failure,
    Retry,
    DeadLetter,
}

impl On {
    /// Whether a hook registered for `self` runs for `outcome`.
    fn matches(self, outcome: &Outcome) -> bool {
        match (self, outcome) {
            (On::Success, Outcome::Succeeded) => true,
            (On::Failure, outcome) => !matches!(outcome, Outcome::Succeeded),
            (On::Retry, Outcome::Retried { .. }) => true,
            (On::DeadLetter, Outcome::DeadLettered { .. }) => true,
            _ => false,
        }
    }
}

type HookFuture = Pin<Box<dyn Future<Output = Option<String>> + Send>>;
type HookFn = Arc<dyn Fn(TaskEvent) -> HookFuture + Send + Sync>;

/// The hooks of one worker, in the order they were added. Cheap to clone: clones share them.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    hooks: Arc<Mutex<Vec<(On, HookFn)>>>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hooks = self.hooks.locked();
        let kinds: Vec<On> = hooks.iter().map(|(on, _)| *on).collect();
        f.debug_tuple("Hooks").field(&kinds).finish()
    }
}

impl Hooks {
    /// Add `hook`, run for the events `on` selects.
    pub(crate) fn add<F, Fut>(&self, on: On, hook: F)
    where
        F: Fn(TaskEvent) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HookOutput,
    {
        let hook: HookFn = Arc::new(move |event| {
            let future = hook(event);
            Box::pin(async move { future.await.into_error() })
        });
        self.hooks.locked().push((on, hook));
    }

    /// Replace these hooks with those of `other` (an in-process docket's worker taking the
    /// hooks of the `Worker` that serves it).
    pub(crate) fn set_from(&self, other: &Hooks) {
        let theirs = other.snapshot();
        *self.hooks.locked() = theirs;
    }

    /// Drop every hook.
    pub(crate) fn clear(&self) {
        self.hooks.locked().clear();
    }

    /// Whether no hook is set: then a task's end builds no event for them.
    pub(crate) fn is_empty(&self) -> bool {
        self.hooks.locked().is_empty()
    }

    fn snapshot(&self) -> Vec<(On, HookFn)> {
        self.hooks.locked().clone()
    }

    /// Run every hook that asked for `event`'s outcome, one after the other; log their errors
    /// and panics.
    pub(crate) async fn run(&self, event: TaskEvent) {
        let hooks = self.snapshot();
        for (on, hook) in hooks.iter().filter(|(on, _)| on.matches(&event.outcome)) {
            let started = std::panic::catch_unwind(AssertUnwindSafe(|| hook(event.clone())));
            let outcome = match started {
                Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
                Err(panic) => Err(panic),
            };
            match outcome {
                Ok(None) => {}
                Ok(Some(error)) => {
                    tracing::error!(task = %event.task, key = %event.key, hook = ?on, %error, "a task hook failed; the task's outcome stands");
                }
                Err(panic) => {
                    let panic = panic_text(panic.as_ref());
                    tracing::error!(task = %event.task, key = %event.key, hook = ?on, %panic, "a task hook panicked; the task's outcome stands");
                }
            }
        }
    }
}

/// Hooks are closures on the worker, one per event, rather than a trait to implement: each
/// reads as a sentence where the worker is built, a user writes only the events they care
/// about, and shared state goes in the closure's captures (an `Arc`, a channel, a client).
impl Worker {
    /// Run `hook` after each task this worker completes.
    ///
    /// Hooks run once the outcome is stored, in the task's slot; an error they return or a
    /// panic is logged and changes nothing for the task. Several hooks run in the order added.
    /// On an in-process docket, the `Worker` that serves it hands its hooks to the docket's own
    /// worker while it runs.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> docket::Result<()> {
    /// let docket = docket::Docket::connect("memory://").await?;
    /// docket::Worker::new(&docket)
    ///     .on_success(|event| async move { println!("{} done", event.key()) })
    ///     .on_dead_letter(|event| async move {
    ///         // Page someone; an `Err` is logged, never retried.
    ///         Err::<(), _>(format!("{} is a dead letter: {:?}", event.key(), event.error()))
    ///     })
    ///     .run_until_finished()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn on_success<F, Fut>(self, hook: F) -> Self
    where
        F: Fn(TaskEvent) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HookOutput,
    {
        self.hooks.add(On::Success, hook);
        self
    }

    /// Run `hook` after each failed attempt this worker settled: retried, dead-lettered, or a
    /// failed run of a recurring task ([`Outcome`] tells which). See [`Worker::on_success`].
    pub fn on_failure<F, Fut>(self, hook: F) -> Self
    where
        F: Fn(TaskEvent) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HookOutput,
    {
        self.hooks.add(On::Failure, hook);
        self
    }

    /// Run `hook` after each retry this worker stored ([`Outcome::Retried`]). See
    /// [`Worker::on_success`].
    pub fn on_retry<F, Fut>(self, hook: F) -> Self
    where
        F: Fn(TaskEvent) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HookOutput,
    {
        self.hooks.add(On::Retry, hook);
        self
    }

    /// Run `hook` after each task this worker made a dead letter ([`Outcome::DeadLettered`]).
    /// See [`Worker::on_success`].
    pub fn on_dead_letter<F, Fut>(self, hook: F) -> Self
    where
        F: Fn(TaskEvent) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HookOutput,
    {
        self.hooks.add(On::DeadLetter, hook);
        self
    }

    /// On an in-process docket, have its own worker run this worker's hooks until the guard
    /// drops.
    pub(super) fn lend_hooks(&self) -> LentHooks<'_> {
        let theirs = self.docket.auto_hooks();
        theirs.set_from(&self.hooks);
        LentHooks { theirs }
    }
}

/// Takes back the hooks an in-process docket's worker was lent.
pub(super) struct LentHooks<'a> {
    theirs: &'a Hooks,
}

impl Drop for LentHooks<'_> {
    fn drop(&mut self) {
        self.theirs.clear();
    }
}

/// The message of a panic's payload, when it is text.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boom() {
        panic!("async hook bug");
    }

    fn event(outcome: Outcome) -> TaskEvent {
        TaskEvent::new("scan", "k1", 2, "w", outcome)
    }

    #[test]
    fn failure_hooks_see_every_outcome_but_success() {
        let retried = Outcome::Retried {
            error: "x".into(),
            at: SystemTime::UNIX_EPOCH,
        };
        let dead = Outcome::DeadLettered { reason: "y".into() };
        let failed = Outcome::Failed { error: "z".into() };
        assert!(On::Success.matches(&Outcome::Succeeded));
        assert!(!On::Failure.matches(&Outcome::Succeeded));
        for outcome in [&retried, &dead, &failed] {
            assert!(On::Failure.matches(outcome));
            assert!(!On::Success.matches(outcome));
        }
        assert!(On::Retry.matches(&retried) && !On::Retry.matches(&dead));
        assert!(On::DeadLetter.matches(&dead) && !On::DeadLetter.matches(&failed));
        assert_eq!(event(dead).error(), Some("y"));
    }

    #[tokio::test]
    async fn a_failing_or_panicking_hook_does_not_stop_the_next_one() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let hooks = Hooks::default();
        hooks.add(On::Failure, |_| async { Err::<(), _>("the pager is down") });
        hooks.add(On::Failure, |_| -> std::future::Ready<()> {
            panic!("hook bug")
        });
        hooks.add(On::Failure, |_| async { boom() });
        let sink = seen.clone();
        hooks.add(On::Failure, move |event: TaskEvent| {
            let sink = sink.clone();
            async move { sink.lock().unwrap().push(event.key().to_owned()) }
        });
        hooks
            .run(event(Outcome::Failed { error: "e".into() }))
            .await;
        hooks.run(event(Outcome::Succeeded)).await;
        assert_eq!(*seen.lock().unwrap(), ["k1"]);
    }
}
