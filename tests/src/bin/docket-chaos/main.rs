//! The chaos harness: many producers and workers on one Redis, while workers are SIGKILLed,
//! Redis is restarted and connections are cut, and some tasks are toxic. It checks that every
//! task whose `schedule` succeeded ran at least once, that toxic tasks ended as dead letters, and
//! that nothing is left behind, then prints one summary line.
//!
//! ```text
//! cargo run -p tests --bin docket-chaos -- --short           # CI: about a minute
//! cargo run --release -p tests --bin docket-chaos -- --long  # by hand: 100,000 tasks
//! cargo run -p tests --bin docket-chaos -- --short --cluster # on a Redis Cluster
//! ```
//! After the chaos, the workers drain what is left: until nothing is, for at most 120 s (30 min
//! with `--long`, whose process-killing tasks cost a restart each), and the run fails early once
//! nothing moved for 60 s (120 s with `--long`).
//!
//! Options: `--tasks N`, `--chaos-secs S`, `--seed N`, `--cluster`, `--partitions N` (spread the
//! docket over N partitions, `Connect::partitions`; on a cluster the chaos then kills the master
//! of each partition in turn). Exits 0 only when nothing was lost.
//!
//! With `--cluster`, the docket lives on a local cluster of 3 masters with a replica each
//! (`tests::redis_cluster`) and is used with `Connect::wait_replicas(1)`: instead of restarting
//! Redis and cutting connections, the chaos kills the master that serves the docket, waits for
//! its replica to take over, and starts the killed node again, empty, as the new replica.

mod proxy;
mod rng;
mod roles;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tests::redis_cluster::RedisCluster;
use tests::redis_server::{RedisServer, Reply, unique_name};

use crate::proxy::Proxy;
use crate::rng::Rng;

#[derive(Debug, Clone)]
struct Plan {
    tasks: u64,
    producers: u64,
    workers: usize,
    chaos: Duration,
    spread: Duration,
    /// The longest the drain may take in all.
    drain: Duration,
    /// The drain ends early (and the run fails) when nothing moved for this long: no task
    /// completed or left the docket, and no worker process died under a toxic task.
    stuck: Duration,
    seed: u64,
    cluster: bool,
    partitions: u64,
}

impl Plan {
    fn from_args(args: &[String]) -> Plan {
        let mut plan = Plan {
            tasks: 3_000,
            producers: 3,
            workers: 3,
            chaos: Duration::from_secs(20),
            spread: Duration::from_secs(3),
            drain: Duration::from_secs(120),
            stuck: Duration::from_secs(60),
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |since| since.as_nanos() as u64),
            cluster: false,
            partitions: 1,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .expect("a number")
            };
            match arg.as_str() {
                "--short" => {}
                "--long" => {
                    plan.tasks = 100_000;
                    plan.producers = 4;
                    plan.workers = 4;
                    plan.chaos = Duration::from_secs(300);
                    plan.spread = Duration::from_secs(10);
                    // Each of about 200 process-killing tasks kills five processes, and each
                    // death costs a restart and a redelivery timeout: the drain of what the
                    // chaos left takes well over ten minutes while it moves at all.
                    plan.drain = Duration::from_secs(1800);
                    plan.stuck = Duration::from_secs(120);
                }
                "--tasks" => plan.tasks = value(),
                "--chaos-secs" => plan.chaos = Duration::from_secs(value()),
                "--seed" => plan.seed = value(),
                "--cluster" => plan.cluster = true,
                "--partitions" => plan.partitions = value(),
                other => panic!("unknown option {other}; see the file's docs"),
            }
        }
        plan
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    match args.first().map(String::as_str) {
        Some("worker") => {
            trace_to_stderr();
            runtime
                .block_on(roles::work(&args[1], &args[2]))
                .expect("worker")
        }
        Some("produce") => {
            let number = |i: usize| args[i].parse::<u64>().expect("a number");
            let spread = Duration::from_millis(number(5));
            runtime
                .block_on(roles::produce(
                    &args[1],
                    &args[2],
                    number(3),
                    number(4),
                    spread,
                    number(6),
                ))
                .expect("producer");
        }
        _ => {
            let plan = Plan::from_args(&args);
            let passed = runtime.block_on(run(plan));
            std::process::exit(if passed { 0 } else { 1 });
        }
    }
}

/// A worker's warnings, and its clock's decisions (looks, takes, checks, resignations, its own
/// reclaims), on stderr: the `worker.err` a failed run shows the end of.
fn trace_to_stderr() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::WARN)
        .with_target("docket::backend::redis::clock", tracing::Level::DEBUG);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(filter)
        .init();
}

