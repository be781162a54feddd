//! The admin's console pages: users (create, roles, disable, password, sessions) and
//! the audit log with its chain head. Only users with the admin role reach them; every
//! change is audited by the store in the same transaction.

use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::guard::ConsoleUser;
use crate::audit::{self, VerifyOutcome};
use crate::auth::users::{self as user_admin, Administrator, UserChangeError};
use crate::desk::Desk;
use crate::domain::{EmailAddress, Role, Roles};
use crate::routes::{html, message_page};
use crate::store::{StoreError, UserId};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(users)
        .service(create_user)
        .service(set_roles)
        .service(disable)
        .service(enable)
        .service(reset_password)
        .service(revoke_sessions)
        .service(audit_log)
        .service(customers)
        .service(erase_customer);
}

fn admin_only(console: &ConsoleUser) -> Option<HttpResponse> {
    (!console.user.roles.contains(Role::Admin)).then(|| {
        message_page(
            StatusCode::FORBIDDEN,
            "Admins only",
            "Managing users and reading the audit log needs the admin role.",
        )
    })
}

fn failed(error: &StoreError) -> HttpResponse {
    crate::routes::failure_page("The change was not made", error)
}

/// The admin making a change.
fn administrator(console: &ConsoleUser) -> Administrator<'_> {
    Administrator::Console {
        id: console.user.id,
        email: &console.user.email,
    }
}

/// The answer to a refused change: the users page saying why, or the failure page.
async fn refused(desk: &Desk, console: &ConsoleUser, error: UserChangeError) -> HttpResponse {
    let (status, problem) = match error {
        UserChangeError::Password(e) => (StatusCode::UNPROCESSABLE_ENTITY, format!("{e}.")),
        UserChangeError::HashingInterrupted => {
            (StatusCode::UNPROCESSABLE_ENTITY, error.to_string())
        }
        UserChangeError::OwnAdminRole | UserChangeError::DisablingYourself => {
            (StatusCode::CONFLICT, error.to_string())
        }
        UserChangeError::Store(e) => return failed(&e),
    };
    form_refused(desk, console, status, problem).await
}

/// The users page again, saying why the form was not accepted.
async fn form_refused(
    desk: &Desk,
    console: &ConsoleUser,
    status: StatusCode,
    problem: String,
) -> HttpResponse {
    users_page(desk, console, status, None, Some(problem)).await
}

struct UserRowView {
    id: i64,
    email: String,
    roles: Vec<&'static str>,
    state: &'static str,
    disabled: bool,
    second_factor: &'static str,
}

#[derive(Template)]
#[template(path = "console/admin_users.html")]
struct UsersPage {
    nav: super::Nav,
    csrf: String,
    users: Vec<UserRowView>,
    role_names: Vec<&'static str>,
    notice: Option<String>,
    error: Option<String>,
}

