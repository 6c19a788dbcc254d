//! The Redis backend in pydocket's protocol ([`Protocol::Pydocket`](crate::Protocol)): the same
//! connections as docket's own backend ([`RedisBackend`] carries them), with pydocket's key
//! layout, consumer group, message fields, run records and strike stream, so that Rust workers
//! run what pydocket scheduled and pydocket workers what Rust scheduled.
//!
//! Each step is one of the `py_*.lua` scripts (our own, written to the data transitions
//! pydocket's scripts make, and checked against real pydocket by `tests/tests/pydocket.rs`).
//! What has no pydocket counterpart is refused with [`Error::Unsupported`] (snapshots in
//! docket's form, the dashboard's views) or has nothing to show (dead letters: a task that
//! fails for good ends `failed`, with its error, as in pydocket; strikes cancel runs, as in
//! pydocket, rather than hold them).
//!
//! This file is the `Backend` impl; `claim.rs` reads and claims deliveries, `clock.rs` moves
//! due tasks and writes heartbeats, `feeds.rs` follows strikes, cancels and a run's state, and
//! `wire.rs` is pydocket's key layout and formats.

mod claim;
mod clock;
mod feeds;
mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime};

use redis::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::feeds::{apply, follow_cancels, follow_record, follow_strikes, read_record};
use self::wire::{Fields, PY_GROUP, PyKeys, epoch, iso, state_event};
use super::connection::{Link, cluster_nodes, into_error};
use super::reply::stream_entries;
use super::scripts::{Invocation, SCRIPTS};
use super::{RedisBackend, RedisOptions};
use crate::backend::{
    Admission, Backend, Burial, Delivery, DeliveryId, Gate, KeyMode, Message, Signal, SignalFeed,
};
use crate::error::{Error, Result};
use crate::inspect::{DeadLetter, Snapshot, WorkerInfo};
use crate::pydocket::result;
use crate::results::{Status, TaskRecord};
use crate::schedule::Disposition;
use crate::strike::Strike;
use crate::sync::Locked;

/// How long a run's record is kept after it ends: pydocket's default `execution_ttl`.
const RUN_TTL: Duration = Duration::from_secs(15 * 60);

/// The longest one blocking read of the stream waits: tasks pydocket schedules later are moved
/// to the stream by the clock's polls, which a read does not hear of.
const READ_BLOCK: Duration = Duration::from_secs(1);

/// How often the clock moves due tasks to the stream (pydocket's `scheduling_resolution`).
const DUE_POLL: Duration = Duration::from_millis(250);

/// How often a worker's heartbeat is written, and how long one counts (pydocket's defaults).
const HEARTBEAT: Duration = Duration::from_secs(2);
const HEARTBEAT_LIFE: Duration = Duration::from_secs(10);

/// The most due tasks one poll moves.
const DUE_BATCH: usize = 500;

/// The name this protocol has in messages ([`Error::Unsupported`]) and `DOCKET_PROTOCOL`.
const PROTOCOL: &str = "pydocket";

/// What a worker holds of a delivery besides its message: what settling it needs.
#[derive(Debug, Clone)]
struct Run {
    worker: String,
    key: String,
    generation: u64,
    /// The pickles as pydocket stored them, sent again as they are by a retry.
    args: Vec<u8>,
    kwargs: Vec<u8>,
}

pub(crate) struct PydocketBackend {
    /// The connections (and the scripts' loading), shared with docket's own protocol.
    redis: RedisBackend,
    keys: PyKeys,
    options: RedisOptions,
    /// Whether the consumer group is known to exist.
    group: AtomicBool,
    /// Dedicated connections for blocking reads, one per claim in progress.
    readers: Mutex<Vec<Link>>,
    /// Deliveries handed to this process's workers and not yet settled, by stream id.
    in_flight: Mutex<HashMap<String, Run>>,
    /// Workers blocked in a read with nothing else to do.
    parked: Mutex<HashSet<String>>,
    /// When deliveries of silent workers were last looked for.
    swept: Mutex<Option<Instant>>,
}

