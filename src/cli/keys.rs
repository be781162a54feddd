use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::{CliError, CliResult, write_file};
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::{KeyId, KeyStatus, KeyStore};
use crate::store::{KeyKind, Store, StoreError};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create the factory master secret and a first signing key (files mode 0600), and
    /// record their ids in the configured database (a fresh install only).
    Init,
    /// List signing keys: id, creation time, and which one signs.
    List,
    /// Add a new signing key and make it the one that signs; older keys stay for
    /// verification. Running desks pick it up within 30 seconds, or at once on SIGHUP.
    /// Recorded and audited in the desk's database, which must be reachable.
    Rotate,
    /// Withdraw a verify-only key: marked retired in the desk's database (audited), which
    /// every replica reads before signing, and left out of export-public.
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

/// `settings` gives the desk's database: key ids are recorded there and rotations and
/// retirements audited there. Every command that changes the keys checks the database
/// first, so it never changes keys it cannot record.
pub fn run(
    command: &KeysCommand,
    keys_dir: &Path,
    clock: &dyn Clock,
    settings: impl FnOnce() -> Result<Settings, CliError>,
) -> CliResult {
    let store = KeyStore::new(keys_dir);
    match command {
        KeysCommand::Init => {
            // The existing-keys refusal first: it needs no database.
            if store.is_initialized()? {
                return Err(crate::crypto::KeyStoreError::AlreadyInitialized {
                    dir: keys_dir.to_owned(),
                }
                .into());
            }
            let settings = settings()?;
            let place = database_place(&settings);
            super::server::runtime()?.block_on(async {
                let database = super::server::open_store(&settings).await?;
                crate::key_registry::check_at_start(database.as_ref(), &store, clock.now())
                    .await
                    .map_err(|e| CliError::new(format!("{e:#}")))
            })?;
            let entry = store.entries()?.remove(0);
            println!(
                "created the factory master secret and signing key {} in {}",
                entry.id(),
                keys_dir.display()
            );
            println!("recorded their ids (never the keys) in the database {place}");
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
            let settings = settings()?;
            let in_token = settings.signer.signing_key.clone();
            let desk = DeskDatabase::open(settings)?;
            // Recorded (and audited) before the keyring makes it active: no replica meets
            // an active key the database does not know, and a failure changes nothing.
            let record = |entry: &crate::crypto::KeyEntry| {
                desk.record(
                    clock,
                    KeyKind::Signing,
                    entry.id().as_str(),
                    "key_rotated",
                    &format!("{} now signs", entry.id()),
                )
            };
            let entry = match &in_token {
                None => store.rotate_recorded(clock.now(), record)?,
                Some(uri) => rotate_in_token(&store, &desk.settings, uri, clock, record)?,
            };
            println!(
                "signing key {} is now active; older keys remain for verification (audited in {})",
                entry.id(),
                desk.place
            );
            println!(
                "running desks switch to it within 30 seconds (send SIGHUP to switch at once)"
            );
        }
        KeysCommand::Retire { id } => {
            let desk = DeskDatabase::open(settings()?)?;
            match store.entries()?.iter().find(|e| e.id() == id) {
                None => return Err(crate::crypto::KeyStoreError::UnknownKey(id.clone()).into()),
                Some(entry) if entry.status == KeyStatus::Active => {
                    return Err(crate::crypto::KeyStoreError::RetireActive(id.clone()).into());
                }
                Some(_) => {}
            }
            // The database first: that is where every replica reads the status before
            // signing, so from this moment no replica signs with the key.
            desk.retire(clock, id)?;
            store.retire(id)?;
            println!(
                "key {id} is retired in {}: every replica refuses to sign with it from now on, \
                 and it is no longer exported",
                desk.place
            );
        }
        KeysCommand::RotateSeal => {
            let desk = DeskDatabase::open(settings()?)?;
            let id = store
                .rotate_seal_key_recorded(|id| desk.register(clock, KeyKind::Seal, id.as_str()))?;
            let sealing =
                super::server::reseal_after_rotation(desk.settings, clock, &store.seal_keys()?)?;
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

/// `keys rotate` with `signing_key` set: the new key is made in the token (whatever the
/// old one was, so this also moves a signer from a key file into a token), recorded,
/// then named active in the keyring. A key that could not be recorded is removed from
/// the token again.
fn rotate_in_token(
    store: &KeyStore,
    settings: &Settings,
    uri: &str,
    clock: &dyn Clock,
    record: impl FnOnce(&crate::crypto::KeyEntry) -> CliResult,
) -> Result<crate::crypto::KeyEntry, CliError> {
    use crate::crypto::pkcs11::{TokenKeyUri, TokenSigningKey};
    let uri = TokenKeyUri::parse(uri)?;
    // The keyring first: a keys directory that cannot be rotated leaves nothing in the token.
    store.active_entry()?;
    let token = super::signer::open_token(settings, &uri.token)?;
    let key = TokenSigningKey::generate(&token, &uri.object).map_err(super::signer::token_error)?;
    // Removed again only when the desk did not record it: a key the database names (the
    // keyring's write failing after) stays, as a key file would.
    let recorded = std::cell::Cell::new(false);
    let rotated = store.rotate_to_recorded(key.public_key(), clock.now(), |entry| {
        record(entry)?;
        recorded.set(true);
        Ok(())
    });
    match rotated {
        Ok(entry) => {
            println!(
                "made signing key {} in the token {:?} (label {:?}); it never leaves it",
                entry.id(),
                uri.token,
                uri.object
            );
            Ok(entry)
        }
        Err(error) => {
            if !recorded.get()
                && let Err(cleanup) = key.destroy()
            {
                tracing::error!(error = %cleanup, "cannot remove the unrecorded key from the token");
            }
            Err(error)
        }
    }
}

/// Where the database is, for messages: the SQLite file, or the PostgreSQL server and
/// database without credentials.
fn database_place(settings: &Settings) -> String {
    let url = settings.storage.database_url();
    match url::Url::parse(&url) {
        Ok(parsed) if parsed.scheme().starts_with("postgres") => format!(
            "postgres://{}{}{}",
            parsed.host_str().unwrap_or(""),
            parsed.port().map(|p| format!(":{p}")).unwrap_or_default(),
            parsed.path()
        ),
        _ => url
            .strip_prefix("sqlite://")
            .map_or_else(|| url.clone(), str::to_owned),
    }
}

/// The desk's own database, proven so: reachable, migrated, and holding the desk's
/// tickets or its keys' ids. A key command never creates a database of its own to
/// audit into, so an operator's shell without `RESETDESK_DATABASE_URL` cannot leave the
/// audit entry in a stray `./data/resetdesk.db`.
struct DeskDatabase {
    runtime: tokio::runtime::Runtime,
    store: std::sync::Arc<dyn Store>,
    settings: Settings,
    place: String,
}

impl DeskDatabase {
    fn open(settings: Settings) -> Result<Self, CliError> {
        let place = database_place(&settings);
        if settings.storage.database_url.is_none() {
            let file = settings.storage.data_dir.join("resetdesk.db");
            let file = std::path::absolute(&file).unwrap_or(file);
            if !file.exists() {
                return Err(CliError::new(format!(
                    "no desk database: RESETDESK_DATABASE_URL is not set and {} does not \
                     exist. Key commands record and audit key changes in the desk's \
                     database: set RESETDESK_DATABASE_URL (or database_url) to it",
                    file.display()
                )));
            }
        }
        let runtime = super::server::runtime()?;
        let store = runtime.block_on(async {
            let store = crate::store::connect(&settings.storage.database_url())
                .await
                .map_err(|e| CliError::new(format!("cannot reach the database {place}: {e}")))?;
            let not_desk = || {
                CliError::new(format!(
                    "the database {place} is not the desk's: it holds neither tickets nor the \
                     desk's key ids (run `resetdesk migrate` first if the desk was upgraded, \
                     or set RESETDESK_DATABASE_URL to the desk's database)"
                ))
            };
            match store.migrations_applied().await {
                Ok(true) => {}
                Ok(false) => {
                    return Err(CliError::new(format!(
                        "the database {place} is not migrated to this version: run `resetdesk migrate` first"
                    )));
                }
                Err(_) => return Err(not_desk()),
            }
            if !store.holds_tickets().await? && store.registered_keys().await?.is_empty() {
                return Err(not_desk());
            }
            Ok(store)
        })?;
        Ok(Self {
            runtime,
            store,
            settings,
            place,
        })
    }

    fn register(&self, clock: &dyn Clock, kind: KeyKind, id: &str) -> CliResult {
        self.runtime
            .block_on(self.store.register_key(kind, id, clock.now()))?;
        Ok(())
    }

    /// Records a new key and audits its creation.
    fn record(
        &self,
        clock: &dyn Clock,
        kind: KeyKind,
        id: &str,
        action: &str,
        detail: &str,
    ) -> CliResult {
        self.runtime.block_on(async {
            let now = clock.now();
            self.store.register_key(kind, id, now).await?;
            self.store
                .audit(now, super::server::CLI_ACTOR, action, detail)
                .await?;
            Ok(())
        })
    }

    /// Marks a signing key retired (audited); a key from before the registry is
    /// recorded first.
    fn retire(&self, clock: &dyn Clock, id: &KeyId) -> CliResult {
        self.runtime.block_on(async {
            let now = clock.now();
            let retired = self
                .store
                .retire_key(id.as_str(), super::server::CLI_ACTOR, now)
                .await;
            if let Err(StoreError::NotFound) = retired {
                self.store
                    .register_key(KeyKind::Signing, id.as_str(), now)
                    .await?;
                self.store
                    .retire_key(id.as_str(), super::server::CLI_ACTOR, now)
                    .await?;
            } else {
                retired?;
            }
            Ok(())
        })
    }
}
