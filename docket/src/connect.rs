//! [`Connect`]: options for opening a docket from a URL.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;

use crate::backend::redis::RedisOptions;
use crate::config::{self, Settings, Target};
use crate::error::Result;
use crate::handle::Docket;

/// What a docket's tasks look like in Redis: the key layout, the message fields and the records
/// its producers and workers write. A property of the whole docket, never of one task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// docket's own: JSON arguments, dead letters, held strikes (the default).
    #[default]
    Docket,
    /// pydocket's (Python's docket, releases [`SUPPORTED_PYDOCKET`](crate::pydocket::SUPPORTED_PYDOCKET)):
    /// pickled arguments, its keys, consumer group and run records, so that a Rust worker runs
    /// what pydocket scheduled and a pydocket worker what Rust scheduled. See
    /// [`crate::pydocket`] for what is shared and what is not. Only on Redis.
    #[cfg(feature = "pydocket")]
    Pydocket,
}

impl std::str::FromStr for Protocol {
    type Err = crate::Error;

    /// `docket` or `pydocket`, as `DOCKET_PROTOCOL` takes them.
    fn from_str(text: &str) -> Result<Protocol> {
        match text {
            "docket" | "" => Ok(Protocol::Docket),
            #[cfg(feature = "pydocket")]
            "pydocket" => Ok(Protocol::Pydocket),
            #[cfg(not(feature = "pydocket"))]
            "pydocket" => Err(crate::Error::Config(
                "DOCKET_PROTOCOL=pydocket needs docket built with the `pydocket` feature".into(),
            )),
            other => Err(crate::Error::Config(format!(
                "DOCKET_PROTOCOL must be `docket` or `pydocket`, not `{other}`"
            ))),
        }
    }
}

/// Options for opening a docket from a URL; `.await` it to connect.
///
/// # Errors
///
/// Awaiting it checks every setting before anything is connected, and returns
/// [`Error::Config`](crate::Error::Config) naming the setting and its valid range for: a name
/// other than ASCII letters, digits, `-`, `_` and `.`; a worker concurrency of 0 or above what a
/// tokio semaphore holds; a redelivery timeout outside 100 ms ..= 7 days; a payload limit outside
/// 256 bytes ..= 512 MiB; `max_deliveries(0)`; `dead_letters` keeping none, or for less than a
/// minute; a CA that holds no certificate, or one that does not parse; a Redis URL that does not
/// parse (a cluster URL without a node, a Sentinel URL without a master's name). A URL of another scheme is an
/// [`Error::UnsupportedUrl`](crate::Error::UnsupportedUrl). Redis itself is reached on first use,
/// so an unreachable server is no error here. Errors and `Debug` output show the URL with its
/// password replaced by `***`.
#[must_use = "a connection is only made when `.await`ed"]
pub struct Connect {
    url: String,
    name: Option<String>,
    concurrency: Option<usize>,
    redis: RedisOptions,
    fallback: bool,
}

