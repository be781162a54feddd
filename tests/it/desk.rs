//! The desk end to end over HTTP: a reference device exports, a customer submits, an
//! agent approves, the approval mail arrives at a real SMTP server, and the device
//! accepts both the key and the attached file.

use resetdesk::device::{self, DeviceState};
use resetdesk::domain::Timestamp;
use resetdesk::protocol::{ResetRequest, export_xml, reset_string};
use serde_json::Value;

use crate::desk_support::{
    Backend, TestApp, customer_form, export_part, file_part, keys_in, label_photo, spawn_app_on,
    spawn_app_on_with, walk_files,
};

const NVR: &str = "DS-7608NI-K2/8P0820231115CCRRJ12345678";

fn submission(request: &ResetRequest, kind: &str, email: &str) -> reqwest::multipart::Form {
    export_part(customer_form(email), request, kind).part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    )
}

#[derive(Clone, Copy, Debug)]
enum Channel {
    Api,
    Form,
}

/// Submits through the API or the HTML form; returns the ticket number and status link.
async fn submit_via(
    app: &TestApp,
    channel: Channel,
    request: &ResetRequest,
    kind: &str,
    email: &str,
) -> (String, String) {
    match channel {
        Channel::Api => {
            let response = app.submit(submission(request, kind, email)).await;
            assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
            let body: Value = response.json().await.unwrap();
            (
                body["ticket"].as_str().unwrap().to_owned(),
                body["status_url"].as_str().unwrap().to_owned(),
            )
        }
        Channel::Form => app.submit_form(submission(request, kind, email)).await,
    }
}

/// The whole story: the device exports, the customer submits, the acknowledgment
/// arrives, an agent claims and approves in the console, the approval mail arrives,
/// and the device accepts both the attached file and the typed keys.
async fn approve_story(backend: Backend, kind: &str, cameras: usize, channel: Channel) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    let request = app.export(&mut nvr, cameras, app.now());
    let customer = format!("ana.{kind}@example.com");

    let (ticket, status_url) = submit_via(&app, channel, &request, kind, &customer).await;
    assert!(
        status_url.starts_with(&format!("{}/status/{ticket}?t=", app.base)),
        "{status_url}"
    );
    // The export as sent: an XML file or a reset string in the ticket's row, a picture of
    // a QR code (which can be a phone photo of megabytes) in a blob.
    let number = resetdesk::domain::TicketNumber::parse(&ticket).unwrap();
    match (kind, app.desk.store.ticket_export(&number).await.unwrap()) {
        ("qr", resetdesk::store::StoredExport::Blob(name)) => {
            let picture = app.desk.blobs.get(&name).await.unwrap();
            assert!(picture.starts_with(b"\x89PNG"));
        }
        ("xml", resetdesk::store::StoredExport::InRow(bytes)) => {
            assert_eq!(bytes, export_xml::to_xml(&request).into_bytes());
        }
        ("string", resetdesk::store::StoredExport::InRow(bytes)) => {
            assert_eq!(bytes, reset_string::encode(&request).into_bytes());
        }
        (kind, stored) => panic!("a {kind} export stored as {stored:?}"),
    }

    assert_eq!(app.run_outbox().await.sent, 1);
    let ack = &app.mails_to(&customer)[0];
    assert!(ack.subject.contains(&ticket), "{}", ack.subject);
    assert!(ack.text.contains(&status_url) && ack.html.contains(&status_url.replace('&', "&amp;")));
    assert!(ack.text.contains("do not reboot"), "{}", ack.text);

    app.create_agent("agent@vendor.test").await;
    let agent = app.sign_in("agent@vendor.test").await;
    let queue = app.console_page(&agent, "/console").await;
    assert!(queue.contains(&ticket) && queue.contains(NVR), "{queue}");
    assert_eq!(app.console_action(&agent, &ticket, "claim", &[]).await, 303);
    assert_eq!(
        app.console_action(&agent, &ticket, "approve", &[]).await,
        303
    );

    assert_eq!(app.run_outbox().await.sent, 1);
    let mails = app.mails_to(&customer);
    assert_eq!(mails.len(), 2);
    let approval = &mails[1];
    assert!(approval.subject.contains(&ticket));
    assert!(approval.message_id.contains(&ticket) && approval.message_id != ack.message_id);
    assert!(approval.text.contains(" (UTC)") && approval.text.contains("Do not reboot"));
    let keys = keys_in(approval);
    assert_eq!(keys.len(), cameras + 1, "{}", approval.text);
    let (file_name, file) = &approval.attachments[0];
    assert!(file_name.ends_with(".xml"));

    // The device accepts the attached file for every unit ...
    let mut with_file: DeviceState = nvr.clone();
    let report =
        device::import_response(&mut with_file, file, "new admin password", app.now()).unwrap();
    assert_eq!(report.len(), cameras + 1);
    assert!(
        report.iter().all(|(_, outcome)| outcome.is_ok()),
        "{report:?}"
    );
    // ... and, on another run of the same state, each typed key.
    let mut with_keys = nvr.clone();
    for (serial, key) in &keys {
        let serial = resetdesk::domain::DeviceSerial::parse(serial).unwrap();
        device::import_key(
            &mut with_keys,
            Some(&serial),
            key,
            "new admin password",
            app.now(),
        )
        .unwrap();
    }

    let status = app
        .client
        .get(&status_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        status.contains("Approved") && status.contains("valid until"),
        "{status}"
    );
    let page = app
        .console_page(&agent, &format!("/console/tickets/{ticket}"))
        .await;
    for kind in ["submitted", "mail_sent", "claimed", "approved"] {
        assert!(page.contains(kind), "history shows {kind}");
    }
}

