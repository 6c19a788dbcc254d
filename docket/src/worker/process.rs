//! Processing one delivery, from the strike check to its settlement: hold it if a strike
//! matches, pass its concurrency and rate gate, run the attempt, then complete, retry or bury
//! it (and, for a recurring task, schedule the next run).

use std::time::Duration;

use super::Shared;
use super::execution::{AttemptError, Context, NextRun, run_attempt};
use super::hooks::{Outcome, TaskEvent};
use super::upkeep::retry_while_unavailable;
use crate::backend::{Admission, AnyBackend, Backend, Burial, Delivery, Gate, KeyMode, Message};
use crate::error::{Chain, Result};
use crate::failure::TaskErrorKind;
use crate::inspect::FailedAttempt;
use crate::metrics;
use crate::policy::Policy;
use crate::results::{self, Status, TaskRecord};
use crate::worker::recurrence::Recurring;

/// Give back the concurrency slots of deliveries the backend settled without running them (a
/// crashed worker's delivery found cancelled or superseded, or buried as poison), so tasks
/// waiting for those slots go on.
pub(super) async fn release_dropped(shared: &Shared, backend: &AnyBackend) {
    for delivery in backend.dropped(&shared.worker) {
        let Some(registration) = shared.registry.get(&delivery.message.task) else {
            continue;
        };
        let Some(gate) = gate(&registration.policy(), &delivery.message) else {
            continue;
        };
        if let Err(error) = retry_while_unavailable(|| backend.release(&delivery, &gate)).await {
            tracing::warn!(key = %delivery.message.key, error = %Chain(&error), "could not give back the slot of a dropped task; the next admission finds it");
        }
    }
}

/// What processing a delivery came to.
pub(super) struct Settled {
    /// How it was settled, for the hooks; `None` when it was set aside, cancelled, or will run
    /// again.
    outcome: Option<Outcome>,
    /// Whether it is left to the acknowledger (it completed, was cancelled, or was dropped
    /// unstarted); otherwise it is settled already, or set aside, or given up.
    acknowledge: bool,
}

impl Settled {
    fn acknowledged(outcome: Option<Outcome>) -> Settled {
        Settled {
            outcome,
            acknowledge: true,
        }
    }
}

impl From<Option<Outcome>> for Settled {
    /// Settled by the step that gave `outcome` (or set aside, or given up): nothing to
    /// acknowledge.
    fn from(outcome: Option<Outcome>) -> Settled {
        Settled {
            outcome,
            acknowledge: false,
        }
    }
}

/// Process `delivery`; should that crash (a bug, or an injected fault), give it up so that it is
/// run again rather than held, unsettled, for ever. Once it is settled, run the user's hooks
/// (which log their own failures: the outcome stands).
///
/// The delivery stays here while it is processed, so a crash can give it up and the
/// acknowledger takes it over afterwards, with no copy made for either.
pub(super) async fn process_guarded(shared: &Shared, delivery: Delivery) {
    use futures_util::FutureExt;

    let settled = std::panic::AssertUnwindSafe(process(shared, &delivery))
        .catch_unwind()
        .await;
    let settled = match settled {
        Ok(settled) => settled,
        Err(_) => {
            tracing::error!(key = %delivery.message.key, "settling a task crashed; it will run again");
            shared.docket.backend().abandon(&shared.worker, &delivery);
            return;
        }
    };
    let event = settled
        .outcome
        .filter(|_| !shared.hooks.is_empty())
        .map(|outcome| {
            let message = &delivery.message;
            TaskEvent::new(
                &message.task,
                &message.key,
                message.attempt,
                &shared.worker,
                outcome,
            )
        });
    if settled.acknowledge {
        // The acknowledger has stopped only if this worker is gone, and then the task is
        // redelivered anyway.
        let _ = shared.acks.send(delivery);
    }
    if let Some(event) = event {
        shared.hooks.run(event).await;
    }
}

