//! Who may take a suspect. A stalled delivery that was delivered before is a suspect: it may be
//! what killed its workers (it exits the process, exhausts memory). `tick.lua` hands one only to
//! a worker that holds nothing else, so that, should it kill that worker too, no healthy task
//! dies with it; or, once it has waited three redelivery timeouts (a fleet that is never idle
//! would starve it), to a worker that holds no other suspect. Either way a worker's reclaims take
//! no suspect while it holds one, so a poison task does not take the same companions down with
//! it again and again until they too are buried as poison. (Deliveries taken over from a worker
//! heard from lately, lost on the way rather than stalled, go back whatever their count.)
//!
//! On a docket spread over partitions, "nothing else" means nothing in *any* partition: each
//! partition's reclaims run in the process's workers, and a worker that took a suspect in one
//! partition while it ran tasks (or held a suspect) of the next would drag them down with it.
//! The partitions of one docket in this process share a [`Solo`]: it sees every partition's
//! deliveries and the suspects among them, and it lets one reclaim at a time per worker take a
//! suspect.
//!
//! The keeper's process is patient with suspects while the fleet has other workers than its
//! own: its workers take only a suspect that waited three redelivery timeouts, as a starved one,
//! which another process's idle worker takes long before. A poison task then kills a process
//! that is not the keeper's, and the fleet keeps its clock (a dead keeper is replaced only after
//! its lease lapses and another worker looks at it: seconds in a crash storm, while every
//! stalled delivery waits). A fleet of one process takes its suspects as any worker does: it
//! has no other process to spare. Three limits: the keeper asks the readers in the order they
//! blocked, so a keeper's process whose idle readers queue ahead of the others' may still take
//! a suspect at three timeouts; workers that died idle stay in the fleet's count until they
//! are forgotten (156 timeouts), so a fleet reduced to one process stays patient that long; and
//! in a backlog of suspects (a crash storm) every one has waited three timeouts already, so the
//! rule no longer spares the keeper there.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::RedisBackend;
use crate::sync::Locked;

/// How long after a reclaim that could take a suspect returns its worker still counts as
/// holding what it took: long enough for the entries to be sorted into its deliveries, where
/// every partition sees them (the suspects among them are marked before it returns). Shorter
/// than the pause before a worker looks again at the suspects it left
/// ([`SUSPECT_PAUSE`](super::claim::SUSPECT_PAUSE)), which would otherwise find the worker
/// still reserved, and leave them for the keeper's next check.
const SETTLING: Duration = Duration::from_millis(50);
const _: () = assert!(SETTLING.as_millis() < super::claim::SUSPECT_PAUSE.as_millis());

/// Which suspects a worker's reclaim may take (`tick.lua`'s last argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Suspects {
    /// It holds nothing: one suspect, whatever it waited.
    Alone,
    /// It holds deliveries, no suspect among them: one suspect that waited three timeouts.
    Starved,
    /// It holds nothing, but its process holds the keeper's lease and the fleet has other
    /// workers: one suspect that waited three timeouts, as [`Starved`](Self::Starved).
    Patient,
    /// It holds a suspect, or another reclaim of its may be taking one: none.
    None,
}

impl Suspects {
    /// As `tick.lua` reads it.
    pub(super) fn arg(self) -> &'static str {
        match self {
            Suspects::Alone => "1",
            Suspects::Starved | Suspects::Patient => "0",
            Suspects::None => "-",
        }
    }
}

/// What the partitions of one docket in this process share about their workers' holdings.
#[derive(Default)]
pub(super) struct Solo {
    /// Every partition, once a spread docket's layout is known; unset on a docket of one.
    parts: OnceLock<Vec<Weak<RedisBackend>>>,
    /// Workers whose reclaim may take a suspect: in flight (`None`), or returned and counted
    /// until the given time.
    taking: Mutex<HashMap<String, Option<Instant>>>,
    /// The suspects this process's workers hold, by partition and stream id: their workers.
    suspects: Mutex<HashMap<(u16, String), String>>,
    /// This process's workers that keep the fleet's clock, and which of them holds the lease.
    clocks: Mutex<Clocks>,
}

#[derive(Default)]
struct Clocks {
    /// The workers of this process running a clock.
    running: HashSet<String>,
    /// Those that hold the keeper's lease, as far as each knows, with the fleet's size as each
    /// last counted it. One at a time, but a keeper cut off from Redis for longer than its
    /// lease still thinks it holds it after another worker took it.
    keepers: HashMap<String, u64>,
}

