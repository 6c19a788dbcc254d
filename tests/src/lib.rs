//! Integration, crash, chaos and compile-fail tests of docket, and what they share.
//!
//! The `tests/` folder holds the test binaries; this library holds what they share: the private
//! `redis-server` harness (also used by the chaos binary) and a background worker.

pub mod background;
pub mod redis_server;
