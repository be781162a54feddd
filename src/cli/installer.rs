//! `resetdesk installer`: the vendor's registered partners (issue 20), their tokens and
//! their devices. Every change is audited as the command line's (`cli`).

use std::io::Read;
use std::path::PathBuf;

use clap::Subcommand;

use super::server::{CLI_ACTOR, open_store, runtime};
use super::{CliError, CliResult};
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::EmailAddress;
use crate::installers::{self, InstallerError};
use crate::store::DeviceSource;

fn email_arg(raw: &str) -> Result<EmailAddress, String> {
    EmailAddress::parse(raw).map_err(|e| format!("e-mail {e}"))
}

#[derive(Debug, Subcommand)]
pub enum InstallerCommand {
    /// Register an installer (one of the vendor's partners).
    Add {
        #[arg(long, value_parser = email_arg)]
        email: EmailAddress,
        /// The installer's company, as agents and the automatic decisions page show it.
        #[arg(long)]
        company: String,
    },
    /// Print a new token for an installer (scope submit; shown once, stored hashed).
    Token {
        #[arg(long, value_parser = email_arg)]
        email: EmailAddress,
    },
    /// The installer's devices.
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// List the installers.
    List,
    /// Stop answering an installer's requests automatically (they go to agents).
    Suspend {
        #[arg(long, value_parser = email_arg)]
        email: EmailAddress,
        #[arg(long)]
        reason: String,
    },
    /// Answer an installer's requests automatically again.
    Resume {
        #[arg(long, value_parser = email_arg)]
        email: EmailAddress,
    },
}

#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// Register devices from a distributor's sales records: a CSV file whose header row
    /// names a `serial` column (`-` reads standard input). They count at once.
    Import {
        #[arg(long, value_parser = email_arg)]
        email: EmailAddress,
        #[arg(long)]
        file: PathBuf,
    },
    /// Take devices off an installer (a registration made in error, or one that keeps
    /// another installer's devices from their fast track).
    Remove {
        #[arg(long, value_parser = email_arg)]
        email: EmailAddress,
        /// A serial to take off; repeat for several.
        #[arg(long = "serial", required = true)]
        serials: Vec<String>,
    },
    /// List an installer's devices, newest first.
    List {
        #[arg(long, value_parser = email_arg)]
        email: EmailAddress,
    },
}

fn cli_error(error: InstallerError) -> CliError {
    match error {
        InstallerError::Invalid(problems) => CliError::new(problems.join("\n")),
        other => CliError::new(other.to_string()),
    }
}

/// The file's bytes, at most one more than the CSV limit (so a larger one is said so).
fn read_csv(file: &PathBuf) -> Result<Vec<u8>, CliError> {
    let limit = installers::MAX_CSV_BYTES as u64 + 1;
    let mut bytes = Vec::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    read.map_err(|e| CliError::new(format!("cannot read {}: {e}", file.display())))?;
    Ok(bytes)
}

pub fn run(command: &InstallerCommand, settings: Settings, clock: &dyn Clock) -> CliResult {
    // Read before the database is opened: a wrong file changes nothing.
    let imported = match command {
        InstallerCommand::Devices(DevicesCommand::Import { file, .. }) => {
            Some(installers::serials_from_csv(&read_csv(file)?).map_err(|e| {
                CliError::new(format!("{}: {}", file.display(), cli_error(e).message()))
            })?)
        }
        _ => None,
    };
    runtime()?.block_on(async {
        let store = open_store(&settings).await?;
        let store = store.as_ref();
        let now = clock.now();
        match command {
            InstallerCommand::Add { email, company } => {
                installers::add(store, email, company, CLI_ACTOR, now)
                    .await
                    .map_err(cli_error)?;
                println!("registered the installer {email} ({})", company.trim());
            }
            InstallerCommand::Token { email } => {
                let installer = installers::find(store, email).await.map_err(cli_error)?;
                let token = installers::new_token(store, &installer, CLI_ACTOR, now)
                    .await
                    .map_err(cli_error)?;
                println!("{token}");
            }
            InstallerCommand::Devices(DevicesCommand::Import { email, .. }) => {
                let installer = installers::find(store, email).await.map_err(cli_error)?;
                let serials = imported.unwrap_or_default();
                let registered = installers::register(
                    store,
                    &installer,
                    &serials,
                    DeviceSource::Import,
                    CLI_ACTOR,
                    now,
                )
                .await
                .map_err(cli_error)?;
                println!(
                    "{email}: {} device(s) imported, {} already registered",
                    registered.added, registered.already
                );
            }
            InstallerCommand::Devices(DevicesCommand::Remove { email, serials }) => {
                let installer = installers::find(store, email).await.map_err(cli_error)?;
                let serials = installers::serials(
                    serials
                        .iter()
                        .map(|s| (format!("--serial {s}"), s.as_str())),
                )
                .map_err(cli_error)?;
                let removed = store
                    .remove_installer_devices(installer.id, &serials, CLI_ACTOR, now)
                    .await?;
                println!(
                    "{email}: {removed} device(s) removed, {} were not theirs",
                    serials.len() - removed
                );
            }
            InstallerCommand::Devices(DevicesCommand::List { email }) => {
                let installer = installers::find(store, email).await.map_err(cli_error)?;
                for device in store.installer_devices(installer.id, i64::MAX).await? {
                    println!(
                        "{}\t{}\t{}",
                        device.serial,
                        device.source.as_str(),
                        device.registered_at
                    );
                }
            }
            InstallerCommand::List => {
                for installer in store.installers().await? {
                    let state = match &installer.suspended {
                        Some((at, why)) => format!("suspended {at}: {why}"),
                        None => "active".to_owned(),
                    };
                    println!("{}\t{}\t{state}", installer.email, installer.company);
                }
            }
            InstallerCommand::Suspend { email, reason } => {
                let reason = reason.trim();
                if reason.is_empty() || reason.chars().any(char::is_control) {
                    return Err(CliError::new("give a --reason of one line"));
                }
                let installer = installers::find(store, email).await.map_err(cli_error)?;
                store
                    .set_installer_suspended(installer.id, Some(reason), CLI_ACTOR, now)
                    .await?;
                println!("{email}: requests go to agents until `resetdesk installer resume`");
            }
            InstallerCommand::Resume { email } => {
                let installer = installers::find(store, email).await.map_err(cli_error)?;
                store
                    .set_installer_suspended(installer.id, None, CLI_ACTOR, now)
                    .await?;
                println!("{email}: requests can be answered automatically again");
            }
        }
        Ok(())
    })
}
