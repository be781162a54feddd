//! Issue 15, part 1: a key for a camera you don't own. The attack copies the entry of a
//! fresh export of someone else's camera into an export of one's own NVR and sends it
//! with one's own label photo. Version 2 exports bind their entries together, so the desk
//! refuses the stitched export outright; version 1 exports cannot show it, so several
//! version 1 devices in one export need four eyes, and a serial seen under another
//! exporting device is flagged whatever the version.

use resetdesk::device;
use resetdesk::protocol::{PROTOCOL_V1, PROTOCOL_V2, ResetRequest, export_xml};
use serde_json::Value;

use crate::desk_support::{
    Backend, TestApp, customer_form, export_part, file_part, keys_in, label_photo, spawn_app_on,
    spawn_app_on_with,
};

const ATTACKER_NVR: &str = "DS-7608NI-K2/ATTACKER0000000001";
const VICTIM_CAMERA: &str = "DS-2CD2143G2-I/VICTIM000000000001";

fn with_photo(form: reqwest::multipart::Form) -> reqwest::multipart::Form {
    form.part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    )
}

fn xml_form(email: &str, xml: Vec<u8>) -> reqwest::multipart::Form {
    with_photo(customer_form(email).part(
        "export_xml",
        file_part(xml, "export.xml", "application/xml"),
    ))
}

/// An export in one of its forms, with a label photo, from `email`.
fn export_form(email: &str, request: &ResetRequest, kind: &str) -> reqwest::multipart::Form {
    with_photo(export_part(customer_form(email), request, kind))
}

