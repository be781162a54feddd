//! The audit log after a real session: every security step is in it, the chain
//! verifies, and `resetdesk audit verify` names an edited or a deleted entry.

use std::process::Command;

use resetdesk::domain::Timestamp;
use serde_json::Value;

use crate::desk_support::{TestApp, customer_form, export_part, file_part, label_photo, spawn_app};

fn resetdesk(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_resetdesk"))
        .args(args)
        .env("RESETDESK_DATA_DIR", app.dir.path().join("data"))
        .env_remove("RESETDESK_DATABASE_URL")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn a_full_session(app: &TestApp) {
    app.create_agent("agent@vendor.test").await;
    let browser = crate::desk_support::browser();
    let token = crate::desk_support::sign_in_token(&browser, &app.base).await;
    let failed = browser
        .post(app.url("/console/login"))
        .form(&[
            ("csrf", token.as_str()),
            ("email", "agent@vendor.test"),
            ("password", "wrong password!"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 401);
    let mut device = app.device("DS-7608NI-K2/8P0820231115CCRRJ12345678", "DS-7608NI-K2");
    let request = app.export(&mut device, 1, Timestamp::now());
    let form = export_part(customer_form("audit@example.com"), &request, "xml").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    let created: Value = app.submit(form).await.json().await.unwrap();
    let ticket = created["ticket"].as_str().unwrap().to_owned();
    let agent = app.sign_in("agent@vendor.test").await;
    assert_eq!(app.console_action(&agent, &ticket, "claim", &[]).await, 303);
    assert_eq!(
        app.console_action(&agent, &ticket, "approve", &[]).await,
        303
    );
    app.run_outbox().await;
}

#[tokio::test]
async fn the_chain_of_a_real_session_verifies_and_names_tampering() {
    let app = spawn_app().await;
    a_full_session(&app).await;

    let (code, stdout, stderr) = resetdesk(&app, &["audit", "export"]);
    assert_eq!(code, 0, "{stderr}");
    let actions: Vec<String> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for expected in [
        "user_created",
        "login_failed",
        "login",
        "claim",
        "sign",
        "approve",
        "mail_handed_off",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} is audited: {actions:?}"
        );
    }
    assert_eq!(
        actions.iter().filter(|a| *a == "sign").count(),
        2,
        "one signature entry per device"
    );

    let (code, stdout, stderr) = resetdesk(&app, &["audit", "verify"]);
    assert_eq!(code, 0, "{stderr}");
    let head = stdout.trim().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(head.len(), 64);
    let (code, _, stderr) = resetdesk(&app, &["audit", "verify", "--head", &head]);
    assert_eq!(code, 0, "{stderr}");

    // An insider with database access edits entry 4 (the triggers must go first).
    let url = format!(
        "sqlite://{}",
        app.dir.path().join("data/resetdesk.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER audit_log_no_delete")
        .execute(&pool)
        .await
        .unwrap();
    let original: String = sqlx::query_scalar("SELECT actor FROM audit_log WHERE id = 4")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET actor = 'someone else' WHERE id = 4")
        .execute(&pool)
        .await
        .unwrap();
    let (code, _, stderr) = resetdesk(&app, &["audit", "verify"]);
    assert_eq!(code, 3);
    assert!(stderr.contains("entry 4 was changed"), "{stderr}");
    sqlx::query("UPDATE audit_log SET actor = ? WHERE id = 4")
        .bind(&original)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        resetdesk(&app, &["audit", "verify"]).0,
        0,
        "undoing the edit mends the chain"
    );

    // Deleting an entry in the middle is named (its words, kept apart, with it; their
    // table lets them go only with an erased customer, so that trigger goes too).
    sqlx::query("DROP TRIGGER audit_details_erased_only")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_details WHERE entry_id = 6")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_log WHERE id = 6")
        .execute(&pool)
        .await
        .unwrap();
    let (code, _, stderr) = resetdesk(&app, &["audit", "verify"]);
    assert_eq!(code, 3);
    assert!(stderr.contains("entry 6 is missing"), "{stderr}");

    // Cutting entries from the end leaves a shorter chain that verifies on its own,
    // but not against the head published before the cut.
    sqlx::query("DELETE FROM audit_details WHERE entry_id >= 6")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_log WHERE id >= 6")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(resetdesk(&app, &["audit", "verify"]).0, 0);
    let (code, _, stderr) = resetdesk(&app, &["audit", "verify", "--head", &head]);
    assert_eq!(code, 3);
    assert!(stderr.contains("no longer in the chain"), "{stderr}");
}
