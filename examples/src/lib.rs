//! Runnable examples of docket; see `examples/`.
//!
//! [`tracks`] is the axum example's service, shared by its binary (`examples/tracks.rs`) and its
//! test (`tests/tracks.rs`).

pub mod tracks;
