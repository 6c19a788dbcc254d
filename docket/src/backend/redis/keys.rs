//! The Redis key layout of a docket: the one place that names keys.
//!
//! Every key starts with the hash tag `{name}`, so a docket lives in one Redis Cluster slot and
//! every script may touch all of its keys.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{name}:stream` | stream, consumer group `workers` | due tasks, fields `k` (key) and `m` (message JSON); wake-ups, field `w` |
//! | `{name}:schedule` | sorted set | key → due time (ms since the epoch) of each future task |
//! | `{name}:parked` | hash | key → message JSON of each future task |
//! | `{name}:index` | hash | key → stream id of its queued or running entry, or `s` while scheduled |
//! | `{name}:dead` | hash | key → dead letter JSON |
//!
//! A later step spreads a docket over several partitions (`{name:0}`, `{name:1}`, …), each a full
//! set of these keys; only this module then changes.

/// The consumer group every worker reads the stream through.
pub(super) const GROUP: &str = "workers";

/// The keys of one docket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Keys {
    pub(super) stream: String,
    pub(super) schedule: String,
    pub(super) parked: String,
    pub(super) index: String,
    pub(super) dead: String,
}

impl Keys {
    pub(super) fn new(name: &str) -> Keys {
        let key = |suffix: &str| format!("{{{name}}}:{suffix}");
        Keys {
            stream: key("stream"),
            schedule: key("schedule"),
            parked: key("parked"),
            index: key("index"),
            dead: key("dead"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_carries_the_docket_hash_tag() {
        let keys = Keys::new("plyr");
        assert_eq!(keys.stream, "{plyr}:stream");
        let all = [
            keys.stream,
            keys.schedule,
            keys.parked,
            keys.index,
            keys.dead,
        ];
        assert!(all.iter().all(|key| key.starts_with("{plyr}:")), "{all:?}");
    }
}
