//! Issue 18: the evidence worker reads each label photo after intake answered, on both
//! backends. The device's own label → `matches`; another device's label →
//! `other_serial` and a four-eyes flag; a label without codes → `unreadable`; a JPEG
//! damaged in its entropy-coded data is accepted at intake, then the ticket waits for a
//! photo and the customer is told in their language; a photo replaced while its job is
//! leased gets findings for the new photo only.

use resetdesk::device::label::{self, Label};
use resetdesk::domain::DeviceSerial;
use resetdesk::evidence::worker::{self, Worked};
use resetdesk::store::{JobEnd, LabelFinding};

use crate::desk_support::{
    Backend, TestApp, csrf, customer_form, export_part, file_part, spawn_app_on,
};
use crate::label::damage_entropy_coded_data;
use crate::on_both_backends;

const SERIAL: &str = "DS-7608NI-K2/8P0820231115CCRRJ12345678";
const OTHER_SERIAL: &str = "DS-7608NI-K2/8P0820240202CCRRJ87654321";

/// Submits an export of a fresh device `SERIAL` with `photo` as its label photo; returns
/// the ticket number.
async fn submit_with(app: &TestApp, photo: Vec<u8>, mime: &str) -> String {
    let mut device = app.device(SERIAL, "DS-7608NI-K2");
    let request = app.export(&mut device, 0, app.now());
    let form = export_part(customer_form("ana@example.com"), &request, "xml")
        .text("language", "es")
        .part("label_photo", file_part(photo, "label", mime));
    let response = app.submit(form).await;
    assert_eq!(response.status(), 201, "intake accepts the photo");
    let body: serde_json::Value = response.json().await.unwrap();
    body["ticket"].as_str().unwrap().to_owned()
}

/// The label as printed for `serial`, as a PNG; without codes when `codes` is false.
fn printed_label(serial: &str, codes: bool) -> Vec<u8> {
    let app_device = Label {
        model: resetdesk::domain::DeviceModel::parse("DS-7608NI-K2").unwrap(),
        serial: DeviceSerial::parse(serial).unwrap(),
        mac_address: label::derived_mac_address(&DeviceSerial::parse(serial).unwrap()),
        firmware: resetdesk::domain::FirmwareVersion::parse("V4.30.085").unwrap(),
        codes,
    };
    label::png(&app_device.render().unwrap()).unwrap()
}

/// The ticket's `evidence` as the agent API shows it.
async fn evidence_of(app: &TestApp, token: &str, number: &str) -> serde_json::Value {
    let ticket: serde_json::Value = app
        .api_get(token, &format!("/api/v1/tickets/{number}"))
        .await
        .json()
        .await
        .unwrap();
    ticket["evidence"].clone()
}

async fn the_devices_own_label_matches(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let token = app.agent_token("agent@vendor.test").await;
    let number = submit_with(&app, printed_label(SERIAL, true), "image/png").await;
    assert_eq!(
        evidence_of(&app, &token, &number).await["state"],
        "pending",
        "the answer came before the photo was read"
    );
    let worked = worker::work_until_idle(&app.desk).await.unwrap();
    assert_eq!(
        worked,
        vec![Worked::Read {
            findings: vec![(SERIAL.to_owned(), LabelFinding::Matches)]
        }]
    );
    let evidence = evidence_of(&app, &token, &number).await;
    assert_eq!(evidence["state"], "done");
    assert_eq!(
        evidence["label"],
        serde_json::json!([{"serial": SERIAL, "finding": "matches"}])
    );
    assert!(
        evidence["codes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|code| code.as_str().unwrap().contains(SERIAL)),
        "{evidence}"
    );
    assert!(app.ticket_flags(&token, &number).await.is_empty());
    // The console's preview and the queue's thumbnail: JPEGs within their sizes, encoded
    // anew (no metadata carried over).
    let ticket = app
        .desk
        .store
        .ticket(&resetdesk::domain::TicketNumber::parse(&number).unwrap())
        .await
        .unwrap();
    let previews = app
        .desk
        .store
        .label_evidence(ticket.id)
        .await
        .unwrap()
        .unwrap()
        .previews
        .expect("previews were made");
    for (blob, side) in [
        (&previews.preview_blob, worker::PREVIEW_SIDE),
        (&previews.thumbnail_blob, worker::THUMBNAIL_SIDE),
    ] {
        let bytes = app.desk.blobs.get(blob).await.unwrap();
        let picture =
            image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).expect("a JPEG");
        assert!(picture.width().max(picture.height()) <= side);
        assert!(!bytes.windows(4).any(|w| w == b"Exif"), "no metadata");
    }
    // The console shows the preview and links the original.
    app.create_agent("console@vendor.test").await;
    let agent = app.sign_in("console@vendor.test").await;
    let page = app
        .console_page(&agent, &format!("/console/tickets/{number}"))
        .await;
    assert_eq!(
        crate::html::select_attr(&page, "#label-photo", "src"),
        format!("/console/tickets/{number}/label?size=preview")
    );
    for (size, blob, media_type) in [
        ("?size=preview", &previews.preview_blob, "image/jpeg"),
        ("?size=thumbnail", &previews.thumbnail_blob, "image/jpeg"),
        ("", &ticket.label_blob, "image/png"),
    ] {
        let answer = agent
            .get(app.url(&format!("/console/tickets/{number}/label{size}")))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.headers()["content-type"], media_type, "{size}");
        let served = answer.bytes().await.unwrap();
        assert_eq!(
            served.to_vec(),
            app.desk.blobs.get(blob).await.unwrap(),
            "{size}"
        );
    }
    assert!(
        worker::work_until_idle(&app.desk).await.unwrap().is_empty(),
        "each job is done once"
    );
    assert!(
        app.metrics()
            .await
            .contains("resetdesk_evidence_findings_total{finding=\"matches\"}")
    );
}

