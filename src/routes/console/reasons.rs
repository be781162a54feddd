//! The canned texts agents pick from, rejection reasons and photo requests, each in
//! every language customers read: supervisors keep the list.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;

use super::guard::ConsoleUser;
use super::see_other;
use crate::desk::Desk;
use crate::domain::{CannedKind, CannedWords, PlainText};
use crate::i18n::Lang;
use crate::review;
use crate::routes::{html, message_page};
use crate::store::StoreError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(reasons_view)
        .service(add_reason)
        .service(edit_reason)
        .service(remove_reason);
}

/// Canned reasons are the supervisors' to keep.
fn supervisors_only(console: &ConsoleUser) -> Option<HttpResponse> {
    (!console.user.roles.contains(crate::domain::Role::Supervisor)).then(|| {
        message_page(
            StatusCode::FORBIDDEN,
            "Supervisors only",
            "Editing the rejection reasons and photo requests needs the supervisor role.",
        )
    })
}

/// The languages customers read besides the console's, each with its form field
/// (`reason_es`) and name.
fn other_languages() -> impl Iterator<Item = Lang> {
    Lang::ALL.into_iter().filter(|lang| *lang != Lang::En)
}

fn field(lang: Lang) -> String {
    format!("reason_{}", lang.code())
}

/// One language's text of a canned text, as the page shows and edits it.
struct LanguageText {
    field: String,
    name: &'static str,
    text: String,
}

struct CannedView {
    id: i64,
    text: String,
    translations: Vec<LanguageText>,
    /// "Spanish": languages whose customers read the English text until one is written.
    missing: String,
}

struct Section {
    kind: &'static str,
    heading: &'static str,
    explained: &'static str,
    texts: Vec<CannedView>,
    /// The "add" form's words: empty, or what was typed when adding was refused.
    new_text: String,
    new_translations: Vec<LanguageText>,
}

#[derive(Template)]
#[template(path = "console/reasons.html")]
struct ReasonsPage {
    nav: super::Nav,
    csrf: String,
    sections: Vec<Section>,
    /// The names of the other languages, for the tables' heads.
    languages: Vec<&'static str>,
    error: Option<String>,
}

/// Each other language's text in `translations`, or `""`.
fn language_texts(translations: &[(Lang, String)]) -> Vec<LanguageText> {
    other_languages()
        .map(|lang| LanguageText {
            field: field(lang),
            name: lang.english_name(),
            text: translations
                .iter()
                .find(|(l, _)| *l == lang)
                .map(|(_, t)| t.clone())
                .unwrap_or_default(),
        })
        .collect()
}

/// What a refused change typed, shown again in its form: into the add form of its kind,
/// or over the row it edited.
struct Typed {
    id: Option<i64>,
    kind: CannedKind,
    words: CannedWords,
}

async fn reasons_page(
    desk: &Desk,
    console: &ConsoleUser,
    status: StatusCode,
    error: Option<String>,
    typed: Option<Typed>,
) -> HttpResponse {
    let canned = match desk.store.canned_reasons().await {
        Ok(canned) => canned,
        Err(e) => return crate::routes::failure_page("The list is unavailable", &e),
    };
    let section = |kind: CannedKind, heading, explained| {
        let typed = typed.as_ref().filter(|t| t.kind == kind);
        let adding = typed.filter(|t| t.id.is_none());
        Section {
            kind: kind.as_str(),
            heading,
            explained,
            texts: canned
                .iter()
                .filter(|t| t.kind == kind)
                .map(|t| {
                    let edited = typed.filter(|typed| typed.id == Some(t.id));
                    CannedView {
                        id: t.id,
                        text: edited.map_or(&t.text, |e| &e.words.text).clone(),
                        translations: language_texts(
                            edited.map_or(&t.translations, |e| &e.words.translations),
                        ),
                        missing: t
                            .missing_languages()
                            .into_iter()
                            .map(Lang::english_name)
                            .collect::<Vec<_>>()
                            .join(", "),
                    }
                })
                .collect(),
            new_text: adding.map(|t| t.words.text.clone()).unwrap_or_default(),
            new_translations: language_texts(adding.map_or(&[][..], |t| &t.words.translations)),
        }
    };
    html(
        status,
        &ReasonsPage {
            nav: super::Nav::of(console),
            csrf: console.csrf.clone(),
            sections: vec![
                section(
                    CannedKind::Reject,
                    "Rejection reasons",
                    "Agents choose one when they reject a ticket; the customer reads it in their language, in the e-mail and on the status page.",
                ),
                section(
                    CannedKind::Photo,
                    "Photo requests",
                    "Agents choose one when they ask for a new label photo: what the new photo must fix. The customer reads it in their language, in the e-mail and on the status page.",
                ),
            ],
            languages: other_languages().map(Lang::english_name).collect(),
            error,
        },
    )
}

