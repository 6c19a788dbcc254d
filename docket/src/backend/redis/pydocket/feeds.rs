//! What a pydocket docket's handles follow on connections of their own: the strikes stream and
//! the cancel channels (a worker's signals), and a run's state channel (a watch).

use std::collections::HashMap;

use redis::Value;
use tokio::sync::mpsc;

use super::wire::{self, Fields, Instruction, PyKeys};
use crate::backend::Signal;
use crate::backend::redis::connection::{Link, into_error};
use crate::backend::redis::reply::{first_stream, stream_entries};
use crate::error::{Error, Result};
use crate::pydocket::{pickle, result};
use crate::results::{Status, TaskRecord};
use crate::strike::Strike;

/// Fold one strikes stream entry into `strikes`; an entry that cannot be followed is skipped
/// with a warning (pydocket's own reader stops at it for ever).
pub(super) fn apply(strikes: &mut Vec<Strike>, id: &str, fields: &Fields) {
    match wire::decode_instruction(fields) {
        Ok(Instruction::Strike(strike)) => {
            if !strikes.contains(&strike) {
                strikes.push(strike);
            }
        }
        Ok(Instruction::Restore(strike)) => strikes.retain(|held| *held != strike),
        Err(reason) => {
            tracing::warn!(entry = %id, %reason, "skipping a pydocket strike entry")
        }
    }
}

/// Follow the strikes stream from the entry after `last`, sending the strikes in place after
/// every change, until the worker drops the receiver or the connection fails.
pub(super) async fn follow_strikes(
    stream: String,
    mut link: Link,
    mut last: String,
    mut strikes: Vec<Strike>,
    sender: mpsc::UnboundedSender<Signal>,
) {
    loop {
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT")
            .arg(100)
            .arg("BLOCK")
            .arg(0)
            .arg("STREAMS")
            .arg(&stream)
            .arg(&last);
        let reply = tokio::select! {
            () = sender.closed() => return,
            reply = read.query_async::<Value>(&mut link) => reply,
        };
        let Ok(reply) = reply else {
            tracing::debug!("the pydocket strike feed ended");
            return;
        };
        let entries = stream_entries(first_stream(reply));
        if entries.is_empty() {
            continue;
        }
        for (id, fields) in entries {
            apply(&mut strikes, &id, &Fields::of_entry(fields));
            last = id;
        }
        if sender.send(Signal::Strikes(strikes.clone())).is_err() {
            return;
        }
    }
}

/// The record of `key`'s run as pydocket keeps it, with its result when it names one; `None`
/// when there is none.
pub(super) async fn read_record(
    link: &mut Link,
    keys: &PyKeys,
    key: &str,
) -> Result<Option<TaskRecord>> {
    let mut command = redis::cmd("HGETALL");
    command.arg(keys.runs(key));
    let record: HashMap<String, Vec<u8>> = command.query_async(link).await.map_err(into_error)?;
    let text = |field: &str| {
        record
            .get(field)
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
    };
    let Some(state) = text("state") else {
        return Ok(None);
    };
    let status = match state.as_str() {
        "scheduled" => Status::Scheduled,
        "queued" => Status::Queued,
        "running" => Status::Running,
        "completed" => Status::Completed,
        "failed" => Status::Failed,
        "cancelled" => Status::Cancelled,
        other => {
            return Err(Error::Backend {
                source: format!("the run of `{key}` is in an unknown state `{other}`").into(),
            });
        }
    };
    let mut found = TaskRecord::new(key, &text("function").unwrap_or_default(), status, 1);
    found.error = text("error");
    if let Some(field) = text("result_key") {
        let mut get = redis::cmd("GET");
        get.arg(result::result_key(keys.name(), &field));
        let envelope: Option<Vec<u8>> = get.query_async(link).await.map_err(into_error)?;
        if let Some(envelope) = envelope {
            let value =
                result::decode_result(&envelope, &pickle::Limits::default()).map_err(|error| {
                    Error::Backend {
                        source: format!("the result of `{key}` cannot be read: {error}").into(),
                    }
                })?;
            found.result = Some(value.to_string());
        }
    }
    Ok(Some(found))
}

/// Send `key`'s record after every state event published for it, until the watcher drops the
/// receiver or a connection ends.
pub(super) async fn follow_record(
    keys: PyKeys,
    key: String,
    pubsub: redis::aio::PubSub,
    mut link: Link,
    sender: mpsc::UnboundedSender<TaskRecord>,
) {
    use futures_util::StreamExt;
    let mut messages = pubsub.into_on_message();
    loop {
        let message = tokio::select! {
            () = sender.closed() => return,
            message = messages.next() => message,
        };
        if message.is_none() {
            return;
        }
        match read_record(&mut link, &keys, &key).await {
            Ok(Some(record)) => {
                if sender.send(record).is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(%key, error = %crate::error::Chain(&error), "a pydocket watch ended");
                return;
            }
        }
    }
}

/// Forward the cancels published on pydocket's cancel channels (the payload is the key).
pub(super) async fn follow_cancels(
    pubsub: redis::aio::PubSub,
    sender: mpsc::UnboundedSender<Signal>,
) {
    use futures_util::StreamExt;
    let mut messages = pubsub.into_on_message();
    loop {
        let message = tokio::select! {
            () = sender.closed() => return,
            message = messages.next() => message,
        };
        let Some(message) = message else {
            return;
        };
        let key = String::from_utf8_lossy(message.get_payload_bytes()).into_owned();
        if sender
            .send(Signal::Cancel {
                key,
                delivery: None,
            })
            .is_err()
        {
            return;
        }
    }
}
