//! Key rotation while the desk runs: new approvals sign with the new key, devices built
//! to trust {old, new} accept both, a device that trusts only {old} names the unknown
//! key id, and retiring a key is audited and drops it from the exported keys.

use std::process::Command;

use resetdesk::crypto::PublicKeySet;
use resetdesk::device::{self, DeviceState, ImportRefusal};
use resetdesk::domain::{DeviceModel, DeviceSerial, FirmwareVersion};
use resetdesk::protocol::DeviceIdentity;
use serde_json::Value;

use crate::desk_support::{
    Backend, TestApp, customer_form, export_part, file_part, label_photo, spawn_app, spawn_app_on,
};

fn resetdesk(app: &TestApp, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_resetdesk"))
        .args(args)
        .env("RESETDESK_KEYS_DIR", app.dir.path().join("keys"))
        .env("RESETDESK_DATA_DIR", app.dir.path().join("data"))
        .env_remove("RESETDESK_DATABASE_URL")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

fn device_trusting(app: &TestApp, serial: &str, trusted: PublicKeySet) -> DeviceState {
    let identity = DeviceIdentity {
        model: DeviceModel::parse("DS-2CD2143G2-I").unwrap(),
        serial: DeviceSerial::parse(serial).unwrap(),
        firmware: FirmwareVersion::parse("V5.7.3").unwrap(),
        mac_address: None,
        reserved_email: None,
    };
    device::provision(identity, &app.keys().master_secret().unwrap(), trusted)
}

/// Exports from `state`, submits, approves and returns the signed response file.
async fn answered(app: &TestApp, agent: &str, state: &mut DeviceState, email: &str) -> Vec<u8> {
    let request = app.export(state, 0, app.now());
    let form = export_part(customer_form(email), &request, "string").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    let created: Value = app.submit(form).await.json().await.unwrap();
    let ticket = created["ticket"].as_str().unwrap();
    let approve = app
        .api_post(
            agent,
            &format!("/api/v1/tickets/{ticket}/approve"),
            Value::Null,
        )
        .await;
    assert_eq!(approve.status(), 200);
    app.run_outbox().await;
    let mail = app
        .mails_to(email)
        .into_iter()
        .find(|m| m.subject.contains("response"))
        .unwrap();
    mail.attachments[0].1.clone()
}

fn key_id_of(response: &[u8]) -> String {
    let text = String::from_utf8_lossy(response);
    text.split("<KeyId>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn rotation_in_service_and_devices_that_trust_old_and_new_keys() {
    let app = spawn_app().await;
    let agent = app.agent_token("agent@vendor.test").await;
    let old_keys = app.keys().public_keys().unwrap();
    let old_id = old_keys.keys[0].id().to_string();

    let mut before = device_trusting(
        &app,
        "DS-2CD2143G2-I20231115AAWRJ00000001",
        old_keys.clone(),
    );
    let old_response = answered(&app, &agent, &mut before, "before@example.com").await;
    assert_eq!(key_id_of(&old_response), old_id);

    let (code, out) = resetdesk(&app, &["keys", "rotate"]);
    assert_eq!(code, 0, "{out}");
    let new_id = app
        .desk
        .signer
        .reload()
        .unwrap()
        .expect("the desk sees the rotated key")
        .to_string();
    assert_ne!(new_id, old_id);
    assert_eq!(
        app.desk.signer.reload().unwrap(),
        None,
        "a second reload changes nothing"
    );
    let both_keys = app.keys().public_keys().unwrap();
    assert_eq!(both_keys.keys.len(), 2);

    // A device built after the rotation trusts {old, new} and accepts responses from both.
    let mut trusts_both = device_trusting(
        &app,
        "DS-2CD2143G2-I20231115AAWRJ00000002",
        both_keys.clone(),
    );
    let new_response = answered(&app, &agent, &mut trusts_both, "both@example.com").await;
    assert_eq!(
        key_id_of(&new_response),
        new_id,
        "new approvals sign with the new key"
    );
    let report = device::import_response(
        &mut trusts_both,
        &new_response,
        "new admin password",
        app.now(),
    )
    .unwrap();
    assert!(report[0].1.is_ok(), "{report:?}");
    let mut old_device_new_firmware = before.clone();
    old_device_new_firmware.trusted_keys = both_keys;
    let report = device::import_response(
        &mut old_device_new_firmware,
        &old_response,
        "new admin password",
        app.now(),
    )
    .unwrap();
    assert!(
        report[0].1.is_ok(),
        "a device trusting {{old, new}} accepts the old key's response: {report:?}"
    );

    // A device whose firmware knows only the old key names the new one as unknown.
    let mut trusts_old = device_trusting(&app, "DS-2CD2143G2-I20231115AAWRJ00000003", old_keys);
    let response = answered(&app, &agent, &mut trusts_old, "old@example.com").await;
    let report =
        device::import_response(&mut trusts_old, &response, "new admin password", app.now())
            .unwrap();
    match &report[0].1 {
        Err(refusal @ ImportRefusal::UnknownKeyId(id)) => {
            assert_eq!(id.to_string(), new_id);
            assert!(refusal.to_string().contains("does not trust"), "{refusal}");
        }
        other => panic!("expected an unknown key id, got {other:?}"),
    }

    // Retiring: refused for the active key, audited for the old one.
    let (code, out) = resetdesk(&app, &["keys", "retire", &new_id]);
    assert_eq!(code, 1);
    assert!(out.contains("rotate` first"), "{out}");
    let (code, out) = resetdesk(&app, &["keys", "retire", &old_id]);
    assert_eq!(code, 0, "{out}");
    let (_, exported) = resetdesk(&app, &["keys", "export-public"]);
    assert!(
        !exported.contains(&old_id) && exported.contains(&new_id),
        "{exported}"
    );
    let (_, audit) = resetdesk(&app, &["audit", "export"]);
    assert!(
        audit.contains("key_rotated") && audit.contains("key_retired"),
        "{audit}"
    );
    assert_eq!(resetdesk(&app, &["audit", "verify"]).0, 0);
}

/// A replica whose keys directory still names a key that another replica's `keys
/// retire` withdrew, with nothing newer: the approval is refused with the reason, before
/// anything is signed or stored, instead of signing with the retired key.
async fn a_retired_key_with_no_successor_refuses_the_approval(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let agent = app.agent_token("agent@vendor.test").await;
    let mut state = device_trusting(
        &app,
        "DS-2CD2143G2-I20231115AAWRJ00000009",
        app.keys().public_keys().unwrap(),
    );
    let request = app.export(&mut state, 0, app.now());
    let form = export_part(customer_form("stale@example.com"), &request, "string").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    let created: Value = app.submit(form).await.json().await.unwrap();
    let ticket = created["ticket"].as_str().unwrap();
    let active = app.keys().active_signing_key().unwrap().id().to_string();
    app.desk
        .store
        .retire_key(&active, "cli", app.now())
        .await
        .unwrap();

    let approve = app
        .api_post(
            &agent,
            &format!("/api/v1/tickets/{ticket}/approve"),
            Value::Null,
        )
        .await;
    assert_eq!(approve.status(), 409);
    let body: Value = approve.json().await.unwrap();
    let message = body.to_string();
    assert!(
        message.contains(&active) && message.contains("is retired"),
        "{message}"
    );
    let detail = app
        .desk
        .store
        .ticket(&resetdesk::domain::TicketNumber::parse(ticket).unwrap())
        .await
        .unwrap();
    assert!(detail.responses.is_empty(), "nothing was signed");
    assert_eq!(detail.summary.status.as_str(), "open");
}

crate::on_both_backends!(a_retired_key_with_no_successor_refuses_the_approval);
