//! Desk side: turns a verified export into what the customer receives. This is the
//! one function the desk calls to sign; the CLI `respond` and the approval workflow
//! both go through it.

use crate::crypto::{MasterSecret, SigningKey};
use crate::domain::{DeviceModel, DeviceSerial, Timestamp};
use crate::protocol::challenge::VerifiedResetRequest;
use crate::protocol::response::SignedResponse;
use crate::protocol::response_key::ResponseKey;

/// The answer for one device: a key to type and a signed entry for the response file.
#[derive(Debug, Clone)]
pub struct DeviceResponse {
    pub model: DeviceModel,
    pub serial: DeviceSerial,
    pub key: ResponseKey,
    pub signed: SignedResponse,
}

impl DeviceResponse {
    pub fn expires_at(&self) -> Timestamp {
        self.signed.expires_at
    }
}

/// Answers every device of a verified export: derives each device key from the master
/// secret for the typed key, and signs each response with `signer`.
pub fn respond(
    request: &VerifiedResetRequest,
    master: &MasterSecret,
    signer: &SigningKey,
) -> Vec<DeviceResponse> {
    request
        .devices()
        .iter()
        .map(|challenge| {
            let serial = &challenge.identity.serial;
            let device_key = master.derive_device_key(serial);
            DeviceResponse {
                model: challenge.identity.model.clone(),
                serial: serial.clone(),
                key: ResponseKey::derive(&device_key, serial, &challenge.nonce),
                signed: SignedResponse::sign(challenge, signer),
            }
        })
        .collect()
}
