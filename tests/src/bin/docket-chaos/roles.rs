//! The two kinds of child process: workers, which run the chaos task and log each completion,
//! and producers, which schedule a mix of tasks and log what they scheduled.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use docket::{Docket, Worker};

use crate::rng::Rng;

/// What a chaos task does: `ok` works and succeeds; the toxic kinds `panic`, `error`, `hang`
/// (past its timeout) and `exit` (the process) must end as dead letters.
#[docket::task(retries = 2, backoff = "fixed 50ms", timeout = "1s")]
async fn chaos(id: String, kind: String, work_ms: u64) -> Result<(), String> {
    match kind.as_str() {
        "panic" => panic!("toxic task {id} panics"),
        "error" => return Err(format!("toxic task {id} fails")),
        "hang" => tokio::time::sleep(Duration::from_secs(30)).await,
        "exit" => std::process::exit(7),
        _ => tokio::time::sleep(Duration::from_millis(work_ms)).await,
    }
    log(&format!("done {id}"));
    Ok(())
}

/// This process's log file: one line per event, appended whole.
fn log(line: &str) {
    static FILE: std::sync::OnceLock<std::sync::Mutex<std::fs::File>> = std::sync::OnceLock::new();
    let file = FILE.get_or_init(|| {
        let dir = PathBuf::from(std::env::var("CHAOS_DIR").expect("CHAOS_DIR is set"));
        let path = dir.join(format!("{}.log", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open the log");
        std::sync::Mutex::new(file)
    });
    let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    file.write_all(format!("{line}\n").as_bytes())
        .expect("write the log");
}

pub(crate) async fn open(url: &str, name: &str) -> docket::Result<Docket> {
    // On a cluster, whose masters the chaos kills, a task counts as scheduled once a replica
    // holds it: replication is asynchronous.
    let replicas = u32::from(url.starts_with("redis+cluster://"));
    let partitions = std::env::var("DOCKET_PARTITIONS")
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(1);
    Docket::connect(url)
        .name(name)
        .partitions(partitions)
        .redelivery_timeout(Duration::from_secs(1))
        .wait_replicas(replicas)
        .in_process_fallback(false)
        .await
}

/// Work until SIGTERM (or until killed).
pub(crate) async fn work(url: &str, name: &str) -> docket::Result<()> {
    let docket = open(url, name).await?;
    Worker::new(&docket).concurrency(20).run().await
}

/// Schedule `count` tasks, ids `p{index}-{n}`, recording each whose scheduling succeeded as
/// `must ID` (it has to complete), `cancelled ID` (it must not run), `replaced ID` or `unsure ID`
/// (either may happen), or `toxic-KIND ID` (it must end as a dead letter).
pub(crate) async fn produce(
    url: &str,
    name: &str,
    index: u64,
    count: u64,
    spread: Duration,
    seed: u64,
) -> docket::Result<()> {
    let docket = open(url, name).await?;
    let mut rng = Rng::new(seed ^ (index + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for n in 0..count {
        let id = format!("p{index}-{n}");
        let roll = rng.below(1000);
        let ahead = Duration::from_millis(rng.below(spread.as_millis() as u64 + 1));
        let due_later = rng.chance(50.0);
        let work_ms = rng.below(20);
        let task = |id: &str, kind: &str| Chaos::schedule(id.into(), kind.into(), work_ms);
        match roll {
            0..10 => {
                let kind = ["panic", "error", "hang", "exit"][(roll % 4) as usize];
                persist(|| task(&id, kind).key(&id).on(&docket)).await;
                log(&format!("toxic-{kind} {id}"));
            }
            10..60 => {
                let key = format!("{id}-c");
                let later = Duration::from_secs(3) + ahead;
                persist(|| task(&key, "ok").key(&key).after(later).on(&docket)).await;
                // `false` may be the answer to a retry after a cancel whose answer was lost.
                let cancelled = retry(|| docket.cancel(&key)).await;
                log(&format!(
                    "{} {key}",
                    if cancelled { "cancelled" } else { "unsure" }
                ));
            }
            60..160 => {
                // The first version, due later, is replaced at once by the second.
                let (first, second) = (format!("{id}-r0"), format!("{id}-r1"));
                let later = Duration::from_secs(2) + ahead;
                persist(|| task(&first, "ok").key(&id).after(later).on(&docket)).await;
                persist(|| {
                    task(&second, "ok")
                        .key(&id)
                        .after(ahead)
                        .replace()
                        .on(&docket)
                })
                .await;
                log(&format!("replaced {first}"));
                log(&format!("must {second}"));
            }
            _ => {
                let when = if due_later { ahead } else { Duration::ZERO };
                persist(|| task(&id, "ok").key(&id).after(when).on(&docket)).await;
                log(&format!("must {id}"));
            }
        }
    }
    Ok(())
}

/// Schedule until it succeeds. Every chaos task has a key, so a try whose answer was lost and
/// is repeated finds its task already there.
async fn persist<T: docket::Task>(mut schedule: impl FnMut() -> docket::Schedule<T>) {
    retry(|| {
        let attempt = schedule();
        async move { attempt.await.map(drop) }
    })
    .await;
}

async fn retry<T, F: std::future::Future<Output = docket::Result<T>>>(
    mut attempt: impl FnMut() -> F,
) -> T {
    loop {
        match attempt().await {
            Ok(value) => return value,
            // Not confirmed by a replica (a master was just killed): the same keyed task again
            // is harmless.
            Err(error)
                if error.is_unavailable()
                    || matches!(error, docket::Error::NotReplicated { .. }) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("a producer failed: {error:?}"),
        }
    }
}

/// Every log line in `dir`, from every process.
pub(crate) fn read_logs(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir)
        .expect("read the chaos directory")
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "log") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            lines.extend(text.lines().map(str::to_owned));
        }
    }
    lines
}
