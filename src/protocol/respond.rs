//! Desk side: turns a verified export into what the customer receives. This is the
//! one function the desk calls to sign; the CLI `respond` and the approval workflow
//! both go through it.

use crate::crypto::{DeviceKeys, KeyId, MasterSecret, Signature, SigningKey};
use crate::domain::{DeviceModel, DeviceSerial, Timestamp};
use crate::protocol::DeviceChallenge;
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

/// Answers every device of a verified export, in the export's protocol version: derives
/// each device key from the master secret for the typed key, and signs each response
/// with `signer`.
pub fn respond(
    request: &VerifiedResetRequest,
    master: &MasterSecret,
    signer: &SigningKey,
) -> Vec<DeviceResponse> {
    match respond_with(request, master, signer.id(), |bytes| {
        Ok::<_, std::convert::Infallible>(signer.sign(bytes))
    }) {
        Ok(responses) => responses,
        Err(never) => match never {},
    }
}

/// [`respond`] with the keys held elsewhere (a PKCS#11 token): each device key from
/// `keys`, and `sign` signing each response's canonical bytes with the key named
/// `key_id`; either may fail.
pub fn respond_with<K: DeviceKeys, E: From<K::Error>>(
    request: &VerifiedResetRequest,
    keys: &K,
    key_id: &KeyId,
    mut sign: impl FnMut(&[u8]) -> Result<Signature, E>,
) -> Result<Vec<DeviceResponse>, E> {
    request
        .devices()
        .iter()
        .map(|challenge| {
            let serial = &challenge.identity.serial;
            let device_key = keys.device_key(serial)?;
            Ok(DeviceResponse {
                model: challenge.identity.model.clone(),
                serial: serial.clone(),
                key: ResponseKey::derive(
                    &device_key,
                    serial,
                    &challenge.nonce,
                    challenge.binding.as_ref().map(|b| &b.export_id),
                ),
                signed: SignedResponse::sign_with(challenge, key_id, &mut sign)?,
            })
        })
        .collect()
}

/// The responses a ticket was answered with, once more: the signed entries as the desk
/// stored them, and each typed key derived again from the master secret (keys are never
/// stored). For the status page, after the customer proved control of their address.
/// A signed entry whose challenge is not among `challenges` is left out. The device
/// keys come from `keys` (the master secret, or a token that may fail).
pub fn recover_responses<K: DeviceKeys>(
    challenges: &[DeviceChallenge],
    signed: &[SignedResponse],
    keys: &K,
) -> Result<Vec<DeviceResponse>, K::Error> {
    let mut recovered = Vec::new();
    for entry in signed {
        let Some(challenge) = challenges.iter().find(|c| {
            c.identity.serial == entry.serial
                && c.nonce == entry.nonce
                && c.binding.as_ref().map(|b| b.export_id) == entry.export_id
        }) else {
            continue;
        };
        let serial = &challenge.identity.serial;
        recovered.push(DeviceResponse {
            model: challenge.identity.model.clone(),
            serial: serial.clone(),
            key: ResponseKey::derive(
                &keys.device_key(serial)?,
                serial,
                &entry.nonce,
                entry.export_id.as_ref(),
            ),
            signed: entry.clone(),
        });
    }
    Ok(recovered)
}