impl PydocketBackend {
    /// A handle on the pydocket docket `name` at `url`; connects lazily.
    pub(crate) fn open(url: &str, name: &str, options: RedisOptions) -> Result<PydocketBackend> {
        if cluster_nodes(url).is_some() {
            return Err(Error::Config(
                "the pydocket protocol runs on one Redis server (or Sentinels), not a Redis Cluster: pydocket's keys there are `{name}:`-tagged and its results elsewhere, which this build does not write".into(),
            ));
        }
        Ok(PydocketBackend {
            redis: RedisBackend::open(url, name, options.clone())?,
            keys: PyKeys::new(name),
            options,
            group: AtomicBool::new(false),
            readers: Mutex::default(),
            in_flight: Mutex::default(),
            parked: Mutex::default(),
            swept: Mutex::default(),
        })
    }

    /// Redis commands this handle has sent so far.
    pub(crate) fn commands_sent(&self) -> u64 {
        self.redis.commands_sent()
    }

    fn unsupported(operation: &'static str) -> Error {
        Error::Unsupported {
            operation,
            protocol: PROTOCOL,
        }
    }

    async fn run_script<T: redis::FromRedisValue>(&self, call: &Invocation<'_>) -> Result<T> {
        self.redis.invoke(call).await
    }

    /// End the run of delivery `id`: its record says `state` (with `extra` fields), its entry
    /// is acknowledged and deleted.
    async fn end(&self, id: &str, state: &str, extra: &[(&str, &str)]) -> Result<()> {
        let Some(run) = self.in_flight.locked().get(id).cloned() else {
            return Ok(());
        };
        let completed = iso(SystemTime::now());
        let mut more = vec![("completed_at", completed.as_str())];
        more.extend_from_slice(extra);
        let mut call = SCRIPTS.py_terminal.prepare_invoke();
        call.key(self.keys.runs(&run.key))
            .key(self.keys.state(&run.key))
            .key(self.keys.progress(&run.key))
            .key(&self.keys.stream)
            .arg(run.generation)
            .arg(state)
            .arg(&completed)
            .arg(RUN_TTL.as_secs())
            .arg(state_event(&run.key, state, &more))
            .arg(id)
            .arg(&run.key);
        for (field, value) in extra {
            call.arg(*field).arg(*value);
        }
        self.run_script::<String>(&call).await?;
        self.in_flight.locked().remove(id);
        Ok(())
    }

    /// Store one task as pydocket's producers do; `reschedule` names the delivery a retry
    /// ends (with its run).
    async fn schedule(
        &self,
        message: &Message,
        mode: KeyMode,
        pickles: (&[u8], &[u8]),
        reschedule: Option<(&str, &Run)>,
    ) -> Result<String> {
        let now = SystemTime::now();
        let immediate = message.due <= now;
        let when = iso(message.due);
        let state = if immediate { "queued" } else { "scheduled" };
        let key = &message.key;
        let mut call = SCRIPTS.py_schedule.prepare_invoke();
        call.key(&self.keys.stream)
            .key(&self.keys.queue)
            .key(self.keys.parked(key))
            .key(self.keys.runs(key))
            .key(self.keys.state(key))
            .arg(key)
            .arg(epoch(message.due))
            .arg(if immediate { "1" } else { "0" })
            .arg(if mode == KeyMode::Replace { "1" } else { "0" })
            .arg(reschedule.map_or("", |(id, _)| id))
            .arg(reschedule.map_or(0, |(_, run)| run.generation))
            .arg(state_event(key, state, &[("when", &when)]))
            .arg("key")
            .arg(key)
            .arg("when")
            .arg(&when)
            .arg("function")
            .arg(&message.task)
            .arg("args")
            .arg(pickles.0)
            .arg("kwargs")
            .arg(pickles.1)
            .arg("attempt")
            .arg(message.attempt)
            .arg("generation")
            .arg(0);
        if let Some(trace) = &message.trace {
            call.arg("traceparent").arg(trace);
        }
        self.run_script(&call).await
    }

