//! Binding a Python call's positional and keyword arguments to a task's parameter names, as
//! Python binds them to a signature.
//!
//! pydocket sends `args` and `kwargs` exactly as the caller wrote them (`add(f)(7, url=u)`), so
//! a Rust worker fills the task's argument struct from both: positional values in parameter
//! order, then keyword values by name. A call Python itself would refuse (too many positional
//! arguments, an unknown or a repeated name) is a [`BindError`]; a missing argument is left to
//! the argument struct's decoding, where an `Option` parameter may be absent.

use serde_json::{Map, Value};

/// Why a call's arguments do not fit the task's parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// More positional arguments than the task has parameters.
    #[error("the task takes {accepted} positional arguments but {given} were given")]
    TooManyPositional {
        /// How many parameters the task has.
        accepted: usize,
        /// How many positional arguments came.
        given: usize,
    },
    /// A keyword argument names no parameter of the task.
    #[error("the task got an unexpected keyword argument `{0}`")]
    Unknown(String),
    /// An argument given both by position and by name.
    #[error("the task got multiple values for argument `{0}`")]
    Twice(String),
}

/// The JSON object of a task's arguments: `params` are its parameter names in order (as
/// `#[docket::task]` declares them), `args` the positional values, `kwargs` the keyword ones.
pub fn bind(
    params: &[&str],
    args: Vec<Value>,
    kwargs: Map<String, Value>,
) -> Result<Value, BindError> {
    if args.len() > params.len() {
        return Err(BindError::TooManyPositional {
            accepted: params.len(),
            given: args.len(),
        });
    }
    let mut bound: Map<String, Value> = params
        .iter()
        .zip(args)
        .map(|(name, value)| (name.to_string(), value))
        .collect();
    for (name, value) in kwargs {
        if !params.contains(&name.as_str()) {
            return Err(BindError::Unknown(name));
        }
        if bound.contains_key(&name) {
            return Err(BindError::Twice(name));
        }
        bound.insert(name, value);
    }
    Ok(Value::Object(bound))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PARAMS: &[&str] = &["track_id", "audio_url"];

    fn kwargs(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn positional_then_keyword_arguments_fill_the_parameters() {
        let bound = bind(PARAMS, vec![json!(9)], kwargs(json!({"audio_url": "u"})));
        assert_eq!(bound, Ok(json!({"track_id": 9, "audio_url": "u"})));
        let bound = bind(
            PARAMS,
            vec![],
            kwargs(json!({"audio_url": "u", "track_id": 8})),
        );
        assert_eq!(bound, Ok(json!({"track_id": 8, "audio_url": "u"})));
    }

    #[test]
    fn a_call_python_would_refuse_is_an_error() {
        assert_eq!(
            bind(PARAMS, vec![json!(1), json!(2), json!(3)], Map::new()),
            Err(BindError::TooManyPositional {
                accepted: 2,
                given: 3
            })
        );
        assert_eq!(
            bind(PARAMS, vec![], kwargs(json!({"track": 1}))),
            Err(BindError::Unknown("track".into()))
        );
        assert_eq!(
            bind(PARAMS, vec![json!(1)], kwargs(json!({"track_id": 1}))),
            Err(BindError::Twice("track_id".into()))
        );
    }

    #[test]
    fn a_missing_argument_is_left_to_the_struct() {
        assert_eq!(
            bind(PARAMS, vec![json!(1)], Map::new()),
            Ok(json!({"track_id": 1}))
        );
    }
}
