//! Issue 20: registered installers, on both backends. The vendor adds an installer and
//! imports their devices with the command line; the installer sends a request with
//! their token and the desk answers it alone, to the installer; each condition that
//! fails (not theirs, registered to two, self-registered within the hold, the label
//! not the exporting device's, the daily quota, a suspended installer) leaves it to
//! agents; a mark of suspicion suspends the installer.

use std::io::Write;
use std::process::{Command, Stdio};

use resetdesk::device;
use resetdesk::evidence::worker;
use serde_json::{Value, json};

use resetdesk::domain::Role;

use crate::desk_support::{
    Backend, TestApp, csrf, export_part, file_part, keys_in, spawn_app_on, spawn_app_on_with,
};
use crate::evidence::printed_label;
use crate::on_both_backends;

const INSTALLER: &str = "ops@instalaciones-sur.example";
const RIVAL: &str = "ops@rival-installs.example";
const AGENT: &str = "agent@vendor.test";

/// Runs `resetdesk` against the desk's database; (exit code, stdout, stderr).
fn resetdesk(app: &TestApp, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_resetdesk"))
        .args(args)
        .env("RESETDESK_DATA_DIR", app.dir.path().join("data"))
        .env(
            "RESETDESK_DATABASE_URL",
            app.desk.settings.storage.database_url(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Adds `email` as an installer with the command line and returns their token.
fn installer_with_token(app: &TestApp, email: &str) -> String {
    let (code, out, err) = resetdesk(
        app,
        &[
            "installer",
            "add",
            "--email",
            email,
            "--company",
            "Instalaciones Sur SL",
        ],
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, token, err) = resetdesk(app, &["installer", "token", "--email", email], "");
    assert_eq!(code, 0, "{err}");
    token.trim().to_owned()
}

/// Imports `serials` to `email` from a sales record on standard input.
fn import(app: &TestApp, email: &str, serials: &[&str]) -> (i32, String, String) {
    let csv = std::iter::once("invoice,serial,model".to_owned())
        .chain(
            serials
                .iter()
                .enumerate()
                .map(|(i, s)| format!("{i},{s},NVR")),
        )
        .collect::<Vec<_>>()
        .join("\n");
    resetdesk(
        app,
        &[
            "installer",
            "devices",
            "import",
            "--email",
            email,
            "--file",
            "-",
        ],
        &csv,
    )
}

/// Sends `serial`'s fresh export with a photo of `label_serial`'s label, with `token`;
/// the response.
async fn send(
    app: &TestApp,
    token: &str,
    serial: &str,
    label_serial: &str,
    email: Option<&str>,
) -> reqwest::Response {
    let mut device = app.device(serial, "DS-7608NI-K2");
    let request = app.export(&mut device, 0, app.now().plus_seconds(-120));
    let fields = reqwest::multipart::Form::new().text("country", "ES");
    let fields = match email {
        Some(email) => fields.text("email", email.to_owned()),
        None => fields,
    };
    let form = export_part(fields, &request, "xml").part(
        "label_photo",
        file_part(printed_label(label_serial, true), "label.png", "image/png"),
    );
    app.client
        .post(app.url("/api/v1/requests"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// [`send`], accepted; the ticket number once its label is read.
async fn sent(app: &TestApp, token: &str, serial: &str, label_serial: &str) -> String {
    let response = send(app, token, serial, label_serial, None).await;
    assert_eq!(response.status(), 201);
    let number = response.json::<Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    worker::work_until_idle(&app.desk).await.unwrap();
    number
}

async fn ticket(app: &TestApp, agent: &str, number: &str) -> Value {
    app.api_get(agent, &format!("/api/v1/tickets/{number}"))
        .await
        .json()
        .await
        .unwrap()
}

/// Why the installer track left the ticket to agents ("" when it did not).
async fn declined(app: &TestApp, agent: &str, number: &str) -> String {
    ticket(app, agent, number).await["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "fast_track_declined")
        .map(|e| e["detail"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

async fn an_installers_own_device_is_answered_to_the_installer(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let agent = app.agent_token(AGENT).await;
    let token = installer_with_token(&app, INSTALLER);
    let serial = "DS-7608NI-K2/INST00000001";
    let (code, out, err) = import(&app, INSTALLER, &[serial, serial]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 device(s) imported"), "{out}");

    // No email field: the request is the installer's.
    let mut nvr = app.device(serial, "DS-7608NI-K2");
    let request = app.export(&mut nvr, 0, app.now().plus_seconds(-120));
    let form = export_part(
        reqwest::multipart::Form::new().text("country", "ES"),
        &request,
        "xml",
    )
    .part(
        "label_photo",
        file_part(printed_label(serial, true), "label.png", "image/png"),
    );
    let response = app
        .client
        .post(app.url("/api/v1/requests"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let number = response.json::<Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    worker::work_until_idle(&app.desk).await.unwrap();
    let shown = ticket(&app, &agent, &number).await;
    assert_eq!(shown["status"], "approved", "{shown}");
    assert_eq!(shown["customer"]["email"], INSTALLER);

    app.run_outbox().await;
    let responses: Vec<_> = app
        .mails()
        .into_iter()
        .filter(|m| !keys_in(m).is_empty())
        .collect();
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].to, INSTALLER);
    let (_, file) = &responses[0].attachments[0];
    let report = device::import_response(&mut nvr, file, "new admin password", app.now()).unwrap();
    assert!(report.iter().all(|(_, o)| o.is_ok()), "{report:?}");

    let audit = app.desk.store.recent_audit(None, None, 50).await.unwrap();
    assert!(audit.iter().any(|e| e.actor == "desk"
        && e.action == "approve"
        && e.detail.contains("fast track installer")));
    assert!(
        audit
            .iter()
            .any(|e| e.actor == "cli" && e.action == "installer.devices")
    );

    // The console lists it under the installer.
    app.create_agent("reader@vendor.test").await;
    let browser = app.sign_in("reader@vendor.test").await;
    let list = app
        .console_page(
            &browser,
            &format!("/console/automatic?track=installer&installer={INSTALLER}"),
        )
        .await;
    assert!(crate::html::text(&list, "#automatic-decisions").contains(&number));
}

async fn the_installer_track_refuses_what_an_agent_must_see(backend: Backend) {
    let Some(app) = spawn_app_on_with(backend, |s| s.fast_tracks.installer_daily_quota = 2).await
    else {
        return;
    };
    let agent = app.agent_token(AGENT).await;
    let token = installer_with_token(&app, INSTALLER);
    let rival = installer_with_token(&app, RIVAL);
    let (code, _, err) = import(
        &app,
        INSTALLER,
        &[
            "DS-7608NI-K2/INST00000002",
            "DS-7608NI-K2/INST00000003",
            "DS-7608NI-K2/INST00000004",
            "DS-7608NI-K2/INST00000005",
            "DS-7608NI-K2/INST00000006",
            "DS-7608NI-K2/INST00000007",
        ],
    );
    assert_eq!(code, 0, "{err}");
    // Registered to another installer too: neither can say who stands before it.
    assert_eq!(import(&app, RIVAL, &["DS-7608NI-K2/INST00000003"]).0, 0);

    let not_theirs = sent(
        &app,
        &token,
        "DS-7608NI-K2/INST00000099",
        "DS-7608NI-K2/INST00000099",
    )
    .await;
    assert!(
        declined(&app, &agent, &not_theirs)
            .await
            .contains("not registered to the installer")
    );
    let twice = sent(
        &app,
        &token,
        "DS-7608NI-K2/INST00000003",
        "DS-7608NI-K2/INST00000003",
    )
    .await;
    assert!(
        declined(&app, &agent, &twice)
            .await
            .contains("another installer")
    );
    let other_label = sent(
        &app,
        &token,
        "DS-7608NI-K2/INST00000002",
        "DS-7608NI-K2/INST00000099",
    )
    .await;
    let said = declined(&app, &agent, &other_label).await;
    assert!(
        said.contains("four eyes") || said.contains("label"),
        "{said}"
    );

    // Self-registered: counts after the hold.
    let registered = app
        .client
        .post(app.url("/api/v1/installer/devices"))
        .bearer_auth(&rival)
        .json(&json!({"serials": ["DS-7608NI-K2/INST00000010", "DS-7608NI-K2/INST00000011"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 200);
    assert_eq!(registered.json::<Value>().await.unwrap()["registered"], 2);
    let held = sent(
        &app,
        &rival,
        "DS-7608NI-K2/INST00000010",
        "DS-7608NI-K2/INST00000010",
    )
    .await;
    assert!(declined(&app, &agent, &held).await.contains("24 hours"));
    assert_eq!(ticket(&app, &agent, &held).await["status"], "open");

    // The quota (2 here): two answered, the third left to agents.
    let first = sent(
        &app,
        &token,
        "DS-7608NI-K2/INST00000004",
        "DS-7608NI-K2/INST00000004",
    )
    .await;
    let second = sent(
        &app,
        &token,
        "DS-7608NI-K2/INST00000005",
        "DS-7608NI-K2/INST00000005",
    )
    .await;
    for number in [&first, &second] {
        assert_eq!(ticket(&app, &agent, number).await["status"], "approved");
    }
    let third = sent(
        &app,
        &token,
        "DS-7608NI-K2/INST00000006",
        "DS-7608NI-K2/INST00000006",
    )
    .await;
    assert!(
        declined(&app, &agent, &third)
            .await
            .contains("last 24 hours")
    );

    // A mark of suspicion suspends the installer at once.
    app.advance(24 * 3600 + 60);
    app.create_agent("marker@vendor.test").await;
    let browser = app.sign_in("marker@vendor.test").await;
    assert_eq!(
        app.console_action(
            &browser,
            &first,
            "suspicious",
            &[("note", "the site owner called")]
        )
        .await,
        303
    );
    // Their token is revoked with the suspension: no request, no registration.
    let after = send(
        &app,
        &token,
        "DS-7608NI-K2/INST00000002",
        "DS-7608NI-K2/INST00000002",
        None,
    )
    .await;
    assert_eq!(after.status(), 401);
    let register = app
        .client
        .post(app.url("/api/v1/installer/devices"))
        .bearer_auth(&token)
        .json(&json!({"serials": ["DS-7608NI-K2/INST00000012"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), 401);
    // Resumed by an admin with a new token, the track answers again; and the hold is
    // over for the rival's other device (the first is flagged now: a second request
    // within 30 days).
    let (code, _, err) = resetdesk(&app, &["installer", "resume", "--email", INSTALLER], "");
    assert_eq!(code, 0, "{err}");
    let (code, new_token, err) = resetdesk(&app, &["installer", "token", "--email", INSTALLER], "");
    assert_eq!(code, 0, "{err}");
    assert!(new_token.starts_with("rdi_"));
    let again = sent(
        &app,
        new_token.trim(),
        "DS-7608NI-K2/INST00000007",
        "DS-7608NI-K2/INST00000007",
    )
    .await;
    assert_eq!(ticket(&app, &agent, &again).await["status"], "approved");
    let resumed = sent(
        &app,
        &rival,
        "DS-7608NI-K2/INST00000011",
        "DS-7608NI-K2/INST00000011",
    )
    .await;
    assert_eq!(
        ticket(&app, &agent, &resumed).await["status"],
        "approved",
        "{}",
        declined(&app, &agent, &resumed).await
    );
}

async fn the_installers_api_says_what_is_wrong(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let agent = app.agent_token(AGENT).await;
    let token = installer_with_token(&app, INSTALLER);
    let serial = "DS-7608NI-K2/INST00000020";
    // Someone else's address with the installer's token.
    let refused = send(&app, &token, serial, serial, Some("someone@example.com")).await;
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.unwrap().contains(INSTALLER));
    // An agent's token, or none that is live, is no installer's.
    for bad in [agent.as_str(), "rdt_nonsense"] {
        let refused = send(&app, bad, serial, serial, None).await;
        assert_eq!(refused.status(), 401);
        let devices = app
            .client
            .post(app.url("/api/v1/installer/devices"))
            .bearer_auth(bad)
            .json(&json!({"serials": [serial]}))
            .send()
            .await
            .unwrap();
        assert_eq!(devices.status(), 401);
    }
    let post = |body: Value| {
        app.client
            .post(app.url("/api/v1/installer/devices"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let bad = post(json!({"serials": ["GOOD-SERIAL-001", "not a serial!", ""]}))
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let said = bad.text().await.unwrap();
    assert!(
        said.contains("serials[1]") && said.contains("serials[2]"),
        "{said}"
    );
    assert_eq!(post(json!({"devices": []})).await.unwrap().status(), 400);
    assert_eq!(post(json!({"serials": []})).await.unwrap().status(), 422);
    let listed: Value = app
        .client
        .get(app.url("/api/v1/installer/devices"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["devices"], json!([]), "nothing half-registered");

    // As many as the limit at once (a body over actix's own quarter-megabyte limit for
    // a body read whole), and not one more.
    let many: Vec<String> = (0..10_000)
        .map(|i| format!("DS-7608NI-K2/BULK{i:08}"))
        .collect();
    let bulk = post(json!({ "serials": many })).await.unwrap();
    assert_eq!(bulk.status(), 200);
    assert_eq!(bulk.json::<Value>().await.unwrap()["registered"], 10_000);
    let mut too_many = many.clone();
    too_many.push("DS-7608NI-K2/BULK99999999".to_owned());
    let refused = post(json!({ "serials": too_many })).await.unwrap();
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.unwrap().contains("at most 10000"));

    // The command line: a bad sales record changes nothing and names its lines.
    let (code, _, err) = import(&app, INSTALLER, &["GOOD-SERIAL-001", "bad serial!"]);
    assert_ne!(code, 0);
    assert!(err.contains("line 3"), "{err}");
    let (code, _, err) = resetdesk(
        &app,
        &[
            "installer",
            "devices",
            "import",
            "--email",
            "nobody@example.com",
            "--file",
            "-",
        ],
        "serial\nGOOD-SERIAL-001\n",
    );
    assert_ne!(code, 0);
    assert!(err.contains("no installer nobody@example.com"), "{err}");
    let (code, _, err) = resetdesk(
        &app,
        &[
            "installer",
            "add",
            "--email",
            INSTALLER,
            "--company",
            "Again",
        ],
        "",
    );
    assert_ne!(code, 0);
    assert!(err.contains("already registered"), "{err}");
    let (_, listed, _) = resetdesk(
        &app,
        &["installer", "devices", "list", "--email", INSTALLER],
        "",
    );
    assert_eq!(listed.lines().count(), 10_000, "the bulk list only");
    // A registration made in error comes off, audited.
    let (code, out, err) = resetdesk(
        &app,
        &[
            "installer",
            "devices",
            "remove",
            "--email",
            INSTALLER,
            "--serial",
            "DS-7608NI-K2/BULK00000001",
            "--serial",
            "DS-7608NI-K2/NOTHERS00001",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("1 device(s) removed, 1 were not theirs"),
        "{out}"
    );
}

async fn admins_see_and_stop_installers(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_user("admin@vendor.test", &[Role::Admin]).await;
    app.create_agent("plain@vendor.test").await;
    let admin = app.sign_in("admin@vendor.test").await;
    let plain = app.sign_in("plain@vendor.test").await;
    let refused = plain
        .get(app.url("/console/admin/installers"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let post = async |path: &str, fields: &[(&str, &str)]| {
        let page = app.console_page(&admin, "/console/admin/installers").await;
        let token = csrf(&page);
        let mut form = vec![("csrf", token.as_str())];
        form.extend_from_slice(fields);
        admin.post(app.url(path)).form(&form).send().await.unwrap()
    };
    let added = post(
        "/console/admin/installers",
        &[("email", INSTALLER), ("company", "Instalaciones Sur SL")],
    )
    .await;
    assert_eq!(added.status(), 303);
    let again = post(
        "/console/admin/installers",
        &[("email", INSTALLER), ("company", "Twice")],
    )
    .await;
    assert_eq!(again.status(), 409);
    assert!(again.text().await.unwrap().contains("already registered"));
    assert_eq!(
        post(
            "/console/admin/installers",
            &[("email", "not an address"), ("company", "X")]
        )
        .await
        .status(),
        422
    );
    let installer = app
        .desk
        .store
        .installer_by_email(&resetdesk::domain::EmailAddress::parse(INSTALLER).unwrap())
        .await
        .unwrap();
    let id = installer.id.0;
    // A token, shown once, that the installers' API takes.
    let made = post(&format!("/console/admin/installers/{id}/token"), &[]).await;
    assert_eq!(made.status(), 200);
    let page = made.text().await.unwrap();
    let token = crate::html::text(&page, "#new-token");
    let registered = app
        .client
        .post(app.url("/api/v1/installer/devices"))
        .bearer_auth(token.trim())
        .json(&json!({"serials": ["DS-7608NI-K2/INST00000030"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 200);
    let page = app.console_page(&admin, "/console/admin/installers").await;
    let listed = crate::html::text(&page, "#self-registered");
    assert!(
        listed.contains("DS-7608NI-K2/INST00000030") && listed.contains("from "),
        "{listed}"
    );
    // Suspended with words, then resumed; both audited as the admin's.
    assert_eq!(
        post(
            &format!("/console/admin/installers/{id}/suspend"),
            &[("reason", " ")]
        )
        .await
        .status(),
        422
    );
    assert_eq!(
        post(
            &format!("/console/admin/installers/{id}/suspend"),
            &[("reason", "contract ended")]
        )
        .await
        .status(),
        303
    );
    let page = app.console_page(&admin, "/console/admin/installers").await;
    assert!(crate::html::text(&page, "#installers").contains("contract ended"));
    // No new token while suspended: the suspension revoked theirs.
    let refused = post(&format!("/console/admin/installers/{id}/token"), &[]).await;
    assert_eq!(refused.status(), 422);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("resume the installer first")
    );
    assert_eq!(
        post(&format!("/console/admin/installers/{id}/resume"), &[])
            .await
            .status(),
        303
    );
    let audit = app.desk.store.recent_audit(None, None, 50).await.unwrap();
    for action in [
        "installer.add",
        "installer.token",
        "installer.suspend",
        "installer.resume",
    ] {
        assert!(
            audit
                .iter()
                .any(|e| e.actor == "admin@vendor.test" && e.action == action),
            "{action}"
        );
    }
    assert_eq!(
        post("/console/admin/installers/999999/resume", &[])
            .await
            .status(),
        404
    );
}

/// The installer's own page: a CSV of their devices with their token, no session.
async fn an_installer_registers_devices_on_their_page(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let token = installer_with_token(&app, INSTALLER);
    let page = app.client.get(app.url("/installer")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("serial"));
    let send = async |token: &str, csv: &str| {
        let form = reqwest::multipart::Form::new()
            .text("token", token.to_owned())
            .part(
                "devices_csv",
                reqwest::multipart::Part::bytes(csv.as_bytes().to_vec())
                    .file_name("devices.csv")
                    .mime_str("text/csv")
                    .unwrap(),
            );
        let response = app
            .client
            .post(app.url("/installer/devices"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    let (status, said) = send("rdi_not_a_token", "serial\nDS-7608NI-K2/PAGE0001\n").await;
    assert_eq!(status, 401, "{said}");
    let (status, said) = send(&token, "serial\nDS-7608NI-K2/PAGE0001\nnot a serial!\n").await;
    assert_eq!(status, 422, "{said}");
    assert!(
        said.contains("line 3") && said.contains("Nothing was registered"),
        "{said}"
    );
    let (status, said) = send(
        &token,
        "Site,Serial\nMadrid,DS-7608NI-K2/PAGE0001\nToledo,DS-7608NI-K2/PAGE0002\n",
    )
    .await;
    assert_eq!(status, 200, "{said}");
    assert!(said.contains("2 device(s) registered"), "{said}");
    assert!(said.contains("DS-7608NI-K2/PAGE0002"));
    let listed: Value = app
        .client
        .get(app.url("/api/v1/installer/devices"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sources: Vec<&str> = listed["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["self", "self"], "they count after the hold");
}

on_both_backends!(
    an_installer_registers_devices_on_their_page,
    admins_see_and_stop_installers,
    an_installers_own_device_is_answered_to_the_installer,
    the_installer_track_refuses_what_an_agent_must_see,
    the_installers_api_says_what_is_wrong,
);
