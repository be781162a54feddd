//! What the desk does with one inbound e-mail: claim it (once across replicas and
//! crashes), then make a request of it as the form would, add it to the conversation of
//! the ticket it answers, or answer once saying what to fix; robots get no answer.

use std::collections::BTreeMap;

use super::message::{FileKind, InboundMail, MailFile, Refused, reset_string_in};
use crate::desk::Desk;
use crate::domain::{TicketNumber, TicketStatus};
use crate::i18n::{Lang, Message};
use crate::intake::picture_work::PictureJob;
use crate::intake::{IntakeError, RawSubmission, SubmissionField, Upload};
use crate::mail::compose;
use crate::store::{
    InboundClaim, KeptFile, MailOrigin, MessageAuthor, NewMail, NewTicketMessage, StoreError,
    TicketDetail, TicketId,
};

/// How long a claim holds: a handler that died (a replica killed mid-message) is taken
/// over after this. A message takes a second or two; one that outlives its lease and is
/// taken twice still makes one ticket (the challenge is unique), one conversation entry
/// (the Message-ID is) and one answer (queued only by the claim's `finish_inbound`).
pub(super) const CLAIM_LEASE_SECS: i64 = 30;
/// How long the files of an answered message wait for the customer's reply: as long as
/// the export in it lives (`CHALLENGE_LIFETIME_SECS`); the sweeper forgets them then.
pub const KEPT_FOR_SECS: i64 = crate::protocol::CHALLENGE_LIFETIME_SECS;
/// The most the files kept for replies may hold together (they live [`KEPT_FOR_SECS`]):
/// senders the desk cannot tell from forgers must not fill its storage. Beyond it, an
/// answer still says what to fix; the customer's reply must then bring everything.
pub const MAX_KEPT_BYTES: u64 = 1024 * 1024 * 1024;
/// The most messages not proven to be the customer's (see [`MessageAuthor::Stranger`])
/// one ticket keeps in an hour.
const MAX_UNPROVEN_PER_HOUR: usize = 20;
/// The most of a new request's e-mail kept as its first message.
const MAX_FIRST_MESSAGE_CHARS: usize = 4000;

