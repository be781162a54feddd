//! Who is asking: console passwords (argon2id), API tokens, sessions and the limits on
//! guessing them; the sign-in steps (`signin`) and the administration of console users
//! (`users`), both without HTTP.
//!
//! Hashing a password costs tens of milliseconds of CPU on purpose; server code calls
//! [`verify_password`] through `spawn_blocking` so it never stalls the async workers.

pub mod device_cookie;
pub mod session;
pub mod signin;
pub mod throttle;
pub mod totp;
pub mod users;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use crate::crypto;

/// The shortest console password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must have at least {MIN_PASSWORD_LEN} characters")]
    TooShort,
    #[error("the password could not be hashed")]
    Hash,
}

/// Hashes a new password with argon2id and a random salt (PHC string format).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort);
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|_| PasswordError::Hash)
}

/// Checks a password against a stored hash. A malformed hash never verifies.
pub fn verify_password(stored_hash: &str, password: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), stored_hash)
        .is_ok()
}

/// A new API token: the plain text to show once, and the hash to store. Tokens carry
/// 256 random bits, so a fast hash is enough: nothing can be guessed from it.
pub fn new_api_token() -> (String, String) {
    token_with_prefix("rdt_")
}

/// A new installer's token (`rdi_`: told apart from an agent's by secret scanners and
/// in logs; the two are looked up in tables of their own, so neither opens the other's
/// routes).
pub fn new_installer_token() -> (String, String) {
    token_with_prefix("rdi_")
}

fn token_with_prefix(prefix: &str) -> (String, String) {
    let plain = format!(
        "{prefix}{}",
        data_encoding::BASE32_NOPAD
            .encode(&crypto::random_bytes::<32>())
            .to_lowercase()
    );
    let hash = api_token_hash(&plain);
    (plain, hash)
}

pub fn api_token_hash(plain: &str) -> String {
    data_encoding::HEXLOWER.encode(&crypto::sha256(plain.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse batterz"));
        assert!(!verify_password("not a hash", "anything"));
        assert!(matches!(
            hash_password("short"),
            Err(PasswordError::TooShort)
        ));
    }

    #[test]
    fn tokens_hash_consistently() {
        let (plain, hash) = new_api_token();
        assert!(plain.starts_with("rdt_"));
        assert_eq!(api_token_hash(&plain), hash);
        assert_ne!(new_api_token().0, plain);
    }
}
