//! The outbox worker. Messages are written by the business transaction; this worker
//! leases due ones, sends each with no database lock held, and records the outcome:
//! sent, retried later with exponential backoff, or dead after the configured number of
//! attempts (an agent can see it on the ticket). A crash between sending and recording
//! leaves the lease to expire and the message to be sent again with the same
//! Message-ID: delivery is at least once, and duplicates are recognisable.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use lettre::message::header::ContentType;
use lettre::message::{Attachment as MimeAttachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncTransport, Message, Tokio1Executor};

use crate::clock::Clock;
use crate::mail::smtp::{RelayUrlError, SmtpRelay};
use crate::store::{MailKind, OutboxMessage, Store, StoreError};

/// Messages leased per round, in turns of `outbox_connections` at once. A batch must
/// finish inside its lease, or another replica would take over messages still waiting
/// here and send them again.
const TURNS_PER_BATCH: usize = 2;
const MAX_RETRY_SECS: i64 = 3600;

/// The outbox's clockwork and pace (`outbox_lease_secs`, `outbox_retry_secs`,
/// `outbox_connections`).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Messages sent at once, each on its own pooled SMTP connection. Each message waits
    /// on the relay's answers more than it works, so throughput comes from sending
    /// several at once.
    pub connections: usize,
    /// How long a leased batch is reserved for one worker.
    pub lease_secs: i64,
    /// First retry after this many seconds, doubling up to an hour.
    pub first_retry_secs: i64,
}

impl Timing {
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            lease_secs: i64::try_from(settings.outbox.lease_secs).unwrap_or(i64::MAX),
            first_retry_secs: i64::try_from(settings.outbox.retry_secs).unwrap_or(3600),
            connections: settings.outbox.connections.max(1),
        }
    }

    /// Messages leased per round.
    fn batch(&self) -> i64 {
        i64::try_from(self.connections * TURNS_PER_BATCH).unwrap_or(i64::MAX)
    }

    /// The SMTP timeout of one message: a quarter of the lease is kept as a margin for
    /// clocks and the database, the rest is shared by the batch's turns.
    pub fn send_timeout(&self) -> Duration {
        let usable = self.lease_secs - self.lease_secs / 4;
        Duration::from_millis(
            u64::try_from(usable * 1000 / TURNS_PER_BATCH as i64)
                .unwrap_or(1000)
                .max(1000),
        )
    }
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_secs: 120,
            first_retry_secs: 30,
            connections: 32,
        }
    }
}

/// Where mail goes: an SMTP relay, or `.eml` files when none is configured.
#[derive(Clone)]
pub enum Transport {
    /// `smtp://`, plain or STARTTLS, on our own pool (see `mail::smtp` for why).
    Smtp(Arc<SmtpRelay>),
    /// `smtps://`: lettre's transport, the only one that can open TLS from the first byte.
    ImplicitTls(AsyncSmtpTransport<Tokio1Executor>),
    /// `<dir>/<random>.eml`, each written whole and owner-only (0600): a response mail
    /// holds reset keys. (lettre's file transport leaves the mode to the umask.)
    Files(std::path::PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("the SMTP URL is not valid: {0}")]
    BadUrl(String),
    #[error("cannot create the mail directory {0}: {1}")]
    Directory(String, std::io::Error),
}

