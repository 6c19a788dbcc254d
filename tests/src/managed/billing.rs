//! Billed commands, counted as Upstash bills them (see [`Bill`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::rules::FREE;

/// What the proxy counted since the last reset.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Client requests forwarded to the server, by `INFO commandstats` name.
    pub(crate) sent: BTreeMap<String, u64>,
    /// Of those, the ones the server has taken in, so counted: answered, or (blocking
    /// commands) sent.
    pub(crate) answered: HashMap<String, u64>,
    /// Client requests the proxy refused: never forwarded, not billed.
    pub(crate) refused: BTreeMap<String, u64>,
    /// The proxy's own queries and the harness's commands: not billed.
    pub(crate) side: HashMap<String, u64>,
    /// The server's counts at the last reset.
    pub(crate) base: HashMap<String, u64>,
}

impl Tally {
    /// Start again from the server's counts `now`, read by one `INFO` of the proxy's own.
    pub(crate) fn reset(&mut self, now: HashMap<String, u64>) {
        *self = Tally {
            base: now,
            // The reading `INFO` counts from the next reading on.
            side: HashMap::from([("info".to_owned(), 1)]),
            ..Tally::default()
        };
    }

    /// The bill, given the server's counts `now`.
    pub(crate) fn bill(&self, now: &HashMap<String, u64>) -> Bill {
        let mut bill = Bill::default();
        for (name, &count) in &self.sent {
            let command = name.split('|').next().unwrap_or(name);
            let column = if FREE.contains(&command) {
                &mut bill.free
            } else {
                &mut bill.sent
            };
            column.insert(name.clone(), count);
        }
        let known = |counts: &HashMap<String, u64>, name: &str| counts.get(name).copied();
        for (name, &calls) in now {
            let in_scripts = calls
                .saturating_sub(known(&self.base, name).unwrap_or(0))
                .saturating_sub(known(&self.answered, name).unwrap_or(0))
                .saturating_sub(known(&self.side, name).unwrap_or(0));
            if in_scripts > 0 {
                bill.scripts.insert(name.clone(), in_scripts);
            }
        }
        bill.refused = self.refused.clone();
        bill
    }
}

/// Calls per command from `INFO commandstats`, rejected calls included (a request the server
/// refused still reached it): `cmdstat_get:calls=3,usec=...,rejected_calls=1,failed_calls=0`.
pub(crate) fn command_stats(info: &str) -> HashMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| {
                fields
                    .split(',')
                    .find_map(|field| field.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|value| value.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            Some((name.to_owned(), field("calls") + field("rejected_calls")))
        })
        .collect()
}

/// Billed commands since the last reset, by `INFO commandstats` name (`evalsha`,
/// `client|id`), counted as Upstash bills them: every command a client sends except the free
/// ones ([`FREE`]), plus every call made inside a script. Requests the proxy refuses are not
/// billed.
///
/// The proxy counts what clients send. The calls made inside scripts it cannot see; the server
/// counts them in `INFO commandstats`, under their own names, beside every other command it ran.
/// So a script's calls of a command are the server's count of it since the last reset, less
/// what clients sent through the proxy and the server took in, less the proxy's own queries and
/// what the harness sent through [`Upstash::command`].
///
/// Exact when the proxy is quiet as the bill is read. Otherwise a command the server has run
/// but whose reply has not yet passed the proxy counts as a script's call, for the moment. A
/// command a test sends straight to the server (not through [`Upstash::command`]) counts as a
/// script's call; one that resets the server's counts (`CONFIG RESETSTAT`) spoils the bill
/// until [`Upstash::reset_billing`]. Blocking commands (`XREAD`, `XREADGROUP`, ...) count as
/// taken in once sent, as Redis 7.0 counts them when they start to wait.
///
/// [`Upstash::command`]: super::Upstash::command
/// [`Upstash::reset_billing`]: super::Upstash::reset_billing
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bill {
    /// Billed commands clients sent.
    pub sent: BTreeMap<String, u64>,
    /// Calls made inside scripts, all billed.
    pub scripts: BTreeMap<String, u64>,
    /// Commands clients sent that Upstash does not bill.
    pub free: BTreeMap<String, u64>,
    /// Requests the proxy refused: not billed, listed for the record.
    pub refused: BTreeMap<String, u64>,
}

impl Bill {
    /// All billed commands: sent plus called inside scripts.
    pub fn total(&self) -> u64 {
        self.sent.values().sum::<u64>() + self.scripts.values().sum::<u64>()
    }
}

impl fmt::Display for Bill {
    /// `billed 9 = sent 5 (evalsha 2, get 3) + in scripts 4 (hset 4); free: 1 (ping 1)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn column(f: &mut fmt::Formatter<'_>, counts: &BTreeMap<String, u64>) -> fmt::Result {
            write!(f, "{}", counts.values().sum::<u64>())?;
            if !counts.is_empty() {
                let each: Vec<String> = counts.iter().map(|(n, c)| format!("{n} {c}")).collect();
                write!(f, " ({})", each.join(", "))?;
            }
            Ok(())
        }
        write!(f, "billed {} = sent ", self.total())?;
        column(f, &self.sent)?;
        write!(f, " + in scripts ")?;
        column(f, &self.scripts)?;
        for (label, counts) in [("free", &self.free), ("refused", &self.refused)] {
            if !counts.is_empty() {
                write!(f, "; {label}: ")?;
                column(f, counts)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_calls_are_what_the_server_ran_beyond_what_was_sent() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=2,usec=9,usec_per_call=4.5,\
                    rejected_calls=0,failed_calls=0\r\ncmdstat_hset:calls=5,usec=1,\
                    usec_per_call=0.2,rejected_calls=1,failed_calls=0\r\n\
                    cmdstat_ping:calls=1,usec=0,usec_per_call=0,rejected_calls=0,failed_calls=0\r\n";
        let mut tally = Tally::default();
        tally.reset(HashMap::from([("hset".to_owned(), 1)]));
        tally.sent.insert("evalsha".into(), 2);
        tally.sent.insert("hset".into(), 1);
        tally.sent.insert("ping".into(), 1);
        tally.answered = HashMap::from([
            ("evalsha".into(), 2),
            ("hset".into(), 1),
            ("ping".into(), 1),
        ]);
        let bill = tally.bill(&command_stats(info));
        assert_eq!(bill.scripts, BTreeMap::from([("hset".into(), 4)]));
        assert_eq!(bill.total(), 2 + 1 + 4);
        assert_eq!(
            bill.to_string(),
            "billed 7 = sent 3 (evalsha 2, hset 1) + in scripts 4 (hset 4); free: 1 (ping 1)"
        );
    }
}