async fn another_devices_label_needs_four_eyes(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let token = app.agent_token("agent@vendor.test").await;
    let number = submit_with(&app, printed_label(OTHER_SERIAL, true), "image/png").await;
    worker::work_until_idle(&app.desk).await.unwrap();
    let evidence = evidence_of(&app, &token, &number).await;
    assert_eq!(
        evidence["label"],
        serde_json::json!([{"serial": SERIAL, "finding": "other_serial"}])
    );
    let flags = app.ticket_flags(&token, &number).await;
    assert!(
        flags.iter().any(|f| f.contains(OTHER_SERIAL)),
        "a risk flag names the label's serial: {flags:?}"
    );
    // Four eyes: one approval is not enough.
    let approved = app
        .api_post(
            &token,
            &format!("/api/v1/tickets/{number}/approve"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(approved.status(), 202, "the first of two approvals");
}

async fn a_label_without_codes_is_unreadable(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let token = app.agent_token("agent@vendor.test").await;
    let number = submit_with(&app, printed_label(SERIAL, false), "image/png").await;
    worker::work_until_idle(&app.desk).await.unwrap();
    let evidence = evidence_of(&app, &token, &number).await;
    assert_eq!(evidence["state"], "done");
    assert_eq!(
        evidence["label"],
        serde_json::json!([{"serial": SERIAL, "finding": "unreadable"}])
    );
    assert_eq!(evidence["codes"], serde_json::json!([]));
}

async fn a_damaged_photo_is_accepted_then_sent_back(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let token = app.agent_token("agent@vendor.test").await;
    // A label with no codes, as a JPEG damaged in its entropy-coded data: its structure
    // passes intake, and only a full strict decode finds the damage.
    let flat = image::load_from_memory(&printed_label(SERIAL, false))
        .unwrap()
        .to_luma8();
    let photographed = label::photograph(&flat, 18);
    let damaged = damage_entropy_coded_data(&label::jpeg(&photographed, 80).unwrap());
    let number = submit_with(&app, damaged, "image/jpeg").await;
    assert_eq!(
        worker::work_until_idle(&app.desk).await.unwrap(),
        vec![Worked::Unreadable]
    );
    let ticket: serde_json::Value = app
        .api_get(&token, &format!("/api/v1/tickets/{number}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ticket["status"], "awaiting_photo", "{ticket}");
    assert_eq!(ticket["evidence"]["state"], "failed");
    app.run_outbox().await;
    let told = app.mails_to("ana@example.com");
    let request = told
        .iter()
        .find(|m| m.subject.contains("nueva foto"))
        .expect("the photo request, in the customer's language (es)");
    assert!(
        request.text.contains("dañado"),
        "it says the file is damaged: {}",
        request.text
    );
}

async fn a_photo_replaced_while_read_gets_its_own_findings(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let token = app.agent_token("agent@vendor.test").await;
    let number = submit_with(&app, printed_label(OTHER_SERIAL, true), "image/png").await;
    // A worker leases the first photo's job and is slow; meanwhile an agent asks for a
    // new photo and the customer sends the right one.
    let slow = app
        .desk
        .store
        .claim_evidence_jobs(app.now(), worker::LEASE_SECS, 1)
        .await
        .unwrap()
        .remove(0);
    app.create_agent("console@vendor.test").await;
    let agent = app.sign_in("console@vendor.test").await;
    let page = app
        .console_page(&agent, &format!("/console/tickets/{number}"))
        .await;
    let asked = agent
        .post(app.url(&format!("/console/tickets/{number}/request-photo")))
        .form(&[
            ("csrf", csrf(&page).as_str()),
            ("note", "Another device's label."),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 303);
    app.run_outbox().await;
    let mail = app
        .mails_to("ana@example.com")
        .into_iter()
        .rev()
        .find(|m| m.text.contains("/photo?t="))
        .expect("the photo request");
    let photo_url = mail
        .text
        .lines()
        .find(|l| l.contains("/photo?t="))
        .unwrap()
        .trim()
        .to_owned();
    let form = reqwest::multipart::Form::new().part(
        "label_photo",
        file_part(printed_label(SERIAL, true), "label.png", "image/png"),
    );
    let sent = app
        .client
        .post(&photo_url)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(sent.status().is_success(), "{}", sent.status());
    // The slow worker finishes the old photo: nothing is recorded for it.
    let old = resetdesk::store::EvidenceReading {
        job_id: slow.id,
        findings: vec![(SERIAL.to_owned(), LabelFinding::OtherSerial)],
        other_serials: vec![OTHER_SERIAL.to_owned()],
        codes: Vec::new(),
        preview: None,
        at: app.now(),
    };
    assert_eq!(
        app.desk.store.finish_evidence_job(&old).await.unwrap(),
        JobEnd::Superseded
    );
    worker::work_until_idle(&app.desk).await.unwrap();
    let evidence = evidence_of(&app, &token, &number).await;
    assert_eq!(
        evidence["label"],
        serde_json::json!([{"serial": SERIAL, "finding": "matches"}])
    );
}

on_both_backends!(
    the_devices_own_label_matches,
    another_devices_label_needs_four_eyes,
    a_label_without_codes_is_unreadable,
    a_damaged_photo_is_accepted_then_sent_back,
    a_photo_replaced_while_read_gets_its_own_findings,
);
