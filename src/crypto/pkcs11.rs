//! Keys kept in a PKCS#11 token (an HSM, or SoftHSM2 in tests). The signing key is made
//! in the token, never leaves it, and signs there (`CKM_EDDSA`, the same 64 bytes ring
//! makes for the same key); the factory master secret can live there too, as HKDF's PRK
//! deriving each device key inside (`TokenMaster`). The signer names them with PKCS#11
//! URIs (`pkcs11:token=resetdesk;object=sign-v1`) and the module's path
//! (`pkcs11_module`); the user PIN comes from the settings (`pkcs11_pin`), is never
//! logged, and is tried once (real HSMs lock a PIN after a few wrong tries).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as TokenApiError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use super::{DeviceKey, DeviceKeys, KeyId, MasterSecret, PublicKey, Signature};
use crate::domain::DeviceSerial;

/// Ed25519's curve as `CKA_EC_PARAMS`: the printable string PKCS#11 3.0 names, which
/// SoftHSM 2.6 takes; some tokens want the OID (RFC 8410), tried second.
const ED25519_NAME: &[u8] = b"\x13\x0cedwards25519";
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The URI itself is never repeated: it may carry a `pin-value`.
    #[error("expected pkcs11:token=LABEL;object=LABEL, and no PIN or other attribute in it")]
    Uri,
    #[error("the PKCS#11 module {path}: {source}")]
    Module {
        path: String,
        #[source]
        source: TokenApiError,
    },
    #[error(
        "no PKCS#11 token labelled {0:?} (is it initialised, and SOFTHSM2_CONF set for SoftHSM?)"
    )]
    NoToken(String),
    #[error("the token refused the PIN (pkcs11_pin): it is wrong, or locked")]
    Pin,
    #[error(
        "the token's user PIN is locked, or one more wrong try would lock it: not tried; fix pkcs11_pin, and unlock it with the token's tools"
    )]
    PinAtRisk,
    #[error(
        "the token holds {private} private and {public} public keys labelled {label:?}: one pair is expected; remove the extra ones (two signers made keys at once?) and start again"
    )]
    Ambiguous {
        label: String,
        private: usize,
        public: usize,
    },
    #[error(
        "the key labelled {0:?} may leave the token (not sensitive, extractable, or not made there): the signer uses only a key made in the token that can never leave it"
    )]
    Exportable(String),
    #[error("the token's key {0} did not sign what its public half verifies")]
    SelfTest(String),
    #[error("the token: {0}")]
    Token(#[from] TokenApiError),
    #[error("the token's public key is not an Ed25519 key ({0} bytes)")]
    NotEd25519(usize),
    #[error(
        "the token holds no master secret labelled {0:?}: import the factory's with `resetdesk signer import-master`"
    )]
    NoMaster(String),
    #[error(
        "the token's master secret labelled {0:?} carries no key id (CKA_ID): import it with `resetdesk signer import-master`"
    )]
    NoMasterId(String),
    #[error(
        "the token already holds another master secret labelled {label:?} (key id {id}): nothing was imported"
    )]
    OtherMaster { label: String, id: String },
}

/// `pkcs11:token=LABEL;object=LABEL`, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKeyUri {
    pub token: String,
    pub object: String,
}

impl TokenKeyUri {
    /// Reads `token` and `object` (and tolerates RFC 7512's `type`). Anything else is
    /// refused, a query part (`?pin-value=…`) and `pin-*` attributes above all: the URI
    /// is printed, written to the keys directory and logged, and must never carry a PIN.
    pub fn parse(raw: &str) -> Result<Self, TokenError> {
        let bad = || TokenError::Uri;
        let rest = raw.strip_prefix("pkcs11:").ok_or_else(bad)?;
        if rest.contains('?') {
            return Err(bad());
        }
        let (mut token, mut object) = (None, None);
        for part in rest.split(';') {
            let (key, value) = part.split_once('=').ok_or_else(bad)?;
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| bad())?
                .into_owned();
            match key {
                "token" => token = Some(value),
                "object" => object = Some(value),
                "type" => {}
                _ => return Err(bad()),
            }
        }
        match (token, object) {
            (Some(token), Some(object)) if !token.is_empty() && !object.is_empty() => {
                Ok(Self { token, object })
            }
            _ => Err(bad()),
        }
    }
}

