//! Data retention (issue 23, item 1), on both backends: a decided ticket's label photo,
//! previews and export are deleted `photo_retention_days` after the decision and no
//! sooner, its customer's name, phone and company `customer_retention_days` after, by
//! `resetdesk retention run --now T`; the console says so instead of a broken image; the
//! audit log still verifies.

use serde_json::Value;

use crate::desk_support::{
    Backend, TestApp, customer_form, export_part, file_part, label_photo, spawn_app_on, walk_files,
};
use crate::on_both_backends;

const DAY: i64 = 86_400;

/// `resetdesk ARGS` against the desk's own database, data and keys.
fn desk_command(app: &TestApp, args: &[&str]) -> (bool, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_resetdesk"));
    command
        .args(args)
        .env("RESETDESK_DATA_DIR", app.dir.path().join("data"))
        .env("RESETDESK_KEYS_DIR", app.dir.path().join("keys"));
    match &app.desk.settings.storage.database_url {
        Some(url) => command.env("RESETDESK_DATABASE_URL", url),
        None => command.env_remove("RESETDESK_DATABASE_URL"),
    };
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn retention_at(app: &TestApp, now: resetdesk::domain::Timestamp) -> String {
    let (ok, said) = desk_command(app, &["retention", "run", "--now", &now.to_string()]);
    assert!(ok, "{said}");
    said
}

async fn decided_tickets_keep_evidence_and_details_only_so_long(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let mut device = app.device("RETAIN-0001", "DS-7608NI-K2");
    let request = app.export(&mut device, 0, app.now());
    let form = export_part(customer_form("keep@example.com"), &request, "xml").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    let created = app.submit(form).await;
    assert_eq!(created.status(), 201);
    let number = created.json::<Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    app.approve_by_api(&number).await;
    let decided = app.now();
    let blobs_dir = app.dir.path().join("data/blobs");
    assert!(walk_files(&blobs_dir) >= 1, "the label photo is stored");

    // A day before its time: nothing goes.
    let said = retention_at(&app, decided.plus_seconds(29 * DAY));
    assert!(said.contains("evidence of 0 ticket(s) deleted"), "{said}");
    assert!(walk_files(&blobs_dir) >= 1);

    // Thirty days after the decision: the photo, its previews and the export.
    let said = retention_at(&app, decided.plus_seconds(30 * DAY + 60));
    assert!(
        said.contains(&format!(
            "{number}: label photo, previews and export deleted"
        )),
        "{said}"
    );
    assert_eq!(walk_files(&blobs_dir), 0, "no stored file is left: {said}");
    let said = retention_at(&app, decided.plus_seconds(31 * DAY));
    assert!(
        said.contains("evidence of 0 ticket(s) deleted"),
        "once: {said}"
    );

    // The console says so, instead of a broken image.
    app.create_agent("agent@vendor.test").await;
    let agent = app.sign_in("agent@vendor.test").await;
    let page = app
        .console_page(&agent, &format!("/console/tickets/{number}"))
        .await;
    assert!(page.contains("Photo deleted after 30 days"), "{page}");
    assert!(!page.contains("id=\"label-photo\""), "no image is shown");
    assert!(page.contains("id=\"export-deleted\""));
    assert!(
        page.contains("Ana López"),
        "the customer's name is kept longer"
    );
    let photo = agent
        .get(app.url(&format!("/console/tickets/{number}/label")))
        .send()
        .await
        .unwrap();
    assert_eq!(photo.status(), 410);
    assert!(
        photo
            .text()
            .await
            .unwrap()
            .contains("Photo deleted after 30 days")
    );

    // A year after the decision: the customer's name, phone and company.
    let said = retention_at(&app, decided.plus_seconds(365 * DAY + 60));
    assert!(
        said.contains(&format!(
            "{number}: customer's name, phone and company deleted"
        )),
        "{said}"
    );
    let page = app
        .console_page(&agent, &format!("/console/tickets/{number}"))
        .await;
    assert!(page.contains("id=\"customer-deleted\""), "{page}");
    for gone in ["Ana López", "+34 600 123 456", "Instalaciones Sur SL"] {
        assert!(!page.contains(gone), "{gone} is still shown");
    }

    // The audit log names each deletion and still verifies.
    let (ok, said) = desk_command(&app, &["audit", "verify"]);
    assert!(ok, "{said}");
    let (ok, said) = desk_command(&app, &["audit", "export"]);
    assert!(ok, "{said}");
    assert!(said.contains("evidence_removed"), "{said}");
    assert!(said.contains("customer_details_removed"), "{said}");
}

on_both_backends!(decided_tickets_keep_evidence_and_details_only_so_long);