async fn xml_export_of_an_nvr_and_two_cameras_through_the_api(backend: Backend) {
    approve_story(backend, "xml", 2, Channel::Api).await;
}

async fn xml_export_of_an_nvr_and_two_cameras_through_the_form(backend: Backend) {
    approve_story(backend, "xml", 2, Channel::Form).await;
}

async fn reset_string_through_the_api(backend: Backend) {
    approve_story(backend, "string", 0, Channel::Api).await;
}

async fn reset_string_through_the_form(backend: Backend) {
    approve_story(backend, "string", 0, Channel::Form).await;
}

async fn qr_screenshot_through_the_api(backend: Backend) {
    approve_story(backend, "qr", 0, Channel::Api).await;
}

async fn qr_screenshot_through_the_form(backend: Backend) {
    approve_story(backend, "qr", 0, Channel::Form).await;
}

async fn the_agent_api_lists_shows_and_approves(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    let request = app.export(&mut nvr, 1, app.now());
    let (ticket, _) = submit_via(&app, Channel::Api, &request, "xml", "api@example.com").await;
    let agent = app.agent_token("agent@vendor.test").await;
    let queue: Value = app
        .api_get(&agent, "/api/v1/tickets?status=open")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(queue["tickets"][0]["ticket"], ticket.as_str());
    assert_eq!(queue["tickets"][0]["devices"], 2);
    let bad = app.api_get(&agent, "/api/v1/tickets?status=maybe").await;
    assert_eq!(bad.status(), 400);
    assert_eq!(
        app.api_post(
            &agent,
            &format!("/api/v1/tickets/{ticket}/claim"),
            Value::Null
        )
        .await
        .status(),
        200
    );
    let approve = app
        .api_post(
            &agent,
            &format!("/api/v1/tickets/{ticket}/approve"),
            Value::Null,
        )
        .await;
    assert_eq!(approve.status(), 200, "{}", approve.text().await.unwrap());
    let detail: Value = app
        .api_get(&agent, &format!("/api/v1/tickets/{ticket}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["status"], "approved");
    assert_eq!(detail["responses"].as_array().unwrap().len(), 2);
    assert_eq!(detail["customer"]["email"], "api@example.com");
    let history: Vec<&str> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    // The approval had the label photo read first: no approval without its label check.
    assert_eq!(history, ["submitted", "claimed", "label_read", "approved"]);
    assert_eq!(
        app.api_get(&agent, "/api/v1/tickets/RQ-0000-0000")
            .await
            .status(),
        404
    );
}

/// Submits `form` and checks the refusal: the status, the field named, a message a
/// person can act on, and nothing left behind.
async fn refused(
    app: &TestApp,
    form: reqwest::multipart::Form,
    status: u16,
    field: &str,
    needle: &str,
) {
    let before = app.stored_counts().await;
    let response = app.submit(form).await;
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], field, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(needle),
        "{message:?} should mention {needle:?}"
    );
    assert_eq!(
        app.stored_counts().await,
        before,
        "a refused submission left something behind"
    );
}

