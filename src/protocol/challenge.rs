//! What a device exports: its identity and a fresh challenge, authenticated with its
//! device key. One export (a [`ResetRequest`]) may cover an NVR and its cameras.

use std::fmt;

use crate::crypto::{DeviceKey, DeviceKeys, MacTag, MasterSecret};
use crate::domain::{
    DeviceModel, DeviceSerial, EmailAddress, FirmwareVersion, MacAddress, Timestamp,
};
use crate::protocol::canonical::{ByteReader, ByteWriter, EXPORT_ENTRY, Truncated};
use crate::protocol::{CHALLENGE_LIFETIME_SECS, PROTOCOL_V1, PROTOCOL_V2};

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

/// The 16 random bytes an exporting device chooses for one export (protocol version 2).
/// Every entry of that export, its own and its cameras', carries it inside its MAC.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExportId(pub [u8; 16]);

impl ExportId {
    pub fn random() -> Self {
        Self(crate::crypto::random_bytes())
    }

    /// Parses 32 hex characters (either case).
    pub fn parse_hex(raw: &str) -> Result<Self, &'static str> {
        Nonce::parse_hex(raw).map(|nonce| Self(nonce.0))
    }

    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }
}

impl fmt::Display for ExportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ExportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExportId({})", self.to_hex())
    }
}

/// What binds the entries of one version 2 export together: the export's identifier and
/// the serial of the device that made the export (an NVR for itself and its cameras, or
/// a stand-alone camera). Inside each entry's MAC, so an entry copied out of one export
/// and into another no longer matches its neighbours, and changing it breaks the MAC.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExportBinding {
    pub export_id: ExportId,
    pub exported_by: DeviceSerial,
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

/// One device's entry in an export: identity, challenge and the MAC over both (and, from
/// protocol version 2 on, over the export the entry belongs to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceChallenge {
    pub identity: DeviceIdentity,
    pub nonce: Nonce,
    pub issued_at: Timestamp,
    /// `None` for a version 1 entry, which belongs to no export in particular.
    pub binding: Option<ExportBinding>,
    pub tag: MacTag,
}

impl DeviceChallenge {
    /// Device side: authenticates a new version 1 challenge with the device's own key.
    /// Version 1 entries are not bound to their export; devices make version 2 ones
    /// ([`Self::issue_bound`]), and version 1 is kept for firmware already in the field.
    pub fn issue(
        identity: DeviceIdentity,
        nonce: Nonce,
        issued_at: Timestamp,
        key: &DeviceKey,
    ) -> Self {
        Self::issue_with(identity, nonce, issued_at, None, key)
    }

    /// Device side: authenticates a new version 2 challenge, bound to one export.
    pub fn issue_bound(
        identity: DeviceIdentity,
        nonce: Nonce,
        issued_at: Timestamp,
        binding: ExportBinding,
        key: &DeviceKey,
    ) -> Self {
        Self::issue_with(identity, nonce, issued_at, Some(binding), key)
    }

    fn issue_with(
        identity: DeviceIdentity,
        nonce: Nonce,
        issued_at: Timestamp,
        binding: Option<ExportBinding>,
        key: &DeviceKey,
    ) -> Self {
        let mut challenge = Self {
            identity,
            nonce,
            issued_at,
            binding,
            tag: MacTag([0; 32]),
        };
        challenge.tag = key.mac(&challenge.canonical_bytes());
        challenge
    }

    /// The protocol version this entry was made in: 2 when it is bound to an export.
    pub fn version(&self) -> u8 {
        if self.binding.is_some() {
            PROTOCOL_V2
        } else {
            PROTOCOL_V1
        }
    }

    /// The bytes the MAC covers. Version 1:
    /// `"resetdesk.export-entry.v1" 0x00 || 0x01 || body`; version 2:
    /// `"resetdesk.export-entry.v2" 0x00 || 0x02 || export id(16) || str8(exported by) || body`;
    /// body is `str8(model) || str8(serial) || str8(firmware) || opt(mac 6 bytes) ||
    /// opt(str8(reserved e-mail)) || nonce(16) || issued_at(i64)`.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let binding = self.binding.as_ref();
        let mut writer = ByteWriter::versioned(&EXPORT_ENTRY, binding.map(|b| &b.export_id.0));
        if let Some(binding) = binding {
            writer.str8(binding.exported_by.as_str());
        }
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

