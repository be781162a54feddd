//! `resetdesk signer`: the process that holds the factory master secret and the signing
//! keys and answers only the desk, over a Unix socket, under its own rules
//! (docs/SIGNER.md); `resetdesk signer audit verify` checks its log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::server::{init_logging, runtime};
use super::{CliError, CliResult};
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::crypto::KeyStore;
use crate::signer::{Ledger, Policy, Service, SigningKeySource};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SignerArgs {
    #[command(subcommand)]
    command: Option<SignerCommand>,
    /// The Unix socket to answer the desk on (`signer_url = "unix:PATH"` in the desk's
    /// settings).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// The signer's own database: what it answered, and its log [default:
    /// signer.sqlite in the keys directory].
    #[arg(long)]
    db: Option<PathBuf>,
    /// The user `serve` runs as, by uid or name (/etc/passwd): the only one answered.
    /// Another user than the signer's in a deployment.
    #[arg(long)]
    desk_uid: Option<String>,
    /// Instead of a socket: the address to answer on over TLS, for a desk on another
    /// host (`signer_url = "https://HOST:PORT"`), with --tls-cert, --tls-key and
    /// --client-ca.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// The signer's certificate chain (PEM), for --listen.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// The signer's private key (PEM), for --listen.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// The CA whose certificates are the desk's (PEM, a CA for this alone), for --listen.
    #[arg(long)]
    client_ca: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum SignerCommand {
    /// The signer's own log.
    #[command(subcommand)]
    Audit(SignerAuditCommand),
}

#[derive(Debug, Subcommand)]
enum SignerAuditCommand {
    /// Check the log's hash chain: every entry as written, none missing before the last.
    Verify {
        /// The signer's database [default: signer.sqlite in the keys directory].
        #[arg(long)]
        db: Option<PathBuf>,
    },
}

/// Where the signer answers the desk.
enum Listening {
    /// A Unix socket on the desk's host, answering the desk's uid only.
    Socket { path: PathBuf, desk_uid: u32 },
    /// TCP with TLS, answering clients with a certificate of the client CA only.
    Tls {
        address: std::net::SocketAddr,
        config: Arc<rustls::ServerConfig>,
    },
}

fn listening(args: &SignerArgs) -> Result<Listening, CliError> {
    match (&args.socket, &args.listen) {
        (Some(path), None) => {
            let Some(desk_user) = &args.desk_uid else {
                return Err(CliError::new(
                    "give the desk's user: resetdesk signer --desk-uid USER (the user serve runs as, another than the signer's)",
                ));
            };
            Ok(Listening::Socket {
                path: path.clone(),
                desk_uid: uid_of(desk_user)?,
            })
        }
        (None, Some(address)) => {
            let (Some(cert), Some(key), Some(ca)) =
                (&args.tls_cert, &args.tls_key, &args.client_ca)
            else {
                return Err(CliError::new(
                    "--listen takes TLS with client certificates: give --tls-cert, --tls-key and --client-ca",
                ));
            };
            crate::startup::install_tls_provider();
            let config = crate::signer::server_config(cert, key, ca).map_err(CliError::new)?;
            Ok(Listening::Tls {
                address: *address,
                config,
            })
        }
        (Some(_), Some(_)) => Err(CliError::new("give --socket or --listen, not both")),
        (None, None) => Err(CliError::new(
            "give the socket to listen on (resetdesk signer --socket PATH --desk-uid USER), or --listen HOST:PORT with TLS",
        )),
    }
}

/// Exit status of a PIN the token refused (sysexits' EX_CONFIG): the unit does not
/// restart into another try, which would lock a real HSM's PIN.
pub const EX_CONFIG: u8 = 78;

/// The signing key in a PKCS#11 token (`signing_key`), made there on first use; the
/// keyring names it as the active key (`keys export-public`, the desk's registry).
fn token_key(
    settings: &Settings,
    uri: &str,
    keys: &KeyStore,
) -> Result<SigningKeySource, CliError> {
    use crate::crypto::KeyStatus;
    use crate::crypto::pkcs11::{TokenError, TokenKeyUri, TokenSigningKey};
    let uri = TokenKeyUri::parse(uri)?;
    let module = settings.signer.pkcs11_module.as_ref().ok_or_else(|| {
        CliError::new("signing_key names a PKCS#11 token: set pkcs11_module to its module's path")
    })?;
    let pin = settings.signer.pkcs11_pin.as_ref().ok_or_else(|| {
        CliError::new("signing_key names a PKCS#11 token: set its user PIN in RESETDESK_PKCS11_PIN")
    })?;
    let (key, created) =
        TokenSigningKey::open_or_create(module, &uri, pin.expose()).map_err(|e| match e {
            // Not restarted into another try (RestartPreventExitStatus in the unit).
            TokenError::Pin | TokenError::PinAtRisk => {
                CliError::with_code(e.to_string(), EX_CONFIG)
            }
            other => CliError::from(other),
        })?;
    if created {
        tracing::info!(key_id = %key.id(), token = %uri.token, "made the signing key in the token");
    }
    if keys.ensure_initialized_with_token_key(
        key.public_key(),
        crate::clock::Clock::now(&SystemClock),
    )? {
        tracing::info!(dir = %keys.dir().display(), "created the factory master secret (first start): back this directory up");
    }
    match keys.status_of(key.id())? {
        Some(KeyStatus::Active) => {}
        Some(KeyStatus::Retired) => {
            return Err(CliError::new(format!(
                "the token's key {} is retired in the keyring: it signs nothing more",
                key.id()
            )));
        }
        _ => {
            // Moving a signer from a key file to a token key needs the desk to record
            // the new key, as `keys rotate` does: not built yet (docs/SIGNER.md).
            return Err(CliError::new(format!(
                "the keys directory's active signing key is not the token's ({}): this signer's keys were made with a key file; moving them to a token is not supported yet",
                key.id()
            )));
        }
    }
    tracing::info!(key_id = %key.id(), token = %uri.token, "signing in the token");
    Ok(SigningKeySource::Token(key))
}

/// A uid given as a number, or a user name looked up in /etc/passwd (system users are
/// there; the unit files name the desk's user).
fn uid_of(user: &str) -> Result<u32, CliError> {
    if let Ok(uid) = user.parse::<u32>() {
        return Ok(uid);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| CliError::new(format!("cannot read /etc/passwd to find user {user}: {e}")))?;
    passwd
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid = fields.nth(1)?.parse::<u32>().ok()?;
            (name == user).then_some(uid)
        })
        .next()
        .ok_or_else(|| CliError::new(format!("--desk-uid: no user {user} in /etc/passwd")))
}

