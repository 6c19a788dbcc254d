//! Where tasks wait: the [`Backend`] trait, and the backends behind it.
//!
//! A backend stores [`Message`]s. Producers [`enqueue`](Backend::enqueue) them; workers
//! [`claim`](Backend::claim) due ones as [`Delivery`]s and settle each delivery exactly once:
//! [`complete`](Backend::complete), [`retry`](Backend::retry) or [`bury`](Backend::bury).
//! Every backend passes the same behaviour suite (`tests/tests/behaviour/mod.rs`, run by
//! `tests/tests/memory.rs` and `tests/tests/redis.rs`).

#[cfg(feature = "dashboard")]
pub(crate) mod browse;
pub(crate) mod memory;
pub(crate) mod redis;
mod stats;

use crate::schedule::Disposition;
use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::inspect::{DeadLetter, FailedAttempt, Snapshot, WorkerInfo};
use crate::results::TaskRecord;
use crate::strike::Strike;

/// How many dead letters a docket keeps by default; the oldest go first.
pub(crate) const DEAD_LETTERS_KEPT: usize = 10_000;

/// How long a dead letter is kept by default: 30 days.
pub(crate) const DEAD_LETTER_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// One stored task: what a producer wrote and a worker decodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// The registered task name.
    pub(crate) task: String,
    /// The task's key: the one given at schedule time, or a generated unique one.
    pub(crate) key: String,
    /// The argument struct as JSON.
    pub(crate) args: String,
    /// Which attempt this is, from 1.
    pub(crate) attempt: u32,
    /// When the task is due.
    pub(crate) due: SystemTime,
    /// The failed attempts before this one, oldest first.
    pub(crate) history: Vec<FailedAttempt>,
    /// The W3C `traceparent` of the schedule call, linking the execution to it.
    pub(crate) trace: Option<String>,
    /// The cooldown `enqueue` checks before it stores the task, for a task that has one. Only
    /// the producer's: it is not stored with the task, and a decoded message has none.
    pub(crate) cooldown: Option<CooldownGate>,
    /// Whether the task lives in partition 0 of a docket spread over partitions (it has a
    /// concurrency limit, a rate limit or a cooldown, counted there), as its producer knows from
    /// the task's policy; `None` when the producer does not know the task. Only the producer's,
    /// like `cooldown`.
    pub(crate) home: Option<bool>,
}

/// A schedule's cooldown, as `enqueue` applies it: when a task of `scope` was accepted less than
/// `window` ago, this one is [`Disposition::CooledDown`](crate::Disposition::CooledDown);
/// otherwise, once it is stored (added or replaced), the scope's window starts again. A
/// duplicate starts nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CooldownGate {
    /// The task name, or `task:param=value` per argument value (see `schedule::cooldown_scope`).
    pub(crate) scope: String,
    pub(crate) window: Duration,
}

impl Message {
    /// A task's first attempt: no history, no trace yet.
    pub(crate) fn first_attempt(
        task: impl Into<String>,
        key: impl Into<String>,
        args: impl Into<String>,
        due: SystemTime,
    ) -> Message {
        Message {
            task: task.into(),
            key: key.into(),
            args: args.into(),
            attempt: 1,
            due,
            history: Vec::new(),
            trace: None,
            cooldown: None,
            home: None,
        }
    }
}

/// How `enqueue` treats a key that is already taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyMode {
    /// Keep the existing task; do nothing.
    Add,
    /// Swap the waiting task for this one; a running one is left alone, and this one is added.
    Replace,
    /// The key was generated for this task, so no other task holds it: skip the look-up.
    Fresh,
}

/// A message handed to one worker, which must settle it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// Identifies this delivery, so a stale settlement cannot touch a newer run of the same key.
    pub(crate) id: DeliveryId,
    pub(crate) message: Message,
    /// Taken over from a worker that went silent while running it.
    pub(crate) redelivered: bool,
}

/// A delivery's identity in the backend that made it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum DeliveryId {
    Memory(u64),
    /// A stream entry id, in the stream of partition `part` (see `redis::partitions`).
    Stream {
        part: u16,
        id: String,
    },
}

