//! The desk's half of intake: the checks in order, and the ticket they make. The fields
//! they read, and each field's limit, are [`SubmissionField`].

use std::collections::BTreeMap;

use super::{SubmissionField, limits, photo, problems, risk};

use crate::blobs::BlobError;
use crate::desk::Desk;
use crate::domain::{
    CountryCode, CustomerRole, EmailAddress, PhoneNumber, PlainText, TicketNumber,
};
use crate::i18n::{Lang, Message, language_list};
use crate::intake::picture_work::{PictureJob, PictureWorkError};
use crate::mail::compose;
use crate::protocol::{ExportError, ExportInput, ResetRequest, qr, reset_string};
use crate::store::{
    CreateOutcome, Customer, ExportForm, NewTicket, StoreError, StoredExport, TicketId,
};

pub use crate::intake::spool::Upload;

/// What the HTTP layer collected, within size limits, before any meaning is given to it.
#[derive(Debug, Default)]
pub struct RawSubmission {
    pub text: BTreeMap<SubmissionField, String>,
    pub files: BTreeMap<SubmissionField, Upload>,
    /// The client's address as `trusted_proxies` resolves it: its pictures are decoded
    /// within that address's share of the picture work.
    pub client: String,
    /// The correction passes the browser holds (`customer::address`): cookie values by
    /// ticket number. Only the browser that sent a request sees its status link again
    /// when it sends the same export twice.
    pub passes: BTreeMap<String, String>,
    /// A file larger than its field's limit, left out while the rest of the upload was
    /// read (so the form can keep what was typed): the submission is refused with this.
    pub too_large: Option<FieldIssue>,
    /// The e-mail the submission came in (`mail::inbound`): the ticket's first message.
    pub by_mail: Option<crate::store::MailOrigin>,
}

/// One problem with one field, worded for the customer in any language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldIssue {
    pub field: &'static str,
    pub message: Message,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The submission is wrong; the customer can fix it.
    #[error("{}", .0.first().map_or_else(|| "the request is not valid".to_owned(), |i| i.message.english()))]
    Invalid(Vec<FieldIssue>),
    /// It conflicts with what the desk already holds (e.g. a newer export).
    #[error("{1}")]
    Conflict(&'static str, Message),
    /// Too many requests for this device in a short time.
    #[error("too many requests for device {serial}: try again in {retry_after} seconds")]
    RateLimited { serial: String, retry_after: i64 },
    /// Too many pictures are waiting to be read: the submission is fine, the desk is busy.
    #[error(
        "the desk is busy reading other pictures; nothing was saved: please try again in a minute"
    )]
    Busy,
    /// The blob storage is full: the submission is fine, the desk has no room for it.
    #[error(
        "the desk has no room to store uploads right now; nothing was saved: please try again later"
    )]
    StorageFull,
    /// The blob storage cannot be reached: the submission is fine, nothing was saved.
    #[error(
        "the desk cannot reach its file storage right now; nothing was saved: please try again in a minute"
    )]
    BlobsUnavailable,
    /// The database stopped answering while the request was being saved, and the desk
    /// could not find out whether it was: the uploads are kept (the blob sweeper removes
    /// them if no ticket ever names them) and a retry finds the ticket if it was saved.
    #[error("the desk could not confirm whether the request was saved")]
    Unconfirmed(#[source] StoreError),
    #[error("the desk could not store the request")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl IntakeError {
    fn one(field: &'static str, message: Message) -> Self {
        Self::Invalid(vec![FieldIssue { field, message }])
    }

    fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }

    fn storing(error: BlobError) -> Self {
        match error {
            BlobError::Full(cause) => {
                tracing::error!(error = %cause, "blob storage is full: uploads are refused");
                Self::StorageFull
            }
            BlobError::Unavailable(cause) => {
                tracing::error!(error = %cause, "blob storage unreachable: uploads are refused");
                Self::BlobsUnavailable
            }
            other => Self::internal(other),
        }
    }
}

/// The result shown to the customer.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub number: TicketNumber,
    /// The ticket's status link: for a new ticket, and for the same export sent again
    /// with the ticket's own address. `None` when it came again from another address:
    /// the link went to the ticket's address instead (see [`LINK_RESEND_INTERVAL_SECS`]).
    pub status_url: Option<String>,
    /// True when this exact export was already submitted: this is the earlier ticket.
    pub existing: bool,
    pub superseded: Vec<TicketNumber>,
}

