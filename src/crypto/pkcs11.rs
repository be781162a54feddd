//! A signing key kept in a PKCS#11 token (an HSM, or SoftHSM2 in tests): the private key
//! is made in the token, never leaves it, and signs there (`CKM_EDDSA`, the same 64
//! bytes ring makes for the same key). The signer names it with a PKCS#11 URI
//! (`pkcs11:token=resetdesk;object=sign-v1`) and the module's path (`pkcs11_module`);
//! the user PIN comes from the settings (`pkcs11_pin`), is never logged, and is tried
//! once (real HSMs lock a PIN after a few wrong tries).

use std::path::Path;
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as TokenApiError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

use super::{KeyId, PublicKey, Signature};

/// Ed25519's curve as `CKA_EC_PARAMS`: the printable string PKCS#11 3.0 names, which
/// SoftHSM 2.6 takes; some tokens want the OID (RFC 8410), tried second.
const ED25519_NAME: &[u8] = b"\x13\x0cedwards25519";
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The URI itself is never repeated: it may carry a `pin-value`.
    #[error("signing_key: expected pkcs11:token=LABEL;object=LABEL")]
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
}

/// `pkcs11:token=LABEL;object=LABEL`, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKeyUri {
    pub token: String,
    pub object: String,
}

impl TokenKeyUri {
    pub fn parse(raw: &str) -> Result<Self, TokenError> {
        let bad = || TokenError::Uri;
        let rest = raw.strip_prefix("pkcs11:").ok_or_else(bad)?;
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
                _ => {}
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

/// An Ed25519 signing key in a token: its handle, and its public half read out.
pub struct TokenSigningKey {
    session: Mutex<Session>,
    private: ObjectHandle,
    public: PublicKey,
}

impl std::fmt::Debug for TokenSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSigningKey({})", self.public.id())
    }
}

impl TokenSigningKey {
    /// Opens the token, signs in, and finds the key named by `uri`, or makes it there
    /// when the token holds none by that label. Returns it, and whether it was made now.
    pub fn open_or_create(
        module: &Path,
        uri: &TokenKeyUri,
        pin: &str,
    ) -> Result<(Self, bool), TokenError> {
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
                    .is_ok_and(|info| info.label().trim() == uri.token)
            })
            .ok_or_else(|| TokenError::NoToken(uri.token.clone()))?;
        // A real HSM locks the PIN after a few wrong tries, and a restarted signer
        // would try again at every start: a PIN at risk is not tried at all.
        let info = pkcs11.get_token_info(slot)?;
        if info.user_pin_locked() || info.user_pin_final_try() {
            return Err(TokenError::PinAtRisk);
        }
        let session = pkcs11.open_rw_session(slot)?;
        match session.login(UserType::User, Some(&AuthPin::new(pin.into()))) {
            Ok(()) | Err(TokenApiError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(TokenApiError::Pkcs11(RvError::PinIncorrect | RvError::PinLocked, _)) => {
                return Err(TokenError::Pin);
            }
            Err(error) => return Err(error.into()),
        }
        let label = uri.object.as_bytes().to_vec();
        let find = |class: ObjectClass| -> Result<Vec<ObjectHandle>, TokenError> {
            Ok(session.find_objects(&[
                Attribute::Class(class),
                Attribute::KeyType(KeyType::EC_EDWARDS),
                Attribute::Label(label.clone()),
            ])?)
        };
        let pair = |privates: Vec<ObjectHandle>, publics: Vec<ObjectHandle>| match (
            privates.as_slice(),
            publics.as_slice(),
        ) {
            ([private], [public]) => Ok((*private, *public)),
            _ => Err(TokenError::Ambiguous {
                label: uri.object.clone(),
                private: privates.len(),
                public: publics.len(),
            }),
        };
        let (privates, publics) = (
            find(ObjectClass::PRIVATE_KEY)?,
            find(ObjectClass::PUBLIC_KEY)?,
        );
        // Made only in a token holding no object by that label: half a pair, or two,
        // is the operator's to look at, never papered over by a new key.
        let created = privates.is_empty() && publics.is_empty();
        let (private, public_handle) = if created {
            generate(&session, &label)?;
            // Another signer starting on the token at the same moment made one too:
            // found here as two pairs, and refused.
            pair(
                find(ObjectClass::PRIVATE_KEY)?,
                find(ObjectClass::PUBLIC_KEY)?,
            )?
        } else {
            pair(privates, publics)?
        };
        let kept_inside = session.get_attributes(
            private,
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::Local,
            ],
        )?;
        let inside = kept_inside.iter().all(|attribute| match attribute {
            Attribute::Sensitive(sensitive) => *sensitive,
            Attribute::Extractable(extractable) => !*extractable,
            Attribute::Local(local) => *local,
            _ => true,
        });
        if !inside || kept_inside.len() != 3 {
            return Err(TokenError::Exportable(uri.object.clone()));
        }
        let public = read_public_key(&session, public_handle)?;
        if created {
            // Named by its key id's 8 bytes too, as the keyring names it.
            let id = data_encoding::HEXLOWER
                .decode(public.id().as_str().as_bytes())
                .unwrap_or_default();
            session.update_attributes(public_handle, &[Attribute::Id(id.clone())])?;
            session.update_attributes(private, &[Attribute::Id(id)])?;
        }
        let key = Self {
            session: Mutex::new(session),
            private,
            public,
        };
        // The halves belong together and the token signs: checked before any answer.
        key.sign(b"resetdesk: the signing key's self-test")
            .map_err(|_| TokenError::SelfTest(uri.object.clone()))?;
        Ok((key, created))
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
        let session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let raw = session.sign(
            &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
            self.private,
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

/// A new Ed25519 key pair in the token, private half sensitive and never extractable.
fn generate(session: &Session, label: &[u8]) -> Result<(ObjectHandle, ObjectHandle), TokenError> {
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
            Attribute::Sign(true),
            Attribute::KeyType(KeyType::EC_EDWARDS),
            Attribute::Label(label.to_vec()),
        ];
        match session.generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public, &private) {
            Ok(pair) => return Ok(pair),
            Err(error) => last = Some(error),
        }
    }
    Err(last.map_or(TokenError::NotEd25519(0), TokenError::Token))
}

/// `CKA_EC_POINT` as 32 bytes: SoftHSM wraps them in a DER OCTET STRING (`04 20`),
/// other tokens give them raw.
fn read_public_key(session: &Session, handle: ObjectHandle) -> Result<PublicKey, TokenError> {
    let point = match session
        .get_attributes(handle, &[AttributeType::EcPoint])?
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
        assert!(TokenKeyUri::parse("file:/x").is_err());
    }
}
