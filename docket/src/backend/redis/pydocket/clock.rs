//! The fleet's clock on a pydocket docket: due tasks moved from the queue to the stream every
//! quarter second (`py_due.lua`), and the heartbeats pydocket's tools list workers by.

use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::wire::epoch;
use super::{DUE_BATCH, DUE_POLL, HEARTBEAT, HEARTBEAT_LIFE, PydocketBackend};
use crate::backend::redis::scripts::SCRIPTS;
use crate::error::Result;
use crate::registry::Registry;

impl PydocketBackend {
    /// Move the tasks whose time has come from the queue to the stream; how many moved.
    pub(super) async fn move_due(&self) -> Result<usize> {
        let now = epoch(SystemTime::now());
        let mut command = redis::cmd("ZRANGEBYSCORE");
        command
            .arg(&self.keys.queue)
            .arg("-inf")
            .arg(&now)
            .arg("LIMIT")
            .arg(0)
            .arg(DUE_BATCH);
        let due: Vec<String> = self.redis.query(&command).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let mut call = SCRIPTS.py_due.prepare_invoke();
        call.key(&self.keys.queue).key(&self.keys.stream);
        for key in &due {
            call.key(self.keys.parked(key))
                .key(self.keys.runs(key))
                .key(self.keys.state(key));
        }
        call.arg(&now).arg(&due);
        self.run_script(&call).await
    }

    /// Write `worker`'s heartbeat where pydocket's `docket workers` reads it.
    pub(super) async fn heartbeat(&self, worker: &str) -> Result<()> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let stale = now - HEARTBEAT_LIFE.as_secs_f64();
        let tasks: Vec<&str> = Registry::global()
            .map(|registry| registry.iter().map(|r| r.name()).collect())
            .unwrap_or_default();
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        for set in std::iter::once(self.keys.workers.clone())
            .chain(tasks.iter().map(|task| self.keys.task_workers(task)))
        {
            pipeline
                .cmd("ZREMRANGEBYSCORE")
                .arg(&set)
                .arg(0)
                .arg(stale)
                .ignore()
                .cmd("ZADD")
                .arg(&set)
                .arg(now)
                .arg(worker)
                .ignore();
        }
        if !tasks.is_empty() {
            let set = self.keys.worker_tasks(worker);
            pipeline
                .cmd("SADD")
                .arg(&set)
                .arg(&tasks)
                .ignore()
                .cmd("EXPIRE")
                .arg(&set)
                .arg(HEARTBEAT_LIFE.as_secs())
                .ignore();
        }
        self.redis.pipeline::<()>(&pipeline).await
    }

    /// Keep the fleet's clock for `worker` until `stop`: move due tasks every quarter second,
    /// write the heartbeat every two.
    pub(crate) async fn keep_time(&self, worker: &str, stop: &CancellationToken) {
        let mut beat: Option<Instant> = None;
        loop {
            if let Err(error) = self.move_due().await {
                tracing::debug!(%error, "could not move due pydocket tasks; trying again");
            }
            if beat.is_none_or(|at| at.elapsed() >= HEARTBEAT) {
                beat = Some(Instant::now());
                if let Err(error) = self.heartbeat(worker).await {
                    tracing::debug!(%error, "could not write the pydocket heartbeat");
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(DUE_POLL) => {}
            }
        }
    }
}
