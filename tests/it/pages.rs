//! The HTML side over real HTTP: the customer's form and status page, and an agent's
//! console session with its CSRF tokens, from sign-in to the approval mail.

use resetdesk::device;
use resetdesk::domain::Timestamp;

use crate::desk_support::{
    Backend, TestApp, browser, csrf, customer_form, export_part, file_part, label_photo,
    sign_in_token, spawn_app_on,
};
use crate::html;

const NVR: &str = "DS-7608NI-K2/8P0820231115CCRRJ12345678";
/// Submits through the HTML form; returns the ticket number and status link.
async fn submit_form(
    app: &TestApp,
    email: &str,
    cameras: usize,
) -> (String, String, resetdesk::device::DeviceState) {
    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    let request = app.export(&mut nvr, cameras, Timestamp::now());
    let form = export_part(customer_form(email), &request, "xml").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    let (number, status_url) = app.submit_form(form).await;
    (number, status_url, nvr)
}

async fn the_form_creates_a_ticket_and_the_status_link_shows_it(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let form_page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(form_page.status(), 200);
    let html = form_page.text().await.unwrap();
    for field in [
        "name",
        "email",
        "phone",
        "company",
        "country",
        "role",
        "purchase_channel",
        "export_xml",
        "reset_string",
        "export_qr",
        "label_photo",
    ] {
        assert!(
            html.contains(&format!("name=\"{field}\"")),
            "the form has no {field} field"
        );
        assert!(
            html.contains(&format!("for=\"{field}\"")),
            "{field} has no label"
        );
    }

    let (number, status_url, _) = submit_form(&app, "form@example.com", 0).await;
    assert!(number.starts_with("RQ-"));
    let status = app.client.get(&status_url).send().await.unwrap();
    assert_eq!(status.status(), 200);
    let page = status.text().await.unwrap();
    assert!(page.contains("Waiting for review"), "{page}");
    assert!(page.contains(NVR));
    assert!(
        !page.contains("form@example.com"),
        "the status page shows no personal data it does not need"
    );

    let forged = status_url.rsplit_once("t=").unwrap().0.to_owned() + "t=0000";
    assert_eq!(app.client.get(&forged).send().await.unwrap().status(), 404);
}