/// Run one delivery and settle it: acknowledge (by the acknowledger, which
/// [`process_guarded`] hands it to), retry or bury; or first hold it for a strike, or park it
/// behind a concurrency or rate limit.
///
/// The steps off the common path (hold, admit, release, records, retry, bury, the next run of
/// a recurring task) are boxed: a worker keeps one of these futures per running task, and
/// unboxed each would be as large as its largest such step (5 KiB, against 3.3 KiB boxed, in
/// a release build).
pub(super) async fn process(shared: &Shared, delivery: &Delivery) -> Settled {
    failpoint!(step "settle.start");
    let docket = &shared.docket;
    let backend = docket.backend();
    let message = &delivery.message;
    let Some(registration) = shared.registry.get(&message.task) else {
        let reason = format!(
            "unknown task `{}`: no task of that name is registered in this worker",
            message.task
        );
        return Box::pin(bury(shared, delivery, reason, None)).await.into();
    };
    let policy = registration.policy();
    let context = Context::new(message, docket, &policy);
    // Tracked from here, so a cancel that comes before the run starts is not missed.
    let tracked = shared.running.track(delivery, context.cancel_token());
    if tracked.superseded {
        // Read ahead, and a `replace` went beside it before it started: dropped as the replace
        // would have dropped it from the queue. Its key names the newer task, so the
        // acknowledgement leaves the key and its record alone.
        tracing::debug!(key = %message.key, "task replaced before it started; dropped");
        drop(tracked);
        return Settled::acknowledged(None);
    }
    if let Some(strike) = shared.struck(message) {
        match Box::pin(retry_while_unavailable(|| backend.hold(delivery, &strike))).await {
            Ok(true) => {
                tracing::info!(task = %message.task, key = %message.key, %strike, "task held by a strike");
                return None.into();
            }
            Ok(false) => {} // Restored meanwhile: run it.
            Err(error) => {
                tracing::error!(key = %message.key, error = %Chain(&error), "could not hold a struck task; it will run again");
                backend.abandon(&shared.worker, delivery);
                return None.into();
            }
        }
    }
    let gate = gate(&policy, message);
    if let Some(gate) = &gate {
        match Box::pin(retry_while_unavailable(|| backend.admit(delivery, gate))).await {
            Ok(Admission::Run) => {}
            Ok(Admission::Waiting) => {
                tracing::debug!(key = %message.key, "task waits for a concurrency slot");
                return None.into();
            }
            Ok(Admission::Deferred(due)) => {
                tracing::debug!(key = %message.key, ?due, "task deferred by its rate limit");
                return None.into();
            }
            Err(error) => {
                tracing::error!(key = %message.key, error = %Chain(&error), "could not check the task's limits; it will run again");
                backend.abandon(&shared.worker, delivery);
                return None.into();
            }
        }
    }

    let ttl = policy.result_ttl();
    if let Some(ttl) = ttl {
        let mut state = TaskRecord::new(
            &message.key,
            &message.task,
            Status::Running,
            message.attempt,
        );
        state.changes = context.changes();
        context.push_change(&state);
        Box::pin(results::record(docket, &state, ttl)).await;
    }
    failpoint!(step "settle.run");
    let source = shared.metrics_source();
    metrics::started(
        &source,
        registration.name(),
        message.due,
        docket.clock().now(),
        delivery.redelivered,
    );
    let started = tokio::time::Instant::now();
    let outcome = run_attempt(registration, message, &context).await;
    let took = started.elapsed();
    metrics::finished(&source, registration.name(), took, outcome.is_ok());
    let failed = match &outcome {
        Ok(()) => false,
        Err(AttemptError::Failed(error)) => error.kind() != TaskErrorKind::Cancelled,
        Err(AttemptError::Undecodable(_)) => true,
    };
    shared
        .stats
        .record(registration.name(), docket.clock().now(), took, failed);
    failpoint!(step "settle.finish");
    if let Some(gate) = &gate {
        // Released before settling: a crash in between runs the task again, never strands
        // its slot.
        if let Err(error) =
            Box::pin(retry_while_unavailable(|| backend.release(delivery, gate))).await
        {
            tracing::error!(key = %message.key, error = %Chain(&error), "could not release a concurrency slot");
        }
    }
    if let Some(recurring) = shared.recurring.get(registration.name()) {
        return Box::pin(finish_recurring(
            shared, delivery, recurring, &context, outcome,
        ))
        .await;
    }

    let error = match outcome {
        Ok(()) => {
            if let Some(ttl) = ttl {
                let mut state = TaskRecord::new(
                    &message.key,
                    &message.task,
                    Status::Completed,
                    message.attempt,
                );
                state.changes = context.changes();
                state.result = context.take_result();
                Box::pin(results::record(docket, &state, ttl)).await;
            }
            return Settled::acknowledged(Some(Outcome::Succeeded));
        }
        Err(AttemptError::Undecodable(error)) => {
            let reason = format!(
                "the arguments do not decode into `{}`: {error}",
                message.task
            );
            return Box::pin(bury(
                shared,
                delivery,
                reason,
                ttl.map(|ttl| (&context, ttl)),
            ))
            .await
            .into();
        }
        Err(AttemptError::Failed(error)) => error,
    };
    if error.kind() == TaskErrorKind::Cancelled {
        tracing::info!(key = %message.key, "task cancelled while running");
        if let Some(ttl) = ttl {
            let mut state = TaskRecord::new(
                &message.key,
                &message.task,
                Status::Cancelled,
                message.attempt,
            );
            state.changes = context.changes();
            state.error = Some(error.to_string());
            Box::pin(results::record(docket, &state, ttl)).await;
        }
        return Settled::acknowledged(None);
    }
    let mut history = message.history.clone();
    FailedAttempt::record(
        &mut history,
        FailedAttempt::new(message.attempt, error.to_string(), docket.clock().now()),
    );
    let retryable = error.kind() != TaskErrorKind::Permanent;
    if retryable && policy.may_retry(message.attempt) {
        let delay = error
            .retry_after()
            .unwrap_or_else(|| policy.retry_delay(message.attempt));
        let next = Message {
            attempt: message.attempt.saturating_add(1),
            due: crate::time::saturating_due(docket.clock().now(), delay),
            history,
            ..message.clone()
        };
        if let Some(ttl) = ttl {
            let mut state =
                TaskRecord::new(&message.key, &message.task, Status::Scheduled, next.attempt);
            state.changes = context.changes();
            state.error = Some(error.to_string());
            Box::pin(results::record(docket, &state, ttl)).await;
        }
        metrics::retried(&shared.metrics_source(), registration.name());
        let settled = match Box::pin(retry_while_unavailable(|| backend.retry(delivery, &next)))
            .await
        {
            Ok(()) => Some(Outcome::Retried {
                error: error.to_string(),
                at: next.due,
            }),
            Err(failure) => {
                tracing::error!(key = %message.key, error = %Chain(&failure), "could not schedule a retry; the task will run again");
                backend.abandon(&shared.worker, delivery);
                None
            }
        };
        settled.into()
    } else {
        let reason = if retryable {
            format!(
                "failed on attempt {} of {}: {error}",
                message.attempt,
                policy.max_attempts()
            )
        } else {
            format!("failed for good on attempt {}: {error}", message.attempt)
        };
        let delivery = Delivery {
            id: delivery.id.clone(),
            message: Message {
                history,
                ..message.clone()
            },
            redelivered: delivery.redelivered,
        };
        Box::pin(bury(
            shared,
            &delivery,
            reason,
            ttl.map(|ttl| (&context, ttl)),
        ))
        .await
        .into()
    }
}

