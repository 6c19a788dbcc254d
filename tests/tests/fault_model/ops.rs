//! The operations of a sequence and their seeded generator. A sequence is a pure function of its
//! seed: the same seed gives the same workers and the same operations (their timing, and so what
//! they meet, varies from run to run).

use std::fmt;

use super::log::{Behaviour, When};
use super::rng::Rng;

/// The two task types: `B` exists so that a strike of `A` leaves some tasks running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    A,
    B,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::A => "fm_alpha",
            Kind::B => "fm_beta",
        }
    }
}

/// One task to schedule.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) kind: Kind,
    /// `None`: a generated unique key.
    pub(crate) key: Option<String>,
    pub(crate) replace: bool,
    /// 0: now.
    pub(crate) delay_ms: u64,
    pub(crate) behaviour: Behaviour,
    pub(crate) param: u64,
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind.name())?;
        match &self.key {
            Some(key) => write!(f, " key {key:?}")?,
            None => write!(f, " unkeyed")?,
        }
        if self.replace {
            write!(f, " replace")?;
        }
        if self.delay_ms > 0 {
            write!(f, " after {}ms", self.delay_ms)?;
        }
        write!(f, " {:?}({})", self.behaviour, self.param)
    }
}

/// Which worker a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    /// The live worker running the most tasks now (the lowest index on a tie).
    Busiest,
    /// The first worker to reach the site (freezes only).
    First,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CutHow {
    /// Every connection of the worker dropped at its proxy, and new ones refused meanwhile.
    Proxy,
    /// Every call of the worker fails before it is sent (failpoints `redis.send` and
    /// `redis.read.send`).
    Send,
    /// Every call of the worker runs, but its reply is lost (failpoints `redis.reply` and
    /// `redis.read.reply`).
    Reply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid {
    EmptyKey,
    ControlKey,
    LongKey,
    HugeDelay,
    /// A batch of valid tasks and one with an empty key: nothing of it may be stored.
    BatchWithEmptyKey,
}

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Schedule(Spec),
    /// `add_many` of one task type.
    Batch(Vec<Spec>),
    Invalid(Invalid, Spec),
    Cancel(String),
    Strike(Kind),
    Restore(Kind),
    Sleep(u64),
    Freeze {
        pick: Pick,
        site: &'static str,
        when: When,
        ms: u64,
        long: bool,
    },
    Crash,
    Cut {
        how: CutHow,
        ms: u64,
    },
    Restart {
        downtime_ms: u64,
    },
    AddWorker,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Schedule(spec) => write!(f, "schedule {spec}"),
            Op::Batch(specs) => {
                write!(f, "add_many [")?;
                for (i, spec) in specs.iter().enumerate() {
                    if i > 0 {
                        write!(f, "; ")?;
                    }
                    write!(f, "{spec}")?;
                }
                write!(f, "]")
            }
            Op::Invalid(invalid, spec) => write!(f, "invalid {invalid:?}: {spec}"),
            Op::Cancel(key) => write!(f, "cancel {key:?}"),
            Op::Strike(kind) => write!(f, "strike {}", kind.name()),
            Op::Restore(kind) => write!(f, "restore {}", kind.name()),
            Op::Sleep(ms) => write!(f, "sleep {ms}ms"),
            Op::Freeze {
                pick,
                site,
                when,
                ms,
                long,
            } => write!(
                f,
                "freeze {pick:?} worker at {site} ({when:?}) for {ms}ms{}",
                if *long { " (long)" } else { "" }
            ),
            Op::Crash => write!(f, "crash the busiest worker"),
            Op::Cut { how, ms } => write!(f, "cut the busiest worker ({how:?}) for {ms}ms"),
            Op::Restart { downtime_ms } => {
                write!(f, "restart redis (down {downtime_ms}ms)")
            }
            Op::AddWorker => write!(f, "add a worker"),
        }
    }
}

/// Time constants shared by the generator and the model.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Redis: the redelivery timeout of every docket handle.
    pub(crate) redelivery_ms: u64,
}

impl Timing {
    /// A freeze this long lets other workers take the frozen one's deliveries over.
    pub(crate) fn long_freeze(self, rng: &mut Rng) -> u64 {
        self.redelivery_ms + rng.range(400, 700)
    }

    /// The longest cut that cannot lead to a take-over: renewals come every quarter timeout,
    /// and a failed one is tried again a quarter timeout later, so a worker cut this long is
    /// silent for at most three quarters of the timeout.
    pub(crate) fn max_cut(self) -> u64 {
        self.redelivery_ms / 4
    }
}

