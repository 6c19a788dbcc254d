//! A worker's health, for a liveness or readiness probe: is its loop running and can it reach
//! its backend?

use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;

use crate::sync::Locked;
use std::time::{Duration, Instant};

/// How long one claim may take, when it is not parked waiting for work, before the loop counts
/// as stuck: far longer than a claim's own steps take (a read that waits for work may wait
/// forever, and is no sign of trouble).
const STUCK_AFTER: Duration = Duration::from_secs(120);

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
    /// Whether the worker's claim waits for work (then it is not stuck, however long it waits).
    parked: Option<ParkedProbe>,
    running: bool,
    /// When the current claim began, while the loop waits on the backend.
    claiming_since: Option<Instant>,
    /// The last backend failure and when it happened, while no call has succeeded since.
    backend_error: Option<(String, Instant)>,
}

/// Tells whether a worker's claim waits for work.
struct ParkedProbe(Box<dyn Fn() -> bool + Send + Sync>);

impl fmt::Debug for ParkedProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ParkedProbe")
    }
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
            Some(waited)
                if waited > STUCK_AFTER
                    && !state.parked.as_ref().is_some_and(|probe| (probe.0)()) =>
            {
                Err(Unhealthy::Stuck(waited))
            }
            _ => Ok(()),
        }
    }

    /// How to tell whether the worker's claim waits for work.
    pub(crate) fn parked_when(&self, probe: impl Fn() -> bool + Send + Sync + 'static) {
        self.lock().parked = Some(ParkedProbe(Box::new(probe)));
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
        // A claim that waits for work is not stuck, however long it waits.
        let parked = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let probe = parked.clone();
        health.parked_when(move || probe.load(std::sync::atomic::Ordering::Relaxed));
        assert_eq!(health.check(), Ok(()));
        parked.store(false, std::sync::atomic::Ordering::Relaxed);
        assert!(matches!(health.check(), Err(Unhealthy::Stuck(_))));
        health.stopped();
        assert_eq!(health.check(), Err(Unhealthy::NotRunning));
    }
}