/// End a run of a recurring task: put the next run in its place (unless the task stopped
/// itself or was cancelled), then leave this one to be acknowledged. A failed run is logged,
/// not retried or buried: the next period is its retry.
pub(super) async fn finish_recurring(
    shared: &Shared,
    delivery: &Delivery,
    recurring: &Recurring,
    context: &Context,
    outcome: Result<(), AttemptError>,
) -> Settled {
    let message = &delivery.message;
    let backend = shared.docket.backend();
    let cancelled = matches!(&outcome, Err(AttemptError::Failed(error)) if error.kind() == TaskErrorKind::Cancelled);
    let settled = match &outcome {
        Ok(()) => Some(Outcome::Succeeded),
        Err(_) if cancelled => None,
        Err(error) => {
            let error = match error {
                AttemptError::Undecodable(error) => error.to_string(),
                AttemptError::Failed(error) => error.to_string(),
            };
            tracing::error!(task = %message.task, key = %message.key, %error, "recurring task failed; it runs again at its next time");
            Some(Outcome::Failed { error })
        }
    };
    let next_due = match context.take_next_run() {
        _ if cancelled => None,
        Some(NextRun::Stop) => None,
        Some(NextRun::At(when)) => Some(when),
        None => Some(recurring.next_due(message.due, shared.docket.clock().now())),
    };
    if let Some(due) = next_due {
        let next = Message {
            attempt: 1,
            due,
            history: Vec::new(),
            ..message.clone()
        };
        let batch = [(next, KeyMode::Replace)];
        if let Err(error) =
            retry_while_unavailable(|| async { backend.enqueue(&batch, None).await.map(drop) })
                .await
        {
            tracing::error!(task = %message.task, error = %Chain(&error), "could not schedule the next run of a recurring task; a worker starting adds it again");
        }
    } else {
        tracing::info!(task = %message.task, "recurring task stopped");
    }
    Settled::acknowledged(settled)
}

