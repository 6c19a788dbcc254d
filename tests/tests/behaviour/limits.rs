//! Limits: a concurrency limit, per task or per argument value, and a rate limit hold across
//! every worker; tasks over a limit wait, and run when it allows.

use std::time::{Duration, Instant};

use docket::{Docket, Worker};
use tests::PATIENCE;
use tests::background::Background;
use tests::probe::Probe;

use super::tasks::{FourAtOnce, OnePerTrack, TwoPerWindow};

/// How long after its admission a task's body records its start: the slack allowed when
/// comparing start times measured by the task with the limit the worker enforced before it.
const START_LAG: Duration = Duration::from_millis(50);

/// Run everything on one worker that could run 50 tasks at once.
async fn finish_wide(docket: &Docket) {
    tokio::time::timeout(
        PATIENCE,
        Worker::new(docket).concurrency(50).run_until_finished(),
    )
    .await
    .expect("the worker finished in time")
    .expect("the worker ran without error");
}

pub(crate) async fn a_concurrency_limit_per_argument_value_is_never_exceeded(docket: Docket) {
    const TRACKS: u32 = 8;
    let probe = Probe::new();
    docket
        .add_many((0..200).map(|n| OnePerTrack::schedule(probe.id(), n % TRACKS)))
        .await
        .unwrap();

    finish_wide(&docket).await;

    assert_eq!(probe.finishes(), 200, "every waiting task runs");
    for track in 0..TRACKS {
        assert_eq!(
            probe.most_running_of(&track.to_string()),
            1,
            "track {track} ran more than one task at once"
        );
    }
    assert!(
        probe.most_running() > 1,
        "tasks of different tracks run side by side"
    );
    assert!(docket.snapshot().await.unwrap().is_empty());
}

pub(crate) async fn a_concurrency_limit_is_never_exceeded(docket: Docket) {
    let probe = Probe::new();
    docket
        .add_many((0..200).map(|_| FourAtOnce::schedule(probe.id())))
        .await
        .unwrap();

    finish_wide(&docket).await;

    assert_eq!(probe.finishes(), 200, "every waiting task runs");
    assert_eq!(
        probe.most_running(),
        4,
        "at most 4 at once, and 4 when 200 wait"
    );
    assert!(docket.snapshot().await.unwrap().is_empty());
}

pub(crate) async fn a_rate_limit_allows_no_more_starts_in_a_window_than_it_says(docket: Docket) {
    const TASKS: u32 = 6;
    let window = Duration::from_millis(300);
    let probe = Probe::new();
    let worker = Background::start(Worker::new(&docket).concurrency(10));
    docket
        .add_many((0..TASKS).map(|n| TwoPerWindow::schedule(probe.id(), n)))
        .await
        .unwrap();

    probe
        .until("every task starts", |p| p.starts() == TASKS as usize)
        .await;
    worker.stop().await;

    let mut starts: Vec<Instant> = probe.runs().iter().map(|run| run.started).collect();
    starts.sort();
    for three in starts.windows(3) {
        let apart = three[2].duration_since(three[0]);
        assert!(
            apart + START_LAG >= window,
            "three starts within {apart:?}; the limit is 2 in {window:?}: {starts:#?}"
        );
    }
}
