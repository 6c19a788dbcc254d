//! The connections of a Redis docket: opening them (TLS, keepalive, timeouts), one shared
//! connection per tokio runtime, the dedicated ones blocking reads use, and the choke points
//! every command goes through (`invoke`, `query`, `pipeline`), which count what is sent and
//! sort errors into transient ([`Error::Unavailable`]) and refused ([`Error::Backend`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::TcpSettings;
use redis::io::tcp::socket2::TcpKeepalive;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, FromRedisValue, IntoConnectionInfo, Pipeline, RedisError,
    RedisFuture, Script, Value,
};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::claim::Timer;
use super::keys::{GROUP, Keys};
use super::scripts::{Invocation, KeyLocking, Locking};
use super::{RedisBackend, RedisOptions};
use crate::error::{Error, Result};
use crate::sync::Locked;

/// How long an answer may take on the shared connection before it counts as unreachable.
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a cluster connection tries a command again (after a redirect, a failover, or a
/// node that is down) before the call fails.
const CLUSTER_RETRIES: u32 = 4;

/// The longest a connection waits between two attempts to reconnect.
pub(super) const RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// TCP keepalive: probe a connection silent this long, this often, this many times, so a peer
/// gone without a reset is noticed within about a minute.
pub(super) const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
pub(super) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
pub(super) const KEEPALIVE_PROBES: u32 = 3;

/// The shared connection of one tokio runtime.
///
/// A connection's I/O runs as a task on the runtime that opened it, and dies with that runtime.
/// Programs make several runtimes (each `#[tokio::test]` has its own; some tools make one per
/// command), and a docket handle outlives them, the default docket above all: so each runtime
/// gets a connection of its own, opened on first use there, and forgotten when the runtime ends.
/// A dead runtime's connection is never mistaken for an unreachable Redis.
pub(super) struct Shared {
    pub(super) runtime: tokio::runtime::Id,
    pub(super) connection: Link,
    /// Cancelled when the runtime ends (a task spawned on it holds the guard).
    pub(super) ended: CancellationToken,
}

/// How a docket reaches Redis. One per backend, made once: the size of its variants does not
/// matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Endpoint {
    /// One server (`redis://`, `rediss://`, `unix://`): a connection manager per runtime that
    /// reconnects by itself, and plain connections for blocking reads.
    Single {
        client: Client,
        config: ConnectionManagerConfig,
    },
    /// A Redis Cluster (`redis+cluster://`, `rediss+cluster://`): a docket's keys share one hash
    /// tag, so one slot; the cluster connection follows redirects and failovers. Blocking reads
    /// use cluster connections of their own (a blocked command holds its node's connection).
    Cluster(Cluster),
    /// A master watched by Sentinels (`redis+sentinel://`, `rediss+sentinel://`): the
    /// Sentinels name the master; after a failover (the old master unreachable, or answering
    /// `READONLY` as a replica) the docket asks them again.
    Sentinel(Sentinel),
}

/// A Sentinel endpoint: the Sentinels, and the master they last named.
pub(super) struct Sentinel {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    master: Mutex<Option<Client>>,
    config: ConnectionManagerConfig,
}

impl Sentinel {
    /// A client of the master: the one last named, or the one the Sentinels name now.
    async fn master(&self) -> Result<Client> {
        if let Some(client) = self.master.locked().clone() {
            return Ok(client);
        }
        let mut sentinels = self.sentinels.lock().await;
        if let Some(client) = self.master.locked().clone() {
            return Ok(client);
        }
        let client = tokio::time::timeout(
            CONNECT_TIMEOUT + RESPONSE_TIMEOUT,
            sentinels.async_get_client(),
        )
        .await
        .map_err(|_| unavailable("asking the Sentinels for the master did not return"))?
        .map_err(|error| Error::Unavailable {
            source: Box::new(error),
        })?;
        *self.master.locked() = Some(client.clone());
        Ok(client)
    }
}

/// The clients of a Redis Cluster endpoint.
pub(super) struct Cluster {
    shared: ClusterClient,
    blocking: ClusterClient,
    /// A plain client of one node, for `SUBSCRIBE`: a cluster passes each `PUBLISH` to every
    /// node.
    pubsub: Client,
}

