//! `resetdesk mail open`: an e-mail the desk wrote to its outbox directory (no SMTP
//! server set), read as a person reads it: the headers that matter, the text, and the
//! attachments saved as files, so the signed response need not be dug out of a `.eml`.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use mail_parser::{MessageParser, MimeHeaders};

use super::{CliError, CliResult, read_input};

/// Larger than any mail the desk writes (its largest holds one signed response file).
const MAX_MAIL_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Print an `.eml` file's sender, recipient, subject, date and text, and save its
    /// attachments (the signed response file) into a directory.
    Open {
        /// The `.eml` file (the desk writes them to data/outbox/ without SMTP), or a
        /// directory of them: its newest.
        file: PathBuf,
        /// Save each attachment into this directory (created if missing), under its own
        /// name with anything but letters, digits, `.`, `-` and `_` replaced.
        #[arg(long)]
        save_attachments: Option<PathBuf>,
    },
}

/// sysexits.h: what an MTA's pipe reads in the exit code. 75: keep the message and try
/// again later; 65: refuse it (the MTA bounces it with our message).
pub const EX_TEMPFAIL: u8 = 75;
pub const EX_DATAERR: u8 = 65;

/// `resetdesk mail-intake`: one message from standard input, read within
/// `mail_max_message_bytes` (a larger one is refused before it is read further).
pub fn intake(settings: crate::config::Settings) -> CliResult {
    use std::io::Read;
    // No log lines: an MTA mails what a pipe prints back to the sender.
    let max = settings.mail.max_message_bytes;
    let mut raw = Vec::new();
    std::io::stdin()
        .lock()
        .take(max + 1)
        .read_to_end(&mut raw)
        .map_err(|e| {
            CliError::with_code(
                format!("cannot read the message from standard input: {e}"),
                EX_TEMPFAIL,
            )
        })?;
    if raw.len() as u64 > max {
        return Err(CliError::with_code(
            format!("the message is larger than {max} bytes (mail_max_message_bytes): refused"),
            EX_DATAERR,
        ));
    }
    let runtime = super::server::runtime()
        .map_err(|e| CliError::with_code(e.message().to_owned(), EX_TEMPFAIL))?;
    runtime.block_on(async {
        let desk = crate::startup::desk_for_command(settings)
            .await
            .map_err(|e| CliError::with_code(format!("{e:#}"), EX_TEMPFAIL))?;
        match crate::mail::inbound::take(&desk, &raw).await {
            Ok(taken) => {
                println!("{}", describe(&taken));
                Ok(())
            }
            Err(crate::mail::inbound::TakeError::Refused(why)) => Err(CliError::with_code(
                format!("the message is refused: {why}"),
                EX_DATAERR,
            )),
            Err(error @ crate::mail::inbound::TakeError::TryLater(_)) => {
                Err(CliError::with_code(error.to_string(), EX_TEMPFAIL))
            }
        }
    })
}

fn describe(taken: &crate::mail::inbound::Taken) -> String {
    use crate::mail::inbound::Taken;
    match taken {
        Taken::NewTicket(number) => format!("taken: new ticket {number}"),
        Taken::Existing(number) => format!("taken: the request of ticket {number}, sent before"),
        Taken::Reply(number) => format!("taken: a reply to ticket {number}"),
        Taken::Answered => "taken: answered with what to fix".to_owned(),
        Taken::Ignored(why) | Taken::Unanswered(why) => format!("taken, not answered: {why}"),
        Taken::AlreadyDone => "taken before: nothing done again".to_owned(),
    }
}

pub fn run(command: &MailCommand) -> CliResult {
    match command {
        MailCommand::Open {
            file,
            save_attachments,
        } => open(file, save_attachments.as_deref()),
    }
}

