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

/// Milliseconds since the Unix epoch (0 before it).
pub(crate) fn millis(time: SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}
