use askama::Template;

use crate::domain::{EmailAddress, TicketNumber, Timestamp};
use crate::i18n::Lang;
use crate::protocol::{DeviceChallenge, DeviceResponse};
use crate::store::{Attachment, Customer, MailKind, NewMail};

/// What every message needs to know about the desk.
#[derive(Debug, Clone)]
pub struct MailContext {
    /// Domain used in Message-IDs, from the public URL.
    pub message_domain: String,
    /// The mailbox the desk sends from (`mail_from`, `EmailAddress::mailbox`): mail from
    /// it coming in is a loop.
    pub own_mailbox: Option<String>,
}

impl MailContext {
    pub fn new(public_url: &str, mail_from: &str) -> Self {
        let host = public_url
            .split("://")
            .nth(1)
            .unwrap_or("")
            .split(['/', ':'])
            .next()
            .unwrap_or("")
            .to_owned();
        let message_domain = if host.is_empty() {
            "resetdesk.invalid".to_owned()
        } else {
            host
        };
        let own_mailbox = mail_from
            .parse::<lettre::message::Mailbox>()
            .ok()
            .and_then(|m| crate::domain::EmailAddress::parse(m.email.as_ref()).ok())
            .map(|e| e.mailbox());
        Self {
            message_domain,
            own_mailbox,
        }
    }

    /// A Message-ID that is stable for this message forever: a retry after a crash sends
    /// the same id, so the receiving side can recognise a duplicate.
    fn message_id(&self, kind: &str, number: &TicketNumber) -> String {
        let nonce = data_encoding::HEXLOWER.encode(&crate::crypto::random_bytes::<8>());
        format!("<{kind}.{number}.{nonce}@{}>", self.message_domain)
    }
}

/// A mail's subject in the customer's language: always `[number] …`, so replies and
/// the customer's own searches find the ticket.
fn subject(t: Lang, key: &'static str, number: &TicketNumber) -> String {
    t.fill(key).with("number", number).to_string()
}

#[derive(Debug, thiserror::Error)]
#[error("an e-mail template failed to render: {0}")]
pub struct RenderError(#[from] askama::Error);

struct DeviceLine {
    model: String,
    serial: String,
}

#[derive(Template)]
#[template(path = "mail/acknowledgment.txt")]
struct AcknowledgmentText<'a> {
    t: Lang,
    name: &'a str,
    number: &'a TicketNumber,
    status_url: &'a str,
    devices: &'a [DeviceLine],
    again: Option<&'static str>,
    /// What happens next, with the time the desk measured answering takes.
    next: &'a crate::i18n::Fill,
}

#[derive(Template)]
#[template(path = "mail/acknowledgment.html")]
struct AcknowledgmentHtml<'a> {
    t: Lang,
    subject: &'a str,
    name: &'a str,
    number: &'a TicketNumber,
    status_url: &'a str,
    devices: &'a [DeviceLine],
    again: Option<&'static str>,
    next: &'a crate::i18n::Fill,
}

/// Why the acknowledgment, with the status link, goes out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Again {
    /// The same export came in from another address: the link goes to the ticket's own
    /// address, never to whoever sent it again.
    Resubmitted,
    /// The customer corrected the address from the browser that sent the request.
    CorrectedByCustomer,
    /// An agent changed the address.
    ChangedBySupport,
}

impl Again {
    /// The paragraph that says why this message came.
    fn key(self) -> &'static str {
        match self {
            Self::Resubmitted => "mail.acknowledgment.again_resubmitted",
            Self::CorrectedByCustomer => "mail.acknowledgment.again_corrected",
            Self::ChangedBySupport => "mail.acknowledgment.again_changed_by_support",
        }
    }

    fn kind(self) -> MailKind {
        match self {
            Self::Resubmitted => MailKind::LinkResent,
            Self::CorrectedByCustomer | Self::ChangedBySupport => MailKind::Acknowledgment,
        }
    }
}

