//! The CLI reaches a `rediss://` docket signed by a private CA, named by `--tls-ca-file` or by
//! `DOCKET_TLS_CA_FILE`, as `Docket::from_env` does; without it, the certificate is refused.
//!
//! The environment variable is set on a child process (this same test binary, running one
//! test), never on this one: tests run side by side in one process.

use std::process::{Command, ExitCode};

use tests::redis_server::{Certs, RedisServer, unique_name};

/// Run `docket ARGS snapshot --json`; the exit code and what it printed.
async fn snapshot(args: &[&str]) -> (ExitCode, String) {
    let mut argv = vec!["docket"];
    argv.extend_from_slice(args);
    argv.extend(["--json", "snapshot"]);
    let mut out = Vec::new();
    let code = docket::cli::run_from(argv, &mut out).await;
    (code, String::from_utf8(out).unwrap())
}

fn ca_file() -> String {
    Certs::get().dir.join("ca.crt").display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_trusts_the_ca_its_tls_ca_file_flag_names() {
    let server = RedisServer::start_tls(Certs::get());
    let url = server.tls_url("default", "x");
    let name = unique_name("cli-tls");

    let (code, out) = snapshot(&["--url", &url, "--name", &name]).await;
    assert_eq!(code, ExitCode::FAILURE, "an unknown CA is refused: {out}");

    let ca = ca_file();
    let (code, out) = snapshot(&["--url", &url, "--name", &name, "--tls-ca-file", &ca]).await;
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    assert!(out.contains("\"queued\""), "a snapshot in JSON: {out}");
}

/// Run as a child by the test below, with `DOCKET_URL` and `DOCKET_TLS_CA_FILE` set; does
/// nothing when they are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_snapshot_from_the_environment() {
    if std::env::var_os("DOCKET_TLS_CA_FILE").is_none() {
        return;
    }
    let (code, out) = snapshot(&[]).await;
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    assert!(out.contains("\"queued\""), "a snapshot in JSON: {out}");
}

#[test]
fn the_cli_trusts_the_ca_docket_tls_ca_file_names() {
    let server = RedisServer::start_tls(Certs::get());
    let child = |ca: Option<String>| {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "--exact",
                "child_snapshot_from_the_environment",
                "--nocapture",
            ])
            .env("DOCKET_URL", server.tls_url("default", "x"))
            .env("DOCKET_NAME", unique_name("cli-tls-env"))
            .env("DOCKET_TLS_CA_FILE", ca.unwrap_or_default());
        command.output().unwrap()
    };

    let trusted = child(Some(ca_file()));
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    // The same child with the variable empty: the system's roots, which refuse the test CA.
    let untrusted = child(None);
    assert!(!untrusted.status.success(), "an unknown CA is refused");
}
