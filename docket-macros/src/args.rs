//! Parsing the attribute's arguments: `#[docket::task(name = "..", retries = N, backoff = "..",
//! jitter = "..", timeout = "..", every = "..", cron = "..", tz = "..", concurrency = N,
//! rate_limit = "..", debounce = "..", result = "..")]`.
//!
//! Durations, rates and cron expressions are checked here, at compile time, so a typo in
//! `timeout = "30 parsecs"` fails the build with an error on the string instead of surprising a
//! worker in production.

use std::time::Duration;

use proc_macro2::TokenTree;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitInt, LitStr, Token, token};

use crate::errors::Errors;

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(retries);
    syn::custom_keyword!(backoff);
    syn::custom_keyword!(jitter);
    syn::custom_keyword!(timeout);
    syn::custom_keyword!(every);
    syn::custom_keyword!(cron);
    syn::custom_keyword!(tz);
    syn::custom_keyword!(concurrency);
    syn::custom_keyword!(rate_limit);
    syn::custom_keyword!(debounce);
    syn::custom_keyword!(result);
}

const KEYS: &str = "`name`, `retries`, `backoff`, `jitter`, `timeout`, `every`, `cron`, `tz`, \
                    `concurrency`, `rate_limit`, `debounce` or `result`";
const DURATION_FORMAT: &str = "write a number and a unit, `ms`, `s`, `m`, `h` or `d`, with no \
                               space between, such as `250ms`, `30s` or `1.5h`";
const BACKOFF_FORMAT: &str = "write `\"fixed <delay>\"` or `\"exponential <min>..<max>\"`, such \
                              as `\"fixed 5s\"` or `\"exponential 1s..60s\"`";
const RATE_FORMAT: &str = "write `\"<count>/<window>\"`, such as `\"10/1m\"` for at most 10 \
                           starts a minute";
const CRON_FORMAT: &str = "a cron expression has five fields, minute, hour, day of month, month \
                           and day of week, such as `\"*/5 * * * *\"` or `\"0 9 * * MON-FRI\"`, \
                           or six with seconds first, such as `\"*/10 * * * * *\"`";

/// How long `result` without a value keeps results.
pub(crate) const DEFAULT_RESULT_TTL: Duration = Duration::from_secs(60 * 60);

/// The arguments of one `#[docket::task(...)]`, each absent unless given.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) name: Option<Arg<kw::name, LitStr>>,
    pub(crate) retries: Option<Arg<kw::retries, u32>>,
    pub(crate) backoff: Option<Arg<kw::backoff, Backoff>>,
    pub(crate) jitter: Option<Arg<kw::jitter, u8>>,
    pub(crate) timeout: Option<Arg<kw::timeout, Duration>>,
    pub(crate) every: Option<Arg<kw::every, Duration>>,
    /// The expression, checked, as the user wrote it.
    pub(crate) cron: Option<Arg<kw::cron, LitStr>>,
    pub(crate) tz: Option<Arg<kw::tz, LitStr>>,
    pub(crate) concurrency: Option<Arg<kw::concurrency, PerArgument<u32>>>,
    pub(crate) rate_limit: Option<Arg<kw::rate_limit, PerArgument<Rate>>>,
    pub(crate) debounce: Option<Arg<kw::debounce, PerArgument<Duration>>>,
    /// How long results are kept: the given duration, or an hour for a bare `result`.
    pub(crate) result: Option<Arg<kw::result, Duration>>,
}

/// One `key = value` argument. The key's token stays with the value so errors, and the generated
/// code (for an IDE's hover), can point at what the user wrote.
pub(crate) struct Arg<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
}

/// The value of a key that may count per value of one of the task's arguments:
/// `concurrency = 4` for the whole task, `concurrency(track_id) = 1` per track.
pub(crate) struct PerArgument<V> {
    /// The argument named in parentheses; checked against the function once it is lowered.
    pub(crate) param: Option<Ident>,
    pub(crate) value: V,
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

impl Args {
    /// Whether the task runs on its own, with `every` or `cron`.
    pub(crate) fn recurring_key(&self) -> Option<&'static str> {
        if self.every.is_some() {
            Some("every")
        } else if self.cron.is_some() {
            Some("cron")
        } else {
            None
        }
    }
}

impl Parse for Args {
    /// Parses every argument, recovering at the next comma after a mistake so all mistakes are
    /// reported together.
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        let mut errors = Errors::default();
        while !input.is_empty() {
            let parsed = args.parse_one(input).and_then(|()| {
                if !input.is_empty() {
                    input.parse::<Token![,]>()?;
                }
                Ok(())
            });
            if let Err(error) = parsed {
                errors.push(error);
                skip_past_comma(input);
            }
        }
        args.check_combinations(&mut errors);
        errors.finish(args)
    }
}

