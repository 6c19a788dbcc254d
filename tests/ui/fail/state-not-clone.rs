struct Db;

#[docket::task]
async fn scan_copyright(track_id: i64, db: docket::State<Db>) {
    let _ = (track_id, db);
}

fn main() {}
