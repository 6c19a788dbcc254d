#[docket::task(cron = "0 */5 * * * * 2026")]
async fn nightly_report() {}

fn main() {}