/// The limits `message` must pass, named by task and, for a per-argument limit, the value (or,
/// for a value over [`MAX_SCOPE_BYTES`](crate::schedule::MAX_SCOPE_BYTES), its digest).
pub(super) fn gate(policy: &Policy, message: &Message) -> Option<Gate> {
    let concurrency = policy.concurrency();
    let rate = policy.rate_limit();
    if concurrency.is_none() && rate.is_none() {
        return None;
    }
    let args: Option<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&message.args).ok();
    let scope = |param: Option<&str>| match param {
        None => message.task.clone(),
        Some(param) => {
            let value = crate::schedule::scope_value(args.as_ref(), param);
            if value.len() <= crate::schedule::MAX_SCOPE_BYTES {
                return format!("{}:{param}={value}", message.task);
            }
            // `schedule` refuses such values, but a task stored before it did, or by
            // `add_json`, may hold one: it runs, counted under a digest of the value, so that
            // the limit's Redis keys stay short.
            let digest = crate::key::digest(value.as_bytes());
            format!("{}:{param}#{digest}", message.task)
        }
    };
    Some(Gate {
        slot: concurrency.map(|limit| (scope(limit.param), limit.max)),
        rate: rate.map(|rate| (scope(rate.param), rate.count, rate.window)),
    })
}

/// Keep the delivery as a dead letter (recording its failed state, after the run's, when it
/// keeps results); the outcome, unless the dead letter could not be written and the task will
/// run again.
pub(super) async fn bury(
    shared: &Shared,
    delivery: &Delivery,
    reason: String,
    results: Option<(&Context, Duration)>,
) -> Option<Outcome> {
    let backend = shared.docket.backend();
    let message = &delivery.message;
    tracing::error!(task = %message.task, key = %message.key, %reason, "task moved to the dead letters");
    metrics::dead_lettered(&shared.metrics_source(), &message.task);
    if let Some((context, ttl)) = results {
        let mut state =
            TaskRecord::new(&message.key, &message.task, Status::Failed, message.attempt);
        state.changes = context.changes();
        state.error = Some(reason.clone());
        results::record(context.docket(), &state, ttl).await;
    }
    let mut history = message.history.clone();
    if history
        .last()
        .is_none_or(|last| last.attempt != message.attempt)
    {
        FailedAttempt::record(
            &mut history,
            FailedAttempt::new(message.attempt, reason.clone(), shared.docket.clock().now()),
        );
    }
    let burial = Burial {
        reason: reason.clone(),
        history,
    };
    match retry_while_unavailable(|| backend.bury(delivery, burial.clone())).await {
        Ok(()) => Some(Outcome::DeadLettered { reason }),
        Err(error) => {
            tracing::error!(key = %message.key, error = %Chain(&error), "could not record a dead letter; the task will run again");
            backend.abandon(&shared.worker, delivery);
            None
        }
    }
}