/// A stream id (`ms-seq`) as a pair that sorts as Redis orders entries; an id of any other
/// shape sorts first.
pub(crate) fn stream_order(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

impl DeliveryId {
    /// Whether this delivery was made no later than `other`: stream ids compare by their time
    /// and sequence; memory deliveries are only ever named one by one.
    pub(crate) fn not_after(&self, other: &DeliveryId) -> bool {
        match (self, other) {
            (
                DeliveryId::Stream { part, id: this },
                DeliveryId::Stream {
                    part: other_part,
                    id: other,
                },
            ) if part == other_part => stream_order(this) <= stream_order(other),
            (this, other) => this == other,
        }
    }
}

/// Why a task was moved to the dead letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Burial {
    pub(crate) reason: String,
    /// Every failed attempt, the last one included.
    pub(crate) history: Vec<FailedAttempt>,
}

/// What a worker hears from the rest of the fleet.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Signal {
    /// Stop the runs of this key: the delivery named and any older one beside it (a `replace`
    /// while it ran), or (when `None`) every run of the key. A worker that has not started the
    /// delivery named yet never starts it.
    Cancel {
        key: String,
        delivery: Option<DeliveryId>,
    },
    /// A `replace` added a task beside this delivery of the key (it was delivered when the
    /// replace came): a worker that holds it read ahead, not started, drops it unstarted, as
    /// the replace would have taken it out of the queue; a worker running it lets it run.
    Superseded { key: String, delivery: DeliveryId },
    /// The strikes in place now (sent first on subscribing, then after every change).
    Strikes(Vec<Strike>),
    /// A dashboard shows the workers' runs by task name: publish them for this long (sent on
    /// subscribing while one does, then each time a dashboard asks again).
    StatsWanted(std::time::Duration),
}

/// A subscription to worker signals.
#[derive(Debug)]
pub(crate) struct SignalFeed {
    pub(crate) signals: mpsc::UnboundedReceiver<Signal>,
    /// How far the feed has read, for a subscription that goes on after it.
    pub(crate) position: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    /// On a docket of several partitions, how far each partition's feed has read.
    pub(crate) partitions: Vec<std::sync::Arc<std::sync::Mutex<Option<String>>>>,
}

impl SignalFeed {
    pub(crate) fn new(signals: mpsc::UnboundedReceiver<Signal>) -> SignalFeed {
        SignalFeed {
            signals,
            position: Default::default(),
            partitions: Vec::new(),
        }
    }
}

/// The limits a delivery must pass before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Gate {
    /// A concurrency slot: the limit's name (task, or task and argument value) and its size.
    pub(crate) slot: Option<(String, u32)>,
    /// A rate limit: its name, how many starts, and in what sliding window.
    pub(crate) rate: Option<(String, u32, Duration)>,
}

/// What [`Backend::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Run it now; it holds its concurrency slot (if any) until [`Backend::release`].
    Run,
    /// Its concurrency limit is full: it waits, settled, until a slot is released.
    Waiting,
    /// Its rate limit is spent: it went back to the schedule, due at this time.
    Deferred(SystemTime),
}

