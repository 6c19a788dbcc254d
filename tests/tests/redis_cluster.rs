//! Redis Cluster, one partition: the whole behaviour suite on a local cluster of 3 masters with a
//! replica each (`tests::redis_cluster`), reached by a `redis+cluster://` URL; a plain
//! `redis://` URL of one node, detected as a cluster; and a manual failover and a killed master
//! in the middle of a run.

mod behaviour;

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use docket::{Docket, Worker};
use tests::background::Background;
use tests::eventually;
use tests::probe::Probe;
use tests::redis_cluster::RedisCluster;
use tests::redis_server::{Reply, unique_name};

/// One cluster for the suite's tests (a cluster takes seconds to form), each with a docket name
/// of its own.
fn shared_cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::start)
}

async fn open() -> Docket {
    let url = shared_cluster().url();
    Docket::connect(url)
        .name(unique_name("behaviour-cluster"))
        .await
        .expect("open a docket on the cluster")
}

behaviour::behaviour_suite!(open);

/// The suite again on a docket of three partitions, each on its own master.
mod spread {
    use super::*;

    async fn open() -> Docket {
        Docket::connect(shared_cluster().url())
            .name(unique_name("behaviour-cluster-spread"))
            .partitions(3)
            .await
            .expect("open a docket of three partitions on the cluster")
    }

    crate::behaviour::behaviour_suite!(open);

    /// The layout puts each partition on a different master, and tasks reach all three.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_partition_lives_on_its_own_master_and_tasks_reach_them_all() {
        let cluster = shared_cluster();
        let name = unique_name("cluster-placement");
        let docket = Docket::connect(cluster.url())
            .name(&name)
            .partitions(3)
            .in_process_fallback(false)
            .await
            .unwrap();
        let probe = Probe::new();
        docket
            .add_many((0..90).map(|n| Note::schedule(probe.id(), n)))
            .await
            .unwrap();
        let layout_key = format!("{{{name}}}:layout");
        let owner = cluster.master_index(&layout_key);
        let Reply::Bulk(json) = cluster.nodes[owner].command(&["GET", &layout_key]) else {
            panic!("the layout is stored");
        };
        let layout: serde_json::Value = serde_json::from_str(&json).unwrap();
        let tags: Vec<String> = layout["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|tag| tag.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(tags.len(), 3, "{json}");
        let masters: BTreeSet<usize> = tags
            .iter()
            .map(|tag| cluster.master_index(&format!("{{{tag}}}:stream")))
            .collect();
        assert_eq!(
            masters.len(),
            3,
            "each partition on its own master: {tags:?}"
        );
        for tag in &tags {
            let key = format!("{{{tag}}}:stream");
            let Reply::Integer(length) =
                cluster.nodes[cluster.master_index(&key)].command(&["XLEN", &key])
            else {
                panic!("XLEN answers an integer");
            };
            assert!(length > 10, "{tag} holds {length} of 90 tasks");
        }
        tokio::time::timeout(
            tests::PATIENCE,
            Worker::new(&docket).concurrency(8).run_until_finished(),
        )
        .await
        .expect("the worker finished in time")
        .unwrap();
        assert_eq!(probe.finished_labels().len(), 90);
    }
}

#[docket::task]
async fn note(probe: String, n: u32) {
    Probe::find(&probe).start(n.to_string()).finish();
}

/// A plain `redis://` URL naming a node that does not serve the docket's slot: the docket finds
/// the server is a cluster node and uses the cluster (as a plain client, every command would be
/// answered `MOVED`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_url_of_a_cluster_node_is_used_as_the_cluster() {
    let cluster = shared_cluster();
    let name = unique_name("plain-url-cluster");
    let owner = cluster.master_index(&format!("{{{name}}}:stream"));
    let other = (0..3).find(|index| *index != owner).expect("three masters");
    let url = format!("redis://127.0.0.1:{}", cluster.nodes[other].port());
    let docket = Docket::connect(&url)
        .name(&name)
        .in_process_fallback(false)
        .await
        .unwrap();
    let probe = Probe::new();
    for n in 0..5 {
        Note::schedule(probe.id(), n).on(&docket).await.unwrap();
    }
    Worker::new(&docket).run_until_finished().await.unwrap();
    assert_eq!(probe.sorted_labels(), ["0", "1", "2", "3", "4"]);
    let stored = cluster.nodes[owner].command(&["EXISTS", &format!("{{{name}}}:index")]);
    assert_eq!(
        stored,
        Reply::Integer(0),
        "the index is empty again, on the slot's master"
    );
    let Reply::Integer(streams) =
        cluster.nodes[owner].command(&["EXISTS", &format!("{{{name}}}:stream")])
    else {
        panic!("EXISTS answers an integer");
    };
    assert_eq!(streams, 1, "the docket's keys are on the slot's master");
}

