//! Compile-time behaviour of `#[docket::task]`: what it accepts, and the errors it gives.
//!
//! Regenerate the expected errors with `TRYBUILD=overwrite cargo test -p tests --test ui`, then
//! read the diff: each error must point at the user's tokens and say what to do.

use std::process::Command;

#[test]
fn ui() {
    if !stable_rustc() {
        eprintln!("skipping the UI tests: their expected errors are stable rustc's wording");
        return;
    }
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}

/// rustc's messages change between releases and channels; the `.stderr` files follow the stable
/// toolchain CI runs, so nightly and beta compilers skip the comparison instead of failing it.
fn stable_rustc() -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(output) = Command::new(rustc).arg("--version").output() else {
        return true; // let trybuild report the missing compiler
    };
    let version = String::from_utf8_lossy(&output.stdout);
    !["nightly", "beta", "-dev"]
        .iter()
        .any(|channel| version.contains(channel))
}
