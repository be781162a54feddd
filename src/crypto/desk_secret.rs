use std::fmt;

use ring::hmac;

const STATUS_LINK_DOMAIN: &[u8] = b"resetdesk.status-link.v1\0";
const ACCESS_CODE_DOMAIN: &[u8] = b"resetdesk.access-code.v1\0";
const RESPONSE_ACCESS_DOMAIN: &[u8] = b"resetdesk.response-access.v1\0";
const SIGN_IN_FORM_DOMAIN: &[u8] = b"resetdesk.sign-in-form.v1\0";
const DEVICE_COOKIE_DOMAIN: &[u8] = b"resetdesk.device-cookie.v1\0";
const ADDRESS_FIX_DOMAIN: &[u8] = b"resetdesk.address-fix.v1\0";
const ADDRESS_FIX_FORM_DOMAIN: &[u8] = b"resetdesk.address-fix-form.v1\0";
const KEPT_FILE_DOMAIN: &[u8] = b"resetdesk.kept-file.v1\0";

/// The desk's own 32-byte secret for web links: a status link's token is an HMAC of the
/// ticket number under it, so the desk can recompute a customer's link at any time
/// without storing it, and nobody can make a link without the secret. Separate from the
/// factory master secret, which must serve nothing but device keys.
#[derive(Clone)]
pub struct DeskSecret([u8; 32]);

impl DeskSecret {
    pub(super) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// This secret's id, as the key registry records it (reveals nothing of the secret).
    pub fn key_id(&self) -> String {
        super::secret_key_id(b"resetdesk desk secret id v1\0", &self.0)
    }

