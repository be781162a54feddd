//! Sealing the secrets the database has to keep readable by the desk (TOTP seeds), so
//! that a copy of the database or of a backup alone does not give them away.
//!
//! AES-256-GCM (ring's `aead`), a fresh random 96-bit nonce for every seal, and as
//! associated data a domain label and the owner's row id: a sealed value copied onto
//! another user's row, or into another column, does not open. What is stored is
//! `hex(nonce || ciphertext || tag)` beside the id of the key that sealed it, so a key can
//! be rotated: the new key seals from then on, values sealed under an older one still
//! open and are re-sealed by the desk.
//!
//! The keys are 32 random bytes each, one file per key under `keys/seal/`, mode 0600
//! (see [`super::KeyStore`]). Random 96-bit nonces stay safe for far more seals than a
//! desk makes under one key (one per TOTP enrolment).

use std::collections::HashMap;
use std::fmt;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::domain::Secret;

/// What a TOTP seed is sealed for: bound in with the user id.
const TOTP_SEED_DOMAIN: &[u8] = b"resetdesk.totp-seed.v1\0";
/// What a stored response signature is sealed for: bound in with its challenge.
const RESPONSE_SIGNATURE_DOMAIN: &[u8] = b"resetdesk.response-signature.v1\0";
const TAG_LEN: usize = 16;

/// A seal key's id: 16 lowercase hex characters, random (not derived from the key, so
/// it says nothing about it).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct SealKeyId(String);

/// A seal key id that is not 16 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not a seal key id (16 hex characters)")]
pub struct SealKeyIdError;

impl SealKeyId {
    pub(super) fn random() -> Self {
        Self(data_encoding::HEXLOWER.encode(&super::random_bytes::<8>()))
    }

    /// Reads an id as the database and the key file names store it.
    pub fn parse(raw: &str) -> Result<Self, SealKeyIdError> {
        if raw.len() == 16 && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(SealKeyIdError)
        }
    }

    /// The id as stored: 16 lowercase hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SealKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value sealed under one of the desk's seal keys, as the database keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// The key that sealed it.
    pub key_id: SealKeyId,
    /// `hex(nonce || ciphertext || tag)`.
    pub ciphertext: String,
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedSecret(key {})", self.key_id)
    }
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error(
        "the value is sealed with key {0}, which is not in the keys directory's seal/ folder: \
         restore that key file (every replica needs the same keys directory)"
    )]
    UnknownKey(SealKeyId),
    #[error("the sealed value does not open: it was altered, damaged, or belongs to another row")]
    Damaged,
}

/// The desk's seal keys: the current one, which seals, and every older one, which still
/// opens what it sealed.
pub struct SealKeys {
    current: SealKeyId,
    keys: HashMap<SealKeyId, LessSafeKey>,
}

impl SealKeys {
    /// `keys` must hold `current`.
    pub(super) fn new(
        current: SealKeyId,
        keys: impl IntoIterator<Item = (SealKeyId, [u8; 32])>,
    ) -> Option<Self> {
        let keys: HashMap<_, _> = keys
            .into_iter()
            .map(|(id, bytes)| {
                #[allow(clippy::expect_used)]
                let key =
                    UnboundKey::new(&AES_256_GCM, &bytes).expect("a 32-byte key fits AES-256");
                (id, LessSafeKey::new(key))
            })
            .collect();
        keys.contains_key(&current)
            .then_some(Self { current, keys })
    }

    /// The key that seals new values.
    pub fn current_id(&self) -> &SealKeyId {
        &self.current
    }

    /// Every key's id, sorted.
    pub fn ids(&self) -> Vec<SealKeyId> {
        let mut ids: Vec<_> = self.keys.keys().cloned().collect();
        ids.sort_by_key(ToString::to_string);
        ids
    }

    /// Whether `id` is one of these keys.
    pub fn knows(&self, id: &SealKeyId) -> bool {
        self.keys.contains_key(id)
    }

    /// Seals a user's TOTP seed under the current key.
    pub fn seal_totp_seed(&self, user_id: i64, seed: &Secret) -> SealedSecret {
        self.seal(
            &associated(TOTP_SEED_DOMAIN, user_id),
            seed.expose().as_bytes(),
        )
    }

    /// Seals a signed response's signature under the current key, bound to the challenge
    /// it answers (`serial`, `nonce`). With the ticket's devices a signature in clear
    /// rebuilds a response file the device accepts, so the database keeps it sealed.
    pub fn seal_response_signature(
        &self,
        serial: &str,
        nonce: &[u8; 16],
        signature: &[u8; 64],
    ) -> SealedSecret {
        self.seal(&challenge_associated(serial, nonce), signature)
    }

    /// Opens a signature sealed by [`Self::seal_response_signature`] for that challenge.
    pub fn open_response_signature(
        &self,
        serial: &str,
        nonce: &[u8; 16],
        sealed: &SealedSecret,
    ) -> Result<[u8; 64], SealError> {
        self.open(&challenge_associated(serial, nonce), sealed)?
            .try_into()
            .map_err(|_| SealError::Damaged)
    }

