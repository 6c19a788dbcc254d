//! The axum example: a small music-upload service.
//!
//! `POST /tracks` stores an upload and schedules [`scan_copyright`]; `GET /tracks/{id}` shows how
//! the scan is going. The docket worker runs in the same process as the HTTP server and stops
//! with it: on shutdown the server stops taking requests, the worker stops taking tasks, and both
//! finish what they have started. The docket's dashboard is mounted at `/docket` (read-only;
//! protected by `DOCKET_DASHBOARD_TOKEN` when set). Run it with
//! `cargo run -p examples --example tracks`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use docket::dashboard::Dashboard;
use docket::{Docket, Worker, worker::Health};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The uploads, by id. It stands in for your database: it lives in memory, so a restart forgets
/// it, while scans scheduled on Redis survive. Cheap to clone; clones share the uploads.
#[derive(Debug, Clone, Default)]
pub struct Store {
    tracks: Arc<Mutex<HashMap<u64, Track>>>,
}

/// An uploaded track and how its copyright scan is going.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Track {
    /// Given by the store.
    pub id: u64,
    /// As uploaded.
    pub title: String,
    /// Where the audio is.
    pub audio_url: String,
    /// The copyright scan.
    pub scan: Scan,
}

/// Where a track's copyright scan stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Scan {
    /// Scheduled, not started.
    Pending,
    /// A worker is scanning it.
    Scanning,
    /// No match.
    Clean,
    /// The audio matches a known work.
    Flagged {
        /// The work it matches.
        matches: String,
    },
    /// The scan cannot be done.
    Failed {
        /// Why.
        reason: String,
    },
}

impl Store {
    /// Store a new upload, pending its scan.
    pub fn insert(&self, title: String, audio_url: String) -> Track {
        let mut tracks = self.tracks.lock().unwrap();
        let id = tracks.len() as u64 + 1;
        let track = Track {
            id,
            title,
            audio_url,
            scan: Scan::Pending,
        };
        tracks.insert(id, track.clone());
        track
    }

    /// The track with this id.
    pub fn get(&self, id: u64) -> Option<Track> {
        self.tracks.lock().unwrap().get(&id).cloned()
    }

    /// Record how track `id`'s scan stands; `false` when there is no such track.
    pub fn set_scan(&self, id: u64, scan: Scan) -> bool {
        let mut tracks = self.tracks.lock().unwrap();
        tracks.get_mut(&id).map(|track| track.scan = scan).is_some()
    }
}

/// A stand-in for a fingerprinting service: it takes `latency` to look at a track, fails on
/// audio it cannot fetch, and flags every URL that mentions a bootleg.
#[derive(Debug, Clone)]
pub struct Scanner {
    latency: Duration,
}

impl Scanner {
    /// A scanner that takes `latency` per track.
    pub fn new(latency: Duration) -> Scanner {
        Scanner { latency }
    }

    async fn scan(&self, audio_url: &str) -> Scan {
        tokio::time::sleep(self.latency).await;
        if !audio_url.starts_with("https://") {
            let reason = format!("cannot fetch `{audio_url}`: only https URLs are scanned");
            return Scan::Failed { reason };
        }
        match audio_url.contains("bootleg") {
            true => Scan::Flagged {
                matches: "a live recording you do not own".into(),
            },
            false => Scan::Clean,
        }
    }
}

/// Scan an uploaded track for copyright matches.
///
/// `State` parameters are handed in by the worker (see [`serve`]); only `track_id` and
/// `audio_url` are stored with the task. Running it twice does no harm: docket delivers at least
/// once.
#[docket::task(retries = 3, backoff = "exponential 1s..60s", timeout = "30s")]
pub async fn scan_copyright(
    track_id: u64,
    audio_url: String,
    docket::State(store): docket::State<Store>,
    docket::State(scanner): docket::State<Scanner>,
) {
    if !store.set_scan(track_id, Scan::Scanning) {
        tracing::warn!(track_id, "no such track; nothing to scan");
        return;
    }
    let verdict = scanner.scan(&audio_url).await;
    store.set_scan(track_id, verdict);
}

#[derive(Debug, Clone)]
struct App {
    docket: Docket,
    store: Store,
    health: Health,
}

/// The body of `POST /tracks`.
#[derive(Debug, Deserialize)]
struct Upload {
    title: String,
    audio_url: String,
}

/// The HTTP routes, scheduling on `docket`; `/healthz` reports the worker's `health`.
pub fn router(docket: Docket, store: Store, health: Health) -> Router {
    Router::new()
        .route("/tracks", post(upload))
        .route("/tracks/{id}", get(show))
        .route("/healthz", get(healthz))
        .with_state(App {
            docket,
            store,
            health,
        })
}

async fn upload(
    State(app): State<App>,
    Json(upload): Json<Upload>,
) -> Result<(StatusCode, Json<Track>), (StatusCode, String)> {
    let track = app.store.insert(upload.title, upload.audio_url);
    // The key makes a repeated schedule for the same track a no-op while a scan waits or runs.
    ScanCopyright::schedule(track.id, track.audio_url.clone())
        .key(format!("scan-{}", track.id))
        .on(&app.docket)
        .await
        .map_err(|error| (StatusCode::SERVICE_UNAVAILABLE, error.to_string()))?;
    Ok((StatusCode::CREATED, Json(track)))
}

async fn show(State(app): State<App>, Path(id): Path<u64>) -> Result<Json<Track>, StatusCode> {
    app.store.get(id).map(Json).ok_or(StatusCode::NOT_FOUND)
}

/// 200 while the worker runs and reaches its backend, 503 with the reason otherwise: for a
/// liveness probe.
async fn healthz(State(app): State<App>) -> (StatusCode, String) {
    match app.health.check() {
        Ok(()) => (StatusCode::OK, "ok".into()),
        Err(problem) => (StatusCode::SERVICE_UNAVAILABLE, problem.to_string()),
    }
}

/// Serve HTTP on `listener` and run a worker for `docket`, both until `shutdown` completes (or
/// either of them fails). Then the server finishes the requests it has and the worker the tasks
/// it has started; tasks still waiting stay in the docket for the next run.
pub async fn serve(
    listener: TcpListener,
    docket: Docket,
    store: Store,
    scanner: Scanner,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // What `State` parameters of tasks receive.
    docket.provide(store.clone()).provide(scanner);

    let stop = CancellationToken::new();
    let worker = Worker::new(&docket);
    let health = worker.health();
    // The dashboard's live pages end their streams on `stop`, so they do not hold the shutdown.
    let dashboard = Dashboard::new(&docket).stop_on(stop.clone()).router();
    let app = router(docket.clone(), store, health).nest("/docket", dashboard);
    let server = axum::serve(listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
    let worker = worker.run_until(stop.clone().cancelled_owned());
    // Whichever ends first, the signal or a failure, the others follow.
    let (server, worker, ()) = tokio::join!(
        async {
            let result = server.await;
            stop.cancel();
            result
        },
        async {
            let result = worker.await;
            stop.cancel();
            result
        },
        async {
            stop.run_until_cancelled(shutdown).await;
            stop.cancel();
        },
    );
    server?;
    worker?;
    Ok(())
}
