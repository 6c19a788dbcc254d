//! Every input a caller gives is checked where it is given: a bad one is a typed error at the
//! call, never a panic, and a batch with one bad schedule stores nothing. The scheduling
//! behaviours run on the memory backend, in-process, and on a private `redis-server`; the
//! settings checks need no server.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use docket::{Disposition, Docket, Error, Worker};
use tests::eventually;
use tests::redis_server::{RedisServer, unique_name};

const PATIENCE: Duration = Duration::from_secs(20);

/// Far enough ahead that a task stored by mistake would still wait when the test looks.
const LATER: Duration = Duration::from_secs(3600);

/// The first instant of the year 10000 (UTC), one millisecond past the latest due time.
fn year_10000() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(253_402_300_800)
}

/// Does nothing; scheduled with a delay, it waits where a snapshot sees it.
#[docket::task]
async fn idle(n: u64) {
    let _ = n;
}

/// Debounced per `tag`, whatever its length.
#[docket::task(debounce(tag) = "1h")]
async fn tag_debounced(tag: String) {
    let _ = tag;
}

/// The runs of `extend_forever` that ended, by id.
static ENDED: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Outlives its 30ms timeout after pushing the deadline out by `Duration::MAX`.
#[docket::task(timeout = "30ms")]
async fn extend_forever(id: u64, ctx: docket::Context) {
    ctx.extend_timeout(Duration::MAX);
    tokio::time::sleep(Duration::from_millis(120)).await;
    ENDED.lock().unwrap().push(id);
}

/// Fails every attempt with a 100 KB error text.
#[docket::task(retries = 24, backoff = "fixed 0s")]
async fn chatty(n: u64) -> Result<(), String> {
    Err(format!("{n}: {}", "the disk is full. ".repeat(6_000)))
}

/// Asks to be tried again after `Duration::MAX`.
#[docket::task(retries = 1)]
async fn retry_never(n: u64) -> Result<(), docket::Retry> {
    let _ = n;
    Err(docket::Retry::after(Duration::MAX))
}

/// Fails each of its 41 attempts at once.
#[docket::task(retries = 40, backoff = "fixed 0s")]
async fn fail_often(n: u64) -> Result<(), String> {
    Err(format!("attempt failed ({n})"))
}

// Helpers.

fn memory() -> Docket {
    Docket::memory()
}

async fn redis(server: &RedisServer) -> Docket {
    Docket::connect(server.url())
        .name(unique_name("inputs"))
        .await
        .expect("open a Redis docket")
}

/// Run the docket's tasks until none is left: with a worker when it has a queue, else by waiting
/// for its in-process worker.
async fn run_until_finished(docket: &Docket) {
    if docket.has_queue() {
        tokio::time::timeout(PATIENCE, Worker::new(docket).run_until_finished())
            .await
            .expect("the worker finished in time (a panic in it leaves a task unsettled)")
            .expect("the worker ran");
    } else {
        eventually("the in-process docket is idle", PATIENCE, async || {
            docket.snapshot().await.unwrap().is_empty()
        })
        .await;
    }
}

async fn assert_nothing_stored(docket: &Docket) {
    let snapshot = docket.snapshot().await.unwrap();
    assert!(snapshot.is_empty(), "{snapshot:?}");
    assert!(docket.dead_letters().await.unwrap().is_empty());
}

/// How many keys the Redis server holds.
fn keys_on(server: &RedisServer) -> i64 {
    match server.command(&["DBSIZE"]) {
        tests::redis_server::Reply::Integer(count) => count,
        other => panic!("DBSIZE replied {other:?}"),
    }
}

/// Run each behaviour on a memory docket, an in-process docket and a Redis docket.
macro_rules! on_every_backend {
    ($($behaviour:ident),* $(,)?) => {
        mod on_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    super::$behaviour(super::memory()).await;
                }
            )*
        }

        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    super::$behaviour(docket::Docket::in_process()).await;
                }
            )*
        }

        mod on_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let server = tests::redis_server::RedisServer::start();
                    super::$behaviour(super::redis(&server).await).await;
                    drop(server);
                }
            )*
        }
    };
}

