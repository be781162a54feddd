//! A customer reads the desk in their own language: the pages from Accept-Language or the
//! switch on every page, and the e-mails in the language the request was written in.
//! The expected texts come from the catalogues themselves, plus a few words typed here,
//! so a catalogue that quietly fell back to English would fail.

use resetdesk::i18n::Lang;

use crate::desk_support::{
    Backend, TestApp, browser, customer_form, export_part, file_part, label_photo, spawn_app,
    spawn_app_on,
};
use crate::html;

async fn get(client: &reqwest::Client, url: &str, accept: Option<&str>) -> (u16, String) {
    let mut request = client.get(url);
    if let Some(accept) = accept {
        request = request.header("accept-language", accept);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// A complete request from a fresh device, its export sent as `kind`, written in
/// `language` (none: the field left out, as an API client may).
fn form_in(
    app: &TestApp,
    serial: &str,
    email: &str,
    kind: &str,
    language: Option<&str>,
) -> reqwest::multipart::Form {
    let mut device = app.device(serial, "DS-2CD2143G2-I");
    let request = app.export(&mut device, 0, app.now());
    let form = export_part(customer_form(email), &request, kind);
    let form = match language {
        Some(language) => form.text("language", language.to_owned()),
        None => form,
    };
    form.part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    )
}

#[tokio::test]
async fn the_form_speaks_the_browsers_language_and_offers_the_other() {
    let app = spawn_app().await;
    let client = browser();

    let (status, english) = get(&client, &app.url("/"), None).await;
    assert_eq!(status, 200);
    assert!(english.contains("<html lang=\"en\">"));
    assert!(english.contains("Send request"), "{english}");
    assert!(english.contains(">Español</a>"));
    assert!(english.contains("name=\"language\" value=\"en\""));

    let (_, spanish) = get(&client, &app.url("/"), Some("es-MX,es;q=0.9,en;q=0.5")).await;
    assert!(spanish.contains("<html lang=\"es\">"));
    assert!(spanish.contains("Enviar solicitud"), "{spanish}");
    assert!(spanish.contains(&Lang::Es.text("form.heading")));
    assert!(spanish.contains(">English</a>"));
    assert!(spanish.contains("name=\"language\" value=\"es\""));
    // The lists too: countries by their Spanish names, in Spanish order.
    assert!(spanish.contains(">Alemania</option>") && !spanish.contains(">Germany<"));
    let countries = html::texts(&spanish, "#country option");
    let place = |name: &str| countries.iter().position(|c| c == name).unwrap();
    assert!(place("Alemania") < place("Argentina"));
    assert!(spanish.contains(">Instalador</option>"));
    // Not a word of the English form is left (apart from names that are the same).
    for english_only in [
        "About you",
        "Your name",
        "Choose your country",
        "Label photo",
    ] {
        assert!(
            !spanish.contains(english_only),
            "{english_only} in the Spanish form"
        );
    }

    // A language the desk does not speak falls back to English.
    let (_, german) = get(&client, &app.url("/"), Some("de-DE,de;q=0.9")).await;
    assert!(german.contains("<html lang=\"en\">"));
}

#[tokio::test]
async fn the_switch_keeps_the_page_and_wins_over_the_browser() {
    let app = spawn_app().await;
    let client = browser();
    let (_, page) = get(&client, &app.url("/"), Some("en")).await;
    let switch = html::select_attr(&page, "#language-switch", "href");
    assert_eq!(switch, "/language?to=es&back=%2F");

    let response = client.get(app.url(&switch)).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("lang=es;"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );

    // The cookie beats the browser's own preference from now on.
    let (_, page) = get(&client, &app.url("/"), Some("en")).await;
    assert!(page.contains("<html lang=\"es\">"), "{page}");

    // The switch leads back only to this desk.
    for (back, location) in [
        ("%2Fstatus%2FX%3Ft%3Dabc", "/status/X?t=abc"),
        ("%2F%2Fevil.example%2F", "/"),
        ("https%3A%2F%2Fevil.example%2F", "/"),
    ] {
        let response = client
            .get(app.url(&format!("/language?to=en&back={back}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers()["location"], location);
    }

    let (status, page) = get(&client, &app.url("/language?to=xx"), None).await;
    assert_eq!(status, 400);
    assert!(page.contains("en, es"), "{page}");
    let (status, _) = get(&client, &app.url("/language"), None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_mistyped_address_gets_a_page_in_the_readers_language() {
    let app = spawn_app().await;
    let client = browser();
    let (status, page) = get(&client, &app.url("/statsu/RQ-1"), Some("es")).await;
    assert_eq!(status, 404);
    assert!(
        page.contains(&Lang::Es.text("page.no_page_title")),
        "{page}"
    );
    assert!(page.contains("<html lang=\"es\">"));
    let (status, body) = get(&client, &app.url("/api/v1/nothing"), Some("es")).await;
    assert_eq!(status, 404);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["message"], "no such API route");
}

/// A Spanish form with mistakes: each problem in Spanish beside its field, and nothing
/// stored.
#[tokio::test]
async fn form_errors_are_in_the_forms_language() {
    let app = spawn_app().await;
    let client = browser();
    let form = reqwest::multipart::Form::new()
        .text("language", "es")
        .text("name", "Ana")
        .text("email", "ana-at-example.com")
        .text("country", "ES")
        .text("role", "installer")
        .text("reset_string", "hello");
    let response = client
        .post(app.url("/"))
        .header("accept-language", "es")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(page.contains("<html lang=\"es\">"));
    assert_eq!(
        html::text(&page, "#email-error"),
        Lang::Es.text("problem.email_no_at")
    );
    assert_eq!(
        html::text(&page, "#label_photo-error"),
        Lang::Es.text("problem.label_photo_missing")
    );
    assert!(page.contains(&Lang::Es.text("form.check_fields")));
    assert_eq!(app.stored_counts().await.0, 0);

    // The same mistakes through the API: English, for the integrator's logs.
    let response = app
        .submit(
            reqwest::multipart::Form::new()
                .text("name", "Ana")
                .text("email", "ana-at-example.com"),
        )
        .await;
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("exactly one @"), "{body}");
}

/// From a Spanish form to Spanish e-mails and pages, all the way to the keys.
async fn a_spanish_request_gets_spanish_mail(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let (number, status_url) = app
        .submit_form(form_in(
            &app,
            "DS-2CD2143G2-I/ES0000001",
            "ana@example.es",
            "string",
            Some("es"),
        ))
        .await;
    app.run_outbox().await;
    let acknowledgment = &app.mails_to("ana@example.es")[0];
    assert_eq!(
        acknowledgment.subject,
        format!("[{number}] Hemos recibido su solicitud de restablecimiento de contraseña")
    );
    assert!(
        acknowledgment.text.starts_with("Hola, Ana López:"),
        "{}",
        acknowledgment.text
    );
    assert!(
        acknowledgment
            .text
            .contains(&Lang::Es.text("mail.acknowledgment.wait"))
    );
    assert!(acknowledgment.html.contains("<html lang=\"es\">"));
    assert!(
        acknowledgment.html.contains("<strong>"),
        "the marks became tags"
    );
    assert!(
        !acknowledgment.text.contains("**"),
        "no marks in plain text"
    );

    // The status link opens in the browser's language, whatever the request's was.
    let client = browser();
    let (_, page) = get(&client, &status_url, Some("es")).await;
    assert!(
        page.contains(&Lang::Es.text("ticket_status.open")),
        "{page}"
    );
    let (_, page) = get(&client, &status_url, Some("en")).await;
    assert!(
        page.contains(&Lang::En.text("ticket_status.open")),
        "{page}"
    );

    app.approve_by_api(&number).await;
    app.run_outbox().await;
    let approved = app
        .mails_to("ana@example.es")
        .into_iter()
        .find(|m| m.subject.contains("Su respuesta"))
        .expect("the response in Spanish");
    assert_eq!(
        approved.subject,
        format!("[{number}] Su respuesta de restablecimiento de contraseña")
    );
    assert!(
        approved
            .text
            .contains("número de serie DS-2CD2143G2-I/ES0000001:  ")
    );
    assert_eq!(
        approved.attachments.len(),
        1,
        "the signed file, as in English"
    );

    // The switch on a status page comes back to the same ticket.
    let (_, page) = get(&client, &status_url, Some("es")).await;
    assert!(page.contains(&Lang::Es.text("status.expiry_heading")));
    let switch = html::select_attr(&page, "#language-switch", "href");
    let response = client.get(app.url(&switch)).send().await.unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        status_url.ends_with(&location),
        "{location} vs {status_url}"
    );
    let (_, page) = get(&client, &app.url(&location), Some("es")).await;
    assert!(page.contains("<html lang=\"en\">"), "the cookie wins");
}

/// An API client that sends no `language` field gets mail in its Accept-Language.
async fn an_api_request_takes_its_language_from_the_header(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let form = form_in(
        &app,
        "DS-2CD2143G2-I/ES0000002",
        "api@example.es",
        "xml",
        None,
    );
    let response = app
        .client
        .post(app.url("/api/v1/requests"))
        .header("accept-language", "es-ES")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    app.run_outbox().await;
    let mail = &app.mails_to("api@example.es")[0];
    assert!(mail.subject.contains("Hemos recibido"), "{}", mail.subject);

    // A language the desk does not speak is refused by name, and nothing is stored.
    let form = form_in(
        &app,
        "DS-2CD2143G2-I/ES0000003",
        "api@example.es",
        "xml",
        Some("klingon"),
    );
    let before = app.stored_counts().await;
    let response = app.submit(form).await;
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "language", "{body}");
    assert_eq!(app.stored_counts().await, before);
}

crate::on_both_backends!(
    a_spanish_request_gets_spanish_mail,
    an_api_request_takes_its_language_from_the_header
);