impl Submitted {
    /// What the answer to a resubmission says beside the ticket number (the API's
    /// `message`; the form's page says the same in its own words).
    pub fn message(&self) -> Option<Message> {
        match (self.existing, &self.status_url) {
            (false, _) => None,
            (true, Some(_)) => Some(Message::new("submitted.existing_same")),
            (true, None) => Some(Message::new("submitted.link_elsewhere")),
        }
    }
}

/// The status link goes again to a ticket's own address, when its export comes in from
/// another address, at most this often: the owner hears that someone else holds the
/// export, and a stranger sending it in a loop cannot flood the owner's inbox.
pub const LINK_RESEND_INTERVAL_SECS: i64 = 3600;

fn text(raw: &RawSubmission, field: SubmissionField) -> Option<&str> {
    raw.text
        .get(&field)
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
}

/// Parses the customer's details, collecting every problem so a form can show them all.
/// `language` is the one the customer wrote the form in (a hidden field of the form;
/// from Accept-Language when an API client leaves it out): the desk's e-mails use it.
fn customer(raw: &RawSubmission, issues: &mut Vec<FieldIssue>) -> Option<Customer> {
    fn parsed<T, E>(
        raw: &RawSubmission,
        field: SubmissionField,
        missing: Option<&'static str>,
        issues: &mut Vec<FieldIssue>,
        parse: impl FnOnce(&str) -> Result<T, E>,
        problem: impl FnOnce(&E) -> Message,
    ) -> Option<Option<T>> {
        let Some(value) = text(raw, field) else {
            if let Some(missing) = missing {
                issues.push(FieldIssue {
                    field: field.as_str(),
                    message: Message::new(missing),
                });
                return None;
            }
            return Some(None);
        };
        match parse(value) {
            Ok(value) => Some(Some(value)),
            Err(e) => {
                issues.push(FieldIssue {
                    field: field.as_str(),
                    message: problem(&e),
                });
                None
            }
        }
    }
    let plain = |v: &str| PlainText::parse(v, 200);
    let name = parsed(
        raw,
        SubmissionField::Name,
        Some("problem.name_missing"),
        issues,
        plain,
        problems::field,
    );
    let email = parsed(
        raw,
        SubmissionField::Email,
        Some("problem.email_missing"),
        issues,
        EmailAddress::parse,
        problems::email,
    );
    let phone = parsed(
        raw,
        SubmissionField::Phone,
        None,
        issues,
        PhoneNumber::parse,
        problems::phone,
    );
    let company = parsed(
        raw,
        SubmissionField::Company,
        None,
        issues,
        plain,
        problems::field,
    );
    let country = parsed(
        raw,
        SubmissionField::Country,
        Some("problem.country_missing"),
        issues,
        CountryCode::parse,
        |_| Message::new("problem.country_invalid"),
    );
    let role = parsed(
        raw,
        SubmissionField::Role,
        Some("problem.role_missing"),
        issues,
        CustomerRole::parse,
        |_| {
            let roles: Vec<&str> = CustomerRole::ALL.iter().map(|r| r.as_str()).collect();
            Message::new("problem.role_invalid").with("roles", roles.join(", "))
        },
    );
    let purchase_channel = parsed(
        raw,
        SubmissionField::PurchaseChannel,
        None,
        issues,
        plain,
        problems::field,
    );
    let language = parsed(
        raw,
        SubmissionField::Language,
        None,
        issues,
        |v| Lang::parse(v).ok_or(()),
        |_| Message::new("problem.language_invalid").with("languages", language_list()),
    );
    Some(Customer {
        name: name??,
        email: email??,
        phone: phone?,
        company: company?,
        country: country??,
        role: role??,
        purchase_channel: purchase_channel?,
        language: language?.unwrap_or_default(),
    })
}

