#[docket::task]
async fn scan_copyright<T: Send>(track_id: T) {
    let _ = track_id;
}

fn main() {}