impl Endpoint {
    /// A client for pub/sub subscriptions.
    pub(super) fn pubsub(&self) -> &Client {
        match self {
            Endpoint::Single { client, .. } => client,
            Endpoint::Cluster(cluster) => &cluster.pubsub,
            Endpoint::Sentinel(_) => unreachable!("a Sentinel endpoint's master is asked for"),
        }
    }
}

/// A connection to the docket's Redis, whichever kind it is.
#[derive(Clone)]
pub(super) enum Link {
    Managed(ConnectionManager),
    Direct(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Link::Managed(connection) => connection.req_packed_command(cmd),
            Link::Direct(connection) => connection.req_packed_command(cmd),
            Link::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Link::Managed(connection) => connection.req_packed_commands(pipeline, offset, count),
            Link::Direct(connection) => connection.req_packed_commands(pipeline, offset, count),
            Link::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Managed(connection) => connection.get_db(),
            Link::Direct(connection) => connection.get_db(),
            Link::Cluster(connection) => connection.get_db(),
        }
    }
}

/// The nodes of a `redis+cluster://` or `rediss+cluster://` URL, each as a `redis://` or
/// `rediss://` URL carrying the credentials: `redis+cluster://user:pw@h1:p1,h2:p2` gives
/// `redis://user:pw@h1:p1` and `redis://user:pw@h2:p2`. `None` for any other URL.
pub(super) fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let (scheme, rest) = url.split_once("://")?;
    let base = match scheme {
        "redis+cluster" => "redis",
        "rediss+cluster" => "rediss",
        _ => return None,
    };
    // What follows the hosts (a path or a query) is not a node's.
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, _) = rest.split_at(end);
    let (credentials, hosts) = match authority.rsplit_once('@') {
        Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
        None => (String::new(), authority),
    };
    Some(
        hosts
            .split(',')
            .filter(|host| !host.is_empty())
            .map(|host| format!("{base}://{credentials}{host}"))
            .collect(),
    )
}

/// The `redis+cluster://` (or `rediss+cluster://`) form of a plain `redis://` (`rediss://`)
/// URL, for a server found to be a cluster node: the node seeds the cluster client, which learns
/// the others from it. A cluster has one database, so a path (`/2`) is left out. `None` for
/// other schemes.
pub(super) fn as_cluster_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme {
        "redis" => "redis+cluster",
        "rediss" => "rediss+cluster",
        _ => return None,
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    Some(format!("{scheme}://{}", &rest[..end]))
}

/// How long `connect` waits to learn whether a plain URL's server is a cluster node; a server
/// that does not answer by then is used as a single server.
const CLUSTER_PROBE: Duration = Duration::from_millis(500);

/// A `redis+sentinel://` or `rediss+sentinel://` URL: `[user:pw@]s1:p1,s2:p2/master[/db]`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SentinelUrl {
    /// Each Sentinel as a `redis://` (or `rediss://`) URL, without credentials.
    pub(super) sentinels: Vec<String>,
    /// The name the Sentinels watch the master under.
    pub(super) master: String,
    /// The master's URL as the Sentinels' answer will complete it: its scheme, credentials and
    /// database, with a placeholder host.
    pub(super) settings: String,
    pub(super) tls: bool,
}

