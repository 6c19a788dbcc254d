//! A worker running in the background of a test until it is told to stop.

use std::time::Duration;

use docket::Worker;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Far longer than stopping takes; it only turns a hang into a readable failure.
const PATIENCE: Duration = Duration::from_secs(30);

/// A worker of this process, run with `run_until` on the test's runtime.
#[derive(Debug)]
pub struct Background {
    stop: oneshot::Sender<()>,
    worker: JoinHandle<docket::Result<()>>,
}

impl Background {
    /// Start `worker` on a task of its own.
    pub fn start(worker: Worker) -> Background {
        let (stop, stopped) = oneshot::channel::<()>();
        let worker = tokio::spawn(worker.run_until(async {
            let _ = stopped.await;
        }));
        Background { stop, worker }
    }

    /// Start `worker` on a task of its own, and wait until it runs (its health says so): on an
    /// in-process docket, only from then on does the docket's own worker run this one's hooks.
    pub async fn running(worker: Worker) -> Background {
        let health = worker.health();
        let background = Background::start(worker);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while matches!(health.check(), Err(docket::worker::Unhealthy::NotRunning)) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the worker did not start in time"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        background
    }

    /// Signal shutdown and wait until `run_until` returns; fail the test if it does not in time,
    /// panics or returns an error.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(PATIENCE, self.worker)
            .await
            .expect("the worker stopped in time")
            .expect("the worker did not panic")
            .expect("the worker ran without error");
    }
}
