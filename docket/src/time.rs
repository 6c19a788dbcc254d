//! Conversions between wall-clock due times (stored, shared across processes) and the monotonic
//! instants tokio sleeps until, and the latest due time docket stores.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// The latest due time docket stores, in milliseconds since the Unix epoch: the last
/// millisecond of the year 9999 (UTC). Far below 2^53, so every due time is exact in the Lua
/// doubles of the Redis scripts.
pub(crate) const LATEST_DUE_MILLIS: u64 = 253_402_300_799_999;

/// How far ahead a sleep is cut when the wall clock's distance does not fit a monotonic instant.
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 86_400);

/// The latest due time docket stores: the end of the year 9999.
pub(crate) fn latest_due() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(LATEST_DUE_MILLIS)
}

/// `delay` after `now`, if that is no later than [`latest_due`].
pub(crate) fn checked_due(now: SystemTime, delay: Duration) -> Option<SystemTime> {
    now.checked_add(delay).filter(|due| *due <= latest_due())
}

/// `delay` after `now`, or [`latest_due`] when that is later (or does not fit a `SystemTime`):
/// for delays the code chooses, such as a retry's backoff or `Retry::after`, where "later than
/// the year 9999" means "never" and must not panic.
pub(crate) fn saturating_due(now: SystemTime, delay: Duration) -> SystemTime {
    checked_due(now, delay).unwrap_or_else(latest_due)
}

/// The monotonic instant at which the wall clock reads `due`; now, if `due` has passed. A due
/// time too far ahead for the monotonic clock is cut to decades from now rather than panic.
pub(crate) fn instant_at(due: SystemTime) -> Instant {
    Clock::System.instant_at(due)
}

/// Where a docket reads the wall-clock time: the system's, or (`docket::testing`) a virtual
/// one that moves with tokio's clock, so that a paused tokio clock moves a test's due times too.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) enum Clock {
    /// `SystemTime::now()`.
    #[default]
    System,
    /// `system` at tokio's `instant`, moving as tokio's clock moves from there.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    Virtual {
        system: SystemTime,
        instant: Instant,
    },
}

impl Clock {
    /// A virtual clock reading the system's time now, from now on moving with tokio's clock.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn virtual_from_now() -> Clock {
        Clock::Virtual {
            system: SystemTime::now(),
            instant: Instant::now(),
        }
    }

    /// The wall-clock time now.
    pub(crate) fn now(self) -> SystemTime {
        match self {
            Clock::System => SystemTime::now(),
            Clock::Virtual { system, instant } => system + instant.elapsed(),
        }
    }

    /// The tokio instant at which this clock reads `due`; now, if `due` has passed. A due
    /// time too far ahead for the monotonic clock is cut to decades from now rather than panic.
    pub(crate) fn instant_at(self, due: SystemTime) -> Instant {
        let now = Instant::now();
        match due.duration_since(self.now()) {
            Ok(ahead) => now.checked_add(ahead).unwrap_or_else(|| now + FAR_FUTURE),
            Err(_) => now,
        }
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub(crate) fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, millis_of)
}

/// A duration in whole milliseconds, `u64::MAX` at most.
pub(crate) fn millis_of(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Sleep until `deadline`; for ever without one.
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_due_time_is_the_end_of_the_year_9999() {
        assert_eq!(millis(latest_due()), LATEST_DUE_MILLIS);
        // 10000-01-01T00:00:00Z is 253402300800 seconds after the epoch.
        assert_eq!(LATEST_DUE_MILLIS + 1, 253_402_300_800 * 1000);
        const { assert!(LATEST_DUE_MILLIS < 1 << 53, "exact in a double") };
    }

    #[test]
    fn due_times_past_the_limit_are_refused_or_capped_never_a_panic() {
        let now = SystemTime::now();
        assert_eq!(
            checked_due(now, Duration::from_secs(5)),
            Some(now + Duration::from_secs(5))
        );
        assert_eq!(checked_due(now, Duration::MAX), None);
        assert_eq!(
            checked_due(now, Duration::from_secs(10_000 * 366 * 86_400)),
            None
        );
        assert_eq!(saturating_due(now, Duration::MAX), latest_due());
        assert_eq!(
            saturating_due(now, Duration::from_secs(60)),
            now + Duration::from_secs(60)
        );
        assert_eq!(
            checked_due(latest_due(), Duration::ZERO),
            Some(latest_due())
        );
        assert_eq!(checked_due(latest_due(), Duration::from_millis(1)), None);
    }

    #[test]
    fn far_due_times_become_far_instants_not_panics() {
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        assert!(instant_at(far) > Instant::now() + Duration::from_secs(86_400 * 365));
        assert!(instant_at(UNIX_EPOCH) <= Instant::now());
    }
}
