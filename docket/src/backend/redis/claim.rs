//! The claim engine: how a worker gets its next deliveries. A claim first takes back what a
//! failed read may have handed over (`recover`), runs a tick when the local timer says future
//! tasks are due or stalled deliveries may be waiting (`tick.lua`: promote, reclaim, bury
//! poison), then blocks in `XREADGROUP` on a dedicated connection until an entry arrives, a
//! future task falls due or the worker stops. `sort` turns entries into deliveries.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use redis::Value;
use redis::aio::MultiplexedConnection;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::RedisBackend;
use super::codec::{self, Entry, millis};
use super::connection::{RESPONSE_TIMEOUT, into_error, unavailable};
use super::keys::GROUP;
use super::reply::{PendingRow, first_stream, pending_rows, stream_entries};
use super::scripts::SCRIPTS;
use crate::backend::{Delivery, DeliveryId, Message};
use crate::error::{Error, Result};
use crate::sync::Locked;
use crate::time::{millis_of, sleep_until};

/// The longest a worker blocks without a look at the schedule and for stalled deliveries.
pub(crate) const MAX_IDLE_WAIT: Duration = Duration::from_secs(75);

/// The most future tasks one tick moves into the stream.
pub(super) const PROMOTE_BATCH: usize = 1000;

/// How soon a worker looks again at stalled deliveries it left behind.
pub(super) const SUSPECT_PAUSE: Duration = Duration::from_millis(100);

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
    pub(super) connection: MultiplexedConnection,
    /// The runtime its connection's task runs on: used from no other.
    pub(super) runtime: tokio::runtime::Id,
}

/// When the next tick is needed.
#[derive(Debug)]
pub(super) struct Timer {
    /// The earliest due time in the schedule (ms), as of the last tick; `None` when unknown.
    pub(super) next_due: Option<Option<u64>>,
    /// When to look for stalled deliveries next.
    pub(super) next_reclaim: Instant,
    /// Where the last reclaim scan stopped.
    pub(super) cursor: String,
}

