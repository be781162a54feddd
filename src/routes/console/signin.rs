//! Signing in to the console: password, then the second factor (or its enrolment when
//! one is required), each step a session stage the console guard enforces. The session
//! token is replaced at each step, so nothing learned before signing in is worth anything
//! after. Each password or code is counted before it is checked (`auth::throttle`), and a
//! completed sign-in gives the browser a device cookie (`auth::device_cookie`).

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, LOCATION};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::guard::ConsoleUser;
use crate::auth::signin::{self, Client, Counted, Credentials, NotCounted, SignInRefusal};
use crate::auth::{device_cookie, session, throttle, totp};
use crate::desk::Desk;
use crate::domain::Secret;
use crate::protocol::qr;
use crate::routes::{html, message_page};
use crate::store::{NewSession, SessionStage, StoreError, User};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(login_form)
        .service(login_submit)
        .service(code_form)
        .service(code_submit)
        .service(enrol_form)
        .service(enrol_qr)
        .service(enrol_submit)
        .service(logout);
}

fn failed(error: &(dyn std::error::Error + 'static)) -> HttpResponse {
    crate::routes::failure_page("Sign-in failed", error)
}

/// Starts a session at `stage` with a fresh token and sends the browser to its page. A
/// completed sign-in also gives the browser a new device cookie for the account.
async fn start_session(
    desk: &Desk,
    user: &User,
    stage: SessionStage,
) -> Result<HttpResponse, StoreError> {
    let now = desk.clock.now();
    let (cookie_value, token_hash) = session::new_session_token();
    desk.store
        .create_session(&NewSession {
            token_hash,
            user: user.id,
            csrf_token: session::new_csrf_token(),
            stage,
            created_at: now,
            expires_at: now.plus_seconds(session::IDLE_SECS),
        })
        .await?;
    let next = match stage {
        SessionStage::Full => "/console",
        SessionStage::SecondFactor => session::SECOND_FACTOR_PATH,
        SessionStage::Enrol => session::ENROL_PATH,
    };
    let secure = crate::routes::secure_cookies(desk);
    let mut response = HttpResponse::SeeOther();
    response
        .insert_header((LOCATION, next))
        .cookie(session::cookie(cookie_value, secure));
    if stage == SessionStage::Full {
        let account = throttle::account_key(user.email.as_str());
        response.cookie(device_cookie::issue(desk, &account, now, secure));
    }
    Ok(response.finish())
}

/// Replaces a partial session with a full one. `device` is the device cookie the last
/// step was counted for, if any.
async fn promote(
    desk: &Desk,
    console: &ConsoleUser,
    device: Option<&str>,
) -> Result<HttpResponse, StoreError> {
    desk.store.delete_session(&console.token_hash).await?;
    // Failures are forgotten only when the whole sign-in succeeded: a right password
    // alone must not reset the count of wrong codes. And only those of the bucket the
    // sign-in counted in: an agent signing in from their own browser gives a stranger
    // guessing at the account no fresh tries.
    desk.store
        .clear_login_failures(&throttle::account_key(console.user.email.as_str()), device)
        .await?;
    start_session(desk, &console.user, SessionStage::Full).await
}

/// Where this request comes from, as the sign-in throttle counts it.
fn client(desk: &Desk, request: &HttpRequest) -> Client {
    Client {
        address: crate::routes::client_ip(desk, request),
        device_cookie: request
            .cookie(device_cookie::COOKIE)
            .map(|cookie| cookie.value().to_owned()),
    }
}

/// The page for an attempt that was not counted: while too many have failed, naming the
/// wait.
fn not_counted_page(refusal: NotCounted) -> HttpResponse {
    match refusal {
        NotCounted::Throttled { retry_after } => {
            let page = message_page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed sign-ins",
                &format!("Too many failed sign-ins: try again in {retry_after} s."),
            );
            crate::routes::with_retry_after(page, Some(retry_after))
        }
        NotCounted::Store(error) => failed(&error),
    }
}

/// Counts a sign-in attempt at `account` from this request before its code is checked;
/// refused, the page to answer with.
async fn count_attempt(
    desk: &Desk,
    request: &HttpRequest,
    account: &str,
    step: &'static str,
) -> Result<Counted, HttpResponse> {
    signin::count_attempt(desk, account, &client(desk, request), step)
        .await
        .map_err(not_counted_page)
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    csrf: String,
    email: String,
    error: Option<String>,
    /// The desk has no console user yet: the page says how to make the first (a new
    /// desk's owner reads it; nobody else learns more than that it is new).
    no_user_yet: bool,
}

