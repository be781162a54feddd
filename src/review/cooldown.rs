//! Four eyes means two independent people. An admin who creates an account, gives it a
//! role or sets its password may be able to act through it: they chose the password,
//! and on a new account they can enrol its second factor too. So for `COOLDOWN_SECS`
//! after such a grant the giver and the receiver do not count as two people for one
//! ticket, and neither do two receivers of the same giver (one admin could hold both
//! accounts). The relation follows chains within the window: an admin who creates an
//! admin who creates an agent stands behind both new accounts.
//!
//! The rule, exactly: two approvers are independent unless someone (one of them or a
//! third user) reaches both through grants made in the last 24 hours, counting each
//! user as reaching themselves. It is checked when the second approval is given, so it
//! holds for grants made after the first approval too. Grants made from the command
//! line have no giver: whoever runs it holds the signing keys and the database, outside
//! four eyes anyway (`resetdesk respond` answers an export offline).
//!
//! This only delays one admin acting alone; the 24 hours are for the other admins to
//! see the grants in the audit log.

use std::collections::{HashMap, VecDeque};

use crate::domain::Timestamp;
use crate::store::{Grant, GrantKind, UserId};

/// How long a grant keeps its giver and its receiver from counting as two people.
pub const COOLDOWN_SECS: i64 = 24 * 3600;

/// The oldest grant time that still counts at `now`.
pub fn window_start(now: Timestamp) -> Timestamp {
    now.plus_seconds(1 - COOLDOWN_SECS)
}

/// Why two approvers are not independent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotIndependent {
    /// The grants through which one user reaches both, oldest first.
    pub grants: Vec<Grant>,
    /// When the last connection between the two expires.
    pub until: Timestamp,
}

impl NotIndependent {
    /// The refusal, as the second approver reads it.
    pub fn explain(&self, first_approver: &str) -> String {
        let grants: Vec<String> = self.grants.iter().map(describe).collect();
        format!(
            "you and {first_approver}, who gave the first approval, do not count as two people until {until}: {grants}. \
             For 24 hours after an admin creates an account, gives it a role or sets its password, \
             the admin and that account (or two accounts from the same admin) cannot be the two \
             approvers of one ticket; another person must give the second approval",
            until = self.until,
            grants = grants.join("; "),
        )
    }
}

fn describe(grant: &Grant) -> String {
    let roles = grant
        .roles
        .map(|r| r.to_string())
        .unwrap_or_else(|| "no".to_owned());
    match grant.kind {
        GrantKind::Created => format!(
            "{} created the account {} ({roles}) at {}",
            grant.by_email, grant.user_email, grant.at
        ),
        GrantKind::Roles => format!(
            "{} gave {} the role {roles} at {}",
            grant.by_email, grant.user_email, grant.at
        ),
        GrantKind::Password => format!(
            "{} set the password of {} at {}",
            grant.by_email, grant.user_email, grant.at
        ),
    }
}

/// Checks that `first` and `second` are two independent people, given the grants of the
/// last `COOLDOWN_SECS` (as `Store::grants_since(window_start(now))` lists them, oldest
/// first).
/// One user approving twice is refused before this, in `approve`.
pub fn check(first: UserId, second: UserId, grants: &[Grant]) -> Result<(), NotIndependent> {
    if first == second {
        return Ok(());
    }
    let Some(chain) = connection(first, second, grants) else {
        return Ok(());
    };
    // Grants expire oldest first: the connection lasts as long as the oldest grant it
    // cannot do without. (No grants at all connect nobody, so `find` always finds.)
    let needs = (1..=grants.len())
        .find(|&i| connection(first, second, &grants[i..]).is_none())
        .unwrap_or(grants.len())
        - 1;
    Err(NotIndependent {
        grants: chain.into_iter().cloned().collect(),
        until: grants[needs].at.plus_seconds(COOLDOWN_SECS),
    })
}

/// Everyone who reaches `user` through `grants`, with the grants of the way from them
/// down to `user` (empty for `user` itself).
fn givers(user: UserId, grants: &[Grant]) -> HashMap<UserId, Vec<&Grant>> {
    let mut reached = HashMap::from([(user, Vec::new())]);
    let mut queue = VecDeque::from([user]);
    while let Some(receiver) = queue.pop_front() {
        for grant in grants.iter().filter(|g| g.user == receiver) {
            if reached.contains_key(&grant.by) {
                continue;
            }
            let mut way = vec![grant];
            way.extend(reached[&receiver].iter().copied());
            reached.insert(grant.by, way);
            queue.push_back(grant.by);
        }
    }
    reached
}

