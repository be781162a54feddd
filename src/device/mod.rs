//! The reference device: what camera and NVR firmware does with a reset, written as
//! plainly as possible so firmware teams can read it as a specification, and so every
//! test of the desk can prove a response against a real other side.
//!
//! Rules a device enforces (docs/PROTOCOL.md, "The device's rules"):
//! - one outstanding challenge per unit; a new export, a reboot, success, 48 hours or
//!   [`MAX_FAILED_ATTEMPTS`] wrong answers end it;
//! - a signed response must name this unit's serial and current nonce, be signed by a
//!   key the firmware trusts, and not be past its signed expiry;
//! - a typed key must equal the one derived from the device key and current nonce.

#[cfg(feature = "server")]
pub mod label;
mod state;

pub use state::{ChallengeEnd, DeviceState, OutstandingChallenge, SimulatedDevice, StateError};

use crate::crypto::{KeyId, MasterSecret, PublicKeySet};
use crate::domain::{DeviceModel, DeviceSerial, FirmwareVersion, Timestamp};
use crate::protocol::response::{self, SignedResponse};
use crate::protocol::{
    DeviceChallenge, DeviceIdentity, ExportBinding, ExportId, Nonce, PROTOCOL_V1, PROTOCOL_V2,
    ResetRequest, ResponseKey, SignatureError,
};

/// Wrong answers a challenge survives; the fifth wrong one ends it.
pub const MAX_FAILED_ATTEMPTS: u8 = 5;
/// Shortest admin password the simulated firmware accepts.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Why the device refused a response. Each has its own exit code in the CLI so scripts
/// and tests can tell them apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportRefusal {
    #[error(
        "wrong device: the response is for {response_serials}, but this device is {device_serial}"
    )]
    WrongDevice {
        response_serials: String,
        device_serial: DeviceSerial,
    },
    #[error("challenge no longer current: {0}")]
    NotCurrent(&'static str),
    #[error("no reset in progress on {0}: export a reset request first")]
    NoChallenge(DeviceSerial),
    #[error("expired: the challenge expired at {0}; export a new reset request")]
    Expired(Timestamp),
    #[error(
        "too many attempts: the challenge was ended after {MAX_FAILED_ATTEMPTS} wrong answers; export a new reset request"
    )]
    TooManyAttempts,
    #[error(
        "unknown key id: the response is signed by key {0}, which this firmware does not trust"
    )]
    UnknownKeyId(KeyId),
    #[error("bad signature: the response was altered, damaged, or not made by the vendor")]
    BadSignature,
    #[error("wrong key: {attempts_left} attempts left before the challenge ends")]
    WrongKey { attempts_left: u8 },
    #[error(
        "wrong key: that was the last attempt, the challenge has ended; export a new reset request"
    )]
    WrongKeyLastAttempt,
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("password refused: {0}")]
    PasswordRefused(String),
}

impl ImportRefusal {
    /// The process exit code for this refusal (documented in docs/PROTOCOL.md).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::WrongDevice { .. } => 10,
            Self::NotCurrent(_) | Self::NoChallenge(_) => 11,
            Self::Expired(_) => 12,
            Self::TooManyAttempts => 13,
            Self::UnknownKeyId(_) => 14,
            Self::BadSignature => 15,
            Self::WrongKey { .. } | Self::WrongKeyLastAttempt => 16,
            Self::Malformed(_) => 17,
            Self::PasswordRefused(_) => 18,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportFailure {
    #[error(
        "this device has {have} connected cameras; provisioning {want} needs the factory master \
         secret (pass --keys-dir)"
    )]
    NeedMasterForCameras { have: usize, want: usize },
    #[error("{0}")]
    Shape(#[from] crate::protocol::RequestShapeError),
    #[error("the state file names protocol version {0}: devices export version 1 or 2")]
    UnknownVersion(u8),
}

/// The factory step: derives the unit's key from the master secret and stores the
/// public keys its firmware will trust.
pub fn provision(
    identity: DeviceIdentity,
    master: &MasterSecret,
    trusted_keys: PublicKeySet,
) -> DeviceState {
    DeviceState::new(new_unit(identity, master), trusted_keys)
}

fn new_unit(identity: DeviceIdentity, master: &MasterSecret) -> SimulatedDevice {
    SimulatedDevice {
        device_key: master.derive_device_key(&identity.serial),
        model: identity.model,
        serial: identity.serial,
        firmware: identity.firmware,
        mac_address: identity.mac_address,
        reserved_email: identity.reserved_email,
        challenge: None,
        ended: Vec::new(),
        password_set_at: None,
    }
}

/// The identity of the `index`-th (1-based) camera connected to an NVR, derived from the
/// NVR's serial so that repeated runs name the same cameras.
#[allow(clippy::expect_used)]
fn camera_identity(nvr: &DeviceSerial, index: usize) -> DeviceIdentity {
    let tail: String = nvr
        .as_str()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    DeviceIdentity {
        model: DeviceModel::parse("DS-2CD2043G2-I").expect("literal model"),
        serial: DeviceSerial::parse(&format!("DS-2CD2043G2-I{tail}C{index:02}"))
            .expect("a derived camera serial is always valid"),
        firmware: FirmwareVersion::parse("V5.7.3 build 220112").expect("literal firmware"),
        mac_address: None,
        reserved_email: None,
    }
}

