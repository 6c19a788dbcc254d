//! In-process execution: tasks spawned on the caller's tokio runtime, with no queue behind them.
//!
//! Used when `DOCKET_URL` is unset, and as the fallback when a backend cannot be reached. Keys,
//! `after`/`at`, retries, timeouts, cancel and snapshots behave as with a backend; nothing survives
//! the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::backend::{Disposition, KeyMode, Message};
use crate::error::{Error, Result};
use crate::execution::{AttemptError, run_attempt};
use crate::handle::Docket;
use crate::registry::Registration;
use crate::snapshot::{DeadLetter, Snapshot, TaskInfo};
use crate::time::instant_at;

/// The in-process tasks of one docket. Clones share them.
#[derive(Debug, Clone, Default)]
pub(crate) struct InProcess {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled whenever a task ends, for [`InProcess::wait_idle`].
    ended: Notify,
}

#[derive(Debug, Default)]
struct State {
    next: u64,
    /// Every task waiting or running, by id.
    tasks: HashMap<u64, Local>,
    /// The newest task of each key. An older run of a replaced key is only in `tasks`.
    keys: HashMap<String, u64>,
    dead: Vec<DeadLetter>,
}

#[derive(Debug)]
struct Local {
    key: String,
    task: &'static str,
    due: SystemTime,
    attempt: u32,
    running: bool,
    abort: AbortHandle,
}

impl InProcess {
    fn state(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Run `message` on the current tokio runtime once it is due.
    pub(crate) fn spawn(
        &self,
        registration: Registration,
        message: Message,
        mode: KeyMode,
        docket: &Docket,
    ) -> Result<Disposition> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let mut state = self.state();
        let newest = state.keys.get(&message.key).copied();
        let disposition = match newest.and_then(|id| state.tasks.get(&id).map(|t| (id, t))) {
            None => Disposition::Added,
            Some(_) if mode != KeyMode::Replace => return Ok(Disposition::Duplicate),
            Some((_, existing)) if existing.running => Disposition::Added,
            Some((id, existing)) => {
                existing.abort.abort();
                state.tasks.remove(&id);
                Disposition::Replaced
            }
        };
        state.next += 1;
        let id = state.next;
        let key = message.key.clone();
        let (task, due, attempt) = (registration.name(), message.due, message.attempt);
        let run = self.clone().run(id, registration, message, docket.clone());
        let abort = runtime.spawn(run).abort_handle();
        state.keys.insert(key.clone(), id);
        state.tasks.insert(
            id,
            Local {
                key,
                task,
                due,
                attempt,
                running: false,
                abort,
            },
        );
        Ok(disposition)
    }

    async fn run(self, id: u64, registration: Registration, mut message: Message, docket: Docket) {
        let policy = registration.policy();
        loop {
            tokio::time::sleep_until(instant_at(message.due)).await;
            if !self.update(id, |local| local.running = true) {
                return; // cancelled or replaced while it waited
            }
            let reason = match run_attempt(&registration, &message, &docket).await {
                Ok(()) => break,
                Err(AttemptError::Undecodable(error)) => {
                    format!("the arguments do not decode: {error}")
                }
                Err(AttemptError::Failed(error)) if message.attempt < policy.max_attempts() => {
                    let delay = policy.retry_backoff().delay(message.attempt);
                    tracing::info!(task = registration.name(), key = %message.key, ?delay, %error, "retrying in-process task");
                    message.attempt += 1;
                    message.due = SystemTime::now() + delay;
                    let (attempt, due) = (message.attempt, message.due);
                    self.update(id, |local| {
                        local.running = false;
                        local.attempt = attempt;
                        local.due = due;
                    });
                    continue;
                }
                Err(AttemptError::Failed(error)) => error.to_string(),
            };
            tracing::error!(task = registration.name(), key = %message.key, %reason, "in-process task failed for good");
            self.state().dead.push(DeadLetter {
                key: message.key.clone(),
                task: message.task.clone(),
                args: message.args.clone(),
                attempt: message.attempt,
                reason,
                died: SystemTime::now(),
            });
            break;
        }
        self.end(id);
    }

    /// Apply `change` to task `id`; `false` when it was cancelled or replaced.
    fn update(&self, id: u64, change: impl FnOnce(&mut Local)) -> bool {
        self.state().tasks.get_mut(&id).map(change).is_some()
    }

    fn end(&self, id: u64) {
        let mut state = self.state();
        if let Some(local) = state.tasks.remove(&id) {
            if state.keys.get(&local.key) == Some(&id) {
                state.keys.remove(&local.key);
            }
        }
        drop(state);
        self.shared.ended.notify_waiters();
    }

    /// Stop the waiting task with this key; `false` when none is waiting.
    pub(crate) fn cancel(&self, key: &str) -> bool {
        let mut state = self.state();
        let Some(&id) = state.keys.get(key) else {
            return false;
        };
        match state.tasks.get(&id) {
            Some(local) if !local.running => {
                local.abort.abort();
                state.tasks.remove(&id);
                state.keys.remove(key);
                drop(state);
                self.shared.ended.notify_waiters();
                true
            }
            _ => false,
        }
    }

    pub(crate) fn outstanding(&self) -> usize {
        self.state().tasks.len()
    }

    /// Wait until no in-process task waits or runs.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let ended = self.shared.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.outstanding() == 0 {
                return;
            }
            ended.await;
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let now = SystemTime::now();
        let state = self.state();
        let mut snapshot = Snapshot {
            taken: now,
            queued: Vec::new(),
            scheduled: Vec::new(),
            running: Vec::new(),
            dead: state.dead.len(),
        };
        for local in state.tasks.values() {
            let info = TaskInfo {
                key: local.key.clone(),
                task: local.task.to_owned(),
                due: local.due,
                attempt: local.attempt,
                worker: local.running.then(|| "in-process".to_owned()),
            };
            match () {
                () if local.running => snapshot.running.push(info),
                () if local.due <= now => snapshot.queued.push(info),
                () => snapshot.scheduled.push(info),
            }
        }
        for list in [
            &mut snapshot.queued,
            &mut snapshot.scheduled,
            &mut snapshot.running,
        ] {
            list.sort_by(|a, b| (a.due, &a.key).cmp(&(b.due, &b.key)));
        }
        snapshot
    }

    pub(crate) fn dead_letters(&self) -> Vec<DeadLetter> {
        self.state().dead.clone()
    }
}
