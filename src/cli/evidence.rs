//! `resetdesk evidence read`: what the desk reads off a label photo. The evidence worker
//! runs it as a child process for every photo (src/evidence/reading.rs says why); an
//! operator runs it to see what the desk made of a photo.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::Subcommand;

use super::{CliError, CliResult, read_input};
use crate::evidence::reading;
use crate::i18n::Lang;

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Read a label photo as the evidence worker does: prints one JSON line (the codes
    /// found, and whether the picture data is damaged).
    Read {
        /// The photo (JPEG or PNG); standard input when absent or `-`.
        photo: Option<PathBuf>,
        /// Pixels the photo may declare [default: the desk's max_label_pixels].
        #[arg(long)]
        max_pixels: Option<u64>,
        /// Bytes the photo may have [default: the desk's max_label_photo_bytes].
        #[arg(long)]
        max_bytes: Option<u64>,
        /// Make the console's preview and thumbnail too, and write their JPEG bytes after
        /// the line (sizes in `preview_bytes` and `thumbnail_bytes`).
        #[arg(long)]
        previews: bool,
        /// CPU seconds this process may use; the kernel ends it after them.
        #[arg(long, default_value_t = 60)]
        max_seconds: u64,
        /// MiB of memory reading may take beyond what the program needs to start.
        #[arg(long, default_value_t = 1024)]
        max_memory_mib: u64,
        /// The process that started this one (the desk's evidence worker): if it is no
        /// longer this process's parent, nothing is read.
        #[arg(long)]
        parent_pid: Option<u32>,
    },
}

pub fn run(command: &EvidenceCommand) -> CliResult {
    let EvidenceCommand::Read {
        photo,
        max_pixels,
        max_bytes,
        previews,
        max_seconds,
        max_memory_mib,
        parent_pid,
    } = command;
    // Before a byte of the photo is read.
    reading::limit_this_process(
        *max_seconds,
        max_memory_mib.saturating_mul(1 << 20),
        *parent_pid,
    )
    .map_err(|e| {
        CliError::with_code(
            format!("cannot set this reader up: {e}"),
            reading::EXIT_CANNOT_START,
        )
    })?;
    let refused = |message: String| CliError::with_code(message, reading::EXIT_PHOTO_REFUSED);
    let intake = crate::config::IntakeLimits::default();
    let max_bytes = max_bytes.unwrap_or(intake.max_label_photo_bytes);
    let bytes = match photo {
        Some(path) if path.as_os_str() != "-" => {
            read_input(path, max_bytes, "label photo").map_err(|e| refused(e.message))?
        }
        _ => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .take(max_bytes + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| CliError::new(format!("cannot read the photo from stdin: {e}")))?;
            if bytes.len() as u64 > max_bytes {
                return Err(refused(format!(
                    "the photo on stdin is over {max_bytes} bytes, the most a label photo may be"
                )));
            }
            bytes
        }
    };
    let max_pixels = max_pixels.unwrap_or(intake.max_label_pixels);
    let found = reading::read_photo(&bytes, max_pixels, *previews)
        .map_err(|refusal| refused(Lang::En.message(&refusal)))?;
    let mut out = std::io::stdout().lock();
    reading::write_answer(&found, &mut out)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::new(format!("cannot write the answer: {e}")))
}
