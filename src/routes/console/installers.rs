//! The admins' page of registered installers (issue 20): who they are, their devices
//! (the ones they registered themselves, newest first, with when each starts to count),
//! a new installer or token, and suspending or resuming an installer's fast track.
//! Every change is audited by the store, as the command line's are.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::guard::ConsoleUser;
use super::see_other;
use crate::desk::Desk;
use crate::domain::{EmailAddress, Role};
use crate::installers::{self, InstallerError};
use crate::routes::{html, message_page};
use crate::store::{InstallerId, StoreError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(installers_view)
        .service(add_installer)
        .service(make_token)
        .service(suspend)
        .service(resume);
}

/// Self-registered devices listed.
const LISTED: i64 = 200;

fn admins_only(console: &ConsoleUser) -> Option<HttpResponse> {
    (!console.user.roles.contains(Role::Admin)).then(|| {
        message_page(
            StatusCode::FORBIDDEN,
            "Admins only",
            "Managing registered installers needs the admin role.",
        )
    })
}

struct InstallerView {
    id: i64,
    email: String,
    company: String,
    added: String,
    imported: i64,
    registered: i64,
    /// When and why their track was suspended.
    suspended: Option<String>,
}

struct RegistrationView {
    serial: String,
    installer: String,
    registered_at: String,
    /// When it starts to count, or that it does.
    counts: String,
}

#[derive(Template)]
#[template(path = "console/admin_installers.html")]
struct InstallersPage {
    nav: super::Nav,
    csrf: String,
    installers: Vec<InstallerView>,
    registrations: Vec<RegistrationView>,
    hold_hours: u32,
    /// A token just made: shown once.
    new_token: Option<(String, String)>,
    error: Option<String>,
    notice: Option<String>,
}

async fn page(
    desk: &Desk,
    console: &ConsoleUser,
    status: StatusCode,
    new_token: Option<(String, String)>,
    error: Option<String>,
    notice: Option<String>,
) -> HttpResponse {
    let store = desk.store.as_ref();
    let (listed, counts, registrations) = match (
        store.installers().await,
        store.installer_device_counts().await,
        store.self_registrations(LISTED).await,
    ) {
        (Ok(i), Ok(c), Ok(r)) => (i, c, r),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return crate::routes::failure_page("The installers are unavailable", &e);
        }
    };
    let hold_hours = desk.settings.fast_tracks.installer_registration_hold_hours;
    let now = desk.clock.now();
    html(
        status,
        &InstallersPage {
            nav: super::Nav::of(console),
            csrf: console.csrf.clone(),
            installers: listed
                .into_iter()
                .map(|i| {
                    let (imported, registered) = counts
                        .iter()
                        .find(|(id, _, _)| *id == i.id)
                        .map_or((0, 0), |(_, a, b)| (*a, *b));
                    InstallerView {
                        id: i.id.0,
                        email: i.email.to_string(),
                        company: i.company,
                        added: i.created_at.shown_utc(),
                        imported,
                        registered,
                        suspended: i
                            .suspended
                            .map(|(at, why)| format!("{} UTC: {why}", at.shown_utc())),
                    }
                })
                .collect(),
            registrations: registrations
                .into_iter()
                .map(|r| {
                    let from = r.registered_at.plus_seconds(i64::from(hold_hours) * 3600);
                    RegistrationView {
                        serial: r.serial,
                        installer: r.installer_email,
                        registered_at: r.registered_at.shown_utc(),
                        counts: if from <= now {
                            "counts".to_owned()
                        } else {
                            format!("from {} UTC", from.shown_utc())
                        },
                    }
                })
                .collect(),
            hold_hours,
            new_token,
            error,
            notice,
        },
    )
}

