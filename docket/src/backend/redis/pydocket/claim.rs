//! The worker's side of claiming: the consumer group, taking over silent workers' entries,
//! the blocking read, and each entry's claim (`py_claim.lua`) with its arguments bound to the
//! task's parameters.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use redis::Value;

use super::wire::{self, Fields, PY_GROUP, iso, state_event};
use super::{PydocketBackend, Run};
use crate::backend::redis::connection::{Link, RESPONSE_TIMEOUT, into_error, is_no_group};
use crate::backend::redis::reply::{first_stream, stream_entries};
use crate::backend::redis::scripts::SCRIPTS;
use crate::backend::{Delivery, DeliveryId, Message};
use crate::error::{Error, Result};
use crate::pydocket::{bind, pickle};
use crate::registry::Registry;
use crate::sync::Locked;

impl PydocketBackend {
    /// Create pydocket's consumer group at the stream's start (`0-0`, so tasks added before the
    /// first worker are read), unless it exists.
    pub(super) async fn ensure_group(&self) -> Result<()> {
        if self.group.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut command = redis::cmd("XGROUP");
        command
            .arg("CREATE")
            .arg(&self.keys.stream)
            .arg(PY_GROUP)
            .arg("0-0")
            .arg("MKSTREAM");
        match self.redis.query::<()>(&command).await {
            Ok(()) => {}
            Err(Error::Backend { source }) if source.to_string().contains("BUSYGROUP") => {}
            Err(error) => return Err(error),
        }
        self.group.store(true, Ordering::Release);
        Ok(())
    }

    /// A connection for a blocking read: one left by an earlier read, or a new one.
    pub(super) async fn reader(&self) -> Result<Link> {
        if let Some(link) = self.readers.locked().pop() {
            return Ok(link);
        }
        self.redis.dedicated().await
    }

    /// Take over deliveries whose worker has been silent for the redelivery timeout (it died),
    /// at most every quarter of that timeout.
    pub(super) async fn sweep(
        &self,
        worker: &str,
        max: usize,
    ) -> Result<Vec<(String, Vec<Value>)>> {
        let timeout = self.options.redelivery_timeout;
        {
            let mut swept = self.swept.locked();
            if swept.is_some_and(|at| at.elapsed() < timeout / 4) {
                return Ok(Vec::new());
            }
            *swept = Some(Instant::now());
        }
        let mut command = redis::cmd("XAUTOCLAIM");
        command
            .arg(&self.keys.stream)
            .arg(PY_GROUP)
            .arg(worker)
            .arg(crate::time::millis_of(timeout))
            .arg("0-0")
            .arg("COUNT")
            .arg(max.max(1));
        let reply: Value = self.redis.query(&command).await?;
        let entries = match reply {
            Value::Array(mut parts) if parts.len() >= 2 => parts.swap_remove(1),
            _ => Value::Nil,
        };
        Ok(stream_entries(entries))
    }

