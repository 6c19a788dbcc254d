//! The URL forms `DOCKET_URL` and `Docket::connect` take besides `redis://`: a Unix socket
//! (`unix:///path/to/redis.sock`), and a cluster (`redis+cluster://`, in `redis_cluster.rs`).

use docket::Docket;
use tests::probe::Probe;
use tests::redis_server::{RedisServer, unique_name};

#[docket::task]
async fn note(probe: String) {
    Probe::find(&probe).start("ran").finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docket_on_a_unix_socket_runs_its_tasks() {
    let dir = std::env::temp_dir().join(unique_name("docket-unix"));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("redis.sock");
    let socket_arg = socket.display().to_string();
    let _server = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--unixsocket",
        &socket_arg,
        "--unixsocketperm",
        "700",
    ]);
    let docket = Docket::connect(format!("unix://{}", socket.display()))
        .name(unique_name("unix"))
        .in_process_fallback(false)
        .await
        .unwrap();
    let probe = Probe::new();
    let scheduled = Note::schedule(probe.id()).on(&docket).await.unwrap();
    assert_eq!(scheduled.placement(), docket::Placement::Queue);
    tests::finish(&docket).await;
    assert_eq!(probe.finishes(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_cluster_url_without_a_node_is_refused_when_opened() {
    let error = Docket::connect("redis+cluster://")
        .name("urls")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("names no cluster node"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unknown_scheme_names_every_scheme_docket_takes() {
    let error = Docket::connect("amqp://127.0.0.1").await.unwrap_err();
    let message = error.to_string();
    for scheme in [
        "redis://",
        "rediss://",
        "unix://",
        "redis+cluster://",
        "memory://",
    ] {
        assert!(message.contains(scheme), "{message}");
    }
}
