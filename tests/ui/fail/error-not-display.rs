#[derive(Debug)]
struct ScanError;

#[docket::task]
async fn scan_copyright(track_id: i64) -> Result<(), ScanError> {
    let _ = track_id;
    Err(ScanError)
}

fn main() {}