impl Args {
    fn parse_one(&mut self, input: ParseStream<'_>) -> syn::Result<()> {
        let lookahead = input.lookahead1();
        if lookahead.peek(kw::name) {
            let key = input.parse::<kw::name>()?;
            let value = string(input, "`name` takes a string, such as `name = \"scan\"`")?;
            if value.value().is_empty() {
                return Err(syn::Error::new_spanned(value, "`name` cannot be empty"));
            }
            set_once(&mut self.name, Arg { key, value })
        } else if lookahead.peek(kw::retries) {
            let key = input.parse::<kw::retries>()?;
            let literal = integer(
                input,
                "`retries` takes a whole number, such as `retries = 3`",
            )?;
            let value = literal.base10_parse::<u32>().map_err(|_| {
                syn::Error::new_spanned(
                    &literal,
                    format!("`retries` must be from 0 to {}", u32::MAX),
                )
            })?;
            set_once(&mut self.retries, Arg { key, value })
        } else if lookahead.peek(kw::backoff) {
            let key = input.parse::<kw::backoff>()?;
            let literal = string(
                input,
                &format!("`backoff` takes a string: {BACKOFF_FORMAT}"),
            )?;
            let value = parse_backoff(&literal.value())
                .map_err(|message| syn::Error::new_spanned(&literal, message))?;
            set_once(&mut self.backoff, Arg { key, value })
        } else if lookahead.peek(kw::jitter) {
            let key = input.parse::<kw::jitter>()?;
            let literal = string(
                input,
                "`jitter` takes a percentage as a string, such as `jitter = \"20%\"`",
            )?;
            let value = parse_percent(&literal.value())
                .map_err(|message| syn::Error::new_spanned(&literal, message))?;
            set_once(&mut self.jitter, Arg { key, value })
        } else if lookahead.peek(kw::timeout) {
            let key = input.parse::<kw::timeout>()?;
            let value = nonzero_duration(
                input,
                "timeout",
                "`timeout = \"30s\"`",
                "leave it out for no timeout",
            )?;
            set_once(&mut self.timeout, Arg { key, value })
        } else if lookahead.peek(kw::every) {
            let key = input.parse::<kw::every>()?;
            let value = nonzero_duration(
                input,
                "every",
                "`every = \"5m\"`",
                "a task cannot run continuously",
            )?;
            set_once(&mut self.every, Arg { key, value })
        } else if lookahead.peek(kw::cron) {
            let key = input.parse::<kw::cron>()?;
            let value = string(input, &format!("`cron` takes a string: {CRON_FORMAT}"))?;
            check_cron(&value.value())
                .map_err(|message| syn::Error::new_spanned(&value, message))?;
            set_once(&mut self.cron, Arg { key, value })
        } else if lookahead.peek(kw::tz) {
            let key = input.parse::<kw::tz>()?;
            let value = string(
                input,
                "`tz` takes an IANA time zone name as a string, such as `tz = \"Europe/Paris\"`",
            )?;
            if value.value().trim().is_empty() {
                return Err(syn::Error::new_spanned(
                    value,
                    "`tz` cannot be empty; name an IANA time zone such as `\"Europe/Paris\"`, or \
                     leave `tz` out for UTC",
                ));
            }
            set_once(&mut self.tz, Arg { key, value })
        } else if lookahead.peek(kw::concurrency) {
            let key = input.parse::<kw::concurrency>()?;
            let param = per_argument(input, "concurrency", "track_id")?;
            let literal = integer(
                input,
                "`concurrency` takes a whole number, such as `concurrency = 4`",
            )?;
            let value = nonzero_u32(&literal, "concurrency", "how many may run at once")?;
            set_once(
                &mut self.concurrency,
                Arg {
                    key,
                    value: PerArgument { param, value },
                },
            )
        } else if lookahead.peek(kw::rate_limit) {
            let key = input.parse::<kw::rate_limit>()?;
            let param = per_argument(input, "rate_limit", "user_id")?;
            let literal = string(
                input,
                &format!("`rate_limit` takes a string: {RATE_FORMAT}"),
            )?;
            let value = parse_rate(&literal.value())
                .map_err(|message| syn::Error::new_spanned(&literal, message))?;
            set_once(
                &mut self.rate_limit,
                Arg {
                    key,
                    value: PerArgument { param, value },
                },
            )
        } else if lookahead.peek(kw::debounce) {
            let key = input.parse::<kw::debounce>()?;
            let param = per_argument(input, "debounce", "customer_id")?;
            let value = nonzero_duration(
                input,
                "debounce",
                "`debounce = \"5s\"`",
                "leave it out to run every schedule",
            )?;
            set_once(
                &mut self.debounce,
                Arg {
                    key,
                    value: PerArgument { param, value },
                },
            )
        } else if lookahead.peek(kw::result) {
            let key = input.parse::<kw::result>()?;
            let value = if input.peek(Token![=]) {
                nonzero_duration(
                    input,
                    "result",
                    "`result = \"1d\"`, or `result` alone for an hour",
                    "leave `result` out to keep no results",
                )?
            } else {
                DEFAULT_RESULT_TTL
            };
            set_once(&mut self.result, Arg { key, value })
        } else if input.peek(Ident::peek_any) {
            let unknown = input.call(Ident::parse_any)?;
            Err(syn::Error::new_spanned(
                &unknown,
                format!("unknown argument `{unknown}`; expected {KEYS}"),
            ))
        } else {
            Err(lookahead.error())
        }
    }

