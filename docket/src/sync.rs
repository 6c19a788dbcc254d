//! The one rule for poisoned mutexes: carry on with the data.
//!
//! Every critical section in this crate leaves its data consistent at each step (a map insert, a
//! swap, a push), and task code never runs while a lock is held, so a panic that poisoned a lock
//! left nothing half-done. Failing every later caller instead would turn one caught panic into a
//! worker that can no longer settle anything.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

/// A hash map for the maps a worker touches for every task (its deliveries in flight, its runs
/// by key): foldhash rather than SipHash, which took about 7 % of a worker's instructions per
/// task. Its seed is random per process, and its keys are stream ids and task keys.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// [`Mutex::lock`] that recovers the guard from a poisoned mutex.
pub(crate) trait Locked<T> {
    /// Lock the mutex, poisoned or not.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T> Locked<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A name held in a set while this lives: marks a worker as being somewhere (waiting in a claim
/// for work, say) for as long as it is there, however it leaves.
pub(crate) struct Member<'a> {
    set: &'a Mutex<HashSet<String>>,
    name: &'a str,
}

impl<'a> Member<'a> {
    /// Put `name` in `set` until the returned guard drops.
    pub(crate) fn of(set: &'a Mutex<HashSet<String>>, name: &'a str) -> Member<'a> {
        set.locked().insert(name.to_owned());
        Member { set, name }
    }
}

impl Drop for Member<'_> {
    fn drop(&mut self) {
        self.set.locked().remove(self.name);
    }
}
