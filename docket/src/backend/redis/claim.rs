//! The claim engine: how a worker gets its next deliveries. A claim first takes back what a
//! failed read may have handed over (`recover`), runs a tick when the schedule's head is unknown
//! or the keeper asked for a reclaim (its check found a delivery stalled, and its wake-up
//! `w reclaim` reached this process) (`tick.lua`: promote, reclaim, bury poison), then blocks in `XREADGROUP` on a dedicated connection, without a timeout, until
//! an entry arrives, a reclaim is asked for or the worker stops. Future tasks are moved into the
//! stream by the fleet's clock ([`clock`](super::clock)) on the shared connection, which wakes
//! the read. `sort` turns entries into deliveries.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use redis::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::RedisBackend;
use super::codec::{self, Entry, Wake, millis};
use super::connection::{RESPONSE_TIMEOUT, group_gone, into_error, unavailable};
use super::keys::GROUP;
use super::reply::{PendingRow, first_stream, pending_rows, stream_entries};
use super::scripts::SCRIPTS;
use super::solo::Suspects;
use crate::backend::{Delivery, DeliveryId, Message};
use crate::error::{Error, Result};
use crate::sync::{Locked, Member};
use crate::time::{millis_of, sleep_until};

/// The most future tasks one tick moves into the stream.
pub(super) const PROMOTE_BATCH: usize = 1000;

/// How soon a worker looks again at stalled deliveries it left behind.
pub(super) const SUSPECT_PAUSE: Duration = Duration::from_millis(100);

/// A delivery taken over that has now been delivered this often was taken over before: a
/// suspect ([`solo`](super::solo)).
const SUSPECT_COUNT: u64 = 3;

/// The most lost deliveries read back at once.
pub(super) const RECOVER_BATCH: usize = 1000;

/// The most deliveries one worker holds pending at once. Upstash refuses a read that would take
/// a consumer past 1,000 pending entries; a worker stays at or under it at any concurrency.
pub(crate) const MOST_PENDING: usize = 1000;

/// How long a worker at [`MOST_PENDING`], or refused a read for holding too many, waits before
/// it reads again: its settlements free room meanwhile.
const FULL_PAUSE: Duration = Duration::from_millis(100);

/// A connection that blocks in `XREADGROUP`. A worker that stops drops it, which ends the
/// blocked read on the server: no `CLIENT UNBLOCK` (which managed services lack) is needed.
pub(super) struct Reader {
    pub(super) connection: super::connection::Link,
    /// The runtime its connection's task runs on: used from no other.
    pub(super) runtime: tokio::runtime::Id,
}

/// What the claims and the clock know of the schedule and of stalled deliveries.
#[derive(Debug)]
pub(super) struct Timer {
    /// The earliest due time in the schedule (ms), as of the last tick or check; `None` when
    /// unknown (at the start, and after a wake-up said it changed).
    pub(super) next_due: Option<Option<u64>>,
    /// Counts the wake-ups seen: a tick or check whose answer was sent before the latest one
    /// does not overwrite what it said (the head is unknown again instead).
    pub(super) wakes: u64,
    /// When a claim of this process runs the reclaim tick: set when a worker here reads the
    /// keeper's wake-up `w reclaim` (a delivery has stalled), when this process is the keeper's
    /// and its last such wake-up still waits unread, or by the safety net's reclaim of its own;
    /// `None` when none is wanted.
    pub(super) reclaim_at: Option<Instant>,
    /// The keeper's last wake-up `w reclaim` in this partition's stream (its id), while
    /// deliveries stay stalled: until the group has read past it, the keeper adds no other.
    pub(super) ask: Option<String>,
    /// No reclaim before this: live workers need a whole redelivery timeout after an outage (or
    /// this process's start) to renew their deliveries.
    pub(super) not_before: Instant,
    /// Where the last reclaim scan stopped.
    pub(super) cursor: String,
}

