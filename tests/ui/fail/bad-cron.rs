#[docket::task(cron = "0 25 * * *")]
async fn nightly_report() {}

fn main() {}
