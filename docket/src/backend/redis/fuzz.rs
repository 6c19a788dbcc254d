//! What the fuzz targets call: each decoder of data read from Redis, fed arbitrary bytes. They
//! must never panic, and what decodes must survive encoding again unchanged.

use redis::Value;

use super::codec::{self, Entry};
use super::reply::{first_stream, pending_rows, stream_entries};

/// A stream entry's fields, as Redis would return them.
pub fn stream_entry(fields: &[&[u8]], max_payload: usize) {
    let fields: Vec<Value> = fields
        .iter()
        .map(|field| Value::BulkString(field.to_vec()))
        .collect();
    if let Entry::Task { message, .. } = codec::decode_entry("1-0".into(), &fields, max_payload) {
        round_trip(&message);
    }
    // The same fields as an entry of the signals stream.
    let _ = codec::decode_signal(&fields);
}

/// A message's JSON, as stored in a stream entry or the parked hash.
pub fn message(json: &[u8]) {
    if let Ok(message) = codec::decode_message("key", json) {
        round_trip(&message);
    }
}

/// A dead letter's JSON, as stored in the dead hash.
pub fn dead_letter(json: &[u8]) {
    let letter = codec::decode_dead("key", json);
    assert_eq!(letter.key, "key");
}

/// A raw server reply in RESP, as read for `XREADGROUP`, `XREAD` (the signals feed), `XCLAIM`
/// or `XPENDING`.
pub fn reply(resp: &[u8]) {
    let Ok(value) = redis::parse_redis_value(resp) else {
        return;
    };
    for (id, fields) in stream_entries(first_stream(value.clone())) {
        let _ = codec::decode_signal(&fields);
        let _ = codec::decode_entry(id, &fields, 1 << 20);
    }
    for (id, fields) in stream_entries(value.clone()) {
        let _ = codec::decode_entry(id, &fields, 1 << 20);
    }
    let _ = pending_rows(value);
}

fn round_trip(message: &crate::backend::Message) {
    let json = codec::encode_message(message);
    let again =
        codec::decode_message(&message.key, json.as_bytes()).expect("an encoded message decodes");
    assert_eq!(&again, message);
}
