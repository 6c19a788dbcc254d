//! `docket::testing`: a memory docket on a virtual clock runs, as the clock is moved forward,
//! everything that falls due on the way, in order and in no real time: later tasks, retries
//! after their backoff, tasks a rate limit put back, timeouts, cooldown windows.

use std::time::{Duration, Instant};

use docket::Disposition;
use docket::testing::TimeMachine;
use tests::probe::Probe;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

#[docket::task(retries = 3, backoff = "fixed 10m")]
async fn always_fails(probe: String) -> Result<(), String> {
    Probe::find(&probe).start("attempt").finish();
    Err("the card was declined".into())
}

#[docket::task]
async fn note(probe: String, label: String, ctx: docket::Context) {
    let probe = Probe::find(&probe);
    probe.saw(&ctx);
    probe.start(label).finish();
}

#[docket::task(rate_limit = "2/1h")]
async fn two_an_hour(probe: String, n: u32) {
    Probe::find(&probe).start(n.to_string()).finish();
}

#[docket::task(timeout = "30s", retries = 1, backoff = "fixed 1m")]
async fn sleeps_an_hour(probe: String) {
    let run = Probe::find(&probe).start("sleeping");
    tokio::time::sleep(HOUR).await;
    run.finish();
}

#[tokio::test]
async fn retries_run_when_the_clock_reaches_their_backoff_then_the_task_is_a_dead_letter() {
    let real = Instant::now();
    let machine = TimeMachine::start().await.unwrap();
    let docket = machine.docket();
    let probe = Probe::new();
    AlwaysFails::schedule(probe.id())
        .key("order-7")
        .on(docket)
        .await
        .unwrap();

    machine.advance(Duration::ZERO).await;
    assert_eq!(probe.starts(), 1, "the first attempt runs at once");
    machine.advance(10 * MINUTE - Duration::from_secs(1)).await;
    assert_eq!(probe.starts(), 1, "no retry before its 10 minutes");
    machine.advance(Duration::from_secs(1)).await;
    assert_eq!(probe.starts(), 2, "the first retry at 10 minutes");
    assert!(docket.dead_letters().await.unwrap().is_empty());

    machine.advance(HOUR).await;
    assert_eq!(probe.starts(), 4, "three retries in all");
    let dead = docket.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!((dead[0].key.as_str(), dead[0].attempt), ("order-7", 4));
    machine.stop().await.unwrap();
    println!(
        "an hour and ten minutes of retries took {:?}",
        real.elapsed()
    );
}

#[tokio::test]
async fn a_task_due_tomorrow_runs_when_the_clock_reaches_tomorrow() {
    let machine = TimeMachine::start().await.unwrap();
    let probe = Probe::new();
    let start = machine.now();
    let day = 24 * HOUR;
    let scheduled = Note::schedule(probe.id(), "tomorrow".into())
        .after(day)
        .on(machine.docket())
        .await
        .unwrap();
    assert_eq!(scheduled.due(), start + day, "due on the virtual clock");

    machine.advance(day - MINUTE).await;
    assert_eq!(probe.starts(), 0);
    machine.advance(MINUTE).await;
    assert_eq!(probe.labels(), ["tomorrow"]);
    let seen = probe.seen();
    assert_eq!(seen[0].due, start + day);
    assert!(machine.now() >= start + day);
    machine.stop().await.unwrap();
}

#[tokio::test]
async fn a_rate_limit_lets_the_next_tasks_start_when_the_clock_reaches_its_next_window() {
    let machine = TimeMachine::start().await.unwrap();
    let docket = machine.docket();
    let probe = Probe::new();
    docket
        .add_many((0..5).map(|n| TwoAnHour::schedule(probe.id(), n)))
        .await
        .unwrap();

    machine.advance(Duration::ZERO).await;
    assert_eq!(probe.starts(), 2, "two in the first hour");
    machine.advance(59 * MINUTE).await;
    assert_eq!(probe.starts(), 2, "still the first hour's window");
    machine.advance(2 * MINUTE).await;
    assert_eq!(probe.starts(), 4, "two more in the second hour");
    machine.advance(HOUR).await;
    assert_eq!(probe.starts(), 5);
    assert_eq!(probe.sorted_labels(), ["0", "1", "2", "3", "4"]);
    machine.stop().await.unwrap();
}

#[tokio::test]
async fn a_timeout_fires_on_the_virtual_clock() {
    let machine = TimeMachine::start().await.unwrap();
    let docket = machine.docket();
    let probe = Probe::new();
    SleepsAnHour::schedule(probe.id()).on(docket).await.unwrap();

    machine.advance(29 * MINUTE / 60).await;
    assert_eq!(
        (probe.starts(), probe.finishes()),
        (1, 0),
        "29 s: still running"
    );
    machine.advance(2 * MINUTE).await;
    assert_eq!(
        probe.starts(),
        2,
        "timed out at 30 s, retried a minute later"
    );
    machine.advance(MINUTE).await;
    let dead = docket.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert!(dead[0].reason.contains("timed out"), "{}", dead[0].reason);
    assert_eq!(probe.finishes(), 0, "no attempt slept its hour out");
    machine.stop().await.unwrap();
}

/// One payment reminder a customer a day, however often the billing code asks.
#[docket::task(cooldown(customer) = "1d")]
async fn remind(probe: String, customer: String) {
    Probe::find(&probe).start(customer).finish();
}

#[tokio::test]
async fn a_cooldown_window_passes_on_the_virtual_clock() {
    let real = Instant::now();
    let machine = TimeMachine::start().await.unwrap();
    let docket = machine.docket();
    let probe = Probe::new();
    let remind = |customer: &str| Remind::schedule(probe.id(), customer.into()).on(docket);

    assert_eq!(
        remind("ada").await.unwrap().disposition(),
        Disposition::Added
    );
    machine.advance(23 * HOUR).await;
    assert_eq!(
        remind("ada").await.unwrap().disposition(),
        Disposition::CooledDown,
        "23 hours later, still within the day"
    );
    assert_eq!(
        remind("bob").await.unwrap().disposition(),
        Disposition::Added
    );
    machine.advance(HOUR).await;
    assert_eq!(
        remind("ada").await.unwrap().disposition(),
        Disposition::Added,
        "a day after the first"
    );
    machine.advance(Duration::ZERO).await;
    assert_eq!(probe.labels(), ["ada", "bob", "ada"]);
    machine.stop().await.unwrap();
    assert!(
        real.elapsed() < Duration::from_secs(10),
        "{:?}",
        real.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_machine_on_a_multi_thread_runtime_is_a_config_error() {
    let error = TimeMachine::start().await.unwrap_err();
    assert!(matches!(error, docket::Error::Config(_)), "{error:?}");
}
