#[docket::task(cooldown = "0s")]
async fn send_reminder(customer_id: u64) {
    let _ = customer_id;
}

fn main() {}
