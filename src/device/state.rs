//! The reference device's persistent state: what a real device keeps in flash. The file
//! holds device keys (the simulated secure element), so it is written owner-only.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::crypto::secret_file;
use crate::crypto::{DeviceKey, PublicKeySet};
use crate::domain::{
    DeviceModel, DeviceSerial, EmailAddress, FirmwareVersion, MacAddress, Timestamp,
};
use crate::protocol::{DeviceIdentity, ExportId, Nonce};

const STATE_FORMAT: u32 = 1;
/// How many ended challenges a device remembers, to explain why an old response fails.
const HISTORY_LEN: usize = 8;

/// Why a challenge stopped being the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChallengeEnd {
    Reexported,
    Rebooted,
    Used,
    Expired,
    TooManyAttempts,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutstandingChallenge {
    #[serde(with = "nonce_hex")]
    pub nonce: Nonce,
    pub issued_at: Timestamp,
    pub failed_attempts: u8,
    /// The export a version 2 challenge belongs to; absent for version 1 challenges
    /// (and in state files written before version 2).
    #[serde(
        default,
        with = "export_id_hex",
        skip_serializing_if = "Option::is_none"
    )]
    pub export_id: Option<ExportId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndedChallenge {
    #[serde(with = "nonce_hex")]
    pub nonce: Nonce,
    pub reason: ChallengeEnd,
}

/// One simulated unit: the NVR itself or one of its cameras.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimulatedDevice {
    pub model: DeviceModel,
    pub serial: DeviceSerial,
    pub firmware: FirmwareVersion,
    pub mac_address: Option<MacAddress>,
    pub reserved_email: Option<EmailAddress>,
    #[serde(with = "key_hex")]
    pub device_key: DeviceKey,
    pub challenge: Option<OutstandingChallenge>,
    #[serde(default)]
    pub ended: Vec<EndedChallenge>,
    pub password_set_at: Option<Timestamp>,
}

impl SimulatedDevice {
    pub fn identity(&self) -> DeviceIdentity {
        DeviceIdentity {
            model: self.model.clone(),
            serial: self.serial.clone(),
            firmware: self.firmware.clone(),
            mac_address: self.mac_address,
            reserved_email: self.reserved_email.clone(),
        }
    }

    /// Ends the current challenge, if any, remembering why.
    pub fn end_challenge(&mut self, reason: ChallengeEnd) {
        if let Some(challenge) = self.challenge.take() {
            self.ended.push(EndedChallenge {
                nonce: challenge.nonce,
                reason,
            });
            if self.ended.len() > HISTORY_LEN {
                self.ended.remove(0);
            }
        }
    }

    pub fn why_ended(&self, nonce: &Nonce) -> Option<ChallengeEnd> {
        self.ended
            .iter()
            .rev()
            .find(|ended| &ended.nonce == nonce)
            .map(|ended| ended.reason)
    }
}

/// The whole state file: a device, the cameras connected to it, and the public keys its
/// firmware was built to trust.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceState {
    pub format: u32,
    pub device: SimulatedDevice,
    #[serde(default)]
    pub cameras: Vec<SimulatedDevice>,
    pub trusted_keys: PublicKeySet,
    pub boot_count: u32,
    /// The protocol version the firmware exports in (a property of the firmware, not a
    /// choice at export time). State files from before version 2 read as version 1.
    #[serde(default = "first_protocol")]
    pub protocol: u8,
}

fn first_protocol() -> u8 {
    crate::protocol::PROTOCOL_V1
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "{0} already exists: this device is already provisioned (delete the file to start over)"
    )]
    Exists(String),
    #[error(transparent)]
    File(#[from] secret_file::SecretFileError),
    #[error("{path} is not a device state file: {reason}")]
    Damaged { path: String, reason: String },
}

impl DeviceState {
    pub fn new(device: SimulatedDevice, trusted_keys: PublicKeySet) -> Self {
        Self {
            format: STATE_FORMAT,
            device,
            cameras: Vec::new(),
            trusted_keys,
            boot_count: 0,
            protocol: crate::protocol::PROTOCOL_VERSION,
        }
    }

    pub fn load(path: &Path) -> Result<Self, StateError> {
        let raw = secret_file::read_private(path)?;
        let damaged = |reason: String| StateError::Damaged {
            path: path.display().to_string(),
            reason,
        };
        let state: Self = serde_json::from_slice(&raw).map_err(|e| damaged(e.to_string()))?;
        if state.format != STATE_FORMAT {
            return Err(damaged(format!("unsupported format {}", state.format)));
        }
        Ok(state)
    }

    /// Writes a new state file, refusing to replace an existing one.
    pub fn create(&self, path: &Path) -> Result<(), StateError> {
        if path.exists() {
            return Err(StateError::Exists(path.display().to_string()));
        }
        secret_file::create_private(path, &self.to_json())?;
        Ok(())
    }

    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        secret_file::replace_private(path, &self.to_json())?;
        Ok(())
    }

    fn to_json(&self) -> Vec<u8> {
        #[allow(clippy::expect_used)]
        let mut text = serde_json::to_vec_pretty(self).expect("device state serialises");
        text.push(b'\n');
        text
    }

    /// The device and its cameras, device first.
    pub fn units_mut(&mut self) -> impl Iterator<Item = &mut SimulatedDevice> {
        std::iter::once(&mut self.device).chain(self.cameras.iter_mut())
    }

    pub fn unit_mut(&mut self, serial: &DeviceSerial) -> Option<&mut SimulatedDevice> {
        self.units_mut().find(|unit| &unit.serial == serial)
    }
}

mod nonce_hex {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::protocol::Nonce;

    pub fn serialize<S: Serializer>(nonce: &Nonce, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&nonce.to_hex())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Nonce, D::Error> {
        Nonce::parse_hex(&String::deserialize(d)?).map_err(D::Error::custom)
    }
}

mod export_id_hex {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::protocol::ExportId;

    pub fn serialize<S: Serializer>(id: &Option<ExportId>, s: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => s.serialize_str(&id.to_hex()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ExportId>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| ExportId::parse_hex(&text).map_err(D::Error::custom))
            .transpose()
    }
}

mod key_hex {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::crypto::DeviceKey;

    pub fn serialize<S: Serializer>(key: &DeviceKey, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&data_encoding::HEXLOWER.encode(&key.to_bytes()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DeviceKey, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(text.as_bytes())
            .map_err(|_| D::Error::custom("device key is not hex"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| D::Error::custom("device key is not 32 bytes"))?;
        Ok(DeviceKey::from_bytes(bytes))
    }
}