async fn users_page(
    desk: &Desk,
    console: &ConsoleUser,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> HttpResponse {
    let all = match desk.store.users().await {
        Ok(all) => all,
        Err(e) => return failed(&e),
    };
    let page = UsersPage {
        nav: super::Nav::of(console),
        csrf: console.csrf.clone(),
        users: all
            .into_iter()
            .map(|u| UserRowView {
                id: u.id.0,
                email: u.email.to_string(),
                roles: u.roles.iter().map(Role::as_str).collect(),
                state: if u.disabled { "disabled" } else { "active" },
                disabled: u.disabled,
                second_factor: if u.totp_secret.is_some() {
                    "enrolled"
                } else {
                    "not yet"
                },
            })
            .collect(),
        role_names: Role::ALL.iter().map(|r| r.as_str()).collect(),
        notice,
        error,
    };
    html(status, &page)
}

#[get("/console/admin/users")]
async fn users(desk: web::Data<Desk>, console: ConsoleUser) -> HttpResponse {
    if let Some(refusal) = admin_only(&console) {
        return refusal;
    }
    users_page(&desk, &console, StatusCode::OK, None, None).await
}

/// The roles ticked in a form (`role` repeated).
fn roles_of(fields: &[(String, String)]) -> Option<Roles> {
    let roles: Vec<Role> = fields
        .iter()
        .filter(|(k, _)| k == "role")
        .filter_map(|(_, v)| Role::parse(v))
        .collect();
    Roles::of(&roles)
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

fn back(notice: &str) -> HttpResponse {
    let query: String = notice
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    HttpResponse::SeeOther()
        .insert_header((LOCATION, format!("/console/admin/users?done={query}")))
        .finish()
}

#[post("/console/admin/users")]
async fn create_user(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    if let Some(refusal) = admin_only(&console) {
        return refusal;
    }
    let email = match EmailAddress::parse(field(&form, "email")) {
        Ok(email) => email,
        Err(e) => {
            return form_refused(
                &desk,
                &console,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("The e-mail address {e}."),
            )
            .await;
        }
    };
    let Some(roles) = roles_of(&form) else {
        return form_refused(
            &desk,
            &console,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Tick at least one role.".to_owned(),
        )
        .await;
    };
    let password = field(&form, "password").to_owned();
    let by = administrator(&console);
    match user_admin::create(
        desk.store.as_ref(),
        by,
        &email,
        password,
        roles,
        desk.clock.now(),
    )
    .await
    {
        Ok(_) => back("created"),
        Err(UserChangeError::Store(StoreError::Conflict(message))) => {
            form_refused(&desk, &console, StatusCode::CONFLICT, message.to_string()).await
        }
        Err(error) => refused(&desk, &console, error).await,
    }
}

#[post("/console/admin/users/{id}/roles")]
async fn set_roles(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<i64>,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    if let Some(refusal) = admin_only(&console) {
        return refusal;
    }
    let Some(roles) = roles_of(&form) else {
        return form_refused(
            &desk,
            &console,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Tick at least one role.".to_owned(),
        )
        .await;
    };
    let target = UserId(path.into_inner());
    let by = administrator(&console);
    match user_admin::set_roles(desk.store.as_ref(), by, target, roles, desk.clock.now()).await {
        Ok(()) => back("roles-set"),
        Err(error) => refused(&desk, &console, error).await,
    }
}

async fn set_disabled(
    desk: &Desk,
    console: &ConsoleUser,
    target: UserId,
    disabled: bool,
) -> HttpResponse {
    if let Some(refusal) = admin_only(console) {
        return refusal;
    }
    let by = administrator(console);
    match user_admin::set_disabled(desk.store.as_ref(), by, target, disabled, desk.clock.now())
        .await
    {
        Ok(()) => back(if disabled { "disabled" } else { "enabled" }),
        Err(error) => refused(desk, console, error).await,
    }
}

#[post("/console/admin/users/{id}/disable")]
async fn disable(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<i64>,
) -> HttpResponse {
    set_disabled(&desk, &console, UserId(path.into_inner()), true).await
}

#[post("/console/admin/users/{id}/enable")]
async fn enable(desk: web::Data<Desk>, console: ConsoleUser, path: web::Path<i64>) -> HttpResponse {
    set_disabled(&desk, &console, UserId(path.into_inner()), false).await
}

#[derive(Deserialize)]
struct PasswordForm {
    password: String,
}

#[post("/console/admin/users/{id}/password")]
async fn reset_password(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<i64>,
    form: web::Form<PasswordForm>,
) -> HttpResponse {
    if let Some(refusal) = admin_only(&console) {
        return refusal;
    }
    let password = form.into_inner().password;
    let target = UserId(path.into_inner());
    let by = administrator(&console);
    match user_admin::set_password(desk.store.as_ref(), by, target, password, desk.clock.now())
        .await
    {
        Ok(()) => back("password-set"),
        Err(error) => refused(&desk, &console, error).await,
    }
}

#[post("/console/admin/users/{id}/sessions/revoke")]
async fn revoke_sessions(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<i64>,
) -> HttpResponse {
    if let Some(refusal) = admin_only(&console) {
        return refusal;
    }
    let target = UserId(path.into_inner());
    let by = administrator(&console);
    match user_admin::revoke_sessions(desk.store.as_ref(), by, target, desk.clock.now()).await {
        Ok(()) => back("sessions-ended"),
        Err(error) => refused(&desk, &console, error).await,
    }
}

struct AuditRowView {
    id: i64,
    at: String,
    actor: String,
    action: String,
    ticket: String,
    /// The entry names a ticket the database no longer holds.
    ticket_removed: bool,
    /// The internal id, shown when the numbers could not be read.
    ticket_id: Option<i64>,
    detail: String,
}

#[derive(Template)]
#[template(path = "console/admin_audit.html")]
struct AuditPage {
    nav: super::Nav,
    csrf: String,
    chain: String,
    actor: String,
    action: String,
    entries: Vec<AuditRowView>,
}

#[derive(Deserialize)]
struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
}

/// The newest 200 entries matching the filter, and the state of the whole chain with the
/// head an admin can publish as a checkpoint.
#[get("/console/admin/audit")]
async fn audit_log(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    query: web::Query<AuditQuery>,
) -> HttpResponse {
    if let Some(refusal) = admin_only(&console) {
        return refusal;
    }
    let actor = query
        .actor
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let action = query
        .action
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let entries = match desk.store.recent_audit(actor, action, 200).await {
        Ok(entries) => entries,
        Err(e) => return failed(&e),
    };
    // Rows name tickets by their internal id (the chain hashes that); people read numbers.
    let ids: Vec<_> = entries
        .iter()
        .filter_map(|e| e.ticket_id)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(crate::store::TicketId)
        .collect();
    // Without them the log is still worth reading: rows then show the internal id.
    let numbers = desk
        .store
        .ticket_numbers(&ids)
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "the audit log shows ticket ids"))
        .ok();
    let chain = match audit::verify_store(desk.store.as_ref(), None, Some(&desk.keys.desk_secret))
        .await
    {
        Ok(VerifyOutcome::Intact {
            entries,
            erased,
            head,
        }) => {
            let erased = audit::erased_note(erased);
            format!(
                "The chain is intact: {entries} entries{erased}. Current head (publish it as a checkpoint): {head}"
            )
        }
        Ok(VerifyOutcome::Broken(broken)) => format!("THE CHAIN IS BROKEN: {broken}"),
        Err(e) => return failed(&e),
    };
    let page = AuditPage {
        nav: super::Nav::of(&console),
        csrf: console.csrf.clone(),
        chain,
        actor: actor.unwrap_or("").to_owned(),
        action: action.unwrap_or("").to_owned(),
        entries: entries
            .into_iter()
            .map(|e| AuditRowView {
                id: e.id,
                at: e.at.to_string(),
                actor: e.actor,
                action: e.action,
                ticket: match (&numbers, e.ticket_id) {
                    (Some(numbers), Some(id)) => numbers
                        .get(&crate::store::TicketId(id))
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    _ => String::new(),
                },
                ticket_id: match (&numbers, e.ticket_id) {
                    (None, Some(id)) => Some(id),
                    _ => None,
                },
                ticket_removed: match (&numbers, e.ticket_id) {
                    (Some(numbers), Some(id)) => !numbers.contains_key(&crate::store::TicketId(id)),
                    _ => false,
                },
                detail: e.detail,
            })
            .collect(),
    };
    html(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "console/admin_customers.html")]