/// Shows the URL with its password replaced by `***`, never the password.
impl fmt::Debug for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connect")
            .field("url", &config::redact(&self.url))
            .field("name", &self.name)
            .field("concurrency", &self.concurrency)
            .field("redis", &self.redis)
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl Connect {
    pub(crate) fn new(url: String) -> Connect {
        Connect {
            url,
            name: None,
            concurrency: None,
            redis: RedisOptions::default(),
            fallback: true,
        }
    }

    /// The docket's name, its storage namespace (default `docket`): ASCII letters, digits, `-`,
    /// `_` and `.`, so that it can stand in Redis ACL key patterns as it is.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// What the docket's tasks look like in Redis (default [`Protocol::Docket`]). With
    /// `Protocol::Pydocket` (feature `pydocket`) the docket shares its Redis keys with
    /// pydocket, Python's docket (see the `docket::pydocket` module). Environment:
    /// `DOCKET_PROTOCOL` (`docket` or `pydocket`).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.redis.protocol = protocol;
        self
    }

    /// The concurrency workers of this docket use by default (default 10); from 1 to what a
    /// tokio semaphore holds.
    pub fn worker_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = Some(concurrency);
        self
    }

    /// How long a running task's worker may go silent before another worker takes the task
    /// over and runs it again (default 5 minutes). Live workers renew their tasks well within
    /// it, so it bounds how late a crashed worker's tasks restart, not how long a task may run:
    /// they restart within about one and a half timeouts of the crash (the keeper checks every
    /// half timeout), about two when the crashed worker was the keeper (its lease, as long as
    /// the timeout, lapses first) or when the fleet is working through a backlog (the keeper's
    /// ask waits a check behind it). From 100 ms to 7 days.
    pub fn redelivery_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.redis.redelivery_timeout = timeout;
        self
    }

    /// The largest encoded task accepted, in bytes (default 960 KiB). Scheduling a larger one is
    /// an [`Error::PayloadTooLarge`](crate::Error::PayloadTooLarge); a worker keeps a larger one
    /// it finds as a dead letter. From 256 bytes to 512 MiB; give producers and workers the same
    /// limit.
    ///
    /// The default leaves room for what docket sends with a task (its key, the script call,
    /// the first record: at most about 13 KB), so that storing one is a request of under 1 MB,
    /// the most Upstash's free and pay-as-you-go plans accept; batches are split to stay under
    /// it too. Raise it only on a server that takes larger requests.
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.redis.max_payload = bytes;
        self
    }

    /// Whether `schedule` runs a task in-process when the backend cannot be reached (the
    /// default), or returns the [`Error::Unavailable`](crate::Error::Unavailable) so the caller
    /// can decide. Turn it off where running the work in this process is worse than failing the
    /// request, or when the caller retries on its own.
    pub fn in_process_fallback(mut self, enabled: bool) -> Self {
        self.fallback = enabled;
        self
    }

    /// How many times a task may be handed to a worker that then vanishes without settling it
    /// (default 5). Past that, the task is a dead letter: it most likely kills its worker, by
    /// exiting the process or exhausting memory. Failures that workers report count against
    /// `retries` instead. At least 1.
    pub fn max_deliveries(mut self, deliveries: u32) -> Self {
        self.redis.max_deliveries = u64::from(deliveries);
        self
    }

    /// After storing tasks, wait until `replicas` replicas of the Redis master hold them too
    /// (`WAIT`, up to 2 s) before `schedule` or `add_many` returns (default 0: do not wait).
    /// Redis replicates asynchronously: without it, a master that dies right after answering
    /// can take the last tasks it stored with it when a replica takes over (on Redis Cluster or
    /// Sentinel). With it, a schedule that returned `Ok` is on `replicas` replicas; when fewer
    /// confirm in time, it returns [`Error::NotReplicated`](crate::Error::NotReplicated) (the
    /// tasks are stored on the master, and run unless a failover loses them).
    pub fn wait_replicas(mut self, replicas: u32) -> Self {
        self.redis.wait_replicas = replicas;
        self
    }

    /// Spread the docket over `partitions` partitions (default 1; from 1 to 64), each a full
    /// set of the docket's keys under a hash tag of its own: on Redis Cluster, each on a
    /// different master, so the docket uses as many cores as it has partitions (up to the
    /// masters). `DOCKET_PARTITIONS` sets it for [`Docket::from_env`].
    ///
    /// The count is written in the docket's layout record by the first process that asks for
    /// more than one, and from then on every process follows the stored layout, whatever it
    /// asks for (with a warning when they differ). Going from 1 to N keeps every task stored
    /// before: partition 0 is the docket's keys as they were. A task's key picks its partition;
    /// tasks with a concurrency limit, a rate limit or a cooldown live in partition 0, where
    /// those are counted. Each partition costs a worker a blocking read and a signals feed
    /// (connections; an idle fleet's commands stay those of one partition); see the README's
    /// "Spreading one docket over several masters".
    pub fn partitions(mut self, partitions: u16) -> Self {
        self.redis.partitions = partitions;
        self
    }

    /// Keep at most `kept` dead letters (default 10,000), none older than `age` (default 30
    /// days); past either, the oldest go first, as the next one is written. Bounds what a
    /// docket keeps of failed tasks' arguments, and the size of its dead-letter hash (managed
    /// Redis services cap one record's size). `kept` at least 1, `age` at least a minute.
    pub fn dead_letters(mut self, kept: usize, age: std::time::Duration) -> Self {
        self.redis.dead_letters_kept = kept;
        self.redis.dead_letter_age = age;
        self
    }

    /// For `rediss://`: trust the certificates in this PEM (a private CA) instead of the
    /// system's roots. `DOCKET_TLS_CA_FILE` names such a file for [`Docket::from_env`]. It must
    /// hold at least one `-----BEGIN CERTIFICATE-----` block, and every such block must parse.
    pub fn tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.redis.tls_ca = Some(pem.into());
        self
    }

    async fn open(self) -> Result<Docket> {
        let name = match self.name {
            Some(name) => config::validate_name(&name)?.to_owned(),
            None => config::DEFAULT_NAME.to_owned(),
        };
        let concurrency = config::validate_concurrency(
            self.concurrency.unwrap_or(config::DEFAULT_CONCURRENCY),
            "`Connect::worker_concurrency`, `--concurrency`",
        )?;
        config::validate_options(&self.redis)?;
        Docket::open(Settings {
            target: Target::parse(&self.url)?,
            name,
            concurrency,
            redis: self.redis,
            fallback: self.fallback,
            metrics_names: None,
        })
        .await
    }
}

impl IntoFuture for Connect {
    type Output = Result<Docket>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Docket>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.open())
    }
}