/// Characters of a label written as they are in a URI; the rest percent-encoded.
const URI_ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The URI as the desk writes it: `pkcs11:token=…;object=…`, nothing else.
impl std::fmt::Display for TokenKeyUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pkcs11:token={};object={}",
            percent_encoding::utf8_percent_encode(&self.token, URI_ESCAPED),
            percent_encoding::utf8_percent_encode(&self.object, URI_ESCAPED)
        )
    }
}

/// Idle sessions kept open for the next operation; more are opened when more run at
/// once, and closed again after.
const IDLE_SESSIONS_KEPT: usize = 8;

/// An open token: its module initialised once for the process, signed in with the user
/// PIN, and a few sessions (PKCS#11 runs one operation per session at a time, so
/// concurrent answers each take one). A session the token lost (closed, or signed out,
/// as when the token restarts) is replaced on the spot: the signer does not stop over it.
pub struct Token {
    pkcs11: Pkcs11,
    slot: Slot,
    label: String,
    pin: AuthPin,
    /// Set when the token refused the PIN while signing in again: never tried a second
    /// time (a real HSM locks it after a few).
    pin_refused: AtomicBool,
    /// Held while signing in: threads finding the sign-in lost at once try the PIN once
    /// between them, not once each.
    signing_in: Mutex<()>,
    idle: Mutex<Vec<Session>>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({:?})", self.label)
    }
}

impl Token {
    /// Loads the module, finds the token labelled `label` and signs in with `pin`.
    pub fn open(module: &Path, label: &str, pin: &str) -> Result<Arc<Self>, TokenError> {
        let module_error = |source| TokenError::Module {
            path: module.display().to_string(),
            source,
        };
        let pkcs11 = Pkcs11::new(module).map_err(module_error)?;
        match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(TokenApiError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(error) => return Err(module_error(error)),
        }
        let slot = pkcs11
            .get_slots_with_initialized_token()?
            .into_iter()
            .find(|slot| {
                pkcs11
                    .get_token_info(*slot)
                    .is_ok_and(|info| info.label().trim() == label)
            })
            .ok_or_else(|| TokenError::NoToken(label.to_owned()))?;
        let token = Arc::new(Self {
            pkcs11,
            slot,
            label: label.to_owned(),
            pin: AuthPin::new(pin.into()),
            pin_refused: AtomicBool::new(false),
            signing_in: Mutex::new(()),
            idle: Mutex::new(Vec::new()),
        });
        let session = token.new_session()?;
        token.put_back(session);
        Ok(token)
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// A new session, signed in. A PIN the token flags as locked or at its final try is
    /// not tried (a restarted signer would otherwise try again at every start).
    fn new_session(&self) -> Result<Session, TokenError> {
        let session = self.pkcs11.open_rw_session(self.slot)?;
        let _signing_in = self.signing_in.lock().unwrap_or_else(|e| e.into_inner());
        if self.pin_refused.load(Ordering::SeqCst) {
            return Err(TokenError::Pin);
        }
        let info = self.pkcs11.get_token_info(self.slot)?;
        if info.user_pin_locked() || info.user_pin_final_try() {
            return Err(TokenError::PinAtRisk);
        }
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(TokenApiError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(TokenApiError::Pkcs11(RvError::PinIncorrect | RvError::PinLocked, _)) => {
                self.pin_refused.store(true, Ordering::SeqCst);
                Err(TokenError::Pin)
            }
            Err(error) => Err(error.into()),
        }
    }

    fn put_back(&self, session: Session) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_SESSIONS_KEPT {
            idle.push(session);
        }
    }

