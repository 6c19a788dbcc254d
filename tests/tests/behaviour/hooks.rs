//! Hooks: code the user hands a worker runs after each task is settled — on success, on each
//! failed attempt, on a retry, on a dead letter — and a hook that fails or panics changes
//! nothing for the task.

use std::sync::{Arc, Mutex};

use docket::worker::{Outcome, TaskEvent};
use docket::{Docket, Worker};
use tests::background::Background;
use tests::probe::Probe;
use tests::{PATIENCE, eventually};

use super::dead_letters;
use super::tasks::{FailAlways, FailForGood, NoteRun};

/// What the hooks saw: which hook, the key and the attempt, in order.
type Seen = Arc<Mutex<Vec<(&'static str, String, u32)>>>;

/// A hook that notes `name` and the event in `seen`.
fn note(
    seen: &Seen,
    name: &'static str,
) -> impl Fn(TaskEvent) -> std::future::Ready<()> + Send + Sync + 'static {
    let seen = seen.clone();
    move |event| {
        seen.lock()
            .unwrap()
            .push((name, event.key().to_owned(), event.attempt()));
        std::future::ready(())
    }
}

fn of(seen: &Seen, name: &str) -> Vec<(String, u32)> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(hook, ..)| *hook == name)
        .map(|(_, key, attempt)| (key.clone(), *attempt))
        .collect()
}

pub(crate) async fn hooks_see_each_success_failed_attempt_retry_and_dead_letter(docket: Docket) {
    let seen = Seen::default();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let kept = outcomes.clone();
    // Running before the tasks are scheduled: on an in-process docket the worker lends its
    // hooks to the docket's own worker while it runs.
    let worker = Background::running(
        Worker::new(&docket)
            .on_success(note(&seen, "success"))
            .on_failure(note(&seen, "failure"))
            .on_retry(note(&seen, "retry"))
            .on_dead_letter(move |event: TaskEvent| {
                kept.lock().unwrap().push(event.outcome().clone());
                std::future::ready(())
            })
            .on_dead_letter(note(&seen, "dead letter")),
    )
    .await;
    let probe = Probe::new();
    let failing = FailAlways::schedule(probe.id()).on(&docket).await.unwrap();
    let fine = NoteRun::schedule(probe.id(), "fine".into())
        .on(&docket)
        .await
        .unwrap();

    eventually("the dead-letter hook ran", PATIENCE, async || {
        !of(&seen, "dead letter").is_empty() && !of(&seen, "success").is_empty()
    })
    .await;
    worker.stop().await;

    let (failing, fine) = (failing.key().to_owned(), fine.key().to_owned());
    assert_eq!(of(&seen, "success"), [(fine, 1)]);
    assert_eq!(
        of(&seen, "retry"),
        [(failing.clone(), 1), (failing.clone(), 2)]
    );
    assert_eq!(
        of(&seen, "failure"),
        [
            (failing.clone(), 1),
            (failing.clone(), 2),
            (failing.clone(), 3)
        ]
    );
    assert_eq!(of(&seen, "dead letter"), [(failing, 3)]);
    let outcomes = outcomes.lock().unwrap();
    assert!(
        matches!(&outcomes[..], [Outcome::DeadLettered { reason }] if reason.contains("the disk is full")),
        "{outcomes:?}"
    );
    assert_eq!(
        probe.starts(),
        4,
        "three attempts of one task, one of the other"
    );
}

pub(crate) async fn a_hook_that_fails_or_panics_neither_loses_nor_repeats_a_task(docket: Docket) {
    let seen = Seen::default();
    let worker = Background::running(
        Worker::new(&docket)
            .on_success(|event: TaskEvent| async move {
                assert!(event.key().is_empty(), "a bug in the user's hook");
            })
            .on_success(|_| async { Err::<(), _>("the pager is down") })
            .on_success(note(&seen, "success"))
            .on_dead_letter(|_| -> std::future::Ready<()> { panic!("a bug before the future") })
            .on_dead_letter(note(&seen, "dead letter")),
    )
    .await;
    let probe = Probe::new();
    for n in 0..3 {
        NoteRun::schedule(probe.id(), n.to_string())
            .on(&docket)
            .await
            .unwrap();
    }
    FailForGood::schedule(probe.id()).on(&docket).await.unwrap();

    eventually("every hook ran", PATIENCE, async || {
        of(&seen, "success").len() == 3 && of(&seen, "dead letter").len() == 1
    })
    .await;
    worker.stop().await;

    assert_eq!(
        probe.starts(),
        4,
        "each task ran once: {:?}",
        probe.labels()
    );
    assert_eq!(dead_letters(&docket).await.len(), 1);
    let snapshot = docket.snapshot().await.unwrap();
    assert!(snapshot.is_empty(), "{snapshot:#?}");
    assert_eq!(of(&seen, "success").len(), 3, "no task ran again");
}
