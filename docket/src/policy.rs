//! A task's policy: how it is retried, timed out, limited, debounced, cooled down and repeated,
//! as declared on `#[docket::task(...)]`.
//!
//! The worker reads a [`Policy`] through its getters, each named after the attribute key it
//! comes from (`retries = 3` → [`Policy::retries`]); the `with_*` builders are what the macro
//! generates.

use std::time::Duration;

/// Retry and timeout settings of a task, declared on `#[docket::task(...)]`.
///
/// ```
/// use std::time::Duration;
/// use docket::policy::{Backoff, Policy};
///
/// let policy = Policy::new()
///     .with_retries(3)
///     .with_backoff(Backoff::exponential(Duration::from_secs(1), Duration::from_secs(60)))
///     .with_timeout(Duration::from_secs(30));
/// assert_eq!(policy.max_attempts(), 4);
/// assert_eq!(policy.retries(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    retries: u32,
    /// `retries = "forever"`: `retries` is then `u32::MAX`.
    forever: bool,
    backoff: Backoff,
    jitter: u8,
    timeout: Option<Duration>,
    recurrence: Option<Recurrence>,
    concurrency: Option<ConcurrencyLimit>,
    rate: Option<RateLimit>,
    debounce: Option<Debounce>,
    cooldown: Option<Cooldown>,
    results: Option<Duration>,
}

impl Policy {
    /// No retries, no timeout, no limits.
    pub const fn new() -> Self {
        Policy {
            retries: 0,
            forever: false,
            backoff: Backoff::Fixed(Duration::ZERO),
            jitter: 0,
            timeout: None,
            recurrence: None,
            concurrency: None,
            rate: None,
            debounce: None,
            cooldown: None,
            results: None,
        }
    }

