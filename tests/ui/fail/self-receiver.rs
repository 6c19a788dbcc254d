struct Scanner;

impl Scanner {
    #[docket::task]
    async fn scan_copyright(&self, track_id: i64) {
        let _ = track_id;
    }
}

fn main() {}
