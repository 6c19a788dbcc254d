//! Durable background tasks for Rust services, backed by Redis.
//!
//! Write an `async fn`, put `#[docket::task]` on it, and schedule it from anywhere in your
//! service. A [`Worker`] — in the same process or another — runs it, retries it when it fails,
//! and (with a durable backend) runs it again after a crash.
//!
//! The package is `docket-tasks` on crates.io (`cargo add docket-tasks`; the `docket` binary:
//! `cargo install docket-tasks --features cli`), and its library is `docket`: keep that name in
//! your `Cargo.toml` (as `cargo add` does), since the code `#[docket::task]` generates refers to
//! `::docket`.
//!
//! ```
//! use std::time::Duration;
//!
//! /// Scan an uploaded track for copyright matches.
//! #[docket::task(retries = 3, backoff = "exponential 1s..60s", timeout = "30s")]
//! async fn scan_copyright(track_id: i64, audio_url: String) -> Result<(), std::io::Error> {
//!     println!("scanning track {track_id} from {audio_url}");
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> docket::Result<()> {
//! let docket = docket::Docket::connect("memory://").await?;
//! let url = "https://cdn.example/7.flac".to_string();
//!
//! // `scan_copyright` became a struct of its arguments, with a typed `schedule`:
//! ScanCopyright::schedule(7, url.clone()).on(&docket).await?;
//! ScanCopyright::schedule(8, url.clone())
//!     .after(Duration::from_millis(10))
//!     .key("scan-8")
//!     .on(&docket)
//!     .await?;
//!
//! docket::Worker::new(&docket).run_until_finished().await?;
//! assert!(docket.snapshot().await?.is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! Without `.on(&docket)`, `schedule` uses the default docket ([`Docket::global`]), which
//! follows the environment:
//!
//! | `DOCKET_URL` | mode |
//! |---|---|
//! | unset | in-process: tasks run on the caller's tokio runtime, served by a worker the docket starts itself; nothing is durable |
//! | `memory://` | the whole docket in this process's memory, run by a [`Worker`]; for tests |
//! | `redis://`, `rediss://`, `unix://`, `redis+cluster://`, `redis+sentinel://` | durable: Redis (one server, a Redis Cluster, or a master watched by Sentinels) keeps every task until a worker acknowledges it |
//!
//! `DOCKET_NAME` names the docket (default `docket`) and `DOCKET_WORKER_CONCURRENCY` sets how many
//! tasks a worker runs at once (default 10).
//!
//! # Guarantees
//!
//! On Redis, through worker crashes and freezes, dropped connections, lost replies and Redis
//! restarts with persistence:
//!
//! - An acknowledged schedule is never lost: it ends completed, cancelled, or as a
//!   [`DeadLetter`](inspect::DeadLetter) with its reason. Nothing is dropped silently.
//! - A task is delivered at least once: code it to tolerate running twice. It runs twice only
//!   while the outcome of its first run is unknown (its worker went silent before settling it);
//!   a completed task is never run again or dead-lettered by a stale copy.
//! - When [`Docket::cancel`] returns `true`, the task does not start after it returns, wherever it
//!   was; a running one is stopped at its next `.await`.
//! - A key makes scheduling idempotent: while a task with a key waits or runs, another with the
//!   same key is a [`Disposition::Duplicate`] unless [`Schedule::replace`] is set. Once the task
//!   ended (completed, cancelled, dead), the key is free again.
//! - `retries = N` allows N retries after the first attempt, spaced by the task's
//!   [`Backoff`](policy::Backoff); after the last one the task becomes a
//!   [`DeadLetter`](inspect::DeadLetter), as does a task whose arguments no longer decode or
//!   whose name no worker knows.
//! - Bad input (a key, a due time, a payload, a setting) is a typed [`Error`] at the call, never a
//!   panic and never a half-written batch.
//!
//! # Policies and control
//!
//! `#[docket::task(...)]` also declares recurring runs (`every`, `cron`), fleet-wide
//! `concurrency` and `rate_limit`s, `debounce`, `cooldown`, and kept `result`s (see
//! [`Policy`](policy::Policy)). A task can
//! take a [`Context`] (key, attempt, progress, timeout extension) and [`State`] values provided
//! on the docket. Operators [`Docket::strike`] and [`Docket::restore`] tasks, and
//! [`Docket::cancel`] waiting or running ones. [`Docket::result`] and [`Docket::watch`] follow a
//! task that keeps results:
//!
//! ```
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Report { matches: u32 }
//!
//! #[docket::task(result, concurrency(track_id) = 1)]
//! async fn fingerprint(track_id: i64, ctx: docket::Context) -> Result<Report, String> {
//!     ctx.progress(1, 1, "hashed").await;
//!     Ok(Report { matches: 0 })
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> docket::Result<()> {
//! let docket = docket::Docket::in_process();
//! let scheduled = Fingerprint::schedule(7).on(&docket).await?;
//! assert_eq!(scheduled.result::<Report>().await?, Report { matches: 0 });
//! # Ok(())
//! # }
//! ```
//!
//! # Where things are
//!
//! The everyday names are at the root: [`Docket`] and [`Connect`] to open one, [`Schedule`] and
//! [`Scheduled`] to add tasks, [`Worker`] and [`Context`] to run them, [`Task`], [`TaskError`],
//! [`Retry`] and [`Fail`] for what a task returns, [`State`] for what it is given, and
//! [`Error`]. The rest is grouped by use: [`policy`] (what `#[docket::task(...)]` declares),
//! [`results`] (the records of tasks that keep results), [`strike`] (holding tasks by rule),
//! [`inspect`] (snapshots, workers, dead letters), [`worker`] (health), [`metrics`], with the
//! `cli` feature `cli`, with the `dashboard` feature `dashboard` (a web page to see and steer the
//! queue), and with the `pydocket` feature `pydocket` (the arguments and results of Python's
//! pydocket). `ARCHITECTURE.md` in the repository shows the modules and a task's path through
//! them.
//!
//! # Glossary
//!
//! Each word below means one thing, in these docs and in the code.
//!
//! - **docket**: a named set of tasks in one backend (memory or a Redis database); the name
//!   prefixes every key it stores.
//! - **task**: an `async fn` with `#[docket::task]`, and one scheduled call of it: its name, its
//!   arguments as JSON, its **key** and its **due** time. A key names at most one waiting and
//!   one running task at a time; scheduling is idempotent by key.
//! - **queued**: due and waiting for a worker. **scheduled**: waiting for a later due time.
//!   **running**: handed to a worker. **held**: set aside by a **strike** until it is restored.
//!   **gated**: set aside, waiting for a concurrency **slot**. Held and gated tasks are **set
//!   aside**: out of the queue's order, still the key's task.
//! - **slot**: one unit of a task's `concurrency` limit; a **gate** is the concurrency and
//!   rate limit an attempt must pass before it starts.
//! - **delivery**: one handing of a stored task to one worker (on Redis, a stream entry in
//!   that worker's pending list). A task may be delivered more than once: after its worker
//!   vanished (**redelivery**), or to run a retry.
//! - **claim**: a worker taking deliveries. **process**: what a worker does with one delivery
//!   (strike check, gate, attempt, settlement). **attempt**: one execution of the task's
//!   function; `retries` counts the attempts after the first.
//! - **settle**: end a delivery: **complete** it (acknowledge; the task succeeded), **retry**
//!   it (store the next attempt, scheduled after its backoff), or **bury** it (keep it as a
//!   **dead letter**, which [`Docket::replay`] queues again).
//! - **record**: what is kept of a task that keeps results ([`results::TaskRecord`]): its
//!   [`results::Status`] in its lifecycle, progress, result and last error. The step that
//!   changes a task's status writes its record.
//! - **state**: only the values a docket provides to its tasks ([`State<T>`](State),
//!   [`Docket::provide`]); never a task's lifecycle.
//! - **signal**: a message to every worker: a cancel of a running task, or the strikes in
//!   force.
//! - **in-process** and **fallback**: running a task in this process, because no queue is
//!   configured, or because the queue could not be reached when it was scheduled.

// The worker's processing future borrows its delivery across awaits; proving that future
// `Send` walks deeper than the default limit of 128 (through the connection types it awaits).
#![recursion_limit = "256"]
#![warn(missing_docs)]
// On docs.rs (nightly, `--cfg docsrs`), each item of a feature says which one it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

// Lets `::docket::` paths, as `#[docket::task]` writes them, resolve inside this crate too.
#[allow(unused_extern_crates)]
extern crate self as docket;

/// A fault-injection site (see the `failpoint` module of the `failpoints` feature); nothing at
/// all without that feature. `redis "site"` fails the enclosing call with `Error::Unavailable`;
/// `step "site"` crashes the enclosing worker step.
macro_rules! failpoint {
    (redis $site:literal) => {
        #[cfg(feature = "failpoints")]
        crate::failpoint::redis($site).await?;
    };
    (step $site:literal) => {
        #[cfg(feature = "failpoints")]
        crate::failpoint::step($site).await;
    };
}

mod backend;
#[cfg(feature = "cli")]
pub mod cli;
mod config;
mod connect;
#[cfg(feature = "dashboard")]
#[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
pub mod dashboard;
mod error;
#[cfg(feature = "failpoints")]
pub mod failpoint;
mod failure;
mod handle;
pub mod inspect;
mod key;
pub mod metrics;
pub mod policy;
#[cfg(feature = "pydocket")]
pub mod pydocket;
mod registry;
pub mod results;
mod scatter;
mod schedule;
mod state;
mod stats;
pub mod strike;
mod sync;
mod task;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod time;
mod trace;
pub mod worker;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// Entry points for the fuzz targets in `fuzz/`: the decoders of everything read from Redis.
/// Built only under `cfg(fuzzing)`; not public API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::backend::redis::fuzz::*;
    #[cfg(feature = "pydocket")]
    pub use crate::pydocket::pickle::fuzz::*;
}

pub use crate::config::{DEFAULT_CONCURRENCY, DEFAULT_NAME};
pub use crate::connect::{Connect, Protocol};
pub use crate::error::{Error, Result};
pub use crate::failure::{Fail, Retry, TaskError, TaskErrorKind};
pub use crate::handle::Docket;
pub use crate::schedule::{Disposition, Placement, Schedule, Scheduled};
pub use crate::state::State;
pub use crate::task::{Task, TaskOutput};
pub use crate::worker::Context;
pub use crate::worker::{Worker, shutdown_signal};

/// Turn an `async fn` into a docket task.
///
/// ```
/// /// Send the welcome mail.
/// #[docket::task(name = "welcome", retries = 5, backoff = "fixed 5s", timeout = "1m")]
/// pub async fn send_welcome(user_id: u64) -> Result<(), String> {
///     Ok(())
/// }
/// ```
///
/// generates, beside the untouched function:
/// - `pub struct SendWelcome { pub user_id: u64 }`, serde-encodable, `Debug` and `Clone`;
/// - `SendWelcome::schedule(user_id)` and `schedule_send_welcome(user_id)`, both returning a
///   [`Schedule`];
/// - `impl Task for SendWelcome`, registered so every [`Worker`] in the binary can run it.
///
/// Keys:
/// - `name` (default: the function's name);
/// - `retries = N` (retries after the first attempt) or `retries = "forever"` (with a
///   backoff), `backoff` (`"fixed 5s"` or
///   `"exponential 1s..60s"`), `jitter = "20%"`, `timeout = "30s"` (per attempt);
/// - `every = "30s"`, or `cron = "*/5 * * * *"` (five fields, or six with seconds first) with
///   `tz = "Europe/Paris"` (default `"UTC"`): recurring, once per period across the fleet; the
///   function then takes no arguments besides injected ones;
/// - `concurrency = N` or `concurrency(arg) = N`; `rate_limit = "10/1m"` or
///   `rate_limit(arg) = "10/1m"`; `debounce = "5s"` or `debounce(arg) = "5s"`;
///   `cooldown = "30s"` or `cooldown(arg) = "30s"` (1 ms to 30 days; not with `debounce`);
/// - `result` (keep results for an hour) or `result = "1d"`.
///
/// Durations take `ms`, `s`, `m`, `h` and `d`. See [`Policy`](policy::Policy) for what each does.
///
/// A parameter of type [`Context`] or [`State<T>`](State) is injected by the worker instead of
/// being an argument. Arguments must be owned and `Serialize + DeserializeOwned + Debug + Clone +
/// Send + 'static`, as they become the fields of the argument struct, which travels as JSON; the
/// function must be `async`, not generic, and return `()` or `Result<T, E>` with `E: Display`
/// (and `T: Serialize` with `result`).
///
/// A task that another service's workers run (a pydocket worker, or another binary) can be
/// declared without a body, to schedule it typed: the macro generates the argument struct and
/// `schedule` as usual, and registers nothing, so no worker of this binary ever takes it (one
/// that finds it in the queue keeps it as a dead letter, "unknown task").
///
/// ```
/// /// Transcode a track; the media service's workers run it.
/// #[docket::task(retries = 3)]
/// pub async fn transcode(track_id: i64, format: String);
///
/// # async fn example(docket: docket::Docket) -> docket::Result<()> {
/// Transcode::schedule(7, "opus".into()).on(&docket).await?;
/// # Ok(())
/// # }
/// ```
pub use docket_macros::task;
