//! Runs sequences: each against a fresh docket (a fresh name on a Redis server shared by the
//! lane's sequences), with its own workers, checking the model after every step and once all
//! is drained. Lanes run sequences side by side; each Redis lane has a server of its own, so a
//! restart only disrupts its own sequence.

use std::fmt::Write as _;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use docket::{Disposition, Docket, Placement, Schedule, Scheduled, Task, strike::Strike};
use tests::redis_server::{RedisServer, unique_name};

use super::harness::{Proxy, Target, WorkerThread, connect, is_invalid_due, is_invalid_key};
use super::log::{CutPlan, Disruption, FaultKind, FreezePlan, SeqLog};
use super::model::{CancelMark, Generation, Model, StrikeSpan, shown};
use super::ops::{
    Abilities, CutHow, Invalid, Kind, Op, Pick, Plan, Scenario, Spec, Timing, generate,
};
use super::rng::mix;
use crate::{FmAlpha, FmBeta};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Memory,
    Redis,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Redis => "redis",
        }
    }
}

/// What the environment asks for.
#[derive(Debug, Clone)]
struct Settings {
    sequences: usize,
    seed: u64,
    seed_given: bool,
    lanes: usize,
    /// Go on after a failing sequence, and list every failure at the end.
    keep_going: bool,
    /// Run the given seed this many times over (its timing differs each time).
    repeat: bool,
    abilities: Abilities,
    timing: Timing,
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={text} is not a number")))
}

impl Settings {
    fn from_env(backend: Backend) -> Settings {
        let seed = env_number("DOCKET_MODEL_SEED");
        let sequences = env_number("DOCKET_MODEL_SEQUENCES").unwrap_or(200) as usize;
        let lanes = env_number("DOCKET_MODEL_LANES").unwrap_or(2).max(1) as usize;
        Settings {
            sequences,
            seed: seed.unwrap_or_else(|| {
                mix(SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(1, |since| since.as_nanos() as u64))
            }),
            seed_given: seed.is_some(),
            lanes: lanes.min(sequences.max(1)),
            keep_going: std::env::var("DOCKET_MODEL_KEEP_GOING").is_ok_and(|v| v == "1"),
            repeat: std::env::var("DOCKET_MODEL_REPEAT").is_ok_and(|v| v == "1"),
            abilities: Abilities {
                redis: backend == Backend::Redis,
                empty_key_valid: std::env::var("DOCKET_MODEL_EMPTY_KEY_VALID")
                    .is_ok_and(|v| v == "1"),
                focus: std::env::var("DOCKET_MODEL_SCENARIO").ok().map(|name| {
                    Scenario::named(&name)
                        .unwrap_or_else(|| panic!("DOCKET_MODEL_SCENARIO={name} names no scenario"))
                }),
            },
            timing: Timing {
                redelivery_ms: env_number("DOCKET_MODEL_REDELIVERY_MS").unwrap_or(1000),
            },
        }
    }

    /// The seed of sequence `index`: the given seed itself for the first, so that a failing
    /// sequence's seed alone replays it.
    fn seed_of(&self, index: usize) -> u64 {
        match index {
            _ if self.repeat => self.seed,
            0 => self.seed,
            _ => mix(self.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        }
    }
}

/// Totals over the sequences run.
#[derive(Debug, Default)]
struct Totals {
    sequences: usize,
    steps: usize,
    runs: usize,
    faults: [usize; 5],
    uncertain: usize,
    slowest: Duration,
}

/// Run the sequences the environment asks for on `backend`; panic with a report on the first
/// violation.
pub(crate) fn run(backend: Backend) {
    let settings = Settings::from_env(backend);
    if std::env::var("DOCKET_MODEL_TRACE").is_ok_and(|v| v == "1") {
        // Every debug event, with its thread (`fault-model-worker-N`): for replaying one seed
        // on one lane.
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_thread_names(true)
            .with_writer(std::io::stderr)
            .try_init();
    }
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let failure: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
    let totals = Mutex::new(Totals::default());
    eprintln!(
        "fault model ({}): {} sequences on {} lanes from seed {} ({})",
        backend.name(),
        settings.sequences,
        settings.lanes,
        settings.seed,
        if settings.seed_given {
            "given"
        } else {
            "random"
        }
    );
    std::thread::scope(|scope| {
        for lane in 0..settings.lanes {
            let (settings, next, failure, totals) = (&settings, &next, &failure, &totals);
            std::thread::Builder::new()
                .name(format!("fault-model-{}-lane-{lane}", backend.name()))
                .spawn_scoped(scope, move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime for the lane");
                    runtime.block_on(lane_main(backend, settings, next, failure, totals));
                })
                .expect("spawn a lane");
        }
    });
    let totals = totals.into_inner().unwrap_or_else(|p| p.into_inner());
    eprintln!(
        "fault model ({}): {} sequences, {} steps, {} runs in {:.1}s (slowest sequence {:.1}s); \
         faults: {} crashes, {} long freezes, {} short freezes, {} cuts, {} Redis restarts; {} uncertain producer calls",
        backend.name(),
        totals.sequences,
        totals.steps,
        totals.runs,
        started.elapsed().as_secs_f64(),
        totals.slowest.as_secs_f64(),
        totals.faults[0],
        totals.faults[1],
        totals.faults[2],
        totals.faults[3],
        totals.faults[4],
        totals.uncertain,
    );
    let failures = failure.into_inner().unwrap_or_else(|p| p.into_inner());
    if failures.len() > 1 {
        eprintln!(
            "fault model ({}): {} failing sequences:",
            backend.name(),
            failures.len()
        );
        for (seed, report) in &failures {
            let first = report
                .lines()
                .find(|line| line.starts_with("  - "))
                .unwrap_or_default();
            eprintln!("  seed {seed}: {first}");
        }
    }
    if let Some((_, report)) = failures.into_iter().next() {
        panic!("{report}");
    }
}