on_every_backend!(
    an_empty_key_is_refused_and_nothing_is_stored,
    a_key_over_1024_bytes_is_refused_and_nothing_is_stored,
    a_key_with_a_control_character_is_refused_and_nothing_is_stored,
    a_key_of_1024_bytes_is_accepted,
    add_many_with_one_bad_key_stores_none_of_the_batch,
    add_many_with_one_due_time_past_the_year_9999_stores_none_of_the_batch,
    a_delay_of_duration_max_is_refused_not_a_panic,
    a_time_after_the_year_9999_is_refused,
    a_debounce_argument_too_long_for_a_key_still_debounces,
    extending_the_timeout_by_duration_max_means_no_deadline,
    a_chatty_error_is_cut_so_its_retries_stay_small,
);

// Keys.

async fn assert_key_refused(docket: &Docket, key: String, reason: &str) {
    let error = Idle::schedule(1)
        .key(key.clone())
        .after(LATER)
        .on(docket)
        .await
        .unwrap_err();
    let Error::InvalidKey { key: shown, .. } = &error else {
        panic!("{key:?} gave {error:?}");
    };
    assert!(shown.chars().count() <= 65, "{shown:?}");
    let message = error.to_string();
    assert!(message.contains(reason), "{message}");
    assert!(
        !message.chars().any(char::is_control),
        "the message prints control characters: {message:?}"
    );
    assert_nothing_stored(docket).await;
}

async fn an_empty_key_is_refused_and_nothing_is_stored(docket: Docket) {
    assert_key_refused(&docket, String::new(), "empty").await;
}

async fn a_key_over_1024_bytes_is_refused_and_nothing_is_stored(docket: Docket) {
    assert_key_refused(&docket, "k".repeat(1025), "1025 bytes").await;
    assert_key_refused(&docket, "é".repeat(600), "1200 bytes").await;
}

async fn a_key_with_a_control_character_is_refused_and_nothing_is_stored(docket: Docket) {
    for key in [
        "line\nbreak",
        "tab\tkey",
        "\u{1b}[31mred",
        "nul\0",
        "c1\u{9b}",
    ] {
        assert_key_refused(&docket, key.into(), "control character").await;
    }
}

async fn a_key_of_1024_bytes_is_accepted(docket: Docket) {
    let key = format!("{}{}", "ü".repeat(500), "k".repeat(24));
    assert_eq!(key.len(), 1024);
    let scheduled = Idle::schedule(1)
        .key(key.clone())
        .after(LATER)
        .on(&docket)
        .await
        .unwrap();
    assert_eq!(scheduled.key(), key);
    let snapshot = docket.snapshot().await.unwrap();
    assert_eq!(snapshot.scheduled.len(), 1);
    assert_eq!(snapshot.scheduled[0].key, key);
    assert!(docket.cancel(&key).await.unwrap());
}

async fn add_many_with_one_bad_key_stores_none_of_the_batch(docket: Docket) {
    let batch = (0..50).map(|n| {
        let schedule = Idle::schedule(n).after(LATER);
        match n {
            37 => schedule.key(""),
            _ => schedule.key(format!("batch-{n}")),
        }
    });
    let error = docket.add_many(batch).await.unwrap_err();
    assert!(matches!(error, Error::InvalidKey { .. }), "{error:?}");
    assert_nothing_stored(&docket).await;
    // The good ones alone go through.
    let receipts = docket
        .add_many((0..3).map(|n| Idle::schedule(n).after(LATER).key(format!("batch-{n}"))))
        .await
        .unwrap();
    assert_eq!(receipts.len(), 3);
    assert_eq!(docket.snapshot().await.unwrap().scheduled.len(), 3);
}

