//! The dashboard's pages: server-rendered HTML (maud escapes every value it is given), readable
//! with JavaScript off; a few inline lines of JavaScript follow the live counts.

use std::time::SystemTime;

use axum::extract::{OriginalUri, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

use super::assets::{CSS, SCRIPT};
use super::format::{ago, clock, encode, pretty, title_case, took, when};
use super::{PAGE, Shared};
use crate::backend::browse::{Counts, Filter, Place, TaskView};
use crate::error::{Chain, Error};
use crate::inspect::{DeadLetter, FailedAttempt, TaskInfo};
use crate::results::{Status, TaskRecord};
use crate::stats::{MAX_NAMES, OTHER, Tally, WINDOW_MINUTES};
use crate::strike::Strike;

/// Where the dashboard is mounted, as its links start: `""` at the root, `/docket` when nested
/// there.
#[derive(Debug, Clone)]
pub(super) struct Base(pub(super) String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Base {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let original = OriginalUri::from_request_parts(parts, state).await?;
        Ok(Base(mount_point(original.0.path(), parts.uri.path())))
    }
}

/// The overview's path: the mount point itself (axum serves a router nested at `/docket` at
/// `/docket`, not `/docket/`), or `/` at the root.
pub(super) fn home(base: &str) -> String {
    match base {
        "" => "/".to_owned(),
        base => base.to_owned(),
    }
}

/// The prefix of `original` (the path the client asked for) that nesting stripped from `inner`.
fn mount_point(original: &str, inner: &str) -> String {
    let base = original.strip_suffix(inner).unwrap_or(original);
    // `/docket` reaches the nested root `/`, which `strip_suffix` cannot take off.
    let base = if inner == "/" {
        original.trim_end_matches('/')
    } else {
        base
    };
    base.trim_end_matches('/').to_owned()
}

/// The query of a list: the filter and where the page starts.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    task: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    after: String,
}

impl ListQuery {
    fn filter(&self) -> Filter {
        let given = |text: &str| Some(text.trim().to_owned()).filter(|text| !text.is_empty());
        Filter {
            task: given(&self.task),
            key: given(&self.key),
        }
    }

    fn after(&self) -> Option<&str> {
        Some(self.after.as_str()).filter(|after| !after.is_empty())
    }

    /// The query of the page starting at `next`, with the same filter.
    fn next(&self, next: &str) -> String {
        format!(
            "?task={}&key={}&after={}",
            encode(&self.task),
            encode(&self.key),
            encode(next)
        )
    }
}

/// A page that could not be made.
pub(super) enum PageError {
    /// The backend failed; shown as 503 with the error.
    Backend(Error),
    /// The request makes no sense (an unknown list, a bad strike).
    BadRequest(String),
    NotFound(String),
}

impl From<Error> for PageError {
    fn from(error: Error) -> Self {
        PageError::Backend(error)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            PageError::Backend(error) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("The docket did not answer: {}", Chain(&error)),
            ),
            PageError::BadRequest(text) => (StatusCode::BAD_REQUEST, text),
            PageError::NotFound(text) => (StatusCode::NOT_FOUND, text),
        };
        let body = html! {
            (DOCTYPE)
            html lang="en" {
                head { meta charset="utf-8"; title { "docket: " (status) } style { (PreEscaped(CSS)) } }
                body { main { h1 { (status) } p role="alert" { (text) } } }
            }
        };
        (status, body).into_response()
    }
}