/// What a sequence runs.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) workers: Vec<usize>,
    /// How far each worker may read ahead of its free slots (`Worker::read_ahead`): half the
    /// sequences read ahead (chosen by the seed's lowest bit, drawing nothing from its rng, so
    /// that a seed's operations do not depend on it).
    pub(crate) read_ahead: usize,
    /// How many partitions the docket spreads over (`Connect::partitions`; Redis only): half
    /// the sequences use three, chosen by the seed's second bit, drawing nothing from its rng.
    pub(crate) partitions: u16,
    pub(crate) ops: Vec<Op>,
}

/// The short scenarios a sequence may embed, each aimed at a finding of the protocol audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scenario {
    /// A stale failing copy settles after a fresh copy succeeded (R2).
    StaleFailure,
    /// A held copy beside a newer task survives a cancel (R6c).
    HeldCopy,
    /// A key used, finished, then used again; the empty key where it is accepted (R9).
    KeyReuse,
    /// A running task's worker crashes, then its key is cancelled (R6a).
    CrashCancel,
    /// Redis restarts briefly under a running task; a cancel right after (R6b).
    RestartCancel,
    /// Redis is down for most of a redelivery timeout while tasks run and finish (R1).
    LongOutage,
    /// Finished tasks wait for their acknowledgement while their worker's link is cut (R1).
    CutAcks,
}

impl Scenario {
    const ALL: [Scenario; 7] = [
        Scenario::StaleFailure,
        Scenario::HeldCopy,
        Scenario::KeyReuse,
        Scenario::CrashCancel,
        Scenario::RestartCancel,
        Scenario::LongOutage,
        Scenario::CutAcks,
    ];

    fn redis_only(self) -> bool {
        matches!(
            self,
            Scenario::CrashCancel
                | Scenario::RestartCancel
                | Scenario::LongOutage
                | Scenario::CutAcks
        )
    }

    /// By name, for `DOCKET_MODEL_SCENARIO`.
    pub(crate) fn named(name: &str) -> Option<Scenario> {
        Scenario::ALL
            .into_iter()
            .find(|scenario| format!("{scenario:?}").eq_ignore_ascii_case(name))
    }
}

/// Which faults a backend can take, and what the environment asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Abilities {
    pub(crate) redis: bool,
    /// Accept the empty key as an ordinary key (for versions that take it): see the top of
    /// `fault_model.rs`.
    pub(crate) empty_key_valid: bool,
    /// Embed this scenario in every sequence (`DOCKET_MODEL_SCENARIO`).
    pub(crate) focus: Option<Scenario>,
}

struct Gen<'a> {
    rng: Rng,
    keys: Vec<String>,
    last_key: Option<String>,
    timing: Timing,
    abilities: &'a Abilities,
    crashes: u32,
    long_freezes: u32,
    struck: [bool; 2],
}

