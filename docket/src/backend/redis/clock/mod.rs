//! The fleet's clock: who looks after the periodic work while every worker blocks, and when.
//!
//! Idle workers block in `XREADGROUP` without a timeout, which costs nothing while they wait. Two
//! chores still need a clock: moving future tasks into the stream when they fall due, and
//! taking over the deliveries of a worker that died. One worker of the fleet at a time, the
//! **keeper**, holds a lease (`{name}:keeper`, as long as the redelivery timeout) and checks
//! every half timeout. A light check is two plain commands: it renews the lease and reads the
//! oldest delivery idle for the timeout, if any (`XPENDING … IDLE`). Only when one has stalled
//! does the keeper ask a reader, not its own process, to take stalled ones over: it adds a wake-up
//! `w reclaim` to the stream, and whichever worker reads it next has a worker of its process run
//! the reclaim tick. So a task that kills its process takes down a random reader, not the keeper
//! and with it every stalled delivery at each of its checks. (While that wake-up waits unread,
//! behind a backlog, the keeper's own process steps in: see `ask_a_reader`.) Every eighth check,
//! and the first two after it takes the lease, is a full one (`keep.lua`): it also reads the
//! schedule's head, for the keeper's timer, counts the fleet (`{name}:fleet`) and forgets idle
//! consumers. Each other
//! worker looks whether the lease is free (one `SET NX GET`) at random times that the fleet's
//! size spreads out, so that the fleet as a whole looks about once every two check periods: a
//! keeper that died is replaced about a lease and two check periods later, and an idle fleet
//! costs the same whatever its size.
//!
//! A future task falls due on the keeper's timer, and on the timer of the worker that a wake-up
//! reached (the producer of a task earlier than the schedule's head adds one, which exactly one
//! blocked worker reads), for as long as that worker is the one that moves the heads: one or
//! two workers tick, never the whole fleet. The clock runs beside the worker's claims, so a
//! keeper whose slots are all busy still moves due tasks on time.
//!
//! On a docket spread over several partitions, this is partition 0's clock, and its keeper is
//! the keeper of every partition: the others' clocks ([`follow`]) check a partition only while
//! anything is pending or queued there, and ask a reader of that partition in the same way.

mod follow;

use std::time::{Duration, SystemTime};

use redis::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::RedisBackend;
use super::codec::millis;
use super::connection::group_gone;
use super::keys::GROUP;
use super::scripts::SCRIPTS;
use crate::error::{Chain, Result};
use crate::stats::{WINDOW_MINUTES, minute_of};
use crate::sync::Locked;
use crate::time::{millis_of, sleep_until};

pub(crate) use self::follow::Spread;

/// How often a worker says again that it is running (`{name}:fleet`), and after how long
/// without it the keeper forgets it, in redelivery timeouts: every 6 hours and after 13 with
/// the default 5 minutes. A worker that dies with deliveries leaves the count when they are
/// taken over; one that dies idle, when it is forgotten.
const FLEET_REFRESH: u32 = 72;
const FLEET_FORGET: u32 = 156;

/// Every this many checks (and at the first two after it takes the lease) the keeper's check
/// is a full one: it also reads the schedule's head, counts the fleet and forgets idle consumers.
const FULL_EVERY: u32 = 8;

/// Every this many checks (and at the first after it takes the lease) the keeper's full check
/// also forgets the run counts of workers silent for longer than their window
/// (`{name}:stats`): every 2.7 hours with the default redelivery timeout.
const PRUNE_EVERY: u32 = 64;

/// Every this many redelivery timeouts (on average) a worker that is not the keeper runs a
/// reclaim of its own: should the lease ever be left unheld, stalled deliveries are still taken
/// over. It costs each worker a tick (three commands when nothing is pending) that often, and
/// once more as it starts (see `keep_time`).
const OWN_RECLAIM: f64 = 16.0;

