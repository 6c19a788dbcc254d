//! The shared poll: one refresh of the overview at a time, at most one per refresh period,
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

use super::Shared;
use crate::backend::browse::Overview;
use crate::error::Result;
use crate::handle::Docket;

/// The latest overview, shared by every page and listener of one dashboard.
pub(super) struct Live {
    docket: Docket,
    every: Duration,
    /// The latest overview and when it was read; held while a refresh is under way, so
    /// concurrent requests wait for it rather than read again.
    latest: Mutex<Option<(Instant, Arc<Overview>)>>,
    /// Each refresh, to the listeners.
    updates: watch::Sender<Option<Arc<Overview>>>,
    /// Whether the poll task runs.
    polling: AtomicBool,
    /// Refreshes made, for tests of the poll's pace.
    refreshes: AtomicU64,
}

impl Live {
    pub(super) fn new(docket: Docket, every: Duration) -> Arc<Live> {
        Arc::new(Live {
            docket,
            every,
            latest: Mutex::new(None),
            updates: watch::Sender::new(None),
            polling: AtomicBool::new(false),
            refreshes: AtomicU64::new(0),
        })
    }

    /// The overview, read again only when the latest is older than the refresh period.
    pub(super) async fn current(&self) -> Result<Arc<Overview>> {
        let mut latest = self.latest.lock().await;
        if let Some((read, overview)) = latest.as_ref()
            && read.elapsed() < self.every
        {
            return Ok(overview.clone());
        }
        let overview = Arc::new(self.docket.backend().overview().await?);
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        *latest = Some((Instant::now(), overview.clone()));
        self.updates.send_replace(Some(overview.clone()));
        Ok(overview)
    }

    /// Listen to the refreshes; the poll runs while anyone listens.
    fn listen(self: &Arc<Self>) -> watch::Receiver<Option<Arc<Overview>>> {
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
fn counts(overview: &Overview) -> String {
    serde_json::json!({
        "queued": overview.queued,
        "scheduled": overview.scheduled,
        "running": overview.running,
        "held": overview.held,
        "dead": overview.dead,
        "workers": overview.workers.len(),
        "strikes": overview.strikes.len(),
        "taken": super::pages::clock(overview.taken),
    })
    .to_string()
}

/// `GET /events`: the counts of every refresh, as `overview` events.
pub(super) async fn events(
    State(app): State<Shared>,
) -> Sse<impl Stream<Item = std::result::Result<Event, Infallible>>> {
    let mut receiver = app.live.listen();
    receiver.mark_changed();
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        loop {
            receiver.changed().await.ok()?;
            let update = receiver.borrow_and_update().clone();
            if let Some(overview) = update {
                let event = Event::default().event("overview").data(counts(&overview));
                return Some((Ok(event), receiver));
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
        let live = Live::new(Docket::memory(), Duration::from_secs(2));
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
