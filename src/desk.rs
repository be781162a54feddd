//! The desk's services in one place, built once at start and shared by the HTTP
//! handlers and workers: storage, blobs, keys, settings and the clock.

use std::sync::Arc;

use crate::blobs::BlobStore;
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::{DeskSecret, MasterSecret, SigningKey};
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
}

/// Key material the running desk needs, loaded once at start.
pub struct DeskKeys {
    pub master: MasterSecret,
    pub signer: SigningKey,
    pub desk_secret: DeskSecret,
}

impl Desk {
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
