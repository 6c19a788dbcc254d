//! The memory backend (`memory://`): the whole docket inside one process, with no durability.
//!
//! It is the reference for every other backend's behaviour: same keys, same dispositions, same
//! dead letters. The store sits behind one mutex that is never held across an `.await`.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

#[cfg(feature = "dashboard")]
mod browse;
mod stats;

use super::{
    Admission, Backend, Burial, CooldownGate, Delivery, DeliveryId, Gate, KeyMode, Message, Signal,
    SignalFeed,
};
use crate::error::Result;
use crate::inspect::{DeadLetter, Snapshot, TaskInfo, WorkerInfo};
use crate::results::{Status, TaskRecord};
use crate::schedule::Disposition;
use crate::strike::Strike;
use crate::sync::{Locked, Member};
use crate::time::Clock;
use crate::time::sleep_until;

/// An in-process store of tasks. Clones share the same store.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemoryBackend {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    store: Mutex<Store>,
    /// Wakes waiting `claim`s when a task is added.
    added: Notify,
    /// Workers whose claim waits for a task, for their health.
    parked: Mutex<HashSet<String>>,
    /// Each worker's runs by task name over the last minutes, as it last published them.
    stats: Mutex<HashMap<String, crate::stats::Window>>,
}

#[derive(Debug, Default)]
struct Store {
    /// Where the time comes from: the system's, or a test's virtual clock.
    clock: Clock,
    /// Source of sequence numbers and delivery ids; never reused.
    next: u64,
    /// Every waiting task as `(due, seq, key)`, in the order workers take them: due ones first,
    /// then by due time and arrival.
    waiting: BTreeSet<(SystemTime, u64, String)>,
    /// The waiting task of each key, and how many runs of it are in flight.
    keys: HashMap<String, KeyEntry>,
    /// Tasks handed to workers, by delivery id.
    running: HashMap<u64, Running>,
    dead: Vec<DeadLetter>,
    /// How many dead letters to keep and for how long, when not the defaults.
    retention: Option<(usize, Duration)>,
    /// Tasks set aside by strikes, by key.
    held: HashMap<String, Aside>,
    /// Tasks waiting for a concurrency slot, by slot, first come first served.
    gated: HashMap<String, VecDeque<Aside>>,
    /// The deliveries holding each concurrency slot (by delivery, not key: two runs of one key
    /// each need a slot).
    holders: HashMap<String, HashSet<u64>>,
    /// The start times inside each rate limit's window.
    rates: HashMap<String, VecDeque<SystemTime>>,
    /// When the window of each cooldown scope ends (see [`CooldownGate`]).
    cooldowns: HashMap<String, SystemTime>,
    strikes: Vec<Strike>,
    /// Workers' signal subscriptions.
    listeners: Vec<mpsc::UnboundedSender<Signal>>,
    /// Kept task records and when each expires.
    records: HashMap<String, (TaskRecord, SystemTime)>,
    watchers: HashMap<String, Vec<mpsc::UnboundedSender<TaskRecord>>>,
}

/// One key: at most one waiting task. Runs of the key, and its tasks set aside (held or gated),
/// are counted so that `Add` sees them.
#[derive(Debug, Default)]
struct KeyEntry {
    /// The task last stored under the key (its sequence number): a copy of an older one that
    /// comes back (a retry, a hold, a deferral, a restore) is superseded, as on Redis, where the
    /// key's index entry names one task.
    latest: u64,
    waiting: Option<Waiting>,
    runs: usize,
    /// Runs cancelled while they ran: they no longer hold the key.
    cancelled: usize,
    /// Tasks of the key set aside: held by a strike, or waiting for a concurrency slot.
    aside: usize,
}

#[derive(Debug)]
struct Waiting {
    seq: u64,
    message: Message,
}

/// A task set aside (held or gated), and the sequence number of the task it is.
#[derive(Debug)]
struct Aside {
    seq: u64,
    message: Message,
}

#[derive(Debug)]
struct Running {
    worker: String,
    /// The sequence number of the task this delivery runs.
    seq: u64,
    message: Message,
    /// Cancelled while it ran: it may not be retried, held or kept as a dead letter.
    cancelled: bool,
}

