//! Reading ahead: a worker on Redis claims more deliveries than it has free slots, keeps the
//! rest in a small local buffer, and starts them as slots free up, so that short tasks do not
//! wait a round trip to Redis each time a slot frees.
//!
//! How far it reads ahead follows its pace: as many deliveries as its slots finish in
//! [`HORIZON`] at the measured mean time a delivery takes, up to the worker's cap
//! ([`Worker::read_ahead`](super::Worker::read_ahead)). A worker of slow tasks reads nothing
//! ahead, so it never sits on work an idle worker of the fleet could start; a worker of
//! millisecond tasks reads up to its cap.
//!
//! A buffered delivery is held like a running one: renewed, so no other worker takes it over;
//! a cancel that comes for it is remembered and cancels it as it starts; a `replace` that went
//! beside it (the signal `Superseded`) drops it unstarted; a strike is checked as it starts;
//! and when the worker stops, the buffer is given back at once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::backend::Delivery;

/// How long a buffered delivery waits for a slot, at most, at the worker's measured pace.
pub(super) const HORIZON: Duration = Duration::from_millis(20);

/// The default cap on deliveries read ahead per worker. The pace keeps what is read ahead to
/// about 20 ms of work whatever the cap, so the cap only matters for tasks under a millisecond,
/// where one read of 256 costs Redis a third less a task than reads of 64 (6.5 against 10.4 µs
/// of Redis CPU a task in a drain at concurrency 10, BENCHMARKS.md).
pub(crate) const DEFAULT_READ_AHEAD: usize = 256;

/// The mean time one delivery takes a slot (its run and its settlement), as a moving average.
#[derive(Debug, Default)]
pub(super) struct Pace {
    /// Microseconds; 0 until the first delivery ends.
    micros: AtomicU64,
}

impl Pace {
    /// Take in one delivery's time (a moving average over about the last eight).
    pub(super) fn record(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let before = self.micros.load(Ordering::Relaxed);
        let mean = match before {
            0 => took,
            before => before - before / 8 + took / 8,
        };
        // Concurrent updates may lose one sample; an average does not mind.
        self.micros.store(mean.max(1), Ordering::Relaxed);
    }

    /// How many deliveries `slots` slots finish within [`HORIZON`] at this pace, at most `cap`:
    /// none before the first delivery ends.
    pub(super) fn ahead(&self, slots: usize, cap: usize) -> usize {
        let micros = self.micros.load(Ordering::Relaxed);
        if micros == 0 || cap == 0 {
            return 0;
        }
        let per_slot = HORIZON.as_micros() as u64 / micros;
        usize::try_from(per_slot)
            .unwrap_or(usize::MAX)
            .saturating_mul(slots)
            .min(cap)
    }
}

/// Deliveries claimed ahead of free slots, in the order they were read.
#[derive(Debug, Default)]
pub(super) struct Buffer {
    /// Each delivery, with when the claim that read it was made.
    deliveries: VecDeque<(Delivery, Instant)>,
}

impl Buffer {
    pub(super) fn push(&mut self, delivery: Delivery, claimed: Instant) {
        self.deliveries.push_back((delivery, claimed));
    }

    pub(super) fn pop(&mut self) -> Option<Delivery> {
        self.deliveries.pop_front().map(|(delivery, _)| delivery)
    }

    /// Everything buffered, to give back.
    pub(super) fn drain(&mut self) -> impl Iterator<Item = Delivery> + '_ {
        self.deliveries.drain(..).map(|(delivery, _)| delivery)
    }

    /// Take out the deliveries claimed before `mark`, in a buffer of their own.
    pub(super) fn take_claimed_before(&mut self, mark: Instant) -> Buffer {
        let (old, young) = self
            .deliveries
            .drain(..)
            .partition(|(_, claimed)| *claimed < mark);
        self.deliveries = young;
        Buffer { deliveries: old }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_read_ahead_before_the_first_delivery_ends() {
        assert_eq!(Pace::default().ahead(10, 256), 0);
    }

    #[test]
    fn short_deliveries_read_up_to_the_cap_and_slow_ones_nothing() {
        let pace = Pace::default();
        pace.record(Duration::from_micros(50));
        assert_eq!(pace.ahead(10, 256), 256, "400 a slot in 20 ms, capped");
        assert_eq!(pace.ahead(10, 0), 0, "a cap of 0 turns it off");

        let slow = Pace::default();
        slow.record(Duration::from_secs(1));
        assert_eq!(slow.ahead(100, 256), 0);

        let middling = Pace::default();
        middling.record(Duration::from_millis(5));
        assert_eq!(middling.ahead(10, 256), 40, "4 a slot in 20 ms");
    }

    #[test]
    fn the_pace_follows_a_change_of_task_length() {
        let pace = Pace::default();
        pace.record(Duration::from_micros(50));
        for _ in 0..40 {
            pace.record(Duration::from_millis(100));
        }
        assert_eq!(
            pace.ahead(10, 256),
            0,
            "tasks became slow: stop reading ahead"
        );
    }
}