/// The words a supervisor wrote: the English (`reason`) and each other language's
/// (`reason_es`), each made one line and checked as plain text; every problem said at
/// once. With the problems, what was typed, to show again.
fn written(form: &HashMap<String, String>) -> Result<CannedWords, (String, CannedWords)> {
    let one_line = |name: &str| {
        let raw = form.get(name).map(String::as_str).unwrap_or("");
        raw.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let mut problems = Vec::new();
    let mut check = |text: &str, language: &str| {
        if let Err(e) = PlainText::parse(text, review::MAX_REASON_CHARS) {
            problems.push(format!("The {language} text {e}."));
        }
    };
    let text = one_line("reason");
    check(&text, "English");
    let translations: Vec<(Lang, String)> = other_languages()
        .map(|lang| (lang, one_line(&field(lang))))
        .collect();
    for (lang, translated) in &translations {
        check(translated, lang.english_name());
    }
    let words = CannedWords { text, translations };
    if problems.is_empty() {
        Ok(words)
    } else {
        Err((problems.join(" "), words))
    }
}

fn kind_of(form: &HashMap<String, String>) -> Result<CannedKind, String> {
    match form.get("kind").map(String::as_str) {
        None | Some("") => Ok(CannedKind::Reject),
        Some(raw) => CannedKind::parse(raw)
            .ok_or_else(|| format!("{raw:?} is not a kind of canned text: reject or photo.")),
    }
}

/// Adds (`id` none) or edits a canned text from a supervisor's form, then shows the
/// list, or why not with what was typed kept in its form.
async fn change(
    desk: &Desk,
    console: &ConsoleUser,
    id: Option<i64>,
    form: &HashMap<String, String>,
) -> HttpResponse {
    if let Some(refusal) = supervisors_only(console) {
        return refusal;
    }
    // An edit keeps the stored kind; the form's says which add form to refill.
    let kind = match (id, kind_of(form)) {
        (Some(id), _) => match desk.store.canned_reason(id).await {
            Ok(text) => text.kind,
            Err(e) => return after_change(desk, console, Err(e), None).await,
        },
        (None, Ok(kind)) => kind,
        (None, Err(said)) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return reasons_page(desk, console, status, Some(said), None).await;
        }
    };
    let words = match written(form) {
        Ok(words) => words,
        Err((said, words)) => {
            let typed = Typed { id, kind, words };
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return reasons_page(desk, console, status, Some(said), Some(typed)).await;
        }
    };
    let (by, now) = (console.user.id, desk.clock.now());
    let result = match id {
        None => desk.store.add_canned_reason(kind, &words, by, now).await,
        Some(id) => desk.store.edit_canned_reason(id, &words, by, now).await,
    };
    after_change(desk, console, result, Some(Typed { id, kind, words })).await
}

/// The page again after a change: the list, or why the change was not made.
async fn after_change(
    desk: &Desk,
    console: &ConsoleUser,
    result: Result<(), StoreError>,
    typed: Option<Typed>,
) -> HttpResponse {
    match result {
        Ok(()) => see_other("/console/reasons"),
        Err(StoreError::Conflict(conflict)) => {
            let said = format!("Not saved: {conflict}.");
            reasons_page(desk, console, StatusCode::CONFLICT, Some(said), typed).await
        }
        Err(StoreError::NotFound) => {
            let said = "That text is no longer in the list: someone removed it.".to_owned();
            reasons_page(desk, console, StatusCode::NOT_FOUND, Some(said), None).await
        }
        Err(e) => crate::routes::failure_page("The text was not saved", &e),
    }
}

#[get("/console/reasons")]
async fn reasons_view(desk: web::Data<Desk>, console: ConsoleUser) -> HttpResponse {
    reasons_page(&desk, &console, StatusCode::OK, None, None).await
}

#[post("/console/reasons")]
async fn add_reason(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    change(&desk, &console, None, &form).await
}

/// Writes a canned text's words again; its kind stays.
#[post("/console/reasons/{id}")]
async fn edit_reason(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<i64>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    change(&desk, &console, Some(path.into_inner()), &form).await
}

#[post("/console/reasons/{id}/delete")]
async fn remove_reason(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<i64>,
) -> HttpResponse {
    if let Some(refusal) = supervisors_only(&console) {
        return refusal;
    }
    match desk
        .store
        .remove_canned_reason(path.into_inner(), console.user.id, desk.clock.now())
        .await
    {
        Ok(()) | Err(StoreError::NotFound) => see_other("/console/reasons"),
        Err(e) => crate::routes::failure_page("The reason was not removed", &e),
    }
}