    /// Fold the strikes stream's entries after `after` (`0-0`: all of them) into `strikes`;
    /// the id of the last entry read (`after` when none).
    async fn fold_strikes(&self, strikes: &mut Vec<Strike>, after: &str) -> Result<String> {
        let mut command = redis::cmd("XRANGE");
        command
            .arg(&self.keys.strikes)
            .arg(format!("({after}"))
            .arg("+");
        if after == "0-0" {
            command = redis::cmd("XRANGE");
            command.arg(&self.keys.strikes).arg("-").arg("+");
        }
        let reply: Value = self.redis.query(&command).await?;
        let entries = stream_entries(reply);
        let mut last = after.to_owned();
        for (id, fields) in entries {
            apply(strikes, &id, &Fields::of_entry(fields));
            last = id;
        }
        Ok(last)
    }

    /// Whether `worker`'s claim is waiting for work.
    pub(crate) fn parked(&self, worker: &str) -> bool {
        self.parked.locked().contains(worker)
    }

    /// How many tasks are in the stream (due or running) and in the queue.
    pub(crate) async fn depth(&self) -> Result<(usize, usize)> {
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("XLEN")
            .arg(&self.keys.stream)
            .cmd("ZCARD")
            .arg(&self.keys.queue);
        self.redis.pipeline(&pipeline).await
    }

    /// The live workers, from their heartbeats (how many tasks each runs is not kept).
    pub(crate) async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let mut command = redis::cmd("ZRANGE");
        command
            .arg(&self.keys.workers)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES");
        let beats: Vec<(String, f64)> = self.redis.query(&command).await?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        Ok(beats
            .into_iter()
            .filter(|(_, at)| now - at < HEARTBEAT_LIFE.as_secs_f64())
            .map(|(name, at)| WorkerInfo {
                name,
                running: 0,
                idle: Duration::from_secs_f64((now - at).max(0.0)),
            })
            .collect())
    }

    /// Every message of `batch` fits the payload limit once pickled.
    pub(crate) fn check(&self, batch: &[(Message, KeyMode)]) -> Result<()> {
        for (message, _) in batch {
            self.pickles(message)?;
        }
        Ok(())
    }

    /// What a pydocket worker calls `message`'s function with: every argument by name.
    fn pickles(&self, message: &Message) -> Result<crate::pydocket::Pickles> {
        let arguments: serde_json::Value =
            serde_json::from_str(&message.args).map_err(|source| Error::Json {
                task: message.task.clone(),
                source,
            })?;
        let pickles = crate::pydocket::pickles_of_json(&arguments).map_err(|error| {
            Error::Config(format!(
                "the arguments of task `{}` cannot be sent to pydocket: {error}",
                message.task
            ))
        })?;
        let size = pickles.args.len() + pickles.kwargs.len();
        if size > self.options.max_payload {
            return Err(Error::PayloadTooLarge {
                task: message.task.clone(),
                size,
                limit: self.options.max_payload,
            });
        }
        Ok(pickles)
    }

    /// Dead letters are not kept on this protocol: there is none to remove.
    pub(crate) async fn remove_dead_letter(&self, _key: &str) -> Result<bool> {
        Ok(false)
    }

    pub(crate) async fn clear(&self) -> Result<usize> {
        Err(Self::unsupported("clearing the docket"))
    }
}

fn stream_id(delivery: &Delivery) -> &str {
    match &delivery.id {
        DeliveryId::Stream { id, .. } => id,
        DeliveryId::Memory(_) => unreachable!("a memory delivery settled on Redis"),
    }
}

