//! Sign-in throttling. Every attempt, a password or a second-factor code, is counted
//! before it is checked, in one store transaction that also checks the count
//! (`Store::reserve_login_attempt`): however many guesses arrive at once, on however
//! many replicas, no more than the limit are ever checked. A right password or code is
//! uncounted afterwards; a wrong one stays counted as a failure.
//!
//! Attempts are counted per account and per client network, except from a browser that
//! presents a device cookie for the account (see [`super::device_cookie`]): those count
//! per device cookie alone, so a stranger's failures cannot lock an agent out.

use std::net::IpAddr;

use crate::config::Settings;
use crate::desk::Desk;
use crate::store::{LoginAttempt, LoginAttemptId, LoginLimits, LoginReservation, StoreError};

/// The window failed sign-ins are counted in.
pub const WINDOW_SECS: i64 = 15 * 60;

/// The longest account key kept: the longest e-mail address.
const MAX_ACCOUNT_CHARS: usize = 254;

/// The account key: what was typed, cleaned of anything a database refuses (a NUL byte
/// would be a 500 on PostgreSQL), bounded and in lower case.
pub fn account_key(typed: &str) -> String {
    typed
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_ACCOUNT_CHARS)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The client network the per-address limit counts: an IPv4 address as it is, an IPv6
/// address by its /64. One host or subscriber line is handed a whole /64 (RFC 6177), so
/// counting single IPv6 addresses would give it 2^64 times the limit. An IPv4 address
/// written as IPv6 (`::ffff:a.b.c.d`, from a dual-stack socket) counts as itself.
pub fn network_key(ip: Option<IpAddr>) -> String {
    match ip {
        None => String::new(),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let network = u128::from(v6) & !u128::from(u64::MAX);
                format!("{}/64", std::net::Ipv6Addr::from(network))
            }
        },
    }
}

/// The limits as set; a device cookie takes as many tries as an account.
pub fn limits(settings: &Settings) -> LoginLimits {
    LoginLimits {
        per_account: i64::from(settings.security.login_failures_per_account),
        per_address: i64::from(settings.security.login_failures_per_address),
        per_device: i64::from(settings.security.login_failures_per_account),
        window_secs: WINDOW_SECS,
    }
}

/// Whether an attempt may be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Counted: check it, and release it if it was right.
    Counted(LoginAttemptId),
    /// Too many recent failures: the client may try again in `retry_after` seconds.
    Refused { retry_after: i64 },
}

/// Counts `attempt` unless a bucket it counts in is full.
pub async fn admit(desk: &Desk, attempt: &LoginAttempt<'_>) -> Result<Admission, StoreError> {
    let reservation = desk
        .store
        .reserve_login_attempt(attempt, &limits(&desk.settings))
        .await?;
    Ok(match reservation {
        LoginReservation::Counted(id) => Admission::Counted(id),
        LoginReservation::Refused { oldest } => Admission::Refused {
            retry_after: oldest.map_or(WINDOW_SECS, |t| {
                (t.unix_seconds() + WINDOW_SECS - attempt.at.unix_seconds()).max(1)
            }),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(raw: &str) -> String {
        network_key(Some(raw.parse().unwrap()))
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        assert_eq!(network("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(
            network("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            network("2001:db8:1:2::1")
        );
        assert_ne!(network("2001:db8:1:3::1"), network("2001:db8:1:2::1"));
        assert_eq!(network("203.0.113.7"), "203.0.113.7");
        assert_ne!(network("203.0.113.8"), network("203.0.113.7"));
        assert_eq!(network("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(network_key(None), "");
    }

    #[test]
    fn account_keys_are_clean_and_bounded() {
        assert_eq!(account_key("  Ana@Vendor.TEST "), "ana@vendor.test");
        assert_eq!(account_key("a\u{0}b@vendor.test"), "ab@vendor.test");
        assert_eq!(account_key(&"x".repeat(1_000)).len(), MAX_ACCOUNT_CHARS);
    }
}
