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
//! Signed bytes: `"resetdesk.response.v1" 0x00 || 0x01 || str8(serial) ||
//! nonce(16) || expires_at(i64) || str8(key id)`. The key id is signed too, so a
//! response cannot be re-labelled as made by another key.
//!
//! A version 2 export is answered in version 2: `version="2"`, each entry has an
//! `<ExportId>` (first), and the signed bytes are `"resetdesk.response.v2" 0x00 || 0x02 ||
//! export id(16) || str8(serial) || nonce(16) || expires_at(i64) || str8(key id)`, so the
//! answer is bound to the export it answers as well as to the challenge.

use crate::crypto::{KeyId, PublicKeySet, Signature, SigningKey};
use crate::domain::{DeviceSerial, Timestamp};
use crate::protocol::canonical::{ByteWriter, RESPONSE};
use crate::protocol::challenge::{
    DeviceChallenge, ExportId, FieldProblem, MAX_DEVICES_PER_REQUEST, Nonce,
};
use crate::protocol::xml::{self, Schema, Versions, XmlError};
use crate::protocol::{PROTOCOL_V1, PROTOCOL_V2};

/// The fields of both versions; `ExportId` is version 2's.
const SCHEMA: Schema = Schema {
    root: "ResetResponse",
    namespace: "urn:resetdesk:reset-response",
    record: "Device",
    fields: &[
        "ExportId",
        "Serial",
        "Nonce",
        "ExpiresAt",
        "KeyId",
        "Signature",
    ],
    max_records: MAX_DEVICES_PER_REQUEST,
};

const VERSIONS: Versions = Versions {
    known: &[PROTOCOL_V1, PROTOCOL_V2],
    named: "1 and 2",
};

/// One device's signed answer to one challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedResponse {
    /// The export answered, for a version 2 response; `None` in version 1.
    pub export_id: Option<ExportId>,
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
    #[error("the file mixes entries of protocol versions 1 and 2")]
    MixedVersions,
}

impl SignedResponse {
    /// The exact bytes the signature covers (see the module documentation).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut writer = ByteWriter::versioned(&RESPONSE, self.export_id.as_ref().map(|id| &id.0));
        writer
            .str8(self.serial.as_str())
            .bytes(&self.nonce.0)
            .i64(self.expires_at.unix_seconds())
            .str8(self.key_id.as_str())
            .finish()
    }

    /// The protocol version of this response: the version of the export it answers.
    pub fn version(&self) -> u8 {
        if self.export_id.is_some() {
            PROTOCOL_V2
        } else {
            PROTOCOL_V1
        }
    }

    /// Desk side: signs the answer to `challenge`, valid until the challenge expires, in
    /// the challenge's protocol version.
    pub fn sign(challenge: &DeviceChallenge, key: &SigningKey) -> Self {
        match Self::sign_with(challenge, key.id(), |bytes| {
            Ok::<_, std::convert::Infallible>(key.sign(bytes))
        }) {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// [`Self::sign`] with a key held elsewhere (a PKCS#11 token): `sign` signs the
    /// canonical bytes with the key named `key_id`, and may fail.
    pub fn sign_with<E>(
        challenge: &DeviceChallenge,
        key_id: &KeyId,
        sign: impl FnOnce(&[u8]) -> Result<Signature, E>,
    ) -> Result<Self, E> {
        let mut response = Self {
            export_id: challenge.binding.as_ref().map(|b| b.export_id),
            serial: challenge.identity.serial.clone(),
            nonce: challenge.nonce,
            expires_at: challenge.expires_at(),
            key_id: key_id.clone(),
            signature: Signature([0; 64]),
        };
        response.signature = sign(&response.signed_bytes())?;
        Ok(response)
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

/// Writes a response file holding one entry per device. The entries answer one export,
/// so they share its version; the file declares the first entry's.
pub fn to_xml(responses: &[SignedResponse]) -> String {
    let version = responses
        .first()
        .map_or(PROTOCOL_V1, SignedResponse::version);
    debug_assert!(responses.iter().all(|r| r.version() == version));
    let records: Vec<_> = responses
        .iter()
        .map(|r| {
            let mut fields = Vec::with_capacity(6);
            if let Some(export_id) = &r.export_id {
                fields.push(("ExportId", export_id.to_hex()));
            }
            fields.extend([
                ("Serial", r.serial.to_string()),
                ("Nonce", r.nonce.to_hex()),
                ("ExpiresAt", r.expires_at.to_string()),
                ("KeyId", r.key_id.to_string()),
                ("Signature", data_encoding::HEXLOWER.encode(&r.signature.0)),
            ]);
            fields
        })
        .collect();
    xml::write(&SCHEMA, version, &records)
}

/// Reads a response file. Signatures are not checked here: see [`SignedResponse::verify`].
pub fn from_xml(bytes: &[u8]) -> Result<Vec<SignedResponse>, ResponseFileError> {
    let (version, records) = xml::read(&SCHEMA, &VERSIONS, bytes)?;
    let mut responses = Vec::with_capacity(records.len());
    for record in records {
        let n = record.index;
        let export_id = match (version, record.optional("ExportId")) {
            (PROTOCOL_V1, None) => None,
            (PROTOCOL_V1, Some(_)) => return Err(ResponseFileError::MixedVersions),
            (_, _) => Some(FieldProblem::check(
                n,
                "ExportId",
                ExportId::parse_hex(record.required("ExportId")?),
            )?),
        };
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
            export_id,
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
