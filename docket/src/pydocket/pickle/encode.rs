//! The encoder: JSON values as protocol-3 pickles, with no memo and no globals.
//!
//! Protocol 3 is read by every Python 3. The opcodes are those Python's own pickler writes for
//! the same values, minus memoization (a pickle needs no memo when nothing in it is shared).

use serde_json::{Map, Number, Value};

use super::PickleError;
use super::opcode::*;

/// The deepest nesting written: what `serde_json` parses, and what the decoder reads back.
const MAX_DEPTH: usize = 128;

/// How many items one `APPENDS` or `SETITEMS` carries, as Python batches them.
const BATCH: usize = 1000;

/// Pickle one JSON value.
pub fn encode(value: &Value) -> Result<Vec<u8>, PickleError> {
    let mut out = header();
    value_into(&mut out, value, 0)?;
    out.push(STOP);
    Ok(out)
}

/// Pickle positional arguments as pydocket's `args`: always a tuple (an empty one for none).
pub fn encode_args(args: &[Value]) -> Result<Vec<u8>, PickleError> {
    let mut out = header();
    match args.len() {
        0 => out.push(EMPTY_TUPLE),
        n @ 1..=3 => {
            for arg in args {
                value_into(&mut out, arg, 1)?;
            }
            out.push(TUPLE1 + (n as u8 - 1));
        }
        _ => {
            out.push(MARK);
            for arg in args {
                value_into(&mut out, arg, 1)?;
            }
            out.push(TUPLE);
        }
    }
    out.push(STOP);
    Ok(out)
}

/// Pickle keyword arguments as pydocket's `kwargs`: a dict of strings.
pub fn encode_kwargs(kwargs: &Map<String, Value>) -> Result<Vec<u8>, PickleError> {
    let mut out = header();
    object_into(&mut out, kwargs, 0)?;
    out.push(STOP);
    Ok(out)
}

fn header() -> Vec<u8> {
    vec![PROTO, 3]
}

fn value_into(out: &mut Vec<u8>, value: &Value, depth: usize) -> Result<(), PickleError> {
    if depth > MAX_DEPTH {
        return Err(PickleError::TooLarge {
            what: "levels of nesting (or refers to itself)",
            limit: MAX_DEPTH,
        });
    }
    match value {
        Value::Null => out.push(NONE),
        Value::Bool(true) => out.push(NEWTRUE),
        Value::Bool(false) => out.push(NEWFALSE),
        Value::Number(number) => number_into(out, number),
        Value::String(text) => string_into(out, text)?,
        Value::Array(items) => {
            out.push(EMPTY_LIST);
            for chunk in items.chunks(BATCH) {
                out.push(MARK);
                for item in chunk {
                    value_into(out, item, depth + 1)?;
                }
                out.push(APPENDS);
            }
        }
        Value::Object(map) => object_into(out, map, depth)?,
    }
    Ok(())
}

fn object_into(
    out: &mut Vec<u8>,
    map: &Map<String, Value>,
    depth: usize,
) -> Result<(), PickleError> {
    out.push(EMPTY_DICT);
    let pairs: Vec<_> = map.iter().collect();
    for chunk in pairs.chunks(BATCH) {
        out.push(MARK);
        for (key, value) in chunk {
            string_into(out, key)?;
            value_into(out, value, depth + 1)?;
        }
        out.push(SETITEMS);
    }
    Ok(())
}

fn string_into(out: &mut Vec<u8>, text: &str) -> Result<(), PickleError> {
    let len = u32::try_from(text.len()).map_err(|_| PickleError::TooLarge {
        what: "bytes",
        limit: u32::MAX as usize,
    })?;
    out.push(BINUNICODE);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn number_into(out: &mut Vec<u8>, number: &Number) {
    if let Some(i) = number.as_i64() {
        int_into(out, i.into());
    } else if let Some(u) = number.as_u64() {
        int_into(out, u.into());
    } else if let Some(f) = number.as_f64() {
        out.push(BINFLOAT);
        out.extend_from_slice(&f.to_be_bytes());
    }
}

/// An int in the shortest form Python writes: `BININT1`, `BININT2`, `BININT` or `LONG1`.
fn int_into(out: &mut Vec<u8>, i: i128) {
    if let Ok(small) = u8::try_from(i) {
        out.extend_from_slice(&[BININT1, small]);
    } else if let Ok(short) = u16::try_from(i) {
        out.push(BININT2);
        out.extend_from_slice(&short.to_le_bytes());
    } else if let Ok(word) = i32::try_from(i) {
        out.push(BININT);
        out.extend_from_slice(&word.to_le_bytes());
    } else {
        // Two's complement, little-endian, without the sign-extension bytes Python drops.
        let bytes = i.to_le_bytes();
        let mut len = bytes.len();
        while len > 1 {
            let (last, next) = (bytes[len - 1], bytes[len - 2]);
            let redundant = (last == 0 && next & 0x80 == 0) || (last == 0xff && next & 0x80 != 0);
            if !redundant {
                break;
            }
            len -= 1;
        }
        out.extend_from_slice(&[LONG1, len as u8]);
        out.extend_from_slice(&bytes[..len]);
    }
}
