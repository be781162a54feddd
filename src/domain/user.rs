use std::fmt;

use serde::{Deserialize, Serialize};

/// What a console user may do. Issue "Trust in the console" refines the rights; today an
/// agent and a supervisor may decide tickets, an admin manages users and keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Agent,
    Supervisor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Supervisor => "supervisor",
            Self::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Agent, Self::Supervisor, Self::Admin]
            .into_iter()
            .find(|r| r.as_str() == raw)
    }

    /// Whether this role may claim, approve and reject tickets.
    pub fn reviews_tickets(self) -> bool {
        matches!(self, Self::Agent | Self::Supervisor)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