    /// Runs `op` on a signed-in session of its own. When the token lost the session
    /// (closed it, signed it out, was removed and came back), a new one is opened and
    /// `op` tried once more.
    fn with_session<T>(
        &self,
        op: impl Fn(&Session) -> Result<T, TokenApiError>,
    ) -> Result<T, TokenError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let session = match idle {
            Some(session) => session,
            None => self.new_session()?,
        };
        match op(&session) {
            Ok(value) => {
                self.put_back(session);
                Ok(value)
            }
            Err(TokenApiError::Pkcs11(rv, _)) if session_lost(rv) => {
                tracing::warn!(token = %self.label, error = %rv, "the token lost a session: opening another");
                drop(session);
                // Every idle session went with it, most likely.
                self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
                let session = self.new_session()?;
                let value = op(&session)?;
                self.put_back(session);
                Ok(value)
            }
            Err(error) => {
                self.put_back(session);
                Err(error.into())
            }
        }
    }

    /// The objects of `class` labelled `label` (and with `CKA_ID` `id`, when given).
    fn find(
        &self,
        class: ObjectClass,
        key_type: KeyType,
        label: &str,
        id: Option<&[u8]>,
    ) -> Result<Vec<ObjectHandle>, TokenError> {
        let mut template = vec![
            Attribute::Class(class),
            Attribute::KeyType(key_type),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        if let Some(id) = id {
            template.push(Attribute::Id(id.to_vec()));
        }
        self.with_session(|session| session.find_objects(&template))
    }

    /// Whether a secret object can never leave the token: sensitive, not extractable.
    /// With `made_inside`, also made by the token itself (`CKA_LOCAL`) and never out of
    /// it since (`CKA_ALWAYS_SENSITIVE`, `CKA_NEVER_EXTRACTABLE`): a key someone made
    /// readable, read, and locked again is not taken.
    fn kept_inside(&self, handle: ObjectHandle, made_inside: bool) -> Result<bool, TokenError> {
        let mut asked = vec![AttributeType::Sensitive, AttributeType::Extractable];
        if made_inside {
            asked.extend([
                AttributeType::Local,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
            ]);
        }
        let answers = self.with_session(|session| session.get_attributes(handle, &asked))?;
        let inside = answers.iter().all(|attribute| match attribute {
            Attribute::Sensitive(yes)
            | Attribute::Local(yes)
            | Attribute::AlwaysSensitive(yes)
            | Attribute::NeverExtractable(yes) => *yes,
            Attribute::Extractable(extractable) => !*extractable,
            _ => false,
        });
        Ok(inside && answers.len() == asked.len())
    }
}

/// A secret key in the token, as the signer uses it: its handle, and what finds it
/// again (class, type, label, id) when the token forgot the handle — SoftHSM drops the
/// handles of private objects when the token is signed out, a real HSM when it restarts.
struct KeyObject {
    class: ObjectClass,
    key_type: KeyType,
    label: String,
    id: Vec<u8>,
    /// Made in the token (a signing key), not imported (the master secret's PRK): what
    /// [`Token::kept_inside`] asks of it when it is found again.
    made_inside: bool,
    handle: Mutex<ObjectHandle>,
}

impl KeyObject {
    fn handle(&self) -> ObjectHandle {
        *self.handle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Token {
    /// Signs (or MACs) `data` with `key` by `mechanism`. A handle the token forgot is
    /// found again, once, after signing in again.
    fn sign_with(
        &self,
        key: &KeyObject,
        mechanism: &Mechanism,
        data: &[u8],
    ) -> Result<Vec<u8>, TokenError> {
        let handle = key.handle();
        match self.with_session(|session| session.sign(mechanism, handle, data)) {
            Err(TokenError::Token(TokenApiError::Pkcs11(
                RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid,
                _,
            ))) => {
                tracing::warn!(token = %self.label, label = %key.label, "the token forgot a key's handle: signing in and finding it again");
                let session = self.new_session()?;
                self.put_back(session);
                let found = self.find(key.class, key.key_type, &key.label, Some(&key.id))?;
                let [again] = found.as_slice() else {
                    return Err(TokenError::Ambiguous {
                        label: key.label.clone(),
                        private: found.len(),
                        public: 0,
                    });
                };
                if !self.kept_inside(*again, key.made_inside)? {
                    return Err(TokenError::Exportable(key.label.clone()));
                }
                *key.handle.lock().unwrap_or_else(|e| e.into_inner()) = *again;
                self.with_session(|session| session.sign(mechanism, *again, data))
            }
            other => other,
        }
    }
}

/// Errors after which the session, or the sign-in, is gone and a new one may work.
fn session_lost(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::UserNotLoggedIn
            | RvError::DeviceRemoved
            | RvError::TokenNotPresent
    )
}

/// An Ed25519 signing key in a token: its private half's handle, and its public half
/// read out. The token may hold several under one label (one per rotation), each with
/// `CKA_ID` = the key id's 8 bytes, as the keyring names it.
pub struct TokenSigningKey {
    token: Arc<Token>,
    private: KeyObject,
    public_handle: ObjectHandle,
    public: PublicKey,
}

impl std::fmt::Debug for TokenSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSigningKey({})", self.public.id())
    }
}