/// "Forgot password": starts a new challenge on the unit and on its first `cameras`
/// cameras (ending any older ones) and returns the export, in the protocol version of
/// the device's firmware (`DeviceState::protocol`: never a choice at export time, see
/// docs/PROTOCOL.md "No downgrade"). Cameras not yet known are provisioned first, which
/// needs the master secret: the simulator plays their factory.
///
/// In version 2 the exporting unit chooses a fresh export id and every entry is bound
/// to it and to the unit's serial. A real NVR asks each camera for its entry over the
/// authenticated channel it already holds to the camera (the camera's credentials are
/// part of the NVR's channel set-up), passing the export id and its own serial; the
/// camera makes its own nonce and MACs its own entry with its own key. The simulator
/// plays both sides of that exchange here.
pub fn export(
    state: &mut DeviceState,
    cameras: usize,
    master: Option<&MasterSecret>,
    now: Timestamp,
) -> Result<ResetRequest, ExportFailure> {
    let version = state.protocol;
    if version != PROTOCOL_V1 && version != PROTOCOL_V2 {
        return Err(ExportFailure::UnknownVersion(version));
    }
    ResetRequest::check_count(cameras + 1)?;
    if state.cameras.len() < cameras {
        let master = master.ok_or(ExportFailure::NeedMasterForCameras {
            have: state.cameras.len(),
            want: cameras,
        })?;
        for index in state.cameras.len() + 1..=cameras {
            let identity = camera_identity(&state.device.serial, index);
            state.cameras.push(new_unit(identity, master));
        }
    }
    let binding = (version == PROTOCOL_V2).then(|| ExportBinding {
        export_id: ExportId::random(),
        exported_by: state.device.serial.clone(),
    });
    let mut challenges = Vec::with_capacity(cameras + 1);
    for unit in state.units_mut().take(cameras + 1) {
        unit.end_challenge(ChallengeEnd::Reexported);
        let nonce = Nonce::random();
        unit.challenge = Some(OutstandingChallenge {
            nonce,
            issued_at: now,
            failed_attempts: 0,
            export_id: binding.as_ref().map(|b| b.export_id),
        });
        challenges.push(match &binding {
            Some(binding) => DeviceChallenge::issue_bound(
                unit.identity(),
                nonce,
                now,
                binding.clone(),
                &unit.device_key,
            ),
            None => DeviceChallenge::issue(unit.identity(), nonce, now, &unit.device_key),
        });
    }
    Ok(ResetRequest::new(challenges)?)
}

/// A reboot ends every outstanding challenge: a challenge lives in RAM only.
pub fn reboot(state: &mut DeviceState) {
    state.boot_count += 1;
    for unit in state.units_mut() {
        unit.end_challenge(ChallengeEnd::Rebooted);
    }
}