    /// Opens a user's TOTP seed sealed by [`Self::seal_totp_seed`] under any of these keys.
    pub fn open_totp_seed(&self, user_id: i64, sealed: &SealedSecret) -> Result<Secret, SealError> {
        let plain = self.open(&associated(TOTP_SEED_DOMAIN, user_id), sealed)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| SealError::Damaged)
    }

    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> SealedSecret {
        let nonce_bytes = super::random_bytes::<NONCE_LEN>();
        let mut in_out = plaintext.to_vec();
        #[allow(clippy::expect_used)]
        self.keys[&self.current]
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut in_out,
            )
            .expect("AES-GCM seals any value shorter than 64 GB");
        let mut stored = nonce_bytes.to_vec();
        stored.extend_from_slice(&in_out);
        SealedSecret {
            key_id: self.current.clone(),
            ciphertext: data_encoding::HEXLOWER.encode(&stored),
        }
    }

    fn open(&self, aad: &[u8], sealed: &SealedSecret) -> Result<Vec<u8>, SealError> {
        let key = self
            .keys
            .get(&sealed.key_id)
            .ok_or_else(|| SealError::UnknownKey(sealed.key_id.clone()))?;
        let mut stored = data_encoding::HEXLOWER_PERMISSIVE
            .decode(sealed.ciphertext.as_bytes())
            .map_err(|_| SealError::Damaged)?;
        if stored.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Damaged);
        }
        let mut in_out = stored.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&stored).map_err(|_| SealError::Damaged)?;
        let plain = key
            .open_in_place(nonce, Aad::from(aad), &mut in_out)
            .map_err(|_| SealError::Damaged)?;
        Ok(plain.to_vec())
    }
}

impl fmt::Debug for SealKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SealKeys(current {}, {} key(s), <redacted>)",
            self.current,
            self.keys.len()
        )
    }
}

/// The domain label, then the owner's id: what a sealed value is bound to.
fn associated(domain: &[u8], owner: i64) -> Vec<u8> {
    let mut aad = domain.to_vec();
    aad.extend_from_slice(&owner.to_be_bytes());
    aad
}

/// A challenge as associated data: the serial (length-prefixed) and its nonce.
fn challenge_associated(serial: &str, nonce: &[u8; 16]) -> Vec<u8> {
    let mut aad = RESPONSE_SIGNATURE_DOMAIN.to_vec();
    aad.push(serial.len() as u8);
    aad.extend_from_slice(serial.as_bytes());
    aad.extend_from_slice(nonce);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_signature_opens_only_for_its_challenge() {
        let keys = keys(1, &[1]);
        let sealed = keys.seal_response_signature("CAM-000001", &[4; 16], &[9; 64]);
        assert!(!sealed.ciphertext.contains(&"09".repeat(8)));
        assert_eq!(
            keys.open_response_signature("CAM-000001", &[4; 16], &sealed),
            Ok([9; 64])
        );
        assert_eq!(
            keys.open_response_signature("CAM-000002", &[4; 16], &sealed),
            Err(SealError::Damaged)
        );
        assert_eq!(
            keys.open_response_signature("CAM-000001", &[5; 16], &sealed),
            Err(SealError::Damaged)
        );
    }

    fn keys(current: u8, all: &[u8]) -> SealKeys {
        let id = |n: u8| SealKeyId::parse(&format!("{n:016x}")).unwrap();
        SealKeys::new(id(current), all.iter().map(|&n| (id(n), [n; 32]))).unwrap()
    }

    #[test]
    fn a_seed_opens_for_its_user_only() {
        let keys = keys(1, &[1]);
        let seed = Secret::new("JBSWY3DPEHPK3PXP");
        let sealed = keys.seal_totp_seed(7, &seed);
        assert!(!sealed.ciphertext.to_uppercase().contains("JBSWY3DP"));
        assert_eq!(keys.open_totp_seed(7, &sealed).unwrap(), seed);
        assert_eq!(keys.open_totp_seed(8, &sealed), Err(SealError::Damaged));
    }

    #[test]
    fn every_seal_has_its_own_nonce() {
        let keys = keys(1, &[1]);
        let seed = Secret::new("JBSWY3DPEHPK3PXP");
        assert_ne!(
            keys.seal_totp_seed(7, &seed).ciphertext,
            keys.seal_totp_seed(7, &seed).ciphertext
        );
    }

    #[test]
    fn altered_or_truncated_values_do_not_open() {
        let keys = keys(1, &[1]);
        let sealed = keys.seal_totp_seed(7, &Secret::new("JBSWY3DPEHPK3PXP"));
        let mut flipped = sealed.clone();
        let last = flipped.ciphertext.pop().unwrap();
        flipped.ciphertext.push(if last == '0' { '1' } else { '0' });
        assert_eq!(keys.open_totp_seed(7, &flipped), Err(SealError::Damaged));
        for ciphertext in ["", "zz", &sealed.ciphertext[..40]] {
            let cut = SealedSecret {
                ciphertext: ciphertext.to_owned(),
                ..sealed.clone()
            };
            assert_eq!(keys.open_totp_seed(7, &cut), Err(SealError::Damaged));
        }
    }

    #[test]
    fn older_keys_open_what_they_sealed_and_the_current_key_seals() {
        let old = keys(1, &[1]);
        let seed = Secret::new("JBSWY3DPEHPK3PXP");
        let sealed_before = old.seal_totp_seed(7, &seed);
        let rotated = keys(2, &[1, 2]);
        assert_eq!(rotated.open_totp_seed(7, &sealed_before).unwrap(), seed);
        let resealed = rotated.seal_totp_seed(7, &seed);
        assert_eq!(resealed.key_id, *rotated.current_id());
        assert!(matches!(
            old.open_totp_seed(7, &resealed),
            Err(SealError::UnknownKey(_))
        ));
        let redacted = format!("{rotated:?} {resealed:?}");
        assert!(!redacted.contains(&resealed.ciphertext), "{redacted}");
    }
}
