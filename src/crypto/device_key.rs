use std::fmt;

use ring::{hkdf, hmac};

use crate::domain::DeviceSerial;

/// HKDF salt for device keys. Changing it changes every device key ever made, so it is
/// fixed by the protocol version rather than configurable.
const DEVICE_KEY_SALT: &[u8] = b"resetdesk.device-key.v1";

/// The vendor's factory master secret: 32 random bytes from which every device key
/// is derived. It exists in the factory and on the desk, never on a device.
pub struct MasterSecret([u8; 32]);

impl MasterSecret {
    pub const LEN: usize = 32;

    pub fn generate() -> Self {
        Self(super::random_bytes())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// This secret's id, as the key registry records it (reveals nothing of the secret).
    pub fn key_id(&self) -> String {
        super::secret_key_id(b"resetdesk master secret id v1\0", &self.0)
    }

    pub(super) fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// HKDF's first step over the master secret, `PRK = HMAC-SHA256(salt, master)`: what
    /// a PKCS#11 token keeps in its place (`pkcs11::TokenMaster`), since every device key
    /// is `HMAC-SHA256(PRK, serial ‖ 0x01)` from there.
    #[cfg(any(feature = "server", test))]
    pub(super) fn device_key_prk(&self) -> [u8; 32] {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, DEVICE_KEY_SALT), &self.0);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Derives the device key of `serial`:
    /// `HKDF-SHA256(salt = "resetdesk.device-key.v1", ikm = master, info = serial)`, 32 bytes.
    pub fn derive_device_key(&self, serial: &DeviceSerial) -> DeviceKey {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, DEVICE_KEY_SALT).extract(&self.0);
        let info = [serial.as_str().as_bytes()];
        let mut out = [0u8; 32];
        #[allow(clippy::expect_used)]
        prk.expand(&info, DeviceKeyLen)
            .and_then(|okm| okm.fill(&mut out))
            .expect("32 bytes is within HKDF-SHA256's output limit");
        DeviceKey(out)
    }
}

/// Where device keys come from: the master secret in memory, or a PKCS#11 token that
/// holds it and derives each key inside (which can fail, hence `Error`). The protocol's
/// checks and answers take any of them.
pub trait DeviceKeys {
    type Error;
    /// The device key of `serial`, as [`MasterSecret::derive_device_key`] makes it.
    fn device_key(&self, serial: &DeviceSerial) -> Result<DeviceKey, Self::Error>;
}

impl DeviceKeys for MasterSecret {
    type Error = std::convert::Infallible;

    fn device_key(&self, serial: &DeviceSerial) -> Result<DeviceKey, Self::Error> {
        Ok(self.derive_device_key(serial))
    }
}

/// HKDF-Expand's one block for a 32-byte key: the message a token MACs with the PRK.
#[cfg(any(feature = "server", test))]
pub(super) fn device_key_block(serial: &DeviceSerial) -> Vec<u8> {
    let mut block = serial.as_str().as_bytes().to_vec();
    block.push(0x01);
    block
}

impl fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterSecret(<redacted>)")
    }
}

struct DeviceKeyLen;

impl hkdf::KeyType for DeviceKeyLen {
    fn len(&self) -> usize {
        32
    }
}

/// A device's own 32-byte secret. The device keeps it from manufacture; the desk
/// re-derives it from the master secret whenever it needs it.
#[derive(Clone)]
pub struct DeviceKey([u8; 32]);

/// An HMAC-SHA256 tag, as carried by each device entry of an export.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MacTag(pub [u8; 32]);

impl DeviceKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key, for the reference device's state file (the simulated secure element).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    fn hmac_key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.0)
    }

    /// HMAC-SHA256 over `message`, which must already carry its own domain label.
    pub fn mac(&self, message: &[u8]) -> MacTag {
        let tag = hmac::sign(&self.hmac_key(), message);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        MacTag(out)
    }

    /// Checks a tag in constant time.
    pub fn verify_mac(&self, message: &[u8], tag: &MacTag) -> bool {
        hmac::verify(&self.hmac_key(), message, &tag.0).is_ok()
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serial(raw: &str) -> DeviceSerial {
        DeviceSerial::parse(raw).unwrap()
    }

    #[test]
    fn device_keys_are_bound_to_serial_and_master() {
        let master = MasterSecret::from_bytes([7; 32]);
        let a = master.derive_device_key(&serial("SERIAL-A"));
        let b = master.derive_device_key(&serial("SERIAL-B"));
        let a_again = master.derive_device_key(&serial("SERIAL-A"));
        let other_master = MasterSecret::from_bytes([8; 32]).derive_device_key(&serial("SERIAL-A"));
        assert_eq!(a.to_bytes(), a_again.to_bytes());
        assert_ne!(a.to_bytes(), b.to_bytes());
        assert_ne!(a.to_bytes(), other_master.to_bytes());
    }

    /// What a token computes (HMAC with the PRK over serial ‖ 0x01) is exactly today's
    /// HKDF device key: moving the master secret into a token changes no device's key.
    #[test]
    fn the_prk_and_one_hmac_block_make_the_same_device_key() {
        let master = MasterSecret::from_bytes(std::array::from_fn(|i| i as u8 * 3));
        for raw in ["SERIAL-A", "DS-2CD2143G2-I20231105AAWRL12345678", "XY1234"] {
            let serial = serial(raw);
            let prk = master.device_key_prk();
            let by_hand = hmac::sign(
                &hmac::Key::new(hmac::HMAC_SHA256, &prk),
                &device_key_block(&serial),
            );
            assert_eq!(
                by_hand.as_ref(),
                master.derive_device_key(&serial).to_bytes().as_slice()
            );
        }
    }

    #[test]
    fn mac_verifies_only_the_same_message() {
        let key = DeviceKey::from_bytes([1; 32]);
        let tag = key.mac(b"hello");
        assert!(key.verify_mac(b"hello", &tag));
        assert!(!key.verify_mac(b"hellp", &tag));
        assert!(!DeviceKey::from_bytes([2; 32]).verify_mac(b"hello", &tag));
    }

    #[test]
    fn debug_never_shows_key_material() {
        assert_eq!(
            format!("{:?}", MasterSecret::from_bytes([0xAB; 32])),
            "MasterSecret(<redacted>)"
        );
        assert_eq!(
            format!("{:?}", DeviceKey::from_bytes([0xAB; 32])),
            "DeviceKey(<redacted>)"
        );
    }
}
