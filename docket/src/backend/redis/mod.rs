//! The Redis backend (`redis://`, `rediss://`): durable, at-least-once.
//!
//! Due tasks flow through a stream read by the consumer group `workers`; each worker is a
//! consumer with a unique name. Future tasks wait in a sorted set and are moved to the stream
//! when due, by whichever worker's timer fires first. A delivered entry stays in its worker's
//! pending list until settled; a live worker renews its claim, and entries whose worker stopped
//! renewing are reclaimed by another after the redelivery timeout. The key layout is in
//! [`keys`], each atomic step a Lua script in `lua/`.
//!
//! An idle worker blocks on the stream until the earliest future task is due (or, at the
//! latest, until its next reclaim check); a task scheduled earlier than that adds a wake-up entry
//! to the stream. It never polls.
//!
//! Each worker also follows the signals stream (strike changes, cancels of running tasks) on a
//! connection of its own, blocked in `XREAD` until something is signalled. Tasks a strike holds
//! wait in a hash. A task whose concurrency limit is full is acknowledged but stays in the
//! stream, its id queued on the limit's list until a holder releases its slot; so it still
//! counts as queued, at no cost to tasks without limits. Kept task states are expiring strings,
//! each change published on a channel of the same name for watchers.

mod admin;
#[cfg(feature = "dashboard")]
mod browse;
mod claim;
mod clock;
mod codec;
mod connection;
mod feeds;
#[cfg(fuzzing)]
pub(crate) mod fuzz;
mod keys;
pub(crate) mod partitions;
#[cfg(feature = "pydocket")]
pub(crate) mod pydocket;
mod reply;
mod scripts;
mod settle;
mod solo;
mod stats;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use redis::{RedisError, Value};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use self::claim::{Reader, Timer};
use self::codec::millis;
use self::connection::{CONNECT_TIMEOUT, RESPONSE_TIMEOUT, Shared, into_error, unavailable};
use self::feeds::{follow_signals, follow_states};
use self::keys::Keys;
use self::reply::stream_entries;
use self::scripts::{Invocation, SCRIPTS};
use self::settle::SETTLE_CHUNK;
use super::{
    Admission, Backend, Burial, Delivery, DeliveryId, Gate, KeyMode, Message, Signal, SignalFeed,
};
use crate::error::{Error, Result};
use crate::inspect::{DeadLetter, Snapshot};
use crate::results::TaskRecord;
use crate::schedule::Disposition;
use crate::strike::Strike;
use crate::sync::Locked;
use crate::time::millis_of;

/// Settings of a Redis connection, from [`Connect`](crate::Connect).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RedisOptions {
    /// How long a delivery may go unrenewed before another worker takes it over.
    pub(crate) redelivery_timeout: Duration,
    /// The largest message a worker decodes; larger ones become dead letters.
    pub(crate) max_payload: usize,
    /// PEM certificates to trust for `rediss://`, instead of the system's roots.
    pub(crate) tls_ca: Option<Vec<u8>>,
    /// How many deliveries a task may have without being settled before it is a dead letter.
    pub(crate) max_deliveries: u64,
    /// The most dead letters kept; the oldest go first.
    pub(crate) dead_letters_kept: usize,
    /// How long a dead letter is kept.
    pub(crate) dead_letter_age: Duration,
    /// How many replicas must confirm stored tasks before `enqueue` returns (0: none).
    pub(crate) wait_replicas: u32,
    /// The key layout and message format: docket's own, or pydocket's.
    pub(crate) protocol: crate::connect::Protocol,
    /// How many partitions a docket spreads over when it has no stored layout yet.
    pub(crate) partitions: u16,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            redelivery_timeout: Duration::from_secs(300),
            max_payload: DEFAULT_MAX_PAYLOAD,
            tls_ca: None,
            max_deliveries: 5,
            dead_letters_kept: super::DEAD_LETTERS_KEPT,
            dead_letter_age: super::DEAD_LETTER_AGE,
            wait_replicas: 0,
            protocol: crate::connect::Protocol::Docket,
            partitions: 1,
        }
    }
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("redelivery_timeout", &self.redelivery_timeout)
            .field("max_payload", &self.max_payload)
            .field("tls_ca", &self.tls_ca.as_ref().map(|_| "set"))
            .field("max_deliveries", &self.max_deliveries)
            .field("dead_letters_kept", &self.dead_letters_kept)
            .field("dead_letter_age", &self.dead_letter_age)
            .field("wait_replicas", &self.wait_replicas)
            .field("protocol", &self.protocol)
            .field("partitions", &self.partitions)
            .finish()
    }
}