impl Transport {
    /// An SMTP transport from `smtp://` / `smtps://` URL, with a short timeout so an
    /// unreachable server fails the attempt instead of hanging the worker.
    pub fn smtp(url: &str, timing: Timing) -> Result<Self, TransportError> {
        match SmtpRelay::from_url(url, timing.send_timeout(), timing.connections) {
            Ok(relay) => return Ok(Self::Smtp(Arc::new(relay))),
            Err(RelayUrlError::Invalid(why)) => return Err(TransportError::BadUrl(why.to_owned())),
            Err(RelayUrlError::NotOurs) => {}
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            // The error text can contain the URL, and the URL can contain a password.
            .map_err(|_| TransportError::BadUrl("check the scheme, host and port".to_owned()))?
            .timeout(Some(timing.send_timeout()))
            .pool_config(
                PoolConfig::new().max_size(u32::try_from(timing.connections).unwrap_or(u32::MAX)),
            )
            .build();
        Ok(Self::ImplicitTls(transport))
    }

    pub fn files(dir: &std::path::Path) -> Result<Self, TransportError> {
        crate::data_dir::create_dir_all(dir)
            .map_err(|e| TransportError::Directory(dir.display().to_string(), e))?;
        crate::data_dir::warn_if_open(dir);
        Ok(Self::Files(dir.to_owned()))
    }

    async fn send(&self, message: Message) -> Result<(), String> {
        match self {
            Self::Smtp(relay) => relay.send(message.envelope(), &message.formatted()).await,
            Self::ImplicitTls(smtp) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Self::Files(dir) => {
                let (dir, bytes) = (dir.clone(), message.formatted());
                tokio::task::spawn_blocking(move || write_eml(&dir, &bytes))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("cannot write the mail file: {e}"))
            }
        }
    }
}

/// Writes one message as `<dir>/<random>.eml`: under a hidden temporary name first, then
/// renamed, so a reader of the directory never sees half a message.
fn write_eml(dir: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let name = data_encoding::HEXLOWER.encode(&crate::crypto::random_bytes::<16>());
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = crate::data_dir::create_new_file(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let placed = written.and_then(|()| std::fs::rename(&tmp, dir.join(format!("{name}.eml"))));
    if placed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    placed
}

pub struct OutboxWorker {
    store: Arc<dyn Store>,
    queued: Arc<tokio::sync::Notify>,
    /// Delivered messages not yet recorded as sent.
    unrecorded: std::sync::Mutex<Vec<i64>>,
    transport: Transport,
    from: Mailbox,
    max_attempts: u32,
    timing: Timing,
    clock: Arc<dyn Clock>,
}

/// What one round did, for tests and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub sent: usize,
    pub retried: usize,
    pub dead: usize,
}

/// What became of a message that was not delivered.
enum Outcome {
    Retried,
    Dead,
}