/// The parts of a Sentinel URL; `None` for any other URL, `Some(Err)` for a malformed one.
pub(super) fn sentinel_url(url: &str) -> Option<std::result::Result<SentinelUrl, String>> {
    let (scheme, rest) = url.split_once("://")?;
    let base = match scheme {
        "redis+sentinel" => "redis",
        "rediss+sentinel" => "rediss",
        _ => return None,
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (credentials, hosts) = match authority.rsplit_once('@') {
        Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
        None => (String::new(), authority),
    };
    let sentinels: Vec<String> = hosts
        .split(',')
        .filter(|host| !host.is_empty())
        .map(|host| format!("{base}://{host}"))
        .collect();
    let mut path = path.split('?').next().unwrap_or("").split('/');
    let master = path.next().unwrap_or("").to_owned();
    let db = path.next().filter(|db| !db.is_empty()).unwrap_or("0");
    Some(if sentinels.is_empty() {
        Err("it names no Sentinel".to_owned())
    } else if master.is_empty() {
        Err("it names no master: write `/name` after the Sentinels".to_owned())
    } else if db.parse::<i64>().is_err() {
        Err(format!("`{db}` is not a database number"))
    } else {
        Ok(SentinelUrl {
            sentinels,
            master,
            settings: format!("{base}://{credentials}localhost/{db}"),
            tls: base == "rediss",
        })
    })
}

impl RedisBackend {
    /// A handle on the docket `name` at `url`, as [`open`](Self::open) makes it; except that a
    /// plain `redis://` or `rediss://` URL whose server says it is a Redis Cluster node
    /// (`cluster_enabled:1`) is used as the cluster it belongs to. Asking costs one connection
    /// and one `INFO cluster`, at most [`CLUSTER_PROBE`]; a server that cannot be asked (down,
    /// or refusing `INFO`) is used as a single server.
    pub(crate) async fn connect(
        url: &str,
        name: &str,
        options: RedisOptions,
    ) -> Result<RedisBackend> {
        let backend = Self::open(url, name, options.clone())?;
        let Some(cluster) = as_cluster_url(url) else {
            return Ok(backend);
        };
        if !backend.is_cluster_node().await {
            return Ok(backend);
        }
        tracing::info!(url = %backend.url, "the server is a Redis Cluster node: using its cluster");
        Self::open(&cluster, name, options)
    }

    /// Whether a single endpoint's server is a Redis Cluster node; `false` when it does not
    /// say so within [`CLUSTER_PROBE`].
    async fn is_cluster_node(&self) -> bool {
        let Endpoint::Single { client, .. } = &*self.endpoint else {
            return false;
        };
        let ask = async {
            let mut connection = client.get_multiplexed_async_connection().await.ok()?;
            let info: String = redis::cmd("INFO")
                .arg("cluster")
                .query_async(&mut connection)
                .await
                .ok()?;
            Some(info.lines().any(|line| line.trim() == "cluster_enabled:1"))
        };
        tokio::time::timeout(CLUSTER_PROBE, ask)
            .await
            .ok()
            .flatten()
            .unwrap_or(false)
    }

    /// A handle on the docket `name` at `url`. Connects lazily: an unreachable server shows as
    /// [`Error::Unavailable`] on first use, not here.
    pub(crate) fn open(url: &str, name: &str, options: RedisOptions) -> Result<RedisBackend> {
        let redacted = crate::config::redact(url);
        if url.starts_with("rediss") {
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
        let tcp = TcpSettings::default().set_keepalive(keepalive);
        let certificates = |ca: &Vec<u8>| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.clone()),
        };
        let plain_client = |url: &str| {
            let info = url.into_connection_info()?.set_tcp_settings(tcp.clone());
            match &options.tls_ca {
                Some(ca) => Client::build_with_tls(info, certificates(ca)),
                None => Client::open(info),
            }
        };
        let sentinel = match sentinel_url(url) {
            Some(Ok(sentinel)) => Some(sentinel),
            Some(Err(problem)) => {
                return Err(Error::Config(format!(
                    "cannot use the Redis URL `{redacted}`: {problem}"
                )));
            }
            None => None,
        };
        let endpoint = match cluster_nodes(url) {
            _ if sentinel.is_some() => {
                let sentinel = sentinel.expect("checked just above");
                let settings = sentinel
                    .settings
                    .as_str()
                    .into_connection_info()
                    .map_err(invalid)?;
                let mut node = SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(settings.redis_settings().clone())
                    .set_tcp_settings(tcp.clone());
                if sentinel.tls {
                    node = node.set_tls_mode(redis::TlsMode::Secure);
                }
                let sentinels = SentinelClient::build(
                    sentinel.sentinels.clone(),
                    sentinel.master.clone(),
                    Some(node),
                    SentinelServerType::Master,
                )
                .map_err(invalid)?;
                Endpoint::Sentinel(Sentinel {
                    sentinels: tokio::sync::Mutex::new(sentinels),
                    master: Mutex::new(None),
                    config: ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(CONNECT_TIMEOUT))
                        .set_response_timeout(Some(RESPONSE_TIMEOUT))
                        .set_number_of_retries(2)
                        .set_max_delay(RECONNECT_DELAY),
                })
            }
            Some(nodes) if nodes.is_empty() => {
                return Err(Error::Config(format!(
                    "cannot use the Redis URL `{redacted}`: it names no cluster node"
                )));
            }
            Some(nodes) => {
                let builder = |response_timeout: Option<Duration>| {
                    let mut builder = ClusterClientBuilder::new(nodes.clone())
                        .connection_timeout(CONNECT_TIMEOUT)
                        .retries(CLUSTER_RETRIES)
                        .tcp_settings(tcp.clone());
                    if let Some(timeout) = response_timeout {
                        builder = builder.response_timeout(timeout);
                    }
                    if let Some(ca) = &options.tls_ca {
                        builder = builder.certs(certificates(ca));
                    }
                    builder.build()
                };
                Endpoint::Cluster(Cluster {
                    shared: builder(Some(RESPONSE_TIMEOUT)).map_err(invalid)?,
                    blocking: builder(None).map_err(invalid)?,
                    pubsub: plain_client(&nodes[0]).map_err(invalid)?,
                })
            }
            None => {
                let client = plain_client(url).map_err(invalid)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(2)
                    .set_max_delay(RECONNECT_DELAY);
                // Checked here, so that a bad URL or setting fails `open`, not the first use.
                client
                    .get_connection_manager_lazy(config.clone())
                    .map_err(invalid)?;
                Endpoint::Single { client, config }
            }
        };
        Ok(RedisBackend::beside(
            0,
            name,
            redacted,
            Arc::new(endpoint),
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(AtomicU64::new(0)),
            Arc::new(KeyLocking::default()),
            Arc::default(),
            options,
        ))
    }

    /// Partition `part` of the docket whose hash tag it is, on this one's connections.
    pub(super) fn partition(&self, part: u16, tag: &str) -> RedisBackend {
        RedisBackend::beside(
            part,
            tag,
            self.url.clone(),
            Arc::clone(&self.endpoint),
            Arc::clone(&self.shared),
            Arc::clone(&self.sent),
            Arc::clone(&self.key_locking),
            Arc::clone(&self.solo),
            self.options.clone(),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn beside(
        part: u16,
        tag: &str,
        url: String,
        endpoint: Arc<Endpoint>,
        shared: Arc<Mutex<Vec<Shared>>>,
        sent: Arc<AtomicU64>,
        key_locking: Arc<KeyLocking>,
        solo: Arc<super::solo::Solo>,
        options: RedisOptions,
    ) -> RedisBackend {
        RedisBackend {
            keys: Keys::new(tag),
            part,
            url,
            endpoint,
            shared,
            readers: Mutex::new(Vec::new()),
            timer: Mutex::new(Timer {
                next_due: None,
                wakes: 0,
                // Not at once: a process that starts may be meeting a Redis that just restarted,
                // whose pending deliveries' idle times (and, restored from a snapshot, its
                // consumers' too) count the downtime; live workers need a timeout to renew.
                not_before: Instant::now() + options.redelivery_timeout,
                reclaim_at: None,
                ask: None,
                cursor: "-".into(),
            }),
            chores: Notify::new(),
            unreachable: Notify::new(),
            changed: Notify::new(),
            woken: Mutex::new(HashSet::new()),
            handed: Mutex::new(HashSet::new()),
            parked: Mutex::new(HashSet::new()),
            in_flight: Mutex::new(crate::sync::FastMap::default()),
            lost_reads: Mutex::new(HashSet::new()),
            dropped: Mutex::new(HashMap::new()),
            solo,
            options,
            sent,
            key_locking,
        }
    }

    /// Redis commands this handle has sent so far.
    pub(crate) fn commands_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub(super) async fn invoke<T: FromRedisValue>(&self, invocation: &Invocation<'_>) -> Result<T> {
        // The keys and arguments the script's header declares, or a bug: nothing is sent.
        invocation.checked()?;
        failpoint!(redis "redis.send");
        let reply = self.invoke_variant(invocation).await;
        self.heard(&reply);
        failpoint!(redis "redis.reply");
        reply
    }

    /// Send the call with the flagged variant of its script while the server may take the
    /// `allow-key-locking` flag, and with the plain one once it has refused it (see
    /// [`KeyLocking`](super::scripts::KeyLocking)): on a server that refuses the flag, a handle
    /// pays one refused call, its first.
    async fn invoke_variant<T: FromRedisValue>(&self, invocation: &Invocation<'_>) -> Result<T> {
        let lua = invocation.lua();
        let (flagged, probing) = match self.key_locking.next().await {
            Locking::Flagged => (true, None),
            Locking::Plain => (false, None),
            Locking::Probe(guard) => (true, Some(guard)),
        };
        let answer = self.invoke_once(invocation, lua.variant(flagged)).await;
        if flagged && self.key_locking.learn(&answer) {
            drop(probing);
            // Refused before it ran: the plain variant runs it once.
            return self.invoke_once(invocation, lua.variant(false)).await;
        }
        answer
    }

    /// After an outage, live workers need a whole redelivery timeout to renew their deliveries
    /// (their idle times kept counting while Redis was down or restarting), so none of them is
    /// taken over as if its worker had died: push the next reclaim check back.
    pub(super) fn heard<T>(&self, reply: &Result<T>) {
        if reply.as_ref().is_err_and(Error::is_unavailable) {
            self.outage();
            if let Endpoint::Sentinel(sentinel) = &*self.endpoint {
                // The master may have changed: ask the Sentinels again, on new connections.
                *sentinel.master.locked() = None;
                self.shared.locked().clear();
            }
        }
    }

    /// A client for pub/sub subscriptions.
    pub(super) async fn pubsub_client(&self) -> Result<Client> {
        match &*self.endpoint {
            Endpoint::Sentinel(sentinel) => sentinel.master().await,
            endpoint => Ok(endpoint.pubsub().clone()),
        }
    }

    /// Redis could not be reached: no reclaim until a whole timeout after this failure, and
    /// the longest a peer takes to reconnect (see [`heard`](Self::heard)).
    pub(super) fn outage(&self) {
        let grace = Instant::now() + self.options.redelivery_timeout + RECONNECT_DELAY;
        {
            let mut timer = self.timer.locked();
            timer.not_before = timer.not_before.max(grace);
            if let Some(at) = &mut timer.reclaim_at {
                *at = (*at).max(grace);
            }
        }
        self.chores.notify_waiters();
    }

    /// Send the call with `script`, one variant of its script; create the consumer group first
    /// if the server lost it.
    async fn invoke_once<T: FromRedisValue>(
        &self,
        invocation: &Invocation<'_>,
        script: &Script,
    ) -> Result<T> {
        let command = invocation.command(script);
        self.sent.fetch_add(1, Ordering::Relaxed);
        let mut connection = self.connection().await?;
        match run_script(&mut connection, script, &command).await {
            Err(error) if is_no_group(&error) => {
                self.create_group().await?;
                self.sent.fetch_add(1, Ordering::Relaxed);
                run_script(&mut connection, script, &command)
                    .await
                    .map_err(into_error)
            }
            result => result.map_err(into_error),
        }
    }

    pub(super) async fn query<T: FromRedisValue>(&self, command: &redis::Cmd) -> Result<T> {
        failpoint!(redis "redis.send");
        self.sent.fetch_add(1, Ordering::Relaxed);
        let reply = match self.connection().await {
            Ok(mut connection) => command
                .query_async(&mut connection)
                .await
                .map_err(into_error),
            Err(error) => Err(error),
        };
        self.heard(&reply);
        failpoint!(redis "redis.reply");
        reply
    }

    pub(super) async fn pipeline<T: FromRedisValue>(
        &self,
        pipeline: &redis::Pipeline,
    ) -> Result<T> {
        failpoint!(redis "redis.send");
        let reply = self.pipeline_once(pipeline).await;
        self.heard(&reply);
        failpoint!(redis "redis.reply");
        reply
    }

    pub(super) async fn pipeline_once<T: FromRedisValue>(
        &self,
        pipeline: &redis::Pipeline,
    ) -> Result<T> {
        self.sent
            .fetch_add(pipeline.len() as u64, Ordering::Relaxed);
        let mut connection = self.connection().await?;
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
    pub(super) async fn create_group(&self) -> Result<()> {
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

    /// The shared connection of the current runtime, opened on its first use there (lazily,
    /// on one server: it connects with its first command).
    pub(super) async fn connection(&self) -> Result<Link> {
        let runtime = tokio::runtime::Handle::current();
        let id = runtime.id();
        {
            let mut shared = self.shared.locked();
            if let Some(found) = shared.iter().find(|shared| shared.runtime == id) {
                return Ok(found.connection.clone());
            }
            shared.retain(|shared| !shared.ended.is_cancelled());
        }
        let connection = match &*self.endpoint {
            Endpoint::Single { client, config } => Link::Managed(
                client
                    .get_connection_manager_lazy(config.clone())
                    .expect("the client and its settings were checked when the backend was opened"),
            ),
            Endpoint::Sentinel(sentinel) => Link::Managed(
                Box::pin(sentinel.master())
                    .await?
                    .get_connection_manager_lazy(sentinel.config.clone())
                    .map_err(into_error)?,
            ),
            Endpoint::Cluster(cluster) => Link::Cluster(
                tokio::time::timeout(
                    CONNECT_TIMEOUT + RESPONSE_TIMEOUT,
                    cluster.shared.get_async_connection(),
                )
                .await
                .map_err(|_| unavailable("connecting to the cluster did not return"))?
                .map_err(into_error)?,
            ),
        };
        let mut shared = self.shared.locked();
        if let Some(found) = shared.iter().find(|shared| shared.runtime == id) {
            // Another call of this runtime connected meanwhile.
            return Ok(found.connection.clone());
        }
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
        Ok(connection)
    }

    /// A connection of its own, for reads that block: no answer timeout.
    pub(super) async fn dedicated(&self) -> Result<Link> {
        match &*self.endpoint {
            Endpoint::Single { client, .. } => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(None);
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(Link::Direct)
                    .map_err(into_error)
            }
            Endpoint::Sentinel(sentinel) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(None);
                Box::pin(sentinel.master())
                    .await?
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(Link::Direct)
                    .map_err(into_error)
            }
            Endpoint::Cluster(cluster) => tokio::time::timeout(
                CONNECT_TIMEOUT + RESPONSE_TIMEOUT,
                cluster.blocking.get_async_connection(),
            )
            .await
            .map_err(|_| unavailable("connecting to the cluster did not return"))?
            .map(Link::Cluster)
            .map_err(into_error),
        }
    }
}

/// Send `command`, the `EVALSHA` of `script`; on `NOSCRIPT` (a server that has not seen the
/// script, or lost it in a restart), load the script and send it again.
async fn run_script<T: FromRedisValue>(
    connection: &mut Link,
    script: &Script,
    command: &Cmd,
) -> redis::RedisResult<T> {
    match command.query_async(connection).await {
        Err(error) if error.code() == Some("NOSCRIPT") => {
            script.load_async(connection).await?;
            command.query_async(connection).await
        }
        result => result,
    }
}

pub(super) fn is_no_group(error: &RedisError) -> bool {
    error.code() == Some("NOGROUP") || error.to_string().contains("NOGROUP")
}

/// Whether a call failed because the stream or its consumer group is gone (`NOGROUP`: Redis
/// restarted without its data, or the docket was never used).
pub(super) fn group_gone(error: &Error) -> bool {
    matches!(error, Error::Backend { source } if source.to_string().contains("NOGROUP"))
}

pub(super) fn unavailable(message: &str) -> Error {
    Error::Unavailable {
        source: message.to_owned().into(),
    }
}

/// Send `command` and take its reply as it came. `Cmd::query_async` rebuilds every array of a
/// reply to look for errors nested in it; a stream read's reply holds none, and the rebuild of
/// its hundreds of entries cost a worker 7 % of its instructions. An error in place of the
/// whole reply is still an error.
pub(super) async fn query_whole(
    connection: &mut Link,
    command: &redis::Cmd,
) -> redis::RedisResult<Value> {
    match connection.req_packed_command(command).await? {
        Value::ServerError(error) => Err(error.into()),
        reply => Ok(reply),
    }
}

/// Connection-class failures may pass; everything else is the server refusing the operation.
pub(super) fn into_error(error: RedisError) -> Error {
    if matches!(error.code(), Some("MOVED" | "ASK")) {
        // On a cluster connection, a redirect left over once its retries ran out: the slot is
        // moving (a failover), so it passes. On a single server's, a node of a cluster that
        // serves other slots (one that could not be asked at connect time whether it is one).
        return Error::Unavailable {
            source: format!(
                "{error}: the docket's slot is served elsewhere; should this last, this Redis \
                 is a node of a Redis Cluster: connect with `redis+cluster://host:port`"
            )
            .into(),
        };
    }
    let transient = error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
        || matches!(
            error.code(),
            Some("LOADING" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "BUSY" | "READONLY")
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

#[cfg(test)]
mod tests {
    use super::{SentinelUrl, as_cluster_url, cluster_nodes, sentinel_url};

    #[test]
    fn a_plain_url_of_a_cluster_node_becomes_a_cluster_url_of_that_node() {
        assert_eq!(
            as_cluster_url("redis://u:pw@127.0.0.1:7001/0").as_deref(),
            Some("redis+cluster://u:pw@127.0.0.1:7001")
        );
        assert_eq!(
            as_cluster_url("rediss://h:6380").as_deref(),
            Some("rediss+cluster://h:6380")
        );
        for other in [
            "redis+cluster://h:1",
            "redis+sentinel://h:1/m",
            "unix:///tmp/r.sock",
        ] {
            assert_eq!(as_cluster_url(other), None, "{other}");
        }
    }

    #[test]
    fn a_sentinel_url_names_the_sentinels_the_master_and_its_settings() {
        assert_eq!(
            sentinel_url("redis+sentinel://u:pw@127.0.0.1:26379,127.0.0.1:26380/mymaster/2"),
            Some(Ok(SentinelUrl {
                sentinels: vec![
                    "redis://127.0.0.1:26379".to_owned(),
                    "redis://127.0.0.1:26380".to_owned(),
                ],
                master: "mymaster".to_owned(),
                settings: "redis://u:pw@localhost/2".to_owned(),
                tls: false,
            }))
        );
        let tls = sentinel_url("rediss+sentinel://h:26379/m")
            .unwrap()
            .unwrap();
        assert!(tls.tls);
        assert_eq!(tls.settings, "rediss://localhost/0");
        assert_eq!(
            sentinel_url("redis+sentinel://h:26379"),
            Some(Err(
                "it names no master: write `/name` after the Sentinels".to_owned()
            ))
        );
        assert_eq!(
            sentinel_url("redis+sentinel:///m"),
            Some(Err("it names no Sentinel".to_owned()))
        );
        assert!(matches!(
            sentinel_url("redis+sentinel://h/m/x"),
            Some(Err(_))
        ));
        assert_eq!(sentinel_url("redis://h"), None);
    }

    #[test]
    fn a_cluster_url_names_each_node_with_the_credentials() {
        assert_eq!(
            cluster_nodes("redis+cluster://user:pw@127.0.0.1:7001,127.0.0.1:7002/0?x=1"),
            Some(vec![
                "redis://user:pw@127.0.0.1:7001".to_owned(),
                "redis://user:pw@127.0.0.1:7002".to_owned(),
            ])
        );
        assert_eq!(
            cluster_nodes("rediss+cluster://[::1]:7001"),
            Some(vec!["rediss://[::1]:7001".to_owned()])
        );
        // A password may hold `@` and `,`: the hosts are after the last `@`.
        assert_eq!(
            cluster_nodes("redis+cluster://:p@s,s@h:1"),
            Some(vec!["redis://:p@s,s@h:1".to_owned()])
        );
        assert_eq!(cluster_nodes("redis+cluster://"), Some(vec![]));
        assert_eq!(cluster_nodes("redis://127.0.0.1:6379"), None);
    }
}
