//! Integration, crash, chaos and compile-fail tests of docket, and what they share.
//!
//! The `tests/` folder holds the test binaries; this library holds the private `redis-server`
//! harness they and the chaos binary use.

pub mod redis_server;
