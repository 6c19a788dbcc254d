//! The bench's own `redis-server`, and the commands the bench sends besides docket's: statistics,
//! clean-up, and connections for the raw ceiling.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

use crate::Result;

/// A `redis-server` on a free loopback port that keeps nothing on disk; killed when dropped.
#[derive(Debug)]
pub(crate) struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    pub(crate) fn start() -> Result<RedisServer> {
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("docket-bench-redis-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| {
                format!("could not start `redis-server` ({error}); install it or pass --redis-url")
            })?;
        let mut server = RedisServer { child, port, dir };
        server.wait_ready()?;
        eprintln!(
            "bench: started redis-server (pid {}) on 127.0.0.1:{port}",
            server.child.id()
        );
        Ok(server)
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ping(self.port) {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                return Err(format!("redis-server exited with {status}:\n{log}").into());
            }
            if Instant::now() > deadline {
                return Err("redis-server did not answer PING within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Bind port 0 and give the port back: free a moment ago, and almost surely still.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut answer = [0; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG\r\n"
}

/// The bench's own connection to the server: statistics and clean-up, never counted as docket's.
#[derive(Debug, Clone)]
pub(crate) struct Admin {
    client: redis::Client,
    connection: MultiplexedConnection,
}

impl Admin {
    pub(crate) async fn connect(url: &str) -> Result<Admin> {
        let client = redis::Client::open(url)?;
        let connection = client.get_multiplexed_async_connection().await?;
        Ok(Admin { client, connection })
    }

    /// A connection of its own, for the raw ceiling.
    pub(crate) async fn connection(&self) -> Result<MultiplexedConnection> {
        Ok(self.client.get_multiplexed_async_connection().await?)
    }

    /// Zero `INFO commandstats`.
    pub(crate) async fn reset_stats(&self) -> Result<()> {
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .exec_async(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    /// Commands the server executed since the last reset, Lua-internal ones included, less the
    /// bench's own `INFO` and `CONFIG`.
    pub(crate) async fn server_calls(&self) -> Result<u64> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(command_calls(&info)
            .filter(|(name, _)| !name.starts_with("info") && !name.starts_with("config"))
            .map(|(_, calls)| calls)
            .sum())
    }

    /// `redis_version` from `INFO server`.
    pub(crate) async fn version(&self) -> Result<String> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(info
            .lines()
            .find_map(|line| line.strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .trim()
            .to_owned())
    }

    /// Delete every key of the docket `name` (they all start with `{name}:`).
    pub(crate) async fn forget(&self, name: &str) -> Result<()> {
        self.delete_matching(&format!("{{{name}}}:*")).await
    }

    pub(crate) async fn delete_matching(&self, pattern: &str) -> Result<()> {
        let mut connection = self.connection.clone();
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
                redis::cmd("UNLINK")
                    .arg(&keys)
                    .exec_async(&mut connection)
                    .await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

/// `(command, calls)` from `INFO commandstats` lines such as
/// `cmdstat_xadd:calls=3,usec=12,...`.
fn command_calls(info: &str) -> impl Iterator<Item = (&str, u64)> {
    info.lines().filter_map(|line| {
        let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
        let calls = rest
            .strip_prefix("calls=")?
            .split(',')
            .next()?
            .parse()
            .ok()?;
        Some((name, calls))
    })
}
