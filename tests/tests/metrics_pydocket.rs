//! pydocket's metric names and labels beside docket's own (`docket::metrics::Names`), read as a
//! Prometheus scrape reads them, from the Prometheus exporter's rendering: absent by default,
//! and when asked for, one series per name both share (docket's, with pydocket's labels added)
//! and pydocket's other names beside.
//!
//! The names are a process-wide setting, as the recorder is: this binary has the one test.

use docket::metrics::{Names, set_names};
use docket::{Disposition, Docket, Worker};
use metrics_exporter_prometheus::PrometheusBuilder;
use tests::redis_server::unique_name;

#[docket::task]
async fn plain_ok(n: u32) {
    let _ = n;
}

#[docket::task]
async fn py_ok(n: u32) {
    let _ = n;
}

#[docket::task(retries = 1)]
async fn py_fail(n: u32) -> Result<(), String> {
    Err(format!("{n} fails"))
}

/// The value of the sample `name` whose labels are exactly `labels` (in any order), in the
/// Prometheus text `scrape`.
fn sample(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut wanted: Vec<String> = labels
        .iter()
        .map(|(key, value)| format!("{key}=\"{value}\""))
        .collect();
    wanted.sort();
    scrape.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, rest) = series.split_once('{').unwrap_or((series, "}"));
        if series_name != name {
            return None;
        }
        let mut found: Vec<String> = rest
            .strip_suffix('}')?
            .split(',')
            .filter(|label| !label.is_empty())
            .map(str::to_owned)
            .collect();
        found.sort();
        (found == wanted).then(|| value.parse().ok()).flatten()
    })
}

/// Every sample name in `scrape`, for the error messages.
fn names_in(scrape: &str) -> Vec<&str> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .collect()
}

async fn run(docket: &Docket) -> String {
    let worker = Worker::new(docket);
    let id = worker.id().to_owned();
    tests::in_time("the worker to finish", worker.run_until_finished())
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn pydocket_names_and_labels_are_reported_beside_docket_s_only_when_asked_for() {
    let prometheus = PrometheusBuilder::new().install_recorder().unwrap();

    // Off, the default: docket's names and labels alone.
    let docket = Docket::connect("memory://")
        .name(unique_name("metrics-off"))
        .await
        .unwrap();
    for n in 0..2 {
        PlainOk::schedule(n).on(&docket).await.unwrap();
    }
    run(&docket).await;
    let scrape = prometheus.render();
    let task = [("task", "plain_ok")];
    assert_eq!(
        sample(&scrape, "docket_tasks_added_total", &task),
        Some(2.0)
    );
    assert_eq!(
        sample(&scrape, "docket_tasks_started_total", &task),
        Some(2.0)
    );
    for pydocket_only in [
        "docket_name=",
        "docket_worker=",
        "docket_task=",
        "docket_tasks_scheduled_total",
        "docket_tasks_replaced_total",
        "docket_tasks_completed_total",
        "docket_tasks_running",
    ] {
        assert!(!scrape.contains(pydocket_only), "{pydocket_only}: {scrape}");
    }

    // On: the same measurements, also under pydocket's names and labels.
    set_names(Names::AlsoPydocket);
    let name = unique_name("metrics-py");
    let docket = Docket::connect("memory://").name(&name).await.unwrap();
    for n in 0..3 {
        PyOk::schedule(n).on(&docket).await.unwrap();
    }
    let keyed = PyOk::schedule(10)
        .key("py-ok-10")
        .after(std::time::Duration::from_secs(3600))
        .on(&docket)
        .await
        .unwrap();
    let replaced = PyOk::schedule(11)
        .key(keyed.key())
        .replace()
        .on(&docket)
        .await
        .unwrap();
    assert_eq!(replaced.disposition(), Disposition::Replaced);
    PyFail::schedule(9).on(&docket).await.unwrap();
    let worker = run(&docket).await;
    let scrape = prometheus.render();

    let scheduled = [("docket_name", name.as_str()), ("docket_task", "py_ok")];
    let shared = [
        ("task", "py_ok"),
        ("docket_name", name.as_str()),
        ("docket_task", "py_ok"),
    ];
    let ran = [
        ("task", "py_ok"),
        ("docket_name", name.as_str()),
        ("docket_worker", worker.as_str()),
        ("docket_task", "py_ok"),
    ];
    let ran_only = &ran[1..];
    let expected = [
        // One series where both name the measurement: docket's, with pydocket's labels added.
        ("docket_tasks_added_total", &shared[..], 5.0),
        ("docket_tasks_started_total", &ran[..], 4.0),
        ("docket_tasks_succeeded_total", &ran[..], 4.0),
        // pydocket's own names beside.
        ("docket_tasks_scheduled_total", &scheduled[..], 5.0),
        ("docket_tasks_replaced_total", &scheduled[..], 1.0),
        ("docket_tasks_completed_total", ran_only, 4.0),
        ("docket_tasks_running", ran_only, 0.0),
        ("docket_task_duration_seconds_count", &ran[..], 4.0),
        ("docket_task_punctuality_seconds_count", &ran[..], 4.0),
    ];
    for (metric, labels, value) in expected {
        assert_eq!(
            sample(&scrape, metric, labels),
            Some(value),
            "{metric}{labels:?} in {:?}\n{scrape}",
            names_in(&scrape)
        );
    }
    let failed = [
        ("task", "py_fail"),
        ("docket_name", name.as_str()),
        ("docket_worker", worker.as_str()),
        ("docket_task", "py_fail"),
    ];
    assert_eq!(
        sample(&scrape, "docket_tasks_failed_total", &failed),
        Some(2.0)
    );
    assert_eq!(
        sample(&scrape, "docket_tasks_retried_total", &failed),
        Some(1.0)
    );
    assert_eq!(
        sample(&scrape, "docket_tasks_dead_lettered_total", &failed),
        Some(1.0)
    );
    assert_eq!(
        sample(&scrape, "docket_tasks_completed_total", &failed[1..]),
        Some(2.0)
    );
    // No second series of a shared name: a sum over it counts each task once.
    let started: usize = scrape
        .lines()
        .filter(|line| line.starts_with("docket_tasks_started_total{") && line.contains("py_ok"))
        .count();
    assert_eq!(started, 1, "{scrape}");
    // The depth gauges a worker reports, under both label keys.
    PyOk::schedule(12)
        .after(std::time::Duration::from_secs(3600))
        .on(&docket)
        .await
        .unwrap();
    Worker::new(&docket)
        .report_depth(std::time::Duration::from_millis(20))
        .run_until(tokio::time::sleep(std::time::Duration::from_millis(300)))
        .await
        .unwrap();
    let scrape = prometheus.render();
    let depth = [("docket", name.as_str()), ("docket_name", name.as_str())];
    assert_eq!(
        sample(&scrape, "docket_schedule_depth", &depth),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, "docket_queue_depth", &depth),
        Some(0.0),
        "{scrape}"
    );

    // The series reported before keep docket's labels alone.
    assert_eq!(
        sample(&scrape, "docket_tasks_added_total", &task),
        Some(2.0)
    );
    set_names(Names::Docket);
}
