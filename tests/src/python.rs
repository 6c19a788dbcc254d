//! Python for the pydocket interop tests: a venv with a pinned pydocket, made once under the
//! target directory and reused by every later run.
//!
//! The venv is `<target>/tmp/pydocket-venv-<version>` (pass `env!("CARGO_TARGET_TMPDIR")`), made
//! with `python3 -m venv` and `pip install pydocket==<version>` (about 15 s and 80 MB the first
//! time; a finished venv is marked ready and taken as it is afterwards). When `python3`, its
//! `venv` module or pip is missing, the test fails with the install instruction; it never skips.
//! `scripts/test.sh` installs them when missing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

/// How to install what these tests need, for the failure messages.
const INSTALL: &str = "the pydocket interop tests need `python3` with its `venv` module and pip; \
    install them (Debian/Ubuntu: `apt-get install python3 python3-venv python3-pip`, \
    macOS: `brew install python`), or run `bash scripts/test.sh`, which does";

/// A Python virtual environment with one pydocket release installed.
#[derive(Debug, Clone)]
pub struct Venv {
    dir: PathBuf,
    version: String,
}

impl Venv {
    /// The venv with pydocket `version` under `target_tmp`, made (once per run of this process,
    /// and only when no finished one is there) if needed.
    pub fn pydocket(target_tmp: &Path, version: &str) -> Venv {
        // One maker at a time in this process; separate processes make separate directories
        // and the first to finish keeps its own.
        static MAKING: OnceLock<Mutex<()>> = OnceLock::new();
        let _making = MAKING
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = target_tmp.join(format!("pydocket-venv-{version}"));
        let venv = Venv {
            dir: dir.clone(),
            version: version.to_string(),
        };
        if dir.join(".ready").exists() {
            return venv;
        }
        let partial = target_tmp.join(format!(
            "pydocket-venv-{version}.partial-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(target_tmp).expect("create the target's tmp directory");
        let made = match Command::new("python3")
            .args(["-m", "venv"])
            .arg(&partial)
            .output()
        {
            Ok(output) => output,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                panic!("{INSTALL} (`python3` is not on the PATH)")
            }
            Err(error) => panic!("could not run python3: {error}"),
        };
        if !made.status.success() {
            panic!(
                "{INSTALL} (`python3 -m venv` failed: {})",
                String::from_utf8_lossy(&made.stderr).trim()
            );
        }
        let pip = Command::new(partial.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("pydocket=={version}"))
            .output()
            .unwrap_or_else(|error| panic!("{INSTALL} (pip did not run: {error})"));
        if !pip.status.success() {
            panic!(
                "`pip install pydocket=={version}` failed (is the package registry reachable?): {}",
                String::from_utf8_lossy(&pip.stderr).trim()
            );
        }
        std::fs::write(partial.join(".ready"), version).expect("mark the venv ready");
        if std::fs::rename(&partial, &dir).is_err() {
            // Another process finished first; its venv is as good as ours.
            let _ = std::fs::remove_dir_all(&partial);
        }
        assert!(
            dir.join(".ready").exists(),
            "the venv at {dir:?} is not ready"
        );
        venv
    }

    /// The pydocket release installed.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// A command running a program of the venv (`python`, `docket`, `pip`).
    pub fn command(&self, program: &str) -> Command {
        Command::new(self.dir.join("bin").join(program))
    }

    /// Run `script` with the venv's Python, `stdin` as its standard input and `args` as its
    /// `sys.argv[1:]`; its standard output. Panics, with its standard error, when it fails.
    pub fn run(&self, script: &str, args: &[&str], stdin: &[u8]) -> String {
        let output = self.output(script, args, stdin);
        if !output.status.success() {
            panic!(
                "the Python script failed ({}):\n{}\n--- script ---\n{script}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        String::from_utf8(output.stdout).expect("the script printed UTF-8")
    }

    /// Like [`Venv::run`], but returns the whole output, failed or not.
    pub fn output(&self, script: &str, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command("python")
            .arg("-c")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("could not start the venv's python: {error}"));
        let mut input = child.stdin.take().expect("stdin is piped");
        let stdin = stdin.to_vec();
        // Written from a thread, so a script that prints before reading all its input cannot
        // deadlock against us.
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        let output = child
            .wait_with_output()
            .expect("wait for the venv's python");
        let _ = writer.join();
        output
    }
}
