//! The desk's automatic decisions (issue 20): every answer a fast track gave, filtered
//! by rule and installer, with the supervisors' live switches of each track.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::guard::ConsoleUser;
use super::see_other;
use crate::desk::Desk;
use crate::domain::{EmailAddress, FastTrack};
use crate::review::{self, ReviewError};
use crate::routes::{ErrorAnswer, html};
use crate::store::AutomaticFilter;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(automatic_view).service(switch);
}

/// Decisions listed per page, newest first.
const LISTED: i64 = 200;

#[derive(Deserialize)]
struct Query {
    track: Option<String>,
    installer: Option<String>,
    suspicious: Option<String>,
    switched: Option<String>,
}

struct SwitchView {
    track: &'static str,
    title: &'static str,
    rule: &'static str,
    /// Whether the desk answers under it now.
    on: bool,
    /// Off in the settings: no switch turns it on.
    off_in_settings: bool,
    /// Who last switched it, and when.
    changed: Option<String>,
}

struct Row {
    number: String,
    track: &'static str,
    installer: String,
    recipient: String,
    decided_at: String,
    suspicious: Option<String>,
}

#[derive(Template)]
#[template(path = "console/automatic.html")]
struct AutomaticPage {
    nav: super::Nav,
    csrf: String,
    switches: Vec<SwitchView>,
    tracks: Vec<(&'static str, &'static str)>,
    track: String,
    installer: String,
    only_suspicious: bool,
    rows: Vec<Row>,
    listed: i64,
    error: Option<String>,
    notice: Option<String>,
}

#[get("/console/automatic")]
async fn automatic_view(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    query: web::Query<Query>,
) -> HttpResponse {
    let mut problems = Vec::new();
    let track = match query.track.as_deref().map(str::trim).unwrap_or("") {
        "" => None,
        raw => match FastTrack::parse(raw) {
            Some(track) => Some(track),
            None => {
                problems.push(format!(
                    "{raw:?} is not a fast track: choose reserved_email or installer."
                ));
                None
            }
        },
    };
    let installer = match query.installer.as_deref().map(str::trim).unwrap_or("") {
        "" => None,
        raw => match EmailAddress::parse(raw) {
            Ok(email) => Some(email),
            Err(e) => {
                problems.push(format!(
                    "The installer filter {raw:?} is not an address: {e}."
                ));
                None
            }
        },
    };
    let filter = AutomaticFilter {
        track,
        installer,
        only_suspicious: query.suspicious.as_deref() == Some("yes"),
        limit: LISTED,
    };
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let error = (!problems.is_empty()).then(|| problems.join(" "));
    let notice = query
        .switched
        .as_deref()
        .and_then(FastTrack::parse)
        .map(|t| {
            format!(
                "The fast track “{}” is switched for every replica; the audit log records it.",
                t.title()
            )
        });
    page(&desk, &console, status, &filter, error, notice).await
}

async fn page(
    desk: &Desk,
    console: &ConsoleUser,
    status: StatusCode,
    filter: &AutomaticFilter,
    error: Option<String>,
    notice: Option<String>,
) -> HttpResponse {
    let (decisions, switches) = match (
        desk.store.automatic_decisions(filter).await,
        desk.store.fast_track_switches().await,
    ) {
        (Ok(d), Ok(s)) => (d, s),
        (Err(e), _) | (_, Err(e)) => {
            return crate::routes::failure_page("The automatic decisions are unavailable", &e);
        }
    };
    let settings = &desk.settings.fast_tracks;
    let mut views = Vec::new();
    for track in FastTrack::ALL {
        views.push(SwitchView {
            track: track.as_str(),
            title: track.title(),
            rule: track.describe(),
            // From the switches just read, not read again per track.
            on: review::automatic::is_on(settings, &switches, track),
            off_in_settings: !settings.allows(track),
            changed: switches.iter().find(|s| s.track == track).map(|s| {
                format!(
                    "switched {} by {} ({})",
                    if s.enabled { "on" } else { "off" },
                    s.changed_by,
                    s.changed_at
                )
            }),
        });
    }
    html(
        status,
        &AutomaticPage {
            nav: super::Nav::of(console),
            csrf: console.csrf.clone(),
            switches: views,
            tracks: FastTrack::ALL
                .into_iter()
                .map(|t| (t.as_str(), t.title()))
                .collect(),
            track: filter
                .track
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            installer: filter
                .installer
                .as_ref()
                .map(|i| i.to_string())
                .unwrap_or_default(),
            only_suspicious: filter.only_suspicious,
            rows: decisions
                .iter()
                .map(|d| Row {
                    number: d.ticket.to_string(),
                    track: d.track.title(),
                    installer: d.installer.clone().unwrap_or_default(),
                    recipient: d.recipient.to_string(),
                    decided_at: d.decided_at.to_string(),
                    suspicious: d
                        .suspicious
                        .as_ref()
                        .map(|s| format!("by {} ({}): {}", s.by, s.at, s.note)),
                })
                .collect(),
            listed: LISTED,
            error,
            notice,
        },
    )
}

#[derive(Deserialize)]
struct SwitchForm {
    track: String,
    /// `on` or `off`.
    enabled: String,
}

/// A supervisor switches a fast track on or off for every replica.
#[post("/console/automatic/switch")]
async fn switch(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    form: web::Form<SwitchForm>,
) -> HttpResponse {
    let refused = |status: StatusCode, said: String| {
        let filter = AutomaticFilter {
            limit: LISTED,
            ..Default::default()
        };
        (status, said, filter)
    };
    let outcome = match (FastTrack::parse(form.track.trim()), form.enabled.trim()) {
        (None, _) => Err(refused(
            StatusCode::BAD_REQUEST,
            format!(
                "{:?} is not a fast track: choose reserved_email or installer.",
                form.track
            ),
        )),
        (Some(_), other) if other != "on" && other != "off" => Err(refused(
            StatusCode::BAD_REQUEST,
            format!("Switch a track on or off, not {other:?}."),
        )),
        (Some(track), enabled) => {
            match review::automatic::switch(&desk, &console.user, track, enabled == "on").await {
                Ok(()) => Ok(track),
                Err(ReviewError::Internal(cause)) => {
                    return super::ticket::error_page(ReviewError::Internal(cause));
                }
                Err(error) => {
                    let answer = ErrorAnswer::from(error);
                    Err(refused(answer.status, answer.message.english()))
                }
            }
        }
    };
    match outcome {
        Ok(track) => see_other(&format!("/console/automatic?switched={}", track.as_str())),
        Err((status, said, filter)) => {
            page(&desk, &console, status, &filter, Some(said), None).await
        }
    }
}
