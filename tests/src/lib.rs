//! Integration, crash, chaos and compile-fail tests of docket, and what they share.
//!
//! The `tests/` folder holds the test binaries; this library holds what more than one of them
//! uses:
//!
//! - [`redis_server`]: a private `redis-server` per test, plain or TLS (with [`Certs`] from a
//!   private CA), that a test can kill, shut down, restart and send raw commands; a docket name
//!   no other test uses ([`unique_name`]) and a free port ([`free_port`]). The chaos and soak
//!   binaries use it too.
//! - [`background`]: a worker running on the test's runtime until the test stops it.
//! - [`browser`]: a private chromedriver and headless Chromium, for the dashboard's tests.
//! - [`managed`]: a managed-Redis profile, [`Upstash`]: a loopback proxy in front of a private
//!   `redis-server` that refuses the commands Upstash lacks, enforces its limits ([`Limits`]),
//!   drops idle connections and counts billed commands, script-internal calls included.
//! - [`probe`]: where tasks report their runs and what their context said ([`Probe`]), so a test
//!   can assert on effects; it can also hold a task until the test releases it.
//! - Waiting with a deadline ([`PATIENCE`]): [`eventually`] a condition holds, a future ends
//!   [`in_time`], a worker [`finish`]es a docket's work. A hang fails the test, naming what it
//!   waited for.
//! - [`python`]: a Python venv with a pinned pydocket under the target directory, made once
//!   and reused, for the pydocket interop tests ([`Venv`]).
//! - [`same_time`]: two times equal at the millisecond precision a backend stores.
//!
//! Task definitions (`#[docket::task]` functions) are not here, and should not be: a task defined
//! here would be registered in every test binary that links this library, and a registered task
//! changes what every worker of its binary does. A recurring task is started by every worker; one
//! that takes a `State<T>` stops any worker whose docket does not provide it. So each test binary
//! defines its own tasks, and the behaviour suite its own in `tests/behaviour/tasks.rs`. The
//! helpers here take no task type: [`Probe`] is found by the id a task is given.
//!
//! - [`capture`]: a tracing layer that keeps every span and event a test's thread sees, so a test
//!   can assert on what docket traced.
//!
//! [`Certs`]: redis_server::Certs
//! [`unique_name`]: redis_server::unique_name
//! [`free_port`]: redis_server::free_port
//! [`Probe`]: probe::Probe
//! [`Upstash`]: managed::Upstash
//! [`Limits`]: managed::Limits
//! [`Venv`]: python::Venv

pub mod background;
pub mod browser;
pub mod capture;
pub mod managed;
pub mod probe;
pub mod python;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod redis_server;
mod wait;

pub use wait::{PATIENCE, eventually, finish, in_time};

use std::time::{Duration, SystemTime};

/// `a` and `b` within a millisecond of each other: a backend may store times at millisecond
/// precision, so a time read back can differ from the one written by less than that.
pub fn same_time(a: SystemTime, b: SystemTime) -> bool {
    let apart = a.duration_since(b).or_else(|_| b.duration_since(a));
    apart.is_ok_and(|apart| apart <= Duration::from_millis(1))
}
