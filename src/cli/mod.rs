//! The `resetdesk` command line. Each subcommand parses its arguments into domain
//! types and calls one library function; nothing here decides protocol rules.

mod customer;
mod device;
mod evidence;
mod installer;
mod keys;
mod mail;
mod respond;
mod server;
mod signer;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::clock::{Clock, FixedClock, SystemClock};
use crate::domain::Timestamp;

#[derive(Debug, Parser)]
#[command(
    name = "resetdesk",
    version,
    about = "Camera and NVR password resets: the vendor's desk and a reference device"
)]
pub struct Cli {
    /// Directory holding the factory master secret and the signing keys [default: ./keys].
    #[arg(long, global = true, env = "RESETDESK_KEYS_DIR")]
    keys_dir: Option<PathBuf>,

    /// TOML settings file for `serve`, `migrate` and `user` (RESETDESK_* variables override it).
    #[arg(long, global = true)]
    config: Option<PathBuf>,

    /// Pretend the current time is this RFC 3339 time (simulates a device clock; for tests and demos).
    #[arg(long, global = true, value_parser = parse_time)]
    now: Option<Timestamp>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, rotate and export the vendor's keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// The reference device: provision, export, import, reboot, show, print its label.
    #[command(subcommand)]
    Device(device::DeviceCommand),
    /// Vendor side, offline: answer an export with a signed response file and typed keys.
    Respond(respond::RespondArgs),
    /// Hold the master secret and the signing keys in a process of their own, and answer
    /// only the desk over a Unix socket, under the signer's own rules (docs/SIGNER.md).
    Signer(signer::SignerArgs),
    /// Run the desk: web form, API, agent console and mail worker.
    Serve {
        /// Development defaults: console users need no second factor unless require_2fa says so.
        #[arg(long)]
        dev: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage console users and their API tokens.
    #[command(subcommand)]
    User(server::UserCommand),
    /// Registered installers: add, tokens, devices (import from sales records), suspend.
    #[command(subcommand)]
    Installer(installer::InstallerCommand),
    /// Verify or export the audit log.
    #[command(subcommand)]
    Audit(server::AuditCommand),
    /// Uploaded files: remove the ones no ticket names.
    #[command(subcommand)]
    Blobs(server::BlobsCommand),
    /// Data retention: what decided tickets keep, and for how long (docs/PRIVACY.md).
    #[command(subcommand)]
    Retention(server::RetentionCommand),
    /// A customer's data: erase it on request, or write it all out (docs/PRIVACY.md).
    #[command(subcommand)]
    Customer(customer::CustomerCommand),
    /// What the desk reads off a label photo (the evidence worker runs `evidence read`).
    #[command(subcommand)]
    Evidence(evidence::EvidenceCommand),
    /// Read an e-mail the desk wrote to its outbox directory, and save its attachments.
    #[command(subcommand)]
    Mail(mail::MailCommand),
    /// Take one e-mail (RFC 5322) from standard input, for an MTA's pipe: a new request,
    /// a reply to a ticket, or an answer saying what to fix. Exit 0 taken, 75 try again
    /// later, 65 refused.
    MailIntake,
    /// Write the protocol's test vectors (docs/test-vectors).
    TestVectors {
        /// Directory to write v1.json, v2.json and the QR pictures into.
        #[arg(long)]
        out_dir: PathBuf,
    },
}

fn parse_time(raw: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(raw).map_err(|e| format!("{raw:?} {e}"))
}

/// A failure that the CLI reports: the message for the person, and the exit code.
#[derive(Debug)]
pub struct CliError {
    message: String,
    code: u8,
}

impl CliError {
    /// What the person reads.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 1,
        }
    }

    pub fn with_code(message: impl Into<String>, code: u8) -> Self {
        Self {
            message: message.into(),
            code,
        }
    }
}

impl<E: std::error::Error> From<E> for CliError {
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        Self::new(message)
    }
}

type CliResult = Result<(), CliError>;

