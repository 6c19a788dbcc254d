//! A local Redis Cluster for the tests: 3 masters with a replica each, every node a
//! `redis-server` child on free loopback ports (its port and its cluster bus port), joined by
//! `redis-cli --cluster create`. No docker.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::redis_server::{RedisServer, Reply, free_port};

/// Three masters with a replica each. Dropped, every node is killed (and when the process ends,
/// should it never be dropped).
#[derive(Debug)]
pub struct RedisCluster {
    /// Masters first (as created), then their replicas.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// A cluster of 3 masters and 3 replicas, ready: every node sees `cluster_state:ok` and
    /// every replica is in sync with its master.
    pub fn start() -> RedisCluster {
        RedisCluster::start_with(3, 1)
    }

    /// A cluster of `masters` masters with `replicas` replicas each, ready.
    pub fn start_with(masters: usize, replicas: usize) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..masters * (1 + replicas))
            .map(|_| {
                let bus = free_port().to_string();
                RedisServer::start_with(&[
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                    "--cluster-port",
                    &bus,
                    "--repl-diskless-sync-delay",
                    "0",
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .unwrap_or_else(|error| {
                panic!(
                    "the cluster tests need `redis-cli` on the PATH ({error}); install it \
                     (Debian/Ubuntu: `apt-get install redis-tools`)"
                )
            });
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = RedisCluster { nodes };
        cluster.reap_with_this_process();
        cluster.wait_ready();
        cluster
    }

    /// Kill the nodes when this process ends, however it ends: a cluster shared by a test
    /// binary's tests lives in a `static`, which is never dropped.
    fn reap_with_this_process(&self) {
        let pids: Vec<String> = self
            .nodes
            .iter()
            .filter_map(RedisServer::pid)
            .map(|pid| pid.to_string())
            .collect();
        let dirs: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("'{}'", node.dir().display()))
            .collect();
        let script = format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; kill -9 {} 2>/dev/null; rm -rf {}",
            std::process::id(),
            pids.join(" "),
            dirs.join(" ")
        );
        let _ = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }

    /// Wait until every live node reports `cluster_state:ok` and every replica is in sync.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = self.nodes.iter().all(|node| {
                let Ok(Reply::Bulk(info)) = node.try_command(&["CLUSTER", "INFO"]) else {
                    return true; // a killed node has no say
                };
                if !info.contains("cluster_state:ok") {
                    return false;
                }
                match node.try_command(&["INFO", "replication"]) {
                    Ok(Reply::Bulk(replication)) => {
                        !replication.contains("role:slave")
                            || replication.contains("master_link_status:up")
                    }
                    _ => false,
                }
            });
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster was not ready within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The docket URL of the cluster, naming its three masters.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.nodes[..3]
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The index in `nodes` of the node that serves `key`'s slot as master now.
    pub fn master_index(&self, key: &str) -> usize {
        self.try_master_index(key)
            .expect("a master serves every slot")
    }

    /// [`master_index`](Self::master_index), or `None` while no node claims the slot (a
    /// failover under way, a node down).
    pub fn try_master_index(&self, key: &str) -> Option<usize> {
        // Any live node computes the slot.
        let slot = self.nodes.iter().find_map(|node| {
            match node.try_command(&["CLUSTER", "KEYSLOT", key]) {
                Ok(Reply::Integer(slot)) => Some(slot),
                _ => None,
            }
        })?;
        self.nodes.iter().position(|node| owns(node, slot))
    }
}

/// Whether `node` serves `slot` as a master (its own `CLUSTER NODES` line lists it).
fn owns(node: &RedisServer, slot: i64) -> bool {
    let Ok(Reply::Bulk(nodes)) = node.try_command(&["CLUSTER", "NODES"]) else {
        return false;
    };
    nodes
        .lines()
        .filter(|line| line.contains("myself") && line.contains("master"))
        .any(|line| {
            line.split(' ').skip(8).any(|range| {
                let (from, to) = range.split_once('-').unwrap_or((range, range));
                match (from.parse::<i64>(), to.parse::<i64>()) {
                    (Ok(from), Ok(to)) => (from..=to).contains(&slot),
                    _ => false,
                }
            })
        })
}
