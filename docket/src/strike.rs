//! Strikes: pausing a task, or the runs of a task with certain argument values, across the whole
//! fleet without a redeploy. Struck tasks are held, not run and not lost, and go back to the
//! queue when the strike is restored.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::handle::Docket;

/// A rule that holds matching tasks instead of running them.
///
/// ```
/// use docket::strike::{Operator, Strike};
///
/// // Every run of `scan_copyright`:
/// let all = Strike::task("scan_copyright");
/// // Runs of `scan_copyright` for one customer:
/// let one = Strike::task("scan_copyright").when("customer_id", Operator::Eq, 42);
/// // Any task with a large `size` argument:
/// let big = Strike::any().when("size", ">=".parse()?, 1_000_000);
/// assert!(big.matches("transcode", r#"{"size": 5000000}"#));
/// assert!(!one.matches("scan_copyright", r#"{"customer_id": 7}"#));
/// # Ok::<(), docket::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Strike {
    /// The task name it applies to; `None` for every task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// The argument condition; `None` matches every run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
}

/// A comparison of one argument with a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Condition {
    /// The argument's name.
    pub param: String,
    /// How it is compared.
    pub op: Operator,
    /// What it is compared with, as JSON.
    pub value: Value,
}

/// How a strike compares an argument with its value. Numbers compare as numbers, strings
/// lexicographically; `==` and `!=` compare any JSON values. An argument that is missing, or of
/// another type than the value for an ordering, never matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Operator {
    /// `==`
    #[serde(rename = "==")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
}

/// Reads an operator as [`Operator`]'s `Display` writes it: `==`, `!=`, `>`, `>=`, `<` or `<=`.
///
/// # Errors
///
/// [`Error::Operator`] for any other text.
impl FromStr for Operator {
    type Err = Error;

    fn from_str(text: &str) -> Result<Operator> {
        Ok(match text {
            "==" => Operator::Eq,
            "!=" => Operator::Ne,
            ">" => Operator::Gt,
            ">=" => Operator::Ge,
            "<" => Operator::Lt,
            "<=" => Operator::Le,
            other => return Err(Error::Operator(other.to_owned())),
        })
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operator::Eq => "==",
            Operator::Ne => "!=",
            Operator::Gt => ">",
            Operator::Ge => ">=",
            Operator::Lt => "<",
            Operator::Le => "<=",
        })
    }
}

impl Strike {
    /// Strike every run of the task named `task`.
    pub fn task(task: impl Into<String>) -> Self {
        Strike {
            task: Some(task.into()),
            when: None,
        }
    }

    /// Strike every task (narrow it with [`Strike::when`]).
    pub fn any() -> Self {
        Strike {
            task: None,
            when: None,
        }
    }

    /// Only runs whose argument `param` compares with `value` by `op`.
    pub fn when(mut self, param: impl Into<String>, op: Operator, value: impl Into<Value>) -> Self {
        self.when = Some(Condition {
            param: param.into(),
            op,
            value: value.into(),
        });
        self
    }

    /// Whether a run of `task` with these JSON arguments is struck.
    pub fn matches(&self, task: &str, args: &str) -> bool {
        if self.task.as_deref().is_some_and(|name| name != task) {
            return false;
        }
        let Some(condition) = &self.when else {
            return true;
        };
        let Ok(mut fields) = serde_json::from_str::<serde_json::Map<String, Value>>(args) else {
            return false;
        };
        match fields.remove(&condition.param) {
            Some(actual) => condition.holds(&actual),
            None => false,
        }
    }

    /// Every part fits [`MAX_SCOPE_BYTES`](crate::schedule::MAX_SCOPE_BYTES): the strike's JSON
    /// is a member of a Redis sorted set, which managed services cap (Upstash: 32 KB).
    fn check(&self) -> Result<()> {
        let limit = crate::schedule::MAX_SCOPE_BYTES;
        let names = [
            ("task name", self.task.as_deref()),
            (
                "argument name",
                self.when.as_ref().map(|c| c.param.as_str()),
            ),
        ];
        for (what, name) in names {
            if let Some(name) = name.filter(|name| name.len() > limit) {
                return Err(Error::Config(format!(
                    "a strike's {what} is {} bytes, over the limit of {limit}; no task or argument has such a name",
                    name.len()
                )));
            }
        }
        let Some(condition) = &self.when else {
            return Ok(());
        };
        let len = condition.value.to_string().len();
        if len > limit {
            return Err(Error::ScopeTooLong {
                task: self.task.clone().unwrap_or_else(|| "*".to_owned()),
                param: condition.param.clone(),
                policy: "strike",
                len,
                limit,
            });
        }
        Ok(())
    }

    /// The strike's canonical JSON: how it is stored and compared across processes.
    pub(crate) fn encode(&self) -> String {
        serde_json::to_string(self).expect("a strike always encodes")
    }

    pub(crate) fn decode(json: &[u8]) -> Option<Strike> {
        serde_json::from_slice(json).ok()
    }
}

