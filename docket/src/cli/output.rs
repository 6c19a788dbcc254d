//! What the commands print: aligned tables for people, one JSON document (`--json`) for scripts.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::inspect::{DeadLetter, Snapshot, TaskInfo, WorkerInfo};
use crate::policy::Attempts;
use crate::strike::Strike;

pub(super) fn io(error: std::io::Error) -> Error {
    Error::Config(format!("cannot write the output: {error}"))
}

/// RFC 3339 in UTC, to the millisecond.
pub(super) fn time(time: SystemTime) -> String {
    match jiff::Timestamp::try_from(time) {
        Ok(timestamp) => format!("{timestamp:.3}"),
        Err(_) => format!("{time:?}"),
    }
}

fn print_json(out: &mut (dyn Write + Send), value: &Value) -> Result<()> {
    writeln!(out, "{value:#}").map_err(io)
}

/// Rows of cells, columns padded to their widest cell.
fn table(out: &mut (dyn Write + Send), header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    writeln!(out, "{}", line(header.to_vec())).map_err(io)?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect())).map_err(io)?;
    }
    Ok(())
}

fn task_json(task: &TaskInfo) -> Value {
    json!({
        "key": task.key,
        "task": task.task,
        "due": time(task.due),
        "attempt": task.attempt,
        "attempts": task.attempts.map(|attempts| match attempts {
            Attempts::AtMost(most) => Value::from(most),
            Attempts::Unlimited => Value::from("forever"),
        }),
        "worker": task.worker,
    })
}

pub(super) fn snapshot(
    out: &mut (dyn Write + Send),
    json: bool,
    snapshot: &Snapshot,
) -> Result<()> {
    let sections: [(&str, &[TaskInfo]); 4] = [
        ("queued", &snapshot.queued),
        ("scheduled", &snapshot.scheduled),
        ("running", &snapshot.running),
        ("held", &snapshot.held),
    ];
    // Per task name: how many in each section.
    let mut per_task: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    for (column, (_, tasks)) in sections.iter().enumerate() {
        for task in *tasks {
            per_task.entry(&task.task).or_default()[column] += 1;
        }
    }
    if json {
        let mut document = serde_json::Map::new();
        document.insert("taken".into(), time(snapshot.taken).into());
        for (name, tasks) in sections {
            document.insert(name.into(), tasks.iter().map(task_json).collect());
        }
        document.insert("dead".into(), snapshot.dead.into());
        let counts: serde_json::Map<String, Value> = per_task
            .iter()
            .map(|(task, counts)| {
                let mut row = serde_json::Map::new();
                for ((name, _), count) in sections.iter().zip(counts) {
                    row.insert((*name).into(), (*count).into());
                }
                ((*task).to_owned(), Value::Object(row))
            })
            .collect();
        document.insert("tasks".into(), Value::Object(counts));
        return print_json(out, &Value::Object(document));
    }
    writeln!(
        out,
        "{} queued, {} scheduled, {} running, {} held, {} dead (at {})",
        snapshot.queued.len(),
        snapshot.scheduled.len(),
        snapshot.running.len(),
        snapshot.held.len(),
        snapshot.dead,
        time(snapshot.taken),
    )
    .map_err(io)?;
    if per_task.is_empty() {
        return Ok(());
    }
    writeln!(out).map_err(io)?;
    let rows: Vec<Vec<String>> = per_task
        .iter()
        .map(|(task, counts)| {
            let mut row = vec![(*task).to_owned()];
            row.extend(counts.iter().map(usize::to_string));
            row
        })
        .collect();
    table(
        out,
        &["TASK", "QUEUED", "SCHEDULED", "RUNNING", "HELD"],
        &rows,
    )?;
    for (name, tasks) in sections {
        if tasks.is_empty() {
            continue;
        }
        writeln!(out, "\n{}", name.to_uppercase()).map_err(io)?;
        let rows: Vec<Vec<String>> = tasks
            .iter()
            .map(|task| {
                vec![
                    task.key.clone(),
                    task.task.clone(),
                    match task.attempts {
                        Some(attempts) => format!("{}/{attempts}", task.attempt),
                        None => task.attempt.to_string(),
                    },
                    time(task.due),
                    task.worker.clone().unwrap_or_default(),
                ]
            })
            .collect();
        table(out, &["KEY", "TASK", "ATTEMPT", "DUE", "WORKER"], &rows)?;
    }
    Ok(())
}

fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

