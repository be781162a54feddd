//! Builds the running desk from settings: data directory, keys (created on first
//! start), database (migrated), blob store, mail transport, HTTP server and the outbox
//! worker. Reports the real port, so tests and operators can use port 0.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::{App, HttpServer, web};
use anyhow::Context;

use crate::blobs::BlobStore;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::crypto::KeyStore;
use crate::desk::{Desk, DeskKeys};
use crate::mail::compose::MailContext;
use crate::mail::outbox::{OutboxWorker, Timing, Transport};
use crate::routes::{self, ErrorAnswer};
use crate::signer::{LocalSigner, RemoteSigner, Signer, SigningKeys};
use crate::store::{self, Store};

/// Makes ring the process's TLS provider. The S3 client's HTTP stack links aws-lc-rs too,
/// and rustls refuses to guess between two; every other TLS user here (PostgreSQL, SMTP)
/// is built on ring.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Creates the data directory owner-only if it does not exist: it holds customers'
/// details and photos. An existing directory keeps the permissions its operator chose,
/// with a warning when group or others can read it (`data_dir`).
pub fn prepare_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    crate::data_dir::prepare(dir)
}

/// How often a running desk looks for a rotated signing key.
pub const KEY_RELOAD_SECS: u64 = 30;

/// Picks up `keys rotate` from the keys directory every [`KEY_RELOAD_SECS`] and at once
/// on SIGHUP, so every replica signs with the new key within a minute, without restart.
async fn reload_keys(desk: web::Data<Desk>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; keys reload on the timer only");
            None
        }
    };
    let mut timer = tokio::time::interval(Duration::from_secs(KEY_RELOAD_SECS));
    timer.tick().await;
    loop {
        tokio::select! {
            _ = timer.tick() => {}
            Some(()) = async { match hangups.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                tracing::info!("SIGHUP: reloading the signing key");
            }
            _ = stopped.changed() => return,
        }
        match desk.signer.reload() {
            Ok(Some(id)) => tracing::info!(key_id = %id, "now signing with a new key"),
            Ok(None) => {}
            Err(error) => {
                tracing::error!(%error, "cannot reload the signing key; still signing with the old one")
            }
        }
        match desk.keys.reload_seal_keys() {
            Ok(Some(id)) => {
                tracing::info!(key_id = %id, "now sealing with a new seal key");
                let keys = desk.keys.seal_keys();
                let now = desk.clock.now();
                if let Err(error) =
                    crate::auth::totp::seal_stored_seeds(desk.store.as_ref(), &keys, "system", now)
                        .await
                {
                    tracing::error!(%error, "cannot re-seal the stored TOTP seeds; trying again at the next start");
                }
            }
            Ok(None) => {}
            Err(error) => tracing::error!(%error, "cannot reload the seal keys"),
        }
    }
}

/// Before anything is served: customers erased on request whose tickets a restored
/// backup brought back are erased again (docs/PRIVACY.md). A failure is said and the
/// desk starts: the next start tries again.
async fn reapply_erasures(desk: &Desk) {
    match crate::retention::reapply_erasures(
        desk.store.as_ref(),
        &desk.blobs,
        &desk.keys.desk_secret,
        desk.clock.now(),
    )
    .await
    {
        Ok(again) if !again.is_empty() => {
            tracing::warn!(tickets = again.len(), "erasures re-applied after a restore")
        }
        Ok(_) => {}
        Err(error) => {
            tracing::error!(%error, "cannot re-apply the erasure log; the next start tries again")
        }
    }
}

pub struct Application {
    pub port: u16,
    pub desk: web::Data<Desk>,
    server: Server,
    worker: OutboxWorker,
}

