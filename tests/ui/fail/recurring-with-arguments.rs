#[docket::task(every = "1h")]
async fn sweep(ctx: docket::Context, older_than_days: u32) {
    let _ = (ctx, older_than_days);
}

fn main() {}