impl RedisBackend {
    /// Claim up to `max` deliveries for `worker` (see
    /// [`Backend::claim`](crate::backend::Backend::claim)): deliveries lost to a failed read
    /// first, then a tick when the timer says one is due, then a blocking read.
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
        let mut reader = self.reader().await?;
        let result: Result<Vec<Delivery>> = async {
            if self.lost_reads.locked().remove(worker) {
                let lost = self.recover(worker).await?;
                let deliveries = self.sort(worker, lost, false).await;
                if !deliveries.is_empty() {
                    return Ok(deliveries);
                }
            }
            loop {
                let wait = match self.wait(give_up) {
                    Some(wait) => wait,
                    None => {
                        let reclaimed = self.tick(worker, max, true).await?;
                        let deliveries = self.sort(worker, reclaimed, true).await;
                        if !deliveries.is_empty() {
                            return Ok(deliveries);
                        }
                        self.wait(give_up).unwrap_or(Duration::ZERO)
                    }
                };
                let reply = match self.read(&mut reader, worker, max, wait, stop).await {
                    Err(Error::Backend { source }) if source.to_string().contains("NOGROUP") => {
                        self.create_group().await?;
                        continue;
                    }
                    // Back-pressure, not a lost read: the server delivered nothing.
                    Err(Error::Backend { source }) if is_too_many_pending(&*source) => {
                        tracing::debug!(worker, "the server holds as many pending entries for this worker as it takes; reading again shortly");
                        pause(FULL_PAUSE, stop).await;
                        return Ok(Vec::new());
                    }
                    reply => reply?,
                };
                failpoint!(redis "redis.reply");
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
        match &result {
            Err(error) => {
                // Redis may have handed entries over (a read or a reclaim) whose reply never
                // arrived: the next claim looks for them.
                self.lost(worker);
                if !error.is_unavailable() {
                    self.readers.locked().push(reader);
                }
                // An unreachable server: drop the connection; make a new one next time.
            }
            // Stopping: the reader may still be blocked on the server. Dropping its connection
            // ends the read there; whatever it delivered in the meantime is given back when the
            // worker retires.
            Ok(_) if stop.is_cancelled() => drop(reader),
            Ok(_) => self.readers.locked().push(reader),
        }
        result
    }

    /// How often the reclaim check runs: often enough that a stalled delivery waits little past
    /// the redelivery timeout, rarely enough to keep an idle worker near-silent.
    pub(super) fn reclaim_every(&self) -> Duration {
        (self.options.redelivery_timeout / 4).clamp(Duration::from_millis(100), MAX_IDLE_WAIT)
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

    /// Block until entries arrive, `wait` passes or `stop` fires.
    ///
    /// Redis ends a blocked read only on its own clock tick (`hz`, 10 a second by default), so a
    /// read timed to end when a future task falls due would start it up to 100 ms late. Instead,
    /// a local timer fires at the due time and moves the task into the stream, which wakes the
    /// read at once.
    pub(super) async fn read(
        &self,
        reader: &mut Reader,
        worker: &str,
        max: usize,
        wait: Duration,
        stop: &CancellationToken,
    ) -> Result<Value> {
        if stop.is_cancelled() {
            return Ok(Value::Nil);
        }
        let block = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
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
        failpoint!(redis "redis.send");
        self.sent.fetch_add(1, Ordering::Relaxed);
        let mut connection = reader.connection.clone();
        let read = command.query_async::<Value>(&mut connection);
        tokio::pin!(read);
        // A dead peer that never answers must not hang the worker: give up a while after the
        // block should have ended.
        let deadline = tokio::time::sleep(wait + RESPONSE_TIMEOUT);
        tokio::pin!(deadline);
        let due = self.next_due().filter(|due| *due < Instant::now() + wait);
        let due_timer = sleep_until(due);
        tokio::pin!(due_timer);
        let mut promoted = false;
        loop {
            tokio::select! {
                biased;
                reply = &mut read => return reply.map_err(into_error),
                // The caller drops the reader, which ends the read on the server.
                () = stop.cancelled() => return Ok(Value::Nil),
                () = &mut deadline => return Err(unavailable("the blocking read did not return")),
                () = &mut due_timer, if !promoted => {
                    promoted = true;
                    if let Err(error) = self.tick(worker, max, false).await {
                        tracing::debug!(error = %crate::error::Chain(&error), "moving due tasks failed");
                    }
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
        let now = Instant::now();
        let (reclaim, cursor) = {
            let timer = self.timer.locked();
            (
                may_reclaim && now >= timer.next_reclaim,
                timer.cursor.clone(),
            )
        };
        let idle = if reclaim {
            millis_of(self.options.redelivery_timeout)
        } else {
            0
        };
        let mut invocation = SCRIPTS.tick.prepare_invoke();
        self.keys_for(&mut invocation);
        invocation
            .arg(millis(SystemTime::now()))
            .arg(PROMOTE_BATCH)
            .arg(worker)
            .arg(idle)
            .arg(&cursor)
            .arg(max.max(1))
            .arg(if self.holds_nothing(worker) { "1" } else { "0" });
        let (next_due, cursor, reclaimed, deliveries, more, dropped): (
            i64,
            String,
            Value,
            Vec<u64>,
            u8,
            Value,
        ) = self.invoke(&invocation).await?;
        self.drop_entries(worker, stream_entries(dropped));
        {
            let mut timer = self.timer.locked();
            timer.next_due = Some(u64::try_from(next_due).ok());
            if reclaim {
                timer.cursor = cursor;
                // Stalled deliveries left behind (suspects are taken one at a time) are looked
                // at again soon, not a whole period later.
                let pause = if more == 1 {
                    SUSPECT_PAUSE.min(self.reclaim_every())
                } else {
                    self.reclaim_every()
                };
                timer.next_reclaim = now + pause;
            }
        }
        let entries = self.decode(stream_entries(reclaimed));
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
                entry => alive.push(entry),
            }
        }
        Ok(alive)
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
    /// delivery count they have: losing a reply is no delivery.
    pub(super) async fn recover(&self, worker: &str) -> Result<Vec<Entry>> {
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
            Err(Error::Backend { source }) if source.to_string().contains("NOGROUP") => {
                return Ok(Vec::new());
            }
            result => result?,
        };
        let lost: Vec<PendingRow> = {
            let in_flight = self.in_flight.locked();
            pending_rows(pending)
                .into_iter()
                .filter(|row| !in_flight.contains_key(&row.id))
                .collect()
        };
        if lost.is_empty() {
            return Ok(Vec::new());
        }
        tracing::warn!(
            worker,
            count = lost.len(),
            "recovering deliveries lost with a failed read"
        );
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
        Ok(self.decode(stream_entries(handed)))
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
                id: DeliveryId::Stream(id),
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
                            id: DeliveryId::Stream(id),
                            message,
                            redelivered,
                        });
                    }
                    Entry::Wake { id } => wakes.push(id),
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
        if !wakes.is_empty() {
            // The schedule's head changed: look at it before blocking again.
            self.timer.locked().next_due = None;
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

    /// How long to block: until the earliest future task, the next reclaim check, or `give_up`.
    pub(super) fn wait(&self, give_up: Option<Instant>) -> Option<Duration> {
        let now = Instant::now();
        let timer = self.timer.locked();
        let Some(next_due) = timer.next_due else {
            return None; // unknown: tick first
        };
        if now >= timer.next_reclaim {
            return None;
        }
        let mut until = timer.next_reclaim;
        if let Some(due) = next_due {
            let ahead = Duration::from_millis(due.saturating_sub(millis(SystemTime::now())));
            if ahead.is_zero() {
                return None;
            }
            until = until.min(now + ahead);
        }
        if let Some(limit) = give_up {
            until = until.min(limit);
        }
        Some(until.saturating_duration_since(now))
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