/// The longest spread of a worker's looks at the lease, in check periods (see `look_every`).
const LOOK_SPREAD: f64 = 64.0;

/// How soon a chore that failed (Redis unreachable) is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// The longest a chore may take: each of its calls has a response timeout, but a call that
/// waits for a connection being made again may not, and a clock that waits for ever keeps no
/// time for the fleet.
const CHORE_LIMIT: Duration = Duration::from_secs(10);

/// What this worker does for the fleet's clock.
#[derive(Debug, Clone, Copy)]
enum Role {
    /// It holds the lease; its next check is at `next`.
    Keeper { next: Instant },
    /// Another holds it (or none did, last time it looked); it looks again at `next`.
    Looking { next: Instant },
}

impl RedisBackend {
    /// How often the keeper checks: twice a lease, so one late check does not lose it.
    pub(super) fn check_every(&self) -> Duration {
        (self.options.redelivery_timeout / 2).max(Duration::from_millis(50))
    }

    /// Keep the fleet's clock for `worker` until `stop` fires: take or look for the keeper's
    /// lease, run the keeper's checks, and move future tasks into the stream when they fall due
    /// (see the module docs). On a docket of several partitions this is partition 0's clock,
    /// and `spread` tells the other partitions' clocks ([`follow`]) whether this worker keeps
    /// time for the fleet.
    pub(crate) async fn keep_time(
        &self,
        worker: &str,
        stop: &CancellationToken,
        spread: Option<&Spread>,
    ) {
        let partitions = spread.map_or(1, Spread::count);
        let _runs = self.solo.clock_runs(worker);
        let mut role = Role::Looking {
            next: Instant::now(),
        };
        let mut workers: u64 = 1;
        let mut checks: u32 = 0;
        let mut registered: Option<Instant> = None;
        // A safety net under the lease: whatever becomes of the keeper, each worker asks for a
        // reclaim of its own now and then (see `OWN_RECLAIM`), and once as it starts (once the
        // grace at a process's start has passed): a process started after a crash takes over
        // what waits stalled (after a crash storm, a backlog) without waiting for the keeper's
        // next ask, or for a dead keeper's lease to lapse.
        let mut own_reclaim = Instant::now();
        // A due time whose tick failed is tried again from here.
        let mut due_retry: Option<Instant> = None;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.handed.locked().remove(worker)
                && let Role::Looking { next } = &mut role
            {
                *next = Instant::now();
            }
            let keeper = matches!(role, Role::Keeper { .. });
            let due = due_retry.or_else(|| self.due_for(worker, keeper));
            let chore = match role {
                Role::Keeper { next } | Role::Looking { next } => next,
            };
            let own = (!keeper).then_some(own_reclaim);
            let refresh = registered.map(|at| at + self.options.redelivery_timeout * FLEET_REFRESH);
            let wake = [Some(chore), due, refresh, own].into_iter().flatten().min();
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = &mut changed => continue,
                () = sleep_until(wake) => {}
            }
            let now = Instant::now();
            if due.is_some_and(|due| due <= now) {
                due_retry = self.move_due(worker, now).await;
            }
            if registered
                .is_none_or(|at| now >= at + self.options.redelivery_timeout * FLEET_REFRESH)
            {
                registered = match self
                    .bounded(worker, "joining the fleet", self.join_fleet(worker))
                    .await
                {
                    Ok(fleet) => {
                        workers = workers.max(fleet);
                        Some(now)
                    }
                    // Tried again with the next chore.
                    Err(_) => None,
                };
            }
            if own.is_some_and(|own| own <= now) {
                own_reclaim = now + self.own_reclaim_every(partitions);
                tracing::debug!(worker, "asking for a reclaim of its own (the safety net)");
                self.ask_reclaim(now);
            }
            if chore > now {
                continue;
            }
            role = match role {
                Role::Looking { .. } => match self
                    .bounded(worker, "looking at the lease", self.look(worker))
                    .await
                {
                    Ok(None) => {
                        tracing::debug!(worker, "took the keeper's lease");
                        if let Some(spread) = spread {
                            // A resignation another partition asked for in an earlier stint is
                            // not this one's: that partition's checks count afresh.
                            spread.take_resign();
                        }
                        checks = 0;
                        Role::Keeper { next: now }
                    }
                    Ok(Some(fleet)) => {
                        // A keeper new to the lease has not counted yet (it wrote 0).
                        if fleet > 0 {
                            workers = fleet;
                        }
                        let next = self.look_every(workers);
                        tracing::debug!(
                            worker,
                            workers,
                            ?next,
                            "the lease is held; looking again later"
                        );
                        Role::Looking { next: now + next }
                    }
                    Err(error) => {
                        self.unsure(&error);
                        Role::Looking { next: now + RETRY }
                    }
                },
                Role::Keeper { .. } => {
                    // At the first two checks (the fleet may still be starting), then now
                    // and then.
                    let full = checks < 2 || checks.is_multiple_of(FULL_EVERY);
                    let prune = checks.is_multiple_of(PRUNE_EVERY);
                    checks = checks.wrapping_add(1);
                    match self
                        .bounded(
                            worker,
                            "the keeper's check",
                            self.keeper_check(worker, workers, full, prune, spread),
                        )
                        .await
                    {
                        Ok(Some(fleet)) => {
                            workers = fleet;
                            Role::Keeper {
                                next: now + self.check_every(),
                            }
                        }
                        Ok(None) => {
                            tracing::debug!(worker, "gave the keeper's lease up");
                            // Not at once again: the turn of the worker a resigning keeper
                            // handed the lease to, or of the new keeper.
                            Role::Looking {
                                next: now + self.look_every(workers).max(self.check_every() * 4),
                            }
                        }
                        Err(error) => {
                            self.unsure(&error);
                            Role::Keeper { next: now + RETRY }
                        }
                    }
                }
            };
            if let Some(spread) = spread {
                spread.set_keeper(matches!(role, Role::Keeper { .. }));
            }
            self.solo.keeping(
                worker,
                matches!(role, Role::Keeper { .. }).then_some(workers),
            );
        }
    }

    /// Move the tasks that fell due into the stream; when that failed, the time to try again.
    async fn move_due(&self, worker: &str, now: Instant) -> Option<Instant> {
        let (wakes, known) = {
            let timer = self.timer.locked();
            (timer.wakes, timer.next_due.is_some())
        };
        match self
            .bounded(
                worker,
                "moving due tasks",
                self.tick_counting(worker, 1, false),
            )
            .await
        {
            Ok((_, moved)) => {
                // A worker a wake-up reached minds the heads after it while it is the one that
                // moves them: it stops when another was first (the keeper, or the worker a
                // later wake-up reached) or the schedule is empty; unless another wake-up
                // reached it meanwhile.
                let timer = self.timer.locked();
                let empty = timer.next_due == Some(None);
                if known && (moved == 0 || empty) && timer.wakes == wakes {
                    self.woken.locked().remove(worker);
                }
                None
            }
            Err(error) => {
                tracing::debug!(worker, error = %Chain(&error), "moving due tasks failed; trying again shortly");
                Some(now + RETRY)
            }
        }
    }

    /// When this worker's timer moves due tasks: at the schedule's head when it is the keeper,
    /// or when a wake-up reached it (it alone among the others knows of the new head).
    fn due_for(&self, worker: &str, keeper: bool) -> Option<Instant> {
        if !keeper && !self.woken.locked().contains(worker) {
            return None;
        }
        let known = self.timer.locked().next_due.is_some();
        match known {
            true => self.next_due(),
            // Unknown: a tick learns it.
            false => Some(Instant::now()),
        }
    }

    /// How long a worker that is not the keeper waits between reclaims of its own: 16 redelivery
    /// timeouts, give or take a quarter (80 minutes at the default 5), times the number of
    /// `partitions` (each has its own), so that a worker's safety net costs the same however
    /// many partitions the docket has.
    fn own_reclaim_every(&self, partitions: u32) -> Duration {
        let spread = OWN_RECLAIM * f64::from(partitions) * (0.75 + crate::key::random_unit() * 0.5);
        self.options.redelivery_timeout.mul_f64(spread)
    }

    /// How long a worker that is not the keeper waits before it looks at the lease again: at
    /// random, on average as long as two check periods times the number of other workers, so
    /// that the fleet looks about once every two check periods whatever its size.
    fn look_every(&self, workers: u64) -> Duration {
        let others = workers.saturating_sub(1).max(1) as f64;
        // Capped, so that a count inflated by workers that died idle (they stay counted until
        // forgotten) cannot put the next keeper off for long: up to 17 others the fleet's looks
        // cost the same; past that they grow slowly (100 workers: about 1.2 looks a minute).
        let spread = 0.25 + crate::key::random_unit() * ((4.0 * others).min(LOOK_SPREAD) - 0.25);
        self.check_every().mul_f64(spread)
    }

    /// Say that `worker` runs (`{name}:fleet`), for the keeper's count; returns how many do.
    async fn join_fleet(&self, worker: &str) -> Result<u64> {
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("ZADD")
            .arg(&self.keys.fleet)
            .arg(millis(SystemTime::now()))
            .arg(worker)
            .ignore()
            .cmd("ZCARD")
            .arg(&self.keys.fleet);
        let (workers,): (u64,) = self.pipeline(&pipeline).await?;
        Ok(workers)
    }

    /// Take the lease if it is free: `None` when taken; else the fleet's size its holder wrote
    /// (0 when it has not counted yet).
    async fn look(&self, worker: &str) -> Result<Option<u64>> {
        let mut command = redis::cmd("SET");
        command
            .arg(&self.keys.keeper)
            .arg(format!("0 {worker}"))
            .arg("NX")
            .arg("PX")
            .arg(millis_of(self.options.redelivery_timeout).max(1))
            .arg("GET");
        let before: Option<String> = self.query(&command).await?;
        Ok(before.map(|value| {
            value
                .split_once(' ')
                .and_then(|(workers, _)| workers.parse().ok())
                .unwrap_or(0)
        }))
    }

    /// The keeper's check: `None` when this worker no longer holds the lease; else the fleet's
    /// size. Asks a reader to take stalled deliveries over when one has stalled
    /// ([`ask_a_reader`](Self::ask_a_reader)), and resigns when another partition's checks kept
    /// failing (`spread`).
    ///
    /// A light check is two plain commands: renew the lease (`SET … GET`, which tells whether
    /// another worker took it meanwhile) and whether a delivery has stalled
    /// ([`stalled`](Self::stalled)). A `full` one
    /// (`keep.lua`) also reads the schedule's head, counts the fleet and forgets idle consumers;
    /// with `prune`, it also forgets the run counts of workers silent for longer than their
    /// window.
    async fn keeper_check(
        &self,
        worker: &str,
        workers: u64,
        full: bool,
        prune: bool,
        spread: Option<&Spread>,
    ) -> Result<Option<u64>> {
        // Another partition's checks kept failing (the ask is taken either way).
        let resign = spread.is_some_and(Spread::take_resign);
        let wakes = self.timer.locked().wakes;
        if !full && !resign {
            let lease = millis_of(self.options.redelivery_timeout).max(1);
            let mut renew = redis::cmd("SET");
            renew
                .arg(&self.keys.keeper)
                .arg(format!("{workers} {worker}"))
                .arg("PX")
                .arg(lease)
                .arg("GET");
            let before: Option<String> = self.query(&renew).await?;
            if let Some(before) = before.filter(|before| holder(before) != Some(worker)) {
                // Another worker took the lease while this one's had lapsed: it is the keeper.
                let mut restore = redis::cmd("SET");
                restore
                    .arg(&self.keys.keeper)
                    .arg(before)
                    .arg("PX")
                    .arg(lease);
                self.query::<()>(&restore).await?;
                return Ok(None);
            }
            match self.stalled().await? {
                true => self.ask_a_reader().await?,
                false => self.none_stalled(),
            }
            return Ok(Some(workers));
        }
        let mut invocation = SCRIPTS.keep.prepare_invoke();
        invocation
            .key(&self.keys.keeper)
            .key(&self.keys.stream)
            .key(&self.keys.schedule)
            .key(&self.keys.fleet)
            .key(&self.keys.stats)
            .arg(worker)
            .arg(millis_of(self.options.redelivery_timeout).max(1))
            .arg(millis(SystemTime::now()))
            .arg(workers)
            .arg("1")
            .arg(millis(
                SystemTime::now() - self.options.redelivery_timeout * FLEET_FORGET,
            ))
            .arg(if resign { "1" } else { "0" })
            .arg(millis_of(self.options.redelivery_timeout))
            .arg(match prune {
                // The oldest minute a window read now still counts.
                true => (minute_of(SystemTime::now()) + 1).saturating_sub(WINDOW_MINUTES),
                false => 0,
            });
        let (held, pending, next_due, workers, stalled): (u8, u64, i64, u64, u8) =
            self.invoke(&invocation).await?;
        tracing::debug!(
            worker,
            held,
            pending,
            stalled,
            resign,
            workers,
            "the keeper's full check"
        );
        if held == 0 {
            return Ok(None);
        }
        self.timer.locked().learn_head(next_due, wakes);
        match stalled {
            1 => self.ask_a_reader().await?,
            _ => self.none_stalled(),
        }
        Ok(Some(workers))
    }

    /// A delivery has stalled here: ask a worker that reads this partition, whichever reads
    /// next, to have its process take stalled ones over, with a wake-up `w reclaim`. Under load
    /// any worker with room reads it; idle, the one blocked longest. Not the keeper's own
    /// workers as a rule: a task that kills its process (it exits, or exhausts memory) would
    /// then take every stalled delivery down with it, keeper after keeper, each costing a
    /// hand-over, until healthy tasks among them were buried as poison.
    ///
    /// A wake-up waits its turn in the stream. Should the last one still be unread at the next
    /// check (behind a backlog every reader works through first, or every reader is busy), the
    /// keeper's own process takes stalled deliveries over meanwhile, and no other wake-up is
    /// added: one waiting is enough. Once read, should deliveries stay stalled (the reader's
    /// workers were too busy, or a suspect waits for a worker that holds nothing), the next
    /// check asks again.
    async fn ask_a_reader(&self) -> Result<()> {
        let last = self.timer.locked().ask.clone();
        if let Some(last) = last
            && !self.read_past(&last).await?
        {
            tracing::debug!(
                partition = self.part,
                "the keeper's last ask for a reclaim waits unread; its own process takes stalled deliveries over"
            );
            self.ask_reclaim(Instant::now());
            return Ok(());
        }
        let mut wake = redis::cmd("XADD");
        wake.arg(&self.keys.stream).arg("*").arg("w").arg("reclaim");
        let id: String = self.query(&wake).await?;
        self.timer.locked().ask = Some(id);
        Ok(())
    }

    /// Nothing has stalled here (a check found none): the next stall gets a wake-up at once.
    fn none_stalled(&self) {
        self.timer.locked().ask = None;
    }

    /// Whether the group has read the stream up to `id` or past it (`XINFO GROUPS`: its
    /// last delivered id). Should the server refuse to say (a user without `XINFO GROUPS`,
    /// say), the answer is no: the keeper's process then takes stalled deliveries over, as it
    /// would behind a backlog, rather than its check failing for as long as they stay stalled.
    async fn read_past(&self, id: &str) -> Result<bool> {
        let mut info = redis::cmd("XINFO");
        info.arg("GROUPS").arg(&self.keys.stream);
        match self
            .query::<redis::streams::StreamInfoGroupsReply>(&info)
            .await
        {
            Ok(reply) => Ok(reply.groups.iter().any(|group| {
                group.name == GROUP
                    && crate::backend::stream_order(&group.last_delivered_id)
                        >= crate::backend::stream_order(id)
            })),
            Err(error) if error.is_unavailable() => Err(error),
            Err(error) => {
                tracing::warn!(
                    partition = self.part,
                    error = %Chain(&error),
                    "could not look at the consumer group (XINFO GROUPS); the keeper's own process takes stalled deliveries over"
                );
                Ok(false)
            }
        }
    }

    /// How many deliveries are pending in the whole group (`XPENDING`'s summary): 0 when it has
    /// no group yet, as nothing was ever delivered.
    async fn pending(&self) -> Result<u64> {
        let mut summary = redis::cmd("XPENDING");
        summary.arg(&self.keys.stream).arg(GROUP);
        match self.query::<Value>(&summary).await {
            Ok(Value::Array(summary)) => Ok(match summary.first() {
                Some(Value::Int(count)) => u64::try_from(*count).unwrap_or(0),
                _ => 0,
            }),
            Ok(_) => Ok(0),
            Err(error) if group_gone(&error) => Ok(0),
            Err(error) => Err(error),
        }
    }

    /// Whether a delivery has stalled: one has been pending, unrenewed, for the redelivery
    /// timeout (`XPENDING … IDLE`, one entry at most), so a reclaim would take it over. Asking
    /// only then, not whenever anything is pending, spares a fleet busy with long tasks a
    /// wake-up each check (which would wait in the stream, unread, while every worker is busy).
    async fn stalled(&self) -> Result<bool> {
        let mut oldest = redis::cmd("XPENDING");
        oldest
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg("IDLE")
            .arg(millis_of(self.options.redelivery_timeout))
            .arg("-")
            .arg("+")
            .arg(1);
        match self.query::<Value>(&oldest).await {
            Ok(Value::Array(rows)) => Ok(!rows.is_empty()),
            Ok(_) => Ok(false),
            Err(error) if group_gone(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Run `chore`, giving up after [`CHORE_LIMIT`]: then Redis counts as unreachable (the
    /// readers reconnect) and the chore is tried again shortly.
    async fn bounded<T>(
        &self,
        worker: &str,
        what: &str,
        chore: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(CHORE_LIMIT, chore).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(worker, chore = what, limit = ?CHORE_LIMIT, "a periodic check did not return in time; trying again");
                Err(super::connection::unavailable(&format!(
                    "{what} did not return within {CHORE_LIMIT:?}"
                )))
            }
        }
    }

    /// Ask this process's workers for a reclaim tick (a delivery may have stalled): at once, or
    /// when an outage's grace ends. A reclaim planned for later (the pause before a look at
    /// suspects left behind) comes forward: a worker whose suspect settled takes the next now.
    pub(super) fn ask_reclaim(&self, now: Instant) {
        {
            let mut timer = self.timer.locked();
            let at = now.max(timer.not_before);
            timer.reclaim_at = Some(timer.reclaim_at.map_or(at, |planned| planned.min(at)));
        }
        // Blocked readers wait for the reclaim's time, and one of them runs the tick.
        self.chores.notify_waiters();
    }

    /// A chore failed: should Redis be unreachable, the blocked readers may be waiting on a
    /// dead connection; they reconnect.
    fn unsure(&self, error: &crate::error::Error) {
        tracing::debug!(error = %Chain(error), "a periodic check failed; trying again shortly");
        if error.is_unavailable() {
            self.outage();
            self.unreachable.notify_waiters();
        }
    }
}

/// The consumer named in a lease's value `<workers> <consumer>`.
fn holder(value: &str) -> Option<&str> {
    value.split_once(' ').map(|(_, consumer)| consumer)
}