    /// Keys that are each fine alone but cannot go together.
    fn check_combinations(&self, errors: &mut Errors) {
        if let (Some(_), Some(cron)) = (&self.every, &self.cron) {
            errors.push_spanned(
                cron.key,
                "a task recurs either `every` period or on a `cron` schedule, not both; remove \
                 one of them",
            );
        }
        if let (Some(tz), None) = (&self.tz, &self.cron) {
            errors.push_spanned(
                tz.key,
                "`tz` is the time zone of a `cron` schedule, and this task has none; add \
                 `cron = \"..\"` or remove `tz`",
            );
        }
    }
}

/// Stores an argument, or reports the key given twice. The one place duplicates are handled.
fn set_once<K: ToTokens, V>(slot: &mut Option<Arg<K, V>>, arg: Arg<K, V>) -> syn::Result<()> {
    if slot.is_some() {
        let key = arg.key.to_token_stream();
        return Err(syn::Error::new_spanned(
            &arg.key,
            format!("duplicate argument `{key}`; give each argument once"),
        ));
    }
    *slot = Some(arg);
    Ok(())
}

/// `= "..."`, with `expected` as the error when the value is something else.
fn string(input: ParseStream<'_>, expected: &str) -> syn::Result<LitStr> {
    input.parse::<Token![=]>()?;
    if input.peek(LitStr) {
        input.parse()
    } else {
        Err(input.error(expected))
    }
}

/// `= 123`, with `expected` as the error when the value is something else.
fn integer(input: ParseStream<'_>, expected: &str) -> syn::Result<LitInt> {
    input.parse::<Token![=]>()?;
    if input.peek(LitInt) {
        input.parse()
    } else {
        Err(input.error(expected))
    }
}

/// `= "30s"` for `key`, longer than zero. `example` shows the key in use; `instead` says what
/// to write when zero was meant.
fn nonzero_duration(
    input: ParseStream<'_>,
    key: &str,
    example: &str,
    instead: &str,
) -> syn::Result<Duration> {
    let literal = string(input, &format!("`{key}` takes a string, such as {example}"))?;
    let value = parse_duration(&literal.value())
        .map_err(|message| syn::Error::new_spanned(&literal, message))?;
    if value.is_zero() {
        return Err(syn::Error::new_spanned(
            &literal,
            format!("`{key}` must be longer than zero; {instead}"),
        ));
    }
    Ok(value)
}

/// A limit of at least 1: a limit of 0 would never let the task run.
fn nonzero_u32(literal: &LitInt, key: &str, meaning: &str) -> syn::Result<u32> {
    match literal.base10_parse::<u32>() {
        Ok(0) => Err(syn::Error::new_spanned(
            literal,
            format!(
                "`{key}` must be at least 1, since it is {meaning} and 0 would never run the \
                 task; leave `{key}` out for no limit"
            ),
        )),
        Ok(value) => Ok(value),
        Err(_) => Err(syn::Error::new_spanned(
            literal,
            format!("`{key}` must be from 1 to {}", u32::MAX),
        )),
    }
}

/// The optional `(argument)` after a key that can count per argument value.
fn per_argument(input: ParseStream<'_>, key: &str, example: &str) -> syn::Result<Option<Ident>> {
    if !input.peek(token::Paren) {
        return Ok(None);
    }
    let content;
    let parens = syn::parenthesized!(content in input);
    let usage = || {
        format!(
            "`{key}(..)` names one argument of the task to count by, such as \
             `{key}({example})`; write `{key} = ..` to count the task as a whole"
        )
    };
    // One identifier and nothing else; any other content is wrong as a whole.
    match content.parse::<Ident>() {
        Ok(param) if content.is_empty() => Ok(Some(param)),
        _ => Err(syn::Error::new(parens.span.join(), usage())),
    }
}

