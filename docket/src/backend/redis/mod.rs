//! The Redis backend (`redis://`, `rediss://`): durable, at-least-once.
//!
//! Due tasks flow through a stream read by the consumer group `workers`; each worker is a
//! consumer with a unique name. Future tasks wait in a sorted set and are moved to the stream
//! when due, by whichever worker's timer fires first. A delivered entry stays in its worker's
//! pending list until settled; a live worker renews its claim, and entries whose worker stopped
//! renewing are reclaimed by another after the redelivery timeout. The key layout is in
//! [`keys`], each atomic step a Lua script in `lua/`.
//!
//! An idle worker blocks on the stream until the earliest future task is due (or, at the
//! latest, until its next reclaim check); a task scheduled earlier than that adds a wake-up entry
//! to the stream. It never polls.
//!
//! Each worker also follows the signals stream (strike changes, cancels of running tasks) on a
//! connection of its own, blocked in `XREAD` until something is signalled. Tasks a strike holds
//! wait in a hash. A task whose concurrency limit is full is acknowledged but stays in the
//! stream, its id queued on the limit's list until a holder releases its slot; so it still
//! counts as queued, at no cost to tasks without limits. Kept task states are expiring strings,
//! each change published on a channel of the same name for watchers.

mod admin;
mod codec;
#[cfg(fuzzing)]
pub(crate) mod fuzz;
mod keys;
mod scripts;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::io::tcp::TcpSettings;
use redis::io::tcp::socket2::TcpKeepalive;
use redis::{
    AsyncConnectionConfig, Client, FromRedisValue, IntoConnectionInfo, RedisError,
    ScriptInvocation, Value,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::codec::{Entry, SignalEntry, millis};
use self::keys::{GROUP, Keys};
use self::scripts::SCRIPTS;
use super::{
    Admission, Backend, Burial, Delivery, DeliveryId, Gate, KeyMode, Message, Signal, SignalFeed,
};
use crate::error::{Error, Result};
use crate::inspect::{DeadLetter, Snapshot, TaskInfo};
use crate::results::{Status, TaskRecord};
use crate::schedule::Disposition;
use crate::strike::Strike;

/// Settings of a Redis connection, from [`Connect`](crate::Connect).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RedisOptions {
    /// How long a delivery may go unrenewed before another worker takes it over.
    pub(crate) redelivery_timeout: Duration,
    /// The largest message a worker decodes; larger ones become dead letters.
    pub(crate) max_payload: usize,
    /// PEM certificates to trust for `rediss://`, instead of the system's roots.
    pub(crate) tls_ca: Option<Vec<u8>>,
    /// How many deliveries a task may have without being settled before it is a dead letter.
    pub(crate) max_deliveries: u64,
    /// The most dead letters kept; the oldest go first.
    pub(crate) dead_letters_kept: usize,
    /// How long a dead letter is kept.
    pub(crate) dead_letter_age: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            redelivery_timeout: Duration::from_secs(300),
            max_payload: 1 << 20,
            tls_ca: None,
            max_deliveries: 5,
            dead_letters_kept: super::DEAD_LETTERS_KEPT,
            dead_letter_age: super::DEAD_LETTER_AGE,
        }
    }
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("redelivery_timeout", &self.redelivery_timeout)
            .field("max_payload", &self.max_payload)
            .field("tls_ca", &self.tls_ca.as_ref().map(|_| "set"))
            .field("max_deliveries", &self.max_deliveries)
            .field("dead_letters_kept", &self.dead_letters_kept)
            .field("dead_letter_age", &self.dead_letter_age)
            .finish()
    }
}

/// The longest a worker blocks without a look at the schedule and for stalled deliveries.
const MAX_IDLE_WAIT: Duration = Duration::from_secs(75);

/// The most future tasks one tick moves into the stream.
const PROMOTE_BATCH: usize = 1000;

/// How soon a worker looks again at stalled deliveries it left behind.
const SUSPECT_PAUSE: Duration = Duration::from_millis(100);

/// The most lost deliveries read back at once.
const RECOVER_BATCH: usize = 1000;

/// How long an answer may take on the shared connection before it counts as unreachable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest a connection waits between two attempts to reconnect.
const RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// TCP keepalive: probe a connection silent this long, this often, this many times, so a peer
/// gone without a reset is noticed within about a minute.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 3;

/// The most worker signals read at once.
const SIGNAL_BATCH: usize = 100;

/// The most tasks one `enqueue` call stores, and about the most bytes of messages: well under
/// every server's limits on a request (ElastiCache Serverless takes 3,999 arguments, Upstash 1
/// MB on its free plan) and Lua's on `unpack`. Larger batches are split.
const ENQUEUE_CHUNK: usize = 500;
const ENQUEUE_CHUNK_BYTES: usize = 512 << 10;

/// The most deliveries settled or renewed in one call.
const SETTLE_CHUNK: usize = 1000;

pub(crate) struct RedisBackend {
    keys: Keys,
    /// The URL without its password, for messages.
    url: String,
    client: Client,
    config: ConnectionManagerConfig,
    /// Shared by every operation but the blocking read, one for each tokio runtime that uses
    /// this docket (see [`Shared`]).
    shared: Mutex<Vec<Shared>>,
    /// Dedicated connections for blocking reads, one per claim in progress.
    readers: Mutex<Vec<Reader>>,
    timer: Mutex<Timer>,
    /// Stream ids handed to this process's workers and not yet settled, and the worker (the
    /// consumer) holding each. A delivery leaves only when its settlement has returned, so it is
    /// renewed while it is being settled and never recovered as lost meanwhile.
    in_flight: Mutex<HashMap<String, String>>,
    /// Workers whose read failed: entries it delivered may never have reached them.
    lost_reads: Mutex<HashSet<String>>,
    /// Deliveries taken over by a worker and settled without running (cancelled, superseded,
    /// buried as poison), by worker: the worker gives back their concurrency slots.
    dropped: Mutex<HashMap<String, Vec<Delivery>>>,
    options: RedisOptions,
    /// Commands this handle has sent, its signal and watch feeds included.
    sent: Arc<AtomicU64>,
}