/// The longest `enqueue` waits for replicas to confirm (see `Connect::wait_replicas`).
const REPLICA_WAIT: Duration = Duration::from_secs(2);

/// The most bytes one request may take on managed Redis: Upstash's limit on its free and
/// pay-as-you-go plans, "1 MB", read as 10^6 bytes.
const MAX_REQUEST_BYTES: usize = 1_000_000;

/// The default `max_payload`, 960 KiB (983,040 bytes): with its envelope, one task of that size
/// is one `enqueue` request of under [`MAX_REQUEST_BYTES`].
///
/// The envelope is all the request holds besides the message: `EVALSHA`, the 40-digit sha and
/// the key count (67 bytes with their RESP framing); seven key names, six of them `{name}:…`
/// and the first record's `{name}:state:<key>`; `now` and `keep`; then the task's key, due
/// time, mode and first record, which repeats the key and the task name (JSON-escaped, so up to
/// twice their length) around 90 bytes. Each value costs its RESP framing, at most 12 bytes.
/// For a docket name, task name and key of 1 KiB each (the key's limit; the names have none, and
/// are short in practice), the names of characters JSON escapes, that is 13,701 bytes, measured
/// by the unit test below; 960 KiB leaves 16,960. With short names (`plyr`, `scan_copyright`,
/// `scan-7`) it is about 430 bytes.
pub(crate) const DEFAULT_MAX_PAYLOAD: usize = 960 << 10;

/// The most tasks one `enqueue` call stores (well under ElastiCache Serverless's 3,999
/// arguments a request, and Lua's limit on `unpack`), and the most bytes of task data it takes
/// (keys, messages, first records and their framing, see [`TASK_FRAMING`]): with the envelope,
/// under [`MAX_REQUEST_BYTES`]. A task larger than that goes alone. Larger batches are split.
const ENQUEUE_CHUNK: usize = 500;
const ENQUEUE_CHUNK_BYTES: usize = 512 << 10;

/// The bytes a task adds to an `enqueue` request besides its key, message and first record (and
/// its key): the RESP framing of those and of its due time and mode (at most 12 bytes each),
/// the due time (at most 15 digits) and the mode (at most 7 bytes).
const TASK_FRAMING: usize = 128;

const _: () = assert!(ENQUEUE_CHUNK_BYTES + (32 << 10) < MAX_REQUEST_BYTES);
const _: () = assert!(DEFAULT_MAX_PAYLOAD + (16 << 10) < MAX_REQUEST_BYTES);

/// One call that stores a chunk of a batch (see [`RedisBackend::enqueue_calls`]).
struct EnqueueCall {
    invocation: Invocation<'static>,
    /// How many tasks it stores.
    tasks: usize,
}

impl EnqueueCall {
    /// Send it; the outcome of each of its tasks, as `enqueue.lua` numbers them.
    /// `add_fresh.lua` adds every task it is given and answers how many.
    async fn outcomes(&self, backend: &RedisBackend) -> Result<Vec<u8>> {
        if !std::ptr::eq(self.invocation.lua(), &SCRIPTS.add_fresh) {
            return backend.invoke(&self.invocation).await;
        }
        let added: usize = backend.invoke(&self.invocation).await?;
        if added != self.tasks {
            return Err(Error::Backend {
                source: format!("add_fresh stored {added} tasks of {}", self.tasks).into(),
            });
        }
        Ok(vec![0; added])
    }
}

/// One partition of a docket on Redis: its keys, and what this process knows and holds of them.
/// A docket of one partition is one of these; the partitions of a larger one
/// ([`partitions::Partitions`]) share their connections.
pub(crate) struct RedisBackend {
    keys: Keys,
    /// Which partition of the docket this is (0: the docket's own hash tag).
    part: u16,
    /// The URL without its password, for messages.
    url: String,
    endpoint: Arc<connection::Endpoint>,
    /// Shared by every operation but the blocking read, one for each tokio runtime that uses
    /// this docket (see [`Shared`]), and by all partitions.
    shared: Arc<Mutex<Vec<Shared>>>,
    /// Dedicated connections for blocking reads, one per claim in progress.
    readers: Mutex<Vec<Reader>>,
    timer: Mutex<Timer>,
    /// Blocked readers are told here that the time of the reclaim tick changed.
    chores: Notify,
    /// Blocked readers are told here that Redis may be gone, their connections with it: they
    /// leave their reads and connect again.
    unreachable: Notify,
    /// The timer changed: the clocks ([`clock`]) plan again.
    changed: Notify,
    /// Workers a wake-up reached: their clocks move the tasks of the new schedule head.
    woken: Mutex<HashSet<String>>,
    /// Workers a keeper's hand-off reached: their clocks look at the lease at once.
    handed: Mutex<HashSet<String>>,
    /// Workers blocked in a read with nothing else to do, for their health.
    parked: Mutex<HashSet<String>>,
    /// Stream ids handed to this process's workers and not yet settled, and the worker (the
    /// consumer) holding each. A delivery leaves only when its settlement has returned, so it is
    /// renewed while it is being settled and never recovered as lost meanwhile.
    in_flight: Mutex<crate::sync::FastMap<String, String>>,
    /// Workers whose read failed: entries it delivered may never have reached them.
    lost_reads: Mutex<HashSet<String>>,
    /// Deliveries taken over by a worker and settled without running (cancelled, superseded,
    /// buried as poison), by worker: the worker gives back their concurrency slots.
    dropped: Mutex<HashMap<String, Vec<Delivery>>>,
    /// Shared by all partitions: which workers may take a suspect alone ([`solo`]).
    solo: Arc<solo::Solo>,
    options: RedisOptions,
    /// Commands this handle has sent, its signal and watch feeds included.
    sent: Arc<AtomicU64>,
    /// Whether the server takes the scripts' `allow-key-locking` flag, once known.
    key_locking: Arc<scripts::KeyLocking>,
}

