//! The mailbox `serve` watches (`imap_url`): every message in it is taken ([`take`]) and,
//! once what the desk did with it is committed, moved to `imap_done_folder` (flagged
//! `$ResetdeskDone` where it cannot be moved). A crash between the two leaves the
//! message in place; the next look finds it claimed and done, and only moves it. Several
//! replicas may watch one mailbox: the claim in the database lets one handle each
//! message. IDLE is used where the server offers it, with `imap_poll_secs` as its
//! longest wait; without IDLE the mailbox is looked at every `imap_poll_secs`.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::Session;
use futures_util::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::take::{TakeError, take, take_oversized};
use crate::desk::Desk;

/// The keyword of a message handled where it could not be moved.
const DONE_KEYWORD: &str = "$ResetdeskDone";
/// Messages fetched in one look: a backlog drains over several looks.
const BATCH: usize = 50;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A command that takes longer than this means the connection is dead.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a message the desk could not take now (its database away, another replica
/// on it) is left alone before it is tried again, the messages after it going first: a
/// claim's lease, after which a dead replica's claim is taken over.
const DEFERRED_FOR: Duration = Duration::from_secs(super::take::CLAIM_LEASE_SECS as u64);
/// The most of an oversized message's header read: enough for every header a message
/// needs, and a message whose header alone is huge is not fetched whole.
const MAX_HEADER_FETCH: &str = "BODY.PEEK[HEADER]<0.65536>";

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `imaps://`: TLS from the first byte.
    Tls,
    /// `imap://…?tls=required`: STARTTLS, or no session.
    StartTls,
    /// `imap://` to a loopback address: nothing crosses a network.
    Plain,
}

/// `imap_url`, read.
#[derive(Clone)]
pub struct MailboxUrl {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub user: String,
    password: String,
    pub folder: String,
}

impl std::fmt::Debug for MailboxUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?}://{}@{}:{}/{}",
            self.security, self.user, self.host, self.port, self.folder
        )
    }
}

impl MailboxUrl {
    /// Reads `imaps://user:pass@host:993/INBOX` or `imap://user:pass@host:143/INBOX?tls=required`
    /// (user and password percent-encoded); plain `imap://` only to a loopback address,
    /// where the password crosses no network.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw).map_err(|_| "imap_url is not a URL".to_owned())?;
        let tls_required = url
            .query_pairs()
            .any(|(key, value)| key == "tls" && value == "required");
        let security = match url.scheme() {
            "imaps" => Security::Tls,
            "imap" if tls_required => Security::StartTls,
            "imap" => Security::Plain,
            _ => return Err("imap_url must start with imaps:// or imap://".to_owned()),
        };
        let host = url
            .host_str()
            .ok_or("imap_url names no host")?
            .trim_matches(['[', ']'])
            .to_owned();
        let loopback =
            host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if security == Security::Plain && !loopback {
            return Err(
                "plain imap:// would send the mailbox password in clear: use imaps:// or add ?tls=required"
                    .to_owned(),
            );
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| "imap_url's user or password is not UTF-8".to_owned())
        };
        let user = decode(url.username())?;
        let password = decode(url.password().unwrap_or(""))?;
        if user.is_empty() {
            return Err("imap_url names no user (imaps://user:password@host/INBOX)".to_owned());
        }
        let folder = decode(url.path().trim_start_matches('/'))?;
        Ok(Self {
            port: url.port().unwrap_or(match security {
                Security::Tls => 993,
                _ => 143,
            }),
            host,
            security,
            user,
            password,
            folder: if folder.is_empty() {
                "INBOX".to_owned()
            } else {
                folder
            },
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("the IMAP server refused the sign-in: {0}")]
    SignIn(String),
    #[error("IMAP: {0}")]
    Protocol(#[from] async_imap::error::Error),
    #[error("the IMAP server did not answer in time")]
    Timeout,
    #[error("TLS: {0}")]
    Tls(String),
}

/// Watches the mailbox until `stopped` turns true; a lost connection is made again
/// after a pause that grows to `imap_poll_secs`.
pub async fn run(
    desk: actix_web::web::Data<Desk>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let Some(url) = desk.settings.mail.imap_url.as_ref() else {
        return;
    };
    let url = match MailboxUrl::parse(url.expose()) {
        Ok(url) => url,
        Err(error) => {
            tracing::error!(%error, "imap_url: the mailbox is not watched");
            return;
        }
    };
    let poll = Duration::from_secs(desk.settings.mail.imap_poll_secs);
    let mut pause = Duration::from_secs(1);
    loop {
        match watch(&desk, &url, &mut stopped).await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, mailbox = ?url, "the mailbox connection failed; trying again");
                crate::observability::mail_intake("connection_failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopped.changed() => {}
        }
        if *stopped.borrow() {
            return;
        }
        pause = (pause * 2).min(poll.max(Duration::from_secs(1)));
    }
}

