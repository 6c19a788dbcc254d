//! The commands the bench sends besides docket's: statistics, clean-up, and connections for the
//! raw ceiling. Its own `redis-server` comes from the tests package's harness.

use redis::aio::MultiplexedConnection;

use crate::Result;

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
        Ok(tests::redis_server::command_calls(&info)
            .filter(|(name, _)| !name.starts_with("info") && !name.starts_with("config"))
            .map(|(_, calls)| calls)
            .sum())
    }

    /// The CPU time the server process has used (user and system, from `INFO cpu`), in
    /// microseconds: commands, their parsing and replies, and the networking around them.
    pub(crate) async fn server_cpu_usec(&self) -> Result<f64> {
        let info: String = redis::cmd("INFO")
            .arg("cpu")
            .query_async(&mut self.connection.clone())
            .await?;
        let seconds: f64 = info
            .lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                matches!(name, "used_cpu_user" | "used_cpu_sys")
                    .then(|| value.trim().parse::<f64>().ok())?
            })
            .sum();
        Ok(seconds * 1e6)
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
