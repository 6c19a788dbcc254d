//! The Redis key layout of a docket: the one place that names keys.
//!
//! Every key starts with the hash tag `{name}`, so a docket lives in one Redis Cluster slot and
//! every script may touch all of its keys.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{name}:stream` | stream, consumer group `workers` | due tasks, fields `k` (key) and `m` (message JSON); wake-ups, field `w`; tasks waiting for a concurrency slot stay here, acknowledged |
//! | `{name}:schedule` | sorted set | key → due time (ms since the epoch) of each future task |
//! | `{name}:parked` | hash | key → message JSON of each future task |
//! | `{name}:index` | hash | key → stream id of its queued or running entry; `s` while scheduled, `h` while held, `g` and the stream id while waiting for a concurrency slot, `x` and the stream id while a cancelled run is being stopped; also, field `\1` and a stream id, the tombstone of a cancelled delivery, and field `\2` and a key, the deliveries of that key (stream ids, separated by spaces) a `replace` went beside and that are not settled yet (for a cancel of the key to reach them) |
//! | `{name}:dead` | hash | key → dead letter JSON |
//! | `{name}:died` | sorted set | key → when its dead letter was written (ms), for retention |
//! | `{name}:strikes` | sorted set | strike JSON → its place in the order strikes were put in place |
//! | `{name}:layout` | string | a spread docket's layout: `{"v":1,"partitions":[tag, …]}`, partition 0's tag (the docket's name) first |
//! | `{name}:signals` | stream, capped near 1,000 | worker signals: `s` (the strikes changed), `c` and `i` (cancel the run of this key delivered as this stream id), `r` and `i` (a `replace` added a task beside this delivery of the key: drop it if not started), `w` (a dashboard wants the workers' runs for this many ms) |
//! | `{name}:held` | hash | key → message JSON of each task held by a strike |
//! | `{name}:keeper` | string, expiring | the keeper's lease: `<workers> <consumer>`, the worker that runs the fleet's periodic checks and the fleet's size as it last counted it |
//! | `{name}:fleet` | sorted set | consumer → when its worker last said it was running (ms): how many workers share the keeper's watch |
//! | `{name}:stats` | hash | consumer → its runs by task name over the last minutes (`crate::stats`), for the dashboard |
//! | `{name}:stats-wanted` | string, expiring | present while a dashboard shows the runs by task name: workers publish them only then |
//! | `{name}:slot:<scope>` | set | stream ids of the deliveries holding the concurrency limit `<scope>` |
//! | `{name}:gated:<scope>` | list | stream ids of the tasks waiting for a slot of `<scope>`, first come first served |
//! | `{name}:rate:<scope>` | sorted set, expiring | the starts inside the rate limit `<scope>`'s window, scored by time (ms) |
//! | `{name}:cooldown:<scope>` | string, expiring | set for a cooldown's window when a task of `<scope>` is stored; while it lives, the scope's next schedules are dropped |
//! | `{name}:state:<key>` | string, expiring; and a pub/sub channel | the task state JSON of a task that keeps results; each change is published on the channel of the same name |
//!
//! A `<scope>` names a limit: the task's name, or `task:param=value` for a limit per argument
//! value.
//!
//! A docket spread over several partitions ([`partitions`](super::partitions)) has a full set
//! of these keys under each partition's tag (`{name}`, then `{name:1.s}`, `{name:2.s}`, … as its
//! layout names), and one more key, `{name}:layout` (a string: the tags, as JSON).

/// The name of the consumer group every worker reads the stream through: a macro, so that the
/// Lua prelude (`scripts.rs`) spells it as a literal too and no script writes it.
macro_rules! group {
    () => {
        "workers"
    };
}
pub(super) use group;

/// The consumer group every worker reads the stream through.
pub(super) const GROUP: &str = group!();

/// The keys of one docket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Keys {
    pub(super) stream: String,
    pub(super) schedule: String,
    pub(super) parked: String,
    pub(super) index: String,
    pub(super) dead: String,
    pub(super) died: String,
    pub(super) strikes: String,
    pub(super) signals: String,
    pub(super) held: String,
    pub(super) keeper: String,
    pub(super) fleet: String,
    pub(super) stats: String,
    pub(super) stats_wanted: String,
    /// The hash tag and colon every key starts with, for the keys named per limit or task.
    prefix: String,
}

impl Keys {
    pub(super) fn new(name: &str) -> Keys {
        let prefix = format!("{{{name}}}:");
        let key = |suffix: &str| format!("{prefix}{suffix}");
        Keys {
            stream: key("stream"),
            schedule: key("schedule"),
            parked: key("parked"),
            index: key("index"),
            dead: key("dead"),
            died: key("died"),
            strikes: key("strikes"),
            signals: key("signals"),
            held: key("held"),
            keeper: key("keeper"),
            fleet: key("fleet"),
            stats: key("stats"),
            stats_wanted: key("stats-wanted"),
            prefix,
        }
    }

    /// The holders of the concurrency limit `scope`.
    pub(super) fn slot(&self, scope: &str) -> String {
        format!("{}slot:{scope}", self.prefix)
    }

    /// The tasks waiting for a slot of the concurrency limit `scope`.
    pub(super) fn gated(&self, scope: &str) -> String {
        format!("{}gated:{scope}", self.prefix)
    }

    /// The recent starts under the rate limit `scope`.
    pub(super) fn rate(&self, scope: &str) -> String {
        format!("{}rate:{scope}", self.prefix)
    }

    /// The window of the cooldown `scope`, while it lasts.
    pub(super) fn cooldown(&self, scope: &str) -> String {
        format!("{}cooldown:{scope}", self.prefix)
    }

    /// The recorded state of the task `key`, and the channel its changes are published on.
    pub(super) fn state(&self, key: &str) -> String {
        format!("{}state:{key}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_carries_the_docket_hash_tag() {
        let keys = Keys::new("plyr");
        assert_eq!(keys.stream, "{plyr}:stream");
        assert_eq!(keys.slot("scan:track=7"), "{plyr}:slot:scan:track=7");
        assert_eq!(keys.state("scan-7"), "{plyr}:state:scan-7");
        let all = [
            keys.stream.clone(),
            keys.schedule.clone(),
            keys.parked.clone(),
            keys.index.clone(),
            keys.dead.clone(),
            keys.died.clone(),
            keys.strikes.clone(),
            keys.signals.clone(),
            keys.held.clone(),
            keys.slot("a"),
            keys.gated("a"),
            keys.rate("a"),
            keys.cooldown("a"),
            keys.state("a"),
        ];
        assert!(all.iter().all(|key| key.starts_with("{plyr}:")), "{all:?}");
    }

    #[test]
    fn a_key_or_scope_cannot_move_a_key_out_of_the_docket_s_slot() {
        // Redis Cluster hashes the first `{...}` only, so braces later in a key are harmless.
        let keys = Keys::new("plyr");
        assert!(keys.state("{other}").starts_with("{plyr}:"));
        assert!(keys.slot("}{").starts_with("{plyr}:"));
    }
}
