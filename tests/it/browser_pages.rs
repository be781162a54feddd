//! The pages in a real browser (headless Chromium): a customer fills the form with each
//! kind of export on a laptop and on a phone, follows the status link; an agent signs in
//! to the console, sees the label photo beside the parsed fields, claims and approves;
//! the e-mails' HTML parts open as pages. Every page is screenshotted and must show no
//! console error and no accessibility violation (see `browser.rs`).

use std::path::{Path, PathBuf};

use resetdesk::domain::Timestamp;
use resetdesk::protocol::{export_xml, qr, reset_string};

use crate::browser::{Driver, Page, Viewport};
use crate::desk_support::{AGENT_PASSWORD, TestApp, label_photo, spawn_app};

/// The three ways a customer can send the device's request.
#[derive(Debug, Clone, Copy)]
enum ExportKind {
    XmlFile,
    TypedString,
    QrScreenshot,
    /// The XML file dropped onto the export section (the page's script files it).
    DroppedXml,
    /// A screenshot of the QR code pasted into the export section.
    PastedQr,
}

/// Hands `files` to the export section as a drop or a paste event carrying them, as the
/// browser does when a person drops files from their desktop or pastes a screenshot.
/// (WebDriver cannot drag from outside the browser; the event is the same.)
async fn drop_or_paste(page: &Page, event: &str, name: &str, media_type: &str, bytes: &[u8]) {
    use data_encoding::BASE64;
    page.client
        .execute(
            r#"const [event, name, type, base64] = arguments;
               const bytes = Uint8Array.from(atob(base64), c => c.charCodeAt(0));
               const data = new DataTransfer();
               data.items.add(new File([bytes], name, { type }));
               const zone = document.getElementById('export-zone');
               zone.dispatchEvent(event === 'drop'
                   ? new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true })
                   : new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));"#,
            vec![
                event.into(),
                name.into(),
                media_type.into(),
                BASE64.encode(bytes).into(),
            ],
        )
        .await
        .unwrap();
    let said = page.text("#export-dropped").await;
    assert!(said.contains(name), "after the {event}: {said:?}");
}

/// Files a customer has on their phone or laptop, written where the browser can pick them.
struct CustomerFiles {
    dir: tempfile::TempDir,
}

