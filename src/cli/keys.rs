use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::{CliError, CliResult, write_file};
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::{KeyId, KeyStatus, KeyStore};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create the factory master secret and a first signing key (files mode 0600).
    Init,
    /// List signing keys: id, creation time, and which one signs.
    List,
    /// Add a new signing key and make it the one that signs; older keys stay for
    /// verification. Running desks pick it up within 30 seconds, or at once on SIGHUP.
    Rotate,
    /// Withdraw a key that no longer signs: it never signs again and is left out of
    /// export-public (audited).
    Retire {
        /// The key id, as `keys list` shows it.
        #[arg(value_parser = |s: &str| KeyId::parse(s).map_err(|e| format!("{s:?} {e}")))]
        id: KeyId,
    },
    /// Make a new key the one that seals the secrets the database keeps (TOTP seeds),
    /// and re-seal them with it now; older seal keys stay to open what they sealed
    /// (audited). Copy the keys directory to every replica before running it.
    RotateSeal,
    /// Write the public keys (id and key) that firmware builds embed, as JSON.
    ExportPublic {
        /// File to write; standard output when omitted.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `settings` gives the database that rotations and retirements are audited in.
pub fn run(
    command: &KeysCommand,
    keys_dir: &Path,
    clock: &dyn Clock,
    settings: impl FnOnce() -> Result<Settings, CliError>,
) -> CliResult {
    let store = KeyStore::new(keys_dir);
    match command {
        KeysCommand::Init => {
            let entry = store.init(clock.now())?;
            println!(
                "created the factory master secret and signing key {} in {}",
                entry.id(),
                keys_dir.display()
            );
            println!("back up this directory now: without it no device can be answered.");
        }
        KeysCommand::List => {
            println!("{:<18} {:<22} status", "key id", "created");
            for entry in store.entries()? {
                let status = match entry.status {
                    KeyStatus::Active => "active (signs new responses)",
                    KeyStatus::VerifyOnly => "verify-only",
                    KeyStatus::Retired => "retired (not exported)",
                };
                println!(
                    "{:<18} {:<22} {status}",
                    entry.id().as_str(),
                    entry.created_at.to_string()
                );
            }
        }
        KeysCommand::Rotate => {
            let entry = store.rotate(clock.now())?;
            super::server::audit_event(
                settings()?,
                clock,
                "key_rotated",
                &format!("{} now signs", entry.id()),
            )?;
            println!(
                "signing key {} is now active; older keys remain for verification",
                entry.id()
            );
            println!(
                "running desks switch to it within 30 seconds (send SIGHUP to switch at once)"
            );
        }
        KeysCommand::Retire { id } => {
            store.retire(id)?;
            super::server::audit_event(settings()?, clock, "key_retired", id.as_str())?;
            println!("key {id} is retired: it never signs again and is no longer exported");
        }
        KeysCommand::RotateSeal => {
            let id = store.rotate_seal_key()?;
            let sealing =
                super::server::reseal_after_rotation(settings()?, clock, &store.seal_keys()?)?;
            println!(
                "seal key {id} now seals; {} TOTP seed(s) re-sealed with it, {} sealed from clear",
                sealing.resealed, sealing.sealed
            );
            if sealing.failed > 0 {
                return Err(CliError::new(format!(
                    "{} seed(s) could not be opened and were left as they were: \
                     a seal key file is missing from {} (see the log above)",
                    sealing.failed,
                    keys_dir.join("seal").display()
                )));
            }
            println!(
                "running desks read the new key when they meet it; older keys must stay in {}",
                keys_dir.join("seal").display()
            );
        }
        KeysCommand::ExportPublic { out } => {
            let json = store.public_keys()?.to_json();
            match out {
                Some(path) => {
                    write_file(path, json.as_bytes())?;
                    println!("wrote the public keys to {}", path.display());
                }
                None => print!("{json}"),
            }
        }
    }
    Ok(())
}