    /// How many times a failed task is tried again after its first attempt.
    ///
    /// `with_retries(3)` means up to four attempts in all.
    pub const fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self.forever = false;
        self
    }

    /// Retry a failed task for as long as it fails (`retries = "forever"`), each retry after
    /// its backoff: give it one longer than zero, capped (`backoff = "exponential 1s..5m"`), as
    /// the macro insists. A task that fails for good ([`Fail`](crate::Fail)) still becomes a
    /// dead letter, and an operator can [cancel](crate::Docket::cancel) or strike it.
    pub const fn with_retries_forever(mut self) -> Self {
        self.retries = u32::MAX;
        self.forever = true;
        self
    }

    /// How long to wait before each retry.
    pub const fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Spread retries out: each delay is moved by a random amount of up to `percent` of it,
    /// earlier or later, so tasks that failed together do not all retry in the same instant.
    /// Values above 100 count as 100.
    pub const fn with_jitter(mut self, percent: u8) -> Self {
        self.jitter = if percent > 100 { 100 } else { percent };
        self
    }

    /// The longest one attempt may run; past it the attempt is cancelled and counts as failed.
    /// A task can push its own deadline later with
    /// [`Context::extend_timeout`](crate::Context::extend_timeout).
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Run the task on its own every `period`, on one worker of the fleet at a time.
    ///
    /// The first run is due when the first worker starts; each next run is due one period after
    /// the previous one was due. Recurring tasks take no arguments.
    pub const fn with_every(mut self, period: Duration) -> Self {
        self.recurrence = Some(Recurrence::Every(period));
        self
    }

    /// Run the task on its own at each time a cron expression names: five fields
    /// (`"*/5 * * * *"`), six with seconds first, or a nickname such as `"@daily"`, in the IANA
    /// time zone `tz` (`"UTC"`, `"Europe/Paris"`), on one worker of the fleet at a time. A worker
    /// refuses to start when the expression or zone is invalid.
    pub const fn with_cron(mut self, expression: &'static str, tz: &'static str) -> Self {
        self.recurrence = Some(Recurrence::Cron { expression, tz });
        self
    }

    /// Run at most `limit` of these tasks at once across every worker.
    ///
    /// Tasks over the limit wait, kept in the queue, and the next one starts as soon as a
    /// running one ends. A limit of 0 counts as 1.
    pub const fn with_concurrency(mut self, limit: u32) -> Self {
        self.concurrency = Some(ConcurrencyLimit {
            param: None,
            max: nonzero(limit),
        });
        self
    }

    /// Run at most `limit` of these tasks at once per value of the argument `param`, across
    /// every worker: `with_concurrency_by("track_id", 1)` runs one task per track at a time.
    ///
    /// The value names the limit in Redis, so it is bounded: scheduling a task whose `param` is
    /// over 1024 bytes as JSON is an [`Error::ScopeTooLong`](crate::Error::ScopeTooLong), and
    /// nothing is stored. Limit by an id, not by the data. (A task stored without that check, by
    /// an older docket or [`Docket::add_json`](crate::Docket::add_json), still runs: its limit
    /// is counted under a digest of the value.)
    pub const fn with_concurrency_by(mut self, param: &'static str, limit: u32) -> Self {
        self.concurrency = Some(ConcurrencyLimit {
            param: Some(param),
            max: nonzero(limit),
        });
        self
    }

    /// Start at most `count` of these tasks in any `window` of time (a sliding window, across
    /// every worker). A task over the limit waits until the window lets it start.
    pub const fn with_rate_limit(mut self, count: u32, window: Duration) -> Self {
        self.rate = Some(RateLimit {
            param: None,
            count: nonzero(count),
            window,
        });
        self
    }

    /// Like [`Policy::with_rate_limit`], counted separately per value of the argument `param`.
    ///
    /// The value is bounded as for [`Policy::with_concurrency_by`]: over 1024 bytes as JSON,
    /// scheduling is an [`Error::ScopeTooLong`](crate::Error::ScopeTooLong).
    pub const fn with_rate_limit_by(
        mut self,
        param: &'static str,
        count: u32,
        window: Duration,
    ) -> Self {
        self.rate = Some(RateLimit {
            param: Some(param),
            count: nonzero(count),
            window,
        });
        self
    }

    /// Wait for scheduling to settle: each schedule replaces the waiting one and moves its start
    /// to `window` from now, so the task runs once, with the newest arguments, after `window` has
    /// passed with no new schedule.
    pub const fn with_debounce(mut self, window: Duration) -> Self {
        self.debounce = Some(Debounce {
            param: None,
            window,
        });
        self
    }

    /// Like [`Policy::with_debounce`], separately per value of the argument `param`.
    ///
    /// The value becomes part of the task's key; one too long for a key (over 1024 bytes with
    /// the task and argument names) is replaced there by a stable digest of it, so any value
    /// debounces.
    pub const fn with_debounce_by(mut self, param: &'static str, window: Duration) -> Self {
        self.debounce = Some(Debounce {
            param: Some(param),
            window,
        });
        self
    }

    /// Let one schedule through, then drop the others of its scope for `cooldown`'s window
    /// (`cooldown = "30s"`, or `cooldown(arg) = "30s"` per argument value): a leading-edge
    /// gate, where [`Policy::with_debounce`] waits for the trailing edge.
    ///
    /// A schedule is dropped when another of its scope was accepted (added or replaced) less
    /// than the window ago, counted from that acceptance, not from when the task runs; its
    /// receipt says [`Disposition::CooledDown`](crate::Disposition::CooledDown) and nothing is
    /// stored. The check and the start of a new window are one atomic step of the backend, so
    /// two processes that schedule at once let one task through, never two.
    ///
    /// ```
    /// use std::time::Duration;
    /// use docket::policy::{Cooldown, Policy};
    ///
    /// let cooldown = Cooldown::by("customer_id", Duration::from_secs(30))?;
    /// let policy = Policy::new().with_cooldown(cooldown);
    /// assert_eq!(policy.cooldown(), Some(cooldown));
    /// # Ok::<(), docket::policy::InvalidCooldown>(())
    /// ```
    pub const fn with_cooldown(mut self, cooldown: Cooldown) -> Self {
        self.cooldown = Some(cooldown);
        self
    }

    /// Keep each run's state and return value for `ttl` after it ends, for
    /// [`Scheduled::result`](crate::Scheduled::result) and
    /// [`Docket::result`](crate::Docket::result). Tasks that do not keep results cost nothing for
    /// it.
    pub const fn with_result(mut self, ttl: Duration) -> Self {
        self.results = Some(ttl);
        self
    }

    /// The retry count set with [`Policy::with_retries`] (`retries = N`); `u32::MAX` for
    /// [`Policy::with_retries_forever`].
    pub const fn retries(&self) -> u32 {
        self.retries
    }

    /// Whether the task is retried for as long as it fails (`retries = "forever"`).
    pub const fn retries_forever(&self) -> bool {
        self.forever
    }

    /// The first attempt plus every retry; `u32::MAX` for a task retried forever.
    pub const fn max_attempts(&self) -> u32 {
        self.retries.saturating_add(1)
    }

    /// How many attempts a task may take, as a snapshot shows it.
    pub const fn attempts(&self) -> Attempts {
        match self.forever {
            true => Attempts::Unlimited,
            false => Attempts::AtMost(self.max_attempts()),
        }
    }

    /// Whether a failed `attempt` may be retried (a retryable error permitting).
    pub(crate) const fn may_retry(&self, attempt: u32) -> bool {
        self.forever || attempt < self.max_attempts()
    }

    /// The backoff set with [`Policy::with_backoff`] (`backoff = "..."`).
    pub const fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// The jitter, in percent, set with [`Policy::with_jitter`] (`jitter = "20%"`).
    pub const fn jitter(&self) -> u8 {
        self.jitter
    }

    /// The timeout of one attempt set with [`Policy::with_timeout`] (`timeout = "..."`), if any.
    pub const fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// When the task runs on its own (`every = "..."` or `cron = "..."`), if it does.
    pub const fn recurrence(&self) -> Option<Recurrence> {
        self.recurrence
    }

    /// The concurrency limit (`concurrency = N`), if any.
    pub const fn concurrency(&self) -> Option<ConcurrencyLimit> {
        self.concurrency
    }

    /// The rate limit (`rate_limit = "..."`), if any.
    pub const fn rate_limit(&self) -> Option<RateLimit> {
        self.rate
    }

    /// The debounce (`debounce = "..."`), if any.
    pub const fn debounce(&self) -> Option<Debounce> {
        self.debounce
    }

    /// The cooldown (`cooldown = "..."`), if any.
    pub const fn cooldown(&self) -> Option<Cooldown> {
        self.cooldown
    }

    /// Whether the task's limits or cooldown are counted across the docket, so that on a docket
    /// spread over partitions it lives in partition 0, where they are.
    pub(crate) const fn counted_in_one_place(&self) -> bool {
        self.concurrency.is_some() || self.rate.is_some() || self.cooldown.is_some()
    }

    /// How long results are kept (`result`), when the task keeps them.
    pub const fn result_ttl(&self) -> Option<Duration> {
        self.results
    }

    /// The delay before retry number `retry`, with the jitter applied; `Duration::MAX` at most,
    /// however large the backoff.
    pub(crate) fn retry_delay(&self, retry: u32) -> Duration {
        self.jittered(self.backoff.delay(retry), crate::key::random_unit())
    }

    /// `delay` moved by `unit` (in `[0, 1)`) across the jitter's spread, saturating.
    fn jittered(&self, delay: Duration, unit: f64) -> Duration {
        if self.jitter == 0 || delay.is_zero() {
            return delay;
        }
        let spread = delay.as_secs_f64() * f64::from(self.jitter) / 100.0;
        let offset = (unit * 2.0 - 1.0) * spread;
        Duration::try_from_secs_f64((delay.as_secs_f64() + offset).max(0.0))
            .unwrap_or(Duration::MAX)
    }
}