impl Clocks {
    /// Whether this process holds the lease and the fleet counts more workers than its own.
    fn patient(&self) -> bool {
        let here = self.running.len() as u64;
        self.keepers.values().any(|fleet| *fleet > here)
    }
}

impl Solo {
    /// The docket's partitions are known: `parts`, partition 0 first.
    pub(super) fn know(&self, parts: &[Arc<RedisBackend>]) {
        let _ = self.parts.set(parts.iter().map(Arc::downgrade).collect());
    }

    /// `worker`'s clock runs until the returned guard drops.
    pub(super) fn clock_runs<'a>(&'a self, worker: &str) -> ClockRuns<'a> {
        self.clocks.locked().running.insert(worker.to_owned());
        ClockRuns {
            solo: self,
            worker: worker.to_owned(),
        }
    }

    /// `worker` holds the keeper's lease (`Some`, with the fleet's size as it counted it), or
    /// not (`None`).
    pub(super) fn keeping(&self, worker: &str, fleet: Option<u64>) {
        let mut clocks = self.clocks.locked();
        match fleet {
            Some(fleet) => clocks.keepers.insert(worker.to_owned(), fleet),
            None => clocks.keepers.remove(worker),
        };
    }

    /// Which suspects `worker`'s reclaim on `part` may take, and, unless none, a reservation:
    /// no other reclaim of the worker's takes one while the returned guard lives, and
    /// [`SETTLING`] after.
    pub(super) fn reserve<'a>(
        &'a self,
        part: &RedisBackend,
        worker: &str,
    ) -> (Suspects, Option<Held<'a>>) {
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
    ) -> (Suspects, Option<Held<'a>>) {
        let now = Instant::now();
        let mut taking = self.taking.locked();
        let busy = taking
            .get(worker)
            .is_some_and(|until| until.is_none_or(|until| now < until));
        if busy
            || self
                .suspects
                .locked()
                .values()
                .any(|holder| holder == worker)
        {
            return (Suspects::None, None);
        }
        let suspects = match empty_handed() {
            true if self.clocks.locked().patient() => Suspects::Patient,
            true => Suspects::Alone,
            false => Suspects::Starved,
        };
        // Reservations that ended (a worker that stopped leaves one behind) are forgotten.
        taking.retain(|_, until| until.is_none_or(|until| now < until));
        taking.insert(worker.to_owned(), None);
        let held = Held {
            solo: self,
            worker: worker.to_owned(),
            took: true,
        };
        (suspects, Some(held))
    }

    /// `worker` took the suspect `id` of partition `part` over.
    pub(super) fn holds_suspect(&self, part: u16, id: &str, worker: &str) {
        self.suspects
            .locked()
            .insert((part, id.to_owned()), worker.to_owned());
    }

    /// The deliveries `ids` of partition `part` are no longer held here: whether a suspect was
    /// among them.
    pub(super) fn settled<'a>(&self, part: u16, ids: impl IntoIterator<Item = &'a str>) -> bool {
        let freed: Vec<String> = {
            let mut suspects = self.suspects.locked();
            if suspects.is_empty() {
                return false;
            }
            ids.into_iter()
                .filter_map(|id| suspects.remove(&(part, id.to_owned())))
                .collect()
        };
        if freed.is_empty() {
            return false;
        }
        // A reclaim that takes a suspect takes it alone, and this one was sorted into its
        // worker's deliveries and is settled now: the reservation that reclaim left for a moment
        // after it returned ([`SETTLING`]) ends here, so that the look the settlement asks for
        // may take the next suspect (a healthy one runs in a few ms, well inside the moment).
        let mut taking = self.taking.locked();
        for worker in &freed {
            if taking.get(worker).is_some_and(Option::is_some) {
                taking.remove(worker);
            }
        }
        true
    }
}

/// A worker's clock, running: [`Solo::clock_runs`].
pub(super) struct ClockRuns<'a> {
    solo: &'a Solo,
    worker: String,
}

