use std::rc::Rc;

#[docket::task]
async fn scan_copyright(track_id: i64) {
    let shared = Rc::new(track_id);
    tokio::task::yield_now().await;
    let _ = shared;
}

fn main() {}
