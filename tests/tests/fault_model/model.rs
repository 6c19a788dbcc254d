//! The reference model: what the producer was told (receipts, cancels, strikes), and the
//! guarantees judged against what the workers did (the run log) and what the backend shows.
//!
//! Every check is stated on events that already happened, so it gives the same answer after
//! every step as at the end; a violation found at a step stays one. Faults excuse exactly what
//! they make legitimate, and no more:
//!
//! - a crash, or a freeze longer than the redelivery timeout ("long"), lets other workers take
//!   the worker's deliveries over: a success it had not acknowledged may run again (a cut or
//!   restart delays the acknowledgement until the worker gets through again), and a delivery it
//!   held may run twice at once;
//! - a worker that wakes from a freeze may start, with no look at the news, a copy it held
//!   before ("stale start");
//! - freezes, cuts and restarts delay when a worker hears of a cancel or strike, by the fault's
//!   length plus the time to resubscribe.
//!
//! Short cuts, short freezes and Redis restarts (with `appendfsync always`) excuse no re-run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime};

use docket::{Disposition, inspect::Snapshot};

use super::log::{Behaviour, Disruption, Events, FaultKind, Outcome, Run};
use super::ops::Kind;

/// A cancel or strike reaches a healthy worker within this.
const SIGNAL_MARGIN: Duration = Duration::from_millis(300);
/// ... a worker that was frozen, within this after it wakes.
const FREEZE_SLACK: Duration = Duration::from_millis(300);
/// ... a worker whose connections were cut (or Redis restarted), within this after the cut: a
/// lost signal feed is followed again at once (within 500 ms of when it was last followed).
const RECONNECT_SLACK: Duration = Duration::from_millis(1000);
/// A run starting this long after a settled success of its generation is a second run.
const SETTLE_MARGIN: Duration = Duration::from_millis(100);
/// A crash or long freeze this soon after a success may have kept it from being acknowledged.
const ACK_SLACK: Duration = Duration::from_millis(300);
/// A frozen worker starts what it held within this after it wakes.
const STALE_SLACK: Duration = Duration::from_millis(200);
/// Longer than any freeze: how far back a fault may have held a delivery.
const LOOKBACK: Duration = Duration::from_millis(2500);
/// A scheduled task due later than this is certainly still waiting.
const CERTAINLY_WAITING: Duration = Duration::from_millis(150);