impl RedisBackend {
    /// Every message of `batch` fits the payload limit; else the error for the first that does
    /// not.
    pub(crate) fn check(&self, batch: &[(Message, KeyMode)]) -> Result<()> {
        for (message, _) in batch {
            self.fits(message, &codec::encode_message(message))?;
        }
        Ok(())
    }

    /// The `enqueue` calls that store `batch`: every task is encoded and checked first, so a bad
    /// one fails the batch before anything is sent; then the tasks go in chunks of at most
    /// [`ENQUEUE_CHUNK`] tasks and [`ENQUEUE_CHUNK_BYTES`] of task data, each chunk one call.
    /// A chunk of tasks of the common kind (a generated key, due now, no record, no cooldown)
    /// is one call of `add_fresh.lua`, which skips what only the other kinds need.
    fn enqueue_calls(
        &self,
        batch: &[(Message, KeyMode)],
        keep: Option<Duration>,
        now: SystemTime,
    ) -> Result<Vec<EnqueueCall>> {
        struct Encoded<'a> {
            message: &'a Message,
            json: String,
            mode: &'static str,
            /// The first record's key and JSON, when the task keeps one.
            record: Option<(String, String)>,
            /// The cooldown's key and window (ms), when the task has one.
            cooldown: Option<(String, u64)>,
        }
        let mut encoded = Vec::with_capacity(batch.len());
        for (message, mode) in batch {
            let json = codec::encode_message(message);
            self.fits(message, &json)?;
            let mode = match mode {
                KeyMode::Add => "add",
                KeyMode::Replace => "replace",
                KeyMode::Fresh => "fresh",
            };
            let record = keep.map(|_| {
                let record = TaskRecord::first(message, now).encode();
                (self.keys.state(&message.key), record)
            });
            let cooldown = message.cooldown.as_ref().map(|gate| {
                (
                    self.keys.cooldown(&gate.scope),
                    millis_of(gate.window).max(1),
                )
            });
            encoded.push(Encoded {
                message,
                json,
                mode,
                record,
                cooldown,
            });
        }
        let mut calls = Vec::new();
        let mut rest = encoded.as_slice();
        while !rest.is_empty() {
            let mut bytes = 0;
            let mut len = 0;
            while len < rest.len() && len < ENQUEUE_CHUNK {
                let task = &rest[len];
                let size = task.message.key.len()
                    + task.json.len()
                    + task
                        .record
                        .as_ref()
                        .map_or(0, |(key, json)| key.len() + json.len())
                    + task.cooldown.as_ref().map_or(0, |(key, _)| key.len())
                    + TASK_FRAMING;
                if len > 0 && bytes + size > ENQUEUE_CHUNK_BYTES {
                    break;
                }
                bytes += size;
                len += 1;
            }
            let (chunk, tail) = rest.split_at(len);
            rest = tail;
            let fresh = chunk.iter().all(|task| {
                task.mode == "fresh"
                    && task.record.is_none()
                    && task.cooldown.is_none()
                    && task.message.due <= now
            });
            if fresh {
                let mut invocation = SCRIPTS.add_fresh.prepare_invoke();
                invocation.key(&self.keys.stream).key(&self.keys.index);
                for task in chunk {
                    invocation.arg(&task.message.key).arg(task.json.as_str());
                }
                calls.push(EnqueueCall {
                    invocation,
                    tasks: chunk.len(),
                });
                continue;
            }
            let mut invocation = SCRIPTS.enqueue.prepare_invoke();
            self.keys_for(&mut invocation);
            invocation
                .key(&self.keys.held)
                .key(&self.keys.signals)
                .arg(millis(now))
                .arg(keep.map_or(0, |keep| millis_of(keep).max(1)));
            for task in chunk {
                // The first record, when the task keeps one; its key among the KEYS.
                let record = match &task.record {
                    Some((key, json)) => {
                        invocation.key(key);
                        json.as_str()
                    }
                    None => "",
                };
                // Then its cooldown key, when it has a cooldown.
                let window = match &task.cooldown {
                    Some((key, window)) => {
                        invocation.key(key);
                        *window
                    }
                    None => 0,
                };
                invocation
                    .arg(&task.message.key)
                    .arg(task.json.as_str())
                    .arg(millis(task.message.due))
                    .arg(task.mode)
                    .arg(record)
                    .arg(window);
            }
            calls.push(EnqueueCall {
                invocation,
                tasks: chunk.len(),
            });
        }
        Ok(calls)
    }

    /// Wait until [`RedisOptions::wait_replicas`] replicas hold what this handle wrote.
    async fn replicated(&self) -> Result<()> {
        let wanted = self.options.wait_replicas;
        let mut command = redis::cmd("WAIT");
        command.arg(wanted).arg(millis_of(REPLICA_WAIT));
        let confirmed: i64 = self.query(&command).await?;
        if confirmed < i64::from(wanted) {
            return Err(Error::NotReplicated {
                wanted,
                confirmed: u32::try_from(confirmed.max(0)).unwrap_or(0),
            });
        }
        Ok(())
    }

    fn fits(&self, message: &Message, json: &str) -> Result<()> {
        if json.len() > self.options.max_payload {
            return Err(Error::PayloadTooLarge {
                task: message.task.clone(),
                size: json.len(),
                limit: self.options.max_payload,
            });
        }
        Ok(())
    }
}

