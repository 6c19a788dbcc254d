//! Traces across the queue with OpenTelemetry: a request span schedules a task now and another
//! for later, and each execution span carries a span link back to where it was scheduled.
//!
//! ```sh
//! cargo run -p examples --example otel                                    # in-process
//! DOCKET_URL=redis://127.0.0.1:6379 cargo run -p examples --example otel  # through Redis
//! ```
//!
//! The spans print to stdout as the stdout exporter sees them: look for the `links` of each
//! `docket.task` span, naming the `span_id` of a `docket.schedule` span inside `POST /tracks`.
//! Point an OTLP exporter at your collector instead of the stdout one in a real service.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

/// Send the uploader a receipt.
#[docket::task]
async fn send_receipt(track_id: u64) {
    tracing::info!(track_id, "receipt sent");
}

/// Publish the track once its embargo ends.
#[docket::task]
async fn publish(track_id: u64) {
    tracing::info!(track_id, "published");
}

#[tokio::main]
async fn main() -> docket::Result<()> {
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("otel-example")));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let docket = docket::Docket::from_env().await?;
    async {
        SendReceipt::schedule(7).on(&docket).await?;
        Publish::schedule(7)
            .after(Duration::from_secs(1))
            .on(&docket)
            .await?;
        Ok::<(), docket::Error>(())
    }
    .instrument(tracing::info_span!("POST /tracks", track_id = 7))
    .await?;

    docket::Worker::new(&docket).run_until_finished().await?;
    provider.force_flush().expect("the stdout exporter flushes");
    Ok(())
}
