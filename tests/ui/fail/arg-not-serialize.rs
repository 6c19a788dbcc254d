#[derive(Debug, Clone)]
struct Track {
    id: i64,
}

#[docket::task]
async fn scan_copyright(track: Track) {
    let _ = track.id;
}

fn main() {}