impl TokenSigningKey {
    /// The pair labelled `label` whose `CKA_ID` is `id`'s: `None` when the token holds
    /// no such key; an error for half a pair, two of them, or a key that may leave.
    pub fn find(token: &Arc<Token>, label: &str, id: &KeyId) -> Result<Option<Self>, TokenError> {
        let id_bytes = id_bytes(id);
        let privates = token.find(
            ObjectClass::PRIVATE_KEY,
            KeyType::EC_EDWARDS,
            label,
            Some(&id_bytes),
        )?;
        let publics = token.find(
            ObjectClass::PUBLIC_KEY,
            KeyType::EC_EDWARDS,
            label,
            Some(&id_bytes),
        )?;
        if privates.is_empty() && publics.is_empty() {
            return Ok(None);
        }
        let key = Self::from_pair(token, label, privates, publics)?;
        if key.id() != id {
            return Err(TokenError::SelfTest(format!(
                "{id} (its public half is key {})",
                key.id()
            )));
        }
        Ok(Some(key))
    }

    /// The only pair labelled `label`, made now when the token holds no object by that
    /// label (a signer's first start). Returns it, and whether it was made now. Half a
    /// pair, or two, is the operator's to look at, never papered over by a new key.
    pub fn only_or_new(token: &Arc<Token>, label: &str) -> Result<(Self, bool), TokenError> {
        let find = |class| token.find(class, KeyType::EC_EDWARDS, label, None);
        let (privates, publics) = (
            find(ObjectClass::PRIVATE_KEY)?,
            find(ObjectClass::PUBLIC_KEY)?,
        );
        if privates.is_empty() && publics.is_empty() {
            let made = Self::generate(token, label)?;
            // Another signer starting on the token at the same moment made one too:
            // found here as two pairs, and refused.
            let (privates, publics) = (
                find(ObjectClass::PRIVATE_KEY)?,
                find(ObjectClass::PUBLIC_KEY)?,
            );
            if privates.len() != 1 || publics.len() != 1 {
                return Err(TokenError::Ambiguous {
                    label: label.to_owned(),
                    private: privates.len(),
                    public: publics.len(),
                });
            }
            return Ok((made, true));
        }
        // A pair already there (a keys directory restored without its keyring, say):
        // taken only if made in the token and never out of it, and named by its id from
        // now on, as the keyring will name it.
        let key = Self::from_pair(token, label, privates, publics)?;
        tracing::warn!(key_id = %key.id(), label, "took the signing key the token already held under this label");
        let id = id_bytes(key.id());
        let (private, public) = (key.private.handle(), key.public_handle);
        token.with_session(|session| {
            session.update_attributes(public, &[Attribute::Id(id.clone())])?;
            session.update_attributes(private, &[Attribute::Id(id.clone())])
        })?;
        Ok((key, false))
    }

    /// A new pair labelled `label`, made in the token (sensitive, never extractable),
    /// named by its key id, and self-tested.
    pub fn generate(token: &Arc<Token>, label: &str) -> Result<Self, TokenError> {
        let (public_handle, private) =
            token.with_session(|session| generate(session, label.as_bytes()))?;
        let named = || -> Result<Self, TokenError> {
            let public = read_public_key(token, public_handle)?;
            let id = id_bytes(public.id());
            token.with_session(|session| {
                session.update_attributes(public_handle, &[Attribute::Id(id.clone())])?;
                session.update_attributes(private, &[Attribute::Id(id.clone())])
            })?;
            let key = Self {
                token: token.clone(),
                private: signing_object(label, &public, private),
                public_handle,
                public,
            };
            key.self_test(label)?;
            Ok(key)
        };
        // A pair that could not be named or did not sign is not left behind.
        named().inspect_err(|_| {
            let _ = token.with_session(|session| {
                session.destroy_object(private)?;
                session.destroy_object(public_handle)
            });
        })
    }