/// How many attempts a task may take: its [`Policy::attempts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attempts {
    /// The first attempt and `retries`: `retries + 1` at most.
    AtMost(u32),
    /// Retried for as long as it fails (`retries = "forever"`).
    Unlimited,
}

impl std::fmt::Display for Attempts {
    /// `4`, or `forever`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attempts::AtMost(most) => write!(f, "{most}"),
            Attempts::Unlimited => f.write_str("forever"),
        }
    }
}

const fn nonzero(value: u32) -> u32 {
    if value == 0 { 1 } else { value }
}

/// When a recurring task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recurrence {
    /// Every period, counted from the previous due time.
    Every(Duration),
    /// At each time a cron expression names, in a time zone.
    Cron {
        /// A cron expression: five fields (minute, hour, day of month, month, day of week), six
        /// with seconds first, or a nickname such as `"@daily"`.
        expression: &'static str,
        /// An IANA time zone name such as `"UTC"` or `"America/New_York"`.
        tz: &'static str,
    },
}

/// A concurrency limit: how many runs at once, per task or per argument value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConcurrencyLimit {
    /// The argument whose value the limit is counted by; `None` counts all runs of the task.
    pub param: Option<&'static str>,
    /// How many may run at once.
    pub max: u32,
}

/// A rate limit: how many starts in a sliding window, per task or per argument value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimit {
    /// The argument whose value the limit is counted by; `None` counts all runs of the task.
    pub param: Option<&'static str>,
    /// How many starts the window allows.
    pub count: u32,
    /// The window.
    pub window: Duration,
}

