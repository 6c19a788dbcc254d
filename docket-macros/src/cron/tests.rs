use super::*;

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
        (
            "*/65536 * * * *",
            "more than the worker's cron parser reads (65535)",
        ),
        ("/10 * * * *", "such as `*/10`"),
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

/// The worker parses with croner; its tests read the same table, so an expression that compiles
/// is one the worker can schedule. `ok stricter` marks what croner takes and the macro refuses.
#[test]
fn cron_expressions_follow_the_shared_conformance_table() {
    let table = include_str!("../../../conformance/cron.txt");
    let mut count = 0;
    for (input, columns) in crate::conformance::cases(table) {
        let checked = check_cron(input);
        match columns[..] {
            ["ok"] => assert_eq!(checked, Ok(()), "{input:?}"),
            ["error"] | ["ok", "stricter"] => assert!(checked.is_err(), "{input:?} passed"),
            _ => panic!("{input:?}: expected `ok`, `error` or `ok stricter`"),
        }
        count += 1;
    }
    assert!(count >= 40, "only {count} cases read");
}
