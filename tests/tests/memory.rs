//! The behaviour suite on the memory backend (`memory://`).

mod behaviour;
use tests::redis_server::unique_name;

/// A fresh, empty memory docket.
async fn open() -> docket::Docket {
    docket::Docket::connect("memory://")
        .name(unique_name("behaviour-memory"))
        .await
        .expect("open a memory docket")
}

behaviour::behaviour_suite!(open);