impl Application {
    /// Everything up to a bound, not yet running, server.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// Builds the desk in the order its parts depend on each other: the database first
    /// (it says whether the keys are the desk's), then mail, blobs and the listener (its
    /// real port goes into links), then the shared state and the HTTP app over it.
    pub async fn build_with_clock(
        mut settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        install_tls_provider();
        if let Some(url) = &settings.mail.imap_url {
            crate::mail::inbound::imap::MailboxUrl::parse(url.expose())
                .map_err(|e| anyhow::anyhow!("imap_url: {e}"))?;
        }
        prepare_data_dir(&settings.storage.data_dir)?;
        let (store, keys, signer) = open_store_and_keys(&settings, clock.as_ref()).await?;
        let worker = outbox_worker(&settings, store.clone(), clock.clone())?;
        let blobs = BlobStore::from_settings(&settings).context("cannot set up blob storage")?;
        let listener = bind(&mut settings)?;
        let port = listener.local_addr()?.port();
        let desk = build_desk(settings, store, keys, signer, blobs, clock, &worker)?;
        reapply_erasures(&desk).await;
        let server = http_server(desk.clone(), listener)?;
        Ok(Self {
            port,
            desk,
            server,
            worker,
        })
    }

    /// Runs the server, the outbox and evidence workers, the key reloader, the blob
    /// sweeper and data retention until SIGTERM or SIGINT; the outbox worker finishes
    /// the message in hand before the process exits.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        // A reader that cannot run would leave every label photo unread: better not start.
        crate::evidence::worker::check_reader(&self.desk)
            .await
            .context("the evidence worker cannot read label photos (see evidence_reader)")?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let poll = Duration::from_millis(self.desk.settings.outbox.poll_ms);
        let worker = tokio::spawn(self.worker.run(poll, stopped.clone()));
        let reloader = tokio::spawn(reload_keys(self.desk.clone(), stopped.clone()));
        let evidence = tokio::spawn(crate::evidence::worker::run(
            self.desk.clone(),
            self.desk.evidence_queued.clone(),
            stopped.clone(),
        ));
        let digest = tokio::spawn(crate::review::digest::run(
            self.desk.clone(),
            stopped.clone(),
        ));
        let mailbox = tokio::spawn(crate::mail::inbound::imap::run(
            self.desk.clone(),
            stopped.clone(),
        ));
        let retention = tokio::spawn(crate::retention::run(self.desk.clone(), stopped.clone()));
        let sweeper = tokio::spawn(crate::sweeper::run(self.desk.clone(), stopped));
        let served = self.server.await;
        let _ = stop.send(true);
        digest
            .await
            .context("the second-approval digest panicked")?;
        sweeper.await.context("the blob sweeper panicked")?;
        retention.await.context("data retention panicked")?;
        mailbox.await.context("the mailbox watcher panicked")?;
        evidence.await.context("the evidence worker panicked")?;
        worker.await.context("the outbox worker panicked")?;
        reloader.await.context("the key reloader panicked")?;
        served.context("the HTTP server failed")
    }

    /// For tests: the server alone, and the worker to run by hand.
    pub fn into_parts(self) -> (Server, OutboxWorker) {
        (self.server, self.worker)
    }
}

/// The desk without its HTTP server or workers, for a command that does one piece of
/// the desk's work and exits (`resetdesk mail-intake`): the same database, keys, blobs
/// and settings as `serve`, mail queued in the same outbox for `serve` to send. Links
/// use `public_url` (or the listen address when it is unset, as `serve` would).
pub async fn desk_for_command(mut settings: Settings) -> anyhow::Result<web::Data<Desk>> {
    install_tls_provider();
    prepare_data_dir(&settings.storage.data_dir)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (store, keys, signer) = open_store_and_keys(&settings, clock.as_ref()).await?;
    let worker = outbox_worker(&settings, store.clone(), clock.clone())?;
    let blobs = BlobStore::from_settings(&settings).context("cannot set up blob storage")?;
    if settings.http.public_url.is_empty() {
        settings.http.public_url = format!("http://{}", settings.http.listen);
    }
    build_desk(settings, store, keys, signer, blobs, clock, &worker)
}

