//! Runnable examples of docket; see `examples/`.