/// A debounce: schedules closer together than `window` collapse into one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Debounce {
    /// The argument whose value scopes the debounce; `None` debounces the task as a whole.
    pub param: Option<&'static str>,
    /// How long scheduling must be quiet before the task runs.
    pub window: Duration,
}

/// A cooldown: after a schedule of its scope is accepted, the others are dropped for `window`.
/// See [`Policy::with_cooldown`].
///
/// Made with [`Cooldown::new`] or [`Cooldown::by`], which refuse a window of zero or over
/// [`Cooldown::MAX_WINDOW`]; `#[docket::task(cooldown = "..")]` checks the same at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cooldown {
    /// The argument whose value scopes the cooldown; `None` cools the task down as a whole.
    pub param: Option<&'static str>,
    /// How long after an accepted schedule the others of its scope are dropped.
    pub window: Duration,
}

impl Cooldown {
    /// The longest window: 30 days. A longer one is more likely a unit mistake (`"30d"` for
    /// `"30s"`) than a wish, and would leave a scope shut for longer than anyone remembers why.
    pub const MAX_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

    /// A cooldown of the task as a whole: one schedule a `window`.
    ///
    /// # Errors
    ///
    /// [`InvalidCooldown::Zero`] for a zero window, [`InvalidCooldown::TooLong`] for one over
    /// [`Cooldown::MAX_WINDOW`].
    pub const fn new(window: Duration) -> Result<Cooldown, InvalidCooldown> {
        Cooldown::checked(None, window)
    }

    /// A cooldown per value of the argument `param`: one schedule a `window` for each value.
    ///
    /// The value becomes part of the cooldown's key; one too long for a key (over 1024 bytes with
    /// the task and argument names) is replaced there by a stable digest of it.
    ///
    /// # Errors
    ///
    /// As for [`Cooldown::new`].
    pub const fn by(param: &'static str, window: Duration) -> Result<Cooldown, InvalidCooldown> {
        Cooldown::checked(Some(param), window)
    }

    const fn checked(
        param: Option<&'static str>,
        window: Duration,
    ) -> Result<Cooldown, InvalidCooldown> {
        if window.is_zero() {
            return Err(InvalidCooldown::Zero);
        }
        // `Duration`'s comparisons are not `const`; its parts are.
        let max = Cooldown::MAX_WINDOW;
        if window.as_secs() > max.as_secs()
            || (window.as_secs() == max.as_secs() && window.subsec_nanos() > max.subsec_nanos())
        {
            return Err(InvalidCooldown::TooLong { window });
        }
        Ok(Cooldown { param, window })
    }
}

/// Why [`Cooldown::new`] or [`Cooldown::by`] refused a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidCooldown {
    /// A window of zero: it would drop nothing; leave the cooldown out instead.
    #[error("a cooldown must be longer than zero; leave it out to accept every schedule")]
    Zero,
    /// A window over [`Cooldown::MAX_WINDOW`].
    #[error("a cooldown of {window:?} is over the longest, 30 days")]
    TooLong {
        /// The window asked for.
        window: Duration,
    },
}

impl Default for Policy {
    fn default() -> Self {
        Policy::new()
    }
}

/// The wait before a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backoff {
    /// The same delay before every retry (`backoff = "fixed 5s"`).
    Fixed(Duration),
    /// A delay that doubles with each retry, from `min` up to `max`
    /// (`backoff = "exponential 1s..60s"`).
    Exponential {
        /// The delay before the first retry.
        min: Duration,
        /// The longest delay.
        max: Duration,
    },
}

impl Backoff {
    /// The same delay before every retry.
    pub const fn fixed(delay: Duration) -> Self {
        Backoff::Fixed(delay)
    }

