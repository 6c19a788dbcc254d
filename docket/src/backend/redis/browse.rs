//! The dashboard's reads on Redis (see `backend/browse.rs`), each a bounded read:
//!
//! | read | commands |
//! |---|---|
//! | counts (the shared poll, each refresh) | 5, one round trip: `HLEN` index, `XPENDING` summary, `ZCARD` schedule, `HLEN` held, `HLEN` dead |
//! | queued page | 2 a round trip: `XRANGE` from the cursor, `XPENDING` over the same ids |
//! | scheduled page | `ZRANGE` by rank, then `HMGET` of the parked messages |
//! | running page | `XPENDING` from the cursor, then one `XRANGE` per delivery, pipelined |
//! | held page | `HSCAN` from the cursor |
//! | dead page | `ZRANGE … REV` by rank, then `HMGET` of the dead letters |
//! | a task | 5 `GET`/`HGET`s pipelined, then `XRANGE` and `XPENDING` of its entry if it has one |
//!
//! A filtered page reads on in chunks until it is full or has looked at
//! [`SCAN_LIMIT`] tasks; then it offers the next page from where it stopped.

use std::time::SystemTime;

use redis::Value;

use super::codec::{self, Entry, from_millis};
use super::keys::GROUP;
use super::reply::{pending_rows, stream_entries};
use super::{RedisBackend, decode_held};
use crate::backend::browse::{Counts, Filter, Page, Place, SCAN_LIMIT, TaskView};
use crate::error::Result;
use crate::inspect::{DeadLetter, TaskInfo};
use crate::results::TaskRecord;

/// How many entries a filtered page reads a round trip.
const CHUNK: usize = 500;

impl RedisBackend {
    /// How many tasks are in each place: five commands, one round trip.
    ///
    /// The queued tasks are counted from the index, not the stream, which also holds wake-ups
    /// and running entries: every waiting or running task has one index entry (scheduled ones
    /// `s`, held ones `h`, gated ones `g` and their id), so the index less the scheduled, held
    /// and running tasks is the queued ones, give or take a run cancelled or replaced while it
    /// runs (until it is settled).
    pub(crate) async fn counts(&self) -> Result<Counts> {
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("HLEN")
            .arg(&self.keys.index)
            .cmd("XPENDING")
            .arg(&self.keys.stream)
            .arg(GROUP)
            .cmd("ZCARD")
            .arg(&self.keys.schedule)
            .cmd("HLEN")
            .arg(&self.keys.held)
            .cmd("HLEN")
            .arg(&self.keys.dead)
            // Before any worker made the group, `XPENDING` fails alone: nothing runs.
            .ignore_errors();
        let replies: Vec<redis::RedisResult<Value>> = self.pipeline(&pipeline).await?;
        let taken = SystemTime::now();
        let mut replies = replies.into_iter().map(|reply| reply.unwrap_or(Value::Nil));
        let mut count = || replies.next().map_or(0, |value| number(&value) as usize);
        let indexed = count();
        // The summary's first item is the count.
        let running = count();
        let (scheduled, held, dead) = (count(), count(), count());
        Ok(Counts {
            taken,
            queued: indexed.saturating_sub(scheduled + held + running),
            scheduled,
            running,
            held,
            dead,
        })
    }