/// The one export the customer sent, in whichever form.
fn export_of(raw: &RawSubmission) -> Result<(ExportForm, &'static str, Upload), FieldIssue> {
    use SubmissionField::{ExportQr, ExportXml, ResetString};
    let mut forms = Vec::new();
    if let Some(upload) = raw.files.get(&ExportXml).filter(|u| !u.is_empty()) {
        forms.push((ExportForm::Xml, ExportXml.as_str(), upload.clone()));
    }
    if let Some(string) = text(raw, ResetString) {
        forms.push((
            ExportForm::ResetString,
            ResetString.as_str(),
            Upload::from_bytes(string.as_bytes().to_vec()),
        ));
    }
    if let Some(upload) = raw.files.get(&ExportQr).filter(|u| !u.is_empty()) {
        forms.push((ExportForm::Qr, ExportQr.as_str(), upload.clone()));
    }
    match forms.len() {
        1 => Ok(forms.remove(0)),
        0 => Err(FieldIssue {
            field: SubmissionField::EXPORT_GROUP,
            message: Message::new("problem.export_missing"),
        }),
        _ => Err(FieldIssue {
            field: SubmissionField::EXPORT_GROUP,
            message: Message::new("problem.export_twice"),
        }),
    }
}

/// Decodes the export in the form it was sent. QR pictures are decoded off the async
/// workers: a 12-megapixel photo takes a noticeable slice of a core.
async fn decode_export(
    desk: &Desk,
    client: &str,
    form: ExportForm,
    field: &'static str,
    export: &Upload,
) -> Result<ResetRequest, IntakeError> {
    let issue = |e: &ExportError| IntakeError::one(field, problems::export(e));
    // The text forms are small, within their fields' limits.
    let small = async || {
        export
            .bytes(export.len())
            .await
            .map_err(IntakeError::internal)
    };
    match form {
        ExportForm::Xml => ExportInput::Xml(&small().await?)
            .decode()
            .map_err(|e| issue(&e)),
        ExportForm::ResetString => {
            let text = String::from_utf8(small().await?)
                .map_err(|_| IntakeError::one(field, Message::new("problem.upload_not_text")))?;
            ExportInput::ResetString(&text)
                .decode()
                .map_err(|e| issue(&e))
        }
        ExportForm::Qr => {
            let (declared, memory) = picture_memory(export).await?;
            if let Some(declared) = declared {
                declared
                    .check_cost(qr::MAX_QR_IMAGE_PIXELS)
                    .map_err(|message| IntakeError::one(field, message))?;
            }
            let memory = memory + declared.map_or(0, |d| qr::decode_memory(d.width, d.height));
            let export = export.clone();
            let decoded = desk
                .pictures
                .run(PictureJob::QrReading, client, memory, move || {
                    export.with_bytes(qr::read_image)
                })
                .await
                .map_err(|e| picture_failure(field, e))?
                .map_err(IntakeError::internal)?;
            let text = decoded.map_err(|e| IntakeError::one(field, problems::qr(&e)))?;
            reset_string::decode(&text).map_err(|e| issue(&e))
        }
    }
}

/// The same customer's approved ticket for one of these devices within the shortened-
/// review window: a response that did not work, asked for again, gets a shortened review.
async fn repeat_of(
    desk: &Desk,
    customer: &EmailAddress,
    devices: &[crate::protocol::DeviceChallenge],
    now: crate::domain::Timestamp,
) -> Result<Option<TicketNumber>, IntakeError> {
    let since = now.plus_seconds(-crate::customer::SHORTENED_REVIEW_WINDOW_DAYS * 24 * 3600);
    for device in devices {
        let earlier = desk
            .store
            .approved_for_customer_since(device.identity.serial.as_str(), customer, since)
            .await
            .map_err(IntakeError::internal)?;
        if earlier.is_some() {
            return Ok(earlier);
        }
    }
    Ok(None)
}

/// A picture that could not be read is the customer's to fix; a queue too long is not.
fn picture_failure(field: &'static str, error: PictureWorkError) -> IntakeError {
    match error {
        PictureWorkError::Busy => IntakeError::Busy,
        other => IntakeError::one(field, problems::picture(other)),
    }
}

/// What a picture upload declares in its header and scans (a walk over its segments, off
/// the async workers: a few milliseconds for the largest upload, no decoding), and the
/// memory reading it whole takes (none if it is in memory already, as the upload budget
/// counts it).
async fn picture_memory(upload: &Upload) -> Result<(Option<photo::Declared>, u64), IntakeError> {
    let upload = upload.clone();
    tokio::task::spawn_blocking(move || {
        let declared = photo::declared(upload.reader()?);
        let reading = if upload.spooled_path().is_some() {
            upload.len()
        } else {
            0
        };
        Ok((declared, reading))
    })
    .await
    .map_err(IntakeError::internal)?
    .map_err(|e: std::io::Error| IntakeError::internal(e))
}

