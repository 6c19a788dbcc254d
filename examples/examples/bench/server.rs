//! The servers the bench talks to besides through docket: statistics, clean-up, and connections
//! for the raw ceiling. Its own `redis-server` comes from the tests package's harness; its own
//! cluster (`--cluster`) is made here from such servers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tests::redis_server::RedisServer;

use crate::Result;

/// The bench's own connections, one per server it measures (one, or each master of a
/// cluster): statistics and clean-up, never counted as docket's. Every figure is summed over
/// them.
#[derive(Debug, Clone)]
pub(crate) struct Admin {
    nodes: Vec<Node>,
}

/// One server the bench measures.
#[derive(Debug, Clone)]
struct Node {
    client: redis::Client,
    connection: MultiplexedConnection,
}

impl Admin {
    /// One server.
    pub(crate) async fn connect(url: &str) -> Result<Admin> {
        Admin::connect_all(&[url.to_owned()]).await
    }

    /// Several servers (a cluster's masters, each by a plain `redis://` URL), counted together.
    pub(crate) async fn connect_all(urls: &[String]) -> Result<Admin> {
        let mut nodes = Vec::with_capacity(urls.len());
        for url in urls {
            let client = redis::Client::open(url.as_str())?;
            let connection = client.get_multiplexed_async_connection().await?;
            nodes.push(Node { client, connection });
        }
        Ok(Admin { nodes })
    }

    /// How many servers this counts over.
    pub(crate) fn servers(&self) -> usize {
        self.nodes.len()
    }

    /// A connection of its own to the first server, for the raw ceiling.
    pub(crate) async fn connection(&self) -> Result<MultiplexedConnection> {
        self.connection_to(0).await
    }

    /// A connection of its own to server `index`, for the raw ceiling.
    pub(crate) async fn connection_to(&self, index: usize) -> Result<MultiplexedConnection> {
        Ok(self.nodes[index]
            .client
            .get_multiplexed_async_connection()
            .await?)
    }

    /// Zero `INFO commandstats` on every server.
    pub(crate) async fn reset_stats(&self) -> Result<()> {
        for node in &self.nodes {
            redis::cmd("CONFIG")
                .arg("RESETSTAT")
                .exec_async(&mut node.connection.clone())
                .await?;
        }
        Ok(())
    }

    /// Commands the servers executed since the last reset, Lua-internal ones included, less the
    /// bench's own `INFO` and `CONFIG`.
    pub(crate) async fn server_calls(&self) -> Result<u64> {
        Ok(self.calls_by_server().await?.iter().sum())
    }

    /// [`server_calls`](Self::server_calls) of each server, in order.
    pub(crate) async fn calls_by_server(&self) -> Result<Vec<u64>> {
        let mut calls = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            calls.push(node.calls_by_command().await?.values().sum());
        }
        Ok(calls)
    }

    /// [`server_calls`](Self::server_calls) by command name, summed over the servers.
    pub(crate) async fn calls_by_command(&self) -> Result<BTreeMap<String, u64>> {
        let mut total = BTreeMap::new();
        for node in &self.nodes {
            for (name, calls) in node.calls_by_command().await? {
                *total.entry(name).or_insert(0) += calls;
            }
        }
        Ok(total)
    }

    /// Microseconds the servers spent executing commands since the last reset, by command name
    /// (`INFO commandstats` `usec`), summed over the servers: execution only, without parsing,
    /// replies or networking. A script's time includes the commands it called, which are also
    /// listed under their own names; [`client_sent_usec`] adds up only what clients sent.
    pub(crate) async fn usec_by_command(&self) -> Result<BTreeMap<String, u64>> {
        let mut total = BTreeMap::new();
        for node in &self.nodes {
            let info: String = redis::cmd("INFO")
                .arg("commandstats")
                .query_async(&mut node.connection.clone())
                .await?;
            for (name, usec) in tests::redis_server::command_usec(&info) {
                if !name.starts_with("info") && !name.starts_with("config") {
                    *total.entry(name.to_owned()).or_insert(0) += usec;
                }
            }
        }
        Ok(total)
    }

    /// The CPU time the server processes have used (user and system, from `INFO cpu`), in
    /// microseconds: commands, their parsing and replies, and the networking around them.
    pub(crate) async fn server_cpu_usec(&self) -> Result<f64> {
        let mut usec = 0.0;
        for node in &self.nodes {
            let info: String = redis::cmd("INFO")
                .arg("cpu")
                .query_async(&mut node.connection.clone())
                .await?;
            let seconds: f64 = info
                .lines()
                .filter_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    matches!(name, "used_cpu_user" | "used_cpu_sys")
                        .then(|| value.trim().parse::<f64>().ok())?
                })
                .sum();
            usec += seconds * 1e6;
        }
        Ok(usec)
    }

    /// Socket reads the servers' event loops have made (`total_reads_processed`, `INFO stats`),
    /// summed: how many times a server woke up to read what a client sent, however many
    /// commands each read held.
    pub(crate) async fn socket_reads(&self) -> Result<u64> {
        let mut reads = 0;
        for node in &self.nodes {
            let info: String = redis::cmd("INFO")
                .arg("stats")
                .query_async(&mut node.connection.clone())
                .await?;
            reads += info
                .lines()
                .find_map(|line| line.strip_prefix("total_reads_processed:"))
                .and_then(|value| value.trim().parse::<u64>().ok())
                .ok_or("no total_reads_processed in INFO stats")?;
        }
        Ok(reads)
    }

    /// `redis_version` from the first server's `INFO server`.
    pub(crate) async fn version(&self) -> Result<String> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.nodes[0].connection.clone())
            .await?;
        Ok(info
            .lines()
            .find_map(|line| line.strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .trim()
            .to_owned())
    }

    /// Whether cluster node `index` serves `key`'s slot (`CLUSTER KEYSLOT`, and the slot ranges
    /// its own line of `CLUSTER NODES` lists).
    pub(crate) async fn serves(&self, index: usize, key: &str) -> Result<bool> {
        let mut connection = self.nodes[index].connection.clone();
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut connection)
            .await?;
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut connection)
            .await?;
        let mine = nodes
            .lines()
            .find(|line| line.contains("myself"))
            .unwrap_or_default();
        Ok(mine.split(' ').skip(8).any(|range| {
            let (from, to) = range.split_once('-').unwrap_or((range, range));
            match (from.parse::<u16>(), to.parse::<u16>()) {
                (Ok(from), Ok(to)) => (from..=to).contains(&slot),
                _ => false,
            }
        }))
    }

    /// Delete every key of the docket `name` on every server: its own (`{name}:…`) and those of
    /// its other partitions (`{name:…}:…`).
    pub(crate) async fn forget(&self, name: &str) -> Result<()> {
        self.delete_matching(&format!("{{{name}}}:*")).await?;
        self.delete_matching(&format!("{{{name}:*")).await
    }

    /// Delete the keys matching `pattern` on every server, one `UNLINK` a key (on a cluster
    /// node, the keys a pattern matches need not share a slot).
    pub(crate) async fn delete_matching(&self, pattern: &str) -> Result<()> {
        for node in &self.nodes {
            let mut connection = node.connection.clone();
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut connection)
                    .await?;
                if !keys.is_empty() {
                    let mut pipeline = redis::pipe();
                    for key in &keys {
                        pipeline.cmd("UNLINK").arg(key).ignore();
                    }
                    pipeline.exec_async(&mut connection).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }
}

