//! The one rule for poisoned mutexes: carry on with the data.
//!
//! Every critical section in this crate leaves its data consistent at each step (a map insert, a
//! swap, a push), and task code never runs while a lock is held, so a panic that poisoned a lock
//! left nothing half-done. Failing every later caller instead would turn one caught panic into a
//! worker that can no longer settle anything.

use std::sync::{Mutex, MutexGuard};

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
