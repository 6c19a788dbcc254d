//! Workers' runs by task name on the memory backend (see `backend/stats.rs`): kept beside the
//! store, by worker.

use super::MemoryBackend;
use crate::stats::Window;
use crate::sync::Locked;

impl MemoryBackend {
    /// Keep `worker`'s window, replacing the one it published before; forget the windows of
    /// workers silent for longer than a window (workers come and go: each has a new name).
    pub(crate) fn publish_stats(&self, worker: &str, window: &Window) {
        let mut windows = self.shared.stats.locked();
        windows.retain(|_, published| !published.is_stale_beside(window));
        windows.insert(worker.to_owned(), window.clone());
    }

    /// Every worker's runs within the window as of the docket's clock.
    #[cfg(feature = "dashboard")]
    pub(crate) fn task_stats(&self) -> Vec<(String, crate::stats::Tally)> {
        // The docket's clock: a virtual one under `docket::testing`.
        let now = self.store().clock.now();
        let windows = self.shared.stats.locked();
        crate::stats::totals(windows.values(), now)
    }
}
