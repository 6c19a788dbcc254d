#[docket::task(every = "1h", tz = "Europe/Paris")]
async fn sweep() {}

fn main() {}
