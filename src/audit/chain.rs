//! The audit log's hash chain, pure: the entry, its hash and the check of one link after
//! another. Every entry stores the SHA-256 of its canonical encoding, which includes the
//! previous entry's hash, so changing or deleting any entry breaks every link after it;
//! comparing the newest hash (the chain head) with a copy published elsewhere also catches
//! entries cut from the end. The encoding is in docs/AUDIT.md. The store appends with
//! this module; the walker over the stored chain (`audit`) sits above the store.

use serde::Serialize;

use crate::crypto;
use crate::domain::Timestamp;

const DOMAIN: &[u8] = b"resetdesk.audit.v1\0";
/// Entries of a ticket since migration 0030: the words are committed to, not hashed.
const DOMAIN_V2: &[u8] = b"resetdesk.audit.v2\0";
const DETAIL_DOMAIN: &[u8] = b"resetdesk.audit.detail.v1\0";

/// The hash before the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// One entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub ticket_id: Option<i64>,
    /// The words; empty once erased.
    pub detail: String,
    #[serde(serialize_with = "hex")]
    pub prev_hash: [u8; 32],
    #[serde(serialize_with = "hex")]
    pub hash: [u8; 32],
    /// A ticket's entry since migration 0030: the chain hashes this commitment to the
    /// words, [`detail_commitment`] under the ticket's salt, and not the words.
    #[serde(serialize_with = "hex_opt", skip_serializing_if = "Option::is_none")]
    pub commitment: Option<[u8; 32]>,
    /// The ticket's salt, while the ticket's customer is not erased.
    #[serde(skip)]
    pub salt: Option<[u8; 32]>,
    /// The words and the salt were erased with the customer (the chain still holds).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub erased: bool,
}

fn hex_opt<S: serde::Serializer>(bytes: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(bytes) => hex(bytes, s),
        None => s.serialize_none(),
    }
}

/// The commitment a ticket's entry hashes in place of its words: HMAC-SHA256 under the
/// ticket's random salt of `"resetdesk.audit.detail.v1" 0x00 ‖ detail`. Without the salt
/// it tells nothing of the words (an address cannot be guessed and tried).
pub fn detail_commitment(salt: &[u8; 32], detail: &str) -> [u8; 32] {
    let mut message = DETAIL_DOMAIN.to_vec();
    message.extend_from_slice(detail.as_bytes());
    crypto::hmac_sha256(salt, &message)
}

/// `SHA-256("resetdesk.audit.v2" 0x00 || prev_hash(32) || i64(id) || i64(at) ||
/// text(actor) || text(action) || i64(ticket_id) || commitment(32))`: a ticket's entry.
pub fn entry_hash_v2(
    prev_hash: &[u8; 32],
    id: i64,
    at: Timestamp,
    actor: &str,
    action: &str,
    ticket_id: i64,
    commitment: &[u8; 32],
) -> [u8; 32] {
    let mut message = DOMAIN_V2.to_vec();
    message.extend_from_slice(prev_hash);
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&at.unix_seconds().to_be_bytes());
    text(&mut message, actor);
    text(&mut message, action);
    message.extend_from_slice(&ticket_id.to_be_bytes());
    message.extend_from_slice(commitment);
    crypto::sha256(&message)
}

fn hex<S: serde::Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&data_encoding::HEXLOWER.encode(bytes))
}

fn text(out: &mut Vec<u8>, value: &str) {
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value.as_bytes());
}

/// `SHA-256("resetdesk.audit.v1" 0x00 || prev_hash(32) || i64(id) || i64(at) ||
/// text(actor) || text(action) || opt(i64(ticket_id)) || text(detail))`, where `text` is
/// a 4-byte big-endian length and the UTF-8 bytes, and `opt` is 0x00 or 0x01 then the value.
pub fn entry_hash(
    prev_hash: &[u8; 32],
    id: i64,
    at: Timestamp,
    actor: &str,
    action: &str,
    ticket_id: Option<i64>,
    detail: &str,
) -> [u8; 32] {
    let mut message = DOMAIN.to_vec();
    message.extend_from_slice(prev_hash);
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&at.unix_seconds().to_be_bytes());
    text(&mut message, actor);
    text(&mut message, action);
    match ticket_id {
        Some(ticket) => {
            message.push(1);
            message.extend_from_slice(&ticket.to_be_bytes());
        }
        None => message.push(0),
    }
    text(&mut message, detail);
    crypto::sha256(&message)
}

impl AuditEntry {
    fn computed_hash(&self) -> [u8; 32] {
        match (&self.commitment, self.ticket_id) {
            (Some(commitment), Some(ticket)) => entry_hash_v2(
                &self.prev_hash,
                self.id,
                self.at,
                &self.actor,
                &self.action,
                ticket,
                commitment,
            ),
            _ => entry_hash(
                &self.prev_hash,
                self.id,
                self.at,
                &self.actor,
                &self.action,
                self.ticket_id,
                &self.detail,
            ),
        }
    }

