//! The keys in the desk's own process: the factory master secret and the signing keys
//! read from its keys directory (`DeskKeys`), the active key's status read from the
//! database right before signing, so a key retired on any replica signs nothing more.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Answer, Signer, SignerError};
use crate::crypto::SigningKey;
use crate::desk::DeskKeys;
use crate::domain::{TicketNumber, Timestamp};
use crate::protocol::challenge::VerifiedResetRequest;
use crate::protocol::{
    DeviceChallenge, DeviceResponse, ResetRequest, SignedResponse, recover_responses, respond,
};
use crate::store::{KeyRecordStatus, Store};

pub struct LocalSigner {
    keys: Arc<DeskKeys>,
    store: Arc<dyn Store>,
}

impl LocalSigner {
    pub fn new(keys: Arc<DeskKeys>, store: Arc<dyn Store>) -> Self {
        Self { keys, store }
    }

    /// The key to sign with now. A retired key makes this replica re-read its keyring
    /// for the key that replaced it.
    async fn signing_key(&self) -> Result<Arc<SigningKey>, SignerError> {
        let signer = self.keys.signer();
        if self.signable(&signer).await? {
            return Ok(signer);
        }
        match self.keys.reload() {
            Ok(Some(id)) => {
                tracing::info!(key_id = %id, "signing key retired; now signing with its successor")
            }
            Ok(None) => {}
            Err(error) => tracing::error!(%error, "cannot reload the signing key"),
        }
        let signer = self.keys.signer();
        if self.signable(&signer).await? {
            Ok(signer)
        } else {
            Err(SignerError::Retired(signer.id().clone()))
        }
    }

    async fn signable(&self, signer: &SigningKey) -> Result<bool, SignerError> {
        let status = self
            .store
            .key_status(signer.id().as_str())
            .await
            .map_err(SignerError::Store)?;
        Ok(status != Some(KeyRecordStatus::Retired))
    }
}

#[async_trait]
impl Signer for LocalSigner {
    async fn check_export(
        &self,
        request: ResetRequest,
        now: Timestamp,
        max_skew_secs: i64,
    ) -> Result<VerifiedResetRequest, SignerError> {
        Ok(request.verify(&self.keys.master, now, max_skew_secs)?)
    }

    async fn answer(
        &self,
        _number: &TicketNumber,
        request: &VerifiedResetRequest,
    ) -> Result<Answer, SignerError> {
        let key = self.signing_key().await?;
        Ok(Answer {
            key_id: key.id().clone(),
            responses: respond(request, &self.keys.master, &key),
        })
    }

    async fn recover(
        &self,
        challenges: &[DeviceChallenge],
        signed: &[SignedResponse],
    ) -> Result<Vec<DeviceResponse>, SignerError> {
        Ok(recover_responses(challenges, signed, &self.keys.master))
    }
}
