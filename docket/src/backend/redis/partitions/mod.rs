//! One docket spread over several partitions, so that it can use several Redis Cluster masters.
//!
//! A partition is a whole docket keyspace under a hash tag of its own ([`keys`](super::keys)):
//! partition 0 is the docket's own tag `{name}` (so a docket of one partition is exactly the
//! docket it always was), the others `{name:1.s}`, `{name:2.s}`, … with salts `s` chosen so that
//! each partition's slot falls in a band of the cluster's slots of its own ([`placed`]): on a
//! cluster of equal masters, each partition on its own master. The tags are stored once in the
//! layout record `{name}:layout` by the first process that asks for more than one partition
//! (`Connect::partitions`, `DOCKET_PARTITIONS`); every process reads it before its first
//! operation and follows it, whatever it asked for, so no two processes disagree on where a task
//! lives.
//!
//! **Where a task lives.** A task lives in one partition for its whole life: the one its key
//! hashes to (CRC16 of the key, modulo the count), unless it has a concurrency limit, a rate
//! limit or a cooldown: those live in partition 0, beside the limits' own keys, so that every
//! limit is counted in one place. A task a producer stores without knowing its limits (by name,
//! from a process that does not define it) is moved to partition 0 by the worker that finds its
//! limits, before it runs. Keyed lookups (`cancel`, `status`, `watch`, `replay`) look in the
//! key's partition and then in partition 0, which also finds every task stored before the
//! docket was spread.
//!
//! **Workers** read every partition: one claim in progress per partition (a blocking read when
//! the partition is idle, an immediate answer under load), kept across the worker's claims so
//! that an idle docket costs no more reads than it did on one partition. Each partition keeps
//! its own strikes copy and signals stream, and a worker follows every partition's signals.
//!
//! **The clock.** Partition 0's keeper lease makes one worker the keeper of every partition
//! ([`clock`](super::clock)): it checks a partition while anything is pending or queued there,
//! and otherwise waits on it in one blocking read, so that an idle fleet's periodic commands
//! are about those of one partition, whatever the count.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{OnceCell, mpsc};
use tokio_util::sync::CancellationToken;

mod bells;
#[cfg(feature = "dashboard")]
mod browse;
mod merge;
mod slots;

use self::bells::Bells;
use self::merge::merge;
use self::slots::crc16;
pub(crate) use self::slots::placed;
use super::RedisBackend;
use super::clock::Spread;
use crate::backend::{
    Admission, Backend, Burial, Delivery, DeliveryId, Gate, KeyMode, Message, Signal, SignalFeed,
};
use crate::error::{Error, Result};
use crate::inspect::{DeadLetter, Snapshot, TaskInfo, WorkerInfo};
use crate::results::TaskRecord;
use crate::schedule::Disposition;
use crate::strike::Strike;
use crate::sync::Locked;

/// The most partitions a docket may be spread over. Each costs every worker a blocking read
/// and a signals feed, and the keeper one more blocking read while the partition is cold
/// (connections, not commands, while idle); a docket needs about as many as it has masters.
pub(crate) const MOST_PARTITIONS: u16 = 64;

/// How long a worker's clock waits before asking again for a layout it could not read.
const LAYOUT_RETRY: Duration = Duration::from_secs(1);

/// The layout record, `{name}:layout`: the hash tag of each partition, partition 0's first.
#[derive(Debug, Serialize, Deserialize)]
struct Layout {
    v: u32,
    partitions: Vec<String>,
}

/// A docket on Redis: one partition, or several ([module docs](self)).
pub(crate) struct Partitions {
    /// Partition 0; the others are made beside it, on its connections, once the layout is read.
    home: Arc<RedisBackend>,
    name: String,
    /// How many partitions this process asked for (`Connect::partitions`).
    wanted: u16,
    /// Every partition, partition 0 first, once the layout is known.
    parts: OnceCell<Vec<Arc<RedisBackend>>>,
    /// Tasks found with limits outside partition 0 (warned about once each).
    split_limits: Mutex<std::collections::HashSet<String>>,
    /// Each worker's claims in progress, one per partition, kept between its claims (and
    /// kept here while a claim uses them, so a claim dropped midway loses none).
    bells: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Bells>>>>,
}