impl OutboxWorker {
    pub fn new(
        store: Arc<dyn Store>,
        transport: Transport,
        from: Mailbox,
        max_attempts: u32,
        timing: Timing,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            queued: Arc::default(),
            unrecorded: std::sync::Mutex::default(),
            transport,
            from,
            max_attempts,
            timing,
            clock,
        }
    }

    /// Rung by whoever queues a message on this replica, so it goes out now rather than
    /// at the next poll. Other replicas' messages are found by polling.
    pub fn queued(&self) -> Arc<tokio::sync::Notify> {
        self.queued.clone()
    }

    /// Sends every message that is due now.
    pub async fn run_once(&self) -> Result<Round, StoreError> {
        let mut round = Round::default();
        round.sent += self.record_sent().await?;
        loop {
            let due = self
                .store
                .claim_due_mail(
                    self.clock.now(),
                    self.timing.lease_secs,
                    self.timing.batch(),
                )
                .await?;
            if due.is_empty() {
                return Ok(round);
            }
            // Nothing is recorded while messages are in flight: awaiting the database in
            // between would stop polling the sends, whose SMTP timeouts keep running. The
            // batch's delivered mail is then recorded in one transaction rather than one
            // commit each; a kill can repeat at most the batch (each under its own
            // Message-ID).
            let results: Vec<(OutboxMessage, Result<(), String>)> = futures_util::stream::iter(due)
                .map(|message| async move {
                    let result = self.deliver(&message).await;
                    (message, result)
                })
                .buffer_unordered(self.timing.connections)
                .collect()
                .await;
            let mut failed = None;
            for (message, result) in results {
                match result {
                    Ok(()) => {
                        tracing::info!(outbox_id = message.id, "mail sent");
                        self.unrecorded().push(message.id);
                    }
                    Err(error) => match self.record_failure(&message, &error).await {
                        Ok(Outcome::Retried) => round.retried += 1,
                        Ok(Outcome::Dead) => round.dead += 1,
                        Err(error) => failed = failed.or(Some(error)),
                    },
                }
            }
            round.sent += self.record_sent().await?;
            if let Some(error) = failed {
                return Err(error);
            }
        }
    }

    fn unrecorded(&self) -> std::sync::MutexGuard<'_, Vec<i64>> {
        self.unrecorded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records delivered messages as sent, all in one transaction. Ids that could not be
    /// recorded (the database was away) stay for the next round, which records them
    /// before it claims more, so their lease does not run out and send them again.
    async fn record_sent(&self) -> Result<usize, StoreError> {
        let delivered = self.unrecorded().clone();
        if delivered.is_empty() {
            return Ok(0);
        }
        self.store
            .mark_mails_sent(&delivered, self.clock.now())
            .await?;
        self.unrecorded().retain(|id| !delivered.contains(id));
        for _ in &delivered {
            crate::observability::mail("sent");
        }
        Ok(delivered.len())
    }

    async fn record_failure(
        &self,
        message: &OutboxMessage,
        error: &str,
    ) -> Result<Outcome, StoreError> {
        let attempts = message.attempts + 1;
        let retry_at = (attempts < i64::from(self.max_attempts)).then(|| {
            let delay = self
                .timing
                .first_retry_secs
                .saturating_mul(1 << (attempts - 1).min(20))
                .min(MAX_RETRY_SECS);
            self.clock.now().plus_seconds(delay)
        });
        tracing::warn!(outbox_id = message.id, attempts, dead = retry_at.is_none(), %error, "mail not sent");
        self.store
            .mark_mail_failed(message.id, error, retry_at)
            .await?;
        if retry_at.is_some() {
            crate::observability::mail("retry");
            Ok(Outcome::Retried)
        } else {
            crate::observability::mail("dead");
            Ok(Outcome::Dead)
        }
    }

    /// Runs rounds until `shutdown` turns true, finishing the messages in hand first.
    pub async fn run(self, poll: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            if let Err(error) = self.run_once().await {
                tracing::error!(error = %error, "outbox round failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = self.queued.notified() => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    async fn deliver(&self, message: &OutboxMessage) -> Result<(), String> {
        let built = build_message(&self.from, message)?;
        self.transport.send(built).await
    }
}

fn build_message(from: &Mailbox, message: &OutboxMessage) -> Result<Message, String> {
    let to: Mailbox = message
        .recipient
        .parse()
        .map_err(|e| format!("recipient address refused: {e}"))?;
    let alternative = MultiPart::alternative()
        .singlepart(SinglePart::plain(message.body_text.clone()))
        .singlepart(SinglePart::html(message.body_html.clone()));
    let body = match &message.attachment {
        Some(attachment) => {
            let content_type =
                ContentType::parse(&attachment.media_type).map_err(|e| e.to_string())?;
            MultiPart::mixed().multipart(alternative).singlepart(
                MimeAttachment::new(attachment.file_name.clone())
                    .body(attachment.bytes.clone(), content_type),
            )
        }
        None => alternative,
    };
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(message.subject.clone())
        .message_id(Some(message.message_id.clone()));
    if let Some(answered) = &message.in_reply_to {
        // The customer's mail program shows the answer in the conversation they began.
        builder = builder
            .in_reply_to(answered.clone())
            .references(answered.clone());
    }
    // RFC 3834: what the desk writes by itself says so, so that other robots (vacation
    // replies, ticket systems) do not answer it and no mail loop starts. An agent's own
    // words are a person's mail.
    match message.kind {
        Some(MailKind::AgentMessage) => {}
        Some(MailKind::MailAnswer) => builder = builder.header(AutoSubmitted("auto-replied")),
        _ => builder = builder.header(AutoSubmitted("auto-generated")),
    }
    builder.multipart(body).map_err(|e| e.to_string())
}

/// The `Auto-Submitted` header (RFC 3834) with one of its two values.
#[derive(Debug, Clone, Copy)]
struct AutoSubmitted(&'static str);

impl lettre::message::header::Header for AutoSubmitted {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(raw: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        match raw.trim() {
            "auto-replied" => Ok(Self("auto-replied")),
            "auto-generated" => Ok(Self("auto-generated")),
            other => Err(format!("not a value the desk writes: {other}").into()),
        }
    }

    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), self.0.to_owned())
    }
}
