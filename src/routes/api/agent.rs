//! The agent API: `Authorization: Bearer <token>` from `resetdesk user token`.

use actix_web::http::StatusCode;
use actix_web::http::header::{ETAG, IF_MATCH};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::guard::ApiUser;
use crate::desk::Desk;
use crate::domain::{SearchText, TicketNumber, TicketStatus};
use crate::review::{self, AWAITING_SECOND_APPROVAL};
use crate::routes::ApiError;
use crate::routes::ErrorAnswer;
use crate::store::{QueueCursor, QueueFilter, QueueOrder, TicketSummary};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(show)
        .service(claim)
        .service(approve)
        .service(reject)
        .service(message)
        .service(reasons);
}

/// A canned text: a rejection reason or a photo request.
#[derive(Serialize, ToSchema)]
pub(super) struct CannedJson {
    id: i64,
    /// `reject` or `photo`.
    #[schema(example = "reject")]
    kind: &'static str,
    /// Each language's text, by its code: `en` always, the others once written (a
    /// customer whose language has none yet reads the English).
    texts: std::collections::BTreeMap<&'static str, String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct ReasonsJson {
    reasons: Vec<CannedJson>,
}

/// The canned texts to pick from: rejection reasons (`canned_reason` of a rejection)
/// and photo requests, in every language the desk speaks.
#[utoipa::path(get, path = "/api/v1/reasons", tag = "agents",
    security(("agent_token" = [])),
    responses(
        (status = 200, description = "every canned text", body = ReasonsJson),
        (status = 401, description = "no agent's token, or not a live one", body = ApiError),
        (status = 403, description = "the token's account is disabled", body = ApiError),
        (status = 503, description = "the database is unreachable", body = ApiError),
    ))]
