//! A strict pickle codec for the plain data pydocket's arguments, results and strike values
//! carry.
//!
//! **Decoding** accepts the opcodes of protocols 2 to 5 that Python and cloudpickle write for
//! `None`, `bool`, `int` (of any size), `float`, `str`, `bytes`, `bytearray`, `list`, `tuple`,
//! `dict`, `set` and `frozenset`, with memo references (a list shared by two tuples) resolved.
//! Everything that would import or call something (`GLOBAL`, `STACK_GLOBAL`, `REDUCE`, `BUILD`,
//! `NEWOBJ`, `INST`, `OBJ`, extension codes, persistent ids, out-of-band buffers) is refused
//! with a [`PickleError`] naming what was found: a `datetime`, a `Decimal`, a `UUID` or a
//! model travels as a class reference, which no Rust task can take. Input size, nesting depth
//! and the number of values produced are bounded by [`Limits`], so a hostile pickle costs at
//! most what its limits allow, and never a panic.
//!
//! Decoded values map to JSON ([`serde_json::Value`]): lists, tuples and sets become arrays,
//! dicts with string keys objects. What has no JSON form (bytes, `nan`, an int beyond 64 bits, a
//! dict keyed by non-strings) is a [`PickleError::NoJsonForm`].
//!
//! **Encoding** writes protocol 3 (which every Python 3 reads), with no memo and no globals:
//! `args` always as a tuple and `kwargs` as a dict of strings, the two shapes a pydocket worker
//! needs (a `None` `args`, or bytes that are no pickle, crash a Python worker process).
//!
//! ```
//! use docket::pydocket::pickle::{self, Limits};
//! use serde_json::json;
//!
//! // `cloudpickle.dumps((7, "https://cdn.example/7.flac"))`:
//! let args = b"\x80\x05\x95\x22\x00\x00\x00\x00\x00\x00\x00K\x07\x8c\x1ahttps://cdn.example/7.flac\x94\x86\x94.";
//! let values = pickle::decode_args(args, &Limits::default()).unwrap();
//! assert_eq!(values, vec![json!(7), json!("https://cdn.example/7.flac")]);
//!
//! // A `datetime` argument is refused by name:
//! let when = b"\x80\x05\x8c\x08datetime\x94\x8c\x08datetime\x94\x93\x94.";
//! let error = pickle::decode(when, &Limits::default()).unwrap_err();
//! assert!(error.to_string().contains("datetime.datetime"));
//! ```

mod decode;
mod encode;
mod opcode;

use serde_json::{Map, Value};

pub use encode::{encode, encode_args, encode_kwargs};

/// Bounds on what one decode may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest pickle accepted, in bytes (default 1 MiB).
    pub max_bytes: usize,
    /// The deepest nesting of containers accepted (default 128, as `serde_json` parses). The
    /// conversion to JSON takes a stack frame a level: keep it in the hundreds.
    pub max_depth: usize,
    /// The most values one pickle may produce, counting each value a shared memo entry adds
    /// again (default 200,000).
    pub max_values: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1 << 20,
            max_depth: 128,
            max_values: 200_000,
        }
    }
}

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PickleError {
    /// The pickle names a class or function (`datetime.datetime`, `decimal.Decimal`,
    /// `uuid.UUID`, a model, a function pickled by value): only plain data is accepted.
    #[error(
        "the pickle refers to `{module}.{name}` (a class or function); only plain data (None, bool, int, float, str, list, tuple, dict, set) can be read in Rust: pass its fields or a string instead"
    )]
    Global {
        /// The module named.
        module: String,
        /// The name within the module.
        name: String,
    },

    /// An opcode that would build an object or call code (`REDUCE`, `BUILD`, `NEWOBJ`, ...),
    /// or one the decoder does not read (protocol 0 and 1 text opcodes, out-of-band buffers).
    #[error("pickle opcode {name} at byte {offset} is not accepted: only plain data is")]
    Opcode {
        /// The opcode's name in Python's `pickletools` (or its byte, as `0x..`).
        name: String,
        /// Where it stands in the input.
        offset: usize,
    },

    /// A pickle protocol other than 2 to 5.
    #[error("pickle protocol {0} is not supported (2 to 5 are)")]
    Protocol(u8),

    /// The input ends inside an opcode, or before `STOP`.
    #[error("the pickle is cut short at byte {0}")]
    Truncated(usize),

    /// The bytes are not a well-formed pickle (a stack or memo misuse, bad UTF-8, data after
    /// `STOP`).
    #[error("malformed pickle at byte {offset}: {reason}")]
    Malformed {
        /// Where the problem was found.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },

    /// The input, its nesting or the values it produces exceed the [`Limits`].
    #[error("the pickle exceeds the limit of {limit} {what}")]
    TooLarge {
        /// What is counted: `bytes`, `levels of nesting (or refers to itself)` or `values`.
        what: &'static str,
        /// The limit that was exceeded.
        limit: usize,
    },

    /// A value decoded, but has no JSON form.
    #[error("a pickled {found} has no JSON form")]
    NoJsonForm {
        /// What was found: `bytes`, `bytearray`, `float nan or infinity`, `int beyond 64 bits`,
        /// `dict with a key that is not a string`.
        found: &'static str,
    },

    /// The value is not of the shape asked for (`args` must be a tuple, `kwargs` a dict).
    #[error("expected a pickled {expected}, found a {found}")]
    Shape {
        /// What was asked for.
        expected: &'static str,
        /// What was found.
        found: &'static str,
    },
}

/// Decode a pickle into JSON.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Value, PickleError> {
    decode::Decoded::read(bytes, limits)?.into_json()
}

/// Decode pydocket's `args`: a pickled tuple (or list) of positional arguments.
pub fn decode_args(bytes: &[u8], limits: &Limits) -> Result<Vec<Value>, PickleError> {
    decode::Decoded::read(bytes, limits)?.into_args()
}

/// Decode pydocket's `kwargs`: a pickled dict of keyword arguments.
pub fn decode_kwargs(bytes: &[u8], limits: &Limits) -> Result<Map<String, Value>, PickleError> {
    decode::Decoded::read(bytes, limits)?.into_kwargs()
}

#[cfg(test)]
mod tests;

/// What the `pickle` fuzz target calls. Built only under `cfg(fuzzing)`; not public API.
#[cfg(fuzzing)]
pub(crate) mod fuzz {
    use super::*;

    /// Arbitrary bytes as `args`, `kwargs` or any value: never a panic, and what decodes to
    /// JSON encodes and decodes back to the same JSON.
    pub fn pickle(bytes: &[u8]) {
        let limits = Limits::default();
        let _ = decode_args(bytes, &limits);
        let _ = decode_kwargs(bytes, &limits);
        if let Ok(value) = decode(bytes, &limits) {
            let again = encode(&value).expect("a decoded value is within the encoder's depth");
            assert_eq!(decode(&again, &limits).as_ref(), Ok(&value));
        }
    }
}