async fn form_errors_come_back_next_to_their_field_with_values_kept(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    let request = app.export(&mut nvr, 0, Timestamp::now());
    let form = export_part(customer_form("kept@example.com"), &request, "string");
    let response = app
        .client
        .post(app.url("/"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(page.contains("id=\"label_photo-error\""), "{page}");
    assert!(
        page.contains("value=\"kept@example.com\""),
        "typed values are kept"
    );
    assert!(page.contains("aria-invalid=\"true\""));
    assert!(
        page.contains(&resetdesk::protocol::reset_string::encode(&request)),
        "the pasted reset string is kept"
    );
    assert_eq!(app.stored_counts().await.0, 0);
}

/// Every mistake comes back at once, fields and files alike, and the files that passed
/// their checks are kept for the retry: the customer re-chooses only what was wrong. A
/// pass that is not the desk's brings nothing back; the only files left by a refused
/// form are the ones it offered back.
async fn a_refused_form_says_everything_at_once_and_keeps_what_passed(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    // A wrong address and a broken export in one try, with a good photo.
    let form = reqwest::multipart::Form::new()
        .text("name", "Ana López")
        .text("email", "ana at example")
        .text("country", "EC")
        .text("role", "installer")
        .part(
            "export_xml",
            file_part(
                b"<ResetRequest>not an export".to_vec(),
                "export.xml",
                "application/xml",
            ),
        )
        .part(
            "label_photo",
            file_part(label_photo(), "label.jpg", "image/jpeg"),
        );
    let response = app
        .client
        .post(app.url("/"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(page.contains("id=\"email-error\""), "the address, {page}");
    assert!(
        page.contains("id=\"export_xml-error\""),
        "and the export, at once"
    );
    assert!(!page.contains("id=\"label_photo-error\""));
    let pass = html::select_attr(&page, "input[name=kept_label_photo]", "value");
    assert!(html::text(&page, "#label_photo-kept").contains("is kept"));
    assert!(
        !page.contains("name=\"kept_export\""),
        "a file with a problem is not kept"
    );
    assert!(
        !page.contains("id=\"label_photo\" name=\"label_photo\" accept=\"image/jpeg,image/png\" capture=\"environment\" required"),
        "the photo is no longer required"
    );
    // The only file left behind is the one the page offers back.
    let (tickets, blobs, mails) = app.stored_counts().await;
    assert_eq!((tickets, blobs, mails), (0, 1, 0));
    let stored = crate::desk_support::blob_names(&app.dir.path().join("data/blobs"));
    assert_eq!(stored.len(), 1);
    assert!(
        pass.starts_with(&format!("{}.", stored[0])),
        "{pass} {stored:?}"
    );

    // A forged pass brings nothing back.
    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    let request = app.export(&mut nvr, 0, Timestamp::now());
    let (blob, _) = pass.split_once('.').unwrap();
    let forged = export_part(customer_form("ana@example.com"), &request, "xml").text(
        "kept_label_photo",
        format!("{blob}.9999999999-{}", "a".repeat(32)),
    );
    let response = app
        .client
        .post(app.url("/"))
        .multipart(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("id=\"label_photo-error\"")
    );

    // The retry sends the fixed fields and the pass, not the photo: a ticket, whose photo
    // is the one chosen the first time.
    let retry = export_part(customer_form("ana@example.com"), &request, "xml")
        .text("kept_label_photo", pass.clone());
    let response = app
        .client
        .post(app.url("/"))
        .multipart(retry)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let page = response.text().await.unwrap();
    let number = html::text(&page, "#ticket-number");
    assert!(
        html::text(&page, "#confirmation-sent")
            .contains("We sent a confirmation to ana@example.com."),
        "the success page names the address: {page}"
    );
    let agent = app.agent_token("reader@vendor.test").await;
    let ticket: serde_json::Value = app
        .api_get(&agent, &format!("/api/v1/tickets/{number}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ticket["status"], "open");
    let detail = app
        .desk
        .store
        .ticket(&resetdesk::domain::TicketNumber::parse(&number).unwrap())
        .await
        .unwrap();
    assert_eq!(
        app.desk.blobs.get(&detail.label_blob).await.unwrap(),
        label_photo()
    );
}

/// A photo over the limit: said once, next to its field, with everything typed kept and
/// the export (which passed) kept for the retry; the answer is 413.
async fn a_photo_over_the_limit_keeps_the_form(backend: Backend) {
    let Some(app) = crate::desk_support::spawn_app_on_with(backend, |settings| {
        settings.intake.max_label_photo_bytes = 10_000;
    })
    .await
    else {
        return;
    };
    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    let request = app.export(&mut nvr, 0, Timestamp::now());
    let photo = label_photo();
    assert!(photo.len() > 10_000);
    let form = export_part(customer_form("big@example.com"), &request, "xml")
        .part("label_photo", file_part(photo, "label.jpg", "image/jpeg"));
    let response = app
        .client
        .post(app.url("/"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("value=\"big@example.com\""),
        "typed values are kept"
    );
    assert!(page.contains("value=\"Instalaciones Sur SL\""));
    assert!(
        html::text(&page, "#label_photo-error").contains("larger than 10 KB"),
        "{page}"
    );
    assert_eq!(
        page.matches(">This file is larger than 10 KB").count(),
        1,
        "said once, beside its field: {page}"
    );
    assert!(page.contains("name=\"kept_export\""), "the export is kept");
    assert_eq!(app.stored_counts().await.0, 0);
}

/// A rejected customer writes back from the status page: the message joins the ticket,
/// the agents read it, and the ticket is back in the queue. Every customer page names
/// how to reach support, with https: and mailto: links only.
async fn a_rejected_customer_writes_back_and_the_ticket_is_reviewed_again(backend: Backend) {
    let Some(app) = crate::desk_support::spawn_app_on_with(backend, |settings| {
        settings.console.support_contact = Some(
            "Write to mailto:help@vendor.example or see https://vendor.example/help. javascript:alert(1)"
                .to_owned(),
        );
    })
    .await
    else {
        return;
    };
    let (number, status_url, _) = submit_form(&app, "replies@example.com", 0).await;
    let status = app.page(&status_url).await;
    let footer = html::select_attrs(&status, "#support-contact a", "href");
    assert_eq!(
        footer,
        ["mailto:help@vendor.example", "https://vendor.example/help"]
    );
    assert!(html::text(&status, "#support-contact").contains("javascript:alert(1)"));
    let form_page = app.page(&app.url("/")).await;
    assert!(
        form_page.contains("id=\"support-contact\""),
        "on every customer page"
    );
    assert!(
        status.contains("id=\"send-reply\""),
        "a waiting ticket takes messages"
    );

    let agent = app.agent_token("agent@vendor.test").await;
    let rejected = app
        .api_post(
            &agent,
            &format!("/api/v1/tickets/{number}/reject"),
            serde_json::json!({"reason": "The photo shows another device."}),
        )
        .await;
    assert_eq!(rejected.status(), 200);
    let reply_url = status_url.replace(
        &format!("/status/{number}?"),
        &format!("/status/{number}/reply?"),
    );
    // An empty message: said, nothing stored.
    let empty = app
        .client
        .post(&reply_url)
        .form(&[("message", "  ")])
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 422);
    assert!(
        html::text(&empty.text().await.unwrap(), "#reply-message-error")
            .contains("write your message")
    );

    let sent = app
        .client
        .post(&reply_url)
        .form(&[(
            "message",
            "It is the same device: the label is on the bottom.\nSee the second photo.",
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 303);
    let back = sent.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.ends_with("&done=reopened"), "{back}");
    let page = app.page(&app.url(&back)).await;
    assert!(html::text(&page, "#reply-done").contains("back with them"));

    let ticket: serde_json::Value = app
        .api_get(&agent, &format!("/api/v1/tickets/{number}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ticket["status"], "open", "back in the queue");
    let kinds: Vec<&str> = ticket["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.ends_with(&["customer_reply", "reopened"]),
        "{kinds:?}"
    );
    app.create_agent("reader@vendor.test").await;
    let console = app.sign_in("reader@vendor.test").await;
    let ticket_page = app
        .console_page(&console, &format!("/console/tickets/{number}"))
        .await;
    assert!(
        html::text(&ticket_page, "#customer-replies").contains("the label is on the bottom"),
        "the agents read it"
    );
    let audited = app
        .desk
        .store
        .recent_audit(Some("customer"), Some("ticket.reopened"), 5)
        .await
        .unwrap();
    assert_eq!(audited.len(), 1);

    // An approved ticket takes no messages here: it has "it did not work".
    app.approve_by_api(&number).await;
    let approved = app.page(&status_url).await;
    assert!(!approved.contains("id=\"send-reply\""));
    let late = app
        .client
        .post(&reply_url)
        .form(&[("message", "thanks")])
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 409);
}

async fn an_agent_signs_in_claims_and_approves_in_the_console(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent("agent@vendor.test").await;
    let (number, _, nvr) = submit_form(&app, "console@example.com", 1).await;

    // Without a session every console page sends the agent to sign in.
    for path in [
        "/console".to_owned(),
        format!("/console/tickets/{number}"),
        format!("/console/tickets/{number}/label"),
    ] {
        let response = browser().get(app.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(response.headers()["location"], "/console/login");
    }
    let stranger = browser();
    let token = sign_in_token(&stranger, &app.base).await;
    let wrong = stranger
        .post(app.url("/console/login"))
        .form(&[
            ("csrf", token.as_str()),
            ("email", "agent@vendor.test"),
            ("password", "not the password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("The e-mail or the password is wrong")
    );

    let agent = app.sign_in("agent@vendor.test").await;
    let queue = agent
        .get(app.url("/console"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(queue.contains(&number) && queue.contains(NVR), "{queue}");
    let found = agent
        .get(app.url(&format!("/console?status=all&q={NVR}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(found.contains(&number));

    let page = agent
        .get(app.url(&format!("/console/tickets/{number}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The preview the evidence worker makes (the original until it has), and the
    // original linked beside it.
    assert!(page.contains(&format!(
        "src=\"/console/tickets/{number}/label?size=preview\""
    )));
    assert!(page.contains(&format!("href=\"/console/tickets/{number}/label\"")));
    assert!(page.contains(NVR) && page.contains("console@example.com"));
    let photo = agent
        .get(app.url(&format!("/console/tickets/{number}/label")))
        .send()
        .await
        .unwrap();
    assert_eq!(photo.headers()["content-type"], "image/jpeg");
    assert_eq!(
        photo.bytes().await.unwrap().as_ref(),
        label_photo().as_slice()
    );

    let token = csrf(&page);
    let claim_url = app.url(&format!("/console/tickets/{number}/claim"));
    let forged = agent
        .post(&claim_url)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let missing = agent
        .post(&claim_url)
        .form(&[("reason", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 403);
    let claimed = agent
        .post(&claim_url)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(claimed.status(), 303);
    let approved = agent
        .post(app.url(&format!("/console/tickets/{number}/approve")))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 303);
    let again = agent
        .post(app.url(&format!("/console/tickets/{number}/approve")))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        409,
        "a second approval is refused, not signed again"
    );
    let page = agent
        .get(app.url(&format!("/console/tickets/{number}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"ticket-status\">Approved"), "{page}");

    app.run_outbox().await;
    let mail = app
        .mails_to("console@example.com")
        .into_iter()
        .find(|m| m.subject.contains("response"))
        .unwrap();
    let mut state = nvr;
    let report = device::import_response(
        &mut state,
        &mail.attachments[0].1,
        "new admin password",
        Timestamp::now(),
    )
    .unwrap();
    assert!(report.iter().all(|(_, r)| r.is_ok()), "{report:?}");

    let logout = agent
        .post(app.url("/console/logout"))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 303);
    assert_eq!(
        agent
            .get(app.url("/console"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
}

async fn asking_for_a_new_photo_sends_the_ticket_back_to_the_customer_and_back(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent("agent@vendor.test").await;
    let (number, status_url, _) = submit_form(&app, "photo@example.com", 0).await;
    let agent = app.sign_in("agent@vendor.test").await;
    let page = agent
        .get(app.url(&format!("/console/tickets/{number}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = csrf(&page);
    let asked = agent
        .post(app.url(&format!("/console/tickets/{number}/request-photo")))
        .form(&[
            ("csrf", token.as_str()),
            ("note", "The serial is hidden by glare."),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 303);
    app.run_outbox().await;
    let mail = app
        .mails_to("photo@example.com")
        .into_iter()
        .find(|m| m.subject.contains("new photo"))
        .unwrap();
    assert!(mail.text.contains("hidden by glare"));
    let photo_url = mail
        .text
        .lines()
        .find(|l| l.contains("/photo?t="))
        .unwrap()
        .trim()
        .to_owned();

    let status = app
        .client
        .get(&status_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(status.contains("Send a new label photo"), "{status}");
    let bad = reqwest::multipart::Form::new().part(
        "label_photo",
        file_part(b"GIF89a....".to_vec(), "l.gif", "image/gif"),
    );
    let refused = app
        .client
        .post(&photo_url)
        .multipart(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let good = reqwest::multipart::Form::new().part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    let sent = app
        .client
        .post(&photo_url)
        .multipart(good)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let page = agent
        .get(app.url(&format!("/console/tickets/{number}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"ticket-status\">Open"), "{page}");
    assert!(page.contains("photo_replaced"));
}

async fn supervisors_edit_the_canned_rejection_reasons_and_agents_use_them(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent("agent@vendor.test").await;
    app.create_user("sam@vendor.test", &[resetdesk::domain::Role::Supervisor])
        .await;
    // One customer reads Spanish, the other English.
    let submit_in = async |email: &str, language: &str, serial: &str| {
        let mut nvr = app.device(serial, "DS-7608NI-K2");
        let request = app.export(&mut nvr, 0, Timestamp::now());
        let form = export_part(
            customer_form(email).text("language", language.to_owned()),
            &request,
            "xml",
        )
        .part(
            "label_photo",
            file_part(label_photo(), "label.jpg", "image/jpeg"),
        );
        app.submit_form(form).await
    };
    let (number, status_url) = submit_in("reasons@example.com", "es", NVR).await;
    let (english, english_status_url) = submit_in(
        "photo@example.com",
        "en",
        "DS-7608NI-K2/8P0820231115CCRRJ00000002",
    )
    .await;
    let plain_agent = app.sign_in("agent@vendor.test").await;
    let page = app.console_page(&plain_agent, "/console/reasons").await;
    let denied = plain_agent
        .post(app.url("/console/reasons"))
        .form(&[
            ("csrf", csrf(&page).as_str()),
            ("reason", "Agents cannot add this."),
            ("reason_es", "Los agentes no pueden."),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403, "an agent cannot add to the list");
    for path in ["/console/reasons/1", "/console/reasons/1/delete"] {
        let denied = plain_agent
            .post(app.url(path))
            .form(&[
                ("csrf", csrf(&page).as_str()),
                ("reason", "Changed by an agent."),
                ("reason_es", "Cambiado por un agente."),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(denied.status(), 403, "an agent cannot change {path}");
    }
    let agent = app.sign_in("sam@vendor.test").await;
    let page = app.console_page(&agent, "/console/reasons").await;
    let token = csrf(&page);
    let add = async |fields: &[(&str, &str)]| {
        let mut form = vec![("csrf", token.as_str())];
        form.extend_from_slice(fields);
        agent
            .post(app.url("/console/reasons"))
            .form(&form)
            .send()
            .await
            .unwrap()
    };
    // Every language's text is asked for, and every missing one said at once.
    let untranslated = add(&[("reason", "The device is reported stolen.")]).await;
    assert_eq!(untranslated.status(), 422);
    let said = untranslated.text().await.unwrap();
    assert!(
        html::text(&said, "#reasons-error").contains("The Spanish text"),
        "{said}"
    );
    assert_eq!(
        html::select_attr(&said, "#new-reject", "value"),
        "The device is reported stolen.",
        "what was typed is kept"
    );
    let stolen = [
        ("reason", "The device is reported stolen."),
        ("reason_es", "El dispositivo está denunciado como robado."),
    ];
    assert_eq!(add(&stolen).await.status(), 303);
    assert_eq!(add(&stolen).await.status(), 409);
    let odd_kind = add(&[("kind", "praise"), stolen[0], stolen[1]]).await;
    assert_eq!(odd_kind.status(), 422);
    let forged = agent
        .post(app.url("/console/reasons"))
        .form(&[("csrf", "x"), ("reason", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    // The agent picks the English words; the Spanish customer reads the Spanish ones,
    // in the e-mail and on the status page.
    let ticket_page = app
        .console_page(&agent, &format!("/console/tickets/{number}"))
        .await;
    let stolen_id = html::option_value(
        &ticket_page,
        "#canned option",
        "The device is reported stolen.",
    );
    let status = app
        .console_action(
            &agent,
            &number,
            "reject",
            &[("canned", stolen_id.as_str()), ("reason", "")],
        )
        .await;
    assert_eq!(status, 303);
    let page = app.page(&status_url).await;
    assert!(page.contains("denunciado como robado"), "{page}");
    app.run_outbox().await;
    let rejection = app
        .mails_to("reasons@example.com")
        .into_iter()
        .find(|m| m.text.contains("denunciado como robado"));
    assert!(
        rejection.is_some(),
        "{:?}",
        app.mails_to("reasons@example.com")
    );

    // A photo request's canned text, and the agent's note, reach the status page.
    let ticket_page = app
        .console_page(&agent, &format!("/console/tickets/{english}"))
        .await;
    let blurred = html::option_value(&ticket_page, "#photo-canned option", "The photo is blurred");
    let status = app
        .console_action(
            &agent,
            &english,
            "request-photo",
            &[("canned", blurred.as_str()), ("note", "")],
        )
        .await;
    assert_eq!(status, 303);
    let page = app.page(&english_status_url).await;
    let next = html::text(&page, "#next");
    assert!(
        next.contains("The photo is blurred: hold the phone still"),
        "{next}"
    );
    assert!(!next.contains("We could not read the label"), "{next}");
    // A canned id of the other kind, or one no longer listed, is refused with words.
    let refused = agent
        .post(app.url(&format!("/console/tickets/{english}/reject")))
        .form(&[("csrf", token.as_str()), ("canned", blurred.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let said = refused.text().await.unwrap();
    assert!(said.contains("not one of the rejection reasons"), "{said}");

    // Edited: the new words are what the next customer reads.
    let reasons = app.console_page(&agent, "/console/reasons").await;
    let edit = format!("/console/reasons/{stolen_id}");
    let edited = agent
        .post(app.url(&edit))
        .form(&[
            ("csrf", token.as_str()),
            ("reason", "The device is reported\r\nstolen to the police."),
            ("reason_es", "El dispositivo está denunciado a la policía."),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), 303);
    assert!(reasons.contains(&format!("action=\"{edit}\"")), "{reasons}");
    let reasons = app.console_page(&agent, "/console/reasons").await;
    assert!(reasons.contains("denunciado a la policía"));
    assert!(reasons.contains("value=\"The device is reported stolen to the police.\""));
    let remove = format!("/console/reasons/{stolen_id}/delete");
    let removed = agent
        .post(app.url(&remove))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 303);
    assert!(
        !app.console_page(&agent, "/console/reasons")
            .await
            .contains("reported stolen")
    );
    // A page still offering the removed reason: the agent hears so, and nothing is sent.
    let gone = agent
        .post(app.url(&format!("/console/tickets/{english}/request-photo")))
        .form(&[("csrf", token.as_str()), ("canned", stolen_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 422);
    assert!(gone.text().await.unwrap().contains("no longer in the list"));
}

/// Every state-changing console route, with a ticket and a mail to act on.
fn console_post_routes(ticket: &str) -> Vec<String> {
    vec![
        "/console/logout".to_owned(),
        format!("/console/tickets/{ticket}/claim"),
        format!("/console/tickets/{ticket}/approve"),
        format!("/console/tickets/{ticket}/reject"),
        format!("/console/tickets/{ticket}/request-photo"),
        format!("/console/tickets/{ticket}/email"),
        format!("/console/tickets/{ticket}/mails/1/retry"),
        format!("/console/tickets/{ticket}/messages"),
        format!("/console/tickets/{ticket}/notes"),
        format!("/console/tickets/{ticket}/assign"),
        format!("/console/tickets/{ticket}/suspicious"),
        "/console/reasons".to_owned(),
        "/console/reasons/1".to_owned(),
        "/console/reasons/1/delete".to_owned(),
        "/console/tokens".to_owned(),
        "/console/tokens/1/revoke".to_owned(),
        "/console/admin/users".to_owned(),
        "/console/admin/users/1/roles".to_owned(),
        "/console/admin/users/1/disable".to_owned(),
        "/console/admin/users/1/enable".to_owned(),
        "/console/admin/users/1/password".to_owned(),
        "/console/admin/users/1/sessions/revoke".to_owned(),
        // Not a route today: the guard covers whatever is added under /console later.
        "/console/some-future-action".to_owned(),
    ]
}

async fn every_state_changing_console_route_refuses_a_missing_or_forged_csrf_token(
    backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent("agent@vendor.test").await;
    let (number, _, _) = submit_form(&app, "csrf@example.com", 0).await;
    let agent = app.sign_in("agent@vendor.test").await;
    let before = app
        .console_page(&agent, &format!("/console/tickets/{number}"))
        .await;
    for route in console_post_routes(&number) {
        let anonymous = browser()
            .post(app.url(&route))
            .form(&[("reason", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 303, "{route} without a session");
        let missing = agent
            .post(app.url(&route))
            .form(&[("reason", "x"), ("note", "y")])
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 403, "{route} without a CSRF token");
        let forged = agent
            .post(app.url(&route))
            .form(&[("csrf", "forged"), ("reason", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 403, "{route} with a forged CSRF token");
        let body = forged.text().await.unwrap();
        assert!(body.contains("This form has expired"), "{route}: {body}");
    }
    // Nothing happened: the ticket is as it was, the session still works.
    let after = app
        .console_page(&agent, &format!("/console/tickets/{number}"))
        .await;
    assert!(
        after.contains("id=\"ticket-status\">Open") && before.contains("id=\"ticket-status\">Open")
    );
    assert!(!after.contains(">claimed<"), "no claim went through");
}

crate::on_both_backends!(
    a_refused_form_says_everything_at_once_and_keeps_what_passed,
    a_rejected_customer_writes_back_and_the_ticket_is_reviewed_again,
    a_photo_over_the_limit_keeps_the_form,
    the_form_creates_a_ticket_and_the_status_link_shows_it,
    form_errors_come_back_next_to_their_field_with_values_kept,
    an_agent_signs_in_claims_and_approves_in_the_console,
    asking_for_a_new_photo_sends_the_ticket_back_to_the_customer_and_back,
    supervisors_edit_the_canned_rejection_reasons_and_agents_use_them,
    every_state_changing_console_route_refuses_a_missing_or_forged_csrf_token,
);
