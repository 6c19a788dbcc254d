//! Parsing the attribute's arguments: `#[docket::task(name = "..", retries = N, backoff = "..",
//! jitter = "..", timeout = "..", every = "..", cron = "..", tz = "..", concurrency = N,
//! rate_limit = "..", debounce = "..", cooldown = "..", result = "..")]`.
//!
//! Durations, rates and cron expressions are checked here, at compile time (their grammars are in
//! `values` and `cron`), so a typo in `timeout = "30 parsecs"` fails the build with an error on
//! the string instead of surprising a worker in production.

use std::time::Duration;

use proc_macro2::TokenTree;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitInt, LitStr, Token, token};

use crate::cron::{CRON_FORMAT, check_cron};
use crate::errors::Errors;
use crate::values::{
    BACKOFF_FORMAT, Backoff, RATE_FORMAT, Rate, Retries, parse_backoff, parse_duration,
    parse_percent, parse_rate,
};

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
    syn::custom_keyword!(cooldown);
    syn::custom_keyword!(result);
}

const KEYS: &str = "`name`, `retries`, `backoff`, `jitter`, `timeout`, `every`, `cron`, `tz`, \
                    `concurrency`, `rate_limit`, `debounce`, `cooldown` or `result`";

/// The longest `cooldown`: 30 days, as `docket::policy::Cooldown::MAX_WINDOW` (the runtime's
/// check of the same bound; the trybuild cases `cooldown-too-long` and the pass case at `"30d"`
/// hold the two together).
pub(crate) const MAX_COOLDOWN: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long `result` without a value keeps results.
pub(crate) const DEFAULT_RESULT_TTL: Duration = Duration::from_secs(60 * 60);