    fn from_pair(
        token: &Arc<Token>,
        label: &str,
        privates: Vec<ObjectHandle>,
        publics: Vec<ObjectHandle>,
    ) -> Result<Self, TokenError> {
        let ([private], [public_handle]) = (privates.as_slice(), publics.as_slice()) else {
            return Err(TokenError::Ambiguous {
                label: label.to_owned(),
                private: privates.len(),
                public: publics.len(),
            });
        };
        if !token.kept_inside(*private, true)? {
            return Err(TokenError::Exportable(label.to_owned()));
        }
        let public = read_public_key(token, *public_handle)?;
        let key = Self {
            token: token.clone(),
            private: signing_object(label, &public, *private),
            public_handle: *public_handle,
            public,
        };
        key.self_test(label)?;
        Ok(key)
    }

    /// The halves belong together and the token signs: checked before any answer.
    fn self_test(&self, label: &str) -> Result<(), TokenError> {
        self.sign(b"resetdesk: the signing key's self-test")
            .map(|_| ())
            .map_err(|_| TokenError::SelfTest(label.to_owned()))
    }

    /// Removes both halves from the token: a key made for a rotation that could not be
    /// recorded, so that no key the desk does not know stays there.
    pub fn destroy(self) -> Result<(), TokenError> {
        self.token.with_session(|session| {
            session.destroy_object(self.private.handle())?;
            session.destroy_object(self.public_handle)
        })
    }

    pub fn id(&self) -> &KeyId {
        self.public.id()
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs in the token; the signature is checked against the key's public half
    /// before it is returned, so a token that misbehaves signs nothing.
    pub fn sign(&self, message: &[u8]) -> Result<Signature, TokenError> {
        let raw = self.token.sign_with(
            &self.private,
            &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
            message,
        )?;
        let bytes: [u8; 64] = raw
            .as_slice()
            .try_into()
            .map_err(|_| TokenError::NotEd25519(raw.len()))?;
        let signature = Signature(bytes);
        self.public
            .verify(message, &signature)
            .map_err(|_| TokenError::SelfTest(self.public.id().to_string()))?;
        Ok(signature)
    }
}

/// The factory master secret's place in a token: not the secret itself (no token here
/// has HKDF, and SoftHSM takes no HMAC key under 32 bytes) but HKDF's PRK,
/// `HMAC(salt, master)`, imported as a sensitive, never extractable generic secret;
/// each device key is then `HMAC(PRK, serial ‖ 0x01)` computed inside, exactly today's
/// HKDF key. The PRK never leaves the token; each device key does, for the one check
/// or answer it is asked for. `CKA_ID` holds the master secret's key id (8 bytes), as
/// the desk's key registry names it.
pub struct TokenMaster {
    token: Arc<Token>,
    prk: KeyObject,
    key_id: String,
}

impl std::fmt::Debug for TokenMaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenMaster({})", self.key_id)
    }
}

const MASTER_SELF_TEST: &[u8] = b"resetdesk: the master secret's self-test";
const MASTER_CHECK: &[u8] = b"resetdesk: the master secret's check value v1";