/// The child processes of a run, killed when it ends however it ends.
struct Children {
    dir: PathBuf,
    /// `--partitions`, passed on as `DOCKET_PARTITIONS`.
    partitions: u64,
    workers: Vec<Child>,
    producers: Vec<Child>,
    /// Worker processes found ended: under a toxic `exit` task, or otherwise (the chaos's own
    /// kills among them).
    exits: Exits,
}

/// How many worker processes ended, by cause.
#[derive(Debug, Default, Clone, Copy)]
struct Exits {
    /// Exit status 7: a toxic `exit` task ended the process.
    toxic: u32,
    /// Any other end (a crash, or a kill the chaos made and counts in its tally).
    other: u32,
}

impl Children {
    fn spawn(&self, args: &[String]) -> Child {
        Command::new(std::env::current_exe().expect("this binary"))
            .args(args)
            .env("CHAOS_DIR", &self.dir)
            .env("DOCKET_PARTITIONS", self.partitions.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                // What a child says when it fails, one file per role, for the report.
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join(format!("{}.err", args[0])))
                    .map_or_else(|_| Stdio::null(), Stdio::from),
            )
            .spawn()
            .expect("start a child process")
    }

    /// Replace workers that exited (a toxic task may end its process).
    fn keep_workers(&mut self, wanted: usize, url: &str, name: &str) {
        let exits = &mut self.exits;
        self.workers
            .retain_mut(|worker| match worker.try_wait().ok().flatten() {
                None => true,
                Some(status) => {
                    match status.code() {
                        Some(7) => exits.toxic += 1,
                        _ => exits.other += 1,
                    }
                    false
                }
            });
        while self.workers.len() < wanted {
            let worker = self.spawn(&["worker".into(), url.into(), name.into()]);
            self.workers.push(worker);
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in self.workers.iter_mut().chain(&mut self.producers) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    kills: u32,
    restarts: u32,
    cuts: u32,
}

/// Where the docket lives: one server behind a proxy that cuts connections, or a cluster.
enum Target {
    Single {
        redis: RedisServer,
        proxy: Proxy,
    },
    Cluster {
        cluster: RedisCluster,
        /// The node killed last, until it is back in sync as a replica.
        /// The killed master, and a key of the slot it served.
        down: Option<(usize, String)>,
    },
}

impl Target {
    /// The URL workers use, and the one producers and the final check use.
    fn urls(&self) -> (String, String) {
        match self {
            Target::Single { redis, proxy } => {
                (format!("redis://127.0.0.1:{}", proxy.port()), redis.url())
            }
            Target::Cluster { cluster, .. } => (cluster.url(), cluster.url()),
        }
    }

    /// Where the workers' logs go.
    fn dir(&self) -> PathBuf {
        match self {
            Target::Single { redis, .. } => redis.dir().join("logs"),
            Target::Cluster { cluster, .. } => cluster.nodes[0].dir().join("logs"),
        }
    }

    /// Restart Redis (one server), or kill the master serving the docket (a cluster, when the
    /// last one killed is back). `key` is a key of the docket.
    fn disrupt(&mut self, clean: &mut bool, key: &str, tally: &mut Tally) {
        match self {
            Target::Single { redis, .. } => {
                if *clean {
                    redis.shutdown();
                }
                redis.restart();
                *clean = !*clean;
                tally.restarts += 1;
            }
            Target::Cluster { cluster, down } => {
                if down.is_none()
                    && let Some(master) = cluster.try_master_index(key)
                {
                    cluster.nodes[master].kill();
                    *down = Some((master, key.to_owned()));
                    tally.restarts += 1;
                }
            }
        }
    }

    /// One command to the node that serves `key` (the server, or the docket's master).
    fn command(&self, key: &str, args: &[&str]) -> Result<Reply, String> {
        match self {
            Target::Single { redis, .. } => redis.try_command(args),
            Target::Cluster { cluster, .. } => match cluster.try_master_index(key) {
                Some(master) => cluster.nodes[master].try_command(args),
                None => Err("no node serves the docket now".into()),
            },
        }
    }

    /// Cut the workers' connections (one server only).
    fn cut(&self, tally: &mut Tally) {
        if let Target::Single { proxy, .. } = self {
            proxy.cut();
            tally.cuts += 1;
        }
    }

    /// On a cluster: once a replica serves the killed master's slots (those of the key the
    /// kill aimed at: on a spread docket, not always partition 0's), start the killed node again
    /// (it comes back empty and follows the new master); once it is in sync, the next master may
    /// be killed.
    fn tend(&mut self) {
        let Target::Cluster { cluster, down } = self else {
            return;
        };
        let Some((index, key)) = down.clone() else {
            return;
        };
        let key = key.as_str();
        let node = &mut cluster.nodes[index];
        if node.pid().is_none() {
            let taken_over = cluster.nodes.iter().enumerate().any(|(other, node)| {
                other != index
                    && matches!(node.try_command(&["EXISTS", key]), Ok(Reply::Integer(_)))
            });
            if taken_over {
                cluster.nodes[index].restart();
            }
        } else if matches!(
            node.try_command(&["INFO", "replication"]),
            Ok(Reply::Bulk(info)) if info.contains("master_link_status:up")
        ) {
            *down = None;
        }
    }
}

/// The partitions' tags of a spread docket's stored layout; none for a docket of one partition
/// (or while the layout cannot be read).
fn layout_tags(target: &Target, name: &str) -> Vec<String> {
    let key = format!("{{{name}}}:layout");
    let Ok(Reply::Bulk(json)) = target.command(&key, &["GET", &key]) else {
        return Vec::new();
    };
    // `{"v":1,"partitions":["name","name:1.4",…]}`: docket names and tags hold no quotes.
    let Some((_, list)) = json.split_once("\"partitions\":[") else {
        return Vec::new();
    };
    let list = list.split(']').next().unwrap_or_default();
    list.split(',')
        .map(|tag| tag.trim_matches('"').to_owned())
        .filter(|tag| !tag.is_empty())
        .collect()
}

async fn run(plan: Plan) -> bool {
    eprintln!("chaos: {plan:?}");
    let mut target = if plan.cluster {
        Target::Cluster {
            cluster: RedisCluster::start(),
            down: None,
        }
    } else {
        let redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
        let proxy = Proxy::start(redis.port()).await.expect("start the proxy");
        Target::Single { redis, proxy }
    };
    let name = unique_name("chaos");
    let stream = format!("{{{name}}}:stream");
    let dir = target.dir();
    std::fs::create_dir_all(&dir).unwrap();
    let (through_proxy, direct) = target.urls();
    let mut children = Children {
        dir: dir.clone(),
        partitions: plan.partitions,
        workers: Vec::new(),
        producers: Vec::new(),
        exits: Exits::default(),
    };
    children.keep_workers(plan.workers, &through_proxy, &name);
    for index in 0..plan.producers {
        let count = plan.tasks / plan.producers + u64::from(index < plan.tasks % plan.producers);
        let args = [
            "produce".to_owned(),
            direct.clone(),
            name.clone(),
            index.to_string(),
            count.to_string(),
            plan.spread.as_millis().to_string(),
            plan.seed.to_string(),
        ];
        let producer = children.spawn(&args);
        children.producers.push(producer);
    }

    // Chaos, every 250 ms, for the chaos period and at least until the producers are done.
    let mut rng = Rng::new(plan.seed);
    let mut tally = Tally::default();
    let started = Instant::now();
    let mut clean_restart = true;
    loop {
        children.producers.retain_mut(|producer| {
            match producer.try_wait().expect("a producer's status") {
                None => true,
                Some(status) => {
                    assert!(
                        status.success(),
                        "a producer failed: {status}: {}",
                        std::fs::read_to_string(dir.join("produce.err")).unwrap_or_default()
                    );
                    false
                }
            }
        });
        if started.elapsed() >= plan.chaos && children.producers.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        if rng.chance(8.0) {
            let victim = rng.below(children.workers.len() as u64) as usize;
            let _ = children.workers[victim].kill();
            let _ = children.workers[victim].wait();
            tally.kills += 1;
        } else if rng.chance(2.0) {
            // On a spread docket, the master of each partition in turn.
            let tags = layout_tags(&target, &name);
            let victim = match tags.is_empty() {
                true => stream.clone(),
                false => format!("{{{}}}:stream", tags[tally.restarts as usize % tags.len()]),
            };
            target.disrupt(&mut clean_restart, &victim, &mut tally);
        } else if rng.chance(5.0) {
            target.cut(&mut tally);
        }
        target.tend();
        children.keep_workers(plan.workers, &through_proxy, &name);
    }
    eprintln!(
        "chaos: stopped after {:.0?}: {tally:?}; worker processes that ended: {:?}",
        started.elapsed(),
        children.exits
    );
    let before_drain = children.exits;

    // Let the workers drain everything.
    let docket = roles::open(&direct, &name).await.expect("open the docket");
    let expected = Expected::read(&dir);
    let draining = Instant::now();
    let deadline = draining + plan.drain;
    let mut reported_at = draining;
    // What moved last, and when: the tasks left, those that completed, and the toxic exits.
    let mut last = (usize::MAX, 0, 0);
    let mut moved_at = draining;
    loop {
        target.tend();
        children.keep_workers(plan.workers, &through_proxy, &name);
        let snapshot = docket.snapshot().await;
        let done = Outcome::read(&dir);
        let settled = snapshot.as_ref().is_ok_and(|s| s.is_empty())
            && expected.must.iter().all(|id| done.runs.contains_key(id));
        let left = snapshot.as_ref().map_or(usize::MAX, |s| {
            s.queued.len() + s.scheduled.len() + s.running.len()
        });
        let state = (left, done.runs.len(), children.exits.toxic);
        if state != last {
            (last, moved_at) = (state, Instant::now());
        }
        if settled || Instant::now() > deadline || moved_at.elapsed() > plan.stuck {
            break;
        }
        if reported_at.elapsed() >= Duration::from_secs(30) {
            // Where a long drain goes: what is left, and how many processes died meanwhile.
            reported_at = Instant::now();
            eprintln!(
                "chaos: draining {:.0?}: {left} tasks left, {} of {} that must complete did, \
                 {} workers ended under a toxic `exit` task",
                draining.elapsed(),
                expected
                    .must
                    .iter()
                    .filter(|id| done.runs.contains_key(*id))
                    .count(),
                expected.must.len(),
                children.exits.toxic - before_drain.toxic
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "chaos: drained for {:.0?} (at most {:.0?}, or until nothing moved for {:.0?}); \
         meanwhile {} workers ended under a toxic `exit` task, {} otherwise ({} toxic `exit` \
         tasks scheduled in all)",
        draining.elapsed(),
        plan.drain,
        plan.stuck,
        children.exits.toxic - before_drain.toxic,
        children.exits.other - before_drain.other,
        expected
            .toxic
            .values()
            .filter(|kind| *kind == "exit")
            .count()
    );
    let snapshot = docket.snapshot().await.expect("a final snapshot");
    let dead = docket.dead_letters().await.expect("the dead letters");
    let passed = report(&expected, &Outcome::read(&dir), &snapshot, &dead);
    if !passed {
        // What the next look needs: who holds what, who keeps the clock, who is alive.
        let alive: Vec<u32> = children.workers.iter().map(Child::id).collect();
        eprintln!("chaos: live worker processes: {alive:?}");
        let said = std::fs::read_to_string(dir.join("worker.err")).unwrap_or_default();
        let tail: Vec<&str> = said.lines().rev().take(80).collect();
        eprintln!("chaos: the workers' last words: {tail:#?}");
        for args in [
            vec!["XINFO", "CONSUMERS", stream.as_str(), "workers"],
            vec!["GET", &format!("{{{name}}}:keeper")],
            vec![
                "ZRANGE",
                &format!("{{{name}}}:fleet"),
                "0",
                "-1",
                "WITHSCORES",
            ],
            vec!["XPENDING", stream.as_str(), "workers"],
        ] {
            eprintln!(
                "chaos: {}: {:?}",
                args.join(" "),
                target.command(&stream, &args)
            );
        }
        // Where the tasks that never completed are, in every partition.
        let outcome = Outcome::read(&dir);
        let lost: Vec<&String> = expected
            .must
            .iter()
            .filter(|id| !outcome.runs.contains_key(*id))
            .take(5)
            .collect();
        let mut tags = layout_tags(&target, &name);
        if tags.is_empty() {
            tags.push(name.clone());
        }
        for tag in &tags {
            let key = |suffix: &str| format!("{{{tag}}}:{suffix}");
            let stream = key("stream");
            eprintln!(
                "chaos: partition {tag}: XLEN {:?}, XPENDING {:?}, HLEN index {:?}, ZCARD schedule {:?}, HLEN held {:?}, HLEN dead {:?}",
                target.command(&stream, &["XLEN", &stream]),
                target.command(&stream, &["XPENDING", &stream, "workers"]),
                target.command(&stream, &["HLEN", &key("index")]),
                target.command(&stream, &["ZCARD", &key("schedule")]),
                target.command(&stream, &["HLEN", &key("held")]),
                target.command(&stream, &["HLEN", &key("dead")]),
            );
            for id in &lost {
                let task_key = id.trim_end_matches("-r1");
                eprintln!(
                    "chaos:   {id} in {tag}: index {:?}, schedule {:?}",
                    target.command(&stream, &["HGET", &key("index"), task_key]),
                    target.command(&stream, &["ZSCORE", &key("schedule"), task_key]),
                );
            }
        }
        for id in &lost {
            let mentions: Vec<&str> = said
                .lines()
                .filter(|line| line.contains(id.as_str()))
                .take(10)
                .collect();
            eprintln!("chaos:   {id} in the workers' logs: {mentions:#?}");
        }
    }
    drop(children);
    passed
}

/// What the producers scheduled.
#[derive(Debug, Default)]
struct Expected {
    must: BTreeSet<String>,
    cancelled: BTreeSet<String>,
    /// Toxic id → what it does.
    toxic: BTreeMap<String, String>,
    scheduled: usize,
}

impl Expected {
    fn read(dir: &Path) -> Expected {
        let mut expected = Expected::default();
        for line in roles::read_logs(dir) {
            let Some((event, id)) = line.split_once(' ') else {
                continue;
            };
            let id = id.to_owned();
            match event {
                "must" => drop(expected.must.insert(id)),
                "cancelled" => drop(expected.cancelled.insert(id)),
                "replaced" | "unsure" => {}
                toxic if toxic.starts_with("toxic-") => {
                    expected
                        .toxic
                        .insert(id, toxic["toxic-".len()..].to_owned());
                }
                _ => continue,
            }
            expected.scheduled += 1;
        }
        expected
    }
}

/// What the workers ran.
#[derive(Debug, Default)]
struct Outcome {
    /// Task id → how many times it completed.
    runs: BTreeMap<String, usize>,
}

impl Outcome {
    fn read(dir: &Path) -> Outcome {
        let mut outcome = Outcome::default();
        for line in roles::read_logs(dir) {
            if let Some(id) = line.strip_prefix("done ") {
                *outcome.runs.entry(id.to_owned()).or_default() += 1;
            }
        }
        outcome
    }
}

fn report(
    expected: &Expected,
    outcome: &Outcome,
    snapshot: &docket::inspect::Snapshot,
    dead: &[docket::inspect::DeadLetter],
) -> bool {
    let lost: Vec<&String> = expected
        .must
        .iter()
        .filter(|id| !outcome.runs.contains_key(*id))
        .collect();
    let ran_after_cancel: Vec<&String> = expected
        .cancelled
        .iter()
        .filter(|id| outcome.runs.contains_key(*id))
        .collect();
    let duplicates: usize = outcome.runs.values().map(|runs| runs - 1).sum();
    // A toxic task ends with its own error, unless the chaos killed its workers under it more
    // often than `max_deliveries` first ("never settled").
    let reason_of = |kind: &str| match kind {
        "panic" => "panicked",
        "error" => "failed on attempt 3 of 3",
        "hang" => "timed out",
        _ => "never settled",
    };
    let unburied: Vec<(&String, &String)> = expected
        .toxic
        .iter()
        .filter(|(id, kind)| {
            !dead.iter().any(|letter| {
                &&letter.key == id
                    && (letter.reason.contains(reason_of(kind))
                        || letter.reason.contains("never settled"))
            })
        })
        .collect();
    let unexpected_dead: Vec<&docket::inspect::DeadLetter> = dead
        .iter()
        .filter(|letter| !expected.toxic.contains_key(&letter.key))
        .collect();
    println!(
        "chaos: scheduled={} completed={} duplicates={duplicates} dead-lettered={} lost={}",
        expected.scheduled,
        outcome.runs.len(),
        dead.len(),
        lost.len()
    );
    let mut passed = true;
    let mut fail = |what: &str, detail: String| {
        passed = false;
        eprintln!("chaos: FAILED: {what}: {detail}");
    };
    if !lost.is_empty() {
        fail("tasks never completed", format!("{lost:?}"));
    }
    if !ran_after_cancel.is_empty() {
        fail("cancelled tasks ran", format!("{ran_after_cancel:?}"));
    }
    if !unburied.is_empty() {
        fail(
            "toxic tasks not dead-lettered with their error",
            format!("{unburied:?}"),
        );
    }
    if !unexpected_dead.is_empty() {
        fail(
            "healthy tasks dead-lettered",
            format!("{unexpected_dead:#?}"),
        );
    }
    if !snapshot.is_empty() {
        fail("tasks left behind", format!("{snapshot:#?}"));
    }
    passed
}