/// The grants by which one user reaches both `a` and `b`, oldest first; `None` when
/// nobody does. Of several such users, the one with the shortest ways is named.
fn connection(a: UserId, b: UserId, grants: &[Grant]) -> Option<Vec<&Grant>> {
    let (to_a, to_b) = (givers(a, grants), givers(b, grants));
    let (_, way_a, way_b) = to_a
        .iter()
        .filter_map(|(giver, way_a)| to_b.get(giver).map(|way_b| (giver, way_a, way_b)))
        .min_by_key(|(giver, way_a, way_b)| (way_a.len() + way_b.len(), giver.0))?;
    let mut chain: Vec<&Grant> = way_a.iter().chain(way_b.iter()).copied().collect();
    chain.sort_by_key(|g| g.at);
    chain.dedup_by(|x, y| std::ptr::eq(*x, *y));
    Some(chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Role, Roles};

    fn at(hours: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + hours * 3600).unwrap()
    }

    fn grant(by: i64, user: i64, kind: GrantKind, hour: i64) -> Grant {
        Grant {
            user: UserId(user),
            user_email: format!("u{user}@vendor.test"),
            kind,
            roles: (kind != GrantKind::Password).then(|| Roles::of(&[Role::Agent]).unwrap()),
            by: UserId(by),
            by_email: format!("u{by}@vendor.test"),
            at: at(hour),
        }
    }

    const ROOT: UserId = UserId(1);

    #[test]
    fn strangers_are_independent() {
        let grants = [grant(9, 2, GrantKind::Created, 0)];
        assert_eq!(check(ROOT, UserId(3), &grants), Ok(()));
        assert_eq!(check(ROOT, UserId(3), &[]), Ok(()));
    }

    #[test]
    fn an_admin_and_the_account_they_made_or_armed_are_one_person() {
        for kind in [GrantKind::Created, GrantKind::Roles, GrantKind::Password] {
            let grants = [grant(1, 2, kind, 3)];
            for (first, second) in [(ROOT, UserId(2)), (UserId(2), ROOT)] {
                let refused = check(first, second, &grants).unwrap_err();
                assert_eq!(refused.grants, grants.to_vec(), "{kind:?}");
                assert_eq!(refused.until, at(27));
            }
        }
    }

    #[test]
    fn two_accounts_of_one_admin_are_one_person() {
        let grants = [
            grant(1, 2, GrantKind::Created, 0),
            grant(1, 3, GrantKind::Roles, 1),
        ];
        let refused = check(UserId(2), UserId(3), &grants).unwrap_err();
        assert_eq!(refused.grants.len(), 2);
        assert_eq!(refused.until, at(24), "the link needs both grants");
        let text = refused.explain("u2@vendor.test");
        assert!(text.contains("u1@vendor.test created the account u2@vendor.test (agent)"));
        assert!(text.contains("u1@vendor.test gave u3@vendor.test the role agent"));
    }

    #[test]
    fn chains_of_grants_count_and_end_with_their_first_expiry() {
        // Root makes an admin (hour 0), who makes an agent (hour 5): root stands behind
        // the agent until the older grant expires.
        let grants = [
            grant(1, 2, GrantKind::Created, 0),
            grant(2, 3, GrantKind::Created, 5),
        ];
        let refused = check(ROOT, UserId(3), &grants).unwrap_err();
        assert_eq!(refused.grants, grants.to_vec());
        assert_eq!(refused.until, at(24));
        // With the older grant expired, only the new admin and the agent are linked.
        assert_eq!(check(ROOT, UserId(3), &grants[1..]), Ok(()));
        assert!(check(UserId(2), UserId(3), &grants[1..]).is_err());
    }

    #[test]
    fn a_second_way_keeps_the_connection_until_it_expires_too() {
        let grants = [
            grant(1, 2, GrantKind::Created, 0),
            grant(1, 2, GrantKind::Password, 10),
        ];
        let refused = check(ROOT, UserId(2), &grants).unwrap_err();
        assert_eq!(refused.until, at(34));
    }

    #[test]
    fn the_window_is_24_hours() {
        assert_eq!(window_start(at(24)), at(0).plus_seconds(1));
    }
}
