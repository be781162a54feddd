//! The API's OpenAPI 3.1 document (issue 20), generated from the handlers' annotations
//! and their JSON types, served at `GET /api/v1/openapi.json`. CI checks the running
//! desk against it with schemathesis (tests/it/openapi.rs).

use actix_web::{HttpResponse, get, web};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{agent, installer, intake};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "resetdesk API",
        description = "Password reset requests for cameras and recorders: customers and registered installers send them (`/api/v1/requests`), installers register their devices, agents work the queue and decide. JSON in and out; errors are `ApiError` in English.",
    ),
    paths(
        intake::submit,
        agent::list,
        agent::show,
        agent::claim,
        agent::approve,
        agent::reject,
        agent::message,
        agent::reasons,
        installer::register_devices,
        installer::devices,
        document,
    ),
    modifiers(&Tokens),
    tags(
        (name = "requests", description = "A reset request: the export and the label photo."),
        (name = "agents", description = "The queue and decisions, with an agent's token (`resetdesk user token`)."),
        (name = "installers", description = "A registered installer's devices, with their token (`resetdesk installer token`)."),
        (name = "meta", description = "This document."),
    )
)]
pub struct ApiDoc;

/// The two kinds of bearer token.
struct Tokens;

impl Modify for Tokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, what) in [
            (
                "agent_token",
                "an agent's API token (rdt_…), from `resetdesk user token` or the console",
            ),
            (
                "installer_token",
                "a registered installer's token (rdi_…), from `resetdesk installer token`",
            ),
        ] {
            let mut scheme = Http::new(HttpAuthScheme::Bearer);
            scheme.description = Some(what.to_owned());
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
    }
}

/// The document as JSON, made once.
pub fn document_json() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        doc.to_pretty_json().unwrap_or_else(|e| {
            format!("{{\"error\": \"the document could not be written: {e}\"}}")
        })
    })
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(document);
}

/// This document: every `/api/v1` route, its parameters, bodies and answers.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "the OpenAPI 3.1 document", content_type = "application/json")))]
#[get("/api/v1/openapi.json")]
async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document_json())
}
