use std::fmt;

use ring::hmac;

const STATUS_LINK_DOMAIN: &[u8] = b"resetdesk.status-link.v1\0";

/// The desk's own 32-byte secret for web links: a status link's token is an HMAC of the
/// ticket number under it, so the desk can recompute a customer's link at any time
/// without storing it, and nobody can make a link without the secret. Separate from the
/// factory master secret, which must serve nothing but device keys.
pub struct DeskSecret([u8; 32]);

impl DeskSecret {
    pub(super) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The status-link token for a ticket: 32 Crockford base32 characters (160 bits).
    pub fn status_token(&self, ticket_number: &str) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut message = STATUS_LINK_DOMAIN.to_vec();
        message.extend_from_slice(ticket_number.as_bytes());
        let tag = hmac::sign(&key, &message);
        crockford(&tag.as_ref()[..20])
    }

    /// Checks a token from a link in constant time.
    pub fn status_token_is_valid(&self, ticket_number: &str, token: &str) -> bool {
        super::constant_time_eq(
            self.status_token(ticket_number).as_bytes(),
            token.as_bytes(),
        )
    }
}

fn crockford(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    out
}

impl fmt::Debug for DeskSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeskSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_tokens_are_stable_per_ticket_and_secret() {
        let secret = DeskSecret::from_bytes([1; 32]);
        let token = secret.status_token("RQ-0000-1111");
        assert_eq!(token.len(), 32);
        assert!(secret.status_token_is_valid("RQ-0000-1111", &token));
        assert!(!secret.status_token_is_valid("RQ-0000-1112", &token));
        assert!(!DeskSecret::from_bytes([2; 32]).status_token_is_valid("RQ-0000-1111", &token));
    }
}