    /// Whether the words shown are the ones committed to (always, for an entry that
    /// hashes its words; for one erased, there are none to check).
    fn words_match(&self) -> bool {
        match (&self.commitment, &self.salt) {
            (Some(_), _) if self.erased => true,
            (Some(commitment), Some(salt)) => {
                crypto::constant_time_eq(&detail_commitment(salt, &self.detail), commitment)
            }
            (Some(_), None) => false,
            (None, _) => true,
        }
    }
}

/// Where and why the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("entry {id} was changed: its contents do not match its hash")]
    Altered { id: i64 },
    #[error("the entry before {id} is missing or was changed: {id} does not link to it")]
    Unlinked { id: i64 },
    #[error("entry {expected} is missing (the next entry is {found})")]
    Gap { expected: i64, found: i64 },
    #[error(
        "the published chain head {expected} is no longer in the chain (now {found}): entries were removed"
    )]
    HeadMismatch { expected: String, found: String },
    #[error(
        "the words of entry {id} are gone, and no later `{ERASURE_ACTION}` entry names it: they were removed, not erased with a customer"
    )]
    ErasedUnrecorded { id: i64 },
    #[error(
        "entry {id} claims an erasure but is not sealed by the desk: it was written by someone else, and the words it names were removed"
    )]
    ErasureUnsealed { id: i64 },
}

/// Where an erasure entry's words end and its seal begins.
pub const SEAL_MARK: &str = "; seal ";

/// The action of the entry an erasure appends after it, whose words (hashed as they are,
/// never erasable) name the entries whose words it erased: `… entries 2, 5, 9`.
pub const ERASURE_ACTION: &str = "audit_words_erased";

/// The entry ids an erasure's entry names (before its seal).
fn erased_ids(detail: &str) -> impl Iterator<Item = i64> + '_ {
    let words = detail
        .split_once(SEAL_MARK)
        .map_or(detail, |(words, _)| words);
    words
        .rsplit_once("entries ")
        .map_or("", |(_, ids)| ids)
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter_map(|id| id.parse().ok())
}

/// Walks entries in id order, checking each link; remembers the head.
pub struct ChainVerifier {
    prev_hash: [u8; 32],
    next_id: i64,
    pub checked: u64,
    /// Entries whose words were erased with their customer: linked, their words gone.
    pub erased: u64,
    /// Entries met without their words that no erasure entry has named yet.
    unaccounted: std::collections::BTreeSet<i64>,
    /// Checks an erasure entry's seal (its words, its seal) under the desk secret; none:
    /// erasure entries are taken as they are (a verifier without the keys).
    seal_check: Option<SealCheck>,
}

/// See [`ChainVerifier::with_seal_check`].
pub type SealCheck = Box<dyn Fn(&str, &str) -> bool + Send + Sync>;

impl std::fmt::Debug for ChainVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainVerifier")
            .field("next_id", &self.next_id)
            .field("checked", &self.checked)
            .field("erased", &self.erased)
            .field("seals_checked", &self.seal_check.is_some())
            .finish()
    }
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            prev_hash: GENESIS,
            next_id: 1,
            checked: 0,
            erased: 0,
            unaccounted: std::collections::BTreeSet::new(),
            seal_check: None,
        }
    }
}

impl ChainVerifier {
    /// A verifier that accepts an erasure entry only with a seal `check` accepts.
    pub fn with_seal_check(check: SealCheck) -> Self {
        Self {
            seal_check: Some(check),
            ..Self::default()
        }
    }

    pub fn check(&mut self, entry: &AuditEntry) -> Result<(), ChainError> {
        if entry.id != self.next_id {
            return Err(ChainError::Gap {
                expected: self.next_id,
                found: entry.id,
            });
        }
        if entry.prev_hash != self.prev_hash {
            return Err(ChainError::Unlinked { id: entry.id });
        }
        if entry.computed_hash() != entry.hash || !entry.words_match() {
            return Err(ChainError::Altered { id: entry.id });
        }
        self.prev_hash = entry.hash;
        self.next_id += 1;
        self.checked += 1;
        if entry.erased {
            self.erased += 1;
            self.unaccounted.insert(entry.id);
        }
        // An erasure's own entry hashes its words: deleting them breaks the chain; and
        // it is sealed by the desk: writing one breaks nothing, but is not the desk's.
        if entry.action == ERASURE_ACTION && entry.commitment.is_none() {
            if let Some(check) = &self.seal_check {
                let sealed = entry
                    .detail
                    .split_once(SEAL_MARK)
                    .is_some_and(|(words, seal)| check(words, seal));
                if !sealed {
                    return Err(ChainError::ErasureUnsealed { id: entry.id });
                }
            }
            for id in erased_ids(&entry.detail) {
                self.unaccounted.remove(&id);
            }
        }
        Ok(())
    }

    /// After the last entry: every entry without its words was erased by an erasure
    /// that says so, later in the chain; one that was not had its words removed.
    pub fn finish(&self) -> Result<(), ChainError> {
        match self.unaccounted.first() {
            Some(id) => Err(ChainError::ErasedUnrecorded { id: *id }),
            None => Ok(()),
        }
    }

