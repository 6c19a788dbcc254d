use std::time::Duration;

use docket::{policy::Backoff, policy::Policy, Task};

/// Scan an uploaded track.
#[docket::task(retries = 3, backoff = "exponential 1s..60s", timeout = "30s")]
pub async fn scan_copyright(track_id: i64, audio_url: String) -> Result<(), std::io::Error> {
    assert_eq!(
        (track_id, audio_url.as_str()),
        (7, "https://cdn.example/7.flac")
    );
    Ok(())
}

#[docket::task(name = "ping", backoff = "fixed 250ms", timeout = "1.5m")]
async fn ping(mut count: u32) {
    count += 1;
    assert_eq!(count, 1);
}

fn main() {
    // The function is still an ordinary `async fn`.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(scan_copyright(7, "https://cdn.example/7.flac".to_owned()))
        .unwrap();
    runtime.block_on(ping(0));

    // Both ways to schedule take the function's arguments; nothing is scheduled here.
    let _: fn(i64, String) -> docket::Schedule<ScanCopyright> = ScanCopyright::schedule;
    let _: fn(i64, String) -> docket::Schedule<ScanCopyright> = schedule_scan_copyright;
    let _: fn(u32) -> docket::Schedule<Ping> = schedule_ping;

    let args = ScanCopyright {
        track_id: 7,
        audio_url: "https://cdn.example/7.flac".to_owned(),
    };
    assert_eq!(
        format!("{:?}", args.clone()),
        r#"ScanCopyright { track_id: 7, audio_url: "https://cdn.example/7.flac" }"#
    );

    assert_eq!(ScanCopyright::NAME, "scan_copyright");
    assert_eq!(
        ScanCopyright::policy(),
        Policy::new()
            .with_retries(3)
            .with_backoff(Backoff::exponential(
                Duration::from_secs(1),
                Duration::from_secs(60)
            ))
            .with_timeout(Duration::from_secs(30))
    );
    assert_eq!(Ping::NAME, "ping");
    assert_eq!(
        Ping::policy(),
        Policy::new()
            .with_backoff(Backoff::fixed(Duration::from_millis(250)))
            .with_timeout(Duration::from_secs(90))
    );
}