fn open(file: &Path, save_into: Option<&Path>) -> CliResult {
    let newest;
    let file = if file.is_dir() {
        newest = newest_mail(file)?;
        println!(
            "(the newest mail in {}: {})",
            file.display(),
            newest.display()
        );
        newest.as_path()
    } else {
        file
    };
    let raw = read_input(file, MAX_MAIL_BYTES, "mail")?;
    let message = MessageParser::default().parse(&raw).ok_or_else(|| {
        CliError::new(format!(
            "{} is not an e-mail message (RFC 5322): no headers were found",
            file.display()
        ))
    })?;
    let addresses = |list: Option<&mail_parser::Address<'_>>| -> String {
        list.map(|a| {
            a.iter()
                .filter_map(|addr| addr.address())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
    };
    println!("From:    {}", shown(&addresses(message.from())));
    println!("To:      {}", shown(&addresses(message.to())));
    println!("Subject: {}", shown(message.subject().unwrap_or_default()));
    if let Some(date) = message.date() {
        println!("Date:    {}", date.to_rfc3339());
    }
    println!();
    println!(
        "{}",
        shown(message.body_text(0).unwrap_or_default().trim_end())
    );

    let attachments: Vec<_> = message.attachments().collect();
    if attachments.is_empty() {
        return Ok(());
    }
    println!();
    let Some(directory) = save_into else {
        for (index, part) in attachments.iter().enumerate() {
            println!(
                "Attachment: {} ({} bytes; --save-attachments DIR saves it)",
                safe_file_name(part.attachment_name(), index),
                part.contents().len()
            );
        }
        return Ok(());
    };
    crate::data_dir::create_dir_all(directory)
        .map_err(|e| CliError::new(format!("cannot create {}: {e}", directory.display())))?;
    for (index, part) in attachments.iter().enumerate() {
        let path = directory.join(safe_file_name(part.attachment_name(), index));
        save(&path, part.contents())?;
        println!("Saved {} ({} bytes)", path.display(), part.contents().len());
    }
    Ok(())
}

/// Writes an attachment as a new file readable by its owner only (a signed response
/// is one): never over a file already there, nor through a link.
fn save(path: &Path, contents: &[u8]) -> CliResult {
    use std::io::Write;
    let mut file = crate::data_dir::create_new_file(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::new(format!(
                "{} already exists: move it away, or save into another directory with --save-attachments DIR",
                path.display()
            ))
        } else {
            CliError::new(format!("cannot write {}: {e}", path.display()))
        }
    })?;
    file.write_all(contents)
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))
}

/// A mail's text as the terminal may show it: control characters (which could move the
/// cursor, set the window's title or write the clipboard) and direction overrides
/// replaced, line breaks (CRLF as LF) and tabs kept.
fn shown(text: &str) -> String {
    text.replace("\r\n", "\n")
        .chars()
        .map(|c| match c {
            '\n' | '\t' => c,
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => '\u{FFFD}',
            c if c.is_control() => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// The `.eml` file of `directory` written last (the desk's half-written mails are hidden
/// `.tmp` files, never `.eml`).
fn newest_mail(directory: &Path) -> Result<PathBuf, CliError> {
    let cannot = |e: std::io::Error| {
        CliError::new(format!(
            "cannot read the directory {}: {e}",
            directory.display()
        ))
    };
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(directory).map_err(cannot)? {
        // One gone meanwhile, or not a file, is passed over.
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("eml") {
            continue;
        }
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if !metadata.is_file() {
            continue;
        }
        let Ok(modified) = metadata.modified() else {
            continue;
        };
        if newest
            .as_ref()
            .is_none_or(|(at, seen)| (modified, &path) > (*at, seen))
        {
            newest = Some((modified, path));
        }
    }
    newest.map(|(_, path)| path).ok_or_else(|| {
        CliError::new(format!(
            "there is no .eml file in {}: the desk writes its mail there only when no smtp_url is set",
            directory.display()
        ))
    })
}

/// An attachment's own name as a file name that stays in the directory: no path, no
/// leading dot, only letters, digits, `.`, `-` and `_`; `attachment-N` when nothing is
/// left of it.
fn safe_file_name(name: Option<&str>, index: usize) -> String {
    let base = name
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    if cleaned.chars().any(|c| c.is_ascii_alphanumeric()) {
        cleaned.to_owned()
    } else {
        format!("attachment-{}", index + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::safe_file_name;

    #[test]
    fn a_mails_text_cannot_drive_the_terminal() {
        assert_eq!(
            super::shown("a\u{1b}]0;title\u{7}b\tc\r\nd\u{202E}e\rf"),
            "a\u{FFFD}]0;title\u{FFFD}b\tc\nd\u{FFFD}e\u{FFFD}f"
        );
    }

    #[test]
    fn an_attachment_name_cannot_leave_its_directory() {
        assert_eq!(
            safe_file_name(Some("reset-response-RQ-7K3M-Q9TD.xml"), 0),
            "reset-response-RQ-7K3M-Q9TD.xml"
        );
        assert_eq!(safe_file_name(Some("../../etc/passwd"), 0), "passwd");
        assert_eq!(safe_file_name(Some("..\\boot.ini"), 0), "boot.ini");
        assert_eq!(safe_file_name(Some(".bashrc"), 0), "bashrc");
        assert_eq!(safe_file_name(Some("a b;c.xml"), 0), "a_b_c.xml");
        assert_eq!(safe_file_name(Some(".."), 1), "attachment-2");
        assert_eq!(safe_file_name(None, 0), "attachment-1");
    }
}
