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
    Backend, TestApp, csrf, customer_form, export_part, file_part, spawn_app_on, spawn_app_on_with,
};
use crate::html;
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
pub(crate) fn printed_label(serial: &str, codes: bool) -> Vec<u8> {
    let app_device = Label {
        model: resetdesk::domain::DeviceModel::parse("DS-7608NI-K2").unwrap(),
        serial: DeviceSerial::parse(serial).unwrap(),
        mac_address: label::derived_mac_address(&DeviceSerial::parse(serial).unwrap()),
        firmware: resetdesk::domain::FirmwareVersion::parse("V4.30.085").unwrap(),
        codes,
    };
    label::png(&app_device.render().unwrap()).unwrap()
}

/// A label with no codes, as a JPEG damaged in its entropy-coded data: its structure
/// passes intake, and only a full strict decode finds the damage.
fn damaged_label_photo() -> Vec<u8> {
    let flat = image::load_from_memory(&printed_label(SERIAL, false))
        .unwrap()
        .to_luma8();
    damage_entropy_coded_data(&label::jpeg(&label::photograph(&flat, 18), 80).unwrap())
}

/// Sends a new label photo through the link of a photo request, as the customer does.
async fn send_new_photo(app: &TestApp, photo_url: &str, bytes: Vec<u8>, name: &str, mime: &str) {
    let form = reqwest::multipart::Form::new().part("label_photo", file_part(bytes, name, mime));
    let sent = app
        .client
        .post(photo_url)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(sent.status().is_success(), "{}", sent.status());
}

/// The ticket as the agent API shows it.
async fn ticket_of(app: &TestApp, token: &str, number: &str) -> serde_json::Value {
    app.api_get(token, &format!("/api/v1/tickets/{number}"))
        .await
        .json()
        .await
        .unwrap()
}

