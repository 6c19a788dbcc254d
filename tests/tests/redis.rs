//! The behaviour suite on the Redis backend, each test on a private `redis-server`.

mod behaviour;
use tests::redis_server::{RedisServer, unique_name};

/// A fresh docket on a server of its own, which lives as long as the test.
async fn open() -> (docket::Docket, RedisServer) {
    let server = RedisServer::start();
    let docket = docket::Docket::connect(server.url())
        .name(unique_name("behaviour-redis"))
        .await
        .expect("open a Redis docket");
    (docket, server)
}

behaviour::behaviour_suite!(open);