impl Backend for RedisBackend {
    async fn enqueue(
        &self,
        batch: &[(Message, KeyMode)],
        keep: Option<Duration>,
    ) -> Result<Vec<Disposition>> {
        // In requests of bounded size, one after the other: should one fail, the tasks before
        // it are stored and those after it are not, and the error says how many.
        let calls = self.enqueue_calls(batch, keep, SystemTime::now())?;
        let mut dispositions = Vec::with_capacity(batch.len());
        for call in &calls {
            let outcomes = match call.outcomes(self).await {
                Ok(outcomes) => outcomes,
                Err(error) if dispositions.is_empty() => return Err(error),
                Err(error) => {
                    return Err(Error::BatchIncomplete {
                        stored: dispositions.len(),
                        source: Box::new(error),
                    });
                }
            };
            if self.options.wait_replicas > 0 {
                self.replicated().await?;
            }
            for outcome in outcomes {
                dispositions.push(match outcome {
                    0 => Disposition::Added,
                    1 => Disposition::Replaced,
                    2 => Disposition::Duplicate,
                    3 => Disposition::CooledDown,
                    other => {
                        return Err(Error::Backend {
                            source: format!("enqueue answered `{other}`").into(),
                        });
                    }
                });
            }
        }
        Ok(dispositions)
    }

    async fn cancel(&self, key: &str) -> Result<bool> {
        let mut invocation = SCRIPTS.cancel.prepare_invoke();
        self.keys_for(&mut invocation);
        invocation
            .key(&self.keys.held)
            .key(&self.keys.signals)
            .key(self.keys.state(key))
            .arg(key)
            .arg(millis(SystemTime::now()));
        Ok(self.invoke::<i64>(&invocation).await? == 1)
    }

    async fn claim(
        &self,
        worker: &str,
        max: usize,
        max_wait: Option<Duration>,
        stop: &CancellationToken,
    ) -> Result<Vec<Delivery>> {
        self.take(worker, max, max_wait, stop).await
    }