impl TokenMaster {
    /// Puts `master` into the token under `label`, and checks that the token derives
    /// from it what the secret in memory does. A token already holding this master
    /// secret by that label is left as it is; another secret by that label is refused.
    /// Returns it, and whether it was imported now.
    pub fn import(
        token: &Arc<Token>,
        label: &str,
        master: &MasterSecret,
    ) -> Result<(Self, bool), TokenError> {
        let key_id = master.key_id();
        let found = token.find(
            ObjectClass::SECRET_KEY,
            KeyType::GENERIC_SECRET,
            label,
            None,
        )?;
        if !found.is_empty() {
            let there = Self::find(token, label)?;
            if there.key_id != key_id || !there.derives_like(master)? {
                return Err(TokenError::OtherMaster {
                    label: label.to_owned(),
                    id: there.key_id,
                });
            }
            return Ok((there, false));
        }
        let id = data_encoding::HEXLOWER
            .decode(key_id.as_bytes())
            .unwrap_or_default();
        let id_kept = id.clone();
        let mut prk = master.device_key_prk();
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Verify(true),
            Attribute::Derive(false),
            Attribute::Encrypt(false),
            Attribute::Decrypt(false),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            // Nobody with the PIN changes what it may do, its id, or copies it.
            Attribute::Modifiable(false),
            Attribute::Copyable(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id),
            Attribute::Value(prk.to_vec()),
        ];
        let created = token.with_session(|session| session.create_object(&template));
        prk.fill(0);
        drop(template);
        let handle = created?;
        let imported = Self {
            token: token.clone(),
            prk: master_object(label, id_kept, handle),
            key_id,
        };
        if !imported.derives_like(master)? || !token.kept_inside(handle, false)? {
            let _ = token.with_session(|session| session.destroy_object(handle));
            return Err(TokenError::SelfTest(label.to_owned()));
        }
        Ok((imported, true))
    }

    /// The master secret labelled `label`: exactly one, kept inside, named by its id.
    pub fn find(token: &Arc<Token>, label: &str) -> Result<Self, TokenError> {
        let found = token.find(
            ObjectClass::SECRET_KEY,
            KeyType::GENERIC_SECRET,
            label,
            None,
        )?;
        let prk = match found.as_slice() {
            [] => return Err(TokenError::NoMaster(label.to_owned())),
            [one] => *one,
            more => {
                return Err(TokenError::Ambiguous {
                    label: label.to_owned(),
                    private: more.len(),
                    public: 0,
                });
            }
        };
        if !token.kept_inside(prk, false)? {
            return Err(TokenError::Exportable(label.to_owned()));
        }
        let id = match token
            .with_session(|session| session.get_attributes(prk, &[AttributeType::Id]))?
            .pop()
        {
            Some(Attribute::Id(id)) if id.len() == 8 => id,
            _ => return Err(TokenError::NoMasterId(label.to_owned())),
        };
        Ok(Self {
            token: token.clone(),
            key_id: data_encoding::HEXLOWER.encode(&id),
            prk: master_object(label, id, prk),
        })
    }

    /// The master secret's key id, as the key registry records it. Read from the
    /// object's `CKA_ID`, which is a claim: [`Self::check_value`] is the proof.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// An HMAC the token computes with the PRK over a fixed label (16 bytes, hex):
    /// recorded at import beside the object's URI and compared at each start, so an
    /// object planted under the label, whatever `CKA_ID` it claims, is refused rather
    /// than answering every genuine export with "not genuine".
    pub fn check_value(&self) -> Result<String, TokenError> {
        Ok(data_encoding::HEXLOWER.encode(&self.hmac(MASTER_CHECK)?[..16]))
    }

    fn hmac(&self, message: &[u8]) -> Result<[u8; 32], TokenError> {
        let tag = self
            .token
            .sign_with(&self.prk, &Mechanism::Sha256Hmac, message)?;
        tag.as_slice()
            .try_into()
            .map_err(|_| TokenError::SelfTest(format!("an HMAC of {} bytes", tag.len())))
    }

    /// Whether the token's PRK is `master`'s: one HMAC compared with ring's.
    fn derives_like(&self, master: &MasterSecret) -> Result<bool, TokenError> {
        let inside = self.hmac(MASTER_SELF_TEST)?;
        let expected = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &master.device_key_prk()),
            MASTER_SELF_TEST,
        );
        Ok(super::constant_time_eq(&inside, expected.as_ref()))
    }
}

impl DeviceKeys for TokenMaster {
    type Error = TokenError;

    fn device_key(&self, serial: &DeviceSerial) -> Result<DeviceKey, TokenError> {
        Ok(DeviceKey::from_bytes(
            self.hmac(&super::device_key::device_key_block(serial))?,
        ))
    }
}

