use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};

use super::{CliError, CliResult, read_input, write_file};
use crate::clock::Clock;
use crate::crypto::{KeyStore, PublicKeySet};
use crate::device::{self, DeviceState, ImportRefusal, label};
use crate::domain::{DeviceModel, DeviceSerial, EmailAddress, FirmwareVersion, MacAddress};
use crate::protocol::{DeviceIdentity, export_xml, qr, reset_string, xml};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// An XML file (any number of devices).
    Xml,
    /// A reset string to copy or type (up to 16 devices).
    String,
    /// A PNG picture of a QR code holding the reset string.
    Qr,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LabelStyle {
    /// The label as printed (PNG).
    Flat,
    /// A phone's 12 MP photo of it: slanted, turned, blurred, unevenly lit (JPEG, quality 80).
    Photo,
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Factory step: derive this device's key from the master secret and write its state file.
    Provision {
        #[arg(long, value_parser = |s: &str| DeviceSerial::parse(s).map_err(|e| format!("serial {e}")))]
        serial: DeviceSerial,
        #[arg(long, value_parser = |s: &str| DeviceModel::parse(s).map_err(|e| format!("model {e}")))]
        model: DeviceModel,
        #[arg(long, default_value = "V1.0.0", value_parser = |s: &str| FirmwareVersion::parse(s).map_err(|e| format!("firmware {e}")))]
        firmware: FirmwareVersion,
        #[arg(long, value_parser = |s: &str| MacAddress::parse(s).map_err(|e| format!("MAC address {e}")))]
        mac_address: Option<MacAddress>,
        /// Owner e-mail stored on the device and carried in its exports (for fast tracks).
        #[arg(long, value_parser = |s: &str| EmailAddress::parse(s).map_err(|e| format!("e-mail {e}")))]
        reserved_email: Option<EmailAddress>,
        /// Public keys the firmware trusts (from `keys export-public`); default: every key in the keys directory.
        #[arg(long)]
        trust: Option<PathBuf>,
        /// The protocol version the device's firmware exports in: 2 (today's firmware:
        /// every entry bound to its export) or 1 (older firmware still in the field). It
        /// is the firmware's, fixed here: no device offers both, or an attacker on its LAN
        /// would ask it for an unbound entry (docs/PROTOCOL.md, "No downgrade").
        #[arg(long, default_value_t = crate::protocol::PROTOCOL_VERSION,
              value_parser = clap::value_parser!(u8).range(1..=2))]
        protocol: u8,
        #[arg(long)]
        state: PathBuf,
    },
    /// "Forgot password": start a new challenge (ending the old one) and write the export.
    Export {
        #[arg(long)]
        state: PathBuf,
        #[arg(long, value_enum)]
        format: ExportFormat,
        #[arg(long)]
        out: PathBuf,
        /// Also cover this many connected cameras (an NVR export).
        #[arg(long, default_value_t = 0)]
        with_cameras: usize,
    },
    /// Enter a response: a signed file or a typed key, and the new admin password.
    Import {
        #[arg(long)]
        state: PathBuf,
        #[arg(long, conflicts_with = "key", required_unless_present = "key")]
        response: Option<PathBuf>,
        #[arg(long)]
        key: Option<String>,
        /// With --key: the unit (NVR or camera) the key is typed into; default the device itself.
        #[arg(long, requires = "key", value_parser = |s: &str| DeviceSerial::parse(s).map_err(|e| format!("serial {e}")))]
        serial: Option<DeviceSerial>,
        #[arg(long)]
        new_password: String,
    },
    /// Power-cycle the device: every outstanding challenge is lost.
    Reboot {
        #[arg(long)]
        state: PathBuf,
    },
    /// Show the device's identity and challenges (never its key).
    Show {
        #[arg(long)]
        state: PathBuf,
    },
    /// Print the device's rating label: model, serial, MAC, a QR code and a Code 128
    /// barcode of the serial.
    Label {
        #[arg(long)]
        state: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value_t = LabelStyle::Flat)]
        style: LabelStyle,
        /// With --style photo: which slant, turn, blur and light; the same seed, the same picture.
        #[arg(long, default_value_t = 18)]
        seed: u64,
        /// Print this serial instead of the device's: another device's label (a test fixture).
        #[arg(long, value_parser = |s: &str| DeviceSerial::parse(s).map_err(|e| format!("serial {e}")))]
        serial: Option<DeviceSerial>,
        /// Print no QR code and no barcode: a label no machine can read (a test fixture).
        #[arg(long)]
        no_codes: bool,
    },
}

