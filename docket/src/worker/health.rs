//! A worker's health, for a liveness or readiness probe: is its loop running and can it reach
//! its backend?

use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;

use crate::sync::Locked;
use std::time::{Duration, Instant};

/// How long one claim may take before the loop counts as stuck: the longest a claim blocks
/// when nothing is due (on Redis, its longest idle wait), with room to spare.
const STUCK_AFTER: Duration =
    crate::backend::redis::MAX_IDLE_WAIT.saturating_add(Duration::from_secs(45));

/// How long a claim begun after a failure must stay in flight to show the backend is back: an
/// unreachable backend fails a claim at once, a reachable one lets it block.
const RECOVERED_AFTER: Duration = Duration::from_secs(1);

/// A handle on a [`Worker`](crate::Worker)'s health, from
/// [`Worker::health`](crate::Worker::health). Cheap to clone; checking costs no backend command.
///
/// ```no_run
/// # async fn demo() -> docket::Result<()> {
/// let docket = docket::Docket::from_env().await?;
/// let worker = docket::Worker::new(&docket);
/// let health = worker.health();
/// tokio::spawn(worker.run());
/// // In a /healthz handler:
/// match health.check() {
///     Ok(()) => println!("ok"),
///     Err(problem) => println!("unhealthy: {problem}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Health {
    state: Arc<Mutex<HealthState>>,
}

#[derive(Debug, Default)]
struct HealthState {
    running: bool,
    /// When the current claim began, while the loop waits on the backend.
    claiming_since: Option<Instant>,
    /// The last backend failure and when it happened, while no call has succeeded since.
    backend_error: Option<(String, Instant)>,
}

/// Why a worker is unhealthy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unhealthy {
    /// The worker is not running (not started yet, or stopped).
    NotRunning,
    /// The worker's calls to its backend fail.
    BackendUnreachable(String),
    /// The worker's loop has waited on one claim far longer than any claim takes.
    Stuck(Duration),
}

impl fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unhealthy::NotRunning => f.write_str("the worker is not running"),
            Unhealthy::BackendUnreachable(error) => {
                write!(f, "the worker cannot reach its backend: {error}")
            }
            Unhealthy::Stuck(waited) => {
                write!(
                    f,
                    "the worker loop is stuck: one claim has waited {waited:?}"
                )
            }
        }
    }
}

impl std::error::Error for Unhealthy {}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state.locked()
    }

    /// `Ok` while the worker runs, reaches its backend and its loop moves.
    ///
    /// # Errors
    ///
    /// [`Unhealthy::NotRunning`] before the worker starts and after it stops;
    /// [`Unhealthy::BackendUnreachable`] while its last backend call failed and no claim since
    /// has lasted long enough to show the backend is back; [`Unhealthy::Stuck`] when one claim
    /// has waited far longer than any claim takes.
    pub fn check(&self) -> Result<(), Unhealthy> {
        let state = self.lock();
        if !state.running {
            return Err(Unhealthy::NotRunning);
        }
        if let Some((error, at)) = &state.backend_error {
            let recovered = state
                .claiming_since
                .is_some_and(|since| since > *at && since.elapsed() >= RECOVERED_AFTER);
            if !recovered {
                return Err(Unhealthy::BackendUnreachable(error.clone()));
            }
        }
        match state.claiming_since.map(|since| since.elapsed()) {
            Some(waited) if waited > STUCK_AFTER => Err(Unhealthy::Stuck(waited)),
            _ => Ok(()),
        }
    }

    pub(crate) fn started(&self) {
        self.lock().running = true;
    }

    pub(crate) fn stopped(&self) {
        let mut state = self.lock();
        state.running = false;
        state.claiming_since = None;
    }

    pub(crate) fn claiming(&self) {
        self.lock().claiming_since = Some(Instant::now());
    }

    /// A backend call succeeded (`None`) or failed.
    pub(crate) fn backend(&self, error: Option<String>) {
        let mut state = self.lock();
        state.claiming_since = None;
        state.backend_error = error.map(|error| (error, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_the_worker_and_its_backend() {
        let health = Health::default();
        assert_eq!(health.check(), Err(Unhealthy::NotRunning));
        health.started();
        assert_eq!(health.check(), Ok(()));
        health.claiming();
        assert_eq!(health.check(), Ok(()));
        health.backend(Some("connection refused".into()));
        assert_eq!(
            health.check(),
            Err(Unhealthy::BackendUnreachable("connection refused".into()))
        );
        health.backend(None);
        assert_eq!(health.check(), Ok(()));
        // A claim begun after a failure that has not failed at once: the backend is back.
        health.backend(Some("connection refused".into()));
        health.claiming();
        assert!(health.check().is_err(), "too soon to tell");
        {
            let mut state = health.lock();
            let failed = Instant::now() - RECOVERED_AFTER * 3;
            state.backend_error = Some(("connection refused".into(), failed));
            state.claiming_since = Some(failed + RECOVERED_AFTER);
        }
        assert_eq!(health.check(), Ok(()));
        health.backend(None);
        health.lock().claiming_since = Some(Instant::now() - STUCK_AFTER * 2);
        assert!(matches!(health.check(), Err(Unhealthy::Stuck(_))));
        health.stopped();
        assert_eq!(health.check(), Err(Unhealthy::NotRunning));
    }
}