/// Skips the rest of a malformed argument, so parsing resumes at the next one.
fn skip_past_comma(input: ParseStream<'_>) {
    let skipped = input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((token, next)) = rest.token_tree() {
            rest = next;
            if matches!(&token, TokenTree::Punct(punct) if punct.as_char() == ',') {
                break;
            }
        }
        Ok(((), rest))
    });
    debug_assert!(skipped.is_ok(), "skipping tokens cannot fail");
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
    let too_long = || format!("`{text}` is too long for a duration");
    let digits: u128 = format!("{whole}{fraction}")
        .parse()
        .map_err(|_| too_long())?;
    let scale = u32::try_from(fraction.len())
        .ok()
        .and_then(|len| 10u128.checked_pow(len))
        .ok_or_else(too_long)?;
    let scaled = digits.checked_mul(unit_millis).ok_or_else(too_long)?;
    if scaled % scale != 0 {
        return Err(if scaled < scale {
            format!("`{text}` is shorter than a millisecond, the smallest step docket counts")
        } else {
            format!("`{text}` is not a whole number of milliseconds")
        });
    }
    let millis = u64::try_from(scaled / scale).map_err(|_| too_long())?;
    Ok(Duration::from_millis(millis))
}

/// One field of a cron expression: its name, its bounds, and the names it takes for numbers
/// (the first name stands for `min`).
struct CronField {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECOND: CronField = CronField {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: CronField = CronField {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: CronField = CronField {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: CronField = CronField {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: CronField = CronField {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
/// 0 and 7 are both Sunday.
const DAY_OF_WEEK: CronField = CronField {
    name: "day of week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

const CRON_SHORTCUTS: [&str; 6] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];

/// Checks a cron expression as the worker's parser (croner) reads it, so its mistakes fail the
/// build rather than the worker's start: five fields (or six, seconds first), each a list of `*`, numbers, names and
/// ranges, with optional `/step`s; `L`, `W`, `#` and `?` where croner takes them; or a shortcut
/// such as `@daily`. Stricter in one way only: a month or day name outside its own field, which
/// croner would read as a number, is an error.
pub(crate) fn check_cron(text: &str) -> Result<(), String> {
    let trimmed = text.trim();
    if trimmed.starts_with('@') {
        if CRON_SHORTCUTS
            .iter()
            .any(|shortcut| shortcut.eq_ignore_ascii_case(trimmed))
        {
            return Ok(());
        }
        return Err(format!(
            "unknown cron shortcut `{trimmed}`; use `@hourly`, `@daily`, `@weekly`, `@monthly` \
             or `@yearly`, or five fields: {CRON_FORMAT}"
        ));
    }
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    let (second, [minute, hour, day_of_month, month, day_of_week]) = match fields[..] {
        [minute, hour, day_of_month, month, day_of_week] => {
            (None, [minute, hour, day_of_month, month, day_of_week])
        }
        [second, minute, hour, day_of_month, month, day_of_week] => (
            Some(second),
            [minute, hour, day_of_month, month, day_of_week],
        ),
        _ => {
            let count = fields.len();
            let plural = if count == 1 { "" } else { "s" };
            return Err(format!("`{text}` has {count} field{plural}; {CRON_FORMAT}"));
        }
    };
    if let Some(second) = second {
        SECOND.check(second, "")?;
    }
    MINUTE.check(minute, "")?;
    HOUR.check(hour, "")?;
    DAY_OF_MONTH.check(day_of_month, "LW?")?;
    MONTH.check(month, "")?;
    // A leading `+` makes croner match the day of month and the day of week together.
    let day_of_week = day_of_week.strip_prefix('+').unwrap_or(day_of_week);
    DAY_OF_WEEK.check(day_of_week, "L#?")
}

impl CronField {
    /// Checks one field; `extras` are the modifiers croner takes in it.
    fn check(&self, text: &str, extras: &str) -> Result<(), String> {
        // Croner reads `?` as `*` where it takes it.
        let text = if extras.contains('?') {
            text.replace('?', "*")
        } else {
            text.to_owned()
        };
        if text == "*" {
            return Ok(());
        }
        // Croner skips empty list items, so `1,,2` is `1,2`.
        for item in text.split(',').filter(|item| !item.is_empty()) {
            self.check_item(item, extras)?;
        }
        Ok(())
    }

