//! The grammars of the attribute's string values: durations (`"30s"`), backoffs
//! (`"exponential 1s..60s"`), rates (`"10/1m"`) and percentages (`"20%"`).
//!
//! Each parser takes the string's contents and returns the value or an error message; the caller
//! puts the message on the string literal.

use std::time::Duration;

pub(crate) const DURATION_FORMAT: &str = "write a number and a unit, `ms`, `s`, `m`, `h` or `d`, \
                                          with no space between, such as `250ms`, `30s` or `1.5h`";
pub(crate) const BACKOFF_FORMAT: &str = "write `\"fixed <delay>\"` or `\"exponential \
                                         <min>..<max>\"`, such as `\"fixed 5s\"` or \
                                         `\"exponential 1s..60s\"`";
pub(crate) const RATE_FORMAT: &str = "write `\"<count>/<window>\"`, such as `\"10/1m\"` for at \
                                      most 10 starts a minute";

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

/// Parses a duration such as `250ms`, `30s`, `1.5m`, `2h` or `1d`, exact to the millisecond.
///
/// The grammar is `docket`'s too (its command line's `parse_duration` is the same code), and
/// `conformance/durations.txt` at the workspace root holds the cases both are tested against:
/// digits, optionally a point and more digits, then a unit, with nothing around them; the exact
/// value must be a whole number of milliseconds, at most `u64::MAX`. `0s` parses: whether zero
/// is allowed is each key's rule, checked by the caller.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let malformed = || format!("`{text}` is not a duration; {DURATION_FORMAT}");
    let unit_start = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(malformed)?;
    let (number, unit) = text.split_at(unit_start);
    let unit_millis: u128 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(malformed()),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let is_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !is_digits(whole) || (number.contains('.') && !is_digits(fraction)) {
        return Err(malformed());
    }

    // Integer arithmetic on the digits, so `1.1s` is exactly 1100ms and not a float's guess.
    // Zeros that do not change the value go first, so `01.50s` is `1.5s`.
    let (whole, fraction) = (
        whole.trim_start_matches('0'),
        fraction.trim_end_matches('0'),
    );
    let too_long = || format!("`{text}` is too long for a duration");
    let not_whole = || format!("`{text}` is not a whole number of milliseconds");
    // `u64::MAX` milliseconds has 20 digits, and no unit is shorter than a millisecond.
    if whole.len() > 20 {
        return Err(too_long());
    }
    // A day, the longest unit, is 2^10 * 3^3 * 5^5 ms, so a fraction ending in a digit other
    // than 0 is a whole number of milliseconds only within 10 digits.
    if fraction.len() > 10 {
        return Err(not_whole());
    }
    // At most 31 digits, and 10^10 for the scale: no overflow below.
    let digits: u128 = format!("0{whole}{fraction}")
        .parse()
        .map_err(|_| malformed())?;
    let scale = 10u128.pow(u32::try_from(fraction.len()).unwrap_or(0));
    let scaled = digits.checked_mul(unit_millis).ok_or_else(too_long)?;
    if scaled % scale != 0 {
        return Err(if scaled < scale {
            format!("`{text}` is shorter than a millisecond, the smallest step docket counts")
        } else {
            not_whole()
        });
    }
    let millis = u64::try_from(scaled / scale).map_err(|_| too_long())?;
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests;