fn signing_object(label: &str, public: &PublicKey, handle: ObjectHandle) -> KeyObject {
    KeyObject {
        class: ObjectClass::PRIVATE_KEY,
        key_type: KeyType::EC_EDWARDS,
        label: label.to_owned(),
        id: id_bytes(public.id()),
        made_inside: true,
        handle: Mutex::new(handle),
    }
}

fn master_object(label: &str, id: Vec<u8>, handle: ObjectHandle) -> KeyObject {
    KeyObject {
        class: ObjectClass::SECRET_KEY,
        key_type: KeyType::GENERIC_SECRET,
        label: label.to_owned(),
        id,
        made_inside: false,
        handle: Mutex::new(handle),
    }
}

fn id_bytes(id: &KeyId) -> Vec<u8> {
    data_encoding::HEXLOWER
        .decode(id.as_str().as_bytes())
        .unwrap_or_default()
}

/// A new Ed25519 key pair in the token, private half sensitive and never extractable:
/// its handles, public half first (as `C_GenerateKeyPair` gives them).
fn generate(
    session: &Session,
    label: &[u8],
) -> Result<(ObjectHandle, ObjectHandle), TokenApiError> {
    let mut last = None;
    for params in [ED25519_NAME, ED25519_OID] {
        let public = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::KeyType(KeyType::EC_EDWARDS),
            Attribute::EcParams(params.to_vec()),
            Attribute::Label(label.to_vec()),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Copyable(false),
            Attribute::Sign(true),
            Attribute::KeyType(KeyType::EC_EDWARDS),
            Attribute::Label(label.to_vec()),
        ];
        match session.generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public, &private) {
            Ok(pair) => return Ok(pair),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or(TokenApiError::Pkcs11(
        RvError::MechanismInvalid,
        cryptoki::context::Function::GenerateKeyPair,
    )))
}

/// `CKA_EC_POINT` as 32 bytes: SoftHSM wraps them in a DER OCTET STRING (`04 20`),
/// other tokens give them raw.
fn read_public_key(token: &Token, handle: ObjectHandle) -> Result<PublicKey, TokenError> {
    let point = match token
        .with_session(|session| session.get_attributes(handle, &[AttributeType::EcPoint]))?
        .pop()
    {
        Some(Attribute::EcPoint(point)) => point,
        _ => return Err(TokenError::NotEd25519(0)),
    };
    let raw: &[u8] = match point.as_slice() {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest,
        raw if raw.len() == 32 => raw,
        other => return Err(TokenError::NotEd25519(other.len())),
    };
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(raw);
    Ok(PublicKey::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_key_uris_are_read() {
        assert_eq!(
            TokenKeyUri::parse("pkcs11:token=resetdesk;object=sign-v1").unwrap(),
            TokenKeyUri {
                token: "resetdesk".to_owned(),
                object: "sign-v1".to_owned()
            }
        );
        assert_eq!(
            TokenKeyUri::parse("pkcs11:token=Vendor%20HSM;object=sign;type=private")
                .unwrap()
                .token,
            "Vendor HSM"
        );
        assert!(TokenKeyUri::parse("pkcs11:object=sign").is_err());
        // A PIN never rides along: it would be printed, stored and logged.
        for carrying_a_pin in [
            "pkcs11:token=t;object=o?pin-value=1234",
            "pkcs11:token=t;object=o;pin-value=1234",
            "pkcs11:token=t;object=o;pin-source=file:/pin",
            "pkcs11:token=t;object=o;module-path=/tmp/evil.so",
        ] {
            assert!(
                TokenKeyUri::parse(carrying_a_pin).is_err(),
                "{carrying_a_pin}"
            );
        }
        let read = TokenKeyUri::parse("pkcs11:token=Vendor%20HSM;object=master-v1").unwrap();
        assert_eq!(
            read.to_string(),
            "pkcs11:token=Vendor%20HSM;object=master-v1"
        );
        assert_eq!(TokenKeyUri::parse(&read.to_string()).unwrap(), read);
        assert!(TokenKeyUri::parse("file:/x").is_err());
    }
}
