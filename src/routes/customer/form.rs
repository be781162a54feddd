//! The request form: what the customer fills in, its answer (a ticket number and the
//! status link), and its problems next to their fields. It works without JavaScript and
//! on a phone.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;

use super::address::{self, FixForm};
use crate::desk::Desk;
use crate::domain::{CustomerRole, TicketNumber};
use crate::i18n::Lang;
use crate::intake::{self, FieldIssue, IntakeError, SubmissionField};
use crate::routes::{ErrorAnswer, LanguageSwitch, Reader, html, refused, upload};
use crate::store::Customer;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(form).service(submit);
}

/// A text field of the form: its label and hint are catalogue keys.
pub struct TextField {
    pub name: &'static str,
    pub label: &'static str,
    pub hint: Option<&'static str>,
    pub kind: &'static str,
    pub autocomplete: &'static str,
    pub required: bool,
}

/// The plain text inputs the form draws in a loop, in order; country, role, language and
/// the export and photo fields have markup of their own in `pages/form.html`.
const FORM_TEXT_INPUTS: &[TextField] = &[
    TextField {
        name: SubmissionField::Name.as_str(),
        label: "form.name_label",
        hint: None,
        kind: "text",
        autocomplete: "name",
        required: true,
    },
    TextField {
        name: SubmissionField::Email.as_str(),
        label: "form.email_label",
        hint: Some("form.email_hint"),
        kind: "email",
        autocomplete: "email",
        required: true,
    },
    TextField {
        name: SubmissionField::Phone.as_str(),
        label: "form.phone_label",
        hint: Some("form.phone_hint"),
        kind: "tel",
        autocomplete: "tel",
        required: false,
    },
    TextField {
        name: SubmissionField::Company.as_str(),
        label: "form.company_label",
        hint: None,
        kind: "text",
        autocomplete: "organization",
        required: false,
    },
    TextField {
        name: SubmissionField::PurchaseChannel.as_str(),
        label: "form.purchase_channel_label",
        hint: Some("form.purchase_channel_hint"),
        kind: "text",
        autocomplete: "off",
        required: false,
    },
];

/// Countries offered in the form: every ISO 3166-1 alpha-2 code (from Debian's iso-codes
/// 4.15), named by the catalogue's `country.XX` in each language.
const COUNTRIES: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// The form's country list in each language, in that language's alphabetical order:
/// made once, not on every form (a submission makes one too, for its errors).
static COUNTRY_LISTS: std::sync::LazyLock<Vec<Vec<(&'static str, String)>>> =
    std::sync::LazyLock::new(|| {
        Lang::ALL
            .iter()
            .map(|t| {
                let mut list: Vec<(&'static str, String)> = COUNTRIES
                    .iter()
                    .map(|code| (*code, t.text(&format!("country.{code}"))))
                    .collect();
                // Accents sort with their letter ("Émirats" among the E's), close enough
                // to a collation for one short list.
                list.sort_by_key(|(_, name)| sort_key(name));
                list
            })
            .collect()
    });

/// The form's country list in the reader's language.
fn countries(t: Lang) -> &'static [(&'static str, String)] {
    &COUNTRY_LISTS[t as usize]
}

fn sort_key(name: &str) -> String {
    // Letters with marks sort with their letter ("Åland" among the A's, "Côte d'Ivoire"
    // among the C's), as both languages' alphabetical lists do.
    name.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' => 'a',
            'ç' => 'c',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ñ' => 'n',
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ý' | 'ÿ' => 'y',
            other => other,
        })
        .collect()
}

/// The catalogue key of a role's name.
fn role_key(role: CustomerRole) -> &'static str {
    match role {
        CustomerRole::EndUser => "role.end_user",
        CustomerRole::Installer => "role.installer",
        CustomerRole::Reseller => "role.reseller",
        CustomerRole::Distributor => "role.distributor",
    }
}

