//! The desk's services in one place, built once at start and shared by the HTTP
//! handlers and workers: storage, blobs, keys, settings and the clock.

use std::sync::Arc;

use crate::blobs::BlobStore;
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::{DeskSecret, KeyId, KeyStore, KeyStoreError, MasterSecret, SigningKey};
use crate::domain::TicketNumber;
use crate::mail::compose::MailContext;
use crate::store::Store;

pub struct Desk {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub blobs: BlobStore,
    pub keys: DeskKeys,
    pub clock: Arc<dyn Clock>,
    pub mail: MailContext,
    /// Bounds how many pictures are decoded at once, so a burst of 12-megapixel uploads
    /// queues instead of taking every core from the requests behind it.
    pub image_permits: Arc<tokio::sync::Semaphore>,
    /// Intake requests per client address, per hour.
    pub intake_by_address: crate::intake::limits::SlidingWindow,
    /// Intake requests per device serial, per hour.
    pub intake_by_serial: crate::intake::limits::SlidingWindow,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

/// Key material the running desk needs. The signing key can change while the desk runs
/// (`keys rotate` on any replica's keys directory): [`DeskKeys::reload`] picks it up.
pub struct DeskKeys {
    pub master: MasterSecret,
    pub desk_secret: DeskSecret,
    signer: std::sync::RwLock<Arc<SigningKey>>,
    store: KeyStore,
}

impl DeskKeys {
    /// Loads everything from the keys directory.
    pub fn load(store: KeyStore) -> Result<Self, KeyStoreError> {
        Ok(Self {
            master: store.master_secret()?,
            desk_secret: store.desk_secret()?,
            signer: std::sync::RwLock::new(Arc::new(store.active_signing_key()?)),
            store,
        })
    }

    /// The key that signs now.
    pub fn signer(&self) -> Arc<SigningKey> {
        // A poisoned lock only means a reload panicked; the key inside is still whole.
        self.signer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the keyring; returns the new key id when the active key changed.
    pub fn reload(&self) -> Result<Option<KeyId>, KeyStoreError> {
        let active = self.store.active_signing_key()?;
        let mut signer = self.signer.write().unwrap_or_else(|e| e.into_inner());
        if signer.id() == active.id() {
            return Ok(None);
        }
        let id = active.id().clone();
        *signer = Arc::new(active);
        Ok(Some(id))
    }
}

/// The longest one picture may take to decode before the request gives up on it.
const IMAGE_WORK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Why picture work produced nothing. Both are the picture's fault as far as the
/// customer is concerned: a crafted file that crashes or stalls a decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ImageWorkError {
    #[error(
        "the picture could not be read (it may be damaged); send it again as a plain JPEG or PNG"
    )]
    Failed,
    #[error("the picture took too long to read; send a smaller JPEG or PNG")]
    TooSlow,
}

impl Desk {
    /// How many picture decodes may run at once: one per core.
    pub fn image_permit_count() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }

    /// Runs CPU-heavy picture work (QR reading, photo checks) on the blocking pool,
    /// never more than [`Self::image_permit_count`] at a time.
    pub async fn image_work<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ImageWorkError> {
        // The semaphore is never closed, so acquiring cannot fail; the permit travels with
        // the work, so a decode that outlives its caller still counts against the bound.
        let permit = self.image_permits.clone().acquire_owned().await.ok();
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        });
        match tokio::time::timeout(IMAGE_WORK_TIMEOUT, task).await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(_)) => Err(ImageWorkError::Failed),
            Err(_) => Err(ImageWorkError::TooSlow),
        }
    }

    /// Where the customer uploads a new label photo.
    pub fn photo_url(&self, number: &TicketNumber) -> String {
        format!(
            "{}/status/{}/photo?t={}",
            self.settings.public_url,
            number,
            self.keys.desk_secret.status_token(number.as_str())
        )
    }

    /// The customer's status link for a ticket.
    pub fn status_url(&self, number: &TicketNumber) -> String {
        format!(
            "{}/status/{}?t={}",
            self.settings.public_url,
            number,
            self.keys.desk_secret.status_token(number.as_str())
        )
    }
}