/// Submits `form`, which the desk must take; returns the ticket number.
async fn taken(app: &TestApp, form: reqwest::multipart::Form) -> String {
    let response = app.submit(form).await;
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Submits `form`, which the desk must refuse with 422; returns what it said.
async fn refused(app: &TestApp, form: reqwest::multipart::Form) -> String {
    let response = app.submit(form).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    body["error"]["message"].as_str().unwrap().to_owned()
}

/// The attacker's NVR export (with one camera) and the victim camera's fresh export,
/// both in protocol `version`.
fn exports(app: &TestApp, version: u8) -> (ResetRequest, ResetRequest) {
    let mut nvr = app.device(ATTACKER_NVR, "DS-7608NI-K2");
    let mut victim = app.device(VICTIM_CAMERA, "DS-2CD2143G2-I");
    (
        app.export_in(version, &mut nvr, 1, app.now()),
        app.export_in(version, &mut victim, 0, app.now()),
    )
}

/// The attacker's export with the victim's entry copied in last.
fn stitched_xml(own: &ResetRequest, victim: &ResetRequest) -> Vec<u8> {
    let mut entries = own.devices().to_vec();
    entries.push(victim.devices()[0].clone());
    export_xml::write_entries(&entries).into_bytes()
}

async fn a_stitched_v2_export_is_refused_and_nothing_is_kept(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let (own, victim) = exports(&app, PROTOCOL_V2);
    let stitched = stitched_xml(&own, &victim);
    let message = refused(&app, xml_form("mallory@example.com", stitched.clone())).await;
    assert!(
        message.contains("put together from several exports"),
        "{message}"
    );
    assert_eq!(app.stored_counts().await, (0, 0, 0), "nothing half-stored");

    // The victim's entry relabelled with the attacker's binding fails its MAC instead.
    let relabelled = String::from_utf8(stitched)
        .unwrap()
        .replace(
            &victim.binding().unwrap().export_id.to_hex(),
            &own.binding().unwrap().export_id.to_hex(),
        )
        .replace(
            &format!("<ExportedBy>{VICTIM_CAMERA}</ExportedBy>"),
            &format!("<ExportedBy>{ATTACKER_NVR}</ExportedBy>"),
        );
    let message = refused(
        &app,
        xml_form("mallory@example.com", relabelled.into_bytes()),
    )
    .await;
    assert!(
        message.contains("not made by a genuine device"),
        "{message}"
    );
    assert_eq!(app.stored_counts().await, (0, 0, 0));

    // The attacker's own export, unaltered, is taken.
    taken(&app, export_form("mallory@example.com", &own, "xml")).await;
}

async fn a_v2_export_is_answered_in_v2_and_opens_every_unit(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let mut nvr = app.device(ATTACKER_NVR, "DS-7608NI-K2");
    let request = app.export_in(PROTOCOL_V2, &mut nvr, 2, app.now());
    let number = taken(&app, export_form("owner@example.com", &request, "string")).await;
    app.approve_by_api(&number).await;
    app.run_outbox().await;
    let approval = app
        .mails_to("owner@example.com")
        .into_iter()
        .find(|mail| !mail.attachments.is_empty())
        .expect("the approval mail");
    let file = &approval.attachments[0].1;
    let text = String::from_utf8_lossy(file);
    assert!(
        text.contains(r#"version="2""#)
            && text.contains(&request.binding().unwrap().export_id.to_hex()),
        "{text}"
    );
    let mut with_file = nvr.clone();
    let report =
        device::import_response(&mut with_file, file, "new admin password", app.now()).unwrap();
    assert_eq!(report.len(), 3);
    assert!(
        report.iter().all(|(_, outcome)| outcome.is_ok()),
        "{report:?}"
    );
    for (serial, key) in keys_in(&approval) {
        let serial = resetdesk::domain::DeviceSerial::parse(&serial).unwrap();
        device::import_key(
            &mut nvr,
            Some(&serial),
            &key,
            "new admin password",
            app.now(),
        )
        .unwrap();
    }
}

async fn a_v1_export_of_several_devices_needs_four_eyes(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let token = app.agent_token("agent@vendor.test").await;
    let (own, victim) = exports(&app, PROTOCOL_V1);

    // Version 1 cannot show the stitching: the export is taken, and flagged.
    let number = taken(
        &app,
        xml_form("mallory@example.com", stitched_xml(&own, &victim)),
    )
    .await;
    let flags = app.ticket_flags(&token, &number).await;
    assert!(
        flags.contains(&"version 1 export: its devices are not bound together".to_owned()),
        "{flags:?}"
    );
    // One agent's approval signs nothing: the key for the victim's camera stays unmade.
    let approved = app
        .api_post(
            &token,
            &format!("/api/v1/tickets/{number}/approve"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(approved.status(), 202, "a first approval of two");
    app.run_outbox().await;
    assert!(
        app.mails_to("mallory@example.com")
            .iter()
            .all(|mail| mail.attachments.is_empty() && keys_in(mail).is_empty()),
        "nothing signed after one approval"
    );

    // A one-device version 1 export is handled as before: no such flag.
    let mut camera = app.device("DS-2CD2143G2-I/FIELD00000000001", "DS-2CD2143G2-I");
    let single = app.export_in(PROTOCOL_V1, &mut camera, 0, app.now());
    let number = taken(&app, export_form("field@example.com", &single, "xml")).await;
    assert!(app.ticket_flags(&token, &number).await.is_empty());
}

async fn accept_v1_exports_off_refuses_version_1(backend: Backend) {
    let Some(app) = spawn_app_on_with(backend, |s| s.intake.accept_v1_exports = false).await else {
        return;
    };
    let mut camera = app.device(VICTIM_CAMERA, "DS-2CD2143G2-I");
    for kind in ["xml", "string"] {
        let v1 = app.export_in(PROTOCOL_V1, &mut camera, 0, app.now());
        let message = refused(&app, export_form("field@example.com", &v1, kind)).await;
        assert!(message.contains("older firmware"), "{kind}: {message}");
    }
    assert_eq!(app.stored_counts().await, (0, 0, 0));
    let v2 = app.export_in(PROTOCOL_V2, &mut camera, 0, app.now());
    taken(&app, export_form("field@example.com", &v2, "xml")).await;
}

async fn a_serial_under_another_exporting_device_is_flagged(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let token = app.agent_token("agent@vendor.test").await;
    // The owner's NVR exports itself and its camera; the ticket is on file.
    let mut owners_nvr = app.device("DS-7608NI-K2/OWNER00000000001", "DS-7608NI-K2");
    let owners = app.export_in(PROTOCOL_V2, &mut owners_nvr, 1, app.now());
    let camera_serial = owners.devices()[1].identity.serial.clone();
    taken(&app, export_form("owner@example.com", &owners, "xml")).await;

    // Days later the same camera turns up exported by another device (here: itself,
    // stand-alone, as a camera taken down and reset elsewhere would be).
    app.advance(3 * 24 * 3600);
    let mut camera = app.device(camera_serial.as_str(), "DS-2CD2043G2-I");
    let alone = app.export_in(PROTOCOL_V2, &mut camera, 0, app.now());
    let number = taken(&app, export_form("someone@example.com", &alone, "xml")).await;
    let flags = app.ticket_flags(&token, &number).await;
    assert!(
        flags.contains(&format!(
            "{camera_serial} was exported in the last 30 days as part of another device's export (DS-7608NI-K2/OWNER00000000001)"
        )),
        "{flags:?}"
    );

    // The camera, exported on its own before, now inside a recorder's export: the
    // original stitching shape, flagged whichever of the two tickets came first.
    let again = app.export_in(PROTOCOL_V2, &mut owners_nvr, 1, app.now());
    let number = taken(&app, export_form("owner@example.com", &again, "xml")).await;
    let flags = app.ticket_flags(&token, &number).await;
    assert!(
        flags.contains(&format!(
            "{camera_serial} was exported on its own in the last 30 days and now comes in DS-7608NI-K2/OWNER00000000001's export"
        )),
        "{flags:?}"
    );
    assert!(
        !flags
            .iter()
            .any(|flag| flag.contains("another device's export")),
        "the recorder's own earlier export is not another device's: {flags:?}"
    );
}

/// The red team's downgrade: a camera whose firmware makes version 2 exports is asked
/// (as older firmware would be) for a version 1 entry, which is stitched into a version 1
/// export of the attacker's recorder. The desk knows the camera speaks version 2.
async fn a_device_seen_in_v2_cannot_come_back_in_v1(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let mut victim = app.device(VICTIM_CAMERA, "DS-2CD2143G2-I");
    let genuine = app.export_in(PROTOCOL_V2, &mut victim, 0, app.now());
    taken(&app, export_form("owner@example.com", &genuine, "xml")).await;

    app.advance(2 * 24 * 3600);
    let (own, downgraded) = exports(&app, PROTOCOL_V1);
    let message = refused(
        &app,
        xml_form("mallory@example.com", stitched_xml(&own, &downgraded)),
    )
    .await;
    assert!(
        message.contains(&format!(
            "Device {VICTIM_CAMERA} has sent requests in the newer format"
        )),
        "{message}"
    );
    assert_eq!(app.stored_counts().await.0, 1, "only the genuine ticket");
    // A device never seen in version 2 is still taken in version 1 (flagged when several).
    let mut field = app.device("DS-2CD2143G2-I/FIELD00000000001", "DS-2CD2143G2-I");
    let old = app.export_in(PROTOCOL_V1, &mut field, 0, app.now());
    taken(&app, export_form("field@example.com", &old, "xml")).await;
}

crate::on_both_backends!(
    a_stitched_v2_export_is_refused_and_nothing_is_kept,
    a_v2_export_is_answered_in_v2_and_opens_every_unit,
    a_v1_export_of_several_devices_needs_four_eyes,
    accept_v1_exports_off_refuses_version_1,
    a_serial_under_another_exporting_device_is_flagged,
    a_device_seen_in_v2_cannot_come_back_in_v1,
);
