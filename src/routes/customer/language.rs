//! Which language a customer's page speaks: the `lang` cookie the switch on every page
//! sets, else the browser's Accept-Language, else English. The switch is a plain link
//! to `/language?to=es&back=…`, so it works without scripts.

use std::future::{Ready, ready};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Deserialize;

use crate::desk::Desk;
use crate::i18n::{Lang, language_list};

/// The cookie that keeps the language chosen with the switch.
pub const LANGUAGE_COOKIE: &str = "lang";
/// A year: a preference, not a session.
const COOKIE_MAX_AGE_DAYS: i64 = 365;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(switch_language);
}

/// The language of a request, and the link that switches a page to the other one.
pub struct Reader {
    pub t: Lang,
    pub switch: LanguageSwitch,
}

/// The link on every customer page to the same page in the other language.
pub struct LanguageSwitch {
    pub to: Lang,
    pub href: String,
    /// The support contact (`support_contact`, as HTML), which the footer of every
    /// customer page shows: it travels with the switch, the one part every customer
    /// page is given.
    pub contact: Option<String>,
}

impl LanguageSwitch {
    /// Back to `back` (a URL of this desk, absolute or a path) in the other language.
    pub fn to_page(from: Lang, back: &str) -> Self {
        let to = from.other();
        let back = back
            .find("://")
            .and_then(|scheme| {
                let host_and_path = &back[scheme + 3..];
                host_and_path.find('/').map(|p| &host_and_path[p..])
            })
            .unwrap_or(back);
        Self {
            to,
            href: format!(
                "/language?to={}&back={}",
                to.code(),
                percent_encoding::utf8_percent_encode(back, percent_encoding::NON_ALPHANUMERIC)
            ),
            contact: None,
        }
    }

    /// With the desk's support contact, when it has one.
    #[must_use]
    pub fn with_contact(self, desk: &Desk) -> Self {
        Self {
            contact: desk
                .settings
                .console
                .support_contact
                .as_deref()
                .map(super::contact::contact_html),
            ..self
        }
    }
}

/// The request's language: the switch's cookie, else Accept-Language, else English.
pub fn language_of(request: &HttpRequest) -> Lang {
    request
        .cookie(LANGUAGE_COOKIE)
        .and_then(|cookie| Lang::parse(cookie.value()))
        .or_else(|| {
            request
                .headers()
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|value| value.to_str().ok())
                .and_then(Lang::from_accept_language)
        })
        .unwrap_or_default()
}

impl Reader {
    /// The switch leads back to the page itself when it was fetched; a page that answers
    /// a form (POST) cannot be fetched again, so its switch leads to the start page
    /// unless the handler names a better one with [`Reader::back_to`].
    pub fn of(request: &HttpRequest) -> Self {
        let t = language_of(request);
        let back = if request.method() == Method::GET {
            request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned()
        } else {
            "/".to_owned()
        };
        let switch = LanguageSwitch::to_page(t, &back);
        let switch = match request.app_data::<web::Data<Desk>>() {
            Some(desk) => switch.with_contact(desk),
            None => switch,
        };
        Self { t, switch }
    }

    /// The switch leads to `back` (a URL of this desk, absolute or a path) instead.
    #[must_use]
    pub fn back_to(self, back: &str) -> Self {
        let contact = self.switch.contact;
        Self {
            switch: LanguageSwitch {
                contact,
                ..LanguageSwitch::to_page(self.t, back)
            },
            ..self
        }
    }
}

impl actix_web::FromRequest for Reader {
    type Error = std::convert::Infallible;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(Ok(Self::of(request)))
    }
}

#[derive(Deserialize)]
struct SwitchQuery {
    to: Option<String>,
    back: Option<String>,
}

/// Only a path on this desk: `//evil.example` and `https://…` would make the switch an
/// open redirect. Our own links are percent-encoded, so anything but printable ASCII
/// (which a `Location` header could not carry anyway) is refused too.
fn local_path(back: Option<&str>) -> &str {
    match back {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && path.chars().all(|c| c.is_ascii_graphic()) =>
        {
            path
        }
        _ => "/",
    }
}

#[get("/language")]
async fn switch_language(
    desk: web::Data<Desk>,
    request: HttpRequest,
    query: web::Query<SwitchQuery>,
) -> HttpResponse {
    let Some(lang) = query.to.as_deref().and_then(Lang::parse) else {
        let reader = Reader::of(&request);
        return crate::routes::customer_message_page(
            StatusCode::BAD_REQUEST,
            &reader,
            "page.language_unknown_title",
            reader
                .t
                .fill("page.language_unknown_text")
                .with("languages", language_list())
                .to_string(),
        );
    };
    let cookie = Cookie::build(LANGUAGE_COOKIE, lang.code())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(crate::routes::secure_cookies(&desk))
        .max_age(actix_web::cookie::time::Duration::days(COOKIE_MAX_AGE_DAYS))
        .finish();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, local_path(query.back.as_deref())))
        .cookie(cookie)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_only_leads_back_to_this_desk() {
        assert_eq!(local_path(Some("/status/1?t=x")), "/status/1?t=x");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(Some("/a\nLocation: x")), "/");
        assert_eq!(local_path(Some("/año")), "/");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn the_switch_keeps_the_page_and_its_query() {
        let switch = LanguageSwitch::to_page(Lang::En, "/status/R-1?t=ab");
        assert_eq!(switch.to, Lang::Es);
        assert_eq!(
            switch.href,
            "/language?to=es&back=%2Fstatus%2FR%2D1%3Ft%3Dab"
        );
    }

    #[test]
    fn a_full_url_of_the_desk_becomes_its_path() {
        let reader = Reader {
            t: Lang::Es,
            switch: LanguageSwitch::to_page(Lang::Es, "/"),
        }
        .back_to("https://desk.example:8443/status/R-1?t=ab");
        assert_eq!(reader.switch.to, Lang::En);
        assert!(
            reader
                .switch
                .href
                .ends_with("back=%2Fstatus%2FR%2D1%3Ft%3Dab")
        );
    }
}
