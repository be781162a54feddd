//! The signed response file a device imports:
//!
//! ```xml
//! <ResetResponse xmlns="urn:resetdesk:reset-response" version="1">
//!   <Device>
//!     <Serial>DS-7608NI-K2/8P0820231115CCRRJ12345678</Serial>
//!     <Nonce>32 hex characters: the challenge answered</Nonce>
//!     <ExpiresAt>2026-11-26T22:48:25Z</ExpiresAt>
//!     <KeyId>16 hex characters</KeyId>
//!     <Signature>128 hex characters: Ed25519 over the canonical bytes</Signature>
//!   </Device>
//! </ResetResponse>
//! ```
//!
//! Signed bytes: `"resetdesk.response.v1" 0x00 || version(u8) || str8(serial) ||
//! nonce(16) || expires_at(i64) || str8(key id)`. The key id is signed too, so a
//! response cannot be re-labelled as made by another key.

use crate::crypto::{KeyId, PublicKeySet, Signature, SigningKey};
use crate::domain::{DeviceSerial, Timestamp};
use crate::protocol::PROTOCOL_VERSION;
use crate::protocol::canonical::{ByteWriter, RESPONSE_DOMAIN};
use crate::protocol::challenge::{DeviceChallenge, FieldProblem, MAX_DEVICES_PER_REQUEST, Nonce};
use crate::protocol::xml::{self, Schema, XmlError};

const SCHEMA: Schema = Schema {
    root: "ResetResponse",
    namespace: "urn:resetdesk:reset-response",
    record: "Device",
    fields: &["Serial", "Nonce", "ExpiresAt", "KeyId", "Signature"],
    max_records: MAX_DEVICES_PER_REQUEST,
};

/// One device's signed answer to one challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedResponse {
    pub serial: DeviceSerial,
    pub nonce: Nonce,
    pub expires_at: Timestamp,
    pub key_id: KeyId,
    pub signature: Signature,
}

/// Why a response's signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the response is signed by key {0}, which this device does not trust")]
    UnknownKeyId(KeyId),
    #[error("the response's signature is not valid: the file was altered or damaged")]
    BadSignature,
}

/// Why a response file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseFileError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error(transparent)]
    Field(#[from] FieldProblem),
}

impl SignedResponse {
    /// The exact bytes the signature covers (see the module documentation).
    pub fn signed_bytes(&self) -> Vec<u8> {
        Self::canonical_bytes(&self.serial, &self.nonce, self.expires_at, &self.key_id)
    }

    fn canonical_bytes(
        serial: &DeviceSerial,
        nonce: &Nonce,
        expires_at: Timestamp,
        key_id: &KeyId,
    ) -> Vec<u8> {
        ByteWriter::with_domain(RESPONSE_DOMAIN)
            .u8(PROTOCOL_VERSION)
            .str8(serial.as_str())
            .bytes(&nonce.0)
            .i64(expires_at.unix_seconds())
            .str8(key_id.as_str())
            .finish()
    }

    /// Desk side: signs the answer to `challenge`, valid until the challenge expires.
    pub fn sign(challenge: &DeviceChallenge, key: &SigningKey) -> Self {
        let serial = challenge.identity.serial.clone();
        let expires_at = challenge.expires_at();
        let key_id = key.id().clone();
        let signature = key.sign(&Self::canonical_bytes(
            &serial,
            &challenge.nonce,
            expires_at,
            &key_id,
        ));
        Self {
            serial,
            nonce: challenge.nonce,
            expires_at,
            key_id,
            signature,
        }
    }

    /// Device side: checks the signature against the keys the firmware trusts.
    pub fn verify(&self, trusted: &PublicKeySet) -> Result<(), SignatureError> {
        let key = trusted
            .find(&self.key_id)
            .ok_or_else(|| SignatureError::UnknownKeyId(self.key_id.clone()))?;
        key.verify(&self.signed_bytes(), &self.signature)
            .map_err(|_| SignatureError::BadSignature)
    }
}

/// Writes a response file holding one entry per device.
pub fn to_xml(responses: &[SignedResponse]) -> String {
    let records: Vec<_> = responses
        .iter()
        .map(|r| {
            vec![
                ("Serial", r.serial.to_string()),
                ("Nonce", r.nonce.to_hex()),
                ("ExpiresAt", r.expires_at.to_string()),
                ("KeyId", r.key_id.to_string()),
                ("Signature", data_encoding::HEXLOWER.encode(&r.signature.0)),
            ]
        })
        .collect();
    xml::write(&SCHEMA, PROTOCOL_VERSION, &records)
}

/// Reads a response file. Signatures are not checked here: see [`SignedResponse::verify`].
pub fn from_xml(bytes: &[u8]) -> Result<Vec<SignedResponse>, ResponseFileError> {
    let records = xml::read(&SCHEMA, PROTOCOL_VERSION, bytes)?;
    let mut responses = Vec::with_capacity(records.len());
    for record in records {
        let n = record.index;
        let signature = data_encoding::HEXLOWER_PERMISSIVE
            .decode(record.required("Signature")?.as_bytes())
            .ok()
            .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
            .ok_or_else(|| FieldProblem {
                device: n,
                field: "Signature",
                problem: "is not 128 hex characters".to_owned(),
            })?;
        responses.push(SignedResponse {
            serial: FieldProblem::check(
                n,
                "Serial",
                DeviceSerial::parse(record.required("Serial")?),
            )?,
            nonce: FieldProblem::check(n, "Nonce", Nonce::parse_hex(record.required("Nonce")?))?,
            expires_at: FieldProblem::check(
                n,
                "ExpiresAt",
                Timestamp::parse_rfc3339(record.required("ExpiresAt")?),
            )?,
            key_id: FieldProblem::check(n, "KeyId", KeyId::parse(record.required("KeyId")?))?,
            signature: Signature(signature),
        });
    }
    Ok(responses)
}