impl Store {
    /// Whether a task of `gate`'s scope was accepted less than its window before `now`.
    fn cooling_down(&mut self, gate: &CooldownGate, now: SystemTime) -> bool {
        self.cooldowns.retain(|_, until| *until > now);
        self.cooldowns.contains_key(&gate.scope)
    }

    /// A task of `gate`'s scope was accepted at `now`: its window starts.
    fn start_cooldown(&mut self, gate: &CooldownGate, now: SystemTime) {
        let until = now
            .checked_add(gate.window)
            .unwrap_or(crate::time::latest_due());
        self.cooldowns.insert(gate.scope.clone(), until);
    }

    /// Keep `record` for `ttl` as its key's record, and send it to the key's watchers.
    fn keep_record(&mut self, record: TaskRecord, ttl: Duration) {
        let now = self.clock.now();
        self.records.retain(|_, (_, expires)| *expires > now);
        if let Some(watchers) = self.watchers.get_mut(&record.key) {
            watchers.retain(|watcher| watcher.send(record.clone()).is_ok());
            if watchers.is_empty() {
                self.watchers.remove(&record.key);
            }
        }
        let expires = crate::time::saturating_due(now, ttl);
        self.records.insert(record.key.clone(), (record, expires));
    }

    /// The key's record, if one is kept and has not ended, now says cancelled; kept as long
    /// as it was going to be.
    fn record_cancelled(&mut self, key: &str) {
        let now = self.clock.now();
        let Some((record, expires)) = self.records.get(key) else {
            return;
        };
        if record.status.is_final() || *expires <= now {
            return;
        }
        let mut record = record.clone();
        record.changes.push(crate::results::Change::of(&record));
        record.status = Status::Cancelled;
        record.updated_ms = crate::time::millis(now);
        let ttl = expires.duration_since(now).unwrap_or_default();
        self.keep_record(record, ttl);
    }