/// Runs every check, stores the ticket and queues the acknowledgment; counts the outcome.
pub async fn submit(desk: &Desk, raw: RawSubmission) -> Result<Submitted, IntakeError> {
    submit_as(desk, raw, None).await
}

/// [`submit`] for a registered installer, authenticated by their token: the request is
/// theirs (its address the installer's; the name and role default to the installer's
/// company and `installer`), and the installer track may answer it.
pub async fn submit_as(
    desk: &Desk,
    raw: RawSubmission,
    installer: Option<&crate::store::Installer>,
) -> Result<Submitted, IntakeError> {
    let result = submit_checked(desk, raw, installer).await;
    crate::observability::intake(match &result {
        Ok(submitted) if submitted.existing => "existing",
        Ok(_) => "created",
        Err(IntakeError::Invalid(_)) => "invalid",
        Err(IntakeError::Conflict(..)) => "conflict",
        Err(IntakeError::RateLimited { .. }) => "rate_limited",
        Err(IntakeError::StorageFull) => "storage_full",
        Err(IntakeError::Busy) => "busy",
        Err(IntakeError::BlobsUnavailable) => "blobs_unavailable",
        Err(IntakeError::Unconfirmed(_)) => "unconfirmed",
        Err(IntakeError::Internal(_)) => "error",
    });
    result
}

