//! Task results as pydocket keeps them: a pickle of the return value, base64 in a JSON
//! envelope (py-key-value's `RedisStore`) under `{docket}:results::{key}:{generation}`, named
//! by the `result_key` field (`{key}:{generation}`) of the run's record.

use serde_json::{Value, json};

use super::base64;
use super::pickle::{self, Limits, PickleError};

/// Why a stored result cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResultError {
    /// The stored text is not a result envelope (JSON with `value.data`, base64).
    #[error("not a pydocket result envelope: {0}")]
    Envelope(&'static str),
    /// The result's pickle cannot be read (see [`pickle`]).
    #[error("the pickled result cannot be read: {0}")]
    Pickle(PickleError),
}

/// The `result_key` field a run's record names its result by, as pydocket writes it from 0.26
/// on: `{key}:{generation}`, so that a superseded run's result is never read as the new one's.
/// (0.25 wrote the bare key; a reader takes the field from the record, whatever its form.)
pub fn result_field(key: &str, generation: u64) -> String {
    format!("{key}:{generation}")
}

/// The Redis key of the result a run's record names by `field` (its `result_key`), on a
/// single server (not a Redis Cluster), for the docket `name`: `{name}:results::{field}`.
pub fn result_key(name: &str, field: &str) -> String {
    format!("{name}:results::{field}")
}

/// The envelope pydocket's `Execution.get_result()` reads `value` from, for the run
/// `generation` of task `key` on the docket `name`.
pub fn encode_result(
    name: &str,
    key: &str,
    generation: u64,
    value: &Value,
) -> Result<String, PickleError> {
    let data = base64::encode(&pickle::encode(value)?);
    Ok(json!({
        "collection": format!("{name}:results"),
        "key": result_field(key, generation),
        "value": {"data": data},
        "version": 1,
    })
    .to_string())
}

/// The value of a result envelope a pydocket worker stored.
pub fn decode_result(envelope: &[u8], limits: &Limits) -> Result<Value, ResultError> {
    let envelope: Value =
        serde_json::from_slice(envelope).map_err(|_| ResultError::Envelope("not JSON"))?;
    let data = envelope
        .pointer("/value/data")
        .and_then(Value::as_str)
        .ok_or(ResultError::Envelope("no `value.data` text"))?;
    let pickle = base64::decode(data).ok_or(ResultError::Envelope("`value.data` is not base64"))?;
    pickle::decode(&pickle, limits).map_err(ResultError::Pickle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_reads_back_from_its_envelope() {
        let value = json!({"track_id": 7, "verdict": "clean"});
        let envelope = encode_result("plyr", "scan-7", 2, &value).unwrap();
        let parsed: Value = serde_json::from_str(&envelope).unwrap();
        assert_eq!(parsed["collection"], "plyr:results");
        assert_eq!(parsed["key"], "scan-7:2");
        assert_eq!(
            decode_result(envelope.as_bytes(), &Limits::default()),
            Ok(value)
        );
        assert_eq!(
            result_key("plyr", &result_field("scan-7", 2)),
            "plyr:results::scan-7:2"
        );
    }

    #[test]
    fn what_is_no_envelope_is_named() {
        let limits = Limits::default();
        assert_eq!(
            decode_result(b"{", &limits),
            Err(ResultError::Envelope("not JSON"))
        );
        assert_eq!(
            decode_result(br#"{"value": {}}"#, &limits),
            Err(ResultError::Envelope("no `value.data` text"))
        );
        assert_eq!(
            decode_result(br#"{"value": {"data": "!!"}}"#, &limits),
            Err(ResultError::Envelope("`value.data` is not base64"))
        );
        // `cloudpickle.dumps(datetime)`, base64: refused by name.
        let when = base64::encode(b"\x80\x05\x8c\x08datetime\x94\x8c\x08datetime\x94\x93\x94.");
        let envelope = json!({"value": {"data": when}}).to_string();
        assert!(matches!(
            decode_result(envelope.as_bytes(), &limits),
            Err(ResultError::Pickle(PickleError::Global { .. }))
        ));
    }
}
