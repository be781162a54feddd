use std::fmt;

use ring::signature::{self, Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

const KEY_ID_DOMAIN: &[u8] = b"resetdesk.key-id.v1\0";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not a key id (expected 16 lower-case hex characters)")]
pub struct KeyIdError;

/// Names a signing key: the first 8 bytes of `SHA-256("resetdesk.key-id.v1" 0x00 || public key)`
/// as 16 lower-case hex characters. Derived, not chosen, so two keys can never share an id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

impl KeyId {
    pub const LEN: usize = 16;

    pub fn parse(raw: &str) -> Result<Self, KeyIdError> {
        if raw.len() == Self::LEN && raw.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(KeyIdError)
        }
    }

    fn of_public_key(public_key: &[u8; 32]) -> Self {
        let mut input = KEY_ID_DOMAIN.to_vec();
        input.extend_from_slice(public_key);
        let digest = super::sha256(&input);
        Self(data_encoding::HEXLOWER.encode(&digest[..8]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for KeyId {
    type Error = KeyIdError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<KeyId> for String {
    fn from(value: KeyId) -> String {
        value.0
    }
}

/// An Ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", data_encoding::HEXLOWER.encode(&self.0))
    }
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature does not match the signed fields")]
    BadSignature,
}

/// An Ed25519 public key with its id: what a firmware build embeds to verify responses.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    id: KeyId,
    #[serde(with = "hex32")]
    bytes: [u8; 32],
}

impl PublicKey {
    /// Builds a public key from its 32 raw bytes, deriving the id.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            id: KeyId::of_public_key(&bytes),
            bytes,
        }
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Checks that the stored id really belongs to the key, for key sets read from files.
    pub fn id_matches_key(&self) -> bool {
        KeyId::of_public_key(&self.bytes) == self.id
    }

    /// Verifies an Ed25519 signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), VerifyError> {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.bytes)
            .verify(message, &signature.0)
            .map_err(|_| VerifyError::BadSignature)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PublicKey({}, {})",
            self.id,
            data_encoding::HEXLOWER.encode(&self.bytes)
        )
    }
}

/// An Ed25519 private key loaded from its PKCS#8 file. Only `sign` uses it.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl SigningKey {
    /// Makes a new key; returns it with the PKCS#8 document to store.
    pub(super) fn generate() -> (Self, Vec<u8>) {
        #[allow(clippy::expect_used)]
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .expect("the operating system's random number generator failed");
        #[allow(clippy::expect_used)]
        let key = Self::from_pkcs8(pkcs8.as_ref()).expect("ring reads back its own PKCS#8");
        (key, pkcs8.as_ref().to_vec())
    }

    pub(super) fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, ring::error::KeyRejected> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)?;
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(pair.public_key().as_ref());
        Ok(Self {
            pair,
            public: PublicKey::from_bytes(bytes),
        })
    }

    /// A key made from a fixed 32-byte seed, for published test vectors only.
    pub fn from_seed_for_test_vectors(seed: &[u8; 32]) -> Self {
        #[allow(clippy::expect_used)]
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).expect("any 32 bytes are a seed");
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(pair.public_key().as_ref());
        Self {
            pair,
            public: PublicKey::from_bytes(bytes),
        }
    }

    pub fn id(&self) -> &KeyId {
        self.public.id()
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `message`, which must already carry its own domain label.
    pub fn sign(&self, message: &[u8]) -> Signature {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        Signature(out)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, <private part redacted>)", self.id())
    }
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&data_encoding::HEXLOWER.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let raw = data_encoding::HEXLOWER_PERMISSIVE
            .decode(text.as_bytes())
            .map_err(|_| D::Error::custom("public key is not hex"))?;
        raw.try_into()
            .map_err(|_| D::Error::custom("public key is not 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify() {
        let (key, _) = SigningKey::generate();
        let sig = key.sign(b"message");
        assert_eq!(key.public_key().verify(b"message", &sig), Ok(()));
        assert_eq!(
            key.public_key().verify(b"massage", &sig),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn key_id_is_derived_and_checked() {
        let key = SigningKey::from_seed_for_test_vectors(&[9; 32]);
        assert_eq!(key.id().as_str().len(), 16);
        assert!(key.public_key().id_matches_key());
        let json = serde_json::to_string(key.public_key()).unwrap();
        let mut forged: PublicKey = serde_json::from_str(&json).unwrap();
        forged.id = KeyId::parse("0000000000000000").unwrap();
        assert!(!forged.id_matches_key());
    }

    #[test]
    fn pkcs8_round_trip_keeps_identity() {
        let (key, pkcs8) = SigningKey::generate();
        let again = SigningKey::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(key.id(), again.id());
    }

    #[test]
    fn debug_redacts_private_key() {
        let key = SigningKey::from_seed_for_test_vectors(&[9; 32]);
        assert!(format!("{key:?}").contains("redacted"));
    }
}
