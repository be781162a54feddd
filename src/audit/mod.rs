//! The audit log above the store: reading the stored chain a page at a time, and walking
//! it to prove it intact. The chain itself (hashing, genesis, the link check) is
//! `chain`, which the store uses to append and which imports nothing of the store.

pub mod chain;

pub use chain::{AuditEntry, ChainError, ChainVerifier, ERASURE_ACTION, GENESIS, entry_hash};

use crate::domain::Timestamp;
use crate::store::{Store, StoreError};

/// How many entries one read of the audit log asks for.
const PAGE: i64 = 1000;

/// The stored audit log in id order, a page at a time: the one loop every reader of the
/// whole log (the verifier, the export) walks with.
pub struct AuditPages<'a> {
    store: &'a dyn Store,
    since: Option<Timestamp>,
    after: i64,
    done: bool,
}

/// The entries at or after `since` (all of them when `None`), from the first.
pub fn pages(store: &dyn Store, since: Option<Timestamp>) -> AuditPages<'_> {
    AuditPages {
        store,
        since,
        after: 0,
        done: false,
    }
}

impl AuditPages<'_> {
    /// The next page, or `None` once the log is read to its end.
    pub async fn next(&mut self) -> Result<Option<Vec<AuditEntry>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let entries = self
            .store
            .audit_entries(self.after, self.since, PAGE)
            .await?;
        match entries.last() {
            // A full page: there may be more after it.
            Some(last) if entries.len() as i64 == PAGE => self.after = last.id,
            _ => self.done = true,
        }
        Ok((!entries.is_empty()).then_some(entries))
    }
}

/// The outcome of walking a whole stored chain.
#[derive(Debug)]
pub enum VerifyOutcome {
    /// Every link holds; `erased` entries' words were erased with their customer.
    Intact {
        entries: u64,
        erased: u64,
        head: String,
    },
    Broken(ChainError),
}

/// " (N of them erased …)" when some entries' words were erased with their customer:
/// said, so that an erased entry is never mistaken for a tampered one. Empty otherwise.
pub fn erased_note(erased: u64) -> String {
    if erased == 0 {
        String::new()
    } else {
        format!(
            " ({erased} of them erased with their customer: linked as written, their words gone)"
        )
    }
}

/// Walks the stored chain from the first entry and optionally compares the head with a
/// checkpoint published earlier; with the desk secret, checks the erasure entries' seals.
pub async fn verify_store(
    store: &dyn Store,
    published_head: Option<&str>,
    desk_secret: Option<&crate::crypto::DeskSecret>,
) -> Result<VerifyOutcome, StoreError> {
    // With the desk secret, an erasure entry must carry the desk's seal.
    let mut verifier = match desk_secret {
        Some(secret) => {
            let secret = secret.clone();
            ChainVerifier::with_seal_check(Box::new(move |words, seal| {
                secret.erasure_seal_is_valid(words, seal)
            }))
        }
        None => ChainVerifier::default(),
    };
    let mut all = pages(store, None);
    while let Some(entries) = all.next().await? {
        for entry in &entries {
            if let Err(broken) = verifier.check(entry) {
                return Ok(VerifyOutcome::Broken(broken));
            }
        }
    }
    if let Err(broken) = verifier.finish() {
        return Ok(VerifyOutcome::Broken(broken));
    }
    let head = verifier.head();
    if let Some(expected) = published_head
        && !expected.eq_ignore_ascii_case(&head)
    {
        // The published head must still be somewhere in the chain: a head that moved on
        // is fine, a head that vanished means entries were cut.
        let mut found = expected.eq_ignore_ascii_case(&data_encoding::HEXLOWER.encode(&GENESIS));
        let mut all = pages(store, None);
        while !found {
            let Some(entries) = all.next().await? else {
                break;
            };
            found = entries
                .iter()
                .any(|e| expected.eq_ignore_ascii_case(&data_encoding::HEXLOWER.encode(&e.hash)));
        }
        if !found {
            return Ok(VerifyOutcome::Broken(ChainError::HeadMismatch {
                expected: expected.to_owned(),
                found: head,
            }));
        }
    }
    Ok(VerifyOutcome::Intact {
        entries: verifier.checked,
        erased: verifier.erased,
        head,
    })
}