/// The database, migrated, and the keys it records as the desk's, with the stored TOTP
/// seeds sealed under the current seal key.
async fn open_store_and_keys(
    settings: &Settings,
    clock: &dyn Clock,
) -> anyhow::Result<(Arc<dyn Store>, DeskKeys, Arc<dyn Signer>)> {
    let store = store::connect(&settings.storage.database_url())
        .await
        .context("cannot open the database")?;
    store
        .migrate()
        .await
        .context("cannot apply database migrations")?;
    // Keys only after the database: whether this directory may get new keys, and
    // whether its keys are the desk's, is the database's to say.
    let (desk_keys, signer): (DeskKeys, Arc<dyn Signer>) = match &settings.signer.url {
        None => {
            if settings.signer.signing_key.is_some() {
                // Not silently signed with a key file instead.
                anyhow::bail!(
                    "signing_key names a PKCS#11 token, which only the separate signer uses: \
                     run `resetdesk signer` with it and give this desk signer_url (docs/SIGNER.md)"
                );
            }
            let keys = KeyStore::new(&settings.storage.keys_dir);
            crate::key_registry::check_at_start(store.as_ref(), &keys, clock.now()).await?;
            let signing = SigningKeys::load(keys.clone())?;
            tracing::info!(key_id = %signing.signer().id(), "signing with key");
            let signer = Arc::new(LocalSigner::new(signing, store.clone()));
            (DeskKeys::load(keys)?, signer)
        }
        Some(url) => {
            // The master secret and the signing keys are the signer's: this process
            // reads neither, and its keys directory keeps only the desk's own secrets.
            let remote =
                RemoteSigner::from_settings(&settings.signer).map_err(anyhow::Error::msg)?;
            let ids = remote
                .key_ids()
                .await
                .with_context(|| format!("cannot reach the signer at {url}"))?;
            let keys = KeyStore::desk_only(&settings.storage.keys_dir);
            if keys.holds_signing_material() {
                anyhow::bail!(
                    "signer_url is set, but the keys directory {} still holds a factory master \
                     secret or signing keys: move factory-master.key, keyring.json and signing/ \
                     to the signer's keys directory (deploy/README.md), then rotate the signing \
                     key there, since the old one lived on this host",
                    keys.dir().display()
                );
            }
            crate::key_registry::check_with_signer_at_start(
                store.as_ref(),
                &keys,
                &ids,
                clock.now(),
            )
            .await?;
            tracing::info!(signer = %url, key_id = %ids.active_signing, "the signer signs, with key");
            (DeskKeys::load(keys)?, Arc::new(remote))
        }
    };

    // Seeds left in clear by an older desk, or sealed under a key since rotated.
    crate::auth::totp::seal_stored_seeds(
        store.as_ref(),
        &desk_keys.seal_keys(),
        "system",
        clock.now(),
    )
    .await
    .context("cannot seal the stored TOTP seeds")?;
    Ok((store, desk_keys, signer))
}

/// The outbox worker over SMTP, or over `.eml` files when no SMTP server is configured.
fn outbox_worker(
    settings: &Settings,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<OutboxWorker> {
    let transport = match &settings.mail.smtp_url {
        Some(url) => Transport::smtp(url.expose(), Timing::from_settings(settings))?,
        None => {
            let dir = settings.storage.data_dir.join("outbox");
            tracing::info!(dir = %dir.display(), "no SMTP server configured: e-mails are written as .eml files");
            Transport::files(&dir)?
        }
    };
    let from = settings
        .mail
        .from
        .parse()
        .with_context(|| format!("mail_from {:?} is not an address", settings.mail.from))?;
    Ok(OutboxWorker::new(
        store,
        transport,
        from,
        settings.outbox.max_attempts,
        Timing::from_settings(settings),
        clock,
    ))
}

/// Binds the listen address. With port 0 the real port is known only now; links must
/// carry it, so an unset public URL becomes this address.
fn bind(settings: &mut Settings) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(settings.http.listen)
        .with_context(|| format!("cannot listen on {}", settings.http.listen))?;
    let port = listener.local_addr()?.port();
    let unset = format!("http://{}", settings.http.listen);
    if settings.http.public_url.is_empty() || settings.http.public_url == unset {
        settings.http.public_url = format!("http://{}:{port}", settings.http.listen.ip());
    }
    Ok(listener)
}