impl Backend for PydocketBackend {
    async fn enqueue(
        &self,
        batch: &[(Message, KeyMode)],
        _keep: Option<Duration>,
    ) -> Result<Vec<Disposition>> {
        // pydocket gates its cooldowns as a worker starts a task, under keys of its own: a
        // schedule-time cooldown here would be one neither side honours.
        if batch.iter().any(|(message, _)| message.cooldown.is_some()) {
            return Err(Self::unsupported("a cooldown"));
        }
        // Every task is pickled and checked before any is stored.
        let pickles = batch
            .iter()
            .map(|(message, _)| self.pickles(message))
            .collect::<Result<Vec<_>>>()?;
        let mut dispositions = Vec::with_capacity(batch.len());
        for ((message, mode), pickles) in batch.iter().zip(&pickles) {
            let stored = self
                .schedule(message, *mode, (&pickles.args, &pickles.kwargs), None)
                .await;
            let stored = match stored {
                Ok(stored) => stored,
                Err(error) if dispositions.is_empty() => return Err(error),
                Err(error) => {
                    return Err(Error::BatchIncomplete {
                        stored: dispositions.len(),
                        source: Box::new(error),
                    });
                }
            };
            dispositions.push(match stored.as_str() {
                "OK" => Disposition::Added,
                "REPLACED" => Disposition::Replaced,
                _ => Disposition::Duplicate,
            });
        }
        Ok(dispositions)
    }

    async fn cancel(&self, key: &str) -> Result<bool> {
        let completed = iso(SystemTime::now());
        let mut call = SCRIPTS.py_cancel.prepare_invoke();
        call.key(&self.keys.stream)
            .key(&self.keys.queue)
            .key(self.keys.parked(key))
            .key(self.keys.runs(key))
            .key(self.keys.progress(key))
            .key(self.keys.state(key))
            .arg(key)
            .arg(&completed)
            .arg(RUN_TTL.as_secs())
            .arg(state_event(
                key,
                "cancelled",
                &[("completed_at", &completed)],
            ));
        let was: String = self.run_script(&call).await?;
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(self.keys.cancel(key)).arg(key);
        self.redis.query::<i64>(&publish).await?;
        Ok(matches!(was.as_str(), "scheduled" | "queued" | "running"))
    }

    async fn claim(
        &self,
        worker: &str,
        max: usize,
        max_wait: Option<Duration>,
        stop: &CancellationToken,
    ) -> Result<Vec<Delivery>> {
        self.ensure_group().await?;
        let mut entries: Vec<(String, Vec<Value>, bool)> = self
            .sweep(worker, max)
            .await?
            .into_iter()
            .map(|(id, fields)| (id, fields, true))
            .collect();
        if entries.is_empty() && !stop.is_cancelled() {
            let wait = max_wait.unwrap_or(READ_BLOCK).min(READ_BLOCK);
            entries = self
                .read(worker, max, wait)
                .await?
                .into_iter()
                .map(|(id, fields)| (id, fields, false))
                .collect();
        }
        let mut deliveries = Vec::with_capacity(entries.len());
        for (id, fields, redelivered) in entries {
            // An entry whose claim failed stays pending, unrenewed, and is taken over after
            // the redelivery timeout; those claimed before it run now.
            match self.deliver(worker, id.clone(), fields, redelivered).await {
                Ok(Some(delivery)) => deliveries.push(delivery),
                Ok(None) => {}
                Err(error) if deliveries.is_empty() => return Err(error),
                Err(error) => {
                    tracing::warn!(entry = %id, error = %crate::error::Chain(&error), "could not claim a pydocket delivery; it is taken over later");
                }
            }
        }
        Ok(deliveries)
    }

    async fn complete(&self, deliveries: &[Delivery]) -> Result<()> {
        for delivery in deliveries {
            self.end(stream_id(delivery), "completed", &[]).await?;
        }
        Ok(())
    }

    async fn retry(&self, delivery: &Delivery, next: &Message) -> Result<()> {
        let id = stream_id(delivery);
        let Some(run) = self.in_flight.locked().get(id).cloned() else {
            return Ok(());
        };
        let pickles = (run.args.as_slice(), run.kwargs.as_slice());
        self.schedule(next, KeyMode::Replace, pickles, Some((id, &run)))
            .await?;
        self.in_flight.locked().remove(id);
        Ok(())
    }

    async fn bury(&self, delivery: &Delivery, burial: Burial) -> Result<()> {
        self.end(
            stream_id(delivery),
            "failed",
            &[("error", burial.reason.as_str())],
        )
        .await
    }

    fn renew_every(&self) -> Option<Duration> {
        Some(self.options.redelivery_timeout / 4)
    }

