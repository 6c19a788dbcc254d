//! Time travel for tests (the `testing` feature): a memory docket on a virtual clock, and a
//! worker serving it, so that a test of "retries three times, then dead-letters" or "runs every
//! 5 minutes" takes milliseconds.
//!
//! [`TimeMachine::start`] pauses tokio's clock (the test must run on a current-thread runtime,
//! as `#[tokio::test]` does by default) and opens a memory docket whose wall clock moves with
//! it. [`TimeMachine::advance`] moves the clock forward and runs, in order, everything that falls
//! due on the way: tasks scheduled for later, retries after their backoff, `every` and `cron`
//! chains, tasks a rate limit put back to its next window, and the timeouts and sleeps of the
//! tasks themselves.
//!
//! ```
//! use std::time::Duration;
//!
//! #[docket::task(retries = 3, backoff = "exponential 1m..1h")]
//! async fn charge_card(order_id: u64) -> Result<(), String> {
//!     Err(format!("order {order_id}: the card was declined"))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> docket::Result<()> {
//! let machine = docket::testing::TimeMachine::start().await?;
//! let docket = machine.docket();
//! ChargeCard::schedule(7).key("order-7").on(docket).await?;
//!
//! machine.advance(Duration::ZERO).await; // the first attempt fails...
//! machine.advance(Duration::from_secs(59)).await; // ...and its retry waits a minute
//! assert!(docket.dead_letters().await?.is_empty());
//!
//! // Retries after 1, 2 and 4 minutes: a quarter of an hour covers them all, in milliseconds.
//! machine.advance(Duration::from_secs(15 * 60)).await;
//! let dead = docket.dead_letters().await?;
//! assert_eq!((dead[0].key.as_str(), dead[0].attempt), ("order-7", 4));
//! assert_eq!(dead[0].history.len(), 4);
//! machine.stop().await
//! # }
//! ```

use std::fmt;
use std::time::{Duration, SystemTime};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::backend::AnyBackend;
use crate::backend::memory::MemoryBackend;
use crate::error::{Error, Result};
use crate::handle::Docket;
use crate::time::Clock;
use crate::worker::Worker;

/// How many times [`TimeMachine::advance`] lets the worker move before it gives up waiting for
/// the docket to be quiet (a task that waits on something other than time never is).
const MOST_YIELDS: usize = 10_000;

/// A memory docket on a virtual clock, with a worker serving it. See the [module](self) docs.
pub struct TimeMachine {
    docket: Docket,
    clock: Clock,
    worker_id: String,
    stop: Option<oneshot::Sender<()>>,
    worker: Option<JoinHandle<Result<()>>>,
}

impl fmt::Debug for TimeMachine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeMachine")
            .field("docket", &self.docket)
            .field("now", &self.now())
            .finish_non_exhaustive()
    }
}

impl TimeMachine {
    /// Pause tokio's clock, open a memory docket on a virtual clock, and start a
    /// [`Worker`] on it.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] outside a current-thread tokio runtime (tokio pauses time only there),
    /// and the errors of [`Worker::run`] when the worker cannot start.
    pub async fn start() -> Result<TimeMachine> {
        TimeMachine::start_with(Worker::new).await
    }

    /// [`TimeMachine::start`], with the worker made by `configure` from the machine's docket:
    /// to [provide](Docket::provide) state first, add hooks, or set its concurrency.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> docket::Result<()> {
    /// let machine = docket::testing::TimeMachine::start_with(|docket| {
    ///     docket.provide(String::from("https://cdn.example"));
    ///     docket::Worker::new(docket).on_dead_letter(|event| async move {
    ///         eprintln!("dead: {}", event.key());
    ///     })
    /// })
    /// .await?;
    /// # machine.stop().await }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`TimeMachine::start`].
    pub async fn start_with(configure: impl FnOnce(&Docket) -> Worker) -> Result<TimeMachine> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        if runtime.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread {
            return Err(Error::Config(
                "`docket::testing` needs a current-thread tokio runtime (`#[tokio::test]`, not \
                 `flavor = \"multi_thread\"`): only there can tokio pause its clock"
                    .into(),
            ));
        }
        if !clock_is_paused() {
            tokio::time::pause();
        }
        let clock = Clock::virtual_from_now();
        let docket = Docket::on_memory(MemoryBackend::with_clock(clock));
        let worker = configure(&docket);
        let worker_id = worker.id().to_owned();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(worker.run_until(async {
            let _ = stopped.await;
        }));
        let mut machine = TimeMachine {
            docket,
            clock,
            worker_id,
            stop: Some(stop),
            worker: Some(handle),
        };
        machine.settle().await;
        if machine.worker.as_ref().is_some_and(JoinHandle::is_finished) {
            // It could not start: say why.
            machine.stop = None;
            machine.join().await?;
            return Err(Error::Config(
                "the time machine's worker stopped as it started".into(),
            ));
        }
        Ok(machine)
    }

    /// The docket: schedule on it with `.on(machine.docket())`, inspect it as any docket.
    pub fn docket(&self) -> &Docket {
        &self.docket
    }

    /// The virtual wall-clock time now.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Move the clock `by` forward, running everything that falls due on the way, in order, and
    /// return once the docket is quiet: nothing due left waiting, nothing running.
    /// `advance(Duration::ZERO)` runs what is due now.
    ///
    /// # Panics
    ///
    /// When polled outside the runtime [`TimeMachine::start`] paused.
    pub async fn advance(&self, by: Duration) {
        let until = tokio::time::Instant::now() + by;
        self.settle().await;
        // While the runtime has nothing else to do, tokio moves its paused clock to the next
        // timer (the worker's wait for the next due task, a task's own sleep), fires it and lets
        // what it woke run, and so on up to this sleep's end.
        tokio::time::sleep_until(until).await;
        self.settle().await;
    }

    /// Let the worker run until the docket is quiet: the worker waits for a task, and none is
    /// due or running.
    async fn settle(&self) {
        for _ in 0..MOST_YIELDS {
            if self.quiet() {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    fn quiet(&self) -> bool {
        let finished = self.worker.as_ref().is_none_or(JoinHandle::is_finished);
        let AnyBackend::Memory(memory) = self.docket.backend() else {
            return true;
        };
        finished || (memory.parked(&self.worker_id) && memory.depth().0 == 0)
    }

    /// Stop the worker (letting running tasks finish) and wait for it.
    ///
    /// # Errors
    ///
    /// Those of [`Worker::run_until`], should the worker have failed to start.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join().await
    }

    async fn join(&mut self) -> Result<()> {
        match self.worker.take() {
            Some(worker) => worker
                .await
                .map_err(|error| Error::Config(format!("the time machine's worker: {error}")))?,
            None => Ok(()),
        }
    }
}

impl Drop for TimeMachine {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.abort();
        }
    }
}

/// Whether tokio's clock is paused on this runtime: a paused clock does not move while the
/// thread sleeps.
fn clock_is_paused() -> bool {
    let before = tokio::time::Instant::now();
    std::thread::sleep(Duration::from_micros(100));
    tokio::time::Instant::now() == before
}