struct ResponseLine {
    model: String,
    serial: String,
    key: String,
}

#[derive(Template)]
#[template(path = "mail/approved.txt")]
struct ApprovedText<'a> {
    t: Lang,
    name: &'a str,
    number: &'a TicketNumber,
    status_url: &'a str,
    expires_at: &'a str,
    attachment_name: &'a str,
    responses: &'a [ResponseLine],
}

#[derive(Template)]
#[template(path = "mail/approved.html")]
struct ApprovedHtml<'a> {
    t: Lang,
    subject: &'a str,
    name: &'a str,
    number: &'a TicketNumber,
    status_url: &'a str,
    expires_at: &'a str,
    attachment_name: &'a str,
    responses: &'a [ResponseLine],
}

#[derive(Template)]
#[template(path = "mail/rejected.txt")]
struct RejectedText<'a> {
    t: Lang,
    name: &'a str,
    number: &'a TicketNumber,
    status_url: &'a str,
    reason: &'a str,
}

#[derive(Template)]
#[template(path = "mail/rejected.html")]
struct RejectedHtml<'a> {
    t: Lang,
    subject: &'a str,
    name: &'a str,
    number: &'a TicketNumber,
    status_url: &'a str,
    reason: &'a str,
}

/// How long answering takes, as the desk measured it (`customer::answer_time`): the
/// median seconds from request to decision last week, or `None` without enough data,
/// when the acknowledgment promises no time.
pub type AnswerSecs = Option<i64>;

/// "We received your request": sent when a ticket is created.
pub fn acknowledgment(
    ctx: &MailContext,
    number: &TicketNumber,
    status_url: &str,
    customer: &Customer,
    devices: &[DeviceChallenge],
    answer: AnswerSecs,
) -> Result<NewMail, RenderError> {
    acknowledgment_mail(ctx, number, status_url, customer, devices, None, answer)
}

/// The acknowledgment again, to `customer.email`, saying why it came again (after an
/// address change, `customer` is given with the new address).
pub fn acknowledgment_again(
    ctx: &MailContext,
    number: &TicketNumber,
    status_url: &str,
    customer: &Customer,
    devices: &[DeviceChallenge],
    why: Again,
    answer: AnswerSecs,
) -> Result<NewMail, RenderError> {
    acknowledgment_mail(
        ctx,
        number,
        status_url,
        customer,
        devices,
        Some(why),
        answer,
    )
}

fn acknowledgment_mail(
    ctx: &MailContext,
    number: &TicketNumber,
    status_url: &str,
    customer: &Customer,
    devices: &[DeviceChallenge],
    again: Option<Again>,
    answer: AnswerSecs,
) -> Result<NewMail, RenderError> {
    let t = customer.language;
    let subject = subject(t, "mail.acknowledgment.subject", number);
    let next = match answer {
        Some(seconds) => t
            .fill("mail.acknowledgment.next")
            .with("duration", crate::customer::answer_time::words(t, seconds)),
        None => t.fill("mail.acknowledgment.next_unmeasured"),
    };
    let lines: Vec<DeviceLine> = devices
        .iter()
        .map(|d| DeviceLine {
            model: d.identity.model.to_string(),
            serial: d.identity.serial.to_string(),
        })
        .collect();
    let name = customer.name.as_str();
    Ok(NewMail {
        in_reply_to: None,
        message_id: ctx.message_id("ack", number),
        kind: again.map_or(MailKind::Acknowledgment, Again::kind),
        recipient: customer.email.clone(),
        body_text: AcknowledgmentText {
            t,
            name,
            number,
            status_url,
            devices: &lines,
            again: again.map(Again::key),
            next: &next,
        }
        .render()?,
        body_html: AcknowledgmentHtml {
            t,
            subject: &subject,
            name,
            number,
            status_url,
            devices: &lines,
            again: again.map(Again::key),
            next: &next,
        }
        .render()?,
        subject,
        attachment: None,
    })
}

