//! Task keys: generated ones, the checks on given ones, and a stable digest for keys derived
//! from argument values.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// The longest task key accepted, in bytes. Keys are stored as Redis hash fields and stream
/// entry fields; a bound keeps them far from managed Redis limits (Upstash: 32 KB a field).
pub(crate) const MAX_KEY_BYTES: usize = 1024;

/// How much of a rejected key an error shows.
const SHOWN_CHARS: usize = 64;

/// Check a key given by the caller: not empty (the Redis scripts use `""` for "no key", so such
/// a task would never release it), at most [`MAX_KEY_BYTES`], and free of control characters
/// (they garble logs, the CLI's tables and terminals).
pub(crate) fn validate(key: &str) -> Result<()> {
    let reason = if key.is_empty() {
        "it is empty; give a non-empty key, or leave out `.key(..)` for a generated one".to_owned()
    } else if key.len() > MAX_KEY_BYTES {
        format!(
            "it is {} bytes, over the limit of {MAX_KEY_BYTES}; use a shorter key, such as an id or a digest of this one",
            key.len()
        )
    } else if let Some(bad) = key.chars().find(|c| c.is_control()) {
        format!("it contains the control character {bad:?}; use printable characters only")
    } else {
        return Ok(());
    };
    Err(Error::InvalidKey {
        key: shown(key),
        reason,
    })
}

/// The start of `key`, for an error message.
fn shown(key: &str) -> String {
    match key.char_indices().nth(SHOWN_CHARS) {
        Some((end, _)) => format!("{}…", &key[..end]),
        None => key.to_owned(),
    }
}

/// A stable 64-bit FNV-1a digest of `bytes`, as 16 hex digits: the same in every process and
/// every version of docket, so keys derived from it stay the same. Not cryptographic; only for
/// shortening a key that is too long to store whole.
pub(crate) fn digest(bytes: &[u8]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = bytes.iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    });
    format!("{hash:016x}")
}

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
    use crate::error::Error;

    #[test]
    fn keys_are_refused_when_empty_too_long_or_with_control_characters() {
        let reason = |key: &str| match super::validate(key) {
            Err(Error::InvalidKey { reason, .. }) => reason,
            other => panic!("{key:?} gave {other:?}"),
        };
        assert!(reason("").contains("empty"));
        assert!(reason(&"k".repeat(1025)).contains("1025 bytes"));
        assert!(reason("a\nb").contains("'\\n'"));
        assert!(reason("a\u{1b}[31m").contains("control character"));
        assert!(reason("a\u{85}").contains("control character"));
        for good in [
            "k",
            "transcode-7-opus",
            "{x}:y",
            "héllo wörld",
            &"k".repeat(1024),
        ] {
            assert!(super::validate(good).is_ok(), "{good:?}");
        }
        // 1024 bytes of two-byte characters is still fine; 1026 is not.
        assert!(super::validate(&"é".repeat(512)).is_ok());
        assert!(super::validate(&"é".repeat(513)).is_err());
    }

    #[test]
    fn a_refused_key_is_shown_short_and_escaped() {
        let Err(error) = super::validate(&format!("\u{7}{}", "é".repeat(2000))) else {
            panic!("accepted");
        };
        let Error::InvalidKey { key, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(key.chars().count(), 65);
        assert!(key.ends_with('…'));
        let message = error.to_string();
        assert!(
            message.starts_with("invalid task key \"\\u{7}éé"),
            "{message}"
        );
        assert!(!message.contains('\u{7}'), "{message}");
    }

    #[test]
    fn digests_are_stable_fnv1a() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(super::digest(b""), "cbf29ce484222325");
        assert_eq!(super::digest(b"a"), "af63dc4c8601ec8c");
        assert_eq!(super::digest(b"foobar"), "85944171f73967e8");
    }
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
