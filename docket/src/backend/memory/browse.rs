//! The dashboard's reads on the memory backend (see `backend/browse.rs`): the store is in this
//! process, so a page walks it under the lock, from an offset.

use std::collections::VecDeque;

use super::MemoryBackend;
use crate::backend::browse::{Counts, Filter, Page, Place, TaskView, page_of};
use crate::inspect::{DeadLetter, TaskInfo};

impl MemoryBackend {
    /// How many tasks are in each place.
    pub(crate) fn counts(&self) -> Counts {
        let store = self.store();
        // The docket's clock: a virtual one under `docket::testing`.
        let now = store.clock.now();
        let due = store
            .waiting
            .iter()
            .take_while(|(due, _, _)| *due <= now)
            .count();
        let gated: usize = store.gated.values().map(VecDeque::len).sum();
        Counts {
            taken: now,
            queued: due + gated,
            scheduled: store.waiting.len() - due,
            running: store.running.len(),
            held: store.held.len(),
            dead: store.dead.len(),
        }
    }

    /// A page of the tasks of `place`, by offset.
    pub(crate) fn page(
        &self,
        place: Place,
        filter: &Filter,
        after: Option<&str>,
        limit: usize,
    ) -> Page<TaskInfo> {
        let store = self.store();
        // The docket's clock: a virtual one under `docket::testing`.
        let now = store.clock.now();
        let keep = |info: &TaskInfo| filter.admits(&info.task, &info.key);
        let info = |key: &String| TaskInfo::of(store.message(key), None);
        match place {
            Place::Queued => {
                let due = store.waiting.iter().take_while(|(due, _, _)| *due <= now);
                let gated = store.gated.values().flatten();
                let all = due
                    .map(|(_, _, key)| info(key))
                    .chain(gated.map(|aside| TaskInfo::of(&aside.message, None)));
                page_of(all, after, limit, keep)
            }
            Place::Scheduled => {
                let later = store.waiting.iter().skip_while(|(due, _, _)| *due <= now);
                page_of(later.map(|(_, _, key)| info(key)), after, limit, keep)
            }
            Place::Running => {
                let mut runs: Vec<(&u64, TaskInfo)> = store
                    .running
                    .iter()
                    .map(|(id, run)| (id, TaskInfo::of(&run.message, Some(&run.worker))))
                    .collect();
                runs.sort_by_key(|(id, _)| **id);
                page_of(runs.into_iter().map(|(_, info)| info), after, limit, keep)
            }
            Place::Held => {
                let mut held: Vec<TaskInfo> = store
                    .held
                    .values()
                    .map(|aside| TaskInfo::of(&aside.message, None))
                    .collect();
                held.sort_by(|a, b| (a.due, &a.key).cmp(&(b.due, &b.key)));
                page_of(held.into_iter(), after, limit, keep)
            }
        }
    }

    /// A page of dead letters, newest first, by offset.
    pub(crate) fn dead_page(
        &self,
        filter: &Filter,
        after: Option<&str>,
        limit: usize,
    ) -> Page<DeadLetter> {
        let store = self.store();
        let newest_first = store.dead.iter().rev().cloned();
        page_of(newest_first, after, limit, |dead| {
            filter.admits(&dead.task, &dead.key)
        })
    }

    /// Everything the store knows of `key`.
    pub(crate) fn task_view(&self, key: &str) -> TaskView {
        let store = self.store();
        // The docket's clock: a virtual one under `docket::testing`.
        let now = store.clock.now();
        let mut view = TaskView {
            dead: store
                .dead
                .iter()
                .rev()
                .find(|dead| dead.key == key)
                .cloned(),
            record: store
                .records
                .get(key)
                .filter(|(_, expires)| *expires > now)
                .map(|(record, _)| record.clone()),
            ..TaskView::default()
        };
        let waiting = store.keys.get(key).and_then(|entry| entry.waiting.as_ref());
        let running = store
            .running
            .values()
            .filter(|run| run.message.key == key && !run.cancelled)
            .max_by_key(|run| run.seq);
        let gated = store
            .gated
            .values()
            .flatten()
            .find(|a| a.message.key == key);
        if let Some(waiting) = waiting {
            let place = match waiting.message.due <= now {
                true => Place::Queued,
                false => Place::Scheduled,
            };
            (view.place, view.message) = (Some(place), Some(waiting.message.clone()));
        } else if let Some(run) = running {
            view.place = Some(Place::Running);
            view.message = Some(run.message.clone());
            view.worker = Some(run.worker.clone());
        } else if let Some(held) = store.held.get(key) {
            (view.place, view.message) = (Some(Place::Held), Some(held.message.clone()));
        } else if let Some(gated) = gated {
            (view.place, view.message) = (Some(Place::Queued), Some(gated.message.clone()));
        }
        view
    }
}