/// SIGTERM (systemd, docker stop) or SIGINT (Ctrl-C).
async fn stop_requested() -> Result<(), CliError> {
    use tokio::signal::unix::{SignalKind, signal};
    let cannot = |e: std::io::Error| CliError::new(format!("cannot watch for signals: {e}"));
    let mut terminate = signal(SignalKind::terminate()).map_err(cannot)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(cannot)?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}

fn database(db: Option<&PathBuf>, keys_dir: &Path) -> PathBuf {
    db.cloned()
        .unwrap_or_else(|| keys_dir.join("signer.sqlite"))
}

pub fn run(args: &SignerArgs, settings: Settings) -> CliResult {
    let keys_dir = settings.storage.keys_dir.clone();
    match &args.command {
        Some(SignerCommand::Audit(SignerAuditCommand::Verify { db })) => {
            runtime()?.block_on(async {
                let path = database(db.as_ref(), &keys_dir);
                if !path.is_file() {
                    return Err(CliError::new(format!(
                        "no signer database at {}: give its path with --db",
                        path.display()
                    )));
                }
                let ledger = Ledger::open(&path).await?;
                let entries = ledger.verify().await?;
                println!("the signer's log holds: {entries} entries, chained as written");
                Ok(())
            })
        }
        None => {
            let listening = listening(args)?;
            let own_uid = rustix::process::getuid().as_raw();
            let db = database(args.db.as_ref(), &keys_dir);
            init_logging();
            if let Listening::Socket { desk_uid, .. } = &listening
                && *desk_uid == own_uid
            {
                // Tests and trials run both as one user; a deployment must not: the desk
                // could then read the signer's keys or trace its process.
                tracing::warn!(
                    desk_uid = *desk_uid,
                    "the desk runs as the signer's own user: it can read the signer's keys, which defeats the separation (fine for a trial, not for a deployment)"
                );
            }
            runtime()?.block_on(async {
                let keys = KeyStore::new(&keys_dir);
                // Zero set-up, as `serve` alone: the first start makes the keys (in token
                // mode, the signing key in the token and no key file). The desk records
                // their ids at its next start and refuses a signer whose keys are not the
                // ones it recorded.
                if settings.signer.signing_key.is_none()
                    && keys.ensure_initialized(crate::clock::Clock::now(&SystemClock))?
                {
                    tracing::info!(dir = %keys_dir.display(), "created the factory master secret and a signing key (first start): back this directory up");
                }
                let policy = Policy {
                    answers_per_hour: settings.signer.max_answers_per_hour,
                    answers_per_serial_per_day: settings.signer.max_answers_per_serial_per_day,
                    max_skew_secs: settings.intake.max_clock_skew_secs,
                };
                let signing = match &settings.signer.signing_key {
                    None => SigningKeySource::KeyFiles,
                    Some(uri) => token_key(&settings, uri, &keys)?,
                };
                let ledger = Ledger::open(&db).await?;
                let service = Arc::new(Service::new(
                    keys,
                    signing,
                    ledger,
                    policy,
                    Arc::new(SystemClock),
                )?);
                let (stop, stopped) = tokio::sync::watch::channel(false);
                let mut serving = match listening {
                    Listening::Socket { path, desk_uid } => tokio::spawn(async move {
                        crate::signer::serve(&path, desk_uid, service, stopped).await
                    }),
                    Listening::Tls { address, config } => {
                        let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
                            CliError::new(format!("cannot listen on {address}: {e}"))
                        })?;
                        tokio::spawn(crate::signer::serve_tls(listener, config, service, stopped))
                    }
                };
                // The socket ending on its own is the signer failing: exit, and be
                // restarted (systemd, compose), rather than live on answering nobody.
                tokio::select! {
                    ended = &mut serving => {
                        let why = match ended {
                            Ok(Ok(())) => "it stopped".to_owned(),
                            Ok(Err(error)) => error.to_string(),
                            Err(error) => error.to_string(),
                        };
                        return Err(CliError::new(format!("the signer's socket failed: {why}")));
                    }
                    stopped = stop_requested() => stopped?,
                }
                let _ = stop.send(true);
                serving
                    .await
                    .map_err(|e| CliError::new(format!("the signer stopped: {e}")))??;
                Ok(())
            })
        }
    }
}
