//! `resetdesk customer erase | export`: a customer's right to erasure and of access
//! (GDPR Art. 17 and 15; docs/PRIVACY.md).

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde::Serialize;

use super::server::{open_store, runtime};
use super::{CliError, CliResult};
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::EmailAddress;
use crate::store::{Store, StoredExport, TicketDetail};

#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// Erase everything personal the desk holds about the customer of this address:
    /// every ticket of their mailbox loses the name, address, phone and company, the
    /// photos and the export, the conversation and the texts of its history and mails;
    /// the audit log keeps its chain. Their pending tickets must be decided first. The
    /// customer is mailed a last confirmation.
    Erase {
        #[arg(long)]
        email: String,
        /// Why, for the history and the audit log (do not name the customer in it).
        #[arg(long, default_value = "the customer's request")]
        reason: String,
    },
    /// Write everything the desk holds about the customer of this address to a new
    /// directory: customer.json and each ticket's pictures and export.
    Export {
        #[arg(long)]
        email: String,
        /// The directory to create (it must not exist).
        #[arg(long)]
        out: PathBuf,
    },
}

fn address(raw: &str) -> Result<EmailAddress, CliError> {
    let email =
        EmailAddress::parse(raw).map_err(|e| CliError::new(format!("--email {raw:?}: {e}")))?;
    if email.mailbox() == crate::store::ERASED_EMAIL {
        return Err(CliError::new(format!(
            "--email {raw:?} is what erased tickets read: it names no customer"
        )));
    }
    Ok(email)
}

pub fn run(command: &CustomerCommand, settings: Settings, clock: &dyn Clock) -> CliResult {
    runtime()?.block_on(async {
        let store = open_store(&settings).await?;
        let blobs = crate::blobs::BlobStore::from_settings(&settings)?;
        match command {
            CustomerCommand::Erase { email, reason } => {
                let email = address(email)?;
                let mail = crate::mail::compose::MailContext::new(
                    &settings.http.public_url,
                    &settings.mail.from,
                );
                // The desk secret keys the erasure log's record of the mailbox.
                let keys = match settings.signer.url {
                    Some(_) => crate::crypto::KeyStore::desk_only(&settings.storage.keys_dir),
                    None => crate::crypto::KeyStore::new(&settings.storage.keys_dir),
                };
                // The desk's own secret, never a new one: a record under another secret
                // would never match its customer again.
                if keys.desk_key_ids()?.desk_secret.is_none() {
                    return Err(CliError::new(format!(
                        "no desk secret in {}: give the desk's keys directory (RESETDESK_KEYS_DIR)",
                        settings.storage.keys_dir.display()
                    )));
                }
                let secret = keys.desk_secret()?;
                let erased = crate::retention::erase_customer(
                    store.as_ref(),
                    &blobs,
                    &mail,
                    &secret,
                    &email,
                    "cli",
                    reason,
                    clock.now(),
                )
                .await
                .map_err(|e| CliError::new(e.to_string()))?;
                for ticket in &erased.tickets {
                    println!("{ticket}: erased");
                }
                println!(
                    "erased the customer's data from {} ticket(s) ({} file(s) deleted, {} left to the orphan sweep); a confirmation mail is queued",
                    erased.tickets.len(),
                    erased.blobs,
                    erased.blobs_left
                );
                Ok(())
            }
            CustomerCommand::Export { email, out } => {
                let email = address(email)?;
                export(store.as_ref(), &blobs, &email, out, clock).await
            }
        }
    })
}

/// What `customer export` writes as customer.json.
#[derive(Serialize)]
struct Export {
    email: String,
    exported_at: String,
    tickets: Vec<TicketExport>,
}

#[derive(Serialize)]
struct TicketExport {
    number: String,
    status: String,
    created_at: String,
    customer: CustomerExport,
    devices: Vec<DeviceExport>,
    /// The files beside customer.json, by their path in the export directory.
    files: Vec<String>,
    messages: Vec<MessageExport>,
    history: Vec<EventExport>,
    evidence_deleted_at: Option<String>,
    customer_details_deleted_at: Option<String>,
    erased_at: Option<String>,
}

#[derive(Serialize)]
struct CustomerExport {
    name: String,
    email: String,
    phone: Option<String>,
    company: Option<String>,
    country: String,
    role: String,
    purchase_channel: Option<String>,
    language: String,
}

#[derive(Serialize)]
struct DeviceExport {
    model: String,
    serial: String,
    firmware: String,
    mac_address: Option<String>,
    reserved_email: Option<String>,
    exported_at: String,
}

#[derive(Serialize)]
struct MessageExport {
    at: String,
    from: String,
    text: String,
}

#[derive(Serialize)]
struct EventExport {
    at: String,
    what: String,
    detail: String,
}

/// The file name extension of a picture the desk took (a PNG or a JPEG, nothing else).
fn extension(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"\x89PNG") {
        "png"
    } else {
        "jpg"
    }
}

