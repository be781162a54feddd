use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{CliError, CliResult, read_input, write_file};
use crate::clock::Clock;
use crate::crypto::KeyStore;
use crate::protocol::{self, DEFAULT_MAX_CLOCK_SKEW_SECS, ExportInput, response};

/// Largest export file `respond` reads (a phone photo of a QR code).
const MAX_REQUEST_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Args)]
pub struct RespondArgs {
    /// The export: an XML file, a text file holding a reset string, or a PNG/JPEG of the QR code.
    #[arg(long)]
    request: PathBuf,
    /// Where to write response.xml and keys.txt (created if missing).
    #[arg(long)]
    out_dir: PathBuf,
}

pub fn run(args: &RespondArgs, keys_dir: &Path, clock: &dyn Clock) -> CliResult {
    let bytes = read_input(&args.request, MAX_REQUEST_BYTES, "request")?;
    let request = ExportInput::sniff(&bytes)
        .and_then(ExportInput::decode)
        .map_err(|e| CliError::new(format!("{}: {e}", args.request.display())))?;
    let store = KeyStore::new(keys_dir);
    let master = store.master_secret()?;
    let verified = request.verify(&master, clock.now(), DEFAULT_MAX_CLOCK_SKEW_SECS)?;
    let signer = store.active_signing_key()?;
    let responses = protocol::respond(&verified, &master, &signer);

    std::fs::create_dir_all(&args.out_dir)
        .map_err(|e| CliError::new(format!("cannot create {}: {e}", args.out_dir.display())))?;
    let signed: Vec<_> = responses.iter().map(|r| r.signed.clone()).collect();
    write_file(
        &args.out_dir.join("response.xml"),
        response::to_xml(&signed).as_bytes(),
    )?;
    let mut keys = String::from("# serial  key  valid-until\n");
    for r in &responses {
        let _ = writeln!(keys, "{}  {}  {}", r.serial, r.key, r.expires_at());
    }
    // The typed keys reset the devices: readable by their owner only, like the desk's
    // own mail files that hold them.
    crate::crypto::secret_file::replace_private(&args.out_dir.join("keys.txt"), keys.as_bytes())
        .map_err(|e| CliError::new(e.to_string()))?;

    println!("signed with key {}", signer.id());
    for r in &responses {
        println!(
            "{} ({}): key {} valid until {}",
            r.serial,
            r.model,
            r.key,
            r.expires_at()
        );
    }
    println!(
        "wrote {} and {}",
        args.out_dir.join("response.xml").display(),
        args.out_dir.join("keys.txt").display()
    );
    Ok(())
}