/// Security headers on every response: nothing loads from elsewhere, nothing frames the pages.
pub(super) async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The page around every page's content.
pub(super) fn layout(app: &Shared, base: &Base, title: &str, content: Markup) -> Markup {
    let base = &base.0;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · docket " (app.docket.name()) }
                style { (PreEscaped(CSS)) }
            }
            body data-events=(format!("{base}/events")) {
                a.skip href="#main" { "Skip to content" }
                header {
                    nav aria-label="Dashboard" {
                        a.brand href=(home(base)) { "docket " strong { (app.docket.name()) } }
                        a href=(home(base)) { "Overview" }
                        @for place in Place::ALL {
                            a href=(format!("{base}/tasks/{}", place.name())) { (title_case(place.name())) }
                        }
                        a href=(format!("{base}/dead")) { "Dead" }
                        a href=(format!("{base}/strikes")) { "Strikes" }
                    }
                    form.find method="get" action=(format!("{base}/task")) role="search" {
                        label for="find-key" { "Task key" }
                        input #find-key type="search" name="key" required;
                        button type="submit" { "Find" }
                    }
                }
                main #main { (content) }
                footer {
                    p {
                        span #live aria-live="polite" { "Live updates off (JavaScript or events unavailable): reload to refresh." }
                        @if app.actions { " · Actions enabled." } @else { " · Read-only." }
                    }
                }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

/// How many running tasks the overview names.
const RUNNING_SHOWN: usize = 20;

/// `GET /`: the counts, the workers and what they run, the strikes.
pub(super) async fn overview(State(app): State<Shared>, base: Base) -> Result<Markup, PageError> {
    let backend = app.docket.backend();
    let everything = Filter::default();
    app.ask_for_stats().await;
    let (counts, workers, running, strikes, runs) = tokio::try_join!(
        app.live.current(),
        app.docket.workers(),
        backend.page(Place::Running, &everything, None, RUNNING_SHOWN),
        app.docket.strikes(),
        backend.task_stats(),
    )?;
    let b = &base.0;
    let content = html! {
        h1 { "Overview" }
        p.muted { "As of " span data-live="taken" { (clock(counts.taken)) } "." }
        (count_cards(&counts, b))
        (runs_table(b, &runs))
        section aria-labelledby="workers" {
            h2 #workers { "Workers (" (workers.len()) ")" }
            @if workers.is_empty() {
                p { "No worker has been seen." }
            } @else {
                div.scroll { table {
                    thead { tr {
                        th scope="col" { "Worker" } th scope="col" { "Running" }
                        th scope="col" { "Its tasks" } th scope="col" { "Last activity" }
                    } }
                    tbody { @for worker in &workers { tr {
                        td { code { (worker.name) } }
                        td.num { (worker.running) }
                        td {
                            @for (i, task) in running.items.iter().filter(|task| task.worker.as_deref() == Some(worker.name.as_str())).enumerate() {
                                @if i > 0 { ", " }
                                a href=(format!("{b}/task?key={}", encode(&task.key))) { (task.task) " " code { (task.key) } }
                            }
                        }
                        td { (ago(worker.idle)) }
                    } } }
                } }
            }
        }
        section aria-labelledby="running" {
            h2 #running { "Running tasks" }
            @if running.items.is_empty() {
                p { "Nothing runs." }
            } @else {
                (task_table(b, &running.items, true))
                @if running.next.is_some() {
                    p { a href=(format!("{b}/tasks/running")) { "All running tasks" } }
                }
            }
        }
        section aria-labelledby="strikes" {
            h2 #strikes { "Strikes in force (" (strikes.len()) ")" }
            (strike_list(&app, b, &strikes))
        }
        section aria-labelledby="dead" {
            h2 #dead { "Dead letters" }
            p { a href=(format!("{b}/dead")) { "Dead letters (" (counts.dead) ")" } }
            @if app.actions && counts.dead > 0 {
                (action_form(&app, b, "replay-all", &[], "Replay every dead letter", &format!("{b}/dead")))
            }
        }
    };
    Ok(layout(&app, &base, "Overview", content))
}

/// The runs of each task name over the last minutes, as the workers published them.
fn runs_table(b: &str, runs: &[(String, Tally)]) -> Markup {
    html! {
        section aria-labelledby="runs" {
            h2 #runs { "Runs by task, last " (WINDOW_MINUTES) " minutes" }
            @if runs.is_empty() {
                p { "No task ran in the last " (WINDOW_MINUTES) " minutes." }
            } @else {
                div.scroll { table #runs-table {
                    thead { tr {
                        th scope="col" { "Task" } th scope="col" { "Runs" }
                        th scope="col" { "Failures" } th scope="col" { "Mean duration" }
                    } }
                    tbody { @for (task, tally) in runs { tr data-task=(task) {
                        @if task == OTHER {
                            td.muted { "Other tasks (past " (MAX_NAMES) " names a worker)" }
                        } @else {
                            td { a href=(format!("{b}/tasks/queued?task={}", encode(task))) { (task) } }
                        }
                        td.num { (tally.runs) }
                        td.num { (tally.failures) }
                        td.num { (tally.mean().map(took).unwrap_or_default()) }
                    } } }
                } }
            }
            p.muted { "The current minute and the " (WINDOW_MINUTES - 1) " before it. Workers publish their runs only while a dashboard shows them (it asks when its overview is opened), at most once a minute: the first look after a while may miss runs, and the table may lag by a minute." }
        }
    }
}