/// A connection that blocks in `XREADGROUP`, and its server-side id for `CLIENT UNBLOCK`.
struct Reader {
    connection: MultiplexedConnection,
    id: i64,
    /// The runtime its connection's task runs on: used from no other.
    runtime: tokio::runtime::Id,
}

/// The shared connection of one tokio runtime.
///
/// A connection's I/O runs as a task on the runtime that opened it, and dies with that runtime.
/// Programs make several runtimes (each `#[tokio::test]` has its own; some tools make one per
/// command), and a docket handle outlives them, the default docket above all: so each runtime
/// gets a connection of its own, opened on first use there, and forgotten when the runtime ends.
/// A dead runtime's connection is never mistaken for an unreachable Redis.
struct Shared {
    runtime: tokio::runtime::Id,
    connection: ConnectionManager,
    /// Cancelled when the runtime ends (a task spawned on it holds the guard).
    ended: CancellationToken,
}

/// When the next tick is needed.
#[derive(Debug)]
struct Timer {
    /// The earliest due time in the schedule (ms), as of the last tick; `None` when unknown.
    next_due: Option<Option<u64>>,
    /// When to look for stalled deliveries next.
    next_reclaim: Instant,
    /// Where the last reclaim scan stopped.
    cursor: String,
}

impl RedisBackend {
    /// A handle on the docket `name` at `url`. Connects lazily: an unreachable server shows as
    /// [`Error::Unavailable`] on first use, not here.
    pub(crate) fn open(url: &str, name: &str, options: RedisOptions) -> Result<RedisBackend> {
        let redacted = crate::config::redact(url);
        if url.starts_with("rediss://") {
            // rustls needs a process-wide crypto provider. Install ring's unless the application
            // already chose one.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let invalid = |error: RedisError| {
            Error::Config(format!("cannot use the Redis URL `{redacted}`: {error}"))
        };
        // A connection blocked in a read for minutes (the claim, the signal feed) would never
        // notice a peer that vanished without a reset; TCP keepalive probes find it, and cost no
        // Redis command.
        let keepalive = TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_INTERVAL)
            .with_retries(KEEPALIVE_PROBES);
        let info = url
            .into_connection_info()
            .map_err(invalid)?
            .set_tcp_settings(TcpSettings::default().set_keepalive(keepalive));
        let client = match &options.tls_ca {
            Some(ca) => Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                },
            ),
            None => Client::open(info),
        }
        .map_err(invalid)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(RECONNECT_DELAY);
        // Checked here, so that a bad URL or setting fails `open`, not the first use.
        client
            .get_connection_manager_lazy(config.clone())
            .map_err(invalid)?;
        Ok(RedisBackend {
            keys: Keys::new(name),
            url: redacted,
            client,
            config,
            shared: Mutex::new(Vec::new()),
            readers: Mutex::new(Vec::new()),
            timer: Mutex::new(Timer {
                next_due: None,
                // Not at once: a process that starts may be meeting a Redis that just restarted,
                // whose pending deliveries' idle times (and, restored from a snapshot, its
                // consumers' too) count the downtime; live workers need a timeout to renew.
                next_reclaim: Instant::now() + options.redelivery_timeout,
                cursor: "-".into(),
            }),
            in_flight: Mutex::new(HashMap::new()),
            lost_reads: Mutex::new(HashSet::new()),
            dropped: Mutex::new(HashMap::new()),
            options,
            sent: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Redis commands this handle has sent so far.
    pub(crate) fn commands_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// How often the reclaim check runs: often enough that a stalled delivery waits little past
    /// the redelivery timeout, rarely enough to keep an idle worker near-silent.
    fn reclaim_every(&self) -> Duration {
        (self.options.redelivery_timeout / 4).clamp(Duration::from_millis(100), MAX_IDLE_WAIT)
    }

    async fn invoke<T: FromRedisValue>(&self, invocation: &ScriptInvocation<'_>) -> Result<T> {
        failpoint!(redis "redis.send");
        let reply = self.invoke_once(invocation).await;
        self.heard(&reply);
        failpoint!(redis "redis.reply");
        reply
    }

    /// After an outage, live workers need a whole redelivery timeout to renew their deliveries
    /// (their idle times kept counting while Redis was down or restarting), so none of them is
    /// taken over as if its worker had died: push the next reclaim check back.
    fn heard<T>(&self, reply: &Result<T>) {
        if reply.as_ref().is_err_and(Error::is_unavailable) {
            // A whole timeout after the last failure, and the longest a peer takes to reconnect.
            let grace = Instant::now() + self.options.redelivery_timeout + RECONNECT_DELAY;
            let mut timer = self.timer.lock().expect("never poisoned");
            timer.next_reclaim = timer.next_reclaim.max(grace);
        }
    }

    async fn invoke_once<T: FromRedisValue>(&self, invocation: &ScriptInvocation<'_>) -> Result<T> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let mut connection = self.connection();
        match invocation.invoke_async(&mut connection).await {
            Err(error) if is_no_group(&error) => {
                self.create_group().await?;
                self.sent.fetch_add(1, Ordering::Relaxed);
                invocation
                    .invoke_async(&mut connection)
                    .await
                    .map_err(into_error)
            }
            result => result.map_err(into_error),
        }
    }

    async fn query<T: FromRedisValue>(&self, command: &redis::Cmd) -> Result<T> {
        failpoint!(redis "redis.send");
        self.sent.fetch_add(1, Ordering::Relaxed);
        let reply = command
            .query_async(&mut self.connection())
            .await
            .map_err(into_error);
        self.heard(&reply);
        failpoint!(redis "redis.reply");
        reply
    }

    async fn pipeline<T: FromRedisValue>(&self, pipeline: &redis::Pipeline) -> Result<T> {
        failpoint!(redis "redis.send");
        let reply = self.pipeline_once(pipeline).await;
        self.heard(&reply);
        failpoint!(redis "redis.reply");
        reply
    }

    async fn pipeline_once<T: FromRedisValue>(&self, pipeline: &redis::Pipeline) -> Result<T> {
        self.sent
            .fetch_add(pipeline.len() as u64, Ordering::Relaxed);
        let mut connection = self.connection();
        match pipeline.query_async(&mut connection).await {
            Err(error) if is_no_group(&error) => {
                self.create_group().await?;
                self.sent
                    .fetch_add(pipeline.len() as u64, Ordering::Relaxed);
                pipeline
                    .query_async(&mut connection)
                    .await
                    .map_err(into_error)
            }
            result => result.map_err(into_error),
        }
    }

    /// Create the consumer group (and the stream) if they are missing: on first use, or after
    /// the server lost its data.
    async fn create_group(&self) -> Result<()> {
        let mut command = redis::cmd("XGROUP");
        command
            .arg("CREATE")
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM");
        match self.query::<()>(&command).await {
            Err(Error::Backend { source }) if source.to_string().contains("BUSYGROUP") => Ok(()),
            result => result,
        }
    }

    /// The shared connection of the current runtime, opened (lazily) on its first use there.
    fn connection(&self) -> ConnectionManager {
        let runtime = tokio::runtime::Handle::current();
        let id = runtime.id();
        let mut shared = self.shared.lock().expect("never poisoned");
        if let Some(found) = shared.iter().find(|shared| shared.runtime == id) {
            return found.connection.clone();
        }
        shared.retain(|shared| !shared.ended.is_cancelled());
        let connection = self
            .client
            .get_connection_manager_lazy(self.config.clone())
            .expect("the client and its settings were checked when the backend was opened");
        let ended = CancellationToken::new();
        let guard = ended.clone().drop_guard();
        runtime.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        shared.push(Shared {
            runtime: id,
            connection: connection.clone(),
            ended,
        });
        connection
    }

    /// A connection of its own, for reads that block: no answer timeout.
    async fn dedicated(&self) -> Result<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(None);
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(into_error)
    }

    /// A reader of the current runtime: a pooled one, or a new connection.
    async fn reader(&self) -> Result<Reader> {
        let runtime = tokio::runtime::Handle::current().id();
        {
            let mut readers = self.readers.lock().expect("never poisoned");
            if let Some(at) = readers.iter().position(|reader| reader.runtime == runtime) {
                return Ok(readers.swap_remove(at));
            }
            // Readers of runtimes that ended are dead: their connections' tasks are gone.
            let shared = self.shared.lock().expect("never poisoned");
            readers.retain(|reader| {
                shared
                    .iter()
                    .any(|shared| shared.runtime == reader.runtime && !shared.ended.is_cancelled())
            });
        }
        let mut connection = self.dedicated().await?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        let id = redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut connection)
            .await
            .map_err(into_error)?;
        Ok(Reader {
            connection,
            id,
            runtime,
        })
    }

    /// Block until entries arrive, `wait` passes or `stop` fires.
    ///
    /// Redis ends a blocked read only on its own clock tick (`hz`, 10 a second by default), so a
    /// read timed to end when a future task falls due would start it up to 100 ms late. Instead,
    /// a local timer fires at the due time and moves the task into the stream, which wakes the
    /// read at once.
    async fn read(
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
                () = stop.cancelled() => break,
                () = &mut deadline => return Err(unavailable("the blocking read did not return")),
                () = &mut due_timer, if !promoted => {
                    promoted = true;
                    if let Err(error) = self.tick(worker, max, false).await {
                        tracing::debug!(error = %crate::error::Chain(&error), "moving due tasks failed");
                    }
                }
            }
        }
        // Stop waiting now, but still take what the read returns: entries it delivered belong to
        // this worker and must be run, not left pending until redelivery. The unblock may reach
        // Redis before the read does, so it is repeated until the read answers.
        let mut unblock = redis::cmd("CLIENT");
        unblock.arg("UNBLOCK").arg(reader.id);
        for _ in 0..10 {
            if let Err(error) = self.query::<i64>(&unblock).await {
                tracing::debug!(error = %crate::error::Chain(&error), "could not unblock the reader");
            }
            if let Ok(reply) = tokio::time::timeout(Duration::from_millis(100), &mut read).await {
                return reply.map_err(into_error);
            }
        }
        Err(unavailable("the blocking read did not stop"))
    }

    /// When the earliest future task falls due, as of the last tick.
    fn next_due(&self) -> Option<Instant> {
        let next_due = self.timer.lock().expect("never poisoned").next_due;
        next_due
            .flatten()
            .map(|due| crate::time::instant_at(codec::from_millis(due)))
    }

    /// Move due tasks into the stream and, when it is time and `may_reclaim`, take over
    /// stalled deliveries.
    async fn tick(&self, worker: &str, max: usize, may_reclaim: bool) -> Result<Vec<Entry>> {
        let now = Instant::now();
        let (reclaim, cursor) = {
            let timer = self.timer.lock().expect("never poisoned");
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
            let mut timer = self.timer.lock().expect("never poisoned");
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
    fn holds_nothing(&self, worker: &str) -> bool {
        let in_flight = self.in_flight.lock().expect("never poisoned");
        !in_flight.values().any(|holder| holder == worker)
    }

    /// Remember that deliveries may have reached `worker` without it seeing them: the next claim
    /// looks for them first.
    fn lost(&self, worker: &str) {
        self.lost_reads
            .lock()
            .expect("never poisoned")
            .insert(worker.to_owned());
    }

    /// Entries delivered to `worker` whose delivery it never saw: the reply of a read (or a
    /// reclaim) that failed after Redis had handed them over, or entries it could not sort. They
    /// are found in the worker's pending list, less those it holds, and claimed again at the
    /// delivery count they have: losing a reply is no delivery.
    async fn recover(&self, worker: &str) -> Result<Vec<Entry>> {
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
            let in_flight = self.in_flight.lock().expect("never poisoned");
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
    fn drop_entries(&self, worker: &str, entries: Vec<(String, Vec<Value>)>) {
        for entry in self.decode(entries) {
            if let Entry::Task { id, message } = entry {
                self.dropped_by(worker, id, message);
            }
        }
    }

    fn dropped_by(&self, worker: &str, id: String, message: Message) {
        self.dropped
            .lock()
            .expect("never poisoned")
            .entry(worker.to_owned())
            .or_default()
            .push(Delivery {
                id: DeliveryId::Stream(id),
                message,
                redelivered: true,
            });
    }

    /// Forget the dead letter of `key`; whether there was one.
    pub(crate) async fn remove_dead_letter(&self, key: &str) -> Result<bool> {
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("HDEL")
            .arg(&self.keys.dead)
            .arg(key)
            .cmd("ZREM")
            .arg(&self.keys.died)
            .arg(key)
            .ignore();
        let (removed,): (i64,) = self.pipeline(&pipeline).await?;
        Ok(removed == 1)
    }

    /// Acknowledge `(stream id, key)` entries, at most [`SETTLE_CHUNK`] a call.
    async fn acknowledge<'a>(&self, entries: &[(&'a str, &'a str)]) -> Result<()> {
        for chunk in entries.chunks(SETTLE_CHUNK) {
            let mut invocation = SCRIPTS.complete.prepare_invoke();
            invocation
                .key(&self.keys.stream)
                .key(&self.keys.index)
                .arg(chunk.len());
            for (id, _) in chunk {
                invocation.arg(*id);
            }
            for (_, key) in chunk {
                invocation.arg(*key);
            }
            self.invoke::<i64>(&invocation).await?;
        }
        Ok(())
    }

    /// The delivery is settled: it is no longer this process's to run or renew.
    fn settled<'a>(&self, deliveries: impl IntoIterator<Item = &'a Delivery>) {
        let mut in_flight = self.in_flight.lock().expect("never poisoned");
        for delivery in deliveries {
            in_flight.remove(stream_id(delivery));
        }
    }

    /// The worker holding `delivery`: whose word settles it. A delivery this process no longer
    /// holds has no holder, and scripts then treat its settlement as a stale copy's.
    fn holder(&self, delivery: &Delivery) -> String {
        self.in_flight
            .lock()
            .expect("never poisoned")
            .get(stream_id(delivery))
            .cloned()
            .unwrap_or_default()
    }

    fn keys_for(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .key(&self.keys.stream)
            .key(&self.keys.index)
            .key(&self.keys.schedule)
            .key(&self.keys.parked);
    }

    fn decode(&self, raw: Vec<(String, Vec<Value>)>) -> Vec<Entry> {
        raw.into_iter()
            .map(|(id, fields)| codec::decode_entry(id, &fields, self.options.max_payload))
            .collect()
    }

    /// Split entries handed to `worker` into deliveries, settling wake-ups and burying garbled
    /// entries. `redelivered`: the entries were taken over from a worker that went silent.
    /// Never fails: a delivery is never lost here; what cannot be settled now stays pending to
    /// the worker and is recovered by its next claim.
    async fn sort(&self, worker: &str, entries: Vec<Entry>, redelivered: bool) -> Vec<Delivery> {
        let mut deliveries = Vec::with_capacity(entries.len());
        let mut wakes = Vec::new();
        let mut garbled = Vec::new();
        {
            let mut in_flight = self.in_flight.lock().expect("never poisoned");
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
            self.timer.lock().expect("never poisoned").next_due = None;
            let wakes: Vec<(&str, &str)> = wakes.iter().map(|id| (id.as_str(), "")).collect();
            if let Err(error) = self.acknowledge(&wakes).await {
                tracing::debug!(error = %crate::error::Chain(&error), "could not settle wake-ups");
                self.lost(worker);
            }
        }
        deliveries
    }

    async fn bury_entry(
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
    fn wait(&self, give_up: Option<Instant>) -> Option<Duration> {
        let now = Instant::now();
        let timer = self.timer.lock().expect("never poisoned");
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

impl RedisBackend {
    /// Every message of `batch` fits the payload limit; else the error for the first that does
    /// not.
    pub(crate) fn check(&self, batch: &[(Message, KeyMode)]) -> Result<()> {
        for (message, _) in batch {
            self.fits(message, &codec::encode_message(message))?;
        }
        Ok(())
    }

    fn fits(&self, message: &Message, json: &str) -> Result<()> {
        if json.len() > self.options.max_payload {
            return Err(Error::PayloadTooLarge {
                task: message.task.clone(),
                size: json.len(),
                limit: self.options.max_payload,
            });
        }
        Ok(())
    }
}

impl Backend for RedisBackend {
    async fn enqueue(&self, batch: &[(Message, KeyMode)]) -> Result<Vec<Disposition>> {
        // Encode and check every task before anything is sent: a bad one writes nothing.
        let mut encoded = Vec::with_capacity(batch.len());
        for (message, mode) in batch {
            let json = codec::encode_message(message);
            self.fits(message, &json)?;
            let mode = match mode {
                KeyMode::Add => "add",
                KeyMode::Replace => "replace",
                KeyMode::Fresh => "fresh",
            };
            encoded.push((message, json, mode));
        }
        // In chunks, sent together on the shared connection (pipelined), run in order.
        let mut chunks = Vec::new();
        let mut rest = encoded.as_slice();
        while !rest.is_empty() {
            let mut bytes = 0;
            let mut len = 0;
            while len < rest.len()
                && len < ENQUEUE_CHUNK
                && (len == 0 || bytes < ENQUEUE_CHUNK_BYTES)
            {
                bytes += rest[len].1.len() + rest[len].0.key.len();
                len += 1;
            }
            let (chunk, tail) = rest.split_at(len);
            chunks.push(chunk);
            rest = tail;
        }
        let now = millis(SystemTime::now());
        let calls = chunks.iter().map(|chunk| async move {
            let mut invocation = SCRIPTS.enqueue.prepare_invoke();
            self.keys_for(&mut invocation);
            invocation.key(&self.keys.held).arg(now);
            for (message, json, mode) in *chunk {
                invocation
                    .arg(&message.key)
                    .arg(json.as_str())
                    .arg(millis(message.due))
                    .arg(*mode);
            }
            self.invoke::<Vec<u8>>(&invocation).await
        });
        let mut dispositions = Vec::with_capacity(batch.len());
        for outcomes in futures_util::future::join_all(calls).await {
            for outcome in outcomes? {
                dispositions.push(match outcome {
                    0 => Disposition::Added,
                    1 => Disposition::Replaced,
                    2 => Disposition::Duplicate,
                    other => {
                        return Err(Error::Backend {
                            source: format!("enqueue answered `{other}`").into(),
                        });
                    }
                });
            }
        }
        Ok(dispositions)
    }

    async fn cancel(&self, key: &str) -> Result<bool> {
        let mut invocation = SCRIPTS.cancel.prepare_invoke();
        self.keys_for(&mut invocation);
        invocation
            .key(&self.keys.held)
            .key(&self.keys.signals)
            .arg(key);
        Ok(self.invoke::<i64>(&invocation).await? == 1)
    }

    async fn claim(
        &self,
        worker: &str,
        max: usize,
        max_wait: Option<Duration>,
        stop: &CancellationToken,
    ) -> Result<Vec<Delivery>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let give_up = max_wait.map(|wait| Instant::now() + wait);
        let mut reader = self.reader().await?;
        let result: Result<Vec<Delivery>> = async {
            if self
                .lost_reads
                .lock()
                .expect("never poisoned")
                .remove(worker)
            {
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
                    self.readers.lock().expect("never poisoned").push(reader);
                }
                // An unreachable server: drop the connection; make a new one next time.
            }
            Ok(_) => self.readers.lock().expect("never poisoned").push(reader),
        }
        result
    }

    async fn complete(&self, deliveries: &[Delivery]) -> Result<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let settled: Vec<(&str, &str)> = deliveries
            .iter()
            .map(|delivery| (stream_id(delivery), delivery.message.key.as_str()))
            .collect();
        self.acknowledge(&settled).await?;
        self.settled(deliveries);
        Ok(())
    }

    async fn retry(&self, delivery: &Delivery, next: &Message) -> Result<()> {
        let mut invocation = SCRIPTS.retry.prepare_invoke();
        self.keys_for(&mut invocation);
        invocation
            .arg(stream_id(delivery))
            .arg(&delivery.message.key)
            .arg(codec::encode_message(next))
            .arg(millis(next.due))
            .arg(millis(SystemTime::now()))
            .arg(self.holder(delivery));
        self.invoke::<i64>(&invocation).await?;
        self.settled([delivery]);
        Ok(())
    }

    async fn bury(&self, delivery: &Delivery, burial: Burial) -> Result<()> {
        let letter = codec::encode_dead(
            &delivery.message,
            &burial.reason,
            SystemTime::now(),
            Some(&burial.history),
        );
        let key = &delivery.message.key;
        let holder = self.holder(delivery);
        self.bury_entry(&holder, stream_id(delivery), key, &letter, false)
            .await?;
        self.settled([delivery]);
        Ok(())
    }

    fn renew_every(&self) -> Option<Duration> {
        Some(self.options.redelivery_timeout / 4)
    }

    async fn renew(&self, worker: &str) -> Result<()> {
        let mut held: Vec<String> = self
            .in_flight
            .lock()
            .expect("never poisoned")
            .iter()
            .filter(|(_, holder)| *holder == worker)
            .map(|(id, _)| id.clone())
            .collect();
        // In stream order, so each call's ids span a range of the pending list of their own.
        held.sort_by_key(|id| super::stream_order(id));
        for chunk in held.chunks(SETTLE_CHUNK) {
            failpoint!(redis "renew");
            let mut invocation = SCRIPTS.renew.prepare_invoke();
            invocation.key(&self.keys.stream).arg(worker).arg(chunk);
            self.invoke::<i64>(&invocation).await?;
        }
        Ok(())
    }

    fn dropped(&self, worker: &str) -> Vec<Delivery> {
        self.dropped
            .lock()
            .expect("never poisoned")
            .remove(worker)
            .unwrap_or_default()
    }

    fn abandon(&self, worker: &str, delivery: &Delivery) {
        // No longer renewed; recovered by this worker's next claim and run again.
        self.settled([delivery]);
        self.lost(worker);
    }

    async fn retire(&self, worker: &str) -> Result<()> {
        let mut invocation = SCRIPTS.retire.prepare_invoke();
        invocation.key(&self.keys.stream).arg(worker);
        self.invoke::<i64>(&invocation).await.map(drop)
    }

    async fn outstanding(&self) -> Result<usize> {
        let (streamed, scheduled) = self.depth().await?;
        Ok(streamed + scheduled)
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        const CAP: usize = 100_000;
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("XRANGE")
            .arg(&self.keys.stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(CAP)
            .cmd("XPENDING")
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(CAP)
            .cmd("HGETALL")
            .arg(&self.keys.parked)
            .cmd("HGETALL")
            .arg(&self.keys.held)
            .cmd("HLEN")
            .arg(&self.keys.dead);
        type Pairs = Vec<(String, Vec<u8>)>;
        let (streamed, pending, parked, held, dead): (Value, Value, Pairs, Pairs, usize) =
            self.pipeline(&pipeline).await?;
        let taken = SystemTime::now();
        let owners: HashMap<String, String> = pending_rows(pending)
            .into_iter()
            .map(|row| (row.id, row.consumer))
            .collect();
        let mut snapshot = Snapshot {
            taken,
            queued: Vec::new(),
            scheduled: Vec::new(),
            running: Vec::new(),
            held: Vec::new(),
            dead,
        };
        for entry in self.decode(stream_entries(streamed)) {
            let info = match &entry {
                Entry::Task { message, .. } => info(message),
                Entry::Wake { .. } => continue,
                Entry::Garbled { id, key, .. } => TaskInfo {
                    key: key.clone().unwrap_or_else(|| format!("garbled:{id}")),
                    task: String::new(),
                    due: taken,
                    attempt: 0,
                    worker: None,
                },
            };
            match owners.get(entry.id()) {
                Some(worker) => snapshot.running.push(TaskInfo {
                    worker: Some(worker.clone()),
                    ..info
                }),
                None => snapshot.queued.push(info),
            }
        }
        for (key, json) in parked {
            match codec::decode_message(&key, &json) {
                // Due but not yet moved to the stream: a worker would take it now.
                Ok(message) if message.due <= taken => snapshot.queued.push(info(&message)),
                Ok(message) => snapshot.scheduled.push(info(&message)),
                Err(reason) => tracing::warn!(%key, %reason, "a scheduled task does not decode"),
            }
        }
        snapshot.held = decode_held(held).iter().map(info).collect();
        for list in [
            &mut snapshot.queued,
            &mut snapshot.scheduled,
            &mut snapshot.running,
            &mut snapshot.held,
        ] {
            list.sort_by(|a, b| (a.due, &a.key).cmp(&(b.due, &b.key)));
        }
        Ok(snapshot)
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        let mut command = redis::cmd("HGETALL");
        command.arg(&self.keys.dead);
        let letters: Vec<(String, Vec<u8>)> = self.query(&command).await?;
        let mut letters: Vec<DeadLetter> = letters
            .into_iter()
            .map(|(key, json)| codec::decode_dead(&key, &json))
            .collect();
        letters.sort_by(|a, b| (a.died, &a.key).cmp(&(b.died, &b.key)));
        Ok(letters)
    }

    async fn replay(&self, key: &str) -> Result<bool> {
        let mut command = redis::cmd("HGET");
        command.arg(&self.keys.dead).arg(key);
        let Some(json) = self.query::<Option<Vec<u8>>>(&command).await? else {
            return Ok(false);
        };
        let letter = codec::decode_dead(key, &json);
        let message = Message {
            task: letter.task,
            key: key.to_owned(),
            args: letter.args,
            attempt: 1,
            due: SystemTime::now(),
            history: Vec::new(),
            trace: None,
        };
        let mut invocation = SCRIPTS.replay.prepare_invoke();
        self.keys_for(&mut invocation);
        invocation
            .key(&self.keys.dead)
            .key(&self.keys.died)
            .arg(key)
            .arg(codec::encode_message(&message))
            .arg(millis(SystemTime::now()));
        Ok(self.invoke::<i64>(&invocation).await? == 1)
    }

    async fn signals(&self, feed: Option<&SignalFeed>) -> Result<SignalFeed> {
        let mut connection = self.dedicated().await?;
        // Where the feed stands, then the strikes: any change after that point is in the feed.
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("XREVRANGE")
            .arg(&self.keys.signals)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .cmd("ZRANGE")
            .arg(&self.keys.strikes)
            .arg(0)
            .arg(-1);
        self.sent
            .fetch_add(pipeline.len() as u64, Ordering::Relaxed);
        let read = pipeline.query_async::<(Value, Vec<Vec<u8>>)>(&mut connection);
        let (last, strikes) = tokio::time::timeout(RESPONSE_TIMEOUT, read)
            .await
            .map_err(|_| unavailable("reading the strikes did not return"))?
            .map_err(into_error)?;
        // A feed that went on after an earlier one starts where that one stopped, so cancels
        // sent meanwhile still arrive (the strikes are read whole again anyway).
        let resumed = feed.and_then(|feed| feed.position.lock().expect("never poisoned").clone());
        let last = match resumed {
            Some(position) => position,
            None => stream_entries(last)
                .pop()
                .map_or_else(|| "0-0".to_owned(), |(id, _)| id),
        };
        let strikes = codec::decode_strikes(strikes.iter().map(Vec::as_slice));
        let (sender, receiver) = mpsc::unbounded_channel();
        let _ = sender.send(Signal::Strikes(strikes));
        let feed = SignalFeed::new(receiver);
        *feed.position.lock().expect("never poisoned") = Some(last.clone());
        tokio::spawn(follow_signals(
            self.keys.signals.clone(),
            Arc::clone(&self.sent),
            connection,
            Arc::clone(&feed.position),
            last,
            sender,
        ));
        Ok(feed)
    }

    async fn strike(&self, strike: &Strike) -> Result<bool> {
        let mut invocation = SCRIPTS.strike.prepare_invoke();
        invocation
            .key(&self.keys.strikes)
            .key(&self.keys.signals)
            .arg(strike.encode());
        Ok(self.invoke::<i64>(&invocation).await? == 1)
    }

    async fn restore(&self, strike: &Strike) -> Result<bool> {
        let mut invocation = SCRIPTS.restore.prepare_invoke();
        invocation
            .key(&self.keys.strikes)
            .key(&self.keys.signals)
            .arg(strike.encode());
        Ok(self.invoke::<i64>(&invocation).await? == 1)
    }

    async fn strikes(&self) -> Result<Vec<Strike>> {
        let mut command = redis::cmd("ZRANGE");
        command.arg(&self.keys.strikes).arg(0).arg(-1);
        let strikes: Vec<Vec<u8>> = self.query(&command).await?;
        Ok(codec::decode_strikes(strikes.iter().map(Vec::as_slice)))
    }

    async fn hold(&self, delivery: &Delivery, strike: &Strike) -> Result<bool> {
        let mut invocation = SCRIPTS.hold.prepare_invoke();
        invocation
            .key(&self.keys.stream)
            .key(&self.keys.index)
            .key(&self.keys.strikes)
            .key(&self.keys.held)
            .arg(stream_id(delivery))
            .arg(&delivery.message.key)
            .arg(codec::encode_message(&delivery.message))
            .arg(strike.encode())
            .arg(self.holder(delivery));
        let held = self.invoke::<i64>(&invocation).await? == 1;
        if held {
            self.settled([delivery]);
        }
        Ok(held)
    }

    async fn held(&self) -> Result<Vec<Message>> {
        let mut command = redis::cmd("HGETALL");
        command.arg(&self.keys.held);
        Ok(decode_held(self.query(&command).await?))
    }

    async fn unhold(&self, keys: &[String]) -> Result<usize> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut invocation = SCRIPTS.unhold.prepare_invoke();
        self.keys_for(&mut invocation);
        invocation
            .key(&self.keys.held)
            .arg(millis(SystemTime::now()))
            .arg(keys);
        self.invoke(&invocation).await
    }

    async fn admit(&self, delivery: &Delivery, gate: &Gate) -> Result<Admission> {
        let (slot, size) = match &gate.slot {
            Some((scope, size)) => (scope.as_str(), *size),
            None => ("", 0),
        };
        let (rate, count, window) = match &gate.rate {
            Some((scope, count, window)) => (scope.as_str(), *count, millis_of(*window).max(1)),
            None => ("", 0, 0),
        };
        let mut invocation = SCRIPTS.admit.prepare_invoke();
        self.keys_for(&mut invocation);
        invocation
            .key(self.keys.slot(slot))
            .key(self.keys.gated(slot))
            .key(self.keys.rate(rate))
            .arg(stream_id(delivery))
            .arg(&delivery.message.key)
            .arg(codec::encode_message(&delivery.message))
            .arg(millis(SystemTime::now()))
            .arg(size)
            .arg(count)
            .arg(window)
            .arg(self.holder(delivery));
        let answer: Vec<u64> = self.invoke(&invocation).await?;
        let admission = match answer.as_slice() {
            [0] => return Ok(Admission::Run),
            [1] => Admission::Waiting,
            [2, due] => Admission::Deferred(codec::from_millis(*due)),
            other => {
                return Err(Error::Backend {
                    source: format!("admit answered `{other:?}`").into(),
                });
            }
        };
        self.settled([delivery]);
        Ok(admission)
    }

    async fn release(&self, delivery: &Delivery, gate: &Gate) -> Result<()> {
        let Some((scope, _)) = &gate.slot else {
            return Ok(());
        };
        let mut invocation = SCRIPTS.release.prepare_invoke();
        self.keys_for(&mut invocation);
        invocation
            .key(self.keys.slot(scope))
            .key(self.keys.gated(scope))
            .arg(stream_id(delivery))
            .arg(millis(SystemTime::now()));
        self.invoke::<i64>(&invocation).await.map(drop)
    }

    async fn record(&self, state: &TaskRecord, ttl: Duration) -> Result<()> {
        // Only its producer records a task's first state, after storing the task.
        let first =
            matches!(state.status, Status::Queued | Status::Scheduled) && state.attempt == 1;
        let mut invocation = SCRIPTS.record.prepare_invoke();
        invocation
            .key(self.keys.state(&state.key))
            .key(&self.keys.stream)
            .key(&self.keys.index)
            .arg(state.encode())
            .arg(millis_of(ttl).max(1))
            .arg(&state.key)
            .arg(if first { "1" } else { "0" });
        self.invoke::<i64>(&invocation).await.map(drop)
    }

    async fn status(&self, key: &str) -> Result<Option<TaskRecord>> {
        let mut command = redis::cmd("GET");
        command.arg(self.keys.state(key));
        let Some(json) = self.query::<Option<Vec<u8>>>(&command).await? else {
            return Ok(None);
        };
        TaskRecord::decode(&json)
            .map(Some)
            .map_err(|error| Error::Backend {
                source: format!("the recorded state of `{key}` does not decode: {error}").into(),
            })
    }

    async fn watch(&self, key: &str) -> Result<mpsc::UnboundedReceiver<TaskRecord>> {
        let channel = self.keys.state(key);
        let subscribe = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, RedisError>(pubsub)
        };
        self.sent.fetch_add(1, Ordering::Relaxed);
        let pubsub = tokio::time::timeout(CONNECT_TIMEOUT + RESPONSE_TIMEOUT, subscribe)
            .await
            .map_err(|_| unavailable("subscribing to a task's state did not return"))?
            .map_err(into_error)?;
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(follow_states(key.to_owned(), pubsub, sender));
        Ok(receiver)
    }
}

