//! The clocks of partitions 1 and up, on a docket spread over several
//! ([`partitions`](super::super::partitions)), so that an idle fleet costs about what it costs on
//! one partition, whatever the count.
//!
//! Partition 0's clock is the fleet's (the parent module): its lease makes one worker the
//! keeper, and that worker checks every partition. The other workers look only at partition 0's
//! lease and join only partition 0's fleet; the run counts live there too. In each other
//! partition the keeper tells two states apart:
//!
//! - **Warm**: deliveries are pending, or entries wait in the stream. The keeper checks the
//!   partition every half redelivery timeout, as it checks partition 0: `XPENDING`, and when
//!   a delivery has stalled (a second `XPENDING … IDLE`) it asks a reader of the partition for a
//!   reclaim (see below). The first two checks of its stint, and every eighth, are full ones
//!   (`survey.lua`): they also read the schedule's head, for the keeper's timer, and forget
//!   idle consumers.
//! - **Cold**: a check (`survey.lua`, which reads both at once) found nothing pending and the
//!   stream empty. Nothing there can stall until an entry is added, so the keeper stops
//!   checking and waits instead in one blocking `XREAD` of the stream from its start, which
//!   costs nothing while it waits and returns at the first entry added: a task, a task moved
//!   from the schedule, a wake-up. The partition is then warm, and checked at once. An entry
//!   added between the check and the read is still in the stream when the read starts (it
//!   returns at once), unless it was settled meanwhile, and then nothing of it can stall.
//!
//! The keeper's timer moves the partition's future tasks when they fall due, cold or warm, and a
//! wake-up still reaches one blocked worker, as on partition 0. A worker that takes the lease
//! counts every partition warm until its check finds it cold. Every 64th check period a cold
//! partition is checked again all the same, fully, so that a watch that missed something (a
//! delivery deleted while pending) is found out. A reclaim of a worker's own (the safety net
//! under the lease) comes round in each partition as many times more rarely as there are
//! partitions, so it too costs a worker the same.
//!
//! **Who takes stalled deliveries over.** Not the keeper's process, as on partition 0: the
//! keeper adds a wake-up `w reclaim` to the partition's stream, and whichever worker reads it
//! next (under load, any worker with room; idle, the one blocked longest) has a worker of its
//! own process run the reclaim. Should they be too busy to, the keeper's next check asks again;
//! should the wake-up still wait unread (behind a backlog), the keeper's own process steps in
//! meanwhile.
//! Should the keeper's checks of a partition keep failing for a lease's length (its master
//! unreachable from the keeper's process), the keeper gives partition 0's lease up, for a
//! worker that can reach it. (A worker of an earlier version reads `w reclaim` as a change of
//! the schedule's head: one tick more. A keeper of an earlier version, which kept a lease in
//! every partition, handed one over with `w keeper`; a worker of this version reclaims on it.)

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use redis::Value;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{FLEET_FORGET, FULL_EVERY, PRUNE_EVERY, RETRY, RedisBackend};
use crate::backend::redis::codec::millis;
use crate::backend::redis::connection::into_error;
use crate::backend::redis::scripts::SCRIPTS;
use crate::error::{Chain, Result};
use crate::sync::Locked;
use crate::time::{millis_of, sleep_until};

/// What the clocks of one worker's partitions share, on a docket of several.
pub(crate) struct Spread {
    /// How many partitions the docket has.
    count: u32,
    /// Whether the worker holds the keeper's lease (partition 0's): set by partition 0's clock.
    keeper: watch::Sender<bool>,
    /// Set by another partition's clock whose checks kept failing for a lease's length (its
    /// master unreachable from this process, say): partition 0's keeper gives the lease up at
    /// its next check, so that a worker that can reach that partition keeps it.
    resign: AtomicBool,
}

impl Spread {
    /// The clocks of a docket of `count` partitions.
    pub(crate) fn new(count: usize) -> Spread {
        Spread {
            count: u32::try_from(count).unwrap_or(u32::MAX),
            keeper: watch::Sender::new(false),
            resign: AtomicBool::new(false),
        }
    }

    pub(super) fn count(&self) -> u32 {
        self.count
    }

