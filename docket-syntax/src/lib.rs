//! The syntax `#[docket::task]` and the `docket` command line share: durations as people write
//! them (`250ms`, `30s`, `1.5h`, `2d`).
//!
//! A proc-macro crate cannot export functions to the crate it serves, so the grammar lives here,
//! once, and both `docket-tasks-macros` (at compile time, on the attribute's strings) and
//! `docket-tasks` (at run time, on command-line flags) call it. It is an implementation detail of
//! `docket-tasks`: depend on `docket-tasks` instead.

use std::time::Duration;

/// How to write a duration; the end of every error message about one.
pub const DURATION_FORMAT: &str = "write a number and a unit, `ms`, `s`, `m`, `h` or `d`, with no \
                                   space between, such as `250ms`, `30s` or `1.5h`";

/// Parse a number (decimals allowed) followed by a unit, `ms`, `s`, `m`, `h` or `d`, exact to the
/// millisecond.
///
/// Nothing may surround or split them, and the value must be a whole number of milliseconds, at
/// most `u64::MAX`. `0s` parses: whether zero is allowed is the caller's rule. The error is a
/// message naming the text and saying what to write.
///
/// ```
/// use std::time::Duration;
/// use docket_tasks_syntax::parse_duration;
///
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
/// assert!(parse_duration("5 parsecs").is_err());
/// assert!(parse_duration("0.5ms").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
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
mod tests {
    use super::*;

    #[test]
    fn every_unit_parses() {
        let cases = [
            ("100ms", Duration::from_millis(100)),
            ("1.5s", Duration::from_millis(1500)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            ("2d", Duration::from_secs(172_800)),
            ("0s", Duration::ZERO),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn mistakes_say_what_to_write() {
        for text in ["5", "5 s", "s", "1.2.3s", "5y", "-1s", " 5s", "0.5ms"] {
            let error = parse_duration(text).unwrap_err();
            assert!(error.contains(&format!("`{text}`")), "{text}: {error}");
        }
    }

    /// The table at the workspace root, `conformance/durations.txt`: what the attribute and the
    /// command line accept, with the value each string means.
    #[test]
    fn durations_follow_the_shared_conformance_table() {
        let table = include_str!("../../conformance/durations.txt");
        let mut count = 0;
        for line in table.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (input, columns) = line
                .strip_prefix('"')
                .and_then(|rest| rest.split_once('"'))
                .unwrap_or_else(|| panic!("a case starts with its input in double quotes: {line}"));
            let parsed = parse_duration(input);
            match columns.split_whitespace().collect::<Vec<_>>()[..] {
                ["error"] => assert!(parsed.is_err(), "{input:?} parsed as {parsed:?}"),
                [millis] => {
                    let millis: u64 = millis.parse().expect("milliseconds or `error`");
                    assert_eq!(parsed, Ok(Duration::from_millis(millis)), "{input:?}");
                }
                _ => panic!("{input:?}: expected one column, milliseconds or `error`"),
            }
            count += 1;
        }
        assert!(count >= 50, "only {count} cases read");
    }
}
