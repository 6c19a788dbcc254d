//! The bench's tasks, and the probe through which the measuring ones report their start.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

/// A task body starting, as seen from inside it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Start {
    /// Which task: the argument it was scheduled with.
    pub(crate) seq: u64,
    /// When it was due, in ms since the Unix epoch (0 for tasks due now).
    pub(crate) due_ms: u64,
    /// When its body started, for intervals measured in this process.
    pub(crate) at: Instant,
    /// When its body started, for comparing with its due time.
    pub(crate) wall: SystemTime,
}

/// Where task bodies send their [`Start`]; `None` while no scenario listens.
static SINK: Mutex<Option<mpsc::UnboundedSender<Start>>> = Mutex::new(None);

/// Receive the [`Start`] of every probing task from now on (until the next `listen`).
pub(crate) fn listen() -> mpsc::UnboundedReceiver<Start> {
    let (sender, receiver) = mpsc::unbounded_channel();
    *SINK.lock().expect("never poisoned") = Some(sender);
    receiver
}

fn record(seq: u64, due_ms: u64) {
    let (at, wall) = (Instant::now(), SystemTime::now());
    if let Some(sink) = SINK.lock().expect("never poisoned").as_ref() {
        let _ = sink.send(Start {
            seq,
            due_ms,
            at,
            wall,
        });
    }
}

/// When the latest `noop` started, in ns since the Unix epoch.
static LAST_NOOP: AtomicU64 = AtomicU64::new(0);

/// When the latest `noop` of this process started.
pub(crate) fn last_noop() -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_nanos(LAST_NOOP.load(Ordering::Relaxed))
}

/// Does nothing but note when it started: what the enqueue and drain scenarios measure is docket
/// alone.
#[docket::task]
pub(crate) async fn noop(n: u64) {
    std::hint::black_box(n);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    LAST_NOOP.fetch_max(
        u64::try_from(now.as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

/// Reports when it starts: the end-to-end latency scenario.
#[docket::task]
pub(crate) async fn ping(seq: u64) {
    record(seq, 0);
}

/// Reports when it starts and when it was due: the lateness scenario. (`#[docket::task]` does not
/// inject the `Context`, which knows the due time, so the due time travels as an argument.)
#[docket::task]
pub(crate) async fn stamp(seq: u64, due_ms: u64) {
    record(seq, due_ms);
}
