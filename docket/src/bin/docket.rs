//! The `docket` command line: inspect and steer a docket. See `docket --help`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    docket::cli::run().await
}