    /// Reads a body written by [`Self::write_body`] followed by the 32-byte tag. The
    /// entry comes back unbound: a version 2 reader sets the binding its payload holds.
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
                binding: None,
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
        let Ok(valid) = self.mac_is_valid_with(master);
        valid
    }

    /// [`Self::mac_is_valid`] with the device key from `keys` (a token may fail to give it).
    pub fn mac_is_valid_with<K: DeviceKeys>(&self, keys: &K) -> Result<bool, K::Error> {
        Ok(keys
            .device_key(&self.identity.serial)?
            .verify_mac(&self.canonical_bytes(), &self.tag))
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
    /// Entries of a version 2 export that name different exports, or whose first entry
    /// is not the device that made the export: someone copied entries between exports.
    #[error(
        "this export was put together from several exports: its devices were not exported \
         together, so it cannot be answered; make a new export on the device and send it as it is"
    )]
    Stitched,
    #[error("the export mixes entries of protocol versions 1 and 2")]
    MixedVersions,
}

/// A parsed export: one or more device entries with distinct serials. Nothing in it
/// is trusted until [`ResetRequest::verify`] has checked every MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetRequest {
    devices: Vec<DeviceChallenge>,
}

impl ResetRequest {
    /// Checks the shape: the count, distinct serials and, for version 2, one binding
    /// shared by every entry whose exporting device is the first entry. The binding is
    /// checked here, before any MAC, because it needs no secret: an export whose
    /// entries disagree cannot be genuine whatever their MACs say.
    pub fn new(devices: Vec<DeviceChallenge>) -> Result<Self, RequestShapeError> {
        Self::check_count(devices.len())?;
        for (i, device) in devices.iter().enumerate() {
            let serial = &device.identity.serial;
            if devices[..i].iter().any(|d| &d.identity.serial == serial) {
                return Err(RequestShapeError::DuplicateDevice(serial.clone()));
            }
        }
        let first = &devices[0];
        if devices.iter().any(|d| d.version() != first.version()) {
            return Err(RequestShapeError::MixedVersions);
        }
        if let Some(binding) = &first.binding
            && (binding.exported_by != first.identity.serial
                || devices.iter().any(|d| d.binding.as_ref() != Some(binding)))
        {
            return Err(RequestShapeError::Stitched);
        }
        Ok(Self { devices })
    }

    /// The protocol version of the export (every entry has the same one).
    pub fn version(&self) -> u8 {
        self.devices[0].version()
    }

    /// The binding every entry shares; `None` for a version 1 export.
    pub fn binding(&self) -> Option<&ExportBinding> {
        self.devices[0].binding.as_ref()
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

    /// The desk's working copy of a request the separate signer checked
    /// (`signer/remote.rs`). Not a proof: the signer checks the request again, by its
    /// own clock and rules, before it answers it.
    #[cfg(feature = "server")]
    pub(crate) fn checked_by_signer(self) -> VerifiedResetRequest {
        VerifiedResetRequest {
            devices: self.devices,
        }
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
        let Ok(verdict) = self.verify_with(master, now, max_skew_secs);
        verdict
    }

    /// [`Self::verify`] with the device keys from `keys`: the outer error is the keys
    /// failing (a token), the inner result the export's verdict.
    #[allow(clippy::type_complexity)]
    pub fn verify_with<K: DeviceKeys>(
        self,
        keys: &K,
        now: Timestamp,
        max_skew_secs: i64,
    ) -> Result<Result<VerifiedResetRequest, ChallengeError>, K::Error> {
        for device in &self.devices {
            let serial = || device.identity.serial.clone();
            if !device.mac_is_valid_with(keys)? {
                return Ok(Err(ChallengeError::BadMac { serial: serial() }));
            }
            if device.issued_at.seconds_since(now) > max_skew_secs {
                return Ok(Err(ChallengeError::IssuedInFuture {
                    serial: serial(),
                    issued_at: device.issued_at,
                }));
            }
            if now >= device.expires_at() {
                return Ok(Err(ChallengeError::Expired {
                    serial: serial(),
                    expired_at: device.expires_at(),
                }));
            }
        }
        Ok(Ok(VerifiedResetRequest {
            devices: self.devices,
        }))
    }
}

/// An export whose every entry carried a valid MAC and was live when checked. Only
/// [`ResetRequest::verify`] makes one, so holding one is proof of that check; a desk
/// whose keys are in a separate signer holds the signer's word for it instead, and the
/// signer checks again before it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedResetRequest {
    devices: Vec<DeviceChallenge>,
}

impl VerifiedResetRequest {
    pub fn devices(&self) -> &[DeviceChallenge] {
        &self.devices
    }

    /// The protocol version of the export: the desk answers in the same version.
    pub fn version(&self) -> u8 {
        self.devices[0].version()
    }

    /// The export's binding; `None` for version 1.
    pub fn binding(&self) -> Option<&ExportBinding> {
        self.devices[0].binding.as_ref()
    }
}