    fn check_item(&self, item: &str, extras: &str) -> Result<(), String> {
        let name = self.name;
        if item == "*" {
            return Err(format!(
                "`*` already matches every {name}; write `*` alone, without the rest of the list"
            ));
        }
        if let Some((range, step)) = item.split_once('/') {
            if !matches!(number(step), Some(1..)) {
                return Err(format!(
                    "`{item}` has the step `/{step}` in the {name} field; a step is a whole \
                     number from 1 up, such as `*/5`"
                ));
            }
            return match range.split_once('-') {
                _ if range == "*" => Ok(()),
                Some((start, end)) => self.range(item, start, end),
                None => Err(format!(
                    "`{item}`: a step goes over `*` or a range, such as `*/{step}` or \
                     `{range}-{}/{step}`",
                    self.max
                )),
            };
        }
        if extras.contains('#') {
            if let Some((days, nth)) = item.split_once('#') {
                if !matches!(number(nth), Some(1..=5)) {
                    return Err(format!(
                        "`{item}`: `#` takes which week of the month, from 1 to 5, such as \
                         `FRI#2` for the second Friday"
                    ));
                }
                return match days.split_once('-') {
                    Some((start, end)) => self.range(item, start, end),
                    None => self.value(item, days).map(drop),
                };
            }
        }
        if let Some((start, end)) = item.split_once('-') {
            return self.range(item, start, end);
        }
        if extras.contains('L') {
            match strip_letter(item, 'L') {
                Some("") => return Ok(()),
                // The last such day of the week in the month, as `5L` for the last Friday.
                Some(day) if extras.contains('#') => return self.value(item, day).map(drop),
                _ => {}
            }
        }
        if extras.contains('W') {
            // The weekday nearest a day of the month, or `LW`, the month's last weekday.
            match strip_letter(item, 'W') {
                Some(last) if last.eq_ignore_ascii_case("L") => return Ok(()),
                Some(day) => return self.value(item, day).map(drop),
                None => {}
            }
        }
        self.value(item, item).map(drop)
    }

    fn range(&self, item: &str, start: &str, end: &str) -> Result<(), String> {
        let start_value = self.value(item, start)?;
        let mut end_value = self.value(item, end)?;
        // `FRI-SUN`: croner reads a Sunday ending a range as 7.
        if self
            .names
            .first()
            .is_some_and(|sun| sun.eq_ignore_ascii_case(end))
            && self.max == 7
        {
            end_value = 7;
        }
        if start_value > end_value {
            return Err(format!(
                "the range `{start}-{end}` in the {} field runs backwards; write the smaller \
                 bound first, or two ranges such as `{start}-{},{}-{end}`",
                self.name, self.max, self.min
            ));
        }
        Ok(())
    }

    fn value(&self, item: &str, text: &str) -> Result<u32, String> {
        if let Some(index) = self
            .names
            .iter()
            .position(|name| name.eq_ignore_ascii_case(text))
        {
            return Ok(self.min.saturating_add(u32::try_from(index).unwrap_or(0)));
        }
        match number(text) {
            Some(value) if (self.min..=self.max).contains(&value) => Ok(value),
            _ => {
                let names = match self.names {
                    [] => String::new(),
                    [first, .., last] => format!(" or names `{first}` to `{last}`"),
                    [only] => format!(" or the name `{only}`"),
                };
                Err(format!(
                    "`{item}` is not valid in the {} field; it takes `*` or numbers from {} to \
                     {}{names}, as ranges `a-b`, steps `/n` and lists `a,b`",
                    self.name, self.min, self.max
                ))
            }
        }
    }
}

/// `item` without a last `letter`, in either case, as croner reads letters.
fn strip_letter(item: &str, letter: char) -> Option<&str> {
    item.strip_suffix(letter)
        .or_else(|| item.strip_suffix(letter.to_ascii_lowercase()))
}

/// Digits only: no sign, no spaces.
fn number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn parse(tokens: proc_macro2::TokenStream) -> syn::Result<Args> {
        syn::parse2(tokens)
    }

