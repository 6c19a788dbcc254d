//! Durations as operators write them: `100ms`, `1.5s`, `5m`, `1h`, `2d`.
//!
//! The grammar is the `#[docket::task]` attribute's (`timeout = "30s"`): both call the one parser
//! of the `docket-tasks-syntax` crate, tested against `conformance/durations.txt` at the workspace
//! root.

/// Parse a number (decimals allowed) followed by a unit, `ms`, `s`, `m`, `h` or `d`, exact to the
/// millisecond; `0s` parses, and whether zero is allowed is the caller's rule
/// (`--redelivery-timeout` takes 100ms to 7 days).
///
/// # Errors
///
/// A message naming the text and saying what to write: for a missing or unknown unit, anything
/// around or inside the number, a value that is not a whole number of milliseconds, or one past
/// `u64::MAX` milliseconds.
///
/// ```
/// use std::time::Duration;
/// use docket::cli::parse_duration;
///
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert!(parse_duration("0.5ms").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    docket_syntax::parse_duration(text)
}