#[get("/api/v1/reasons")]
async fn reasons(desk: web::Data<Desk>, _user: ApiUser) -> Result<HttpResponse, ErrorAnswer> {
    let canned = desk
        .store
        .canned_reasons()
        .await
        .map_err(|e| ErrorAnswer::internal(&e))?;
    let listed: Vec<CannedJson> = canned
        .iter()
        .map(|text| CannedJson {
            id: text.id,
            kind: text.kind.as_str(),
            texts: std::iter::once(("en", text.text.clone()))
                .chain(
                    text.translations
                        .iter()
                        .map(|(lang, words)| (lang.code(), words.clone())),
                )
                .collect(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(ReasonsJson { reasons: listed }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// `open`, `awaiting_photo`, `approved`, `rejected`, `superseded`,
    /// `second_approval` or `all` (the default).
    status: Option<String>,
    /// Three characters or more of a ticket number, serial, customer name or e-mail.
    q: Option<String>,
    /// The `next_cursor` of the previous page.
    after: Option<String>,
    /// At most this many (1 to 500; 100 unless said).
    limit: Option<i64>,
}

/// A queue row.
#[derive(Serialize, ToSchema)]
pub(super) struct SummaryJson {
    ticket: String,
    #[schema(value_type = String, example = "open")]
    status: TicketStatus,
    created_at: String,
    devices: i64,
    model: String,
    serial: String,
    customer_email: String,
    claimed_by: Option<String>,
    flags: Vec<String>,
}

impl From<TicketSummary> for SummaryJson {
    fn from(s: TicketSummary) -> Self {
        Self {
            ticket: s.number.to_string(),
            status: s.status,
            created_at: s.created_at.to_string(),
            devices: s.device_count,
            model: s.first_model,
            serial: s.first_serial,
            customer_email: s.customer_email,
            claimed_by: s.claimed_by,
            flags: s.flags,
        }
    }
}

fn ticket_number(raw: &str) -> Result<TicketNumber, ErrorAnswer> {
    TicketNumber::parse(raw).map_err(|e| {
        ErrorAnswer::new(
            StatusCode::NOT_FOUND,
            format!("{raw:?} is not a ticket number: it {e}"),
        )
    })
}

/// The ticket's `ETag`: the version of its evidence (label photo, export), which a
/// decision sends back in `If-Match` to say what it was made on.
fn evidence_etag(version: i64) -> String {
    format!("\"evidence-{version}\"")
}

/// The evidence version an `If-Match` header names; `None` without the header (or with
/// `*`), so API clients that send none decide on whatever the ticket holds, as before.
fn if_match(request: &HttpRequest) -> Result<Option<i64>, ErrorAnswer> {
    let Some(header) = request.headers().get(IF_MATCH) else {
        return Ok(None);
    };
    let raw = header.to_str().unwrap_or("").trim();
    if raw == "*" {
        return Ok(None);
    }
    raw.strip_prefix("\"evidence-")
        .and_then(|rest| rest.strip_suffix('"'))
        .and_then(|version| version.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ErrorAnswer::new(
                StatusCode::PRECONDITION_FAILED,
                format!(
                    "If-Match {raw:?} is not the ETag of this ticket: send the ETag of GET /api/v1/tickets/{{id}}, such as {}",
                    evidence_etag(1)
                ),
            )
        })
}

#[derive(Serialize, ToSchema)]
pub(super) struct TicketListJson {
    tickets: Vec<SummaryJson>,
    /// Fetches the next page (`after`); null on the last.
    next_cursor: Option<String>,
}

/// `GET /api/v1/tickets?status=open&q=...`: the queue, oldest first; with `q` (three
/// characters or more of a ticket number, serial, customer name or e-mail), the tickets
/// that hold it, newest first.
#[utoipa::path(get, path = "/api/v1/tickets", tag = "agents", params(ListQuery),
    security(("agent_token" = [])),
    responses(
        (status = 200, description = "a page of the queue", body = TicketListJson),
        (status = 400, description = "an unknown status, cursor or a search too short or long", body = ApiError),
        (status = 401, description = "no agent's token, or not a live one", body = ApiError),
        (status = 403, description = "the token's account is disabled", body = ApiError),
        (status = 503, description = "the database is unreachable", body = ApiError),
    ))]
#[get("/api/v1/tickets")]
async fn list(
    desk: web::Data<Desk>,
    _user: ApiUser,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ErrorAnswer> {
    let awaiting_second_approval = query.status.as_deref() == Some(AWAITING_SECOND_APPROVAL);
    let status = match query.status.as_deref() {
        None | Some("") | Some("all") => None,
        Some(AWAITING_SECOND_APPROVAL) => None,
        Some(raw) => Some(TicketStatus::parse(raw).ok_or_else(|| {
            ErrorAnswer::new(
                StatusCode::BAD_REQUEST,
                format!("unknown status {raw:?}: use open, awaiting_photo, approved, rejected, superseded, second_approval or all"),
            )
        })?),
    };
    let after = match query.after.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(QueueCursor::parse(raw).ok_or_else(|| {
            ErrorAnswer::new(
                StatusCode::BAD_REQUEST,
                "after must be a next_cursor value from a previous page",
            )
        })?),
    };
    let search = SearchText::parse_optional(query.q.as_deref())
        .map_err(|e| ErrorAnswer::new(StatusCode::BAD_REQUEST, format!("q: {e}")))?;
    let filter = QueueFilter {
        status,
        search,
        after,
        limit: query.limit.unwrap_or(100).clamp(1, 500),
        // Oldest first, as the API has always listed them.
        order: QueueOrder::Age,
        awaiting_second_approval,
    };
    let tickets = desk
        .store
        .tickets(&filter)
        .await
        .map_err(|e| ErrorAnswer::internal(&e))?;
    // A full page may have more after it; the cursor of its last row fetches the next.
    let next_cursor = (tickets.len() as i64 == filter.limit)
        .then(|| {
            tickets
                .last()
                .map(|t| QueueCursor::after(t, filter.order_applied()).to_param())
        })
        .flatten();
    let tickets: Vec<SummaryJson> = tickets.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(TicketListJson {
        tickets,
        next_cursor,
    }))
}

/// One device of the export.
#[derive(Serialize, ToSchema)]
pub(super) struct DeviceJson {
    model: String,
    serial: String,
    firmware: String,
    mac_address: Option<String>,
    issued_at: String,
    expires_at: String,
}

/// A signed response (its signature is never shown).
#[derive(Serialize, ToSchema)]
pub(super) struct ResponseJson {
    serial: String,
    key_id: String,
    expires_at: String,
}

