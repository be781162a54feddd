//! Console sessions: a random cookie token whose SHA-256 is stored, and a per-session
//! CSRF token that every state-changing console form must echo back. The sign-in form,
//! posted before any session exists, carries a token of its own: signed by the desk,
//! in a cookie and in the form (a signed double submit).

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};

use crate::crypto;

pub const COOKIE: &str = "rd_session";
/// The sign-in form (the password step); its second factor step is below it.
pub const SIGN_IN_PATH: &str = "/console/login";
/// The cookie half of the sign-in form's CSRF token.
pub const SIGN_IN_FORM_COOKIE: &str = "rd_sign_in";
/// How long a sign-in form's token lasts.
pub const SIGN_IN_FORM_SECS: i64 = IDLE_SECS;
/// A browser's sign-in form token is handed out again while it has this long left, so
/// two tabs share one; after that a page gets a new one, with time to fill the form in.
const SIGN_IN_FORM_REUSE_SECS: i64 = 3600;
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

/// The sign-in form's token for a browser: the one its cookie holds when the desk made
/// it and it has an hour left, else a new one with the cookie that carries it.
pub fn sign_in_form_token(
    desk: &crate::desk::Desk,
    presented: Option<&str>,
    secure: bool,
) -> (String, Option<Cookie<'static>>) {
    let secret = &desk.keys.desk_secret;
    let now = desk.clock.now().unix_seconds();
    if let Some(token) =
        presented.filter(|t| secret.sign_in_form_token_is_valid(t, now + SIGN_IN_FORM_REUSE_SECS))
    {
        return (token.to_owned(), None);
    }
    let token = secret.sign_in_form_token(now + SIGN_IN_FORM_SECS);
    let cookie = Cookie::build(SIGN_IN_FORM_COOKIE, token.clone())
        .path(SIGN_IN_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(CookieDuration::seconds(SIGN_IN_FORM_SECS))
        .finish();
    (token, Some(cookie))
}

/// Whether a posted sign-in form carries the token its cookie holds, made by this desk
/// and not expired.
pub fn sign_in_form_matches(
    desk: &crate::desk::Desk,
    cookie: Option<&str>,
    submitted: Option<&str>,
) -> bool {
    cookie.is_some_and(|token| {
        desk.keys
            .desk_secret
            .sign_in_form_token_is_valid(token, desk.clock.now().unix_seconds())
            && csrf_matches(token, submitted)
    })
}

/// A cookie that removes the session cookie.
pub fn removal(secure: bool) -> Cookie<'static> {
    let mut cookie = cookie(String::new(), secure);
    cookie.make_removal();
    cookie
}