/// The arguments of one `#[docket::task(...)]`, each absent unless given.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) name: Option<Arg<kw::name, LitStr>>,
    pub(crate) retries: Option<Arg<kw::retries, Retries>>,
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
    pub(crate) cooldown: Option<Arg<kw::cooldown, PerArgument<Duration>>>,
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
    /// One `key = value`: the key picks its slot and the grammar of its value.
    fn parse_one(&mut self, input: ParseStream<'_>) -> syn::Result<()> {
        let lookahead = input.lookahead1();
        if lookahead.peek(kw::name) {
            set_once(&mut self.name, input, |input| {
                let value = string(input, "`name` takes a string, such as `name = \"scan\"`")?;
                if value.value().is_empty() {
                    return Err(syn::Error::new_spanned(value, "`name` cannot be empty"));
                }
                Ok(value)
            })
        } else if lookahead.peek(kw::retries) {
            set_once(&mut self.retries, input, |input| {
                let expected =
                    "`retries` takes a whole number or \"forever\", such as `retries = 3`";
                if input.peek2(LitStr) {
                    let literal = string(input, expected)?;
                    return match literal.value().as_str() {
                        "forever" => Ok(Retries::Forever),
                        _ => Err(syn::Error::new_spanned(&literal, expected)),
                    };
                }
                let literal = integer(input, expected)?;
                literal.base10_parse().map(Retries::Times).map_err(|_| {
                    let message = format!("`retries` must be from 0 to {}", u32::MAX);
                    syn::Error::new_spanned(&literal, message)
                })
            })
        } else if lookahead.peek(kw::backoff) {
            let expected = format!("`backoff` takes a string: {BACKOFF_FORMAT}");
            set_once(&mut self.backoff, input, |input| {
                checked(input, &expected, parse_backoff)
            })
        } else if lookahead.peek(kw::jitter) {
            let expected = "`jitter` takes a percentage as a string, such as `jitter = \"20%\"`";
            set_once(&mut self.jitter, input, |input| {
                checked(input, expected, parse_percent)
            })
        } else if lookahead.peek(kw::timeout) {
            let (example, instead) = ("`timeout = \"30s\"`", "leave it out for no timeout");
            set_once(&mut self.timeout, input, |input| {
                nonzero_duration(input, "timeout", example, instead)
            })
        } else if lookahead.peek(kw::every) {
            let (example, instead) = ("`every = \"5m\"`", "a task cannot run continuously");
            set_once(&mut self.every, input, |input| {
                nonzero_duration(input, "every", example, instead)
            })
        } else if lookahead.peek(kw::cron) {
            set_once(&mut self.cron, input, |input| {
                let value = string(input, &format!("`cron` takes a string: {CRON_FORMAT}"))?;
                check_cron(&value.value())
                    .map_err(|message| syn::Error::new_spanned(&value, message))?;
                Ok(value)
            })
        } else if lookahead.peek(kw::tz) {
            set_once(&mut self.tz, input, |input| {
                let value = string(
                    input,
                    "`tz` takes an IANA time zone name as a string, such as `tz = \"Europe/Paris\"`",
                )?;
                if value.value().trim().is_empty() {
                    return Err(syn::Error::new_spanned(
                        value,
                        "`tz` cannot be empty; name an IANA time zone such as `\"Europe/Paris\"`, \
                         or leave `tz` out for UTC",
                    ));
                }
                Ok(value)
            })
        } else if lookahead.peek(kw::concurrency) {
            set_once(&mut self.concurrency, input, |input| {
                per_argument(input, "concurrency", "track_id", |input| {
                    let expected = "`concurrency` takes a whole number, such as `concurrency = 4`";
                    let literal = integer(input, expected)?;
                    nonzero_u32(&literal, "concurrency", "how many may run at once")
                })
            })
        } else if lookahead.peek(kw::rate_limit) {
            let expected = format!("`rate_limit` takes a string: {RATE_FORMAT}");
            set_once(&mut self.rate_limit, input, |input| {
                per_argument(input, "rate_limit", "user_id", |input| {
                    checked(input, &expected, parse_rate)
                })
            })
        } else if lookahead.peek(kw::debounce) {
            let (example, instead) = ("`debounce = \"5s\"`", "leave it out to run every schedule");
            set_once(&mut self.debounce, input, |input| {
                per_argument(input, "debounce", "customer_id", |input| {
                    nonzero_duration(input, "debounce", example, instead)
                })
            })
        } else if lookahead.peek(kw::cooldown) {
            set_once(&mut self.cooldown, input, |input| {
                per_argument(input, "cooldown", "customer_id", cooldown_window)
            })
        } else if lookahead.peek(kw::result) {
            let example = "`result = \"1d\"`, or `result` alone for an hour";
            let instead = "leave `result` out to keep no results";
            set_once(&mut self.result, input, |input| {
                if input.peek(Token![=]) {
                    nonzero_duration(input, "result", example, instead)
                } else {
                    Ok(DEFAULT_RESULT_TTL)
                }
            })
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
        if let Some(retries) = &self.retries
            && retries.value == Retries::Forever
        {
            let zero = match &self.backoff {
                None => true,
                Some(backoff) => backoff.value == Backoff::Fixed(Duration::ZERO),
            };
            if zero {
                errors.push_spanned(
                    retries.key,
                    "`retries = \"forever\"` needs a `backoff` longer than zero, or it retries in \
                     a tight loop; add one, such as `backoff = \"exponential 1s..5m\"`",
                );
            }
        }
        if let (Some(_), Some(cooldown)) = (&self.debounce, &self.cooldown) {
            errors.push_spanned(
                cooldown.key,
                "`cooldown` runs the first schedule of a burst and `debounce` the last, so they \
                 cannot go together; remove one of them",
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

/// Parses a key and its value with `value`, and stores them, or reports the key given twice. The
/// one place duplicates are handled.
fn set_once<K: Parse + ToTokens, V>(
    slot: &mut Option<Arg<K, V>>,
    input: ParseStream<'_>,
    value: impl FnOnce(ParseStream<'_>) -> syn::Result<V>,
) -> syn::Result<()> {
    let key = input.parse::<K>()?;
    let value = value(input)?;
    if slot.is_some() {
        let name = key.to_token_stream();
        return Err(syn::Error::new_spanned(
            &key,
            format!("duplicate argument `{name}`; give each argument once"),
        ));
    }
    *slot = Some(Arg { key, value });
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

/// `= "..."`, read by `parse`, whose error lands on the string.
fn checked<T>(
    input: ParseStream<'_>,
    expected: &str,
    parse: fn(&str) -> Result<T, String>,
) -> syn::Result<T> {
    let literal = string(input, expected)?;
    parse(&literal.value()).map_err(|message| syn::Error::new_spanned(&literal, message))
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

/// `= "30s"` for `cooldown`: longer than zero and at most [`MAX_COOLDOWN`].
fn cooldown_window(input: ParseStream<'_>) -> syn::Result<Duration> {
    let literal = string(
        input,
        "`cooldown` takes a string, such as `cooldown = \"30s\"`",
    )?;
    let value = parse_duration(&literal.value())
        .map_err(|message| syn::Error::new_spanned(&literal, message))?;
    if value.is_zero() {
        return Err(syn::Error::new_spanned(
            &literal,
            "`cooldown` must be longer than zero; leave it out to accept every schedule",
        ));
    }
    if value > MAX_COOLDOWN {
        return Err(syn::Error::new_spanned(
            &literal,
            "`cooldown` must be at most 30 days (`\"30d\"`): a longer window is more likely a \
             slip of the unit than a wish",
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

/// The optional `(argument)` after a key that can count per argument value, then the value.
fn per_argument<V>(
    input: ParseStream<'_>,
    key: &str,
    example: &str,
    value: impl FnOnce(ParseStream<'_>) -> syn::Result<V>,
) -> syn::Result<PerArgument<V>> {
    let param = if input.peek(token::Paren) {
        let content;
        let parens = syn::parenthesized!(content in input);
        // One identifier and nothing else; any other content is wrong as a whole.
        match content.parse::<Ident>() {
            Ok(param) if content.is_empty() => Some(param),
            _ => {
                let usage = format!(
                    "`{key}(..)` names one argument of the task to count by, such as \
                     `{key}({example})`; write `{key} = ..` to count the task as a whole"
                );
                return Err(syn::Error::new(parens.span.join(), usage));
            }
        }
    } else {
        None
    };
    Ok(PerArgument {
        param,
        value: value(input)?,
    })
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

#[cfg(test)]
mod tests;