impl Gen<'_> {
    fn behaviour(&mut self) -> (Behaviour, u64) {
        match self.rng.weighted(&[45, 25, 10, 20]) {
            0 => (Behaviour::Quick, self.rng.range(1, 20)),
            1 => (Behaviour::FailFirst, self.rng.range(1, 3)),
            2 => (Behaviour::FailAlways, 0),
            _ => (Behaviour::Hang, self.rng.range(150, 900)),
        }
    }

    fn kind(&mut self) -> Kind {
        if self.rng.chance(60) {
            Kind::A
        } else {
            Kind::B
        }
    }

    fn spec(&mut self) -> Spec {
        let kind = self.kind();
        let key = self
            .rng
            .chance(60)
            .then(|| self.keys[self.rng.below(self.keys.len() as u64) as usize].clone());
        let replace = key.is_some() && self.rng.chance(30);
        let delay_ms = if self.rng.chance(35) {
            self.rng.range(10, 500)
        } else {
            0
        };
        let (behaviour, param) = self.behaviour();
        if key.is_some() {
            self.last_key.clone_from(&key);
        }
        Spec {
            kind,
            key,
            replace,
            delay_ms,
            behaviour,
            param,
        }
    }

    fn keyed(&mut self, key: &str, behaviour: Behaviour, param: u64) -> Spec {
        self.last_key = Some(key.to_owned());
        Spec {
            kind: Kind::A,
            key: Some(key.to_owned()),
            replace: false,
            delay_ms: 0,
            behaviour,
            param,
        }
    }

    fn cancel_key(&mut self) -> String {
        match (&self.last_key, self.rng.chance(60)) {
            (Some(key), true) => key.clone(),
            _ => self.keys[self.rng.below(self.keys.len() as u64) as usize].clone(),
        }
    }

    fn random_op(&mut self) -> Op {
        let redis = self.abilities.redis;
        let weights = [
            38,                        // schedule
            6,                         // add_many
            3,                         // invalid input
            13,                        // cancel
            6,                         // strike / restore
            20,                        // sleep
            5,                         // freeze
            if redis { 1 } else { 0 }, // crash
            if redis { 5 } else { 0 }, // cut
            1,                         // add a worker
        ];
        match self.rng.weighted(&weights) {
            0 => Op::Schedule(self.spec()),
            1 => {
                let kind = self.kind();
                let count = self.rng.range(2, 4);
                let specs = (0..count)
                    .map(|_| Spec {
                        kind,
                        ..self.spec()
                    })
                    .collect();
                Op::Batch(specs)
            }
            2 => {
                let invalid = match self.rng.below(5) {
                    0 => Invalid::EmptyKey,
                    1 => Invalid::ControlKey,
                    2 => Invalid::LongKey,
                    3 => Invalid::HugeDelay,
                    _ => Invalid::BatchWithEmptyKey,
                };
                let spec = self.spec();
                Op::Invalid(invalid, spec)
            }
            3 => Op::Cancel(self.cancel_key()),
            4 => {
                let kind = self.kind();
                let index = kind as usize;
                self.struck[index] = !self.struck[index];
                if self.struck[index] {
                    Op::Strike(kind)
                } else {
                    Op::Restore(kind)
                }
            }
            5 => Op::Sleep(self.rng.range(10, 200)),
            6 => self.freeze(),
            7 if self.crashes == 0 && self.crashes + self.long_freezes < 2 => {
                self.crashes += 1;
                Op::Crash
            }
            8 => self.cut(),
            9 => Op::AddWorker,
            _ => Op::Sleep(self.rng.range(10, 100)),
        }
    }

    fn freeze(&mut self) -> Op {
        let (site, when) = match self.rng.below(7) {
            0 | 1 => ("settle.finish", When::AfterFailure),
            2 => ("settle.finish", When::AfterSuccess),
            3 => ("settle.start", When::Any),
            4 => ("claim.handover", When::Any),
            5 if self.abilities.redis => ("renew", When::Any),
            5 => ("settle.run", When::Any),
            _ => ("settle.finish", When::Any),
        };
        // Long freezes only where other workers can take deliveries over, and at most two
        // long faults (crash or long freeze) a sequence, so that no healthy task may reach the
        // delivery limit of 3.
        let long =
            self.abilities.redis && self.crashes + self.long_freezes < 2 && self.rng.chance(40);
        let ms = if long {
            self.long_freezes += 1;
            self.timing.long_freeze(&mut self.rng)
        } else {
            self.rng.range(30, 200)
        };
        let pick = if self.rng.chance(50) {
            Pick::First
        } else {
            Pick::Busiest
        };
        Op::Freeze {
            pick,
            site,
            when,
            ms,
            long,
        }
    }

    fn cut(&mut self) -> Op {
        let how = match self.rng.below(3) {
            0 => CutHow::Proxy,
            1 => CutHow::Send,
            _ => CutHow::Reply,
        };
        Op::Cut {
            how,
            ms: self.rng.range(50, self.timing.max_cut()),
        }
    }

    /// A short scenario that reaches one of the audit's findings when its fix is missing; the
    /// model's ordinary checks judge it like any other operations.
    fn scenario(&mut self, ops: &mut Vec<Op>) {
        let key = self.keys[0].clone();
        let redis = self.abilities.redis;
        let choices: Vec<Scenario> = Scenario::ALL
            .into_iter()
            .filter(|scenario| redis || !scenario.redis_only())
            .collect();
        let scenario = match self.abilities.focus {
            Some(focus) if redis || !focus.redis_only() => focus,
            _ => choices[self.rng.below(choices.len() as u64) as usize],
        };
        match scenario {
            // On memory nobody takes a frozen worker's delivery over, so there it is a plain
            // late retry.
            Scenario::StaleFailure => {
                let long = redis && self.crashes + self.long_freezes < 2;
                if long {
                    self.long_freezes += 1;
                }
                let ms = if long {
                    self.timing.long_freeze(&mut self.rng)
                } else {
                    self.rng.range(50, 200)
                };
                ops.push(Op::Freeze {
                    pick: Pick::First,
                    site: "settle.finish",
                    when: When::AfterFailure,
                    ms,
                    long,
                });
                let failures = self.rng.range(1, 3);
                ops.push(Op::Schedule(self.keyed(
                    &key,
                    Behaviour::FailFirst,
                    failures,
                )));
                ops.push(Op::Sleep(self.rng.range(50, 300)));
            }
            Scenario::HeldCopy => {
                ops.push(Op::Strike(Kind::A));
                self.struck[0] = true;
                // Workers hear of the strike before the task reaches them.
                ops.push(Op::Sleep(self.rng.range(30, 60)));
                ops.push(Op::Schedule(self.keyed(&key, Behaviour::Quick, 5)));
                ops.push(Op::Sleep(self.rng.range(60, 150)));
                let mut later = self.keyed(&key, Behaviour::Quick, 5);
                later.replace = true;
                later.delay_ms = self.rng.range(200, 400);
                ops.push(Op::Schedule(later));
                ops.push(Op::Cancel(key.clone()));
                ops.push(Op::Restore(Kind::A));
                self.struck[0] = false;
                ops.push(Op::Sleep(self.rng.range(100, 300)));
            }
            Scenario::KeyReuse => {
                let key = if self.abilities.empty_key_valid {
                    String::new()
                } else {
                    key
                };
                ops.push(Op::Schedule(self.keyed(&key, Behaviour::Quick, 3)));
                ops.push(Op::Sleep(self.rng.range(150, 300)));
                ops.push(Op::Schedule(self.keyed(&key, Behaviour::Quick, 3)));
            }
            Scenario::CrashCancel if self.crashes == 0 && self.long_freezes < 2 => {
                self.crashes += 1;
                let hang = self.rng.range(400, 900);
                ops.push(Op::Schedule(self.keyed(&key, Behaviour::Hang, hang)));
                ops.push(Op::Sleep(self.rng.range(60, 120)));
                ops.push(Op::Crash);
                ops.push(Op::Cancel(key.clone()));
            }
            Scenario::CrashCancel | Scenario::RestartCancel => {
                let hang = self.rng.range(1300, 1700);
                ops.push(Op::Schedule(self.keyed(&key, Behaviour::Hang, hang)));
                for _ in 0..self.rng.range(1, 3) {
                    let mut spec = self.spec();
                    spec.behaviour = Behaviour::Hang;
                    spec.param = self.rng.range(300, 900);
                    ops.push(Op::Schedule(spec));
                }
                ops.push(Op::Sleep(self.rng.range(60, 150)));
                ops.push(Op::Restart {
                    downtime_ms: self.rng.range(0, 300),
                });
                ops.push(Op::Cancel(key.clone()));
            }
            // Live workers must not lose their tasks to the outage: nothing is taken over, and
            // what finished while Redis was away is acknowledged when it is back.
            Scenario::LongOutage => {
                for _ in 0..self.rng.range(2, 4) {
                    let mut spec = self.spec();
                    spec.behaviour = Behaviour::Hang;
                    spec.param = self.rng.range(300, 1000);
                    spec.delay_ms = 0;
                    ops.push(Op::Schedule(spec));
                }
                ops.push(Op::Sleep(self.rng.range(60, 150)));
                ops.push(Op::Restart {
                    downtime_ms: self.timing.redelivery_ms * self.rng.range(60, 90) / 100,
                });
            }
            Scenario::CutAcks => {
                for _ in 0..self.rng.range(2, 4) {
                    let (behaviour, param) = (Behaviour::Quick, self.rng.range(1, 10));
                    let mut spec = self.spec();
                    spec.behaviour = behaviour;
                    spec.param = param;
                    spec.delay_ms = 0;
                    ops.push(Op::Schedule(spec));
                }
                let how = match self.rng.below(3) {
                    0 => CutHow::Proxy,
                    1 => CutHow::Send,
                    _ => CutHow::Reply,
                };
                ops.push(Op::Cut {
                    how,
                    ms: self.timing.max_cut(),
                });
                ops.push(Op::Sleep(self.rng.range(100, 400)));
            }
        }
    }
}

/// The plan of the sequence with this seed.
pub(crate) fn generate(seed: u64, timing: Timing, abilities: &Abilities) -> Plan {
    let mut g = Gen {
        rng: Rng::new(seed),
        keys: (0..4).map(|k| format!("k{k}")).collect(),
        last_key: None,
        timing,
        abilities,
        crashes: 0,
        long_freezes: 0,
        struck: [false; 2],
    };
    let workers = (0..g.rng.range(2, 3))
        .map(|_| g.rng.range(1, 3) as usize)
        .collect();
    let length = g.rng.range(8, 16);
    let scenario_at = (abilities.focus.is_some() || g.rng.chance(35)).then(|| g.rng.below(length));
    let mut ops = Vec::new();
    for step in 0..length {
        if scenario_at == Some(step) {
            g.scenario(&mut ops);
        } else {
            ops.push(g.random_op());
        }
    }
    let read_ahead = if seed & 1 == 1 { 16 } else { 0 };
    let partitions = if seed & 2 == 2 { 3 } else { 1 };
    Plan {
        workers,
        ops,
        read_ahead,
        partitions,
    }
}