    async fn renew(&self, worker: &str) -> Result<()> {
        let held: Vec<String> = self
            .in_flight
            .locked()
            .iter()
            .filter(|(_, run)| run.worker == worker)
            .map(|(id, _)| id.clone())
            .collect();
        for chunk in held.chunks(1000) {
            let mut command = redis::cmd("XCLAIM");
            command
                .arg(&self.keys.stream)
                .arg(PY_GROUP)
                .arg(worker)
                .arg(0)
                .arg(chunk)
                .arg("JUSTID");
            self.redis.query::<Value>(&command).await?;
        }
        Ok(())
    }

    fn dropped(&self, _worker: &str) -> Vec<Delivery> {
        Vec::new()
    }

    fn abandon(&self, _worker: &str, delivery: &Delivery) {
        // No longer renewed: taken over after the redelivery timeout and run again.
        self.in_flight.locked().remove(stream_id(delivery));
    }

    async fn give_back(&self, worker: &str, deliveries: &[Delivery]) -> Result<()> {
        // A stream entry cannot be handed back to the group: left pending, it is taken over
        // after the redelivery timeout (read-ahead is off on this protocol, so only a worker
        // stopping mid-read leaves any).
        for delivery in deliveries {
            self.abandon(worker, delivery);
        }
        Ok(())
    }

    async fn retire(&self, worker: &str) -> Result<()> {
        let mut command = redis::cmd("ZREM");
        command.arg(&self.keys.workers).arg(worker);
        self.redis.query::<i64>(&command).await.map(drop)
    }

    async fn outstanding(&self) -> Result<usize> {
        let (streamed, queued) = self.depth().await?;
        Ok(streamed + queued)
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        Err(Self::unsupported(
            "a snapshot (use pydocket's `docket snapshot`)",
        ))
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        // Runs that failed for good end `failed` in their records, as in pydocket.
        Ok(Vec::new())
    }

    async fn replay(&self, _key: &str) -> Result<bool> {
        Ok(false)
    }

    async fn signals(&self, _feed: Option<&SignalFeed>) -> Result<SignalFeed> {
        let mut strikes = Vec::new();
        let last = self.fold_strikes(&mut strikes, "0-0").await?;
        let mut pubsub = self
            .redis
            .pubsub_client()
            .await?
            .get_async_pubsub()
            .await
            .map_err(into_error)?;
        pubsub
            .psubscribe(self.keys.cancels())
            .await
            .map_err(into_error)?;
        let link = self.redis.dedicated().await?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let _ = sender.send(Signal::Strikes(strikes.clone()));
        tokio::spawn(follow_strikes(
            self.keys.strikes.clone(),
            link,
            last,
            strikes,
            sender.clone(),
        ));
        tokio::spawn(follow_cancels(pubsub, sender));
        Ok(SignalFeed::new(receiver))
    }

    async fn strike(&self, strike: &Strike) -> Result<bool> {
        if self.strikes().await?.contains(strike) {
            return Ok(false);
        }
        self.instruct(strike, false).await?;
        Ok(true)
    }

    async fn restore(&self, strike: &Strike) -> Result<bool> {
        if !self.strikes().await?.contains(strike) {
            return Ok(false);
        }
        self.instruct(strike, true).await?;
        Ok(true)
    }

    async fn strikes(&self) -> Result<Vec<Strike>> {
        let mut strikes = Vec::new();
        self.fold_strikes(&mut strikes, "0-0").await?;
        Ok(strikes)
    }

    async fn hold(&self, delivery: &Delivery, _strike: &Strike) -> Result<bool> {
        // pydocket cancels a struck run rather than holding it.
        self.end(stream_id(delivery), "cancelled", &[]).await?;
        Ok(true)
    }

    async fn held(&self) -> Result<Vec<Message>> {
        Ok(Vec::new())
    }

    async fn unhold(&self, _keys: &[String]) -> Result<usize> {
        Ok(0)
    }

    async fn admit(&self, _delivery: &Delivery, _gate: &Gate) -> Result<Admission> {
        // Concurrency and rate limits are not shared with pydocket: see the module docs.
        Ok(Admission::Run)
    }