/// Forward the signals stream `signals` to a worker, from the entry after `last`, until the
/// worker drops the receiver or the connection fails (then the channel closes, and the worker
/// subscribes again). While nothing happens it costs nothing: one read blocks until an entry
/// arrives.
async fn follow_signals(
    signals: String,
    sent: Arc<AtomicU64>,
    mut connection: MultiplexedConnection,
    position: Arc<Mutex<Option<String>>>,
    mut last: String,
    sender: mpsc::UnboundedSender<Signal>,
) {
    loop {
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT")
            .arg(SIGNAL_BATCH)
            .arg("BLOCK")
            .arg(0)
            .arg("STREAMS")
            .arg(&signals)
            .arg(&last);
        sent.fetch_add(1, Ordering::Relaxed);
        let reply = tokio::select! {
            () = sender.closed() => return,
            reply = read.query_async::<Value>(&mut connection) => reply,
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => {
                tracing::debug!(error = %error, "the worker signal feed ended");
                return;
            }
        };
        for (id, fields) in stream_entries(first_stream(reply)) {
            let signal = match codec::decode_signal(&fields) {
                Some(SignalEntry::Strikes(strikes)) => Some(Signal::Strikes(strikes)),
                Some(SignalEntry::Cancel { key, id }) => Some(Signal::Cancel {
                    key,
                    delivery: id.map(DeliveryId::Stream),
                }),
                None => {
                    tracing::warn!(entry = %id, "ignoring an unknown worker signal");
                    None
                }
            };
            if signal.is_some_and(|signal| sender.send(signal).is_err()) {
                return;
            }
            // Only once the signal is passed on: a feed made after this one ends resumes here.
            *position.lock().expect("never poisoned") = Some(id.clone());
            last = id;
        }
    }
}