/// Every task whose `schedule` returned `Ok`, before, during and after `disrupt`, runs.
/// `replicas`: [`Connect::wait_replicas`](docket::Connect::wait_replicas).
async fn work_goes_on_through(replicas: u32, disrupt: impl AsyncFnOnce(&mut RedisCluster, &str)) {
    let mut cluster = RedisCluster::start();
    let name = unique_name("cluster-failover");
    let docket = Docket::connect(cluster.url())
        .name(&name)
        .redelivery_timeout(Duration::from_secs(2))
        .wait_replicas(replicas)
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
    // More tasks while the cluster changes: those whose `schedule` failed (the cluster was
    // down, or no replica confirmed them) were not acknowledged.
    let scheduling = {
        let (docket, probe) = (docket.clone(), probe.id().to_owned());
        tokio::spawn(async move {
            let mut acknowledged = BTreeSet::new();
            // The longest time between two acknowledged schedules: how long the change kept
            // the docket from storing tasks.
            let (mut last, mut longest) = (std::time::Instant::now(), Duration::ZERO);
            let until = std::time::Instant::now() + Duration::from_secs(12);
            for n in (20..80).take_while(|_| std::time::Instant::now() < until) {
                if Note::schedule(probe.clone(), n).on(&docket).await.is_ok() {
                    acknowledged.insert(n.to_string());
                    longest = longest.max(last.elapsed());
                    last = std::time::Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (acknowledged, longest)
        })
    };
    let disrupted = std::time::Instant::now();
    disrupt(&mut cluster, &format!("{{{name}}}:stream")).await;
    let changed = disrupted.elapsed();
    let (later, longest) = scheduling.await.unwrap();
    println!(
        "failover (wait_replicas {replicas}): the cluster changed over in {changed:.1?}; \
         schedules stalled for at most {longest:.1?}"
    );
    acknowledged.extend(later);
    eventually(
        "every acknowledged task to run",
        Duration::from_secs(60),
        async || acknowledged.is_subset(&probe.finished_labels()),
    )
    .await;
    assert!(
        acknowledged.len() > 20,
        "some tasks were scheduled after the change"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_goes_on_through_a_manual_failover() {
    // A manual failover waits for the replica to catch up: nothing is lost, without `WAIT`.
    work_goes_on_through(0, async |cluster: &mut RedisCluster, key: &str| {
        let master = cluster.master_index(key);
        // The replica of that master takes over: `CLUSTER FAILOVER` on it.
        let replica = cluster
            .nodes
            .iter()
            .position(|node| {
                matches!(node.try_command(&["ROLE"]), Ok(Reply::Array(role))
                    if role.first() == Some(&Reply::Bulk("slave".into()))
                        && role.get(2) == Some(&Reply::Integer(i64::from(cluster.nodes[master].port()))))
            })
            .expect("the master has a replica");
        cluster.nodes[replica].command(&["CLUSTER", "FAILOVER"]);
        eventually("the replica to take over", Duration::from_secs(20), async || {
            owns_slot_of(&cluster.nodes[replica], key)
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_goes_on_when_a_master_is_killed() {
    // Replication is asynchronous: only tasks a replica confirmed survive the master's death.
    work_goes_on_through(1, async |cluster: &mut RedisCluster, key: &str| {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let master = cluster.master_index(key);
        cluster.nodes[master].kill();
        eventually(
            "a replica to take over",
            Duration::from_secs(30),
            async || {
                cluster
                    .nodes
                    .iter()
                    .enumerate()
                    .any(|(index, node)| index != master && owns_slot_of(node, key))
            },
        )
        .await;
    })
    .await;
}

/// Whether `node` serves `key`'s slot as its master: it answers for the key (the others,
/// replicas included, redirect).
fn owns_slot_of(node: &tests::redis_server::RedisServer, key: &str) -> bool {
    matches!(node.try_command(&["EXISTS", key]), Ok(Reply::Integer(_)))
}