async fn lane_main(
    backend: Backend,
    settings: &Settings,
    next: &AtomicUsize,
    failure: &Mutex<Vec<(u64, String)>>,
    totals: &Mutex<Totals>,
) {
    let server = (backend == Backend::Redis).then(|| {
        Arc::new(Mutex::new(RedisServer::start_with(&[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ])))
    });
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let failed = || {
            !settings.keep_going && !failure.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
        };
        if index >= settings.sequences || failed() {
            break;
        }
        let seed = settings.seed_of(index);
        let began = Instant::now();
        let outcome = run_sequence(backend, settings, seed, server.clone()).await;
        let mut totals = totals.lock().unwrap_or_else(|p| p.into_inner());
        totals.slowest = totals.slowest.max(began.elapsed());
        match outcome {
            Ok(stats) => {
                totals.sequences += 1;
                totals.steps += stats.steps;
                totals.runs += stats.runs;
                totals.uncertain += stats.uncertain;
                for (total, count) in totals.faults.iter_mut().zip(stats.faults) {
                    *total += count;
                }
            }
            Err(report) => {
                let mut failure = failure.lock().unwrap_or_else(|p| p.into_inner());
                if failure.is_empty() || settings.keep_going {
                    if settings.keep_going {
                        eprintln!(
                            "fault model ({}): sequence {index}, seed {seed} failed:\n{report}",
                            backend.name()
                        );
                    }
                    failure.push((seed, format!(
                        "fault model violation on {} (sequence {index}, seed {seed}).\n\
                         Run it again with:\n  DOCKET_MODEL_SEED={seed} DOCKET_MODEL_SEQUENCES=1 cargo test -p tests --test fault_model -- {} --nocapture\n{report}",
                        backend.name(),
                        backend.name(),
                    )));
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct SeqStats {
    steps: usize,
    runs: usize,
    /// crashes, long freezes, short freezes, cuts, restarts
    faults: [usize; 5],
    uncertain: usize,
}

static SEQUENCE_IDS: AtomicU64 = AtomicU64::new(1);

/// One sequence, from its seed.
struct Sequence {
    backend: Backend,
    settings: Settings,
    plan: Plan,
    id: u64,
    name: String,
    log: Arc<SeqLog>,
    docket: Docket,
    server: Option<Arc<Mutex<RedisServer>>>,
    workers: Vec<WorkerThread>,
    model: Model,
    step: usize,
    /// Violations found while executing a step (a wrong receipt, a panic).
    found: Vec<String>,
    /// Disrupted ops that were skipped (no live worker to hit).
    notes: Vec<String>,
    /// When each step began.
    started: Vec<Instant>,
    /// Producer calls that failed (then what they did is unknown).
    uncertain: usize,
}

async fn run_sequence(
    backend: Backend,
    settings: &Settings,
    seed: u64,
    server: Option<Arc<Mutex<RedisServer>>>,
) -> Result<SeqStats, String> {
    let plan = generate(seed, settings.timing, &settings.abilities);
    let id = SEQUENCE_IDS.fetch_add(1, Ordering::Relaxed);
    let name = unique_name("fault-model");
    let redelivery = Duration::from_millis(settings.timing.redelivery_ms);
    let docket = match &server {
        None => Docket::connect("memory://").name(&name).await,
        Some(server) => {
            let url = server.lock().unwrap_or_else(|p| p.into_inner()).url();
            connect(&url, &name, redelivery, plan.partitions).await
        }
    }
    .map_err(|error| format!("could not open the docket: {error}"))?;
    let log = SeqLog::open(id);
    let mut sequence = Sequence {
        backend,
        settings: settings.clone(),
        plan: plan.clone(),
        id,
        name,
        log,
        docket,
        server,
        workers: Vec::new(),
        model: Model::default(),
        step: 0,
        found: Vec::new(),
        notes: Vec::new(),
        started: Vec::new(),
        uncertain: 0,
    };
    for concurrency in &plan.workers {
        sequence.add_worker(*concurrency).await;
    }
    let outcome = sequence.play().await;
    sequence.tear_down().await;
    sequence.log.close();
    let stats = sequence.stats();
    match outcome {
        Ok(()) => Ok(stats),
        Err(violations) => Err(sequence.report(&violations)),
    }
}

/// Spawn `schedule` on the runtime, so that a panic in it is a finding, not the test's end.
async fn guarded<T: Send + 'static>(
    future: impl Future<Output = docket::Result<T>> + Send + 'static,
) -> Result<docket::Result<T>, String> {
    tokio::spawn(future)
        .await
        .map_err(|error| match error.try_into_panic() {
            Ok(panic) => panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic".to_owned()),
            Err(error) => error.to_string(),
        })
}

type Boxed<T> = Pin<Box<dyn Future<Output = docket::Result<T>> + Send>>;

fn configure<T: Task>(schedule: Schedule<T>, spec: &Spec, key: Option<&str>) -> Schedule<T> {
    let mut schedule = schedule;
    if let Some(key) = key {
        schedule = schedule.key(key);
    }
    if spec.replace {
        schedule = schedule.replace();
    }
    if spec.delay_ms > 0 {
        schedule = schedule.after(Duration::from_millis(spec.delay_ms));
    }
    schedule
}

impl Sequence {
    fn redelivery(&self) -> Duration {
        Duration::from_millis(self.settings.timing.redelivery_ms)
    }

    async fn add_worker(&mut self, concurrency: usize) {
        let index = self.workers.len();
        let (target, proxy) = match &self.server {
            None => (Target::Memory(self.docket.clone()), None),
            Some(server) => {
                let port = server.lock().unwrap_or_else(|p| p.into_inner()).port();
                let proxy = Proxy::start(port).await;
                let target = Target::Redis {
                    url: proxy.url(),
                    name: self.name.clone(),
                    redelivery: self.redelivery(),
                    partitions: self.plan.partitions,
                };
                (target, Some(proxy))
            }
        };
        self.workers.push(WorkerThread::spawn(
            index,
            concurrency,
            self.plan.read_ahead,
            self.log.clone(),
            target,
            proxy,
        ));
    }

    fn live_workers(&self) -> usize {
        self.workers.iter().filter(|worker| worker.live()).count()
    }

    /// The live worker running the most tasks now (not frozen, when `awake`).
    /// The live worker that holds the keeper's lease, on Redis.
    fn keeper(&self) -> Option<usize> {
        let server = self.server.as_ref()?;
        let lease = format!("{{{}}}:keeper", self.name);
        let value = match server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_command(&["GET", &lease])
        {
            Ok(tests::redis_server::Reply::Bulk(value)) => value,
            _ => return None,
        };
        let holder = value.split_once(' ')?.1;
        self.workers
            .iter()
            .find(|worker| worker.live() && worker.id.get().is_some_and(|id| id == holder))
            .map(|worker| worker.index)
    }

    fn busiest(&self, awake: bool) -> Option<usize> {
        let now = Instant::now();
        let events = self.log.events();
        let frozen = |index: usize| {
            events.faults.iter().any(|fault| {
                fault.worker == Some(index)
                    && matches!(fault.kind, FaultKind::Freeze { .. })
                    && fault.end > now
            })
        };
        self.workers
            .iter()
            .filter(|worker| worker.live() && !(awake && frozen(worker.index)))
            .map(|worker| {
                let running = events
                    .runs
                    .iter()
                    .filter(|run| run.worker == Some(worker.index) && run.end.is_none())
                    .count();
                (running, std::cmp::Reverse(worker.index))
            })
            .max()
            .map(|(_, std::cmp::Reverse(index))| index)
    }

    async fn play(&mut self) -> Result<(), Vec<String>> {
        let ops = self.plan.ops.clone();
        for (step, op) in ops.iter().enumerate() {
            self.step = step;
            self.started.push(Instant::now());
            self.execute(op).await;
            self.check_step(false).await?;
        }
        self.step = ops.len();
        self.drain().await?;
        Ok(())
    }

    /// Register a generation for `spec` with `key`, before its schedule is sent.
    fn register(&mut self, spec: &Spec, key: &str) -> u64 {
        let id = self.model.next_generation();
        self.model.generations.insert(
            id,
            Generation {
                kind: spec.kind,
                key: key.to_owned(),
                behaviour: spec.behaviour,
                param: spec.param,
                step: self.step,
                returned: Instant::now(),
                due: SystemTime::now() + Duration::from_millis(spec.delay_ms),
                disposition: None,
                acknowledged: false,
                must_not_run: None,
                uncertain: false,
                superseded: None,
                cancelled: false,
            },
        );
        id
    }

    fn future(&self, spec: &Spec, generation: u64, key: Option<&str>) -> Boxed<Scheduled> {
        let (behaviour, param) = (spec.behaviour as u8, spec.param);
        match spec.kind {
            Kind::A => configure(
                FmAlpha::schedule(self.id, generation, behaviour, param),
                spec,
                key,
            )
            .on(&self.docket)
            .into_future(),
            Kind::B => configure(
                FmBeta::schedule(self.id, generation, behaviour, param),
                spec,
                key,
            )
            .on(&self.docket)
            .into_future(),
        }
    }

    fn batch(&self, specs: &[(Spec, u64, Option<String>)]) -> Boxed<Vec<Scheduled>> {
        let docket = self.docket.clone();
        let id = self.id;
        let specs = specs.to_vec();
        Box::pin(async move {
            let kind = specs[0].0.kind;
            match kind {
                Kind::A => {
                    let all = specs.iter().map(|(spec, generation, key)| {
                        configure(
                            FmAlpha::schedule(id, *generation, spec.behaviour as u8, spec.param),
                            spec,
                            key.as_deref(),
                        )
                    });
                    docket.add_many(all).await
                }
                Kind::B => {
                    let all = specs.iter().map(|(spec, generation, key)| {
                        configure(
                            FmBeta::schedule(id, *generation, spec.behaviour as u8, spec.param),
                            spec,
                            key.as_deref(),
                        )
                    });
                    docket.add_many(all).await
                }
            }
        })
    }

    /// What schedule must answer for `key`, by the backend's own view and the model.
    async fn predict(&mut self, key: &str, replace: bool) -> Option<Disposition> {
        let docket = self.docket.clone();
        let snapshot = self
            .call("snapshot", async move { docket.snapshot().await })
            .await?
            .ok()?;
        self.model.predict(key, replace, &snapshot)
    }

    /// A producer call, on a task of its own: a panic in docket is a violation, not the end of
    /// the test.
    async fn call<T: Send + 'static>(
        &mut self,
        what: &str,
        future: impl Future<Output = docket::Result<T>> + Send + 'static,
    ) -> Option<docket::Result<T>> {
        match guarded(future).await {
            Ok(answer) => Some(answer),
            Err(panic) => {
                self.found.push(format!("{what} panicked: {panic}"));
                None
            }
        }
    }

    /// Take a receipt into the model and check it against the prediction.
    fn receipt(
        &mut self,
        generation: u64,
        key: &str,
        answer: Result<docket::Result<Scheduled>, String>,
        expected: Option<Disposition>,
    ) {
        let returned = Instant::now();
        if let Some(g) = self.model.generations.get_mut(&generation) {
            g.returned = returned;
        }
        match answer {
            Err(panic) => {
                self.found.push(format!(
                    "schedule of generation {generation} panicked: {panic}"
                ));
                self.model.scheduled(generation, Err(()));
            }
            Ok(Err(error)) => {
                self.uncertain += 1;
                self.notes.push(format!(
                    "step {}: schedule of generation {generation} failed: {error}",
                    self.step
                ));
                self.model.scheduled(generation, Err(()));
            }
            Ok(Ok(receipt)) => {
                let queued = receipt.placement() == Placement::Queue;
                if !queued {
                    self.found.push(format!(
                        "schedule of generation {generation} was placed {:?}, with the in-process fallback off",
                        receipt.placement()
                    ));
                }
                if receipt.key() != key && !key.is_empty() {
                    self.found.push(format!(
                        "the receipt of generation {generation} names key {:?}, not {key:?}",
                        receipt.key()
                    ));
                }
                let disposition = receipt.disposition();
                if let Some(expected) = expected.filter(|expected| *expected != disposition) {
                    self.found.push(format!(
                        "schedule of key {key:?} (generation {generation}) answered {disposition:?}, where the backend's own \
                         snapshot just before said it must be {expected:?}"
                    ));
                }
                if let Some(g) = self.model.generations.get_mut(&generation) {
                    g.key = receipt.key().to_owned();
                }
                self.model.scheduled(generation, Ok((queued, disposition)));
            }
        }
    }

    async fn schedule(&mut self, spec: &Spec) {
        let key = spec.key.clone();
        let expected = match &key {
            Some(key) => self.predict(key, spec.replace).await,
            None => None,
        };
        let generation = self.register(spec, key.as_deref().unwrap_or(""));
        let answer = guarded(self.future(spec, generation, key.as_deref())).await;
        self.receipt(generation, key.as_deref().unwrap_or(""), answer, expected);
    }

    async fn schedule_batch(&mut self, specs: &[Spec]) {
        let entries: Vec<(Spec, u64, Option<String>)> = specs
            .iter()
            .map(|spec| {
                let generation = self.register(spec, spec.key.as_deref().unwrap_or(""));
                (spec.clone(), generation, spec.key.clone())
            })
            .collect();
        let answer = guarded(self.batch(&entries)).await;
        match answer {
            Ok(Ok(receipts)) if receipts.len() == entries.len() => {
                for ((_, generation, key), receipt) in entries.iter().zip(receipts) {
                    self.receipt(
                        *generation,
                        key.as_deref().unwrap_or(""),
                        Ok(Ok(receipt)),
                        None,
                    );
                }
            }
            Ok(Ok(receipts)) => {
                self.found.push(format!(
                    "add_many of {} answered {} receipts",
                    entries.len(),
                    receipts.len()
                ));
            }
            Ok(Err(error)) => {
                for (_, generation, key) in &entries {
                    let failed = Ok(Err(docket::Error::Config(error.to_string())));
                    self.receipt(*generation, key.as_deref().unwrap_or(""), failed, None);
                }
            }
            Err(panic) => {
                self.found.push(format!("add_many panicked: {panic}"));
                for (_, generation, _) in &entries {
                    self.model.scheduled(*generation, Err(()));
                }
            }
        }
    }

    async fn execute(&mut self, op: &Op) {
        match op {
            Op::Schedule(spec) => self.schedule(spec).await,
            Op::Batch(specs) => self.schedule_batch(specs).await,
            Op::Invalid(invalid, spec) => self.invalid(*invalid, spec).await,
            Op::Cancel(key) => self.cancel(key).await,
            Op::Strike(kind) => {
                let called = Instant::now();
                let docket = self.docket.clone();
                let name = kind.name();
                let Some(answer) = self
                    .call(
                        "strike",
                        async move { docket.strike(Strike::task(name)).await },
                    )
                    .await
                else {
                    return;
                };
                let returned = Instant::now();
                self.notes
                    .push(format!("step {}: strike answered {answer:?}", self.step));
                if self.model.struck(*kind) {
                    return;
                }
                self.model.strikes.push(StrikeSpan {
                    kind: *kind,
                    step: self.step,
                    called,
                    returned,
                    lifted: None,
                    uncertain: answer.is_err(),
                });
            }
            Op::Restore(kind) => self.restore(*kind).await,
            Op::Sleep(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
            Op::Freeze {
                pick,
                site,
                when,
                ms,
                long,
            } => {
                let workers = match pick {
                    Pick::First => Vec::new(),
                    Pick::Busiest => match self.busiest(true) {
                        Some(index) => vec![index],
                        None => return,
                    },
                };
                self.log.events().freeze = Some(FreezePlan {
                    workers,
                    site,
                    when: *when,
                    pause: Duration::from_millis(*ms),
                    long: *long,
                });
            }
            Op::Crash => {
                // On Redis, a sequence of an odd id crashes the keeper (the worker that holds the
                // fleet's lease and runs its checks), the others the busiest worker.
                let keeper = (self.id % 2 == 1).then(|| self.keeper()).flatten();
                let Some(index) = keeper.or_else(|| self.busiest(true)) else {
                    self.notes
                        .push(format!("step {}: no awake worker to crash", self.step));
                    return;
                };
                let now = Instant::now();
                self.log.record(Disruption {
                    kind: FaultKind::Crash,
                    worker: Some(index),
                    start: now,
                    end: now + Duration::from_secs(86_400),
                    note: String::new(),
                });
                self.workers[index].crash();
                if self.live_workers() < 2 {
                    self.add_worker(2).await;
                }
            }
            Op::Cut { how, ms } => {
                let Some(index) = self.busiest(false) else {
                    return;
                };
                let now = Instant::now();
                let pause = Duration::from_millis(*ms);
                match how {
                    CutHow::Proxy => match &self.workers[index].proxy {
                        Some(proxy) => proxy.cut_for(pause),
                        None => return,
                    },
                    CutHow::Send | CutHow::Reply => self.log.events().cuts.push(CutPlan {
                        worker: index,
                        site: if *how == CutHow::Send {
                            "redis.send"
                        } else {
                            "redis.reply"
                        },
                        until: now + pause,
                    }),
                }
                self.log.record(Disruption {
                    kind: FaultKind::Cut,
                    worker: Some(index),
                    start: now,
                    end: now + pause,
                    note: format!("{how:?}"),
                });
            }
            Op::Restart { downtime_ms } => self.restart(*downtime_ms).await,
            Op::AddWorker => {
                if self.live_workers() < 4 {
                    self.add_worker(2).await;
                }
            }
        }
    }

    async fn invalid(&mut self, invalid: Invalid, spec: &Spec) {
        let empty_ok = self.settings.abilities.empty_key_valid;
        match invalid {
            Invalid::EmptyKey if empty_ok => {
                let spec = Spec {
                    key: Some(String::new()),
                    ..spec.clone()
                };
                self.schedule(&spec).await;
            }
            Invalid::EmptyKey | Invalid::ControlKey | Invalid::LongKey | Invalid::HugeDelay => {
                let (key, spec) = match invalid {
                    Invalid::EmptyKey => (String::new(), spec.clone()),
                    Invalid::ControlKey => ("bad\nkey".to_owned(), spec.clone()),
                    Invalid::LongKey => ("x".repeat(2000), spec.clone()),
                    _ => (
                        spec.key.clone().unwrap_or_else(|| "k0".to_owned()),
                        Spec {
                            delay_ms: 0,
                            ..spec.clone()
                        },
                    ),
                };
                let generation = self.register(&spec, &key);
                let future: Boxed<Scheduled> = if invalid == Invalid::HugeDelay {
                    let id = self.id;
                    let docket = self.docket.clone();
                    let key = key.clone();
                    Box::pin(async move {
                        FmAlpha::schedule(id, generation, spec.behaviour as u8, spec.param)
                            .key(key)
                            .after(Duration::MAX)
                            .on(&docket)
                            .await
                    })
                } else {
                    self.future(&spec, generation, Some(&key))
                };
                let answer = guarded(future).await;
                self.refused(
                    invalid,
                    &[generation],
                    answer.map(|result| result.map(|_| ())),
                );
            }
            Invalid::BatchWithEmptyKey if empty_ok => {
                let specs: Vec<Spec> = [spec.key.clone(), Some(String::new())]
                    .into_iter()
                    .map(|key| Spec {
                        key,
                        ..spec.clone()
                    })
                    .collect();
                self.schedule_batch(&specs).await;
            }
            Invalid::BatchWithEmptyKey => {
                let mut entries = Vec::new();
                for (i, key) in [spec.key.clone(), Some(String::new())]
                    .into_iter()
                    .enumerate()
                {
                    let spec = Spec {
                        kind: spec.kind,
                        key: key.clone(),
                        param: spec.param + i as u64,
                        ..spec.clone()
                    };
                    let generation = self.register(&spec, key.as_deref().unwrap_or(""));
                    entries.push((spec, generation, key));
                }
                let generations: Vec<u64> = entries
                    .iter()
                    .map(|(_, generation, _)| *generation)
                    .collect();
                let answer = guarded(self.batch(&entries)).await;
                self.refused(
                    invalid,
                    &generations,
                    answer.map(|result| result.map(|_| ())),
                );
            }
        }
    }

    /// An invalid input must be refused with its typed error, storing nothing.
    fn refused(
        &mut self,
        invalid: Invalid,
        generations: &[u64],
        answer: Result<docket::Result<()>, String>,
    ) {
        for generation in generations {
            if let Some(g) = self.model.generations.get_mut(generation) {
                g.must_not_run = Some("its schedule was refused as invalid");
                g.returned = Instant::now();
            }
        }
        let typed = |error: &docket::Error| match invalid {
            Invalid::HugeDelay => is_invalid_due(error),
            _ => is_invalid_key(error),
        };
        match answer {
            Err(panic) => self
                .found
                .push(format!("scheduling with {invalid:?} panicked: {panic}")),
            Ok(Ok(())) => self
                .found
                .push(format!("scheduling with {invalid:?} was accepted")),
            Ok(Err(error)) if !typed(&error) => {
                self.found.push(format!(
                    "scheduling with {invalid:?} failed with an untyped error: {error:?}"
                ));
            }
            Ok(Err(_)) => {}
        }
    }

    async fn cancel(&mut self, key: &str) {
        let (targets, primary) = self.model.cancel_targets(key);
        let waiting = primary.filter(|id| {
            let generation = &self.model.generations[id];
            generation.due > SystemTime::now() + Duration::from_millis(150)
                && !self.model.key_tainted(key)
        });
        let docket = self.docket.clone();
        let quiet = match self
            .call("snapshot", async move { docket.snapshot().await })
            .await
        {
            Some(Ok(snapshot)) => Model::quiet(key, &snapshot),
            _ => false,
        };
        let called = Instant::now();
        let answer = guarded({
            let docket = self.docket.clone();
            let key = key.to_owned();
            async move { docket.cancel(&key).await }
        })
        .await;
        let returned = Instant::now();
        match answer {
            Err(panic) => self
                .found
                .push(format!("cancel({key:?}) panicked: {panic}")),
            Ok(Err(error)) => {
                self.uncertain += 1;
                self.notes.push(format!(
                    "step {}: cancel({key:?}) failed: {error}",
                    self.step
                ));
                self.model.keys.entry(key.to_owned()).or_default().tainted = true;
                for id in targets {
                    self.model
                        .generations
                        .get_mut(&id)
                        .expect("registered")
                        .uncertain = true;
                }
            }
            Ok(Ok(true)) => self.model.cancelled(CancelMark {
                key: key.to_owned(),
                step: self.step,
                called,
                returned,
                targets,
                primary,
                quiet,
            }),
            Ok(Ok(false)) => {
                if let Some(id) = waiting {
                    self.found.push(format!(
                        "cancel({key:?}) returned false although generation {id} was waiting, due in the future"
                    ));
                }
            }
        }
    }

    async fn restore(&mut self, kind: Kind) {
        let called = Instant::now();
        for span in self.model.strikes.iter_mut() {
            if span.kind == kind && span.lifted.is_none() {
                span.lifted = Some(called);
            }
        }
        let docket = self.docket.clone();
        let name = kind.name();
        if let Some(Err(error)) = self
            .call("restore", async move {
                docket.restore(Strike::task(name)).await
            })
            .await
        {
            self.notes
                .push(format!("step {}: restore failed: {error}", self.step));
        }
    }

    async fn restart(&mut self, downtime_ms: u64) {
        let Some(server) = self.server.clone() else {
            return;
        };
        let start = Instant::now();
        tokio::task::spawn_blocking(move || {
            let mut server = server.lock().unwrap_or_else(|p| p.into_inner());
            server.kill();
            std::thread::sleep(Duration::from_millis(downtime_ms));
            server.restart();
        })
        .await
        .expect("restart redis");
        let end = Instant::now();
        self.log.record(Disruption {
            kind: FaultKind::Restart,
            worker: None,
            start,
            end,
            note: format!("down {}ms", end.duration_since(start).as_millis()),
        });
        // The producer's connection notices the restart on its next call: make that call here.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let docket = self.docket.clone();
            let answer = self
                .call("snapshot", async move { docket.snapshot().await })
                .await;
            if !matches!(answer, Some(Err(_))) || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Look at the dead letters and judge everything that happened so far.
    async fn check_step(&mut self, last: bool) -> Result<(), Vec<String>> {
        let docket = self.docket.clone();
        if let Some(Ok(letters)) = self
            .call("dead_letters", async move { docket.dead_letters().await })
            .await
        {
            self.model.observe_dead(&letters, self.id);
        }
        for worker in &self.workers {
            if let Some(problem) = worker.ended_early() {
                self.found.push(problem);
            }
        }
        let log = self.log.clone();
        let events = log.events();
        let mut violations = std::mem::take(&mut self.found);
        violations.extend(self.model.check(&events, &|at| log.ms(at)));
        if last {
            violations.extend(self.model.check_nothing_lost(&events));
        }
        drop(events);
        violations.dedup();
        match violations.is_empty() {
            true => Ok(()),
            false => Err(violations),
        }
    }

    /// Stop every fault, lift every strike, and wait until nothing waits or runs; then stop
    /// the workers, judge the end state, and check that every key used is free.
    async fn drain(&mut self) -> Result<(), Vec<String>> {
        {
            let mut events = self.log.events();
            events.freeze = None;
            events.cuts.clear();
        }
        for kind in [Kind::A, Kind::B] {
            if self.model.struck(kind) {
                self.restore(kind).await;
            }
        }
        let began = Instant::now();
        let patience = Duration::from_secs(15);
        loop {
            let (thawed, all_ended) = {
                let events = self.log.events();
                let thawed = events
                    .faults
                    .iter()
                    .filter(|fault| matches!(fault.kind, FaultKind::Freeze { .. }))
                    .all(|fault| fault.end + Duration::from_millis(300) < Instant::now());
                (thawed, events.runs.iter().all(|run| run.end.is_some()))
            };
            let docket = self.docket.clone();
            let Some(snapshot) = self
                .call("snapshot", async move { docket.snapshot().await })
                .await
            else {
                return Err(std::mem::take(&mut self.found));
            };
            if thawed && all_ended && snapshot.as_ref().is_ok_and(|s| s.is_empty()) {
                break;
            }
            let early: Vec<String> = self
                .workers
                .iter()
                .filter_map(WorkerThread::ended_early)
                .collect();
            if !early.is_empty() {
                self.found.extend(early);
                return Err(std::mem::take(&mut self.found));
            }
            if began.elapsed() > patience {
                let mut text =
                    format!("the docket did not drain within {patience:?} of the last step: ");
                match &snapshot {
                    Ok(snapshot) => {
                        for (what, list) in [
                            ("queued", &snapshot.queued),
                            ("scheduled", &snapshot.scheduled),
                            ("running", &snapshot.running),
                            ("held", &snapshot.held),
                        ] {
                            for info in list {
                                let _ = write!(
                                    text,
                                    "{what} {:?} (attempt {}, worker {:?}); ",
                                    info.key, info.attempt, info.worker
                                );
                            }
                        }
                    }
                    Err(error) => {
                        let _ = write!(text, "snapshot failed: {error}");
                    }
                }
                return Err(vec![text]);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let mut problems = Vec::new();
        for worker in &mut self.workers {
            worker.stop();
        }
        for worker in &mut self.workers {
            if let Err(problem) = worker.join(Duration::from_secs(20)).await {
                problems.push(problem);
            }
        }
        self.found.extend(problems);
        self.check_step(true).await?;
        // Guarantee 4 at rest: every key used is free again.
        let empty_key_valid = self.settings.abilities.empty_key_valid;
        let keys: Vec<String> = self
            .model
            .keys
            .iter()
            .filter(|(key, state)| {
                let used = state
                    .generations
                    .iter()
                    .any(|id| self.model.generations[id].acknowledged);
                used && !state.tainted && (!key.is_empty() || empty_key_valid)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in keys {
            let spec = Spec {
                kind: Kind::A,
                key: Some(key.clone()),
                replace: false,
                delay_ms: 60_000,
                behaviour: super::log::Behaviour::Quick,
                param: 1,
            };
            let generation = self.register(&spec, &key);
            self.model
                .generations
                .get_mut(&generation)
                .expect("registered")
                .must_not_run = Some("it was the final probe of its key");
            let answer = guarded(self.future(&spec, generation, Some(&key))).await;
            match answer {
                Ok(Ok(receipt)) if receipt.disposition() == Disposition::Added => {
                    let docket = self.docket.clone();
                    let probe = key.clone();
                    let cancelled = self.call("cancel", async move { docket.cancel(&probe).await }).await;
                    if !matches!(cancelled, Some(Ok(true))) {
                        self.found.push(format!("cancel({key:?}) of a task waiting a minute answered {cancelled:?}"));
                    }
                }
                Ok(Ok(receipt)) => self.found.push(format!(
                    "key {key:?} is not reusable after every task of it ended: scheduling it answered {:?}",
                    receipt.disposition()
                )),
                other => self.found.push(format!("scheduling key {key:?} at rest failed: {other:?}")),
            }
        }
        if !self.found.is_empty() {
            return Err(std::mem::take(&mut self.found));
        }
        Ok(())
    }

    /// Stop whatever still runs (after a violation, or a drain that did not finish).
    async fn tear_down(&mut self) {
        {
            let mut events = self.log.events();
            events.freeze = None;
            events.cuts.clear();
        }
        for worker in &mut self.workers {
            worker.crash();
        }
        for worker in &mut self.workers {
            let _ = worker.join(Duration::from_secs(10)).await;
            if let Some(proxy) = &worker.proxy {
                proxy.stop();
            }
        }
    }

    fn stats(&self) -> SeqStats {
        let events = self.log.events();
        let mut faults = [0; 5];
        for fault in &events.faults {
            let slot = match fault.kind {
                FaultKind::Crash => 0,
                FaultKind::Freeze { long: true } => 1,
                FaultKind::Freeze { long: false } => 2,
                FaultKind::Cut => 3,
                FaultKind::Restart => 4,
            };
            faults[slot] += 1;
        }
        SeqStats {
            steps: self.step,
            runs: events.runs.len(),
            faults,
            uncertain: self.uncertain,
        }
    }

    /// Everything needed to understand a failure: the violations, the operations up to the
    /// failing step, the runs and the faults.
    fn report(&self, violations: &[String]) -> String {
        let log = &self.log;
        let mut text = String::new();
        let _ = writeln!(
            text,
            "violations at step {} of {}:",
            self.step,
            self.plan.ops.len()
        );
        for violation in violations {
            let _ = writeln!(text, "  - {violation}");
        }
        let workers: Vec<String> = self
            .plan
            .workers
            .iter()
            .map(|c| format!("concurrency {c}"))
            .collect();
        let _ = writeln!(
            text,
            "workers at the start: {} (reading ahead up to {})",
            workers.join(", "),
            self.plan.read_ahead
        );
        let _ = writeln!(text, "operations (the failing step marked >):");
        for (step, op) in self.plan.ops.iter().enumerate() {
            let mark = if step == self.step { ">" } else { " " };
            let at = match self.started.get(step) {
                Some(at) => format!("{:5}ms", log.ms(*at)),
                None => "       ".to_owned(),
            };
            let _ = writeln!(text, " {mark}{step:3} {at} {op}");
        }
        if self.step >= self.plan.ops.len() {
            let _ = writeln!(text, " >    drain, end checks");
        }
        let events = log.events();
        let _ = writeln!(text, "generations:");
        for (id, generation) in &self.model.generations {
            let _ = writeln!(
                text,
                "  {id:3}: step {} {} key {} {:?}({}) -> {:?}{}{}{}{}",
                generation.step,
                generation.kind.name(),
                shown(&generation.key),
                generation.behaviour,
                generation.param,
                generation.disposition,
                if generation.cancelled {
                    ", cancelled"
                } else {
                    ""
                },
                match generation.superseded {
                    Some((_, true)) => ", replaced",
                    Some((_, false)) => ", superseded",
                    None => "",
                },
                if generation.uncertain {
                    ", uncertain"
                } else {
                    ""
                },
                generation
                    .must_not_run
                    .map(|why| format!(", never to run: {why}"))
                    .unwrap_or_default(),
            );
        }
        let _ = writeln!(text, "runs (ms since the start):");
        for run in &events.runs {
            let end = match run.end {
                Some((at, _, outcome)) => format!("{:5} {outcome:?}", log.ms(at)),
                None => "  ... running".to_owned(),
            };
            let _ = writeln!(
                text,
                "  generation {:3} run #{} attempt {} worker {:2}: {:5} -> {end}",
                run.generation,
                run.n,
                run.attempt,
                run.worker(),
                log.ms(run.start),
            );
        }
        let _ = writeln!(text, "faults:");
        for fault in &events.faults {
            let end = match fault.kind {
                FaultKind::Crash => String::new(),
                _ => format!(" -> {}", log.ms(fault.end)),
            };
            let _ = writeln!(
                text,
                "  {:?} worker {:?}: {}{end} {}",
                fault.kind,
                fault.worker,
                log.ms(fault.start),
                fault.note
            );
        }
        let _ = writeln!(text, "cancels that returned true:");
        for cancel in &self.model.cancels {
            let _ = writeln!(
                text,
                "  step {} cancel({:?}) {} -> {}: targets {:?}, named {:?}{}",
                cancel.step,
                cancel.key,
                log.ms(cancel.called),
                log.ms(cancel.returned),
                cancel.targets,
                cancel.primary,
                if cancel.quiet {
                    ", nothing of it delivered or due"
                } else {
                    ""
                }
            );
        }
        for dead in &self.model.dead {
            let _ = writeln!(
                text,
                "dead letter: generation {} key {:?}: {}",
                dead.generation, dead.key, dead.reason
            );
        }
        for note in &self.notes {
            let _ = writeln!(text, "note: {note}");
        }
        let _ = writeln!(
            text,
            "(backend {}, docket {})",
            self.backend.name(),
            self.name
        );
        if let Some(server) = &self.server {
            let server = server.lock().unwrap_or_else(|p| p.into_inner());
            let ping = server.try_command(&["PING"]);
            let log = std::fs::read_to_string(server.dir().join("redis.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(12).collect();
            let _ = writeln!(
                text,
                "redis-server on port {} answers PING with {ping:?}; the end of its log:",
                server.port()
            );
            for line in tail.into_iter().rev() {
                let _ = writeln!(text, "  {line}");
            }
        }
        text
    }
}
