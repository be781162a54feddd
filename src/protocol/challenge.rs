//! What a device exports: its identity and a fresh challenge, authenticated with its
//! device key. One export (a [`ResetRequest`]) may cover an NVR and its cameras.

use std::fmt;

use crate::crypto::{DeviceKey, MacTag, MasterSecret};
use crate::domain::{
    DeviceModel, DeviceSerial, EmailAddress, FirmwareVersion, MacAddress, Timestamp,
};
use crate::protocol::canonical::{ByteReader, ByteWriter, EXPORT_ENTRY_DOMAIN, Truncated};
use crate::protocol::{CHALLENGE_LIFETIME_SECS, PROTOCOL_VERSION};

/// The most devices one export may cover (an NVR and 63 cameras).
pub const MAX_DEVICES_PER_REQUEST: usize = 64;

/// A field that parsed structurally but holds a value the protocol does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("device {device}: {field} {problem}")]
pub struct FieldProblem {
    /// 1-based position of the device in the export.
    pub device: usize,
    pub field: &'static str,
    pub problem: String,
}

impl FieldProblem {
    pub(crate) fn check<T, E: fmt::Display>(
        device: usize,
        field: &'static str,
        result: Result<T, E>,
    ) -> Result<T, FieldProblem> {
        result.map_err(|e| FieldProblem {
            device,
            field,
            problem: e.to_string(),
        })
    }
}

/// The 16-byte random value that makes each challenge unique.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce(pub [u8; 16]);

impl Nonce {
    pub fn random() -> Self {
        Self(crate::crypto::random_bytes())
    }

    /// Parses 32 hex characters (either case).
    pub fn parse_hex(raw: &str) -> Result<Self, &'static str> {
        const PROBLEM: &str = "is not 32 hex characters";
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(raw.as_bytes())
            .map_err(|_| PROBLEM)?;
        bytes.try_into().map(Self).map_err(|_| PROBLEM)
    }

    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }
}

impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({})", self.to_hex())
    }
}

/// Who the device says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    pub model: DeviceModel,
    pub serial: DeviceSerial,
    pub firmware: FirmwareVersion,
    pub mac_address: Option<MacAddress>,
    /// An owner address set on the device itself, for fast-track reviews.
    pub reserved_email: Option<EmailAddress>,
}

/// One device's entry in an export: identity, challenge and the MAC over both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceChallenge {
    pub identity: DeviceIdentity,
    pub nonce: Nonce,
    pub issued_at: Timestamp,
    pub tag: MacTag,
}

impl DeviceChallenge {
    /// Device side: authenticates a new challenge with the device's own key.
    pub fn issue(
        identity: DeviceIdentity,
        nonce: Nonce,
        issued_at: Timestamp,
        key: &DeviceKey,
    ) -> Self {
        let mut challenge = Self {
            identity,
            nonce,
            issued_at,
            tag: MacTag([0; 32]),
        };
        challenge.tag = key.mac(&challenge.canonical_bytes());
        challenge
    }

    /// The bytes the MAC covers:
    /// `"resetdesk.export-entry.v1" 0x00 || version(u8) || body`, where body is
    /// `str8(model) || str8(serial) || str8(firmware) || opt(mac 6 bytes) ||
    /// opt(str8(reserved e-mail)) || nonce(16) || issued_at(i64)`.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut writer = ByteWriter::with_domain(EXPORT_ENTRY_DOMAIN);
        writer.u8(PROTOCOL_VERSION);
        self.write_body(&mut writer);
        writer.finish()
    }

    pub(crate) fn write_body(&self, w: &mut ByteWriter) {
        let id = &self.identity;
        w.str8(id.model.as_str())
            .str8(id.serial.as_str())
            .str8(id.firmware.as_str())
            .presence(id.mac_address.is_some());
        if let Some(mac) = &id.mac_address {
            w.bytes(&mac.octets());
        }
        w.presence(id.reserved_email.is_some());
        if let Some(email) = &id.reserved_email {
            w.str8(email.as_str());
        }
        w.bytes(&self.nonce.0).i64(self.issued_at.unix_seconds());
    }

    /// Reads a body written by [`Self::write_body`] followed by the 32-byte tag.
    pub(crate) fn read_body_and_tag(
        device: usize,
        r: &mut ByteReader<'_>,
    ) -> Result<Result<Self, FieldProblem>, Truncated> {
        let model = r.str8()?;
        let serial = r.str8()?;
        let firmware = r.str8()?;
        let mac = if r.presence()? {
            Some(r.array::<6>()?)
        } else {
            None
        };
        let email = if r.presence()? { Some(r.str8()?) } else { None };
        let nonce = Nonce(r.array()?);
        let issued_at = r.i64()?;
        let tag = MacTag(r.array()?);
        let parse = || -> Result<Self, FieldProblem> {
            Ok(Self {
                identity: DeviceIdentity {
                    model: FieldProblem::check(device, "model", DeviceModel::parse(&model))?,
                    serial: FieldProblem::check(device, "serial", DeviceSerial::parse(&serial))?,
                    firmware: FieldProblem::check(
                        device,
                        "firmware",
                        FirmwareVersion::parse(&firmware),
                    )?,
                    mac_address: mac.map(MacAddress::from_bytes),
                    reserved_email: email
                        .map(|e| {
                            FieldProblem::check(device, "reserved e-mail", EmailAddress::parse(&e))
                        })
                        .transpose()?,
                },
                nonce,
                issued_at: FieldProblem::check(
                    device,
                    "issue time",
                    Timestamp::from_unix_seconds(issued_at),
                )?,
                tag,
            })
        };
        Ok(parse())
    }

    /// When the challenge dies on the device, whatever else happens: issue time + 48 h.
    pub fn expires_at(&self) -> Timestamp {
        self.issued_at.plus_seconds(CHALLENGE_LIFETIME_SECS)
    }

    /// Desk side: re-derives the device key from the master secret and checks the MAC.
    pub fn mac_is_valid(&self, master: &MasterSecret) -> bool {
        master
            .derive_device_key(&self.identity.serial)
            .verify_mac(&self.canonical_bytes(), &self.tag)
    }
}