/// The ticket's `evidence` as the agent API shows it.
async fn evidence_of(app: &TestApp, token: &str, number: &str) -> serde_json::Value {
    ticket_of(app, token, number).await["evidence"].clone()
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
        (
            &previews.preview_blob,
            resetdesk::evidence::reading::PREVIEW_SIDE,
        ),
        (
            &previews.thumbnail_blob,
            resetdesk::evidence::reading::THUMBNAIL_SIDE,
        ),
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
    let number = submit_with(&app, damaged_label_photo(), "image/jpeg").await;
    assert_eq!(
        worker::work_until_idle(&app.desk).await.unwrap(),
        vec![Worked::Unreadable]
    );
    let ticket = ticket_of(&app, &token, &number).await;
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

/// The agent's note explains the photo request it came with, not a later one the desk
/// made itself for a photo it could not read.
async fn the_status_page_says_why_the_latest_photo_was_asked_for(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let number = submit_with(&app, printed_label(SERIAL, true), "image/png").await;
    worker::work_until_idle(&app.desk).await.unwrap();
    app.create_agent("console@vendor.test").await;
    let agent = app.sign_in("console@vendor.test").await;
    let asked = app
        .console_action(
            &agent,
            &number,
            "request-photo",
            &[("note", "Hold the phone closer to the label.")],
        )
        .await;
    assert_eq!(asked, 303);
    app.run_outbox().await;
    let mails = app.mails_to("ana@example.com");
    let line_with = |needle: &str, not: &str| {
        mails
            .iter()
            .flat_map(|m| m.text.lines())
            .find(|l| l.contains(needle) && !l.contains(not))
            .unwrap_or_else(|| panic!("no {needle} link in {mails:?}"))
            .trim()
            .to_owned()
    };
    let (status_url, photo_url) = (line_with("/status/", "/photo"), line_with("/photo?t=", " "));
    let next = async || {
        let page = app.page(&status_url).await;
        html::text(&page, "#next")
    };
    assert!(next().await.contains("Hold the phone closer"));
    // The customer's new photo is damaged, and the desk sends the ticket back itself.
    send_new_photo(
        &app,
        &photo_url,
        damaged_label_photo(),
        "label.jpg",
        "image/jpeg",
    )
    .await;
    assert_eq!(
        worker::work_until_idle(&app.desk).await.unwrap(),
        vec![Worked::Unreadable]
    );
    let said = next().await;
    assert!(!said.contains("Hold the phone closer"), "{said}");
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
    send_new_photo(
        &app,
        &photo_url,
        printed_label(SERIAL, true),
        "label.png",
        "image/png",
    )
    .await;
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

/// A PNG tiled with QR finder patterns (dark 7 × 7, light 5 × 5, dark 3 × 3 modules of
/// `module` pixels): rxing's finder search weighs the patterns three by three, so a
/// picture of thousands keeps it busy (15,000 on 2,000 px: 32 s in a test build).
fn tiled_finder_patterns(side: u32, module: u32) -> Vec<u8> {
    let pitch = 8 * module;
    let picture = image::GrayImage::from_fn(side, side, |x, y| {
        let (column, row) = ((x % pitch) / module, (y % pitch) / module);
        if column >= 7 || row >= 7 {
            return image::Luma([255]);
        }
        let ring = column.min(row).min(6 - column).min(6 - row);
        image::Luma([if ring == 1 { 255 } else { 0 }])
    });
    label::png(&picture).unwrap()
}

/// The photo readers this test process started with a deadline of `seconds` that are
/// still running. Other tests' readers run at the same time, with the default deadline.
fn readers_left(seconds: u64) -> Vec<String> {
    let me = std::process::id().to_string();
    let deadline = format!("\0--max-seconds\0{seconds}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let dir = entry.ok()?.path();
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            let command = std::fs::read(dir.join("cmdline")).ok()?;
            Some((stat, String::from_utf8_lossy(&command).into_owned()))
        })
        .filter(|(stat, command)| {
            // pid (comm) state ppid ...
            let after_comm = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
            let parent = after_comm.split(' ').nth(1);
            parent == Some(me.as_str())
                && stat.contains("(resetdesk)")
                && command.contains(&deadline)
        })
        .map(|(stat, _)| stat)
        .collect()
}

async fn a_photo_that_keeps_the_reader_busy_is_stopped(backend: Backend) {
    // A deadline of its own on each backend: the two run at once, and each looks for
    // its own readers.
    let deadline = match backend {
        Backend::Sqlite => 1,
        Backend::Postgres => 2,
    };
    let Some(app) = spawn_app_on_with(backend, |s| s.evidence.read_timeout_secs = deadline).await
    else {
        return;
    };
    let token = app.agent_token("agent@vendor.test").await;
    // About 8 s of rxing's time in a test build: far past the deadline.
    let number = submit_with(&app, tiled_finder_patterns(1_000, 2), "image/png").await;
    assert_eq!(
        worker::work_until_idle(&app.desk).await.unwrap(),
        vec![Worked::GaveUp],
        "stopped at its deadline and left to an agent"
    );
    assert_eq!(
        readers_left(deadline),
        Vec::<String>::new(),
        "the reader was killed and waited for"
    );
    left_to_an_agent(&app, &token, &number).await;
}

/// The label check failed, and the ticket stays open for an agent: the customer is not
/// blamed for a photo the desk gave up on.
async fn left_to_an_agent(app: &TestApp, token: &str, number: &str) {
    let ticket = ticket_of(app, token, number).await;
    assert_eq!(ticket["evidence"]["state"], "failed", "{ticket}");
    assert_eq!(ticket["status"], "open", "{ticket}");
}

/// A job whose readings were cut off again and again (desks killed mid-read) is failed
/// and left to an agent, not left pending for ever.
async fn a_job_whose_readings_never_finish_is_left_to_an_agent(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let token = app.agent_token("agent@vendor.test").await;
    let number = submit_with(&app, printed_label(SERIAL, true), "image/png").await;
    for _ in 0..resetdesk::store::MAX_EVIDENCE_ATTEMPTS {
        // Leased, then its worker died: the lease has run out at once.
        let leased = app
            .desk
            .store
            .claim_evidence_jobs(app.now(), 0, 1)
            .await
            .unwrap();
        assert_eq!(leased.len(), 1);
    }
    assert_eq!(
        worker::work_until_idle(&app.desk).await.unwrap(),
        vec![Worked::GaveUp]
    );
    left_to_an_agent(&app, &token, &number).await;
    let audit = app
        .desk
        .store
        .recent_audit(None, Some("label_unreadable"), 10)
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|entry| entry.detail.contains("interrupted too often")),
        "the audit log says why: {audit:?}"
    );
}