/// The five counts, each a link to its list.
fn count_cards(overview: &Counts, b: &str) -> Markup {
    let cards = [
        ("queued", overview.queued, format!("{b}/tasks/queued")),
        (
            "scheduled",
            overview.scheduled,
            format!("{b}/tasks/scheduled"),
        ),
        ("running", overview.running, format!("{b}/tasks/running")),
        ("held", overview.held, format!("{b}/tasks/held")),
        ("dead", overview.dead, format!("{b}/dead")),
    ];
    html! {
        ul.counts aria-label="Task counts" {
            @for (name, count, href) in cards {
                li { a href=(href) {
                    span.count data-live=(name) id=(format!("count-{name}")) { (count) }
                    span.label { (title_case(name)) }
                } }
            }
        }
    }
}

/// `GET /tasks/{place}`: one page of a list, filtered.
pub(super) async fn list(
    State(app): State<Shared>,
    base: Base,
    Path(place): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Markup, PageError> {
    let place = Place::parse(&place)
        .ok_or_else(|| PageError::NotFound(format!("There is no list `{place}`.")))?;
    let filter = query.filter();
    let page = app
        .docket
        .backend()
        .page(place, &filter, query.after(), PAGE)
        .await?;
    let b = &base.0;
    let title = title_case(place.name());
    let content = html! {
        h1 { (title) " tasks" }
        (filter_form(&format!("{b}/tasks/{}", place.name()), &query))
        @if page.items.is_empty() {
            p { "No " (place.name()) " task" @if !filter.is_empty() { " matches" } " here." }
        } @else {
            (task_table(b, &page.items, place == Place::Running))
        }
        @if place == Place::Held {
            p.muted { "Held tasks run again when the strike that holds them is restored (" a href=(format!("{b}/strikes")) { "strikes" } ")." }
        }
        (pager(&query, page.next.as_deref()))
    };
    Ok(layout(&app, &base, &title, content))
}

/// The filter form of a list.
fn filter_form(action: &str, query: &ListQuery) -> Markup {
    html! {
        form.filter method="get" action=(action) aria-label="Filter" {
            label { "Task name " input type="text" name="task" value=(query.task); }
            label { "Key contains " input type="text" name="key" value=(query.key); }
            button type="submit" { "Filter" }
        }
    }
}

/// The link to the next page, if there is one.
fn pager(query: &ListQuery, next: Option<&str>) -> Markup {
    html! {
        nav.pager aria-label="Pages" {
            @if !query.after.is_empty() { a href="?" { "First page" } }
            @if let Some(next) = next { a rel="next" href=(query.next(next)) { "Next page" } }
        }
    }
}

/// A table of tasks, each linking to its page.
fn task_table(b: &str, tasks: &[TaskInfo], workers: bool) -> Markup {
    html! {
        div.scroll { table {
            thead { tr {
                th scope="col" { "Task" } th scope="col" { "Key" } th scope="col" { "Due" }
                th scope="col" { "Attempt" }
                @if workers { th scope="col" { "Worker" } }
            } }
            tbody { @for task in tasks { tr {
                td { (task.task) }
                td { a href=(format!("{b}/task?key={}", encode(&task.key))) { code { (task.key) } } }
                td { (when(task.due)) }
                td.num { (task.attempt) }
                @if workers { td { code { (task.worker.as_deref().unwrap_or("")) } } }
            } } }
        } }
    }
}

/// The query of a task's page.
#[derive(Debug, Deserialize)]
pub(super) struct TaskQuery {
    key: String,
}

/// `GET /task?key=KEY`: everything known of one task.
pub(super) async fn task(
    State(app): State<Shared>,
    base: Base,
    Query(query): Query<TaskQuery>,
) -> Result<Response, PageError> {
    let view = app.docket.backend().task_view(&query.key).await?;
    let b = &base.0;
    let key = &query.key;
    let content = html! {
        h1 { "Task " code { (key) } }
        @if view.is_unknown() {
            p role="status" { "No task with this key waits, runs, died or keeps a record." }
        }
        (task_details(&app, b, key, &view))
    };
    let status = match view.is_unknown() {
        true => StatusCode::NOT_FOUND,
        false => StatusCode::OK,
    };
    Ok((status, layout(&app, &base, &format!("Task {key}"), content)).into_response())
}

fn task_details(app: &Shared, b: &str, key: &str, view: &TaskView) -> Markup {
    let back = format!("{b}/task?key={}", encode(key));
    html! {
        @if let Some(message) = &view.message {
            section aria-labelledby="now" {
                h2 #now { "Now: " (view.place.map_or("waiting", |place| place.name())) }
                dl {
                    dt { "Task" } dd { (message.task) }
                    dt { "Due" } dd { (when(message.due)) }
                    dt { "Attempt" } dd { (message.attempt) }
                    @if let Some(worker) = &view.worker { dt { "Worker" } dd { code { (worker) } } }
                }
                h3 { "Arguments" }
                pre.json { code { (pretty(&message.args)) } }
                (history(&message.history))
                @if app.actions {
                    (action_form(app, b, "cancel", &[("key", key)], "Cancel this task", &back))
                }
            }
        }
        @if let Some(record) = &view.record {
            section aria-labelledby="record" {
                h2 #record { "Record" }
                dl {
                    dt { "Status" } dd { (status_name(record.status)) }
                    dt { "Attempt" } dd { (record.attempt) }
                    dt { "Changed" } dd { (clock(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(record.updated_ms))) }
                    @if let Some(progress) = &record.progress {
                        dt { "Progress" }
                        dd {
                            progress max=(progress.total) value=(progress.current) { (progress.current) "/" (progress.total) }
                            " " (progress.current) " of " (progress.total) " " (progress.message)
                        }
                    }
                    @if let Some(error) = &record.error { dt { "Last error" } dd { pre { (error) } } }
                }
                (state_changes(record))
                @if let Some(result) = &record.result {
                    h3 { "Result" }
                    pre.json { code { (pretty(result)) } }
                }
            }
        }
        @if let Some(dead) = &view.dead {
            section aria-labelledby="died" {
                h2 #died { "Dead letter" }
                (dead_details(app, b, dead, &back))
            }
        }
    }
}

/// The states a kept record knows the task went through, oldest first.
fn state_changes(record: &TaskRecord) -> Markup {
    let at = |ms| SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    html! {
        h3 #changes { "State changes" }
        div.scroll { table #changes-table {
            thead { tr { th scope="col" { "State" } th scope="col" { "Attempt" } th scope="col" { "Since" } } }
            tbody { @for change in record.history() { tr {
                td { (status_name(change.status)) } td.num { (change.attempt) } td { (clock(at(change.at_ms))) }
            } } }
        } }
        p.muted { "As far as the record knows: a worker writes it without reading the one before, so a retried task's history starts at its first retry." }
    }
}