impl Partitions {
    /// The docket `name` at `url`, spread over the partitions its stored layout names, or
    /// (when none is stored yet) over `options.partitions`, checked by `config::validate_options`.
    pub(crate) async fn connect(
        url: &str,
        name: &str,
        options: super::RedisOptions,
    ) -> Result<Partitions> {
        let wanted = options.partitions;
        let home = RedisBackend::connect(url, name, options).await?;
        Ok(Partitions {
            home: Arc::new(home),
            name: name.to_owned(),
            wanted,
            parts: OnceCell::new(),
            split_limits: Mutex::new(std::collections::HashSet::new()),
            bells: Mutex::new(HashMap::new()),
        })
    }

    /// Partition 0: the docket's own keys, where fleet-wide records (the dashboard's runs) live.
    pub(crate) fn home(&self) -> &RedisBackend {
        &self.home
    }

    /// Every partition, reading (or writing) the layout on first use: one `GET`, and on the
    /// first start of a spread docket a copy of the strikes and a `SET NX`.
    pub(crate) async fn parts(&self) -> Result<&[Arc<RedisBackend>]> {
        self.parts
            .get_or_try_init(|| self.load())
            .await
            .map(Vec::as_slice)
    }

    /// The partitions known so far: all of them once the layout was read, else partition 0.
    fn known(&self) -> &[Arc<RedisBackend>] {
        match self.parts.get() {
            Some(parts) => parts,
            None => std::slice::from_ref(&self.home),
        }
    }

    async fn load(&self) -> Result<Vec<Arc<RedisBackend>>> {
        let key = self.layout_key();
        let mut get = redis::cmd("GET");
        get.arg(&key);
        let mut stored: Option<String> = self.home.query(&get).await?;
        if stored.is_none() && self.wanted > 1 {
            let layout = Layout {
                v: 1,
                partitions: placed(&self.name, self.wanted),
            };
            let json = serde_json::to_string(&layout).expect("a layout serializes");
            // The strikes in place, copied to the new partitions before any process uses them
            // (a hold reads its partition's copy): the tags are known before they are stored.
            self.copy_strikes(&self.spread_over(&layout.partitions))
                .await?;
            let mut set = redis::cmd("SET");
            set.arg(&key).arg(&json).arg("NX");
            let written: Option<String> = self.home.query(&set).await?;
            if written.is_some() && self.home.options.wait_replicas > 0 {
                // Lost in a failover, it would be written again the same (`placed`), but a
                // process that finds none meanwhile would use one partition.
                self.home.replicated().await?;
            }
            stored = match written {
                Some(_) => {
                    tracing::info!(docket = %self.name, partitions = ?layout.partitions, "spread the docket over {} partitions", layout.partitions.len());
                    Some(json)
                }
                // Another process wrote one first: its layout is the docket's.
                None => self.home.query(&get).await?,
            };
        }
        let Some(json) = stored else {
            return Ok(vec![Arc::clone(&self.home)]);
        };
        let tags = self.parse(&json)?;
        if self.wanted > 1 && tags.len() != usize::from(self.wanted) {
            tracing::warn!(docket = %self.name, stored = tags.len(), asked = self.wanted, "the docket is spread over the partitions its stored layout names, not as many as this process asked for");
        }
        let parts = self.spread_over(&tags);
        self.home.solo.know(&parts);
        Ok(parts)
    }

    /// Partition 0, and a partition beside it for each further tag.
    fn spread_over(&self, tags: &[String]) -> Vec<Arc<RedisBackend>> {
        let mut parts = vec![Arc::clone(&self.home)];
        for (part, tag) in tags.iter().enumerate().skip(1) {
            let part = u16::try_from(part).expect("the layout's size is checked");
            parts.push(Arc::new(self.home.partition(part, tag)));
        }
        parts
    }

    /// Copy partition 0's strikes into the other partitions of `parts`.
    async fn copy_strikes(&self, parts: &[Arc<RedisBackend>]) -> Result<()> {
        let mut read = redis::cmd("ZRANGE");
        read.arg(&self.home.keys.strikes)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES");
        let strikes: Vec<(Vec<u8>, f64)> = self.home.query(&read).await?;
        if strikes.is_empty() {
            return Ok(());
        }
        for part in &parts[1..] {
            let mut write = redis::cmd("ZADD");
            write.arg(&part.keys.strikes);
            for (strike, order) in &strikes {
                write.arg(*order).arg(strike.as_slice());
            }
            part.query::<i64>(&write).await?;
        }
        Ok(())
    }

