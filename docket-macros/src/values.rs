//! The grammars of the attribute's string values: durations (`"30s"`), backoffs
//! (`"exponential 1s..60s"`), rates (`"10/1m"`) and percentages (`"20%"`).
//!
//! Each parser takes the string's contents and returns the value or an error message; the caller
//! puts the message on the string literal. Durations are `docket-tasks-syntax`'s, the one grammar
//! the command line's `--redelivery-timeout` reads too.

use std::time::Duration;

pub(crate) use docket_syntax::parse_duration;

pub(crate) const BACKOFF_FORMAT: &str = "write `\"fixed <delay>\"` or `\"exponential \
                                         <min>..<max>\"`, such as `\"fixed 5s\"` or \
                                         `\"exponential 1s..60s\"`";
pub(crate) const RATE_FORMAT: &str = "write `\"<count>/<window>\"`, such as `\"10/1m\"` for at \
                                      most 10 starts a minute";

/// A task's `retries`: a count, or `"forever"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retries {
    Times(u32),
    Forever,
}

/// A task's `backoff`, checked and ready to generate `docket::Backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backoff {
    Fixed(Duration),
    Exponential { min: Duration, max: Duration },
}

/// A `rate_limit`: at most `count` starts in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    pub(crate) count: u32,
    pub(crate) window: Duration,
}

/// Parses `"fixed 5s"` or `"exponential 1s..60s"`.
pub(crate) fn parse_backoff(text: &str) -> Result<Backoff, String> {
    let text = text.trim();
    let (kind, delays) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let delays = delays.trim();
    match kind {
        "fixed" if !delays.is_empty() && !delays.contains("..") => {
            Ok(Backoff::Fixed(parse_duration(delays)?))
        }
        "exponential" => {
            let Some((min_text, max_text)) = delays.split_once("..") else {
                return Err(format!(
                    "an exponential backoff needs a range, such as `\"exponential 1s..60s\"`, \
                     not `\"{text}\"`"
                ));
            };
            let (min_text, max_text) = (min_text.trim(), max_text.trim());
            let (min, max) = (parse_duration(min_text)?, parse_duration(max_text)?);
            if min.is_zero() {
                return Err(
                    "an exponential backoff must start above zero, since doubling zero stays \
                     zero; use `\"fixed 0s\"` to retry at once"
                        .to_owned(),
                );
            }
            if min > max {
                return Err(format!(
                    "the backoff's minimum `{min_text}` is longer than its maximum `{max_text}`; \
                     write `\"exponential <min>..<max>\"`"
                ));
            }
            Ok(Backoff::Exponential { min, max })
        }
        "fixed" => Err(format!(
            "a fixed backoff needs one delay, such as `\"fixed 5s\"`, not `\"{text}\"`"
        )),
        _ => Err(format!("unknown backoff `\"{text}\"`; {BACKOFF_FORMAT}")),
    }
}

/// Parses a jitter percentage, `"0%"` to `"100%"`.
pub(crate) fn parse_percent(text: &str) -> Result<u8, String> {
    let digits = text
        .strip_suffix('%')
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            format!("`{text}` is not a percentage; write a whole number and `%`, such as `\"20%\"`")
        })?;
    match digits.parse::<u32>() {
        Ok(percent @ 0..=100) => Ok(u8::try_from(percent).unwrap_or(100)),
        _ => Err(format!(
            "`jitter` must be from 0% to 100%, not `{text}`; 100% already moves each retry by up \
             to its whole delay, earlier or later"
        )),
    }
}

/// Parses a rate limit such as `10/1m`: at most 10 starts in any minute.
pub(crate) fn parse_rate(text: &str) -> Result<Rate, String> {
    let Some((count_text, window_text)) = text.split_once('/') else {
        return Err(format!("`{text}` is not a rate; {RATE_FORMAT}"));
    };
    let (count_text, window_text) = (count_text.trim(), window_text.trim());
    let count = match count_text.parse::<u32>() {
        Ok(0) => {
            return Err(format!(
                "a rate limit of 0 starts would never run the task; allow at least 1, such as \
                 `\"1/{window_text}\"`, or leave `rate_limit` out for no limit"
            ));
        }
        Ok(count) if count_text.bytes().all(|b| b.is_ascii_digit()) => count,
        _ => {
            return Err(format!(
                "`{count_text}` is not a count of starts; {RATE_FORMAT}"
            ));
        }
    };
    let window = parse_duration(window_text)?;
    if window.is_zero() {
        return Err(format!(
            "the rate limit's window must be longer than zero, such as `\"{count}/1s\"`"
        ));
    }
    Ok(Rate { count, window })
}

#[cfg(test)]
mod tests;