/// The page again after a refused change, saying why.
async fn refused(desk: &Desk, console: &ConsoleUser, error: InstallerError) -> HttpResponse {
    let (status, said) = match error {
        InstallerError::Invalid(problems) => {
            (StatusCode::UNPROCESSABLE_ENTITY, problems.join("; "))
        }
        InstallerError::NotFound(_) => (StatusCode::NOT_FOUND, error.to_string()),
        InstallerError::Store(StoreError::Conflict(conflict)) => {
            (StatusCode::CONFLICT, conflict.to_string())
        }
        InstallerError::Store(StoreError::NotFound) => (
            StatusCode::NOT_FOUND,
            "that installer is not registered".to_owned(),
        ),
        InstallerError::Store(other) => {
            return crate::routes::failure_page("The change was not made", &other);
        }
    };
    page(desk, console, status, None, Some(said), None).await
}

#[get("/console/admin/installers")]
async fn installers_view(desk: web::Data<Desk>, console: ConsoleUser) -> HttpResponse {
    if let Some(refusal) = admins_only(&console) {
        return refusal;
    }
    page(&desk, &console, StatusCode::OK, None, None, None).await
}

#[derive(Deserialize)]
struct AddForm {
    email: String,
    company: String,
}

#[post("/console/admin/installers")]
async fn add_installer(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    form: web::Form<AddForm>,
) -> HttpResponse {
    if let Some(refusal) = admins_only(&console) {
        return refusal;
    }
    let email = match EmailAddress::parse(form.email.trim()) {
        Ok(email) => email,
        Err(e) => {
            let said = format!("{:?} is not an e-mail address: {e}", form.email.trim());
            return refused(&desk, &console, InstallerError::Invalid(vec![said])).await;
        }
    };
    let actor = console.user.email.as_str();
    match installers::add(
        desk.store.as_ref(),
        &email,
        &form.company,
        actor,
        desk.clock.now(),
    )
    .await
    {
        Ok(_) => see_other("/console/admin/installers"),
        Err(error) => refused(&desk, &console, error).await,
    }
}

/// The installer a path names.
async fn named(desk: &Desk, id: i64) -> Result<crate::store::Installer, InstallerError> {
    Ok(desk.store.installer(InstallerId(id)).await?)
}

#[post("/console/admin/installers/{id}/token")]
async fn make_token(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<i64>,
) -> HttpResponse {
    if let Some(refusal) = admins_only(&console) {
        return refusal;
    }
    let actor = console.user.email.as_str();
    let made = match named(&desk, path.into_inner()).await {
        Ok(installer) => {
            installers::new_token(desk.store.as_ref(), &installer, actor, desk.clock.now())
                .await
                .map(|token| (installer.email.to_string(), token))
        }
        Err(e) => Err(e),
    };
    match made {
        Ok(shown) => page(&desk, &console, StatusCode::OK, Some(shown), None, None).await,
        Err(error) => refused(&desk, &console, error).await,
    }
}

#[derive(Deserialize)]
struct SuspendForm {
    reason: String,
}

#[post("/console/admin/installers/{id}/suspend")]
async fn suspend(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<i64>,
    form: web::Form<SuspendForm>,
) -> HttpResponse {
    if let Some(refusal) = admins_only(&console) {
        return refusal;
    }
    let reason = form.reason.split_whitespace().collect::<Vec<_>>().join(" ");
    let reason = match crate::domain::PlainText::parse(&reason, 500) {
        Ok(reason) => reason,
        Err(e) => {
            let said = format!("say why, in at most 500 characters of plain text: the reason {e}");
            return refused(&desk, &console, InstallerError::Invalid(vec![said])).await;
        }
    };
    switched(&desk, &console, path.into_inner(), Some(reason.as_str())).await
}

#[post("/console/admin/installers/{id}/resume")]
async fn resume(desk: web::Data<Desk>, console: ConsoleUser, path: web::Path<i64>) -> HttpResponse {
    if let Some(refusal) = admins_only(&console) {
        return refusal;
    }
    switched(&desk, &console, path.into_inner(), None).await
}

async fn switched(
    desk: &Desk,
    console: &ConsoleUser,
    id: i64,
    reason: Option<&str>,
) -> HttpResponse {
    let actor = console.user.email.as_str();
    let done = desk
        .store
        .set_installer_suspended(InstallerId(id), reason, actor, desk.clock.now())
        .await;
    match done {
        Ok(()) => see_other("/console/admin/installers"),
        Err(error) => refused(desk, console, error.into()).await,
    }
}
