//! The axum example: `cargo run -p examples --example tracks`, then
//!
//! ```sh
//! curl -i --json '{"title": "Demo", "audio_url": "https://cdn.example/demo.flac"}' localhost:3000/tracks
//! curl localhost:3000/tracks/1     # pending, scanning, then clean
//! ```
//!
//! With `DOCKET_URL` unset the scans run in-process; with `DOCKET_URL=redis://127.0.0.1:6379`
//! they wait in Redis until a worker has done them, across restarts. ctrl-c or SIGTERM stops the
//! server and the worker once the running requests and scans are done. The app is in
//! `examples/src/tracks.rs`.

use std::time::Duration;

use examples::tracks::{Scanner, Store, serve};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt().init();
    let address = std::env::var("ADDRESS").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    let docket = docket::Docket::from_env().await?;
    tracing::info!(%address, docket = docket.name(), queue = docket.has_queue(), "serving");
    let (store, scanner) = (Store::default(), Scanner::new(Duration::from_secs(3)));
    // ctrl-c, or SIGTERM (what `docker stop` and Kubernetes send).
    serve(listener, docket, store, scanner, docket::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
