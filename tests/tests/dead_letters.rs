//! Dead letters are bounded (audit R16): kept up to `Connect::dead_letters`' count and age, the
//! oldest going first, on memory and on Redis; `remove_dead_letter` and `docket dead remove`
//! forget one for good; a replayed letter leaves no trace in the retention index.

use std::time::Duration;

use docket::{Docket, Worker};
use tests::redis_server::{RedisServer, Reply, unique_name};

#[docket::task]
async fn doomed(n: u32) -> Result<(), docket::Fail> {
    Err(docket::Fail::because(format!("task {n} fails for good")))
}

async fn bury(docket: &Docket, numbers: std::ops::Range<u32>) -> Vec<String> {
    let mut keys = Vec::new();
    for n in numbers {
        let scheduled = Doomed::schedule(n).on(docket).await.unwrap();
        keys.push(scheduled.key().to_owned());
        // One at a time, so the letters die in order.
        tokio::time::timeout(
            Duration::from_secs(20),
            Worker::new(docket).run_until_finished(),
        )
        .await
        .expect("the worker finishes")
        .unwrap();
    }
    keys
}

async fn dead_keys(docket: &Docket) -> Vec<String> {
    let mut letters = docket.dead_letters().await.unwrap();
    letters.sort_by_key(|letter| letter.died);
    letters.into_iter().map(|letter| letter.key).collect()
}

async fn only_the_newest_letters_are_kept(docket: Docket) {
    let keys = bury(&docket, 0..5).await;
    assert_eq!(dead_keys(&docket).await, keys[2..].to_vec());
    assert_eq!(docket.snapshot().await.unwrap().dead, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_newest_letters_are_kept_in_memory() {
    let docket = Docket::connect("memory://")
        .dead_letters(3, Duration::from_secs(3600))
        .await
        .unwrap();
    only_the_newest_letters_are_kept(docket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_newest_letters_are_kept_on_redis() {
    let server = RedisServer::start();
    let name = unique_name("dead");
    let docket = Docket::connect(server.url())
        .name(&name)
        .dead_letters(3, Duration::from_secs(3600))
        .await
        .unwrap();
    only_the_newest_letters_are_kept(docket).await;
    let died = server.command(&["ZCARD", &format!("{{{name}}}:died")]);
    assert!(
        matches!(died, Reply::Integer(3)),
        "the retention index holds what the hash holds: {died:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_letter_past_its_age_goes_when_the_next_one_is_written() {
    let server = RedisServer::start();
    let name = unique_name("aged");
    let docket = Docket::connect(server.url())
        .name(&name)
        .dead_letters(100, Duration::from_secs(60))
        .await
        .unwrap();
    let keys = bury(&docket, 0..2).await;
    // Age the first letter past the limit, as if it had died two minutes ago.
    let died = format!("{{{name}}}:died");
    server.command(&["ZINCRBY", &died, "-120000", &keys[0]]);
    bury(&docket, 2..3).await;
    let left = dead_keys(&docket).await;
    assert!(!left.contains(&keys[0]), "{left:?}");
    assert_eq!(left.len(), 2, "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_or_replayed_letter_is_gone_from_the_retention_index() {
    let server = RedisServer::start();
    let name = unique_name("forget");
    let docket = Docket::connect(server.url()).name(&name).await.unwrap();
    let keys = bury(&docket, 0..2).await;
    assert!(docket.remove_dead_letter(&keys[0]).await.unwrap());
    assert!(
        !docket.remove_dead_letter(&keys[0]).await.unwrap(),
        "gone already"
    );
    assert!(docket.replay(&keys[1]).await.unwrap());
    assert!(docket.dead_letters().await.unwrap().is_empty());
    let died = server.command(&["ZCARD", &format!("{{{name}}}:died")]);
    assert!(matches!(died, Reply::Integer(0)), "{died:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_removes_dead_letters() {
    let server = RedisServer::start();
    let name = unique_name("cli-dead");
    let docket = Docket::connect(server.url()).name(&name).await.unwrap();
    let keys = bury(&docket, 0..3).await;
    let url = server.url();
    let run = async |args: &[&str]| {
        let mut argv = vec!["docket", "--url", &url, "--name", &name, "--json"];
        argv.extend_from_slice(args);
        let mut out = Vec::new();
        let code = docket::cli::run_from(argv, &mut out).await;
        assert_eq!(code, std::process::ExitCode::SUCCESS);
        serde_json::from_slice::<serde_json::Value>(&out).unwrap()
    };
    let one = run(&["dead", "remove", &keys[0]]).await;
    assert_eq!(one["removed"], serde_json::json!([keys[0]]));
    let rest = run(&["dead", "remove", "--all"]).await;
    assert_eq!(rest["removed"].as_array().unwrap().len(), 2, "{rest}");
    assert!(docket.dead_letters().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_retention_of_nothing_is_refused() {
    for (kept, age) in [(0, Duration::from_secs(3600)), (5, Duration::from_secs(1))] {
        let refused = Docket::connect("memory://").dead_letters(kept, age).await;
        assert!(
            matches!(&refused, Err(docket::Error::Config(message)) if message.contains("dead_letters")),
            "{refused:?}"
        );
    }
}
