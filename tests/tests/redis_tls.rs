//! The behaviour suite over TLS (`rediss://`), as a least-privilege ACL user: each test on a
//! private redis-server with a certificate from a private CA, which the docket is told to trust.

mod behaviour;
use tests::redis_server::{Certs, LEAST_PRIVILEGE, RedisServer, unique_name};

/// Everything a producer and a worker need ([`LEAST_PRIVILEGE`]), on the keys of dockets named
/// `behaviour-tls-…` only.
fn acl() -> Vec<&'static str> {
    let mut command = vec![
        "ACL",
        "SETUSER",
        "docket",
        "on",
        ">s3cret",
        "resetkeys",
        "~{behaviour-tls-*",
        "resetchannels",
        "&{behaviour-tls-*",
        "-@all",
    ];
    command.extend_from_slice(LEAST_PRIVILEGE);
    command
}

async fn open() -> (docket::Docket, RedisServer) {
    let certs = Certs::get();
    let server = RedisServer::start_tls(certs);
    server.command(&acl());
    let docket = docket::Docket::connect(server.tls_url("docket", "s3cret"))
        .name(unique_name("behaviour-tls"))
        .tls_ca_pem(certs.ca_pem())
        .await
        .expect("open a Redis docket over TLS");
    (docket, server)
}

behaviour::behaviour_suite!(open);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_outside_the_acl_are_refused_not_hidden() {
    let certs = Certs::get();
    let server = RedisServer::start_tls(certs);
    server.command(&acl());
    let docket = docket::Docket::connect(server.tls_url("docket", "s3cret"))
        .name("elsewhere")
        .tls_ca_pem(certs.ca_pem())
        .await
        .unwrap();
    let error = docket.snapshot().await.unwrap_err();
    assert!(!error.is_unavailable(), "{error:?}");
    let message = format!("{error:?}").to_lowercase();
    assert!(message.contains("noperm"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_unknown_ca_is_rejected() {
    let server = RedisServer::start_tls(Certs::get());
    let docket = docket::Docket::connect(server.tls_url("default", "x"))
        .name(unique_name("behaviour-tls"))
        .await
        .unwrap();
    let error = docket.snapshot().await.unwrap_err();
    let message = format!("{error:?}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");
}