/// Forward the state changes published for `key` until the watcher drops the receiver or the
/// connection ends (then the channel closes).
async fn follow_states(
    key: String,
    pubsub: redis::aio::PubSub,
    sender: mpsc::UnboundedSender<TaskRecord>,
) {
    let mut messages = pubsub.into_on_message();
    loop {
        let message = tokio::select! {
            () = sender.closed() => return,
            message = messages.next() => message,
        };
        let Some(message) = message else {
            return;
        };
        match TaskRecord::decode(message.get_payload_bytes()) {
            Ok(state) => {
                if sender.send(state).is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(%key, %error, "ignoring a published task state that does not decode")
            }
        }
    }
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &self.url)
            .field("stream", &self.keys.stream)
            .finish_non_exhaustive()
    }
}

fn info(message: &Message) -> TaskInfo {
    TaskInfo {
        key: message.key.clone(),
        task: message.task.clone(),
        due: message.due,
        attempt: message.attempt,
        worker: None,
    }
}

/// Held tasks as stored; one that does not decode is skipped, with a warning.
fn decode_held(stored: Vec<(String, Vec<u8>)>) -> Vec<Message> {
    stored
        .into_iter()
        .filter_map(|(key, json)| match codec::decode_message(&key, &json) {
            Ok(message) => Some(message),
            Err(reason) => {
                tracing::warn!(%key, %reason, "a held task does not decode");
                None
            }
        })
        .collect()
}

