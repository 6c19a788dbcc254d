//! Tasks in a module: the generated items sit beside the function, with its visibility.

mod jobs {
    /// Scan an uploaded track.
    #[docket::task(retries = 1)]
    pub(crate) async fn scan_copyright(track_id: i64) {
        let _ = track_id;
    }

    pub mod mail {
        /// Send the welcome mail.
        #[docket::task(name = "mail.welcome")]
        pub async fn send_welcome(user_id: u64) -> Result<(), String> {
            let _ = user_id;
            Ok(())
        }
    }
}

use docket::Task;

fn main() {
    let _ = jobs::ScanCopyright::schedule;
    let _ = jobs::schedule_scan_copyright;
    let _ = jobs::mail::SendWelcome { user_id: 7 };
    assert_eq!(jobs::mail::SendWelcome::NAME, "mail.welcome");
    assert_eq!(jobs::ScanCopyright::NAME, "scan_copyright");
}