    fn next(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Store `message` as its key's waiting task.
    fn insert(&mut self, message: Message) {
        let seq = self.next();
        let key = message.key.clone();
        self.waiting.insert((message.due, seq, key.clone()));
        let entry = self.keys.entry(key).or_default();
        entry.latest = seq;
        entry.waiting = Some(Waiting { seq, message });
    }

    /// Whether the task `seq` is still the one its key names (no newer task was stored since).
    fn is_latest(&self, key: &str, seq: u64) -> bool {
        self.keys.get(key).is_some_and(|entry| entry.latest == seq)
    }

    /// End the run of `delivery` to store it anew or set it aside: its run, unless it was
    /// settled already, cancelled, or superseded by a newer task of its key (then it is only
    /// ended).
    fn finish_current(&mut self, delivery: &Delivery) -> Option<Running> {
        // Judged before the run ends: ending the key's last run forgets the key.
        let DeliveryId::Memory(id) = delivery.id else {
            return None;
        };
        let current = self
            .running
            .get(&id)
            .is_some_and(|run| self.is_latest(&run.message.key, run.seq));
        let running = self.finish_live(delivery)?;
        current.then_some(running)
    }

    /// Take the waiting task of `key` out.
    fn remove_waiting(&mut self, key: &str) -> Option<Message> {
        let waiting = self.keys.get_mut(key)?.waiting.take()?;
        self.waiting
            .remove(&(waiting.message.due, waiting.seq, key.to_owned()));
        self.forget_if_idle(key);
        Some(waiting.message)
    }

    /// End the run of `delivery`; `None` when it was already settled.
    fn finish(&mut self, delivery: &Delivery) -> Option<Running> {
        let DeliveryId::Memory(id) = delivery.id else {
            return None;
        };
        let running = self.running.remove(&id)?;
        let key = &running.message.key;
        if let Some(entry) = self.keys.get_mut(key) {
            entry.runs -= 1;
            if running.cancelled {
                entry.cancelled -= 1;
            }
        }
        self.forget_if_idle(&delivery.message.key);
        Some(running)
    }

    fn forget_if_idle(&mut self, key: &str) {
        if self
            .keys
            .get(key)
            .is_some_and(|entry| entry.waiting.is_none() && entry.runs == 0 && entry.aside == 0)
        {
            self.keys.remove(key);
        }
    }

    /// Whether a task holds `key`: one waits, runs (and was not cancelled) or is set aside.
    ///
    /// As on Redis, where the key's index entry names one task, only the task last stored under
    /// the key counts: an older run beside it (a `replace` while it ran) or an older copy set
    /// aside does not keep the key once the newer task ended.
    fn is_taken(&self, key: &str) -> bool {
        let Some(entry) = self.keys.get(key) else {
            return false;
        };
        let latest = entry.latest;
        entry.waiting.is_some()
            || (entry.runs > entry.cancelled
                && self
                    .running
                    .values()
                    .any(|run| run.message.key == key && !run.cancelled && run.seq == latest))
            || (entry.aside > 0
                && (self.held.get(key).is_some_and(|aside| aside.seq == latest)
                    || self
                        .gated
                        .values()
                        .flatten()
                        .any(|aside| aside.message.key == key && aside.seq == latest)))
    }

    /// End the run of `delivery` to set it aside or store it anew; `None` when it was settled
    /// already or cancelled while it ran (then it is only ended).
    fn finish_live(&mut self, delivery: &Delivery) -> Option<Running> {
        self.finish(delivery).filter(|running| !running.cancelled)
    }

    /// Hand up to `max` due tasks to `worker`, earliest due first.
    fn take(&mut self, worker: &str, max: usize, now: SystemTime) -> Vec<Delivery> {
        let mut deliveries = Vec::new();
        while deliveries.len() < max && self.waiting.first().is_some_and(|first| first.0 <= now) {
            let (_, _, key) = self.waiting.pop_first().expect("checked above");
            let entry = self
                .keys
                .get_mut(&key)
                .expect("every waiting task has an entry");
            let waiting = entry
                .waiting
                .take()
                .expect("every waiting task has an entry");
            let (seq, message) = (waiting.seq, waiting.message);
            entry.runs += 1;
            let id = self.next();
            self.running.insert(
                id,
                Running {
                    worker: worker.to_owned(),
                    seq,
                    message: message.clone(),
                    cancelled: false,
                },
            );
            deliveries.push(Delivery {
                id: DeliveryId::Memory(id),
                message,
                redelivered: false,
            });
        }
        deliveries
    }

    /// Send a signal to every live subscriber.
    fn signal(&mut self, signal: &Signal) {
        self.listeners
            .retain(|listener| listener.send(signal.clone()).is_ok());
    }

    /// The task `seq`, still its key's latest (its run just ended, which may have forgotten the
    /// key), is set aside.
    fn set_aside(&mut self, key: &str, seq: u64) {
        let entry = self.keys.entry(key.to_owned()).or_default();
        entry.aside += 1;
        entry.latest = seq;
    }

    fn take_back(&mut self, key: &str) {
        if let Some(entry) = self.keys.get_mut(key) {
            entry.aside = entry.aside.saturating_sub(1);
        }
        self.forget_if_idle(key);
    }

    /// Remove the held or gated task of `key`.
    fn remove_aside(&mut self, key: &str) -> bool {
        let found = self.held.remove(key).is_some() || {
            let mut found = false;
            for queue in self.gated.values_mut() {
                if let Some(position) = queue.iter().position(|aside| aside.message.key == key) {
                    queue.remove(position);
                    found = true;
                    break;
                }
            }
            found
        };
        if found {
            self.take_back(key);
        }
        found
    }

    fn message(&self, key: &str) -> &Message {
        let waiting = self.keys.get(key).and_then(|entry| entry.waiting.as_ref());
        &waiting.expect("every waiting task has an entry").message
    }
}

impl MemoryBackend {
    pub(crate) fn new() -> Self {
        MemoryBackend::default()
    }

    /// A memory backend reading the time from `clock`.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn with_clock(clock: Clock) -> Self {
        let backend = MemoryBackend::default();
        backend.store().clock = clock;
        backend
    }

    /// The clock this backend reads the time from.
    pub(crate) fn clock(&self) -> Clock {
        self.store().clock
    }

