//! What the desk asks of the keys that answer devices (issue 22), and nothing more:
//! check an export's entries, answer a checked export (the typed keys and the signed
//! response), and recover the typed keys of an answer given before. Everything that
//! needs the factory master secret or a signing key goes through [`Signer`].
//!
//! In `serve` without `signer_url` the keys are in the desk's own process
//! ([`LocalSigner`], the embedded default, zero set-up). docs/SIGNER.md describes the
//! separate signer process that takes them out of it.

mod ledger;
mod local;
mod remote;
mod service;
mod socket;
mod tls;
mod wire;

pub use ledger::{Ledger, LedgerError};
pub use local::{LocalSigner, SigningKeys};
pub use remote::{RemoteSigner, SignerIdentity};
pub use service::{EX_CONFIG, MasterSource, Policy, Service, SigningKeySource, TokenKeys};
pub use socket::serve;
pub use tls::{serve_tls, server_config};

use async_trait::async_trait;

use crate::crypto::{DeskKeyIds, KeyId, KeyIds, KeyStoreError};
use crate::domain::{TicketNumber, Timestamp};
use crate::protocol::challenge::{ChallengeError, VerifiedResetRequest};
use crate::protocol::{DeviceChallenge, DeviceResponse, ResetRequest, SignedResponse};

/// Why the signer did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The export's entries are not what a device made for a live challenge.
    #[error("{0}")]
    Refused(#[from] ChallengeError),
    #[error(
        "signing key {0} is retired and the keys directory holds no newer key: run `resetdesk keys rotate`"
    )]
    Retired(KeyId),
    #[error("cannot read the signing key's status")]
    Store(#[source] crate::store::StoreError),
    /// The separate signer's own rules refused (answered before, over a cap, …).
    #[error("the signer refused: {0}")]
    Policy(String),
    /// The separate signer cannot be reached, or answered what the desk cannot read.
    #[error("the signer is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Keys(#[from] KeyStoreError),
}

/// The ids of the keys a signer answers with, for the key registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerKeyIds {
    /// The factory master secret's, as its keys directory holds it now.
    pub master: String,
    /// The master secret's as loaded at start (a local signer; a remote one says the
    /// same as `master`).
    pub loaded_master: String,
    pub active_signing: KeyId,
    /// Every signing key not retired.
    pub signing: Vec<KeyId>,
}

impl SignerKeyIds {
    /// With the desk's own secrets: what the key registry is compared with.
    pub fn with_desk_keys(&self, desk: DeskKeyIds) -> KeyIds {
        KeyIds {
            master: self.master.clone(),
            desk_secret: desk.desk_secret,
            active_signing: self.active_signing.clone(),
            signing: self.signing.clone(),
            current_seal: desk.current_seal,
            seal: desk.seal,
        }
    }
}

/// A checked export answered: one response per device, and the key that signed them.
#[derive(Debug, Clone)]
pub struct Answer {
    pub key_id: KeyId,
    pub responses: Vec<DeviceResponse>,
}

#[async_trait]
pub trait Signer: Send + Sync + 'static {
    /// Checks an export's entries at `now`: each made by its device (its MAC), not
    /// issued more than `max_skew_secs` in the future, its challenge still alive.
    async fn check_export(
        &self,
        request: ResetRequest,
        now: Timestamp,
        max_skew_secs: i64,
    ) -> Result<VerifiedResetRequest, SignerError>;

    /// Answers a checked export for ticket `number`: the typed key and the signed
    /// response of each device, signed with the active key.
    async fn answer(
        &self,
        number: &TicketNumber,
        request: &VerifiedResetRequest,
    ) -> Result<Answer, SignerError>;

    /// The typed keys of responses signed before (`signed`, for `challenges`), as the
    /// status page shows them after a one-time code.
    async fn recover(
        &self,
        challenges: &[DeviceChallenge],
        signed: &[SignedResponse],
    ) -> Result<Vec<DeviceResponse>, SignerError>;

    /// The ids of the keys it answers with.
    async fn key_ids(&self) -> Result<SignerKeyIds, SignerError>;

    /// Whether it answers each challenge once (a separate signer): a dead response mail
    /// is then sent again from what it answered (`recover`), not answered anew.
    fn answers_each_challenge_once(&self) -> bool {
        false
    }

    /// Picks up a `keys rotate` of its keys directory; the new key's id when the active
    /// key changed. A separate signer re-reads its own keys at every answer.
    fn reload(&self) -> Result<Option<KeyId>, SignerError> {
        Ok(None)
    }
}
