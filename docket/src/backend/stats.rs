//! Where workers publish their runs by task name (`crate::stats`), and where the dashboard
//! reads them back: each backend in its own `stats` module (`memory/stats.rs`,
//! `redis/stats.rs`); this one holds the dispatch.

use std::time::Duration;

use super::AnyBackend;
use crate::error::Result;
use crate::stats::Window;

impl AnyBackend {
    /// The least time between two publications of one worker's runs: on Redis each costs a
    /// command, so at most one a minute (a fifth of the redelivery timeout, when that is
    /// shorter, from 1 s); in memory none is waited for.
    pub(crate) fn stats_every(&self) -> Duration {
        match self {
            AnyBackend::Memory(_) => Duration::ZERO,
            AnyBackend::Redis(backend) => backend.home().stats_every(),
            // pydocket keeps no such counts: publishing is a no-op, so it is rare.
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(_) => Duration::from_secs(3600),
        }
    }

    /// Publish `worker`'s runs of the last minutes, replacing what it published before.
    pub(crate) async fn publish_stats(&self, worker: &str, window: &Window) -> Result<()> {
        match self {
            AnyBackend::Memory(backend) => {
                backend.publish_stats(worker, window);
                Ok(())
            }
            AnyBackend::Redis(backend) => backend.home().publish_stats(worker, window).await,
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(_) => Ok(()),
        }
    }

    /// Ask the workers to publish their runs for the next `wanted` (a dashboard shows them):
    /// they publish only while asked, so a docket nobody watches pays nothing for them. On
    /// Redis one round trip: the key a worker that starts looks at, and a signal to the
    /// running ones. In memory nothing: publishing there is free, so it is always on.
    #[cfg(feature = "dashboard")]
    pub(crate) async fn want_stats(&self, wanted: Duration) -> Result<()> {
        match self {
            AnyBackend::Memory(_) => Ok(()),
            AnyBackend::Redis(backend) => backend.home().want_stats(wanted).await,
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(_) => Err(crate::Error::Unsupported {
                operation: "the dashboard",
                protocol: "pydocket",
            }),
        }
    }

    /// The runs by task name of every worker that published within the last minutes, summed
    /// over the window as of now: task names in order, runs past the name cap last (under
    /// [`OTHER`](crate::stats::OTHER)). On Redis one command.
    #[cfg(feature = "dashboard")]
    pub(crate) async fn task_stats(&self) -> Result<Vec<(String, crate::stats::Tally)>> {
        match self {
            AnyBackend::Memory(backend) => Ok(backend.task_stats()),
            AnyBackend::Redis(backend) => backend.home().task_stats().await,
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(_) => Err(crate::Error::Unsupported {
                operation: "the dashboard",
                protocol: "pydocket",
            }),
        }
    }
}
