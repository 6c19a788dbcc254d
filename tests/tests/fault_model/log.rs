//! What happened during a sequence, as seen from inside: every run of every task (recorded by the
//! task bodies), and every fault (recorded where it struck). The failpoint rule lives here too:
//! it answers on the thread that reached a site, so each worker thread carries its identity.

use std::cell::{Cell, RefCell};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use docket::failpoint::{self, Fault};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Err,
    /// The body was dropped at an `.await`: cancelled, or its worker crashed.
    Dropped,
}

/// One execution of a task body.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) generation: u64,
    pub(crate) task: &'static str,
    pub(crate) attempt: u32,
    /// The how-manieth run of this generation it is, from 1.
    pub(crate) n: u32,
    /// The worker whose thread ran it; `None` outside any worker (never expected).
    pub(crate) worker: Option<usize>,
    pub(crate) start: Instant,
    pub(crate) end: Option<(Instant, SystemTime, Outcome)>,
}

impl Run {
    pub(crate) fn ended_ok(&self) -> Option<Instant> {
        match self.end {
            Some((at, _, Outcome::Ok)) => Some(at),
            _ => None,
        }
    }

    pub(crate) fn worker(&self) -> usize {
        self.worker.unwrap_or(usize::MAX)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// The worker's runtime was dropped mid-flight: nothing of it settles any more.
    Crash,
    /// The worker's thread blocked; `long` when longer than the redelivery timeout (its
    /// deliveries may be taken over).
    Freeze { long: bool },
    /// The worker's connections cut (proxy), or its calls failing (failpoint), for a while
    /// shorter than a third of the redelivery timeout: not long enough for a take-over.
    Cut,
    /// Redis killed and started again (every worker).
    Restart,
}

/// A fault, over `start..end` (a crash never ends).
#[derive(Debug, Clone)]
pub(crate) struct Disruption {
    pub(crate) kind: FaultKind,
    /// `None`: every worker.
    pub(crate) worker: Option<usize>,
    pub(crate) start: Instant,
    pub(crate) end: Instant,
    pub(crate) note: String,
}

impl Disruption {
    pub(crate) fn hits(&self, worker: usize) -> bool {
        self.worker.is_none_or(|w| w == worker)
    }

    pub(crate) fn overlaps(&self, from: Instant, to: Instant) -> bool {
        self.start <= to && self.end >= from
    }
}

/// When a planned freeze strikes at its site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    Any,
    /// At `settle.finish` right after a body that returned an error (a stale failing copy).
    AfterFailure,
    /// At `settle.finish` right after a body that succeeded (a success not yet acknowledged).
    AfterSuccess,
}

/// A freeze armed for the first of `workers` (any, when empty) that reaches `site`.
#[derive(Debug, Clone)]
pub(crate) struct FreezePlan {
    pub(crate) workers: Vec<usize>,
    pub(crate) site: &'static str,
    pub(crate) when: When,
    pub(crate) pause: Duration,
    pub(crate) long: bool,
}

/// Calls of `worker` at `site` fail until `until`.
#[derive(Debug, Clone)]
pub(crate) struct CutPlan {
    pub(crate) worker: usize,
    pub(crate) site: &'static str,
    pub(crate) until: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Events {
    pub(crate) runs: Vec<Run>,
    pub(crate) faults: Vec<Disruption>,
    /// Things that should never happen in the harness itself (a run outside any worker...).
    pub(crate) anomalies: Vec<String>,
    pub(crate) freeze: Option<FreezePlan>,
    pub(crate) cuts: Vec<CutPlan>,
}

/// The log of one sequence, found by the task bodies through the sequence id in their arguments.
#[derive(Debug)]
pub(crate) struct SeqLog {
    pub(crate) id: u64,
    pub(crate) epoch: Instant,
    events: Mutex<Events>,
}

static LOGS: Mutex<Vec<Arc<SeqLog>>> = Mutex::new(Vec::new());

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SeqLog {
    /// A log for sequence `id`, findable by task bodies until [`SeqLog::close`].
    pub(crate) fn open(id: u64) -> Arc<SeqLog> {
        install_rule();
        let log = Arc::new(SeqLog {
            id,
            epoch: Instant::now(),
            events: Mutex::new(Events::default()),
        });
        lock(&LOGS).push(log.clone());
        log
    }

    pub(crate) fn close(&self) {
        lock(&LOGS).retain(|log| log.id != self.id);
    }

    fn find(id: u64) -> Option<Arc<SeqLog>> {
        lock(&LOGS).iter().find(|log| log.id == id).cloned()
    }

    pub(crate) fn events(&self) -> MutexGuard<'_, Events> {
        lock(&self.events)
    }

    /// Milliseconds since the sequence began, for messages.
    pub(crate) fn ms(&self, at: Instant) -> i64 {
        if at >= self.epoch {
            at.duration_since(self.epoch).as_millis() as i64
        } else {
            -(self.epoch.duration_since(at).as_millis() as i64)
        }
    }

    pub(crate) fn record(&self, disruption: Disruption) {
        self.events().faults.push(disruption);
    }

