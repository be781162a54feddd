//! Console sessions: a random cookie token whose SHA-256 is stored, and a per-session
//! CSRF token that every state-changing console form must echo back.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};

use crate::crypto;

pub const COOKIE: &str = "rd_session";
/// Where a signed-in-by-password session enters its TOTP or recovery code.
pub const SECOND_FACTOR_PATH: &str = "/console/login/code";
/// Where a user without a second factor enrols one, when one is required.
pub const ENROL_PATH: &str = "/console/enrol";
/// A session ends after this long without a request.
pub const IDLE_SECS: i64 = 8 * 3600;

fn random_token() -> String {
    data_encoding::BASE32_NOPAD
        .encode(&crypto::random_bytes::<32>())
        .to_lowercase()
}

/// A new session: the cookie value and the hash to store.
pub fn new_session_token() -> (String, String) {
    let plain = random_token();
    let hash = token_hash(&plain);
    (plain, hash)
}

pub fn token_hash(plain: &str) -> String {
    data_encoding::HEXLOWER.encode(&crypto::sha256(plain.as_bytes()))
}

pub fn new_csrf_token() -> String {
    random_token()
}

/// Whether a submitted CSRF token is the session's, in constant time.
pub fn csrf_matches(expected: &str, submitted: Option<&str>) -> bool {
    submitted.is_some_and(|s| crypto::constant_time_eq(expected.as_bytes(), s.as_bytes()))
}

/// The session cookie: HttpOnly, SameSite=Strict, limited to the console, Secure when
/// the desk is served over https.
pub fn cookie(value: String, secure: bool) -> Cookie<'static> {
    Cookie::build(COOKIE, value)
        .path("/console")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(CookieDuration::seconds(IDLE_SECS))
        .finish()
}

/// A cookie that removes the session cookie.
pub fn removal(secure: bool) -> Cookie<'static> {
    let mut cookie = cookie(String::new(), secure);
    cookie.make_removal();
    cookie
}
