//! What reaches a running worker from outside: the signals feed (strike changes, cancels of
//! running tasks) and the registry of the deliveries it runs, which a cancel looks up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{BACKEND_RETRY, Shared};
use crate::backend::{AnyBackend, Backend, Delivery, DeliveryId, Message, Signal, SignalFeed};
use crate::error::Chain;
use crate::strike::Strike;
use crate::sync::{FastMap, Locked};

/// How long a cancel signal for a delivery this worker has not started yet is remembered: the
/// signal and the delivery travel on different connections, so either may arrive first.
const CANCEL_MEMORY: Duration = Duration::from_secs(300);
impl Shared {
    /// The strike holding `message`, if any.
    pub(super) fn struck(&self, message: &Message) -> Option<Strike> {
        let strikes = self
            .strikes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if strikes.is_empty() {
            return None;
        }
        crate::strike::first_match(&strikes, &message.task, &message.args).cloned()
    }

    pub(super) fn apply(&self, signal: Signal) {
        match signal {
            Signal::Cancel { key, delivery } => {
                if self.running.cancel(&key, delivery.as_ref()) {
                    tracing::info!(%key, "cancelling a running task");
                }
            }
            Signal::StatsWanted(wanted) => self.stats.want(wanted),
            Signal::Superseded { key, delivery } => {
                if self.running.supersede(&key, &delivery) {
                    tracing::debug!(%key, "a task read ahead was replaced before it started");
                }
            }
            Signal::Strikes(strikes) => {
                *self
                    .strikes
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = strikes;
            }
        }
    }
}

/// Subscribe to the worker signals, going on where `ended` stopped, trying again while the
/// backend is unreachable.
pub(super) async fn subscribe(
    backend: &AnyBackend,
    ended: Option<&SignalFeed>,
    stop: &CancellationToken,
) -> Option<SignalFeed> {
    loop {
        match backend.signals(ended).await {
            Ok(signals) => return Some(signals),
            Err(error) => {
                tracing::warn!(error = %Chain(&error), "could not subscribe to worker signals; trying again");
                tokio::select! {
                    () = stop.cancelled() => return None,
                    () = tokio::time::sleep(BACKEND_RETRY) => {}
                }
            }
        }
    }
}

/// Follow the worker signals (cancels, strikes) until the worker finishes, subscribing again
/// whenever the feed is lost.
pub(super) async fn listen(shared: Arc<Shared>, mut feed: SignalFeed, finished: CancellationToken) {
    let backend = shared.docket.backend();
    loop {
        let followed = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = finished.cancelled() => return,
                signal = feed.signals.recv() => match signal {
                    Some(signal) => shared.apply(signal),
                    None => break,
                },
            }
        }
        // A feed lost after a good while is followed again at once: a cancel sent meanwhile
        // (Redis restarted, say) then reaches its task without a pause on top of the outage.
        // One lost soon after it began waits first, so a feed that keeps ending is no busy loop.
        tokio::select! {
            biased;
            () = finished.cancelled() => return,
            () = tokio::time::sleep_until(followed + BACKEND_RETRY) => {}
        }
        feed = match subscribe(backend, Some(&feed), &finished).await {
            Some(feed) => feed,
            None => return,
        };
    }
}

/// The cancellation tokens of the deliveries this worker holds, by key; and cancels that came
/// for deliveries it has not started yet.
#[derive(Default)]
pub(super) struct RunningTasks {
    next: AtomicU64,
    by_key: Mutex<Runs>,
}

#[derive(Default)]
pub(super) struct Runs {
    by_key: FastMap<String, Vec<Run>>,
    /// Cancelled deliveries not (yet) held here, and when their cancel came.
    early: FastMap<DeliveryId, tokio::time::Instant>,
    /// Deliveries read ahead and not started yet, by key: a cancel of their key reaches them
    /// as it reaches running ones.
    waiting: FastMap<String, Vec<DeliveryId>>,
    /// Deliveries a `replace` went beside before they started here (or before they arrived),
    /// and when the word came: each is dropped unstarted.
    superseded: FastMap<DeliveryId, tokio::time::Instant>,
}

pub(super) struct Run {
    id: u64,
    delivery: DeliveryId,
    token: CancellationToken,
}

impl RunningTasks {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Runs> {
        self.by_key.locked()
    }