/// A status as the pages write it: `running`, `completed`, ...
fn status_name(status: Status) -> String {
    format!("{status:?}").to_lowercase()
}

/// A failed-attempts table.
fn history(history: &[FailedAttempt]) -> Markup {
    html! {
        @if !history.is_empty() {
            h3 { "Error history" }
            div.scroll { table {
                thead { tr { th scope="col" { "Attempt" } th scope="col" { "Failed" } th scope="col" { "Error" } } }
                tbody { @for failed in history { tr {
                    td.num { (failed.attempt) } td { (clock(failed.at)) } td { pre { (failed.error) } }
                } } }
            } }
        }
    }
}

fn dead_details(app: &Shared, b: &str, dead: &DeadLetter, back: &str) -> Markup {
    html! {
        dl {
            dt { "Task" } dd { (dead.task) }
            dt { "Died" } dd { (clock(dead.died)) }
            dt { "Attempt" } dd { (dead.attempt) }
            dt { "Reason" } dd { pre { (dead.reason) } }
        }
        h3 { "Arguments" }
        pre.json { code { (pretty(&dead.args)) } }
        (history(&dead.history))
        @if app.actions {
            div.actions {
                (action_form(app, b, "replay", &[("key", &dead.key)], "Replay", back))
                (action_form(app, b, "delete", &[("key", &dead.key)], "Delete", back))
            }
        }
    }
}

