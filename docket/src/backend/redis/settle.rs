//! Settling deliveries on Redis: acknowledging them in chunks, and the bookkeeping of which
//! worker holds which delivery until its settlement returns.

use super::scripts::{Invocation, SCRIPTS};
use super::{RedisBackend, stream_id};
use crate::backend::Delivery;
use crate::error::Result;
use crate::sync::Locked;

/// The most deliveries settled or renewed in one call.
pub(super) const SETTLE_CHUNK: usize = 1000;

impl RedisBackend {
    /// Acknowledge `(stream id, key)` entries, at most [`SETTLE_CHUNK`] a call.
    pub(super) async fn acknowledge<'a>(&self, entries: &[(&'a str, &'a str)]) -> Result<()> {
        for chunk in entries.chunks(SETTLE_CHUNK) {
            let mut invocation = SCRIPTS.complete.prepare_invoke();
            invocation
                .key(&self.keys.stream)
                .key(&self.keys.index)
                .arg(chunk.len());
            for (id, _) in chunk {
                invocation.arg(*id);
            }
            for (_, key) in chunk {
                invocation.arg(*key);
            }
            self.invoke::<i64>(&invocation).await?;
        }
        Ok(())
    }

    /// The delivery is settled: it is no longer this process's to run or renew.
    pub(super) fn settled<'a>(&self, deliveries: impl IntoIterator<Item = &'a Delivery> + Clone) {
        {
            let mut in_flight = self.in_flight.locked();
            for delivery in deliveries.clone() {
                in_flight.remove(stream_id(delivery));
            }
        }
        if self
            .solo
            .settled(self.part, deliveries.into_iter().map(stream_id))
        {
            // A suspect is done with (or given up): its worker may take the next one now,
            // rather than at the keeper's next ask, so that suspects left by a crash storm go
            // one after another, each alone, without a check period between them.
            self.ask_reclaim(tokio::time::Instant::now());
        }
    }

    /// The worker holding `delivery`: whose word settles it. A delivery this process no longer
    /// holds has no holder, and scripts then treat its settlement as a stale copy's.
    pub(super) fn holder(&self, delivery: &Delivery) -> String {
        self.in_flight
            .locked()
            .get(stream_id(delivery))
            .cloned()
            .unwrap_or_default()
    }

    pub(super) fn keys_for(&self, invocation: &mut Invocation<'_>) {
        invocation
            .key(&self.keys.stream)
            .key(&self.keys.index)
            .key(&self.keys.schedule)
            .key(&self.keys.parked);
    }
}