    /// A delay that starts at `min` and doubles with each retry, never above `max`.
    pub const fn exponential(min: Duration, max: Duration) -> Self {
        Backoff::Exponential { min, max }
    }

    /// The delay before retry number `retry` (the first retry is 1). Never overflows: an
    /// exponential delay stops at `max`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use docket::policy::Backoff;
    ///
    /// let backoff = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(5));
    /// let delays: Vec<u64> = (1..=5).map(|n| backoff.delay(n).as_secs()).collect();
    /// assert_eq!(delays, [1, 2, 4, 5, 5]);
    /// ```
    pub fn delay(&self, retry: u32) -> Duration {
        match *self {
            Backoff::Fixed(delay) => delay,
            Backoff::Exponential { min, max } => {
                let doublings = retry.saturating_sub(1).min(63);
                min.checked_mul(1u32.checked_shl(doublings).unwrap_or(u32::MAX))
                    .unwrap_or(max)
                    .min(max)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cooldown_window_is_longer_than_zero_and_at_most_thirty_days() {
        assert_eq!(Cooldown::new(Duration::ZERO), Err(InvalidCooldown::Zero));
        let max = Cooldown::MAX_WINDOW;
        assert_eq!(Cooldown::by("id", max).map(|c| c.window), Ok(max));
        assert_eq!(
            Cooldown::new(Duration::from_nanos(1)).map(|c| c.param),
            Ok(None)
        );
        for over in [max + Duration::from_nanos(1), max * 2, Duration::MAX] {
            assert_eq!(
                Cooldown::new(over),
                Err(InvalidCooldown::TooLong { window: over })
            );
        }
        assert_eq!(
            InvalidCooldown::TooLong { window: max * 2 }.to_string(),
            "a cooldown of 5184000s is over the longest, 30 days"
        );
        // The macro's helper keeps a window it was wrongly given within the bounds.
        assert_eq!(
            crate::__private::cooldown(None, Duration::ZERO)
                .window
                .as_millis(),
            1
        );
        assert_eq!(
            crate::__private::cooldown(Some("id"), Duration::MAX).window,
            max
        );
    }

    #[test]
    fn fixed_backoff_is_the_same_every_retry() {
        let backoff = Backoff::fixed(Duration::from_millis(250));
        assert!((1..10).all(|n| backoff.delay(n) == Duration::from_millis(250)));
    }

    #[test]
    fn exponential_backoff_saturates_instead_of_overflowing() {
        let backoff = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(backoff.delay(1), Duration::from_secs(1));
        assert_eq!(backoff.delay(3), Duration::from_secs(4));
        assert_eq!(backoff.delay(40), Duration::from_secs(60));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn huge_delays_with_jitter_saturate_instead_of_panicking() {
        let policy = Policy::new()
            .with_backoff(Backoff::fixed(Duration::MAX))
            .with_jitter(100);
        assert_eq!(policy.jittered(Duration::MAX, 0.999_999), Duration::MAX);
        assert!(policy.jittered(Duration::MAX, 0.0) < Duration::from_secs(1));
        for _ in 0..100 {
            let _ = policy.retry_delay(1);
        }
        let exponential = Policy::new()
            .with_backoff(Backoff::exponential(Duration::MAX, Duration::MAX))
            .with_jitter(50);
        assert_eq!(exponential.jittered(Duration::MAX, 0.999), Duration::MAX);
        assert_eq!(
            Backoff::exponential(Duration::from_secs(u64::MAX / 2), Duration::MAX).delay(3),
            Duration::MAX
        );
    }

    #[test]
    fn jitter_moves_delays_within_the_percentage() {
        let policy = Policy::new()
            .with_backoff(Backoff::fixed(Duration::from_secs(10)))
            .with_jitter(20);
        let delays: Vec<Duration> = (0..500).map(|_| policy.retry_delay(1)).collect();
        assert!(
            delays
                .iter()
                .all(|d| *d >= Duration::from_secs(8) && *d <= Duration::from_secs(12))
        );
        assert!(delays.iter().any(|d| *d < Duration::from_secs(9)));
        assert!(delays.iter().any(|d| *d > Duration::from_secs(11)));
        assert_eq!(Policy::new().with_jitter(250).jitter(), 100);
    }
}
