#[docket::task(every = "5m", cron = "*/5 * * * *")]
async fn sweep() {}

fn main() {}