/// Why the desk will not answer an export that parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error(
        "device {serial}: the export's authentication code is wrong: the file was altered, \
         damaged, or not made by a genuine device"
    )]
    BadMac { serial: DeviceSerial },
    #[error(
        "device {serial}: the export expired at {expired_at}; a challenge lives 48 hours, \
         so make a new export on the device and send that"
    )]
    Expired {
        serial: DeviceSerial,
        expired_at: Timestamp,
    },
    #[error(
        "device {serial}: the export claims to be made at {issued_at}, in the future; \
         check the device's clock and export again"
    )]
    IssuedInFuture {
        serial: DeviceSerial,
        issued_at: Timestamp,
    },
}

/// Why a list of device entries cannot form one export.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestShapeError {
    #[error("the export lists no devices")]
    NoDevices,
    #[error("the export lists {count} devices; at most {max} are allowed")]
    TooManyDevices { count: usize, max: usize },
    #[error("device {0} appears more than once in the export")]
    DuplicateDevice(DeviceSerial),
}

/// A parsed export: one or more device entries with distinct serials. Nothing in it
/// is trusted until [`ResetRequest::verify`] has checked every MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetRequest {
    devices: Vec<DeviceChallenge>,
}

impl ResetRequest {
    pub fn new(devices: Vec<DeviceChallenge>) -> Result<Self, RequestShapeError> {
        Self::check_count(devices.len())?;
        for (i, device) in devices.iter().enumerate() {
            let serial = &device.identity.serial;
            if devices[..i].iter().any(|d| &d.identity.serial == serial) {
                return Err(RequestShapeError::DuplicateDevice(serial.clone()));
            }
        }
        Ok(Self { devices })
    }

    pub(crate) fn check_count(count: usize) -> Result<(), RequestShapeError> {
        match count {
            0 => Err(RequestShapeError::NoDevices),
            n if n > MAX_DEVICES_PER_REQUEST => Err(RequestShapeError::TooManyDevices {
                count: n,
                max: MAX_DEVICES_PER_REQUEST,
            }),
            _ => Ok(()),
        }
    }

    pub fn devices(&self) -> &[DeviceChallenge] {
        &self.devices
    }

    /// Checks every entry's MAC and lifetime at `now`, allowing `max_skew_secs` of
    /// device clock running ahead. Any failing entry rejects the whole export: a
    /// partly forged export is not a genuine one.
    pub fn verify(
        self,
        master: &MasterSecret,
        now: Timestamp,
        max_skew_secs: i64,
    ) -> Result<VerifiedResetRequest, ChallengeError> {
        for device in &self.devices {
            let serial = || device.identity.serial.clone();
            if !device.mac_is_valid(master) {
                return Err(ChallengeError::BadMac { serial: serial() });
            }
            if device.issued_at.seconds_since(now) > max_skew_secs {
                return Err(ChallengeError::IssuedInFuture {
                    serial: serial(),
                    issued_at: device.issued_at,
                });
            }
            if now >= device.expires_at() {
                return Err(ChallengeError::Expired {
                    serial: serial(),
                    expired_at: device.expires_at(),
                });
            }
        }
        Ok(VerifiedResetRequest {
            devices: self.devices,
        })
    }
}

/// An export whose every entry carried a valid MAC and was live when checked. Only
/// [`ResetRequest::verify`] makes one, so holding one is proof of that check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedResetRequest {
    devices: Vec<DeviceChallenge>,
}

impl VerifiedResetRequest {
    pub fn devices(&self) -> &[DeviceChallenge] {
        &self.devices
    }
}
