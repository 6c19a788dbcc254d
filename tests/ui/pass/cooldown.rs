//! A cooldown per task and per argument, the longest one included, becomes the policy the
//! runtime's own builder makes.

use std::time::Duration;

use docket::Task;
use docket::policy::{Cooldown, InvalidCooldown, Policy};

#[docket::task(cooldown = "30s")]
async fn refresh_feed() {}

#[docket::task(cooldown(customer_id) = "30d")]
async fn send_reminder(customer_id: u64) {
    let _ = customer_id;
}

fn main() -> Result<(), InvalidCooldown> {
    let whole = Cooldown::new(Duration::from_secs(30))?;
    assert_eq!(RefreshFeed::policy(), Policy::new().with_cooldown(whole));
    let longest = Cooldown::by("customer_id", Cooldown::MAX_WINDOW)?;
    assert_eq!(longest.window, Duration::from_secs(30 * 24 * 3600));
    assert_eq!(SendReminder::policy(), Policy::new().with_cooldown(longest));
    Ok(())
}
