//! The behaviour suite on the memory backend (`memory://`).

mod behaviour;

/// A fresh, empty memory docket.
async fn open() -> docket::Docket {
    docket::Docket::connect("memory://")
        .name(behaviour::unique_name("memory"))
        .await
        .expect("open a memory docket")
}

behaviour::behaviour_suite!(open);
