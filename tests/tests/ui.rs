//! Compile-time behaviour of `#[docket::task]`: what it accepts, and the errors it gives.
//!
//! Regenerate the expected errors with `TRYBUILD=overwrite cargo test -p tests --test ui`, then
//! read the diff: each error must point at the user's tokens and say what to do.

/// rustc's messages change between releases and channels; the `.stderr` files follow the stable
/// toolchain CI runs, so on nightly, beta and dev compilers the test is reported as ignored
/// instead of failing. (`rustversion::attr` goes above `#[test]`, which reads `#[ignore]` as it
/// expands.)
#[rustversion::attr(not(stable), ignore = "the expected errors are stable rustc's wording")]
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
