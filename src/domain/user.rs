use std::fmt;

use serde::{Deserialize, Serialize};

/// What a console user may do.
/// - **agent**: claim, ask for a new photo, reject, approve ordinary tickets;
/// - **supervisor**: what an agent does, plus the second approval of flagged tickets
///   and the canned rejection reasons;
/// - **admin**: users, keys and settings; no ticket decisions unless the user also has
///   a reviewing role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Agent,
    Supervisor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Agent, Role::Supervisor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Supervisor => "supervisor",
            Self::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw.trim())
    }

    fn bit(self) -> u8 {
        match self {
            Self::Agent => 1,
            Self::Supervisor => 2,
            Self::Admin => 4,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The roles one user holds: a non-empty set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Roles(u8);

impl Roles {
    /// The set of `roles`; `None` when empty.
    pub fn of(roles: &[Role]) -> Option<Self> {
        let bits = roles.iter().fold(0, |acc, r| acc | r.bit());
        (bits != 0).then_some(Self(bits))
    }

    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// Whether these roles may claim and decide tickets.
    pub fn reviews_tickets(self) -> bool {
        self.contains(Role::Agent) || self.contains(Role::Supervisor)
    }

    /// The roles of `self` that `before` lacks: what a change from `before` to `self`
    /// gives. `None` when it gives nothing.
    pub fn added_to(self, before: Roles) -> Option<Roles> {
        let bits = self.0 & !before.0;
        (bits != 0).then_some(Self(bits))
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    /// The stored form: names in fixed order, comma-separated.
    pub fn to_stored(self) -> String {
        self.iter().map(Role::as_str).collect::<Vec<_>>().join(",")
    }

    pub fn parse_stored(raw: &str) -> Option<Self> {
        let roles: Option<Vec<Role>> = raw.split(',').map(Role::parse).collect();
        Self::of(&roles?)
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .iter()
                .map(Role::as_str)
                .collect::<Vec<_>>()
                .join(" + "),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_sets_round_trip_and_answer_questions() {
        let admin_supervisor = Roles::of(&[Role::Supervisor, Role::Admin]).unwrap();
        assert_eq!(admin_supervisor.to_stored(), "supervisor,admin");
        assert_eq!(
            Roles::parse_stored("supervisor,admin"),
            Some(admin_supervisor)
        );
        assert!(admin_supervisor.reviews_tickets());
        assert!(!Roles::of(&[Role::Admin]).unwrap().reviews_tickets());
        assert_eq!(Roles::of(&[]), None);
        assert_eq!(Roles::parse_stored("agent,root"), None);
        assert_eq!(admin_supervisor.to_string(), "supervisor + admin");
        let agent = Roles::of(&[Role::Agent]).unwrap();
        assert_eq!(
            admin_supervisor.added_to(agent),
            Some(admin_supervisor),
            "an agent made supervisor and admin is given both"
        );
        assert_eq!(
            agent.added_to(admin_supervisor.added_to(agent).unwrap()),
            Some(agent)
        );
        assert_eq!(agent.added_to(Roles::of(&Role::ALL).unwrap()), None);
    }
}
