//! The shared poll: one refresh of the counts at a time, at most one per refresh period,
//! and only while a page listens to the live updates; each refresh is pushed to every listener
//! as a server-sent event.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::backend::browse::Counts;
use crate::error::Result;
use crate::handle::Docket;

/// The latest counts, shared by every page and listener of one dashboard.
pub(super) struct Live {
    docket: Docket,
    every: Duration,
    /// The latest counts and when they were read; held while a refresh is under way, so
    /// concurrent requests wait for it rather than read again.
    latest: Mutex<Option<(Instant, Arc<Counts>)>>,
    /// Each refresh, to the listeners.
    updates: watch::Sender<Option<Arc<Counts>>>,
    /// Whether the poll task runs.
    polling: AtomicBool,
    /// Refreshes made, for tests of the poll's pace.
    refreshes: AtomicU64,
    /// Ends every stream: the server is shutting down.
    stop: CancellationToken,
}

/// How long one event stream lasts before it ends and the browser opens another: a server
/// whose shutdown was not told to [`Dashboard::stop_on`](super::Dashboard::stop_on) waits no
/// longer than this for open pages.
const STREAM_LIFETIME: Duration = Duration::from_secs(60);

/// How soon a browser reconnects after a stream ended.
const RECONNECT: Duration = Duration::from_secs(2);

impl Live {
    pub(super) fn new(docket: Docket, every: Duration, stop: CancellationToken) -> Arc<Live> {
        Arc::new(Live {
            docket,
            every,
            latest: Mutex::new(None),
            updates: watch::Sender::new(None),
            polling: AtomicBool::new(false),
            refreshes: AtomicU64::new(0),
            stop,
        })
    }

    /// The counts, read again only when the latest are older than the refresh period.
    pub(super) async fn current(&self) -> Result<Arc<Counts>> {
        let mut latest = self.latest.lock().await;
        if let Some((read, counts)) = latest.as_ref()
            && read.elapsed() < self.every
        {
            return Ok(counts.clone());
        }
        let counts = Arc::new(self.docket.backend().counts().await?);
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        *latest = Some((Instant::now(), counts.clone()));
        self.updates.send_replace(Some(counts.clone()));
        Ok(counts)
    }

    /// Forget the latest counts: an action changed them, so the next page reads them again.
    pub(super) async fn forget(&self) {
        *self.latest.lock().await = None;
    }

    /// Listen to the refreshes; the poll runs while anyone listens.
    fn listen(self: &Arc<Self>) -> watch::Receiver<Option<Arc<Counts>>> {
        let receiver = self.updates.subscribe();
        if !self.polling.swap(true, Ordering::AcqRel) {
            tokio::spawn(self.clone().poll());
        }
        receiver
    }

    /// Refresh every period until nobody listens.
    async fn poll(self: Arc<Self>) {
        loop {
            if self.updates.receiver_count() == 0 {
                self.polling.store(false, Ordering::Release);
                // A listener that came meanwhile saw the poll running and started none.
                if self.updates.receiver_count() == 0 || self.polling.swap(true, Ordering::AcqRel) {
                    return;
                }
            }
            if let Err(error) = self.current().await {
                tracing::warn!(error = %crate::error::Chain(&error), "the dashboard's refresh failed");
            }
            tokio::time::sleep(self.every).await;
        }
    }

    #[cfg(test)]
    fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }
}

/// The counts an update carries, as the pages' script reads them.
fn encode(counts: &Counts) -> String {
    serde_json::json!({
        "queued": counts.queued,
        "scheduled": counts.scheduled,
        "running": counts.running,
        "held": counts.held,
        "dead": counts.dead,
        "taken": super::format::clock(counts.taken),
    })
    .to_string()
}

/// `GET /events`: the counts of every refresh, as `counts` events.
pub(super) async fn events(
    State(app): State<Shared>,
) -> Sse<impl Stream<Item = std::result::Result<Event, Infallible>>> {
    let mut receiver = app.live.listen();
    receiver.mark_changed();
    let end = Instant::now() + STREAM_LIFETIME;
    let stop = app.live.stop.clone();
    let stream = futures_util::stream::unfold(receiver, move |mut receiver| {
        let stop = stop.clone();
        async move {
            loop {
                tokio::select! {
                    changed = receiver.changed() => changed.ok()?,
                    () = tokio::time::sleep_until(end) => return None,
                    () = stop.cancelled() => return None,
                }
                let update = receiver.borrow_and_update().clone();
                if let Some(counts) = update {
                    let event = Event::default()
                        .event("counts")
                        .retry(RECONNECT)
                        .data(encode(&counts));
                    return Some((Ok(event), receiver));
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_poll_serves_every_listener_and_stops_when_they_leave() {
        let live = Live::new(
            Docket::memory(),
            Duration::from_secs(2),
            CancellationToken::new(),
        );
        let listeners: Vec<_> = (0..5).map(|_| live.listen()).collect();
        tokio::time::sleep(Duration::from_millis(10_100)).await;
        // Five listeners, ten seconds: one refresh every 2 s, not one per listener.
        assert_eq!(live.refreshes(), 6);
        // A page read in between takes the latest refresh.
        live.current().await.unwrap();
        assert_eq!(live.refreshes(), 6);
        drop(listeners);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!live.polling.load(Ordering::Acquire));
        let stopped = live.refreshes();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(live.refreshes(), stopped);
        // A new listener starts it again.
        let _again = live.listen();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(live.refreshes(), stopped + 1);
    }
}
