//! The README's first command: `cargo run -p examples --example quickstart`.
//!
//! Declares three tasks, schedules some now and some later, lets one fail and be retried, runs a
//! worker until everything is done, and prints what happened. It uses the in-memory backend, so
//! it needs no Redis; set `DOCKET_URL` to run the same program against another backend.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use docket::{Docket, Worker};

/// Send the welcome mail to a new user.
#[docket::task]
async fn send_welcome(user_id: u64, email: String) {
    println!("  sent the welcome mail to user {user_id} <{email}>");
}

/// Make a thumbnail of an uploaded image.
#[docket::task(timeout = "5s")]
async fn make_thumbnail(upload_id: u64, width: u32) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    println!("  made a {width}px thumbnail of upload {upload_id}");
}

static SYNC_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

/// Push an account to a flaky partner API: it fails twice before it succeeds.
#[docket::task(retries = 3, backoff = "exponential 100ms..1s")]
async fn sync_partner(account_id: u64) -> Result<(), String> {
    let attempt = SYNC_ATTEMPTS.fetch_add(1, Ordering::SeqCst) + 1;
    if attempt < 3 {
        println!("  partner sync of account {account_id}: attempt {attempt} failed, will retry");
        return Err(format!("partner API returned 503 on attempt {attempt}"));
    }
    println!("  partner sync of account {account_id}: attempt {attempt} succeeded");
    Ok(())
}

#[tokio::main]
async fn main() -> docket::Result<()> {
    let url = std::env::var("DOCKET_URL").unwrap_or_else(|_| "memory://".to_owned());
    let docket = Docket::connect(url).name("quickstart").await?;
    let started = Instant::now();

    // Now, later, and with a key that makes the second schedule a no-op.
    SendWelcome::schedule(1, "ada@example.com".into())
        .on(&docket)
        .await?;
    schedule_make_thumbnail(42, 320)
        .after(Duration::from_millis(300))
        .on(&docket)
        .await?;
    let first = SyncPartner::schedule(7).key("sync-7").on(&docket).await?;
    let again = SyncPartner::schedule(7).key("sync-7").on(&docket).await?;
    println!(
        "scheduled: sync-7 was {:?}, then {:?}",
        first.disposition(),
        again.disposition()
    );

    let snapshot = docket.snapshot().await?;
    println!(
        "before the worker: {} queued, {} scheduled for later",
        snapshot.queued.len(),
        snapshot.scheduled.len()
    );

    println!("running a worker until every task is done:");
    Worker::new(&docket)
        .concurrency(4)
        .run_until_finished()
        .await?;

    let snapshot = docket.snapshot().await?;
    let dead = docket.dead_letters().await?;
    println!(
        "done in {:.1?}: {} left, {} dead letters, partner sync took {} attempts",
        started.elapsed(),
        snapshot.len(),
        dead.len(),
        SYNC_ATTEMPTS.load(Ordering::SeqCst)
    );
    assert!(snapshot.is_empty() && dead.is_empty());
    Ok(())
}
