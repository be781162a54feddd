//! The registered installer's own page (issue 20): their devices, sent as a CSV file
//! (a `serial` column, as their own records or a spreadsheet export have it) with their
//! token, for those who do not script the API. Nothing is kept between visits: the
//! token is the credential of each form sent, so no session or cookie can be ridden by
//! another site (and none needs a CSRF token).

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use futures_util::StreamExt;

use crate::desk::Desk;
use crate::installers::{self, InstallerError};
use crate::routes::html;
use crate::store::DeviceSource;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page).service(register);
}

/// The token field's longest value, and the whole form's bytes.
const MAX_TOKEN_BYTES: usize = 200;
const MAX_FORM_BYTES: usize = installers::MAX_CSV_BYTES + 64 * 1024;

#[derive(Template)]
#[template(path = "installer/devices.html")]
struct DevicesPage {
    hold_hours: u32,
    error: Option<String>,
    /// What was registered, and the installer's newest devices.
    done: Option<Done>,
}

struct Done {
    installer: String,
    added: usize,
    already: usize,
    counts_from: String,
    newest: Vec<(String, &'static str, String)>,
}

fn answer(
    desk: &Desk,
    status: StatusCode,
    error: Option<String>,
    done: Option<Done>,
) -> HttpResponse {
    let mut response = html(
        status,
        &DevicesPage {
            hold_hours: desk.settings.fast_tracks.installer_registration_hold_hours,
            error,
            done,
        },
    );
    // The page may show the installer's devices: kept by no browser or proxy.
    response.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    response
}

#[get("/installer")]
async fn page(desk: web::Data<Desk>) -> HttpResponse {
    answer(&desk, StatusCode::OK, None, None)
}

/// The form's two parts, read within their limits: the token and the CSV file.
async fn read_form(
    request: &HttpRequest,
    payload: web::Payload,
) -> Result<(String, Vec<u8>), (StatusCode, String)> {
    let refused = |status, said: &str| (status, said.to_owned());
    let mut multipart = Multipart::new(request.headers(), payload);
    let (mut token, mut csv) = (None, None);
    let mut total = 0usize;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|_| {
            refused(
                StatusCode::BAD_REQUEST,
                "the form could not be read: send it again from this page",
            )
        })?;
        let name = field.name().unwrap_or_default().to_owned();
        let limit = match name.as_str() {
            "token" => MAX_TOKEN_BYTES,
            "devices_csv" => installers::MAX_CSV_BYTES,
            _ => {
                return Err(refused(
                    StatusCode::BAD_REQUEST,
                    "the form has a field this page does not send: send it again from this page",
                ));
            }
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|_| {
                refused(
                    StatusCode::BAD_REQUEST,
                    "the form could not be read: send it again from this page",
                )
            })?;
            total += chunk.len();
            if bytes.len() + chunk.len() > limit || total > MAX_FORM_BYTES {
                return Err(refused(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the file is larger than 2 MB (about 10,000 devices): split it",
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        match name.as_str() {
            "token" => token = Some(String::from_utf8_lossy(&bytes).trim().to_owned()),
            _ => csv = Some(bytes),
        }
    }
    match (
        token.filter(|t| !t.is_empty()),
        csv.filter(|c| !c.is_empty()),
    ) {
        (Some(token), Some(csv)) => Ok((token, csv)),
        (None, _) => Err(refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "paste your installer token (it starts with rdi_)",
        )),
        (_, None) => Err(refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "choose the CSV file of your devices",
        )),
    }
}

#[post("/installer/devices")]
async fn register(
    desk: web::Data<Desk>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let (token, csv) = match read_form(&request, payload).await {
        Ok(form) => form,
        Err((status, said)) => return answer(&desk, status, Some(said), None),
    };
    let installer = match installers::by_token(&desk, &token).await {
        Ok(Some(installer)) => installer,
        Ok(None) => {
            let said = "that token is not a live installer token: ask the vendor for a new one";
            return answer(&desk, StatusCode::UNAUTHORIZED, Some(said.to_owned()), None);
        }
        Err(error) => {
            return crate::routes::failure_page("The devices were not registered", &error);
        }
    };
    let serials = match installers::serials_from_csv(&csv) {
        Ok(serials) => serials,
        Err(InstallerError::Invalid(problems)) => {
            let said = format!("Nothing was registered. {}", problems.join("; "));
            return answer(&desk, StatusCode::UNPROCESSABLE_ENTITY, Some(said), None);
        }
        Err(other) => {
            return crate::routes::failure_page("The devices were not registered", &other);
        }
    };
    let now = desk.clock.now();
    let store = desk.store.as_ref();
    let actor = installers::actor(&installer);
    let registered = match installers::register(
        store,
        &installer,
        &serials,
        DeviceSource::SelfRegistered,
        &actor,
        now,
    )
    .await
    {
        Ok(registered) => registered,
        Err(error) => {
            return crate::routes::failure_page("The devices were not registered", &error);
        }
    };
    let hold = i64::from(desk.settings.fast_tracks.installer_registration_hold_hours) * 3600;
    let newest = store
        .installer_devices(installer.id, 20)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|d| (d.serial, d.source.as_str(), d.registered_at.shown_utc()))
        .collect();
    let done = Done {
        installer: installer.email.to_string(),
        added: registered.added,
        already: registered.already,
        counts_from: now.plus_seconds(hold).shown_utc(),
        newest,
    };
    answer(&desk, StatusCode::OK, None, Some(done))
}
