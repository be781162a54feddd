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
use crate::crypto::pkcs11::{Token, TokenError, TokenKeyUri, TokenMaster, TokenSigningKey};
use crate::signer::{Ledger, MasterSource, Policy, Service, SigningKeySource, TokenKeys};

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
    /// Put the keys directory's factory master secret into a PKCS#11 token (as HKDF's
    /// PRK, sensitive and never extractable), check that the token derives the same
    /// device keys, and record where it is (factory-master.pkcs11). The signer then
    /// derives every device key in the token; move factory-master.key offline.
    ImportMaster {
        /// The token object to hold it: pkcs11:token=LABEL;object=LABEL.
        #[arg(long)]
        into: String,
        /// The signer's database, whose log records the import [default:
        /// signer.sqlite in the keys directory].
        #[arg(long)]
        db: Option<PathBuf>,
    },
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
pub use crate::signer::EX_CONFIG;

/// The token labelled `label`, opened and signed in with the settings' module and PIN.
/// A refused PIN exits with [`EX_CONFIG`], which the unit does not restart into.
pub(super) fn open_token(settings: &Settings, label: &str) -> Result<Arc<Token>, CliError> {
    let module = settings.signer.pkcs11_module.as_ref().ok_or_else(|| {
        CliError::new("a key is in a PKCS#11 token: set pkcs11_module to its module's path")
    })?;
    let pin = settings.signer.pkcs11_pin.as_ref().ok_or_else(|| {
        CliError::new("a key is in a PKCS#11 token: set its user PIN in RESETDESK_PKCS11_PIN")
    })?;
    Token::open(module, label, pin.expose()).map_err(token_error)
}

/// A token's error for the command line: a refused PIN, or one at risk, exits with
/// [`EX_CONFIG`].
pub(super) fn token_error(error: TokenError) -> CliError {
    match error {
        TokenError::Pin | TokenError::PinAtRisk => {
            CliError::with_code(error.to_string(), EX_CONFIG)
        }
        other => CliError::from(other),
    }
}

/// The tokens the signer's keys are in, opened once each (PKCS#11 initialises once per
/// process): the signing key's (`signing_key`) and the master secret's (the keys
/// directory's `factory-master.pkcs11`) must be the same token.
struct Tokens<'a> {
    settings: &'a Settings,
    open: Option<Arc<Token>>,
}

impl Tokens<'_> {
    fn get(&mut self, label: &str) -> Result<Arc<Token>, CliError> {
        match &self.open {
            Some(token) if token.label() == label => Ok(token.clone()),
            Some(token) => Err(CliError::new(format!(
                "the signing key and the master secret must be in one token: they name {:?} and {label:?}",
                token.label()
            ))),
            None => {
                let token = open_token(self.settings, label)?;
                self.open = Some(token.clone());
                Ok(token)
            }
        }
    }
}

/// The signing key in a PKCS#11 token (`signing_key`): the keyring's active key, found
/// in the token by its id; at the first start of an empty keys directory, made there
/// and named in a new keyring (no key file).
fn token_signing(
    uri: &str,
    keys: &KeyStore,
    tokens: &mut Tokens<'_>,
) -> Result<SigningKeySource, CliError> {
    let uri = TokenKeyUri::parse(uri)?;
    let token = tokens.get(&uri.token)?;
    let key = if keys.holds_keys()? {
        let active = keys.active_entry()?;
        match TokenSigningKey::find(&token, &uri.object, active.id())? {
            Some(key) => key,
            None if keys.holds_signing_key_file(active.id()) => {
                return Err(CliError::new(format!(
                    "the keyring's active signing key {} is a key file, not the token's: to sign in the token, run `resetdesk keys rotate` with signing_key set (it makes the new key in the token and records it in the desk's database), then start the signer again",
                    active.id()
                )));
            }
            None => {
                return Err(CliError::new(format!(
                    "the keyring's active signing key {} is not in the token {:?} under the label {:?}",
                    active.id(),
                    uri.token,
                    uri.object
                )));
            }
        }
    } else {
        let (key, created) = TokenSigningKey::only_or_new(&token, &uri.object)?;
        if created {
            tracing::info!(key_id = %key.id(), token = %uri.token, "made the signing key in the token");
        }
        if keys.ensure_initialized_with_token_key(
            key.public_key(),
            crate::clock::Clock::now(&SystemClock),
        )? {
            tracing::info!(dir = %keys.dir().display(), "created the factory master secret (first start): back this directory up");
        }
        key
    };
    tracing::info!(key_id = %key.id(), token = %uri.token, "signing in the token");
    Ok(SigningKeySource::Token(Arc::new(TokenKeys::new(
        token, uri.object, key,
    ))))
}