fn stream_id(delivery: &Delivery) -> &str {
    match &delivery.id {
        DeliveryId::Stream(id) => id,
        DeliveryId::Memory(_) => unreachable!("a memory delivery settled on Redis"),
    }
}

fn millis_of(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The entries of the first stream in an `XREADGROUP` reply (nil when the block timed out).
fn first_stream(reply: Value) -> Value {
    match reply {
        Value::Array(streams) => streams
            .into_iter()
            .next()
            .and_then(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => pair.pop(),
                _ => None,
            })
            .unwrap_or(Value::Nil),
        Value::Map(streams) => streams
            .into_iter()
            .next()
            .map_or(Value::Nil, |(_, entries)| entries),
        _ => Value::Nil,
    }
}

/// `[[id, [field, value, ...]], ...]` as pairs; entries of any other shape are skipped (a
/// deleted entry can show as `[id, nil]`).
fn stream_entries(entries: Value) -> Vec<(String, Vec<Value>)> {
    let Value::Array(entries) = entries else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|entry| match entry {
            Value::Array(mut pair) if pair.len() == 2 => {
                let fields = match pair.pop() {
                    Some(Value::Array(fields)) => fields,
                    _ => return None,
                };
                match pair.pop() {
                    Some(Value::BulkString(id)) => Some((String::from_utf8(id).ok()?, fields)),
                    Some(Value::SimpleString(id)) => Some((id, fields)),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

/// One row of an `XPENDING key group - + count` reply.
struct PendingRow {
    id: String,
    consumer: String,
    /// How often the entry has been delivered.
    delivered: u64,
}

/// The rows of an `XPENDING key group - + count` reply; rows of any other shape are skipped.
fn pending_rows(pending: Value) -> Vec<PendingRow> {
    let Value::Array(rows) = pending else {
        return Vec::new();
    };
    let text = |value: &Value| match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    };
    rows.into_iter()
        .filter_map(|row| {
            let Value::Array(row) = row else { return None };
            let delivered = match row.get(3)? {
                Value::Int(count) => u64::try_from(*count).ok()?,
                _ => return None,
            };
            Some(PendingRow {
                id: text(row.first()?)?,
                consumer: text(row.get(1)?)?,
                delivered,
            })
        })
        .collect()
}

fn is_no_group(error: &RedisError) -> bool {
    error.code() == Some("NOGROUP") || error.to_string().contains("NOGROUP")
}

fn unavailable(message: &str) -> Error {
    Error::Unavailable {
        source: message.to_owned().into(),
    }
}

/// Connection-class failures may pass; everything else is the server refusing the operation.
fn into_error(error: RedisError) -> Error {
    let transient = error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
        || matches!(
            error.code(),
            Some("LOADING" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "BUSY")
        );
    if transient {
        Error::Unavailable {
            source: Box::new(error),
        }
    } else {
        Error::Backend {
            source: Box::new(error),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
