//! Sentinel: the whole behaviour suite on a master watched by three Sentinels
//! (`tests::redis_sentinel`), reached by a `redis+sentinel://` URL; and the master killed in the
//! middle of a run: the docket asks the Sentinels again and goes on with the new master.

mod behaviour;

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use docket::{Docket, Worker};
use tests::background::Background;
use tests::eventually;
use tests::probe::Probe;
use tests::redis_sentinel::RedisSentinels;
use tests::redis_server::unique_name;

/// One Sentinel group for the suite's tests, each with a docket name of its own.
fn shared_group() -> &'static RedisSentinels {
    static GROUP: OnceLock<RedisSentinels> = OnceLock::new();
    GROUP.get_or_init(RedisSentinels::start)
}

async fn open() -> Docket {
    Docket::connect(shared_group().url())
        .name(unique_name("behaviour-sentinel"))
        .await
        .expect("open a docket through the Sentinels")
}

behaviour::behaviour_suite!(open);

#[docket::task]
async fn note(probe: String, n: u32) {
    Probe::find(&probe).start(n.to_string()).finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_goes_on_when_the_master_is_killed() {
    let mut group = RedisSentinels::start();
    let docket = Docket::connect(group.url())
        .name(unique_name("sentinel-failover"))
        .redelivery_timeout(Duration::from_secs(2))
        // Replication is asynchronous: only what the replica confirmed survives the master.
        .wait_replicas(1)
        .in_process_fallback(false)
        .await
        .unwrap();
    let worker = Background::start(Worker::new(&docket));
    let probe = Probe::new();
    let mut acknowledged = BTreeSet::new();
    for n in 0..20 {
        Note::schedule(probe.id(), n).on(&docket).await.unwrap();
        acknowledged.insert(n.to_string());
    }
    probe
        .until("the first tasks run", |p| p.finishes() >= 20)
        .await;

    let old = group.master_port().expect("the Sentinels name a master");
    let killed = std::time::Instant::now();
    group.nodes[0].kill();
    eventually(
        "the Sentinels to name the replica",
        Duration::from_secs(30),
        async || group.master_port().is_some_and(|port| port != old),
    )
    .await;
    let promoted = killed.elapsed();
    // The new master has no replica: tasks stored now are confirmed by none.
    let after = Docket::connect(group.url())
        .name(docket.name())
        .in_process_fallback(false)
        .await
        .unwrap();
    let mut later = BTreeSet::new();
    eventually(
        "the docket to store tasks on the new master",
        Duration::from_secs(30),
        async || {
            let n = 100 + later.len() as u32;
            if Note::schedule(probe.id(), n).on(&after).await.is_ok() {
                later.insert(n.to_string());
            }
            later.len() >= 5
        },
    )
    .await;
    println!(
        "failover: the Sentinels named the new master {promoted:.1?} after the kill; the docket \
         had stored five tasks on it {:.1?} after the kill",
        killed.elapsed()
    );
    acknowledged.extend(later);
    eventually(
        "every acknowledged task to run",
        Duration::from_secs(60),
        async || acknowledged.is_subset(&probe.finished_labels()),
    )
    .await;
    worker.stop().await;
}