    /// A memory backend keeping at most `kept` dead letters, none older than `age`.
    pub(crate) fn with_dead_letters(kept: usize, age: Duration) -> Self {
        let backend = MemoryBackend::default();
        backend.store().retention = Some((kept, age));
        backend
    }

    /// The workers with tasks in flight (a memory docket does not know idle ones).
    /// Whether `worker`'s claim waits for a task.
    pub(crate) fn parked(&self, worker: &str) -> bool {
        self.shared.parked.locked().contains(worker)
    }

    pub(crate) fn workers(&self) -> Vec<WorkerInfo> {
        let store = self.store();
        let mut running: HashMap<&str, usize> = HashMap::new();
        for run in store.running.values() {
            *running.entry(run.worker.as_str()).or_default() += 1;
        }
        let mut workers: Vec<WorkerInfo> = running
            .into_iter()
            .map(|(name, running)| WorkerInfo {
                name: name.to_owned(),
                running,
                idle: Duration::ZERO,
            })
            .collect();
        workers.sort_by(|a, b| a.name.cmp(&b.name));
        workers
    }

    /// Due and running tasks, and future ones.
    pub(crate) fn depth(&self) -> (usize, usize) {
        let store = self.store();
        let now = store.clock.now();
        let due = store
            .waiting
            .iter()
            .filter(|(due, _, _)| *due <= now)
            .count();
        let gated: usize = store.gated.values().map(VecDeque::len).sum();
        (due + gated + store.running.len(), store.waiting.len() - due)
    }

    /// Forget the dead letter of `key`; whether there was one.
    pub(crate) fn remove_dead_letter(&self, key: &str) -> bool {
        let mut store = self.store();
        let before = store.dead.len();
        store.dead.retain(|dead| dead.key != key);
        store.dead.len() < before
    }

    /// Remove every waiting task; returns how many.
    pub(crate) fn clear(&self) -> usize {
        let mut store = self.store();
        let keys: Vec<String> = store
            .waiting
            .iter()
            .map(|(_, _, key)| key.clone())
            .collect();
        for key in &keys {
            store.remove_waiting(key);
        }
        keys.len()
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // No code path panics while holding the lock, so a poisoned lock still holds valid store.
        self.shared.store.locked()
    }
}

impl Backend for MemoryBackend {
    async fn enqueue(
        &self,
        batch: &[(Message, KeyMode)],
        keep: Option<Duration>,
    ) -> Result<Vec<Disposition>> {
        let now = self.store().clock.now();
        let mut store = self.store();
        let dispositions = batch
            .iter()
            .map(|(message, mode)| {
                let disposition = match mode {
                    KeyMode::Add | KeyMode::Fresh if store.is_taken(&message.key) => {
                        return Disposition::Duplicate;
                    }
                    // A duplicate is one whatever the cooldown; any other schedule within it
                    // is dropped, replacing nothing.
                    _ if message
                        .cooldown
                        .as_ref()
                        .is_some_and(|gate| store.cooling_down(gate, now)) =>
                    {
                        return Disposition::CooledDown;
                    }
                    KeyMode::Add | KeyMode::Fresh => Disposition::Added,
                    // Swaps the task that waits: queued, scheduled, held by a strike or waiting
                    // for a slot. A running one is left alone.
                    KeyMode::Replace => {
                        let aside = store.remove_aside(&message.key);
                        match store.remove_waiting(&message.key) {
                            Some(_) => Disposition::Replaced,
                            None if aside => Disposition::Replaced,
                            None => Disposition::Added,
                        }
                    }
                };
                store.insert(Message {
                    cooldown: None,
                    home: None,
                    ..message.clone()
                });
                if let Some(gate) = &message.cooldown {
                    store.start_cooldown(gate, now);
                }
                if let Some(keep) = keep {
                    let ttl = TaskRecord::first_ttl(message, now, keep);
                    store.keep_record(TaskRecord::first(message, now), ttl);
                }
                disposition
            })
            .collect();
        drop(store);
        self.shared.added.notify_waiters();
        Ok(dispositions)
    }

