//! Parsing the attribute's arguments: `#[docket::task(name = "..", retries = N, backoff = "..",
//! timeout = "..")]`.
//!
//! Durations are checked here, at compile time, so a typo in `timeout = "30 parsecs"` fails the
//! build with an error on the string instead of surprising a worker in production.

use std::time::Duration;

use proc_macro2::TokenTree;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitInt, LitStr, Token};

use crate::errors::Errors;

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(retries);
    syn::custom_keyword!(backoff);
    syn::custom_keyword!(timeout);
}

const KEYS: &str = "`name`, `retries`, `backoff` or `timeout`";
const DURATION_FORMAT: &str = "write a number and a unit, `ms`, `s`, `m` or `h`, with no space \
                               between, such as `250ms`, `30s` or `1.5h`";
const BACKOFF_FORMAT: &str = "write `\"fixed <delay>\"` or `\"exponential <min>..<max>\"`, such \
                              as `\"fixed 5s\"` or `\"exponential 1s..60s\"`";

/// The arguments of one `#[docket::task(...)]`, each absent unless given.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) name: Option<Arg<kw::name, LitStr>>,
    pub(crate) retries: Option<Arg<kw::retries, u32>>,
    pub(crate) backoff: Option<Arg<kw::backoff, Backoff>>,
    pub(crate) timeout: Option<Arg<kw::timeout, Duration>>,
}

/// One `key = value` argument. The key's token stays with the value so errors, and the generated
/// code (for an IDE's hover), can point at what the user wrote.
pub(crate) struct Arg<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
}

/// A task's `backoff`, checked and ready to generate `docket::Backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backoff {
    Fixed(Duration),
    Exponential { min: Duration, max: Duration },
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
        } else if lookahead.peek(kw::timeout) {
            let key = input.parse::<kw::timeout>()?;
            let literal = string(
                input,
                "`timeout` takes a string, such as `timeout = \"30s\"`",
            )?;
            let value = parse_duration(&literal.value())
                .map_err(|message| syn::Error::new_spanned(&literal, message))?;
            if value.is_zero() {
                return Err(syn::Error::new_spanned(
                    &literal,
                    "`timeout` must be longer than zero; leave it out for no timeout",
                ));
            }
            set_once(&mut self.timeout, Arg { key, value })
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

/// Parses a duration such as `250ms`, `30s`, `1.5m` or `2h`, exact to the millisecond.
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
    fn durations_take_whole_and_decimal_numbers_in_four_units() {
        assert_eq!(parse_duration("250ms"), Ok(ms(250)));
        assert_eq!(parse_duration("30s"), Ok(ms(30_000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1_500)));
        assert_eq!(parse_duration("1.1s"), Ok(ms(1_100)));
        assert_eq!(parse_duration("5m"), Ok(ms(300_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("0.25h"), Ok(ms(900_000)));
        assert_eq!(parse_duration("0s"), Ok(ms(0)));
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
            ["unknown argument `retry`; expected `name`, `retries`, `backoff` or `timeout`"]
        );
        assert_eq!(
            messages(parse_quote!(type = 3)),
            ["unknown argument `type`; expected `name`, `retries`, `backoff` or `timeout`"]
        );
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
            ["expected one of: `name`, `retries`, `backoff`, `timeout`"]
        );
    }
}
