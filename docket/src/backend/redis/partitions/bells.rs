//! A worker's claims on a docket of several partitions: one claim in progress on each
//! partition, kept across the worker's claims, so that an idle partition costs one blocking read
//! until a task arrives, and a claim hands over whatever the partitions have answered.
//!
//! A claim kept in progress may be answered while the worker has no claim waiting: between two
//! of its claims (under load, the next comes within microseconds), or while its slots are all
//! taken. What it delivered is kept for the worker's next claim for [`kept_for`] at most, then
//! given back, for a worker with room to start: a worker of one partition never reads while it
//! has no room. Kept deliveries are renewed as the worker's others are (they are in flight to
//! it from their read on).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Partitions, RedisBackend};
use crate::backend::{Backend, Delivery};
use crate::error::Result;
use crate::sync::Locked;

/// How long deliveries answered while no claim waits are kept for the worker's next claim: a
/// few times what a worker reads ahead for (20 ms of its work), so that a draining worker
/// gives none of its reads back, and a busy one sits on none for long. At most an eighth of the
/// redelivery timeout (see [`kept_for`]).
const KEPT_FOR: Duration = Duration::from_millis(100);

/// How long `part`'s deliveries are kept: [`KEPT_FOR`], or an eighth of the redelivery timeout
/// when that is shorter, so that nothing kept can have been taken over (renewals come every
/// quarter timeout).
fn kept_for(part: &RedisBackend) -> Duration {
    KEPT_FOR.min(part.options.redelivery_timeout / 8)
}

/// A partition's claim's answer: its index, and what it delivered.
type Answer = (usize, Result<Vec<Delivery>>);

/// Whether a claim waits for answers, and what came while none did. An answer is sent while
/// one waits, and kept here otherwise, under this lock.
#[derive(Default)]
struct Waiting {
    waiting: bool,
    kept: Vec<Kept>,
    /// The next [`Kept::token`].
    next: u64,
}

impl Waiting {
    /// Keep `deliveries` of partition `part`, read at `at`; the token to find them by.
    fn keep(&mut self, part: usize, at: Instant, deliveries: Vec<Delivery>) -> u64 {
        let token = self.next;
        self.next += 1;
        self.kept.push(Kept {
            token,
            part,
            at,
            deliveries,
        });
        token
    }
}

/// Deliveries a claim in progress made while no claim waited, or more than a claim asked for.
struct Kept {
    /// Tells these apart, for the give-back after [`kept_for`].
    token: u64,
    part: usize,
    /// When they were read: kept for longer (the worker was frozen, say), they go back.
    at: Instant,
    deliveries: Vec<Delivery>,
}