    async fn release(&self, _delivery: &Delivery, _gate: &Gate) -> Result<()> {
        Ok(())
    }

    async fn record(&self, state: &TaskRecord, ttl: Duration) -> Result<()> {
        // The scripts keep the run's record; what is left is the progress of a running task,
        // where pydocket's tools read it, and the result, where `get_result()` reads it.
        if let (Status::Running, Some(progress)) = (state.status, &state.progress) {
            return self.progress(&state.key, progress).await;
        }
        let (Status::Completed, Some(json)) = (state.status, &state.result) else {
            return Ok(());
        };
        let value: serde_json::Value = match serde_json::from_str(json) {
            Ok(serde_json::Value::Null) | Err(_) => return Ok(()),
            Ok(value) => value,
        };
        let generation = self
            .in_flight
            .locked()
            .values()
            .find(|run| run.key == state.key)
            .map(|run| run.generation);
        let Some(generation) = generation else {
            return Ok(());
        };
        let envelope = result::encode_result(self.keys.name(), &state.key, generation, &value)
            .map_err(|error| Error::Backend {
                source: format!("the result of `{}` cannot be pickled: {error}", state.key).into(),
            })?;
        let field = result::result_field(&state.key, generation);
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("SET")
            .arg(result::result_key(self.keys.name(), &field))
            .arg(envelope)
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .ignore()
            .cmd("HSET")
            .arg(self.keys.runs(&state.key))
            .arg("result_key")
            .arg(&field)
            .ignore();
        self.redis.pipeline::<()>(&pipeline).await
    }

    async fn status(&self, key: &str) -> Result<Option<TaskRecord>> {
        let mut link = self.redis.connection().await?;
        let found = read_record(&mut link, &self.keys, key).await;
        self.redis.heard(&found);
        found
    }

    async fn watch(&self, key: &str) -> Result<mpsc::UnboundedReceiver<TaskRecord>> {
        // Each state event is followed by a read of the record (and result) it announces, on a
        // connection of the watch's own.
        let mut pubsub = self
            .redis
            .pubsub_client()
            .await?
            .get_async_pubsub()
            .await
            .map_err(into_error)?;
        pubsub
            .subscribe(self.keys.state(key))
            .await
            .map_err(into_error)?;
        let link = self.redis.dedicated().await?;
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(follow_record(
            self.keys.clone(),
            key.to_owned(),
            pubsub,
            link,
            sender,
        ));
        Ok(receiver)
    }
}

impl PydocketBackend {
    /// Write a running task's progress to its progress hash and announce it on the hash's
    /// channel, as pydocket's `Progress` does.
    async fn progress(&self, key: &str, progress: &crate::results::Progress) -> Result<()> {
        let updated = iso(SystemTime::now());
        let channel = self.keys.progress(key);
        let event = serde_json::json!({
            "type": "progress",
            "key": key,
            "current": progress.current,
            "total": progress.total,
            "message": progress.message,
            "updated_at": updated,
        });
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("HSET")
            .arg(&channel)
            .arg("current")
            .arg(progress.current)
            .arg("total")
            .arg(progress.total)
            .arg("message")
            .arg(&progress.message)
            .arg("updated_at")
            .arg(&updated)
            .ignore()
            .cmd("PUBLISH")
            .arg(&channel)
            .arg(event.to_string())
            .ignore();
        self.redis.pipeline::<()>(&pipeline).await
    }

    /// Add a strike (or its restore) to the strikes stream, its value pickled.
    async fn instruct(&self, strike: &Strike, restore: bool) -> Result<()> {
        let fields = wire::encode_instruction(strike, restore).map_err(|error| {
            Error::Config(format!("the strike cannot be sent to pydocket: {error}"))
        })?;
        let mut command = redis::cmd("XADD");
        command.arg(&self.keys.strikes).arg("*");
        for (field, value) in fields {
            command.arg(field).arg(value);
        }
        self.redis.query::<String>(&command).await.map(drop)
    }
}

impl std::fmt::Debug for PydocketBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PydocketBackend")
            .field("redis", &self.redis)
            .field("stream", &self.keys.stream)
            .finish_non_exhaustive()
    }
}