    async fn cancel(&self, key: &str) -> Result<bool> {
        let mut store = self.store();
        // A waiting task, and any copy of the key set aside beside a newer one.
        let waiting = store.remove_waiting(key).is_some();
        let aside = store.remove_aside(key);
        // And every run of the key: the task's own, or one a `replace` went beside.
        let mut cancelled = Vec::new();
        let mut marked_before = false;
        for (id, run) in &mut store.running {
            if run.message.key == key {
                marked_before |= run.cancelled;
                if !run.cancelled {
                    run.cancelled = true;
                    cancelled.push(*id);
                }
            }
        }
        if let Some(entry) = store.keys.get_mut(key) {
            entry.cancelled += cancelled.len();
        }
        for id in &cancelled {
            store.signal(&Signal::Cancel {
                key: key.to_owned(),
                delivery: Some(DeliveryId::Memory(*id)),
            });
        }
        let found = waiting || aside || !cancelled.is_empty();
        if found {
            store.record_cancelled(key);
        }
        Ok(found || marked_before)
    }

    async fn claim(
        &self,
        worker: &str,
        max: usize,
        max_wait: Option<Duration>,
        stop: &CancellationToken,
    ) -> Result<Vec<Delivery>> {
        let give_up = max_wait.map(|wait| tokio::time::Instant::now() + wait);
        loop {
            let added = self.shared.added.notified();
            tokio::pin!(added);
            // Register for wake-ups before looking, so an enqueue between the look and the
            // wait is not missed.
            added.as_mut().enable();
            let next_due = {
                let mut store = self.store();
                let now = store.clock.now();
                let deliveries = store.take(worker, max, now);
                if !deliveries.is_empty() || max == 0 {
                    return Ok(deliveries);
                }
                store
                    .waiting
                    .first()
                    .map(|(due, _, _)| store.clock.instant_at(*due))
            };
            let wake = match (next_due, give_up) {
                (Some(due), Some(limit)) => Some(due.min(limit)),
                (due, limit) => due.or(limit),
            };
            let parked = Member::of(&self.shared.parked, worker);
            tokio::select! {
                () = &mut added => drop(parked),
                () = stop.cancelled() => return Ok(Vec::new()),
                () = sleep_until(wake) => {
                    if give_up.is_some_and(|limit| tokio::time::Instant::now() >= limit) {
                        return Ok(Vec::new());
                    }
                }
            }
        }
    }

    async fn complete(&self, deliveries: &[Delivery]) -> Result<()> {
        let mut store = self.store();
        for delivery in deliveries {
            store.finish(delivery);
        }
        Ok(())
    }

    async fn retry(&self, delivery: &Delivery, next: &Message) -> Result<()> {
        let mut store = self.store();
        if store.finish_current(delivery).is_none() {
            // Settled already, cancelled, or replaced while this attempt ran: the newer task
            // supersedes it.
            return Ok(());
        }
        store.insert(next.clone());
        drop(store);
        self.shared.added.notify_waiters();
        Ok(())
    }

    async fn bury(&self, delivery: &Delivery, burial: Burial) -> Result<()> {
        let mut store = self.store();
        if store.finish_current(delivery).is_none() {
            // Settled already, cancelled, or replaced while this attempt ran: no letter, as no
            // retry. The key's letter, like the key, is the newer task's, even once it ended.
            return Ok(());
        }
        let message = &delivery.message;
        store.dead.retain(|dead| dead.key != message.key);
        let died = store.clock.now();
        store.dead.push(DeadLetter {
            key: message.key.clone(),
            task: message.task.clone(),
            args: message.args.clone(),
            attempt: message.attempt,
            reason: burial.reason,
            died,
            history: burial.history,
        });
        // Retention, as on Redis: the oldest letters past the count, and those past the age.
        let now = store.clock.now();
        let (kept, oldest) = store
            .retention
            .unwrap_or((super::DEAD_LETTERS_KEPT, super::DEAD_LETTER_AGE));
        store
            .dead
            .retain(|dead| !now.duration_since(dead.died).is_ok_and(|age| age >= oldest));
        let over = store.dead.len().saturating_sub(kept);
        store.dead.drain(..over);
        Ok(())
    }