/// One step of the ticket's history.
#[derive(Serialize, ToSchema)]
pub(super) struct EventJson {
    at: String,
    actor: String,
    kind: String,
    detail: String,
}

/// One message of the conversation with the customer.
#[derive(Serialize, ToSchema)]
pub(super) struct MessageJson {
    /// The address it came from (`in`), or the agent who wrote it (`out`).
    from: String,
    at: String,
    #[schema(example = "in")]
    direction: &'static str,
    /// Plain text (an HTML e-mail is converted).
    text: String,
    /// `customer`, `agent`, or `stranger`: a reply naming the ticket from another
    /// address, kept and acting on nothing.
    author: &'static str,
}

#[derive(Serialize, ToSchema)]
pub(super) struct MailJson {
    kind: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct FindingJson {
    serial: String,
    /// `matches`, `other_serial`, `not_on_label` or `unreadable`.
    finding: String,
}

/// What the machine read on the label photo.
#[derive(Serialize, ToSchema)]
pub(super) struct EvidenceJson {
    state: String,
    label: Vec<FindingJson>,
    codes: Vec<String>,
    /// The serials the label names that the export does not (the first five).
    other_serials: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct ApprovalJson {
    by: String,
    as_role: String,
    note: String,
    at: String,
}

#[derive(Serialize, ToSchema)]
pub(super) struct CustomerJson {
    name: String,
    email: String,
    phone: Option<String>,
    company: Option<String>,
    country: String,
    role: String,
    purchase_channel: Option<String>,
}

/// One ticket with its devices, responses and history.
#[derive(Serialize, ToSchema)]
pub(super) struct TicketJson {
    ticket: String,
    #[schema(value_type = String, example = "open")]
    status: TicketStatus,
    evidence_version: i64,
    created_at: String,
    claimed_by: Option<String>,
    decided_by: Option<String>,
    decision_reason: Option<String>,
    superseded_by: Option<String>,
    flags: Vec<String>,
    /// Null for a ticket from before the desk read label photos.
    evidence: Option<EvidenceJson>,
    approvals: Vec<ApprovalJson>,
    export_form: String,
    customer: CustomerJson,
    devices: Vec<DeviceJson>,
    responses: Vec<ResponseJson>,
    history: Vec<EventJson>,
    mails: Vec<MailJson>,
    /// The conversation with the customer, oldest first: e-mails in and out, and the
    /// status page's messages.
    messages: Vec<MessageJson>,
}

/// `GET /api/v1/tickets/{id}`: one ticket with its devices, responses and history, and
/// the version of its evidence as the `ETag` (and `evidence_version`).
#[utoipa::path(get, path = "/api/v1/tickets/{id}", tag = "agents",
    params(("id" = String, Path, description = "the ticket number, such as RQ-7K2M-9QXD")),
    security(("agent_token" = [])),
    responses(
        (status = 200, description = "the ticket; its evidence version is the ETag", body = TicketJson,
            headers(("ETag" = String, description = "the evidence version, for If-Match"))),
        (status = 401, description = "no agent's token, or not a live one", body = ApiError),
        (status = 403, description = "the token's account is disabled", body = ApiError),
        (status = 404, description = "no such ticket", body = ApiError),
        (status = 503, description = "the database is unreachable", body = ApiError),
    ))]
