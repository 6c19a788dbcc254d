//! `retries = "forever"`: a task is retried, after its capped backoff, for as long as it fails,
//! and snapshots say it may take unlimited attempts.

use std::time::Duration;

use docket::Docket;
use docket::policy::Attempts;
use tests::finish;
use tests::probe::Probe;

use super::dead_letters;
use super::tasks::{FailSevenTimes, NoteRun};

pub(crate) async fn a_task_retried_forever_retries_past_any_count_until_it_succeeds(
    docket: Docket,
) {
    let probe = Probe::new();
    FailSevenTimes::schedule(probe.id())
        .on(&docket)
        .await
        .unwrap();

    finish(&docket).await;

    assert_eq!(probe.starts(), 8, "seven failures, then the success");
    assert!(dead_letters(&docket).await.is_empty());
    let gaps = probe.gaps();
    assert!(
        gaps[3..]
            .iter()
            .all(|gap| *gap >= Duration::from_millis(20)),
        "the backoff grew to its cap: {gaps:?}"
    );
}

pub(crate) async fn a_snapshot_shows_a_task_retried_forever_as_unlimited(docket: Docket) {
    let probe = Probe::new();
    let hour = Duration::from_secs(3600);
    FailSevenTimes::schedule(probe.id())
        .key("forever")
        .after(hour)
        .on(&docket)
        .await
        .unwrap();
    NoteRun::schedule(probe.id(), "once".into())
        .key("once")
        .after(hour)
        .on(&docket)
        .await
        .unwrap();

    let snapshot = docket.snapshot().await.unwrap();
    let attempts = |key: &str| {
        let task = snapshot.scheduled.iter().find(|task| task.key == key);
        task.unwrap_or_else(|| panic!("{key} in {snapshot:#?}"))
            .attempts
    };
    assert_eq!(attempts("forever"), Some(Attempts::Unlimited));
    assert_eq!(attempts("once"), Some(Attempts::AtMost(1)));
    assert_eq!(Attempts::Unlimited.to_string(), "forever");
    docket.clear().await.unwrap();
}
