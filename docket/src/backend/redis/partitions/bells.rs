//! A worker's claims on a docket of several partitions: one claim in progress on each
//! partition, kept across the worker's claims, so that an idle partition costs one blocking read
//! until a task arrives, and a claim hands over whatever the partitions have answered.
//!
//! A claim kept in progress may be answered while the worker has no claim waiting: between two
//! of its claims (under load, the next comes within microseconds), or while its slots are all
//! taken. What it delivered is kept for the worker's next claim for [`KEPT_FOR`] at most, then
//! given back, for a worker with room to start: a worker of one partition never reads while it
//! has no room. Kept deliveries are renewed as the worker's others are (they are in flight to
//! it from their read on).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Partitions, RedisBackend};
use crate::backend::{Backend, Delivery};
use crate::error::Result;
use crate::sync::Locked;

/// How long deliveries answered while no claim waits are kept for the worker's next claim:
/// about as long as a worker reads ahead for (20 ms of its work), so that a draining
/// worker loses none of its reads and a busy one sits on none for long.
const KEPT_FOR: Duration = Duration::from_millis(20);

/// Whether a claim waits for answers, and what came while none did. An answer is sent while
/// one waits, and kept here otherwise, under this lock.
#[derive(Default)]
struct Waiting {
    waiting: bool,
    kept: Vec<Kept>,
    /// The next [`Kept::token`].
    next: u64,
}

/// Deliveries a claim in progress made while no claim waited.
struct Kept {
    /// Tells these apart, for the give-back after [`KEPT_FOR`].
    token: u64,
    part: usize,
    /// When they were read: older than [`KEPT_FOR`] (the worker was frozen, say), they go back.
    at: Instant,
    deliveries: Vec<Delivery>,
}

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
    /// Whether a claim waits for answers, and what came while none did.
    waiting: Arc<std::sync::Mutex<Waiting>>,
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
            waiting: Arc::new(std::sync::Mutex::new(Waiting::default())),
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
        let mut unseen: Vec<(usize, Vec<Delivery>)> = Vec::new();
        while bells.armed.iter().any(|armed| *armed) {
            let Some((part, answer)) = bells.answers.recv().await else {
                break;
            };
            bells.armed[part] = false;
            unseen.push((part, answer.unwrap_or_default()));
        }
        let kept = std::mem::take(&mut bells.waiting.locked().kept);
        unseen.extend(kept.into_iter().map(|kept| (kept.part, kept.deliveries)));
        for (part, deliveries) in unseen {
            if deliveries.is_empty() {
                continue;
            }
            if let Err(error) = self.known()[part].give_back(worker, &deliveries).await {
                tracing::debug!(worker, error = %crate::error::Chain(&error), "could not give back deliveries of a stopping worker; they are taken over after the redelivery timeout");
            }
        }
    }

    /// Claim from every partition: arm a claim on each that has none in progress, then hand
    /// over what has arrived (what was kept since the last claim first), waiting for the first
    /// answer when nothing has.
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
        let kept = {
            let mut waiting = bells.waiting.locked();
            waiting.waiting = true;
            std::mem::take(&mut waiting.kept)
        };
        // Kept too long (the worker was frozen, or slow to claim again): not to be started late,
        // after a copy another worker took over.
        let (kept, stale): (Vec<Kept>, Vec<Kept>) = kept
            .into_iter()
            .partition(|kept| kept.at.elapsed() <= KEPT_FOR);
        for stale in stale {
            give_back_kept(&parts[stale.part], worker, &stale.deliveries).await;
        }
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
        let first = match kept.is_empty() {
            true => tokio::select! {
                biased;
                answer = bells.answers.recv() => answer,
                () = stop.cancelled() => None,
                () = sleep_or_never(max_wait) => None,
            },
            false => None,
        };
        let mut answers: Vec<(usize, Result<Vec<Delivery>>)> = first.into_iter().collect();
        {
            // From here on, answers are kept for the next claim; those sent before are handed
            // over.
            let waiting = Arc::clone(&bells.waiting);
            let mut waiting = waiting.locked();
            waiting.waiting = false;
            while let Ok(answer) = bells.answers.try_recv() {
                answers.push(answer);
            }
        }
        // Every partition first in turn, so none waits behind the others.
        let turn = bells.turn;
        bells.turn = (turn + 1) % parts.len();
        let order = |part: usize| (part + parts.len() - turn) % parts.len();
        answers.sort_by_key(|(part, _)| order(*part));
        let mut deliveries: Vec<Delivery> = Vec::new();
        let mut kept = kept;
        kept.sort_by_key(|kept| order(kept.part));
        for kept in kept {
            // Their partition's claim ended when they were kept: its answer said so.
            deliveries.extend(kept.deliveries);
        }
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
/// it. Otherwise what it delivered is kept for the worker's next claim, an empty answer is sent
/// (the partition may be read again), and what no claim took within [`KEPT_FOR`] is given back.
async fn answer(
    part: Arc<RedisBackend>,
    index: usize,
    worker: String,
    max: usize,
    stop: CancellationToken,
    sender: mpsc::UnboundedSender<(usize, Result<Vec<Delivery>>)>,
    waiting: Arc<std::sync::Mutex<Waiting>>,
) {
    let answer = part.take(&worker, max, None, &stop).await;
    let token = {
        let mut waiting = waiting.locked();
        match answer {
            Ok(found) if !waiting.waiting && !found.is_empty() => {
                let token = waiting.next;
                waiting.next += 1;
                waiting.kept.push(Kept {
                    token,
                    part: index,
                    at: Instant::now(),
                    deliveries: found,
                });
                let _ = sender.send((index, Ok(Vec::new())));
                token
            }
            answer => {
                let _ = sender.send((index, answer));
                return;
            }
        }
    };
    tokio::select! {
        // A stopping worker gives back what is kept (`silence`).
        () = stop.cancelled() => return,
        () = tokio::time::sleep(KEPT_FOR) => {}
    }
    let unwanted = {
        let mut waiting = waiting.locked();
        let at = waiting.kept.iter().position(|kept| kept.token == token);
        at.map(|at| waiting.kept.swap_remove(at))
    };
    if let Some(unwanted) = unwanted {
        give_back_kept(&part, &worker, &unwanted.deliveries).await;
    }
}

/// Give back deliveries a worker was not there to take. Given back or not (the call may have
/// been carried out, its reply lost), they are not to be run from here: what is still pending
/// to the worker is recovered by its next claim on the partition.
async fn give_back_kept(part: &RedisBackend, worker: &str, deliveries: &[Delivery]) {
    if let Err(error) = part.give_back(worker, deliveries).await {
        tracing::debug!(worker, error = %crate::error::Chain(&error), "could not give back deliveries no claim waited for; the next claim recovers those still held");
        for delivery in deliveries {
            part.abandon(worker, delivery);
        }
    }
}

/// Sleep for `wait`, or forever when there is none.
async fn sleep_or_never(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}