#[get("/api/v1/tickets/{id}")]
async fn show(
    desk: web::Data<Desk>,
    _user: ApiUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ErrorAnswer> {
    let number = ticket_number(&path)?;
    let ticket = review::load(&desk, &number).await?;
    let evidence = review::label_evidence(&desk, &ticket)
        .await?
        .map(|e| EvidenceJson {
            state: e.state.as_str().to_owned(),
            label: e
                .findings
                .iter()
                .map(|(serial, finding)| FindingJson {
                    serial: serial.clone(),
                    finding: finding.as_str().to_owned(),
                })
                .collect(),
            codes: e.codes.iter().map(|code| code.text.clone()).collect(),
            other_serials: e.other_serials,
        });
    let c = &ticket.customer;
    let body = TicketJson {
        ticket: ticket.summary.number.to_string(),
        status: ticket.summary.status,
        evidence_version: ticket.evidence_version,
        created_at: ticket.summary.created_at.to_string(),
        claimed_by: ticket.summary.claimed_by.clone(),
        decided_by: ticket.decided_by.clone(),
        decision_reason: ticket.decision_reason.clone(),
        superseded_by: ticket.superseded_by.as_ref().map(ToString::to_string),
        flags: ticket.summary.flags.clone(),
        evidence,
        approvals: ticket
            .approvals
            .iter()
            .map(|a| ApprovalJson {
                by: a.email.clone(),
                as_role: a.as_role.as_str().to_owned(),
                note: a.note.clone(),
                at: a.at.to_string(),
            })
            .collect(),
        export_form: ticket.export_form.as_str().to_owned(),
        customer: CustomerJson {
            name: c.name.as_str().to_owned(),
            email: c.email.to_string(),
            phone: c.phone.as_ref().map(|p| p.as_str().to_owned()),
            company: c.company.as_ref().map(|p| p.as_str().to_owned()),
            country: c.country.as_str().to_owned(),
            role: c.role.as_str().to_owned(),
            purchase_channel: c.purchase_channel.as_ref().map(|p| p.as_str().to_owned()),
        },
        devices: ticket
            .devices
            .iter()
            .map(|d| DeviceJson {
                model: d.identity.model.to_string(),
                serial: d.identity.serial.to_string(),
                firmware: d.identity.firmware.to_string(),
                mac_address: d.identity.mac_address.map(|m| m.to_string()),
                issued_at: d.issued_at.to_string(),
                expires_at: d.expires_at().to_string(),
            })
            .collect(),
        responses: ticket
            .responses
            .iter()
            .map(|r| ResponseJson {
                serial: r.serial.to_string(),
                key_id: r.key_id.to_string(),
                expires_at: r.expires_at.to_string(),
            })
            .collect(),
        history: ticket
            .events
            .iter()
            .map(|e| EventJson {
                at: e.at.to_string(),
                actor: e.actor.clone(),
                kind: e.kind.as_str().to_owned(),
                detail: e.detail.clone(),
            })
            .collect(),
        messages: ticket
            .messages
            .iter()
            .map(|m| MessageJson {
                from: m.sender.clone(),
                at: m.at.to_string(),
                direction: m.author.direction(),
                text: m.body.clone(),
                author: m.author.as_str(),
            })
            .collect(),
        mails: ticket
            .mails
            .iter()
            .map(|m| MailJson {
                kind: m.kind.as_str().to_owned(),
                status: m.status.as_str().to_owned(),
                attempts: m.attempts,
                last_error: m.last_error.clone(),
            })
            .collect(),
    };
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, evidence_etag(ticket.evidence_version)))
        .json(body))
}

#[derive(Serialize, ToSchema)]
pub(super) struct ClaimedJson {
    ticket: String,
    claimed_by: String,
}

/// `POST /api/v1/tickets/{id}/claim`: tells the others this agent works on the ticket.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/claim", tag = "agents",
    params(("id" = String, Path, description = "the ticket number")),
    security(("agent_token" = [])),
    responses(
        (status = 200, description = "claimed", body = ClaimedJson),
        (status = 401, description = "no agent's token, or not a live one", body = ApiError),
        (status = 403, description = "a read-only token, a disabled account, or a rule of four eyes", body = ApiError),
        (status = 404, description = "no such ticket", body = ApiError),
        (status = 409, description = "someone else holds the claim, or the ticket is decided", body = ApiError),
        (status = 503, description = "the database is unreachable", body = ApiError),
    ))]
