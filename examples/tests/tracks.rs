//! The axum example end to end: real HTTP/1.1 on a loopback port, with the scans run in-process
//! and on a private `redis-server`.

use std::net::SocketAddr;
use std::time::Duration;

use docket::Docket;
use examples::tracks::{Scan, Scanner, Store, Track, serve};
use serde_json::{Value, json};
use tests::redis_server::{RedisServer, unique_name};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn in_process_an_uploaded_track_is_scanned() {
    uploads_are_scanned(Docket::in_process()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn in_process_shutdown_waits_for_the_running_scan() {
    let store = Store::default();
    let app = App::start(Docket::in_process(), &store, Duration::from_millis(500)).await;
    let track = app.upload("Demo", "https://cdn.example/demo.flac").await;
    app.wait_for(track.id, |scan| *scan == Scan::Scanning).await;

    app.shut_down().await;
    assert_eq!(store.get(track.id).unwrap().scan, Scan::Clean);
}

#[tokio::test(flavor = "multi_thread")]
async fn on_redis_an_uploaded_track_is_scanned() {
    let redis = RedisServer::start();
    uploads_are_scanned(on_redis(&redis, &unique_name("tracks"), 10).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_redis_shutdown_finishes_the_running_scan_and_keeps_the_waiting_one() {
    let redis = RedisServer::start();
    let name = unique_name("tracks");
    let store = Store::default();
    // One scan at a time, so the second upload waits in Redis while the first is scanned.
    let docket = on_redis(&redis, &name, 1).await;
    let app = App::start(docket.clone(), &store, Duration::from_millis(500)).await;
    let running = app.upload("First", "https://cdn.example/1.flac").await;
    let waiting = app.upload("Second", "https://cdn.example/2.flac").await;
    app.wait_for(running.id, |scan| *scan == Scan::Scanning)
        .await;

    app.shut_down().await;
    assert_eq!(store.get(running.id).unwrap().scan, Scan::Clean);
    assert_eq!(store.get(waiting.id).unwrap().scan, Scan::Pending);
    let snapshot = docket.snapshot().await.unwrap();
    let queued: Vec<_> = snapshot.queued.iter().map(|task| &task.key[..]).collect();
    assert_eq!(queued, ["scan-2"], "{snapshot:?}");

    // The next run of the service (with the same database) does the scan that waited.
    let docket = on_redis(&redis, &name, 1).await;
    let app = App::start(docket.clone(), &store, Duration::from_millis(10)).await;
    app.wait_for(waiting.id, |scan| *scan == Scan::Clean).await;
    app.shut_down().await;
    assert!(docket.snapshot().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn on_redis_healthz_reports_a_lost_redis_and_its_return() {
    let mut redis = RedisServer::start();
    let docket = on_redis(&redis, &unique_name("tracks"), 10).await;
    let app = App::start(docket, &Store::default(), Duration::from_millis(10)).await;
    app.wait_for_health(200).await;

    redis.kill();
    let (_, reason) = app.wait_for_health(503).await;
    assert!(
        reason
            .as_str()
            .is_some_and(|reason| reason.contains("cannot reach its backend")),
        "{reason}"
    );

    redis.restart();
    app.wait_for_health(200).await;
    app.shut_down().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_is_at_docket_and_an_open_page_does_not_hold_the_shutdown() {
    let app = App::start(
        Docket::in_process(),
        &Store::default(),
        Duration::from_millis(10),
    )
    .await;
    let (status, page) = app.request("GET", "/docket", &Value::Null).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.as_str().unwrap().contains("<h1>Overview</h1>"),
        "{page}"
    );
    // A page following the live counts keeps its event stream open...
    let mut events = TcpStream::connect(app.address).await.unwrap();
    let head = format!(
        "GET /docket/events HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
        app.address
    );
    events.write_all(head.as_bytes()).await.unwrap();
    let mut first = [0; 512];
    let read = events.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..read]).starts_with("HTTP/1.1 200"));
    // ...and the service still shuts down at once.
    app.shut_down().await;
}

/// Upload a clean track, a bootleg and one that cannot be fetched, and watch their scans end.
async fn uploads_are_scanned(docket: Docket) {
    let app = App::start(docket, &Store::default(), Duration::from_millis(20)).await;

    let (status, body) = app
        .request(
            "POST",
            "/tracks",
            &json!({"title": "Demo", "audio_url": "https://cdn.example/demo.flac"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["scan"], json!({"status": "pending"}));
    let id = body["id"].as_u64().unwrap();
    app.wait_for(id, |scan| *scan == Scan::Clean).await;

    let bootleg = app
        .upload("Live", "https://cdn.example/bootleg-live.flac")
        .await;
    let flagged = app
        .wait_for(bootleg.id, |scan| matches!(scan, Scan::Flagged { .. }))
        .await;
    let (_, body) = app
        .request("GET", &format!("/tracks/{}", flagged.id), &Value::Null)
        .await;
    assert_eq!(body["scan"]["status"], "flagged", "{body}");

    let unfetchable = app.upload("Local", "file:///home/me/demo.flac").await;
    app.wait_for(unfetchable.id, |scan| matches!(scan, Scan::Failed { .. }))
        .await;

    let (status, _) = app.request("GET", "/tracks/999", &Value::Null).await;
    assert_eq!(status, 404);
    app.shut_down().await;
}

/// A docket on `redis` that never falls back to running tasks in-process, so a passing test
/// went through Redis.
async fn on_redis(redis: &RedisServer, name: &str, concurrency: usize) -> Docket {
    Docket::connect(redis.url())
        .name(name)
        .worker_concurrency(concurrency)
        .in_process_fallback(false)
        .await
        .unwrap()
}

/// The example service, serving on a free loopback port.
struct App {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    served: JoinHandle<Result<(), Box<dyn std::error::Error + Send + Sync>>>,
}

impl App {
    async fn start(docket: Docket, store: &Store, latency: Duration) -> App {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let shutdown = async {
            let _ = stopped.await;
        };
        let scanner = Scanner::new(latency);
        let served = tokio::spawn(serve(listener, docket, store.clone(), scanner, shutdown));
        App {
            address,
            stop,
            served,
        }
    }

    /// Signal shutdown, as ctrl-c or SIGTERM would; `serve` must then return, cleanly, and stop
    /// listening.
    async fn shut_down(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(PATIENCE, self.served)
            .await
            .expect("serve returns after the shutdown signal")
            .unwrap()
            .unwrap();
        assert!(TcpStream::connect(self.address).await.is_err());
    }

    async fn upload(&self, title: &str, audio_url: &str) -> Track {
        let upload = json!({"title": title, "audio_url": audio_url});
        let (status, body) = self.request("POST", "/tracks", &upload).await;
        assert_eq!(status, 201, "{body}");
        serde_json::from_value(body).unwrap()
    }

    /// `GET /tracks/{id}` until its scan is as `wanted`.
    async fn wait_for(&self, id: u64, wanted: impl Fn(&Scan) -> bool) -> Track {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let (status, body) = self
                .request("GET", &format!("/tracks/{id}"), &Value::Null)
                .await;
            assert_eq!(status, 200, "{body}");
            let track: Track = serde_json::from_value(body).unwrap();
            if wanted(&track.scan) {
                return track;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "track {id} is still {:?}",
                track.scan
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Poll `/healthz` until it answers `status`; the answer.
    async fn wait_for_health(&self, status: u16) -> (u16, Value) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let answer = self.request("GET", "/healthz", &Value::Null).await;
            if answer.0 == status {
                return answer;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "/healthz never answered {status}; last: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One HTTP/1.1 request on a fresh connection; the status and the JSON body (`null` when
    /// empty).
    async fn request(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let body = match body {
            Value::Null => String::new(),
            body => body.to_string(),
        };
        let mut stream = TcpStream::connect(self.address).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            self.address,
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").expect("a full response");
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let body = match body {
            "" => Value::Null,
            body => serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.into())),
        };
        (status, body)
    }
}
