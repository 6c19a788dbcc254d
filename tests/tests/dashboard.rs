//! The web dashboard (`docket::dashboard`) over a private Redis with a known workload, driven in
//! headless Chromium through chromedriver: the counts match the workload and follow it live, a
//! `<script>` argument shows as text, a strike holds and its restore releases, a cancel stops a
//! running task, a replayed dead letter runs, a request without the token is refused, the runs
//! by task name match what the workers ran, and a kept task's page lists its state changes.
//! Screenshots of the overview and of task pages go to `target/dashboard-screenshots/`.
//!
//! One browser session walks through the steps in order (starting Chromium is the slow part);
//! each step is a function named for what it checks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use docket::Docket;
use docket::dashboard::Dashboard;
use fantoccini::{Client, ClientBuilder, Locator};
use tests::background::Background;
use tests::browser::Chromedriver;
use tests::redis_server::{RedisServer, unique_name};
use tests::{PATIENCE, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

static DOOMED_RUNS: AtomicUsize = AtomicUsize::new(0);
static PARKED_RUNS: AtomicUsize = AtomicUsize::new(0);
static SLEEPY_STARTED: AtomicBool = AtomicBool::new(false);
static SLEEPY_STOPPED: AtomicBool = AtomicBool::new(false);
static SLEEPY_DONE: AtomicBool = AtomicBool::new(false);
static FLAKY_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Fails for good: its one run makes a dead letter.
#[docket::task]
async fn doomed(n: u32) -> Result<(), docket::Fail> {
    DOOMED_RUNS.fetch_add(1, Ordering::SeqCst);
    Err(docket::Fail::because(format!("disk {n} on fire")))
}

#[docket::task]
async fn echo(text: String) {
    let _ = text;
}

/// The task the strike holds.
#[docket::task]
async fn parked(n: u32) {
    let _ = n;
    PARKED_RUNS.fetch_add(1, Ordering::SeqCst);
}

/// Runs for a minute unless cancelled; says when it starts and when it is stopped.
#[docket::task]
async fn sleepy(n: u32) {
    let _ = n;
    struct Stopped;
    impl Drop for Stopped {
        fn drop(&mut self) {
            if !SLEEPY_DONE.load(Ordering::SeqCst) {
                SLEEPY_STOPPED.store(true, Ordering::SeqCst);
            }
        }
    }
    let _stopped = Stopped;
    SLEEPY_STARTED.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(60)).await;
    SLEEPY_DONE.store(true, Ordering::SeqCst);
}

/// Takes 30 ms, then fails for good when `n` is odd.
#[docket::task]
async fn flaky(n: u32) -> Result<(), docket::Fail> {
    tokio::time::sleep(Duration::from_millis(30)).await;
    FLAKY_RUNS.fetch_add(1, Ordering::SeqCst);
    match n % 2 {
        1 => Err(docket::Fail::because(format!("{n} is odd"))),
        _ => Ok(()),
    }
}

/// Keeps its state; asks for a retry after 10 ms on its first attempt.
#[docket::task(result, retries = 1)]
async fn kept(n: u32, ctx: docket::Context) -> Result<u32, docket::Retry> {
    match ctx.attempt() {
        1 => Err(docket::Retry::after(Duration::from_millis(10))),
        _ => Ok(n),
    }
}

const XSS: &str = "<script>document.title='pwned'</script>";

/// Serve `app` on a free loopback port; its address.
async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// A WebDriver session in headless Chromium.
async fn browser(driver: &Chromedriver) -> Client {
    let options = serde_json::json!({
        "binary": driver.chromium(),
        "args": driver.chromium_args(),
    });
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url())
        .await
        .expect("a Chromium session through chromedriver")
}

/// Where the screenshots go: `target/dashboard-screenshots/`.
fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp is in target/")
        .join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The text of the first element `css` selects; fails the test, showing the page, when none.
async fn text(client: &Client, css: &str) -> String {
    let found = client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css));
    match found.await {
        Ok(element) => element.text().await.unwrap(),
        Err(error) => {
            let page = client.source().await.unwrap_or_default();
            panic!("no `{css}` on the page ({error}):\n{page}")
        }
    }
}