#[post("/api/v1/tickets/{id}/claim")]
async fn claim(
    desk: web::Data<Desk>,
    user: ApiUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ErrorAnswer> {
    let number = ticket_number(&path)?;
    user.may_decide()?;
    review::claim(&desk, &user.user, &number, false).await?;
    Ok(HttpResponse::Ok().json(ClaimedJson {
        ticket: number.to_string(),
        claimed_by: user.user.email.to_string(),
    }))
}

/// `POST /api/v1/tickets/{id}/approve` with an optional `{"note": "..."}`: signs and
/// mails the responses (200), or, for a flagged ticket's first approval, records it and
/// waits for a second person (202). A second approval by anyone of an approved ticket is
/// a 409 that signs nothing. With `If-Match` (the ticket's `ETag`), an approval of
/// evidence that changed since is a 412 that signs nothing.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/approve", tag = "agents",
    params(
        ("id" = String, Path, description = "the ticket number"),
        ("If-Match" = Option<String>, Header, description = "the ETag the decision was made on"),
    ),
    request_body(content = Option<NoteBody>, description = "no body, or a note for the history"),
    security(("agent_token" = [])),
    responses(
        (status = 200, description = "signed, and the responses are mailed", body = DecidedJson),
        (status = 202, description = "the first of the two approvals a flagged ticket needs", body = AwaitingJson),
        (status = 400, description = "a body that is not a note", body = ApiError),
        (status = 401, description = "no agent's token, or not a live one", body = ApiError),
        (status = 403, description = "a read-only token, a disabled account, or a rule of four eyes", body = ApiError),
        (status = 404, description = "no such ticket", body = ApiError),
        (status = 409, description = "decided already, claimed by someone else, or the export no longer answerable", body = ApiError),
        (status = 412, description = "the evidence changed since the If-Match version", body = ApiError),
        (status = 413, description = "a body over 64 KB", body = ApiError),
        (status = 422, description = "a note that is not plain text, or the export expired", body = ApiError),
        (status = 503, description = "the database is unreachable", body = ApiError),
    ))]
#[post("/api/v1/tickets/{id}/approve")]
async fn approve(
    desk: web::Data<Desk>,
    user: ApiUser,
    path: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ErrorAnswer> {
    let body = read_decision(payload).await?;
    user.may_decide()?;
    let seen = if_match(&request)?;
    let note = if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        json_body::<Option<NoteBody>>(&body, "send no body or {\"note\": \"...\"}")?
            .map(|b| b.note)
            .unwrap_or_default()
    };
    let number = ticket_number(&path)?;
    Ok(match review::approve(&desk, &user.user, &number, &note, seen).await? {
        review::Approved::Signed => HttpResponse::Ok().json(DecidedJson {
            ticket: number.to_string(),
            status: TicketStatus::Approved,
        }),
        review::Approved::AwaitingSecond => HttpResponse::Accepted().json(AwaitingJson {
            ticket: number.to_string(),
            status: TicketStatus::Open,
            approvals: 1,
            needs: "a second approval by another person; at least one of the two must be a supervisor",
        }),
    })
}

/// A decision's body: a note or a reason is at most a few kilobytes.
const MAX_DECISION_BODY: usize = 64 * 1024;

/// Read after the token is checked (a caller without one hears 401, not 413).
async fn read_decision(payload: web::Payload) -> Result<Vec<u8>, ErrorAnswer> {
    super::read_body(
        payload,
        MAX_DECISION_BODY,
        "a decision's body is at most 64 KB: a note or a reason",
    )
    .await
}

/// A decision's JSON body, or a 400 that says what to send instead.
fn json_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what_to_send: &str,
) -> Result<T, ErrorAnswer> {
    serde_json::from_slice(body)
        .map_err(|e| ErrorAnswer::new(StatusCode::BAD_REQUEST, format!("{what_to_send}: {e}")))
}

#[derive(Deserialize, ToSchema)]
pub(super) struct NoteBody {
    #[serde(default)]
    note: String,
}

/// What a decision did.
#[derive(Serialize, ToSchema)]
pub(super) struct DecidedJson {
    ticket: String,
    #[schema(value_type = String, example = "approved")]
    status: TicketStatus,
}

/// A flagged ticket's first approval.
#[derive(Serialize, ToSchema)]
pub(super) struct AwaitingJson {
    ticket: String,
    #[schema(value_type = String, example = "open")]
    status: TicketStatus,
    approvals: i64,
    needs: &'static str,
}

/// `reason` in the agent's words, or `canned_reason`: the id of a rejection reason from
/// `GET /api/v1/reasons`, which the customer reads in their language.
#[derive(Deserialize, ToSchema)]
pub(super) struct RejectBody {
    reason: Option<String>,
    canned_reason: Option<i64>,
}