pub(super) fn workers(
    out: &mut (dyn Write + Send),
    json: bool,
    workers: &[WorkerInfo],
) -> Result<()> {
    if json {
        let list: Vec<Value> = workers
            .iter()
            .map(|worker| {
                json!({
                    "name": worker.name,
                    "running": worker.running,
                    "idle_ms": u64::try_from(worker.idle.as_millis()).unwrap_or(u64::MAX),
                })
            })
            .collect();
        return print_json(out, &json!({ "workers": list }));
    }
    if workers.is_empty() {
        return writeln!(out, "no workers").map_err(io);
    }
    let rows: Vec<Vec<String>> = workers
        .iter()
        .map(|worker| {
            vec![
                worker.name.clone(),
                worker.running.to_string(),
                seconds(worker.idle),
            ]
        })
        .collect();
    table(out, &["WORKER", "RUNNING", "IDLE"], &rows)
}

/// The outcome of a command that changes something: what, whether it did, and how many tasks.
pub(super) fn changed(
    out: &mut (dyn Write + Send),
    json: bool,
    action: &str,
    subject: &str,
    changed: bool,
    count: usize,
) -> Result<()> {
    if json {
        return print_json(
            out,
            &json!({ "action": action, "subject": subject, "changed": changed, "count": count }),
        );
    }
    let line = match (action, changed) {
        ("struck", true) => format!("struck {subject}"),
        ("struck", false) => format!("{subject} was already struck"),
        ("restored", true) => format!("restored {subject}; {count} held tasks queued again"),
        ("restored", false) => format!("{subject} was not struck; {count} held tasks queued again"),
        ("cancelled", true) => format!("cancelled {subject}"),
        ("cancelled", false) => format!("no task with key {subject} is waiting or running"),
        (action, _) => format!("{action} {count} tasks from {subject}"),
    };
    writeln!(out, "{line}").map_err(io)
}

pub(super) fn strikes(out: &mut (dyn Write + Send), json: bool, strikes: &[Strike]) -> Result<()> {
    if json {
        let list =
            serde_json::to_value(strikes).map_err(|error| Error::Config(error.to_string()))?;
        return print_json(out, &json!({ "strikes": list }));
    }
    if strikes.is_empty() {
        return writeln!(out, "no strikes").map_err(io);
    }
    for strike in strikes {
        writeln!(out, "{strike}").map_err(io)?;
    }
    Ok(())
}

pub(super) fn dead(out: &mut (dyn Write + Send), json: bool, dead: &[DeadLetter]) -> Result<()> {
    if json {
        let list: Vec<Value> = dead
            .iter()
            .map(|letter| {
                let args: Value = serde_json::from_str(&letter.args)
                    .unwrap_or_else(|_| Value::String(letter.args.clone()));
                let history: Vec<Value> = letter
                    .history
                    .iter()
                    .map(|failed| {
                        json!({ "attempt": failed.attempt, "error": failed.error, "at": time(failed.at) })
                    })
                    .collect();
                json!({
                    "key": letter.key,
                    "task": letter.task,
                    "args": args,
                    "attempt": letter.attempt,
                    "reason": letter.reason,
                    "died": time(letter.died),
                    "history": history,
                })
            })
            .collect();
        return print_json(out, &json!({ "dead": list }));
    }
    if dead.is_empty() {
        return writeln!(out, "no dead letters").map_err(io);
    }
    let rows: Vec<Vec<String>> = dead
        .iter()
        .map(|letter| {
            vec![
                letter.key.clone(),
                letter.task.clone(),
                letter.attempt.to_string(),
                time(letter.died),
                letter.reason.clone(),
            ]
        })
        .collect();
    table(out, &["KEY", "TASK", "ATTEMPT", "DIED", "REASON"], &rows)
}

/// The dead letters an operation (`replayed`, `removed`) changed.
pub(super) fn dead_letters_changed(
    out: &mut (dyn Write + Send),
    json: bool,
    what: &str,
    keys: &[String],
) -> Result<()> {
    if json {
        return print_json(out, &json!({ what: keys }));
    }
    writeln!(out, "{what} {} dead letters", keys.len()).map_err(io)?;
    for key in keys {
        writeln!(out, "  {key}").map_err(io)?;
    }
    Ok(())
}

pub(super) fn version(out: &mut (dyn Write + Send), json: bool) -> Result<()> {
    let version = env!("CARGO_PKG_VERSION");
    if json {
        return print_json(out, &json!({ "version": version }));
    }
    writeln!(out, "docket {version}").map_err(io)
}