    /// A page of the tasks of `place`.
    pub(crate) async fn page(
        &self,
        place: Place,
        filter: &Filter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<TaskInfo>> {
        let chunk = if filter.is_empty() { limit } else { CHUNK };
        let mut items = Vec::new();
        let mut cursor = after.map(str::to_owned);
        let mut scanned = 0;
        loop {
            let (tasks, next) = match place {
                Place::Queued => self.queued_chunk(cursor.as_deref(), chunk).await?,
                Place::Scheduled => self.scheduled_chunk(cursor.as_deref(), chunk).await?,
                Place::Running => self.running_chunk(cursor.as_deref(), chunk).await?,
                Place::Held => self.held_chunk(cursor.as_deref(), chunk).await?,
            };
            scanned += chunk;
            let mut last = None;
            for (info, position) in tasks {
                // A full page in the middle of a chunk goes on after its last task (held
                // tasks come by `HSCAN` cursor, which cannot: their page takes the chunk whole).
                if items.len() >= limit && !position.is_empty() {
                    return Ok(Page { items, next: last });
                }
                if filter.admits(&info.task, &info.key) {
                    items.push(info);
                    last = Some(position);
                }
            }
            cursor = next;
            if cursor.is_none() || items.len() >= limit || scanned >= SCAN_LIMIT {
                return Ok(Page {
                    items,
                    next: cursor,
                });
            }
        }
    }

    /// Queued tasks from the stream id after `after`: the entries and the pending ids among
    /// them, in one round trip. Each task comes with the cursor that starts after it.
    async fn queued_chunk(&self, after: Option<&str>, count: usize) -> Result<Chunk> {
        let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("XRANGE")
            .arg(&self.keys.stream)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .cmd("XPENDING")
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg(&start)
            .arg("+")
            .arg(count);
        let (entries, pending): (Value, Value) = match self.pipeline(&pipeline).await {
            Ok(reply) => reply,
            // No group yet (no worker ever read the stream): nothing runs.
            Err(_) => {
                let mut command = redis::cmd("XRANGE");
                command
                    .arg(&self.keys.stream)
                    .arg(&start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(count);
                (self.query(&command).await?, Value::Nil)
            }
        };
        let entries = stream_entries(entries);
        let full = entries.len() == count;
        let running: std::collections::HashSet<String> = pending_rows(pending)
            .into_iter()
            .map(|row| row.id)
            .collect();
        let last = entries.last().map(|(id, _)| id.clone());
        let tasks = self
            .decode(entries)
            .into_iter()
            .filter(|entry| !running.contains(entry.id()))
            .filter_map(|entry| {
                let id = entry.id().to_owned();
                self.info_of(entry).map(|info| (info, id))
            })
            .collect();
        Ok((tasks, last.filter(|_| full)))
    }

    /// Scheduled tasks from the rank `after`, soonest first.
    async fn scheduled_chunk(&self, after: Option<&str>, count: usize) -> Result<Chunk> {
        let start: usize = after.and_then(|after| after.parse().ok()).unwrap_or(0);
        let mut command = redis::cmd("ZRANGE");
        command
            .arg(&self.keys.schedule)
            .arg(start)
            .arg(start + count - 1);
        let keys: Vec<String> = self.query(&command).await?;
        let next = (keys.len() == count).then(|| (start + count).to_string());
        if keys.is_empty() {
            return Ok((Vec::new(), next));
        }
        let mut command = redis::cmd("HMGET");
        command.arg(&self.keys.parked).arg(&keys);
        let messages: Vec<Option<Vec<u8>>> = self.query(&command).await?;
        let tasks = keys
            .iter()
            .zip(messages)
            .enumerate()
            .filter_map(|(i, (key, json))| {
                let message = codec::decode_message(key, &json?).ok()?;
                Some((TaskInfo::of(&message, None), (start + i + 1).to_string()))
            })
            .collect();
        Ok((tasks, next))
    }

    /// Running tasks from the pending id after `after`, in stream order.
    async fn running_chunk(&self, after: Option<&str>, count: usize) -> Result<Chunk> {
        let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        let mut command = redis::cmd("XPENDING");
        command
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg(&start)
            .arg("+")
            .arg(count);
        let rows = match self.query::<Value>(&command).await {
            Ok(pending) => pending_rows(pending),
            Err(_) => Vec::new(),
        };
        let next = (rows.len() == count).then(|| rows.last().map(|row| row.id.clone()));
        if rows.is_empty() {
            return Ok((Vec::new(), None));
        }
        let mut pipeline = redis::pipe();
        for row in &rows {
            pipeline
                .cmd("XRANGE")
                .arg(&self.keys.stream)
                .arg(&row.id)
                .arg(&row.id);
        }
        let entries: Vec<Value> = self.pipeline(&pipeline).await?;
        let tasks = rows
            .into_iter()
            .zip(entries)
            .filter_map(|(row, entries)| {
                let entry = stream_entries(entries).pop()?;
                let info = self.info_of(self.decode(vec![entry]).pop()?)?;
                Some((
                    TaskInfo {
                        worker: Some(row.consumer),
                        ..info
                    },
                    row.id,
                ))
            })
            .collect();
        Ok((tasks, next.flatten()))
    }

    /// Held tasks from the `HSCAN` cursor `after`.
    async fn held_chunk(&self, after: Option<&str>, count: usize) -> Result<Chunk> {
        let mut command = redis::cmd("HSCAN");
        command
            .arg(&self.keys.held)
            .arg(after.unwrap_or("0"))
            .arg("COUNT")
            .arg(count);
        let (cursor, pairs): (String, Vec<(String, Vec<u8>)>) = self.query(&command).await?;
        let next = (cursor != "0").then_some(cursor);
        let tasks = decode_held(pairs)
            .iter()
            .map(|message| (TaskInfo::of(message, None), String::new()))
            .collect();
        Ok((tasks, next))
    }

    /// A page of dead letters, newest first, from the rank `after`.
    pub(crate) async fn dead_page(
        &self,
        filter: &Filter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<DeadLetter>> {
        let chunk = if filter.is_empty() { limit } else { CHUNK };
        let mut start: usize = after.and_then(|after| after.parse().ok()).unwrap_or(0);
        let first = start;
        let mut items = Vec::new();
        loop {
            let mut command = redis::cmd("ZRANGE");
            command
                .arg(&self.keys.died)
                .arg(start)
                .arg(start + chunk - 1)
                .arg("REV");
            let keys: Vec<String> = self.query(&command).await?;
            let more = keys.len() == chunk;
            if !keys.is_empty() {
                let mut command = redis::cmd("HMGET");
                command.arg(&self.keys.dead).arg(&keys);
                let letters: Vec<Option<Vec<u8>>> = self.query(&command).await?;
                for (key, json) in keys.iter().zip(letters) {
                    if items.len() == limit {
                        return Ok(Page {
                            items,
                            next: Some(start.to_string()),
                        });
                    }
                    start += 1;
                    let Some(json) = json else { continue };
                    let letter = codec::decode_dead(key, &json);
                    if filter.admits(&letter.task, &letter.key) {
                        items.push(letter);
                    }
                }
            }
            if items.len() == limit || !more || start - first >= SCAN_LIMIT {
                return Ok(Page {
                    items,
                    next: more.then(|| start.to_string()),
                });
            }
        }
    }

    /// Everything Redis holds of the task `key`: two round trips at most.
    pub(crate) async fn task_view(&self, key: &str) -> Result<TaskView> {
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("HGET")
            .arg(&self.keys.index)
            .arg(key)
            .cmd("HGET")
            .arg(&self.keys.parked)
            .arg(key)
            .cmd("HGET")
            .arg(&self.keys.held)
            .arg(key)
            .cmd("HGET")
            .arg(&self.keys.dead)
            .arg(key)
            .cmd("GET")
            .arg(self.keys.state(key));
        type Stored = Option<Vec<u8>>;
        let (index, parked, held, dead, record): (Option<String>, Stored, Stored, Stored, Stored) =
            self.pipeline(&pipeline).await?;
        let mut view = TaskView {
            dead: dead.map(|json| codec::decode_dead(key, &json)),
            record: record.and_then(|json| TaskRecord::decode(&json).ok()),
            ..TaskView::default()
        };
        let Some(index) = index else {
            return Ok(view);
        };
        match index.as_str() {
            "s" => {
                view.place = Some(Place::Scheduled);
                view.message = parked.and_then(|json| codec::decode_message(key, &json).ok());
            }
            "h" => {
                view.place = Some(Place::Held);
                view.message = held.and_then(|json| codec::decode_message(key, &json).ok());
            }
            mark => {
                // A stream id, or one marked gated (`g`) or cancelled (`x`).
                let id = mark.trim_start_matches(['g', 'x']);
                let mut pipeline = redis::pipe();
                pipeline
                    .cmd("XRANGE")
                    .arg(&self.keys.stream)
                    .arg(id)
                    .arg(id)
                    .cmd("XPENDING")
                    .arg(&self.keys.stream)
                    .arg(GROUP)
                    .arg(id)
                    .arg(id)
                    .arg(1);
                let (entries, pending): (Value, Value) = self
                    .pipeline(&pipeline)
                    .await
                    .unwrap_or((Value::Nil, Value::Nil));
                let worker = pending_rows(pending).pop().map(|row| row.consumer);
                if let Some(Entry::Task { message, .. }) =
                    self.decode(stream_entries(entries)).pop()
                {
                    view.place = Some(match worker {
                        Some(_) => Place::Running,
                        None => Place::Queued,
                    });
                    view.message = Some(message);
                    view.worker = worker;
                }
            }
        }
        Ok(view)
    }

    /// What a list shows of a stream entry; wake-ups show nothing.
    fn info_of(&self, entry: Entry) -> Option<TaskInfo> {
        match entry {
            Entry::Task { message, .. } => Some(TaskInfo::of(&message, None)),
            Entry::Wake { .. } => None,
            Entry::Garbled { id, key, .. } => Some(TaskInfo {
                key: key.unwrap_or_else(|| format!("garbled:{id}")),
                task: String::new(),
                due: from_millis(crate::backend::stream_order(&id).0),
                attempt: 0,
                worker: None,
                attempts: None,
            }),
        }
    }
}

/// Tasks with the cursor after each, and the cursor after the chunk (`None` at the end).
type Chunk = (Vec<(TaskInfo, String)>, Option<String>);

/// A count in a reply: an integer, or the first item of an array (`XPENDING`'s summary).
fn number(value: &Value) -> u64 {
    match value {
        Value::Int(n) => u64::try_from(*n).unwrap_or(0),
        Value::Array(items) => items.first().map_or(0, number),
        other => text(other).parse().unwrap_or(0),
    }
}

fn bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::BulkString(bytes) => bytes.clone(),
        Value::SimpleString(text) => text.clone().into_bytes(),
        _ => Vec::new(),
    }
}

fn text(value: &Value) -> String {
    String::from_utf8_lossy(&bytes(value)).into_owned()
}
