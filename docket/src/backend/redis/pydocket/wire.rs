//! pydocket's side of the wire: its key layout, the fields of its messages, its times (ISO 8601
//! in messages, epoch seconds in records), the state events it publishes, and its strike
//! entries.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::pydocket::pickle::{self, Limits};
use crate::strike::{Operator, Strike};

/// pydocket's consumer group (`Docket.worker_group_name`).
pub(super) const PY_GROUP: &str = "docket-workers";

/// pydocket's key layout for the docket `name`, on one server: every key is `name:`-prefixed.
#[derive(Debug, Clone)]
pub(super) struct PyKeys {
    prefix: String,
    /// The stream of due tasks, read by the group [`PY_GROUP`].
    pub(super) stream: String,
    /// The sorted set of future tasks' keys, by due time in epoch seconds.
    pub(super) queue: String,
    /// The stream of strike and restore instructions.
    pub(super) strikes: String,
    /// The sorted set of live workers, by their last heartbeat.
    pub(super) workers: String,
}

impl PyKeys {
    pub(super) fn new(name: &str) -> PyKeys {
        PyKeys {
            prefix: name.to_owned(),
            stream: format!("{name}:stream"),
            queue: format!("{name}:queue"),
            strikes: format!("{name}:strikes"),
            workers: format!("{name}:workers"),
        }
    }

    /// The docket's name, the prefix of its keys.
    pub(super) fn name(&self) -> &str {
        &self.prefix
    }

    /// The hash a future task waits in: `name:{key}`.
    pub(super) fn parked(&self, key: &str) -> String {
        format!("{}:{key}", self.prefix)
    }

    /// The record of a key's run.
    pub(super) fn runs(&self, key: &str) -> String {
        format!("{}:runs:{key}", self.prefix)
    }

    /// The progress hash of a key's run.
    pub(super) fn progress(&self, key: &str) -> String {
        format!("{}:progress:{key}", self.prefix)
    }

    /// The channel a key's state events are published on.
    pub(super) fn state(&self, key: &str) -> String {
        format!("{}:state:{key}", self.prefix)
    }

    /// The channel a cancel of a running key is published on.
    pub(super) fn cancel(&self, key: &str) -> String {
        format!("{}:cancel:{key}", self.prefix)
    }

    /// The pattern of every cancel channel.
    pub(super) fn cancels(&self) -> String {
        format!("{}:cancel:*", self.prefix)
    }

    /// The set of task names a worker offers.
    pub(super) fn worker_tasks(&self, worker: &str) -> String {
        format!("{}:worker-tasks:{worker}", self.prefix)
    }

    /// The sorted set of workers offering a task.
    pub(super) fn task_workers(&self, task: &str) -> String {
        format!("{}:task-workers:{task}", self.prefix)
    }
}

/// A time as Python's `datetime.isoformat()` writes an aware UTC time, with microseconds:
/// `2026-11-29T23:38:05.265267+00:00` (never `Z`, which Python 3.10 does not read).
pub(super) fn iso(time: SystemTime) -> String {
    let micros = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    let stamp = i64::try_from(micros)
        .ok()
        .and_then(|micros| jiff::Timestamp::from_microsecond(micros).ok())
        .unwrap_or(jiff::Timestamp::MAX);
    stamp.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// A time in ISO 8601 with an offset, as pydocket writes `when` (with or without fractions).
pub(super) fn parse_iso(text: &str) -> Option<SystemTime> {
    let stamp: jiff::Timestamp = text.parse().ok()?;
    let micros = stamp.as_microsecond();
    let micros = u64::try_from(micros).ok()?;
    Some(UNIX_EPOCH + Duration::from_micros(micros))
}

/// A time as epoch seconds with microseconds, the score of the queue and `when` of records.
pub(super) fn epoch(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:06}", since.as_secs(), since.subsec_micros())
}

/// A state event, as pydocket's subscribers read it: `{"type": "state", "key": ..., "state":
/// ...}` and the fields given.
pub(super) fn state_event(key: &str, state: &str, more: &[(&str, &str)]) -> String {
    let mut event = json!({"type": "state", "key": key, "state": state});
    for (field, value) in more {
        event[*field] = Value::String((*value).to_owned());
    }
    event.to_string()
}

/// The fields of one pydocket message (or parked hash), by name.
#[derive(Debug, Default)]
pub(super) struct Fields(HashMap<String, Vec<u8>>);

impl Fields {
    /// The fields of a stream entry's `[field, value, ...]` list.
    pub(super) fn of_entry(values: Vec<redis::Value>) -> Fields {
        let mut fields = HashMap::new();
        let mut values = values.into_iter();
        while let (Some(name), Some(value)) = (values.next(), values.next()) {
            if let (Some(name), Some(value)) = (bytes(name), bytes(value))
                && let Ok(name) = String::from_utf8(name)
            {
                fields.insert(name, value);
            }
        }
        Fields(fields)
    }

    /// A field's bytes.
    pub(super) fn raw(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(Vec::as_slice)
    }

