//! Console users administered: created, given roles, disabled and enabled, given a new
//! password, their sessions ended. The command line (`resetdesk user ...`) and the
//! admin's console pages both go through here, so both make the same checks and the
//! store audits each change, naming who made it, in the same transaction.

use super::{PasswordError, hash_password};
use crate::domain::{EmailAddress, Role, Roles, Timestamp};
use crate::store::{Store, StoreError, UserId};

/// The actor the audit log names for the operator's command line.
pub const COMMAND_LINE_ACTOR: &str = "cli";

/// Who makes a change: the audit log names them, and an admin in the console may not
/// lock themselves out.
#[derive(Debug, Clone, Copy)]
pub enum Administrator<'a> {
    /// The operator's command line, audited as `cli`.
    CommandLine,
    /// A signed-in admin, audited by their address.
    Console { id: UserId, email: &'a EmailAddress },
}

impl Administrator<'_> {
    /// The actor the audit log names.
    pub fn actor(&self) -> &str {
        match self {
            Self::CommandLine => COMMAND_LINE_ACTOR,
            Self::Console { email, .. } => email.as_str(),
        }
    }

    fn is(&self, user: UserId) -> bool {
        matches!(self, Self::Console { id, .. } if *id == user)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserChangeError {
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The hashing task did not finish (it panicked or the runtime is shutting down).
    #[error("The password could not be processed; please try again.")]
    HashingInterrupted,
    #[error("You cannot take the admin role from yourself.")]
    OwnAdminRole,
    #[error("You cannot disable yourself.")]
    DisablingYourself,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Hashes a new password off the async workers: argon2id takes tens of milliseconds.
async fn hashed(password: String) -> Result<String, UserChangeError> {
    match tokio::task::spawn_blocking(move || hash_password(&password)).await {
        Ok(hash) => Ok(hash?),
        Err(_) => Err(UserChangeError::HashingInterrupted),
    }
}

pub async fn create(
    store: &dyn Store,
    by: Administrator<'_>,
    email: &EmailAddress,
    password: String,
    roles: Roles,
    now: Timestamp,
) -> Result<UserId, UserChangeError> {
    let hash = hashed(password).await?;
    Ok(store
        .create_user(email, &hash, roles, by.actor(), now)
        .await?)
}

pub async fn set_roles(
    store: &dyn Store,
    by: Administrator<'_>,
    user: UserId,
    roles: Roles,
    now: Timestamp,
) -> Result<(), UserChangeError> {
    if by.is(user) && !roles.contains(Role::Admin) {
        return Err(UserChangeError::OwnAdminRole);
    }
    Ok(store.set_roles(user, roles, by.actor(), now).await?)
}

/// Disabling also ends the user's sessions and revokes their API tokens (the store does
/// both in the same transaction); enabling brings none of them back.
pub async fn set_disabled(
    store: &dyn Store,
    by: Administrator<'_>,
    user: UserId,
    disabled: bool,
    now: Timestamp,
) -> Result<(), UserChangeError> {
    if by.is(user) && disabled {
        return Err(UserChangeError::DisablingYourself);
    }
    Ok(store.set_disabled(user, disabled, by.actor(), now).await?)
}

/// A new password also ends the user's sessions and revokes their API tokens.
pub async fn set_password(
    store: &dyn Store,
    by: Administrator<'_>,
    user: UserId,
    password: String,
    now: Timestamp,
) -> Result<(), UserChangeError> {
    let hash = hashed(password).await?;
    Ok(store.set_password(user, &hash, by.actor(), now).await?)
}

pub async fn revoke_sessions(
    store: &dyn Store,
    by: Administrator<'_>,
    user: UserId,
    now: Timestamp,
) -> Result<(), UserChangeError> {
    Ok(store.revoke_sessions(user, by.actor(), now).await?)
}