async fn add_many_with_one_due_time_past_the_year_9999_stores_none_of_the_batch(docket: Docket) {
    let batch = (0..10).map(|n| match n {
        9 => Idle::schedule(n).after(Duration::MAX),
        4 => Idle::schedule(n).at(year_10000()),
        _ => Idle::schedule(n).after(LATER),
    });
    let error = docket.add_many(batch).await.unwrap_err();
    assert!(
        matches!(&error, Error::InvalidDue { task } if task == "idle"),
        "{error:?}"
    );
    assert!(error.to_string().contains("year 9999"), "{error}");
    assert_nothing_stored(&docket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_writes_not_one_redis_key() {
    let server = RedisServer::start();
    let docket = redis(&server).await;
    assert!(docket.snapshot().await.unwrap().is_empty());
    let before = keys_on(&server);
    let batch = (0..100).map(|n| match n {
        99 => Idle::schedule(n).key("bell\u{7}"),
        _ => Idle::schedule(n).after(LATER),
    });
    let error = docket.add_many(batch).await.unwrap_err();
    assert!(matches!(error, Error::InvalidKey { .. }), "{error:?}");
    assert_eq!(keys_on(&server), before);
    assert_nothing_stored(&docket).await;
}

// Due times.

async fn a_delay_of_duration_max_is_refused_not_a_panic(docket: Docket) {
    for delay in [
        Duration::MAX,
        Duration::from_secs(u64::MAX),
        Duration::from_secs(1 << 40),
    ] {
        let error = Idle::schedule(1)
            .after(delay)
            .on(&docket)
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::InvalidDue { .. }),
            "{delay:?}: {error:?}"
        );
    }
    assert_nothing_stored(&docket).await;
}

async fn a_time_after_the_year_9999_is_refused(docket: Docket) {
    let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
    for when in [year_10000(), far] {
        let error = Idle::schedule(1).at(when).on(&docket).await.unwrap_err();
        assert!(matches!(error, Error::InvalidDue { .. }), "{error:?}");
    }
    assert_nothing_stored(&docket).await;
    // The last millisecond of the year 9999 is kept exactly.
    let last = year_10000() - Duration::from_millis(1);
    let scheduled = Idle::schedule(1).at(last).on(&docket).await.unwrap();
    assert_eq!(scheduled.due(), last);
    let snapshot = docket.snapshot().await.unwrap();
    assert_eq!(snapshot.scheduled.len(), 1);
    assert_eq!(snapshot.scheduled[0].due, last);
}

// Debounce keys.

