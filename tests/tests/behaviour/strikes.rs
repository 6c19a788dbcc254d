//! Strikes: an operator holds a task's runs, all of them or those whose argument compares with a
//! value, without a redeploy; held runs are neither run nor lost, and restoring queues them again.

use std::collections::BTreeSet;
use std::time::Duration;

use docket::{Docket, Task, Worker, strike::Operator, strike::Strike};
use tests::background::Background;
use tests::probe::Probe;
use tests::{PATIENCE, eventually};

use super::tasks::{NoteRun, NoteValue};

/// The keys of the tasks held by strikes now.
async fn held_keys(docket: &Docket) -> BTreeSet<String> {
    let snapshot = docket.snapshot().await.unwrap();
    snapshot.held.into_iter().map(|task| task.key).collect()
}

pub(crate) async fn a_strike_by_task_name_holds_its_tasks_until_restored(docket: Docket) {
    let probe = Probe::new();
    let strike = Strike::task(NoteValue::NAME);
    assert!(docket.strike(strike.clone()).await.unwrap());
    assert!(
        !docket.strike(strike.clone()).await.unwrap(),
        "the same strike again changes nothing"
    );
    assert_eq!(
        docket.strikes().await.unwrap(),
        std::slice::from_ref(&strike)
    );
    for n in 1..=3 {
        NoteValue::schedule(probe.id(), n)
            .key(format!("held-{n}"))
            .on(&docket)
            .await
            .unwrap();
    }
    NoteRun::schedule(probe.id(), "not struck".into())
        .on(&docket)
        .await
        .unwrap();

    let worker = Background::start(Worker::new(&docket));
    eventually("the struck tasks are held", PATIENCE, || async {
        held_keys(&docket).await.len() == 3
    })
    .await;
    probe
        .until("the task not struck runs", |p| p.starts() == 1)
        .await;
    // Started is not yet settled: the snapshot is read once the run has left `running`.
    eventually("the task not struck is settled", PATIENCE, || async {
        docket.snapshot().await.unwrap().running.is_empty()
    })
    .await;
    let snapshot = docket.snapshot().await.unwrap();
    let labels_while_struck = probe.labels();
    let restored = docket.restore(strike.clone()).await.unwrap();
    probe.until("the held tasks run", |p| p.starts() == 4).await;
    worker.stop().await;

    assert_eq!(labels_while_struck, ["not struck"], "held tasks do not run");
    let held: Vec<&str> = snapshot.held.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(held, ["held-1", "held-2", "held-3"], "{snapshot:#?}");
    assert!(snapshot.held.iter().all(|t| t.task == "note_value"));
    assert_eq!(
        snapshot.queued.len() + snapshot.scheduled.len() + snapshot.running.len(),
        0,
        "{snapshot:#?}"
    );
    assert_eq!(restored, 3, "restore queues every held task again");
    assert_eq!(probe.sorted_labels(), ["1", "2", "3", "not struck"]);
    assert_eq!(docket.strikes().await.unwrap(), []);
    assert!(docket.snapshot().await.unwrap().is_empty());
}

pub(crate) async fn a_strike_made_while_a_worker_runs_holds_the_tasks_it_claims_afterwards(
    docket: Docket,
) {
    let probe = Probe::new();
    let worker = Background::start(Worker::new(&docket));
    NoteValue::schedule(probe.id(), 1)
        .on(&docket)
        .await
        .unwrap();
    probe
        .until("the worker runs a task", |p| p.starts() == 1)
        .await;

    let strike = Strike::task(NoteValue::NAME);
    docket.strike(strike.clone()).await.unwrap();
    // Workers hear of a strike through their signal feed, within milliseconds; a task claimed
    // in that instant may still run. Give the feed ample time on a loaded machine.
    tokio::time::sleep(Duration::from_millis(200)).await;
    NoteValue::schedule(probe.id(), 2)
        .key("after the strike")
        .on(&docket)
        .await
        .unwrap();
    eventually(
        "the task scheduled after the strike is held",
        PATIENCE,
        || async { !held_keys(&docket).await.is_empty() },
    )
    .await;
    let held = held_keys(&docket).await;
    let labels_while_struck = probe.labels();
    assert_eq!(docket.restore(strike).await.unwrap(), 1);
    probe.until("the held task runs", |p| p.starts() == 2).await;
    worker.stop().await;

    assert_eq!(held, BTreeSet::from(["after the strike".to_owned()]));
    assert_eq!(labels_while_struck, ["1"]);
    assert_eq!(probe.labels(), ["1", "2"]);
}

pub(crate) async fn a_strike_where_an_argument_compares_with_a_value_holds_exactly_those_runs(
    docket: Docket,
) {
    // Each row strikes the `note_value` runs whose `n` compares with `value` by `op`, schedules
    // `n` = 1 to 5, and expects exactly `held` to be held while the others run, and restoring
    // to run them. The rows take turns on one docket (on Redis, one server), each with a worker
    // started after its strike: a worker already running could claim a run in the instant
    // before it hears of the strike. A wrongly wired operator holds other runs than its row
    // says, and the row fails naming it.
    let table: [(Operator, i64, &[i64]); 6] = [
        (Operator::Eq, 3, &[3]),
        (Operator::Ne, 3, &[1, 2, 4, 5]),
        (Operator::Gt, 3, &[4, 5]),
        (Operator::Ge, 3, &[3, 4, 5]),
        (Operator::Lt, 3, &[1, 2]),
        (Operator::Le, 3, &[1, 2, 3]),
    ];
    for (row, (op, value, held)) in table.into_iter().enumerate() {
        let probe = Probe::new();
        let strike = Strike::task(NoteValue::NAME).when("n", op, value);
        let key = |n: i64| format!("row-{row}-n-{n}");
        docket.strike(strike.clone()).await.unwrap();
        for n in 1..=5 {
            NoteValue::schedule(probe.id(), n)
                .key(key(n))
                .on(&docket)
                .await
                .unwrap();
        }
        let ran: Vec<String> = (1..=5)
            .filter(|n| !held.contains(n))
            .map(|n| n.to_string())
            .collect();
        let held_keys_expected: BTreeSet<String> = held.iter().map(|&n| key(n)).collect();

        let worker = Background::start(Worker::new(&docket));
        eventually(
            &format!("the runs where n {op} {value} are held"),
            PATIENCE,
            || async { held_keys(&docket).await.len() == held.len() },
        )
        .await;
        probe
            .until(&format!("the runs where not n {op} {value} run"), |p| {
                p.starts() == ran.len()
            })
            .await;
        let held_while_struck = held_keys(&docket).await;
        let ran_while_struck = probe.sorted_labels();
        let restored = docket.restore(strike).await.unwrap();
        probe
            .until(&format!("the runs held where n {op} {value} run"), |p| {
                p.starts() == 5
            })
            .await;
        worker.stop().await;

        assert_eq!(
            held_while_struck, held_keys_expected,
            "held where n {op} {value}"
        );
        assert_eq!(ran_while_struck, ran, "ran where not n {op} {value}");
        assert_eq!(restored, held.len(), "restored where n {op} {value}");
        assert_eq!(probe.sorted_labels(), ["1", "2", "3", "4", "5"]);
        assert_eq!(docket.strikes().await.unwrap(), [], "after n {op} {value}");
        assert!(
            docket.snapshot().await.unwrap().is_empty(),
            "after n {op} {value}"
        );
    }
}