/// Approving fast cannot skip what the label check finds: an approval of a ticket whose
/// photo is not read yet has it read first. Another device's label then makes the page
/// the agent saw stale, and an approval on no particular page the first of two.
async fn an_approval_is_never_decided_before_the_label_is_read(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let token = app.agent_token("agent@vendor.test").await;
    let number = submit_with(&app, printed_label(OTHER_SERIAL, true), "image/png").await;
    let path = format!("/api/v1/tickets/{number}");
    let seen = app.api_get(&token, &path).await;
    let etag = seen.headers()["etag"].to_str().unwrap().to_owned();
    let seen: serde_json::Value = seen.json().await.unwrap();
    assert_eq!(seen["evidence"]["state"], "pending");
    assert!(seen["flags"].as_array().unwrap().is_empty(), "{seen}");

    // No worker has run: the approval reads the label itself.
    let on_what_was_seen = app
        .client
        .post(app.url(&format!("{path}/approve")))
        .bearer_auth(&token)
        .header("If-Match", &etag)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        on_what_was_seen.status(),
        412,
        "the label flagged the ticket after the agent looked"
    );
    assert_eq!(evidence_of(&app, &token, &number).await["state"], "done");
    let approved = app
        .api_post(&token, &format!("{path}/approve"), serde_json::json!({}))
        .await;
    assert_eq!(
        approved.status(),
        202,
        "the first of two approvals, no signature"
    );
    assert!(
        worker::work_until_idle(&app.desk).await.unwrap().is_empty(),
        "the photo was read once"
    );
}

/// A desk asked to stop (SIGTERM) ends its evidence worker after the job in hand, not
/// after the backlog: the photos left stay due for the next start.
#[tokio::test]
async fn a_stopped_worker_leaves_the_backlog_for_the_next_start() {
    let app = crate::desk_support::spawn_app_with(|_| {}).await;
    submit_with(&app, printed_label(SERIAL, true), "image/png").await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    stop.send(true).unwrap();
    let queued = app.desk.evidence_queued.clone();
    worker::run(app.desk.clone(), queued, stopped).await;
    assert_eq!(
        app.desk.store.evidence_counts().await.unwrap(),
        (1, 0),
        "still due"
    );
}

on_both_backends!(
    a_photo_that_keeps_the_reader_busy_is_stopped,
    an_approval_is_never_decided_before_the_label_is_read,
    a_job_whose_readings_never_finish_is_left_to_an_agent,
    the_devices_own_label_matches,
    another_devices_label_needs_four_eyes,
    a_label_without_codes_is_unreadable,
    a_damaged_photo_is_accepted_then_sent_back,
    the_status_page_says_why_the_latest_photo_was_asked_for,
    a_photo_replaced_while_read_gets_its_own_findings,
);

/// The death signal a reader asks for covers only a desk that dies after the reader
/// started; a reader whose desk died before then (it now has another parent) reads
/// nothing and ends at once, instead of reading on as an orphan.
#[test]
fn a_reader_whose_desk_is_gone_reads_nothing() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let reader = |parent: u32| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_resetdesk"))
            .args(["evidence", "read", "--parent-pid", &parent.to_string(), "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Not a picture: a reader that gets as far as reading refuses it.
        let _ = child.stdin.take().unwrap().write_all(b"not a photo");
        child.wait_with_output().unwrap()
    };
    // This test's process is the reader's parent, and it is not process 1.
    let orphan = reader(1);
    assert_eq!(
        orphan.status.code(),
        Some(i32::from(resetdesk::evidence::reading::EXIT_CANNOT_START))
    );
    let said = String::from_utf8_lossy(&orphan.stderr);
    assert!(said.contains("(process 1) has ended"), "{said}");
    assert!(orphan.stdout.is_empty());

    let child_of_this = reader(std::process::id());
    assert_eq!(
        child_of_this.status.code(),
        Some(i32::from(resetdesk::evidence::reading::EXIT_PHOTO_REFUSED)),
        "{}",
        String::from_utf8_lossy(&child_of_this.stderr)
    );
}
