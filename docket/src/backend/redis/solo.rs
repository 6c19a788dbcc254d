//! Who may take a suspect alone. A stalled delivery that was delivered before is a suspect: it
//! may be what killed its workers (it exits the process, exhausts memory). `tick.lua` hands one
//! only to a worker that holds nothing else, so that, should it kill that worker too, no healthy
//! task dies with it again and again until the fleet buries it as poison.
//!
//! On a docket spread over partitions, "nothing else" means nothing in *any* partition: the
//! process's workers run each partition's reclaims, and a worker that took a suspect in one
//! partition while it ran tasks (or took another suspect) in the next would drag them down with
//! it. The partitions of one docket in this process share a [`Solo`]: it sees every partition's
//! deliveries, and it lets one reclaim at a time per worker ask for a suspect.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::RedisBackend;
use crate::sync::Locked;

/// How long after a reclaim that could take a suspect returns its worker still counts as
/// holding what it took: long enough for the entries to be sorted into its deliveries, where
/// every partition sees them.
const SETTLING: Duration = Duration::from_secs(1);

/// What the partitions of one docket in this process share about their workers' holdings.
#[derive(Default)]
pub(super) struct Solo {
    /// Every partition, once a spread docket's layout is known; unset on a docket of one.
    parts: OnceLock<Vec<Weak<RedisBackend>>>,
    /// Workers whose reclaim may take a suspect: in flight (`None`), or returned and counted
    /// until the given time.
    taking: Mutex<HashMap<String, Option<Instant>>>,
}

impl Solo {
    /// The docket's partitions are known: `parts`, partition 0 first.
    pub(super) fn know(&self, parts: &[std::sync::Arc<RedisBackend>]) {
        let _ = self
            .parts
            .set(parts.iter().map(std::sync::Arc::downgrade).collect());
    }

    /// Reserve the right of `worker`'s reclaim on `part` to take a suspect alone: granted when
    /// the worker holds no delivery in any partition and no other reclaim of its may be taking
    /// one. The reservation lasts while the returned guard lives, and [`SETTLING`] after.
    pub(super) fn reserve<'a>(&'a self, part: &RedisBackend, worker: &str) -> Option<Held<'a>> {
        self.reserve_if(worker, || match self.parts.get() {
            Some(parts) => parts
                .iter()
                .filter_map(Weak::upgrade)
                .all(|part| part.holds_nothing(worker)),
            None => part.holds_nothing(worker),
        })
    }

    /// [`reserve`](Self::reserve), with `empty_handed` saying whether the worker holds nothing.
    fn reserve_if<'a>(
        &'a self,
        worker: &str,
        empty_handed: impl FnOnce() -> bool,
    ) -> Option<Held<'a>> {
        let now = Instant::now();
        let mut taking = self.taking.locked();
        if taking
            .get(worker)
            .is_some_and(|until| until.is_none_or(|until| now < until))
            || !empty_handed()
        {
            return None;
        }
        // Reservations that ended (a worker that stopped leaves one behind) are forgotten.
        taking.retain(|_, until| until.is_none_or(|until| now < until));
        taking.insert(worker.to_owned(), None);
        Some(Held {
            solo: self,
            worker: worker.to_owned(),
            took: true,
        })
    }
}

/// A reservation made by [`Solo::reserve`].
pub(super) struct Held<'a> {
    solo: &'a Solo,
    worker: String,
    took: bool,
}

impl Held<'_> {
    /// The reclaim returned and took nothing over: the reservation ends now.
    pub(super) fn took_nothing(mut self) {
        self.took = false;
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut taking = self.solo.taking.locked();
        match self.took {
            // Also when the reclaim was dropped midway: what it may have taken is recovered
            // by the worker's next claim.
            true => taking.insert(self.worker.clone(), Some(Instant::now() + SETTLING)),
            false => taking.remove(&self.worker),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_reclaim_at_a_time_per_worker_may_take_a_suspect() {
        let solo = Solo::default();
        let first = solo.reserve_if("a", || true).expect("granted");
        assert!(
            solo.reserve_if("a", || true).is_none(),
            "while the first is in flight"
        );
        assert!(solo.reserve_if("b", || true).is_some(), "another worker's");
        drop(first);
        // It took something: counted until its entries are sorted.
        assert!(solo.reserve_if("a", || true).is_none());
        tokio::time::advance(SETTLING).await;
        let second = solo
            .reserve_if("a", || true)
            .expect("granted after settling");
        second.took_nothing();
        assert!(
            solo.reserve_if("a", || true).is_some(),
            "a reclaim that took nothing ends its reservation at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_that_holds_something_is_refused() {
        let solo = Solo::default();
        assert!(solo.reserve_if("a", || false).is_none());
        assert!(solo.taking.locked().is_empty(), "nothing reserved");
        assert!(solo.reserve_if("a", || true).is_some());
    }
}