#[tracing::instrument(skip_all, err(level = "info"))]
async fn submit_checked(
    desk: &Desk,
    mut raw: RawSubmission,
    installer: Option<&crate::store::Installer>,
) -> Result<Submitted, IntakeError> {
    // A file over its limit was left out while reading: it is said once, as too large,
    // not also as missing, beside whatever else is wrong.
    let mut issues: Vec<FieldIssue> = raw.too_large.iter().cloned().collect();
    let oversize = raw
        .too_large
        .as_ref()
        .and_then(|issue| SubmissionField::from_name(issue.field));
    if let Some(installer) = installer {
        let mut default = |field, value: &str| {
            raw.text.entry(field).or_insert_with(|| value.to_owned());
        };
        default(SubmissionField::Email, installer.email.as_str());
        default(SubmissionField::Name, &installer.company);
        default(
            SubmissionField::Role,
            crate::domain::CustomerRole::Installer.as_str(),
        );
    }
    let mut customer = customer(&raw, &mut issues);
    if let (Some(installer), Some(customer)) = (installer, customer.as_mut()) {
        if customer.email.mailbox() == installer.email.mailbox() {
            // Spelled as the installer registered it: every mail of the ticket (an
            // agent's decision too) goes where the installer receives it.
            customer.email = installer.email.clone();
        } else {
            issues.push(FieldIssue {
                field: SubmissionField::Email.as_str(),
                message: Message::untranslated(format!(
                    "a request sent with an installer's token is the installer's: leave email out, or send {}",
                    installer.email
                )),
            });
        }
    }
    let export = export_of(&raw)
        .map_err(|issue| {
            if !oversize.is_some_and(SubmissionField::is_export) {
                issues.push(issue);
            }
        })
        .ok();
    let label = raw
        .files
        .get(&SubmissionField::LabelPhoto)
        .filter(|u| !u.is_empty())
        .cloned();
    if label.is_none() && oversize != Some(SubmissionField::LabelPhoto) {
        issues.push(FieldIssue {
            field: SubmissionField::LabelPhoto.as_str(),
            message: Message::new("problem.label_photo_missing"),
        });
    }
    // Every part that came is checked, so a customer sees everything that is wrong at
    // once rather than one round of mistakes per submission. A refusal that is not the
    // customer's to fix (the desk is busy, storage is down) still ends the checks.
    let photo = match &label {
        Some(label) => collect(checked_photo(desk, label).await, &mut issues)?,
        None => None,
    };
    let now = desk.clock.now();
    let verified = match &export {
        Some((form, field, export)) => collect(
            verified_export(desk, &raw.client, *form, field, export, now).await,
            &mut issues,
        )?,
        None => None,
    };
    let (Some(customer), Some((form, field, export)), Some(label), Some(photo), Some(verified)) =
        (customer, export, label, photo, verified)
    else {
        return Err(IntakeError::Invalid(issues));
    };
    if !issues.is_empty() {
        return Err(IntakeError::Invalid(issues));
    }
    // Counted only for genuine exports: a forged one naming someone else's serial must
    // not use up that device's allowance.
    let serials: Vec<&str> = verified
        .devices()
        .iter()
        .map(|device| device.identity.serial.as_str())
        .collect();
    match limits::admit_serials(desk, &serials, now)
        .await
        .map_err(IntakeError::internal)?
    {
        limits::Admission::Counted => {}
        limits::Admission::Refused { key, retry_after } => {
            return Err(IntakeError::RateLimited {
                serial: key,
                retry_after,
            });
        }
    }

    let flags = risk::flags(desk, &customer.email, verified.devices(), now)
        .await
        .map_err(IntakeError::internal)?;
    let repeat_of = repeat_of(desk, &customer.email, verified.devices(), now).await?;
    let number = TicketNumber::generate();
    let status_url = desk.status_url(&number);
    let acknowledgment = compose::acknowledgment(
        &desk.mail,
        &number,
        &status_url,
        &customer,
        verified.devices(),
        desk.answer_secs().await,
    )
    .map_err(IntakeError::internal)?;
    // An XML file (at most 256 KiB) or a reset string goes into the ticket's row,
    // committed with it: a file of its own cost every upload a file to create, sync and
    // rename. A picture of a QR code can be a phone photo of megabytes: a blob.
    let export = match form {
        ExportForm::Xml | ExportForm::ResetString => StoredExport::InRow(
            export
                .bytes(export.len())
                .await
                .map_err(IntakeError::internal)?,
        ),
        ExportForm::Qr => StoredExport::Blob(
            desk.blobs
                .put_upload(&export, export.len())
                .await
                .map_err(IntakeError::storing)?,
        ),
    };
    let export_blob = export.blob().map(str::to_owned);
    let label_blob = match desk.blobs.put_upload(&label, photo.picture_len).await {
        Ok(blob) => blob,
        Err(e) => {
            remove_blobs(desk, export_blob.as_slice()).await;
            return Err(IntakeError::storing(e));
        }
    };
    // What a refused submission has to remove again.
    let stored: Vec<String> = export_blob
        .into_iter()
        .chain([label_blob.clone()])
        .collect();
    let ticket = NewTicket {
        number: number.clone(),
        customer,
        export_form: form,
        export,
        label_blob: label_blob.clone(),
        label_media_type: photo.media_type.to_owned(),
        devices: verified.devices().to_vec(),
        flags,
        repeat_of,
        installer: installer.map(|i| i.id),
        by_mail: raw.by_mail.take(),
        created_at: now,
    };
    let outcome = desk.store.create_ticket(&ticket, &acknowledgment).await;
    match outcome {
        Ok(CreateOutcome::Created { number, superseded }) => {
            desk.mail_queued.notify_one();
            desk.evidence_queued.notify_one();
            tracing::info!(ticket = %number, devices = ticket.devices.len(), "ticket created");
            Ok(Submitted {
                status_url: Some(status_url),
                number,
                existing: false,
                superseded,
            })
        }
        Ok(CreateOutcome::Existing { number }) => {
            remove_blobs(desk, &stored).await;
            existing(desk, number, &ticket.customer.email, &raw.passes).await
        }
        Err(StoreError::NewerExport { ticket, serial }) => {
            remove_blobs(desk, &stored).await;
            Err(IntakeError::Conflict(
                field,
                Message::new("problem.export_out_of_date")
                    .with("ticket", ticket)
                    .with("serial", serial),
            ))
        }
        Err(StoreError::Conflict(why)) => {
            remove_blobs(desk, &stored).await;
            tracing::info!(%why, "two submissions of one export crossed");
            Err(IntakeError::Conflict(
                field,
                Message::new("problem.export_same_time"),
            ))
        }
        // Anything else may have struck after the commit (the connection dropped before
        // its acknowledgment came back): the database, not the error, says what happened.
        Err(error) => match desk.store.ticket_of_challenge(&ticket.devices[0]).await {
            Ok(Some(saved)) if saved == ticket.number => {
                desk.mail_queued.notify_one();
                tracing::warn!(ticket = %saved, %error, "ticket created, though its commit was not acknowledged");
                Ok(Submitted {
                    status_url: Some(status_url),
                    number: saved,
                    existing: false,
                    superseded: Vec::new(),
                })
            }
            Ok(Some(other)) => {
                remove_blobs(desk, &stored).await;
                existing(desk, other, &ticket.customer.email, &raw.passes).await
            }
            Ok(None) => {
                remove_blobs(desk, &stored).await;
                Err(IntakeError::internal(error))
            }
            Err(lookup) => {
                tracing::error!(%error, %lookup, "could not tell whether a ticket was saved: its uploads are kept");
                Err(IntakeError::Unconfirmed(error))
            }
        },
    }
}

