//! Runs the real `resetdesk` binary in a scratch directory.

use std::path::PathBuf;
use std::process::{Command, Output};

pub struct Sandbox {
    dir: tempfile::TempDir,
}

/// The outcome of one command, with its text ready for assertions.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "command failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts a refusal with `code` whose message mentions `needle`.
    #[track_caller]
    pub fn refused(self, code: i32, needle: &str) -> Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(needle) || self.stdout.contains(needle),
            "expected {needle:?} in:\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `resetdesk ARGS` with this sandbox's keys directory.
    pub fn run(&self, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_resetdesk"))
            .args(args)
            .current_dir(self.dir.path())
            .env("RESETDESK_KEYS_DIR", self.path("keys"))
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("the resetdesk binary runs");
        Run::from(output)
    }
}