struct CustomersPage {
    nav: super::Nav,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
}

fn customers_page(
    console: &ConsoleUser,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> HttpResponse {
    html(
        status,
        &CustomersPage {
            nav: super::Nav::of(console),
            csrf: console.csrf.clone(),
            notice,
            error,
        },
    )
}

/// Erasure on request (issue 23, docs/PRIVACY.md): the admin's form.
#[get("/console/admin/customers")]
async fn customers(console: ConsoleUser) -> HttpResponse {
    if let Some(refusal) = admin_only(&console) {
        return refusal;
    }
    customers_page(&console, StatusCode::OK, None, None)
}

/// Erases the customer of the address: what `resetdesk customer erase` does, with the
/// admin as who asked (the history and the audit log name them).
#[post("/console/admin/customers/erase")]
async fn erase_customer(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    if let Some(refusal) = admin_only(&console) {
        return refusal;
    }
    let refuse = |status, why: String| customers_page(&console, status, None, Some(why));
    if field(&form, "confirm") != "yes" {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Tick the box to say you checked that the address's owner asked for it.".to_owned(),
        );
    }
    let email = match EmailAddress::parse(field(&form, "email").trim()) {
        Ok(email) if email.mailbox() != crate::store::ERASED_EMAIL => email,
        Ok(_) => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "That is what erased tickets read: it names no customer.".to_owned(),
            );
        }
        Err(e) => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("The e-mail address {e}."),
            );
        }
    };
    let reason = match field(&form, "reason").trim() {
        "" => "the customer's request",
        reason if reason.chars().count() > 200 => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Say why in at most 200 characters.".to_owned(),
            );
        }
        reason => reason,
    };
    match crate::retention::erase_customer(
        desk.store.as_ref(),
        &desk.blobs,
        &desk.mail,
        &desk.keys.desk_secret,
        &email,
        console.user.email.as_str(),
        reason,
        desk.clock.now(),
    )
    .await
    {
        Ok(erased) => {
            let tickets: Vec<&str> = erased.tickets.iter().map(|t| t.as_str()).collect();
            customers_page(
                &console,
                StatusCode::OK,
                Some(format!(
                    "Erased: {} ticket(s){}. A last e-mail to the customer is queued.",
                    tickets.len(),
                    if tickets.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", tickets.join(", "))
                    }
                )),
                None,
            )
        }
        Err(error @ crate::retention::ErasureError::NoTickets(_)) => refuse(
            StatusCode::NOT_FOUND,
            format!("{}.", capitalised(&error.to_string())),
        ),
        Err(error @ crate::retention::ErasureError::Pending(_)) => refuse(
            StatusCode::CONFLICT,
            format!("{}.", capitalised(&error.to_string())),
        ),
        Err(crate::retention::ErasureError::Store(error)) => failed(&error),
        Err(error) => {
            tracing::error!(%error, "an erasure failed");
            crate::routes::failure_page("The customer was not erased", &error)
        }
    }
}

/// A sentence from an error's words.
fn capitalised(words: &str) -> String {
    let mut chars = words.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}
