//! Injected parameters and every policy key a task with arguments can take.

use std::sync::Arc;
use std::time::Duration;

use docket::{policy::Backoff, Context, policy::Policy, State, Task};

#[derive(Clone)]
pub struct Db {
    url: Arc<str>,
}

#[derive(Clone)]
pub struct Http;

/// Ingest an uploaded track.
#[docket::task(
    name = "ingest",
    retries = 5,
    backoff = "exponential 1s..1m",
    jitter = "20%",
    timeout = "2m",
    concurrency(track_id) = 2,
    rate_limit(user_id) = "10/1m",
    debounce(track_id) = "1.5s",
    result = "1d"
)]
pub async fn ingest(
    track_id: i64,
    ctx: Context,
    State(db): State<Db>,
    user_id: u64,
    _http: docket::State<Http>,
) -> Result<String, std::io::Error> {
    ctx.extend_timeout(Duration::from_secs(1));
    Ok(format!("{track_id} by {user_id} into {}", db.url))
}

/// Limits over the whole task, and results kept an hour.
#[docket::task(concurrency = 4, rate_limit = "100/1s", debounce = "5s", result)]
async fn reindex(mut shard: u32, State(http): State<Http>) {
    shard += 1;
    let _ = (shard, http);
}

fn main() {
    // Only the serialized arguments are fields and `schedule` parameters.
    let _: fn(i64, u64) -> docket::Schedule<Ingest> = Ingest::schedule;
    let _: fn(i64, u64) -> docket::Schedule<Ingest> = schedule_ingest;
    let _: fn(u32) -> docket::Schedule<Reindex> = schedule_reindex;
    let Ingest { track_id, user_id } = Ingest {
        track_id: 7,
        user_id: 1,
    };
    let _ = (track_id, user_id);

    assert_eq!(Ingest::NAME, "ingest");
    assert_eq!(
        Ingest::policy(),
        Policy::new()
            .with_retries(5)
            .with_backoff(Backoff::exponential(
                Duration::from_secs(1),
                Duration::from_secs(60)
            ))
            .with_jitter(20)
            .with_timeout(Duration::from_secs(120))
            .with_concurrency_by("track_id", 2)
            .with_rate_limit_by("user_id", 10, Duration::from_secs(60))
            .with_debounce_by("track_id", Duration::from_millis(1500))
            .with_result(Duration::from_secs(24 * 60 * 60))
    );
    let required = format!("{:?}", Ingest::required_state());
    assert!(
        required.contains("Db") && required.contains("Http"),
        "{required}"
    );

    assert_eq!(
        Reindex::policy(),
        Policy::new()
            .with_concurrency(4)
            .with_rate_limit(100, Duration::from_secs(1))
            .with_debounce(Duration::from_secs(5))
            .with_result(Duration::from_secs(60 * 60))
    );
    assert_eq!(Reindex::required_state().len(), 1);
}
