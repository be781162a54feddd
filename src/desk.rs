//! The desk's services in one place, built once at start and shared by the HTTP
//! handlers and workers: storage, blobs, keys, settings and the clock.

use std::sync::Arc;

use crate::blobs::BlobStore;
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::{
    DeskSecret, KeyStore, KeyStoreError, SealError, SealKeyId, SealKeys, SealedSecret,
};
use crate::domain::Secret;
use crate::domain::TicketNumber;
use crate::mail::compose::MailContext;
use crate::store::Store;

pub struct Desk {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub blobs: BlobStore,
    pub keys: DeskKeys,
    /// The factory master secret and the signing keys, as the desk may use them: check
    /// an export, answer it, recover an answer's typed keys (`signer/`).
    pub signer: Arc<dyn crate::signer::Signer>,
    pub clock: Arc<dyn Clock>,
    pub mail: MailContext,
    /// Picture decoding, bounded in cores and memory, so a burst of big photos or QR
    /// screenshots queues instead of taking the machine from the requests behind it.
    pub pictures: crate::intake::picture_work::PictureWork,
    /// Uploads in flight: in memory up to `upload_memory_mb`, then on disk.
    pub spool: crate::intake::spool::Spool,
    /// Rings this replica's outbox worker when a message is queued.
    pub mail_queued: Arc<tokio::sync::Notify>,
    /// Wakes this replica's evidence worker when a label photo was stored.
    pub evidence_queued: Arc<tokio::sync::Notify>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// How many tickets each status holds, counted again now and then (see there).
    pub queue_counts: crate::review::queue_counts::QueueCounts,
    /// How long answering takes, as measured over the last week (see there).
    pub answer_time: crate::customer::answer_time::AnswerTime,
}

impl Desk {
    /// The median seconds from request to decision over the last week, or `None`
    /// without enough decisions: what customers are told to expect.
    pub async fn answer_secs(&self) -> Option<i64> {
        self.answer_time
            .median_secs(&self.store, self.clock.now())
            .await
    }
}

/// The desk's own secrets: the desk secret (cookies, links, tokens) and the seal keys
/// (what the database keeps sealed). The master secret and the signing keys are the
/// signer's (`Desk::signer`), in this process or another.
pub struct DeskKeys {
    pub desk_secret: DeskSecret,
    /// Seals the secrets the database keeps (TOTP seeds); re-read with the signing key.
    seal: std::sync::RwLock<Arc<SealKeys>>,
    store: KeyStore,
}

impl DeskKeys {
    /// Loads the desk's own secrets from the keys directory.
    pub fn load(store: KeyStore) -> Result<Self, KeyStoreError> {
        Ok(Self {
            desk_secret: store.desk_secret()?,
            seal: std::sync::RwLock::new(Arc::new(store.seal_keys()?)),
            store,
        })
    }