async fn bad_submissions_are_refused_and_leave_nothing_behind(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    let request = app.export(&mut nvr, 0, Timestamp::now());

    let tampered = export_xml::to_xml(&request).replace("V4.30.085", "V4.30.086");
    let form = customer_form("a@example.com")
        .part(
            "export_xml",
            file_part(tampered.into_bytes(), "export.xml", "application/xml"),
        )
        .part(
            "label_photo",
            file_part(label_photo(), "label.jpg", "image/jpeg"),
        );
    refused(&app, form, 422, "export_xml", "altered").await;

    let old = app.export(&mut nvr, 0, Timestamp::now().plus_seconds(-49 * 3600));
    refused(
        &app,
        submission(&old, "xml", "a@example.com"),
        422,
        "export_xml",
        "expired",
    )
    .await;

    let form = customer_form("a@example.com")
        .part(
            "export_xml",
            file_part(b"this is not xml".to_vec(), "export.xml", "application/xml"),
        )
        .part(
            "label_photo",
            file_part(label_photo(), "label.jpg", "image/jpeg"),
        );
    refused(&app, form, 422, "export_xml", "not well-formed").await;

    let fresh = app.export(&mut nvr, 0, Timestamp::now());
    let form = export_part(customer_form("a@example.com"), &fresh, "xml").part(
        "label_photo",
        file_part(
            b"%PDF-1.7\n1 0 obj <<>> endobj\n".to_vec(),
            "label.jpg",
            "image/jpeg",
        ),
    );
    refused(&app, form, 422, "label_photo", "PDF").await;

    let form = customer_form("not-an-email").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    refused(&app, form, 422, "email", "e-mail address").await;
}

async fn an_oversize_upload_is_refused_before_it_is_read(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    let request = app.export(&mut nvr, 0, Timestamp::now());
    let limit = app.desk.settings.intake.max_label_photo_bytes as usize;
    // Declared larger than any request: refused from the Content-Length alone.
    let huge = vec![0xFFu8; limit * 3];
    let form = export_part(customer_form("a@example.com"), &request, "xml")
        .part("label_photo", file_part(huge, "label.jpg", "image/jpeg"));
    let before = app.stored_counts().await;
    let response = app.submit(form).await;
    assert_eq!(response.status(), 413);
    // One field over its own limit inside an acceptable request: refused while streaming.
    let over = vec![0xFFu8; limit + 1];
    let form = export_part(customer_form("a@example.com"), &request, "xml")
        .part("label_photo", file_part(over, "label.jpg", "image/jpeg"));
    let response = app.submit(form).await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "label_photo");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("larger than 15 MB"),
        "{body}"
    );
    assert_eq!(app.stored_counts().await, before);
}

async fn uploads_past_the_memory_budget_are_spooled_and_stored_whole(backend: Backend) {
    let Some(app) = spawn_app_on_with(backend, |s| s.uploads.memory_mb = 1).await else {
        return;
    };
    let photo = label_photo();
    // Past the 1 MiB budget, with something after the picture's end to be cut off.
    let mut upload = photo.clone();
    upload.extend(std::iter::repeat_n(b'z', 1_500_000));
    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    let request = app.export(&mut nvr, 0, Timestamp::now());
    let forms = [
        export_part(customer_form("big@example.com"), &request, "xml")
            .part("label_photo", file_part(upload, "label.jpg", "image/jpeg")),
        // A small one at the same time stays in memory; both are stored.
        submission(
            &app.export(
                &mut app.device("DS-2CD2143G2-I/FB1234567", "DS-2CD2143G2-I"),
                0,
                Timestamp::now(),
            ),
            "xml",
            "small@example.com",
        ),
    ];
    let [big, small] = forms;
    let (big, small) = tokio::join!(app.submit(big), app.submit(small));
    assert_eq!(big.status(), 201, "{:?}", big.text().await);
    assert_eq!(small.status(), 201, "{:?}", small.text().await);
    // The stored photo is the picture alone, and the spool is empty again.
    let mut stored = Vec::new();
    collect_files(&app.dir.path().join("data/blobs"), &mut stored);
    assert_eq!(stored.iter().filter(|bytes| **bytes == photo).count(), 2);
    assert!(stored.iter().all(|bytes| bytes.len() < 1_000_000));
    assert_eq!(walk_files(&app.dir.path().join("data/spool")), 0);
}

fn collect_files(dir: &std::path::Path, into: &mut Vec<Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(&path, into);
        } else {
            into.push(std::fs::read(path).unwrap());
        }
    }
}

