//! A web dashboard for a docket: see and steer the queue in a browser.
//!
//! [`router`] gives an [`axum::Router`] to mount in your own app; [`Dashboard`] sets its
//! options, and [`Dashboard::serve`] runs it alone (as `docket dashboard --listen ADDR` does).
//!
//! ```no_run
//! # async fn demo() -> docket::Result<()> {
//! let docket = docket::Docket::from_env().await?;
//! let app = axum::Router::new().nest("/docket", docket::dashboard::router(&docket));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
//! axum::serve(listener, app).await.unwrap();
//! # Ok(()) }
//! ```
//!
//! What it shows: the overview (how many tasks are queued, scheduled, running, held and dead;
//! the workers with their running tasks and last activity; the strikes in force), the lists of
//! queued, scheduled, running and held tasks (paged, filtered by task name and key), a task's
//! page (arguments, due time, attempts, error history, its kept record: progress, result,
//! status), the dead letters with their error history, and the strikes.
//!
//! What it does, only when [`Dashboard::actions`] enables it: replay one or every dead letter,
//! delete one, cancel a task, put a strike in place (by task name, or by an argument's value
//! with an operator) and restore one. Every action is a `POST` carrying the dashboard's CSRF
//! token, and goes through a confirmation page first, so it works with JavaScript off.
//!
//! Safety: read-only by default. With a token (`DOCKET_DASHBOARD_TOKEN`, or
//! [`Dashboard::token`]) every request must carry it, as `Authorization: Bearer TOKEN` or as the
//! password of HTTP basic authentication (any user name), which browsers prompt for;
//! [`Dashboard::serve`] refuses to listen beyond loopback without one. Everything read from
//! the backend is escaped; no asset comes from elsewhere (the CSS and the few lines of
//! JavaScript are inline), so it works offline.
//!
//! Cost: one shared poll per dashboard, however many browsers watch, and only while one does:
//! at most one refresh every 2 s ([`Dashboard::refresh_every`]), pushed to the pages by
//! server-sent events. On Redis a refresh is one command (a script that reads the counts,
//! the first running deliveries, the consumers, the fleet and the strikes). Lists are read a
//! page at a time, never whole; see each backend's `browse` module for the commands of each.
//! The overview's runs by task name cost the workers nothing until a dashboard shows them: its
//! overview asks them to publish for ten minutes, again at most every five while it is viewed
//! (one round trip), and reads their summaries (one command a page).

mod actions;
mod assets;
mod auth;
mod format;
mod live;
mod pages;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::handle::Docket;

use self::live::Live;

/// The environment variable a dashboard reads its token from.
pub const TOKEN_VARIABLE: &str = "DOCKET_DASHBOARD_TOKEN";

/// How many tasks a list page shows.
const PAGE: usize = 50;

/// The dashboard of `docket` with the default options: read-only, protected by
/// `DOCKET_DASHBOARD_TOKEN` when it is set, refreshed at most every 2 s.
pub fn router(docket: &Docket) -> Router {
    Dashboard::new(docket).router()
}

/// The options of a dashboard, before it becomes a [`Router`] or is served.
///
/// ```
/// # fn demo(docket: &docket::Docket) {
/// use docket::dashboard::Dashboard;
/// let app: axum::Router = Dashboard::new(docket).actions(true).token("s3cret").router();
/// # }
/// ```
#[derive(Clone)]
pub struct Dashboard {
    docket: Docket,
    actions: bool,
    token: Option<String>,
    refresh: Duration,
    stop: CancellationToken,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("docket", &self.docket)
            .field("actions", &self.actions)
            .field("token", &self.token.as_ref().map(|_| "set"))
            .field("refresh", &self.refresh)
            .field("stopped", &self.stop.is_cancelled())
            .finish()
    }
}

impl Dashboard {
    /// A read-only dashboard of `docket`, protected by `DOCKET_DASHBOARD_TOKEN` when that is set
    /// and not empty.
    pub fn new(docket: &Docket) -> Dashboard {
        let token = std::env::var(TOKEN_VARIABLE)
            .ok()
            .filter(|token| !token.is_empty());
        Dashboard {
            docket: docket.clone(),
            actions: false,
            token,
            refresh: Duration::from_secs(2),
            stop: CancellationToken::new(),
        }
    }

    /// Let the dashboard change the docket: replay and delete dead letters, cancel tasks, put
    /// strikes in place and restore them. Off by default.
    pub fn actions(mut self, enabled: bool) -> Dashboard {
        self.actions = enabled;
        self
    }

    /// Require this token of every request (instead of `DOCKET_DASHBOARD_TOKEN`'s).
    pub fn token(mut self, token: impl Into<String>) -> Dashboard {
        self.token = Some(token.into()).filter(|token| !token.is_empty());
        self
    }

