//! [`Docket::scatter`]: a batch spread evenly over a period, so a thousand nightly reports do
//! not all start in the same second.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use tracing::Instrument;

use crate::backend::{KeyMode, Message};
use crate::error::{Error, Result};
use crate::handle::Docket;
use crate::registry::Registration;
use crate::schedule::{Schedule, Scheduled};
use crate::task::Task;

impl Docket {
    /// Schedule a batch of tasks of one type spread evenly `over` a period from now: with `n`
    /// tasks, the `i`-th (from 0) is due `i × over / n` from now, moved later by a random amount
    /// of up to `jitter`. The batch is stored as [`Docket::add_many`] stores one, in one round
    /// trip per 500 tasks; a schedule's own `at` or `after` is replaced by its place in the
    /// spread.
    ///
    /// Keys make a re-scatter idempotent: a schedule's own [key](Schedule::key) is kept, and one
    /// without a key gets one made of its task's name and a digest of its arguments (and, for
    /// the second and later schedules with equal arguments in the batch, their count). So
    /// scattering the same batch again while its tasks wait stores nothing new: each is a
    /// [`Disposition::Duplicate`](crate::Disposition::Duplicate), keeping its first due time
    /// (a schedule with [`Schedule::replace`] moves instead). A debounced task keeps its
    /// debounce key.
    ///
    /// ```
    /// # use std::time::Duration;
    /// #[docket::task]
    /// async fn nightly_report(customer_id: u64) {}
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> docket::Result<()> {
    /// let docket = docket::Docket::connect("memory://").await?;
    /// let hour = Duration::from_secs(3600);
    /// let batch = || (0..100).map(NightlyReport::schedule);
    /// let first = docket.scatter(batch(), hour, Duration::from_secs(5)).await?;
    /// let again = docket.scatter(batch(), hour, Duration::from_secs(5)).await?;
    /// assert!(again.iter().all(|s| s.disposition() == docket::Disposition::Duplicate));
    /// assert!(first[99].due() > first[0].due() + hour * 98 / 100);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`Docket::add_many`]; a spread ending after the year 9999 is an
    /// [`Error::InvalidDue`], and nothing is stored.
    pub async fn scatter<T: Task>(
        &self,
        schedules: impl IntoIterator<Item = Schedule<T>>,
        over: Duration,
        jitter: Duration,
    ) -> Result<Vec<Scheduled>> {
        let now = self.clock().now();
        let mut batch = schedules
            .into_iter()
            .map(|schedule| schedule.into_message_at(now))
            .collect::<Result<Vec<_>>>()?;
        let dues = spread(now, batch.len(), over, jitter, |_| {
            crate::key::random_unit()
        })
        .ok_or_else(|| Error::InvalidDue {
            task: T::NAME.to_owned(),
        })?;
        let mut seen = HashMap::new();
        for ((message, mode), due) in batch.iter_mut().zip(dues) {
            message.due = due;
            if *mode == KeyMode::Fresh {
                *mode = KeyMode::Add;
                message.key = scatter_key(message, &mut seen);
            }
        }
        let span = tracing::info_span!(
            "docket.schedule",
            task = T::NAME,
            count = batch.len(),
            scatter_over = ?over,
            placement = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        self.place(Some(Registration::of::<T>()), batch)
            .instrument(span)
            .await
    }
}

/// The due times of `count` tasks spread evenly over `over` from `start`, each moved later by
/// `unit(i)` (in `[0, 1)`) of `jitter`; `None` if one falls after the latest due time.
fn spread(
    start: SystemTime,
    count: usize,
    over: Duration,
    jitter: Duration,
    mut unit: impl FnMut(usize) -> f64,
) -> Option<Vec<SystemTime>> {
    (0..count)
        .map(|i| {
            // u128 nanoseconds: `over` times `i` does not overflow for any count a batch holds.
            let offset = over.as_nanos() * i as u128 / count as u128;
            let offset = Duration::from_nanos(u64::try_from(offset).ok()?);
            let offset = offset.checked_add(jitter.mul_f64(unit(i).clamp(0.0, 1.0)))?;
            crate::time::checked_due(start, offset)
        })
        .collect()
}

/// The key a keyless scattered task gets: its name and a digest of its arguments, and for the
/// `n`-th repeat of the same arguments in the batch (`n` from 1), `/n`. The same batch gives the
/// same keys, whatever else it holds.
fn scatter_key(message: &Message, seen: &mut HashMap<String, usize>) -> String {
    let digest = crate::key::digest(message.args.as_bytes());
    let repeat = seen.entry(digest.clone()).or_insert(0);
    let key = match *repeat {
        0 => format!("{}:scatter:{digest}", message.task),
        n => format!("{}:scatter:{digest}/{n}", message.task),
    };
    *repeat += 1;
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: SystemTime = SystemTime::UNIX_EPOCH;

    #[test]
    fn a_batch_is_spread_evenly_from_now_to_just_before_the_end() {
        let dues = spread(START, 4, Duration::from_secs(60), Duration::ZERO, |_| 0.5).unwrap();
        let secs: Vec<u64> = dues
            .iter()
            .map(|due| due.duration_since(START).unwrap().as_secs())
            .collect();
        assert_eq!(secs, [0, 15, 30, 45]);
        assert_eq!(
            spread(START, 0, Duration::MAX, Duration::MAX, |_| 0.0),
            Some(vec![])
        );
    }

    #[test]
    fn jitter_moves_each_task_later_by_up_to_its_width() {
        let dues = spread(
            START,
            2,
            Duration::from_secs(10),
            Duration::from_secs(4),
            |i| [0.0, 0.75][i],
        )
        .unwrap();
        assert_eq!(dues, [START, START + Duration::from_secs(8)]);
    }

    #[test]
    fn a_spread_past_the_year_9999_is_refused_not_a_panic() {
        let now = SystemTime::now();
        assert_eq!(spread(now, 3, Duration::MAX, Duration::ZERO, |_| 0.0), None);
        assert_eq!(spread(now, 1, Duration::ZERO, Duration::MAX, |_| 0.9), None);
    }

    #[test]
    fn keys_follow_the_arguments_and_count_repeats() {
        let message = |args: &str| Message::first_attempt("report", "k", args, START);
        let mut seen = HashMap::new();
        let a = scatter_key(&message("{\"id\":1}"), &mut seen);
        let b = scatter_key(&message("{\"id\":2}"), &mut seen);
        let a2 = scatter_key(&message("{\"id\":1}"), &mut seen);
        assert_ne!(a, b);
        assert_eq!(a2, format!("{a}/1"));
        assert!(a.starts_with("report:scatter:"), "{a}");
        let mut again = HashMap::new();
        assert_eq!(scatter_key(&message("{\"id\":2}"), &mut again), b);
    }
}
