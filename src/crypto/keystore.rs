//! The keys directory: the factory master secret, the Ed25519 signing keys and a
//! keyring manifest saying which key signs and which only verify.
//!
//! ```text
//! keys/
//!   factory-master.key      64 hex characters, mode 0600
//!   factory-master.pkcs11   instead, once the master secret is in a PKCS#11 token
//!                           (`signer import-master`): the token object's URI, 0600
//!   signing/<key id>.pk8    PKCS#8 v2 Ed25519 key, mode 0600
//!   keyring.json            ids, public keys, creation times, status (mode 0600)
//!   desk-secret.key         64 hex characters, mode 0600 (web links, one-time codes)
//!   seal/<key id>.key       64 hex characters, mode 0600: AES-256-GCM keys that seal
//!                           the secrets the database keeps (TOTP seeds)
//!   seal/current            the id of the seal key that seals new values (mode 0600)
//!   keyring.lock            empty; locked while a command changes the keys
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::seal::{SealKeyId, SealKeys};
use super::secret_file::{self, SecretFileError};
use super::{DeskSecret, KeyId, MasterSecret, PublicKey, SigningKey};
use crate::domain::Timestamp;

const MASTER_FILE: &str = "factory-master.key";
/// Where the master secret is when a token holds it: a `pkcs11:` URI, no secret.
const MASTER_TOKEN_FILE: &str = "factory-master.pkcs11";
const DESK_SECRET_FILE: &str = "desk-secret.key";
const KEYRING_FILE: &str = "keyring.json";
/// Held (flock) by every change to the keyring or the seal keys: two `keys rotate` at
/// once would otherwise each read the keyring, add their key and write, one losing the other's.
const LOCK_FILE: &str = "keyring.lock";
const SIGNING_DIR: &str = "signing";
const SEAL_DIR: &str = "seal";
const SEAL_CURRENT_FILE: &str = "current";
const SEAL_KEY_EXTENSION: &str = "key";
const KEYRING_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error(
        "no keys in {dir}: run `resetdesk keys init` (or set RESETDESK_KEYS_DIR to the keys directory)"
    )]
    NotInitialized { dir: PathBuf },
    #[error("keys already exist in {dir}; refusing to overwrite them")]
    AlreadyInitialized { dir: PathBuf },
    #[error(
        "the keys directory {dir} is only partly set up ({present} exists, {missing} does not); \
         restore it from backup or move it aside before running `keys init`"
    )]
    Partial {
        dir: PathBuf,
        present: &'static str,
        missing: &'static str,
    },
    #[error("{path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("there is no key with id {0} in the keyring")]
    UnknownKey(KeyId),
    #[error("key {0} is the active signing key: run `resetdesk keys rotate` first, then retire it")]
    RetireActive(KeyId),
    #[error(
        "the factory master secret is in a PKCS#11 token ({uri}): only `resetdesk signer` uses it there; give this desk a signer_url"
    )]
    MasterInToken { uri: String },
    #[error(transparent)]
    File(#[from] SecretFileError),
}

/// What a key is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyStatus {
    /// Signs new responses. Exactly one key is active.
    Active,
    /// Replaced by a newer key; still exported so devices can verify what it signed.
    VerifyOnly,
    /// Withdrawn: never signs again and is left out of the public keys that new
    /// firmware builds embed.
    Retired,
}

/// One signing key as the manifest lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyEntry {
    #[serde(flatten)]
    public_key: PublicKey,
    pub created_at: Timestamp,
    pub status: KeyStatus,
}

impl KeyEntry {
    pub fn id(&self) -> &KeyId {
        self.public_key.id()
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Keyring {
    format: u32,
    keys: Vec<KeyEntry>,
}

/// The set of public keys a firmware build trusts, as written by `keys export-public`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeySet {
    pub format: u32,
    pub algorithm: String,
    pub keys: Vec<PublicKey>,
}

impl PublicKeySet {
    pub fn new(keys: Vec<PublicKey>) -> Self {
        Self {
            format: KEYRING_FORMAT,
            algorithm: "Ed25519".to_owned(),
            keys,
        }
    }

