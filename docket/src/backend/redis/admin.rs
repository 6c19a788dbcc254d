//! Operator commands on a Redis docket: listing workers and clearing waiting tasks.

use std::sync::LazyLock;
use std::time::Duration;

use std::sync::atomic::Ordering;

use redis::streams::StreamInfoConsumersReply;
use redis::{RedisError, Script};

use super::keys::GROUP;
use super::{RedisBackend, into_error, is_no_group};
use crate::error::Result;
use crate::inspect::WorkerInfo;

static CLEAR: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/clear.lua")));

impl RedisBackend {
    /// The workers known to the consumer group: each one's running tasks and how long since
    /// it was last heard from. One command.
    pub(crate) async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let mut command = redis::cmd("XINFO");
        command.arg("CONSUMERS").arg(&self.keys.stream).arg(GROUP);
        self.sent.fetch_add(1, Ordering::Relaxed);
        let reply: std::result::Result<StreamInfoConsumersReply, _> =
            command.query_async(&mut self.connection()).await;
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
        let mut invocation = CLEAR.prepare_invoke();
        self.keys_for(&mut invocation);
        invocation.arg(GROUP);
        self.invoke(&invocation).await
    }
}

fn is_no_key(error: &RedisError) -> bool {
    error.to_string().contains("no such key")
}
