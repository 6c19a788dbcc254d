//! Fault injection for tests (the `failpoints` feature): break a worker between any two steps of
//! claim → admit → run → settle, and fail any Redis call before it is sent or after it ran.
//!
//! Without the feature every failpoint compiles to nothing. With it, each site asks one
//! process-wide rule, set by the test, what to do there. A rule sees the site's name and runs on
//! the thread that reached it, so a test that runs each worker on a thread of its own (a
//! current-thread runtime) can aim a fault at one worker by the thread's name.
//!
//! ```
//! # #[cfg(feature = "failpoints")] {
//! use docket::failpoint::{self, Fault};
//!
//! // The reply of every Redis call made on the thread `worker-2` is lost, its blocking reads'
//! // included.
//! failpoint::set(|site| {
//!     let on_worker_2 = std::thread::current().name() == Some("worker-2");
//!     let reply = site == "redis.reply" || site == "redis.read.reply";
//!     (on_worker_2 && reply).then_some(Fault::Fail)
//! });
//! failpoint::clear();
//! # }
//! ```
//!
//! Sites (a rule meant for every Redis call matches both `redis.…` and `redis.read.…`; a
//! worker's blocking read has sites of its own so that a rule can aim at it, or spare it):
//!
//! | site | where | `Fail` means |
//! |---|---|---|
//! | `redis.send` | before any command or script is sent to Redis | nothing was sent; the call is unreachable |
//! | `redis.reply` | after a command or script ran | it ran, but its reply was lost |
//! | `redis.read.send` | before a worker's blocking read (`XREADGROUP`) is sent | as `redis.send` |
//! | `redis.read.reply` | after that read returned | as `redis.reply`: its entries were handed over |
//! | `claim.recover` | a worker listed the deliveries a failed read may have handed it, before it claims them back | the claim fails, as when Redis is unreachable: its next one looks again |
//! | `claim.handover` | the worker got deliveries from its claim, before it starts them | the worker panics there |
//! | `settle.start` | a delivery's settle task starts (before holds, limits, state) | as above |
//! | `settle.run` | just before the task's function runs | as above |
//! | `settle.finish` | the function returned; before the outcome is settled | as above |
//! | `renew` | before a worker renews its deliveries | the renewal is skipped |

use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What a failpoint does when its rule picks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Fail the step: a Redis call is unreachable; a worker step panics (a crash of that task).
    Fail,
    /// Panic at the site.
    Panic,
    /// Block the whole thread for this long: on a current-thread runtime, every future of the
    /// worker freezes, as under a GC pause or a stopped VM.
    Freeze(Duration),
    /// Let only this step wait this long (the rest of the worker goes on).
    Delay(Duration),
}

type Rule = Arc<dyn Fn(&str) -> Option<Fault> + Send + Sync>;

static RULE: RwLock<Option<Rule>> = RwLock::new(None);

/// Answer every failpoint with `rule` from now on: `None` lets the step go on.
pub fn set(rule: impl Fn(&str) -> Option<Fault> + Send + Sync + 'static) {
    *RULE
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(rule));
}

/// Let every failpoint pass again.
pub fn clear() {
    *RULE
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
}

/// What the rule says about `site`, acting on freezes and delays here.
pub(crate) async fn reached(site: &str) -> Option<Fault> {
    let rule = RULE
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()?;
    match rule(site)? {
        Fault::Freeze(pause) => {
            std::thread::sleep(pause);
            None
        }
        Fault::Delay(pause) => {
            tokio::time::sleep(pause).await;
            None
        }
        Fault::Panic => panic!("failpoint `{site}`"),
        Fault::Fail => Some(Fault::Fail),
    }
}

/// A Redis call at `site` failed by the rule.
pub(crate) async fn redis(site: &str) -> crate::Result<()> {
    match reached(site).await {
        Some(_) => Err(crate::Error::Unavailable {
            source: format!("failpoint `{site}`").into(),
        }),
        None => Ok(()),
    }
}

/// A worker step at `site`: a failure is a crash of this task.
pub(crate) async fn step(site: &str) {
    if reached(site).await.is_some() {
        panic!("failpoint `{site}`");
    }
}