impl Timer {
    /// Take in the schedule's head as a tick or check read it (ms; negative: none), unless a
    /// wake-up arrived since it was asked (`wakes` then): its answer may predate the change.
    pub(super) fn learn_head(&mut self, next_due: i64, wakes: u64) {
        self.next_due = (self.wakes == wakes).then(|| u64::try_from(next_due).ok());
    }
}

/// How a blocking read ended.
enum Read {
    /// The server answered (entries, or none when the block ran out).
    Reply(Value),
    /// The read was left before the server answered (the worker stops, or Redis may be gone):
    /// its connection must be dropped, which ends it on the server.
    Left,
    /// A reclaim tick run while the read waited took these deliveries over: the read is left
    /// as above, and these are handed out.
    Ticked(Vec<Entry>),
}

impl RedisBackend {
    /// Claim up to `max` deliveries for `worker` (see
    /// [`Backend::claim`](crate::backend::Backend::claim)): deliveries lost to a failed read
    /// first, then a tick when one is due, then a blocking read.
    pub(super) async fn take(
        &self,
        worker: &str,
        max: usize,
        max_wait: Option<Duration>,
        stop: &CancellationToken,
    ) -> Result<Vec<Delivery>> {
        // Never more pending to this worker than a managed Redis takes.
        let max = max.min(MOST_PENDING.saturating_sub(self.holding(worker)));
        if max == 0 {
            pause(FULL_PAUSE, stop).await;
            return Ok(Vec::new());
        }
        let give_up = max_wait.map(|wait| Instant::now() + wait);
        let mut reader = Some(self.reader().await?);
        let result: Result<Vec<Delivery>> = async {
            loop {
                if self.lost_reads.locked().remove(worker) {
                    let lost = self.recover(worker, max).await?;
                    let deliveries = self.sort(worker, lost, false).await;
                    if !deliveries.is_empty() {
                        return Ok(deliveries);
                    }
                }
                if self.reclaim_due() {
                    let reclaimed = self.tick(worker, max, true).await?;
                    let deliveries = self.sort(worker, reclaimed, true).await;
                    if !deliveries.is_empty() {
                        return Ok(deliveries);
                    }
                }
                let current = match &mut reader {
                    Some(current) => current,
                    None => reader.insert(self.reader().await?),
                };
                let block = self.block_for(give_up);
                let read = self.read(current, worker, max, block, stop).await;
                let reply = match read {
                    Err(error) if group_gone(&error) => {
                        self.create_group().await?;
                        continue;
                    }
                    // Back-pressure, not a lost read: the server delivered nothing.
                    Err(Error::Backend { source }) if is_too_many_pending(&*source) => {
                        tracing::debug!(worker, "the server holds as many pending entries for this worker as it takes; reading again shortly");
                        pause(FULL_PAUSE, stop).await;
                        return Ok(Vec::new());
                    }
                    Ok(Read::Left) => {
                        // The read may have taken entries whose reply never comes: the next
                        // turn looks for them.
                        drop(reader.take());
                        self.lost(worker);
                        if stop.is_cancelled() {
                            return Ok(Vec::new());
                        }
                        continue;
                    }
                    Ok(Read::Ticked(reclaimed)) => {
                        drop(reader.take());
                        self.lost(worker);
                        let deliveries = self.sort(worker, reclaimed, true).await;
                        if deliveries.is_empty() {
                            continue;
                        }
                        return Ok(deliveries);
                    }
                    Ok(Read::Reply(reply)) => reply,
                    Err(error) => return Err(error),
                };
                failpoint!(redis "redis.read.reply");
                let entries = self.decode(stream_entries(first_stream(reply)));
                let deliveries = self.sort(worker, entries, false).await;
                let expired = give_up.is_some_and(|limit| Instant::now() >= limit);
                if !deliveries.is_empty() || stop.is_cancelled() || expired {
                    return Ok(deliveries);
                }
            }
        }
        .await;
        self.heard(&result);
        match (&result, reader) {
            (Err(error), Some(reader)) => {
                // Redis may have handed entries over (a read or a reclaim) whose reply never
                // arrived: the next claim looks for them.
                self.lost(worker);
                if !error.is_unavailable() {
                    self.readers.locked().push(reader);
                }
                // An unreachable server: drop the connection; make a new one next time.
            }
            (Err(_), None) => self.lost(worker),
            // Stopping: the reader may still be blocked on the server. Dropping its connection
            // ends the read there; whatever it delivered in the meantime is given back when the
            // worker retires.
            (Ok(_), Some(reader)) if stop.is_cancelled() => drop(reader),
            (Ok(_), Some(reader)) => self.readers.locked().push(reader),
            (Ok(_), None) => {}
        }
        result
    }