    async fn complete(&self, deliveries: &[Delivery]) -> Result<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let settled: Vec<(&str, &str)> = deliveries
            .iter()
            .map(|delivery| (stream_id(delivery), delivery.message.key.as_str()))
            .collect();
        self.acknowledge(&settled).await?;
        self.settled(deliveries);
        Ok(())
    }

    async fn retry(&self, delivery: &Delivery, next: &Message) -> Result<()> {
        let mut invocation = SCRIPTS.retry.prepare_invoke();
        self.keys_for(&mut invocation);
        invocation
            .arg(stream_id(delivery))
            .arg(&delivery.message.key)
            .arg(codec::encode_message(next))
            .arg(millis(next.due))
            .arg(millis(SystemTime::now()))
            .arg(self.holder(delivery));
        self.invoke::<i64>(&invocation).await?;
        self.settled([delivery]);
        Ok(())
    }

    async fn bury(&self, delivery: &Delivery, burial: Burial) -> Result<()> {
        let letter = codec::encode_dead(
            &delivery.message,
            &burial.reason,
            SystemTime::now(),
            Some(&burial.history),
        );
        let key = &delivery.message.key;
        let holder = self.holder(delivery);
        self.bury_entry(&holder, stream_id(delivery), key, &letter, false)
            .await?;
        self.settled([delivery]);
        Ok(())
    }

    fn renew_every(&self) -> Option<Duration> {
        Some(self.options.redelivery_timeout / 4)
    }

    async fn renew(&self, worker: &str) -> Result<()> {
        let mut held: Vec<String> = self
            .in_flight
            .locked()
            .iter()
            .filter(|(_, holder)| *holder == worker)
            .map(|(id, _)| id.clone())
            .collect();
        // In stream order, so each call's ids span a range of the pending list of their own.
        held.sort_by_key(|id| super::stream_order(id));
        for chunk in held.chunks(SETTLE_CHUNK) {
            failpoint!(redis "renew");
            let mut invocation = SCRIPTS.renew.prepare_invoke();
            invocation.key(&self.keys.stream).arg(worker).arg(chunk);
            self.invoke::<i64>(&invocation).await?;
        }
        Ok(())
    }

    fn dropped(&self, worker: &str) -> Vec<Delivery> {
        self.dropped.locked().remove(worker).unwrap_or_default()
    }

    fn abandon(&self, worker: &str, delivery: &Delivery) {
        // No longer renewed; recovered by this worker's next claim and run again.
        self.settled([delivery]);
        self.lost(worker);
    }

    async fn give_back(&self, worker: &str, deliveries: &[Delivery]) -> Result<()> {
        // No longer held: should the call fail, `retire` gives them back.
        self.settled(deliveries);
        let mut ids: Vec<&str> = deliveries.iter().map(stream_id).collect();
        ids.sort_by_key(|id| super::stream_order(id));
        for chunk in ids.chunks(SETTLE_CHUNK) {
            let mut invocation = SCRIPTS.give_back.prepare_invoke();
            invocation
                .key(&self.keys.stream)
                .key(&self.keys.index)
                .arg(worker)
                .arg(chunk);
            self.invoke::<i64>(&invocation).await?;
        }
        Ok(())
    }

    async fn retire(&self, worker: &str) -> Result<()> {
        let held: Vec<String> = self
            .in_flight
            .locked()
            .iter()
            .filter(|(_, holder)| *holder == worker)
            .map(|(id, _)| id.clone())
            .collect();
        let mut invocation = SCRIPTS.retire.prepare_invoke();
        invocation
            .key(&self.keys.stream)
            .key(&self.keys.index)
            .key(&self.keys.keeper)
            .key(&self.keys.fleet)
            .arg(worker)
            .arg(&held);
        let given = self.invoke::<i64>(&invocation).await?;
        if given > 0 {
            tracing::info!(
                worker,
                count = given,
                "gave back deliveries this worker never started"
            );
        }
        Ok(())
    }

    async fn outstanding(&self) -> Result<usize> {
        let (streamed, scheduled) = self.depth().await?;
        Ok(streamed + scheduled)
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        self.take_snapshot().await
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        let mut command = redis::cmd("HGETALL");
        command.arg(&self.keys.dead);
        let letters: Vec<(String, Vec<u8>)> = self.query(&command).await?;
        let mut letters: Vec<DeadLetter> = letters
            .into_iter()
            .map(|(key, json)| codec::decode_dead(&key, &json))
            .collect();
        letters.sort_by(|a, b| (a.died, &a.key).cmp(&(b.died, &b.key)));
        Ok(letters)
    }

    async fn replay(&self, key: &str) -> Result<bool> {
        let mut command = redis::cmd("HGET");
        command.arg(&self.keys.dead).arg(key);
        let Some(json) = self.query::<Option<Vec<u8>>>(&command).await? else {
            return Ok(false);
        };
        let letter = codec::decode_dead(key, &json);
        let message = Message::first_attempt(letter.task, key, letter.args, SystemTime::now());
        let mut invocation = SCRIPTS.replay.prepare_invoke();
        self.keys_for(&mut invocation);
        invocation
            .key(&self.keys.dead)
            .key(&self.keys.died)
            .arg(key)
            .arg(codec::encode_message(&message))
            .arg(millis(SystemTime::now()));
        Ok(self.invoke::<i64>(&invocation).await? == 1)
    }

    async fn signals(&self, feed: Option<&SignalFeed>) -> Result<SignalFeed> {
        let mut connection = self.dedicated().await?;
        // Where the feed stands, then the strikes (and whether a dashboard wants the workers'
        // runs): any change after that point is in the feed.
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("XREVRANGE")
            .arg(&self.keys.signals)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .cmd("ZRANGE")
            .arg(&self.keys.strikes)
            .arg(0)
            .arg(-1)
            .cmd("PTTL")
            .arg(&self.keys.stats_wanted);
        self.sent
            .fetch_add(pipeline.len() as u64, Ordering::Relaxed);
        let read = pipeline.query_async::<(Value, Vec<Vec<u8>>, i64)>(&mut connection);
        let (last, strikes, wanted) = tokio::time::timeout(RESPONSE_TIMEOUT, read)
            .await
            .map_err(|_| unavailable("reading the strikes did not return"))?
            .map_err(into_error)?;
        // A feed that went on after an earlier one starts where that one stopped, so cancels
        // sent meanwhile still arrive (the strikes are read whole again anyway).
        let resumed = feed.and_then(|feed| feed.position.locked().clone());
        let last = match resumed {
            Some(position) => position,
            None => stream_entries(last)
                .pop()
                .map_or_else(|| "0-0".to_owned(), |(id, _)| id),
        };
        let strikes = codec::decode_strikes(strikes.iter().map(Vec::as_slice));
        let (sender, receiver) = mpsc::unbounded_channel();
        let _ = sender.send(Signal::Strikes(strikes));
        if let Ok(wanted @ 1..) = u64::try_from(wanted) {
            let _ = sender.send(Signal::StatsWanted(Duration::from_millis(wanted)));
        }
        let feed = SignalFeed::new(receiver);
        *feed.position.locked() = Some(last.clone());
        tokio::spawn(follow_signals(
            self.keys.signals.clone(),
            self.part,
            Arc::clone(&self.sent),
            connection,
            Arc::clone(&feed.position),
            last,
            sender,
        ));
        Ok(feed)
    }

    async fn strike(&self, strike: &Strike) -> Result<bool> {
        let mut invocation = SCRIPTS.strike.prepare_invoke();
        invocation
            .key(&self.keys.strikes)
            .key(&self.keys.signals)
            .arg(strike.encode());
        Ok(self.invoke::<i64>(&invocation).await? == 1)
    }

    async fn restore(&self, strike: &Strike) -> Result<bool> {
        let mut invocation = SCRIPTS.restore.prepare_invoke();
        invocation
            .key(&self.keys.strikes)
            .key(&self.keys.signals)
            .arg(strike.encode());
        Ok(self.invoke::<i64>(&invocation).await? == 1)
    }

    async fn strikes(&self) -> Result<Vec<Strike>> {
        let mut command = redis::cmd("ZRANGE");
        command.arg(&self.keys.strikes).arg(0).arg(-1);
        let strikes: Vec<Vec<u8>> = self.query(&command).await?;
        Ok(codec::decode_strikes(strikes.iter().map(Vec::as_slice)))
    }

    async fn hold(&self, delivery: &Delivery, strike: &Strike) -> Result<bool> {
        let mut invocation = SCRIPTS.hold.prepare_invoke();
        invocation
            .key(&self.keys.stream)
            .key(&self.keys.index)
            .key(&self.keys.strikes)
            .key(&self.keys.held)
            .arg(stream_id(delivery))
            .arg(&delivery.message.key)
            .arg(codec::encode_message(&delivery.message))
            .arg(strike.encode())
            .arg(self.holder(delivery));
        let held = self.invoke::<i64>(&invocation).await? == 1;
        if held {
            self.settled([delivery]);
        }
        Ok(held)
    }

    async fn held(&self) -> Result<Vec<Message>> {
        let mut command = redis::cmd("HGETALL");
        command.arg(&self.keys.held);
        Ok(decode_held(self.query(&command).await?))
    }

    async fn unhold(&self, keys: &[String]) -> Result<usize> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut invocation = SCRIPTS.unhold.prepare_invoke();
        self.keys_for(&mut invocation);
        invocation
            .key(&self.keys.held)
            .arg(millis(SystemTime::now()))
            .arg(keys);
        self.invoke(&invocation).await
    }

    async fn admit(&self, delivery: &Delivery, gate: &Gate) -> Result<Admission> {
        let (slot, size) = match &gate.slot {
            Some((scope, size)) => (scope.as_str(), *size),
            None => ("", 0),
        };
        let (rate, count, window) = match &gate.rate {
            Some((scope, count, window)) => (scope.as_str(), *count, millis_of(*window).max(1)),
            None => ("", 0, 0),
        };
        let mut invocation = SCRIPTS.admit.prepare_invoke();
        self.keys_for(&mut invocation);
        invocation
            .key(self.keys.slot(slot))
            .key(self.keys.gated(slot))
            .key(self.keys.rate(rate))
            .arg(stream_id(delivery))
            .arg(&delivery.message.key)
            .arg(codec::encode_message(&delivery.message))
            .arg(millis(SystemTime::now()))
            .arg(size)
            .arg(count)
            .arg(window)
            .arg(self.holder(delivery));
        let answer: Vec<u64> = self.invoke(&invocation).await?;
        let admission = match answer.as_slice() {
            [0] => return Ok(Admission::Run),
            [1] => Admission::Waiting,
            [2, due] => Admission::Deferred(codec::from_millis(*due)),
            other => {
                return Err(Error::Backend {
                    source: format!("admit answered `{other:?}`").into(),
                });
            }
        };
        self.settled([delivery]);
        Ok(admission)
    }

    async fn release(&self, delivery: &Delivery, gate: &Gate) -> Result<()> {
        let Some((scope, _)) = &gate.slot else {
            return Ok(());
        };
        let mut invocation = SCRIPTS.release.prepare_invoke();
        self.keys_for(&mut invocation);
        invocation
            .key(self.keys.slot(scope))
            .key(self.keys.gated(scope))
            .arg(stream_id(delivery))
            .arg(millis(SystemTime::now()));
        self.invoke::<i64>(&invocation).await.map(drop)
    }

    async fn record(&self, state: &TaskRecord, ttl: Duration) -> Result<()> {
        let mut invocation = SCRIPTS.record.prepare_invoke();
        invocation
            .key(self.keys.state(&state.key))
            .arg(state.encode())
            .arg(millis_of(ttl).max(1));
        self.invoke::<i64>(&invocation).await.map(drop)
    }

    async fn status(&self, key: &str) -> Result<Option<TaskRecord>> {
        let mut command = redis::cmd("GET");
        command.arg(self.keys.state(key));
        let Some(json) = self.query::<Option<Vec<u8>>>(&command).await? else {
            return Ok(None);
        };
        TaskRecord::decode(&json)
            .map(Some)
            .map_err(|error| Error::Backend {
                source: format!("the recorded state of `{key}` does not decode: {error}").into(),
            })
    }

    async fn watch(&self, key: &str) -> Result<mpsc::UnboundedReceiver<TaskRecord>> {
        let channel = self.keys.state(key);
        let subscribe = async {
            let mut pubsub = self
                .pubsub_client()
                .await
                .map_err(|error| RedisError::from(std::io::Error::other(error.to_string())))?
                .get_async_pubsub()
                .await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, RedisError>(pubsub)
        };
        self.sent.fetch_add(1, Ordering::Relaxed);
        let pubsub = tokio::time::timeout(CONNECT_TIMEOUT + RESPONSE_TIMEOUT, subscribe)
            .await
            .map_err(|_| unavailable("subscribing to a task's state did not return"))?
            .map_err(into_error)?;
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(follow_states(key.to_owned(), pubsub, sender));
        Ok(receiver)
    }
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &self.url)
            .field("stream", &self.keys.stream)
            .finish_non_exhaustive()
    }
}

