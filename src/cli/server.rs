//! `serve`, `migrate` and `user`: the commands that work on the desk's database.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::{CliError, CliResult};
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::{EmailAddress, Role};
use crate::startup::Application;
use crate::store::{self, Store};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a console user; the password is read from standard input.
    Add {
        #[arg(long, value_parser = |s: &str| EmailAddress::parse(s).map_err(|e| format!("e-mail {e}")))]
        email: EmailAddress,
        #[arg(long, value_enum, default_value = "agent")]
        role: Role,
        /// Read the password from standard input (one line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Print a new API token for a user (shown once; stored hashed).
    Token {
        #[arg(long, value_parser = |s: &str| EmailAddress::parse(s).map_err(|e| format!("e-mail {e}")))]
        email: EmailAddress,
        /// What the token is for, shown in listings.
        #[arg(long, default_value = "cli")]
        name: String,
    },
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

/// Exit code of `audit verify` for a broken chain.
const BROKEN_CHAIN: u8 = 3;

pub fn audit(command: &AuditCommand, settings: Settings) -> CliResult {
    runtime()?.block_on(async {
        let store = open_store(&settings).await?;
        match command {
            AuditCommand::Verify { head } => {
                match crate::audit::verify_store(store.as_ref(), head.as_deref()).await? {
                    crate::audit::VerifyOutcome::Intact { entries, head } => {
                        println!("the audit chain is intact: {entries} entries, head {head}");
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
                let mut after = 0;
                loop {
                    let entries = store.audit_entries(after, *since, 1000).await?;
                    for entry in &entries {
                        lines.push_str(
                            &serde_json::to_string(entry)
                                .map_err(|e| CliError::new(e.to_string()))?,
                        );
                        lines.push('\n');
                    }
                    match entries.last() {
                        Some(last) if entries.len() == 1000 => after = last.id,
                        _ => break,
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
        settings.keys_dir = dir.clone();
    }
    Ok(settings)
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Runtime::new()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))
}

fn init_logging() {
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
        tracing::info!(port = app.port, url = %app.desk.settings.public_url, "resetdesk is listening");
        app.run_until_stopped().await.map_err(|e| CliError::new(format!("{e:#}")))
    })
}

async fn open_store(settings: &Settings) -> Result<std::sync::Arc<dyn Store>, CliError> {
    if settings.database_url.is_none() {
        crate::startup::prepare_data_dir(&settings.data_dir)
            .map_err(|e| CliError::new(format!("{e:#}")))?;
    }
    let store = store::connect(&settings.database_url())
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

pub fn user(command: &UserCommand, settings: Settings, clock: &dyn Clock) -> CliResult {
    runtime()?.block_on(async {
        let store = open_store(&settings).await?;
        match command {
            UserCommand::Add { email, role, .. } => {
                let mut password = String::new();
                std::io::stdin()
                    .take(4096)
                    .read_to_string(&mut password)
                    .map_err(|e| {
                        CliError::new(format!("cannot read the password from standard input: {e}"))
                    })?;
                let password = password.lines().next().unwrap_or("").to_owned();
                let hash = crate::auth::hash_password(&password)?;
                store.create_user(email, &hash, *role, clock.now()).await?;
                println!("created {role} {email}");
            }
            UserCommand::Token { email, name } => {
                let user = store.user_by_email(email).await.map_err(|e| match e {
                    store::StoreError::NotFound => {
                        CliError::new(format!("there is no user {email}"))
                    }
                    other => other.into(),
                })?;
                let (plain, hash) = crate::auth::new_api_token();
                store
                    .create_api_token(user.id, &hash, name, clock.now())
                    .await?;
                println!("{plain}");
            }
        }
        Ok(())
    })
}
