//! `serve`, `migrate` and `user`: the commands that work on the desk's database.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::{CliError, CliResult};
use crate::auth::users::{self, Administrator};
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::{EmailAddress, Role, Roles};
use crate::startup::Application;
use crate::store::{self, Store};

fn email_arg(raw: &str) -> Result<EmailAddress, String> {
    EmailAddress::parse(raw).map_err(|e| format!("e-mail {e}"))
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a console user; the password is read from standard input.
    Add {
        #[arg(long, value_parser = email_arg)]
        email: EmailAddress,
        /// agent, supervisor or admin; repeat for several (e.g. --role admin --role supervisor).
        #[arg(long = "role", value_enum, default_values_t = [Role::Agent])]
        roles: Vec<Role>,
        /// Read the password from standard input (one line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Print a new API token for a user (shown once; stored hashed).
    Token {
        #[arg(long, value_parser = email_arg)]
        email: EmailAddress,
        /// What the token is for, shown in listings.
        #[arg(long, default_value = "cli")]
        name: String,
        /// read (list and show tickets) or decide (also claim, approve, reject).
        #[arg(long, default_value = "decide", value_parser = ["read", "decide"])]
        scope: String,
        /// Days until the token stops working; none means it never expires.
        #[arg(long)]
        expires_days: Option<u32>,
    },
    /// Stop a user from signing in, end the user's sessions and revoke the user's API tokens.
    Disable {
        #[arg(long, value_parser = email_arg)]
        email: EmailAddress,
    },
    /// Let a disabled user sign in again (the API tokens revoked by disabling stay revoked).
    Enable {
        #[arg(long, value_parser = email_arg)]
        email: EmailAddress,
    },
    /// Replace a user's roles.
    SetRole {
        #[arg(long, value_parser = email_arg)]
        email: EmailAddress,
        #[arg(long = "role", value_enum, required = true)]
        roles: Vec<Role>,
    },
    /// Set a new password (read from standard input) and end the user's sessions.
    ResetPassword {
        #[arg(long, value_parser = email_arg)]
        email: EmailAddress,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users, their roles and whether they are disabled.
    List,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the audit log's hash chain and name the first broken entry.
    Verify {
        /// A chain head published earlier (from a previous verify or the admin page):
        /// also detects entries cut from the end.
        #[arg(long)]
        head: Option<String>,
    },
    /// Write audit entries as JSON lines.
    Export {
        /// Only entries at or after this RFC 3339 time.
        #[arg(long, value_parser = |s: &str| crate::domain::Timestamp::parse_rfc3339(s).map_err(|e| format!("{s:?} {e}")))]
        since: Option<crate::domain::Timestamp>,
        /// File to write; standard output when omitted.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// After `keys rotate-seal`: audits the rotation and re-seals every stored TOTP seed with
/// the new key, in the configured database.
pub fn reseal_after_rotation(
    settings: Settings,
    clock: &dyn Clock,
    keys: &crate::crypto::SealKeys,
) -> Result<crate::auth::totp::Sealing, CliError> {
    runtime()?.block_on(async {
        let store = open_store(&settings).await?;
        let now = clock.now();
        store
            .audit(
                now,
                CLI_ACTOR,
                "seal_key_rotated",
                &format!("{} now seals", keys.current_id()),
            )
            .await?;
        Ok(crate::auth::totp::seal_stored_seeds(store.as_ref(), keys, CLI_ACTOR, now).await?)
    })
}

#[derive(Debug, clap::Subcommand)]
pub enum BlobsCommand {
    /// Remove, once, the uploads no ticket names that are older than
    /// blob_sweep_grace_secs (at the time --now gives), and print them. Takes the same
    /// lease as the replicas' sweeper: while one of them holds it, nothing is done.
    Sweep,
}

pub fn blobs(command: &BlobsCommand, settings: Settings, clock: &dyn Clock) -> CliResult {
    let BlobsCommand::Sweep = command;
    runtime()?.block_on(async {
        let store = open_store(&settings).await?;
        let blobs = crate::blobs::BlobStore::from_settings(&settings)?;
        let lease =
            i64::try_from(settings.storage.blob_sweep_interval_secs.max(60)).unwrap_or(i64::MAX);
        let swept = crate::sweeper::sweep_once(
            store.as_ref(),
            &blobs,
            &crate::sweeper::holder(),
            clock.now(),
            settings.storage.blob_sweep_grace_secs,
            lease,
        )
        .await
        .map_err(|e| {
            CliError::new(format!(
                "the sweep failed: {e}: {:?}",
                std::error::Error::source(&e)
            ))
        })?;
        if !swept.ran {
            println!("another process holds the sweep lease: nothing was done");
            return Ok(());
        }
        for name in &swept.removed {
            println!("removed {name}");
        }
        println!(
            "{} orphaned blob(s) removed; {} younger than the grace period kept",
            swept.removed.len(),
            swept.young
        );
        Ok(())
    })
}

#[derive(Debug, clap::Subcommand)]
pub enum RetentionCommand {
    /// Delete, once, what decided tickets keep no longer (at the time --now gives): the
    /// evidence photo_retention_days after the decision, the customer's name, phone and
    /// company customer_retention_days after; print what was deleted. Takes the same
    /// lease as the replicas' hourly run: while one of them holds it, nothing is done.
    Run,
}

pub fn retention(command: &RetentionCommand, settings: Settings, clock: &dyn Clock) -> CliResult {
    let RetentionCommand::Run = command;
    runtime()?.block_on(async {
        let store = open_store(&settings).await?;
        let blobs = crate::blobs::BlobStore::from_settings(&settings)?;
        let lease = i64::try_from(settings.retention.interval_secs.max(60)).unwrap_or(i64::MAX);
        let removed = crate::retention::run_once(
            store.as_ref(),
            &blobs,
            &settings.retention,
            &crate::sweeper::holder(),
            clock.now(),
            lease,
        )
        .await
        .map_err(|e| CliError::new(format!("data retention failed: {e}")))?;
        if !removed.ran {
            println!("another process holds the retention lease: nothing was done");
            return Ok(());
        }
        for ticket in &removed.evidence {
            println!("{ticket}: label photo, previews and export deleted");
        }
        for ticket in &removed.customers {
            println!("{ticket}: customer's name, phone and company deleted");
        }
        println!(
            "evidence of {} ticket(s) deleted ({} blob(s), {} left to the orphan sweep), older than {} days; customer details of {} ticket(s) deleted, older than {} days",
            removed.evidence.len(),
            removed.blobs,
            removed.blobs_left,
            settings.retention.photo_days,
            removed.customers.len(),
            settings.retention.customer_days
        );
        Ok(())
    })
}

/// Exit code of `audit verify` for a broken chain.
const BROKEN_CHAIN: u8 = 3;

pub fn audit(command: &AuditCommand, settings: Settings) -> CliResult {
    runtime()?.block_on(async {
        let store = open_store(&settings).await?;
        match command {
            AuditCommand::Verify { head } => {
                // The desk secret, where the keys directory holds it, checks the seals
                // of erasure entries; never made here.
                let keys = match settings.signer.url {
                    Some(_) => crate::crypto::KeyStore::desk_only(&settings.storage.keys_dir),
                    None => crate::crypto::KeyStore::new(&settings.storage.keys_dir),
                };
                let secret = match keys.desk_key_ids() {
                    Ok(ids) if ids.desk_secret.is_some() => keys.desk_secret().ok(),
                    _ => None,
                };
                if secret.is_none() {
                    eprintln!(
                        "no desk secret in {}: erasure entries are taken without checking their seals",
                        settings.storage.keys_dir.display()
                    );
                }
                match crate::audit::verify_store(store.as_ref(), head.as_deref(), secret.as_ref())
                    .await?
                {
                    crate::audit::VerifyOutcome::Intact {
                        entries,
                        erased,
                        head,
                    } => {
                        let erased = crate::audit::erased_note(erased);
                        println!(
                            "the audit chain is intact: {entries} entries{erased}, head {head}"
                        );
                        Ok(())
                    }
                    crate::audit::VerifyOutcome::Broken(broken) => Err(CliError::with_code(
                        format!("the audit chain is broken: {broken}"),
                        BROKEN_CHAIN,
                    )),
                }
            }
            AuditCommand::Export { since, out } => {
                let mut lines = String::new();
                let mut pages = crate::audit::pages(store.as_ref(), *since);
                while let Some(entries) = pages.next().await? {
                    for entry in &entries {
                        lines.push_str(
                            &serde_json::to_string(entry)
                                .map_err(|e| CliError::new(e.to_string()))?,
                        );
                        lines.push('\n');
                    }
                }
                match out {
                    Some(path) => std::fs::write(path, lines).map_err(|e| {
                        CliError::new(format!("cannot write {}: {e}", path.display()))
                    })?,
                    None => print!("{lines}"),
                }
                Ok(())
            }
        }
    })
}

pub fn settings(config: Option<&Path>, keys_dir: Option<&PathBuf>) -> Result<Settings, CliError> {
    let mut settings = Settings::load(config)?;
    if let Some(dir) = keys_dir {
        settings.storage.keys_dir = dir.clone();
    }
    Ok(settings)
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Runtime::new()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))
}

pub(super) fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("RESETDESK_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let _ = if std::env::var("RESETDESK_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

pub fn serve(settings: Settings) -> CliResult {
    init_logging();
    runtime()?.block_on(async {
        let app = Application::build(settings)
            .await
            .map_err(|e| CliError::new(format!("{e:#}")))?;
        tracing::info!(port = app.port, url = %app.desk.settings.http.public_url, "resetdesk is listening");
        if matches!(app.desk.store.holds_users().await, Ok(false)) {
            tracing::warn!(
                "no console user yet: make the first with `resetdesk user add --email you@example.com --role admin --role supervisor --role agent --password-stdin` (same settings as serve), then sign in at {}/console",
                app.desk.settings.http.public_url.trim_end_matches('/')
            );
        }
        app.run_until_stopped().await.map_err(|e| CliError::new(format!("{e:#}")))
    })
}

pub(super) async fn open_store(settings: &Settings) -> Result<std::sync::Arc<dyn Store>, CliError> {
    if settings.storage.database_url.is_none() {
        crate::startup::prepare_data_dir(&settings.storage.data_dir)
            .map_err(|e| CliError::new(format!("{e:#}")))?;
    }
    let store = store::connect(&settings.storage.database_url())
        .await
        .map_err(|e| CliError::new(format!("cannot open the database: {e}")))?;
    store
        .migrate()
        .await
        .map_err(|e| CliError::new(format!("cannot apply migrations: {e:?}")))?;
    Ok(store)
}

pub fn migrate(settings: Settings) -> CliResult {
    runtime()?.block_on(async {
        open_store(&settings).await?;
        println!("the database is up to date");
        Ok(())
    })
}

/// The first line of standard input.
fn read_password() -> Result<String, CliError> {
    let mut password = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut password)
        .map_err(|e| CliError::new(format!("cannot read the password from standard input: {e}")))?;
    Ok(password.lines().next().unwrap_or("").to_owned())
}

async fn find_user(
    store: &dyn Store,
    email: &EmailAddress,
) -> Result<crate::store::User, CliError> {
    store.user_by_email(email).await.map_err(|e| match e {
        store::StoreError::NotFound => CliError::new(format!("there is no user {email}")),
        other => other.into(),
    })
}

/// The audit log names the operator's command line as the actor.
pub(super) const CLI_ACTOR: &str = users::COMMAND_LINE_ACTOR;

pub fn user(command: &UserCommand, settings: Settings, clock: &dyn Clock) -> CliResult {
    runtime()?.block_on(async {
        let store = open_store(&settings).await?;
        let now = clock.now();
        let by = Administrator::CommandLine;
        match command {
            UserCommand::Add { email, roles, .. } => {
                let roles =
                    Roles::of(roles).ok_or_else(|| CliError::new("give at least one --role"))?;
                let password = read_password()?;
                users::create(store.as_ref(), by, email, password, roles, now).await?;
                println!("created {email} ({roles})");
            }
            UserCommand::Token {
                email,
                name,
                scope,
                expires_days,
            } => {
                let user = find_user(store.as_ref(), email).await?;
                let (plain, hash) = crate::auth::new_api_token();
                let token = crate::store::NewApiToken {
                    user: user.id,
                    token_hash: &hash,
                    name,
                    scope: crate::store::TokenScope::parse(scope)
                        .unwrap_or(crate::store::TokenScope::Read),
                    expires_at: expires_days.map(|days| now.plus_seconds(i64::from(days) * 86_400)),
                    created_at: now,
                };
                store.create_api_token(&token).await?;
                println!("{plain}");
            }
            UserCommand::Disable { email } => {
                let user = find_user(store.as_ref(), email).await?;
                users::set_disabled(store.as_ref(), by, user.id, true, now).await?;
                println!(
                    "disabled {email}; its sessions are ended and its API tokens revoked (enabling it again does not restore them)"
                );
            }
            UserCommand::Enable { email } => {
                let user = find_user(store.as_ref(), email).await?;
                users::set_disabled(store.as_ref(), by, user.id, false, now).await?;
                println!("enabled {email}; it needs new API tokens (`resetdesk user token`)");
            }
            UserCommand::SetRole { email, roles } => {
                let roles =
                    Roles::of(roles).ok_or_else(|| CliError::new("give at least one --role"))?;
                let user = find_user(store.as_ref(), email).await?;
                users::set_roles(store.as_ref(), by, user.id, roles, now).await?;
                println!("{email} is now {roles}");
            }
            UserCommand::ResetPassword { email, .. } => {
                let user = find_user(store.as_ref(), email).await?;
                let password = read_password()?;
                users::set_password(store.as_ref(), by, user.id, password, now).await?;
                println!("set a new password for {email}; its sessions are ended");
            }
            UserCommand::List => {
                for user in store.users().await? {
                    let state = if user.disabled { "disabled" } else { "active" };
                    let second = if user.totp_secret.is_some() {
                        "2FA"
                    } else {
                        "no 2FA"
                    };
                    println!(
                        "{:<40} {:<28} {state}, {second}",
                        user.email.as_str(),
                        user.roles.to_string()
                    );
                }
            }
        }
        Ok(())
    })
}
