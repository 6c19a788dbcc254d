#[docket::task]
struct ScanCopyright {
    track_id: i64,
}

fn main() {}