    fn renew_every(&self) -> Option<Duration> {
        None
    }

    async fn renew(&self, _worker: &str) -> Result<()> {
        Ok(())
    }

    /// Nothing is ever taken over here, so nothing is dropped.
    fn dropped(&self, _worker: &str) -> Vec<Delivery> {
        Vec::new()
    }

    /// A delivery given up here is run again (this backend has no other worker to take it over
    /// after a timeout).
    fn abandon(&self, _worker: &str, delivery: &Delivery) {
        let mut store = self.store();
        if let Some(running) = store.finish_current(delivery) {
            store.insert(running.message);
            drop(store);
            self.shared.added.notify_waiters();
        }
    }

    async fn give_back(&self, worker: &str, deliveries: &[Delivery]) -> Result<()> {
        for delivery in deliveries {
            self.abandon(worker, delivery);
        }
        Ok(())
    }

    async fn retire(&self, _worker: &str) -> Result<()> {
        Ok(())
    }

    async fn outstanding(&self) -> Result<usize> {
        let store = self.store();
        let waiting = store.keys.values().filter(|slot| slot.waiting.is_some());
        let gated: usize = store.gated.values().map(VecDeque::len).sum();
        Ok(waiting.count() + store.running.len() + gated)
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        let now = self.store().clock.now();
        let store = self.store();
        let (mut queued, scheduled): (Vec<_>, Vec<_>) = store
            .waiting
            .iter()
            .map(|(due, _, key)| (*due, TaskInfo::of(store.message(key), None)))
            .partition(|(due, _)| *due <= now);
        queued.extend(
            store
                .gated
                .values()
                .flatten()
                .map(|aside| (aside.message.due, TaskInfo::of(&aside.message, None))),
        );
        let mut held: Vec<TaskInfo> = store
            .held
            .values()
            .map(|aside| TaskInfo::of(&aside.message, None))
            .collect();
        held.sort_by(|a, b| (a.due, &a.key).cmp(&(b.due, &b.key)));
        let mut running: Vec<TaskInfo> = store
            .running
            .values()
            .map(|run| TaskInfo::of(&run.message, Some(&run.worker)))
            .collect();
        running.sort_by(|a, b| (a.due, &a.key).cmp(&(b.due, &b.key)));
        Ok(Snapshot {
            taken: now,
            queued: queued.into_iter().map(|(_, info)| info).collect(),
            scheduled: scheduled.into_iter().map(|(_, info)| info).collect(),
            running,
            held,
            dead: store.dead.len(),
        })
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        Ok(self.store().dead.clone())
    }

    async fn replay(&self, key: &str) -> Result<bool> {
        let mut store = self.store();
        let Some(index) = store.dead.iter().position(|dead| dead.key == key) else {
            return Ok(false);
        };
        if store.is_taken(key) {
            return Ok(false);
        }
        let dead = store.dead.remove(index);
        let message = Message::first_attempt(dead.task, dead.key, dead.args, store.clock.now());
        store.insert(message);
        drop(store);
        self.shared.added.notify_waiters();
        Ok(true)
    }

    async fn signals(&self, _feed: Option<&SignalFeed>) -> Result<SignalFeed> {
        // Signals never get lost in this process, so a new feed needs no position.
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut store = self.store();
        let _ = sender.send(Signal::Strikes(store.strikes.clone()));
        store.listeners.push(sender);
        Ok(SignalFeed::new(receiver))
    }

    async fn strike(&self, strike: &Strike) -> Result<bool> {
        let mut store = self.store();
        if store.strikes.contains(strike) {
            return Ok(false);
        }
        store.strikes.push(strike.clone());
        let strikes = Signal::Strikes(store.strikes.clone());
        store.signal(&strikes);
        Ok(true)
    }

    async fn restore(&self, strike: &Strike) -> Result<bool> {
        let mut store = self.store();
        let before = store.strikes.len();
        store.strikes.retain(|existing| existing != strike);
        if store.strikes.len() == before {
            return Ok(false);
        }
        let strikes = Signal::Strikes(store.strikes.clone());
        store.signal(&strikes);
        Ok(true)
    }

