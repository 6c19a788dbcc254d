//! Integration and compile-fail tests of docket; see `tests/`.