/// `Some` of a check that passed; `None`, with its issues added to `issues`, of one the
/// customer can fix; any other refusal as it is.
fn collect<T>(
    checked: Result<T, IntakeError>,
    issues: &mut Vec<FieldIssue>,
) -> Result<Option<T>, IntakeError> {
    match checked {
        Ok(value) => Ok(Some(value)),
        Err(IntakeError::Invalid(found)) => {
            issues.extend(found);
            Ok(None)
        }
        Err(other) => Err(other),
    }
}

/// The export decoded and verified: genuine, made by the device for a challenge still
/// alive, and not a version-1 export of a device that made version 2.
async fn verified_export(
    desk: &Desk,
    client: &str,
    form: ExportForm,
    field: &'static str,
    export: &Upload,
    now: crate::domain::Timestamp,
) -> Result<crate::protocol::challenge::VerifiedResetRequest, IntakeError> {
    let request = decode_export(desk, client, form, field, export).await?;
    if request.version() == crate::protocol::PROTOCOL_V1 {
        refuse_version_one(desk, field, &request).await?;
    }
    desk.signer
        .check_export(request, now, desk.settings.intake.max_clock_skew_secs)
        .await
        .map_err(|e| match e {
            crate::signer::SignerError::Refused(e) => {
                IntakeError::one(field, problems::challenge(&e))
            }
            other => IntakeError::internal(other),
        })
}

/// The same export again. Whoever holds an export can send it, so its ticket's status
/// link (which can replace the label photo, add notes and send code e-mails) is shown
/// only to the browser that sent the request (its correction pass, for half an hour)
/// with the ticket's own address, compared as the four-eyes rule compares addresses
/// (`EmailAddress::mailbox`). Typing the owner's address is not enough: it is often in
/// the export itself (`ReservedEmail`). Anyone else learns the ticket number and that
/// the link went to the address given with the request; it goes there again (once an
/// hour at most), so the owner gets it, and knows when the export is in other hands.
async fn existing(
    desk: &Desk,
    number: TicketNumber,
    sender: &EmailAddress,
    passes: &BTreeMap<String, String>,
) -> Result<Submitted, IntakeError> {
    let ticket = desk
        .store
        .ticket(&number)
        .await
        .map_err(IntakeError::internal)?;
    let holds_pass = crate::customer::address::live_pass(
        desk,
        &number,
        passes.get(number.as_str()).map(String::as_str),
    )
    .is_some();
    if holds_pass && ticket.customer.email.mailbox() == sender.mailbox() {
        return Ok(Submitted {
            status_url: Some(desk.status_url(&number)),
            number,
            existing: true,
            superseded: Vec::new(),
        });
    }
    let mail = compose::acknowledgment_again(
        &desk.mail,
        &number,
        &desk.status_url(&number),
        &ticket.customer,
        &ticket.devices,
        compose::Again::Resubmitted,
        desk.answer_secs().await,
    )
    .map_err(IntakeError::internal)?;
    let resent = desk
        .store
        .resend_status_link(
            ticket.id,
            sender,
            &mail,
            desk.clock.now(),
            LINK_RESEND_INTERVAL_SECS,
        )
        .await
        .map_err(IntakeError::internal)?;
    if resent {
        desk.mail_queued.notify_one();
    }
    tracing::info!(ticket = %number, resent, "the same export from another address: its status link was not shown");
    Ok(Submitted {
        status_url: None,
        number,
        existing: true,
        superseded: Vec::new(),
    })
}

/// A version 1 export is refused when the desk takes none, and when it names a device
/// that came in a version 2 export before: firmware that binds its entries never makes
/// unbound ones, so such an entry was asked for by someone downgrading it to stitch it
/// into another export (docs/PROTOCOL.md, "No downgrade").
async fn refuse_version_one(
    desk: &Desk,
    field: &'static str,
    request: &ResetRequest,
) -> Result<(), IntakeError> {
    if !desk.settings.intake.accept_v1_exports {
        return Err(IntakeError::one(
            field,
            Message::new("problem.export_old_version_refused"),
        ));
    }
    for device in request.devices() {
        let serial = &device.identity.serial;
        if desk
            .store
            .serial_exported_in_v2(serial.as_str())
            .await
            .map_err(IntakeError::internal)?
        {
            return Err(IntakeError::one(
                field,
                Message::new("problem.export_downgraded").with("serial", serial),
            ));
        }
    }
    Ok(())
}