    async fn strikes(&self) -> Result<Vec<Strike>> {
        Ok(self.store().strikes.clone())
    }

    async fn hold(&self, delivery: &Delivery, strike: &Strike) -> Result<bool> {
        let mut store = self.store();
        if !store.strikes.contains(strike) {
            return Ok(false);
        }
        if let Some(running) = store.finish_current(delivery) {
            let key = delivery.message.key.clone();
            store.set_aside(&key, running.seq);
            let aside = Aside {
                seq: running.seq,
                message: delivery.message.clone(),
            };
            store.held.insert(key, aside);
        }
        Ok(true)
    }

    async fn held(&self) -> Result<Vec<Message>> {
        let store = self.store();
        Ok(store
            .held
            .values()
            .map(|aside| aside.message.clone())
            .collect())
    }

    async fn unhold(&self, keys: &[String]) -> Result<usize> {
        let mut store = self.store();
        let mut count = 0;
        for key in keys {
            let Some(aside) = store.held.remove(key) else {
                continue;
            };
            count += 1;
            // Superseded by a newer task of its key (a `replace` while it was held): dropped.
            let current = store.is_latest(key, aside.seq);
            store.take_back(key);
            if current {
                let due = store.clock.now();
                store.insert(Message {
                    due,
                    ..aside.message
                });
            }
        }
        drop(store);
        self.shared.added.notify_waiters();
        Ok(count)
    }

    async fn admit(&self, delivery: &Delivery, gate: &Gate) -> Result<Admission> {
        let mut store = self.store();
        let key = &delivery.message.key;
        let DeliveryId::Memory(id) = delivery.id else {
            unreachable!("a Redis delivery admitted in memory");
        };
        let mut took_slot = None;
        if let Some((slot, limit)) = &gate.slot {
            let holders = store.holders.entry(slot.clone()).or_default();
            if !holders.contains(&id) {
                if holders.len() >= *limit as usize {
                    if let Some(running) = store.finish_current(delivery) {
                        store.set_aside(key, running.seq);
                        let queue = store.gated.entry(slot.clone()).or_default();
                        queue.push_back(Aside {
                            seq: running.seq,
                            message: delivery.message.clone(),
                        });
                    }
                    return Ok(Admission::Waiting);
                }
                holders.insert(id);
                took_slot = Some(slot.clone());
            }
        }
        if let Some((name, count, window)) = &gate.rate {
            let now = store.clock.now();
            let starts = store.rates.entry(name.clone()).or_default();
            while starts.front().is_some_and(|start| *start + *window <= now) {
                starts.pop_front();
            }
            if starts.len() >= *count as usize {
                let due = *starts.front().expect("the window is full") + *window;
                if let Some(slot) = took_slot
                    && let Some(holders) = store.holders.get_mut(&slot)
                {
                    holders.remove(&id);
                }
                if store.finish_current(delivery).is_some() {
                    store.insert(Message {
                        due,
                        ..delivery.message.clone()
                    });
                }
                drop(store);
                // Aside claims must look again: this task is now the earliest due, maybe.
                self.shared.added.notify_waiters();
                return Ok(Admission::Deferred(due));
            }
            starts.push_back(now);
        }
        Ok(Admission::Run)
    }

    async fn release(&self, delivery: &Delivery, gate: &Gate) -> Result<()> {
        let Some((slot, _)) = &gate.slot else {
            return Ok(());
        };
        let mut store = self.store();
        if let (Some(holders), DeliveryId::Memory(id)) = (store.holders.get_mut(slot), &delivery.id)
        {
            holders.remove(id);
        }
        let next = store.gated.get_mut(slot).and_then(VecDeque::pop_front);
        if let Some(aside) = next {
            let current = store.is_latest(&aside.message.key, aside.seq);
            store.take_back(&aside.message.key);
            if current {
                let due = store.clock.now();
                store.insert(Message {
                    due,
                    ..aside.message
                });
            }
            drop(store);
            self.shared.added.notify_waiters();
        }
        Ok(())
    }

    async fn record(&self, task: &TaskRecord, ttl: Duration) -> Result<()> {
        self.store().keep_record(task.clone(), ttl);
        Ok(())
    }