fn check_password(password: &str) -> Result<(), ImportRefusal> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(ImportRefusal::PasswordRefused(format!(
            "the new password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.chars().any(char::is_control) {
        return Err(ImportRefusal::PasswordRefused(
            "the new password must not contain control characters".to_owned(),
        ));
    }
    Ok(())
}

/// The unit's live challenge for `nonce` (or, for a typed key, whatever is live),
/// ending it first if it has outlived 48 hours.
fn live_challenge(
    unit: &mut SimulatedDevice,
    nonce: Option<&Nonce>,
    now: Timestamp,
) -> Result<(Nonce, Option<ExportId>), ImportRefusal> {
    let not_current = |reason: Option<ChallengeEnd>| {
        ImportRefusal::NotCurrent(match reason {
            Some(ChallengeEnd::Reexported) => {
                "the device exported a new reset request since this response was made"
            }
            Some(ChallengeEnd::Rebooted) => {
                "the device rebooted since the export this response answers"
            }
            Some(ChallengeEnd::Used) => "this response was already used",
            Some(ChallengeEnd::Expired) => "the challenge this response answers has expired",
            Some(ChallengeEnd::TooManyAttempts) => {
                "the challenge ended after too many wrong answers"
            }
            None => {
                "the response answers a challenge this device never issued or no longer remembers"
            }
        })
    };
    let Some(current) = &unit.challenge else {
        return Err(match nonce {
            Some(nonce) => not_current(unit.why_ended(nonce)),
            None => match unit.ended.last().map(|e| e.reason) {
                Some(
                    reason @ (ChallengeEnd::Reexported
                    | ChallengeEnd::Rebooted
                    | ChallengeEnd::Expired),
                ) => not_current(Some(reason)),
                Some(ChallengeEnd::TooManyAttempts) => ImportRefusal::TooManyAttempts,
                _ => ImportRefusal::NoChallenge(unit.serial.clone()),
            },
        });
    };
    if let Some(nonce) = nonce
        && &current.nonce != nonce
    {
        return Err(not_current(unit.why_ended(nonce)));
    }
    let expires_at = current
        .issued_at
        .plus_seconds(crate::protocol::CHALLENGE_LIFETIME_SECS);
    if now >= expires_at {
        unit.end_challenge(ChallengeEnd::Expired);
        return Err(ImportRefusal::Expired(expires_at));
    }
    if current.failed_attempts >= MAX_FAILED_ATTEMPTS {
        // Normally ended by the fifth failure already; kept for state files edited by hand.
        unit.end_challenge(ChallengeEnd::TooManyAttempts);
        return Err(ImportRefusal::TooManyAttempts);
    }
    Ok((current.nonce, current.export_id))
}

/// Counts a wrong answer, ending the challenge on the last allowed one.
fn count_failure(unit: &mut SimulatedDevice) -> u8 {
    let attempts_left = match unit.challenge.as_mut() {
        Some(challenge) => {
            challenge.failed_attempts += 1;
            MAX_FAILED_ATTEMPTS.saturating_sub(challenge.failed_attempts)
        }
        None => 0,
    };
    if attempts_left == 0 {
        unit.end_challenge(ChallengeEnd::TooManyAttempts);
    }
    attempts_left
}

fn accept(unit: &mut SimulatedDevice, now: Timestamp) {
    unit.end_challenge(ChallengeEnd::Used);
    unit.password_set_at = Some(now);
}

/// Imports a typed response key into the unit with `serial` (default: the device itself).
pub fn import_key(
    state: &mut DeviceState,
    serial: Option<&DeviceSerial>,
    typed: &str,
    new_password: &str,
    now: Timestamp,
) -> Result<DeviceSerial, ImportRefusal> {
    check_password(new_password)?;
    let key = ResponseKey::parse(typed).map_err(|e| ImportRefusal::Malformed(e.to_string()))?;
    let device_serial = state.device.serial.clone();
    let unit = match serial {
        Some(serial) => state
            .unit_mut(serial)
            .ok_or_else(|| ImportRefusal::WrongDevice {
                response_serials: serial.to_string(),
                device_serial,
            })?,
        None => &mut state.device,
    };
    let (nonce, export_id) = live_challenge(unit, None, now)?;
    let expected = ResponseKey::derive(&unit.device_key, &unit.serial, &nonce, export_id.as_ref());
    if !expected.matches(&key) {
        return Err(match count_failure(unit) {
            0 => ImportRefusal::WrongKeyLastAttempt,
            attempts_left => ImportRefusal::WrongKey { attempts_left },
        });
    }
    accept(unit, now);
    Ok(unit.serial.clone())
}

/// What happened to each entry of an imported response file.
pub type ImportReport = Vec<(DeviceSerial, Result<(), ImportRefusal>)>;

/// Imports a signed response file. Every entry naming one of this device's units is
/// applied to that unit; entries for other serials are ignored, and a file with no
/// entry for any unit is refused as meant for another device.
pub fn import_response(
    state: &mut DeviceState,
    file: &[u8],
    new_password: &str,
    now: Timestamp,
) -> Result<ImportReport, ImportRefusal> {
    check_password(new_password)?;
    let responses =
        response::from_xml(file).map_err(|e| ImportRefusal::Malformed(e.to_string()))?;
    let trusted = state.trusted_keys.clone();
    let mut report = Vec::new();
    for signed in &responses {
        if let Some(unit) = state.unit_mut(&signed.serial) {
            report.push((
                signed.serial.clone(),
                apply_signed(unit, signed, &trusted, now),
            ));
        }
    }
    if report.is_empty() {
        return Err(ImportRefusal::WrongDevice {
            response_serials: responses
                .iter()
                .map(|r| r.serial.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            device_serial: state.device.serial.clone(),
        });
    }
    Ok(report)
}

fn apply_signed(
    unit: &mut SimulatedDevice,
    signed: &SignedResponse,
    trusted: &PublicKeySet,
    now: Timestamp,
) -> Result<(), ImportRefusal> {
    let (_, export_id) = live_challenge(unit, Some(&signed.nonce), now)?;
    if signed.export_id != export_id {
        // A version 2 challenge takes only a version 2 answer to its own export (and a
        // version 1 challenge only a version 1 answer): nothing else was asked for.
        return Err(ImportRefusal::NotCurrent(
            "the response answers another export than the one this device made",
        ));
    }
    match signed.verify(trusted) {
        Ok(()) => {}
        // Not a guess at anything secret, so it does not use up an attempt.
        Err(SignatureError::UnknownKeyId(id)) => return Err(ImportRefusal::UnknownKeyId(id)),
        Err(SignatureError::BadSignature) => {
            count_failure(unit);
            return Err(ImportRefusal::BadSignature);
        }
    }
    if now >= signed.expires_at {
        return Err(ImportRefusal::Expired(signed.expires_at));
    }
    accept(unit, now);
    Ok(())
}