    /// A field as text.
    pub(super) fn text(&self, name: &str) -> Option<&str> {
        self.raw(name)
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
    }

    /// A field as a whole number (pydocket writes `attempt` and `generation` in decimal).
    pub(super) fn number(&self, name: &str) -> Option<u64> {
        self.text(name)?.trim().parse().ok()
    }
}

fn bytes(value: redis::Value) -> Option<Vec<u8>> {
    match value {
        redis::Value::BulkString(bytes) => Some(bytes),
        redis::Value::SimpleString(text) => Some(text.into_bytes()),
        _ => None,
    }
}

/// One entry of pydocket's strikes stream: a strike or the restore of one.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Instruction {
    Strike(Strike),
    Restore(Strike),
}

/// Why a strike entry cannot be followed (it is skipped, never wedging the reader).
pub(super) type Skipped = String;

/// A strikes stream entry as a strike: `function` (absent: every task), `parameter` (absent:
/// every run), `operator` and the pickled `value`.
pub(super) fn decode_instruction(fields: &Fields) -> Result<Instruction, Skipped> {
    let direction = fields.text("direction").ok_or("no `direction`")?;
    let mut strike = match fields.text("function") {
        Some(function) => Strike::task(function),
        None => Strike::any(),
    };
    if let Some(parameter) = fields.text("parameter") {
        let operator = fields.text("operator").ok_or("no `operator`")?;
        let op: Operator = operator
            .parse()
            .map_err(|_| format!("the operator `{operator}` is not one docket has"))?;
        let value = fields.raw("value").ok_or("no `value`")?;
        let value = pickle::decode(value, &Limits::default())
            .map_err(|error| format!("the value cannot be read: {error}"))?;
        strike = strike.when(parameter, op, value);
    }
    match direction {
        "strike" => Ok(Instruction::Strike(strike)),
        "restore" => Ok(Instruction::Restore(strike)),
        other => Err(format!("unknown direction `{other}`")),
    }
}

/// The fields of a strikes stream entry for `strike` (or its restore), as pydocket writes them:
/// the value pickled (`None` for a strike of every run).
pub(super) fn encode_instruction(
    strike: &Strike,
    restore: bool,
) -> Result<Vec<(&'static str, Vec<u8>)>, pickle::PickleError> {
    let direction = if restore { "restore" } else { "strike" };
    let mut fields = vec![("direction", direction.as_bytes().to_vec())];
    if let Some(task) = &strike.task {
        fields.push(("function", task.as_bytes().to_vec()));
    }
    match &strike.when {
        Some(condition) => {
            fields.push(("parameter", condition.param.as_bytes().to_vec()));
            fields.push(("operator", condition.op.to_string().into_bytes()));
            fields.push(("value", pickle::encode(&condition.value)?));
        }
        None => {
            fields.push(("operator", b"==".to_vec()));
            fields.push(("value", pickle::encode(&Value::Null)?));
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_and_write_as_pydocket_does() {
        let time = parse_iso("2026-11-29T23:38:05.265267+00:00").unwrap();
        assert_eq!(iso(time), "2026-11-29T23:38:05.265267+00:00");
        assert_eq!(epoch(time), "1795995485.265267");
        let whole = parse_iso("2026-11-29T23:38:05+00:00").unwrap();
        assert_eq!(iso(whole), "2026-11-29T23:38:05.000000+00:00");
        assert_eq!(parse_iso("yesterday"), None);
    }

    #[test]
    fn strikes_go_both_ways_through_their_stream_fields() {
        let strike = Strike::task("scan_copyright").when("track_id", Operator::Ge, 1000);
        for restore in [false, true] {
            let fields = encode_instruction(&strike, restore).unwrap();
            let fields = Fields(
                fields
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), value))
                    .collect(),
            );
            let expected = if restore {
                Instruction::Restore(strike.clone())
            } else {
                Instruction::Strike(strike.clone())
            };
            assert_eq!(decode_instruction(&fields), Ok(expected));
        }
        // pydocket's whole-task strike: operator `==`, value `None`, no parameter.
        let fields = Fields(HashMap::from([
            ("direction".to_owned(), b"strike".to_vec()),
            ("function".to_owned(), b"scan_copyright".to_vec()),
            ("operator".to_owned(), b"==".to_vec()),
            ("value".to_owned(), b"\x80\x05N.".to_vec()),
        ]));
        assert_eq!(
            decode_instruction(&fields),
            Ok(Instruction::Strike(Strike::task("scan_copyright")))
        );
        // `between` has no docket counterpart: skipped with a reason.
        let fields = Fields(HashMap::from([
            ("direction".to_owned(), b"strike".to_vec()),
            ("parameter".to_owned(), b"track_id".to_vec()),
            ("operator".to_owned(), b"between".to_vec()),
            ("value".to_owned(), b"\x80\x05N.".to_vec()),
        ]));
        assert!(decode_instruction(&fields).unwrap_err().contains("between"));
    }
}
