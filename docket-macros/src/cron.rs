//! Checking cron expressions at compile time, as the worker's parser (croner) reads them.
//!
//! This mirrors croner's grammar rather than calling it, since the macro crate stays free of
//! runtime dependencies. `conformance/cron.txt` at the workspace root holds the cases both this
//! checker and the worker's parser are tested against, so the two cannot drift apart unseen.

pub(crate) const CRON_FORMAT: &str = "a cron expression has five fields, minute, hour, day of \
                                      month, month and day of week, such as `\"*/5 * * * *\"` or \
                                      `\"0 9 * * MON-FRI\"`, or six with seconds first, such as \
                                      `\"*/10 * * * * *\"`";

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

/// Croner reads a step as a `u16`.
const MAX_STEP: u32 = 65_535;

const CRON_SHORTCUTS: [&str; 6] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];

/// Checks a cron expression as the worker's parser (croner) reads it, so its mistakes fail the
/// build rather than the worker's start: five fields (or six, seconds first), each a list of `*`,
/// numbers, names and ranges, with optional `/step`s; `L`, `W`, `#` and `?` where croner takes
/// them; or a shortcut such as `@daily`.
///
/// Stricter than croner on purpose where croner quietly reads a likely mistake as something else
/// (each such case is marked `stricter` in `conformance/cron.txt`): a seventh field, which croner
/// reads as years; a month or day name outside its own field or as a step, which croner reads as
/// a number (`MON` in the month field is January); anything after the `L` of `5L` or the `W` of
/// `15W`, which croner ignores (`5LL`, `15WW`, `5#L`); and `#` after a step (`*/2#1`).
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
            match number(step) {
                Some(1..=MAX_STEP) => {}
                Some(1..) => {
                    return Err(format!(
                        "`{item}` has the step `/{step}` in the {name} field, more than the \
                         worker's cron parser reads ({MAX_STEP}); any step above {} already \
                         matches only the first {name} of its range",
                        self.max
                    ));
                }
                _ => {
                    return Err(format!(
                        "`{item}` has the step `/{step}` in the {name} field; a step is a whole \
                         number from 1 up, such as `*/5`"
                    ));
                }
            }
            return match range.split_once('-') {
                _ if range == "*" => Ok(()),
                Some((start, end)) => self.range(item, start, end),
                None if range.is_empty() => Err(format!(
                    "`{item}`: a step goes over `*` or a range, such as `*/{step}`"
                )),
                None => Err(format!(
                    "`{item}`: a step goes over `*` or a range, such as `*/{step}` or \
                     `{range}-{}/{step}`",
                    self.max
                )),
            };
        }
        if extras.contains('#')
            && let Some((days, nth)) = item.split_once('#')
        {
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
mod tests;
