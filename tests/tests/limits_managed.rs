//! Managed Redis limits (issue 12): what docket writes into Redis names stays short, what it
//! sends stays in small requests, and its scripts ask for key locking where the server takes it.
//!
//! - A value a per-argument limit counts by (`concurrency(arg)`, `rate_limit(arg)`) or a strike
//!   compares with becomes part of a Redis key or sorted-set member (Upstash caps both at
//!   32 KB): over 1024 bytes as JSON it is refused where it is given, and nothing is stored. A
//!   task stored without that check (by an older docket, or `add_json`) still runs, counted
//!   under a digest of the value. Each check runs on the memory backend and on Redis.
//! - With the default `max_payload`, storing the largest task accepted is one request of under
//!   1 MB (Upstash's limit on its free plans), and a batch is split so that no request passes it.
//! - Stock Redis refuses the `allow-key-locking` script flag: a handle pays one refused call for
//!   it, its first, and sends the plain scripts from then on.

use std::collections::HashMap;
use std::time::Duration;

use docket::strike::{Operator, Strike};
use docket::{Docket, Error};
use tests::probe::Probe;
use tests::redis_server::{RedisServer, Reply, unique_name};

/// The longest value, as JSON, that may name a limit or a strike.
const LIMIT: usize = 1024;

/// The default payload limit, and the request limit it keeps to (Upstash's "1 MB").
const MAX_PAYLOAD: usize = 960 * 1024;
const MAX_REQUEST: usize = 1_000_000;

/// Far enough ahead that a task waits where a snapshot sees it.
const LATER: Duration = Duration::from_secs(3600);

/// A string whose JSON text is `len` bytes: `len - 2` characters between two quotes.
fn json_of(len: usize) -> String {
    "v".repeat(len - 2)
}

/// One run per track at a time, labelled `track` and the track's length.
#[docket::task(concurrency(track) = 1)]
async fn per_track(probe: String, track: String) {
    let run = Probe::find(&probe).start(format!("track {}", track.len()));
    tokio::time::sleep(Duration::from_millis(20)).await;
    run.finish();
}

/// At most 100 starts a minute per user, labelled `user` and the user's length.
#[docket::task(rate_limit(user) = "100/1m")]
async fn per_user(probe: String, user: String) {
    Probe::find(&probe)
        .start(format!("user {}", user.len()))
        .finish();
}

/// Keeps its result: its first record goes with it when it is stored.
#[docket::task(result)]
async fn blob(data: String) -> Result<usize, String> {
    Ok(data.len())
}

// Helpers.

async fn redis(server: &RedisServer) -> Docket {
    Docket::connect(server.url())
        .name(unique_name("limits"))
        .await
        .expect("open a Redis docket")
}

async fn assert_nothing_stored(docket: &Docket) {
    let snapshot = docket.snapshot().await.unwrap();
    assert!(snapshot.is_empty(), "{snapshot:?}");
    assert!(docket.strikes().await.unwrap().is_empty());
}

/// Whether `error` is the [`Error::ScopeTooLong`] of `param` of `task`, for `policy`, at `len`.
fn too_long(error: &Error, task: &str, param: &str, policy: &str, len: usize) -> bool {
    matches!(error, Error::ScopeTooLong { task: t, param: p, policy: k, len: l, limit }
        if t == task && p == param && *k == policy && *l == len && *limit == LIMIT)
}

