//! Generated task keys.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh key, unique across processes: 128 random-looking bits in hex.
///
/// The bits come from std's randomly seeded SipHash over a process-wide counter, the time and
/// the process id; there is no need for a cryptographic generator here, only for keys that do not
/// collide.
pub(crate) fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let state = std::hash::RandomState::new();
    let half = |salt: u64| {
        let mut hasher = state.build_hasher();
        hasher.write_u64(salt);
        hasher.write_u64(count);
        hasher.write_u128(nanos);
        hasher.write_u32(std::process::id());
        hasher.finish()
    };
    let mut key = String::with_capacity(32);
    for half in [half(1), half(2)] {
        for shift in (0..16).rev() {
            let digit = (half >> (shift * 4)) & 0xF;
            key.push(char::from_digit(digit as u32, 16).expect("a hex digit"));
        }
    }
    key
}

/// A random number in `[0, 1)`, for retry jitter. Not cryptographic.
pub(crate) fn random_unit() -> f64 {
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos()),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_units_stay_in_range_and_vary() {
        let samples: Vec<f64> = (0..1000).map(|_| super::random_unit()).collect();
        assert!(samples.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(samples.iter().any(|x| *x < 0.25) && samples.iter().any(|x| *x > 0.75));
    }

    #[test]
    fn keys_do_not_repeat() {
        let keys: std::collections::HashSet<String> =
            (0..10_000).map(|_| super::unique()).collect();
        assert_eq!(keys.len(), 10_000);
        assert!(keys.iter().all(|key| key.len() == 32));
    }
}