/// The reset response: keys in the body, the signed file attached.
pub fn approved(
    ctx: &MailContext,
    number: &TicketNumber,
    status_url: &str,
    customer: &Customer,
    responses: &[DeviceResponse],
    response_xml: String,
) -> Result<NewMail, RenderError> {
    let t = customer.language;
    let subject = subject(t, "mail.approved.subject", number);
    let expires_at = responses
        .iter()
        .map(DeviceResponse::expires_at)
        .min()
        .unwrap_or_else(Timestamp::now)
        .shown_utc();
    let attachment_name = format!("reset-response-{number}.xml");
    let lines: Vec<ResponseLine> = responses
        .iter()
        .map(|r| ResponseLine {
            model: r.model.to_string(),
            serial: r.serial.to_string(),
            key: r.key.to_string(),
        })
        .collect();
    let name = customer.name.as_str();
    Ok(NewMail {
        in_reply_to: None,
        message_id: ctx.message_id("response", number),
        kind: MailKind::Approval,
        recipient: customer.email.clone(),
        body_text: ApprovedText {
            t,
            name,
            number,
            status_url,
            expires_at: &expires_at,
            attachment_name: &attachment_name,
            responses: &lines,
        }
        .render()?,
        body_html: ApprovedHtml {
            t,
            subject: &subject,
            name,
            number,
            status_url,
            expires_at: &expires_at,
            attachment_name: &attachment_name,
            responses: &lines,
        }
        .render()?,
        subject,
        attachment: Some(Attachment {
            file_name: attachment_name,
            media_type: "application/xml".to_owned(),
            bytes: response_xml.into_bytes(),
        }),
    })
}

/// "We could not approve": with the reason and what to do next.
pub fn rejected(
    ctx: &MailContext,
    number: &TicketNumber,
    status_url: &str,
    customer: &Customer,
    reason: &str,
) -> Result<NewMail, RenderError> {
    let t = customer.language;
    let subject = subject(t, "mail.rejected.subject", number);
    let name = customer.name.as_str();
    Ok(NewMail {
        in_reply_to: None,
        message_id: ctx.message_id("rejection", number),
        kind: MailKind::Rejection,
        recipient: customer.email.clone(),
        body_text: RejectedText {
            t,
            name,
            number,
            status_url,
            reason,
        }
        .render()?,
        body_html: RejectedHtml {
            t,
            subject: &subject,
            name,
            number,
            status_url,
            reason,
        }
        .render()?,
        subject,
        attachment: None,
    })
}

#[derive(Template)]
#[template(path = "mail/photo_request.txt")]
struct PhotoRequestText<'a> {
    t: Lang,
    name: &'a str,
    number: &'a TicketNumber,
    photo_url: &'a str,
    note: &'a str,
}

#[derive(Template)]
#[template(path = "mail/photo_request.html")]
struct PhotoRequestHtml<'a> {
    t: Lang,
    subject: &'a str,
    name: &'a str,
    number: &'a TicketNumber,
    status_url: &'a str,
    photo_url: &'a str,
    note: &'a str,
}

/// "New photo, please": with the link to upload it.
pub fn photo_requested(
    ctx: &MailContext,
    number: &TicketNumber,
    status_url: &str,
    photo_url: &str,
    customer: &Customer,
    note: &str,
) -> Result<NewMail, RenderError> {
    let t = customer.language;
    let subject = subject(t, "mail.photo_request.subject", number);
    let name = customer.name.as_str();
    Ok(NewMail {
        in_reply_to: None,
        message_id: ctx.message_id("photo", number),
        kind: MailKind::PhotoRequest,
        recipient: customer.email.clone(),
        body_text: PhotoRequestText {
            t,
            name,
            number,
            photo_url,
            note,
        }
        .render()?,
        body_html: PhotoRequestHtml {
            t,
            subject: &subject,
            name,
            number,
            status_url,
            photo_url,
            note,
        }
        .render()?,
        subject,
        attachment: None,
    })
}

