//! Issue 18 in the console: an agent sees what the machine read on the label beside
//! each device on the ticket page, and in a word in the queue, on both backends. The
//! device's own label → "a code on the photo reads this serial"; another device's label → a warning
//! naming no serial of the export, and the codes read; before the worker has run →
//! "not read yet". Codes are the label's text, which anyone can print: shown escaped.

use resetdesk::device::label::{self, Label};
use resetdesk::domain::{DeviceModel, DeviceSerial, FirmwareVersion};
use resetdesk::evidence::worker;
use resetdesk::store::{EvidenceReading, JobEnd, LabelFinding, ReadCode};
use scraper::{Html, Selector};

use crate::browser::{Driver, Viewport};
use crate::desk_support::{
    AGENT_PASSWORD, Backend, TestApp, customer_form, export_part, file_part, label_photo,
    spawn_app, spawn_app_on,
};
use crate::html::{shows, text, visible_texts};
use crate::on_both_backends;

const AGENT: &str = "agent@vendor.test";
const OWN_SERIAL: &str = "DS-7608NI-K2/8P0820231115CCRRJ11110001";
const SECOND_SERIAL: &str = "DS-7608NI-K2/8P0820231115CCRRJ11110002";
/// A device in no export of these tests: its label sent with another device's export.
const STRANGER_SERIAL: &str = "DS-7608NI-K2/8P0820240202CCRRJ99990009";

/// Submits an export of a fresh device `serial` with `photo` as its label photo;
/// returns the ticket number.
async fn submit(app: &TestApp, serial: &str, email: &str, photo: Vec<u8>, mime: &str) -> String {
    let mut device = app.device(serial, "DS-7608NI-K2");
    let request = app.export(&mut device, 0, app.now());
    let form = export_part(customer_form(email), &request, "xml")
        .part("label_photo", file_part(photo, "label", mime));
    let response = app.submit(form).await;
    assert_eq!(response.status(), 201, "intake accepts the photo");
    let body: serde_json::Value = response.json().await.unwrap();
    body["ticket"].as_str().unwrap().to_owned()
}

/// The rating label printed for `serial`, with its QR code and barcode, as a PNG.
pub fn printed_label(serial: &str) -> Vec<u8> {
    let serial = DeviceSerial::parse(serial).unwrap();
    let printed = Label {
        model: DeviceModel::parse("DS-7608NI-K2").unwrap(),
        mac_address: label::derived_mac_address(&serial),
        serial,
        firmware: FirmwareVersion::parse("V4.30.085").unwrap(),
        codes: true,
    };
    label::png(&printed.render().unwrap()).unwrap()
}

/// What each device row's label check says, in the devices table's order.
fn label_checks(page: &str) -> Vec<String> {
    visible_texts(page, "#devices td.label-check")
}

/// What the queue's Label column says for ticket `number`.
fn queue_label(queue: &str, number: &str) -> String {
    let page = Html::parse_document(queue);
    let rows = Selector::parse("tbody tr").unwrap();
    let cell = Selector::parse("td.label-check").unwrap();
    let row = page
        .select(&rows)
        .find(|row| row.text().any(|t| t.contains(number)))
        .unwrap_or_else(|| panic!("no queue row for {number}:\n{queue}"));
    let words: Vec<&str> = row
        .select(&cell)
        .next()
        .unwrap_or_else(|| panic!("the row of {number} has no label column"))
        .text()
        .flat_map(str::split_whitespace)
        .collect();
    words.join(" ")
}

