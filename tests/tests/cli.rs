//! Every `docket` command against a private `redis-server`, through `docket::cli::run_from`
//! (the function the `docket` binary and users' own binaries call), with `--json` output parsed.

use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use docket::{Docket, Worker};
use serde_json::Value;
use tests::redis_server::{RedisServer, unique_name};

/// Values `cli_probe` ran with, in this process.
static RAN: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());

#[docket::task]
async fn cli_probe(run: String, n: u32) {
    RAN.lock().unwrap().push((run, n));
}

/// Run by the Prometheus test alone: the recorder is global, and sees every test's tasks.
#[docket::task]
async fn cli_metered(run: String, n: u32) {
    RAN.lock().unwrap().push((run, n));
}

#[docket::task]
async fn cli_hang(run: String) {
    let _ = run;
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[docket::task(retries = 1)]
async fn cli_fail(run: String) -> Result<(), String> {
    Err(format!("{run} always fails"))
}

fn ran(run: &str) -> Vec<u32> {
    let mut values: Vec<u32> = RAN
        .lock()
        .unwrap()
        .iter()
        .filter(|(r, _)| r == run)
        .map(|(_, n)| *n)
        .collect();
    values.sort_unstable();
    values
}

/// A docket on a private server, and the arguments that name it on the command line.
struct Fixture {
    _server: RedisServer,
    docket: Docket,
    url: String,
    name: String,
}

impl Fixture {
    async fn new() -> Fixture {
        let server = RedisServer::start();
        let name = unique_name("cli");
        let url = server.url();
        let docket = Docket::connect(&url)
            .name(&name)
            .redelivery_timeout(Duration::from_secs(2))
            .await
            .unwrap();
        Fixture {
            _server: server,
            docket,
            url,
            name,
        }
    }

    /// Run `docket --url .. --name .. ARGS`; the exit code and what it printed.
    async fn run(&self, args: &[&str]) -> (ExitCode, String) {
        let mut argv = vec!["docket", "--url", &self.url, "--name", &self.name];
        argv.extend_from_slice(args);
        let mut out = Vec::new();
        let code = docket::cli::run_from(argv, &mut out).await;
        (code, String::from_utf8(out).unwrap())
    }

    /// Run with `--json`, expect success, parse the one JSON document printed.
    async fn json(&self, args: &[&str]) -> Value {
        let mut argv = vec!["--json"];
        argv.extend_from_slice(args);
        let (code, out) = self.run(&argv).await;
        assert_eq!(code, ExitCode::SUCCESS, "docket {args:?} failed: {out}");
        serde_json::from_str(&out).unwrap_or_else(|error| panic!("not JSON ({error}): {out}"))
    }

    async fn finish(&self) {
        tokio::time::timeout(
            Duration::from_secs(30),
            Worker::new(&self.docket).run_until_finished(),
        )
        .await
        .expect("the worker finished in time")
        .unwrap();
    }
}

#[tokio::test]
async fn version_prints_the_crate_version() {
    let fixture = Fixture::new().await;
    let (code, out) = fixture.run(&["version"]).await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(out.trim(), format!("docket {}", env!("CARGO_PKG_VERSION")));
    let json = fixture.json(&["version"]).await;
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn snapshot_counts_tasks_per_name_and_lists_them() {
    let fixture = Fixture::new().await;
    let run = unique_name("snapshot");
    for n in 0..3 {
        CliProbe::schedule(run.clone(), n)
            .on(&fixture.docket)
            .await
            .unwrap();
    }
    CliProbe::schedule(run.clone(), 9)
        .after(Duration::from_secs(3600))
        .on(&fixture.docket)
        .await
        .unwrap();
    CliFail::schedule(run.clone())
        .after(Duration::from_secs(3600))
        .on(&fixture.docket)
        .await
        .unwrap();

    let json = fixture.json(&["snapshot"]).await;
    assert_eq!(json["queued"].as_array().unwrap().len(), 3);
    assert_eq!(json["scheduled"].as_array().unwrap().len(), 2);
    assert_eq!(json["running"].as_array().unwrap().len(), 0);
    assert_eq!(json["dead"], 0);
    assert_eq!(json["tasks"]["cli_probe"]["queued"], 3);
    assert_eq!(json["tasks"]["cli_probe"]["scheduled"], 1);
    assert_eq!(json["tasks"]["cli_fail"]["scheduled"], 1);

    let (code, table) = fixture.run(&["snapshot"]).await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(
        table.starts_with("3 queued, 2 scheduled, 0 running, 0 held, 0 dead"),
        "{table}"
    );
    assert!(
        table.contains("TASK       QUEUED  SCHEDULED  RUNNING  HELD"),
        "{table}"
    );
    assert!(
        table.contains("cli_probe  3       1          0        0"),
        "{table}"
    );
}

#[tokio::test]
async fn workers_lists_a_running_worker_and_its_task() {
    let fixture = Fixture::new().await;
    let run = unique_name("workers");
    CliHang::schedule(run).on(&fixture.docket).await.unwrap();
    let worker = Worker::new(&fixture.docket);
    let name = worker.id().to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let background = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));
    let mut listed = Value::Null;
    for _ in 0..100 {
        listed = fixture.json(&["workers"]).await;
        if listed["workers"][0]["running"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listed["workers"][0]["name"], name.as_str(), "{listed}");
    assert_eq!(listed["workers"][0]["running"], 1, "{listed}");
    assert!(listed["workers"][0]["idle_ms"].is_u64());

    // The hanging task is cancelled through the CLI, so the worker can stop.
    let key = fixture.docket.snapshot().await.unwrap().running[0]
        .key
        .clone();
    let cancelled = fixture.json(&["cancel", &key]).await;
    assert_eq!(cancelled["changed"], true, "{cancelled}");
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), background)
        .await
        .expect("the cancelled task let the worker stop")
        .unwrap()
        .unwrap();
    assert!(fixture.docket.snapshot().await.unwrap().is_empty());
}

