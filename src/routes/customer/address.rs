//! "Wrong address? Correct it" (`customer::address`): the cookie the success page sets
//! for the browser that sent a request, the form it shows, and the correction.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use crate::customer::address::{self, CORRECTION_WINDOW_SECS, CorrectionError, CorrectionPass};
use crate::desk::Desk;
use crate::domain::TicketNumber;
use crate::i18n::Lang;
use crate::routes::{ErrorAnswer, Reader, html, refused};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(fix_page).service(correct_address);
}

/// Where the correction form posts.
fn fix_path(number: &TicketNumber) -> String {
    format!("/requests/{number}/address")
}

const PASS_COOKIE_PREFIX: &str = "rd_fix_";

/// One cookie per ticket, so a browser that sent two requests can correct either.
fn cookie_name(number: &TicketNumber) -> String {
    format!("{PASS_COOKIE_PREFIX}{number}")
}

/// The cookie for a ticket just created: HttpOnly, SameSite=Strict, Secure when the
/// desk is served over https, gone after [`CORRECTION_WINDOW_SECS`] (the value expires
/// then too, whatever the browser keeps). Path `/`: the form's own page and the
/// resubmission's answer (`POST /`) both need it.
pub(super) fn pass_cookie(
    desk: &Desk,
    number: &TicketNumber,
    pass: &CorrectionPass,
) -> Cookie<'static> {
    Cookie::build(cookie_name(number), pass.cookie.clone())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(crate::routes::secure_cookies(desk))
        .max_age(CookieDuration::seconds(CORRECTION_WINDOW_SECS))
        .finish()
}

/// Every correction pass cookie the request carries, by ticket number (checked where
/// they are used).
pub(in crate::routes) fn passes_of(
    request: &HttpRequest,
) -> std::collections::BTreeMap<String, String> {
    request
        .cookies()
        .map(|cookies| {
            cookies
                .iter()
                .filter_map(|c| {
                    let number = c.name().strip_prefix(PASS_COOKIE_PREFIX)?;
                    Some((number.to_owned(), c.value().to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The live pass the request's cookie holds for this ticket, if any.
pub(super) fn pass_of(
    desk: &Desk,
    request: &HttpRequest,
    number: &TicketNumber,
) -> Option<CorrectionPass> {
    let cookie = request.cookie(&cookie_name(number));
    address::live_pass(desk, number, cookie.as_ref().map(Cookie::value))
}

/// The correction form, as the success page and the correction page show it.
pub struct FixForm {
    pub action: String,
    pub token: String,
    /// What the field holds when the page opens.
    pub email: String,
    pub minutes: i64,
    pub error: Option<String>,
}

impl FixForm {
    pub(super) fn new(number: &TicketNumber, pass: &CorrectionPass, email: &str) -> Self {
        Self {
            action: fix_path(number),
            token: pass.form_token.clone(),
            email: email.to_owned(),
            minutes: CORRECTION_WINDOW_SECS / 60,
            error: None,
        }
    }
}

#[derive(Template)]
#[template(path = "pages/address.html")]
struct FixPage {
    t: Lang,
    switch: crate::routes::LanguageSwitch,
    number: TicketNumber,
    error: Option<String>,
    corrected: Option<String>,
    fix: Option<FixForm>,
}

fn number_of(raw: &str) -> Option<TicketNumber> {
    TicketNumber::parse(raw).ok()
}

fn not_this_browser(reader: &Reader) -> HttpResponse {
    crate::routes::customer_message_page(
        StatusCode::FORBIDDEN,
        reader,
        "address.title_refused",
        reader.t.text("address.not_this_browser"),
    )
}

/// The form on its own page (the language switch of the answer leads here): only for
/// the browser with a live cookie for the ticket.
#[get("/requests/{ticket}/address")]
async fn fix_page(
    desk: web::Data<Desk>,
    request: HttpRequest,
    reader: Reader,
    path: web::Path<String>,
) -> HttpResponse {
    let Some(number) = number_of(&path) else {
        return not_this_browser(&reader);
    };
    let Some(pass) = pass_of(&desk, &request, &number) else {
        return not_this_browser(&reader);
    };
    html(
        StatusCode::OK,
        &FixPage {
            t: reader.t,
            switch: reader.switch,
            fix: Some(FixForm::new(&number, &pass, "")),
            number,
            error: None,
            corrected: None,
        },
    )
}

#[derive(Deserialize)]
struct Correction {
    #[serde(default)]
    email: String,
    #[serde(default)]
    check: String,
}

#[post("/requests/{ticket}/address")]
async fn correct_address(
    desk: web::Data<Desk>,
    request: HttpRequest,
    reader: Reader,
    path: web::Path<String>,
    form: web::Form<Correction>,
) -> HttpResponse {
    let Some(number) = number_of(&path) else {
        return not_this_browser(&reader);
    };
    let reader = reader.back_to(&fix_path(&number));
    let cookie = request.cookie(&cookie_name(&number));
    let cookie = cookie.as_ref().map(Cookie::value);
    let outcome = address::correct(&desk, &number, cookie, &form.check, &form.email).await;
    let mut page = FixPage {
        t: reader.t,
        switch: reader.switch,
        number: number.clone(),
        error: None,
        corrected: None,
        fix: None,
    };
    let error = match outcome {
        Ok(email) => {
            page.corrected = Some(email.to_string());
            return html(StatusCode::OK, &page);
        }
        Err(error) => error,
    };
    if matches!(error, CorrectionError::NotThisBrowser) {
        return not_this_browser(&Reader::of(&request));
    }
    // A typo in the correction is fixed on the same form; a refusal needs no form.
    let retype = matches!(error, CorrectionError::Invalid(_) | CorrectionError::Same);
    let answer = ErrorAnswer::from(error);
    let message = Some(page.t.message(&answer.message));
    if retype && let Some(pass) = pass_of(&desk, &request, &number) {
        let mut form_again = FixForm::new(&number, &pass, &form.email);
        form_again.error = message;
        page.fix = Some(form_again);
    } else {
        page.error = message;
    }
    refused(&answer, &page)
}