pub fn run(command: &DeviceCommand, keys_dir: &Path, clock: &dyn Clock) -> CliResult {
    match command {
        DeviceCommand::Provision {
            serial,
            model,
            firmware,
            mac_address,
            reserved_email,
            trust,
            protocol,
            state,
        } => {
            let store = KeyStore::new(keys_dir);
            let trusted = match trust {
                Some(path) => {
                    let raw = read_input(path, 1024 * 1024, "key set")?;
                    let text = String::from_utf8(raw).map_err(|_| {
                        CliError::new(format!("{} is not a JSON key set", path.display()))
                    })?;
                    PublicKeySet::from_json(&text)
                        .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?
                }
                None => store.public_keys()?,
            };
            let identity = DeviceIdentity {
                model: model.clone(),
                serial: serial.clone(),
                firmware: firmware.clone(),
                mac_address: *mac_address,
                reserved_email: reserved_email.clone(),
            };
            let mut device_state = device::provision(identity, &store.master_secret()?, trusted);
            device_state.protocol = *protocol;
            device_state.create(state)?;
            let ids: Vec<_> = device_state
                .trusted_keys
                .keys
                .iter()
                .map(|k| k.id().to_string())
                .collect();
            println!(
                "provisioned {serial} ({model}); trusts keys {}",
                ids.join(", ")
            );
        }
        DeviceCommand::Export {
            state,
            format,
            out,
            with_cameras,
        } => {
            let mut device_state = DeviceState::load(state)?;
            let store = KeyStore::new(keys_dir);
            let master = if device_state.cameras.len() < *with_cameras {
                Some(store.master_secret()?)
            } else {
                None
            };
            if matches!(format, ExportFormat::String | ExportFormat::Qr)
                && with_cameras + 1 > reset_string::MAX_DEVICES_PER_STRING
            {
                return Err(CliError::new(format!(
                    "a reset string covers at most {} devices; use --format xml",
                    reset_string::MAX_DEVICES_PER_STRING
                )));
            }
            let request = device::export(
                &mut device_state,
                *with_cameras,
                master.as_ref(),
                clock.now(),
            )?;
            let contents = match format {
                ExportFormat::Xml => export_xml::to_xml(&request).into_bytes(),
                ExportFormat::String => (reset_string::encode(&request) + "\n").into_bytes(),
                ExportFormat::Qr => qr::encode_png(&reset_string::encode(&request))?,
            };
            // The challenge only counts as issued once the export exists, as on a real device.
            write_file(out, &contents)?;
            device_state.save(state)?;
            println!(
                "exported a reset request for {} device(s) to {}; it is valid for 48 hours, until the next export or a reboot",
                request.devices().len(),
                out.display()
            );
        }
        DeviceCommand::Import {
            state,
            response,
            key,
            serial,
            new_password,
        } => {
            let mut device_state = DeviceState::load(state)?;
            let now = clock.now();
            let outcome = match (response, key) {
                (Some(path), _) => import_file(&mut device_state, path, new_password, now),
                (None, Some(key)) => {
                    device::import_key(&mut device_state, serial.as_ref(), key, new_password, now)
                        .map(|serial| println!("{serial}: password set"))
                }
                (None, None) => Err(ImportRefusal::Malformed(
                    "give --response FILE or --key KEY".to_owned(),
                )),
            };
            // Failed attempts and ended challenges are state too: save before reporting.
            device_state.save(state)?;
            outcome
                .map_err(|refusal| CliError::with_code(refusal.to_string(), refusal.exit_code()))?;
            println!("password set");
        }
        DeviceCommand::Reboot { state } => {
            let mut device_state = DeviceState::load(state)?;
            device::reboot(&mut device_state);
            device_state.save(state)?;
            println!("rebooted; outstanding reset challenges are gone");
        }
        DeviceCommand::Show { state } => {
            let device_state = DeviceState::load(state)?;
            let units = std::iter::once(&device_state.device).chain(device_state.cameras.iter());
            for unit in units {
                let challenge = match &unit.challenge {
                    Some(c) => format!(
                        "challenge issued {} ({} failed attempts)",
                        c.issued_at, c.failed_attempts
                    ),
                    None => "no challenge".to_owned(),
                };
                let password = unit
                    .password_set_at
                    .map_or("password never reset".to_owned(), |t| {
                        format!("password set {t}")
                    });
                println!("{} {}: {challenge}; {password}", unit.model, unit.serial);
            }
        }
        DeviceCommand::Label {
            state,
            out,
            style,
            seed,
            serial,
            no_codes,
        } => print_label(state, out, *style, *seed, serial.as_ref(), *no_codes)?,
    }
    Ok(())
}

fn print_label(
    state: &Path,
    out: &Path,
    style: LabelStyle,
    seed: u64,
    serial: Option<&DeviceSerial>,
    no_codes: bool,
) -> CliResult {
    let device_state = DeviceState::load(state)?;
    let mut printed = label::Label::of(&device_state.device);
    if let Some(serial) = serial {
        printed.serial = serial.clone();
    }
    printed.codes = !no_codes;
    let failed = |e: label::LabelError| CliError::new(format!("label: {e}"));
    let flat = printed.render().map_err(failed)?;
    let contents = match style {
        LabelStyle::Flat => label::png(&flat),
        LabelStyle::Photo => {
            label::jpeg(&label::photograph(&flat, seed), label::PHOTO_JPEG_QUALITY)
        }
    }
    .map_err(failed)?;
    write_file(out, &contents)?;
    println!(
        "printed the label of {} ({}) to {}",
        printed.serial,
        printed.model,
        out.display()
    );
    Ok(())
}

fn import_file(
    state: &mut DeviceState,
    path: &Path,
    new_password: &str,
    now: crate::domain::Timestamp,
) -> Result<(), ImportRefusal> {
    let bytes = read_input(path, xml::MAX_XML_BYTES as u64, "response file")
        .map_err(|e| ImportRefusal::Malformed(e.message))?;
    let report = device::import_response(state, &bytes, new_password, now)?;
    let mut first_refusal = None;
    for (serial, outcome) in report {
        match outcome {
            Ok(()) => println!("{serial}: password set"),
            Err(refusal) => {
                println!("{serial}: refused: {refusal}");
                first_refusal.get_or_insert(refusal);
            }
        }
    }
    first_refusal.map_or(Ok(()), Err)
}