#[tokio::test]
async fn strike_holds_matching_runs_and_restore_queues_them_again() {
    let fixture = Fixture::new().await;
    let run = unique_name("strike");
    let struck = fixture.json(&["strike", "cli_probe", "n", ">=", "5"]).await;
    assert_eq!(struck["changed"], true, "{struck}");
    let again = fixture.json(&["strike", "cli_probe", "n", ">=", "5"]).await;
    assert_eq!(again["changed"], false, "{again}");
    let listed = fixture.json(&["strikes"]).await;
    assert_eq!(
        listed["strikes"],
        serde_json::json!([{ "task": "cli_probe", "when": { "param": "n", "op": ">=", "value": 5 } }])
    );

    for n in 1..=8 {
        CliProbe::schedule(run.clone(), n)
            .on(&fixture.docket)
            .await
            .unwrap();
    }
    fixture.finish().await;
    assert_eq!(ran(&run), [1, 2, 3, 4]);
    let snapshot = fixture.json(&["snapshot"]).await;
    assert_eq!(snapshot["held"].as_array().unwrap().len(), 4, "{snapshot}");

    let restored = fixture
        .json(&["restore", "cli_probe", "n", ">=", "5"])
        .await;
    assert_eq!(restored["count"], 4, "{restored}");
    fixture.finish().await;
    assert_eq!(ran(&run), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        fixture.json(&["strikes"]).await["strikes"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn cancel_reports_whether_a_task_was_found() {
    let fixture = Fixture::new().await;
    let run = unique_name("cancel");
    let scheduled = CliProbe::schedule(run.clone(), 1)
        .after(Duration::from_secs(3600))
        .on(&fixture.docket)
        .await
        .unwrap();
    let found = fixture.json(&["cancel", scheduled.key()]).await;
    assert_eq!(found["changed"], true);
    let missing = fixture.json(&["cancel", scheduled.key()]).await;
    assert_eq!(missing["changed"], false);
    let (_, text) = fixture.run(&["cancel", "no-such-key"]).await;
    assert_eq!(
        text.trim(),
        "no task with key no-such-key is waiting or running"
    );
}

#[tokio::test]
async fn clear_removes_queued_and_scheduled_tasks() {
    let fixture = Fixture::new().await;
    let run = unique_name("clear");
    for n in 0..5 {
        CliProbe::schedule(run.clone(), n)
            .on(&fixture.docket)
            .await
            .unwrap();
    }
    CliProbe::schedule(run.clone(), 99)
        .after(Duration::from_secs(3600))
        .on(&fixture.docket)
        .await
        .unwrap();
    let cleared = fixture.json(&["clear"]).await;
    assert_eq!(cleared["count"], 6, "{cleared}");
    assert!(fixture.docket.snapshot().await.unwrap().is_empty());
    fixture.finish().await;
    assert!(ran(&run).is_empty(), "cleared tasks never run");
    // The keys are free again.
    CliProbe::schedule(run.clone(), 7)
        .key(format!("{run}-again"))
        .on(&fixture.docket)
        .await
        .unwrap();
    fixture.finish().await;
    assert_eq!(ran(&run), [7]);
}

#[tokio::test]
async fn dead_letters_are_listed_with_their_history_and_replayed() {
    let fixture = Fixture::new().await;
    let run = unique_name("dead");
    let first = CliFail::schedule(run.clone())
        .on(&fixture.docket)
        .await
        .unwrap();
    let second = CliFail::schedule(run.clone())
        .on(&fixture.docket)
        .await
        .unwrap();
    fixture.finish().await;

    let listed = fixture.json(&["dead", "list"]).await;
    let dead = listed["dead"].as_array().unwrap();
    assert_eq!(dead.len(), 2, "{listed}");
    let letter = dead.iter().find(|d| d["key"] == first.key()).unwrap();
    assert_eq!(letter["task"], "cli_fail");
    assert_eq!(letter["args"]["run"], run.as_str());
    assert_eq!(letter["attempt"], 2);
    let history = letter["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{letter}");
    assert_eq!(history[0]["attempt"], 1);
    assert_eq!(history[0]["error"], format!("{run} always fails"));

    let replayed = fixture.json(&["dead", "replay", first.key()]).await;
    assert_eq!(replayed["replayed"], serde_json::json!([first.key()]));
    let snapshot = fixture.docket.snapshot().await.unwrap();
    assert_eq!(snapshot.queued.len(), 1);
    assert_eq!(snapshot.dead, 1);
    let all = fixture.json(&["dead", "replay", "--all"]).await;
    assert_eq!(all["replayed"], serde_json::json!([second.key()]));
    assert_eq!(fixture.docket.snapshot().await.unwrap().queued.len(), 2);
}

#[tokio::test]
async fn the_worker_command_runs_the_binarys_tasks() {
    let fixture = Fixture::new().await;
    let run = unique_name("worker");
    CliProbe::schedule(run.clone(), 3)
        .on(&fixture.docket)
        .await
        .unwrap();
    let argv: Vec<String> = [
        "docket",
        "--url",
        &fixture.url,
        "--name",
        &fixture.name,
        "worker",
        "--concurrency",
        "2",
        "--redelivery-timeout",
        "1.5s",
    ]
    .map(str::to_owned)
    .into();
    let worker = tokio::spawn(async move {
        let mut out = Vec::new();
        docket::cli::run_from(argv, &mut out).await
    });
    for _ in 0..200 {
        if !ran(&run).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    worker.abort();
    assert_eq!(ran(&run), [3]);
}

#[tokio::test]
async fn mistakes_exit_with_an_error() {
    let fixture = Fixture::new().await;
    let mut out = Vec::new();
    // No URL: DOCKET_URL is not set for this test process.
    let code = docket::cli::run_from(["docket", "--url", "", "snapshot"], &mut out).await;
    assert_eq!(code, ExitCode::FAILURE);
    let (code, _) = fixture.run(&["strike", "cli_probe", "n", "=~", "5"]).await;
    assert_eq!(
        code,
        ExitCode::from(2),
        "an unknown operator is a usage error"
    );
    let (code, _) = fixture.run(&["strike", "*"]).await;
    assert_eq!(
        code,
        ExitCode::FAILURE,
        "striking every task needs a condition"
    );
    let (code, _) = fixture
        .run(&["worker", "--redelivery-timeout", "5 parsecs"])
        .await;
    assert_eq!(code, ExitCode::from(2));
}

#[tokio::test]
async fn the_worker_command_serves_prometheus_metrics() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let fixture = Fixture::new().await;
    let run = unique_name("prometheus");
    CliMetered::schedule(run.clone(), 5)
        .on(&fixture.docket)
        .await
        .unwrap();
    let port = tests::redis_server::free_port().to_string();
    let argv: Vec<String> = [
        "docket",
        "--url",
        &fixture.url,
        "--name",
        &fixture.name,
        "worker",
        "--metrics-port",
        &port,
        "--metrics-address",
        "127.0.0.1",
    ]
    .map(str::to_owned)
    .into();
    let worker = tokio::spawn(async move {
        let mut out = Vec::new();
        docket::cli::run_from(argv, &mut out).await
    });
    let mut body = String::new();
    // Generous: this runs beside the other tests, each with a redis-server of its own.
    for _ in 0..800 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let Ok(mut stream) =
            tokio::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).await
        else {
            continue;
        };
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        body.clear();
        stream.read_to_string(&mut body).await.unwrap();
        if body.contains("docket_tasks_succeeded_total{task=\"cli_metered\"}") {
            break;
        }
    }
    worker.abort();
    assert_eq!(ran(&run), [5]);
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(
        body.contains("docket_tasks_succeeded_total{task=\"cli_metered\"} 1"),
        "{body}"
    );
    assert!(body.contains("docket_task_duration_seconds"), "{body}");
}

/// The command line follows the stored layout: on a docket spread over three partitions, its
/// snapshot counts every partition's tasks, a cancel finds a key in any partition, and `clear`
/// empties them all.
#[tokio::test]
async fn the_cli_covers_every_partition_of_a_spread_docket() {
    let fixture = Fixture::new().await;
    let spread = Docket::connect(&fixture.url)
        .name(&fixture.name)
        .partitions(3)
        .await
        .unwrap();
    let run = unique_name("spread");
    for n in 0..30 {
        CliProbe::schedule(run.clone(), n)
            .key(format!("{run}-{n}"))
            .on(&spread)
            .await
            .unwrap();
    }
    let json = fixture.json(&["snapshot"]).await;
    assert_eq!(json["queued"].as_array().unwrap().len(), 30, "{json}");
    for n in [0, 13, 29] {
        let (code, out) = fixture.run(&["cancel", &format!("{run}-{n}")]).await;
        assert_eq!(code, ExitCode::SUCCESS, "{out}");
    }
    let json = fixture.json(&["snapshot"]).await;
    assert_eq!(json["queued"].as_array().unwrap().len(), 27, "{json}");
    let (code, out) = fixture.run(&["clear"]).await;
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    assert!(out.contains("27"), "{out}");
    assert_eq!(spread.snapshot().await.unwrap().len(), 0);
}