    pub fn find(&self, id: &KeyId) -> Option<&PublicKey> {
        self.keys.iter().find(|key| key.id() == id)
    }

    /// Reads a set from JSON, checking that every id belongs to its key.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let set: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if set.format != KEYRING_FORMAT || set.algorithm != "Ed25519" {
            return Err(format!(
                "unsupported public key set (format {}, algorithm {})",
                set.format, set.algorithm
            ));
        }
        if let Some(bad) = set.keys.iter().find(|key| !key.id_matches_key()) {
            return Err(format!(
                "key id {} does not belong to its public key",
                bad.id()
            ));
        }
        Ok(set)
    }

    pub fn to_json(&self) -> String {
        #[allow(clippy::expect_used)]
        let text = serde_json::to_string_pretty(self).expect("a key set always serialises");
        text + "\n"
    }
}

/// The ids of the keys a directory holds, read without creating any: what the database's
/// key registry is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIds {
    pub master: String,
    /// `None` until the desk first starts on this directory.
    pub desk_secret: Option<String>,
    /// The signing key marked active in the keyring.
    pub active_signing: KeyId,
    /// Every signing key of the keyring not retired there.
    pub signing: Vec<KeyId>,
    /// The seal key that seals, `None` until the desk first starts on this directory.
    pub current_seal: Option<SealKeyId>,
    /// Every seal key file.
    pub seal: Vec<SealKeyId>,
}

/// The token object holding the master secret (`factory-master.pkcs11`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterInToken {
    /// `pkcs11:token=…;object=…`, nothing else (no PIN).
    pub uri: String,
    /// What the token's `TokenMaster::check_value` gave at import.
    pub check: String,
}

/// Access to one keys directory.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
    /// Whether the directory holds the master secret and signing keys. A desk whose
    /// signer is a separate process keeps only its own secrets (desk secret, seal keys).
    signing_keys_here: bool,
}

/// The ids of the desk's own secrets in a keys directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskKeyIds {
    pub desk_secret: Option<String>,
    pub current_seal: Option<SealKeyId>,
    pub seal: Vec<SealKeyId>,
}