    /// The seal keys as last read.
    pub fn seal_keys(&self) -> Arc<SealKeys> {
        self.seal.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the seal keys; returns the new current key id when it changed.
    pub fn reload_seal_keys(&self) -> Result<Option<SealKeyId>, KeyStoreError> {
        let fresh = self.store.seal_keys()?;
        let mut seal = self.seal.write().unwrap_or_else(|e| e.into_inner());
        let changed = fresh.current_id() != seal.current_id();
        let id = fresh.current_id().clone();
        *seal = Arc::new(fresh);
        Ok(changed.then_some(id))
    }

    /// Seals a user's TOTP seed for the database.
    pub fn seal_totp_seed(&self, user_id: i64, seed: &Secret) -> SealedSecret {
        self.seal_keys().seal_totp_seed(user_id, seed)
    }

    /// Opens a user's sealed TOTP seed. A key this desk has not read yet (another
    /// replica rotated, then re-sealed the row) is looked for in the keys directory once.
    pub fn open_totp_seed(&self, user_id: i64, sealed: &SealedSecret) -> Result<Secret, SealError> {
        match self.seal_keys().open_totp_seed(user_id, sealed) {
            Err(SealError::UnknownKey(id)) => {
                if let Err(error) = self.reload_seal_keys() {
                    tracing::error!(%error, "cannot re-read the seal keys");
                }
                let keys = self.seal_keys();
                if !keys.knows(&id) {
                    return Err(SealError::UnknownKey(id));
                }
                keys.open_totp_seed(user_id, sealed)
            }
            other => other,
        }
    }
}

impl Desk {
    /// `Err` with the reason when this replica's keys (as loaded, and as its keys
    /// directory holds them now) differ from the database's record of the desk's keys.
    pub async fn keys_agree_with_database(&self) -> Result<(), String> {
        let registry = match self.store.registered_keys().await {
            Ok(registry) => registry,
            Err(error) => {
                tracing::warn!(%error, "cannot read the key registry");
                return Err("cannot read the key registry".to_owned());
            }
        };
        let signer = self
            .signer
            .key_ids()
            .await
            .map_err(|error| format!("cannot read the signer's keys: {error}"))?;
        let desk = self.keys.store.desk_key_ids().map_err(|error| {
            format!(
                "cannot read the keys directory {}: {error}",
                self.keys.store.dir().display()
            )
        })?;
        let on_disk = signer.with_desk_keys(desk);
        let mut loaded = on_disk.clone();
        loaded.master = signer.loaded_master;
        loaded.desk_secret = Some(self.keys.desk_secret.key_id());
        let mut problems = crate::key_registry::disagreements(&on_disk, &registry);
        for problem in crate::key_registry::disagreements(&loaded, &registry) {
            if !problems.contains(&problem) {
                problems.push(format!("(loaded at start) {problem}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "this replica's keys are not the desk's ({}): {}",
                self.keys.store.dir().display(),
                problems.join("; ")
            ))
        }
    }

    /// A ticket's status link and the pages it opens.
    pub fn status_link(&self, number: &TicketNumber) -> StatusLink {
        StatusLink {
            number: number.to_string(),
            token: self.keys.desk_secret.status_token(number.as_str()),
        }
    }

    /// The customer's status link for a ticket, as e-mails carry it.
    pub fn status_url(&self, number: &TicketNumber) -> String {
        self.absolute(&self.status_link(number).to(LinkedPage::Status))
    }

    /// Where the customer uploads a new label photo, as e-mails carry it.
    pub fn photo_url(&self, number: &TicketNumber) -> String {
        self.absolute(&self.status_link(number).to(LinkedPage::Photo))
    }

    fn absolute(&self, path: &str) -> String {
        format!("{}{path}", self.settings.http.public_url)
    }
}

/// The pages a ticket's status link opens: each needs the link's token, so no page of
/// a ticket can be reached without the link the customer was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkedPage {
    Status,
    Photo,
    Code,
    Feedback,
    Response,
    /// The request form, filled in with the ticket's customer: a new request after one
    /// whose response did not work.
    Again,
    /// Where the customer's message to support is posted.
    Reply,
}

impl LinkedPage {
    fn suffix(self) -> &'static str {
        match self {
            Self::Status => "",
            Self::Photo => "/photo",
            Self::Code => "/code",
            Self::Feedback => "/feedback",
            Self::Response => "/response",
            Self::Again => "/again",
            Self::Reply => "/reply",
        }
    }
}

/// A ticket's status link: the one place its URLs are written, for e-mails
/// ([`Desk::status_url`]) and for the pages that link to each other (paths).
pub struct StatusLink {
    number: String,
    token: String,
}

impl StatusLink {
    /// The path of one of the ticket's pages, with the link's token.
    pub fn to(&self, page: LinkedPage) -> String {
        format!("/status/{}{}?t={}", self.number, page.suffix(), self.token)
    }

    /// The path of the response file, with the link's token and the file's own.
    pub fn response_file(&self, file_token: &str) -> String {
        format!(
            "/status/{}/response.xml?t={}&f={file_token}",
            self.number, self.token
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_link_paths_carry_the_token() {
        let link = StatusLink {
            number: "RQ-1".to_owned(),
            token: "tok".to_owned(),
        };
        assert_eq!(link.to(LinkedPage::Status), "/status/RQ-1?t=tok");
        assert_eq!(link.to(LinkedPage::Photo), "/status/RQ-1/photo?t=tok");
        assert_eq!(link.to(LinkedPage::Code), "/status/RQ-1/code?t=tok");
        assert_eq!(link.to(LinkedPage::Feedback), "/status/RQ-1/feedback?t=tok");
        assert_eq!(link.to(LinkedPage::Response), "/status/RQ-1/response?t=tok");
        assert_eq!(
            link.response_file("f1"),
            "/status/RQ-1/response.xml?t=tok&f=f1"
        );
    }
}