async fn a_resubmission_finds_its_ticket_and_a_newer_export_supersedes(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    let first = app.export(&mut nvr, 0, Timestamp::now().plus_seconds(-60));
    let created: Value = app
        .submit(submission(&first, "xml", "a@example.com"))
        .await
        .json()
        .await
        .unwrap();
    let again = app
        .submit(submission(&first, "string", "a@example.com"))
        .await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["ticket"], created["ticket"]);
    assert_eq!(again["existing"], true);

    let newer = app.export(&mut nvr, 0, Timestamp::now());
    let response = app.submit(submission(&newer, "xml", "a@example.com")).await;
    assert_eq!(response.status(), 201);
    let replaced: Value = response.json().await.unwrap();
    assert_eq!(replaced["superseded"][0], created["ticket"]);

    let agent = app.agent_token("agent@vendor.test").await;
    let old: Value = app
        .api_get(
            &agent,
            &format!("/api/v1/tickets/{}", created["ticket"].as_str().unwrap()),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(old["status"], "superseded");
    assert_eq!(old["superseded_by"], replaced["ticket"]);

    // The old export can no longer come in: the device holds only its newest challenge.
    let response = app.submit(submission(&first, "xml", "b@example.com")).await;
    assert_eq!(
        response.status(),
        200,
        "the same challenge still finds its (superseded) ticket"
    );
}

async fn agent_routes_need_a_valid_token(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    for (method, path) in [
        ("GET", "/api/v1/tickets"),
        ("GET", "/api/v1/tickets/RQ-0000-0000"),
        ("POST", "/api/v1/tickets/RQ-0000-0000/approve"),
        ("POST", "/api/v1/tickets/RQ-0000-0000/reject"),
        ("GET", "/api/v1/reasons"),
    ] {
        let request = app.client.request(method.parse().unwrap(), app.url(path));
        let response = request.try_clone().unwrap().send().await.unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
        let response = request.bearer_auth("rdt_forged").send().await.unwrap();
        assert_eq!(
            response.status(),
            401,
            "{method} {path} with a forged token"
        );
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not valid")
        );
    }
}

async fn racing_approvals_sign_once_and_mail_once(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    let request = app.export(&mut nvr, 1, Timestamp::now());
    let created: Value = app
        .submit(submission(&request, "xml", "race@example.com"))
        .await
        .json()
        .await
        .unwrap();
    let ticket = created["ticket"].as_str().unwrap().to_owned();
    let alice = app.agent_token("alice@vendor.test").await;
    let bob = app.agent_token("bob@vendor.test").await;
    let path = format!("/api/v1/tickets/{ticket}/approve");
    let attempts = [&alice, &bob, &alice, &bob, &alice, &bob];
    let results = futures_util::future::join_all(
        attempts
            .iter()
            .map(|token| app.api_post(token, &path, Value::Null)),
    )
    .await;
    let statuses: Vec<u16> = results.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        5,
        "{statuses:?}"
    );

    app.run_outbox().await;
    let mails = app.mails_to("race@example.com");
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.subject.contains("response"))
            .count(),
        1
    );
    let detail: Value = app
        .api_get(&alice, &format!("/api/v1/tickets/{ticket}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        detail["responses"].as_array().unwrap().len(),
        2,
        "one signature per device, once"
    );
}