    /// Whether `worker`'s claim is blocked in a read, waiting for work.
    pub(crate) fn parked(&self, worker: &str) -> bool {
        self.parked.locked().contains(worker)
    }

    /// Whether a claim runs the reclaim tick before it reads (the keeper's check asked for it).
    fn reclaim_due(&self) -> bool {
        let timer = self.timer.locked();
        timer.reclaim_at.is_some_and(|at| Instant::now() >= at)
    }

    /// How long a read blocks: until a reclaim asked for falls due, or `give_up`; `None` for
    /// no limit.
    fn block_for(&self, give_up: Option<Instant>) -> Option<Duration> {
        let reclaim_at = self.timer.locked().reclaim_at;
        let until = match (reclaim_at, give_up) {
            (Some(at), Some(limit)) => Some(at.min(limit)),
            (at, limit) => at.or(limit),
        };
        until.map(|until| until.saturating_duration_since(Instant::now()))
    }

    /// A reader of the current runtime: a pooled one, or a new connection.
    pub(super) async fn reader(&self) -> Result<Reader> {
        let runtime = tokio::runtime::Handle::current().id();
        {
            let mut readers = self.readers.locked();
            if let Some(at) = readers.iter().position(|reader| reader.runtime == runtime) {
                return Ok(readers.swap_remove(at));
            }
            // Readers of runtimes that ended are dead: their connections' tasks are gone.
            let shared = self.shared.locked();
            readers.retain(|reader| {
                shared
                    .iter()
                    .any(|shared| shared.runtime == reader.runtime && !shared.ended.is_cancelled())
            });
        }
        let connection = self.dedicated().await?;
        Ok(Reader {
            connection,
            runtime,
        })
    }

