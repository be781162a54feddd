//! The README's walk-through ("Five minutes with the desk and the reference device"), run
//! as a reader pastes it: each line of its `sh` blocks, in order, into one bash, in an
//! empty directory, ending with the device taking the desk's answer.
//!
//! What the test does that a reader would not: it uses the binary the tests built, not
//! `cargo build --release` (the alias points at it); it gives the desk a free port
//! instead of 8080 (tests run side by side); it fills in the two values a reader copies
//! from the screen (the ticket number the API answered with, and the recorder's key in
//! the approval mail); and since the two `device import` lines are alternatives (the
//! first one uses up the challenge), it puts the device back as it was before the second.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use crate::support::{Sandbox, free_port};

const SECTION: &str = "## Five minutes with the desk and the reference device";

/// The lines of each `sh` block of the README's walk-through, a line continued with `\`
/// joined to the next.
fn walk_through_blocks() -> Vec<Vec<String>> {
    let readme = include_str!("../../README.md");
    let start = readme
        .find(SECTION)
        .expect("the README has its walk-through");
    let rest = &readme[start + SECTION.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```sh" {
            continue;
        }
        let mut block = Vec::new();
        let mut pending = String::new();
        for line in lines.by_ref() {
            if line.trim() == "```" {
                break;
            }
            match line.strip_suffix('\\') {
                Some(continued) => pending.push_str(continued),
                None => {
                    pending.push_str(line);
                    block.push(std::mem::take(&mut pending));
                }
            }
        }
        blocks.push(block);
    }
    blocks
}

/// One bash, fed a line at a time; every line it runs must succeed.
struct Shell {
    child: Child,
    stdin: ChildStdin,
    output: Receiver<String>,
    transcript: Vec<String>,
}

impl Shell {
    fn start(sandbox: &Sandbox, port: u16) -> Self {
        let mut child = Command::new("bash")
            .args(["--noprofile", "--norc"])
            .current_dir(sandbox.path(""))
            // Nothing of the tests' own settings: the desk starts as on a fresh machine.
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", sandbox.path(""))
            .env("RESETDESK_LISTEN", format!("127.0.0.1:{port}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own process group, so the desk it starts in the background goes with it
            // (the desk's label readers, in groups of their own, end with their parent).
            .process_group(0)
            .spawn()
            .expect("bash runs");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, output) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut shell = Self {
            child,
            stdin,
            output,
            transcript: Vec::new(),
        };
        // Aliases as in a terminal; a failing line stops everything; what the commands
        // say on stderr goes into the transcript too.
        shell.send("shopt -s expand_aliases; set -o pipefail; exec 2>&1");
        // curl says a 4xx or 5xx answer only in what it prints; here it also fails the
        // line, so a command the desk refuses fails the test where it is.
        // (A line that says -f itself, as the wait for the desk does, keeps its own way.)
        shell.send(
            "curl() { case \" $* \" in *\" -f\"*|*\" -sf\"*|*\" --fail\"*) command curl \"$@\";; \
             *) command curl --fail-with-body \"$@\";; esac; }",
        );
        shell
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Runs one line and returns what it printed; a line that fails fails the test, with
    /// the whole transcript.
    fn run(&mut self, line: &str) -> String {
        self.transcript.push(format!("$ {line}"));
        self.send(line);
        // On a line of its own, after output that may not end its last line (curl's).
        self.send("printf '\\n__readme_line_done__ %s\\n' \"$?\"");
        let mut printed = Vec::new();
        // One deadline for the whole line: the desk's log keeps arriving meanwhile.
        let deadline = std::time::Instant::now() + Duration::from_secs(180);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(got) = self.output.recv_timeout(left) else {
                panic!(
                    "no end to {line:?} within 180 s:\n{}",
                    self.transcript.join("\n")
                );
            };
            if let Some(code) = got.strip_prefix("__readme_line_done__ ") {
                assert_eq!(
                    code,
                    "0",
                    "the README's line failed: {line}\n{}",
                    self.transcript.join("\n")
                );
                return printed.join("\n");
            }
            if !got.is_empty() {
                self.transcript.push(got.clone());
                printed.push(got);
            }
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        // The background desk and anything else the lines started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

/// The key of `serial`'s device in a mail's text: the end of the line naming it
/// ("DS-7608NI-K2, serial …:  ABCD-EFGH").
fn key_of(mail: &str, serial: &str) -> String {
    mail.lines()
        .find(|line| line.contains(&format!("serial {serial}:")))
        .and_then(|line| line.split_whitespace().last())
        .unwrap_or_else(|| panic!("no key for {serial} in:\n{mail}"))
        .to_owned()
}

#[test]
fn the_readme_walk_through_runs_as_pasted() {
    if Command::new("curl").arg("--version").output().is_err() {
        panic!("the README's walk-through uses curl: install it (apt-get install curl)");
    }
    let sandbox = Sandbox::new();
    let port = free_port();
    let mut shell = Shell::start(&sandbox, port);
    let built = env!("CARGO_BIN_EXE_resetdesk");
    let blocks = walk_through_blocks();
    assert_eq!(blocks.len(), 4, "the walk-through's blocks: {blocks:?}");
    let serial = "DS-7608NI-K2/8P0820231115CCRRJ12345678";
    let mut ticket = None;
    let mut key = None;
    // The acknowledgment after the request, the response after the approval.
    let mut mails_expected = 0;
    for line in blocks.iter().flatten() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut line = line
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
            .replace("cargo build --release && ", "")
            .replace("$PWD/target/release/resetdesk", built);
        if line.starts_with("TICKET=RQ-XXXX-XXXX") {
            let number: &String = ticket.as_ref().expect("the API answered with a ticket");
            line = line.replace("RQ-XXXX-XXXX", number);
        }
        if line.contains("--key XXXX-XXXX") {
            let key: &String = key.as_ref().expect("the approval mail was opened");
            line = line.replace("XXXX-XXXX", key);
            // The other way in, below, gets the device as it was before this one.
            shell.run("cp nvr.json nvr-before-import.json");
        }
        if line.contains("--response reset-response-") {
            shell.run("cp nvr-before-import.json nvr.json");
        }
        if line.contains("mail open") {
            // A reader reads the API's answer before opening the mail: the outbox worker
            // writes it a moment after the answer.
            crate::serve_binary::eml_files(&sandbox.path("data/outbox"), mails_expected);
        }
        let printed = shell.run(&line);
        // The desk in the background logs to the same terminal: its lines are passed over.
        if line.contains("/api/v1/requests") {
            // Its answer is JSON, which a log line may follow on the same line.
            let answer: serde_json::Value = printed
                .find("{\"ticket\"")
                .and_then(|at| {
                    serde_json::Deserializer::from_str(&printed[at..])
                        .into_iter()
                        .next()?
                        .ok()
                })
                .unwrap_or_else(|| panic!("no JSON answer in {printed:?}"));
            ticket = Some(answer["ticket"].as_str().unwrap().to_owned());
            mails_expected += 1;
        }
        if line.contains("/approve") {
            mails_expected += 1;
        }
        if line.contains("mail open") && line.contains("--save-attachments") {
            key = Some(key_of(&printed, serial));
        }
        if line.contains("device import") {
            assert!(
                printed.contains(&format!("{serial}: password set")),
                "{printed}"
            );
        }
    }
    let transcript = shell.transcript.join("\n");
    assert!(ticket.is_some() && key.is_some(), "{transcript}");
    assert_eq!(
        transcript.matches("$ resetdesk device import").count(),
        2,
        "{transcript}"
    );
}
