//! The agent API: `Authorization: Bearer <token>` from `resetdesk user token`.

use actix_web::http::StatusCode;
use actix_web::http::header::{ETAG, IF_MATCH};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};

use super::guard::ApiUser;
use crate::desk::Desk;
use crate::domain::{SearchText, TicketNumber, TicketStatus};
use crate::review::{self, AWAITING_SECOND_APPROVAL};
use crate::routes::ErrorAnswer;
use crate::store::{QueueCursor, QueueFilter, QueueOrder, TicketSummary};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(show)
        .service(claim)
        .service(approve)
        .service(reject)
        .service(reasons);
}

#[derive(Serialize)]
struct CannedJson {
    id: i64,
    /// `reject` or `photo`.
    kind: &'static str,
    /// Each language's text, by its code: `en` always, the others once written (a
    /// customer whose language has none yet reads the English).
    texts: std::collections::BTreeMap<&'static str, String>,
}

/// The canned texts to pick from: rejection reasons (`canned_reason` of a rejection)
/// and photo requests, in every language the desk speaks.
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
    Ok(HttpResponse::Ok().json(serde_json::json!({ "reasons": listed })))
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    q: Option<String>,
    after: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize)]
struct SummaryJson {
    ticket: String,
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

/// `GET /api/v1/tickets?status=open&q=...`: the queue, oldest first; with `q` (three
/// characters or more of a ticket number, serial, customer name or e-mail), the tickets
/// that hold it, newest first.
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
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "tickets": tickets, "next_cursor": next_cursor })))
}

/// `GET /api/v1/tickets/{id}`: one ticket with its devices, responses and history, and
/// the version of its evidence as the `ETag` (and `evidence_version`).
#[get("/api/v1/tickets/{id}")]
async fn show(
    desk: web::Data<Desk>,
    _user: ApiUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ErrorAnswer> {
    let number = ticket_number(&path)?;
    let ticket = review::load(&desk, &number).await?;
    let devices: Vec<_> = ticket
        .devices
        .iter()
        .map(|d| {
            serde_json::json!({
                "model": d.identity.model,
                "serial": d.identity.serial,
                "firmware": d.identity.firmware,
                "mac_address": d.identity.mac_address,
                "issued_at": d.issued_at,
                "expires_at": d.expires_at(),
            })
        })
        .collect();
    let responses: Vec<_> = ticket
        .responses
        .iter()
        .map(|r| serde_json::json!({"serial": r.serial, "key_id": r.key_id, "expires_at": r.expires_at}))
        .collect();
    let events: Vec<_> = ticket
        .events
        .iter()
        .map(|e| serde_json::json!({"at": e.at, "actor": e.actor, "kind": e.kind.as_str(), "detail": e.detail}))
        .collect();
    let mails: Vec<_> = ticket
        .mails
        .iter()
        .map(|m| serde_json::json!({"kind": m.kind.as_str(), "status": m.status.as_str(), "attempts": m.attempts, "last_error": m.last_error}))
        .collect();
    // What the machine read on the label photo; null for a ticket from before it did.
    let evidence = review::label_evidence(&desk, &ticket).await?.map(|e| {
        serde_json::json!({
            "state": e.state.as_str(),
            "label": e.findings.iter().map(|(serial, finding)| serde_json::json!({
                "serial": serial, "finding": finding.as_str(),
            })).collect::<Vec<_>>(),
            "codes": e.codes.iter().map(|code| code.text.as_str()).collect::<Vec<_>>(),
            // The serials the label names that the export does not (the first five).
            "other_serials": e.other_serials,
        })
    });
    let c = &ticket.customer;
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, evidence_etag(ticket.evidence_version)))
        .json(serde_json::json!({
        "ticket": ticket.summary.number,
        "status": ticket.summary.status,
        "evidence_version": ticket.evidence_version,
        "created_at": ticket.summary.created_at,
        "claimed_by": ticket.summary.claimed_by,
        "decided_by": ticket.decided_by,
        "decision_reason": ticket.decision_reason,
        "superseded_by": ticket.superseded_by,
        "flags": ticket.summary.flags,
        "evidence": evidence,
        "approvals": ticket.approvals.iter().map(|a| serde_json::json!({
            "by": a.email, "as_role": a.as_role.as_str(), "note": a.note, "at": a.at,
        })).collect::<Vec<_>>(),
        "export_form": ticket.export_form.as_str(),
        "customer": {
            "name": c.name, "email": c.email, "phone": c.phone, "company": c.company,
            "country": c.country, "role": c.role.as_str(), "purchase_channel": c.purchase_channel,
        },
        "devices": devices,
        "responses": responses,
        "history": events,
        "mails": mails,
    })))
}

#[post("/api/v1/tickets/{id}/claim")]
async fn claim(
    desk: web::Data<Desk>,
    user: ApiUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ErrorAnswer> {
    let number = ticket_number(&path)?;
    user.may_decide()?;
    review::claim(&desk, &user.user, &number, false).await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({"ticket": number, "claimed_by": user.user.email})))
}

/// `POST /api/v1/tickets/{id}/approve` with an optional `{"note": "..."}`: signs and
/// mails the responses (200), or, for a flagged ticket's first approval, records it and
/// waits for a second person (202). A second approval by anyone of an approved ticket is
/// a 409 that signs nothing. With `If-Match` (the ticket's `ETag`), an approval of
/// evidence that changed since is a 412 that signs nothing.
#[post("/api/v1/tickets/{id}/approve")]
async fn approve(
    desk: web::Data<Desk>,
    user: ApiUser,
    path: web::Path<String>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ErrorAnswer> {
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
        review::Approved::Signed => {
            HttpResponse::Ok().json(serde_json::json!({"ticket": number, "status": TicketStatus::Approved}))
        }
        review::Approved::AwaitingSecond => HttpResponse::Accepted().json(serde_json::json!({
            "ticket": number,
            "status": TicketStatus::Open,
            "approvals": 1,
            "needs": "a second approval by another person; at least one of the two must be a supervisor",
        })),
    })
}

/// A decision's JSON body, or a 400 that says what to send instead.
fn json_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what_to_send: &str,
) -> Result<T, ErrorAnswer> {
    serde_json::from_slice(body)
        .map_err(|e| ErrorAnswer::new(StatusCode::BAD_REQUEST, format!("{what_to_send}: {e}")))
}

#[derive(Deserialize)]
struct NoteBody {
    #[serde(default)]
    note: String,
}

/// `reason` in the agent's words, or `canned_reason`: the id of a rejection reason from
/// `GET /api/v1/reasons`, which the customer reads in their language.
#[derive(Deserialize)]
struct RejectBody {
    reason: Option<String>,
    canned_reason: Option<i64>,
}

/// The body is parsed inside the handler, after authentication: actix runs extractors
/// concurrently, and a JSON extractor could otherwise answer 400 to a caller who should
/// have been told 401.
#[post("/api/v1/tickets/{id}/reject")]
async fn reject(
    desk: web::Data<Desk>,
    user: ApiUser,
    path: web::Path<String>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ErrorAnswer> {
    let body: RejectBody = json_body(
        &body,
        "send a JSON body such as {\"reason\": \"...\"} or {\"canned_reason\": 3}",
    )?;
    let number = ticket_number(&path)?;
    user.may_decide()?;
    let seen = if_match(&request)?;
    let reason = review::CustomerText::typed_or_canned(body.reason.as_deref(), body.canned_reason);
    review::reject(&desk, &user.user, &number, reason, seen).await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({"ticket": number, "status": TicketStatus::Rejected})))
}
