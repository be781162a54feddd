//! The installers' API (issue 20): `Authorization: Bearer <token>` from `resetdesk
//! installer token`. An installer registers their devices here, and sends requests
//! through `POST /api/v1/requests` with the same token.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::desk::Desk;
use crate::installers::{self, InstallerError};
use crate::routes::{ApiError, ErrorAnswer};
use crate::store::{DeviceSource, Installer};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(register_devices).service(devices);
}

/// The bearer token a request carries, if any.
pub(super) fn bearer(request: &HttpRequest) -> Option<String> {
    request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
}

/// The installer a request's bearer token names; 401 without one or with another kind
/// of token.
pub(super) async fn installer_of(desk: &Desk, token: &str) -> Result<Installer, ErrorAnswer> {
    match installers::by_token(desk, token).await {
        Ok(Some(installer)) => Ok(installer),
        Ok(None) => Err(ErrorAnswer::new(
            StatusCode::UNAUTHORIZED,
            "the installer token is not valid or was revoked (an installer's token comes from `resetdesk installer token`)",
        )),
        Err(error) => Err(ErrorAnswer::internal(&error)),
    }
}

/// A registered installer authenticated by their token. Like the agents' guard, it is
/// the handler's only extractor that can fail; the body is a stream the handler reads
/// once the token is known good.
pub struct ApiInstaller(pub Installer);

impl FromRequest for ApiInstaller {
    type Error = ErrorAnswer;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ErrorAnswer>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let desk = request.app_data::<web::Data<Desk>>().cloned();
        let token = bearer(request);
        Box::pin(async move {
            let desk = desk.ok_or_else(|| {
                ErrorAnswer::new(StatusCode::SERVICE_UNAVAILABLE, "the desk is not ready")
            })?;
            let token = token.ok_or_else(|| {
                ErrorAnswer::new(
                    StatusCode::UNAUTHORIZED,
                    "this route needs an installer's token: send Authorization: Bearer <token>",
                )
            })?;
            installer_of(&desk, &token).await.map(ApiInstaller)
        })
    }
}

#[derive(Deserialize, ToSchema)]
pub(super) struct DevicesBody {
    /// At most 10,000 serials.
    serials: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct RegisteredJson {
    /// Newly registered to the installer.
    registered: usize,
    /// Already theirs (each keeps its first registration).
    already: usize,
    /// When the installer track counts the devices registered now.
    counts_from: String,
}

/// The largest body: `MAX_DEVICES_AT_ONCE` serials of 64 characters, quoted.
const MAX_BODY: usize = installers::MAX_DEVICES_AT_ONCE * 70 + 1024;

/// An installer registers devices they installed: `{"serials": [...]}`. They count for
/// the installer track after `installer_registration_hold_hours`.
#[utoipa::path(post, path = "/api/v1/installer/devices", tag = "installers",
    request_body(content = DevicesBody),
    security(("installer_token" = [])),
    responses(
        (status = 200, description = "registered (all or none)", body = RegisteredJson),
        (status = 400, description = "a body that is not {\"serials\": [...]}", body = ApiError),
        (status = 401, description = "no live installer token", body = ApiError),
        (status = 413, description = "more than the body of 10,000 serials", body = ApiError),
        (status = 422, description = "a serial that is not one, named, or none, or too many", body = ApiError),
        (status = 503, description = "the database is unreachable", body = ApiError),
    ))]
#[post("/api/v1/installer/devices")]
async fn register_devices(
    desk: web::Data<Desk>,
    caller: ApiInstaller,
    payload: web::Payload,
) -> Result<HttpResponse, ErrorAnswer> {
    let installer = caller.0;
    let body = super::read_body(
        payload,
        MAX_BODY,
        &format!(
            "at most {} devices at once: split the list",
            installers::MAX_DEVICES_AT_ONCE
        ),
    )
    .await?;
    let sent: DevicesBody = serde_json::from_slice(&body).map_err(|e| {
        ErrorAnswer::new(
            StatusCode::BAD_REQUEST,
            format!("send JSON like {{\"serials\": [\"DS-7608NI-K2/AB1234567\"]}} ({e})"),
        )
    })?;
    let serials = installers::serials(
        sent.serials
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("serials[{i}]"), s.as_str())),
    )
    .map_err(refusal)?;
    let now = desk.clock.now();
    let registered = installers::register(
        desk.store.as_ref(),
        &installer,
        &serials,
        DeviceSource::SelfRegistered,
        &installers::actor(&installer),
        now,
    )
    .await
    .map_err(refusal)?;
    let hold = i64::from(desk.settings.fast_tracks.installer_registration_hold_hours) * 3600;
    Ok(HttpResponse::Ok().json(RegisteredJson {
        registered: registered.added,
        already: registered.already,
        counts_from: now.plus_seconds(hold).to_string(),
    }))
}

#[derive(Serialize, ToSchema)]
pub(super) struct InstallerDeviceJson {
    serial: String,
    /// `import` (from the vendor) or `self` (registered by the installer).
    source: &'static str,
    registered_at: String,
}

#[derive(Serialize, ToSchema)]
pub(super) struct InstallerDevicesJson {
    devices: Vec<InstallerDeviceJson>,
}

/// The installer's devices, newest first (at most 1000).
#[utoipa::path(get, path = "/api/v1/installer/devices", tag = "installers",
    security(("installer_token" = [])),
    responses(
        (status = 200, description = "their devices", body = InstallerDevicesJson),
        (status = 401, description = "no live installer token", body = ApiError),
        (status = 503, description = "the database is unreachable", body = ApiError),
    ))]
#[get("/api/v1/installer/devices")]
async fn devices(desk: web::Data<Desk>, caller: ApiInstaller) -> Result<HttpResponse, ErrorAnswer> {
    let devices = desk
        .store
        .installer_devices(caller.0.id, 1000)
        .await
        .map_err(|e| ErrorAnswer::internal(&e))?;
    let list: Vec<InstallerDeviceJson> = devices
        .into_iter()
        .map(|d| InstallerDeviceJson {
            serial: d.serial,
            source: d.source.as_str(),
            registered_at: d.registered_at.to_string(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(InstallerDevicesJson { devices: list }))
}

fn refusal(error: InstallerError) -> ErrorAnswer {
    match error {
        InstallerError::Invalid(problems) => {
            ErrorAnswer::new(StatusCode::UNPROCESSABLE_ENTITY, problems.join("; "))
        }
        InstallerError::NotFound(_) => ErrorAnswer::new(StatusCode::NOT_FOUND, error.to_string()),
        InstallerError::Store(store) => ErrorAnswer::internal(&store),
    }
}