/// One `schedule` (or one task of an `add_many`): a generation, the identity the checks follow.
#[derive(Debug, Clone)]
pub(crate) struct Generation {
    pub(crate) kind: Kind,
    pub(crate) key: String,
    pub(crate) behaviour: Behaviour,
    pub(crate) param: u64,
    pub(crate) step: usize,
    pub(crate) returned: Instant,
    /// When it is due (as told to the backend).
    pub(crate) due: SystemTime,
    pub(crate) disposition: Option<Disposition>,
    /// The schedule returned Ok, placed in the queue, as a new task (added or replacing).
    pub(crate) acknowledged: bool,
    /// Never to run, and why (a duplicate, a refused input).
    pub(crate) must_not_run: Option<&'static str>,
    /// The producer's call failed: it may or may not have been stored.
    pub(crate) uncertain: bool,
    /// A later schedule of its key with `replace`: when, and whether it took this one's place
    /// while it waited (`Replaced`) or was added beside it.
    pub(crate) superseded: Option<(Instant, bool)>,
    /// A cancel of its key returned true while it was live.
    pub(crate) cancelled: bool,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct KeyState {
    /// The generation the key names now, as far as receipts tell.
    pub(crate) current: Option<u64>,
    pub(crate) generations: Vec<u64>,
    /// A producer call on it failed: no prediction about it any more.
    pub(crate) tainted: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct CancelMark {
    pub(crate) key: String,
    pub(crate) step: usize,
    pub(crate) called: Instant,
    pub(crate) returned: Instant,
    /// Every live generation of the key: none may start or complete afterwards.
    pub(crate) targets: Vec<u64>,
    /// The one the key named (for the report): like every target, it may not complete
    /// afterwards either.
    pub(crate) primary: Option<u64>,
    /// The backend showed nothing of the key delivered or about to be, just before: then no
    /// worker held a copy on its way to start, and nothing of it may start once it was called.
    pub(crate) quiet: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct StrikeSpan {
    pub(crate) kind: Kind,
    pub(crate) step: usize,
    pub(crate) called: Instant,
    pub(crate) returned: Instant,
    /// When `restore` was called.
    pub(crate) lifted: Option<Instant>,
    /// A strike or restore call failed: not judged.
    pub(crate) uncertain: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeadSeen {
    pub(crate) generation: u64,
    pub(crate) key: String,
    pub(crate) reason: String,
    pub(crate) died: SystemTime,
}

#[derive(Debug, Default)]
pub(crate) struct Model {
    pub(crate) generations: BTreeMap<u64, Generation>,
    pub(crate) keys: BTreeMap<String, KeyState>,
    pub(crate) cancels: Vec<CancelMark>,
    pub(crate) strikes: Vec<StrikeSpan>,
    pub(crate) dead: Vec<DeadSeen>,
    /// Dead letters that name no generation of this sequence.
    pub(crate) strange_dead: Vec<String>,
    next: u64,
}

fn ok_runs<'a>(runs: &'a [&'a Run]) -> impl Iterator<Item = (&'a Run, Instant)> + 'a {
    runs.iter()
        .filter_map(|run| run.ended_ok().map(|end| (*run, end)))
}

/// A crash or long freeze of `worker` over any part of `from..=to`.
fn long_disrupted(faults: &[Disruption], worker: usize, from: Instant, to: Instant) -> bool {
    faults.iter().any(|fault| {
        fault.hits(worker)
            && matches!(
                fault.kind,
                FaultKind::Crash | FaultKind::Freeze { long: true }
            )
            && fault.overlaps(from, to)
    })
}

/// The run started just after its worker woke from a freeze: maybe a copy it held while
/// frozen (or a new delivery it took at once: checks that can tell them apart do).
fn stale_start(faults: &[Disruption], run: &Run) -> bool {
    faults.iter().any(|fault| {
        fault.hits(run.worker())
            && matches!(fault.kind, FaultKind::Freeze { .. })
            && run.start + Duration::from_millis(5) >= fault.end
            && run.start <= fault.end + STALE_SLACK
    })
}

/// By when a success that ended at `end` on `worker` was acknowledged: soon, unless a fault
/// held the acknowledgement back (a cut or restart: until the worker got through again).
fn ack_deadline(faults: &[Disruption], worker: usize, end: Instant) -> Instant {
    let mut deadline = end + ACK_SLACK;
    loop {
        let mut extended = deadline;
        for fault in faults.iter().filter(|fault| fault.hits(worker)) {
            let slack = match fault.kind {
                FaultKind::Crash | FaultKind::Freeze { long: true } => continue,
                FaultKind::Freeze { long: false } => ACK_SLACK,
                FaultKind::Cut | FaultKind::Restart => RECONNECT_SLACK,
            };
            if fault.start <= deadline && fault.end + slack >= end {
                extended = extended.max(fault.end + slack);
            }
        }
        if extended == deadline {
            return deadline;
        }
        deadline = extended;
    }
}

/// A success that counts: not a stale copy's, and its worker neither crashed nor froze long
/// before it could be acknowledged.
fn settled_success(faults: &[Disruption], run: &Run) -> Option<Instant> {
    let end = run.ended_ok()?;
    let acknowledged = ack_deadline(faults, run.worker(), end);
    let disrupted = long_disrupted(faults, run.worker(), run.start, acknowledged);
    (!stale_start(faults, run) && !disrupted).then_some(end)
}

/// By when `worker` has heard of a signal (cancel, strike) sent over `called..returned`.
fn signal_deadline(
    faults: &[Disruption],
    worker: usize,
    called: Instant,
    returned: Instant,
) -> Instant {
    let mut deadline = returned + SIGNAL_MARGIN;
    loop {
        let mut extended = deadline;
        for fault in faults.iter().filter(|fault| fault.hits(worker)) {
            let (slack, end) = match fault.kind {
                FaultKind::Crash => continue,
                FaultKind::Freeze { .. } => (FREEZE_SLACK, fault.end),
                // A worker frozen while its connections were cut (or Redis restarted), or before
                // it had followed its signal feed again, finds the feed lost only when it wakes,
                // and follows it again from then on.
                FaultKind::Cut | FaultKind::Restart => (
                    RECONNECT_SLACK,
                    faults
                        .iter()
                        .filter(|freeze| {
                            matches!(freeze.kind, FaultKind::Freeze { .. })
                                && freeze.worker == Some(worker)
                                && freeze.overlaps(fault.start, fault.end + RECONNECT_SLACK)
                        })
                        .map(|freeze| freeze.end)
                        .fold(fault.end, Instant::max),
                ),
            };
            // A fault delays signals until it is over and the worker has caught up: one that
            // ended just before the signal was sent still counts.
            if fault.start <= deadline && end + slack >= called {
                extended = extended.max(end + slack);
            }
        }
        if extended == deadline {
            return deadline;
        }
        deadline = extended;
    }
}

/// A key as shown in messages: long ones cut.
pub(crate) fn shown(key: &str) -> String {
    match key.char_indices().nth(40) {
        Some((cut, _)) => format!("{:?}… ({} bytes)", &key[..cut], key.len()),
        None => format!("{key:?}"),
    }
}

fn earlier(at: Instant, by: Duration) -> Instant {
    at.checked_sub(by).unwrap_or(at)
}

impl Model {
    pub(crate) fn next_generation(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    pub(crate) fn key_tainted(&self, key: &str) -> bool {
        self.keys.get(key).is_some_and(|state| state.tainted)
    }

    pub(crate) fn struck(&self, kind: Kind) -> bool {
        self.strikes
            .iter()
            .any(|span| span.kind == kind && span.lifted.is_none())
    }

    /// What `schedule` of `key` must answer, when the backend's view leaves no doubt: nothing
    /// of the key waits or runs (then the key is free, whatever it was used for before), or its
    /// task is due well in the future, or held by a strike still in place.
    /// Whether `snapshot` shows nothing of `key` delivered (running), due (queued) or about to
    /// fall due: then no copy of it can be on its way to a worker.
    pub(crate) fn quiet(key: &str, snapshot: &Snapshot) -> bool {
        let named = |list: &[docket::inspect::TaskInfo]| list.iter().any(|info| info.key == key);
        let far = snapshot.taken + CERTAINLY_WAITING;
        !named(&snapshot.running)
            && !named(&snapshot.queued)
            && snapshot
                .scheduled
                .iter()
                .filter(|info| info.key == key)
                .all(|info| info.due > far)
    }

    pub(crate) fn predict(
        &self,
        key: &str,
        replace: bool,
        snapshot: &Snapshot,
    ) -> Option<Disposition> {
        if self.key_tainted(key) {
            return None;
        }
        let named =
            |list: &[docket::inspect::TaskInfo]| list.iter().filter(|info| info.key == key).count();
        let (queued, scheduled, running, held) = (
            named(&snapshot.queued),
            named(&snapshot.scheduled),
            named(&snapshot.running),
            named(&snapshot.held),
        );
        if queued + scheduled + running + held == 0 {
            return Some(Disposition::Added);
        }
        let far = snapshot.taken + CERTAINLY_WAITING;
        let all_far = snapshot
            .scheduled
            .iter()
            .filter(|info| info.key == key)
            .all(|info| info.due > far);
        if queued + running + held == 0 && scheduled == 1 && all_far {
            return Some(if replace {
                Disposition::Replaced
            } else {
                Disposition::Duplicate
            });
        }
        let held_in_place = snapshot
            .held
            .iter()
            .filter(|info| info.key == key)
            .all(|info| {
                [Kind::A, Kind::B]
                    .into_iter()
                    .any(|kind| kind.name() == info.task && self.struck(kind))
            });
        if held > 0 && held_in_place && queued + scheduled == 0 && !replace {
            return Some(Disposition::Duplicate);
        }
        None
    }

    /// Take a receipt (or failure) of a schedule into the model.
    pub(crate) fn scheduled(&mut self, id: u64, outcome: Result<(bool, Disposition), ()>) {
        let generation = self.generations.get_mut(&id).expect("registered");
        let key = generation.key.clone();
        let returned = generation.returned;
        let state = self.keys.entry(key).or_default();
        state.generations.push(id);
        let (queued, disposition) = match outcome {
            Err(()) => {
                generation.uncertain = true;
                state.tainted = true;
                return;
            }
            Ok(answer) => answer,
        };
        generation.disposition = Some(disposition);
        if !queued {
            generation.uncertain = true;
            state.tainted = true;
            return;
        }
        let previous = state.current;
        match disposition {
            Disposition::Duplicate => {
                generation.must_not_run = Some("its schedule answered Duplicate");
                return;
            }
            Disposition::Added | Disposition::Replaced => {
                generation.acknowledged = true;
                state.current = Some(id);
            }
            other => panic!("the model does not know the disposition {other:?}"),
        }
        if let Some(previous) = previous.filter(|previous| *previous != id) {
            let previous = self.generations.get_mut(&previous).expect("registered");
            if previous.superseded.is_none() && !previous.cancelled {
                previous.superseded = Some((returned, disposition == Disposition::Replaced));
            }
        }
    }

    /// The live generations of `key`, and the one it names.
    pub(crate) fn cancel_targets(&self, key: &str) -> (Vec<u64>, Option<u64>) {
        let Some(state) = self.keys.get(key) else {
            return (Vec::new(), None);
        };
        let live = |id: &u64| {
            let generation = &self.generations[id];
            generation.acknowledged
                && !generation.cancelled
                && !generation.superseded.is_some_and(|(_, replaced)| replaced)
        };
        let targets = state.generations.iter().copied().filter(live).collect();
        (targets, state.current.filter(live))
    }

    pub(crate) fn cancelled(&mut self, mark: CancelMark) {
        for id in &mark.targets {
            self.generations.get_mut(id).expect("registered").cancelled = true;
        }
        if let Some(state) = self.keys.get_mut(&mark.key) {
            state.current = None;
        }
        self.cancels.push(mark);
    }

    /// Dead letters as listed now; each is remembered (a later letter of the same key replaces
    /// an earlier one in the backend).
    pub(crate) fn observe_dead(&mut self, letters: &[docket::inspect::DeadLetter], seq: u64) {
        for letter in letters {
            let args: Option<serde_json::Value> = serde_json::from_str(&letter.args).ok();
            let field = |name: &str| args.as_ref().and_then(|args| args.get(name)?.as_u64());
            let generation = match (field("seq"), field("generation")) {
                (Some(s), Some(generation))
                    if s == seq && self.generations.contains_key(&generation) =>
                {
                    generation
                }
                _ => {
                    let text = format!("{letter:?}");
                    if !self.strange_dead.contains(&text) {
                        self.strange_dead.push(text);
                    }
                    continue;
                }
            };
            let seen = DeadSeen {
                generation,
                key: letter.key.clone(),
                reason: letter.reason.clone(),
                died: letter.died,
            };
            if !self.dead.contains(&seen) {
                self.dead.push(seen);
            }
        }
    }

    fn describe(&self, id: u64) -> String {
        match self.generations.get(&id) {
            Some(g) => format!(
                "generation {id} ({} key {} {:?}({}), step {})",
                g.kind.name(),
                shown(&g.key),
                g.behaviour,
                g.param,
                g.step
            ),
            None => format!("generation {id} (unknown)"),
        }
    }

    /// Every violation in what happened so far.
    pub(crate) fn check(&self, events: &Events, ms: &dyn Fn(Instant) -> i64) -> Vec<String> {
        let mut violations = Vec::new();
        let faults = &events.faults;
        for anomaly in &events.anomalies {
            violations.push(format!("harness: {anomaly}"));
        }
        let mut by_generation: BTreeMap<u64, Vec<&Run>> = BTreeMap::new();
        for run in &events.runs {
            by_generation.entry(run.generation).or_default().push(run);
        }
        let run_text = |run: &Run| {
            let end = match run.end {
                Some((at, _, outcome)) => format!("{outcome:?} at {}ms", ms(at)),
                None => "running".to_owned(),
            };
            format!(
                "run #{} (attempt {}) on worker {} started at {}ms, {end}",
                run.n,
                run.attempt,
                run.worker(),
                ms(run.start)
            )
        };

        for (id, runs) in &by_generation {
            let Some(generation) = self.generations.get(id) else {
                violations.push(format!(
                    "a run of unknown generation {id}: {}",
                    run_text(runs[0])
                ));
                continue;
            };
            if let Some(reason) = generation.must_not_run {
                violations.push(format!(
                    "{} ran although {reason}: {}",
                    self.describe(*id),
                    run_text(runs[0])
                ));
            }
            if let Some((at, true)) = generation.superseded {
                for run in runs
                    .iter()
                    .filter(|run| run.start > at + SETTLE_MARGIN && !stale_start(faults, run))
                {
                    violations.push(format!(
                        "{} was replaced while waiting (the replacing schedule returned at {}ms), yet started again: {}",
                        self.describe(*id),
                        ms(at),
                        run_text(run)
                    ));
                }
            }
            // Guarantee 2: a settled success is final.
            for (first, end) in ok_runs(runs) {
                if settled_success(faults, first).is_none() {
                    continue;
                }
                for again in runs
                    .iter()
                    .filter(|again| again.start > end + SETTLE_MARGIN)
                {
                    // A copy its worker held through a freeze may still start; a later
                    // attempt never may: it was stored after the success.
                    if again.attempt > first.attempt || !stale_start(faults, again) {
                        violations.push(format!(
                            "{} ran again after it succeeded: {}; then {}",
                            self.describe(*id),
                            run_text(first),
                            run_text(again)
                        ));
                    }
                }
            }
            // A live worker's delivery is never taken over (it renews it), so one generation
            // never runs twice at once unless its first worker crashed or froze long.
            for first in runs {
                let first_end = first.end.map_or(Instant::now(), |(at, _, _)| at);
                for second in runs
                    .iter()
                    .filter(|second| second.start > first.start && second.start < first_end)
                {
                    let excused = long_disrupted(
                        faults,
                        first.worker(),
                        earlier(first.start, LOOKBACK),
                        second.start,
                    ) || stale_start(faults, second);
                    if !excused {
                        violations.push(format!(
                            "{} ran twice at once while its first worker was live: {}; and {}",
                            self.describe(*id),
                            run_text(first),
                            run_text(second)
                        ));
                    }
                }
            }
        }

        // Guarantee 3: after `cancel` returned true, nothing of the key starts or completes:
        // neither what the key named nor a run a `replace` went beside.
        for cancel in &self.cancels {
            for id in &cancel.targets {
                for run in by_generation.get(id).into_iter().flatten() {
                    let deadline = match cancel.quiet {
                        // Nothing was on its way: any start came from a later delivery.
                        true => cancel.called,
                        false => {
                            signal_deadline(faults, run.worker(), cancel.called, cancel.returned)
                        }
                    };
                    if run.start > deadline && !stale_start(faults, run) {
                        violations.push(format!(
                            "{} started after cancel({:?}) returned true at {}ms (step {}): {}",
                            self.describe(*id),
                            cancel.key,
                            ms(cancel.returned),
                            cancel.step,
                            run_text(run)
                        ));
                    }
                }
            }
            for id in &cancel.targets {
                for run in by_generation.get(id).into_iter().flatten() {
                    let deadline =
                        signal_deadline(faults, run.worker(), cancel.called, cancel.returned);
                    if run.ended_ok().is_some_and(|end| end > deadline) {
                        violations.push(format!(
                            "{} completed after cancel({:?}) returned true at {}ms (step {}), past {}ms: {}",
                            self.describe(*id),
                            cancel.key,
                            ms(cancel.returned),
                            cancel.step,
                            ms(deadline),
                            run_text(run)
                        ));
                    }
                }
            }
        }

        // A struck task does not start while its strike is in place (once workers heard of it).
        for span in self.strikes.iter().filter(|span| !span.uncertain) {
            for run in events
                .runs
                .iter()
                .filter(|run| run.task == span.kind.name())
            {
                let deadline = signal_deadline(faults, run.worker(), span.called, span.returned);
                let before_lifted = span.lifted.is_none_or(|lifted| run.start < lifted);
                if run.start > deadline && before_lifted && !stale_start(faults, run) {
                    violations.push(format!(
                        "{} started while {} was struck (strike returned at {}ms, step {}): {}",
                        self.describe(run.generation),
                        span.kind.name(),
                        ms(span.returned),
                        span.step,
                        run_text(run)
                    ));
                }
            }
        }

        // Dead letters: only for tasks that failed their every attempt, never for a success.
        for letter in &self.strange_dead {
            violations.push(format!(
                "a dead letter of no generation of this sequence: {letter}"
            ));
        }
        // One letter a key, the newest task's: a letter seen after a newer task's letter of the
        // same key took its place.
        let mut newest: BTreeMap<&str, u64> = BTreeMap::new();
        for dead in &self.dead {
            let seen = newest.entry(dead.key.as_str()).or_insert(dead.generation);
            if dead.generation < *seen {
                violations.push(format!(
                    "the dead letter of {} took the place of that of the newer generation {}",
                    self.describe(dead.generation),
                    seen
                ));
            }
            *seen = (*seen).max(dead.generation);
        }
        for dead in &self.dead {
            let runs = by_generation
                .get(&dead.generation)
                .cloned()
                .unwrap_or_default();
            let failed = runs
                .iter()
                .filter(|run| matches!(run.end, Some((_, _, Outcome::Err))))
                .count();
            let generation = &self.generations[&dead.generation];
            if dead.reason.trim().is_empty() {
                violations.push(format!(
                    "{} is a dead letter without a reason",
                    self.describe(dead.generation)
                ));
            }
            if generation.must_not_run.is_some() {
                violations.push(format!(
                    "{} is a dead letter although it was never to be stored",
                    self.describe(dead.generation)
                ));
            }
            if failed < 3 {
                violations.push(format!(
                    "{} is a dead letter after {failed} failed runs (3 attempts allowed): {:?}",
                    self.describe(dead.generation),
                    dead.reason
                ));
            }
            for run in &runs {
                let Some(end) = settled_success(faults, run) else {
                    continue;
                };
                let Some((_, ended, _)) = run.end else {
                    continue;
                };
                if ended + Duration::from_millis(20) < dead.died {
                    violations.push(format!(
                        "{} succeeded, and was then dead-lettered ({:?}): {} (success at {}ms)",
                        self.describe(dead.generation),
                        dead.reason,
                        run_text(run),
                        ms(end)
                    ));
                }
            }
        }
        violations
    }

    /// Guarantee 1, once everything drained: every acknowledged schedule ended completed,
    /// cancelled, superseded by a replacement, or as a dead letter.
    pub(crate) fn check_nothing_lost(&self, events: &Events) -> Vec<String> {
        let mut violations = Vec::new();
        for (id, generation) in &self.generations {
            if !generation.acknowledged || generation.uncertain {
                continue;
            }
            let runs: Vec<&Run> = events
                .runs
                .iter()
                .filter(|run| run.generation == *id)
                .collect();
            let completed = runs.iter().any(|run| run.ended_ok().is_some());
            let dead = self.dead.iter().any(|dead| dead.generation == *id);
            if completed || dead || generation.cancelled || generation.superseded.is_some() {
                continue;
            }
            let mut text = format!(
                "{} was acknowledged ({:?}) but ended neither completed, cancelled, replaced nor as a dead letter",
                self.describe(*id),
                generation.disposition
            );
            if runs.is_empty() {
                text.push_str("; it never ran");
            }
            for run in runs {
                let _ = write!(
                    text,
                    "; run #{} attempt {} ended {:?}",
                    run.n,
                    run.attempt,
                    run.end.map(|e| e.2)
                );
            }
            violations.push(text);
        }
        violations
    }
}