/// A worker's claims in progress on a docket of several partitions.
pub(super) struct Bells {
    /// Which partitions have a claim in progress.
    armed: Vec<bool>,
    /// Each claim's answer, with its partition.
    answers: mpsc::UnboundedReceiver<Answer>,
    sender: mpsc::UnboundedSender<Answer>,
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
        // after a copy another worker took over. Given back beside the claim, which may be
        // dropped midway.
        let (mut kept, stale): (Vec<Kept>, Vec<Kept>) = kept
            .into_iter()
            .partition(|kept| kept.at.elapsed() <= kept_for(&parts[kept.part]));
        for stale in stale {
            let (part, worker) = (Arc::clone(&parts[stale.part]), worker.to_owned());
            tokio::spawn(async move { give_back_kept(&part, &worker, &stale.deliveries).await });
        }
        // Answers that came since the last claim. A failure among them is old news: the worker
        // has had its pause since, or was busy; its partition is claimed again now (its claim
        // first recovers what a lost read may have handed over), and this claim fails only on
        // a failure of its own. Otherwise a worker whose reads on several partitions failed at
        // once (a dropped connection) would pause once per partition before it recovered them,
        // as long as a redelivery timeout with three partitions: long enough for a copy to be
        // taken over meanwhile.
        let mut answers: Vec<Answer> = Vec::new();
        // Said only should this claim end with nothing (a claim with a time limit may end
        // before the partitions claimed again answer): the worker then knows Redis failed it.
        let mut stale = None;
        while let Ok((part, answer)) = bells.answers.try_recv() {
            match answer {
                // Claimed again at the next claim, as before: not sooner, or a worker short of
                // room would read more than it can start.
                Ok(found) => answers.push((part, Ok(found))),
                Err(error) => {
                    bells.armed[part] = false;
                    tracing::debug!(worker, partition = part, error = %crate::error::Chain(&error), "a claim on one of the docket's partitions failed since the worker's last claim; claiming it again");
                    stale = Some(error);
                }
            }
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
        // An answer already here (its partition is claimed again next time) is handed over at
        // once, as one that came while this claim waited would be.
        let ready = !kept.is_empty() || !answers.is_empty();
        let first = match ready {
            false => tokio::select! {
                biased;
                answer = bells.answers.recv() => answer,
                () = stop.cancelled() => None,
                () = sleep_or_never(max_wait) => None,
            },
            true => None,
        };
        answers.extend(first);
        let answered = Instant::now();
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
        // What was kept first (their partitions' claims ended when they were kept: the answers
        // said so), then the answers, each partition in turn.
        kept.sort_by_key(|kept| order(kept.part));
        let mut found: Vec<(usize, Instant, Vec<Delivery>)> = kept
            .into_iter()
            .map(|kept| (kept.part, kept.at, kept.deliveries))
            .collect();
        let mut failure = None;
        for (part, answer) in answers {
            bells.armed[part] = false;
            match answer {
                Ok(deliveries) => found.push((part, answered, deliveries)),
                Err(error) => failure = Some(error),
            }
        }
        // No more than the claim asked for: each partition's claim read up to its own claim's
        // count. The rest is kept for the next claim, as answers that come between claims are.
        let mut deliveries: Vec<Delivery> = Vec::new();
        let room = max.max(1);
        for (part, at, mut share) in found {
            let rest = share.split_off(share.len().min(room.saturating_sub(deliveries.len())));
            deliveries.extend(share);
            if rest.is_empty() {
                continue;
            }
            let token = bells.waiting.locked().keep(part, at, rest);
            tokio::spawn(give_back_unless_taken(
                Arc::clone(&parts[part]),
                worker.to_owned(),
                Arc::clone(&bells.waiting),
                token,
                at,
                bells.stop.clone(),
            ));
        }
        drop(bells);
        match failure.or_else(|| stale.filter(|_| deliveries.is_empty())) {
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
/// (the partition may be read again), and what no claim took within [`kept_for`] is given back.
async fn answer(
    part: Arc<RedisBackend>,
    index: usize,
    worker: String,
    max: usize,
    stop: CancellationToken,
    sender: mpsc::UnboundedSender<Answer>,
    waiting: Arc<std::sync::Mutex<Waiting>>,
) {
    // Should the claim never answer (it panicked), its partition would stay armed, never to be
    // claimed again, and a stopping worker would wait for its answer for ever.
    let unanswered = Unanswered {
        part: &part,
        worker: &worker,
        index,
        sender: Some(&sender),
    };
    let answer = part.take(&worker, max, None, &stop).await;
    unanswered.answered();
    let at = Instant::now();
    let token = {
        let mut kept = waiting.locked();
        match answer {
            Ok(found) if !kept.waiting && !found.is_empty() => {
                let token = kept.keep(index, at, found);
                let _ = sender.send((index, Ok(Vec::new())));
                token
            }
            answer => {
                let _ = sender.send((index, answer));
                return;
            }
        }
    };
    give_back_unless_taken(part, worker, waiting, token, at, stop).await;
}

/// Sends a failed answer for a claim dropped before it answered; what the claim may have been
/// handed meanwhile is looked for by the partition's next claim, as after a failed read.
struct Unanswered<'a> {
    part: &'a RedisBackend,
    worker: &'a str,
    index: usize,
    sender: Option<&'a mpsc::UnboundedSender<Answer>>,
}

impl Unanswered<'_> {
    fn answered(mut self) {
        self.sender = None;
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            self.part.lost(self.worker);
            let _ = sender.send((
                self.index,
                Err(crate::error::Error::Unavailable {
                    source: "a claim on one of the docket's partitions ended without an answer"
                        .into(),
                }),
            ));
        }
    }
}

/// Give back what was kept under `token` at `at`, unless a claim took it within
/// [`kept_for`]. A stopping worker gives back what is kept itself (`silence`).
async fn give_back_unless_taken(
    part: Arc<RedisBackend>,
    worker: String,
    waiting: Arc<std::sync::Mutex<Waiting>>,
    token: u64,
    at: Instant,
    stop: CancellationToken,
) {
    tokio::select! {
        () = stop.cancelled() => return,
        () = tokio::time::sleep_until(at + kept_for(&part)) => {}
    }
    let unwanted = {
        let mut waiting = waiting.locked();
        let found = waiting.kept.iter().position(|kept| kept.token == token);
        found.map(|found| waiting.kept.swap_remove(found))
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
