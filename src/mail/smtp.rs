//! Our own small pool of SMTP connections, for `smtp://` relays (plain or STARTTLS).
//!
//! lettre 0.11 (the newest release here) leaves Nagle's algorithm on its sockets and
//! writes a message's end-of-data marker separately from the message, so every message
//! waits for the server's delayed ACK (about 40 ms on Linux) before the marker leaves:
//! one connection managed ~25 messages a second however fast the relay was. Its pool
//! cannot be given another socket, so this one opens the socket itself with
//! `TCP_NODELAY` and hands it to lettre's SMTP client, which still speaks the protocol
//! (EHLO, STARTTLS, AUTH, MAIL/RCPT/DATA). The benchmark in docs/BENCHMARKS.md part 5
//! shows the difference.
//!
//! `smtps://` (TLS from the first byte) stays on lettre's own transport: its TLS set-up
//! is not reachable from outside lettre.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;

/// A pooled connection that sat idle longer than this is checked with NOOP before use:
/// relays close idle sessions (Postfix after 300 s), and a message sent into a closed
/// one would wait for the outbox's next retry.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(10);

/// How the session is protected.
#[derive(Clone)]
enum Security {
    Plain,
    /// `?tls=required`: STARTTLS or no mail.
    StartTlsRequired(TlsParameters),
    /// `?tls=opportunistic`: STARTTLS when the relay offers it.
    StartTlsOpportunistic(TlsParameters),
}

struct Idle {
    connection: AsyncSmtpConnection,
    since: Instant,
}

/// An `smtp://` relay with up to `max_idle` connections kept open between messages.
pub struct SmtpRelay {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
    max_idle: usize,
    idle: std::sync::Mutex<Vec<Idle>>,
}

impl std::fmt::Debug for SmtpRelay {
    // Never prints the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpRelay")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Why a URL cannot be this pool's: `NotOurs` goes to lettre's transport.
#[derive(Debug)]
pub enum RelayUrlError {
    NotOurs,
    Invalid(&'static str),
}

impl SmtpRelay {
    /// Reads the URL the way lettre's `from_url` does, so an operator's `smtp_url` means
    /// the same as before: `smtp://[user:password@]host[:port][/hello-name][?tls=required|opportunistic]`.
    pub fn from_url(url: &str, timeout: Duration, max_idle: usize) -> Result<Self, RelayUrlError> {
        let url = url::Url::parse(url).map_err(|_| RelayUrlError::Invalid("not a URL"))?;
        if url.scheme() != "smtp" {
            return Err(RelayUrlError::NotOurs);
        }
        let host = url
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or(RelayUrlError::Invalid("the host is missing"))?
            .to_owned();
        let tls = url
            .query_pairs()
            .find(|(key, _)| key == "tls")
            .map(|(_, value)| value.into_owned());
        let parameters = || {
            TlsParameters::new(host.clone())
                .map_err(|_| RelayUrlError::Invalid("the host cannot be used for TLS"))
        };
        let (security, default_port) = match tls.as_deref() {
            None => (Security::Plain, 25),
            Some("required") => (Security::StartTlsRequired(parameters()?), 587),
            Some("opportunistic") => (Security::StartTlsOpportunistic(parameters()?), 587),
            Some(_) => {
                return Err(RelayUrlError::Invalid(
                    "tls must be \"required\" or \"opportunistic\"",
                ));
            }
        };
        let hello = match url.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_owned()),
        };
        let credentials = match url.password() {
            None => None,
            Some(password) => {
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8()
                        .map(Cow::into_owned)
                        .map_err(|_| RelayUrlError::Invalid("the user or password is not UTF-8"))
                };
                Some(Credentials::new(decode(url.username())?, decode(password)?))
            }
        };
        Ok(Self {
            port: url.port().unwrap_or(default_port),
            host,
            security,
            credentials,
            hello,
            timeout,
            max_idle: max_idle.max(1),
            idle: std::sync::Mutex::default(),
        })
    }

    /// Sends one message, on an idle connection if there is one. The whole exchange is
    /// bounded by the timeout, so a relay that stops answering fails the attempt.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<(), String> {
        tokio::time::timeout(self.timeout, async {
            let mut connection = match self.take_idle().await {
                Some(connection) => connection,
                None => self.connect().await?,
            };
            match connection.send(envelope, message).await {
                Ok(_) => {
                    self.give_back(connection);
                    Ok(())
                }
                Err(error) => {
                    // The session's state is unknown after a failure: never reuse it.
                    connection.abort().await;
                    Err(error.to_string())
                }
            }
        })
        .await
        .map_err(|_| format!("the SMTP relay did not answer within {:?}", self.timeout))?
    }

    async fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
            let mut connection = idle.connection;
            if idle.since.elapsed() < CHECK_AFTER_IDLE || connection.test_connected().await {
                return Some(connection);
            }
            connection.abort().await;
        }
    }

    fn give_back(&self, connection: AsyncSmtpConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(Idle {
                connection,
                since: Instant::now(),
            });
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, String> {
        let socket = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot connect to {}:{}: {e}", self.host, self.port))?;
        socket
            .set_nodelay(true)
            .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
        let mut connection =
            AsyncSmtpConnection::connect_with_transport(Box::new(socket), &self.hello)
                .await
                .map_err(|e| e.to_string())?;
        match &self.security {
            Security::Plain => {}
            Security::StartTlsRequired(parameters) => connection
                .starttls(parameters.clone(), &self.hello)
                .await
                .map_err(|e| e.to_string())?,
            Security::StartTlsOpportunistic(parameters) => {
                if connection.can_starttls() {
                    connection
                        .starttls(parameters.clone(), &self.hello)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(url: &str) -> Result<SmtpRelay, RelayUrlError> {
        SmtpRelay::from_url(url, Duration::from_secs(5), 4)
    }

    #[test]
    fn reads_the_url_as_lettre_does() {
        let plain = relay("smtp://mail.vendor.test").unwrap();
        assert_eq!((plain.host.as_str(), plain.port), ("mail.vendor.test", 25));
        assert!(matches!(plain.security, Security::Plain));
        assert!(plain.credentials.is_none());

        let submission =
            relay("smtp://desk:p%40ss@mail.vendor.test/desk.vendor.test?tls=required").unwrap();
        assert_eq!(submission.port, 587);
        assert!(matches!(submission.security, Security::StartTlsRequired(_)));
        assert!(submission.credentials.is_some());
        assert!(matches!(&submission.hello, ClientId::Domain(name) if name == "desk.vendor.test"));

        let opportunistic = relay("smtp://mail.vendor.test:2525?tls=opportunistic").unwrap();
        assert_eq!(opportunistic.port, 2525);
        assert!(matches!(
            opportunistic.security,
            Security::StartTlsOpportunistic(_)
        ));
    }

    #[test]
    fn leaves_implicit_tls_to_lettre_and_refuses_nonsense() {
        assert!(matches!(
            relay("smtps://mail.vendor.test"),
            Err(RelayUrlError::NotOurs)
        ));
        assert!(matches!(
            relay("smtp://mail.vendor.test?tls=sometimes"),
            Err(RelayUrlError::Invalid(_))
        ));
        assert!(matches!(relay("smtp://"), Err(RelayUrlError::Invalid(_))));
        assert!(matches!(relay("not a url"), Err(RelayUrlError::Invalid(_))));
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let relay = relay("smtp://desk:hunter2@mail.vendor.test").unwrap();
        assert!(!format!("{relay:?}").contains("hunter2"));
    }
}
