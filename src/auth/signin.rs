//! The password step of signing in to the console, without HTTP: count the attempt,
//! find the account, check the password, choose the next stage. The route parses the
//! form, calls [`sign_in`] and renders what it returns.
//!
//! Every attempt is counted before it is checked ([`super::throttle`]), and a wrong
//! e-mail costs what a wrong password costs (a real hash is checked either way), so the
//! answer and its timing tell no one which accounts exist.

use std::net::IpAddr;

use super::throttle::{self, Admission};
use super::{device_cookie, verify_password};
use crate::desk::Desk;
use crate::domain::{EmailAddress, Secret};
use crate::store::{LoginAttempt, LoginAttemptId, SessionStage, StoreError, User};

/// What the sign-in form sends.
pub struct Credentials {
    pub email: String,
    pub password: Secret,
}

/// Where an attempt comes from, as the throttle counts it.
pub struct Client {
    /// The client's address (through trusted proxies).
    pub address: Option<IpAddr>,
    /// The device cookie the browser presented, not yet checked.
    pub device_cookie: Option<String>,
}

/// An attempt counted before it is checked.
pub struct Counted {
    pub id: LoginAttemptId,
    /// The device cookie it was counted for, if the browser presented a valid one.
    pub device: Option<String>,
}

/// Why an attempt was not counted, so must not be checked.
#[derive(Debug, thiserror::Error)]
pub enum NotCounted {
    #[error("too many failed sign-ins: try again in {retry_after} s")]
    Throttled { retry_after: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum SignInRefusal {
    #[error(transparent)]
    NotCounted(#[from] NotCounted),
    /// The e-mail or the password is wrong, or the account is disabled: one answer for
    /// all three.
    #[error("the e-mail or the password is wrong")]
    WrongCredentials,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A right password: the session to start next.
pub struct SignedIn {
    pub user: User,
    pub stage: SessionStage,
}

/// Counts a sign-in attempt at `account` (an `account_key`) from `client` before its
/// password or code (`step`) is checked.
pub async fn count_attempt(
    desk: &Desk,
    account: &str,
    client: &Client,
    step: &'static str,
) -> Result<Counted, NotCounted> {
    let now = desk.clock.now();
    let device = client
        .device_cookie
        .as_deref()
        .and_then(|cookie| device_cookie::valid_id(desk, cookie, account, now));
    let address = throttle::network_key(client.address);
    let attempt = LoginAttempt {
        account,
        address: &address,
        device: device.as_deref(),
        at: now,
    };
    match throttle::admit(desk, &attempt).await? {
        Admission::Counted(id) => Ok(Counted { id, device }),
        Admission::Refused { retry_after } => {
            crate::observability::sign_in(step, "throttled");
            Err(NotCounted::Throttled { retry_after })
        }
    }
}

/// The password step. A right password for an enabled account releases the attempt and
/// names the next stage: the second factor, its enrolment, or (without either) the
/// console, in which case the account's failures are forgotten too.
pub async fn sign_in(
    desk: &Desk,
    credentials: Credentials,
    client: &Client,
) -> Result<SignedIn, SignInRefusal> {
    let account = throttle::account_key(&credentials.email);
    let attempt = count_attempt(desk, &account, client, "password").await?;
    let user = match EmailAddress::parse(&credentials.email) {
        Ok(email) => match desk.store.user_by_email(&email).await {
            Ok(user) => Some(user),
            Err(StoreError::NotFound) => None,
            Err(other) => return Err(other.into()),
        },
        Err(_) => None,
    };
    let hash = user
        .as_ref()
        .map_or_else(no_such_user_hash, |u| u.password_hash.clone());
    let password = credentials.password;
    let matches = tokio::task::spawn_blocking(move || verify_password(&hash, password.expose()))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|u| matches && !u.disabled) else {
        // The attempt stays counted: it is a failure now.
        crate::observability::sign_in("password", "wrong");
        audit_failure(desk, &account).await;
        return Err(SignInRefusal::WrongCredentials);
    };
    crate::observability::sign_in("password", "accepted");
    desk.store.release_login_attempt(attempt.id).await?;
    let stage = if user.totp_secret.is_some() {
        SessionStage::SecondFactor
    } else if desk.settings.requires_2fa() {
        SessionStage::Enrol
    } else {
        SessionStage::Full
    };
    if stage == SessionStage::Full {
        desk.store
            .clear_login_failures(&account, attempt.device.as_deref())
            .await?;
    }
    Ok(SignedIn { user, stage })
}

/// Audits a failed password step. People type passwords into the e-mail field; the
/// hash-chained audit log keeps forever what it is given, so it gets the identifier only
/// if it is an address.
async fn audit_failure(desk: &Desk, account: &str) {
    let attempted = EmailAddress::parse(account)
        .map_or_else(|_| "(not an e-mail address)".to_owned(), |e| e.to_string());
    if let Err(error) = desk
        .store
        .audit(desk.clock.now(), &attempted, "login_failed", "")
        .await
    {
        tracing::error!(%error, "could not audit a failed sign-in");
    }
}

/// A real argon2id hash of a random password, checked when the e-mail is unknown so that
/// a wrong e-mail and a wrong password cost the same time and cannot be told apart.
fn no_such_user_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let password = data_encoding::HEXLOWER.encode(&crate::crypto::random_bytes::<16>());
        super::hash_password(&password).unwrap_or_default()
    })
    .clone()
}
