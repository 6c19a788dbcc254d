//! Sharing a Redis with [pydocket](https://pypi.org/project/pydocket/), Python's docket.
//!
//! A docket opened with [`Protocol::Pydocket`](crate::Protocol) (or `DOCKET_PROTOCOL=pydocket`)
//! keeps its tasks as pydocket does: its keys, consumer group, message fields, run records,
//! result storage and strikes stream. A Rust [`Worker`](crate::Worker) on it runs what
//! pydocket's `add()` scheduled, positional and keyword arguments bound to the task's
//! parameters; a Rust producer schedules (and replaces, cancels, reads the result of) tasks a
//! pydocket worker runs. Give each executing language a docket name of its own: pydocket workers
//! drop tasks they do not know. The README's "Moving a pydocket service to Rust" says what is
//! shared and what is not.
//!
//! ```no_run,standalone_crate
//! #[docket::task]
//! async fn scan_copyright(track_id: i64, audio_url: String) { /* ... */ }
//!
//! # async fn demo() -> docket::Result<()> {
//! // Runs what `rust_docket.add(scan_copyright)(7, url)` scheduled in Python:
//! let rust_docket = docket::Docket::connect("redis://127.0.0.1:6379")
//!     .name("plyr-rs")
//!     .protocol(docket::Protocol::Pydocket)
//!     .await?;
//! docket::Worker::new(&rust_docket).run().await?;
//!
//! // Schedules `transcode(track_id=7)` for the Python workers of `plyr`:
//! let plyr = docket::Docket::connect("redis://127.0.0.1:6379")
//!     .name("plyr")
//!     .protocol(docket::Protocol::Pydocket)
//!     .in_process_fallback(false)
//!     .await?;
//! let receipt = plyr.add_json("transcode", r#"{"track_id": 7}"#).await?;
//! println!("{:?}", plyr.status(receipt.key()).await?);
//! # Ok(()) }
//! ```
//!
//! Below that protocol, the pieces it is made of read and write what pydocket stores:
//!
//! pydocket pickles a task's arguments (`cloudpickle.dumps`, pickle protocol 5): `args` is a
//! tuple of the positional arguments, `kwargs` a dict of the keyword ones. [`pickle`] reads such
//! pickles strictly (plain data only: no class references, no code) and writes pickles a Python
//! worker accepts; [`bind`] turns positional and keyword arguments into the JSON object a
//! `#[docket::task]` function's argument struct decodes from. [`task_from_pickles`] and
//! [`pickles_of`] do both steps for a task type: what pydocket scheduled becomes the task's
//! argument struct, and an argument struct becomes what a pydocket worker calls its function
//! with (`args` empty, every argument by name in `kwargs`). [`result`] reads and writes task
//! results in pydocket's result storage.
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

mod base64;
pub mod bind;
pub mod pickle;
pub mod result;

use serde_json::Value;

use crate::task::Task;
use bind::BindError;
use pickle::{Limits, PickleError};

/// The pydocket releases whose task arguments this build reads and writes, as a pip
/// requirement. The message fields and their pickles have not changed from 0.19.2 to 0.27;
/// the range is what the interop tests check ([`TESTED_PYDOCKET`]).
pub const SUPPORTED_PYDOCKET: &str = ">=0.25.2,<0.28";

/// The lowest and the newest release of [`SUPPORTED_PYDOCKET`], which the interop tests
/// (`tests/tests/pydocket.rs`) install and run against.
pub const TESTED_PYDOCKET: [&str; 2] = ["0.25.2", "0.27.0"];

/// Why a pydocket call's arguments do not make a task's argument struct, or an argument struct
/// no pydocket call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgumentError {
    /// The pickled `args` or `kwargs` cannot be read (see [`pickle`]).
    #[error("the pickled `{part}` cannot be read: {error}")]
    Pickle {
        /// `args` or `kwargs`.
        part: &'static str,
        /// What the decoder found.
        error: PickleError,
    },
    /// The arguments do not fit the task's parameters.
    #[error("{0}")]
    Bind(BindError),
    /// The bound arguments do not decode as the task's argument struct (a missing argument, a
    /// value of another type).
    #[error("the arguments do not fit the task's parameters: {0}")]
    Decode(String),
    /// The arguments do not encode as a dict of keyword arguments.
    #[error("the arguments cannot be pickled as keyword arguments: {0}")]
    Encode(String),
}

/// A call's arguments as pydocket stores them: the pickled positional `args` (a tuple) and the
/// pickled keyword `kwargs` (a dict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pickles {
    /// The positional arguments: a pickled tuple.
    pub args: Vec<u8>,
    /// The keyword arguments: a pickled dict.
    pub kwargs: Vec<u8>,
}

/// The argument struct of task `T` from what pydocket scheduled: positional `args` bound to
/// [`Task::PARAMS`] in order, then `kwargs` by name.
pub fn task_from_pickles<T: Task>(
    args: &[u8],
    kwargs: &[u8],
    limits: &Limits,
) -> Result<T, ArgumentError> {
    let positional = pickle::decode_args(args, limits).map_err(|error| ArgumentError::Pickle {
        part: "args",
        error,
    })?;
    let keyword = pickle::decode_kwargs(kwargs, limits).map_err(|error| ArgumentError::Pickle {
        part: "kwargs",
        error,
    })?;
    let bound = bind::bind(T::PARAMS, positional, keyword).map_err(ArgumentError::Bind)?;
    serde_json::from_value(bound).map_err(|error| ArgumentError::Decode(error.to_string()))
}

/// What a pydocket worker calls task `T`'s function with: no positional arguments, every
/// argument by name.
pub fn pickles_of<T: Task>(task: &T) -> Result<Pickles, ArgumentError> {
    let value =
        serde_json::to_value(task).map_err(|error| ArgumentError::Encode(error.to_string()))?;
    pickles_of_json(&value)
}

/// What a pydocket worker calls a function with, from its arguments as a JSON object (as
/// [`Docket::add_json`](crate::Docket::add_json) takes them): no positional arguments, every
/// member by name.
pub fn pickles_of_json(arguments: &Value) -> Result<Pickles, ArgumentError> {
    let Value::Object(kwargs) = arguments else {
        return Err(ArgumentError::Encode(
            "expected a JSON object of arguments by name".to_string(),
        ));
    };
    let encode = |result: Result<Vec<u8>, PickleError>| {
        result.map_err(|error| ArgumentError::Encode(error.to_string()))
    };
    Ok(Pickles {
        args: encode(pickle::encode_args(&[]))?,
        kwargs: encode(pickle::encode_kwargs(kwargs))?,
    })
}