impl CustomerFiles {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

/// Fills the request form as a person would and sends it; returns the ticket number.
async fn fill_and_send_the_form(
    app: &TestApp,
    page: &Page,
    files: &CustomerFiles,
    serial: &str,
    email: &str,
    kind: ExportKind,
    by_keyboard: bool,
) -> String {
    let mut device = app.device(serial, "DS-2CD2143G2-I");
    let request = app.export(&mut device, 0, Timestamp::now());
    page.goto(&app.url("/")).await;
    page.check("form").await;
    page.type_into("#name", "Ana López").await;
    page.type_into("#email", email).await;
    page.type_into("#phone", "+34 600 123 456").await;
    page.choose("#country", "ES").await;
    page.choose("#role", "installer").await;
    match kind {
        ExportKind::XmlFile => {
            let xml = files.write("export.xml", export_xml::to_xml(&request).as_bytes());
            page.attach("#export_xml", &xml).await;
        }
        ExportKind::TypedString => {
            page.type_into("#reset_string", &reset_string::encode(&request))
                .await;
        }
        ExportKind::QrScreenshot => {
            let png = qr::encode_png(&reset_string::encode(&request)).unwrap();
            page.attach("#export_qr", &files.write("screen.png", &png))
                .await;
        }
        ExportKind::DroppedXml => {
            let xml = export_xml::to_xml(&request);
            drop_or_paste(
                page,
                "drop",
                "export.xml",
                "application/xml",
                xml.as_bytes(),
            )
            .await;
        }
        ExportKind::PastedQr => {
            let png = qr::encode_png(&reset_string::encode(&request)).unwrap();
            drop_or_paste(page, "paste", "image.png", "image/png", &png).await;
        }
    }
    page.attach("#label_photo", &files.write("label.jpg", &label_photo()))
        .await;
    page.screenshot("form-filled").await;
    if by_keyboard {
        // Reachable and usable without a mouse: Tab to the button, Enter sends.
        page.tab_to("button[type=submit]", 40).await;
        let before = page.url().await;
        page.press_enter().await;
        page.find("#ticket-number").await;
        assert_eq!(page.url().await, before, "the form posts to itself");
    } else {
        page.click_and_wait("button[type=submit]").await;
    }
    page.check("submitted").await;
    let number = page.text("#ticket-number").await;
    assert!(number.starts_with("RQ-"), "{number}");
    number
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_sends_each_kind_of_export_from_a_laptop_and_a_phone() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let app = spawn_app().await;
    let files = CustomerFiles::new();
    let laptop = [
        ExportKind::XmlFile,
        ExportKind::TypedString,
        ExportKind::QrScreenshot,
        ExportKind::DroppedXml,
    ];
    let phone = [
        ExportKind::XmlFile,
        ExportKind::TypedString,
        ExportKind::QrScreenshot,
        ExportKind::PastedQr,
    ];
    let mut n = 0;
    for (viewport, kinds) in [(Viewport::Desktop, laptop), (Viewport::Phone, phone)] {
        for kind in kinds {
            n += 1;
            let page = driver.open(&format!("customer-{kind:?}"), viewport).await;
            let email = format!("customer{n}@example.com");
            let number = fill_and_send_the_form(
                &app,
                &page,
                &files,
                &format!("FB{n:07}"),
                &email,
                kind,
                matches!((viewport, kind), (Viewport::Desktop, ExportKind::XmlFile)),
            )
            .await;
            // The status link on the confirmation page leads to the ticket.
            page.click_and_wait("#status-link").await;
            page.check("status").await;
            assert!(page.title().await.contains(&number));
            assert_eq!(
                page.text("#status").await,
                "Waiting for review by our support team"
            );
            page.close().await;
        }
    }
    assert_eq!(app.stored_counts().await.0, 8, "a ticket for each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_with_mistakes_says_what_is_wrong_next_to_each_field() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let app = spawn_app().await;
    for viewport in [Viewport::Desktop, Viewport::Phone] {
        let page = driver.open("form-errors", viewport).await;
        page.goto(&app.url("/")).await;
        page.type_into("#email", "not an address").await;
        page.click_and_wait("button[type=submit]").await;
        // axe-core checks that each invalid field still has its label and description.
        page.check_answered("errors", 422).await;
        // Every field marked invalid names an error message that is shown, and the
        // mark is more than a colour: the message has words and a sign.
        let unexplained = page
            .client
            .execute(
                r#"return [...document.querySelectorAll('[aria-invalid=true]')]
                     .filter(field => {
                         const ids = (field.getAttribute('aria-describedby') || '').split(/\s+/);
                         return !ids.some(id => {
                             const note = id && document.getElementById(id);
                             return note && note.classList.contains('error')
                                 && note.textContent.trim().length > 10
                                 && note.offsetParent !== null;
                         });
                     })
                     .map(field => field.id);"#,
                Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(
            unexplained,
            serde_json::json!([]),
            "fields without their error"
        );
        let marked = page
            .client
            .execute(
                "return document.querySelectorAll('[aria-invalid=true]').length",
                Vec::new(),
            )
            .await
            .unwrap();
        assert!(marked.as_u64().unwrap() >= 4, "{marked}");
        let email_error = page.text("#email-error").await;
        assert!(email_error.contains("e-mail"), "{email_error}");
        // What was typed is kept.
        let typed = page.find("#email").await.prop("value").await.unwrap();
        assert_eq!(typed.as_deref(), Some("not an address"));
        page.close().await;
    }
    assert_eq!(app.stored_counts().await.0, 0, "nothing was stored");
}

/// Signs in to the console in the browser: password, then the authenticator's code.
pub async fn sign_in(app: &TestApp, page: &Page, email: &str) {
    page.goto(&app.url("/console")).await;
    page.check("sign-in").await;
    page.type_into("#email", email).await;
    page.type_into("#password", AGENT_PASSWORD).await;
    page.click_and_wait("button[type=submit]").await;
    page.check("second-factor").await;
    // Each code is accepted once: move to a fresh 30-second step.
    app.advance(30);
    page.type_into("#code", &app.totp_code(email)).await;
    page.click_and_wait("button[type=submit]").await;
    assert!(
        page.url().await.ends_with("/console"),
        "{}",
        page.url().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_sees_the_evidence_side_by_side_claims_and_approves() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let app = spawn_app().await;
    app.create_agent("agent@vendor.test").await;
    let files = CustomerFiles::new();
    let customer = driver.open("agent-customer", Viewport::Desktop).await;
    let number = fill_and_send_the_form(
        &app,
        &customer,
        &files,
        "FB7654321",
        "owner@example.com",
        ExportKind::XmlFile,
        false,
    )
    .await;
    customer.close().await;

    let page = driver.open("agent", Viewport::Desktop).await;
    sign_in(&app, &page, "agent@vendor.test").await;
    page.check("queue").await;
    page.click_and_wait(&format!("a[href='/console/tickets/{number}']"))
        .await;
    page.check("ticket").await;
    // The label photo is loaded and sits beside the parsed fields, not below them.
    let loaded = page
        .client
        .execute(
            "const img = document.getElementById('label-photo'); return img.complete && img.naturalWidth;",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(loaded.as_u64(), Some(640), "the label photo shows");
    let (photo_x, photo_y, photo_w, _) = page.find("#label-photo").await.rectangle().await.unwrap();
    let (fields_x, fields_y, _, _) = page.find("#devices").await.rectangle().await.unwrap();
    assert!(
        fields_x >= photo_x + photo_w - 1.0 && (fields_y - photo_y).abs() < 80.0,
        "photo at ({photo_x}, {photo_y}) w {photo_w}, fields at ({fields_x}, {fields_y})"
    );
    assert!(page.text("#devices").await.contains("FB7654321"));

    page.click_and_wait("form[action$='/claim'] button").await;
    page.check("claimed").await;
    assert!(
        page.text("main")
            .await
            .contains("Claimed by: agent@vendor.test")
    );
    page.type_into("#approve-note", "Label matches the export.")
        .await;
    page.click_and_wait("#approve").await;
    page.check("approved").await;
    assert_eq!(page.text("#ticket-status").await, "Approved");
    page.close().await;

    // The customer's mails, opened as pages: the subject names the ticket, the page has
    // no error, and its status link works.
    app.run_outbox().await;
    let mails = app.mails_to("owner@example.com");
    assert_eq!(mails.len(), 2, "acknowledgment and response");
    let reader = driver.open("mails", Viewport::Phone).await;
    for (i, mail) in mails.iter().enumerate() {
        assert!(mail.subject.contains(&number), "{}", mail.subject);
        assert!(!mail.text.is_empty() && !mail.html.is_empty());
        let file = files.write(&format!("mail-{i}.html"), mail.html.as_bytes());
        reader.goto(&file_url(&file)).await;
        reader.check(&format!("mail-{i}")).await;
        let link = reader
            .find("a[href*='/status/']")
            .await
            .attr("href")
            .await
            .unwrap()
            .unwrap();
        reader.goto(&link).await;
        reader.check(&format!("mail-{i}-status")).await;
        assert!(reader.title().await.contains(&number));
    }
    // Once approved, the status page counts down to the response's expiry, live.
    let first = reader.text("#countdown").await;
    assert!(
        first.starts_with("47:") || first.starts_with("48:"),
        "{first}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let later = reader.text("#countdown").await;
    assert!(later < first, "the countdown moved: {first} then {later}");
    let warning = reader.text("#expiry-heading + p + p + p").await;
    assert!(warning.contains("Do not reboot"), "{warning}");

    // The mail "never arrived": a one-time code, sent to the address, shows the keys.
    reader.click_and_wait("#send-code").await;
    reader.check("code-sent").await;
    assert!(reader.text("#code-sent").await.contains("o•••@example.com"));
    app.run_outbox().await;
    let code = app.access_code_mailed_to("owner@example.com");
    reader.type_into("#code", &code).await;
    reader.click_and_wait("form button[type=submit]").await;
    reader.check("response-shown").await;
    let approval = mails
        .iter()
        .find(|m| m.subject.contains("response"))
        .unwrap();
    for (_, key) in crate::desk_support::keys_in(approval) {
        assert!(reader.text("#keys").await.contains(&key), "{key}");
    }
    reader.close().await;
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// A Spanish-speaking installer on a phone: switches the form to Spanish, drops the
/// export on it, sends it, follows the status link and reads the Spanish e-mails. Every
/// page passes the same checks as the English ones (console, axe-core).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_uses_the_desk_in_spanish_on_a_phone() {
    use resetdesk::i18n::Lang;
    let Some(driver) = Driver::start() else {
        return;
    };
    let app = spawn_app().await;
    let files = CustomerFiles::new();
    let page = driver.open("spanish", Viewport::Phone).await;
    page.goto(&app.url("/")).await;
    assert_eq!(page.text("#language-switch").await, "Español");
    page.click_and_wait("#language-switch").await;
    page.check("form-es").await;
    let lang = page
        .client
        .execute("return document.documentElement.lang", Vec::new())
        .await
        .unwrap();
    assert_eq!(lang, "es");
    assert_eq!(page.text("h1").await, Lang::Es.text("form.heading"));

    let mut device = app.device("ES0000001", "DS-2CD2143G2-I");
    let request = app.export(&mut device, 0, Timestamp::now());
    page.type_into("#name", "Lucía Fernández").await;
    page.type_into("#email", "lucia@example.es").await;
    page.choose("#country", "MX").await;
    page.choose("#role", "installer").await;
    let xml = export_xml::to_xml(&request);
    drop_or_paste(
        &page,
        "drop",
        "exportacion.xml",
        "application/xml",
        xml.as_bytes(),
    )
    .await;
    let said = page.text("#export-dropped").await;
    assert_eq!(
        said,
        Lang::Es
            .fill("form.dropped_xml")
            .with("name", "exportacion.xml")
            .to_string()
    );
    page.attach("#label_photo", &files.write("etiqueta.jpg", &label_photo()))
        .await;
    page.click_and_wait("button[type=submit]").await;
    page.check("submitted-es").await;
    assert_eq!(
        page.text("h1").await,
        Lang::Es.text("submitted.heading_new")
    );
    let number = page.text("#ticket-number").await;

    page.click_and_wait("#status-link").await;
    page.check("status-es").await;
    assert_eq!(
        page.text("#status").await,
        Lang::Es.text("ticket_status.open")
    );

    app.approve_by_api(&number).await;
    app.run_outbox().await;
    let mails = app.mails_to("lucia@example.es");
    assert_eq!(mails.len(), 2, "acknowledgment and response");
    for (i, mail) in mails.iter().enumerate() {
        let file = files.write(&format!("correo-{i}.html"), mail.html.as_bytes());
        page.goto(&file_url(&file)).await;
        page.check(&format!("mail-es-{i}")).await;
        assert!(mail.subject.starts_with(&format!("[{number}] ")));
        assert!(
            mail.text.starts_with("Hola, Lucía Fernández:"),
            "{}",
            mail.text
        );
    }
    // Back on the status page, still in Spanish (the cookie), with the countdown.
    let link = page
        .find("a[href*='/status/']")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    page.goto(&link).await;
    page.check("approved-es").await;
    assert_eq!(
        page.text("#expiry-heading").await,
        Lang::Es.text("status.expiry_heading")
    );
    // The time is said in UTC and, with scripts, in the reader's own time and offset.
    let local = page.text(".local-time").await;
    assert!(local.starts_with(" (") || local.starts_with('('), "{local}");
    assert!(
        local.contains("UTC") || local.contains("GMT"),
        "names its offset: {local}"
    );
    page.close().await;
}

/// Every country is on the form, sorted in the page's language, and typing a few letters
/// in the box above the list finds one (accents aside), on a laptop and on a phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_country_is_on_the_form_and_typing_finds_it() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let app = spawn_app().await;
    for (viewport, language) in [(Viewport::Desktop, "en"), (Viewport::Phone, "es")] {
        let page = driver.open("countries", viewport).await;
        page.goto(&app.url(&format!("/language?to={language}&back=/")))
            .await;
        let names = page
            .client
            .execute(
                "return [...document.querySelectorAll('#country option')].slice(1).map(o => o.value + ' ' + o.text);",
                Vec::new(),
            )
            .await
            .unwrap();
        let names: Vec<String> = names
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names.len(), 249, "{language}");
        for code in ["EC", "VE", "BO", "GT", "AX", "CI"] {
            assert!(
                names.iter().any(|n| n.starts_with(&format!("{code} "))),
                "{language}: {code}"
            );
        }
        let position = |code: &str| {
            names
                .iter()
                .position(|n| n.starts_with(&format!("{code} ")))
                .unwrap()
        };
        // In the page's language's order: Spain is "España" among the E's in Spanish.
        if language == "es" {
            assert!(position("EC") < position("ES") && position("ES") < position("US"));
            assert!(position("DE") < position("AD"), "Alemania before Andorra");
        } else {
            assert!(position("ES") > position("EC") && position("DE") < position("GR"));
        }
        page.type_into("#country-find", "ecuad").await;
        let chosen = page
            .client
            .execute(
                "return document.getElementById('country').value",
                Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(chosen, "EC", "{language}");
        let shown = page
            .client
            .execute(
                "return [...document.querySelectorAll('#country option')].filter(o => !o.hidden && o.value).length",
                Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(shown, 1, "{language}: only Ecuador is left in the list");
        // Accents aside: "peru" finds Perú in Spanish, Peru in English.
        page.client
            .execute(
                "const box = document.getElementById('country-find'); box.value = ''; box.dispatchEvent(new Event('input'));",
                Vec::new(),
            )
            .await
            .unwrap();
        page.type_into("#country-find", "peru").await;
        let chosen = page
            .client
            .execute(
                "return document.getElementById('country').value",
                Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(
            chosen, "PE",
            "the first found, once the chosen one is filtered out"
        );
        let shown: Vec<serde_json::Value> = page
            .client
            .execute(
                "return [...document.querySelectorAll('#country option')].filter(o => !o.hidden && o.value).map(o => o.value)",
                Vec::new(),
            )
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(shown, [serde_json::json!("PE")]);
        page.check(&format!("countries-{language}")).await;
        page.close().await;
    }
}

/// The approval e-mail on the narrowest phone and on a laptop: every key on one line
/// (never broken at its hyphen), nothing wider than the screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_in_the_approval_mail_never_break_and_fit_a_small_phone() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let app = spawn_app().await;
    let mut nvr = app.device("DS-7608NI-K2/8P0820231115CCRRJ12345678", "DS-7608NI-K2");
    let request = app.export(&mut nvr, 2, Timestamp::now());
    let (number, _) = app
        .submit_form(request_form(&request, "keys@example.com"))
        .await;
    app.approve_by_api(&number).await;
    app.run_outbox().await;
    let mail = app
        .mails_to("keys@example.com")
        .into_iter()
        .find(|m| !m.attachments.is_empty())
        .expect("the approval mail");
    let encoded = data_encoding::BASE64.encode(mail.html.as_bytes());
    for viewport in [Viewport::SmallPhone, Viewport::Desktop] {
        let page = driver.open("approval-mail", viewport).await;
        page.goto(&format!("data:text/html;charset=utf-8;base64,{encoded}"))
            .await;
        page.no_sideways_scroll(viewport.name()).await;
        let measured = page
            .client
            .execute(
                "return [...document.querySelectorAll('.key')].map(k => k.getClientRects().length);",
                Vec::new(),
            )
            .await
            .unwrap();
        let boxes: Vec<u64> = measured
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect();
        assert_eq!(
            boxes,
            [1, 1, 1],
            "{}: each of the 3 keys on one line",
            viewport.name()
        );
        page.screenshot("approval-mail").await;
        page.close().await;
    }
}

/// The form a customer sends for `request`, with the usual label photo.
fn request_form(
    request: &resetdesk::protocol::ResetRequest,
    email: &str,
) -> reqwest::multipart::Form {
    crate::desk_support::export_part(crate::desk_support::customer_form(email), request, "xml")
        .part(
            "label_photo",
            crate::desk_support::file_part(label_photo(), "label.jpg", "image/jpeg"),
        )
}

/// What a customer reads and does on the status page since issue 19, on a laptop and on
/// a phone, every page checked with axe-core: the request's deadline while it waits, a
/// message to support (said back once sent), the agent's words when a new photo is asked
/// for, and after "it did not work", what they said and a new request's form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_answers_the_customer_on_a_laptop_and_a_phone() {
    let Some(driver) = Driver::start() else {
        return;
    };
    for viewport in [Viewport::Desktop, Viewport::Phone] {
        let app = spawn_app().await;
        app.create_agent("agent@vendor.test").await;
        let agent = app.sign_in("agent@vendor.test").await;
        let submit = async |serial: &str, email: &str| {
            let mut device = app.device(serial, "DS-7608NI-K2");
            let request = app.export(&mut device, 0, Timestamp::now());
            let form = request_form(&request, email);
            app.submit_form(form).await
        };
        let page = driver.open("status-parts", viewport).await;

        // Waiting: the deadline, and a message to support.
        let (waiting, status_url) =
            submit("DS-7608NI-K2/8P0820231115CCRRJ44440001", "w@example.com").await;
        page.goto(&status_url).await;
        page.check("waiting").await;
        assert!(page.text("#deadline-heading").await.len() > 3);
        assert!(page.find("#no-reboot").await.is_displayed().await.unwrap());
        page.type_into(
            "#reply-message",
            "The recorder is in a locked room until 6 pm.",
        )
        .await;
        page.click_and_wait("#send-reply").await;
        page.check("replied").await;
        assert!(!page.text("#reply-done").await.is_empty());
        let listed = app
            .console_page(&agent, &format!("/console/tickets/{waiting}"))
            .await;
        assert!(listed.contains("locked room until 6 pm"));

        // A photo request from the list: the customer reads what to fix.
        let blurred = crate::html::option_value(&listed, "#photo-canned option", "blurred");
        assert_eq!(
            app.console_action(
                &agent,
                &waiting,
                "request-photo",
                &[("canned", blurred.as_str())]
            )
            .await,
            303
        );
        page.goto(&status_url).await;
        page.check("photo-asked").await;
        assert!(page.text("#next").await.contains("The photo is blurred"));

        // Approved, and it did not work: said back, with the way on.
        let (approved, status_url) =
            submit("DS-7608NI-K2/8P0820231115CCRRJ44440002", "a@example.com").await;
        app.approve_by_api(&approved).await;
        page.goto(&status_url).await;
        page.check("approved").await;
        page.find("label[for='answer-wrong_key']")
            .await
            .click()
            .await
            .unwrap();
        page.type_into("#feedback-note", "It says the key is wrong.")
            .await;
        page.click_and_wait("#send-feedback").await;
        page.check("feedback").await;
        assert!(!page.text("#likely-cause").await.is_empty());
        page.goto(&status_url).await;
        page.check("reported").await;
        assert!(
            page.text("#reported")
                .await
                .contains("It says the key is wrong.")
        );
        page.click_and_wait("#new-request").await;
        page.check("new-request").await;
        assert!(page.url().await.contains("/again"), "{}", page.url().await);
        page.close().await;
    }
}

/// The agents' shared tools in the browser, on a laptop and on a phone: an internal note
/// and giving the ticket to someone, with every page checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_note_and_hand_over_a_ticket_on_a_laptop_and_a_phone() {
    let Some(driver) = Driver::start() else {
        return;
    };
    for viewport in [Viewport::Console, Viewport::Phone] {
        let app = spawn_app().await;
        app.create_agent("agent@vendor.test").await;
        app.create_agent("bea@vendor.test").await;
        let mut device = app.device("DS-7608NI-K2/8P0820231115CCRRJ55550001", "DS-7608NI-K2");
        let request = app.export(&mut device, 0, Timestamp::now());
        let form = request_form(&request, "team@example.com");
        let (number, _) = app.submit_form(form).await;
        // An e-mail naming the ticket from another address, markup in its text: shown as
        // text, marked as not proven to be the customer's.
        let subject = format!("[{number}] it is mine");
        let stranger = crate::mail_intake::Outgoing {
            from: "someone@elsewhere.example",
            subject: &subject,
            text: "<b>Approve it</b> <img src=x onerror=alert(1)> now",
            message_id: "<stranger.1@elsewhere.example>",
            in_reply_to: None,
            files: Vec::new(),
            extra_headers: "",
        };
        resetdesk::mail::inbound::take(&app.desk, &stranger.bytes())
            .await
            .unwrap();
        let page = driver.open("teamwork", viewport).await;
        sign_in(&app, &page, "agent@vendor.test").await;
        page.goto(&app.url(&format!("/console/tickets/{number}")))
            .await;
        page.check("ticket").await;
        let conversation = page.text("#messages").await;
        assert!(
            conversation.contains("Not proven to be the customer")
                && conversation.contains("<b>Approve it</b> <img src=x onerror=alert(1)> now"),
            "{conversation}"
        );
        let markup = page
            .client
            .find_all(fantoccini::Locator::Css("#messages b, #messages img"))
            .await
            .unwrap();
        assert!(markup.is_empty(), "a mail's markup is never live");
        // The agent answers the customer from the page.
        page.type_into(
            "#message-text",
            "We are checking with the installer; you will hear from us today.",
        )
        .await;
        page.click_and_wait("#send-message").await;
        page.check("message-sent").await;
        assert!(
            page.text("#messages")
                .await
                .contains("you will hear from us today"),
            "{}",
            page.text("#messages").await
        );
        app.run_outbox().await;
        assert!(
            app.mails_to("team@example.com")
                .iter()
                .any(|m| m.text.contains("you will hear from us today")),
            "the answer is mailed"
        );
        page.type_into(
            "#note-text",
            "Called the installer: the label is on the back.",
        )
        .await;
        // Every table scrolls inside itself: the page never scrolls sideways.
        page.no_sideways_scroll("ticket").await;
        page.click_and_wait("#add-note").await;
        page.check("noted").await;
        assert!(
            page.text("#notes")
                .await
                .contains("the label is on the back"),
            "{}",
            page.text("#notes").await
        );
        page.find("#assignee")
            .await
            .select_by_label("bea@vendor.test")
            .await
            .unwrap();
        page.click_and_wait("#assign").await;
        page.check("assigned").await;
        assert_eq!(page.text("#claimed-by").await, "bea@vendor.test");
        page.close().await;
    }
}

/// A supervisor's and an admin's pages, on a laptop and on a phone: the canned texts
/// (one field per language), the queue of tickets waiting for a second approval, a
/// search, the users and the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisors_pages_work_on_a_laptop_and_a_phone() {
    let Some(driver) = Driver::start() else {
        return;
    };
    for viewport in [Viewport::Console, Viewport::Phone] {
        let app = spawn_app().await;
        app.create_user(
            "sam@vendor.test",
            &[
                resetdesk::domain::Role::Agent,
                resetdesk::domain::Role::Supervisor,
                resetdesk::domain::Role::Admin,
            ],
        )
        .await;
        let page = driver.open("supervisor", viewport).await;
        sign_in(&app, &page, "sam@vendor.test").await;
        for (name, path) in [
            ("reasons", "/console/reasons"),
            ("second-approval", "/console?status=second_approval"),
            ("search", "/console?status=all&q=ana"),
            ("users", "/console/admin/users"),
            ("audit", "/console/admin/audit"),
        ] {
            page.goto(&app.url(path)).await;
            page.check(name).await;
            page.no_sideways_scroll(name).await;
        }
        // A new photo request, in both languages, from the page itself.
        page.goto(&app.url("/console/reasons")).await;
        page.type_into("#new-photo", "The label is upside down: turn the phone.")
            .await;
        page.type_into(
            "#new-photo-reason_es",
            "La etiqueta está al revés: gire el teléfono.",
        )
        .await;
        page.click_and_wait("#add-photo button[type=submit]").await;
        page.check("reason-added").await;
        // Listed in its own row's fields, to change or remove.
        assert!(
            page.client
                .source()
                .await
                .unwrap()
                .contains("value=\"The label is upside down: turn the phone.\""),
            "the new text is listed"
        );
        page.close().await;
    }
}
