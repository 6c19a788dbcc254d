//! Reads for the dashboard: the counts in one round trip, and the tasks of one place a page at
//! a time, never the whole queue.
//!
//! Each backend answers them in its own `browse` module (`memory/browse.rs`,
//! `redis/browse.rs`); this one holds the shapes they share and the dispatch.

use std::time::SystemTime;

use super::{AnyBackend, Message};
use crate::error::Result;
use crate::inspect::{DeadLetter, TaskInfo};
use crate::results::TaskRecord;

/// The most tasks a filtered page looks at before it stops and offers the next page: a filter
/// that matches nothing costs a bounded read, not the whole queue.
pub(crate) const SCAN_LIMIT: usize = 2_000;

/// How many tasks are in each place at one moment: what the dashboard polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) taken: SystemTime,
    /// Due tasks waiting for a worker (or for a concurrency slot).
    pub(crate) queued: usize,
    pub(crate) scheduled: usize,
    pub(crate) running: usize,
    pub(crate) held: usize,
    pub(crate) dead: usize,
}

/// Where a waiting or running task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Place {
    Queued,
    Scheduled,
    Running,
    Held,
}

impl Place {
    /// Every place, in the order the dashboard lists them.
    pub(crate) const ALL: [Place; 4] =
        [Place::Queued, Place::Scheduled, Place::Running, Place::Held];

    /// Its name in URLs and headings.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Place::Queued => "queued",
            Place::Scheduled => "scheduled",
            Place::Running => "running",
            Place::Held => "held",
        }
    }

    /// The place named `name` in a URL.
    pub(crate) fn parse(name: &str) -> Option<Place> {
        Place::ALL.into_iter().find(|place| place.name() == name)
    }
}

/// Which tasks a page shows: of one task name, and with a key containing some text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    pub(crate) task: Option<String>,
    pub(crate) key: Option<String>,
}

impl Filter {
    /// Whether a task named `task` with key `key` passes.
    pub(crate) fn admits(&self, task: &str, key: &str) -> bool {
        self.task.as_deref().is_none_or(|wanted| wanted == task)
            && self.key.as_deref().is_none_or(|part| key.contains(part))
    }

    /// Whether it lets every task through.
    pub(crate) fn is_empty(&self) -> bool {
        self.task.is_none() && self.key.is_none()
    }
}

/// One page of a list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    /// Where the next page starts (opaque, backend-specific); `None` at the end.
    pub(crate) next: Option<String>,
}

/// All that is known of one task by its key.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TaskView {
    /// Where its waiting or running copy is, if it has one.
    pub(crate) place: Option<Place>,
    /// That copy: arguments, due time, attempt and error history.
    pub(crate) message: Option<Message>,
    /// The worker running it.
    pub(crate) worker: Option<String>,
    /// Its dead letter, if it died.
    pub(crate) dead: Option<DeadLetter>,
    /// Its kept record, for tasks that keep results.
    pub(crate) record: Option<TaskRecord>,
}

impl TaskView {
    /// Whether nothing at all is known of the key.
    pub(crate) fn is_unknown(&self) -> bool {
        self.message.is_none() && self.dead.is_none() && self.record.is_none()
    }
}

/// The dashboard's reads, for either backend.
impl AnyBackend {
    /// How many tasks are in each place; on Redis five commands in one round trip.
    pub(crate) async fn counts(&self) -> Result<Counts> {
        match self {
            AnyBackend::Memory(backend) => Ok(backend.counts()),
            AnyBackend::Redis(backend) => backend.counts().await,
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(_) => Err(crate::Error::Unsupported {
                operation: "the dashboard",
                protocol: "pydocket",
            }),
        }
    }

    /// Up to `limit` tasks of `place` passing `filter`, from `after` (a page's `next`).
    pub(crate) async fn page(
        &self,
        place: Place,
        filter: &Filter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<TaskInfo>> {
        match self {
            AnyBackend::Memory(backend) => Ok(backend.page(place, filter, after, limit)),
            AnyBackend::Redis(backend) => backend.page(place, filter, after, limit).await,
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(_) => Err(crate::Error::Unsupported {
                operation: "the dashboard",
                protocol: "pydocket",
            }),
        }
    }

    /// Up to `limit` dead letters passing `filter`, newest first, from `after`.
    pub(crate) async fn dead_page(
        &self,
        filter: &Filter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<DeadLetter>> {
        match self {
            AnyBackend::Memory(backend) => Ok(backend.dead_page(filter, after, limit)),
            AnyBackend::Redis(backend) => backend.dead_page(filter, after, limit).await,
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(_) => Err(crate::Error::Unsupported {
                operation: "the dashboard",
                protocol: "pydocket",
            }),
        }
    }

    /// Everything known of the task `key`.
    pub(crate) async fn task_view(&self, key: &str) -> Result<TaskView> {
        match self {
            AnyBackend::Memory(backend) => Ok(backend.task_view(key)),
            AnyBackend::Redis(backend) => backend.task_view(key).await,
            #[cfg(feature = "pydocket")]
            AnyBackend::Pydocket(_) => Err(crate::Error::Unsupported {
                operation: "the dashboard",
                protocol: "pydocket",
            }),
        }
    }
}

/// Page through `all` (already in order) from the offset `after`, keeping those `keep` admits:
/// for lists a backend holds whole, or reads by rank.
pub(crate) fn page_of<T>(
    all: impl Iterator<Item = T>,
    after: Option<&str>,
    limit: usize,
    keep: impl Fn(&T) -> bool,
) -> Page<T> {
    let start: usize = after.and_then(|after| after.parse().ok()).unwrap_or(0);
    let mut items = Vec::new();
    let mut seen = start;
    let mut more = false;
    for item in all.skip(start) {
        if items.len() == limit || seen - start == SCAN_LIMIT {
            more = true;
            break;
        }
        seen += 1;
        if keep(&item) {
            items.push(item);
        }
    }
    Page {
        items,
        next: more.then(|| seen.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_matches_the_task_name_whole_and_the_key_in_part() {
        let filter = Filter {
            task: Some("scan".into()),
            key: Some("7".into()),
        };
        assert!(filter.admits("scan", "track-17"));
        assert!(!filter.admits("scanner", "track-17"));
        assert!(!filter.admits("scan", "track-1"));
        assert!(Filter::default().admits("any", "thing"));
    }

    #[test]
    fn pages_by_offset_go_on_where_the_last_one_stopped() {
        let first = page_of(0..10, None, 4, |_| true);
        assert_eq!(first.items, [0, 1, 2, 3]);
        assert_eq!(first.next.as_deref(), Some("4"));
        let second = page_of(0..10, first.next.as_deref(), 4, |n| n % 2 == 0);
        assert_eq!(second.items, [4, 6, 8]);
        assert_eq!(second.next, None);
    }
}
