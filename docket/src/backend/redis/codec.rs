//! What docket writes into Redis and reads back: stream entries, messages and dead letters.
//!
//! Everything is JSON or plain strings; nothing read from Redis is ever executed. Decoding
//! never panics: what does not decode is reported, and the caller keeps it as a dead letter.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Value;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::backend::Message;
use crate::inspect::{DeadLetter, FailedAttempt};
use crate::strike::Strike;

pub(super) use crate::time::millis;

pub(super) fn from_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

#[derive(Deserialize)]
struct WireIn<'a> {
    task: String,
    attempt: u32,
    due: u64,
    /// Borrowed from the entry: copied once, into the message.
    #[serde(borrow)]
    args: &'a RawValue,
    #[serde(default)]
    history: Vec<AttemptWire>,
    #[serde(default)]
    trace: Option<String>,
}

/// One failed attempt, as stored in a message's or dead letter's `history`.
#[derive(Debug, Serialize, Deserialize)]
struct AttemptWire {
    attempt: u32,
    error: String,
    at: u64,
}

fn history_to_wire(history: &[FailedAttempt]) -> Vec<AttemptWire> {
    history
        .iter()
        .map(|failed| AttemptWire {
            attempt: failed.attempt,
            error: failed.error.clone(),
            at: millis(failed.at),
        })
        .collect()
}

fn history_from_wire(history: Vec<AttemptWire>) -> Vec<FailedAttempt> {
    history
        .into_iter()
        .map(|wire| FailedAttempt::new(wire.attempt, wire.error, from_millis(wire.at)))
        .collect()
}

/// The message JSON of a stream entry or parked task. The key travels beside it.
///
/// Written by hand around the arguments, which are JSON already (encoded by serde_json, or
/// checked by `add_json`): parsing them again to embed them would cost more than the rest.
pub(super) fn encode_message(message: &Message) -> String {
    use std::fmt::Write;

    let mut json = String::with_capacity(message.args.len() + message.task.len() + 64);
    json.push_str("{\"task\":");
    json.push_str(&serde_json::to_string(&message.task).expect("a string always encodes"));
    let _ = write!(
        json,
        ",\"attempt\":{},\"due\":{},\"args\":",
        message.attempt,
        millis(message.due)
    );
    json.push_str(&message.args);
    if let Some(trace) = &message.trace {
        json.push_str(",\"trace\":");
        json.push_str(&serde_json::to_string(trace).expect("a string always encodes"));
    }
    if !message.history.is_empty() {
        json.push_str(",\"history\":");
        json.push_str(
            &serde_json::to_string(&history_to_wire(&message.history))
                .expect("a history always encodes"),
        );
    }
    json.push('}');
    json
}

/// Decode the message of the task of `key`.
pub(super) fn decode_message(key: &str, json: &[u8]) -> Result<Message, String> {
    decode_wire(json).map(|wire| wire.into_message(key.to_owned()))
}

/// Decode a message's JSON; [`WireIn::into_message`] then gives it its key (a stream entry's
/// own, taken without a copy).
fn decode_wire(json: &[u8]) -> Result<WireIn<'_>, String> {
    // Checked for UTF-8 once, whole: parsed from bytes, each string would be checked apart.
    let json = std::str::from_utf8(json)
        .map_err(|error| format!("the message is not valid: it is not UTF-8 ({error})"))?;
    let wire: WireIn<'_> =
        serde_json::from_str(json).map_err(|error| format!("the message is not valid: {error}"))?;
    if wire.attempt == 0 {
        return Err("the message's attempt is 0; attempts count from 1".into());
    }
    Ok(wire)
}

impl WireIn<'_> {
    /// The message of the task of `key`.
    fn into_message(self, key: String) -> Message {
        Message {
            task: self.task,
            key,
            args: self.args.get().to_owned(),
            attempt: self.attempt,
            due: from_millis(self.due),
            history: history_from_wire(self.history),
            trace: self.trace,
            cooldown: None,
            home: None,
        }
    }
}

/// One entry read from the stream.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Entry {
    /// A task to run.
    Task { id: String, message: Message },
    /// A wake-up (field `w`), of one of three kinds.
    Wake { id: String, kind: Wake },
    /// Something that is not a docket entry, or no longer decodes.
    Garbled {
        id: String,
        key: Option<String>,
        fields: String,
        reason: String,
    },
}

