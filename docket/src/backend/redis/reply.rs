//! Decoding RESP replies the `redis` crate has no type for: stream reads and pending lists.
//! Entries of an unexpected shape are skipped, never a panic.

use redis::Value;

/// The entries of the first stream in an `XREADGROUP` reply (nil when the block timed out).
pub(super) fn first_stream(reply: Value) -> Value {
    match reply {
        Value::Array(streams) => streams
            .into_iter()
            .next()
            .and_then(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => pair.pop(),
                _ => None,
            })
            .unwrap_or(Value::Nil),
        Value::Map(streams) => streams
            .into_iter()
            .next()
            .map_or(Value::Nil, |(_, entries)| entries),
        _ => Value::Nil,
    }
}

/// `[[id, [field, value, ...]], ...]` as pairs; entries of any other shape are skipped (a
/// deleted entry can show as `[id, nil]`).
pub(super) fn stream_entries(entries: Value) -> Vec<(String, Vec<Value>)> {
    let Value::Array(entries) = entries else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|entry| match entry {
            Value::Array(mut pair) if pair.len() == 2 => {
                let fields = match pair.pop() {
                    Some(Value::Array(fields)) => fields,
                    _ => return None,
                };
                match pair.pop() {
                    Some(Value::BulkString(id)) => Some((String::from_utf8(id).ok()?, fields)),
                    Some(Value::SimpleString(id)) => Some((id, fields)),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

/// One row of an `XPENDING key group - + count` reply.
pub(super) struct PendingRow {
    pub(super) id: String,
    pub(super) consumer: String,
    /// How often the entry has been delivered.
    pub(super) delivered: u64,
}

/// The rows of an `XPENDING key group - + count` reply; rows of any other shape are skipped.
pub(super) fn pending_rows(pending: Value) -> Vec<PendingRow> {
    let Value::Array(rows) = pending else {
        return Vec::new();
    };
    let text = |value: &Value| match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    };
    rows.into_iter()
        .filter_map(|row| {
            let Value::Array(row) = row else { return None };
            let delivered = match row.get(3)? {
                Value::Int(count) => u64::try_from(*count).ok()?,
                _ => return None,
            };
            Some(PendingRow {
                id: text(row.first()?)?,
                consumer: text(row.get(1)?)?,
                delivered,
            })
        })
        .collect()
}
