//! A headless Chromium behind a private chromedriver, for the dashboard's browser tests.
//!
//! [`Chromedriver::start`] runs Debian's `chromedriver` on a free loopback port; a test connects
//! its WebDriver client to [`Chromedriver::url`] and asks for a session with
//! [`Chromedriver::chromium_args`]: headless Chromium with a fresh profile, no network of its
//! own (no updates, sync or QUIC), sandbox off (tests run as root in CI). When `chromium` or
//! `chromedriver` is missing, starting panics with how to install them: browser tests fail
//! loudly, they never skip.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis_server::free_port;

/// How to get the browser and its driver, in a failure's message.
const INSTALL: &str = "install Chromium and its WebDriver: `apt-get install chromium chromium-driver` \
                       (Debian), or run scripts/test.sh, which does";

/// A `chromedriver` child process, killed (with the browsers it started) when dropped.
#[derive(Debug)]
pub struct Chromedriver {
    child: Child,
    port: u16,
    chromium: PathBuf,
    profile: PathBuf,
}

impl Chromedriver {
    /// Start `chromedriver` on a free loopback port and wait until it answers.
    pub fn start() -> Chromedriver {
        let chromium = find_chromium().unwrap_or_else(|| panic!("no Chromium found: {INSTALL}"));
        let driver = which("chromedriver").unwrap_or_else(|| panic!("no chromedriver: {INSTALL}"));
        let port = free_port();
        let profile = std::env::temp_dir().join(format!(
            "docket-test-chromium-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&profile).expect("create a Chromium profile directory");
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start chromedriver ({error}): {INSTALL}"));
        let mut driver = Chromedriver {
            child,
            port,
            chromium,
            profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited at start ({status}): {INSTALL}");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen in 20 s"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        driver
    }

    /// The WebDriver endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The Chromium binary the session should run.
    pub fn chromium(&self) -> &Path {
        &self.chromium
    }

    /// The Chromium command-line arguments of a session: headless, a fresh profile, nothing
    /// fetched from the network but what the test asks for.
    pub fn chromium_args(&self) -> Vec<String> {
        [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([format!("--user-data-dir={}", self.profile.display())])
        .collect()
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Debian's real Chromium binary (its `/usr/bin/chromium` is a wrapper script), or whatever
/// `chromium` is on the `PATH`.
fn find_chromium() -> Option<PathBuf> {
    let debian = PathBuf::from("/usr/lib/chromium/chromium");
    if debian.is_file() {
        return Some(debian);
    }
    which("chromium").or_else(|| which("chromium-browser"))
}

/// The first `name` on the `PATH`.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