    /// Read what is due for `worker`: blocked at most `wait`.
    pub(super) async fn read(
        &self,
        worker: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<(String, Vec<Value>)>> {
        let mut link = self.reader().await?;
        let mut command = redis::cmd("XREADGROUP");
        command
            .arg("GROUP")
            .arg(PY_GROUP)
            .arg(worker)
            .arg("COUNT")
            .arg(max.max(1));
        let block = crate::time::millis_of(wait);
        if block > 0 {
            command.arg("BLOCK").arg(block);
        }
        command.arg("STREAMS").arg(&self.keys.stream).arg(">");
        self.parked.locked().insert(worker.to_owned());
        let reply = tokio::time::timeout(
            wait + RESPONSE_TIMEOUT,
            command.query_async::<Value>(&mut link),
        )
        .await;
        self.parked.locked().remove(worker);
        match reply {
            Ok(Ok(reply)) => {
                self.readers.locked().push(link);
                Ok(stream_entries(first_stream(reply)))
            }
            Ok(Err(error)) if is_no_group(&error) => {
                // The server lost the group (a restart without persistence): make it again.
                self.group.store(false, Ordering::Release);
                Ok(Vec::new())
            }
            Ok(Err(error)) => Err(into_error(error)),
            Err(_) => Err(crate::backend::redis::connection::unavailable(
                "reading the pydocket stream did not return",
            )),
        }
    }

    /// The JSON arguments of a run of `task` from its pickles, bound to the task's parameters;
    /// `{}` for a task this binary does not have (the worker ends it as unknown).
    pub(super) fn arguments(
        &self,
        task: &str,
        args: &[u8],
        kwargs: &[u8],
    ) -> Result<String, String> {
        let Some(registration) = Registry::global()
            .ok()
            .and_then(|registry| registry.get(task))
        else {
            return Ok("{}".to_owned());
        };
        let limits = pickle::Limits {
            max_bytes: self.options.max_payload,
            ..pickle::Limits::default()
        };
        let positional = pickle::decode_args(args, &limits)
            .map_err(|error| format!("the pickled `args` cannot be read: {error}"))?;
        let keyword = pickle::decode_kwargs(kwargs, &limits)
            .map_err(|error| format!("the pickled `kwargs` cannot be read: {error}"))?;
        let bound = bind::bind(registration.params(), positional, keyword)
            .map_err(|error| error.to_string())?;
        Ok(bound.to_string())
    }

    /// Claim one entry read from the stream for `worker`: a delivery to run, or nothing (it
    /// was superseded or cancelled meanwhile, or its arguments cannot run here and it ended
    /// `failed` with the reason).
    pub(super) async fn deliver(
        &self,
        worker: &str,
        id: String,
        fields: Vec<Value>,
        redelivered: bool,
    ) -> Result<Option<Delivery>> {
        let fields = Fields::of_entry(fields);
        let (Some(key), Some(task)) = (fields.text("key"), fields.text("function")) else {
            tracing::warn!(entry = %id, "a pydocket stream entry without `key` or `function`; deleted");
            let mut pipeline = redis::pipe();
            pipeline
                .cmd("XACK")
                .arg(&self.keys.stream)
                .arg(PY_GROUP)
                .arg(&id)
                .ignore()
                .cmd("XDEL")
                .arg(&self.keys.stream)
                .arg(&id)
                .ignore();
            self.redis.pipeline::<()>(&pipeline).await?;
            return Ok(None);
        };
        let generation = fields.number("generation").unwrap_or(0);
        let attempt = fields
            .number("attempt")
            .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX))
            .max(1);
        let now = SystemTime::now();
        let due = fields.text("when").and_then(wire::parse_iso).unwrap_or(now);
        let args = fields.raw("args").unwrap_or_default().to_vec();
        let kwargs = fields.raw("kwargs").unwrap_or_default().to_vec();
        let started = iso(now);
        let mut call = SCRIPTS.py_claim.prepare_invoke();
        call.key(self.keys.runs(key))
            .key(self.keys.progress(key))
            .key(self.keys.state(key))
            .key(&self.keys.stream)
            .arg(worker)
            .arg(&started)
            .arg(generation)
            .arg(state_event(
                key,
                "running",
                &[("worker", worker), ("started_at", &started)],
            ))
            .arg(key)
            .arg(&id);
        let claimed: String = self.run_script(&call).await?;
        if claimed != "OK" {
            tracing::debug!(%key, %claimed, "a pydocket delivery is not run");
            return Ok(None);
        }
        let run = Run {
            worker: worker.to_owned(),
            key: key.to_owned(),
            generation,
            args,
            kwargs,
        };
        let arguments = self.arguments(task, &run.args, &run.kwargs);
        self.in_flight.locked().insert(id.clone(), run);
        let arguments = match arguments {
            Ok(arguments) => arguments,
            Err(reason) => {
                let reason = format!("the arguments of `{task}` cannot run in Rust: {reason}");
                tracing::error!(%task, %key, %reason, "pydocket task failed without running");
                let ended = self.end(&id, "failed", &[("error", reason.as_str())]).await;
                if ended.is_err() {
                    // Not renewed: taken over after the redelivery timeout, and failed then.
                    self.in_flight.locked().remove(&id);
                }
                return ended.map(|()| None);
            }
        };
        let mut message = Message::first_attempt(task, key, arguments, due);
        message.attempt = attempt;
        message.trace = fields.text("traceparent").map(str::to_owned);
        Ok(Some(Delivery {
            id: DeliveryId::Stream { part: 0, id },
            message,
            redelivered,
        }))
    }
}
