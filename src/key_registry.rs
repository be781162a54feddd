//! Holds every replica to the same keys (issue 16): the database records each key's id
//! when it is created (never the key), and a replica whose keys directory holds other
//! keys refuses to start, or reports itself not ready, instead of answering every genuine
//! customer with "not made by a genuine device".

use std::fmt::Write;

use anyhow::Context;

use crate::crypto::{KeyIds, KeyStore};
use crate::domain::Timestamp;
use crate::store::{KeyKind, KeyRecordStatus, RegisteredKey, Store};

/// Where this directory's keys disagree with the registry, one sentence each; empty when
/// they agree. A kind the registry does not know yet (a fresh install, or a desk upgraded
/// from before the registry) disagrees with nothing: it is registered at start.
pub fn disagreements(ids: &KeyIds, registry: &[RegisteredKey]) -> Vec<String> {
    let mut problems = Vec::new();
    let of = |kind: KeyKind| -> Vec<&RegisteredKey> {
        registry.iter().filter(|k| k.kind == kind).collect()
    };
    let known = |kind: KeyKind, id: &str| of(kind).iter().any(|k| k.key_id == id);
    let expected = |kind: KeyKind| {
        of(kind)
            .iter()
            .filter(|k| k.status == KeyRecordStatus::Current)
            .map(|k| k.key_id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !of(KeyKind::Master).is_empty() && !known(KeyKind::Master, &ids.master) {
        problems.push(format!(
            "its factory master secret is {}, the database expects {}",
            ids.master,
            expected(KeyKind::Master)
        ));
    }
    if !of(KeyKind::DeskSecret).is_empty() {
        match &ids.desk_secret {
            Some(id) if known(KeyKind::DeskSecret, id) => {}
            Some(id) => problems.push(format!(
                "its desk secret is {id}, the database expects {}",
                expected(KeyKind::DeskSecret)
            )),
            None => problems.push(format!(
                "it has no desk-secret.key, the database expects desk secret {}",
                expected(KeyKind::DeskSecret)
            )),
        }
    }
    if !of(KeyKind::Signing).is_empty() && !known(KeyKind::Signing, ids.active_signing.as_str()) {
        problems.push(format!(
            "its active signing key {} is not one the database knows ({})",
            ids.active_signing,
            expected(KeyKind::Signing)
        ));
    }
    if !of(KeyKind::Seal).is_empty() {
        match &ids.current_seal {
            Some(id) if known(KeyKind::Seal, &id.to_string()) => {}
            Some(id) => problems.push(format!(
                "its current seal key {id} is not one the database knows ({})",
                expected(KeyKind::Seal)
            )),
            None => problems.push(format!(
                "it has no seal keys, the database expects seal key {}",
                expected(KeyKind::Seal)
            )),
        }
    }
    problems
}

/// The start-up rule. A keys directory without keys gets new ones only on a fresh
/// install (no ticket, no registered key); keys that disagree with the registry stop the
/// start; the keys of a kind the registry lacks are registered.
pub async fn check_at_start(
    store: &dyn Store,
    keys: &KeyStore,
    now: Timestamp,
) -> anyhow::Result<()> {
    let registry = store.registered_keys().await?;
    if !keys.holds_keys()? {
        let tickets = store.holds_tickets().await?;
        if tickets || !registry.is_empty() {
            let mut expects = String::new();
            if let Some(master) = registry.iter().find(|k| k.kind == KeyKind::Master) {
                let _ = write!(
                    expects,
                    " and expects factory master secret {}",
                    master.key_id
                );
            }
            anyhow::bail!(
                "the keys directory {} holds no keys, but the database already {}{expects}: \
                 point RESETDESK_KEYS_DIR at the desk's keys directory (a copy of the one \
                 the other replicas use); new keys are created only on a fresh install",
                keys.dir().display(),
                if tickets {
                    "holds tickets"
                } else {
                    "records the desk's keys"
                },
            );
        }
        if keys.ensure_initialized(now)? {
            tracing::info!(dir = %keys.dir().display(), "created the factory master secret and a signing key (first start): back this directory up");
        }
    }
    refuse_disagreement(keys, &disagreements(&keys.key_ids()?, &registry))?;
    // The desk secret and seal keys are created on first use; the check above made sure
    // the registry does not expect others.
    keys.desk_secret()?;
    keys.seal_keys()?;
    register_missing_kinds(store, &keys.key_ids()?, &registry, now).await?;
    // Another replica may have registered its own keys at the same moment.
    let registry = store.registered_keys().await?;
    refuse_disagreement(keys, &disagreements(&keys.key_ids()?, &registry))
}

/// The start-up rule of a desk whose master secret and signing keys are in a separate
/// signer (`signer_url`): the signer's key ids (`signer`, as it says them) and the desk's
/// own secrets in its keys directory (`keys`, desk-only) are held to the registry as a
/// whole key set is; the desk's own secrets are created on first use.
pub async fn check_with_signer_at_start(
    store: &dyn Store,
    keys: &KeyStore,
    signer: &crate::signer::SignerKeyIds,
    now: Timestamp,
) -> anyhow::Result<()> {
    let ids = || -> anyhow::Result<KeyIds> { Ok(signer.with_desk_keys(keys.desk_key_ids()?)) };
    let registry = store.registered_keys().await?;
    refuse_disagreement(keys, &disagreements(&ids()?, &registry))?;
    keys.desk_secret()?;
    keys.seal_keys()?;
    register_missing_kinds(store, &ids()?, &registry, now).await?;
    let registry = store.registered_keys().await?;
    refuse_disagreement(keys, &disagreements(&ids()?, &registry))
}

fn refuse_disagreement(keys: &KeyStore, problems: &[String]) -> anyhow::Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "the keys directory {} is not the desk's: {}. Every replica must hold a copy of the \
         same keys directory; this one would refuse every genuine export",
        keys.dir().display(),
        problems.join("; ")
    )
}

async fn register_missing_kinds(
    store: &dyn Store,
    ids: &KeyIds,
    registry: &[RegisteredKey],
    now: Timestamp,
) -> anyhow::Result<()> {
    let lacks = |kind: KeyKind| !registry.iter().any(|k| k.kind == kind);
    let mut new: Vec<(KeyKind, String)> = Vec::new();
    if lacks(KeyKind::Master) {
        new.push((KeyKind::Master, ids.master.clone()));
    }
    if lacks(KeyKind::DeskSecret)
        && let Some(id) = &ids.desk_secret
    {
        new.push((KeyKind::DeskSecret, id.clone()));
    }
    if lacks(KeyKind::Signing) {
        new.extend(
            ids.signing
                .iter()
                .map(|id| (KeyKind::Signing, id.to_string())),
        );
    }
    if lacks(KeyKind::Seal) {
        new.extend(ids.seal.iter().map(|id| (KeyKind::Seal, id.to_string())));
    }
    for (kind, id) in new {
        store
            .register_key(kind, &id, now)
            .await
            .with_context(|| format!("cannot record {} key {id} in the database", kind.as_str()))?;
    }
    Ok(())
}