#[derive(Template)]
#[template(path = "mail/access_code.txt")]
struct AccessCodeText<'a> {
    t: Lang,
    name: &'a str,
    number: &'a TicketNumber,
    code: &'a str,
    /// The response mail's subject, to look for in the spam folder.
    response_subject: &'a str,
}

#[derive(Template)]
#[template(path = "mail/access_code.html")]
struct AccessCodeHtml<'a> {
    t: Lang,
    subject: &'a str,
    name: &'a str,
    number: &'a TicketNumber,
    status_url: &'a str,
    code: &'a str,
    response_subject: &'a str,
}

/// The one-time code that shows the response on the status page, for a customer whose
/// response e-mail did not arrive.
pub fn access_code(
    ctx: &MailContext,
    number: &TicketNumber,
    status_url: &str,
    customer: &Customer,
    code: &str,
) -> Result<NewMail, RenderError> {
    let t = customer.language;
    let subject = subject(t, "mail.access_code.subject", number);
    let response_subject = self::subject(t, "mail.approved.subject", number);
    let name = customer.name.as_str();
    Ok(NewMail {
        in_reply_to: None,
        message_id: ctx.message_id("code", number),
        kind: MailKind::AccessCode,
        recipient: customer.email.clone(),
        body_text: AccessCodeText {
            t,
            name,
            number,
            code,
            response_subject: &response_subject,
        }
        .render()?,
        body_html: AccessCodeHtml {
            t,
            subject: &subject,
            name,
            number,
            status_url,
            code,
            response_subject: &response_subject,
        }
        .render()?,
        subject,
        attachment: None,
    })
}

#[derive(Template)]
#[template(path = "mail/address_changed.txt")]
struct AddressChangedText<'a> {
    t: Lang,
    name: &'a str,
    number: &'a TicketNumber,
    new_address: &'a str,
}

#[derive(Template)]
#[template(path = "mail/address_changed.html")]
struct AddressChangedHtml<'a> {
    t: Lang,
    subject: &'a str,
    name: &'a str,
    number: &'a TicketNumber,
    status_url: &'a str,
    new_address: &'a str,
}

/// To the old address, when an agent changed the ticket's address: whoever talked
/// support into redirecting the response, the owner hears of it before it goes out.
/// `new_address` is shown masked; `customer` is the ticket as it was.
pub fn address_changed(
    ctx: &MailContext,
    number: &TicketNumber,
    status_url: &str,
    customer: &Customer,
    new_address: &str,
) -> Result<NewMail, RenderError> {
    let t = customer.language;
    let subject = subject(t, "mail.address_changed.subject", number);
    let name = customer.name.as_str();
    Ok(NewMail {
        in_reply_to: None,
        message_id: ctx.message_id("address", number),
        kind: MailKind::AddressChanged,
        recipient: customer.email.clone(),
        body_text: AddressChangedText {
            t,
            name,
            number,
            new_address,
        }
        .render()?,
        body_html: AddressChangedHtml {
            t,
            subject: &subject,
            name,
            number,
            status_url,
            new_address,
        }
        .render()?,
        subject,
        attachment: None,
    })
}

/// One ticket in the supervisors' digest, as it is shown.
#[derive(Debug, Clone)]
pub struct DigestLine {
    pub number: String,
    /// When its export dies, in UTC.
    pub expires: String,
    pub customer: String,
    pub first_approver: String,
    pub flags: String,
    pub link: String,
}

#[derive(Template)]
#[template(path = "mail/second_approval_digest.txt")]
struct DigestText<'a> {
    total: i64,
    lines: &'a [DigestLine],
    queue_url: &'a str,
}

#[derive(Template)]
#[template(path = "mail/second_approval_digest.html")]
struct DigestHtml<'a> {
    subject: &'a str,
    total: i64,
    lines: &'a [DigestLine],
    queue_url: &'a str,
}

