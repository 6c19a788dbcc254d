//! With the `opentelemetry` feature: the execution span of a task carries an OpenTelemetry span
//! link to the span that scheduled it, for an immediate and a future task, captured by an
//! in-memory exporter.

use std::time::Duration;

use docket::Docket;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tests::finish;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

#[docket::task]
async fn otel_traced(label: String) {
    let _ = label;
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|span| span.name == name).collect()
}

#[tokio::test]
async fn execution_spans_link_to_their_schedule_spans() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("docket-test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let docket = Docket::memory();
    async {
        OtelTraced::schedule("now".into())
            .on(&docket)
            .await
            .unwrap();
        OtelTraced::schedule("later".into())
            .after(Duration::from_millis(200))
            .on(&docket)
            .await
            .unwrap();
    }
    .instrument(tracing::info_span!("POST /tracks"))
    .await;
    finish(&docket).await;
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let request = named(&spans, "POST /tracks");
    assert_eq!(request.len(), 1);
    let schedules = named(&spans, "docket.schedule");
    let runs = named(&spans, "docket.task");
    assert_eq!(schedules.len(), 2, "{spans:#?}");
    assert_eq!(runs.len(), 2, "{spans:#?}");
    for schedule in &schedules {
        assert_eq!(
            schedule.parent_span_id,
            request[0].span_context.span_id(),
            "scheduling happens inside the request span"
        );
        let linked: Vec<_> = runs
            .iter()
            .filter(|run| {
                run.links.links.iter().any(|link| {
                    link.span_context.trace_id() == schedule.span_context.trace_id()
                        && link.span_context.span_id() == schedule.span_context.span_id()
                })
            })
            .collect();
        assert_eq!(linked.len(), 1, "one execution links to each schedule span");
    }
}