    /// Track a delivery from the moment the worker holds it until the returned guard drops. A
    /// delivery cancelled before it got here starts cancelled; one superseded before it got
    /// here says so ([`Tracked::superseded`]), and is not to be started.
    pub(super) fn track<'a>(
        &'a self,
        delivery: &'a Delivery,
        token: &CancellationToken,
    ) -> Tracked<'a> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let key = delivery.message.key.as_str();
        let mut runs = self.lock();
        runs.forget_waiting(delivery);
        if runs.early.remove(&delivery.id).is_some() {
            token.cancel();
        }
        let superseded = runs.superseded.remove(&delivery.id).is_some();
        runs.by_key.entry(key.to_owned()).or_default().push(Run {
            id,
            delivery: delivery.id.clone(),
            token: token.clone(),
        });
        Tracked {
            tasks: self,
            key,
            id,
            superseded,
        }
    }

    /// Remember `delivery`, read ahead, until it starts ([`track`](Self::track)) or is given
    /// back ([`forget`](Self::forget)).
    pub(super) fn wait(&self, delivery: &Delivery) {
        self.lock()
            .waiting
            .entry(delivery.message.key.clone())
            .or_default()
            .push(delivery.id.clone());
    }

    /// Forget `delivery`, read ahead and given back unstarted.
    pub(super) fn forget(&self, delivery: &Delivery) {
        let mut runs = self.lock();
        runs.forget_waiting(delivery);
        runs.superseded.remove(&delivery.id);
    }

    /// A `replace` went beside `delivery` of `key`: unless it runs here already, remember it
    /// (for a while, in case it is on its way), so that it is dropped instead of started.
    /// Returns whether it was read ahead here.
    pub(super) fn supersede(&self, key: &str, delivery: &DeliveryId) -> bool {
        let mut runs = self.lock();
        let running = runs
            .by_key
            .get(key)
            .is_some_and(|tracked| tracked.iter().any(|run| run.delivery == *delivery));
        if running {
            return false;
        }
        let now = tokio::time::Instant::now();
        runs.superseded
            .retain(|_, at| now.duration_since(*at) < CANCEL_MEMORY);
        runs.superseded.insert(delivery.clone(), now);
        runs.waiting
            .get(key)
            .is_some_and(|waiting| waiting.contains(delivery))
    }

    /// Cancel the runs of `key` delivered as `delivery` or before it (every run of the key when
    /// `None`), and those read ahead; whether one runs or waits here. The named delivery, when
    /// it is not here yet, is remembered for a while, in case it is on its way: even when an
    /// earlier run of its key was found here (a `replace` went beside it, and the newer task
    /// is delivered here next).
    pub(super) fn cancel(&self, key: &str, delivery: Option<&DeliveryId>) -> bool {
        let mut runs = self.lock();
        let mut found = false;
        let mut here = false;
        if let Some(tracked) = runs.by_key.get(key) {
            for run in tracked {
                if delivery.is_none_or(|delivery| run.delivery.not_after(delivery)) {
                    run.token.cancel();
                    found = true;
                    here |= delivery == Some(&run.delivery);
                }
            }
        }
        let now = tokio::time::Instant::now();
        runs.early
            .retain(|_, at| now.duration_since(*at) < CANCEL_MEMORY);
        // Read ahead, not started: each starts cancelled.
        let waiting: Vec<DeliveryId> = runs
            .waiting
            .get(key)
            .into_iter()
            .flatten()
            .filter(|waiting| delivery.is_none_or(|delivery| waiting.not_after(delivery)))
            .cloned()
            .collect();
        for waiting in waiting {
            here |= delivery == Some(&waiting);
            runs.early.insert(waiting, now);
            found = true;
        }
        if let (false, Some(delivery)) = (here, delivery) {
            runs.early.insert(delivery.clone(), now);
        }
        found
    }
}

impl Runs {
    fn forget_waiting(&mut self, delivery: &Delivery) {
        if let Some(waiting) = self.waiting.get_mut(&delivery.message.key) {
            waiting.retain(|id| *id != delivery.id);
            if waiting.is_empty() {
                self.waiting.remove(&delivery.message.key);
            }
        }
    }
}

pub(super) struct Tracked<'a> {
    tasks: &'a RunningTasks,
    key: &'a str,
    id: u64,
    /// A `replace` went beside this delivery before it started: it is settled unstarted.
    pub(super) superseded: bool,
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        let mut runs = self.tasks.lock();
        if let Some(tracked) = runs.by_key.get_mut(self.key) {
            tracked.retain(|run| run.id != self.id);
            if tracked.is_empty() {
                runs.by_key.remove(self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use tokio_util::sync::CancellationToken;

    use super::RunningTasks;
    use crate::backend::{Delivery, DeliveryId, Message};

    fn delivery(key: &str, id: &str) -> Delivery {
        Delivery {
            id: DeliveryId::Stream {
                part: 0,
                id: id.to_owned(),
            },
            message: Message::first_attempt("task", key, "{}", SystemTime::now()),
            redelivered: false,
        }
    }

    /// Found by the fault model: a `replace` went beside a running task, then its key was
    /// cancelled. The cancel names the newer delivery; it stops the older run here, and the
    /// newer one, on its way here still, must start cancelled.
    #[test]
    fn a_cancel_that_stops_an_earlier_run_still_reaches_the_delivery_it_names() {
        let running = RunningTasks::default();
        let (older, newer) = (delivery("k", "10-0"), delivery("k", "20-0"));
        let older_token = CancellationToken::new();
        let _older = running.track(&older, &older_token);

        assert!(running.cancel("k", Some(&newer.id)));
        assert!(older_token.is_cancelled());

        let newer_token = CancellationToken::new();
        let _newer = running.track(&newer, &newer_token);
        assert!(
            newer_token.is_cancelled(),
            "the named delivery started uncancelled"
        );
    }

    /// A cancel of one delivery leaves a later delivery of the same key alone.
    #[test]
    fn a_cancel_leaves_later_deliveries_of_its_key_alone() {
        let running = RunningTasks::default();
        let (older, newer) = (delivery("k", "10-0"), delivery("k", "20-0"));
        assert!(!running.cancel("k", Some(&older.id)));
        let token = CancellationToken::new();
        let _newer = running.track(&newer, &token);
        assert!(!token.is_cancelled());
        let token = CancellationToken::new();
        let _older = running.track(&older, &token);
        assert!(token.is_cancelled());
    }

    /// A delivery read ahead starts cancelled when its key's cancel comes while it waits.
    #[test]
    fn a_delivery_read_ahead_starts_cancelled() {
        let running = RunningTasks::default();
        let waiting = delivery("k", "10-0");
        running.wait(&waiting);
        assert!(running.cancel("k", Some(&waiting.id)));
        let token = CancellationToken::new();
        let _run = running.track(&waiting, &token);
        assert!(token.is_cancelled());
    }
}
