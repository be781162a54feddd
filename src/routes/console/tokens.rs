//! A console user's own API tokens: named, scoped, expiring; listed and revocable here.
//! The token itself is shown once, at creation, and stored only as a hash.

use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::guard::ConsoleUser;
use crate::desk::Desk;
use crate::routes::html;
use crate::store::{NewApiToken, StoreError, TokenScope};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(tokens_view).service(create).service(revoke);
}

/// Tokens live at most a year.
const MAX_DAYS: u32 = 366;

struct TokenRowView {
    id: i64,
    name: String,
    scope: &'static str,
    created: String,
    expires: String,
    /// When a request last came with it, to the minute: a token nobody uses any more,
    /// or one used where nobody expects, stands out.
    last_used: String,
    state: &'static str,
    live: bool,
}

#[derive(Template)]
#[template(path = "console/tokens.html")]
struct TokensPage {
    nav: super::Nav,
    csrf: String,
    tokens: Vec<TokenRowView>,
    new_token: Option<String>,
    error: Option<String>,
}

async fn tokens_page(
    desk: &Desk,
    console: &ConsoleUser,
    status: StatusCode,
    new_token: Option<String>,
    error: Option<String>,
) -> HttpResponse {
    let now = desk.clock.now();
    let tokens = match desk.store.api_tokens(console.user.id).await {
        Ok(tokens) => tokens,
        Err(e) => {
            return crate::routes::failure_page("Tokens are unavailable", &e);
        }
    };
    let page = TokensPage {
        nav: super::Nav::of(console),
        csrf: console.csrf.clone(),
        tokens: tokens
            .into_iter()
            .map(|t| {
                let expired = t.expires_at.is_some_and(|e| e <= now);
                TokenRowView {
                    id: t.id,
                    name: t.name,
                    scope: t.scope.as_str(),
                    created: t.created_at.to_string(),
                    expires: t.expires_at.map_or("never".to_owned(), |e| e.to_string()),
                    last_used: t.last_used_at.map_or("never".to_owned(), |at| {
                        format!("{} ago", super::age(at, now))
                    }),
                    state: if t.revoked {
                        "revoked"
                    } else if expired {
                        "expired"
                    } else {
                        "live"
                    },
                    live: !t.revoked && !expired,
                }
            })
            .collect(),
        new_token,
        error,
    };
    html(status, &page)
}

#[get("/console/tokens")]
async fn tokens_view(desk: web::Data<Desk>, console: ConsoleUser) -> HttpResponse {
    tokens_page(&desk, &console, StatusCode::OK, None, None).await
}

#[derive(Deserialize)]
struct NewTokenForm {
    name: Option<String>,
    scope: Option<String>,
    days: Option<String>,
}

#[post("/console/tokens")]
async fn create(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    form: web::Form<NewTokenForm>,
) -> HttpResponse {
    let invalid = |message: &str| {
        tokens_page(
            &desk,
            &console,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(message.to_owned()),
        )
    };
    let name = match crate::domain::PlainText::parse(form.name.as_deref().unwrap_or(""), 100) {
        Ok(name) => name,
        Err(e) => return invalid(&format!("The name {e}.")).await,
    };
    let Some(scope) = form.scope.as_deref().and_then(TokenScope::parse) else {
        return invalid("Choose the read or the decide scope.").await;
    };
    let Some(days) = form
        .days
        .as_deref()
        .and_then(|d| d.trim().parse::<u32>().ok())
        .filter(|d| (1..=MAX_DAYS).contains(d))
    else {
        return invalid(&format!(
            "Give the number of days the token works, from 1 to {MAX_DAYS}."
        ))
        .await;
    };
    let now = desk.clock.now();
    let (plain, hash) = crate::auth::new_api_token();
    let token = NewApiToken {
        user: console.user.id,
        token_hash: &hash,
        name: name.as_str(),
        scope,
        expires_at: Some(now.plus_seconds(i64::from(days) * 86_400)),
        created_at: now,
    };
    match desk.store.create_api_token(&token).await {
        Ok(()) => tokens_page(&desk, &console, StatusCode::CREATED, Some(plain), None).await,
        Err(e) => crate::routes::failure_page("The token was not created", &e),
    }
}

#[post("/console/tokens/{id}/revoke")]
async fn revoke(desk: web::Data<Desk>, console: ConsoleUser, path: web::Path<i64>) -> HttpResponse {
    match desk
        .store
        .revoke_api_token(console.user.id, path.into_inner(), desk.clock.now())
        .await
    {
        Ok(()) | Err(StoreError::NotFound) => HttpResponse::SeeOther()
            .insert_header((LOCATION, "/console/tokens"))
            .finish(),
        Err(e) => crate::routes::failure_page("The token was not revoked", &e),
    }
}