async fn export(
    store: &dyn Store,
    blobs: &crate::blobs::BlobStore,
    email: &EmailAddress,
    out: &Path,
    clock: &dyn Clock,
) -> CliResult {
    let numbers: Vec<_> = store
        .customer_tickets(email)
        .await?
        .into_iter()
        .map(|(number, _)| number)
        .collect();
    if numbers.is_empty() {
        return Err(CliError::new(format!(
            "no ticket has the address {email}: nothing to export"
        )));
    }
    // Personal data: a directory only its owner may enter, made here and nowhere else.
    std::fs::DirBuilder::new()
        .mode_private()
        .create(out)
        .map_err(|e| CliError::new(format!("cannot create {}: {e}", out.display())))?;
    let mut tickets = Vec::with_capacity(numbers.len());
    for number in &numbers {
        let ticket = store.ticket(number).await?;
        let dir = out.join(number.as_str());
        std::fs::DirBuilder::new()
            .mode_private()
            .create(&dir)
            .map_err(|e| CliError::new(format!("cannot create {}: {e}", dir.display())))?;
        let files = ticket_files(store, blobs, &ticket, &dir).await?;
        tickets.push(TicketExport::of(&ticket, files));
    }
    let export = Export {
        email: email.to_string(),
        exported_at: clock.now().to_string(),
        tickets,
    };
    let json = serde_json::to_vec_pretty(&export)
        .map_err(|e| CliError::new(format!("cannot write the export: {e}")))?;
    write_private(&out.join("customer.json"), &json)?;
    println!(
        "wrote {} ticket(s) of {email} to {}: customer.json and each ticket's files",
        numbers.len(),
        out.display()
    );
    Ok(())
}

/// Each ticket's label photo, earlier photos and export as sent, as files of `dir`.
async fn ticket_files(
    store: &dyn Store,
    blobs: &crate::blobs::BlobStore,
    ticket: &TicketDetail,
    dir: &Path,
) -> Result<Vec<String>, CliError> {
    let number = ticket.summary.number.as_str();
    let mut files = Vec::new();
    let mut save = |name: String, bytes: &[u8]| -> CliResult {
        write_private(&dir.join(&name), bytes)?;
        files.push(format!("{number}/{name}"));
        Ok(())
    };
    if !ticket.label_blob.is_empty() {
        let bytes = blobs.get(&ticket.label_blob).await?;
        save(format!("label.{}", extension(&bytes)), &bytes)?;
    }
    for (i, photo) in store.earlier_photos(ticket.id).await?.iter().enumerate() {
        let bytes = blobs.get(&photo.blob).await?;
        save(format!("earlier-{}.{}", i + 1, extension(&bytes)), &bytes)?;
    }
    match store.ticket_export(&ticket.summary.number).await? {
        StoredExport::InRow(bytes) => {
            let name = if bytes.starts_with(b"<") {
                "export.xml"
            } else {
                "export.txt"
            };
            save(name.to_owned(), &bytes)?;
        }
        StoredExport::Blob(name) => {
            let bytes = blobs.get(&name).await?;
            save(format!("export.{}", extension(&bytes)), &bytes)?;
        }
        StoredExport::Removed(_) => {}
    }
    Ok(files)
}

impl TicketExport {
    fn of(ticket: &TicketDetail, files: Vec<String>) -> Self {
        let c = &ticket.customer;
        Self {
            number: ticket.summary.number.to_string(),
            status: ticket.summary.status.as_str().to_owned(),
            created_at: ticket.summary.created_at.to_string(),
            customer: CustomerExport {
                name: c.name.as_str().to_owned(),
                email: c.email.to_string(),
                phone: c.phone.as_ref().map(|p| p.as_str().to_owned()),
                company: c.company.as_ref().map(|p| p.as_str().to_owned()),
                country: c.country.as_str().to_owned(),
                role: c.role.as_str().to_owned(),
                purchase_channel: c.purchase_channel.as_ref().map(|p| p.as_str().to_owned()),
                language: c.language.code().to_owned(),
            },
            devices: ticket
                .devices
                .iter()
                .map(|d| DeviceExport {
                    model: d.identity.model.to_string(),
                    serial: d.identity.serial.to_string(),
                    firmware: d.identity.firmware.to_string(),
                    mac_address: d.identity.mac_address.as_ref().map(ToString::to_string),
                    reserved_email: d.identity.reserved_email.as_ref().map(ToString::to_string),
                    exported_at: d.issued_at.to_string(),
                })
                .collect(),
            files,
            messages: ticket
                .messages
                .iter()
                .map(|m| MessageExport {
                    at: m.at.to_string(),
                    from: m.sender.clone(),
                    text: m.body.clone(),
                })
                .collect(),
            history: ticket
                .events
                .iter()
                .map(|e| EventExport {
                    at: e.at.to_string(),
                    what: e.kind.as_str().to_owned(),
                    detail: e.detail.clone(),
                })
                .collect(),
            evidence_deleted_at: ticket.evidence_removed_at.map(|t| t.to_string()),
            customer_details_deleted_at: ticket.customer_removed_at.map(|t| t.to_string()),
            erased_at: ticket.erased_at.map(|t| t.to_string()),
        }
    }
}

/// A file of the export: only its owner may read it.
fn write_private(path: &Path, bytes: &[u8]) -> CliResult {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?;
    file.write_all(bytes)
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))
}

/// `DirBuilder` for a directory only its owner may enter.
trait PrivateDir {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateDir for std::fs::DirBuilder {
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::DirBuilderExt;
        self.mode(0o700)
    }
}
