//! `docket watch KEY`: one task's state and progress, live, until it ends.

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;

use crate::error::{Error, Result};
use crate::handle::Docket;
use crate::results::{Status, TaskRecord};

/// How long to wait before watching again when the feed ended (the connection was lost).
const REWATCH_PAUSE: Duration = Duration::from_millis(500);

/// Print each state of the task `key` as it changes, one line each (one JSON object a line
/// with `json`), until it ends: `Ok` when it completed, [`Error::TaskFailed`] or
/// [`Error::TaskCancelled`] otherwise, so a script can branch on the exit code.
///
/// A key with no record (a task that does not keep results, one whose record expired, or no
/// such task) is an [`Error::NoResult`] at once.
pub(super) async fn watch(
    out: &mut (dyn Write + Send),
    json: bool,
    docket: &Docket,
    key: &str,
) -> Result<()> {
    if docket.status(key).await?.is_none() {
        return Err(Error::NoResult {
            key: key.to_owned(),
        });
    }
    let mut last: Option<TaskRecord> = None;
    loop {
        let mut feed = docket.watch(key).await?;
        while let Some(record) = feed.next().await {
            if last.as_ref() == Some(&record) {
                continue; // The current state, seen again after watching anew.
            }
            line(out, json, &record)?;
            if record.status.is_final() {
                return ended(record);
            }
            last = Some(record);
        }
        // The feed ended: watch again, from the state now.
        tokio::time::sleep(REWATCH_PAUSE).await;
    }
}

/// The command's outcome for the task's final state.
fn ended(record: TaskRecord) -> Result<()> {
    match record.status {
        Status::Failed => Err(Error::TaskFailed {
            key: record.key,
            message: record.error.unwrap_or_default(),
        }),
        Status::Cancelled => Err(Error::TaskCancelled { key: record.key }),
        _ => Ok(()),
    }
}

/// One state: `time  status  task  attempt N  [c/t message]  [error: ..]`.
fn line(out: &mut (dyn Write + Send), json: bool, record: &TaskRecord) -> Result<()> {
    let io = |error: std::io::Error| Error::Config(format!("cannot write the output: {error}"));
    let at = UNIX_EPOCH + Duration::from_millis(record.updated_ms);
    if json {
        let value = json!({
            "at": super::output::time(at),
            "key": record.key,
            "task": record.task,
            "status": record.status,
            "attempt": record.attempt,
            "progress": record.progress.as_ref().map(|p| json!({
                "current": p.current, "total": p.total, "message": p.message,
            })),
            "result": record.result.as_deref().map(|result| {
                serde_json::from_str::<serde_json::Value>(result)
                    .unwrap_or_else(|_| result.into())
            }),
            "error": record.error,
        });
        writeln!(out, "{value}").map_err(io)?;
    } else {
        let status = serde_json::to_value(record.status)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut text = format!(
            "{}  {status:<9}  {}  attempt {}",
            super::output::time(at),
            record.task,
            record.attempt
        );
        if let Some(progress) = &record.progress {
            text += &format!(
                "  {}/{} {}",
                progress.current, progress.total, progress.message
            );
        }
        if let Some(error) = &record.error {
            text += &format!("  error: {error}");
        }
        writeln!(out, "{}", text.trim_end()).map_err(io)?;
    }
    out.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_shows_status_attempt_progress_and_error() {
        let mut record = TaskRecord::new("k", "scan", Status::Running, 2);
        record.updated_ms = 0;
        record.progress = Some(crate::results::Progress {
            current: 1,
            total: 3,
            message: "hashed".into(),
        });
        record.error = Some("disk full".into());
        let mut out = Vec::new();
        line(&mut out, false, &record).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "1970-01-01T00:00:00.000Z  running    scan  attempt 2  1/3 hashed  error: disk full\n"
        );
        let mut out = Vec::new();
        line(&mut out, true, &record).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["status"], "running");
        assert_eq!(value["progress"]["total"], 3);
    }

    #[test]
    fn the_final_state_decides_the_outcome() {
        let record = |status| TaskRecord::new("k", "scan", status, 1);
        assert!(ended(record(Status::Completed)).is_ok());
        assert!(matches!(
            ended(record(Status::Failed)),
            Err(Error::TaskFailed { .. })
        ));
        assert!(matches!(
            ended(record(Status::Cancelled)),
            Err(Error::TaskCancelled { .. })
        ));
    }
}