/// `GET /dead`: the dead letters, newest first.
pub(super) async fn dead(
    State(app): State<Shared>,
    base: Base,
    Query(query): Query<ListQuery>,
) -> Result<Markup, PageError> {
    let filter = query.filter();
    let page = app
        .docket
        .backend()
        .dead_page(&filter, query.after(), PAGE)
        .await?;
    let b = &base.0;
    let back = format!("{b}/dead");
    let content = html! {
        h1 { "Dead letters" }
        (filter_form(&back, &query))
        @if app.actions && !page.items.is_empty() {
            (action_form(&app, b, "replay-all", &[], "Replay every dead letter", &back))
        }
        @if page.items.is_empty() { p { "No dead letter" @if !filter.is_empty() { " matches" } " here." } }
        @for dead in &page.items {
            article.dead aria-labelledby=(format!("dead-{}", encode(&dead.key))) {
                h2 id=(format!("dead-{}", encode(&dead.key))) {
                    a href=(format!("{b}/task?key={}", encode(&dead.key))) { code { (dead.key) } }
                }
                (dead_details(&app, b, dead, &back))
            }
        }
        (pager(&query, page.next.as_deref()))
    };
    Ok(layout(&app, &base, "Dead letters", content))
}

/// `GET /strikes`: the strikes in force, and (with actions) a form for a new one.
pub(super) async fn strikes(State(app): State<Shared>, base: Base) -> Result<Markup, PageError> {
    let strikes = app.docket.strikes().await?;
    let b = &base.0;
    let content = html! {
        h1 { "Strikes" }
        p.muted { "A strike holds matching tasks across every worker until it is restored; restoring queues them again." }
        (strike_list(&app, b, &strikes))
        @if app.actions {
            section aria-labelledby="new-strike" {
                h2 #new-strike { "Put a strike in place" }
                form.strike method="post" action=(format!("{b}/actions/strike")) {
                    input type="hidden" name="csrf" value=(app.csrf);
                    input type="hidden" name="back" value=(format!("{b}/strikes"));
                    label { "Task name (" code { "*" } " for every task) " input type="text" name="task" required; }
                    fieldset {
                        legend { "Only runs whose argument… (optional)" }
                        label { "Argument " input type="text" name="param"; }
                        label { "Operator "
                            select name="op" { @for op in ["==", "!=", ">", ">=", "<", "<="] { option value=(op) { (op) } } }
                        }
                        label { "Value (JSON, or text) " input type="text" name="value"; }
                    }
                    button type="submit" { "Strike…" }
                }
            }
        }
    };
    Ok(layout(&app, &base, "Strikes", content))
}

fn strike_list(app: &Shared, b: &str, strikes: &[Strike]) -> Markup {
    html! {
        @if strikes.is_empty() {
            p { "No strike is in force." }
        } @else {
            ul.strikes { @for strike in strikes { li {
                code { (strike) }
                @if app.actions {
                    " "
                    (action_form(app, b, "restore", &strike_fields(strike).iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(), "Restore", &format!("{b}/strikes")))
                }
            } } }
        }
    }
}

/// The form fields that name `strike`, as the strike action reads them.
pub(super) fn strike_fields(strike: &Strike) -> Vec<(&'static str, String)> {
    let mut fields = vec![("task", strike.task.clone().unwrap_or_else(|| "*".into()))];
    if let Some(when) = &strike.when {
        fields.push(("param", when.param.clone()));
        fields.push(("op", when.op.to_string()));
        fields.push(("value", when.value.to_string()));
    }
    fields
}

/// A one-button form that asks to confirm `action` (see `actions.rs`).
pub(super) fn action_form(
    app: &Shared,
    b: &str,
    action: &str,
    fields: &[(&str, &str)],
    label: &str,
    back: &str,
) -> Markup {
    html! {
        form.action method="post" action=(format!("{b}/actions/{action}")) {
            input type="hidden" name="csrf" value=(app.csrf);
            input type="hidden" name="back" value=(back);
            @for (name, value) in fields { input type="hidden" name=(name) value=(value); }
            button type="submit" { (label) "…" }
        }
    }
}

/// Anything else: 404.
pub(super) async fn not_found(uri: Uri) -> PageError {
    PageError::NotFound(format!("Nothing here: {}", uri.path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_follow_the_mount_point() {
        assert_eq!(mount_point("/", "/"), "");
        assert_eq!(mount_point("/docket", "/"), "/docket");
        assert_eq!(mount_point("/docket/", "/"), "/docket");
        assert_eq!(
            mount_point("/docket/tasks/queued", "/tasks/queued"),
            "/docket"
        );
        assert_eq!(mount_point("/tasks/queued", "/tasks/queued"), "");
    }
}
