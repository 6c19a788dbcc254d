//! The worker an in-process docket runs by itself: started on the runtime that schedules the
//! docket's first task (and again if that runtime has gone), stopped when a [`Worker`] of the
//! docket finishes or the docket's user stops it.

use std::sync::Mutex;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Worker;
use super::hooks::Hooks;
use crate::error::{Chain, Error, Result};
use crate::handle::Docket;
use crate::sync::Locked;

/// The slot for a docket's automatic worker; empty until the first task is scheduled.
#[derive(Default)]
pub(crate) struct AutoWorker {
    running: Mutex<Option<Running>>,
    /// The hooks of the [`Worker`] serving the docket, if any: the automatic worker runs them.
    hooks: Hooks,
}

/// A running automatic worker, and how to stop it.
struct Running {
    handle: JoinHandle<()>,
    stop: CancellationToken,
}

impl AutoWorker {
    /// Make sure a worker serves `docket` on the current runtime: start one when none runs, or
    /// when the one that ran has ended with its runtime.
    ///
    /// # Errors
    ///
    /// [`Error::NoRuntime`] outside a tokio runtime.
    pub(crate) fn ensure(&self, docket: &Docket) -> Result<()> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let mut running = self.lock();
        if running
            .as_ref()
            .is_none_or(|auto| auto.handle.is_finished())
        {
            let worker = Worker::new(docket).automatic();
            let stop = CancellationToken::new();
            let stopped = stop.clone().cancelled_owned();
            let handle = runtime.spawn(async move {
                if let Err(error) = worker.run_until(stopped).await {
                    tracing::error!(error = %Chain(&error), "the in-process docket worker stopped");
                }
            });
            *running = Some(Running { handle, stop });
        }
        Ok(())
    }

    /// Stop the worker from taking tasks and wait for the ones it runs; nothing when none runs.
    pub(crate) async fn stop(&self) {
        let running = self.lock().take();
        if let Some(running) = running {
            running.stop.cancel();
            let _ = running.handle.await;
        }
    }

    /// The hooks the automatic worker runs.
    pub(crate) fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.locked()
    }
}
