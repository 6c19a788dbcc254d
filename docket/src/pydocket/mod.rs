//! Sharing a Redis with [pydocket](https://pypi.org/project/pydocket/), Python's docket: the
//! pieces a Rust service needs to read and write what pydocket stores.
//!
//! pydocket pickles a task's arguments (`cloudpickle.dumps`, pickle protocol 5): `args` is a
//! tuple of the positional arguments, `kwargs` a dict of the keyword ones. [`pickle`] reads such
//! pickles strictly (plain data only: no class references, no code) and writes pickles a Python
//! worker accepts; [`bind`] turns positional and keyword arguments into the JSON object a
//! `#[docket::task]` function's argument struct decodes from.
//!
//! ```
//! use docket::pydocket::{bind, pickle};
//! use serde_json::json;
//!
//! // `add(scan_copyright)(7, audio_url="https://cdn.example/7.flac")`, as pydocket writes it:
//! let args = pickle::encode_args(&[json!(7)]).unwrap();
//! let kwargs = pickle::encode_kwargs(json!({"audio_url": "https://cdn.example/7.flac"})
//!     .as_object().unwrap()).unwrap();
//!
//! let limits = pickle::Limits::default();
//! let bound = bind::bind(
//!     &["track_id", "audio_url"],
//!     pickle::decode_args(&args, &limits).unwrap(),
//!     pickle::decode_kwargs(&kwargs, &limits).unwrap(),
//! )
//! .unwrap();
//! assert_eq!(bound, json!({"track_id": 7, "audio_url": "https://cdn.example/7.flac"}));
//! ```

pub mod bind;
pub mod pickle;

/// The pydocket releases this build is written against, as a pip requirement: the wire format
/// (keys, message fields, pickled arguments) is the same from 0.19.2 on, and the state scripts
/// are those of the 0.27 series.
pub const SUPPORTED_PYDOCKET: &str = ">=0.27.0,<0.28";

/// The lowest and the newest pydocket release of [`SUPPORTED_PYDOCKET`] that the interop tests
/// run against.
pub const TESTED_PYDOCKET: [&str; 1] = ["0.27.0"];
