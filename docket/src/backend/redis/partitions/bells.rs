//! A worker's claims on a docket of several partitions: one claim in progress on each
//! partition, kept across the worker's claims, so that an idle partition costs one blocking read
//! until a task arrives, and a claim hands over whatever the partitions have answered.
//!
//! A claim kept in progress may be answered while the worker has no claim waiting (its slots
//! are full): what it delivered is given back at once, for a worker with room to start, as a
//! worker of one partition never reads while it has none.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Partitions, RedisBackend};
use crate::backend::{Backend, Delivery};
use crate::error::Result;
use crate::sync::Locked;

/// A worker's claims in progress on a docket of several partitions.
pub(super) struct Bells {
    /// Which partitions have a claim in progress.
    armed: Vec<bool>,
    /// Each claim's answer, with its partition.
    answers: mpsc::UnboundedReceiver<(usize, Result<Vec<Delivery>>)>,
    sender: mpsc::UnboundedSender<(usize, Result<Vec<Delivery>>)>,
    /// Ends the claims in progress: the worker stops.
    stop: CancellationToken,
    /// Where the next claim's gathering starts, so that every partition is first in turn.
    turn: usize,
    /// Whether a claim waits for answers. An answer is sent while it does (under this lock);
    /// one that comes when none does is given back instead.
    waiting: Arc<std::sync::Mutex<bool>>,
}

impl Bells {
    pub(super) fn new(count: usize) -> Bells {
        let (sender, answers) = mpsc::unbounded_channel();
        Bells {
            armed: vec![false; count],
            answers,
            sender,
            stop: CancellationToken::new(),
            turn: 0,
            waiting: Arc::new(std::sync::Mutex::new(false)),
        }
    }
}

impl Partitions {
    /// End `worker`'s claims in progress, wait for their answers, and give back what they
    /// delivered that the worker never saw.
    pub(super) async fn silence(&self, worker: &str) {
        let Some(bells) = self.bells.locked().remove(worker) else {
            return;
        };
        let mut bells = bells.lock().await;
        bells.stop.cancel();
        while bells.armed.iter().any(|armed| *armed) {
            let Some((part, answer)) = bells.answers.recv().await else {
                break;
            };
            bells.armed[part] = false;
            let unseen = answer.unwrap_or_default();
            if unseen.is_empty() {
                continue;
            }
            if let Err(error) = self.known()[part].give_back(worker, &unseen).await {
                tracing::debug!(worker, error = %crate::error::Chain(&error), "could not give back deliveries of a stopping worker; they are taken over after the redelivery timeout");
            }
        }
    }

    /// Claim from every partition: arm a claim on each that has none in progress, then hand
    /// over what has arrived, waiting for the first answer when nothing has.
    pub(super) async fn claim_spread(
        &self,
        parts: &[Arc<RedisBackend>],
        worker: &str,
        max: usize,
        max_wait: Option<Duration>,
        stop: &CancellationToken,
    ) -> Result<Vec<Delivery>> {
        let bells = Arc::clone(
            self.bells
                .locked()
                .entry(worker.to_owned())
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(Bells::new(parts.len())))),
        );
        let mut bells = bells.lock().await;
        *bells.waiting.locked() = true;
        for (index, part) in parts.iter().enumerate() {
            if bells.armed[index] {
                continue;
            }
            bells.armed[index] = true;
            tokio::spawn(answer(
                Arc::clone(part),
                index,
                worker.to_owned(),
                max,
                bells.stop.clone(),
                bells.sender.clone(),
                Arc::clone(&bells.waiting),
            ));
        }
        let first = tokio::select! {
            biased;
            answer = bells.answers.recv() => answer,
            () = stop.cancelled() => None,
            () = sleep_or_never(max_wait) => None,
        };
        let mut answers: Vec<(usize, Result<Vec<Delivery>>)> = first.into_iter().collect();
        {
            // From here on, answers are given back; those sent before are handed over.
            let waiting = Arc::clone(&bells.waiting);
            let mut waiting = waiting.locked();
            *waiting = false;
            while let Ok(answer) = bells.answers.try_recv() {
                answers.push(answer);
            }
        }
        // Every partition first in turn, so none waits behind the others.
        let turn = bells.turn;
        bells.turn = (turn + 1) % parts.len();
        answers.sort_by_key(|(part, _)| (part + parts.len() - turn) % parts.len());
        let mut deliveries = Vec::new();
        let mut failure = None;
        for (part, answer) in answers {
            bells.armed[part] = false;
            match answer {
                Ok(found) => deliveries.extend(found),
                Err(error) => failure = Some(error),
            }
        }
        drop(bells);
        match failure {
            Some(error) if deliveries.is_empty() => Err(error),
            Some(error) => {
                tracing::warn!(worker, error = %crate::error::Chain(&error), "claiming from one of the docket's partitions failed; trying it again");
                Ok(deliveries)
            }
            None => Ok(deliveries),
        }
    }
}

/// One claim in progress on `part` for `worker`: its answer is sent while a claim waits for
/// it; otherwise what it delivered is given back, and an empty answer sent.
async fn answer(
    part: Arc<RedisBackend>,
    index: usize,
    worker: String,
    max: usize,
    stop: CancellationToken,
    sender: mpsc::UnboundedSender<(usize, Result<Vec<Delivery>>)>,
    waiting: Arc<std::sync::Mutex<bool>>,
) {
    let answer = part.take(&worker, max, None, &stop).await;
    let unwanted = {
        let waiting = waiting.locked();
        match answer {
            Ok(found) if !*waiting && !found.is_empty() => found,
            answer => {
                let _ = sender.send((index, answer));
                return;
            }
        }
    };
    if let Err(error) = part.give_back(&worker, &unwanted).await {
        // Given back or not (the call may have been carried out, its reply lost): not to be
        // run from here. What is still pending to the worker is recovered by its next claim
        // on the partition.
        tracing::debug!(worker, error = %crate::error::Chain(&error), "could not give back deliveries no claim waited for; the next claim recovers those still held");
        for delivery in &unwanted {
            part.abandon(&worker, delivery);
        }
    }
    let _ = sender.send((index, Ok(Vec::new())));
}

/// Sleep for `wait`, or forever when there is none.
async fn sleep_or_never(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}