    fn messages(tokens: proc_macro2::TokenStream) -> Vec<String> {
        match parse(tokens) {
            Ok(_) => panic!("expected errors"),
            Err(errors) => errors.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn durations_take_whole_and_decimal_numbers_in_five_units() {
        assert_eq!(parse_duration("250ms"), Ok(ms(250)));
        assert_eq!(parse_duration("30s"), Ok(ms(30_000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1_500)));
        assert_eq!(parse_duration("1.1s"), Ok(ms(1_100)));
        assert_eq!(parse_duration("5m"), Ok(ms(300_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("0.25h"), Ok(ms(900_000)));
        assert_eq!(parse_duration("0s"), Ok(ms(0)));
        assert_eq!(parse_duration("1d"), Ok(ms(86_400_000)));
        assert_eq!(parse_duration("1.5d"), Ok(ms(129_600_000)));
    }

    #[test]
    fn malformed_durations_say_how_to_write_one() {
        for text in [
            "",
            "30",
            "s",
            "30 s",
            " 30s",
            "30s ",
            "30 parsecs",
            "30sec",
            ".5s",
            "5.s",
            "1.2.3s",
            "-1s",
            "1e3ms",
            "30S",
            "1D",
            "1day",
        ] {
            let error = parse_duration(text).unwrap_err();
            assert!(error.contains("is not a duration"), "{text:?}: {error}");
            assert!(error.contains("`250ms`"), "{text:?}: {error}");
        }
    }

    #[test]
    fn durations_below_a_millisecond_are_rejected() {
        assert!(
            parse_duration("0.5ms")
                .unwrap_err()
                .contains("shorter than a millisecond")
        );
        assert!(
            parse_duration("0.0001s")
                .unwrap_err()
                .contains("shorter than a millisecond")
        );
        assert!(
            parse_duration("1.0005s")
                .unwrap_err()
                .contains("whole number of milliseconds")
        );
    }

    #[test]
    fn huge_durations_are_rejected_not_wrapped() {
        assert!(
            parse_duration("99999999999999999999h")
                .unwrap_err()
                .contains("too long")
        );
        assert!(parse_duration("1.0000000000000000000000000000000000000000s").is_err());
    }

    #[test]
    fn backoffs_are_fixed_or_exponential() {
        assert_eq!(parse_backoff("fixed 5s"), Ok(Backoff::Fixed(ms(5_000))));
        assert_eq!(parse_backoff("fixed 0s"), Ok(Backoff::Fixed(ms(0))));
        assert_eq!(
            parse_backoff("exponential 1s..60s"),
            Ok(Backoff::Exponential {
                min: ms(1_000),
                max: ms(60_000)
            })
        );
        assert_eq!(
            parse_backoff("exponential 250ms .. 1m"),
            Ok(Backoff::Exponential {
                min: ms(250),
                max: ms(60_000)
            })
        );
        assert_eq!(
            parse_backoff("exponential 2s..2s"),
            Ok(Backoff::Exponential {
                min: ms(2_000),
                max: ms(2_000)
            })
        );
    }

    #[test]
    fn malformed_backoffs_say_what_is_wrong() {
        let cases = [
            ("linear 5s", "unknown backoff"),
            ("", "unknown backoff"),
            ("fixed", "needs one delay"),
            ("fixed 1s..2s", "needs one delay"),
            ("exponential 1s", "needs a range"),
            (
                "exponential 60s..1s",
                "minimum `60s` is longer than its maximum `1s`",
            ),
            ("exponential 0s..1s", "must start above zero"),
            ("exponential 1 s..60s", "is not a duration"),
            ("fixed 5 parsecs", "is not a duration"),
        ];
        for (text, expected) in cases {
            let error = parse_backoff(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn all_arguments_parse() {
        let args = parse(parse_quote!(
            name = "scan",
            retries = 3,
            backoff = "exponential 1s..60s",
            timeout = "30s",
        ))
        .unwrap();
        assert_eq!(args.name.unwrap().value.value(), "scan");
        assert_eq!(args.retries.unwrap().value, 3);
        assert_eq!(
            args.backoff.unwrap().value,
            Backoff::Exponential {
                min: ms(1_000),
                max: ms(60_000)
            }
        );
        assert_eq!(args.timeout.unwrap().value, ms(30_000));
    }

    #[test]
    fn no_arguments_is_fine() {
        let args = parse(parse_quote!()).unwrap();
        assert!(args.name.is_none() && args.retries.is_none());
        assert!(args.backoff.is_none() && args.timeout.is_none());
    }

    #[test]
    fn a_duplicate_key_is_an_error() {
        assert_eq!(
            messages(parse_quote!(retries = 3, timeout = "1s", retries = 4)),
            ["duplicate argument `retries`; give each argument once"]
        );
        assert_eq!(
            messages(parse_quote!(name = "a", name = "b")),
            ["duplicate argument `name`; give each argument once"]
        );
    }

    #[test]
    fn an_unknown_key_lists_the_valid_ones() {
        assert_eq!(
            messages(parse_quote!(retry = 3)),
            [format!("unknown argument `retry`; expected {KEYS}")]
        );
        assert_eq!(
            messages(parse_quote!(type = 3)),
            [format!("unknown argument `type`; expected {KEYS}")]
        );
        assert!(KEYS.contains("`rate_limit`") && KEYS.ends_with("or `result`"));
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let errors = messages(parse_quote!(
            retry = 3,
            timeout = "30 parsecs",
            name = "",
            retries = "3",
            backoff = "exponential 9s..1s",
            timeout = "0s",
            retries = 99999999999,
        ));
        assert_eq!(errors.len(), 7, "{errors:#?}");
        assert!(errors[0].starts_with("unknown argument `retry`"));
        assert!(errors[1].contains("`30 parsecs` is not a duration"));
        assert_eq!(errors[2], "`name` cannot be empty");
        assert!(errors[3].starts_with("`retries` takes a whole number"));
        assert!(errors[4].contains("minimum `9s` is longer than its maximum `1s`"));
        assert!(errors[5].starts_with("`timeout` must be longer than zero"));
        assert_eq!(errors[6], "`retries` must be from 0 to 4294967295");
    }

    #[test]
    fn values_of_the_wrong_kind_name_the_expected_one() {
        assert!(messages(parse_quote!(timeout = 30))[0].starts_with("`timeout` takes a string"));
        assert!(messages(parse_quote!(backoff = fixed))[0].starts_with("`backoff` takes a string"));
        assert!(messages(parse_quote!(name = scan))[0].starts_with("`name` takes a string"));
        assert_eq!(
            messages(parse_quote!(retries = -1)),
            ["`retries` must be from 0 to 4294967295"]
        );
        assert_eq!(messages(parse_quote!(retries 3)), ["expected `=`"]);
    }

    #[test]
    fn arguments_need_commas_between_them() {
        assert_eq!(
            messages(parse_quote!(retries = 3 timeout = "1s")),
            ["expected `,`"]
        );
        assert_eq!(
            messages(parse_quote!("retries")),
            [
                "expected one of: `name`, `retries`, `backoff`, `jitter`, `timeout`, `every`, \
                 `cron`, `tz`, `concurrency`, `rate_limit`, `debounce`, `result`"
            ]
        );
    }
    #[test]
    fn policy_keys_parse() {
        let args = parse(parse_quote!(
            jitter = "20%",
            cron = "*/5 * * * *",
            tz = "Europe/Paris",
            concurrency(track_id) = 1,
            rate_limit = "10/1m",
            debounce(r#type) = "5s",
            result = "1d",
        ))
        .unwrap();
        assert_eq!(args.jitter.unwrap().value, 20);
        assert_eq!(args.cron.unwrap().value.value(), "*/5 * * * *");
        assert_eq!(args.tz.unwrap().value.value(), "Europe/Paris");
        let concurrency = args.concurrency.unwrap().value;
        assert_eq!(concurrency.param.unwrap(), "track_id");
        assert_eq!(concurrency.value, 1);
        let rate_limit = args.rate_limit.unwrap().value;
        assert!(rate_limit.param.is_none());
        assert_eq!(
            rate_limit.value,
            Rate {
                count: 10,
                window: ms(60_000)
            }
        );
        let debounce = args.debounce.unwrap().value;
        assert_eq!(debounce.param.unwrap(), "r#type");
        assert_eq!(debounce.value, ms(5_000));
        assert_eq!(args.result.unwrap().value, ms(86_400_000));

        let args = parse(parse_quote!(every = "30s", concurrency = 4, result)).unwrap();
        assert_eq!(args.every.unwrap().value, ms(30_000));
        assert_eq!(args.concurrency.unwrap().value.value, 4);
        assert_eq!(args.result.unwrap().value, DEFAULT_RESULT_TTL);
        // A bare `result` last, or before another key.
        assert!(
            parse(parse_quote!(result, retries = 1))
                .unwrap()
                .result
                .is_some()
        );
    }

    #[test]
    fn jitter_is_a_percentage_up_to_100() {
        assert_eq!(parse_percent("0%"), Ok(0));
        assert_eq!(parse_percent("100%"), Ok(100));
        for text in ["20", "20 %", "%", "-5%", "2.5%", "twenty%"] {
            let error = parse_percent(text).unwrap_err();
            assert!(error.contains("is not a percentage"), "{text:?}: {error}");
        }
        for text in ["101%", "255%", "99999999999%"] {
            let error = parse_percent(text).unwrap_err();
            assert!(error.contains("from 0% to 100%"), "{text:?}: {error}");
        }
    }

    #[test]
    fn rates_are_a_count_per_window() {
        assert_eq!(
            parse_rate("10/1m"),
            Ok(Rate {
                count: 10,
                window: ms(60_000)
            })
        );
        assert_eq!(
            parse_rate("1 / 1.5s"),
            Ok(Rate {
                count: 1,
                window: ms(1_500)
            })
        );
        let cases = [
            ("10", "is not a rate"),
            ("10 per 1m", "is not a rate"),
            ("ten/1m", "is not a count of starts"),
            ("-1/1m", "is not a count of starts"),
            ("+1/1m", "is not a count of starts"),
            ("0/1m", "would never run the task"),
            ("10/0s", "window must be longer than zero"),
            ("10/minute", "is not a duration"),
        ];
        for (text, expected) in cases {
            let error = parse_rate(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn cron_expressions_are_checked() {
        // Everything here the worker's parser (croner) takes too.
        for text in [
            "*/5 * * * *",
            "0 9 * * MON-FRI",
            "0 0 1 jan,jul *",
            "5,10-20/5 0-23/2 1-31 1-12 0-7",
            "0 12 * * 7",
            "0 12 * * FRI-SUN",
            "  0   9 * *   sun ",
            "0 0 L * *",
            "0 0 LW * *",
            "0 0 15W * *",
            "0 0 ? * FRI#2",
            "0 0 * * 5L",
            "0 0 * * L",
            "0 0 1 * +MON",
            "0 0 * * MON-FRI/2",
            "1,,2 * * * *",
            "@daily",
            "@Hourly",
            "* * * * * *",
            "*/10 0 9 * * MON-FRI",
        ] {
            assert_eq!(check_cron(text), Ok(()), "{text:?}");
        }
        let cases = [
            ("* * * *", "has 4 fields"),
            ("", "has 0 fields"),
            ("@reboot", "unknown cron shortcut `@reboot`"),
            ("* * * * * * *", "has 7 fields"),
            ("60 * * * * *", "the second field"),
            ("60 * * * *", "the minute field"),
            ("* 24 * * *", "the hour field"),
            ("* * 0 * *", "the day of month field"),
            ("* * * 13 *", "the month field"),
            ("* * * * 8", "the day of week field"),
            ("* * * * MONDAY", "names `SUN` to `SAT`"),
            // Croner would read a name in another field as a number: `MON` as January.
            ("0 9 * MON *", "the month field"),
            ("*/0 * * * *", "step `/0`"),
            ("*/x * * * *", "step `/x`"),
            ("15/10 * * * *", "such as `*/10` or `15-59/10`"),
            ("*,5 * * * *", "`*` already matches every minute"),
            ("? * * * *", "the minute field"),
            ("* * 5L * *", "the day of month field"),
            ("* * * * 5W", "the day of week field"),
            ("* * * * FRI#6", "from 1 to 5"),
            ("30-10 * * * *", "runs backwards"),
            ("+5 * * * *", "the minute field"),
        ];
        for (text, expected) in cases {
            let error = check_cron(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn per_argument_keys_name_one_argument() {
        let usage = "`concurrency(..)` names one argument of the task to count by, such as \
                     `concurrency(track_id)`; write `concurrency = ..` to count the task as a \
                     whole";
        assert_eq!(messages(parse_quote!(concurrency() = 1)), [usage]);
        assert_eq!(messages(parse_quote!(concurrency(a, b) = 1)), [usage]);
        assert_eq!(messages(parse_quote!(concurrency("a") = 1)), [usage]);
        assert_eq!(messages(parse_quote!(concurrency(self) = 1)), [usage]);
        assert!(
            messages(parse_quote!(rate_limit(a.b) = "1/1s"))[0].contains("`rate_limit(user_id)`")
        );
        assert!(messages(parse_quote!(debounce[a] = "1s"))[0].contains("expected `=`"));
    }

    #[test]
    fn limits_and_durations_must_be_above_zero() {
        let errors = messages(parse_quote!(
            concurrency = 0,
            rate_limit(user) = "0/1m",
            debounce = "0s",
            every = "0ms",
            result = "0d",
            concurrency = -1,
        ));
        assert_eq!(errors.len(), 6, "{errors:#?}");
        assert!(errors[0].starts_with("`concurrency` must be at least 1"));
        assert!(errors[1].contains("would never run the task"));
        assert!(errors[2].starts_with("`debounce` must be longer than zero"));
        assert!(errors[3].starts_with("`every` must be longer than zero"));
        assert!(errors[4].starts_with("`result` must be longer than zero"));
        assert_eq!(errors[5], "`concurrency` must be from 1 to 4294967295");
    }

    #[test]
    fn recurrence_keys_go_together_only_one_way() {
        assert_eq!(
            messages(parse_quote!(every = "1m", cron = "* * * * *")),
            [
                "a task recurs either `every` period or on a `cron` schedule, not both; remove \
                 one of them"
            ]
        );
        assert_eq!(
            messages(parse_quote!(tz = "UTC")),
            [
                "`tz` is the time zone of a `cron` schedule, and this task has none; add \
                 `cron = \"..\"` or remove `tz`"
            ]
        );
        assert_eq!(messages(parse_quote!(every = "1m", tz = "UTC")).len(), 1);
        assert!(messages(parse_quote!(cron = "* * * * *", tz = ""))[0].contains("cannot be empty"));
        // A key given in both forms is one key given twice: a task has one limit of each kind.
        assert_eq!(
            messages(parse_quote!(concurrency = 4, concurrency(track_id) = 1)),
            ["duplicate argument `concurrency`; give each argument once"]
        );
        assert_eq!(
            messages(parse_quote!(result, result = "1h")),
            ["duplicate argument `result`; give each argument once"]
        );
    }
}
