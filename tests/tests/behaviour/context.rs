//! The task's context: what it tells a task about its own attempt, and the docket handle it gives.

use std::time::Duration;

use docket::Docket;
use tests::probe::Probe;
use tests::{finish, same_time};

use super::tasks::LookAtContext;

pub(crate) async fn the_context_tells_the_key_the_attempt_the_due_time_and_the_docket(
    docket: Docket,
) {
    let probe = Probe::new();
    let scheduled = LookAtContext::schedule(probe.id())
        .key("context-1")
        .after(Duration::from_millis(100))
        .on(&docket)
        .await
        .unwrap();

    finish(&docket).await;

    let seen = probe.seen();
    assert_eq!(seen.len(), 2, "one attempt and one retry: {seen:#?}");
    assert!(seen.iter().all(|s| s.key == "context-1"), "{seen:#?}");
    assert!(seen.iter().all(|s| s.docket == docket.name()), "{seen:#?}");
    let attempts: Vec<u32> = seen.iter().map(|s| s.attempt).collect();
    assert_eq!(attempts, [1, 2]);
    assert!(
        same_time(seen[0].due, scheduled.due()),
        "the first attempt is due when scheduled: {seen:#?} vs {scheduled:?}"
    );
    // The retry is due its 50ms backoff after the first attempt failed (less a millisecond of
    // storage precision), and starts once due.
    assert!(
        seen[1].due + Duration::from_millis(1) >= seen[0].at + Duration::from_millis(50),
        "{seen:#?}"
    );
    assert!(seen.iter().all(|s| s.due <= s.at), "{seen:#?}");
    assert!(
        probe.labels().iter().any(|label| label == "follow-up"),
        "the docket handle schedules onto the task's own docket: {:?}",
        probe.labels()
    );
}