async fn a_rejection_mails_the_reason(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    let request = app.export(&mut nvr, 0, Timestamp::now());
    let created: Value = app
        .submit(submission(&request, "string", "rej@example.com"))
        .await
        .json()
        .await
        .unwrap();
    let ticket = created["ticket"].as_str().unwrap();
    let agent = app.agent_token("agent@vendor.test").await;
    let path = format!("/api/v1/tickets/{ticket}/reject");
    let empty = app
        .api_post(&agent, &path, serde_json::json!({"reason": "  "}))
        .await;
    assert_eq!(empty.status(), 422);
    let response = app
        .api_post(
            &agent,
            &path,
            serde_json::json!({"reason": "The label photo shows another serial number."}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let again = app
        .api_post(
            &agent,
            &format!("/api/v1/tickets/{ticket}/approve"),
            Value::Null,
        )
        .await;
    assert_eq!(again.status(), 409, "a rejected ticket cannot be approved");
    app.run_outbox().await;
    let mails = app.mails_to("rej@example.com");
    let rejection = mails
        .iter()
        .find(|m| m.subject.contains("not approved"))
        .unwrap();
    assert!(rejection.text.contains("another serial number"));
    assert!(rejection.text.contains("What you can do"));

    // A canned reason by its id from the list, which the customer reads in Spanish.
    let mut camera = app.device("DS-2CD2143G2-I/APICANNED0000001", "DS-2CD2143G2-I");
    let request = app.export(&mut camera, 0, Timestamp::now());
    let form = submission(&request, "string", "rechazo@example.com").text("language", "es");
    let created: Value = app.submit(form).await.json().await.unwrap();
    let ticket = created["ticket"].as_str().unwrap();
    let listed: Value = app
        .api_get(&agent, "/api/v1/reasons")
        .await
        .json()
        .await
        .unwrap();
    let reasons = listed["reasons"].as_array().unwrap();
    let unreadable = reasons
        .iter()
        .find(|r| r["texts"]["en"] == "The label photo is unreadable.")
        .unwrap();
    assert_eq!(unreadable["kind"], "reject");
    assert_eq!(
        unreadable["texts"]["es"],
        "No se puede leer la foto de la etiqueta."
    );
    let photo = reasons.iter().find(|r| r["kind"] == "photo").unwrap();
    let path = format!("/api/v1/tickets/{ticket}/reject");
    let wrong_kind = app
        .api_post(
            &agent,
            &path,
            serde_json::json!({"canned_reason": photo["id"]}),
        )
        .await;
    assert_eq!(
        wrong_kind.status(),
        422,
        "a photo request is no rejection reason"
    );
    let said: Value = wrong_kind.json().await.unwrap();
    assert!(
        said["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rejection reasons"),
        "{said}"
    );
    let response = app
        .api_post(
            &agent,
            &path,
            serde_json::json!({"canned_reason": unreadable["id"]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    app.run_outbox().await;
    assert!(
        app.mails_to("rechazo@example.com")
            .iter()
            .any(|m| m.text.contains("No se puede leer la foto de la etiqueta.")),
        "{:?}",
        app.mails_to("rechazo@example.com")
    );
}

async fn healthz_answers_when_the_database_does(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

async fn an_smtp_outage_retries_then_dead_letters_and_an_agent_retries(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent("agent@vendor.test").await;
    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    let request = app.export(&mut nvr, 0, app.now());
    let created: Value = app
        .submit(submission(&request, "xml", "outage@example.com"))
        .await
        .json()
        .await
        .unwrap();
    let ticket = created["ticket"].as_str().unwrap().to_owned();

    app.smtp_refuses(true);
    let first = app.run_outbox().await;
    assert_eq!((first.sent, first.retried, first.dead), (0, 1, 0));
    assert_eq!(
        app.run_outbox().await.retried,
        0,
        "not retried before its backoff"
    );
    app.advance(30);
    assert_eq!(
        app.run_outbox().await.retried,
        1,
        "second attempt after 30 s"
    );
    app.advance(60);
    assert_eq!(
        app.run_outbox().await.dead,
        1,
        "third and last attempt after a further 60 s"
    );
    assert!(app.mails().is_empty());

    let agent = app.sign_in("agent@vendor.test").await;
    let page = app
        .console_page(&agent, &format!("/console/tickets/{ticket}"))
        .await;
    assert!(
        page.contains("dead") && page.contains("451"),
        "the ticket page shows the dead mail and its error"
    );

    app.smtp_refuses(false);
    let retry_path = crate::html::select_attr(&page, "form[action$='/retry']", "action");
    let token = crate::desk_support::csrf(&page);
    let retried = agent
        .post(app.url(&retry_path))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 303);
    assert_eq!(app.run_outbox().await.sent, 1);
    let received = app.mails_to("outage@example.com");
    assert_eq!(received.len(), 1, "delivered exactly once");
    assert!(received[0].subject.contains(&ticket));
}

crate::on_both_backends!(
    xml_export_of_an_nvr_and_two_cameras_through_the_api,
    xml_export_of_an_nvr_and_two_cameras_through_the_form,
    reset_string_through_the_api,
    reset_string_through_the_form,
    qr_screenshot_through_the_api,
    qr_screenshot_through_the_form,
    the_agent_api_lists_shows_and_approves,
    bad_submissions_are_refused_and_leave_nothing_behind,
    an_oversize_upload_is_refused_before_it_is_read,
    uploads_past_the_memory_budget_are_spooled_and_stored_whole,
    a_resubmission_finds_its_ticket_and_a_newer_export_supersedes,
    agent_routes_need_a_valid_token,
    racing_approvals_sign_once_and_mail_once,
    a_rejection_mails_the_reason,
    healthz_answers_when_the_database_does,
    an_smtp_outage_retries_then_dead_letters_and_an_agent_retries,
);
