// 31 days is one day over the longest cooldown; `"30d"` compiles (`pass/cooldown.rs`).
#[docket::task(cooldown(customer_id) = "31d")]
async fn send_reminder(customer_id: u64) {
    let _ = customer_id;
}

fn main() {}
