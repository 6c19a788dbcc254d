use std::time::Duration;

use syn::parse_quote;

use super::*;

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
fn retries_take_forever_with_a_backoff_and_no_other_word() {
    let args = parse(parse_quote!(retries = "forever", backoff = "fixed 1s")).unwrap();
    assert_eq!(args.retries.unwrap().value, Retries::Forever);
    assert_eq!(
        messages(parse_quote!(retries = "always")),
        ["`retries` takes a whole number or \"forever\", such as `retries = 3`"]
    );
    let tight = messages(parse_quote!(retries = "forever", backoff = "fixed 0s"));
    assert!(
        tight[0].contains("needs a `backoff` longer than zero"),
        "{tight:?}"
    );
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
    assert_eq!(args.retries.unwrap().value, Retries::Times(3));
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
             `cron`, `tz`, `concurrency`, `rate_limit`, `debounce`, `cooldown`, `result`"
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
fn a_cooldown_is_a_window_for_the_task_or_per_argument() {
    let args = parse(parse_quote!(cooldown = "30s")).unwrap();
    let cooldown = args.cooldown.unwrap().value;
    assert!(cooldown.param.is_none());
    assert_eq!(cooldown.value, ms(30_000));
    let args = parse(parse_quote!(cooldown(customer_id) = "30d")).unwrap();
    let cooldown = args.cooldown.unwrap().value;
    assert_eq!(cooldown.param.unwrap(), "customer_id");
    assert_eq!(cooldown.value, MAX_COOLDOWN);
}

#[test]
fn a_cooldown_window_must_be_above_zero_and_at_most_thirty_days() {
    let errors = messages(parse_quote!(cooldown = "0s"));
    assert_eq!(
        errors,
        ["`cooldown` must be longer than zero; leave it out to accept every schedule"]
    );
    let errors = messages(parse_quote!(cooldown(user) = "31d"));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].starts_with("`cooldown` must be at most 30 days"));
    assert!(messages(parse_quote!(cooldown = 30))[0].contains("such as `cooldown = \"30s\"`"));
    // One millisecond over the bound is over it.
    assert!(!messages(parse_quote!(cooldown = "2592000001ms")).is_empty());
}

#[test]
fn a_cooldown_and_a_debounce_cannot_go_together() {
    let errors = messages(parse_quote!(debounce = "1s", cooldown = "1s"));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].starts_with("`cooldown` runs the first schedule of a burst"));
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
    assert!(messages(parse_quote!(rate_limit(a.b) = "1/1s"))[0].contains("`rate_limit(user_id)`"));
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
