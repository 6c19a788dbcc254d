//! The feeds a Redis docket follows on connections of their own: worker signals (strike
//! changes, cancels of running tasks) from the signals stream, and one task's record changes
//! from its pub/sub channel, for `watch`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use redis::Value;
use tokio::sync::mpsc;

use super::codec::{self, SignalEntry};
use super::reply::{first_stream, stream_entries};
use crate::backend::{DeliveryId, Signal};
use crate::results::TaskRecord;
use crate::sync::Locked;

/// The most worker signals read at once.
pub(super) const SIGNAL_BATCH: usize = 100;

/// Forward the signals stream `signals` to a worker, from the entry after `last`, until the
/// worker drops the receiver or the connection fails (then the channel closes, and the worker
/// subscribes again). While nothing happens it costs nothing: one read blocks until an entry
/// arrives.
pub(super) async fn follow_signals(
    signals: String,
    part: u16,
    sent: Arc<AtomicU64>,
    mut connection: super::connection::Link,
    position: Arc<Mutex<Option<String>>>,
    mut last: String,
    sender: mpsc::UnboundedSender<Signal>,
) {
    loop {
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT")
            .arg(SIGNAL_BATCH)
            .arg("BLOCK")
            .arg(0)
            .arg("STREAMS")
            .arg(&signals)
            .arg(&last);
        sent.fetch_add(1, Ordering::Relaxed);
        let reply = tokio::select! {
            () = sender.closed() => return,
            reply = read.query_async::<Value>(&mut connection) => reply,
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => {
                tracing::debug!(error = %error, "the worker signal feed ended");
                return;
            }
        };
        for (id, fields) in stream_entries(first_stream(reply)) {
            let signal = match codec::decode_signal(&fields) {
                Some(SignalEntry::Strikes(strikes)) => Some(Signal::Strikes(strikes)),
                Some(SignalEntry::Cancel { key, id }) => Some(Signal::Cancel {
                    key,
                    delivery: id.map(|id| DeliveryId::Stream { part, id }),
                }),
                Some(SignalEntry::StatsWanted(millis)) => Some(Signal::StatsWanted(
                    std::time::Duration::from_millis(millis),
                )),
                Some(SignalEntry::Superseded { key, id }) => Some(Signal::Superseded {
                    key,
                    delivery: DeliveryId::Stream { part, id },
                }),
                None => {
                    tracing::warn!(entry = %id, "ignoring an unknown worker signal");
                    None
                }
            };
            if signal.is_some_and(|signal| sender.send(signal).is_err()) {
                return;
            }
            // Only once the signal is passed on: a feed made after this one ends resumes here.
            *position.locked() = Some(id.clone());
            last = id;
        }
    }
}

/// Forward the state changes published for `key` until the watcher drops the receiver or the
/// connection ends (then the channel closes).
pub(super) async fn follow_states(
    key: String,
    pubsub: redis::aio::PubSub,
    sender: mpsc::UnboundedSender<TaskRecord>,
) {
    let mut messages = pubsub.into_on_message();
    loop {
        let message = tokio::select! {
            () = sender.closed() => return,
            message = messages.next() => message,
        };
        let Some(message) = message else {
            return;
        };
        match TaskRecord::decode(message.get_payload_bytes()) {
            Ok(state) => {
                if sender.send(state).is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(%key, %error, "ignoring a published task state that does not decode")
            }
        }
    }
}