/// Held tasks as stored; one that does not decode is skipped, with a warning.
fn decode_held(stored: Vec<(String, Vec<u8>)>) -> Vec<Message> {
    stored
        .into_iter()
        .filter_map(|(key, json)| match codec::decode_message(&key, &json) {
            Ok(message) => Some(message),
            Err(reason) => {
                tracing::warn!(%key, %reason, "a held task does not decode");
                None
            }
        })
        .collect()
}

fn stream_id(delivery: &Delivery) -> &str {
    match &delivery.id {
        DeliveryId::Stream { id, .. } => id,
        DeliveryId::Memory(_) => unreachable!("a memory delivery settled on Redis"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend on a server nobody needs (it connects lazily, on a tokio runtime): building
    /// calls sends nothing.
    fn backend(name: &str) -> RedisBackend {
        RedisBackend::open("redis://127.0.0.1:1", name, RedisOptions::default()).unwrap()
    }

    /// A task whose encoded message is exactly `size` bytes.
    fn task_of(size: usize, task: &str, key: &str) -> Message {
        let mut message = Message::first_attempt(task, key, "", crate::time::latest_due());
        message.trace = Some(format!("00-{}-{}-01", "a".repeat(32), "b".repeat(16)));
        message.args = r#"{"x":""}"#.to_owned();
        let room = size - codec::encode_message(&message).len();
        message.args = format!(r#"{{"x":"{}"}}"#, "x".repeat(room));
        assert_eq!(codec::encode_message(&message).len(), size);
        message
    }

    /// The bytes each call of `batch` takes on the wire.
    fn requests(backend: &RedisBackend, batch: &[(Message, KeyMode)]) -> Vec<usize> {
        let keep = Some(Duration::MAX);
        let calls = backend
            .enqueue_calls(batch, keep, SystemTime::now())
            .unwrap();
        calls
            .iter()
            .map(|call| {
                let call = &call.invocation;
                let flagged = call.command(call.lua().variant(true));
                flagged.get_packed_command().len()
            })
            .collect()
    }

    #[tokio::test]
    async fn one_task_of_the_default_payload_limit_is_a_request_under_1_mb() {
        // Names of 1 KiB, of characters JSON escapes (the key's limit; docket and task names
        // have none): the largest envelope docket makes for a task.
        let backend = backend(&"n".repeat(1024));
        let message = task_of(DEFAULT_MAX_PAYLOAD, &"\"".repeat(1024), &"\"".repeat(1024));
        let sizes = requests(&backend, &[(message, KeyMode::Replace)]);
        let envelope = sizes[0] - DEFAULT_MAX_PAYLOAD;
        println!("request {} bytes, envelope {envelope}", sizes[0]);
        assert!(sizes[0] <= MAX_REQUEST_BYTES, "{sizes:?}");
        assert!(
            envelope < 14 << 10,
            "the envelope the docs state: {envelope}"
        );
        // Short names, as in practice: a few hundred bytes.
        let backend = self::backend("plyr");
        let message = task_of(DEFAULT_MAX_PAYLOAD, "scan_copyright", "scan-7");
        let sizes = requests(&backend, &[(message, KeyMode::Replace)]);
        println!(
            "with short names, envelope {}",
            sizes[0] - DEFAULT_MAX_PAYLOAD
        );
        assert!(sizes[0] - DEFAULT_MAX_PAYLOAD < 512, "{sizes:?}");
    }

    #[tokio::test]
    async fn only_chunks_of_plain_tasks_due_now_go_through_add_fresh() {
        use crate::backend::CooldownGate;
        let backend = backend("lean");
        let now = SystemTime::now();
        let plain = |n: u32| {
            let message = Message::first_attempt("t", format!("k{n}"), "{}", now);
            (message, KeyMode::Fresh)
        };
        let script = |batch: &[(Message, KeyMode)], keep: Option<Duration>| {
            let calls = backend.enqueue_calls(batch, keep, now).unwrap();
            assert_eq!(calls.len(), 1);
            assert_eq!(calls[0].tasks, batch.len());
            format!("{:?}", calls[0].invocation.lua())
        };
        assert_eq!(script(&[plain(1), plain(2)], None), "add_fresh.lua");
        // Any task of another kind sends its whole chunk through `enqueue.lua`.
        let keyed = (plain(3).0, KeyMode::Add);
        let later = {
            let mut message = plain(4).0;
            message.due = now + Duration::from_millis(1);
            (message, KeyMode::Fresh)
        };
        let cooling = {
            let mut message = plain(5).0;
            message.cooldown = Some(CooldownGate {
                scope: "t".into(),
                window: Duration::from_secs(1),
            });
            (message, KeyMode::Fresh)
        };
        for other in [keyed, later, cooling] {
            assert_eq!(script(&[plain(1), other], None), "enqueue.lua");
        }
        // A task that keeps a record has its first record written as it is stored.
        let keep = Some(Duration::from_secs(60));
        assert_eq!(script(&[plain(1)], keep), "enqueue.lua");
    }

    #[tokio::test]
    async fn every_enqueue_request_of_a_batch_is_under_1_mb() {
        let backend = backend(&"n".repeat(255));
        let key = |n: usize| format!("{n:0>1024}");
        let task = "\"".repeat(255);
        let mut batch = Vec::new();
        for (n, size) in [
            300_000,
            500_000,
            500_000,
            DEFAULT_MAX_PAYLOAD,
            10,
            400_000,
            200_000,
        ]
        .into_iter()
        .enumerate()
        {
            batch.push((task_of(size.max(1_000), &task, &key(n)), KeyMode::Add));
        }
        for n in 0..2_000 {
            batch.push((task_of(1_000, &task, &key(100 + n)), KeyMode::Fresh));
        }
        let sizes = requests(&backend, &batch);
        assert!(
            sizes.iter().all(|size| *size <= MAX_REQUEST_BYTES),
            "{sizes:?}"
        );
        // Two tasks of 500 KB do not share a request (the rule before counted a chunk's bytes
        // only until they passed 512 KiB, so the second joined the first: a 1 MB request).
        assert!(sizes[1] < 600_000 && sizes[2] < 600_000, "{sizes:?}");
    }
}
