//! The keys in a separate process (`resetdesk signer`), reached over its Unix socket
//! (`signer_url = "unix:PATH"`): this process then holds no master secret and no
//! signing key. One connection per request; the signer checks every export again by
//! its own clock and rules, so the desk's `now` and skew are only its own view.

use std::path::PathBuf;

use async_trait::async_trait;
use tokio::io::BufReader;
use tokio::net::UnixStream;

use super::socket::{read_line, write_line};
use super::wire::{Reply, Request, TypedKey};
use super::{Answer, Signer, SignerError};
use crate::crypto::KeyId;
use crate::domain::{TicketNumber, Timestamp};
use crate::protocol::challenge::VerifiedResetRequest;
use crate::protocol::{
    DeviceChallenge, DeviceResponse, ResetRequest, ResponseKey, SignedResponse, export_xml,
    response,
};

/// How long one request may take before the desk gives up on the signer.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub struct RemoteSigner {
    transport: Transport,
    /// `signer_url`, for messages.
    shown: String,
}

/// How the signer is reached.
enum Transport {
    /// `unix:PATH`: on this host, checked by the peer's uid.
    Unix(PathBuf),
    /// `https://HOST:PORT`: on another host, both sides with certificates.
    Tls {
        address: String,
        server_name: rustls::pki_types::ServerName<'static>,
        connector: tokio_rustls::TlsConnector,
    },
}

/// Who the signer says it is.
#[derive(Debug, Clone)]
pub struct SignerIdentity {
    pub master_key_id: String,
    pub signing_key_id: String,
}

