//! Device cookies, after OWASP's "Slow Down Online Guessing Attacks with Device Cookies".
//! A browser that completes a sign-in gets a long-lived cookie the desk signed for that
//! account (`DeskSecret::device_cookie`). Sign-in attempts from a browser presenting a
//! valid one for the account typed are counted per device cookie instead of per account
//! and address ([`super::throttle`]): anyone can still lock the account for browsers
//! without one by guessing, but not the agent's own browser. A device cookie that fails
//! too often is locked out itself, for the same window. The cookie proves nothing else:
//! the password and the second factor are asked for as always.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};

use super::session;
use crate::desk::Desk;
use crate::domain::Timestamp;

pub const COOKIE: &str = "rd_device";
/// How long a device cookie lasts; each completed sign-in gives the browser a new one.
pub const LIFETIME_SECS: i64 = 365 * 24 * 3600;

/// A new device cookie for `account` (an `account_key`): HttpOnly, SameSite=Strict, sent
/// only to the sign-in steps, Secure when the desk is served over https.
pub fn issue(desk: &Desk, account: &str, now: Timestamp, secure: bool) -> Cookie<'static> {
    let value = desk
        .keys
        .desk_secret
        .device_cookie(account, now.unix_seconds() + LIFETIME_SECS);
    Cookie::build(COOKIE, value)
        .path(session::SIGN_IN_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(CookieDuration::seconds(LIFETIME_SECS))
        .finish()
}

/// The id of the device cookie the request presents, when it is valid for `account`.
pub fn presented(
    desk: &Desk,
    request: &HttpRequest,
    account: &str,
    now: Timestamp,
) -> Option<String> {
    let cookie = request.cookie(COOKIE)?;
    valid_id(desk, cookie.value(), account, now)
}

/// The id of the device cookie `cookie`, when it is valid for `account`.
pub fn valid_id(desk: &Desk, cookie: &str, account: &str, now: Timestamp) -> Option<String> {
    desk.keys
        .desk_secret
        .device_cookie_id(account, cookie, now.unix_seconds())
        .map(str::to_owned)
}