/// What a wake-up asks of the worker that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wake {
    /// `w <ms>`: the earliest future task changed; this worker moves it when it falls due.
    Head,
    /// `w keeper`: the keeper gave partition 0's lease up and hands it to this worker.
    Handoff,
    /// `w reclaim`: the keeper found a delivery stalled, and asks this worker's process to take
    /// stalled ones over. (A worker of an earlier version reads it as a `Head` and takes nothing
    /// over: the keeper's next check finds the delivery still stalled, and asks again.)
    Reclaim,
}

impl Entry {
    pub(super) fn id(&self) -> &str {
        match self {
            Entry::Task { id, .. } | Entry::Wake { id, .. } | Entry::Garbled { id, .. } => id,
        }
    }
}

/// Decode one stream entry from its id and `[field, value, field, value, ...]`.
pub(super) fn decode_entry(id: String, fields: &[Value], max_payload: usize) -> Entry {
    let malformed = !fields.len().is_multiple_of(2)
        || fields
            .chunks(2)
            .any(|pair| !matches!(pair, [Value::BulkString(_), Value::BulkString(_)]));
    // An entry has two or three fields: a scan finds one sooner than a map is built. The last
    // of a repeated field counts, as it would in a map.
    let field = |name: &[u8]| {
        fields.chunks_exact(2).rev().find_map(|pair| match pair {
            [Value::BulkString(field), Value::BulkString(value)] if field == name => {
                Some(&value[..])
            }
            _ => None,
        })
    };
    let key = field(b"k")
        .and_then(|key| std::str::from_utf8(key).ok())
        .map(str::to_owned);
    let garbled = |reason: String| Entry::Garbled {
        id: id.clone(),
        key: key.clone(),
        fields: describe_fields(fields),
        reason,
    };
    if malformed {
        return garbled("the entry's fields are not string pairs".into());
    }
    let message = field(b"m");
    if let Some(wake) = field(b"w").filter(|_| message.is_none()) {
        let kind = match wake {
            b"keeper" => Wake::Handoff,
            b"reclaim" => Wake::Reclaim,
            _ => Wake::Head,
        };
        return Entry::Wake { id, kind };
    }
    if key.is_none() {
        return garbled("the entry has no key field `k` (or it is not UTF-8)".into());
    }
    let Some(message) = message else {
        return garbled("the entry has no message field `m`".into());
    };
    if message.len() > max_payload {
        return garbled(format!(
            "the message is {} bytes, over the limit of {max_payload}",
            message.len()
        ));
    }
    match decode_wire(message) {
        Ok(wire) => Entry::Task {
            id,
            message: wire.into_message(key.unwrap_or_default()),
        },
        Err(reason) => garbled(reason),
    }
}

/// The raw fields as a JSON object, so a dead letter keeps what was there.
/// Each field and value is cut to [`GARBLED_KEPT`] bytes (noting its full size), so a huge or
/// hostile entry cannot make a dead letter larger than Redis takes.
fn describe_fields(fields: &[Value]) -> String {
    let mut object = serde_json::Map::new();
    for (index, pair) in fields.chunks(2).enumerate().take(16) {
        let text = |value: &Value| match value {
            Value::BulkString(bytes) if bytes.len() > GARBLED_KEPT => format!(
                "{}… ({} bytes in all)",
                String::from_utf8_lossy(&bytes[..GARBLED_KEPT]),
                bytes.len()
            ),
            Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            other => {
                let mut text = format!("{other:?}");
                if text.len() > GARBLED_KEPT {
                    let mut end = GARBLED_KEPT;
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.truncate(end);
                    text.push('…');
                }
                text
            }
        };
        let field = pair.first().map_or_else(|| format!("#{index}"), text);
        let value = pair.get(1).map_or_else(String::new, text);
        object.insert(field, serde_json::Value::String(value));
    }
    serde_json::Value::Object(object).to_string()
}

/// How much of each field of an undecodable entry its dead letter keeps.
const GARBLED_KEPT: usize = 4096;