    /// What the erasure log keeps of an erased customer's mailbox
    /// (`EmailAddress::mailbox`): an HMAC under this secret, hex. It finds the
    /// mailbox's tickets again in a restored backup, and tells nobody without the
    /// secret which address it was.
    pub fn erasure_digest(&self, mailbox: &str) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut message = b"resetdesk.erasure.v1\0".to_vec();
        message.extend_from_slice(mailbox.to_ascii_lowercase().as_bytes());
        data_encoding::HEXLOWER.encode(hmac::sign(&key, &message).as_ref())
    }

    /// The seal of an erasure's audit entry (`audit_words_erased`): an HMAC of its words
    /// under this secret, hex. The chain has no secret, so anyone who can write to the
    /// database could append such an entry; only the desk can seal one, and `audit
    /// verify` with the keys directory checks it.
    pub fn erasure_seal(&self, words: &str) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut message = b"resetdesk.audit.erasure.v1\0".to_vec();
        message.extend_from_slice(words.as_bytes());
        data_encoding::HEXLOWER.encode(hmac::sign(&key, &message).as_ref())
    }

    /// Checks an erasure entry's seal in constant time.
    pub fn erasure_seal_is_valid(&self, words: &str, seal: &str) -> bool {
        super::constant_time_eq(self.erasure_seal(words).as_bytes(), seal.as_bytes())
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

    /// What the store keeps of a one-time code sent to a ticket's customer: an HMAC
    /// bound to the ticket, so a database reader learns neither the code nor one that
    /// would work for another ticket. Hex, 64 characters.
    pub fn access_code_hash(&self, ticket_number: &str, code: &str) -> String {
        let tag = self.tag(
            ACCESS_CODE_DOMAIN,
            &[ticket_number.as_bytes(), code.as_bytes()],
        );
        data_encoding::HEXLOWER.encode(tag.as_ref())
    }

    /// A short-lived token that lets the status page hand out a ticket's response file
    /// after its one-time code was accepted: `<expiry>-<tag>`, the tag binding ticket
    /// and expiry (Unix seconds). The status link alone never reveals a response.
    pub fn response_access_token(&self, ticket_number: &str, expires_at: i64) -> String {
        self.expiring_token(RESPONSE_ACCESS_DOMAIN, ticket_number, expires_at)
    }

    /// Checks a response-access token in constant time, and that it has not expired.
    pub fn response_access_is_valid(&self, ticket_number: &str, token: &str, now: i64) -> bool {
        self.expiring_token_is_valid(RESPONSE_ACCESS_DOMAIN, ticket_number, token, now)
    }

    /// The sign-in form's CSRF token, made before any session exists: it travels in a
    /// cookie and in the form (a signed double submit), so a page on another site, which
    /// can neither read the cookie nor make a token the desk would accept, cannot post the
    /// form in a browser's name. `<expiry>.<nonce>.<tag>`, the tag binding nonce and
    /// expiry (Unix seconds).
    pub fn sign_in_form_token(&self, expires_at: i64) -> String {
        self.signed_token(SIGN_IN_FORM_DOMAIN, b"", expires_at, &new_nonce())
    }

    /// Whether `token` is a sign-in form token this desk made that has not expired.
    pub fn sign_in_form_token_is_valid(&self, token: &str, now: i64) -> bool {
        self.signed_token_nonce(SIGN_IN_FORM_DOMAIN, b"", token, now)
            .is_some()
    }

    /// A device cookie (OWASP's "device cookies" against online guessing) for a browser
    /// that completed a sign-in to `account`: `<expiry>.<nonce>.<tag>`, the tag binding
    /// the account, the expiry and the nonce. It names no account, so it tells a reader
    /// of the browser's cookies nothing; it proves itself only for the account it was
    /// made for.
    pub fn device_cookie(&self, account: &str, expires_at: i64) -> String {
        self.signed_token(
            DEVICE_COOKIE_DOMAIN,
            account.as_bytes(),
            expires_at,
            &new_nonce(),
        )
    }

    /// The device cookie's id (its nonce) when `cookie` is a live device cookie this desk
    /// made for `account`; nothing for any other account, a forged or an expired cookie.
    pub fn device_cookie_id<'a>(
        &self,
        account: &str,
        cookie: &'a str,
        now: i64,
    ) -> Option<&'a str> {
        self.signed_token_nonce(DEVICE_COOKIE_DOMAIN, account.as_bytes(), cookie, now)
    }

    fn signed_token(&self, domain: &[u8], bound: &[u8], expires_at: i64, nonce: &str) -> String {
        let expiry = expires_at.to_string();
        let tag = self.tag(domain, &[bound, expiry.as_bytes(), nonce.as_bytes()]);
        format!("{expiry}.{nonce}.{}", crockford(&tag.as_ref()[..20]))
    }

    /// The nonce of a token `signed_token` made for `bound` that expires after `now`,
    /// compared in constant time.
    fn signed_token_nonce<'a>(
        &self,
        domain: &[u8],
        bound: &[u8],
        token: &'a str,
        now: i64,
    ) -> Option<&'a str> {
        let mut parts = token.splitn(3, '.');
        let (expiry, nonce) = (parts.next()?, parts.next()?);
        let expires_at: i64 = expiry.parse().ok()?;
        let expected = self.signed_token(domain, bound, expires_at, nonce);
        (expires_at > now && super::constant_time_eq(expected.as_bytes(), token.as_bytes()))
            .then_some(nonce)
    }

    /// The value of the cookie that lets the browser which sent a request correct the
    /// request's e-mail address until `expires_at` (Unix seconds): `<expiry>-<tag>`, the
    /// tag binding ticket and expiry. Only the desk can make one, and one made for a
    /// ticket opens no other.
    pub fn address_fix_token(&self, ticket_number: &str, expires_at: i64) -> String {
        self.expiring_token(ADDRESS_FIX_DOMAIN, ticket_number, expires_at)
    }

    /// Checks an address-fix cookie in constant time, and that it has not expired.
    pub fn address_fix_is_valid(&self, ticket_number: &str, token: &str, now: i64) -> bool {
        self.expiring_token_is_valid(ADDRESS_FIX_DOMAIN, ticket_number, token, now)
    }

    /// The pass a refused form hands back for a file it kept (`intake::kept`), so the
    /// retry need not send it again: `<expiry>-<tag>`, the tag binding the field, the
    /// stored file and the expiry. Only the desk can make one.
    pub fn kept_file_token(&self, field: &str, blob: &str, expires_at: i64) -> String {
        self.expiring_token(KEPT_FILE_DOMAIN, &format!("{field}\n{blob}"), expires_at)
    }

    /// Checks a kept file's pass in constant time, and that it has not expired.
    pub fn kept_file_is_valid(&self, field: &str, blob: &str, token: &str, now: i64) -> bool {
        self.expiring_token_is_valid(KEPT_FILE_DOMAIN, &format!("{field}\n{blob}"), token, now)
    }

    /// `<expiry>-<tag>`: the tag binds the ticket and the expiry (Unix seconds) under
    /// `domain`, so a token made for one purpose or ticket opens no other.
    fn expiring_token(&self, domain: &[u8], ticket_number: &str, expires_at: i64) -> String {
        let expiry = expires_at.to_string();
        let tag = self.tag(domain, &[ticket_number.as_bytes(), expiry.as_bytes()]);
        format!("{expiry}-{}", crockford(&tag.as_ref()[..20]))
    }

    fn expiring_token_is_valid(
        &self,
        domain: &[u8],
        ticket_number: &str,
        token: &str,
        now: i64,
    ) -> bool {
        let Some(expires_at) = token
            .split_once('-')
            .and_then(|(expiry, _)| expiry.parse::<i64>().ok())
        else {
            return false;
        };
        expires_at > now
            && super::constant_time_eq(
                self.expiring_token(domain, ticket_number, expires_at)
                    .as_bytes(),
                token.as_bytes(),
            )
    }

    /// The hidden field of the correction form that goes with an address-fix cookie:
    /// another site can make a browser post the form (the cookie is `SameSite=Strict`,
    /// but not every browser honours that), never read the page that holds this value.
    pub fn address_fix_form_token(&self, ticket_number: &str, cookie: &str) -> String {
        let tag = self.tag(
            ADDRESS_FIX_FORM_DOMAIN,
            &[ticket_number.as_bytes(), cookie.as_bytes()],
        );
        crockford(&tag.as_ref()[..20])
    }

    /// Checks the form's field against the cookie it came with, in constant time.
    pub fn address_fix_form_is_valid(
        &self,
        ticket_number: &str,
        cookie: &str,
        field: &str,
    ) -> bool {
        super::constant_time_eq(
            self.address_fix_form_token(ticket_number, cookie)
                .as_bytes(),
            field.as_bytes(),
        )
    }

    /// HMAC-SHA256 over a domain label and length-prefixed parts, so no two different
    /// inputs share a message.
    fn tag(&self, domain: &[u8], parts: &[&[u8]]) -> hmac::Tag {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut context = hmac::Context::with_key(&key);
        context.update(domain);
        for part in parts {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        context.sign()
    }
}

