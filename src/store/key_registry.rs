//! The key registry's rows: which keys the desk's replicas must hold, by id only.

use crate::domain::Timestamp;

/// What a registered key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The factory master secret devices' keys derive from.
    Master,
    /// An Ed25519 key that signs responses.
    Signing,
    /// The secret behind web links and one-time codes.
    DeskSecret,
    /// A key that seals the secrets the database keeps.
    Seal,
}

impl KeyKind {
    pub const ALL: [Self; 4] = [Self::Master, Self::Signing, Self::DeskSecret, Self::Seal];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::Signing => "signing",
            Self::DeskSecret => "desk-secret",
            Self::Seal => "seal",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// Whether a registered key may still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRecordStatus {
    Current,
    /// Withdrawn: a retired signing key signs nothing more, on any replica.
    Retired,
}

impl KeyRecordStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Retired => "retired",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Current, Self::Retired]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// One row of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredKey {
    pub key_id: String,
    pub kind: KeyKind,
    pub status: KeyRecordStatus,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
}