/// One entry of the signals stream.
#[derive(Debug, PartialEq)]
pub(super) enum SignalEntry {
    /// The strikes changed: these are in place now.
    Strikes(Vec<Strike>),
    /// Stop the run of this key: the one delivered as stream entry `id` (every run of the key,
    /// for a signal written before entries named it).
    Cancel { key: String, id: Option<String> },
    /// A `replace` added a task beside the delivery of this key that is stream entry `id`:
    /// not to be started if it has not started yet.
    Superseded { key: String, id: String },
    /// A dashboard asks for the workers' runs by task name, for this many milliseconds.
    StatsWanted(u64),
}

/// Decode a signals stream entry from its `[field, value]`: `s` and the JSON array of the
/// strikes in place; `c` and a key (and `i` and a stream id); `r`, a key, `i` and a stream id;
/// or `w` and a number of milliseconds. `None` for anything else.
pub(super) fn decode_signal(fields: &[Value]) -> Option<SignalEntry> {
    match fields {
        [Value::BulkString(field), Value::BulkString(strikes)] if field == b"s" => {
            let strikes: Vec<Box<RawValue>> = serde_json::from_slice(strikes).ok()?;
            Some(SignalEntry::Strikes(decode_strikes(
                strikes.iter().map(|strike| strike.get().as_bytes()),
            )))
        }
        [Value::BulkString(field), Value::BulkString(millis)] if field == b"w" => {
            let millis = std::str::from_utf8(millis).ok()?.parse().ok()?;
            Some(SignalEntry::StatsWanted(millis))
        }
        [Value::BulkString(field), Value::BulkString(key)] if field == b"c" => {
            Some(SignalEntry::Cancel {
                key: String::from_utf8(key.clone()).ok()?,
                id: None,
            })
        }
        [
            Value::BulkString(field),
            Value::BulkString(key),
            Value::BulkString(id_field),
            Value::BulkString(id),
        ] if field == b"c" && id_field == b"i" => Some(SignalEntry::Cancel {
            key: String::from_utf8(key.clone()).ok()?,
            id: Some(String::from_utf8(id.clone()).ok()?),
        }),
        [
            Value::BulkString(field),
            Value::BulkString(key),
            Value::BulkString(id_field),
            Value::BulkString(id),
        ] if field == b"r" && id_field == b"i" => Some(SignalEntry::Superseded {
            key: String::from_utf8(key.clone()).ok()?,
            id: String::from_utf8(id.clone()).ok()?,
        }),
        _ => None,
    }
}

/// Strikes as stored (canonical JSON each); one that does not decode is skipped, with a warning.
pub(super) fn decode_strikes<'a>(stored: impl IntoIterator<Item = &'a [u8]>) -> Vec<Strike> {
    stored
        .into_iter()
        .filter_map(|json| {
            let strike = Strike::decode(json);
            if strike.is_none() {
                let json = String::from_utf8_lossy(json);
                tracing::warn!(strike = %json, "ignoring a stored strike that does not decode");
            }
            strike
        })
        .collect()
}

#[derive(Serialize, Deserialize)]
struct DeadWire {
    task: String,
    args: Box<RawValue>,
    attempt: u32,
    reason: String,
    died: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    history: Vec<AttemptWire>,
}

/// A dead letter's JSON; `history` is every failed attempt (the message's own when `None`).
pub(super) fn encode_dead(
    message: &Message,
    reason: &str,
    died: SystemTime,
    history: Option<&[FailedAttempt]>,
) -> String {
    let args = RawValue::from_string(message.args.clone())
        .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("valid"));
    serde_json::to_string(&DeadWire {
        task: message.task.clone(),
        args,
        attempt: message.attempt,
        reason: reason.to_owned(),
        died: millis(died),
        history: history_to_wire(history.unwrap_or(&message.history)),
    })
    .expect("a dead letter always encodes")
}

/// A garbled entry as a dead letter: its raw fields stand in for the arguments.
pub(super) fn encode_garbled(fields: &str, reason: &str, died: SystemTime) -> String {
    let message = Message {
        task: String::new(),
        key: String::new(),
        args: fields.to_owned(),
        attempt: 1,
        due: died,
        history: Vec::new(),
        trace: None,
        cooldown: None,
        home: None,
    };
    encode_dead(&message, reason, died, None)
}