/// Storage for one docket. Every method is atomic with respect to every other.
pub(crate) trait Backend: Send + Sync + 'static {
    /// Store messages, due now or later, honouring their keys, in one step: one disposition
    /// per message, in order. With `keep`, each stored task's first record (queued, or
    /// scheduled when due later) is written in the same step and kept for `keep` after it is
    /// due: a task is never without its record, and no later record is overwritten by it.
    fn enqueue(
        &self,
        batch: &[(Message, KeyMode)],
        keep: Option<Duration>,
    ) -> impl Future<Output = Result<Vec<Disposition>>> + Send;

    /// Remove the waiting (or held, or gated) task with this key; if instead a run of the key
    /// is in flight, signal every worker to stop it. `false` when neither.
    fn cancel(&self, key: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Wait until tasks are due (or `max_wait` passes, or `stop` fires) and hand up to `max` of
    /// them to `worker`. Returns an empty list when there was nothing to take.
    fn claim(
        &self,
        worker: &str,
        max: usize,
        max_wait: Option<Duration>,
        stop: &CancellationToken,
    ) -> impl Future<Output = Result<Vec<Delivery>>> + Send;

    /// The deliveries succeeded: forget them.
    fn complete(&self, deliveries: &[Delivery]) -> impl Future<Output = Result<()>> + Send;

    /// The delivery ends and `next` (same key: the next attempt, or the same attempt deferred)
    /// takes its place, due at `next.due`. Unless a newer task replaced the key meanwhile.
    fn retry(&self, delivery: &Delivery, next: &Message)
    -> impl Future<Output = Result<()>> + Send;

    /// The delivery cannot or may not run again: keep it as a dead letter.
    fn bury(&self, delivery: &Delivery, burial: Burial) -> impl Future<Output = Result<()>> + Send;

    /// How often a worker with tasks in flight must call [`Backend::renew`]; `None` when the
    /// backend needs no renewal.
    fn renew_every(&self) -> Option<Duration>;

    /// Keep the deliveries `worker` holds (running, or being settled) from being taken over by
    /// another worker. Costs nothing when it holds none.
    fn renew(&self, worker: &str) -> impl Future<Output = Result<()>> + Send;

    /// Deliveries taken over by `worker` and settled without running (cancelled, superseded by
    /// a newer task of their key, buried as poison) since the last call: a concurrency slot one
    /// of them took is to be given back with [`Backend::release`].
    fn dropped(&self, worker: &str) -> Vec<Delivery>;

    /// The worker gave up settling `delivery` (the backend stayed unreachable, or its settle
    /// step crashed): it is no longer held, and is to be run again.
    fn abandon(&self, worker: &str, delivery: &Delivery);

    /// The worker stops and will not start `deliveries` (read ahead of its free slots): they
    /// are no longer held, and go back to the queue at once for another worker.
    fn give_back(
        &self,
        worker: &str,
        deliveries: &[Delivery],
    ) -> impl Future<Output = Result<()>> + Send;

    /// The worker has stopped and settled everything it took: give back what was handed to it
    /// and never started (a read it dropped as it stopped), and forget it.
    fn retire(&self, worker: &str) -> impl Future<Output = Result<()>> + Send;

    /// How many tasks are waiting or running, in all.
    fn outstanding(&self) -> impl Future<Output = Result<usize>> + Send;

    /// Everything waiting, scheduled and running.
    fn snapshot(&self) -> impl Future<Output = Result<Snapshot>> + Send;

    /// Every dead letter, oldest first.
    fn dead_letters(&self) -> impl Future<Output = Result<Vec<DeadLetter>>> + Send;

    /// Queue the dead letter with this key again, as a first attempt; `false` when there is none
    /// or its key is taken.
    fn replay(&self, key: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Subscribe to signals for workers: first the strikes in place, then every cancel and
    /// strike change. The subscription is live when this returns. Given the `feed` of an earlier
    /// subscription that ended (a dropped connection), the new one goes on where it stopped, so
    /// no cancel sent meanwhile is missed.
    fn signals(&self, feed: Option<&SignalFeed>)
    -> impl Future<Output = Result<SignalFeed>> + Send;

    /// Put a strike in place and tell every worker; `false` when it was already in place.
    fn strike(&self, strike: &Strike) -> impl Future<Output = Result<bool>> + Send;

    /// Lift a strike and tell every worker; `false` when it was not in place.
    fn restore(&self, strike: &Strike) -> impl Future<Output = Result<bool>> + Send;

    /// The strikes in place.
    fn strikes(&self) -> impl Future<Output = Result<Vec<Strike>>> + Send;

    /// Set a struck delivery aside, settled, until [`Backend::unhold`]; but only if `strike` is
    /// still in place (checked atomically). `false` means it was lifted: run the task.
    fn hold(
        &self,
        delivery: &Delivery,
        strike: &Strike,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Every held task.
    fn held(&self) -> impl Future<Output = Result<Vec<Message>>> + Send;

    /// Queue the held tasks with these keys again, due now; returns how many were held.
    fn unhold(&self, keys: &[String]) -> impl Future<Output = Result<usize>> + Send;

    /// Take the delivery's concurrency slot and rate allowance, atomically, or park it.
    fn admit(
        &self,
        delivery: &Delivery,
        gate: &Gate,
    ) -> impl Future<Output = Result<Admission>> + Send;

    /// Give back the delivery's concurrency slot and queue the first task waiting for it.
    fn release(&self, delivery: &Delivery, gate: &Gate) -> impl Future<Output = Result<()>> + Send;

    /// Store a task's record for `ttl` and publish it to its watchers: the worker's records of
    /// the changes it makes (running, completed, failed, retried). A task's first record is
    /// written by `enqueue`, its cancellation by `cancel`.
    fn record(&self, state: &TaskRecord, ttl: Duration) -> impl Future<Output = Result<()>> + Send;

    /// The stored state of a task.
    fn status(&self, key: &str) -> impl Future<Output = Result<Option<TaskRecord>>> + Send;

    /// Follow a task's state changes; the subscription is live when this returns.
    fn watch(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<mpsc::UnboundedReceiver<TaskRecord>>> + Send;
}

/// The backend a docket was opened with.
#[derive(Debug)]
pub(crate) enum AnyBackend {
    Memory(memory::MemoryBackend),
    Redis(Box<redis::partitions::Partitions>),
    /// Redis in pydocket's protocol.
    #[cfg(feature = "pydocket")]
    Pydocket(Box<redis::pydocket::PydocketBackend>),
}

/// Operator commands, outside the [`Backend`] trait the worker needs.
impl AnyBackend {
    /// Whether a worker's deliveries are leased from a server (Redis), so that claiming costs
    /// a round trip and reading ahead pays; an in-memory store hands them over in place.
    pub(crate) fn leases_deliveries(&self) -> bool {
        matches!(self, AnyBackend::Redis(_))
    }

    /// The workers serving the docket.
    pub(crate) async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        match self {
            AnyBackend::Memory(backend) => Ok(backend.workers()),
            AnyBackend::Redis(backend) => backend.workers().await,
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(backend) => backend.workers().await,
        }
    }

    /// How many tasks are in the queue (due, waiting or running) and in the schedule.
    pub(crate) async fn depth(&self) -> Result<(usize, usize)> {
        match self {
            AnyBackend::Memory(backend) => Ok(backend.depth()),
            AnyBackend::Redis(backend) => backend.depth().await,
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(backend) => backend.depth().await,
        }
    }

    /// Keep the fleet's clock for `worker` until `stop` fires (Redis: the keeper's lease, its
    /// checks, and moving future tasks when they fall due; see `redis::clock`). The memory
    /// backend needs none.
    pub(crate) async fn keep_time(&self, worker: &str, stop: &CancellationToken) {
        match self {
            AnyBackend::Memory(_) => stop.cancelled().await,
            AnyBackend::Redis(backend) => backend.keep_time(worker, stop).await,
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(backend) => backend.keep_time(worker, stop).await,
        }
    }

    /// Whether `worker`'s claim is waiting for work, with nothing else to do: however long it
    /// waits, the worker is not stuck.
    pub(crate) fn parked(&self, worker: &str) -> bool {
        match self {
            AnyBackend::Memory(backend) => backend.parked(worker),
            AnyBackend::Redis(backend) => backend.parked(worker),
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(backend) => backend.parked(worker),
        }
    }

    /// Check that the backend would take every message of `batch` (its size), without storing
    /// anything.
    pub(crate) fn check(&self, batch: &[(Message, KeyMode)]) -> Result<()> {
        match self {
            AnyBackend::Memory(_) => Ok(()),
            AnyBackend::Redis(backend) => backend.check(batch),
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(backend) => backend.check(batch),
        }
    }

    /// Forget the dead letter of `key`; whether there was one.
    pub(crate) async fn remove_dead_letter(&self, key: &str) -> Result<bool> {
        match self {
            AnyBackend::Memory(backend) => Ok(backend.remove_dead_letter(key)),
            AnyBackend::Redis(backend) => backend.remove_dead_letter(key).await,
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(backend) => backend.remove_dead_letter(key).await,
        }
    }

    /// Remove every queued and scheduled task; returns how many.
    pub(crate) async fn clear(&self) -> Result<usize> {
        match self {
            AnyBackend::Memory(backend) => Ok(backend.clear()),
            AnyBackend::Redis(backend) => backend.clear().await,
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(backend) => backend.clear().await,
        }
    }
}

/// Forward a call to whichever backend this is.
macro_rules! dispatch {
    ($self:ident, $backend:ident => $call:expr) => {
        match $self {
            AnyBackend::Memory($backend) => $call.await,
            AnyBackend::Redis($backend) => $call.await,
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket($backend) => $call.await,
        }
    };
}

impl Backend for AnyBackend {
    async fn enqueue(
        &self,
        batch: &[(Message, KeyMode)],
        keep: Option<Duration>,
    ) -> Result<Vec<Disposition>> {
        dispatch!(self, b => b.enqueue(batch, keep))
    }

    async fn cancel(&self, key: &str) -> Result<bool> {
        dispatch!(self, b => b.cancel(key))
    }

    async fn claim(
        &self,
        worker: &str,
        max: usize,
        max_wait: Option<Duration>,
        stop: &CancellationToken,
    ) -> Result<Vec<Delivery>> {
        dispatch!(self, b => b.claim(worker, max, max_wait, stop))
    }

    async fn complete(&self, deliveries: &[Delivery]) -> Result<()> {
        dispatch!(self, b => b.complete(deliveries))
    }

    async fn retry(&self, delivery: &Delivery, next: &Message) -> Result<()> {
        dispatch!(self, b => b.retry(delivery, next))
    }

    async fn bury(&self, delivery: &Delivery, burial: Burial) -> Result<()> {
        dispatch!(self, b => b.bury(delivery, burial))
    }

    fn renew_every(&self) -> Option<Duration> {
        match self {
            AnyBackend::Memory(backend) => backend.renew_every(),
            AnyBackend::Redis(backend) => backend.renew_every(),
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(backend) => backend.renew_every(),
        }
    }

    async fn renew(&self, worker: &str) -> Result<()> {
        dispatch!(self, b => b.renew(worker))
    }

    fn dropped(&self, worker: &str) -> Vec<Delivery> {
        match self {
            AnyBackend::Memory(backend) => backend.dropped(worker),
            AnyBackend::Redis(backend) => backend.dropped(worker),
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(backend) => backend.dropped(worker),
        }
    }

    fn abandon(&self, worker: &str, delivery: &Delivery) {
        match self {
            AnyBackend::Memory(backend) => backend.abandon(worker, delivery),
            AnyBackend::Redis(backend) => backend.abandon(worker, delivery),
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(backend) => backend.abandon(worker, delivery),
        }
    }

    async fn give_back(&self, worker: &str, deliveries: &[Delivery]) -> Result<()> {
        dispatch!(self, b => b.give_back(worker, deliveries))
    }

    async fn retire(&self, worker: &str) -> Result<()> {
        dispatch!(self, b => b.retire(worker))
    }

    async fn outstanding(&self) -> Result<usize> {
        dispatch!(self, b => b.outstanding())
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        dispatch!(self, b => b.snapshot())
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        dispatch!(self, b => b.dead_letters())
    }

    async fn replay(&self, key: &str) -> Result<bool> {
        dispatch!(self, b => b.replay(key))
    }

    async fn signals(&self, feed: Option<&SignalFeed>) -> Result<SignalFeed> {
        dispatch!(self, b => b.signals(feed))
    }

    async fn strike(&self, strike: &Strike) -> Result<bool> {
        dispatch!(self, b => b.strike(strike))
    }

    async fn restore(&self, strike: &Strike) -> Result<bool> {
        dispatch!(self, b => b.restore(strike))
    }

    async fn strikes(&self) -> Result<Vec<Strike>> {
        dispatch!(self, b => b.strikes())
    }

    async fn hold(&self, delivery: &Delivery, strike: &Strike) -> Result<bool> {
        dispatch!(self, b => b.hold(delivery, strike))
    }

    async fn held(&self) -> Result<Vec<Message>> {
        dispatch!(self, b => b.held())
    }

    async fn unhold(&self, keys: &[String]) -> Result<usize> {
        dispatch!(self, b => b.unhold(keys))
    }

    async fn admit(&self, delivery: &Delivery, gate: &Gate) -> Result<Admission> {
        dispatch!(self, b => b.admit(delivery, gate))
    }

    async fn release(&self, delivery: &Delivery, gate: &Gate) -> Result<()> {
        dispatch!(self, b => b.release(delivery, gate))
    }

    async fn record(&self, state: &TaskRecord, ttl: Duration) -> Result<()> {
        dispatch!(self, b => b.record(state, ttl))
    }

    async fn status(&self, key: &str) -> Result<Option<TaskRecord>> {
        dispatch!(self, b => b.status(key))
    }

    async fn watch(&self, key: &str) -> Result<mpsc::UnboundedReceiver<TaskRecord>> {
        dispatch!(self, b => b.watch(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_sort_as_redis_orders_them() {
        let mut ids = ["10-0", "9-5", "9-10", "junk"];
        ids.sort_by_key(|id| stream_order(id));
        assert_eq!(ids, ["junk", "9-5", "9-10", "10-0"]);
        let stream = |part, id: &str| DeliveryId::Stream {
            part,
            id: id.into(),
        };
        let older = stream(0, "9-10");
        assert!(older.not_after(&stream(0, "10-0")));
        assert!(!stream(0, "10-0").not_after(&older));
        // Ids of different partitions' streams say nothing of each other's order.
        assert!(!older.not_after(&stream(1, "10-0")));
        assert!(DeliveryId::Memory(3).not_after(&DeliveryId::Memory(3)));
        assert!(!DeliveryId::Memory(2).not_after(&DeliveryId::Memory(3)));
    }
}