/// The supervisors' daily list of the `total` tickets waiting for a second approval, the
/// first `lines` of them in full; in English, as the console is.
pub fn second_approval_digest(
    ctx: &MailContext,
    to: &EmailAddress,
    day: &str,
    total: i64,
    lines: &[DigestLine],
    queue_url: &str,
) -> Result<NewMail, RenderError> {
    let subject = if total == 1 {
        format!("1 ticket waits for a second approval ({day})")
    } else {
        format!("{total} tickets wait for a second approval ({day})")
    };
    let nonce = data_encoding::HEXLOWER.encode(&crate::crypto::random_bytes::<8>());
    Ok(NewMail {
        in_reply_to: None,
        message_id: format!("<digest.{day}.{nonce}@{}>", ctx.message_domain),
        kind: MailKind::SecondApprovalDigest,
        recipient: to.clone(),
        body_text: DigestText {
            total,
            lines,
            queue_url,
        }
        .render()?,
        body_html: DigestHtml {
            subject: &subject,
            total,
            lines,
            queue_url,
        }
        .render()?,
        subject,
        attachment: None,
    })
}

/// What a supervisor is told when an agent marks an automatic decision suspicious.
pub struct SuspicionNotice<'a> {
    pub number: &'a TicketNumber,
    /// The fast track's name and what its rule says.
    pub track: &'a str,
    pub rule: &'a str,
    pub marked_by: &'a str,
    pub note: &'a str,
    /// The installer whose track the mark suspended, for the installer track.
    pub suspended: Option<&'a str>,
    pub ticket_url: &'a str,
    pub automatic_url: &'a str,
}

#[derive(Template)]
#[template(path = "mail/suspicious_decision.txt")]
struct SuspicionText<'a> {
    n: &'a SuspicionNotice<'a>,
}

#[derive(Template)]
#[template(path = "mail/suspicious_decision.html")]
struct SuspicionHtml<'a> {
    subject: &'a str,
    n: &'a SuspicionNotice<'a>,
}

/// To a supervisor: an automatic decision was marked suspicious; in English, as the
/// console is.
pub fn suspicious_decision(
    ctx: &MailContext,
    to: &EmailAddress,
    notice: &SuspicionNotice<'_>,
) -> Result<NewMail, RenderError> {
    let subject = format!(
        "An automatic decision was marked suspicious: {}",
        notice.number
    );
    let nonce = data_encoding::HEXLOWER.encode(&crate::crypto::random_bytes::<8>());
    Ok(NewMail {
        in_reply_to: None,
        message_id: format!(
            "<suspicious.{}.{nonce}@{}>",
            notice.number, ctx.message_domain
        ),
        kind: MailKind::SuspiciousDecision,
        recipient: to.clone(),
        body_text: SuspicionText { n: notice }.render()?,
        body_html: SuspicionHtml {
            subject: &subject,
            n: notice,
        }
        .render()?,
        subject,
        attachment: None,
    })
}

#[derive(Template)]
#[template(path = "mail/mail_answer.txt")]
struct MailAnswerText<'a> {
    t: Lang,
    name: &'a str,
    problems: &'a [String],
    form_url: &'a str,
}

#[derive(Template)]
#[template(path = "mail/mail_answer.html")]
struct MailAnswerHtml<'a> {
    t: Lang,
    subject: &'a str,
    name: &'a str,
    problems: &'a [String],
    form_url: &'a str,
}