    /// What the failpoint rule answers `worker` at `site`.
    fn decide(&self, worker: usize, site: &str) -> Option<Fault> {
        let now = Instant::now();
        let mut events = self.events();
        // A cut of every send (or reply) takes the worker's blocking read's too.
        let call = match site {
            "redis.read.send" => "redis.send",
            "redis.read.reply" => "redis.reply",
            site => site,
        };
        if events
            .cuts
            .iter()
            .any(|cut| cut.worker == worker && cut.site == call && now < cut.until)
        {
            return Some(Fault::Fail);
        }
        let plan = events.freeze.as_ref()?;
        if plan.site != site || !(plan.workers.is_empty() || plan.workers.contains(&worker)) {
            return None;
        }
        let fits = match plan.when {
            When::Any => true,
            When::AfterFailure => LAST_OUTCOME.get() == Some(false),
            When::AfterSuccess => LAST_OUTCOME.get() == Some(true),
        };
        if site == "settle.finish" {
            LAST_OUTCOME.set(None);
        }
        if !fits {
            return None;
        }
        let plan = events.freeze.take().expect("looked at above");
        events.faults.push(Disruption {
            kind: FaultKind::Freeze { long: plan.long },
            worker: Some(worker),
            start: now,
            end: now + plan.pause,
            note: format!("at {site} ({:?})", plan.when),
        });
        Some(Fault::Freeze(plan.pause))
    }
}

/// Who runs on this thread: set by the harness on each worker thread.
#[derive(Debug, Clone)]
pub(crate) struct WorkerId {
    pub(crate) index: usize,
    pub(crate) log: Arc<SeqLog>,
}

thread_local! {
    static WORKER: RefCell<Option<WorkerId>> = const { RefCell::new(None) };
    /// The outcome of the body that ended last on this thread (`None` after a dropped one).
    static LAST_OUTCOME: Cell<Option<bool>> = const { Cell::new(None) };
}

pub(crate) fn set_worker(worker: Option<WorkerId>) {
    WORKER.with(|slot| *slot.borrow_mut() = worker);
}

fn current_worker() -> Option<usize> {
    WORKER.with(|slot| slot.borrow().as_ref().map(|worker| worker.index))
}

/// One process-wide failpoint rule, installed once: it asks the log of the worker whose thread
/// reached the site. Threads that are no worker (the producer, other tests) always pass.
fn install_rule() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        failpoint::set(|site| {
            let worker = WORKER.with(|slot| slot.borrow().clone())?;
            worker.log.decide(worker.index, site)
        });
    });
}

/// The behaviour of a generation, chosen when it is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Sleep `param` ms, succeed.
    Quick = 0,
    /// Fail the first `param` runs of this generation (by run, not attempt, so that a stale
    /// copy can fail while a fresh one succeeds), then succeed.
    FailFirst = 1,
    /// Always fail: a dead letter after its last attempt.
    FailAlways = 2,
    /// Sleep `param` ms (a long run, to be cancelled or crashed under), then succeed.
    Hang = 3,
}

impl Behaviour {
    pub(crate) fn from_code(code: u8) -> Behaviour {
        match code {
            0 => Behaviour::Quick,
            1 => Behaviour::FailFirst,
            2 => Behaviour::FailAlways,
            _ => Behaviour::Hang,
        }
    }
}

/// Records the run's end; a run dropped before [`RunGuard::finish`] ended `Dropped`.
struct RunGuard {
    log: Arc<SeqLog>,
    index: usize,
    finished: bool,
}

impl RunGuard {
    fn finish(&mut self, ok: bool) {
        self.finished = true;
        LAST_OUTCOME.set(Some(ok));
        let outcome = if ok { Outcome::Ok } else { Outcome::Err };
        self.log.events().runs[self.index].end = Some((Instant::now(), SystemTime::now(), outcome));
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if !self.finished {
            LAST_OUTCOME.set(None);
            self.log.events().runs[self.index].end =
                Some((Instant::now(), SystemTime::now(), Outcome::Dropped));
        }
    }
}

/// The body of every model task.
pub(crate) async fn body(
    task: &'static str,
    seq: u64,
    generation: u64,
    behaviour: u8,
    param: u64,
    attempt: u32,
) -> Result<(), String> {
    let Some(log) = SeqLog::find(seq) else {
        // A sequence that already ended: its workers are all gone, so this cannot happen.
        return Ok(());
    };
    let worker = current_worker();
    let (mut guard, n) = {
        let mut events = log.events();
        if worker.is_none() {
            events.anomalies.push(format!(
                "generation {generation} ran outside any worker thread ({:?})",
                std::thread::current().name()
            ));
        }
        let n = 1 + events
            .runs
            .iter()
            .filter(|run| run.generation == generation)
            .count() as u32;
        events.runs.push(Run {
            generation,
            task,
            attempt,
            n,
            worker,
            start: Instant::now(),
            end: None,
        });
        LAST_OUTCOME.set(None);
        let guard = RunGuard {
            log: log.clone(),
            index: events.runs.len() - 1,
            finished: false,
        };
        (guard, n)
    };
    let ok = match Behaviour::from_code(behaviour) {
        Behaviour::Quick | Behaviour::Hang => {
            tokio::time::sleep(Duration::from_millis(param.max(1))).await;
            true
        }
        Behaviour::FailFirst => {
            tokio::time::sleep(Duration::from_millis(2)).await;
            u64::from(n) > param
        }
        Behaviour::FailAlways => {
            tokio::time::sleep(Duration::from_millis(2)).await;
            false
        }
    };
    guard.finish(ok);
    match ok {
        true => Ok(()),
        false => Err(format!(
            "planned failure of generation {generation}, run {n}"
        )),
    }
}