/// The sign-in page with its CSRF token (and the cookie for it, when it is new).
async fn login_page(
    desk: &Desk,
    request: &HttpRequest,
    status: StatusCode,
    email: String,
    error: Option<String>,
) -> HttpResponse {
    // Said only when the database answers that it holds nobody.
    let no_user_yet = matches!(desk.store.holds_users().await, Ok(false));
    let presented = request.cookie(session::SIGN_IN_FORM_COOKIE);
    let (csrf, cookie) = session::sign_in_form_token(
        desk,
        presented.as_ref().map(|c| c.value()),
        crate::routes::secure_cookies(desk),
    );
    let page = LoginPage {
        csrf,
        email,
        error,
        no_user_yet,
    };
    let mut response = html(status, &page);
    if let Some(cookie) = cookie {
        let _ = response.add_cookie(&cookie);
    }
    response
}

#[get("/console/login")]
async fn login_form(desk: web::Data<Desk>, request: HttpRequest) -> HttpResponse {
    login_page(&desk, &request, StatusCode::OK, String::new(), None).await
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
}

/// The password step. The console guard has checked the form's CSRF token.
#[post("/console/login")]
async fn login_submit(
    desk: web::Data<Desk>,
    request: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let LoginForm { email, password } = form.into_inner();
    let credentials = Credentials {
        email: email.clone(),
        password: Secret::new(password),
    };
    match signin::sign_in(&desk, credentials, &client(&desk, &request)).await {
        Ok(signed_in) => start_session(&desk, &signed_in.user, signed_in.stage)
            .await
            .unwrap_or_else(|e| failed(&e)),
        Err(SignInRefusal::WrongCredentials) => {
            login_page(
                &desk,
                &request,
                StatusCode::UNAUTHORIZED,
                email,
                Some("The e-mail or the password is wrong.".to_owned()),
            )
            .await
        }
        Err(SignInRefusal::NotCounted(refusal)) => not_counted_page(refusal),
        Err(SignInRefusal::Store(error)) => failed(&error),
    }
}

#[derive(Template)]
#[template(path = "console/code.html")]
struct CodePage {
    csrf: String,
    error: Option<String>,
}

#[get("/console/login/code")]
async fn code_form(console: ConsoleUser) -> HttpResponse {
    html(
        StatusCode::OK,
        &CodePage {
            csrf: console.csrf,
            error: None,
        },
    )
}

#[derive(Deserialize)]
struct CodeForm {
    code: Option<String>,
}

/// The second step: a TOTP code (each accepted once) or an unused recovery code.
#[post("/console/login/code")]
async fn code_submit(
    desk: web::Data<Desk>,
    request: HttpRequest,
    console: ConsoleUser,
    form: web::Form<CodeForm>,
) -> HttpResponse {
    let typed = form.code.clone().unwrap_or_default();
    let now = desk.clock.now();
    let user = &console.user;
    let account = throttle::account_key(user.email.as_str());
    let attempt = match count_attempt(&desk, &request, &account, "code").await {
        Ok(attempt) => attempt,
        Err(refusal) => return refusal,
    };
    let step = user
        .totp_secret
        .as_ref()
        .and_then(|stored| opened_seed(&desk, user, stored))
        .and_then(|seed| totp::matching_step(&seed, &typed, now));
    let accepted = match step {
        Some(step) => desk.store.accept_totp_step(user.id, step).await,
        // Recovery codes are longer than any TOTP code.
        None if typed.trim().len() > 6 => {
            desk.store
                .use_recovery_code(user.id, &totp::recovery_code_hash(&typed), now)
                .await
        }
        None => Ok(false),
    };
    match accepted {
        Ok(true) => {
            crate::observability::sign_in("code", "accepted");
            if let Err(error) = desk.store.release_login_attempt(attempt.id).await {
                return failed(&error);
            }
            promote(&desk, &console, attempt.device.as_deref())
                .await
                .unwrap_or_else(|e| failed(&e))
        }
        Ok(false) => {
            // The attempt stays counted: it is a failure now.
            crate::observability::sign_in("code", "wrong");
            if let Err(error) = desk
                .store
                .audit(now, user.email.as_str(), "second_factor_failed", "")
                .await
            {
                tracing::error!(%error, "could not audit a failed second factor");
            }
            let page = CodePage {
                csrf: console.csrf.clone(),
                error: Some(
                    "That code is not right, or was already used. Codes change every 30 seconds."
                        .to_owned(),
                ),
            };
            html(StatusCode::UNAUTHORIZED, &page)
        }
        Err(error) => failed(&error),
    }
}

#[derive(Template)]
#[template(path = "console/enrol.html")]
struct EnrolPage {
    csrf: String,
    key: String,
    error: Option<String>,
    recovery_codes: Vec<String>,
}

