//! Trace propagation: each execution span links to the span that scheduled its task, for an
//! immediate and a future task, in-process, on memory, and on Redis with the worker on a handle
//! of its own (as in another process); and work a task schedules stays in its trace.

use std::time::Duration;

use docket::Docket;
use tests::finish;
use tests::redis_server::{RedisServer, unique_name};

use tests::capture::{Capture, CapturedSpan};

#[docket::task]
async fn traced(label: String) {
    let _ = label;
}

/// Schedules `traced` as follow-up work.
#[docket::task]
async fn traced_parent(label: String, ctx: docket::Context) -> Result<(), docket::Error> {
    Traced::schedule(format!("{label}/child"))
        .on(ctx.docket())
        .await
        .map(drop)
}

/// The one span named `name` whose `key` is `key`.
#[track_caller]
fn span_of(capture: &Capture, name: &str, key: &str) -> CapturedSpan {
    let mut spans: Vec<CapturedSpan> = capture
        .spans(name)
        .into_iter()
        .filter(|span| span.field("key") == Some(key))
        .collect();
    assert_eq!(spans.len(), 1, "{name} spans of {key}: {spans:#?}");
    spans.remove(0)
}

#[track_caller]
fn assert_linked(capture: &Capture, key: &str) {
    let scheduled = span_of(capture, "docket.schedule", key);
    let ran = span_of(capture, "docket.task", key);
    let trace_id = scheduled
        .field("trace_id")
        .expect("the schedule span has a trace id");
    let span_id = scheduled
        .field("span_id")
        .expect("the schedule span has a span id");
    assert_eq!(trace_id.len(), 32, "{trace_id}");
    assert_eq!(span_id.len(), 16, "{span_id}");
    assert_eq!(ran.field("trace_id"), Some(trace_id));
    assert_eq!(ran.field("link"), Some(span_id));
}

/// Schedule one immediate and one future task on `producer`, run them with a worker on
/// `consumer`, and check both executions link to their schedule spans.
async fn immediate_and_future(producer: &Docket, consumer: &Docket) {
    let capture = Capture::new();
    let _guard = tracing::subscriber::set_default(capture.subscriber());
    let now = Traced::schedule("now".into()).on(producer).await.unwrap();
    let later = Traced::schedule("later".into())
        .after(Duration::from_millis(300))
        .on(producer)
        .await
        .unwrap();
    finish(consumer).await;
    assert_linked(&capture, now.key());
    assert_linked(&capture, later.key());
    let trace = |key| {
        span_of(&capture, "docket.schedule", key)
            .field("trace_id")
            .map(str::to_owned)
    };
    assert_ne!(
        trace(now.key()),
        trace(later.key()),
        "two schedule calls, two traces"
    );
}

#[tokio::test]
async fn executions_link_to_their_schedule_in_process() {
    let docket = Docket::in_process();
    immediate_and_future(&docket, &docket).await;
}

#[tokio::test]
async fn executions_link_to_their_schedule_on_memory() {
    let docket = Docket::memory();
    immediate_and_future(&docket, &docket).await;
}

#[tokio::test]
async fn executions_link_to_their_schedule_across_redis_handles() {
    let server = RedisServer::start();
    let name = unique_name("traces");
    let producer = Docket::connect(server.url()).name(&name).await.unwrap();
    let consumer = Docket::connect(server.url()).name(&name).await.unwrap();
    immediate_and_future(&producer, &consumer).await;
}

#[tokio::test]
async fn work_a_task_schedules_joins_its_trace() {
    let capture = Capture::new();
    let _guard = tracing::subscriber::set_default(capture.subscriber());
    let docket = Docket::memory();
    let parent = TracedParent::schedule("parent".into())
        .on(&docket)
        .await
        .unwrap();
    finish(&docket).await;
    let parent_trace = span_of(&capture, "docket.task", parent.key())
        .field("trace_id")
        .map(str::to_owned);
    let children: Vec<CapturedSpan> = capture
        .spans("docket.task")
        .into_iter()
        .filter(|span| span.field("task") == Some("traced"))
        .collect();
    assert_eq!(children.len(), 1, "{children:#?}");
    assert_eq!(
        children[0].field("trace_id").map(str::to_owned),
        parent_trace
    );
    let child_key = children[0].field("key").unwrap();
    assert_linked(&capture, child_key);
}