/// The one answer to an e-mail the desk could not make a request of: every problem it
/// found, and the form. Threaded under the customer's message.
pub fn mail_answer(
    ctx: &MailContext,
    t: Lang,
    to: &EmailAddress,
    their_message_id: &str,
    problems: &[String],
    form_url: &str,
) -> Result<NewMail, RenderError> {
    // Nothing of the message is repeated, neither its subject nor the sender's name: a
    // From is easy to forge, and an answer that carried a forger's words to the address
    // they named would make the desk a spammer's relay (backscatter). The greeting uses
    // the address's own local part; In-Reply-To keeps the thread.
    let name = to.as_str().split('@').next().unwrap_or_default();
    let subject = t.text("mail.mail_answer.subject");
    let nonce = data_encoding::HEXLOWER.encode(&crate::crypto::random_bytes::<8>());
    Ok(NewMail {
        in_reply_to: Some(their_message_id.to_owned()),
        message_id: format!("<answer.{nonce}@{}>", ctx.message_domain),
        kind: MailKind::MailAnswer,
        recipient: to.clone(),
        body_text: MailAnswerText {
            t,
            name,
            problems,
            form_url,
        }
        .render()?,
        body_html: MailAnswerHtml {
            t,
            subject: &subject,
            name,
            problems,
            form_url,
        }
        .render()?,
        subject,
        attachment: None,
    })
}

#[derive(Template)]
#[template(path = "mail/erasure_confirmed.txt")]
struct ErasureConfirmedText<'a> {
    t: Lang,
    numbers: &'a str,
}

#[derive(Template)]
#[template(path = "mail/erasure_confirmed.html")]
struct ErasureConfirmedHtml<'a> {
    t: Lang,
    subject: &'a str,
    numbers: &'a str,
}

/// The last mail to a customer erased on request: what went, what stays. It names the
/// tickets, not the customer (their name is among what went), and its text and address
/// are emptied once it is delivered or dead.
pub fn erasure_confirmed(
    ctx: &MailContext,
    t: Lang,
    to: &EmailAddress,
    tickets: &[TicketNumber],
) -> Result<NewMail, RenderError> {
    let numbers = tickets
        .iter()
        .map(TicketNumber::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let subject = t.text("mail.erasure_confirmed.subject");
    let nonce = data_encoding::HEXLOWER.encode(&crate::crypto::random_bytes::<8>());
    Ok(NewMail {
        in_reply_to: None,
        message_id: format!("<erased.{nonce}@{}>", ctx.message_domain),
        kind: MailKind::ErasureConfirmed,
        recipient: to.clone(),
        body_text: ErasureConfirmedText {
            t,
            numbers: &numbers,
        }
        .render()?,
        body_html: ErasureConfirmedHtml {
            t,
            subject: &subject,
            numbers: &numbers,
        }
        .render()?,
        subject,
        attachment: None,
    })
}

#[derive(Template)]
#[template(path = "mail/agent_message.txt")]
struct AgentMessageText<'a> {
    t: Lang,
    name: &'a str,
    number: &'a TicketNumber,
    text: &'a str,
    status_url: &'a str,
}

#[derive(Template)]
#[template(path = "mail/agent_message.html")]
struct AgentMessageHtml<'a> {
    t: Lang,
    subject: &'a str,
    name: &'a str,
    number: &'a TicketNumber,
    text: &'a str,
    status_url: &'a str,
}

/// An agent's own words to the customer, threaded under the customer's latest e-mail.
pub fn agent_message(
    ctx: &MailContext,
    number: &TicketNumber,
    status_url: &str,
    customer: &Customer,
    text: &str,
) -> Result<NewMail, RenderError> {
    let t = customer.language;
    let subject = subject(t, "mail.agent_message.subject", number);
    let name = customer.name.as_str();
    Ok(NewMail {
        in_reply_to: None,
        message_id: ctx.message_id("message", number),
        kind: MailKind::AgentMessage,
        recipient: customer.email.clone(),
        body_text: AgentMessageText {
            t,
            name,
            number,
            text,
            status_url,
        }
        .render()?,
        body_html: AgentMessageHtml {
            t,
            subject: &subject,
            name,
            number,
            text,
            status_url,
        }
        .render()?,
        subject,
        attachment: None,
    })
}