impl Node {
    /// `INFO commandstats` by command name, less the bench's own `INFO` and `CONFIG`.
    async fn calls_by_command(&self) -> Result<BTreeMap<String, u64>> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(tests::redis_server::command_calls(&info)
            .filter(|(name, _)| !name.starts_with("info") && !name.starts_with("config"))
            .map(|(name, calls)| (name.to_owned(), calls))
            .collect())
    }
}

/// The bench's own Redis Cluster (`--cluster`): three masters and no replicas, each a
/// `redis-server` on free loopback ports keeping nothing on disk. No replicas, because on a
/// small machine they would take CPU from the masters being measured, and replication is not a
/// cost of docket's. Dropped, every node is stopped.
#[derive(Debug)]
pub(crate) struct LocalCluster {
    masters: Vec<RedisServer>,
}

/// Masters of the bench's cluster.
pub(crate) const MASTERS: usize = 3;

impl LocalCluster {
    /// Start the nodes, join them (`redis-cli --cluster create`, which gives each master a third
    /// of the slots), and wait until every node sees the cluster whole (the tests' harness,
    /// without replicas).
    pub(crate) fn start() -> Result<LocalCluster> {
        let cluster = tests::redis_cluster::RedisCluster::start_with(MASTERS, 0);
        let cluster = LocalCluster {
            masters: cluster.nodes,
        };
        cluster.wait_whole()?;
        Ok(cluster)
    }

    fn addresses(&self) -> Vec<String> {
        self.masters
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect()
    }

    /// Until every node says `cluster_state:ok` with all 16384 slots served.
    fn wait_whole(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.masters.iter().all(|node| {
            matches!(
                node.try_command(&["CLUSTER", "INFO"]),
                Ok(tests::redis_server::Reply::Bulk(info))
                    if info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
            )
        }) {
            if Instant::now() > deadline {
                return Err("the bench's cluster was not whole within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// docket's URL for the cluster, naming its masters.
    pub(crate) fn url(&self) -> String {
        format!("redis+cluster://{}", self.addresses().join(","))
    }

    /// A plain `redis://` URL for each master, for the bench's own connections.
    pub(crate) fn master_urls(&self) -> Vec<String> {
        self.masters.iter().map(RedisServer::url).collect()
    }
}

/// Whether `command` is one the bench counts as sent by docket's clients: scripts and stream
/// reads, the whole of a task's path. Most other commands a run counts were called by scripts,
/// their time already in the script's. Docket also sends a few plain commands of its own (the
/// keeper's lease and its look for stalled deliveries, the fleet record, run counts):
/// periodic, not per task, and left out, so the figures understate a run by those.
pub(crate) fn sent_by_docket(command: &str) -> bool {
    command.starts_with("eval") || command.starts_with("fcall") || command.starts_with("xread")
}

/// The execution time of what docket's clients sent (scripts and stream reads): each command
/// once, a script's inner calls inside its own time.
pub(crate) fn client_sent_usec(usec: &BTreeMap<String, u64>) -> u64 {
    usec.iter()
        .filter(|(name, _)| sent_by_docket(name))
        .map(|(_, usec)| usec)
        .sum()
}