/// Click the submit button of the action form `action` on this page, then confirm; the
/// sentence the dashboard answers with.
async fn act(client: &Client, form: &str) -> String {
    client
        .find(Locator::Css(&format!("{form} button[type=submit]")))
        .await
        .unwrap_or_else(|error| panic!("no action form `{form}`: {error}"))
        .click()
        .await
        .unwrap();
    let asked = text(client, "#confirm-what").await;
    client
        .find(Locator::Id("confirm"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let done = text(client, "[role=status]").await;
    assert!(!asked.is_empty(), "the confirmation says what it does");
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_and_steers_the_queue_in_a_real_browser() {
    let driver = Chromedriver::start();
    let server = RedisServer::start();
    // A short redelivery timeout: workers publish their runs every second (a fifth of it).
    let docket = Docket::connect(server.url())
        .name(unique_name("dash"))
        .redelivery_timeout(Duration::from_secs(5))
        .await
        .unwrap();
    let workload = Workload::load(&docket).await;

    let app = axum::Router::new().nest(
        "/docket",
        Dashboard::new(&docket)
            .without_token()
            .actions(true)
            .router(),
    );
    let base = format!("http://{}/docket", serve(app).await);
    let client = browser(&driver).await;

    counts_match_the_workload(&client, &base).await;
    lists_page_and_filter(&client, &base).await;
    a_script_argument_shows_as_text(&client, &base).await;
    let worker = a_strike_holds_and_its_restore_releases(&client, &base, &docket).await;
    a_cancel_stops_a_running_task(&client, &base, &docket).await;
    a_replayed_dead_letter_runs(&client, &base, &workload).await;
    a_browser_without_the_token_is_refused(&client, &docket).await;
    runs_by_task_match_the_workload(&client, &base, &docket).await;
    a_task_page_shows_its_state_changes(&client, &base, &docket).await;

    worker.stop().await;
    client.close().await.unwrap();
}

/// What the docket holds before any worker runs.
struct Workload {
    dead_key: String,
}

impl Workload {
    /// One dead letter, then 7 queued tasks (one with a `<script>` argument) and 3 scheduled.
    async fn load(docket: &Docket) -> Workload {
        let dead = Doomed::schedule(1)
            .key("doomed-1")
            .on(docket)
            .await
            .unwrap();
        tests::finish(docket).await;
        assert_eq!(DOOMED_RUNS.load(Ordering::SeqCst), 1);
        for n in 0..6 {
            Echo::schedule(format!("hello {n}"))
                .key(format!("echo-{n}"))
                .on(docket)
                .await
                .unwrap();
        }
        Echo::schedule(XSS.to_owned())
            .key("xss")
            .on(docket)
            .await
            .unwrap();
        for n in 0..3 {
            Echo::schedule(format!("later {n}"))
                .key(format!("later-{n}"))
                .after(Duration::from_secs(3600))
                .on(docket)
                .await
                .unwrap();
        }
        Workload {
            dead_key: dead.key().to_owned(),
        }
    }
}

async fn counts_match_the_workload(client: &Client, base: &str) {
    client.goto(base).await.unwrap();
    assert_eq!(text(client, "h1").await, "Overview");
    for (name, count) in [
        ("queued", "7"),
        ("scheduled", "3"),
        ("running", "0"),
        ("held", "0"),
        ("dead", "1"),
    ] {
        assert_eq!(
            text(client, &format!("#count-{name}")).await,
            count,
            "{name}"
        );
    }
    // The live updates connect (the footer says so once the first event arrives).
    eventually("the live updates to connect", PATIENCE, async || {
        text(client, "#live").await.starts_with("Live: updated")
    })
    .await;
    let png = client.screenshot().await.unwrap();
    std::fs::write(screenshots().join("overview.png"), png).unwrap();
}

async fn lists_page_and_filter(client: &Client, base: &str) {
    client.goto(&format!("{base}/tasks/queued")).await.unwrap();
    let rows = client.find_all(Locator::Css("tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 7);
    client
        .goto(&format!("{base}/tasks/queued?key=echo-&task=echo"))
        .await
        .unwrap();
    let rows = client.find_all(Locator::Css("tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 6);
    client
        .goto(&format!("{base}/tasks/scheduled?task=nothing"))
        .await
        .unwrap();
    assert!(
        client
            .find_all(Locator::Css("tbody tr"))
            .await
            .unwrap()
            .is_empty()
    );
    client
        .goto(&format!("{base}/tasks/scheduled"))
        .await
        .unwrap();
    let rows = client.find_all(Locator::Css("tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows[0].text().await.unwrap().contains("in 59m"));
}

async fn a_script_argument_shows_as_text(client: &Client, base: &str) {
    client.goto(&format!("{base}/task?key=xss")).await.unwrap();
    let arguments = text(client, "pre.json").await;
    assert!(arguments.contains(XSS), "{arguments}");
    // The argument's script never ran, and is no element of the page: only the dashboard's own
    // script is.
    assert!(!client.title().await.unwrap().contains("pwned"));
    let scripts = client
        .execute("return document.scripts.length", vec![])
        .await
        .unwrap();
    assert_eq!(scripts, serde_json::json!(1));
    let png = client.screenshot().await.unwrap();
    std::fs::write(screenshots().join("task.png"), png).unwrap();
}

/// Leaves the worker it starts running, for the next steps.
async fn a_strike_holds_and_its_restore_releases(
    client: &Client,
    base: &str,
    docket: &Docket,
) -> Background {
    client.goto(&format!("{base}/strikes")).await.unwrap();
    let task = client
        .find(Locator::Css("form.strike input[name=task]"))
        .await
        .unwrap();
    task.send_keys("parked").await.unwrap();
    let done = act(client, "form.strike").await;
    assert_eq!(done, "Struck `parked`.");
    client.goto(&format!("{base}/strikes")).await.unwrap();
    assert_eq!(text(client, "ul.strikes code").await, "parked");

    // The strike is in place before any worker starts: the worker holds the task.
    Parked::schedule(1)
        .key("parked-1")
        .on(docket)
        .await
        .unwrap();
    Sleepy::schedule(1).key("long").on(docket).await.unwrap();
    let worker = Background::start(docket::Worker::new(docket));
    eventually("the struck task to be held", PATIENCE, async || {
        docket.snapshot().await.unwrap().held.len() == 1
    })
    .await;
    client.goto(&format!("{base}/tasks/held")).await.unwrap();
    assert!(text(client, "tbody").await.contains("parked-1"));
    assert_eq!(PARKED_RUNS.load(Ordering::SeqCst), 0);

    client.goto(&format!("{base}/strikes")).await.unwrap();
    let done = act(client, "ul.strikes form.action").await;
    assert_eq!(done, "Restored `parked`; 1 held tasks queued again.");
    eventually("the released task to run", PATIENCE, async || {
        PARKED_RUNS.load(Ordering::SeqCst) == 1
    })
    .await;
    worker
}

async fn a_cancel_stops_a_running_task(client: &Client, base: &str, docket: &Docket) {
    eventually("the long task to start", PATIENCE, async || {
        SLEEPY_STARTED.load(Ordering::SeqCst)
    })
    .await;
    client.goto(base).await.unwrap();
    eventually(
        "the overview to count the long task running",
        PATIENCE,
        async || text(client, "#count-running").await == "1",
    )
    .await;
    // With a worker and its running task: the screenshot for the README.
    client.refresh().await.unwrap();
    let running = text(client, "section[aria-labelledby=running] table").await;
    assert!(running.contains("long"), "{running}");
    // The workers table names what each worker runs.
    let workers = text(client, "section[aria-labelledby=workers] table").await;
    assert!(workers.contains("sleepy long"), "{workers}");
    let png = client.screenshot().await.unwrap();
    std::fs::write(screenshots().join("overview-running.png"), png).unwrap();
    client.goto(&format!("{base}/task?key=long")).await.unwrap();
    assert_eq!(text(client, "#now").await, "Now: running");
    let done = act(client, "form.action[action$='/actions/cancel']").await;
    assert_eq!(done, "Cancelled long.");
    eventually("the cancelled task to stop", PATIENCE, async || {
        SLEEPY_STOPPED.load(Ordering::SeqCst) && docket.snapshot().await.unwrap().running.is_empty()
    })
    .await;
    assert!(!SLEEPY_DONE.load(Ordering::SeqCst));
    // The overview, left open, follows the queue live: the echo tasks ran.
    client.goto(base).await.unwrap();
    eventually(
        "the overview to show the queue drained",
        PATIENCE,
        async || {
            text(client, "#count-queued").await == "0"
                && text(client, "#count-running").await == "0"
        },
    )
    .await;
}

/// The numbers of the runs table's row of `task`: runs, failures, mean duration.
async fn runs_row(client: &Client, task: &str) -> Vec<String> {
    let cells = client
        .find_all(Locator::Css(&format!(
            "#runs-table tr[data-task='{task}'] td.num"
        )))
        .await
        .unwrap();
    let mut texts = Vec::new();
    for cell in cells {
        texts.push(cell.text().await.unwrap());
    }
    texts
}

async fn runs_by_task_match_the_workload(client: &Client, base: &str, docket: &Docket) {
    for n in 0..5 {
        Flaky::schedule(n).on(docket).await.unwrap();
    }
    eventually("the flaky tasks to run", PATIENCE, async || {
        FLAKY_RUNS.load(Ordering::SeqCst) == 5
    })
    .await;
    // Workers publish their runs at most once a period (here 1 s): reload until they did.
    eventually(
        "the overview to count the flaky runs",
        PATIENCE,
        async || {
            client.goto(base).await.unwrap();
            runs_row(client, "flaky")
                .await
                .starts_with(&["5", "2"].map(String::from))
        },
    )
    .await;
    let mean = runs_row(client, "flaky").await.remove(2);
    let millis: u64 = mean
        .strip_suffix(" ms")
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("a mean in ms: {mean}"));
    assert!((30..1000).contains(&millis), "{mean}");
    // The rest of the workload. The first worker, which ran the doomed task twice, stopped
    // before the dashboard first asked the workers for their runs, so it never published them
    // (publishing costs a command: workers publish only while a dashboard wants it). The
    // second ran everything since, the doomed task's replay too; the cancelled run is no
    // failure.
    for (task, runs, failures) in [
        ("doomed", "1", "1"),
        ("echo", "7", "0"),
        ("parked", "1", "0"),
        ("sleepy", "1", "0"),
    ] {
        let row = runs_row(client, task).await;
        assert!(
            row.starts_with(&[runs, failures].map(String::from)),
            "{task}: {row:?}"
        );
    }
    assert!(
        text(client, "#runs").await.contains("last 5 minutes"),
        "the window is stated"
    );
    let png = client.screenshot().await.unwrap();
    std::fs::write(screenshots().join("overview-runs.png"), png).unwrap();
}

async fn a_task_page_shows_its_state_changes(client: &Client, base: &str, docket: &Docket) {
    let scheduled = Kept::schedule(3).key("kept-3").on(docket).await.unwrap();
    let result = tests::in_time("the kept task's result", scheduled.result::<u32>()).await;
    assert_eq!(result.unwrap(), 3);
    client
        .goto(&format!("{base}/task?key=kept-3"))
        .await
        .unwrap();
    let rows = client
        .find_all(Locator::Css("#changes-table tbody tr"))
        .await
        .unwrap();
    let mut changes = Vec::new();
    for row in rows {
        let cells = row.find_all(Locator::Css("td")).await.unwrap();
        let (state, attempt) = (
            cells[0].text().await.unwrap(),
            cells[1].text().await.unwrap(),
        );
        changes.push(format!("{state} {attempt}"));
    }
    assert_eq!(
        changes,
        ["scheduled 2", "queued 2", "running 2", "completed 2"],
        "a retry, then the second attempt's run"
    );
    let png = client.screenshot().await.unwrap();
    std::fs::write(screenshots().join("task-changes.png"), png).unwrap();
}

async fn a_replayed_dead_letter_runs(client: &Client, base: &str, workload: &Workload) {
    client.goto(&format!("{base}/dead")).await.unwrap();
    let article = text(client, "article.dead").await;
    assert!(article.contains(&workload.dead_key), "{article}");
    assert!(article.contains("disk 1 on fire"), "{article}");
    let done = act(
        client,
        "article.dead form.action[action$='/actions/replay']",
    )
    .await;
    assert_eq!(done, format!("Replayed {}.", workload.dead_key));
    eventually("the replayed task to run", PATIENCE, async || {
        DOOMED_RUNS.load(Ordering::SeqCst) == 2
    })
    .await;
}

async fn a_browser_without_the_token_is_refused(client: &Client, docket: &Docket) {
    let address = serve(Dashboard::new(docket).token("s3cret").router()).await;
    client.goto(&format!("http://{address}/")).await.unwrap();
    assert!(client.find(Locator::Id("count-queued")).await.is_err());
    let refused = client.source().await.unwrap();
    assert!(!refused.contains("Overview"), "{refused}");
    // With the token as the basic password, the same browser gets in.
    client
        .goto(&format!("http://ops:s3cret@{address}/"))
        .await
        .unwrap();
    assert_eq!(text(client, "h1").await, "Overview");
    // The replayed letter died again.
    assert_eq!(text(client, "#count-dead").await, "1");
}

/// A raw HTTP/1.1 `GET` of `path` with extra header lines: the status code and the body.
async fn get(address: SocketAddr, path: &str, headers: &str) -> (u16, String) {
    Get::send(address, path, headers).await.whole().await
}

/// A `GET` sent, its response not read yet.
struct Get(tokio::net::TcpStream);

impl Get {
    async fn send(address: SocketAddr, path: &str, headers: &str) -> Get {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{headers}\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        Get(stream)
    }

    /// The status and the whole body, once the server closes.
    async fn whole(mut self) -> (u16, String) {
        let mut response = String::new();
        self.0.read_to_string(&mut response).await.unwrap();
        split(&response)
    }

    /// The status and what came up to the end of the first server-sent event.
    async fn first_event(mut self) -> (u16, String) {
        let mut response = Vec::new();
        let mut buffer = [0; 4096];
        while !String::from_utf8_lossy(&response).contains("event: counts") {
            let read = tests::in_time("an event", self.0.read(&mut buffer))
                .await
                .unwrap();
            assert_ne!(read, 0, "the stream ended before an event");
            response.extend_from_slice(&buffer[..read]);
        }
        split(&String::from_utf8_lossy(&response))
    }
}

fn split(response: &str) -> (u16, String) {
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    (status, body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_the_token_is_refused() {
    let docket = Docket::memory();
    let address = serve(Dashboard::new(&docket).token("s3cret").router()).await;
    let (status, body) = get(address, "/", "").await;
    assert_eq!(status, 401);
    assert!(body.contains("needs its token"));
    assert_eq!(get(address, "/events", "").await.0, 401);
    let wrong = get(address, "/", "Authorization: Bearer s3cre\r\n").await;
    assert_eq!(wrong.0, 401);
    let bearer = get(address, "/", "Authorization: Bearer s3cret\r\n").await;
    assert_eq!(bearer.0, 200);
    assert!(bearer.1.contains("<h1>Overview</h1>"));
    // `ops:s3cret`
    let basic = get(address, "/", "Authorization: Basic b3BzOnMzY3JldA==\r\n").await;
    assert_eq!(basic.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_are_off_unless_enabled_and_need_the_csrf_token() {
    let docket = Docket::memory();
    let read_only = serve(Dashboard::new(&docket).without_token().router()).await;
    let page = get(read_only, "/strikes", "").await.1;
    assert!(!page.contains("<form class=\"strike\""));
    let refused = post(read_only, "/actions/strike", "csrf=x&task=scan&confirm=yes").await;
    assert_eq!(refused, 404, "no action route when actions are off");

    let acting = serve(
        Dashboard::new(&docket)
            .without_token()
            .actions(true)
            .router(),
    )
    .await;
    let forged = post(
        acting,
        "/actions/strike",
        "csrf=guess&task=scan&confirm=yes",
    )
    .await;
    assert_eq!(forged, 403);
    assert!(docket.strikes().await.unwrap().is_empty());
}

/// A raw HTTP/1.1 form `POST`; the status code.
async fn post(address: SocketAddr, path: &str, form: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response[9..12].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_beyond_loopback_needs_a_token() {
    let docket = Docket::memory();
    let address: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let refused = Dashboard::new(&docket).without_token().serve(address).await;
    let error = refused.expect_err("no token, not loopback");
    assert!(
        error.to_string().contains("DOCKET_DASHBOARD_TOKEN"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_costs_five_redis_commands_however_many_pages_are_open() {
    let server = RedisServer::start();
    let docket = Docket::connect(server.url())
        .name(unique_name("dash-cost"))
        .await
        .unwrap();
    Echo::schedule("x".into()).on(&docket).await.unwrap();
    let address = serve(Dashboard::new(&docket).without_token().router()).await;
    let before = docket.commands_sent();
    let (status, page) = Get::send(address, "/events", "").await.first_event().await;
    assert_eq!(status, 200);
    assert!(page.contains("\"queued\":1"), "{page}");
    assert_eq!(
        docket.commands_sent() - before,
        5,
        "one refresh: the counts"
    );
    // More pages listening within the refresh period read nothing more.
    for _ in 0..3 {
        let (_, page) = Get::send(address, "/events", "").await.first_event().await;
        assert!(page.contains("\"queued\":1"), "{page}");
    }
    assert_eq!(docket.commands_sent() - before, 5);
}

/// A `docket-test-worker` process, killed when dropped.
struct WorkerProcess(std::process::Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The numbers of the runs table's row of `task` in an overview's HTML: runs, failures, mean.
fn runs_cells(page: &str, task: &str) -> Vec<String> {
    let Some(start) = page.find(&format!("<tr data-task=\"{task}\">")) else {
        return Vec::new();
    };
    let row = &page[start..];
    let row = &row[..row.find("</tr>").unwrap_or(row.len())];
    row.split("<td class=\"num\">")
        .skip(1)
        .map(|cell| cell.split("</td>").next().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_runs_reach_the_dashboard_of_another_process() {
    let server = RedisServer::start();
    let docket = Docket::connect(server.url())
        .name(unique_name("dash-runs"))
        .await
        .unwrap();
    // Tasks of `docket-test-worker`: 3 runs of 30 ms, and 2 whose arguments do not decode
    // (a failed run each).
    for n in 0..3 {
        let args = format!(r#"{{"n":{n},"hold_ms":30}}"#);
        docket.add_json("crash_probe", &args).await.unwrap();
    }
    for _ in 0..2 {
        let args = r#"{"n":"not a number","hold_ms":0}"#;
        docket.add_json("crash_probe", args).await.unwrap();
    }
    let address = serve(Dashboard::new(&docket).without_token().router()).await;
    let (_, page) = get(address, "/", "").await;
    assert!(
        page.contains("No task ran in the last 5 minutes."),
        "{page}"
    );

    let _worker = WorkerProcess(
        std::process::Command::new(env!("CARGO_BIN_EXE_docket-test-worker"))
            .env("DOCKET_URL", server.url())
            .env("DOCKET_NAME", docket.name())
            .env("DOCKET_TEST_LOG", server.dir().join("runs.log"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start the test worker"),
    );
    let mut page = String::new();
    eventually(
        "the other process's runs to show on the overview",
        PATIENCE,
        async || {
            page = get(address, "/", "").await.1;
            runs_cells(&page, "crash_probe").get(..2) == Some(&["5".into(), "2".into()][..])
        },
    )
    .await;
    // Three runs of at least 30 ms and two that failed at once.
    let mean = &runs_cells(&page, "crash_probe")[2];
    let millis: u64 = mean.strip_suffix(" ms").unwrap().parse().unwrap();
    assert!((18..1000).contains(&millis), "{mean}");

    // What an overview page costs on Redis, the runs table included: printed for the record.
    let before = docket.commands_sent();
    get(address, "/", "").await;
    println!(
        "an overview page: {} commands",
        docket.commands_sent() - before
    );
}

/// Fails for good, at once.
#[docket::task]
async fn refuses(n: u32) -> Result<(), docket::Fail> {
    Err(docket::Fail::because(format!("no {n}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_dockets_overview_counts_the_runs_of_its_workers() {
    let docket = Docket::memory();
    for n in 0..3 {
        Echo::schedule(n.to_string()).on(&docket).await.unwrap();
    }
    Refuses::schedule(1).on(&docket).await.unwrap();
    tests::finish(&docket).await;
    let address = serve(Dashboard::new(&docket).without_token().router()).await;
    let (_, page) = get(address, "/", "").await;
    assert_eq!(runs_cells(&page, "echo")[..2], ["3", "0"], "{page}");
    assert_eq!(runs_cells(&page, "refuses")[..2], ["1", "1"], "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_ends_the_open_event_streams_so_a_graceful_shutdown_is_not_held() {
    let docket = Docket::memory();
    let stop = tokio_util::sync::CancellationToken::new();
    let dashboard = Dashboard::new(&docket)
        .without_token()
        .stop_on(stop.clone());
    let address = serve(dashboard.router()).await;
    let mut open = Get::send(address, "/events", "").await;
    let mut buffer = [0; 4096];
    let first = tests::in_time("the first event", open.0.read(&mut buffer)).await;
    assert!(String::from_utf8_lossy(&buffer[..first.unwrap()]).contains("200 OK"));
    stop.cancel();
    let mut rest = Vec::new();
    tests::in_time("the stream to end", open.0.read_to_end(&mut rest))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_serves_the_dashboard_on_loopback_and_refuses_beyond_it_without_a_token() {
    let listen = format!("127.0.0.1:{}", tests::redis_server::free_port());
    let argv = [
        "docket",
        "--url",
        "memory://",
        "dashboard",
        "--listen",
        &listen,
        "--actions",
    ]
    .map(str::to_owned);
    tokio::spawn(async move { docket::cli::run_from(argv, &mut Vec::new()).await });
    let address: SocketAddr = listen.parse().unwrap();
    eventually("the dashboard to listen", PATIENCE, async || {
        tokio::net::TcpStream::connect(address).await.is_ok()
    })
    .await;
    let (status, page) = get(address, "/strikes", "").await;
    assert_eq!(status, 200);
    assert!(page.contains("Put a strike in place"), "actions are on");

    let argv = [
        "docket",
        "--url",
        "memory://",
        "dashboard",
        "--listen",
        "0.0.0.0:0",
    ];
    let code = docket::cli::run_from(argv, &mut Vec::new()).await;
    assert_eq!(code, std::process::ExitCode::FAILURE);
}

/// Publishing runs costs a command, so workers publish them only while a dashboard wants them:
/// none before one is opened; a live worker's whole window as soon as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_publish_their_runs_only_once_a_dashboard_asks() {
    let server = RedisServer::start();
    let docket = Docket::connect(server.url())
        .name(unique_name("dash-quiet"))
        .redelivery_timeout(Duration::from_secs(5))
        .await
        .unwrap();
    let stats = format!("{{{}}}:stats", docket.name());
    let worker = tests::background::Background::start(docket::Worker::new(&docket));
    for n in 0..3 {
        Echo::schedule(format!("quiet {n}"))
            .on(&docket)
            .await
            .unwrap();
    }
    eventually("the tasks to run", PATIENCE, async || {
        docket.snapshot().await.unwrap().is_empty()
    })
    .await;
    // Past the publication period (1 s here): nothing was published, nobody asked.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        server.command(&["EXISTS", &stats]),
        tests::redis_server::Reply::Integer(0),
        "a worker published its runs though no dashboard wanted them"
    );

    let address = serve(Dashboard::new(&docket).without_token().router()).await;
    let mut page = String::new();
    eventually("the live worker's runs to show", PATIENCE, async || {
        page = get(address, "/", "").await.1;
        runs_cells(&page, "echo").get(..2) == Some(&["3".into(), "0".into()][..])
    })
    .await;
    worker.stop().await;
}

/// On a docket spread over three partitions the lists page through every partition, each task
/// once, and a task's page finds a task wherever it lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lists_of_a_spread_docket_page_through_every_partition() {
    let server = RedisServer::start();
    let docket = Docket::connect(server.url())
        .name(unique_name("dash-spread"))
        .partitions(3)
        .await
        .unwrap();
    let keys: Vec<String> = (0..130).map(|n| format!("spread-{n}")).collect();
    for key in &keys {
        Echo::schedule(key.clone())
            .key(key.as_str())
            .on(&docket)
            .await
            .unwrap();
    }
    let address = serve(Dashboard::new(&docket).without_token().router()).await;
    let (_, event) = Get::send(address, "/events", "").await.first_event().await;
    assert!(event.contains("\"queued\":130"), "{event}");
    let mut seen = Vec::new();
    let mut path = "/tasks/queued".to_owned();
    for _ in 0..10 {
        let (status, page) = get(address, &path, "").await;
        assert_eq!(status, 200, "{page}");
        for key in &keys {
            if page.contains(&format!("<code>{key}</code>")) {
                seen.push(key.clone());
            }
        }
        // The next page's link, `?task=&key=&after=…` (its `&` escaped in the HTML).
        let Some(start) = page.find("after=") else {
            break;
        };
        let after = &page[start + "after=".len()..];
        let after = &after[..after.find('"').unwrap()];
        path = format!("/tasks/queued?after={after}");
    }
    seen.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(seen, expected, "every task once, over three pages");
    for key in ["spread-0", "spread-77", "spread-129"] {
        let (status, page) = get(address, &format!("/task?key={key}"), "").await;
        assert_eq!(status, 200, "{key}: {page}");
        assert!(page.contains("Now: queued"), "{key}: {page}");
    }
}
