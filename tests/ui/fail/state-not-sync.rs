use std::cell::Cell;

#[docket::task]
async fn scan_copyright(track_id: i64, counter: docket::State<Cell<u32>>) {
    let _ = (track_id, counter);
}

fn main() {}