#[derive(Template)]
#[template(path = "pages/form.html")]
struct FormPage {
    t: Lang,
    switch: LanguageSwitch,
    values: BTreeMap<SubmissionField, String>,
    errors: Vec<FieldIssue>,
    general_error: Option<String>,
    text_fields: &'static [TextField],
    countries: &'static [(&'static str, String)],
    roles: Vec<(&'static str, &'static str)>,
    max_photo_mb: u64,
    /// The files a refused submission kept for the retry (`intake::kept`).
    kept: Vec<intake::kept::KeptFile>,
    /// Each file field's limit in bytes, which the page checks before sending where
    /// scripts run.
    limits: BTreeMap<&'static str, u64>,
}

impl FormPage {
    fn new(desk: &Desk, reader: Reader) -> Self {
        Self {
            values: BTreeMap::new(),
            errors: Vec::new(),
            general_error: None,
            text_fields: FORM_TEXT_INPUTS,
            countries: countries(reader.t),
            roles: CustomerRole::ALL
                .iter()
                .map(|r| (r.as_str(), role_key(*r)))
                .collect(),
            max_photo_mb: desk.settings.intake.max_label_photo_bytes / (1024 * 1024),
            kept: Vec::new(),
            limits: [
                SubmissionField::ExportXml,
                SubmissionField::ExportQr,
                SubmissionField::LabelPhoto,
            ]
            .into_iter()
            .map(|field| (field.as_str(), field.limit(desk)))
            .collect(),
            t: reader.t,
            switch: reader.switch,
        }
    }

    /// What was typed in the field `name` (the template names fields as the form does).
    fn value(&self, name: &str) -> &str {
        SubmissionField::from_name(name)
            .and_then(|field| self.values.get(&field))
            .map_or("", String::as_str)
    }

    /// The pass of the file kept for `field` (`label_photo`, or `export` for either
    /// export file).
    fn kept_pass(&self, field: &str) -> Option<&str> {
        self.kept
            .iter()
            .find(|k| match field {
                "export" => k.field.is_export(),
                other => k.field.as_str() == other,
            })
            .map(|k| k.pass.as_str())
    }

    /// The limit of the file field `name`, in bytes.
    fn limit(&self, name: &str) -> u64 {
        self.limits.get(name).copied().unwrap_or(0)
    }

    /// What the page says when a chosen file is over the limit of the field `name`.
    fn too_large(&self, name: &str) -> String {
        self.t
            .fill("problem.upload_too_large")
            .with("size", upload::megabytes(self.limit(name)))
            .to_string()
    }

    fn error(&self, field: &str) -> Option<String> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| self.t.message(&e.message))
    }
}

#[derive(Template)]
#[template(path = "pages/submitted.html")]
struct SubmittedPage {
    t: Lang,
    switch: LanguageSwitch,
    number: TicketNumber,
    /// None for the same export from another address: the link went elsewhere.
    status_url: Option<String>,
    existing: bool,
    superseded: Vec<TicketNumber>,
    /// "Wrong address? Correct it", for the browser that sent the request.
    fix: Option<FixForm>,
    /// The address the confirmation went to, as typed.
    email: String,
}