    fn layout_key(&self) -> String {
        format!("{{{}}}:layout", self.name)
    }

    /// The tags of a stored layout, checked: partition 0 is the docket's own tag, and there
    /// are at most [`MOST_PARTITIONS`], all different.
    fn parse(&self, json: &str) -> Result<Vec<String>> {
        let problem = |what: String| {
            Error::Config(format!(
                "the docket's layout record `{}` {what}: {json}",
                self.layout_key()
            ))
        };
        let layout: Layout = serde_json::from_str(json)
            .map_err(|error| problem(format!("does not decode ({error})")))?;
        let tags = layout.partitions;
        let distinct = tags.iter().collect::<std::collections::HashSet<_>>().len() == tags.len();
        if layout.v != 1
            || tags.first() != Some(&self.name)
            || tags.len() > usize::from(MOST_PARTITIONS)
            || !distinct
            || tags.iter().skip(1).any(|tag| {
                // `name:<partition>.<salt>`, as `placed` writes them.
                tag.strip_prefix(&format!("{}:", self.name))
                    .is_none_or(|rest| rest.is_empty() || rest.contains(['{', '}']))
            })
        {
            return Err(problem("is not a layout this version reads".into()));
        }
        Ok(tags)
    }

    /// The partition of a key: CRC16 of the key (Redis Cluster's hash, without its hash-tag
    /// rule) modulo the partition count.
    fn of_key(parts: &[Arc<RedisBackend>], key: &str) -> usize {
        match parts.len() {
            0 | 1 => 0,
            count => usize::from(crc16(key.as_bytes())) % count,
        }
    }

    /// The partition a task is stored in: its key's, or partition 0 for a task with limits or
    /// a cooldown (as far as this process knows its task).
    fn of_message(parts: &[Arc<RedisBackend>], message: &Message) -> usize {
        let home =
            message.cooldown.is_some() || message.home.unwrap_or_else(|| lives_home(&message.task));
        if parts.len() == 1 || home {
            return 0;
        }
        Self::of_key(parts, &message.key)
    }