    /// Serve without a token, even when `DOCKET_DASHBOARD_TOKEN` is set.
    pub fn without_token(mut self) -> Dashboard {
        self.token = None;
        self
    }

    /// How often the shared poll refreshes while a page listens; at least 2 s (shorter is
    /// raised to 2 s), the default.
    pub fn refresh_every(mut self, every: Duration) -> Dashboard {
        self.refresh = every.max(Duration::from_secs(2));
        self
    }

    /// End the live-update streams when `stop` is cancelled: give it the token your server's
    /// graceful shutdown waits on, or that shutdown waits for open pages (each stream ends by
    /// itself within a minute, and the page's browser reconnects to a new one).
    pub fn stop_on(mut self, stop: CancellationToken) -> Dashboard {
        self.stop = stop;
        self
    }

    /// The dashboard as a router, to serve or to [`nest`](Router::nest) under a path of your
    /// app (its links follow wherever it is mounted).
    pub fn router(self) -> Router {
        let csrf = format!("{}{}", crate::key::unique(), crate::key::unique());
        let state = Arc::new(App {
            live: Live::new(self.docket.clone(), self.refresh, self.stop),
            docket: self.docket,
            actions: self.actions,
            csrf,
            stats_asked: std::sync::Mutex::new(None),
        });
        let mut router = Router::new()
            .route("/", get(pages::overview))
            .route("/tasks/{place}", get(pages::list))
            .route("/task", get(pages::task))
            .route("/dead", get(pages::dead))
            .route("/strikes", get(pages::strikes))
            .route("/events", get(live::events));
        if state.actions {
            router = router.route("/actions/{action}", post(actions::act));
        }
        let router = router
            .fallback(pages::not_found)
            .layer(axum::middleware::from_fn(pages::headers))
            .with_state(state);
        match self.token {
            Some(token) => router.layer(axum::middleware::from_fn_with_state(
                Arc::new(token),
                auth::require_token,
            )),
            None => router,
        }
    }

    /// Serve the dashboard alone on `address` until ctrl-c or SIGTERM (or the token of
    /// [`Dashboard::stop_on`] is cancelled).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `address` is not a loopback address and no token is set (anyone
    /// who reaches the port would see the docket), or when it cannot be bound.
    pub async fn serve(self, address: SocketAddr) -> Result<()> {
        if !address.ip().is_loopback() && self.token.is_none() {
            return Err(Error::Config(format!(
                "the dashboard listens beyond loopback ({address}) only with a token: set \
                 {TOKEN_VARIABLE}"
            )));
        }
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|error| Error::Config(format!("cannot listen on {address}: {error}")))?;
        tracing::info!(%address, actions = self.actions, "serving the docket dashboard");
        let stop = self.stop.clone();
        let shutdown = async move {
            tokio::select! {
                () = crate::worker::shutdown_signal() => {}
                () = stop.cancelled() => {}
            }
            stop.cancel();
        };
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|error| Error::Config(format!("the dashboard stopped: {error}")))
    }
}

/// What every handler shares.
struct App {
    docket: Docket,
    live: Arc<Live>,
    actions: bool,
    /// The token every action form carries: pages that show it are only readable by whoever
    /// may read the dashboard, so a cross-site form cannot know it.
    csrf: String,
    /// When this dashboard last asked the workers for their runs by task name.
    stats_asked: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// How long the workers publish their runs by task name once a dashboard asks.
const STATS_WANTED: Duration = Duration::from_secs(600);
/// How often a viewed overview asks again.
const STATS_ASK_AGAIN: Duration = Duration::from_secs(300);
/// How long an overview waits for the first publications when it asks anew (the workers were
/// not publishing).
const FIRST_PUBLICATIONS: Duration = Duration::from_millis(300);

impl App {
    /// Ask the workers for their runs by task name unless this dashboard did lately; when
    /// they were not publishing, give the first publications a moment to arrive.
    async fn ask_for_stats(&self) {
        let now = tokio::time::Instant::now();
        let anew = {
            let mut asked = crate::sync::Locked::locked(&self.stats_asked);
            if asked.is_some_and(|at| now.duration_since(at) < STATS_ASK_AGAIN) {
                return;
            }
            let anew = asked.is_none_or(|at| now.duration_since(at) >= STATS_WANTED);
            *asked = Some(now);
            anew
        };
        let backend = self.docket.backend();
        if let Err(error) = backend.want_stats(STATS_WANTED).await {
            tracing::debug!(error = %crate::error::Chain(&error), "could not ask the workers for their runs");
            return;
        }
        if anew && backend.leases_deliveries() {
            tokio::time::sleep(FIRST_PUBLICATIONS).await;
        }
    }
}

type Shared = Arc<App>;