async fn a_debounce_argument_too_long_for_a_key_still_debounces(docket: Docket) {
    let long = "x".repeat(5_000);
    let first = TagDebounced::schedule(long.clone())
        .on(&docket)
        .await
        .unwrap();
    assert!(first.key().len() <= 1024, "{}", first.key());
    assert_eq!(first.disposition(), Disposition::Added);
    let second = TagDebounced::schedule(long.clone())
        .on(&docket)
        .await
        .unwrap();
    assert_eq!(second.key(), first.key());
    assert_eq!(second.disposition(), Disposition::Replaced);
    let other = TagDebounced::schedule("y".repeat(5_000))
        .on(&docket)
        .await
        .unwrap();
    assert_ne!(other.key(), first.key());
    assert_eq!(other.disposition(), Disposition::Added);
    let short = TagDebounced::schedule("a".into())
        .on(&docket)
        .await
        .unwrap();
    assert_eq!(short.key(), r#"tag_debounced:debounce:tag="a""#);
    assert_eq!(docket.snapshot().await.unwrap().scheduled.len(), 3);
    assert!(docket.clear().await.unwrap() >= 3);
}

// Deadlines and histories, inside the worker.

async fn extending_the_timeout_by_duration_max_means_no_deadline(docket: Docket) {
    let id = unique_id();
    ExtendForever::schedule(id).on(&docket).await.unwrap();
    run_until_finished(&docket).await;
    assert!(
        ENDED.lock().unwrap().contains(&id),
        "the task ran to its end"
    );
    assert!(docket.dead_letters().await.unwrap().is_empty());
}

async fn a_chatty_error_is_cut_so_its_retries_stay_small(docket: Docket) {
    let scheduled = Chatty::schedule(7).on(&docket).await.unwrap();
    run_until_finished(&docket).await;
    let dead = docket.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    let dead = &dead[0];
    assert_eq!(dead.key, scheduled.key());
    assert_eq!(dead.task, "chatty", "the message stayed decodable");
    assert_eq!(dead.attempt, 25);
    assert!(!dead.history.is_empty());
    for failed in &dead.history {
        assert!(
            failed.error.len() <= docket::inspect::FailedAttempt::MAX_ERROR_BYTES,
            "attempt {} kept {} bytes",
            failed.attempt,
            failed.error.len()
        );
        assert!(failed.error.ends_with('…'), "the cut is marked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_keeps_the_last_20_attempts() {
    let docket = memory();
    FailOften::schedule(1).on(&docket).await.unwrap();
    run_until_finished(&docket).await;
    let dead = docket.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    let attempts: Vec<u32> = dead[0].history.iter().map(|f| f.attempt).collect();
    assert_eq!(attempts, (22..=41).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_duration_max_waits_until_the_year_9999_not_a_panic() {
    let docket = memory();
    let scheduled = RetryNever::schedule(1).on(&docket).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(Worker::new(&docket).run_until(async {
        let _ = stopped.await;
    }));
    eventually("the retry is scheduled", PATIENCE, async || {
        docket.snapshot().await.unwrap().scheduled.len() == 1
    })
    .await;
    let snapshot = docket.snapshot().await.unwrap();
    assert_eq!(snapshot.scheduled[0].key, scheduled.key());
    assert_eq!(snapshot.scheduled[0].attempt, 2);
    assert_eq!(
        snapshot.scheduled[0].due,
        year_10000() - Duration::from_millis(1)
    );
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
}

// Settings, checked at `connect`.

async fn config_error(connect: docket::Connect) -> String {
    match connect.await {
        Err(Error::Config(message)) => message,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_redelivery_timeout_outside_100ms_to_7_days_is_refused() {
    for timeout in [
        Duration::ZERO,
        Duration::from_millis(99),
        Duration::from_secs(7 * 86_400 + 1),
        Duration::MAX,
    ] {
        for url in ["memory://", "redis://127.0.0.1:1"] {
            let message = config_error(Docket::connect(url).redelivery_timeout(timeout)).await;
            assert!(message.contains("redelivery_timeout"), "{message}");
            assert!(message.contains("100ms to 7 days"), "{message}");
        }
    }
    for timeout in [
        Duration::from_millis(100),
        Duration::from_millis(400),
        Duration::from_secs(7 * 86_400),
    ] {
        Docket::connect("redis://127.0.0.1:1")
            .redelivery_timeout(timeout)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_payload_limit_outside_256_bytes_to_512_mib_is_refused() {
    for bytes in [0, 255, (512 << 20) + 1, usize::MAX] {
        let message = config_error(Docket::connect("memory://").max_payload(bytes)).await;
        assert!(message.contains("max_payload"), "{message}");
    }
    for bytes in [256, 1024, 512 << 20] {
        Docket::connect("memory://")
            .max_payload(bytes)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn max_deliveries_of_zero_is_refused() {
    let message = config_error(Docket::connect("memory://").max_deliveries(0)).await;
    assert!(message.contains("max_deliveries"), "{message}");
    Docket::connect("memory://")
        .max_deliveries(1)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_worker_concurrency_of_zero_or_past_a_semaphore_is_refused() {
    for concurrency in [0, usize::MAX, usize::MAX >> 3] {
        let message =
            config_error(Docket::connect("memory://").worker_concurrency(concurrency)).await;
        assert!(message.contains("worker_concurrency"), "{message}");
    }
    let docket = Docket::connect("memory://")
        .worker_concurrency(1000)
        .await
        .unwrap();
    assert_eq!(docket.worker_concurrency(), 1000);
}

#[tokio::test]
async fn an_empty_or_non_pem_ca_is_refused_at_connect() {
    let garbage = "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n";
    for pem in [
        &b""[..],
        b"hello",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        garbage.as_bytes(),
    ] {
        let connect = Docket::connect("rediss://127.0.0.1:1").tls_ca_pem(pem);
        let message = config_error(connect).await;
        assert!(message.contains("tls_ca_pem"), "{message}");
    }
}

#[tokio::test]
async fn docket_names_with_glob_characters_are_refused() {
    for name in [
        "a*",
        "t[1]",
        "who?",
        "back\\slash",
        "b{r}ace",
        "sp ace",
        "colon:",
    ] {
        let message = config_error(Docket::connect("memory://").name(name)).await;
        assert!(message.contains("letters, digits"), "{name}: {message}");
    }
    Docket::connect("memory://")
        .name("plyr-prod_2.eu")
        .await
        .unwrap();
}

// Passwords.

#[tokio::test]
async fn connect_debug_never_shows_the_password() {
    for (url, password) in [
        ("rediss://default:s3cr%t/x@127.0.0.1:6380", "s3cr"),
        ("redis://default:hunter2@127.0.0.1:6379/0", "hunter2"),
        ("redis://default:ab#cd@127.0.0.1:6379", "ab#cd"),
        ("redis://default:p?w@127.0.0.1:6379", "p?w"),
        ("redis://default:p@w@127.0.0.1:6379", "p@w"),
    ] {
        let connect = Docket::connect(url).name("n");
        let debug = format!("{connect:?}");
        assert!(!debug.contains(password), "{debug}");
        assert!(debug.contains("***"), "{debug}");
        // Whether it connects lazily or the URL does not parse, nothing shows the password.
        match connect.await {
            Ok(docket) => {
                let debug = format!("{docket:?}");
                assert!(!debug.contains(password), "{debug}");
            }
            Err(error) => {
                let shown = format!("{error} {error:?}");
                assert!(!shown.contains(password), "{shown}");
            }
        }
    }
}

#[tokio::test]
async fn the_unsupported_url_error_lists_every_scheme_and_hides_the_password() {
    for url in [
        "amqp://guest:s3cret@127.0.0.1",
        "guest:s3cret@127.0.0.1:6379",
    ] {
        let error = Docket::connect(url).await.unwrap_err();
        assert!(matches!(error, Error::UnsupportedUrl { .. }), "{error:?}");
        let message = error.to_string();
        for scheme in ["`redis://`", "`rediss://`", "`memory://`"] {
            assert!(message.contains(scheme), "{message}");
        }
        assert!(!message.contains("s3cret"), "{message}");
    }
}

// Test plumbing.

fn unique_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn a_key_error_names_the_fix() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let error = runtime
        .block_on(async { Idle::schedule(1).key("").on(&memory()).await })
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid task key \"\": it is empty; give a non-empty key, or leave out `.key(..)` for a generated one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_depth_report_every_zero_seconds_does_not_spin_on_redis() {
    let server = RedisServer::start();
    let docket = redis(&server).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(
        Worker::new(&docket)
            .report_depth(Duration::ZERO)
            .run_until(async {
                let _ = stopped.await;
            }),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = docket.commands_sent();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = docket.commands_sent() - before;
    stop.send(()).unwrap();
    worker.await.unwrap().unwrap();
    // At most one report a second (two commands each) and the worker's own rare calls.
    assert!(sent <= 6, "{sent} commands in 1.5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_given_a_concurrency_no_semaphore_holds_refuses_to_start() {
    let docket = memory();
    for concurrency in [0, usize::MAX] {
        let refused = Worker::new(&docket)
            .concurrency(concurrency)
            .run_until_finished()
            .await;
        assert!(
            matches!(&refused, Err(Error::Config(message)) if message.contains("Worker::concurrency")),
            "{concurrency}: {refused:?}"
        );
    }
}