impl KeyStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            signing_keys_here: true,
        }
    }

    /// The keys directory of a desk whose master secret and signing keys are in a
    /// separate signer: it holds the desk secret and the seal keys only, created on
    /// first use in a directory only its owner may enter.
    pub fn desk_only(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            signing_keys_here: false,
        }
    }

    /// Whether the directory holds a master secret or signing keys (files, whatever they
    /// hold): a desk whose keys are in a separate signer must not.
    pub fn holds_signing_material(&self) -> bool {
        self.master_path().exists()
            || self.master_token_path().exists()
            || self.keyring_path().exists()
            || self.dir.join(SIGNING_DIR).exists()
    }

    /// Whether the desk's own secrets may be read or created here: a full key set, or a
    /// desk-only directory (made private when missing).
    fn desk_part_ready(&self) -> Result<(), KeyStoreError> {
        if self.signing_keys_here {
            if !self.is_initialized()? {
                return Err(self.not_initialized());
            }
        } else {
            secret_file::create_private_dir(&self.dir)?;
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn master_path(&self) -> PathBuf {
        self.dir.join(MASTER_FILE)
    }

    fn keyring_path(&self) -> PathBuf {
        self.dir.join(KEYRING_FILE)
    }

    fn master_token_path(&self) -> PathBuf {
        self.dir.join(MASTER_TOKEN_FILE)
    }

    /// Whether the master secret's file is here (with a token holding it too, the file
    /// is the factory's backup, to keep offline).
    pub fn master_file_present(&self) -> bool {
        self.master_path().exists()
    }

    /// Where the master secret is once `signer import-master` moved it into a token:
    /// the object's URI and the check value the token computed for it then.
    pub fn master_in_token(&self) -> Result<Option<MasterInToken>, KeyStoreError> {
        let path = self.master_token_path();
        if !path.exists() {
            return Ok(None);
        }
        let raw = secret_file::read_private(&path)?;
        let text = String::from_utf8(raw).unwrap_or_default();
        let mut lines = text.lines();
        let uri = lines.next().unwrap_or_default().trim();
        let check = lines
            .next()
            .and_then(|line| line.trim().strip_prefix("check="))
            .unwrap_or_default();
        if !uri.starts_with("pkcs11:") || check.len() != 32 {
            return Err(KeyStoreError::Damaged {
                path,
                reason: "expected a pkcs11: URI, and a line check=<32 hex digits>".to_owned(),
            });
        }
        Ok(Some(MasterInToken {
            uri: uri.to_owned(),
            check: check.to_owned(),
        }))
    }

    /// Records that the token object `uri` holds the master secret now, with the check
    /// value the token gave for it.
    pub fn record_master_in_token(&self, place: &MasterInToken) -> Result<(), KeyStoreError> {
        let _lock = self.lock()?;
        let text = format!("{}\ncheck={}\n", place.uri, place.check);
        secret_file::replace_private(&self.master_token_path(), text.as_bytes())?;
        Ok(())
    }

    fn signing_key_path(&self, id: &KeyId) -> PathBuf {
        self.dir.join(SIGNING_DIR).join(format!("{id}.pk8"))
    }

    /// True when the directory holds a complete key set; an error when it holds part of one.
    pub fn is_initialized(&self) -> Result<bool, KeyStoreError> {
        let master = self.master_path().exists() || self.master_token_path().exists();
        match (master, self.keyring_path().exists()) {
            (true, true) => Ok(true),
            (false, false) => Ok(false),
            (true, false) => Err(KeyStoreError::Partial {
                dir: self.dir.clone(),
                present: MASTER_FILE,
                missing: KEYRING_FILE,
            }),
            (false, true) => Err(KeyStoreError::Partial {
                dir: self.dir.clone(),
                present: KEYRING_FILE,
                missing: MASTER_FILE,
            }),
        }
    }

    /// Creates the master secret and a first signing key. Refuses to touch a directory
    /// that already holds keys.
    pub fn init(&self, now: Timestamp) -> Result<KeyEntry, KeyStoreError> {
        secret_file::create_private_dir(&self.dir)?;
        let _lock = self.lock()?;
        if self.is_initialized()? {
            return Err(KeyStoreError::AlreadyInitialized {
                dir: self.dir.clone(),
            });
        }
        self.init_locked(now)
    }

    /// `init` when the directory is empty; nothing when it is complete. Returns whether
    /// keys were created, so the caller can say so. Replicas starting together on one
    /// fresh directory: one creates the keys, the others wait for the lock and find them.
    pub fn ensure_initialized(&self, now: Timestamp) -> Result<bool, KeyStoreError> {
        secret_file::create_private_dir(&self.dir)?;
        let _lock = self.lock()?;
        if self.is_initialized()? {
            Ok(false)
        } else {
            self.init_locked(now).map(|_| true)
        }
    }

    /// Whether the directory holds keys, asked under the keyring lock so that a set being
    /// created by another process is not mistaken for a partial one. Creates nothing: a
    /// directory that does not exist holds no keys.
    pub fn holds_keys(&self) -> Result<bool, KeyStoreError> {
        if !self.dir.is_dir() {
            return Ok(false);
        }
        let _lock = self.lock()?;
        self.is_initialized()
    }

    fn init_locked(&self, now: Timestamp) -> Result<KeyEntry, KeyStoreError> {
        secret_file::create_private_dir(&self.dir.join(SIGNING_DIR))?;
        let master = MasterSecret::generate();
        let hex = data_encoding::HEXLOWER.encode(master.expose()) + "\n";
        // The manifest is written last: its presence is what marks the set complete.
        let entry = self.create_signing_key(now, KeyStatus::Active)?;
        secret_file::create_private(&self.master_path(), hex.as_bytes())?;
        self.write_keyring(&Keyring {
            format: KEYRING_FORMAT,
            keys: vec![entry.clone()],
        })?;
        Ok(entry)
    }

    fn create_signing_key(
        &self,
        now: Timestamp,
        status: KeyStatus,
    ) -> Result<KeyEntry, KeyStoreError> {
        let (key, pkcs8) = SigningKey::generate();
        // A keys directory made for a key in a token has no signing/ yet.
        secret_file::create_private_dir(&self.dir.join(SIGNING_DIR))?;
        secret_file::create_private(&self.signing_key_path(key.id()), &pkcs8)?;
        Ok(KeyEntry {
            public_key: key.public_key().clone(),
            created_at: now,
            status,
        })
    }

    /// All keys, oldest first.
    pub fn entries(&self) -> Result<Vec<KeyEntry>, KeyStoreError> {
        Ok(self.read_keyring()?.keys)
    }

    /// Adds a new signing key and makes it the active one; older keys stay for verification.
    pub fn rotate(&self, now: Timestamp) -> Result<KeyEntry, KeyStoreError> {
        self.rotate_recorded(now, |_| Ok::<(), KeyStoreError>(()))
    }

    /// [`Self::ensure_initialized`] for a signer whose signing key is in a PKCS#11 token
    /// (`public`: its public half): an empty directory gets the master secret and a
    /// keyring naming only that key, and no key file. Returns whether it was created.
    pub fn ensure_initialized_with_token_key(
        &self,
        public: &PublicKey,
        now: Timestamp,
    ) -> Result<bool, KeyStoreError> {
        secret_file::create_private_dir(&self.dir)?;
        let _lock = self.lock()?;
        if self.is_initialized()? {
            return Ok(false);
        }
        let master = MasterSecret::generate();
        let hex = data_encoding::HEXLOWER.encode(master.expose()) + "\n";
        secret_file::create_private(&self.master_path(), hex.as_bytes())?;
        self.write_keyring(&Keyring {
            format: KEYRING_FORMAT,
            keys: vec![KeyEntry {
                public_key: public.clone(),
                created_at: now,
                status: KeyStatus::Active,
            }],
        })?;
        Ok(true)
    }

    /// The status the keyring gives a key, if it names it.
    pub fn status_of(&self, id: &KeyId) -> Result<Option<KeyStatus>, KeyStoreError> {
        Ok(self
            .read_keyring()?
            .keys
            .iter()
            .find(|k| k.id() == id)
            .map(|k| k.status))
    }

    /// [`KeyStore::rotate`], with `record` called after the new key file exists and
    /// before the keyring makes it active: a replica reading the keyring never meets an
    /// active key the database has not recorded. When `record` fails, the key file is
    /// removed and the keyring is left as it was.
    pub fn rotate_recorded<E: From<KeyStoreError>>(
        &self,
        now: Timestamp,
        record: impl FnOnce(&KeyEntry) -> Result<(), E>,
    ) -> Result<KeyEntry, E> {
        let _lock = self.lock()?;
        let keyring = self.read_keyring()?;
        let entry = self.create_signing_key(now, KeyStatus::Active)?;
        if let Err(error) = record(&entry) {
            let _ = std::fs::remove_file(self.signing_key_path(entry.id()));
            return Err(error);
        }
        self.make_active(keyring, entry)
    }

    /// [`Self::rotate_recorded`] to a key kept elsewhere (a PKCS#11 token), of which the
    /// keyring names the public half and no file holds anything: recorded by `record`,
    /// then active.
    pub fn rotate_to_recorded<E: From<KeyStoreError>>(
        &self,
        public: &PublicKey,
        now: Timestamp,
        record: impl FnOnce(&KeyEntry) -> Result<(), E>,
    ) -> Result<KeyEntry, E> {
        let _lock = self.lock()?;
        let keyring = self.read_keyring()?;
        let entry = KeyEntry {
            public_key: public.clone(),
            created_at: now,
            status: KeyStatus::Active,
        };
        record(&entry)?;
        self.make_active(keyring, entry)
    }

    /// The keyring with `entry` active and the key active before it verify-only.
    fn make_active<E: From<KeyStoreError>>(
        &self,
        mut keyring: Keyring,
        entry: KeyEntry,
    ) -> Result<KeyEntry, E> {
        for key in keyring
            .keys
            .iter_mut()
            .filter(|k| k.status == KeyStatus::Active)
        {
            key.status = KeyStatus::VerifyOnly;
        }
        keyring.keys.push(entry.clone());
        self.write_keyring(&keyring)?;
        Ok(entry)
    }

    /// Withdraws a key that no longer signs. The active key cannot be retired: rotate
    /// first, so that something signs.
    pub fn retire(&self, id: &KeyId) -> Result<KeyEntry, KeyStoreError> {
        let _lock = self.lock()?;
        let mut keyring = self.read_keyring()?;
        let key = keyring
            .keys
            .iter_mut()
            .find(|k| k.id() == id)
            .ok_or_else(|| KeyStoreError::UnknownKey(id.clone()))?;
        if key.status == KeyStatus::Active {
            return Err(KeyStoreError::RetireActive(id.clone()));
        }
        key.status = KeyStatus::Retired;
        let retired = key.clone();
        self.write_keyring(&keyring)?;
        Ok(retired)
    }

    pub fn master_secret(&self) -> Result<MasterSecret, KeyStoreError> {
        if !self.is_initialized()? {
            return Err(self.not_initialized());
        }
        if !self.master_path().exists()
            && let Some(place) = self.master_in_token()?
        {
            return Err(KeyStoreError::MasterInToken { uri: place.uri });
        }
        Ok(MasterSecret::from_bytes(
            self.read_hex32(&self.master_path())?,
        ))
    }

    /// The desk's secret for web links, created on first use: it is not key material a
    /// device depends on, so a keys directory made before it existed simply gains it.
    pub fn desk_secret(&self) -> Result<DeskSecret, KeyStoreError> {
        self.desk_part_ready()?;
        let path = self.dir.join(DESK_SECRET_FILE);
        if !path.exists() {
            let hex = data_encoding::HEXLOWER.encode(&super::random_bytes::<32>()) + "\n";
            match secret_file::create_private(&path, hex.as_bytes()) {
                Ok(()) | Err(SecretFileError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(DeskSecret::from_bytes(self.read_hex32(&path)?))
    }

    /// The ids of the desk's own secrets here; creates nothing.
    pub fn desk_key_ids(&self) -> Result<DeskKeyIds, KeyStoreError> {
        let desk_path = self.dir.join(DESK_SECRET_FILE);
        let desk_secret = if desk_path.exists() {
            Some(DeskSecret::from_bytes(self.read_hex32(&desk_path)?).key_id())
        } else {
            None
        };
        let seal_present = self.seal_dir().join(SEAL_CURRENT_FILE).exists();
        let (current_seal, seal) = if seal_present {
            let keys = self.seal_keys()?;
            (Some(keys.current_id().clone()), keys.ids())
        } else {
            (None, Vec::new())
        };
        Ok(DeskKeyIds {
            desk_secret,
            current_seal,
            seal,
        })
    }

    /// The ids of the keys here; creates nothing.
    pub fn key_ids(&self) -> Result<KeyIds, KeyStoreError> {
        let keyring = self.read_keyring()?;
        let DeskKeyIds {
            desk_secret,
            current_seal,
            seal,
        } = self.desk_key_ids()?;
        let active_signing = keyring
            .keys
            .iter()
            .find(|key| key.status == KeyStatus::Active)
            .map(|key| key.id().clone())
            .ok_or_else(|| KeyStoreError::Damaged {
                path: self.keyring_path(),
                reason: "no key is marked active".to_owned(),
            })?;
        Ok(KeyIds {
            master: self.master_secret()?.key_id(),
            desk_secret,
            active_signing,
            signing: keyring
                .keys
                .iter()
                .filter(|key| key.status != KeyStatus::Retired)
                .map(|key| key.id().clone())
                .collect(),
            current_seal,
            seal,
        })
    }

    fn seal_dir(&self) -> PathBuf {
        self.dir.join(SEAL_DIR)
    }

    fn seal_key_path(&self, id: &SealKeyId) -> PathBuf {
        self.seal_dir().join(format!("{id}.{SEAL_KEY_EXTENSION}"))
    }

    /// The keys that seal secrets kept in the database, the first one created on first
    /// use (as the desk secret is): a keys directory made before sealing existed gains
    /// it. Every `seal/*.key` file is loaded, so values sealed under an older key open.
    pub fn seal_keys(&self) -> Result<SealKeys, KeyStoreError> {
        self.desk_part_ready()?;
        let current_path = self.seal_dir().join(SEAL_CURRENT_FILE);
        if !current_path.exists() {
            secret_file::create_private_dir(&self.seal_dir())?;
            let id = self.create_seal_key()?;
            // Two desks starting together on one directory: the first `current` wins, and
            // the other's key stays an unused file.
            match secret_file::create_private(&current_path, format!("{id}\n").as_bytes()) {
                Ok(()) | Err(SecretFileError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let raw = secret_file::read_private(&current_path)?;
        let current = std::str::from_utf8(&raw)
            .ok()
            .and_then(|text| SealKeyId::parse(text.trim()).ok())
            .ok_or_else(|| KeyStoreError::Damaged {
                path: current_path.clone(),
                reason: "expected a seal key id (16 hex characters)".to_owned(),
            })?;
        let mut keys = Vec::new();
        let entries =
            std::fs::read_dir(self.seal_dir()).map_err(|source| SecretFileError::Read {
                path: self.seal_dir(),
                source,
            })?;
        for entry in entries {
            let path = entry
                .map_err(|source| SecretFileError::Read {
                    path: self.seal_dir(),
                    source,
                })?
                .path();
            if path.extension().and_then(|e| e.to_str()) != Some(SEAL_KEY_EXTENSION) {
                continue;
            }
            let id = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .and_then(|stem| SealKeyId::parse(stem).ok())
                .ok_or_else(|| KeyStoreError::Damaged {
                    path: path.clone(),
                    reason: "a seal key file must be named <16 hex characters>.key".to_owned(),
                })?;
            keys.push((id, self.read_hex32(&path)?));
        }
        SealKeys::new(current.clone(), keys).ok_or_else(|| KeyStoreError::Damaged {
            path: current_path,
            reason: format!("names seal key {current}, whose file is missing"),
        })
    }

    /// Makes a new seal key the one that seals; older ones stay to open what they
    /// sealed (the desk re-seals those values with the new key).
    pub fn rotate_seal_key(&self) -> Result<SealKeyId, KeyStoreError> {
        self.rotate_seal_key_recorded(|_| Ok::<(), KeyStoreError>(()))
    }

    /// [`KeyStore::rotate_seal_key`], with `record` called after the new key file exists
    /// and before it becomes current (removed again when `record` fails).
    pub fn rotate_seal_key_recorded<E: From<KeyStoreError>>(
        &self,
        record: impl FnOnce(&SealKeyId) -> Result<(), E>,
    ) -> Result<SealKeyId, E> {
        let _lock = self.lock()?;
        // Loading first creates the seal folder of a directory that has none yet.
        self.seal_keys()?;
        let id = self.create_seal_key()?;
        if let Err(error) = record(&id) {
            let _ = std::fs::remove_file(self.seal_key_path(&id));
            return Err(error);
        }
        secret_file::replace_private(
            &self.seal_dir().join(SEAL_CURRENT_FILE),
            format!("{id}\n").as_bytes(),
        )
        .map_err(KeyStoreError::from)?;
        Ok(id)
    }

    fn create_seal_key(&self) -> Result<SealKeyId, KeyStoreError> {
        let id = SealKeyId::random();
        let hex = data_encoding::HEXLOWER.encode(&super::random_bytes::<32>()) + "\n";
        secret_file::create_private(&self.seal_key_path(&id), hex.as_bytes())?;
        Ok(id)
    }

    fn read_hex32(&self, path: &Path) -> Result<[u8; 32], KeyStoreError> {
        let raw = secret_file::read_private(path)?;
        let damaged = || KeyStoreError::Damaged {
            path: path.to_owned(),
            reason: "expected 64 hex characters".to_owned(),
        };
        let text = std::str::from_utf8(&raw).map_err(|_| damaged())?.trim();
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(text.as_bytes())
            .map_err(|_| damaged())?;
        bytes.try_into().map_err(|_| damaged())
    }

    /// The key that signs new responses.
    pub fn active_signing_key(&self) -> Result<SigningKey, KeyStoreError> {
        self.signing_key(self.active_entry()?.id())
    }

    /// The keyring's entry of the key that signs new responses.
    pub fn active_entry(&self) -> Result<KeyEntry, KeyStoreError> {
        let keyring = self.read_keyring()?;
        let path = self.keyring_path();
        keyring
            .keys
            .into_iter()
            .find(|key| key.status == KeyStatus::Active)
            .ok_or_else(|| KeyStoreError::Damaged {
                path,
                reason: "no key is marked active".to_owned(),
            })
    }

    /// Whether a file of the keys directory holds signing key `id`.
    pub fn holds_signing_key_file(&self, id: &KeyId) -> bool {
        self.signing_key_path(id).exists()
    }

    fn signing_key(&self, id: &KeyId) -> Result<SigningKey, KeyStoreError> {
        let path = self.signing_key_path(id);
        let pkcs8 = secret_file::read_private(&path)?;
        let key = SigningKey::from_pkcs8(&pkcs8).map_err(|e| KeyStoreError::Damaged {
            path: path.clone(),
            reason: format!("not an Ed25519 PKCS#8 key ({e})"),
        })?;
        if key.id() != id {
            return Err(KeyStoreError::Damaged {
                path,
                reason: format!("holds key {} where the keyring expects {id}", key.id()),
            });
        }
        Ok(key)
    }

    /// Every public key not retired, active or verify-only: what firmware builds embed.
    pub fn public_keys(&self) -> Result<PublicKeySet, KeyStoreError> {
        let keyring = self.read_keyring()?;
        Ok(PublicKeySet::new(
            keyring
                .keys
                .into_iter()
                .filter(|key| key.status != KeyStatus::Retired)
                .map(|key| key.public_key)
                .collect(),
        ))
    }

    /// The keyring lock, waited for; the directory must exist.
    fn lock(&self) -> Result<secret_file::DirLock, KeyStoreError> {
        Ok(secret_file::lock_exclusive(&self.dir.join(LOCK_FILE))?)
    }

    fn not_initialized(&self) -> KeyStoreError {
        KeyStoreError::NotInitialized {
            dir: self.dir.clone(),
        }
    }

    fn read_keyring(&self) -> Result<Keyring, KeyStoreError> {
        if !self.is_initialized()? {
            return Err(self.not_initialized());
        }
        let path = self.keyring_path();
        let raw = secret_file::read_private(&path)?;
        let damaged = |reason: String| KeyStoreError::Damaged {
            path: path.clone(),
            reason,
        };
        let keyring: Keyring = serde_json::from_slice(&raw).map_err(|e| damaged(e.to_string()))?;
        if keyring.format != KEYRING_FORMAT {
            return Err(damaged(format!("unsupported format {}", keyring.format)));
        }
        let active = keyring
            .keys
            .iter()
            .filter(|key| key.status == KeyStatus::Active)
            .count();
        if active != 1 {
            return Err(damaged(format!(
                "{active} keys are marked active; exactly one must be"
            )));
        }
        if let Some(bad) = keyring
            .keys
            .iter()
            .find(|key| !key.public_key.id_matches_key())
        {
            return Err(damaged(format!(
                "key id {} does not match its public key",
                bad.id()
            )));
        }
        Ok(keyring)
    }

    fn write_keyring(&self, keyring: &Keyring) -> Result<(), KeyStoreError> {
        #[allow(clippy::expect_used)]
        let text = serde_json::to_string_pretty(keyring).expect("a keyring always serialises");
        secret_file::replace_private(&self.keyring_path(), (text + "\n").as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn files_to_back_up(store: &KeyStore) -> Vec<PathBuf> {
        let mut files = vec![store.master_path(), store.keyring_path()];
        for entry in fs::read_dir(store.dir.join(SIGNING_DIR)).unwrap() {
            files.push(entry.unwrap().path());
        }
        files
    }

    fn now() -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000).unwrap()
    }

    #[test]
    fn init_creates_private_files_and_refuses_second_init() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path().join("keys"));
        assert!(matches!(
            store.master_secret(),
            Err(KeyStoreError::NotInitialized { .. })
        ));
        let first = store.init(now()).unwrap();
        assert_eq!(first.status, KeyStatus::Active);
        for file in files_to_back_up(&store) {
            let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
        assert!(matches!(
            store.init(now()),
            Err(KeyStoreError::AlreadyInitialized { .. })
        ));
        assert!(!store.ensure_initialized(now()).unwrap());
        assert_eq!(store.active_signing_key().unwrap().id(), first.id());
    }

    #[test]
    fn rotate_keeps_old_keys_for_verification() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        let first = store.init(now()).unwrap();
        let second = store.rotate(now().plus_seconds(60)).unwrap();
        assert_ne!(first.id(), second.id());
        assert_eq!(store.active_signing_key().unwrap().id(), second.id());
        let entries = store.entries().unwrap();
        assert_eq!(entries[0].status, KeyStatus::VerifyOnly);
        assert_eq!(entries[1].status, KeyStatus::Active);
        let public = store.public_keys().unwrap();
        assert!(public.find(first.id()).is_some() && public.find(second.id()).is_some());
        let reread = PublicKeySet::from_json(&public.to_json()).unwrap();
        assert_eq!(reread, public);

        assert!(matches!(
            store.retire(second.id()),
            Err(KeyStoreError::RetireActive(_))
        ));
        assert_eq!(store.retire(first.id()).unwrap().status, KeyStatus::Retired);
        assert!(
            store.public_keys().unwrap().find(first.id()).is_none(),
            "retired keys are not exported"
        );
        let third = store.rotate(now().plus_seconds(120)).unwrap();
        let statuses: Vec<_> = store.entries().unwrap().iter().map(|e| e.status).collect();
        assert_eq!(
            statuses,
            [KeyStatus::Retired, KeyStatus::VerifyOnly, KeyStatus::Active],
            "a retired key stays retired"
        );
        assert_eq!(store.active_signing_key().unwrap().id(), third.id());
    }

    #[test]
    fn a_rotation_that_cannot_be_recorded_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        let first = store.init(now()).unwrap();
        let refused = store.rotate_recorded(now(), |_| {
            Err(KeyStoreError::UnknownKey(first.id().clone()))
        });
        assert!(refused.is_err());
        assert_eq!(store.active_signing_key().unwrap().id(), first.id());
        assert_eq!(
            fs::read_dir(dir.path().join(SIGNING_DIR)).unwrap().count(),
            1
        );
        let seal = store.seal_keys().unwrap().current_id().clone();
        assert!(
            store
                .rotate_seal_key_recorded(|_| Err(KeyStoreError::UnknownKey(first.id().clone())))
                .is_err()
        );
        assert_eq!(store.seal_keys().unwrap().ids(), [seal]);
    }

    #[test]
    fn loading_refuses_keys_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        store.init(now()).unwrap();
        let master = dir.path().join(MASTER_FILE);
        fs::set_permissions(&master, fs::Permissions::from_mode(0o644)).unwrap();
        let err = store.master_secret().unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn seal_keys_are_created_once_private_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        store.init(now()).unwrap();
        let first = store.seal_keys().unwrap();
        let again = store.seal_keys().unwrap();
        assert_eq!(first.current_id(), again.current_id(), "created once");
        for entry in fs::read_dir(dir.path().join(SEAL_DIR)).unwrap() {
            let path = entry.unwrap().path();
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        let mode = fs::metadata(dir.path().join(SEAL_DIR))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);

        let seed = crate::domain::Secret::new("JBSWY3DPEHPK3PXP");
        let sealed = first.seal_totp_seed(1, &seed);
        let rotated_id = store.rotate_seal_key().unwrap();
        let rotated = store.seal_keys().unwrap();
        assert_eq!(rotated.current_id(), &rotated_id);
        assert_ne!(&rotated_id, first.current_id());
        assert_eq!(rotated.open_totp_seed(1, &sealed).unwrap(), seed);
    }

    #[test]
    fn a_seal_key_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        store.init(now()).unwrap();
        let id = store.seal_keys().unwrap().current_id().clone();
        fs::set_permissions(store.seal_key_path(&id), fs::Permissions::from_mode(0o644)).unwrap();
        let err = store.seal_keys().unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn partial_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        store.init(now()).unwrap();
        fs::remove_file(dir.path().join(KEYRING_FILE)).unwrap();
        let err = store.init(now()).unwrap_err();
        assert!(matches!(err, KeyStoreError::Partial { .. }), "{err}");
    }
}
