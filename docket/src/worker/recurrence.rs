//! When recurring tasks (`every = "30s"`, `cron = "*/5 * * * *"`) run next.
//!
//! A recurring task is one chain of runs under one key, the task's name: a worker starting adds
//! the first run unless the key is taken (so a fleet starting together adds it once), and each
//! run, when it ends, puts its successor in its place.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use croner::Cron;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::error::{Error, Result};
use crate::policy::Recurrence;

/// A checked [`Recurrence`], ready to compute due times.
#[derive(Debug, Clone)]
pub(crate) enum Recurring {
    Every(Duration),
    Cron(Box<Cron>, TimeZone),
}

impl Recurring {
    /// Check a task's recurrence: a zero period, a bad expression or an unknown zone is an error
    /// naming the task.
    pub(crate) fn parse(task: &str, recurrence: Recurrence) -> Result<Recurring> {
        match recurrence {
            Recurrence::Every(period) if period.is_zero() => Err(Error::Config(format!(
                "task `{task}` recurs every 0s; give it a period above zero"
            ))),
            Recurrence::Every(period) => Ok(Recurring::Every(period)),
            Recurrence::Cron { expression, tz } => {
                let cron = Cron::from_str(expression).map_err(|error| {
                    Error::Config(format!(
                        "task `{task}` has an invalid cron expression `{expression}`: {error}"
                    ))
                })?;
                let zone = TimeZone::get(tz).map_err(|_| {
                    Error::Config(format!(
                        "task `{task}` names an unknown time zone `{tz}`; use an IANA name such as `UTC` or `Europe/Paris` (read from the system's time zone database)"
                    ))
                })?;
                Ok(Recurring::Cron(Box::new(cron), zone))
            }
        }
    }

    /// The first run's due time, for a worker starting at `now`: at once for a period, the
    /// next matching time for a cron expression.
    pub(crate) fn first_due(&self, now: SystemTime) -> SystemTime {
        match self {
            Recurring::Every(_) => now,
            Recurring::Cron(..) => self.after(now),
        }
    }

    /// The due time of the run after one that was due at `previous`, at `now`: one period
    /// later, or the next matching time. Runs missed while no worker ran are skipped, not made
    /// up: the chain resumes with the next one.
    pub(crate) fn next_due(&self, previous: SystemTime, now: SystemTime) -> SystemTime {
        match self {
            Recurring::Every(period) => {
                let next = crate::time::saturating_due(previous, *period);
                if crate::time::saturating_due(next, *period) <= now {
                    now
                } else {
                    next
                }
            }
            Recurring::Cron(..) => self.after(previous.max(now)),
        }
    }

    /// The first matching time strictly after `time` (a year ahead if none is found).
    fn after(&self, time: SystemTime) -> SystemTime {
        let Recurring::Cron(cron, zone) = self else {
            return time;
        };
        let fallback = time + Duration::from_secs(365 * 24 * 3600);
        let Ok(start) = Timestamp::try_from(time) else {
            return fallback;
        };
        cron.find_next_occurrence(&start.to_zoned(zone.clone()), false)
            .map(|next| SystemTime::from(next.timestamp()))
            .unwrap_or(fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> SystemTime {
        SystemTime::from(rfc3339.parse::<Timestamp>().unwrap())
    }

    #[test]
    fn cron_times_follow_the_expression_in_its_zone() {
        let every_five = Recurring::parse(
            "t",
            Recurrence::Cron {
                expression: "*/5 * * * *",
                tz: "UTC",
            },
        )
        .unwrap();
        let now = at("2026-11-28T10:02:30Z");
        assert_eq!(every_five.first_due(now), at("2026-11-28T10:05:00Z"));
        assert_eq!(
            every_five.next_due(at("2026-11-28T10:05:00Z"), at("2026-11-28T10:05:00.2Z")),
            at("2026-11-28T10:10:00Z")
        );

        let paris_nine = Recurring::parse(
            "t",
            Recurrence::Cron {
                expression: "0 9 * * *",
                tz: "Europe/Paris",
            },
        )
        .unwrap();
        assert_eq!(paris_nine.first_due(now), at("2026-11-29T08:00:00Z"));
    }

    #[test]
    fn periods_count_from_the_previous_due_time_and_skip_missed_runs() {
        let every = Recurring::Every(Duration::from_secs(30));
        let due = at("2026-11-28T10:00:00Z");
        assert_eq!(
            every.next_due(due, at("2026-11-28T10:00:01Z")),
            at("2026-11-28T10:00:30Z")
        );
        // Down for five minutes: one run now, not ten to catch up.
        let now = at("2026-11-28T10:05:00Z");
        assert_eq!(every.next_due(due, now), now);
    }

    #[test]
    fn bad_recurrences_are_errors_naming_the_task() {
        let bad = |recurrence| {
            Recurring::parse("sweep", recurrence)
                .unwrap_err()
                .to_string()
        };
        assert!(bad(Recurrence::Every(Duration::ZERO)).contains("`sweep`"));
        let expression = bad(Recurrence::Cron {
            expression: "every tuesday",
            tz: "UTC",
        });
        assert!(
            expression.contains("invalid cron expression"),
            "{expression}"
        );
        let zone = bad(Recurrence::Cron {
            expression: "* * * * *",
            tz: "Mars/Olympus",
        });
        assert!(zone.contains("unknown time zone"), "{zone}");
    }

    /// `#[docket::task(cron = "..")]` checks expressions at compile time with its own copy of
    /// croner's grammar; its tests read the same table, so a task that compiles is one a worker
    /// can schedule. `ok stricter` marks what croner takes and the macro refuses on purpose.
    #[test]
    fn cron_expressions_follow_the_shared_conformance_table() {
        let table = include_str!("../../../conformance/cron.txt");
        let mut count = 0;
        for line in table.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (expression, columns) = line
                .strip_prefix('"')
                .and_then(|rest| rest.split_once('"'))
                .unwrap_or_else(|| panic!("a case starts with its input in double quotes: {line}"));
            let parsed = Recurring::parse(
                "t",
                Recurrence::Cron {
                    expression,
                    tz: "UTC",
                },
            );
            match columns.split_whitespace().collect::<Vec<_>>()[..] {
                ["ok"] | ["ok", "stricter"] => {
                    assert!(parsed.is_ok(), "{expression:?}: {:?}", parsed.err());
                }
                ["error"] => assert!(parsed.is_err(), "{expression:?} parsed"),
                _ => panic!("{expression:?}: expected `ok`, `error` or `ok stricter`"),
            }
            count += 1;
        }
        assert!(count >= 40, "only {count} cases read");
    }
}
