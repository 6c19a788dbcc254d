use super::*;

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
}

#[test]
fn zeros_that_do_not_change_the_value_are_fine() {
    assert_eq!(
        parse_duration("1.0000000000000000000000000000000000000000s"),
        Ok(ms(1_000))
    );
    assert_eq!(
        parse_duration("0000000000000000000000000000000000000030s"),
        Ok(ms(30_000))
    );
    assert!(
        parse_duration("0.00000000001s")
            .unwrap_err()
            .contains("whole number of milliseconds")
    );
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