/// The state every handler and worker shares, with the intake's bounded picture work and
/// upload spool.
fn build_desk(
    settings: Settings,
    store: Arc<dyn Store>,
    keys: DeskKeys,
    signer: Arc<dyn Signer>,
    blobs: BlobStore,
    clock: Arc<dyn Clock>,
    worker: &OutboxWorker,
) -> anyhow::Result<web::Data<Desk>> {
    let pictures = crate::intake::picture_work::PictureWork::for_this_machine(
        settings.uploads.picture_memory_mb,
    );
    let spool = crate::intake::spool::Spool::open(
        settings.storage.data_dir.join("spool"),
        crate::intake::spool::SpoolLimits {
            memory_bytes: settings.uploads.memory_mb * 1024 * 1024,
            uploads_at_once: settings.uploads.at_once,
            uploads_per_address: settings.uploads.per_address,
        },
    )
    .with_context(|| {
        format!(
            "cannot prepare the upload spool in {}",
            settings.storage.data_dir.join("spool").display()
        )
    })?;
    Ok(web::Data::new(Desk {
        signer,
        blobs,
        mail: MailContext::new(&settings.http.public_url, &settings.mail.from),
        settings,
        store,
        keys,
        clock,
        pictures,
        spool,
        mail_queued: worker.queued(),
        evidence_queued: Arc::new(tokio::sync::Notify::new()),
        metrics: crate::observability::metrics_handle(),
        queue_counts: Default::default(),
        answer_time: Default::default(),
    }))
}

/// The HTTP server over the desk: bodies read within limits, the console guard, security
/// headers, the access log, request ids and timing, then the routes.
fn http_server(desk: web::Data<Desk>, listener: TcpListener) -> anyhow::Result<Server> {
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(desk.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(64 * 1024)
                    .error_handler(|e, _| {
                        ErrorAnswer::new(
                            StatusCode::BAD_REQUEST,
                            format!("the JSON body is not valid: {e}"),
                        )
                        .into()
                    }),
            )
            .app_data(
                web::FormConfig::default()
                    .limit(64 * 1024)
                    .error_handler(routes::form_error),
            )
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                ErrorAnswer::new(
                    StatusCode::BAD_REQUEST,
                    format!("the query string is not valid: {e}"),
                )
                .into()
            }))
            // Innermost, so its redirects and refusals pass the headers and log outside it.
            .wrap(actix_web::middleware::from_fn(routes::console_guard))
            .wrap(security_headers())
            .wrap(access_log())
            // Outside the logger: every log line of a request, the access log
            // included, carries its request id.
            .wrap(actix_web::middleware::from_fn(
                crate::observability::request_context,
            ))
            // Outside everything else, so the figure covers the guard's session
            // lookup and every other middleware too.
            .wrap(actix_web::middleware::from_fn(routes::server_timing))
            .configure(routes::configure)
            .default_service(web::to(routes::no_such_page))
    })
    // Slow clients get a bounded time to send headers and finish.
    .client_request_timeout(Duration::from_secs(30))
    .client_disconnect_timeout(Duration::from_secs(5))
    .shutdown_timeout(30)
    .listen(listener)?
    .run())
}

fn security_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        // Scripts only from /static/ (no inline script), fetching from this origin
        // only (the queue refreshes itself); status links
        // carry a token, so no referrer.
        .add((
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; img-src 'self'; connect-src 'self'; \
             style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("X-Frame-Options", "DENY"))
}

fn access_log() -> actix_web::middleware::Logger {
    // The path without its query: status links carry their token there.
    actix_web::middleware::Logger::new("%a \"%{method}xi %U\" %s %b %Dms")
        .custom_request_replace("method", |req| req.method().to_string())
        .exclude("/healthz")
        .exclude("/readyz")
        .exclude("/metrics")
}
