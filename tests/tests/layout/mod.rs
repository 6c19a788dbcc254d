//! The stored layout of a docket spread over partitions (`Connect::partitions`), for the test
//! files that look at one partition's keys.

use tests::redis_server::{RedisServer, Reply};

/// The hash tags of the docket `name`'s stored layout, partition 0's first.
pub(crate) fn layout(server: &RedisServer, name: &str) -> Vec<String> {
    let Reply::Bulk(json) = server.command(&["GET", &format!("{{{name}}}:layout")]) else {
        panic!("the docket has a stored layout");
    };
    let layout: serde_json::Value = serde_json::from_str(&json).unwrap();
    layout["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tag| tag.as_str().unwrap().to_owned())
        .collect()
}