async fn the_console_shows_what_the_label_says(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent(AGENT).await;
    let own = submit(
        &app,
        OWN_SERIAL,
        "ana@example.com",
        printed_label(OWN_SERIAL),
        "image/png",
    )
    .await;
    let other = submit(
        &app,
        SECOND_SERIAL,
        "ben@example.com",
        printed_label(STRANGER_SERIAL),
        "image/png",
    )
    .await;
    let agent = app.sign_in(AGENT).await;
    let ticket_page = |number: &str| format!("/console/tickets/{number}");

    // Intake answered before the photo was read: the console says so.
    let page = app.console_page(&agent, &ticket_page(&own)).await;
    assert_eq!(label_checks(&page), ["label not read yet"]);
    let queue = app.console_page(&agent, "/console").await;
    assert_eq!(queue_label(&queue, &own), "not read yet");
    assert_eq!(queue_label(&queue, &other), "not read yet");

    worker::work_until_idle(&app.desk).await.unwrap();

    let page = app.console_page(&agent, &ticket_page(&own)).await;
    assert_eq!(
        label_checks(&page),
        ["a code on the photo reads this serial (anyone can print one)"]
    );
    assert!(
        text(&page, "#label-codes").contains(OWN_SERIAL),
        "the codes read are listed"
    );
    let page = app.console_page(&agent, &ticket_page(&other)).await;
    assert_eq!(
        label_checks(&page),
        [format!("⚠ label shows {STRANGER_SERIAL}")]
    );
    assert!(
        text(&page, "#flags").contains(STRANGER_SERIAL),
        "the flag names it"
    );
    assert!(text(&page, "#label-codes").contains(STRANGER_SERIAL));
    assert_eq!(
        crate::html::select_attr(&page, "#devices td.label-check span", "aria-hidden"),
        "true",
        "the mark is for the eye; the words say it"
    );

    let queue = app.console_page(&agent, "/console").await;
    assert_eq!(queue_label(&queue, &own), "code reads serial");
    assert_eq!(queue_label(&queue, &other), "⚠ other device");
}

/// Whatever a label's codes hold reaches the agent as text, never as markup.
async fn codes_are_shown_as_text(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent(AGENT).await;
    let number = submit(
        &app,
        OWN_SERIAL,
        "ana@example.com",
        label_photo(),
        "image/jpeg",
    )
    .await;
    // A worker read a hostile QR code: its text, as printed.
    let hostile = "<img src=x onerror=alert(1)>SN:1";
    let job = app
        .desk
        .store
        .claim_evidence_jobs(app.now(), 60, 10)
        .await
        .unwrap()
        .remove(0);
    let reading = EvidenceReading {
        job_id: job.id,
        findings: vec![(OWN_SERIAL.to_owned(), LabelFinding::NotOnLabel)],
        other_serials: Vec::new(),
        codes: vec![ReadCode {
            format: "qr".to_owned(),
            text: hostile.to_owned(),
        }],
        preview: None,
        at: app.now(),
    };
    assert_eq!(
        app.desk.store.finish_evidence_job(&reading).await.unwrap(),
        JobEnd::Recorded
    );
    let agent = app.sign_in(AGENT).await;
    let page = app
        .console_page(&agent, &format!("/console/tickets/{number}"))
        .await;
    assert_eq!(label_checks(&page), ["label read, this serial not on it"]);
    assert!(shows(&page, hostile), "the agent reads the code as printed");
    assert!(!page.contains("<img src=x"), "and it is no element");
    assert_eq!(
        visible_texts(&page, "#label-codes li"),
        [format!("QR code: {hostile}")]
    );
    let queue = app.console_page(&agent, "/console").await;
    assert_eq!(queue_label(&queue, &number), "serial not on it");
}

/// The pages with findings pass the browser's checks too (no console error, no
/// accessibility violation axe-core finds), the list of codes opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_checks_pass_the_browser_checks() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let app = spawn_app().await;
    app.create_agent(AGENT).await;
    let own = submit(
        &app,
        OWN_SERIAL,
        "ana@example.com",
        printed_label(OWN_SERIAL),
        "image/png",
    )
    .await;
    let other = submit(
        &app,
        SECOND_SERIAL,
        "ben@example.com",
        printed_label(STRANGER_SERIAL),
        "image/png",
    )
    .await;
    worker::work_until_idle(&app.desk).await.unwrap();

    let page = driver.open("label-checks", Viewport::Desktop).await;
    page.goto(&app.url("/console")).await;
    page.type_into("#email", AGENT).await;
    page.type_into("#password", AGENT_PASSWORD).await;
    page.click_and_wait("button[type=submit]").await;
    // Each code is accepted once: move to a fresh 30-second step.
    app.advance(30);
    page.type_into("#code", &app.totp_code(AGENT)).await;
    page.click_and_wait("button[type=submit]").await;
    page.check("queue-with-label-column").await;
    for (number, name) in [(&own, "matching-label"), (&other, "another-devices-label")] {
        page.goto(&app.url(&format!("/console/tickets/{number}")))
            .await;
        page.find("#label-codes summary")
            .await
            .click()
            .await
            .unwrap();
        page.check(name).await;
    }
    assert!(page.text("#label-codes").await.contains(STRANGER_SERIAL));
    page.close().await;
}

on_both_backends!(
    the_console_shows_what_the_label_says,
    codes_are_shown_as_text,
);