/// The body is parsed inside the handler, after authentication: actix runs extractors
/// concurrently, and a JSON extractor could otherwise answer 400 to a caller who should
/// have been told 401.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/reject", tag = "agents",
    params(
        ("id" = String, Path, description = "the ticket number"),
        ("If-Match" = Option<String>, Header, description = "the ETag the decision was made on"),
    ),
    request_body(content = RejectBody, description = "the reason the customer reads"),
    security(("agent_token" = [])),
    responses(
        (status = 200, description = "rejected; the customer is mailed the reason", body = DecidedJson),
        (status = 400, description = "a body that is not a reason", body = ApiError),
        (status = 401, description = "no agent's token, or not a live one", body = ApiError),
        (status = 403, description = "a read-only token, a disabled account, or a rule of four eyes", body = ApiError),
        (status = 404, description = "no such ticket", body = ApiError),
        (status = 409, description = "decided already, or claimed by someone else", body = ApiError),
        (status = 412, description = "the evidence changed since the If-Match version", body = ApiError),
        (status = 413, description = "a body over 64 KB", body = ApiError),
        (status = 422, description = "no reason, a removed canned reason, or one too long", body = ApiError),
        (status = 503, description = "the database is unreachable", body = ApiError),
    ))]
#[post("/api/v1/tickets/{id}/reject")]
async fn reject(
    desk: web::Data<Desk>,
    user: ApiUser,
    path: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ErrorAnswer> {
    let body = read_decision(payload).await?;
    let body: RejectBody = json_body(
        &body,
        "send a JSON body such as {\"reason\": \"...\"} or {\"canned_reason\": 3}",
    )?;
    let number = ticket_number(&path)?;
    user.may_decide()?;
    let seen = if_match(&request)?;
    let reason = review::CustomerText::typed_or_canned(body.reason.as_deref(), body.canned_reason);
    review::reject(&desk, &user.user, &number, reason, seen).await?;
    Ok(HttpResponse::Ok().json(DecidedJson {
        ticket: number.to_string(),
        status: TicketStatus::Rejected,
    }))
}

/// An agent's answer to the customer.
#[derive(Deserialize, ToSchema)]
pub(super) struct MessageBody {
    /// The words the customer reads, as written (plain text, at most 4,000 characters).
    text: String,
}

/// The message as it joined the conversation.
#[derive(Serialize, ToSchema)]
pub(super) struct MessageSentJson {
    ticket: String,
    /// Always `out`: the desk's side of the conversation.
    direction: &'static str,
    text: String,
}

/// E-mails the customer an agent's words, threaded under their latest e-mail, and adds
/// them to the ticket's conversation (`messages` of `GET /api/v1/tickets/{id}`), in any
/// status.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/messages", tag = "agents",
    params(("id" = String, Path, description = "the ticket number")),
    request_body(content = MessageBody, description = "the words the customer reads"),
    security(("agent_token" = [])),
    responses(
        (status = 200, description = "queued for the customer and added to the conversation", body = MessageSentJson),
        (status = 400, description = "a body that is not a message", body = ApiError),
        (status = 401, description = "no agent's token, or not a live one", body = ApiError),
        (status = 403, description = "a read-only token or a disabled account", body = ApiError),
        (status = 404, description = "no such ticket", body = ApiError),
        (status = 413, description = "a body over 64 KB", body = ApiError),
        (status = 422, description = "an empty message, or one too long", body = ApiError),
        (status = 503, description = "the database is unreachable", body = ApiError),
    ))]
#[post("/api/v1/tickets/{id}/messages")]
async fn message(
    desk: web::Data<Desk>,
    user: ApiUser,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ErrorAnswer> {
    let body = read_decision(payload).await?;
    let body: MessageBody = json_body(&body, "send a JSON body such as {\"text\": \"...\"}")?;
    let number = ticket_number(&path)?;
    user.may_decide()?;
    let text = review::message_customer(&desk, &user.user, &number, &body.text).await?;
    Ok(HttpResponse::Ok().json(MessageSentJson {
        ticket: number.to_string(),
        direction: crate::store::MessageAuthor::Agent.direction(),
        text,
    }))
}
