//! The TOTP second factor (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps, one step of
//! clock drift either way), and one-time recovery codes for a lost phone.

use totp_rs::{Algorithm, Builder, Secret as TotpSecret, Totp};

use crate::crypto::{self, SealError, SealKeys};
use crate::desk::DeskKeys;
use crate::domain::{Secret, Timestamp};
use crate::store::{Store, StoreError, StoredSeed, UserId};

/// The name authenticator apps show above the code.
pub const ISSUER: &str = "resetdesk";
/// Recovery codes issued at enrolment.
pub const RECOVERY_CODES: usize = 10;

fn totp(seed: &Secret) -> Option<Totp> {
    let bytes = TotpSecret::try_from_base32(seed.expose()).ok()?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(bytes)
        .build()
        .ok()
}

/// A new random seed (160 bits, base32), to enrol.
pub fn new_seed() -> Secret {
    Secret::new(data_encoding::BASE32_NOPAD.encode(&crypto::random_bytes::<20>()))
}

/// The time step a code matches, if it matches the seed at `now` (± one step).
/// Remembering the step lets the caller refuse the same code twice.
pub fn matching_step(seed: &Secret, code: &str, now: Timestamp) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let counter = totp(seed)?.check(&code, u64::try_from(now.unix_seconds()).ok()?)?;
    i64::try_from(counter).ok()
}

/// The code for `now`: what the authenticator app shows (used by tests and nothing else
/// in the desk).
pub fn code_at(seed: &Secret, now: Timestamp) -> Option<String> {
    Some(
        totp(seed)?
            .generate(u64::try_from(now.unix_seconds()).ok()?)
            .to_string(),
    )
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The `otpauth://` URL an authenticator app scans from the enrolment QR code.
pub fn otpauth_url(seed: &Secret, account: &str) -> String {
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits=6&period=30",
        issuer = percent_encode(ISSUER),
        account = percent_encode(account),
        secret = seed.expose(),
    )
}

/// The seed a user's authenticator app holds, from the database's sealed copy (or the
/// clear copy of a row from before sealing, until the desk seals it).
pub fn open_seed(keys: &DeskKeys, user: UserId, stored: &StoredSeed) -> Result<Secret, SealError> {
    match stored {
        StoredSeed::Sealed(sealed) => keys.open_totp_seed(user.0, sealed),
        StoredSeed::Clear(seed) => Ok(seed.clone()),
    }
}

/// What a pass of [`seal_stored_seeds`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sealing {
    /// Seeds that were in clear, now sealed.
    pub sealed: usize,
    /// Seeds sealed under an older key, now sealed under the current one.
    pub resealed: usize,
    /// Seeds that could not be opened (their key is missing or the row was altered);
    /// logged, left as they are.
    pub failed: usize,
}

/// Seals every TOTP seed the database still holds in clear, and re-seals under the
/// current key every seed sealed under an older one; audited as `actor` when anything
/// changed. Run at start, after a seal key rotation, and by `keys rotate-seal`.
pub async fn seal_stored_seeds(
    store: &dyn Store,
    keys: &SealKeys,
    actor: &str,
    now: Timestamp,
) -> Result<Sealing, StoreError> {
    let mut done = Sealing::default();
    for (user, stored) in store.totp_seeds_to_seal(keys.current_id()).await? {
        let seed = match &stored {
            StoredSeed::Clear(seed) => seed.clone(),
            StoredSeed::Sealed(sealed) => match keys.open_totp_seed(user.0, sealed) {
                Ok(seed) => seed,
                Err(error) => {
                    tracing::error!(user = user.0, %error, "cannot re-seal a TOTP seed");
                    done.failed += 1;
                    continue;
                }
            },
        };
        let sealed = keys.seal_totp_seed(user.0, &seed);
        if store.reseal_totp_seed(user, &stored, &sealed).await? {
            match stored {
                StoredSeed::Clear(_) => done.sealed += 1,
                StoredSeed::Sealed(_) => done.resealed += 1,
            }
        }
    }
    if done.sealed + done.resealed > 0 {
        let detail = format!(
            "{} seed(s) sealed and {} re-sealed with seal key {}",
            done.sealed,
            done.resealed,
            keys.current_id()
        );
        store
            .audit(now, actor, "totp_seeds_sealed", &detail)
            .await?;
        tracing::info!(sealed = done.sealed, resealed = done.resealed, key_id = %keys.current_id(), "TOTP seeds sealed");
    }
    Ok(done)
}

/// New recovery codes (shown once) and their hashes (stored).
pub fn new_recovery_codes() -> Vec<(String, String)> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let raw = data_encoding::BASE32_NOPAD
                .encode(&crypto::random_bytes::<10>())
                .to_lowercase();
            let code = format!("{}-{}", &raw[..8], &raw[8..]);
            let hash = recovery_code_hash(&code);
            (code, hash)
        })
        .collect()
}

/// Codes carry 80 random bits, so a fast hash is enough; spaces, dashes and case do not
/// matter when typed.
pub fn recovery_code_hash(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    data_encoding::HEXLOWER.encode(&crypto::sha256(normal.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_within_one_step_only() {
        let seed = new_seed();
        let now = Timestamp::from_unix_seconds(1_800_000_000).unwrap();
        let code = code_at(&seed, now).unwrap();
        assert_eq!(code.len(), 6);
        assert!(matching_step(&seed, &code, now).is_some());
        assert!(
            matching_step(&seed, &code, now.plus_seconds(30)).is_some(),
            "one step of drift"
        );
        assert!(matching_step(&seed, &code, now.plus_seconds(95)).is_none());
        assert!(matching_step(&seed, "12345", now).is_none());
        let other = Secret::new("JBSWY3DPEHPK3PXP");
        assert_eq!(
            matching_step(&other, &code, now).is_some(),
            code_at(&other, now).as_deref() == Some(code.as_str())
        );
    }

    #[test]
    fn rfc6238_reference_code() {
        // RFC 6238 appendix B: SHA1 seed "12345678901234567890" at T = 59 s is 94287082 (8 digits);
        // the last six digits are the 6-digit code.
        let seed = Secret::new(data_encoding::BASE32_NOPAD.encode(b"12345678901234567890"));
        let at = Timestamp::from_unix_seconds(59).unwrap();
        assert_eq!(code_at(&seed, at).unwrap(), "287082");
    }

    #[test]
    fn otpauth_url_names_issuer_and_account() {
        let seed = Secret::new("JBSWY3DPEHPK3PXP");
        let url = otpauth_url(&seed, "ana@vendor.test");
        assert_eq!(
            url,
            "otpauth://totp/resetdesk:ana%40vendor.test?secret=JBSWY3DPEHPK3PXP&issuer=resetdesk&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn recovery_codes_hash_forgivingly() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let (code, hash) = &codes[0];
        assert_eq!(
            &recovery_code_hash(&code.to_uppercase().replace('-', " ")),
            hash
        );
    }
}