impl Drop for ClockRuns<'_> {
    fn drop(&mut self) {
        self.solo.keeping(&self.worker, None);
        self.solo.clocks.locked().running.remove(&self.worker);
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
        let (suspects, first) = solo.reserve_if("a", || true);
        assert_eq!(suspects, Suspects::Alone);
        let first = first.expect("reserved");
        assert_eq!(
            solo.reserve_if("a", || true).0,
            Suspects::None,
            "while the first is in flight"
        );
        assert_eq!(solo.reserve_if("b", || true).0, Suspects::Alone);
        drop(first);
        // It took something: counted until its entries are sorted.
        assert_eq!(solo.reserve_if("a", || true).0, Suspects::None);
        tokio::time::advance(SETTLING).await;
        let (_, second) = solo.reserve_if("a", || true);
        second.expect("reserved after settling").took_nothing();
        assert_eq!(
            solo.reserve_if("a", || true).0,
            Suspects::Alone,
            "a reclaim that took nothing ends its reservation at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_whose_suspect_is_settled_may_take_the_next_at_once() {
        let solo = Solo::default();
        let (suspects, held) = solo.reserve_if("a", || true);
        assert_eq!(suspects, Suspects::Alone);
        solo.holds_suspect(0, "5-0", "a");
        // The reclaim returns, having taken the suspect.
        drop(held.expect("reserved"));
        assert_eq!(solo.reserve_if("a", || true).0, Suspects::None);
        assert!(solo.settled(0, ["5-0"]), "the suspect is settled");
        let (suspects, held) = solo.reserve_if("a", || true);
        assert_eq!(
            suspects,
            Suspects::Alone,
            "no settling moment left: the suspect was sorted and settled"
        );
        held.expect("reserved").took_nothing();
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_that_holds_deliveries_takes_only_a_starved_suspect() {
        let solo = Solo::default();
        let (suspects, held) = solo.reserve_if("a", || false);
        assert_eq!(suspects, Suspects::Starved);
        held.unwrap().took_nothing();
        assert!(solo.taking.locked().is_empty(), "nothing reserved");
    }

    #[tokio::test(start_paused = true)]
    async fn the_keepers_process_is_patient_with_suspects_while_the_fleet_has_other_workers() {
        let solo = Solo::default();
        let (_a, _b) = (solo.clock_runs("a"), solo.clock_runs("b"));
        let alone = |solo: &Solo| {
            let (suspects, held) = solo.reserve_if("a", || true);
            held.expect("reserved").took_nothing();
            suspects
        };
        assert_eq!(alone(&solo), Suspects::Alone, "no keeper here");
        solo.keeping("b", Some(3));
        assert_eq!(alone(&solo), Suspects::Patient, "three workers, two here");
        assert_eq!(Suspects::Patient.arg(), Suspects::Starved.arg());
        solo.keeping("b", Some(2));
        assert_eq!(
            alone(&solo),
            Suspects::Alone,
            "every worker of the fleet is here"
        );
        solo.keeping("b", Some(5));
        solo.keeping("a", Some(1));
        solo.keeping("a", None);
        assert_eq!(
            alone(&solo),
            Suspects::Patient,
            "a worker that thought it kept the lease gives it up: the other still keeps it"
        );
        solo.keeping("b", None);
        assert_eq!(alone(&solo), Suspects::Alone, "the lease is gone");
        solo.keeping("b", Some(5));
        drop(_b);
        assert_eq!(alone(&solo), Suspects::Alone, "the keeper's clock stopped");
        let (suspects, held) = solo.reserve_if("a", || false);
        assert_eq!(suspects, Suspects::Starved, "one that holds deliveries");
        held.expect("reserved").took_nothing();
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_that_holds_a_suspect_takes_no_other_until_it_is_settled() {
        let solo = Solo::default();
        solo.holds_suspect(1, "5-0", "a");
        assert_eq!(solo.reserve_if("a", || false).0, Suspects::None);
        assert_eq!(
            solo.reserve_if("a", || true).0,
            Suspects::None,
            "whatever the partitions say"
        );
        assert_eq!(solo.reserve_if("b", || true).0, Suspects::Alone);
        assert!(!solo.settled(2, ["5-0"]), "not a suspect of partition 2");
        assert_eq!(
            solo.reserve_if("a", || false).0,
            Suspects::None,
            "another partition's id"
        );
        assert!(solo.settled(1, ["5-0"]), "the suspect is settled");
        let (suspects, held) = solo.reserve_if("a", || false);
        assert_eq!(suspects, Suspects::Starved);
        held.unwrap().took_nothing();
    }
}
