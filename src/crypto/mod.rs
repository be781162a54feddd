//! The only module that touches `ring`. Everything else asks it for MACs, signatures,
//! key derivations and random nonces, and never sees key material: secrets leave this
//! module only as the values computed from them.
//!
//! Algorithms (see docs/PROTOCOL.md for the byte layouts):
//! - device key: HKDF-SHA256 over the factory master secret, bound to the serial;
//! - export MAC and response key: HMAC-SHA256 with the device key;
//! - response signature: Ed25519;
//! - key id: the first 8 bytes of SHA-256 over a domain label and the public key;
//! - secrets the database keeps (TOTP seeds): AES-256-GCM with a random nonce (`seal`).

mod desk_secret;
mod device_key;
mod keystore;
#[cfg(feature = "server")]
pub mod pkcs11;
mod seal;
pub mod secret_file;
mod signing;

pub use desk_secret::DeskSecret;
pub use device_key::{DeviceKey, DeviceKeys, MacTag, MasterSecret};
pub use keystore::{
    DeskKeyIds, KeyEntry, KeyIds, KeyStatus, KeyStore, KeyStoreError, MasterInToken, PublicKeySet,
};
pub use seal::{SealError, SealKeyId, SealKeyIdError, SealKeys, SealedSecret};
pub use signing::{KeyId, KeyIdError, PublicKey, Signature, SigningKey, VerifyError};

use ring::rand::{SecureRandom, SystemRandom};

/// Fills a fresh array from the operating system's CSPRNG.
///
/// # Panics
/// Only if the operating system cannot provide randomness, in which case no key,
/// nonce or token this process makes could be trusted anyway.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    #[allow(clippy::expect_used)]
    SystemRandom::new()
        .fill(&mut out)
        .expect("the operating system's random number generator failed");
    out
}

/// `N` random decimal digits, each equally likely (a one-time code to type).
pub fn random_digits<const N: usize>() -> String {
    (0..N)
        .map(|_| {
            loop {
                // 250 = 25 × 10: bytes below it map onto the ten digits evenly.
                let [byte] = random_bytes::<1>();
                if byte < 250 {
                    break char::from(b'0' + byte % 10);
                }
            }
        })
        .collect()
}

/// SHA-256 of `data`; used for fingerprints and hash chains, never for secrets.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// HMAC-SHA256 of `message` under `key`; for commitments (the audit log's to a ticket's
/// words under the ticket's salt), never to authenticate a device.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), message);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// The id of a secret key that has no public half (the master secret, the desk secret):
/// the first 8 bytes of SHA-256 over a domain label and the secret, in hex. It names the
/// key in the database's key registry and in error messages; being a truncated hash of a
/// 256-bit random secret, it tells nothing about the secret.
pub(crate) fn secret_key_id(label: &[u8], secret: &[u8; 32]) -> String {
    let mut input = label.to_vec();
    input.extend_from_slice(secret);
    data_encoding::HEXLOWER.encode(&sha256(&input)[..8])
}

/// Compares two byte strings in time that depends only on their length, so that a
/// caller guessing a response key learns nothing from how fast a wrong guess fails.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_digits_are_digits() {
        let code = random_digits::<8>();
        assert_eq!(code.len(), 8);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert_ne!(code, random_digits::<8>());
    }

    #[test]
    fn random_bytes_differ() {
        assert_ne!(random_bytes::<16>(), random_bytes::<16>());
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abcde", b"abcde"));
        assert!(!constant_time_eq(b"abcde", b"abcdf"));
        assert!(!constant_time_eq(b"abcd", b"abcde"));
    }
}
