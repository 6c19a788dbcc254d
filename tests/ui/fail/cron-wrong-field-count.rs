#[docket::task(cron = "0 */5 * * * *")]
async fn nightly_report() {}

fn main() {}