pub(super) fn decode_dead(key: &str, json: &[u8]) -> DeadLetter {
    match serde_json::from_slice::<DeadWire>(json) {
        Ok(wire) => DeadLetter {
            key: key.to_owned(),
            task: wire.task,
            args: wire.args.get().to_owned(),
            attempt: wire.attempt,
            reason: wire.reason,
            died: from_millis(wire.died),
            history: history_from_wire(wire.history),
        },
        Err(error) => DeadLetter {
            key: key.to_owned(),
            task: String::new(),
            args: serde_json::Value::String(String::from_utf8_lossy(json).into_owned()).to_string(),
            attempt: 0,
            reason: format!("the dead letter itself does not decode: {error}"),
            died: UNIX_EPOCH,
            history: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn message() -> Message {
        Message {
            task: "scan_copyright".into(),
            key: "scan-7".into(),
            args: r#"{"track_id":7,"audio_url":"https://cdn.example/7.flac"}"#.into(),
            attempt: 2,
            due: from_millis(1_700_000_000_123),
            history: vec![FailedAttempt::new(
                1,
                "copyright database \"down\"".into(),
                from_millis(1_700_000_000_000),
            )],
            trace: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            cooldown: None,
            home: None,
        }
    }

    #[test]
    fn a_message_survives_the_round_trip() {
        let original = message();
        let json = encode_message(&original);
        let fields = [bulk("k"), bulk("scan-7"), bulk("m"), bulk(&json)];
        let entry = decode_entry("1-0".into(), &fields, 1 << 20);
        assert_eq!(
            entry,
            Entry::Task {
                id: "1-0".into(),
                message: original
            }
        );
    }

    #[test]
    fn wake_ups_are_recognised() {
        let entry = decode_entry("2-0".into(), &[bulk("w"), bulk("123")], 1 << 20);
        assert_eq!(
            entry,
            Entry::Wake {
                id: "2-0".into(),
                kind: Wake::Head
            }
        );
        for (field, kind) in [("keeper", Wake::Handoff), ("reclaim", Wake::Reclaim)] {
            let entry = decode_entry("3-0".into(), &[bulk("w"), bulk(field)], 1 << 20);
            assert_eq!(
                entry,
                Entry::Wake {
                    id: "3-0".into(),
                    kind
                }
            );
        }
    }

    #[test]
    fn what_does_not_decode_is_garbled_with_a_reason() {
        let json = encode_message(&message());
        let cases: [(&[Value], &str); 6] = [
            (&[bulk("m"), bulk(&json)], "no key field"),
            (&[bulk("k"), bulk("a")], "no message field"),
            (&[bulk("k"), bulk("a"), bulk("m"), bulk("{")], "not valid"),
            (
                &[bulk("k"), bulk("a"), bulk("m"), bulk(r#"{"task":1}"#)],
                "not valid",
            ),
            (&[bulk("k")], "not string pairs"),
            (
                &[bulk("k"), bulk("a"), bulk("m"), bulk(&json.repeat(2))],
                "not valid",
            ),
        ];
        for (fields, expected) in cases {
            match decode_entry("3-0".into(), fields, 1 << 20) {
                Entry::Garbled { reason, .. } => {
                    assert!(reason.contains(expected), "{reason:?} lacks {expected:?}")
                }
                other => panic!("{fields:?} decoded as {other:?}"),
            }
        }
    }

    #[test]
    fn oversized_messages_are_garbled() {
        let json = encode_message(&message());
        let fields = [bulk("k"), bulk("a"), bulk("m"), bulk(&json)];
        match decode_entry("4-0".into(), &fields, 10) {
            Entry::Garbled { reason, key, .. } => {
                assert!(reason.contains("over the limit of 10"), "{reason}");
                assert_eq!(key.as_deref(), Some("a"));
            }
            other => panic!("decoded as {other:?}"),
        }
    }

    /// `restamp` in `lua/include/store.lua` rewrites the due time of a stored message in place. It relies on
    /// this layout: `{"task":` and the task name as a JSON string, then `,"attempt":N,"due":M`.
    #[test]
    fn a_message_starts_with_its_task_attempt_and_due_time_as_the_scripts_expect() {
        for task in [
            "scan",
            r#"a "quoted" name"#,
            r#"back\slash\"#,
            r#"x","due":1,"#,
        ] {
            let original = Message {
                task: task.into(),
                attempt: 3,
                ..message()
            };
            let json = encode_message(&original);
            let name = serde_json::to_string(task).unwrap();
            let expected = format!("{{\"task\":{name},\"attempt\":3,\"due\":1700000000123,");
            assert!(json.starts_with(&expected), "{json}");
            assert!(!name[1..name.len() - 1].contains(",\""), "{name}");
        }
    }

    #[test]
    fn a_huge_garbled_entry_keeps_only_the_start_of_each_field() {
        let huge = vec![b'x'; 10 * GARBLED_KEPT];
        let fields = [
            bulk("k"),
            bulk("scan-7"),
            bulk("m"),
            Value::BulkString(huge),
        ];
        let Entry::Garbled { fields, .. } = decode_entry("1-0".into(), &fields, 1024) else {
            panic!("an oversized message is garbled");
        };
        assert!(
            fields.len() < 2 * GARBLED_KEPT,
            "{} bytes kept",
            fields.len()
        );
        assert!(fields.contains("(40960 bytes in all)"), "{fields}");
    }

    #[test]
    fn signal_entries_decode_and_anything_else_is_ignored() {
        use crate::strike::Operator;

        let strikes = [
            Strike::task("scan"),
            Strike::any().when("size", Operator::Ge, 1_000_000),
        ];
        let list = format!("[{},{}]", strikes[0].encode(), strikes[1].encode());
        assert_eq!(
            decode_signal(&[bulk("s"), bulk(&list)]),
            Some(SignalEntry::Strikes(strikes.to_vec()))
        );
        assert_eq!(
            decode_signal(&[bulk("s"), bulk("[]")]),
            Some(SignalEntry::Strikes(Vec::new()))
        );
        assert_eq!(
            decode_signal(&[bulk("s"), bulk(r#"[{"task":"scan"},{"when":7}]"#)]),
            Some(SignalEntry::Strikes(vec![Strike::task("scan")])),
            "a strike that does not decode is skipped, not the list"
        );
        assert_eq!(
            decode_signal(&[bulk("c"), bulk("scan-7")]),
            Some(SignalEntry::Cancel {
                key: "scan-7".into(),
                id: None
            })
        );
        assert_eq!(
            decode_signal(&[bulk("c"), bulk("scan-7"), bulk("i"), bulk("1-0")]),
            Some(SignalEntry::Cancel {
                key: "scan-7".into(),
                id: Some("1-0".into())
            })
        );
        assert_eq!(
            decode_signal(&[bulk("r"), bulk("scan-7"), bulk("i"), bulk("2-0")]),
            Some(SignalEntry::Superseded {
                key: "scan-7".into(),
                id: "2-0".into()
            })
        );
        assert_eq!(
            decode_signal(&[bulk("w"), bulk("600000")]),
            Some(SignalEntry::StatsWanted(600_000))
        );
        let ignored: [&[Value]; 7] = [
            &[bulk("x"), bulk("1")],
            &[bulk("w"), bulk("soon")],
            &[bulk("r"), bulk("scan-7")],
            &[bulk("c")],
            &[bulk("s"), bulk("{")],
            &[bulk("c"), Value::BulkString(vec![0xff])],
            &[bulk("s"), bulk("[]"), bulk("c"), bulk("k")],
        ];
        for fields in ignored {
            assert_eq!(decode_signal(fields), None, "{fields:?}");
        }
    }

    #[test]
    fn dead_letters_keep_the_arguments_and_the_reason() {
        let died = from_millis(1_700_000_001_000);
        let json = encode_dead(&message(), "failed on attempt 2 of 2: boom", died, None);
        let letter = decode_dead("scan-7", json.as_bytes());
        assert_eq!(letter.task, "scan_copyright");
        assert_eq!(letter.args, message().args);
        assert_eq!(letter.attempt, 2);
        assert_eq!(letter.reason, "failed on attempt 2 of 2: boom");
        assert_eq!(letter.died, died);
        assert_eq!(letter.history, message().history);
    }
}