/// One session: sign in, then take what is there and wait for more, until stopped.
async fn watch(
    desk: &actix_web::web::Data<Desk>,
    url: &MailboxUrl,
    stopped: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), ImapError> {
    let mut session = sign_in(desk, url).await?;
    let capabilities = timed(session.capabilities()).await?;
    let can_move = capabilities.has_str("MOVE");
    let can_idle = capabilities.has_str("IDLE");
    let done = desk.settings.mail.imap_done_folder.clone();
    let folders: Vec<_> = timed(async {
        session
            .list(None, Some(&done))
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    let mut can_file = !folders.is_empty();
    if !can_file {
        match timed(session.create(&done)).await {
            Ok(()) => can_file = true,
            Err(error) => {
                tracing::warn!(%error, folder = %done, "cannot create the folder for handled mail: they are flagged {DONE_KEYWORD} instead");
            }
        }
    }
    let poll = Duration::from_secs(desk.settings.mail.imap_poll_secs);
    let mut deferred = Deferred::default();
    loop {
        timed(session.select(&url.folder)).await?;
        loop {
            let looked = take_batch(
                desk,
                &mut session,
                can_file.then_some(&done),
                can_move,
                &mut deferred,
            )
            .await?;
            // A full batch: more may wait. The deferred are not looked at again in this
            // round, so every round ends.
            if looked < BATCH || *stopped.borrow() {
                break;
            }
        }
        if *stopped.borrow() {
            let _ = timed(session.logout()).await;
            return Ok(());
        }
        if can_idle {
            let mut idle = session.idle();
            timed(idle.init()).await?;
            {
                let (wait, _interrupt) = idle.wait_with_timeout(poll);
                tokio::select! {
                    waited = wait => { waited?; }
                    _ = stopped.changed() => {}
                }
            }
            session = timed(idle.done()).await?;
        } else {
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = stopped.changed() => {}
            }
            // Keeps the session alive and lets the server report new mail.
            timed(session.noop()).await?;
        }
    }
}

/// The messages left for later (by UID), and until when: a message the desk cannot take
/// now must not hold up the ones after it, nor be fetched again at once without end.
#[derive(Default)]
struct Deferred(std::collections::HashMap<u32, tokio::time::Instant>);

impl Deferred {
    fn defer(&mut self, uid: u32) {
        self.0
            .insert(uid, tokio::time::Instant::now() + DEFERRED_FOR);
    }

    /// Whether the message waits still; forgets those whose time has come.
    fn waits(&mut self, uid: u32) -> bool {
        let now = tokio::time::Instant::now();
        self.0.retain(|_, until| *until > now);
        self.0.contains_key(&uid)
    }
}

/// Takes up to [`BATCH`] messages not deferred; returns how many it looked at.
async fn take_batch(
    desk: &actix_web::web::Data<Desk>,
    session: &mut Session<Connection>,
    done_folder: Option<&String>,
    can_move: bool,
    deferred: &mut Deferred,
) -> Result<usize, ImapError> {
    let mut uids: Vec<u32> =
        timed(session.uid_search(format!("UNDELETED UNKEYWORD {DONE_KEYWORD}")))
            .await?
            .into_iter()
            .filter(|uid| !deferred.waits(*uid))
            .collect();
    uids.sort_unstable();
    uids.truncate(BATCH);
    let max = desk.settings.mail.max_message_bytes;
    let mut looked = 0;
    let mut expunge = false;
    for uid in &uids {
        looked += 1;
        let sizes: Vec<_> = timed(async {
            session
                .uid_fetch(uid.to_string(), "(UID RFC822.SIZE)")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        let Some(size) = sizes.iter().find_map(|f| f.size) else {
            continue;
        };
        // Size limits before parsing: an oversized message's body is never fetched.
        let what = if u64::from(size) > max {
            MAX_HEADER_FETCH
        } else {
            "BODY.PEEK[]"
        };
        let fetched: Vec<_> = timed(async {
            session
                .uid_fetch(uid.to_string(), what)
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        let Some(raw) = fetched
            .iter()
            .find_map(|f| f.body().or_else(|| f.header()).map(<[u8]>::to_vec))
        else {
            continue;
        };
        // On a task of its own: a message that made the desk panic (a bug the corpus
        // and the fuzzer did not find) is set aside like an unreadable one, instead of
        // stopping the watcher and coming back at every look.
        let oversized = (u64::from(size) > max).then_some(u64::from(size));
        let handler = desk.clone();
        let taken = tokio::spawn(async move {
            match oversized {
                Some(size) => take_oversized(&handler, &raw, size).await,
                None => take(&handler, &raw).await,
            }
        })
        .await;
        let taken = taken.unwrap_or_else(|panicked| {
            tracing::error!(uid, error = %panicked, "taking a message panicked: set aside");
            crate::observability::mail_intake("panicked");
            Err(TakeError::Refused(super::Refused::NotAMessage))
        });
        match taken {
            Ok(_) => {}
            Err(TakeError::Refused(why)) => {
                tracing::warn!(uid, %why, "a message that cannot be read: set aside unanswered");
                crate::observability::mail_intake("refused");
            }
            Err(TakeError::TryLater(why)) => {
                tracing::info!(uid, %why, "a message left for later");
                deferred.defer(*uid);
                continue;
            }
        }
        expunge |= file_away(session, *uid, done_folder, can_move).await?;
    }
    if expunge {
        timed(async { session.expunge().await?.try_collect::<Vec<_>>().await }).await?;
    }
    Ok(looked)
}

/// Moves a handled message to the done folder (MOVE, or COPY and delete), or flags it
/// where there is no folder; `true` when an EXPUNGE must follow.
async fn file_away(
    session: &mut Session<Connection>,
    uid: u32,
    done_folder: Option<&String>,
    can_move: bool,
) -> Result<bool, ImapError> {
    let set = uid.to_string();
    match done_folder {
        Some(folder) if can_move => {
            // Another replica may have moved it a moment ago: nothing to do then.
            if let Err(error) = timed(session.uid_mv(&set, folder)).await {
                tracing::debug!(uid, %error, "moving a handled message failed");
            }
            Ok(false)
        }
        Some(folder) => {
            timed(session.uid_copy(&set, folder)).await?;
            timed(async {
                session
                    .uid_store(&set, "+FLAGS (\\Deleted)")
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await?;
            Ok(true)
        }
        None => {
            timed(async {
                session
                    .uid_store(&set, format!("+FLAGS (\\Seen {DONE_KEYWORD})"))
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await?;
            Ok(false)
        }
    }
}

async fn timed<T, E>(work: impl Future<Output = Result<T, E>>) -> Result<T, ImapError>
where
    ImapError: From<E>,
{
    match tokio::time::timeout(COMMAND_TIMEOUT, work).await {
        Ok(result) => result.map_err(ImapError::from),
        Err(_) => Err(ImapError::Timeout),
    }
}

async fn sign_in(desk: &Desk, url: &MailboxUrl) -> Result<Session<Connection>, ImapError> {
    let address = format!("{}:{}", url.host, url.port);
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&address))
        .await
        .map_err(|_| ImapError::Timeout)?
        .map_err(|e| ImapError::Connect(address.clone(), e.to_string()))?;
    let stream = match url.security {
        Security::Tls => Connection::Tls(Box::new(tls(desk, url, tcp).await?)),
        Security::Plain => Connection::Plain(tcp),
        Security::StartTls => {
            let mut client = async_imap::Client::new(tcp);
            greeting(&mut client).await?;
            timed(client.run_command_and_check_ok("STARTTLS", None)).await?;
            Connection::Tls(Box::new(tls(desk, url, client.into_inner()).await?))
        }
    };
    let mut client = async_imap::Client::new(stream);
    if url.security != Security::StartTls {
        greeting(&mut client).await?;
    }
    tokio::time::timeout(COMMAND_TIMEOUT, client.login(&url.user, &url.password))
        .await
        .map_err(|_| ImapError::Timeout)?
        .map_err(|(error, _)| ImapError::SignIn(error.to_string()))
}

async fn greeting<T>(client: &mut async_imap::Client<T>) -> Result<(), ImapError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    match tokio::time::timeout(COMMAND_TIMEOUT, client.read_response()).await {
        Ok(Ok(Some(_))) => Ok(()),
        Ok(Ok(None)) => Err(ImapError::Connect(
            "the server".to_owned(),
            "closed the connection before its greeting".to_owned(),
        )),
        Ok(Err(error)) => Err(ImapError::Connect(
            "the server".to_owned(),
            error.to_string(),
        )),
        Err(_) => Err(ImapError::Timeout),
    }
}

async fn tls(
    desk: &Desk,
    url: &MailboxUrl,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, ImapError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(file) = &desk.settings.mail.imap_ca_file {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let certificates = CertificateDer::pem_file_iter(file)
            .map_err(|e| ImapError::Tls(format!("imap_ca_file {}: {e}", file.display())))?;
        for certificate in certificates {
            let certificate = certificate
                .map_err(|e| ImapError::Tls(format!("imap_ca_file {}: {e}", file.display())))?;
            roots
                .add(certificate)
                .map_err(|e| ImapError::Tls(format!("imap_ca_file {}: {e}", file.display())))?;
        }
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(url.host.clone())
        .map_err(|e| ImapError::Tls(format!("{}: {e}", url.host)))?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| ImapError::Tls(e.to_string()))
}

/// The connection, with or without TLS.
#[derive(Debug)]
pub enum Connection {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_urls_are_read_and_clear_passwords_refused() {
        let url = MailboxUrl::parse("imaps://support%40vendor.com:p%40ss@imap.vendor.com/Support")
            .unwrap();
        assert_eq!(
            (
                url.security,
                url.port,
                url.user.as_str(),
                url.password.as_str(),
                url.folder.as_str()
            ),
            (Security::Tls, 993, "support@vendor.com", "p@ss", "Support")
        );
        let url = MailboxUrl::parse("imap://u:p@imap.vendor.com:143/INBOX?tls=required").unwrap();
        assert_eq!(url.security, Security::StartTls);
        assert!(MailboxUrl::parse("imap://u:p@imap.vendor.com/INBOX").is_err());
        let url = MailboxUrl::parse("imap://u:p@127.0.0.1:1143").unwrap();
        assert_eq!(
            (url.security, url.folder.as_str()),
            (Security::Plain, "INBOX")
        );
        assert!(MailboxUrl::parse("pop3://u:p@host").is_err());
        assert!(
            !format!("{url:?}").contains(":p@"),
            "the password is never printed"
        );
    }
}