async fn remove_blobs(desk: &Desk, blobs: &[String]) {
    for blob in blobs {
        if let Err(error) = desk.blobs.delete(blob).await {
            tracing::warn!(%blob, %error, "could not remove the blob of a refused submission");
        }
    }
}

/// Checks a label photo's structure: format, declared size, pixel cap, metadata, scans
/// and end marker, all read without decoding a pixel. The pixels are decoded off the
/// request path by the evidence worker (`evidence::worker`), which sends the ticket back
/// to the customer when they cannot be read. Says how much of the upload is the picture
/// (anything appended after its end is not stored) and its media type.
async fn checked_photo(desk: &Desk, upload: &Upload) -> Result<photo::CheckedPhoto, IntakeError> {
    let refused =
        |message: Message| IntakeError::one(SubmissionField::LabelPhoto.as_str(), message);
    let max_pixels = desk.settings.intake.max_label_pixels;
    let inspect =
        move |bytes: &[u8]| photo::inspect_label_photo(bytes, max_pixels).map(|i| i.checked());
    let checked = if upload.spooled_path().is_some() {
        // A large upload waits on disk: reading it back is file work, off the async workers.
        let upload = upload.clone();
        tokio::task::spawn_blocking(move || upload.with_bytes(inspect))
            .await
            .map_err(IntakeError::internal)?
    } else {
        upload.with_bytes(inspect)
    };
    checked.map_err(IntakeError::internal)?.map_err(refused)
}

/// The customer's answer to "new photo, please": checks the photo, stores it and puts the
/// ticket back in the queue; the photo it replaces is kept with the ticket.
pub async fn replace_label_photo(
    desk: &Desk,
    ticket_id: TicketId,
    raw: RawSubmission,
) -> Result<(), IntakeError> {
    let Some(upload) = raw
        .files
        .get(&SubmissionField::LabelPhoto)
        .filter(|u| !u.is_empty())
        .cloned()
    else {
        return Err(IntakeError::one(
            SubmissionField::LabelPhoto.as_str(),
            Message::new("problem.label_photo_choose"),
        ));
    };
    let photo = checked_photo(desk, &upload).await?;
    let blob = desk
        .blobs
        .put_upload(&upload, photo.picture_len)
        .await
        .map_err(IntakeError::storing)?;
    match desk
        .store
        .replace_label_photo(ticket_id, &blob, photo.media_type, desk.clock.now())
        .await
    {
        // The photo it replaced stays with the ticket, for the agent to compare.
        Ok(_replaced) => {
            desk.evidence_queued.notify_one();
            Ok(())
        }
        Err(StoreError::Conflict(why)) => {
            remove_blobs(desk, std::slice::from_ref(&blob)).await;
            tracing::info!(%why, "a new photo for a ticket not waiting for one");
            Err(IntakeError::Conflict(
                SubmissionField::LabelPhoto.as_str(),
                Message::new("problem.label_photo_not_waiting"),
            ))
        }
        Err(StoreError::PhotoCrossed) => {
            remove_blobs(desk, std::slice::from_ref(&blob)).await;
            tracing::info!(
                ticket_id = ticket_id.0,
                "two new photos at once: the other one was kept"
            );
            Err(IntakeError::Conflict(
                SubmissionField::LabelPhoto.as_str(),
                Message::new("problem.label_photo_crossed"),
            ))
        }
        // As for a new ticket: the write may have committed unheard. If it did, the photo
        // it replaced is kept as an earlier photo, as after a heard commit.
        Err(error) => match desk.store.label_blob_of(ticket_id).await {
            Ok(current) if current == blob => {
                tracing::warn!(ticket_id = ticket_id.0, %error, "new photo stored, though its commit was not acknowledged");
                Ok(())
            }
            Ok(_) => {
                remove_blobs(desk, std::slice::from_ref(&blob)).await;
                Err(IntakeError::internal(error))
            }
            Err(lookup) => {
                tracing::error!(ticket_id = ticket_id.0, %error, %lookup, "could not tell whether a new photo was saved: it is kept");
                Err(IntakeError::Unconfirmed(error))
            }
        },
    }
}