/// What the desk did with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// A new ticket.
    NewTicket(TicketNumber),
    /// The export was sent before: this is its ticket (nothing is sent again).
    Existing(TicketNumber),
    /// It joined a ticket's conversation (the customer's, or a stranger's kept aside).
    Reply(TicketNumber),
    /// It could not become a request: the sender was told what to fix.
    Answered,
    /// A robot's (or our own): taken, not answered.
    Ignored(&'static str),
    /// It could not become a request, and the answer was withheld (why): the sender
    /// had `mail_per_sender_per_hour` answers in the hour, the desk
    /// `mail_answers_per_hour`, or it came through a mailing list.
    Unanswered(&'static str),
    /// Handled before (a retry, or another replica): nothing done again.
    AlreadyDone,
}

impl Taken {
    /// The word stored in `inbound_mails.outcome` and counted in the metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::NewTicket(_) => "new_ticket",
            Self::Existing(_) => "existing",
            Self::Reply(_) => "reply",
            Self::Answered => "answered",
            Self::Ignored(_) => "ignored",
            Self::Unanswered(_) => "unanswered",
            Self::AlreadyDone => "already_done",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    /// The message is refused whole (an MTA bounces it: exit 65).
    #[error("{0}")]
    Refused(#[from] Refused),
    /// The desk cannot take it now; the message stays where it is and is tried again
    /// (an MTA keeps it: exit 75).
    #[error("try again later: {0}")]
    TryLater(String),
}

impl From<StoreError> for TakeError {
    fn from(error: StoreError) -> Self {
        Self::TryLater(error.to_string())
    }
}

/// Takes one raw message, as fetched from the mailbox or piped in by an MTA.
pub async fn take(desk: &Desk, raw: &[u8]) -> Result<Taken, TakeError> {
    take_read(desk, raw, None).await
}

/// A message larger than `mail_max_message_bytes` (`size`), of which only the header
/// was fetched: its body is never read, and the sender (unless a robot) is told.
pub async fn take_oversized(desk: &Desk, header: &[u8], size: u64) -> Result<Taken, TakeError> {
    take_read(desk, header, Some(size)).await
}

async fn take_read(desk: &Desk, raw: &[u8], oversized: Option<u64>) -> Result<Taken, TakeError> {
    let mail = InboundMail::parse(
        raw,
        desk.settings.mail.max_message_bytes,
        &desk.mail.message_domain,
        desk.mail.own_mailbox.as_deref(),
    )?;
    let now = desk.clock.now();
    match desk
        .store
        .claim_inbound(
            &mail.message_id,
            &mail.sender.mailbox(),
            now,
            CLAIM_LEASE_SECS,
        )
        .await?
    {
        InboundClaim::Claimed => {}
        InboundClaim::Done { .. } => return Ok(Taken::AlreadyDone),
        InboundClaim::Busy => {
            return Err(TakeError::TryLater(
                "another replica is handling this message".to_owned(),
            ));
        }
    }
    let (mut taken, ticket, mut answer) = handle(desk, &mail, oversized).await?;
    if answer.is_some()
        && let Some(why) = answer_withheld(desk, &mail).await?
    {
        tracing::warn!(sender = %mail.sender.mailbox(), why, "an answer withheld");
        answer = None;
        if taken == Taken::Answered {
            taken = Taken::Unanswered(why);
        }
    }
    match desk
        .store
        .finish_inbound(
            &mail.message_id,
            taken.outcome(),
            ticket,
            answer.as_ref(),
            desk.clock.now(),
        )
        .await
    {
        Ok(()) => {}
        // Our claim lapsed and another handler finished it: its outcome stands.
        Err(StoreError::Conflict(crate::store::Conflict::AlreadyHandled)) => {
            return Ok(Taken::AlreadyDone);
        }
        Err(error) => return Err(error.into()),
    }
    if answer.is_some() {
        desk.mail_queued.notify_one();
    }
    crate::observability::mail_intake(taken.outcome());
    tracing::info!(
        message_id = %mail.message_id,
        outcome = taken.outcome(),
        ?taken,
        "inbound e-mail taken"
    );
    Ok(taken)
}

type Handled = (Taken, Option<TicketId>, Option<NewMail>);

/// Why the desk sends this message no answer, if it doesn't: it came through a list, or
/// the answers' limits are reached. The answers are limited, not the messages taken:
/// mail forged in someone's name must not silence their own requests, and the desk must
/// not mail whoever forgers name without end.
async fn answer_withheld(
    desk: &Desk,
    mail: &InboundMail,
) -> Result<Option<&'static str>, TakeError> {
    if let Some(why) = mail.quiet {
        return Ok(Some(why));
    }
    let since = desk.clock.now().plus_seconds(-3600);
    let (to_sender, all) = desk
        .store
        .inbound_answers_since(&mail.sender.mailbox(), since)
        .await?;
    Ok(
        if to_sender >= i64::from(desk.settings.mail.per_sender_per_hour) {
            Some("mail_per_sender_per_hour answers sent to this address in the last hour")
        } else if all >= i64::from(desk.settings.mail.answers_per_hour) {
            Some("mail_answers_per_hour answers sent in the last hour")
        } else {
            None
        },
    )
}

async fn handle(
    desk: &Desk,
    mail: &InboundMail,
    oversized: Option<u64>,
) -> Result<Handled, TakeError> {
    if let Some(why) = mail.automated {
        tracing::info!(message_id = %mail.message_id, why, "an automatic message: not answered");
        return Ok((Taken::Ignored(why), None, None));
    }
    if let Some(size) = oversized {
        let megabytes = |bytes: u64| bytes.div_ceil(1024 * 1024);
        let problem = Message::new("mail_intake.too_large")
            .with("size", megabytes(size))
            .with("max", megabytes(desk.settings.mail.max_message_bytes));
        let language = mail.language.unwrap_or_default();
        return Ok((
            Taken::Answered,
            None,
            Some(answer(desk, mail, language, &[problem])?),
        ));
    }
    if let Some(ticket) = named_ticket(desk, mail).await? {
        return reply(desk, mail, &ticket).await;
    }
    new_request(desk, mail).await
}

/// The ticket a message answers: one of the desk's mails it references, or the ticket
/// number in its subject.
async fn named_ticket(desk: &Desk, mail: &InboundMail) -> Result<Option<TicketDetail>, TakeError> {
    let number = match desk
        .store
        .ticket_of_message_ids(&mail.references, false)
        .await?
    {
        Some(number) => number,
        None => match ticket_number_in(&mail.subject) {
            Some(number) => number,
            None => return Ok(None),
        },
    };
    match desk.store.ticket(&number).await {
        Ok(ticket) => Ok(Some(ticket)),
        Err(StoreError::NotFound) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// `[RQ-XXXX-XXXX]` in a subject, as every mail of the desk writes it.
pub fn ticket_number_in(subject: &str) -> Option<TicketNumber> {
    subject.match_indices("[RQ-").find_map(|(at, _)| {
        let rest = &subject[at + 1..];
        let end = rest.find(']')?;
        TicketNumber::parse(&rest[..end]).ok()
    })
}

async fn reply(
    desk: &Desk,
    mail: &InboundMail,
    ticket: &TicketDetail,
) -> Result<Handled, TakeError> {
    let number = ticket.summary.number.clone();
    let words = mail.own_words();
    let words: String = words
        .chars()
        .take(crate::customer::reply::MAX_REPLY_CHARS)
        .collect();
    if brings_an_export(mail) {
        // A new export is a new request, whoever sends it, checked as the form checks
        // one (a rejected customer exporting again, say). The same export again is
        // this ticket's: then the message is a reply after all.
        let made = new_request(desk, mail).await?;
        if !matches!(&made.0, Taken::Existing(same) if *same == number) {
            return Ok(made);
        }
    }
    if mail.sender.mailbox() != ticket.customer.email.mailbox() {
        // Kept for the agents with a warning; it acts on nothing.
        tracing::warn!(ticket = %number, sender = %mail.sender, "a reply from another address: kept, not acted on");
        return keep_unproven(desk, mail, ticket, words).await;
    }
    // From is easy to forge: only a reply to a mail the desk sent this customer (whose
    // Message-ID nobody else has seen) may change the ticket, as only the status link
    // may on the web. A message naming the ticket otherwise is kept for the agents.
    let proven = desk
        .store
        .ticket_of_message_ids(&mail.references, true)
        .await?
        .is_some_and(|n| n == number);
    if !proven {
        tracing::info!(ticket = %number, "a message naming the ticket without answering the desk's mail: kept, not acted on");
        let body = if words.is_empty() {
            "(an e-mail without text)".to_owned()
        } else {
            words
        };
        return keep_unproven(desk, mail, ticket, body).await;
    }
    let mut problems: Vec<Message> = Vec::new();
    let photo = largest_picture(&mail.files);
    if let (Some(photo), TicketStatus::AwaitingPhoto) = (photo, ticket.summary.status) {
        let mut raw = RawSubmission {
            client: client(mail),
            ..RawSubmission::default()
        };
        raw.files.insert(
            SubmissionField::LabelPhoto,
            Upload::from_bytes(photo.bytes.clone()),
        );
        match crate::intake::replace_label_photo(desk, ticket.id, raw).await {
            Ok(()) => {}
            Err(IntakeError::Invalid(issues)) => {
                problems.extend(issues.into_iter().map(|i| i.message));
            }
            // Not waiting any more (a retry after a crash finds it replaced): the words
            // still join the conversation.
            Err(IntakeError::Conflict(..)) => {}
            Err(other) => return Err(TakeError::TryLater(other.to_string())),
        }
    }
    if photo.is_some() && ticket.summary.status != TicketStatus::AwaitingPhoto {
        problems.push(Message::new("mail_intake.photo_not_awaited"));
    }
    let body = if words.is_empty() && photo.is_some() {
        "(a new photo of the label, by e-mail)".to_owned()
    } else {
        words
    };
    if !body.is_empty() {
        let said =
            crate::customer::reply::reply_by_mail(desk, ticket, &body, &mail.message_id).await;
        match said {
            Ok(_) => {}
            // A decided ticket: the message is kept for the agents, acting on nothing.
            Err(crate::customer::reply::ReplyError::Closed) => {
                keep_on_ticket(desk, mail, ticket, MessageAuthor::Customer, body).await?;
            }
            Err(crate::customer::reply::ReplyError::Store(error)) => return Err(error.into()),
            Err(other) => {
                tracing::info!(ticket = %number, error = %other, "a reply by e-mail was not added");
            }
        }
    }
    if problems.is_empty() {
        return Ok((Taken::Reply(number), Some(ticket.id), None));
    }
    problems.extend(mail.skipped.iter().cloned());
    let answer = answer(desk, mail, ticket.customer.language, &problems)?;
    Ok((Taken::Reply(number), Some(ticket.id), Some(answer)))
}

/// Whether a From's display name reads as a person's or a company's name, fit to greet
/// them with: a forged From's name ("Claim your prize at http://…") would otherwise go
/// out in the acknowledgment to the address it names. Else the address's local part is
/// used.
fn looks_like_a_name(name: &str) -> bool {
    let lower = name.to_lowercase();
    let digits = name.chars().filter(char::is_ascii_digit).count();
    name.chars().count() <= 60
        && digits <= 4
        && !["@", "://", "www.", "http", ".com", ".net", ".org", "$", "€"]
            .iter()
            .any(|s| lower.contains(s))
}

/// Whether the message brings an export of its own: an XML file, or a reset string in
/// its own words (not in the earlier mail it quotes).
fn brings_an_export(mail: &InboundMail) -> bool {
    mail.files.iter().any(|f| f.kind == FileKind::Xml)
        || reset_string_in(&mail.own_words()).is_some()
}

/// Whether the message answers one of the desk's answers (`compose::mail_answer`) and
/// brings nothing a request is made of: a "thanks" needs no second answer.
fn nothing_new_for_an_answer(desk: &Desk, mail: &InboundMail) -> bool {
    let answer_suffix = format!("@{}>", desk.mail.message_domain);
    let answers_ours = mail
        .references
        .iter()
        .any(|id| id.starts_with("<answer.") && id.ends_with(&answer_suffix));
    answers_ours && mail.files.is_empty() && !brings_an_export(mail)
}

/// Keeps a message not proven to be the customer's, with a warning, acting on nothing;
/// at most [`MAX_UNPROVEN_PER_HOUR`] a ticket in an hour, so whoever learns a ticket
/// number cannot bury its conversation. The customer's proven replies never count here.
async fn keep_unproven(
    desk: &Desk,
    mail: &InboundMail,
    ticket: &TicketDetail,
    body: String,
) -> Result<Handled, TakeError> {
    let since = desk.clock.now().plus_seconds(-3600);
    let recent = ticket
        .messages
        .iter()
        .filter(|m| m.author == MessageAuthor::Stranger && m.at >= since)
        .count();
    if recent >= MAX_UNPROVEN_PER_HOUR {
        tracing::warn!(ticket = %ticket.summary.number, "too many unproven messages on one ticket this hour: not kept");
        return Ok((
            Taken::Ignored("too many unproven messages on the ticket this hour"),
            Some(ticket.id),
            None,
        ));
    }
    keep_on_ticket(desk, mail, ticket, MessageAuthor::Stranger, body).await?;
    Ok((
        Taken::Reply(ticket.summary.number.clone()),
        Some(ticket.id),
        None,
    ))
}

/// Keeps the mail's words in the ticket's conversation, acting on nothing else.
async fn keep_on_ticket(
    desk: &Desk,
    mail: &InboundMail,
    ticket: &TicketDetail,
    author: MessageAuthor,
    body: String,
) -> Result<(), TakeError> {
    let message = NewTicketMessage {
        author,
        sender: mail.sender.to_string(),
        body,
        message_id: Some(mail.message_id.clone()),
    };
    desk.store
        .add_ticket_message(ticket.id, &message, desk.clock.now())
        .await?;
    Ok(())
}

async fn new_request(desk: &Desk, mail: &InboundMail) -> Result<Handled, TakeError> {
    let words = mail.own_words();
    let language = mail.language.unwrap_or_default();
    let mut raw = RawSubmission {
        client: client(mail),
        ..RawSubmission::default()
    };
    let mut text = |field: SubmissionField, value: String| {
        raw.text.insert(field, value);
    };
    for (field, value) in fields_in(&words) {
        text(field, value);
    }
    let name = mail
        .sender_name
        .clone()
        .filter(|n| looks_like_a_name(n))
        .unwrap_or_else(|| {
            mail.sender
                .as_str()
                .split('@')
                .next()
                .unwrap_or("")
                .to_owned()
        });
    raw.text.entry(SubmissionField::Name).or_insert(name);
    raw.text
        .insert(SubmissionField::Email, mail.sender.as_str().to_owned());
    raw.text
        .insert(SubmissionField::Language, language.code().to_owned());
    // The form asks for these; by e-mail they are optional: "ZZ" is ISO 3166's code for
    // a country not given, and the agents see it as such.
    raw.text
        .entry(SubmissionField::Country)
        .or_insert_with(|| "ZZ".to_owned());
    raw.text
        .entry(SubmissionField::Role)
        .or_insert_with(|| crate::domain::CustomerRole::EndUser.as_str().to_owned());

    let mut pictures: Vec<&MailFile> = mail
        .files
        .iter()
        .filter(|f| f.kind == FileKind::Picture)
        .collect();
    if let Some(xml) = mail.files.iter().find(|f| f.kind == FileKind::Xml) {
        put_file(desk, &mut raw, SubmissionField::ExportXml, xml);
    } else if let Some(string) = reset_string_in(&mail.text) {
        raw.text.insert(SubmissionField::ResetString, string);
    } else if pictures.len() > 1 {
        // A picture of the device's QR code beside the label photo: the one whose code
        // reads as a reset request, smallest first (a screen's QR is the lighter photo).
        pictures.sort_by_key(|p| p.bytes.len());
        if let Some(at) = qr_picture(desk, mail, &pictures).await {
            let qr = pictures.remove(at);
            put_file(desk, &mut raw, SubmissionField::ExportQr, qr);
        }
    }
    if let Some(label) = pictures.iter().max_by_key(|p| p.bytes.len()) {
        put_file(desk, &mut raw, SubmissionField::LabelPhoto, label);
    }
    bring_back_kept(desk, mail, &mut raw).await?;
    let files = raw.files.clone();
    raw.by_mail = Some(MailOrigin {
        message_id: mail.message_id.clone(),
        sender: mail.sender.to_string(),
        body: words.chars().take(MAX_FIRST_MESSAGE_CHARS).collect(),
    });
    match crate::intake::submit(desk, raw).await {
        Ok(submitted) if submitted.existing => Ok((Taken::Existing(submitted.number), None, None)),
        Ok(submitted) => Ok((Taken::NewTicket(submitted.number), None, None)),
        Err(IntakeError::Invalid(_)) if nothing_new_for_an_answer(desk, mail) => Ok((
            Taken::Unanswered("a reply to the desk's answer that brings nothing new"),
            None,
            None,
        )),
        Err(IntakeError::Invalid(issues)) => {
            // Decided here, once, for the answer and the files alike: they are kept
            // only for an answer that goes out (without one no reply brings the rest),
            // and the answers' limits bound what is kept.
            if let Some(why) = answer_withheld(desk, mail).await? {
                tracing::warn!(sender = %mail.sender.mailbox(), why, "an answer withheld");
                return Ok((Taken::Unanswered(why), None, None));
            }
            keep_for_the_reply(desk, mail, &files, &issues).await?;
            let mut problems: Vec<Message> = issues.into_iter().map(|i| i.message).collect();
            problems.extend(mail.skipped.iter().cloned());
            Ok((
                Taken::Answered,
                None,
                Some(answer(desk, mail, language, &problems)?),
            ))
        }
        // The same export taken at this moment by another handler (this message's claim
        // outlived by slow picture work, or the customer's form crossing their mail):
        // the next look finds its ticket.
        Err(IntakeError::Conflict(_, message)) if message.key() == "problem.export_same_time" => {
            Err(TakeError::TryLater(message.english()))
        }
        Err(IntakeError::Conflict(_, message)) => Ok((
            Taken::Answered,
            None,
            Some(answer(desk, mail, language, &[message])?),
        )),
        Err(error @ IntakeError::RateLimited { .. }) => Ok((
            Taken::Answered,
            None,
            Some(answer(
                desk,
                mail,
                language,
                &[Message::untranslated(error.to_string())],
            )?),
        )),
        Err(other) => Err(TakeError::TryLater(other.to_string())),
    }
}

/// What the sender's earlier message (the one the desk answered with what to fix)
/// brought, where this reply brings nothing of its own for it.
async fn bring_back_kept(
    desk: &Desk,
    mail: &InboundMail,
    raw: &mut RawSubmission,
) -> Result<(), TakeError> {
    let kept = desk
        .store
        .kept_inbound_files(&mail.references, &mail.sender.mailbox())
        .await?;
    let has_export = [SubmissionField::ExportXml, SubmissionField::ExportQr]
        .iter()
        .any(|f| raw.files.contains_key(f))
        || raw.text.contains_key(&SubmissionField::ResetString);
    for (field, blob) in kept {
        let Some(field) = SubmissionField::from_name(&field).filter(|f| f.is_file()) else {
            continue;
        };
        let missing = if field.is_export() {
            !has_export
        } else {
            !raw.files.contains_key(&field)
        };
        if !missing || raw.files.contains_key(&field) {
            continue;
        }
        match desk.blobs.get(&blob).await {
            Ok(bytes) => {
                raw.files.insert(field, Upload::from_bytes(bytes));
            }
            Err(error) => {
                tracing::warn!(%error, field = field.as_str(), "a kept file of an earlier e-mail is gone");
            }
        }
    }
    Ok(())
}

/// Keeps the files of a refused message that passed their own checks, for the reply.
async fn keep_for_the_reply(
    desk: &Desk,
    mail: &InboundMail,
    files: &BTreeMap<SubmissionField, Upload>,
    issues: &[crate::intake::FieldIssue],
) -> Result<(), TakeError> {
    let mut kept = Vec::new();
    let mut total = desk.store.inbound_kept_bytes().await?;
    for (field, upload) in files {
        let faulted = issues.iter().any(|issue| {
            issue.field == field.as_str()
                || (field.is_export() && issue.field == SubmissionField::EXPORT_GROUP)
        });
        if faulted || upload.is_empty() {
            continue;
        }
        if total + upload.len() > MAX_KEPT_BYTES {
            tracing::warn!(
                total,
                "the files kept for replies are at their limit: this one is not kept"
            );
            continue;
        }
        total += upload.len();
        match desk.blobs.put_upload(upload, upload.len()).await {
            Ok(blob) => kept.push(KeptFile {
                field: field.as_str().to_owned(),
                blob,
                bytes: upload.len(),
            }),
            Err(error) => {
                tracing::warn!(%error, "a file of an answered e-mail could not be kept");
            }
        }
    }
    if !kept.is_empty() {
        desk.store
            .keep_inbound_files(&mail.message_id, &kept, desk.clock.now())
            .await?;
    }
    Ok(())
}

/// The share of picture work a sender's mail gets: one sender cannot take it all.
fn client(mail: &InboundMail) -> String {
    format!("mail:{}", mail.sender.mailbox())
}

fn largest_picture(files: &[MailFile]) -> Option<&MailFile> {
    files
        .iter()
        .filter(|f| f.kind == FileKind::Picture)
        .max_by_key(|f| f.bytes.len())
}

/// Puts a file in a field, or says it is too large for it, as the upload reader does.
fn put_file(desk: &Desk, raw: &mut RawSubmission, field: SubmissionField, file: &MailFile) {
    let limit = field.limit(desk);
    if file.bytes.len() as u64 > limit {
        raw.too_large = Some(crate::intake::FieldIssue {
            field: field.as_str(),
            message: Message::new("problem.upload_too_large")
                .with("size", format!("{} MB", limit / (1024 * 1024))),
        });
        return;
    }
    raw.files
        .insert(field, Upload::from_bytes(file.bytes.clone()));
}

/// Which of the pictures (at most three tried) is a QR code holding a reset request.
async fn qr_picture(desk: &Desk, mail: &InboundMail, pictures: &[&MailFile]) -> Option<usize> {
    for (at, picture) in pictures.iter().enumerate().take(3) {
        if picture.bytes.len() as u64 > desk.settings.intake.max_export_bytes {
            continue;
        }
        let bytes = picture.bytes.clone();
        let Some(declared) = crate::intake::photo::declared(bytes.as_slice()) else {
            continue;
        };
        if declared
            .check_cost(crate::protocol::qr::MAX_QR_IMAGE_PIXELS)
            .is_err()
        {
            continue;
        }
        let memory = bytes.len() as u64
            + crate::protocol::qr::decode_memory(declared.width, declared.height);
        let read = desk
            .pictures
            .run(PictureJob::QrReading, &client(mail), memory, move || {
                crate::protocol::qr::read_image(&bytes)
            })
            .await;
        if let Ok(Ok(text)) = read
            && crate::protocol::reset_string::decode(&text).is_ok()
        {
            return Some(at);
        }
    }
    None
}

/// "Phone: …", "Country: ES" lines: the form's other fields, if the sender wrote them.
fn fields_in(text: &str) -> BTreeMap<SubmissionField, String> {
    let mut found = BTreeMap::new();
    for line in text.lines().take(200) {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let field = match key.trim().to_lowercase().as_str() {
            "name" | "nombre" => SubmissionField::Name,
            "phone" | "teléfono" | "telefono" => SubmissionField::Phone,
            "company" | "empresa" => SubmissionField::Company,
            "country" | "país" | "pais" => SubmissionField::Country,
            "role" | "rol" => SubmissionField::Role,
            _ => continue,
        };
        let value = value.trim();
        if !value.is_empty() && value.len() as u64 <= 400 {
            found.entry(field).or_insert_with(|| value.to_owned());
        }
    }
    found
}

/// The one answer to a message the desk could not act on: every problem, and the form.
fn answer(
    desk: &Desk,
    mail: &InboundMail,
    language: Lang,
    problems: &[Message],
) -> Result<NewMail, TakeError> {
    let problems: Vec<String> = problems.iter().map(|m| language.message(m)).collect();
    compose::mail_answer(
        &desk.mail,
        language,
        &mail.sender,
        &mail.message_id,
        &problems,
        &format!("{}/", desk.settings.http.public_url),
    )
    .map_err(|e| TakeError::TryLater(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_numbers_are_found_in_subjects() {
        let number = TicketNumber::generate();
        let subject = format!("Re: [{number}] Please send a new photo");
        assert_eq!(ticket_number_in(&subject), Some(number));
        assert_eq!(ticket_number_in("Re: [RQ-12] x"), None);
        assert_eq!(ticket_number_in("no number"), None);
    }

    #[test]
    fn only_names_that_read_as_names_greet() {
        assert!(looks_like_a_name("Ana López"));
        assert!(looks_like_a_name("Seguridad Ibérica S.L."));
        assert!(!looks_like_a_name(
            "Claim your prize at http://evil.example/win"
        ));
        assert!(!looks_like_a_name("Call +1 555 0100 now"));
        assert!(!looks_like_a_name("Visit spam.com"));
        assert!(!looks_like_a_name(&"A".repeat(61)));
    }

    #[test]
    fn form_fields_written_in_the_text_are_read() {
        let found = fields_in("Hello\nCountry: ES\nPhone: +34 600 000 000\nThanks: a lot\n");
        assert_eq!(
            found.get(&SubmissionField::Country).map(String::as_str),
            Some("ES")
        );
        assert_eq!(
            found.get(&SubmissionField::Phone).map(String::as_str),
            Some("+34 600 000 000")
        );
        assert_eq!(found.len(), 2);
    }
}
