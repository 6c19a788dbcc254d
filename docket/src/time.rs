//! Conversions between wall-clock due times (stored, shared across processes) and the monotonic
//! instants tokio sleeps until.

use std::time::SystemTime;

use tokio::time::Instant;

/// The monotonic instant at which the wall clock reads `due`; now, if `due` has passed.
pub(crate) fn instant_at(due: SystemTime) -> Instant {
    let now = Instant::now();
    match due.duration_since(SystemTime::now()) {
        Ok(ahead) => now + ahead,
        Err(_) => now,
    }
}