    /// Block until entries arrive, `wait` passes (`None`: no limit) or the read is left: the
    /// worker stops, or the clock found Redis unreachable (a read without a timeout on a dead
    /// connection would wait forever). A reclaim that falls due meanwhile runs beside it.
    async fn read(
        &self,
        reader: &mut Reader,
        worker: &str,
        max: usize,
        wait: Option<Duration>,
        stop: &CancellationToken,
    ) -> Result<Read> {
        let chores = self.chores.notified();
        tokio::pin!(chores);
        chores.as_mut().enable();
        if stop.is_cancelled() || self.reclaim_due() {
            return Ok(Read::Reply(Value::Nil));
        }
        // `BLOCK 0` waits without a limit.
        let block = wait.map_or(0, |wait| {
            u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        let mut command = redis::cmd("XREADGROUP");
        command
            .arg("GROUP")
            .arg(GROUP)
            .arg(worker)
            .arg("COUNT")
            .arg(max)
            .arg("BLOCK")
            .arg(block)
            .arg("STREAMS")
            .arg(&self.keys.stream)
            .arg(">");
        failpoint!(redis "redis.read.send");
        self.sent.fetch_add(1, Ordering::Relaxed);
        let mut connection = reader.connection.clone();
        let read = super::connection::query_whole(&mut connection, &command);
        tokio::pin!(read);
        // A dead peer that never answers must not hang the worker: give up a while after the
        // block should have ended.
        let deadline = sleep_until(wait.map(|wait| Instant::now() + wait + RESPONSE_TIMEOUT));
        tokio::pin!(deadline);
        // Waiting for work, not stuck (its health).
        let _parked = Member::of(&self.parked, worker);
        let lost = self.unreachable.notified();
        tokio::pin!(lost);
        lost.as_mut().enable();
        loop {
            let reclaim_at = self.timer.locked().reclaim_at;
            tokio::select! {
                biased;
                reply = &mut read => return reply.map(Read::Reply).map_err(into_error),
                () = stop.cancelled() => return Ok(Read::Left),
                () = &mut deadline => return Err(unavailable("the blocking read did not return")),
                // Redis may be gone, and this connection with it.
                () = &mut lost => return Ok(Read::Left),
                () = &mut chores => {
                    // The reclaim's time changed: wait for the new one.
                    chores.set(self.chores.notified());
                    chores.as_mut().enable();
                    continue;
                }
                () = sleep_until(reclaim_at) => {}
            }
            if !self.reclaim_due() {
                continue;
            }
            // A reclaim is due: run it beside the read, which goes on unless it took some over.
            match self.tick(worker, max, true).await {
                Ok(entries) if entries.is_empty() => {}
                Ok(entries) => return Ok(Read::Ticked(entries)),
                Err(error) => {
                    tracing::debug!(worker, error = %crate::error::Chain(&error), "the reclaim check failed");
                    return Ok(Read::Left);
                }
            }
        }
    }

    /// When the earliest future task falls due, as of the last tick.
    pub(super) fn next_due(&self) -> Option<Instant> {
        let next_due = self.timer.locked().next_due;
        next_due
            .flatten()
            .map(|due| crate::time::instant_at(codec::from_millis(due)))
    }

    /// Move due tasks into the stream and, when it is time and `may_reclaim`, take over
    /// stalled deliveries.
    pub(super) async fn tick(
        &self,
        worker: &str,
        max: usize,
        may_reclaim: bool,
    ) -> Result<Vec<Entry>> {
        Ok(self.tick_counting(worker, max, may_reclaim).await?.0)
    }

    /// [`tick`](Self::tick), and how many future tasks it moved into the stream.
    pub(super) async fn tick_counting(
        &self,
        worker: &str,
        max: usize,
        may_reclaim: bool,
    ) -> Result<(Vec<Entry>, usize)> {
        let now = Instant::now();
        let (reclaim, cursor, wakes) = {
            let timer = self.timer.locked();
            (
                may_reclaim
                    && now >= timer.not_before
                    && timer.reclaim_at.is_some_and(|at| now >= at),
                timer.cursor.clone(),
                timer.wakes,
            )
        };
        let idle = if reclaim {
            millis_of(self.options.redelivery_timeout)
        } else {
            0
        };
        // A suspect goes only to a worker that holds nothing in any partition, or, once it is
        // starved, to one that holds no other suspect (see `solo`).
        let (suspects, reserved) = match reclaim {
            true => self.solo.reserve(self, worker),
            false => (Suspects::None, None),
        };
        let mut invocation = SCRIPTS.tick.prepare_invoke();
        self.keys_for(&mut invocation);
        invocation
            .key(&self.keys.fleet)
            .arg(millis(SystemTime::now()))
            .arg(PROMOTE_BATCH)
            .arg(worker)
            .arg(idle)
            .arg(&cursor)
            .arg(max.max(1))
            .arg(suspects.arg())
            .arg(self.options.max_deliveries);
        let (next_due, cursor, reclaimed, deliveries, more, dropped, moved): (
            i64,
            String,
            Value,
            Vec<u64>,
            u8,
            Value,
            usize,
        ) = self.invoke(&invocation).await?;
        self.drop_entries(worker, stream_entries(dropped));
        {
            let mut timer = self.timer.locked();
            timer.learn_head(next_due, wakes);
            if reclaim {
                timer.cursor = cursor;
                // Stalled deliveries left behind (suspects are taken one at a time) are looked
                // at again soon; the others at the keeper's next check that finds one stalled.
                timer.reclaim_at = (more == 1).then(|| now + SUSPECT_PAUSE);
            } else if timer.reclaim_at.is_some_and(|at| at <= now) && now < timer.not_before {
                // Asked for during an outage's grace: at its end.
                timer.reclaim_at = Some(timer.not_before);
            }
        }
        self.changed.notify_waiters();
        self.chores.notify_waiters();
        let entries = self.decode(stream_entries(reclaimed));
        // Held until this returns (burials below may take a while), and a moment after, for
        // the caller to sort what it took into the worker's deliveries.
        let _reserved = match reserved {
            Some(reserved) if entries.is_empty() => {
                reserved.took_nothing();
                None
            }
            reserved => reserved,
        };
        if !entries.is_empty() {
            tracing::warn!(
                worker,
                count = entries.len(),
                "took over deliveries whose worker stopped renewing them"
            );
        }
        // A task whose every worker died with it (it exits the process, or exhausts its memory)
        // would be taken over forever: past the limit it becomes a dead letter instead.
        let mut alive = Vec::with_capacity(entries.len());
        for (entry, delivered) in entries.into_iter().zip(deliveries) {
            match entry {
                Entry::Task { id, message } if delivered > self.options.max_deliveries => {
                    let reason = format!(
                        "delivered {delivered} times and never settled: each worker that took \
                         it went silent (crashed, was killed, or froze) while running it"
                    );
                    tracing::error!(key = %message.key, task = %message.task, %reason, "task moved to the dead letters");
                    let letter = codec::encode_dead(&message, &reason, SystemTime::now(), None);
                    match self
                        .bury_entry(worker, &id, &message.key, &letter, false)
                        .await
                    {
                        Ok(_) => self.dropped_by(worker, id, message),
                        Err(error) => {
                            // It stays pending to this worker, unseen: recovered by its next
                            // claim and run once more (recovery keeps the count it has).
                            tracing::warn!(key = %message.key, error = %crate::error::Chain(&error), "could not bury a poison task");
                            self.lost(worker);
                        }
                    }
                }
                Entry::Task { id, message } => {
                    if delivered >= SUSPECT_COUNT {
                        self.solo.holds_suspect(self.part, &id, worker);
                    }
                    alive.push(Entry::Task { id, message });
                }
                entry => alive.push(entry),
            }
        }
        Ok((alive, moved))
    }

    /// Whether `worker` holds no delivery (none running, none being settled).
    pub(super) fn holds_nothing(&self, worker: &str) -> bool {
        self.holding(worker) == 0
    }

    /// How many deliveries `worker` holds: running, or being settled (acknowledgements
    /// included). Each is an entry pending to it on the server.
    pub(super) fn holding(&self, worker: &str) -> usize {
        let in_flight = self.in_flight.locked();
        in_flight
            .values()
            .filter(|holder| *holder == worker)
            .count()
    }

    /// Remember that deliveries may have reached `worker` without it seeing them: the next claim
    /// looks for them first.
    pub(super) fn lost(&self, worker: &str) {
        self.lost_reads.locked().insert(worker.to_owned());
    }

    /// Entries delivered to `worker` whose delivery it never saw: the reply of a read (or a
    /// reclaim) that failed after Redis had handed them over, or entries it could not sort. They
    /// are found in the worker's pending list, less those it holds, and claimed again at the
    /// delivery count they have: losing a reply is no delivery. At most `max` are handed back
    /// (the worker's free slots); should more be lost, the next claim takes the rest.
    pub(super) async fn recover(&self, worker: &str, max: usize) -> Result<Vec<Entry>> {
        let mut pending = redis::cmd("XPENDING");
        pending
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(RECOVER_BATCH)
            .arg(worker);
        let pending: Value = match self.query(&pending).await {
            // The stream or its group is gone (Redis restarted without its data): nothing was
            // delivered that could be lost.
            Err(error) if group_gone(&error) => {
                return Ok(Vec::new());
            }
            result => result?,
        };
        let mut lost: Vec<PendingRow> = {
            let in_flight = self.in_flight.locked();
            pending_rows(pending)
                .into_iter()
                .filter(|row| !in_flight.contains_key(&row.id))
                .collect()
        };
        if lost.is_empty() {
            return Ok(Vec::new());
        }
        if lost.len() > max {
            lost.truncate(max);
            self.lost(worker);
        }
        tracing::warn!(
            worker,
            count = lost.len(),
            "recovering deliveries lost with a failed read"
        );
        // Another worker may take one of these over from here on (it had stalled): the script
        // claims back only those still pending to this worker.
        failpoint!(redis "claim.recover");
        let mut invocation = SCRIPTS.recover.prepare_invoke();
        invocation
            .key(&self.keys.stream)
            .key(&self.keys.index)
            .arg(worker);
        for row in &lost {
            invocation.arg(&row.id).arg(row.delivered);
        }
        let (handed, dropped): (Value, Value) = self.invoke(&invocation).await?;
        self.drop_entries(worker, stream_entries(dropped));
        let entries = self.decode(stream_entries(handed));
        // A suspect taken over by a reclaim whose reply was lost is a suspect still (a task:
        // wake-ups and garbled entries are settled otherwise).
        let suspects: Vec<&str> = lost
            .iter()
            .filter(|row| row.delivered >= SUSPECT_COUNT)
            .map(|row| row.id.as_str())
            .collect();
        for entry in &entries {
            if let Entry::Task { id, .. } = entry
                && suspects.contains(&id.as_str())
            {
                self.solo.holds_suspect(self.part, id, worker);
            }
        }
        Ok(entries)
    }

    /// Remember deliveries a script settled instead of handing them to `worker`.
    pub(super) fn drop_entries(&self, worker: &str, entries: Vec<(String, Vec<Value>)>) {
        for entry in self.decode(entries) {
            if let Entry::Task { id, message } = entry {
                self.dropped_by(worker, id, message);
            }
        }
    }

    pub(super) fn dropped_by(&self, worker: &str, id: String, message: Message) {
        self.dropped
            .locked()
            .entry(worker.to_owned())
            .or_default()
            .push(Delivery {
                id: DeliveryId::Stream {
                    part: self.part,
                    id,
                },
                message,
                redelivered: true,
            });
    }

    pub(super) fn decode(&self, raw: Vec<(String, Vec<Value>)>) -> Vec<Entry> {
        raw.into_iter()
            .map(|(id, fields)| codec::decode_entry(id, &fields, self.options.max_payload))
            .collect()
    }

    /// Split entries handed to `worker` into deliveries, settling wake-ups and burying garbled
    /// entries. `redelivered`: the entries were taken over from a worker that went silent.
    /// Never fails: a delivery is never lost here; what cannot be settled now stays pending to
    /// the worker and is recovered by its next claim.
    pub(super) async fn sort(
        &self,
        worker: &str,
        entries: Vec<Entry>,
        redelivered: bool,
    ) -> Vec<Delivery> {
        let mut deliveries = Vec::with_capacity(entries.len());
        let mut wakes = Vec::new();
        let mut garbled = Vec::new();
        let (mut head_moved, mut asked) = (false, false);
        {
            let mut in_flight = self.in_flight.locked();
            for entry in entries {
                match entry {
                    // Held here already: a reclaim that found this worker's own delivery (its
                    // renewals fell behind) only renewed it; it runs once.
                    Entry::Task { id, .. } if in_flight.contains_key(&id) => {}
                    Entry::Task { id, message } => {
                        in_flight.insert(id.clone(), worker.to_owned());
                        deliveries.push(Delivery {
                            id: DeliveryId::Stream {
                                part: self.part,
                                id,
                            },
                            message,
                            redelivered,
                        });
                    }
                    Entry::Wake { id, kind } => {
                        match kind {
                            Wake::Head => head_moved = true,
                            // The keeper gave partition 0's lease up: this worker's clock
                            // takes it. (On another partition, a keeper of an earlier
                            // version, which kept a lease in each, handed that one over: a
                            // reclaim is what its keeper would have done.)
                            Wake::Handoff if self.part == 0 => {
                                self.handed.locked().insert(worker.to_owned());
                                self.changed.notify_waiters();
                            }
                            Wake::Handoff | Wake::Reclaim => asked = true,
                        }
                        wakes.push(id);
                    }
                    entry @ Entry::Garbled { .. } => garbled.push(entry),
                }
            }
        }
        for entry in garbled {
            let Entry::Garbled {
                id,
                key,
                fields,
                reason,
            } = entry
            else {
                continue;
            };
            let key = key.unwrap_or_else(|| format!("garbled:{id}"));
            tracing::error!(%key, entry = %id, %reason, "undecodable stream entry moved to the dead letters");
            let letter = codec::encode_garbled(&fields, &reason, SystemTime::now());
            if let Err(error) = self.bury_entry(worker, &id, &key, &letter, true).await {
                tracing::warn!(entry = %id, error = %crate::error::Chain(&error), "could not bury an undecodable entry");
                self.lost(worker);
            }
        }
        if head_moved {
            // The schedule's head changed: look at it before blocking again, and move its
            // tasks when they fall due (this worker's clock).
            {
                let mut timer = self.timer.locked();
                timer.next_due = None;
                timer.wakes += 1;
            }
            self.woken.locked().insert(worker.to_owned());
            self.changed.notify_waiters();
        }
        if asked {
            // The keeper found a delivery stalled here, and asks this process (this worker's
            // next turn, unless another of its workers is first) to take stalled ones over.
            tracing::debug!(
                worker,
                partition = self.part,
                "the keeper asked for a reclaim"
            );
            self.ask_reclaim(Instant::now());
        }
        if !wakes.is_empty() {
            let wakes: Vec<(&str, &str)> = wakes.iter().map(|id| (id.as_str(), "")).collect();
            if let Err(error) = self.acknowledge(&wakes).await {
                tracing::debug!(error = %crate::error::Chain(&error), "could not settle wake-ups");
                self.lost(worker);
            }
        }
        deliveries
    }

    pub(super) async fn bury_entry(
        &self,
        worker: &str,
        id: &str,
        key: &str,
        letter: &str,
        always: bool,
    ) -> Result<bool> {
        let mut invocation = SCRIPTS.bury.prepare_invoke();
        invocation
            .key(&self.keys.stream)
            .key(&self.keys.index)
            .key(&self.keys.dead)
            .key(&self.keys.died)
            .arg(id)
            .arg(key)
            .arg(letter)
            .arg(if always { "1" } else { "0" })
            .arg(worker)
            .arg(millis(SystemTime::now()))
            .arg(self.options.dead_letters_kept)
            .arg(millis_of(self.options.dead_letter_age));
        Ok(self.invoke::<i64>(&invocation).await? == 1)
    }
}

/// Wait `pause`, or until `stop` fires.
async fn pause(pause: Duration, stop: &CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(pause) => {}
        () = stop.cancelled() => {}
    }
}

/// Whether the server refused a read because the consumer holds as many pending entries as it
/// allows (Upstash: "Pending Entries List limit per consumer is about to be reached").
fn is_too_many_pending(error: &(dyn std::error::Error + Send + Sync)) -> bool {
    error.to_string().contains("Pending Entries List limit")
}
