//! Debounce: each schedule replaces the waiting task and moves it ahead, so a burst runs once,
//! with the newest arguments, once scheduling has been quiet; per task or per argument value.

use std::time::{Duration, Instant};

use docket::{Disposition, Docket, Worker};
use tests::background::Background;
use tests::probe::Probe;
use tests::{PATIENCE, eventually};

use super::SLACK;
use super::tasks::{Debounced, DebouncedPerCustomer};

pub(crate) async fn debounce_collapses_a_burst_into_one_run_with_the_newest_arguments(
    docket: Docket,
) {
    let settle = Duration::from_millis(300);
    let probe = Probe::new();
    let worker = Background::start(Worker::new(&docket));
    let mut receipts = Vec::new();
    let mut last = Instant::now();
    for value in 1..=5 {
        last = Instant::now();
        receipts.push(
            Debounced::schedule(probe.id(), value)
                .on(&docket)
                .await
                .unwrap(),
        );
    }

    probe
        .until("the debounced task runs", |p| p.starts() == 1)
        .await;
    eventually("nothing else waits", PATIENCE, || async {
        docket.snapshot().await.unwrap().is_empty()
    })
    .await;
    worker.stop().await;

    let run = probe.only_run();
    assert_eq!(run.label, "5", "the newest arguments win");
    let waited = run.started.duration_since(last);
    assert!(
        waited >= settle,
        "ran {waited:?} after the last schedule, before scheduling settled for {settle:?}"
    );
    assert!(
        waited < settle + SLACK,
        "ran only {waited:?} after the last schedule"
    );
    let dispositions: Vec<Disposition> = receipts.iter().map(|r| r.disposition()).collect();
    assert_eq!(
        dispositions,
        [
            Disposition::Added,
            Disposition::Replaced,
            Disposition::Replaced,
            Disposition::Replaced,
            Disposition::Replaced,
        ]
    );
    assert!(receipts.iter().all(|r| r.key() == receipts[0].key()));
}

pub(crate) async fn debounce_by_argument_collapses_each_value_on_its_own(docket: Docket) {
    let probe = Probe::new();
    let worker = Background::start(Worker::new(&docket));
    for (customer, value) in [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3)] {
        DebouncedPerCustomer::schedule(probe.id(), customer.into(), value)
            .on(&docket)
            .await
            .unwrap();
    }

    probe
        .until("one run per customer", |p| p.starts() == 2)
        .await;
    eventually("nothing else waits", PATIENCE, || async {
        docket.snapshot().await.unwrap().is_empty()
    })
    .await;
    worker.stop().await;

    assert_eq!(probe.sorted_labels(), ["a 3", "b 2"]);
}
