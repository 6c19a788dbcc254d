//! A user's crate, built by `scripts/package-check.sh` against the packaged crates (docket-tasks
//! by its crates.io coordinates, patched to the unpacked `.crate` files): a task through the
//! macro, run once on a `memory://` docket, and the command line. Edition 2021 on purpose: the
//! code the macro generates compiles in the user's edition, and many users are still on 2021.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};

static ATTEMPTS: AtomicU32 = AtomicU32::new(0);

/// Greet someone; the first attempt fails, so the retry policy runs too.
#[docket::task(retries = 1, backoff = "fixed 10ms", timeout = "5s")]
async fn greet(name: String, ctx: docket::Context) -> Result<(), String> {
    ATTEMPTS.fetch_add(1, Ordering::SeqCst);
    match ctx.attempt() {
        1 => Err(format!("not yet, {name}")),
        _ => Ok(()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let docket = docket::Docket::connect("memory://").await?;
    let scheduled = Greet::schedule("registry".to_string())
        .key("greet-registry")
        .on(&docket)
        .await?;
    assert_eq!(scheduled.placement(), docket::Placement::Queue);
    docket::Worker::new(&docket).run_until_finished().await?;
    assert_eq!(ATTEMPTS.load(Ordering::SeqCst), 2, "one failure, one retry");
    assert!(docket.snapshot().await?.is_empty());
    assert!(docket.dead_letters().await?.is_empty());

    // The command line (the `cli` feature, with docket-tasks-syntax behind its flags).
    let mut out = Vec::new();
    let code = docket::cli::run_from(["docket", "version"], &mut out).await;
    let printed = String::from_utf8(out)?;
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(printed.starts_with("docket "), "{printed}");
    println!(
        "package check: a task ran twice (a failure, a retry), the cli said `{}`",
        printed.trim()
    );
    Ok(())
}