/// Run each behaviour on a memory docket and on a Redis docket.
macro_rules! on_both_backends {
    ($($behaviour:ident),* $(,)?) => {
        mod on_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    super::$behaviour(docket::Docket::memory()).await;
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

on_both_backends!(
    a_concurrency_value_over_1024_bytes_is_refused_at_schedule,
    a_rate_limit_value_over_1024_bytes_is_refused_at_schedule,
    a_batch_with_one_value_over_the_limit_stores_none_of_it,
    a_strike_value_over_1024_bytes_is_refused,
    a_strike_name_over_1024_bytes_is_refused,
    a_task_stored_with_a_longer_value_still_runs_under_its_limit,
);

// Values that name limits and strikes.

async fn a_concurrency_value_over_1024_bytes_is_refused_at_schedule(docket: Docket) {
    let probe = Probe::new();
    let error = PerTrack::schedule(probe.id(), json_of(LIMIT + 1))
        .on(&docket)
        .await
        .unwrap_err();
    assert!(
        too_long(&error, "per_track", "track", "concurrency", LIMIT + 1),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("`concurrency(track)`") && message.contains("1025 bytes"),
        "{message}"
    );
    assert_nothing_stored(&docket).await;

    PerTrack::schedule(probe.id(), json_of(LIMIT))
        .on(&docket)
        .await
        .expect("a value of 1024 bytes is accepted");
    tests::finish(&docket).await;
    assert_eq!(probe.labels(), [format!("track {}", LIMIT - 2)]);
}

async fn a_rate_limit_value_over_1024_bytes_is_refused_at_schedule(docket: Docket) {
    let probe = Probe::new();
    let error = PerUser::schedule(probe.id(), json_of(LIMIT + 1))
        .on(&docket)
        .await
        .unwrap_err();
    assert!(
        too_long(&error, "per_user", "user", "rate_limit", LIMIT + 1),
        "{error:?}"
    );
    assert!(error.to_string().contains("`rate_limit(user)`"), "{error}");
    assert_nothing_stored(&docket).await;

    PerUser::schedule(probe.id(), json_of(LIMIT))
        .on(&docket)
        .await
        .expect("a value of 1024 bytes is accepted");
    tests::finish(&docket).await;
    assert_eq!(probe.labels(), [format!("user {}", LIMIT - 2)]);
}

async fn a_batch_with_one_value_over_the_limit_stores_none_of_it(docket: Docket) {
    let probe = Probe::new();
    let batch = (0..10).map(|n| {
        let len = if n == 7 { LIMIT + 1 } else { 10 };
        PerTrack::schedule(probe.id(), json_of(len)).after(LATER)
    });
    let error = docket.add_many(batch).await.unwrap_err();
    assert!(
        too_long(&error, "per_track", "track", "concurrency", LIMIT + 1),
        "{error:?}"
    );
    assert_nothing_stored(&docket).await;
}

async fn a_strike_value_over_1024_bytes_is_refused(docket: Docket) {
    let strike = |len: usize| Strike::task("per_user").when("user", Operator::Eq, json_of(len));
    let error = docket.strike(strike(LIMIT + 1)).await.unwrap_err();
    assert!(
        too_long(&error, "per_user", "user", "strike", LIMIT + 1),
        "{error:?}"
    );
    assert!(
        error.to_string().starts_with("a strike on task `per_user`"),
        "{error}"
    );
    assert_nothing_stored(&docket).await;
    let error = docket
        .strike(Strike::any().when("user", Operator::Ne, json_of(LIMIT + 1)))
        .await
        .unwrap_err();
    assert!(
        too_long(&error, "*", "user", "strike", LIMIT + 1),
        "{error:?}"
    );

    assert!(docket.strike(strike(LIMIT)).await.unwrap());
    assert_eq!(docket.strikes().await.unwrap(), [strike(LIMIT)]);
    assert_eq!(docket.restore(strike(LIMIT)).await.unwrap(), 0);
    assert_nothing_stored(&docket).await;
}

async fn a_strike_name_over_1024_bytes_is_refused(docket: Docket) {
    for strike in [
        Strike::task("t".repeat(LIMIT + 1)),
        Strike::any().when("p".repeat(LIMIT + 1), Operator::Eq, 1),
    ] {
        let error = docket.strike(strike).await.unwrap_err();
        assert!(
            matches!(&error, Error::Config(message) if message.contains("1025 bytes")),
            "{error:?}"
        );
    }
    assert_nothing_stored(&docket).await;
    for strike in [
        Strike::task("t".repeat(LIMIT)),
        Strike::any().when("p".repeat(LIMIT), Operator::Eq, 1),
    ] {
        assert!(docket.strike(strike).await.unwrap());
    }
    assert_eq!(docket.strikes().await.unwrap().len(), 2);
}

/// A task queued before `schedule` refused long values (here through `add_json`, which does
/// not check them) runs, and its limit still holds: counted under a digest of the value.
async fn a_task_stored_with_a_longer_value_still_runs_under_its_limit(docket: Docket) {
    let probe = Probe::new();
    let long = "v".repeat(5_000);
    for _ in 0..3 {
        let args = serde_json::json!({ "probe": probe.id(), "track": long });
        docket
            .add_json("per_track", &args.to_string())
            .await
            .unwrap();
    }
    let args = serde_json::json!({ "probe": probe.id(), "user": long });
    docket
        .add_json("per_user", &args.to_string())
        .await
        .unwrap();
    tests::finish(&docket).await;
    assert_eq!(probe.finishes(), 4, "every task ran");
    assert_eq!(
        probe.most_running_of("track 5000"),
        1,
        "one per track at a time, the long track too"
    );
    assert!(docket.dead_letters().await.unwrap().is_empty());
}

// On Redis: the names, the requests and the scripts.

/// The keys of the Redis server that match `pattern`.
fn keys_matching(server: &RedisServer, pattern: &str) -> Vec<String> {
    let Reply::Array(keys) = server.command(&["KEYS", pattern]) else {
        panic!("KEYS answered no list");
    };
    keys.into_iter()
        .map(|key| match key {
            Reply::Bulk(key) => key,
            other => panic!("a key that is {other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_value_stored_without_the_check_names_its_limit_by_a_short_digest() {
    let server = RedisServer::start();
    let name = unique_name("limits");
    let docket = Docket::connect(server.url()).name(&name).await.unwrap();
    let probe = Probe::new();
    let long = "v".repeat(40_000); // over Upstash's 32 KB for a key
    let args = serde_json::json!({ "probe": probe.id(), "user": long });
    docket
        .add_json("per_user", &args.to_string())
        .await
        .unwrap();
    PerUser::schedule(probe.id(), json_of(LIMIT))
        .on(&docket)
        .await
        .unwrap();
    tests::finish(&docket).await;
    assert_eq!(probe.finishes(), 2);

    // The rate limits' windows are kept for a minute: one key per value.
    let mut keys = keys_matching(&server, &format!("{{{name}}}:rate:*"));
    keys.sort_by_key(String::len);
    assert_eq!(keys.len(), 2, "{keys:?}");
    let digest = format!("{{{name}}}:rate:per_user:user#");
    assert!(
        keys[0].starts_with(&digest) && keys[0].len() == digest.len() + 16,
        "{}",
        keys[0]
    );
    assert_eq!(
        keys[1],
        format!("{{{name}}}:rate:per_user:user=\"{}\"", json_of(LIMIT))
    );
}

/// `INFO stats`' count of bytes the server has read from its clients.
fn bytes_read(server: &RedisServer) -> usize {
    let Reply::Bulk(info) = server.command(&["INFO", "stats"]) else {
        panic!("INFO answered no text");
    };
    info.lines()
        .find_map(|line| line.strip_prefix("total_net_input_bytes:"))
        .and_then(|bytes| bytes.trim().parse().ok())
        .expect("INFO stats counts the bytes read")
}

/// The bytes of the `INFO stats` request [`bytes_read`] sends, which its count includes.
const INFO_REQUEST: usize = "*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n".len();

/// `INFO commandstats` as command → (calls, failed calls).
fn calls(server: &RedisServer) -> HashMap<String, (u64, u64)> {
    let Reply::Bulk(info) = server.command(&["INFO", "commandstats"]) else {
        panic!("INFO answered no text");
    };
    let field = |fields: &str, name: &str| {
        fields
            .split(',')
            .find_map(|field| field.strip_prefix(name)?.strip_prefix('='))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let counts = (field(fields, "calls"), field(fields, "failed_calls"));
            Some((name.to_owned(), counts))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_task_the_default_accepts_is_one_request_under_1_mb() {
    let server = RedisServer::start();
    let docket = redis(&server).await;
    // Load the script (and learn the server refuses key locking) with a small task first.
    Blob::schedule("warm".into())
        .after(LATER)
        .on(&docket)
        .await
        .unwrap();
    // The payload limit counts the whole message, arguments and envelope fields: find what the
    // message adds to the data from the refusal of a task just too large.
    let key = "k".repeat(1024);
    let schedule = |data: usize| {
        Blob::schedule("d".repeat(data))
            .key(key.clone())
            .after(LATER)
            .on(&docket)
    };
    let Error::PayloadTooLarge { size, limit, .. } = schedule(MAX_PAYLOAD).await.unwrap_err()
    else {
        panic!("a message over the default limit is refused");
    };
    assert_eq!(limit, MAX_PAYLOAD);
    let largest = MAX_PAYLOAD - (size - MAX_PAYLOAD);
    assert!(matches!(
        schedule(largest + 1).await,
        Err(Error::PayloadTooLarge { size, .. }) if size == MAX_PAYLOAD + 1
    ));
    assert_eq!(docket.snapshot().await.unwrap().scheduled.len(), 1);

    server.command(&["CONFIG", "RESETSTAT"]);
    let before = bytes_read(&server);
    schedule(largest)
        .await
        .expect("a message of the limit is stored");
    let sent = bytes_read(&server) - before - INFO_REQUEST;
    println!("a task of {MAX_PAYLOAD} bytes encoded is a request of {sent} bytes");
    assert_eq!(calls(&server)["evalsha"], (1, 0), "one request");
    assert!(sent > MAX_PAYLOAD, "{sent}");
    assert!(sent <= MAX_REQUEST, "{sent} bytes in one request");
    assert_eq!(docket.snapshot().await.unwrap().scheduled.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_large_tasks_is_split_into_requests_under_1_mb() {
    let server = RedisServer::start();
    let docket = redis(&server).await;
    Blob::schedule("warm".into())
        .after(LATER)
        .on(&docket)
        .await
        .unwrap();
    server.command(&["CONFIG", "RESETSTAT"]);
    let before = bytes_read(&server);
    // Two tasks of 510 KB: together over 1 MB, each well under it.
    let batch = (0..2).map(|_| Blob::schedule("d".repeat(510_000)).after(LATER));
    docket.add_many(batch).await.unwrap();
    let sent = bytes_read(&server) - before - INFO_REQUEST;
    assert_eq!(calls(&server)["evalsha"], (2, 0), "one request a task");
    assert!(sent > 1_020_000 && sent < 2 * 520_000, "{sent} bytes");
    assert_eq!(docket.snapshot().await.unwrap().scheduled.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_key_locking_costs_a_handle_one_refused_call() {
    let server = RedisServer::start();
    let name = unique_name("locking");
    let docket = Docket::connect(server.url()).name(&name).await.unwrap();
    let strike = |n: u32| Strike::task("per_user").when("n", Operator::Eq, n);
    // A handle reads the docket's layout with its first operation (no script).
    assert!(docket.snapshot().await.unwrap().is_empty());
    server.command(&["CONFIG", "RESETSTAT"]);
    let before = docket.commands_sent();

    // The first script call: the flagged variant, refused as the server loads it, then the
    // plain one (loaded too: the server has never seen it).
    assert!(docket.strike(strike(0)).await.unwrap());
    assert_eq!(
        docket.commands_sent() - before,
        2,
        "the refused call and the plain one"
    );
    let first = calls(&server);
    assert_eq!(first["script|load"], (2, 1), "{first:?}");
    assert_eq!(first["evalsha"], (3, 2), "{first:?}");

    // Every later call sends the plain variant, once.
    for n in 1..=5 {
        assert!(docket.strike(strike(n)).await.unwrap());
    }
    assert_eq!(docket.commands_sent() - before, 7);
    let later = calls(&server);
    assert_eq!(later["script|load"], (2, 1), "no more loads: {later:?}");
    assert_eq!(later["evalsha"], (8, 2), "no more failures: {later:?}");

    // Another handle finds out for itself, at the same price.
    let other = Docket::connect(server.url()).name(&name).await.unwrap();
    assert!(other.snapshot().await.unwrap().is_empty());
    let other_before = other.commands_sent();
    assert!(other.strike(strike(6)).await.unwrap());
    assert_eq!(other.commands_sent() - other_before, 2);
    let other_calls = calls(&server);
    assert_eq!(other_calls["script|load"], (3, 2), "{other_calls:?}");
    assert_eq!(other_calls["evalsha"], (10, 3), "{other_calls:?}");

    // A server that lost its scripts is sent the plain one again, loaded on NOSCRIPT; the
    // flagged variant is not tried again.
    server.command(&["SCRIPT", "FLUSH"]);
    server.command(&["CONFIG", "RESETSTAT"]);
    assert!(docket.strike(strike(7)).await.unwrap());
    let reloaded = calls(&server);
    assert_eq!(reloaded["script|load"], (1, 0), "{reloaded:?}");
    assert_eq!(reloaded["evalsha"], (2, 1), "{reloaded:?}");
    assert_eq!(docket.strikes().await.unwrap().len(), 8);
}