    /// The hash of the last entry checked: the value to publish as a checkpoint.
    pub fn head(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.prev_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|id| {
                let at = Timestamp::from_unix_seconds(1_800_000_000 + id).unwrap();
                let hash = entry_hash(&prev, id, at, "alice", "approve", Some(7), "ok");
                let entry = AuditEntry {
                    id,
                    at,
                    actor: "alice".into(),
                    action: "approve".into(),
                    ticket_id: Some(7),
                    detail: "ok".into(),
                    prev_hash: prev,
                    hash,
                    commitment: None,
                    salt: None,
                    erased: false,
                };
                prev = hash;
                entry
            })
            .collect()
    }

    fn verify(entries: &[AuditEntry]) -> Result<(), ChainError> {
        let mut verifier = ChainVerifier::default();
        entries.iter().try_for_each(|e| verifier.check(e))
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(()));
    }

    #[test]
    fn an_edited_entry_is_named() {
        let mut entries = chain(5);
        entries[2].detail = "changed".into();
        assert_eq!(verify(&entries), Err(ChainError::Altered { id: 3 }));
    }

    #[test]
    fn a_deleted_entry_is_named() {
        let mut entries = chain(5);
        entries.remove(2);
        assert_eq!(
            verify(&entries),
            Err(ChainError::Gap {
                expected: 3,
                found: 4
            })
        );
    }

    /// A ticket's entries as since migration 0030: words committed to under a salt.
    fn committed_chain(n: i64, salt: [u8; 32]) -> Vec<AuditEntry> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|id| {
                let at = Timestamp::from_unix_seconds(1_800_000_000 + id).unwrap();
                let detail = format!("approval mail to customer{id}@example.com");
                let commitment = detail_commitment(&salt, &detail);
                let hash = entry_hash_v2(&prev, id, at, "system", "mail", 7, &commitment);
                let entry = AuditEntry {
                    id,
                    at,
                    actor: "system".into(),
                    action: "mail".into(),
                    ticket_id: Some(7),
                    detail,
                    prev_hash: prev,
                    hash,
                    commitment: Some(commitment),
                    salt: Some(salt),
                    erased: false,
                };
                prev = hash;
                entry
            })
            .collect()
    }

    #[test]
    fn erased_words_leave_the_chain_intact_and_counted() {
        let mut entries = committed_chain(4, [9; 32]);
        let mut verifier = ChainVerifier::default();
        for entry in &entries {
            verifier.check(entry).unwrap();
        }
        assert_eq!(verifier.erased, 0);
        // The customer erased: the words and the salt are gone from entries 2 and 3.
        for entry in &mut entries[1..3] {
            entry.detail = String::new();
            entry.salt = None;
            entry.erased = true;
        }
        let mut verifier = ChainVerifier::default();
        for entry in &entries {
            verifier.check(entry).unwrap();
        }
        assert_eq!((verifier.checked, verifier.erased), (4, 2));
        // Words gone with no erasure naming them were removed, not erased.
        assert_eq!(
            verifier.finish(),
            Err(ChainError::ErasedUnrecorded { id: 2 })
        );
        // The erasure's entry, appended after, accounts for them.
        let last = entries.last().unwrap();
        let detail = "tickets RQ-AAAA-BBBB: entries 2, 3";
        let at = last.at;
        let hash = entry_hash(&last.hash, 5, at, "cli", ERASURE_ACTION, None, detail);
        entries.push(AuditEntry {
            id: 5,
            at,
            actor: "cli".into(),
            action: ERASURE_ACTION.into(),
            ticket_id: None,
            detail: detail.into(),
            prev_hash: last.hash,
            hash,
            commitment: None,
            salt: None,
            erased: false,
        });
        let mut verifier = ChainVerifier::default();
        for entry in &entries {
            verifier.check(entry).unwrap();
        }
        assert_eq!(verifier.finish(), Ok(()));
    }

    #[test]
    fn changed_words_of_a_committed_entry_are_named() {
        let mut entries = committed_chain(4, [9; 32]);
        entries[1].detail = "approval mail to someone-else@example.com".into();
        assert_eq!(verify(&entries), Err(ChainError::Altered { id: 2 }));
        // Words with no salt to check them against are not taken as intact either.
        let mut entries = committed_chain(4, [9; 32]);
        entries[2].salt = None;
        assert_eq!(verify(&entries), Err(ChainError::Altered { id: 3 }));
    }

    #[test]
    fn a_commitment_tells_nothing_without_its_salt() {
        let words = "approval mail to ana@example.com";
        assert_ne!(
            detail_commitment(&[1; 32], words),
            detail_commitment(&[2; 32], words)
        );
    }

    #[test]
    fn a_rehashed_edit_still_breaks_the_next_link() {
        let mut entries = chain(5);
        entries[2].detail = "changed".into();
        entries[2].hash = entries[2].computed_hash();
        assert_eq!(verify(&entries), Err(ChainError::Unlinked { id: 4 }));
    }
}