/// A user's stored seed, opened; `None` (and an error in the log for the operator) when
/// it does not open, e.g. its seal key is missing from the keys directory. The user
/// can still sign in with a recovery code.
fn opened_seed(
    desk: &Desk,
    user: &User,
    stored: &crate::store::StoredSeed,
) -> Option<crate::domain::Secret> {
    totp::open_seed(&desk.keys, user.id, stored)
        .inspect_err(|error| {
            tracing::error!(user = %user.email, %error, "cannot open the stored TOTP seed");
        })
        .ok()
}

/// The seed being enrolled: the pending one, or a new one (also when the pending one
/// does not open: it was never confirmed, so nothing depends on it).
async fn pending_seed(desk: &Desk, user: &User) -> Result<crate::domain::Secret, StoreError> {
    if let Some(seed) = user
        .totp_pending
        .as_ref()
        .and_then(|stored| opened_seed(desk, user, stored))
    {
        return Ok(seed);
    }
    let seed = totp::new_seed();
    let sealed = desk.keys.seal_totp_seed(user.id.0, &seed);
    desk.store.begin_totp_enrolment(user.id, &sealed).await?;
    Ok(seed)
}

fn grouped(key: &str) -> String {
    key.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[get("/console/enrol")]
async fn enrol_form(desk: web::Data<Desk>, console: ConsoleUser) -> HttpResponse {
    match pending_seed(&desk, &console.user).await {
        Ok(seed) => html(
            StatusCode::OK,
            &EnrolPage {
                csrf: console.csrf,
                key: grouped(seed.expose()),
                error: None,
                recovery_codes: Vec::new(),
            },
        ),
        Err(error) => failed(&error),
    }
}

/// The enrolment QR code, served to the signed-in user only and never cached.
#[get("/console/enrol/qr.png")]
async fn enrol_qr(desk: web::Data<Desk>, console: ConsoleUser) -> HttpResponse {
    let seed = match pending_seed(&desk, &console.user).await {
        Ok(seed) => seed,
        Err(error) => return failed(&error),
    };
    match qr::text_png(&totp::otpauth_url(&seed, console.user.email.as_str())) {
        Ok(png) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "image/png"))
            .insert_header(("Cache-Control", "no-store"))
            .body(png),
        Err(error) => failed(&error),
    }
}

#[post("/console/enrol")]
async fn enrol_submit(
    desk: web::Data<Desk>,
    request: HttpRequest,
    console: ConsoleUser,
    form: web::Form<CodeForm>,
) -> HttpResponse {
    let Some(seed) = console
        .user
        .totp_pending
        .as_ref()
        .and_then(|stored| opened_seed(&desk, &console.user, stored))
    else {
        return HttpResponse::SeeOther()
            .insert_header((LOCATION, session::ENROL_PATH))
            .finish();
    };
    let now = desk.clock.now();
    let Some(step) = totp::matching_step(&seed, form.code.as_deref().unwrap_or(""), now) else {
        let page = EnrolPage {
            csrf: console.csrf.clone(),
            key: grouped(seed.expose()),
            error: Some("That code is not right. Check the app shows resetdesk and enter the code it shows now.".to_owned()),
            recovery_codes: Vec::new(),
        };
        return html(StatusCode::UNPROCESSABLE_ENTITY, &page);
    };
    let codes = totp::new_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|(_, hash)| hash.clone()).collect();
    if let Err(error) = desk
        .store
        .confirm_totp_enrolment(console.user.id, step, &hashes, now)
        .await
    {
        return failed(&error);
    }
    // The page with the recovery codes carries the new, full session's cookie.
    let account = throttle::account_key(console.user.email.as_str());
    let device = device_cookie::presented(&desk, &request, &account, now);
    let redirect = match promote(&desk, &console, device.as_deref()).await {
        Ok(response) => response,
        Err(error) => return failed(&error),
    };
    let page = EnrolPage {
        csrf: String::new(),
        key: String::new(),
        error: None,
        recovery_codes: codes.into_iter().map(|(code, _)| code).collect(),
    };
    let mut response = html(StatusCode::OK, &page);
    for cookie in redirect.cookies() {
        let _ = response.add_cookie(&cookie.into_owned());
    }
    response
}

#[post("/console/logout")]
async fn logout(desk: web::Data<Desk>, console: ConsoleUser) -> HttpResponse {
    if let Err(error) = desk.store.delete_session(&console.token_hash).await {
        return crate::routes::failure_page("Sign-out failed", &error);
    }
    HttpResponse::SeeOther()
        .insert_header((LOCATION, "/console/login"))
        .cookie(session::removal(crate::routes::secure_cookies(&desk)))
        .finish()
}