    /// Whether another partition asked the keeper to give the lease up; the ask is taken.
    pub(super) fn take_resign(&self) -> bool {
        self.resign.swap(false, Ordering::Relaxed)
    }

    /// Partition 0's clock says whether the worker holds the lease.
    pub(super) fn set_keeper(&self, keeper: bool) {
        self.keeper.send_if_modified(|held| {
            let changed = *held != keeper;
            *held = keeper;
            changed
        });
    }
}

/// A cold partition's blocking read, which ends when an entry is added, or when the read
/// failed or was left (Redis may be gone).
type ColdWatch<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// What woke a partition's clock.
enum Woke {
    Stop,
    /// A wake-up, or the worker took or lost the lease: look again.
    Again,
    /// The read on a cold partition ended: an entry was added, or the read failed.
    Warmed,
    /// A time it waited for.
    Time,
}

impl RedisBackend {
    /// Keep this partition's clock for `worker` until `stop` fires, on a docket of several
    /// partitions of which this is not partition 0 (see the module docs).
    pub(crate) async fn follow_time(
        &self,
        worker: &str,
        stop: &CancellationToken,
        spread: &Spread,
    ) {
        let mut keeper = spread.keeper.subscribe();
        let mut own_reclaim = Instant::now() + self.own_reclaim_every(spread.count);
        let mut due_retry: Option<Instant> = None;
        // While the worker is the keeper: when it checks this partition next, how many checks
        // it made, and, while the partition is cold, the read that waits for an entry.
        let mut check: Option<Instant> = None;
        let mut checks: u32 = 0;
        let mut cold: Option<ColdWatch<'_>> = None;
        // Since when this keeper's checks of the partition have failed, one after another.
        let mut failing: Option<Instant> = None;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let is_keeper = *keeper.borrow_and_update();
            match (is_keeper, check) {
                (true, None) => {
                    // A new stint: every partition counts as warm until a check finds it cold.
                    check = Some(Instant::now());
                    checks = 0;
                }
                (false, Some(_)) => {
                    check = None;
                    cold = None;
                    failing = None;
                }
                _ => {}
            }
            let due = due_retry.or_else(|| self.due_for(worker, is_keeper));
            let own = (!is_keeper).then_some(own_reclaim);
            let wake = [check, due, own].into_iter().flatten().min();
            let woke = {
                let warmed = async {
                    match &mut cold {
                        Some(read) => read.await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    () = stop.cancelled() => Woke::Stop,
                    () = &mut changed => Woke::Again,
                    Ok(()) = keeper.changed() => Woke::Again,
                    () = warmed => Woke::Warmed,
                    () = sleep_until(wake) => Woke::Time,
                }
            };
            match woke {
                Woke::Stop => return,
                Woke::Again => continue,
                Woke::Warmed => {
                    // Warm again, and checked from the next check period on, as partition 0 is:
                    // no delivery can be taken over before a redelivery timeout anyway, and a
                    // read that keeps ending at once (it failed, or reads a stale replica)
                    // costs no more than a warm partition.
                    cold = None;
                    check = Some(Instant::now() + self.check_every());
                    continue;
                }
                Woke::Time => {}
            }
            let now = Instant::now();
            if due.is_some_and(|due| due <= now) {
                due_retry = self.move_due(worker, now).await;
            }
            if own.is_some_and(|own| own <= now) {
                own_reclaim = now + self.own_reclaim_every(spread.count);
                tracing::debug!(
                    worker,
                    partition = self.part,
                    "asking for a reclaim of its own (the safety net)"
                );
                self.ask_reclaim(now);
            }
            if check.is_none_or(|at| at > now) {
                continue;
            }
            // A cold partition checked again (now and then) gets a full check.
            let full = cold.take().is_some() || checks < 2 || checks.is_multiple_of(FULL_EVERY);
            checks = checks.wrapping_add(1);
            let checked = self
                .bounded(
                    worker,
                    "the keeper's check of a partition",
                    self.partition_check(worker, full),
                )
                .await;
            // Checks that keep failing (the partition's master unreachable from this process,
            // while partition 0's is not) would leave its stalled deliveries to the safety net,
            // hours away: after a lease's length of them, the keeper gives the lease up.
            failing = match checked {
                Ok(_) => None,
                Err(_) => {
                    let since = *failing.get_or_insert(now);
                    if now.duration_since(since) >= self.options.redelivery_timeout {
                        tracing::warn!(
                            worker,
                            partition = self.part,
                            "the keeper's checks of a partition keep failing; giving the lease up"
                        );
                        spread.resign.store(true, Ordering::Relaxed);
                        None
                    } else {
                        Some(since)
                    }
                }
            };
            check = Some(match checked {
                Ok(true) => {
                    tracing::debug!(
                        worker,
                        partition = self.part,
                        "the partition is cold: waiting for an entry instead of checking"
                    );
                    cold = Some(Box::pin(self.watch_cold(worker)));
                    now + self.check_every() * PRUNE_EVERY
                }
                Ok(false) => now + self.check_every(),
                Err(error) => {
                    self.unsure(&error);
                    now + RETRY
                }
            });
        }
    }