impl Cli {
    fn clock(&self) -> Box<dyn Clock> {
        match self.now {
            Some(now) => Box::new(FixedClock(now)),
            None => Box::new(SystemClock),
        }
    }
}

/// Parses the arguments, runs the command and turns the outcome into an exit code.
pub fn main() -> ExitCode {
    crate::startup::install_tls_provider();
    let cli = Cli::parse();
    let clock = cli.clock();
    let keys_dir = cli
        .keys_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("./keys"));
    let settings = || server::settings(cli.config.as_deref(), cli.keys_dir.as_ref());
    let result = match &cli.command {
        Command::Keys(command) => keys::run(command, &keys_dir, clock.as_ref(), settings),
        Command::Device(command) => device::run(command, &keys_dir, clock.as_ref()),
        Command::Respond(args) => respond::run(args, &keys_dir, clock.as_ref()),
        Command::Serve { dev } => settings().and_then(|mut s| {
            s.dev = *dev;
            server::serve(s)
        }),
        Command::Migrate => settings().and_then(server::migrate),
        Command::Signer(args) => settings().and_then(|s| signer::run(args, s)),
        Command::User(command) => settings().and_then(|s| server::user(command, s, clock.as_ref())),
        Command::Installer(command) => {
            settings().and_then(|s| installer::run(command, s, clock.as_ref()))
        }
        Command::Audit(command) => settings().and_then(|s| server::audit(command, s)),
        Command::Blobs(command) => {
            settings().and_then(|s| server::blobs(command, s, clock.as_ref()))
        }
        Command::Retention(command) => {
            settings().and_then(|s| server::retention(command, s, clock.as_ref()))
        }
        Command::Customer(command) => {
            settings().and_then(|s| customer::run(command, s, clock.as_ref()))
        }
        Command::Evidence(command) => evidence::run(command),
        Command::Mail(command) => mail::run(command),
        Command::MailIntake => settings()
            .map_err(|e| CliError::with_code(e.message, mail::EX_TEMPFAIL))
            .and_then(mail::intake),
        Command::TestVectors { out_dir } => write_test_vectors(out_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error.message);
            ExitCode::from(error.code)
        }
    }
}

fn write_test_vectors(out_dir: &Path) -> CliResult {
    use crate::protocol::vectors;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| CliError::new(format!("cannot create {}: {e}", out_dir.display())))?;
    for version in vectors::VERSIONS {
        let sets = vectors::generate(version);
        write_file(
            &out_dir.join(vectors::json_file_name(version)),
            vectors::to_json(&sets).as_bytes(),
        )?;
        for set in &sets {
            let png = crate::protocol::qr::encode_png(&set.reset_string)?;
            write_file(&out_dir.join(vectors::qr_file_name(set)), &png)?;
        }
    }
    println!("wrote test vectors to {}", out_dir.display());
    Ok(())
}

/// Reads a file the user named, refusing anything larger than `max` bytes before reading it.
/// Reads a regular file of at most `max` bytes. The limit holds while reading too: a
/// device or a file in /proc says it holds nothing, and a pipe would block.
fn read_input(path: &Path, max: u64, what: &str) -> Result<Vec<u8>, CliError> {
    use std::io::Read;
    let cannot =
        |e: std::io::Error| CliError::new(format!("cannot read {what} {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(cannot)?;
    let metadata = file.metadata().map_err(cannot)?;
    if !metadata.is_file() {
        return Err(CliError::new(format!(
            "{what} {} is not a regular file",
            path.display()
        )));
    }
    let too_large = |len: u64| {
        CliError::new(format!(
            "{what} {} is {len} bytes; at most {max} are accepted",
            path.display()
        ))
    };
    if metadata.len() > max {
        return Err(too_large(metadata.len()));
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes).map_err(cannot)?;
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

fn write_file(path: &Path, contents: &[u8]) -> CliResult {
    std::fs::write(path, contents)
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))
}
