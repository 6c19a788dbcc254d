//! Operator commands on a Redis docket: the snapshot, listing workers, clearing waiting tasks,
//! removing a dead letter.

use std::time::Duration;

use std::sync::atomic::Ordering;

use redis::RedisError;
use redis::streams::StreamInfoConsumersReply;

use super::codec::{self, Entry, millis};
use super::connection::{into_error, is_no_group};
use super::keys::GROUP;
use super::reply::{pending_rows, stream_entries};
use super::scripts::SCRIPTS;
use super::{RedisBackend, decode_held};
use crate::error::Result;
use crate::inspect::WorkerInfo;
use crate::inspect::{Snapshot, TaskInfo};
use redis::Value;
use std::collections::HashMap;
use std::time::SystemTime;

impl RedisBackend {
    /// The workers known to the consumer group: each one's running tasks and how long since
    /// it was last heard from. One command.
    pub(crate) async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let mut command = redis::cmd("XINFO");
        command.arg("CONSUMERS").arg(&self.keys.stream).arg(GROUP);
        self.sent.fetch_add(1, Ordering::Relaxed);
        let reply: std::result::Result<StreamInfoConsumersReply, _> =
            command.query_async(&mut self.connection().await?).await;
        let consumers = match reply {
            Ok(reply) => reply.consumers,
            // No stream or group yet: no worker has ever started.
            Err(error) if is_no_group(&error) || is_no_key(&error) => Vec::new(),
            Err(error) => return Err(into_error(error)),
        };
        let mut workers: Vec<WorkerInfo> = consumers
            .into_iter()
            .map(|consumer| WorkerInfo {
                name: consumer.name,
                running: consumer.pending,
                idle: Duration::from_millis(consumer.idle as u64),
            })
            .collect();
        // Workers blocked in their read for a while may have no consumer (Redis makes it again
        // when it serves them): the fleet's list names every running worker, with when it last
        // said so.
        let mut command = redis::cmd("ZRANGE");
        command
            .arg(&self.keys.fleet)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES");
        let fleet: Vec<(String, u64)> = self.query(&command).await?;
        let now = millis(SystemTime::now());
        for (name, since) in fleet {
            if !workers.iter().any(|worker| worker.name == name) {
                workers.push(WorkerInfo {
                    name,
                    running: 0,
                    idle: Duration::from_millis(now.saturating_sub(since)),
                });
            }
        }
        workers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(workers)
    }

    /// Entries in the stream (due and running tasks) and in the schedule: one round trip of
    /// two commands.
    pub(crate) async fn depth(&self) -> Result<(usize, usize)> {
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("XLEN")
            .arg(&self.keys.stream)
            .cmd("ZCARD")
            .arg(&self.keys.schedule);
        self.pipeline(&pipeline).await
    }

    /// Remove every queued and scheduled task; running ones stay. One script call.
    pub(crate) async fn clear(&self) -> Result<usize> {
        let mut invocation = SCRIPTS.clear.prepare_invoke();
        self.keys_for(&mut invocation);
        self.invoke(&invocation).await
    }
}

fn is_no_key(error: &RedisError) -> bool {
    error.to_string().contains("no such key")
}

impl RedisBackend {
    /// Forget the dead letter of `key`; whether there was one.
    pub(crate) async fn remove_dead_letter(&self, key: &str) -> Result<bool> {
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("HDEL")
            .arg(&self.keys.dead)
            .arg(key)
            .cmd("ZREM")
            .arg(&self.keys.died)
            .arg(key)
            .ignore();
        let (removed,): (i64,) = self.pipeline(&pipeline).await?;
        Ok(removed == 1)
    }

    /// Every waiting, running and dead task, for [`Backend::snapshot`](crate::backend::Backend::snapshot).
    pub(super) async fn take_snapshot(&self) -> Result<Snapshot> {
        const CAP: usize = 100_000;
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("XRANGE")
            .arg(&self.keys.stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(CAP)
            .cmd("XPENDING")
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(CAP)
            .cmd("HGETALL")
            .arg(&self.keys.parked)
            .cmd("HGETALL")
            .arg(&self.keys.held)
            .cmd("HLEN")
            .arg(&self.keys.dead);
        type Pairs = Vec<(String, Vec<u8>)>;
        let (streamed, pending, parked, held, dead): (Value, Value, Pairs, Pairs, usize) =
            self.pipeline(&pipeline).await?;
        let taken = SystemTime::now();
        let owners: HashMap<String, String> = pending_rows(pending)
            .into_iter()
            .map(|row| (row.id, row.consumer))
            .collect();
        let mut snapshot = Snapshot {
            taken,
            queued: Vec::new(),
            scheduled: Vec::new(),
            running: Vec::new(),
            held: Vec::new(),
            dead,
        };
        for entry in self.decode(stream_entries(streamed)) {
            let info = match &entry {
                Entry::Task { message, .. } => TaskInfo::of(message, None),
                Entry::Wake { .. } => continue,
                Entry::Garbled { id, key, .. } => TaskInfo {
                    key: key.clone().unwrap_or_else(|| format!("garbled:{id}")),
                    task: String::new(),
                    due: taken,
                    attempt: 0,
                    worker: None,
                    attempts: None,
                },
            };
            match owners.get(entry.id()) {
                Some(worker) => snapshot.running.push(TaskInfo {
                    worker: Some(worker.clone()),
                    ..info
                }),
                None => snapshot.queued.push(info),
            }
        }
        for (key, json) in parked {
            match codec::decode_message(&key, &json) {
                // Due but not yet moved to the stream: a worker would take it now.
                Ok(message) if message.due <= taken => {
                    snapshot.queued.push(TaskInfo::of(&message, None))
                }
                Ok(message) => snapshot.scheduled.push(TaskInfo::of(&message, None)),
                Err(reason) => tracing::warn!(%key, %reason, "a scheduled task does not decode"),
            }
        }
        snapshot.held = decode_held(held)
            .iter()
            .map(|message| TaskInfo::of(message, None))
            .collect();
        for list in [
            &mut snapshot.queued,
            &mut snapshot.scheduled,
            &mut snapshot.running,
            &mut snapshot.held,
        ] {
            list.sort_by(|a, b| (a.due, &a.key).cmp(&(b.due, &b.key)));
        }
        Ok(snapshot)
    }
}
