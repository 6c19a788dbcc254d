//! Cooldown: the first schedule of a scope goes through and the others are dropped until its
//! window has passed, per task or per argument value; keyed, replacing and batched schedules
//! alike, with a duplicate key answered first.

use std::time::Duration;

use docket::{Disposition, Docket, Worker};
use tests::background::Background;
use tests::probe::Probe;
use tests::{PATIENCE, eventually};

use super::tasks::{BrieflyCooled, Cooled, CooledPerCustomer, NoteRun};

const HOUR: Duration = Duration::from_secs(3600);

fn dispositions(receipts: &[docket::Scheduled]) -> Vec<Disposition> {
    receipts.iter().map(|r| r.disposition()).collect()
}

pub(crate) async fn a_cooldown_lets_the_first_schedule_through_and_drops_the_others_of_its_window(
    docket: Docket,
) {
    let probe = Probe::new();
    let worker = Background::start(Worker::new(&docket));
    let mut receipts = Vec::new();
    for value in 1..=3 {
        receipts.push(
            Cooled::schedule(probe.id(), value)
                .on(&docket)
                .await
                .unwrap(),
        );
    }

    probe
        .until("the first task runs", |p| p.starts() == 1)
        .await;
    eventually("nothing else waits", PATIENCE, || async {
        docket.snapshot().await.unwrap().is_empty()
    })
    .await;
    worker.stop().await;

    assert_eq!(probe.labels(), ["1"], "the first schedule wins");
    assert_eq!(
        dispositions(&receipts),
        [
            Disposition::Added,
            Disposition::CooledDown,
            Disposition::CooledDown
        ]
    );
    assert!(!receipts[1].disposition().stored());
}

pub(crate) async fn a_cooldown_by_argument_counts_each_value_on_its_own(docket: Docket) {
    let probe = Probe::new();
    let worker = Background::start(Worker::new(&docket));
    let mut receipts = Vec::new();
    for (customer, value) in [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("c", 1)] {
        let receipt = CooledPerCustomer::schedule(probe.id(), customer.into(), value)
            .on(&docket)
            .await
            .unwrap();
        receipts.push(receipt);
    }

    probe
        .until("one run per customer", |p| p.starts() == 3)
        .await;
    eventually("nothing else waits", PATIENCE, || async {
        docket.snapshot().await.unwrap().is_empty()
    })
    .await;
    worker.stop().await;

    assert_eq!(probe.sorted_labels(), ["a 1", "b 1", "c 1"]);
    use Disposition::{Added, CooledDown};
    assert_eq!(
        dispositions(&receipts),
        [Added, Added, CooledDown, CooledDown, Added]
    );
}

pub(crate) async fn a_cooldown_opens_again_once_its_window_has_passed(docket: Docket) {
    let probe = Probe::new();
    let first = BrieflyCooled::schedule(probe.id(), 1)
        .after(HOUR)
        .on(&docket)
        .await
        .unwrap();
    assert_eq!(first.disposition(), Disposition::Added);
    // The window (300ms) started before the first schedule returned.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let later = BrieflyCooled::schedule(probe.id(), 2)
        .after(HOUR)
        .on(&docket)
        .await
        .unwrap();
    assert_eq!(later.disposition(), Disposition::Added);
    let again = BrieflyCooled::schedule(probe.id(), 3)
        .after(HOUR)
        .on(&docket)
        .await
        .unwrap();
    assert_eq!(
        again.disposition(),
        Disposition::CooledDown,
        "the later schedule opened a window of its own"
    );
}

pub(crate) async fn a_cooldown_drops_keyed_and_replacing_schedules_but_answers_a_duplicate_first(
    docket: Docket,
) {
    let probe = Probe::new();
    let schedule = |customer: &str, value: u32| {
        CooledPerCustomer::schedule(probe.id(), customer.into(), value)
            .after(HOUR)
            .on(&docket)
    };
    let first = schedule("a", 1).key("order-a").await.unwrap();
    assert_eq!(first.disposition(), Disposition::Added);
    let replacing = schedule("a", 2).key("order-a").replace().await.unwrap();
    assert_eq!(
        replacing.disposition(),
        Disposition::CooledDown,
        "a replace is a schedule of the scope too, and replaces nothing"
    );
    let elsewhere = schedule("a", 3).key("order-a-again").await.unwrap();
    assert_eq!(elsewhere.disposition(), Disposition::CooledDown);
    let duplicate = schedule("a", 4).key("order-a").await.unwrap();
    assert_eq!(
        duplicate.disposition(),
        Disposition::Duplicate,
        "a taken key is answered before the cooldown"
    );

    // A duplicate stores nothing, so it opens no window.
    NoteRun::schedule(probe.id(), "holds the key".into())
        .key("taken")
        .after(HOUR)
        .on(&docket)
        .await
        .unwrap();
    let duplicate = schedule("b", 1).key("taken").await.unwrap();
    assert_eq!(duplicate.disposition(), Disposition::Duplicate);
    let through = schedule("b", 2).await.unwrap();
    assert_eq!(through.disposition(), Disposition::Added);

    assert_eq!(
        docket.snapshot().await.unwrap().len(),
        3,
        "order-a (its first arguments), taken, and b's"
    );
    assert_eq!(probe.starts(), 0);
}

pub(crate) async fn a_batch_or_scatter_lets_through_the_first_of_each_scope(docket: Docket) {
    let probe = Probe::new();
    let batch = [("a", 1), ("a", 2), ("b", 1), ("a", 3)].map(|(customer, value)| {
        CooledPerCustomer::schedule(probe.id(), customer.into(), value).after(HOUR)
    });
    let receipts = docket.add_many(batch).await.unwrap();
    use Disposition::{Added, CooledDown};
    assert_eq!(
        dispositions(&receipts),
        [Added, CooledDown, Added, CooledDown]
    );

    let batch = [("c", 1), ("c", 2), ("d", 1), ("a", 4)]
        .map(|(customer, value)| CooledPerCustomer::schedule(probe.id(), customer.into(), value));
    let receipts = docket.scatter(batch, HOUR, Duration::ZERO).await.unwrap();
    assert_eq!(
        dispositions(&receipts),
        [Added, CooledDown, Added, CooledDown]
    );
}