    /// The keeper's check of this partition: whether it is cold (nothing pending, the stream
    /// empty). Asks a reader of the partition for a reclaim when a delivery has stalled. A light
    /// check is one `XPENDING` (and a second, `stalled`, when anything is pending), unless
    /// nothing is pending: then, as for a `full` one, `survey.lua` also reads the stream's
    /// length and the schedule's head (and, when `full`, forgets idle consumers).
    async fn partition_check(&self, worker: &str, full: bool) -> Result<bool> {
        if !full && self.pending().await? > 0 {
            match self.stalled().await? {
                true => self.ask_a_reader().await?,
                false => self.none_stalled(),
            }
            return Ok(false);
        }
        let wakes = self.timer.locked().wakes;
        let timeout = self.options.redelivery_timeout;
        let mut invocation = SCRIPTS.survey.prepare_invoke();
        invocation
            .key(&self.keys.stream)
            .key(&self.keys.schedule)
            .key(&self.keys.fleet)
            .arg(worker)
            .arg(if full { "1" } else { "0" })
            .arg(millis(SystemTime::now() - timeout * FLEET_FORGET))
            .arg(millis_of(timeout));
        let (pending, next_due, length, stalled): (u64, i64, u64, u8) =
            self.invoke(&invocation).await?;
        tracing::debug!(
            worker,
            partition = self.part,
            pending,
            next_due,
            length,
            stalled,
            full,
            "the keeper's check of a partition"
        );
        self.timer.locked().learn_head(next_due, wakes);
        match stalled {
            1 => self.ask_a_reader().await?,
            _ => self.none_stalled(),
        }
        Ok(pending == 0 && length == 0)
    }

    /// Wait, in one blocking `XREAD` from the stream's start, until an entry is added to this
    /// cold partition, or the read fails (Redis may be gone: its connection with it). Dropped,
    /// it drops its connection, which ends the read on the server.
    async fn watch_cold(&self, worker: &str) {
        let reader = match self.reader().await {
            Ok(reader) => reader,
            Err(error) => {
                tracing::debug!(worker, partition = self.part, error = %Chain(&error), "could not wait on a cold partition; checking it instead");
                self.unsure(&error);
                return;
            }
        };
        let lost = self.unreachable.notified();
        tokio::pin!(lost);
        lost.as_mut().enable();
        let mut command = redis::cmd("XREAD");
        command
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(0)
            .arg("STREAMS")
            .arg(&self.keys.stream)
            .arg("0-0");
        self.sent.fetch_add(1, Ordering::Relaxed);
        let mut connection = reader.connection.clone();
        tokio::select! {
            reply = command.query_async::<Value>(&mut connection) => match reply {
                Ok(_) => {
                    tracing::debug!(worker, partition = self.part, "an entry was added to a cold partition");
                    self.readers.locked().push(reader);
                }
                Err(error) => {
                    let error = into_error(error);
                    tracing::debug!(worker, partition = self.part, error = %Chain(&error), "the read on a cold partition failed; checking it instead");
                    self.unsure(&error);
                }
            },
            () = &mut lost => {}
        }
    }
}
