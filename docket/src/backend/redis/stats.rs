//! Workers' runs by task name on Redis (see `backend/stats.rs`): one hash, `{name}:stats`,
//! worker → its summary. A publication is one `HSET`; the dashboard's read one `HGETALL`.
//! Workers publish only while a dashboard wants the runs: it sets `{name}:stats-wanted` (which
//! a worker reads as it subscribes to the signals) and signals the running workers (`w`).
//! The keeper's full check forgets the summaries of workers silent for longer than the window
//! (`keep.lua`), so the hash holds about as many fields as workers ran tasks lately.

use std::time::Duration;

use super::RedisBackend;
use crate::error::Result;
use crate::stats::Window;

/// The longest time between two publications of one worker's runs.
const STATS_EVERY: Duration = Duration::from_secs(60);

impl RedisBackend {
    /// At most a minute, a fifth of the redelivery timeout when that is shorter, and 1 s at
    /// least.
    pub(crate) fn stats_every(&self) -> Duration {
        (self.options.redelivery_timeout / 5).clamp(Duration::from_secs(1), STATS_EVERY)
    }

    /// `HSET {name}:stats <worker> <summary>`.
    pub(crate) async fn publish_stats(&self, worker: &str, window: &Window) -> Result<()> {
        let mut command = redis::cmd("HSET");
        command
            .arg(&self.keys.stats)
            .arg(worker)
            .arg(window.encode());
        self.query::<()>(&command).await
    }

    /// `SET {name}:stats-wanted 1 PX <wanted>` and the signal `w <wanted>`, in one round trip.
    #[cfg(feature = "dashboard")]
    pub(crate) async fn want_stats(&self, wanted: Duration) -> Result<()> {
        let millis = crate::time::millis_of(wanted).max(1);
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("SET")
            .arg(&self.keys.stats_wanted)
            .arg(1)
            .arg("PX")
            .arg(millis)
            .ignore()
            .cmd("XADD")
            .arg(&self.keys.signals)
            .arg("MAXLEN")
            .arg("~")
            .arg(1000)
            .arg("*")
            .arg("w")
            .arg(millis)
            .ignore();
        self.pipeline::<()>(&pipeline).await
    }

    /// `HGETALL {name}:stats`, summed over the window as of now; summaries that do not decode
    /// are left out.
    #[cfg(feature = "dashboard")]
    pub(crate) async fn task_stats(&self) -> Result<Vec<(String, crate::stats::Tally)>> {
        let mut command = redis::cmd("HGETALL");
        command.arg(&self.keys.stats);
        let published: Vec<(String, Vec<u8>)> = self.query(&command).await?;
        let windows: Vec<Window> = published
            .iter()
            .filter_map(|(_, json)| Window::decode(json))
            .collect();
        Ok(crate::stats::totals(&windows, std::time::SystemTime::now()))
    }
}
