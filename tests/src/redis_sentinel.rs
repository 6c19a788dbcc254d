//! A local Sentinel group for the tests: a master, a replica and three Sentinels watching them
//! under the name `docket`, every process a child on free loopback ports. No docker.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis_server::{RedisServer, Reply, free_port};

/// The name the Sentinels watch the master under.
pub const MASTER_NAME: &str = "docket";

/// A master, its replica and three Sentinels. Dropped, every process is killed (and when the
/// process ends, should it never be dropped).
#[derive(Debug)]
pub struct RedisSentinels {
    /// The master first, then its replica.
    pub nodes: Vec<RedisServer>,
    sentinels: Vec<(u16, Child)>,
    dir: std::path::PathBuf,
}

impl RedisSentinels {
    /// A master with one replica in sync, and three Sentinels that agree on it.
    pub fn start() -> RedisSentinels {
        let master = RedisServer::start_with(&[
            "--save",
            "",
            "--appendonly",
            "no",
            "--repl-diskless-sync-delay",
            "0",
        ]);
        let master_port = master.port().to_string();
        let replica = RedisServer::start_with(&[
            "--save",
            "",
            "--appendonly",
            "no",
            "--repl-diskless-sync-delay",
            "0",
            "--replicaof",
            "127.0.0.1",
            &master_port,
        ]);
        let dir = master.dir().join("sentinels");
        std::fs::create_dir_all(&dir).expect("a directory for the Sentinels");
        let sentinels = (0..3)
            .map(|index| {
                let port = free_port();
                let config = dir.join(format!("sentinel-{index}.conf"));
                std::fs::write(
                    &config,
                    format!(
                        "port {port}\nbind 127.0.0.1\ndir {}\n\
                         sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                         sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                         sentinel failover-timeout {MASTER_NAME} 5000\n\
                         sentinel parallel-syncs {MASTER_NAME} 1\n",
                        dir.display()
                    ),
                )
                .expect("write a Sentinel's configuration");
                let child = Command::new("redis-server")
                    .arg(&config)
                    .arg("--sentinel")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|error| {
                        panic!(
                            "the Sentinel tests need `redis-server` on the PATH ({error}); \
                             install it (Debian/Ubuntu: `apt-get install redis-server`)"
                        )
                    });
                (port, child)
            })
            .collect();
        let group = RedisSentinels {
            nodes: vec![master, replica],
            sentinels,
            dir,
        };
        group.reap_with_this_process();
        group.wait_ready();
        group
    }

    /// Wait until the replica is in sync and every Sentinel counts three usable Sentinels.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let synced = matches!(
                self.nodes[1].try_command(&["INFO", "replication"]),
                Ok(Reply::Bulk(info)) if info.contains("master_link_status:up")
            );
            let agreed = self.sentinels.iter().all(|(port, _)| {
                matches!(
                    sentinel_command(*port, &["SENTINEL", "CKQUORUM", MASTER_NAME]),
                    Ok(Reply::Status(answer)) if answer.contains("3 usable")
                )
            });
            if synced && agreed {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Sentinel group was not ready within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The docket URL: the three Sentinels, and the master's name.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", hosts.join(","))
    }

    /// The port of the master the Sentinels name now.
    pub fn master_port(&self) -> Option<u16> {
        let (port, _) = self.sentinels.first()?;
        match sentinel_command(*port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME]) {
            Ok(Reply::Array(address)) => match address.get(1) {
                Some(Reply::Bulk(port)) => port.parse().ok(),
                _ => None,
            },
            _ => None,
        }
    }

    /// Kill the processes when this process ends, however it ends.
    fn reap_with_this_process(&self) {
        let pids: Vec<String> = self
            .nodes
            .iter()
            .filter_map(RedisServer::pid)
            .chain(self.sentinels.iter().map(|(_, child)| child.id()))
            .map(|pid| pid.to_string())
            .collect();
        let script = format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; kill -9 {} 2>/dev/null",
            std::process::id(),
            pids.join(" ")
        );
        let _ = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

impl Drop for RedisSentinels {
    fn drop(&mut self) {
        for (_, child) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One command to the Sentinel on `port`.
fn sentinel_command(port: u16, args: &[&str]) -> Result<Reply, String> {
    RedisServer::command_at(port, args)
}
