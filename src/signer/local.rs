//! The keys in the desk's own process: the factory master secret and the signing keys
//! read from its keys directory (`DeskKeys`), the active key's status read from the
//! database right before signing, so a key retired on any replica signs nothing more.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Answer, Signer, SignerError};
use std::sync::RwLock;

use super::SignerKeyIds;
use crate::crypto::{KeyId, KeyStore, KeyStoreError, MasterSecret, SigningKey};
use crate::domain::{TicketNumber, Timestamp};
use crate::protocol::challenge::VerifiedResetRequest;
use crate::protocol::{
    DeviceChallenge, DeviceResponse, ResetRequest, SignedResponse, recover_responses, respond,
};
use crate::store::{KeyRecordStatus, Store};

/// The master secret and the active signing key, as read from the keys directory. The
/// signing key can change while the desk runs (`keys rotate` on any replica's keys
/// directory): [`SigningKeys::reload`] picks it up.
pub struct SigningKeys {
    master: MasterSecret,
    active: RwLock<Arc<SigningKey>>,
    store: KeyStore,
}

impl SigningKeys {
    pub fn load(store: KeyStore) -> Result<Self, KeyStoreError> {
        Ok(Self {
            master: store.master_secret()?,
            active: RwLock::new(Arc::new(store.active_signing_key()?)),
            store,
        })
    }

    /// The key that signs now.
    pub fn signer(&self) -> Arc<SigningKey> {
        // A poisoned lock only means a reload panicked; the key inside is still whole.
        self.active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the keyring; returns the new key id when the active key changed.
    pub fn reload(&self) -> Result<Option<KeyId>, KeyStoreError> {
        let active = self.store.active_signing_key()?;
        let mut signer = self.active.write().unwrap_or_else(|e| e.into_inner());
        if signer.id() == active.id() {
            return Ok(None);
        }
        let id = active.id().clone();
        *signer = Arc::new(active);
        Ok(Some(id))
    }
}

pub struct LocalSigner {
    keys: SigningKeys,
    store: Arc<dyn Store>,
}

impl LocalSigner {
    pub fn new(keys: SigningKeys, store: Arc<dyn Store>) -> Self {
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
        let Ok(recovered) = recover_responses(challenges, signed, &self.keys.master);
        Ok(recovered)
    }

    async fn key_ids(&self) -> Result<SignerKeyIds, SignerError> {
        let on_disk = self.keys.store.key_ids()?;
        Ok(SignerKeyIds {
            master: on_disk.master,
            loaded_master: self.keys.master.key_id(),
            active_signing: on_disk.active_signing,
            signing: on_disk.signing,
        })
    }

    fn reload(&self) -> Result<Option<KeyId>, SignerError> {
        Ok(self.keys.reload()?)
    }
}