impl SubmittedPage {
    /// "R-1, R-2": the tickets this one replaces.
    fn superseded_list(&self) -> String {
        self.superseded
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[get("/")]
async fn form(desk: web::Data<Desk>, reader: Reader) -> HttpResponse {
    html(StatusCode::OK, &FormPage::new(&desk, reader))
}

/// The form for a new request after one whose response did not work, filled in with
/// what of the earlier ticket says nothing about its customer (country and role): the
/// status link that leads here may be in other hands (forwarded, or mailed to a
/// mistyped address before it was corrected), and the status page never shows a name,
/// an address or a phone number to whoever holds it.
pub(super) fn filled_in(desk: &Desk, reader: Reader, customer: &Customer) -> HttpResponse {
    let mut page = FormPage::new(desk, reader);
    page.values = [
        (
            SubmissionField::Country,
            customer.country.as_str().to_owned(),
        ),
        (SubmissionField::Role, customer.role.as_str().to_owned()),
    ]
    .into_iter()
    .collect();
    html(StatusCode::OK, &page)
}

/// The form posts the same multipart fields as the API; problems come back on the form,
/// with what was typed kept and each problem next to its field.
#[post("/")]
async fn submit(
    desk: web::Data<Desk>,
    request: HttpRequest,
    reader: Reader,
    payload: web::Payload,
) -> HttpResponse {
    let mut page = FormPage::new(&desk, reader);
    let read = match upload::check_address_limit(&desk, &request).await {
        Ok(()) => upload::read_submission(&desk, &request, payload).await,
        Err(error) => Err(error),
    };
    let mut raw = match read {
        Ok(raw) => raw,
        Err(error) => {
            page.general_error = Some(page.t.message(&error.message));
            let page = FormPage {
                errors: error.issues.clone(),
                ..page
            };
            return refused(&error, &page);
        }
    };
    // Files a refused try kept come back in place of the ones not sent again.
    let restored = intake::kept::restore(&desk, &mut raw).await;
    page.values = raw.text.clone();
    let files = raw.files.clone();
    let too_large = raw.too_large.is_some();
    match intake::submit(&desk, raw).await {
        Ok(submitted) => {
            let typed_email = page.value(SubmissionField::Email.as_str());
            submitted_page(&desk, &request, page.t, typed_email, submitted)
        }
        Err(error) => {
            // A conflict names the export's own field; the form has one place for it.
            let conflict = matches!(error, IntakeError::Conflict(..));
            let answer = ErrorAnswer::from(error);
            if answer.issues.is_empty() {
                page.general_error = Some(page.t.message(&answer.message));
            } else if conflict {
                page.errors = answer.issues.iter().cloned().map(on_the_form).collect();
            } else {
                page.errors = answer.issues.clone();
            }
            // What passed its checks is kept, so the retry sends only what was wrong:
            // after mistakes the customer fixes (422, or a file over its limit), not
            // after a refusal that a retry cannot mend (a conflict, a limit).
            if matches!(answer.status.as_u16(), 413 | 422) {
                page.kept = intake::kept::keep(&desk, &files, &restored, &page.errors).await;
            }
            // A file over its limit is a 413, said next to its field with everything
            // else that is wrong, and what was typed kept.
            let answer = if too_large {
                answer.with_status(StatusCode::PAYLOAD_TOO_LARGE)
            } else {
                answer
            };
            refused(&answer, &page)
        }
    }
}

/// A conflict's issue, placed where the form shows the export.
fn on_the_form(issue: FieldIssue) -> FieldIssue {
    let field = if SubmissionField::from_name(issue.field).is_some_and(SubmissionField::is_export) {
        SubmissionField::EXPORT_GROUP
    } else {
        issue.field
    };
    FieldIssue { field, ..issue }
}

/// The answer to a submission from the form. A new ticket's page sets the cookie that
/// lets this browser correct the address for a while, and shows the form for it; the
/// same export sent again from this browser shows the form too, while the cookie lives.
fn submitted_page(
    desk: &Desk,
    request: &HttpRequest,
    t: Lang,
    typed_email: &str,
    submitted: intake::Submitted,
) -> HttpResponse {
    let number = submitted.number;
    let (code, pass, cookie) = if submitted.existing {
        (
            StatusCode::OK,
            address::pass_of(desk, request, &number),
            None,
        )
    } else {
        let pass = crate::customer::address::new_pass(desk, &number);
        let cookie = address::pass_cookie(desk, &number, &pass);
        (StatusCode::CREATED, Some(pass), Some(cookie))
    };
    // A page without the status link must not lead to it through its language switch.
    let back = submitted.status_url.as_deref().unwrap_or("/");
    let page = SubmittedPage {
        t,
        switch: LanguageSwitch::to_page(t, back).with_contact(desk),
        fix: pass.map(|pass| FixForm::new(&number, &pass, typed_email)),
        email: typed_email.to_owned(),
        number,
        status_url: submitted.status_url,
        existing: submitted.existing,
        superseded: submitted.superseded,
    };
    let mut response = html(code, &page);
    if let Some(cookie) = cookie
        && let Err(error) = response.add_cookie(&cookie)
    {
        tracing::error!(%error, "the address-fix cookie could not be set");
    }
    response
}