/// The factory master secret: its file, or the token object `signer import-master` put
/// it in. A master secret in a token with its file still beside it is refused: the file
/// is the factory's backup, for offline storage.
fn master_source(keys: &KeyStore, tokens: &mut Tokens<'_>) -> Result<MasterSource, CliError> {
    let Some(place) = keys.master_in_token()? else {
        return Ok(MasterSource::File(keys.master_secret()?));
    };
    let uri = TokenKeyUri::parse(&place.uri)?;
    if keys.master_file_present() {
        return Err(CliError::new(format!(
            "the factory master secret is in the token ({uri}) and still in {}: copy that file to offline storage (it is the factory's backup), delete it here, and start again",
            keys.dir().join("factory-master.key").display()
        )));
    }
    let master = TokenMaster::find(&tokens.get(&uri.token)?, &uri.object)?;
    // The object's id is its word; the check value is the token's HMAC with it.
    if master.check_value()? != place.check {
        return Err(CliError::new(format!(
            "the token's object {uri} is not the master secret imported there (its check value differs from the one recorded in factory-master.pkcs11): it would call every genuine export forged. Import the factory's again with `resetdesk signer import-master`"
        )));
    }
    tracing::info!(key_id = %master.key_id(), token = %uri.token, "the master secret is in the token");
    Ok(MasterSource::Token(master))
}

/// `signer import-master`: the keys directory's master secret into the token, checked,
/// recorded in the keys directory and in the signer's log.
fn import_master(settings: &Settings, into: &str, db: &Path) -> CliResult {
    let keys = KeyStore::new(&settings.storage.keys_dir);
    let uri = TokenKeyUri::parse(into)?;
    if !keys.master_file_present() {
        return Err(CliError::new(format!(
            "no factory master secret to import in {}: put the factory's factory-master.key there (mode 0600) and run this again",
            keys.dir().display()
        )));
    }
    let master = keys.master_secret()?;
    let token = open_token(settings, &uri.token)?;
    let (imported, now) = TokenMaster::import(&token, &uri.object, &master)?;
    keys.record_master_in_token(&crate::crypto::MasterInToken {
        uri: uri.to_string(),
        check: imported.check_value()?,
    })?;
    // Logged when it happens, not at each check of a repeated run.
    if now {
        runtime()?.block_on(async {
            let ledger = Ledger::open(db).await?;
            ledger
                .log(
                    crate::clock::Clock::now(&SystemClock),
                    "master-imported",
                    &format!(
                        "master secret {} into token {:?}, object {:?}",
                        imported.key_id(),
                        uri.token,
                        uri.object
                    ),
                )
                .await?;
            Ok::<_, CliError>(())
        })?;
    }
    if now {
        println!(
            "imported the factory master secret {} into the token {:?} as {:?}; the token derives the same device keys",
            imported.key_id(),
            uri.token,
            uri.object
        );
    } else {
        println!(
            "the token {:?} already holds the factory master secret {} as {:?}",
            uri.token,
            imported.key_id(),
            uri.object
        );
    }
    println!(
        "now copy {} to offline storage (the factory's backup) and delete it here: the signer does not start while it is beside the token's",
        keys.dir().join("factory-master.key").display()
    );
    Ok(())
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
        Some(SignerCommand::ImportMaster { into, db }) => {
            import_master(&settings, into, &database(db.as_ref(), &keys_dir))
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
                let mut tokens = Tokens {
                    settings: &settings,
                    open: None,
                };
                let policy = Policy {
                    answers_per_hour: settings.signer.max_answers_per_hour,
                    answers_per_serial_per_day: settings.signer.max_answers_per_serial_per_day,
                    max_skew_secs: settings.intake.max_clock_skew_secs,
                };
                let signing = match &settings.signer.signing_key {
                    None => SigningKeySource::KeyFiles,
                    Some(uri) => token_signing(uri, &keys, &mut tokens)?,
                };
                let master = master_source(&keys, &mut tokens)?;
                let ledger = Ledger::open(&db).await?;
                let service = Arc::new(Service::new(
                    keys,
                    master,
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