impl RemoteSigner {
    /// `url` is `unix:PATH`.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let path = url
            .strip_prefix("unix:")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| format!("signer_url {url:?}: expected unix:PATH"))?;
        Ok(Self {
            transport: Transport::Unix(PathBuf::from(path)),
            shown: url.to_owned(),
        })
    }

    /// From the desk's settings: `signer_url` `unix:PATH`, or `https://HOST:PORT` with
    /// `signer_ca_file`, `signer_client_cert` and `signer_client_key`.
    pub fn from_settings(settings: &crate::config::SignerSettings) -> Result<Self, String> {
        let url = settings.url.as_deref().ok_or("signer_url is not set")?;
        if url.starts_with("unix:") {
            return Self::from_url(url);
        }
        let parsed = url::Url::parse(url).map_err(|e| format!("signer_url {url:?}: {e}"))?;
        let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
            return Err(format!("signer_url {url:?}: expected https://HOST:PORT"));
        };
        let need = |file: &Option<PathBuf>, name: &str| {
            file.clone()
                .ok_or_else(|| format!("signer_url is https: set {name} as well"))
        };
        let config = super::tls::client_config(
            &need(&settings.ca_file, "signer_ca_file")?,
            &need(&settings.client_cert, "signer_client_cert")?,
            &need(&settings.client_key, "signer_client_key")?,
        )?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let server_name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("signer_url {url:?}: {e}"))?;
        Ok(Self {
            transport: Transport::Tls {
                address: format!("{host}:{port}"),
                server_name,
                connector: tokio_rustls::TlsConnector::from(config),
            },
            shown: url.to_owned(),
        })
    }

    /// Asks the signer who it is: at start, so a desk pointed at a missing or wrong
    /// signer says so before it takes a request.
    pub async fn hello(&self) -> Result<SignerIdentity, SignerError> {
        match self.ask(&Request::Hello).await? {
            Reply::Hello {
                master_key_id,
                signing_key_id,
            } => Ok(SignerIdentity {
                master_key_id,
                signing_key_id,
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn ask(&self, request: &Request) -> Result<Reply, SignerError> {
        let unreachable = |e: std::io::Error| {
            SignerError::Unavailable(format!("the signer at {}: {e}", self.shown))
        };
        let exchange = async {
            match &self.transport {
                Transport::Unix(path) => {
                    let stream = UnixStream::connect(path).await?;
                    let (read, mut write) = stream.into_split();
                    write_line(&mut write, request).await?;
                    read_line(&mut BufReader::new(read)).await
                }
                Transport::Tls {
                    address,
                    server_name,
                    connector,
                } => {
                    let tcp = tokio::net::TcpStream::connect(address).await?;
                    let stream = connector.connect(server_name.clone(), tcp).await?;
                    let (read, mut write) = tokio::io::split(stream);
                    write_line(&mut write, request).await?;
                    read_line(&mut BufReader::new(read)).await
                }
            }
        };
        let line = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| SignerError::Unavailable("the signer did not answer in 30 s".to_owned()))?
            .map_err(unreachable)?
            .ok_or_else(|| {
                SignerError::Unavailable("the signer closed the connection".to_owned())
            })?;
        let reply: Reply = serde_json::from_slice(&line)
            .map_err(|e| SignerError::Unavailable(format!("the signer's reply: {e}")))?;
        match reply {
            Reply::NotGenuine { problem } => Err(match problem.into_error() {
                Some(error) => SignerError::Refused(error),
                None => SignerError::Unavailable("the signer's reply names no device".to_owned()),
            }),
            Reply::Refused { why } => Err(SignerError::Policy(why)),
            Reply::Failed { error } => Err(SignerError::Unavailable(error)),
            other => Ok(other),
        }
    }
}

fn unexpected(reply: Reply) -> SignerError {
    SignerError::Unavailable(format!("the signer answered out of turn: {reply:?}"))
}

/// The desk's responses from the signer's file and typed keys, each matched to its
/// challenge; anything that does not match is the signer's fault, not the customer's.
fn responses_of(
    challenges: &[DeviceChallenge],
    signed: &[SignedResponse],
    keys: &[TypedKey],
) -> Result<Vec<DeviceResponse>, SignerError> {
    let bad = |what: &str| SignerError::Unavailable(format!("the signer's answer: {what}"));
    signed
        .iter()
        .map(|entry| {
            let challenge = challenges
                .iter()
                .find(|c| c.identity.serial == entry.serial && c.nonce == entry.nonce)
                .ok_or_else(|| bad("a response for a device not asked about"))?;
            let typed = keys
                .iter()
                .find(|k| k.serial == entry.serial.as_str())
                .ok_or_else(|| bad("a device without its typed key"))?;
            Ok(DeviceResponse {
                model: challenge.identity.model.clone(),
                serial: entry.serial.clone(),
                key: ResponseKey::parse(&typed.key)
                    .map_err(|_| bad("a typed key that is not one"))?,
                signed: entry.clone(),
            })
        })
        .collect()
}

#[async_trait]
impl Signer for RemoteSigner {
    async fn check_export(
        &self,
        request: ResetRequest,
        _now: Timestamp,
        _max_skew_secs: i64,
    ) -> Result<VerifiedResetRequest, SignerError> {
        let export = export_xml::to_xml(&request);
        match self.ask(&Request::CheckExport { export }).await? {
            Reply::Checked => Ok(request.checked_by_signer()),
            other => Err(unexpected(other)),
        }
    }

    async fn answer(
        &self,
        number: &TicketNumber,
        request: &VerifiedResetRequest,
    ) -> Result<Answer, SignerError> {
        let export = export_xml::to_xml(
            &ResetRequest::new(request.devices().to_vec())
                .map_err(|e| SignerError::Unavailable(e.to_string()))?,
        );
        let ask = Request::Answer {
            ticket: number.to_string(),
            export,
        };
        match self.ask(&ask).await? {
            Reply::Answered {
                key_id,
                responses,
                keys,
            } => {
                let signed = response::from_xml(responses.as_bytes()).map_err(|e| {
                    SignerError::Unavailable(format!("the signer's response file: {e}"))
                })?;
                if signed.len() != request.devices().len() {
                    return Err(SignerError::Unavailable(
                        "the signer answered another number of devices".to_owned(),
                    ));
                }
                Ok(Answer {
                    key_id: KeyId::parse(&key_id)
                        .map_err(|_| SignerError::Unavailable("the signer's key id".to_owned()))?,
                    responses: responses_of(request.devices(), &signed, &keys)?,
                })
            }
            other => Err(unexpected(other)),
        }
    }

    async fn recover(
        &self,
        challenges: &[DeviceChallenge],
        signed: &[SignedResponse],
    ) -> Result<Vec<DeviceResponse>, SignerError> {
        let export = export_xml::to_xml(
            &ResetRequest::new(challenges.to_vec())
                .map_err(|e| SignerError::Unavailable(e.to_string()))?,
        );
        let ask = Request::Recover {
            export,
            responses: response::to_xml(signed),
        };
        match self.ask(&ask).await? {
            Reply::Recovered { keys } => responses_of(challenges, signed, &keys),
            other => Err(unexpected(other)),
        }
    }

    fn answers_each_challenge_once(&self) -> bool {
        true
    }

    async fn key_ids(&self) -> Result<super::SignerKeyIds, SignerError> {
        let hello = self.hello().await?;
        let active = KeyId::parse(&hello.signing_key_id)
            .map_err(|_| SignerError::Unavailable("the signer's key id".to_owned()))?;
        Ok(super::SignerKeyIds {
            master: hello.master_key_id.clone(),
            loaded_master: hello.master_key_id,
            active_signing: active.clone(),
            signing: vec![active],
        })
    }
}
