//! Where tasks wait: the [`Backend`] trait, and the backends behind it.
//!
//! A backend stores [`Message`]s. Producers [`enqueue`](Backend::enqueue) them; workers
//! [`claim`](Backend::claim) due ones as [`Delivery`]s and settle each delivery exactly once:
//! [`complete`](Backend::complete), [`retry`](Backend::retry) or [`bury`](Backend::bury).
//! Every backend passes the same behaviour suite (`tests/tests/behaviour.rs`).

pub(crate) mod memory;
pub(crate) mod redis;

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::snapshot::{DeadLetter, Snapshot};

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

/// What `enqueue` did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The task was stored.
    Added,
    /// The task took the place of a waiting task with the same key.
    Replaced,
    /// A task with the same key was already waiting or running, so nothing changed.
    Duplicate,
}

/// A message handed to one worker, which must settle it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// Identifies this delivery, so a stale settlement cannot touch a newer run of the same key.
    pub(crate) id: DeliveryId,
    pub(crate) message: Message,
}

/// A delivery's identity in the backend that made it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum DeliveryId {
    Memory(u64),
    /// A stream entry id.
    Stream(String),
}

/// Why a task was moved to the dead letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Burial {
    pub(crate) reason: String,
}

/// Storage for one docket. Every method is atomic with respect to every other.
pub(crate) trait Backend: Send + Sync + 'static {
    /// Store messages, due now or later, honouring their keys, in one step: one disposition
    /// per message, in order.
    fn enqueue(
        &self,
        batch: &[(Message, KeyMode)],
    ) -> impl Future<Output = Result<Vec<Disposition>>> + Send;

    /// Remove the waiting task with this key; `false` when none was waiting.
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

    /// The delivery failed and will be tried again at `due`, as its next attempt.
    fn retry(
        &self,
        delivery: &Delivery,
        due: SystemTime,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The delivery cannot or may not run again: keep it as a dead letter.
    fn bury(&self, delivery: &Delivery, burial: Burial) -> impl Future<Output = Result<()>> + Send;

    /// How often a worker with tasks in flight must call [`Backend::renew`]; `None` when the
    /// backend needs no renewal.
    fn renew_every(&self) -> Option<Duration>;

    /// Keep the deliveries of `worker` from being taken over by another worker.
    fn renew(&self, worker: &str) -> impl Future<Output = Result<()>> + Send;

    /// The worker has stopped and settled everything it took: forget it.
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
}

/// The backend a docket was opened with.
#[derive(Debug)]
pub(crate) enum AnyBackend {
    Memory(memory::MemoryBackend),
    Redis(Box<redis::RedisBackend>),
}

/// Forward a call to whichever backend this is.
macro_rules! dispatch {
    ($self:ident, $backend:ident => $call:expr) => {
        match $self {
            AnyBackend::Memory($backend) => $call.await,
            AnyBackend::Redis($backend) => $call.await,
        }
    };
}

impl Backend for AnyBackend {
    async fn enqueue(&self, batch: &[(Message, KeyMode)]) -> Result<Vec<Disposition>> {
        dispatch!(self, b => b.enqueue(batch))
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

    async fn retry(&self, delivery: &Delivery, due: SystemTime) -> Result<()> {
        dispatch!(self, b => b.retry(delivery, due))
    }

    async fn bury(&self, delivery: &Delivery, burial: Burial) -> Result<()> {
        dispatch!(self, b => b.bury(delivery, burial))
    }

    fn renew_every(&self) -> Option<Duration> {
        match self {
            AnyBackend::Memory(backend) => backend.renew_every(),
            AnyBackend::Redis(backend) => backend.renew_every(),
        }
    }

    async fn renew(&self, worker: &str) -> Result<()> {
        dispatch!(self, b => b.renew(worker))
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
}