    async fn status(&self, key: &str) -> Result<Option<TaskRecord>> {
        let store = self.store();
        let now = store.clock.now();
        Ok(store
            .records
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map(|(task, _)| task.clone()))
    }

    async fn watch(&self, key: &str) -> Result<mpsc::UnboundedReceiver<TaskRecord>> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut store = self.store();
        let watchers = store.watchers.entry(key.to_owned()).or_default();
        watchers.retain(|watcher| !watcher.is_closed());
        watchers.push(sender);
        Ok(receiver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(key: &str, args: &str) -> Message {
        Message {
            task: "probe".into(),
            key: key.into(),
            args: args.into(),
            attempt: 1,
            due: SystemTime::now(),
            history: Vec::new(),
            trace: None,
            cooldown: None,
            home: None,
        }
    }

    async fn enqueue(backend: &MemoryBackend, message: Message, mode: KeyMode) -> Disposition {
        let mut dispositions = backend.enqueue(&[(message, mode)], None).await.unwrap();
        dispositions.pop().unwrap()
    }

    async fn claim_one(backend: &MemoryBackend) -> Delivery {
        let stop = CancellationToken::new();
        let mut deliveries = backend
            .claim("w", 1, Some(Duration::from_millis(10)), &stop)
            .await
            .unwrap();
        assert_eq!(deliveries.len(), 1, "expected one due task");
        deliveries.pop().unwrap()
    }

    #[tokio::test]
    async fn a_replacement_of_a_running_task_is_added_beside_it() {
        let backend = MemoryBackend::new();
        enqueue(&backend, message("k", "1"), KeyMode::Add).await;
        let first = claim_one(&backend).await;
        let replaced = enqueue(&backend, message("k", "2"), KeyMode::Replace).await;
        assert_eq!(
            replaced,
            Disposition::Added,
            "nothing was waiting to replace"
        );

        let second = claim_one(&backend).await;
        assert_eq!(second.message.args, "2");
        let duplicate = enqueue(&backend, message("k", "3"), KeyMode::Add).await;
        assert_eq!(
            duplicate,
            Disposition::Duplicate,
            "the key has runs in flight"
        );

        backend.complete(&[first, second]).await.unwrap();
        assert_eq!(backend.outstanding().await.unwrap(), 0);
        let added = enqueue(&backend, message("k", "4"), KeyMode::Add).await;
        assert_eq!(added, Disposition::Added, "the key is free again");
    }

    #[tokio::test]
    async fn a_stale_settlement_does_not_touch_a_newer_run_of_its_key() {
        let backend = MemoryBackend::new();
        enqueue(&backend, message("k", "1"), KeyMode::Add).await;
        let first = claim_one(&backend).await;
        backend
            .complete(std::slice::from_ref(&first))
            .await
            .unwrap();
        enqueue(&backend, message("k", "2"), KeyMode::Add).await;
        let second = claim_one(&backend).await;

        // The first delivery settles again, as a duplicate from a slow worker would.
        backend
            .complete(std::slice::from_ref(&first))
            .await
            .unwrap();
        backend.retry(&first, &first.message).await.unwrap();
        let snapshot = backend.snapshot().await.unwrap();
        assert_eq!(snapshot.running.len(), 1);
        assert!(snapshot.queued.is_empty() && snapshot.scheduled.is_empty());

        backend
            .complete(std::slice::from_ref(&second))
            .await
            .unwrap();
        assert_eq!(backend.outstanding().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_claim_wakes_when_an_earlier_task_is_added() {
        let backend = MemoryBackend::new();
        let later = Message {
            due: SystemTime::now() + Duration::from_secs(3600),
            ..message("later", "{}")
        };
        enqueue(&backend, later, KeyMode::Add).await;
        let waiter = {
            let backend = backend.clone();
            tokio::spawn(async move {
                let stop = CancellationToken::new();
                backend.claim("w", 1, None, &stop).await.unwrap()
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        enqueue(&backend, message("now", "{}"), KeyMode::Add).await;
        let claimed = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiting claim was not woken")
            .unwrap();
        assert_eq!(claimed[0].message.key, "now");
    }
}
