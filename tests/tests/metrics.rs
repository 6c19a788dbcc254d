//! The metrics docket reports after a known workload, read through a debugging recorder.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use docket::{Docket, Worker};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tests::finish;
use tests::redis_server::{RedisServer, unique_name};

#[docket::task]
async fn metrics_ok(n: u32) {
    let _ = n;
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[docket::task(retries = 1)]
async fn metrics_fail(n: u32) -> Result<(), String> {
    Err(format!("{n} fails"))
}

#[docket::task]
async fn metrics_later(n: u32) {
    let _ = n;
}

#[docket::task]
async fn metrics_hang(n: u32) {
    let _ = n;
    tokio::time::sleep(Duration::from_secs(3)).await;
}

/// Everything recorded so far, summed per metric name and label set. A debugging recorder
/// hands out deltas, so readings accumulate here.
#[derive(Default)]
struct Totals {
    counters: HashMap<String, u64>,
    histograms: HashMap<String, Vec<f64>>,
    /// Every value a gauge was set to since the last reading (a reading resets it to 0).
    gauges: HashMap<String, Vec<f64>>,
}

fn recorder() -> &'static (Snapshotter, Mutex<Totals>) {
    static RECORDER: OnceLock<(Snapshotter, Mutex<Totals>)> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this test binary");
        (snapshotter, Mutex::new(Totals::default()))
    })
}

/// `name{label=value}`, as Prometheus would print it.
fn metric(name: &str, label: &str, value: &str) -> String {
    format!("{name}{{{label}={value}}}")
}

fn totals() -> std::sync::MutexGuard<'static, Totals> {
    let (snapshotter, totals) = recorder();
    let mut totals = totals.lock().unwrap();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        let id = format!("{}{{{}}}", key.name(), labels.join(","));
        match value {
            DebugValue::Counter(delta) => *totals.counters.entry(id).or_default() += delta,
            DebugValue::Histogram(values) => totals
                .histograms
                .entry(id)
                .or_default()
                .extend(values.into_iter().map(|value| value.into_inner())),
            DebugValue::Gauge(value) => {
                totals
                    .gauges
                    .entry(id)
                    .or_default()
                    .push(value.into_inner());
            }
        }
    }
    totals
}

fn counter(name: &str, task: &str) -> u64 {
    let id = metric(name, "task", task);
    totals().counters.get(&id).copied().unwrap_or(0)
}

#[tokio::test]
async fn counters_and_histograms_follow_a_known_workload() {
    recorder();
    let docket = Docket::memory();
    for n in 0..3 {
        MetricsOk::schedule(n).on(&docket).await.unwrap();
    }
    MetricsFail::schedule(9).on(&docket).await.unwrap();
    // A duplicate key is not an added task.
    let keyed = MetricsOk::schedule(7)
        .key("metrics-ok-7")
        .on(&docket)
        .await
        .unwrap();
    MetricsOk::schedule(8)
        .key(keyed.key())
        .on(&docket)
        .await
        .unwrap();
    finish(&docket).await;

    assert_eq!(counter("docket_tasks_added_total", "metrics_ok"), 4);
    assert_eq!(counter("docket_tasks_started_total", "metrics_ok"), 4);
    assert_eq!(counter("docket_tasks_succeeded_total", "metrics_ok"), 4);
    assert_eq!(counter("docket_tasks_failed_total", "metrics_ok"), 0);

    assert_eq!(counter("docket_tasks_added_total", "metrics_fail"), 1);
    assert_eq!(counter("docket_tasks_started_total", "metrics_fail"), 2);
    assert_eq!(counter("docket_tasks_failed_total", "metrics_fail"), 2);
    assert_eq!(counter("docket_tasks_retried_total", "metrics_fail"), 1);
    assert_eq!(
        counter("docket_tasks_dead_lettered_total", "metrics_fail"),
        1
    );
    assert_eq!(counter("docket_tasks_redelivered_total", "metrics_fail"), 0);

    let totals = totals();
    let durations =
        &totals.histograms[&metric("docket_task_duration_seconds", "task", "metrics_ok")];
    assert_eq!(durations.len(), 4);
    assert!(
        durations.iter().all(|seconds| *seconds >= 0.02),
        "{durations:?}"
    );
    let lateness =
        &totals.histograms[&metric("docket_task_punctuality_seconds", "task", "metrics_ok")];
    assert_eq!(lateness.len(), 4);
    assert!(
        lateness.iter().all(|seconds| *seconds >= 0.0),
        "{lateness:?}"
    );
}

#[tokio::test]
async fn unknown_task_names_share_one_label() {
    recorder();
    let server = RedisServer::start();
    let docket = Docket::connect(server.url())
        .name(unique_name("metrics-unknown"))
        .await
        .unwrap();
    for n in 0..3 {
        docket
            .add_json(&format!("not_a_task_{n}"), "{}")
            .await
            .unwrap();
    }
    finish(&docket).await;
    assert_eq!(counter("docket_tasks_added_total", "unknown"), 3);
    assert_eq!(counter("docket_tasks_dead_lettered_total", "unknown"), 3);
    assert!(
        !totals().counters.keys().any(|id| id.contains("not_a_task")),
        "a task name that is not registered never becomes a label"
    );
}

#[tokio::test]
async fn depth_gauges_and_redeliveries_on_redis() {
    recorder();
    let server = RedisServer::start();
    let name = unique_name("metrics-redis");
    let open = || {
        Docket::connect(server.url())
            .name(&name)
            .redelivery_timeout(Duration::from_secs(1))
    };
    let first = open().await.unwrap();
    MetricsHang::schedule(1).on(&first).await.unwrap();
    assert_eq!(first.snapshot().await.unwrap().queued.len(), 1);
    for n in 0..2 {
        MetricsLater::schedule(n)
            .after(Duration::from_secs(3600))
            .on(&first)
            .await
            .unwrap();
    }

    // A consumer takes the task and vanishes without settling it, as a killed worker would.
    let stream = format!("{{{name}}}:stream");
    let _ = server.try_command(&["XGROUP", "CREATE", &stream, "workers", "0", "MKSTREAM"]);
    server.command(&[
        "XREADGROUP",
        "GROUP",
        "workers",
        "ghost",
        "COUNT",
        "10",
        "STREAMS",
        &stream,
        ">",
    ]);

    // Another worker, on its own connection, takes it over once the redelivery timeout passes.
    let second = open().await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(
        Worker::new(&second)
            .report_depth(Duration::from_millis(50))
            .run_until(async {
                let _ = stopped.await;
            }),
    );
    for _ in 0..200 {
        if counter("docket_tasks_redelivered_total", "metrics_hang") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
    assert_eq!(counter("docket_tasks_redelivered_total", "metrics_hang"), 1);
    let totals = totals();
    let scheduled = &totals.gauges[&metric("docket_schedule_depth", "docket", &name)];
    assert!(scheduled.contains(&2.0), "{scheduled:?}");
}