    /// The partition that delivered `delivery`.
    fn of_delivery<'a>(&'a self, delivery: &Delivery) -> &'a RedisBackend {
        &self.known()[part_of(self.known().len(), delivery)]
    }

    /// The partitions to look for `key` in: its own, then partition 0.
    fn lookups<'a>(parts: &'a [Arc<RedisBackend>], key: &str) -> Vec<&'a RedisBackend> {
        let own = Self::of_key(parts, key);
        let mut found = vec![&*parts[own]];
        if own != 0 {
            found.push(&*parts[0]);
        }
        found
    }

    /// Redis commands this docket has sent, on every partition.
    pub(crate) fn commands_sent(&self) -> u64 {
        self.home.commands_sent()
    }

    pub(crate) fn check(&self, batch: &[(Message, KeyMode)]) -> Result<()> {
        self.home.check(batch)
    }

    pub(crate) fn parked(&self, worker: &str) -> bool {
        self.known().iter().all(|part| part.parked(worker))
    }

    /// The workers of every partition: one entry per worker, its running tasks summed, its
    /// idle time the least.
    pub(crate) async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let parts = self.parts().await?;
        let lists =
            futures_util::future::try_join_all(parts.iter().map(|part| part.workers())).await?;
        let mut merged: Vec<WorkerInfo> = Vec::new();
        for worker in lists.into_iter().flatten() {
            match merged.iter_mut().find(|known| known.name == worker.name) {
                Some(known) => {
                    known.running += worker.running;
                    known.idle = known.idle.min(worker.idle);
                }
                None => merged.push(worker),
            }
        }
        merged.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(merged)
    }

    pub(crate) async fn depth(&self) -> Result<(usize, usize)> {
        let parts = self.parts().await?;
        let depths =
            futures_util::future::try_join_all(parts.iter().map(|part| part.depth())).await?;
        Ok(depths
            .into_iter()
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d)))
    }

    /// Keep every partition's clock for `worker` until `stop` fires; then end the worker's
    /// claims in progress.
    pub(crate) async fn keep_time(&self, worker: &str, stop: &CancellationToken) {
        let parts = loop {
            match self.parts().await {
                Ok(parts) => break parts,
                Err(error) => {
                    tracing::debug!(worker, error = %crate::error::Chain(&error), "could not read the docket's layout; trying again");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(LAYOUT_RETRY) => {}
                    }
                }
            }
        };
        match parts {
            [home] => home.keep_time(worker, stop, None).await,
            [home, others @ ..] => {
                // Partition 0's lease makes one worker the keeper of every partition.
                let spread = Spread::new(parts.len());
                let others = others
                    .iter()
                    .map(|part| part.follow_time(worker, stop, &spread));
                futures_util::future::join(
                    home.keep_time(worker, stop, Some(&spread)),
                    futures_util::future::join_all(others),
                )
                .await;
            }
            [] => {}
        }
        self.silence(worker).await;
    }

    pub(crate) async fn remove_dead_letter(&self, key: &str) -> Result<bool> {
        for part in Self::lookups(self.parts().await?, key) {
            if part.remove_dead_letter(key).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub(crate) async fn clear(&self) -> Result<usize> {
        let parts = self.parts().await?;
        let cleared =
            futures_util::future::try_join_all(parts.iter().map(|part| part.clear())).await?;
        Ok(cleared.into_iter().sum())
    }

    /// Say once per task name that a task with limits was found outside partition 0.
    fn warn_limits_split(&self, task: &str) {
        if self.split_limits.locked().insert(task.to_owned()) {
            tracing::warn!(
                task,
                "a task with a concurrency or rate limit was stored outside partition 0, by a producer that does not know its limits: they are counted in each partition apart until every producer defines or declares the task with them"
            );
        }
    }
}

/// Whether this process knows `task` to live in partition 0: it has a concurrency limit, a
/// rate limit or a cooldown, counted there.
fn lives_home(task: &str) -> bool {
    crate::registry::Registry::global()
        .ok()
        .and_then(|registry| registry.get(task))
        .is_some_and(|registration| {
            let policy = registration.policy();
            policy.concurrency().is_some()
                || policy.rate_limit().is_some()
                || policy.cooldown().is_some()
        })
}

impl Backend for Partitions {
    async fn enqueue(
        &self,
        batch: &[(Message, KeyMode)],
        keep: Option<Duration>,
    ) -> Result<Vec<Disposition>> {
        let parts = self.parts().await?;
        if parts.len() == 1 {
            return self.home.enqueue(batch, keep).await;
        }
        // Each partition's share in one call (or as few as its size needs), in the order of
        // the batch within it.
        let mut shares: Vec<Vec<usize>> = vec![Vec::new(); parts.len()];
        for (index, (message, _)) in batch.iter().enumerate() {
            shares[Self::of_message(parts, message)].push(index);
        }
        self.home.check(batch)?;
        let calls = shares
            .iter()
            .enumerate()
            .filter(|(_, share)| !share.is_empty())
            .map(|(part, share)| {
                let sub: Vec<(Message, KeyMode)> =
                    share.iter().map(|index| batch[*index].clone()).collect();
                async move { (part, parts[part].enqueue(&sub, keep).await) }
            });
        let answers = futures_util::future::join_all(calls).await;
        let mut dispositions: Vec<Option<Disposition>> = vec![None; batch.len()];
        let mut failure = None;
        for (part, answer) in answers {
            match answer {
                Ok(outcomes) => {
                    for (index, outcome) in shares[part].iter().zip(outcomes) {
                        dispositions[*index] = Some(outcome);
                    }
                }
                Err(Error::BatchIncomplete { stored, source }) => {
                    for (index, outcome) in shares[part]
                        .iter()
                        .take(stored)
                        .zip(std::iter::repeat(Disposition::Added))
                    {
                        dispositions[*index] = Some(outcome);
                    }
                    failure = Some(*source);
                }
                Err(error) => failure = Some(error),
            }
        }
        match failure {
            None => Ok(dispositions
                .into_iter()
                .map(|outcome| outcome.expect("every task has an outcome"))
                .collect()),
            Some(error) => {
                let stored: Vec<usize> = (0..batch.len())
                    .filter(|index| dispositions[*index].is_some())
                    .collect();
                let source = Box::new(error);
                match stored.len() {
                    0 => Err(*source),
                    // The first ones: as a docket of one partition says it.
                    count if stored[count - 1] == count - 1 => Err(Error::BatchIncomplete {
                        stored: count,
                        source,
                    }),
                    _ => Err(Error::BatchPartlyStored { stored, source }),
                }
            }
        }
    }

    async fn cancel(&self, key: &str) -> Result<bool> {
        for part in Self::lookups(self.parts().await?, key) {
            if part.cancel(key).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn claim(
        &self,
        worker: &str,
        max: usize,
        max_wait: Option<Duration>,
        stop: &CancellationToken,
    ) -> Result<Vec<Delivery>> {
        let parts = self.parts().await?;
        if parts.len() == 1 {
            return self.home.take(worker, max, max_wait, stop).await;
        }
        self.claim_spread(parts, worker, max, max_wait, stop).await
    }

    async fn complete(&self, deliveries: &[Delivery]) -> Result<()> {
        // Every partition's share, even when one fails: those settle, the others are sent
        // again (settling twice is harmless).
        let shares = by_partition(self.known().len(), deliveries);
        all_done(
            shares
                .iter()
                .map(|(part, share)| self.known()[*part].complete(share)),
        )
        .await
    }

    async fn retry(&self, delivery: &Delivery, next: &Message) -> Result<()> {
        self.of_delivery(delivery).retry(delivery, next).await
    }

    async fn bury(&self, delivery: &Delivery, burial: Burial) -> Result<()> {
        self.of_delivery(delivery).bury(delivery, burial).await
    }

    fn renew_every(&self) -> Option<Duration> {
        self.home.renew_every()
    }

    async fn renew(&self, worker: &str) -> Result<()> {
        // Every partition, even when one fails: a partition whose master is away must not
        // leave the others' deliveries unrenewed.
        all_done(self.known().iter().map(|part| part.renew(worker))).await
    }

    fn dropped(&self, worker: &str) -> Vec<Delivery> {
        self.known()
            .iter()
            .flat_map(|part| part.dropped(worker))
            .collect()
    }

    fn abandon(&self, worker: &str, delivery: &Delivery) {
        self.of_delivery(delivery).abandon(worker, delivery);
    }

    async fn give_back(&self, worker: &str, deliveries: &[Delivery]) -> Result<()> {
        let shares = by_partition(self.known().len(), deliveries);
        all_done(
            shares
                .iter()
                .map(|(part, share)| self.known()[*part].give_back(worker, share)),
        )
        .await
    }

    async fn retire(&self, worker: &str) -> Result<()> {
        self.silence(worker).await;
        all_done(self.known().iter().map(|part| part.retire(worker))).await
    }

    async fn outstanding(&self) -> Result<usize> {
        let (streamed, scheduled) = self.depth().await?;
        Ok(streamed + scheduled)
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        let parts = self.parts().await?;
        if parts.len() == 1 {
            return self.home.snapshot().await;
        }
        let snapshots =
            futures_util::future::try_join_all(parts.iter().map(|part| part.snapshot())).await?;
        let mut merged = Snapshot {
            taken: std::time::SystemTime::now(),
            queued: Vec::new(),
            scheduled: Vec::new(),
            running: Vec::new(),
            held: Vec::new(),
            dead: 0,
        };
        for snapshot in snapshots {
            merged.taken = merged.taken.min(snapshot.taken);
            merged.queued.extend(snapshot.queued);
            merged.scheduled.extend(snapshot.scheduled);
            merged.running.extend(snapshot.running);
            merged.held.extend(snapshot.held);
            merged.dead += snapshot.dead;
        }
        let order = |a: &TaskInfo, b: &TaskInfo| (a.due, &a.key).cmp(&(b.due, &b.key));
        merged.queued.sort_by(order);
        merged.scheduled.sort_by(order);
        merged.running.sort_by(order);
        merged.held.sort_by(order);
        Ok(merged)
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        let parts = self.parts().await?;
        let lists =
            futures_util::future::try_join_all(parts.iter().map(|part| part.dead_letters()))
                .await?;
        let mut letters: Vec<DeadLetter> = lists.into_iter().flatten().collect();
        letters.sort_by(|a, b| (a.died, &a.key).cmp(&(b.died, &b.key)));
        Ok(letters)
    }

    async fn replay(&self, key: &str) -> Result<bool> {
        for part in Self::lookups(self.parts().await?, key) {
            if part.replay(key).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn signals(&self, feed: Option<&SignalFeed>) -> Result<SignalFeed> {
        let parts = self.parts().await?;
        if parts.len() == 1 {
            return self.home.signals(feed).await;
        }
        // Each partition's feed, resumed where the last one stopped.
        let mut feeds = Vec::with_capacity(parts.len());
        for (index, part) in parts.iter().enumerate() {
            let before = feed
                .and_then(|feed| feed.partitions.get(index))
                .map(|position| {
                    let mut resumed = SignalFeed::new(mpsc::unbounded_channel().1);
                    resumed.position = Arc::clone(position);
                    resumed
                });
            feeds.push(part.signals(before.as_ref()).await?);
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut merged = SignalFeed::new(receiver);
        merged.partitions = feeds
            .iter()
            .map(|feed| Arc::clone(&feed.position))
            .collect();
        let receivers: Vec<mpsc::UnboundedReceiver<Signal>> =
            feeds.into_iter().map(|feed| feed.signals).collect();
        // The strikes in place come from partition 0 alone: the other partitions keep copies for
        // their holds, which a strike or restore changes first, and which a spread docket may
        // not have had from the start.
        tokio::spawn(merge(receivers, sender, |part, signal| {
            part == 0 || !matches!(signal, Signal::Strikes(_))
        }));
        Ok(merged)
    }

    async fn strike(&self, strike: &Strike) -> Result<bool> {
        // Partition 0 last: its answer says whether the strike is new.
        let parts = self.parts().await?;
        for part in parts.iter().skip(1) {
            part.strike(strike).await?;
        }
        self.home.strike(strike).await
    }

    async fn restore(&self, strike: &Strike) -> Result<bool> {
        let parts = self.parts().await?;
        for part in parts.iter().skip(1) {
            part.restore(strike).await?;
        }
        self.home.restore(strike).await
    }

    async fn strikes(&self) -> Result<Vec<Strike>> {
        self.home.strikes().await
    }

    async fn hold(&self, delivery: &Delivery, strike: &Strike) -> Result<bool> {
        self.of_delivery(delivery).hold(delivery, strike).await
    }

    async fn held(&self) -> Result<Vec<Message>> {
        let parts = self.parts().await?;
        let lists =
            futures_util::future::try_join_all(parts.iter().map(|part| part.held())).await?;
        Ok(lists.into_iter().flatten().collect())
    }

    async fn unhold(&self, keys: &[String]) -> Result<usize> {
        let parts = self.parts().await?;
        if parts.len() == 1 {
            return self.home.unhold(keys).await;
        }
        // A key is held where it lives: its partition, or partition 0.
        let mut unheld = 0;
        for part in parts {
            unheld += part.unhold(keys).await?;
        }
        Ok(unheld)
    }

    async fn admit(&self, delivery: &Delivery, gate: &Gate) -> Result<Admission> {
        let part = self.of_delivery(delivery);
        if part.part != 0 {
            // Stored by a producer that did not know its limits (it neither defines nor
            // declares the task, or an older version of it had none): counted in its own
            // partition, which lets up to one limit's worth run in each.
            self.warn_limits_split(&delivery.message.task);
        }
        part.admit(delivery, gate).await
    }

    async fn release(&self, delivery: &Delivery, gate: &Gate) -> Result<()> {
        self.of_delivery(delivery).release(delivery, gate).await
    }

    async fn record(&self, state: &TaskRecord, ttl: Duration) -> Result<()> {
        let parts = self.parts().await?;
        let part = match parts.len() == 1 || lives_home(&state.task) {
            true => 0,
            false => Self::of_key(parts, &state.key),
        };
        parts[part].record(state, ttl).await
    }

    async fn status(&self, key: &str) -> Result<Option<TaskRecord>> {
        let places = Self::lookups(self.parts().await?, key);
        let found =
            futures_util::future::try_join_all(places.iter().map(|part| part.status(key))).await?;
        // A task moved to partition 0 may have left its first record in its key's partition:
        // the latest is the task's.
        Ok(found
            .into_iter()
            .flatten()
            .max_by_key(|record| record.updated_ms))
    }

    async fn watch(&self, key: &str) -> Result<mpsc::UnboundedReceiver<TaskRecord>> {
        let places = Self::lookups(self.parts().await?, key);
        if places.len() == 1 {
            return places[0].watch(key).await;
        }
        let mut receivers = Vec::new();
        for part in places {
            receivers.push(part.watch(key).await?);
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(merge(receivers, sender, |_, _| true));
        Ok(receiver)
    }
}

/// Run every call at once and wait for all of them; the first error, if any.
async fn all_done(calls: impl IntoIterator<Item = impl Future<Output = Result<()>>>) -> Result<()> {
    futures_util::future::join_all(calls)
        .await
        .into_iter()
        .collect()
}

/// The index of the partition that made `delivery`, among `count`: partition 0 for a delivery
/// of no partition this process knows (none is ever made).
fn part_of(count: usize, delivery: &Delivery) -> usize {
    match &delivery.id {
        DeliveryId::Stream { part, .. } if usize::from(*part) < count => usize::from(*part),
        _ => 0,
    }
}

/// The deliveries of each partition, in their order. When they all come from one partition
/// (always, on a docket of one) that is the slice itself, not a copy: settling is on the
/// worker's path for every task.
fn by_partition(count: usize, deliveries: &[Delivery]) -> Vec<(usize, Cow<'_, [Delivery]>)> {
    let first = deliveries
        .first()
        .map_or(0, |delivery| part_of(count, delivery));
    if deliveries
        .iter()
        .all(|delivery| part_of(count, delivery) == first)
    {
        return match deliveries.is_empty() {
            true => Vec::new(),
            false => vec![(first, Cow::Borrowed(deliveries))],
        };
    }
    let mut shares: Vec<Vec<Delivery>> = vec![Vec::new(); count.max(1)];
    for delivery in deliveries {
        shares[part_of(count, delivery)].push(delivery.clone());
    }
    shares
        .into_iter()
        .enumerate()
        .filter(|(_, share)| !share.is_empty())
        .map(|(part, share)| (part, Cow::Owned(share)))
        .collect()
}

impl std::fmt::Debug for Partitions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partitions")
            .field("home", &self.home)
            .field("partitions", &self.known().len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(part: u16, id: &str) -> Delivery {
        Delivery {
            id: DeliveryId::Stream {
                part,
                id: id.to_owned(),
            },
            message: Message::first_attempt("t", id, "{}", std::time::SystemTime::now()),
            redelivered: false,
        }
    }

    fn ids(share: &[Delivery]) -> Vec<&str> {
        share
            .iter()
            .map(|delivery| delivery.message.key.as_str())
            .collect()
    }

    #[test]
    fn deliveries_are_shared_out_by_partition_in_order_and_copied_only_when_mixed() {
        assert!(by_partition(3, &[]).is_empty());

        let one = [delivery(2, "a"), delivery(2, "b")];
        let shares = by_partition(3, &one);
        assert_eq!(shares.len(), 1);
        assert_eq!(shares[0].0, 2);
        assert!(
            matches!(shares[0].1, Cow::Borrowed(_)),
            "one partition: no copy"
        );
        assert_eq!(ids(&shares[0].1), ["a", "b"]);

        let mixed = [
            delivery(1, "a"),
            delivery(0, "b"),
            delivery(1, "c"),
            delivery(7, "d"),
        ];
        let shares = by_partition(3, &mixed);
        let parts: Vec<(usize, Vec<&str>)> = shares
            .iter()
            .map(|(part, share)| (*part, ids(share)))
            .collect();
        // A partition this process does not know counts as partition 0.
        assert_eq!(parts, [(0, vec!["b", "d"]), (1, vec!["a", "c"])]);
    }
}