impl fmt::Display for Strike {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.task.as_deref().unwrap_or("*"))?;
        if let Some(condition) = &self.when {
            write!(
                f,
                " where {} {} {}",
                condition.param, condition.op, condition.value
            )?;
        }
        Ok(())
    }
}

impl Condition {
    fn holds(&self, actual: &Value) -> bool {
        let ordering = compare(actual, &self.value);
        match self.op {
            Operator::Eq => ordering == Some(Ordering::Equal) || actual == &self.value,
            Operator::Ne => !(ordering == Some(Ordering::Equal) || actual == &self.value),
            Operator::Gt => ordering == Some(Ordering::Greater),
            Operator::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
            Operator::Lt => ordering == Some(Ordering::Less),
            Operator::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
        }
    }
}

/// Numbers as numbers, strings as strings; other pairs are not ordered.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
        },
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// The first strike in `strikes` that holds a run of `task` with `args`.
pub(crate) fn first_match<'a>(strikes: &'a [Strike], task: &str, args: &str) -> Option<&'a Strike> {
    strikes.iter().find(|strike| strike.matches(task, args))
}

impl Docket {
    /// Hold matching tasks, across every worker of this docket, until the strike is restored.
    /// Returns `false` when the same strike was already in place.
    ///
    /// A strike is stored under its text, so its parts are bounded: a value over 1024 bytes as
    /// JSON is an [`Error::ScopeTooLong`], a task or argument name over 1024 bytes an
    /// [`Error::Config`]; nothing is stored then.
    ///
    /// # Errors
    ///
    /// [`Error::ScopeTooLong`] or [`Error::Config`] for a strike whose parts are too long, as
    /// above; on a Redis docket, [`Error::Unavailable`] when Redis cannot be reached or does not
    /// answer in time, and [`Error::Backend`] when it refuses the command.
    pub async fn strike(&self, strike: Strike) -> Result<bool> {
        strike.check()?;
        crate::backend::Backend::strike(self.backend(), &strike).await
    }

    /// Lift a strike, and queue again every held task no other strike still holds. Returns how
    /// many tasks went back to the queue.
    ///
    /// # Errors
    ///
    /// On a Redis docket, [`Error::Unavailable`] when Redis cannot be reached or does not answer
    /// in time, and [`Error::Backend`] when it refuses a command. Lifting the strike and queueing
    /// the tasks are separate steps: when the second fails (or the future is dropped between
    /// them), the tasks stay held; call `restore` again, which queues them (lifting a strike that
    /// is not in place is no error).
    pub async fn restore(&self, strike: Strike) -> Result<usize> {
        use crate::backend::Backend;
        let backend = self.backend();
        backend.restore(&strike).await?;
        let remaining = backend.strikes().await?;
        let free: Vec<String> = backend
            .held()
            .await?
            .into_iter()
            .filter(|message| first_match(&remaining, &message.task, &message.args).is_none())
            .map(|message| message.key)
            .collect();
        if free.is_empty() {
            return Ok(0);
        }
        backend.unhold(&free).await
    }

    /// The strikes in place.
    ///
    /// # Errors
    ///
    /// On a Redis docket, [`Error::Unavailable`] when Redis cannot be reached or does not answer
    /// in time, and [`Error::Backend`] when it refuses the command. Other dockets never fail here.
    pub async fn strikes(&self) -> Result<Vec<Strike>> {
        crate::backend::Backend::strikes(self.backend()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_compare_numbers_strings_and_json_values() {
        let args = r#"{"n": 5, "f": 2.5, "s": "m", "b": true}"#;
        let cases = [
            ("n", "==", Value::from(5), true),
            ("n", "==", Value::from(5.0), true),
            ("n", "!=", Value::from(5), false),
            ("n", ">", Value::from(4), true),
            ("n", ">=", Value::from(5), true),
            ("n", "<", Value::from(5), false),
            ("n", "<=", Value::from(5), true),
            ("f", ">", Value::from(2), true),
            ("s", ">", Value::from("a"), true),
            ("s", "<", Value::from("z"), true),
            ("s", ">", Value::from(1), false),
            ("b", "==", Value::from(true), true),
            ("b", "!=", Value::from(false), true),
            ("missing", "!=", Value::from(1), false),
        ];
        for (param, op, value, expected) in cases {
            let strike = Strike::any().when(param, op.parse().unwrap(), value.clone());
            assert_eq!(strike.matches("t", args), expected, "{param} {op} {value}");
        }
    }

    #[test]
    fn a_named_strike_only_matches_its_task() {
        let strike = Strike::task("scan");
        assert!(strike.matches("scan", "{}"));
        assert!(!strike.matches("mail", "{}"));
    }

    #[test]
    fn strikes_round_trip_through_their_canonical_json() {
        let strike = Strike::task("scan").when("id", Operator::Le, 3);
        assert_eq!(
            Strike::decode(strike.encode().as_bytes()),
            Some(strike.clone())
        );
        assert_eq!(strike.to_string(), "scan where id <= 3");
        assert!("=~".parse::<Operator>().is_err());
    }
}