/// 120 random bits, as 24 Crockford base32 characters.
fn new_nonce() -> String {
    crockford(&super::random_bytes::<15>())
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

    #[test]
    fn access_code_hashes_are_bound_to_the_ticket_and_the_secret() {
        let secret = DeskSecret::from_bytes([1; 32]);
        let hash = secret.access_code_hash("RQ-0000-1111", "12345678");
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, secret.access_code_hash("RQ-0000-1111", "12345678"));
        assert_ne!(hash, secret.access_code_hash("RQ-0000-1112", "12345678"));
        assert_ne!(hash, secret.access_code_hash("RQ-0000-1111", "12345679"));
        // The parts are length-prefixed: moving a character across them changes the hash.
        assert_ne!(
            secret.access_code_hash("RQ-0000-111", "112345678"),
            secret.access_code_hash("RQ-0000-1111", "12345678")
        );
        assert_ne!(
            hash,
            DeskSecret::from_bytes([2; 32]).access_code_hash("RQ-0000-1111", "12345678")
        );
    }

    #[test]
    fn address_fix_cookies_expire_name_their_ticket_and_pair_with_their_form() {
        let secret = DeskSecret::from_bytes([1; 32]);
        let cookie = secret.address_fix_token("RQ-0000-1111", 1_800);
        assert!(secret.address_fix_is_valid("RQ-0000-1111", &cookie, 1_799));
        assert!(!secret.address_fix_is_valid("RQ-0000-1111", &cookie, 1_800));
        assert!(!secret.address_fix_is_valid("RQ-0000-1112", &cookie, 0));
        assert!(!DeskSecret::from_bytes([2; 32]).address_fix_is_valid("RQ-0000-1111", &cookie, 0));
        // Not interchangeable with the response file's token, made the same way.
        let file = secret.response_access_token("RQ-0000-1111", 1_800);
        assert!(!secret.address_fix_is_valid("RQ-0000-1111", &file, 0));
        let stretched = cookie.replacen("1800", "9800", 1);
        assert!(!secret.address_fix_is_valid("RQ-0000-1111", &stretched, 0));
        for nonsense in ["", "-", "abc-def", "1800", "1800-"] {
            assert!(!secret.address_fix_is_valid("RQ-0000-1111", nonsense, 0));
        }

        let field = secret.address_fix_form_token("RQ-0000-1111", &cookie);
        assert!(secret.address_fix_form_is_valid("RQ-0000-1111", &cookie, &field));
        assert!(!secret.address_fix_form_is_valid("RQ-0000-1112", &cookie, &field));
        let other = secret.address_fix_token("RQ-0000-1111", 1_801);
        assert!(!secret.address_fix_form_is_valid("RQ-0000-1111", &other, &field));
        assert!(!secret.address_fix_form_is_valid("RQ-0000-1111", &cookie, ""));
    }

    #[test]
    fn response_access_tokens_expire_and_name_their_ticket() {
        let secret = DeskSecret::from_bytes([1; 32]);
        let token = secret.response_access_token("RQ-0000-1111", 1_000);
        assert!(secret.response_access_is_valid("RQ-0000-1111", &token, 999));
        assert!(!secret.response_access_is_valid("RQ-0000-1111", &token, 1_000));
        assert!(!secret.response_access_is_valid("RQ-0000-1112", &token, 999));
        // A later expiry cannot be written in without the secret.
        let stretched = token.replacen("1000", "9000", 1);
        assert!(!secret.response_access_is_valid("RQ-0000-1111", &stretched, 999));
        for nonsense in ["", "-", "abc-def", "1000", "1000-"] {
            assert!(!secret.response_access_is_valid("RQ-0000-1111", nonsense, 0));
        }
    }

    #[test]
    fn sign_in_form_tokens_are_the_desks_and_expire() {
        let secret = DeskSecret::from_bytes([1; 32]);
        let token = secret.sign_in_form_token(1_000);
        assert!(secret.sign_in_form_token_is_valid(&token, 999));
        assert!(!secret.sign_in_form_token_is_valid(&token, 1_000));
        assert_ne!(token, secret.sign_in_form_token(1_000), "each one is new");
        assert!(!DeskSecret::from_bytes([2; 32]).sign_in_form_token_is_valid(&token, 999));
        let stretched = token.replacen("1000", "9000", 1);
        assert!(!secret.sign_in_form_token_is_valid(&stretched, 999));
        for nonsense in ["", ".", "..", "1000..", "abc.def.ghi", "1000.x.y"] {
            assert!(!secret.sign_in_form_token_is_valid(nonsense, 0));
        }
    }

    #[test]
    fn device_cookies_prove_themselves_for_their_account_only() {
        let secret = DeskSecret::from_bytes([1; 32]);
        let cookie = secret.device_cookie("ana@vendor.test", 1_000);
        let id = secret
            .device_cookie_id("ana@vendor.test", &cookie, 999)
            .unwrap();
        assert_eq!(id.len(), 24);
        assert!(!cookie.contains("ana"), "the cookie names no account");
        assert_eq!(
            secret.device_cookie_id("bo@vendor.test", &cookie, 999),
            None
        );
        assert_eq!(
            secret.device_cookie_id("ana@vendor.test", &cookie, 1_000),
            None
        );
        assert_eq!(
            DeskSecret::from_bytes([2; 32]).device_cookie_id("ana@vendor.test", &cookie, 999),
            None
        );
        // A device cookie is no sign-in form token, and the other way round.
        assert!(!secret.sign_in_form_token_is_valid(&cookie, 999));
        let form = secret.sign_in_form_token(1_000);
        assert_eq!(secret.device_cookie_id("", &form, 999), None);
        // Another nonce under the same tag is another cookie, which the desk never made.
        let (_, rest) = cookie.split_once('.').unwrap();
        let (_, tag) = rest.split_once('.').unwrap();
        let borrowed = format!("1000.{}.{tag}", "0".repeat(24));
        assert_eq!(
            secret.device_cookie_id("ana@vendor.test", &borrowed, 999),
            None
        );
    }
}
