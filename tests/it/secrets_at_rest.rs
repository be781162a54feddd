//! Whoever gets a copy of the database, a backup of it, or read access to the data
//! directory finds no reset key, signed response file or TOTP seed there to use:
//! response mails are emptied once delivered or dead (a dead one is signed again to be
//! retried), seeds are sealed under a key in keys/, and every file the desk creates
//! under the data directory is owner-only.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use resetdesk::device;
use resetdesk::domain::{DeviceSerial, TicketNumber};
use resetdesk::startup::Application;

use crate::desk_support::{
    Backend, TestApp, csrf, customer_form, export_part, file_part, keys_in, label_photo,
    spawn_app_on, spawn_app_with,
};
use crate::serve_binary::serve_command;
use crate::support::Sandbox;

const NVR: &str = "DS-7608NI-K2/8P0820231115CCRRJ12345678";

/// An outbox row as a copy of the database shows it.
#[derive(Debug)]
struct StoredMail {
    id: i64,
    kind: String,
    status: String,
    recipient: String,
    subject: String,
    text: String,
    html: String,
    attachment: Option<Vec<u8>>,
}

type MailColumns = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<Vec<u8>>,
);

/// A user's TOTP columns as a copy of the database shows them.
type SeedColumns = (String, Option<String>, Option<String>, Option<String>);

const MAIL_SQL: &str =
    "SELECT id, kind, status, recipient, subject, body_text, body_html, attachment
                        FROM outbox ORDER BY id";
const SEED_SQL: &str =
    "SELECT email, totp_secret, totp_sealed, totp_key_id FROM users ORDER BY email";

/// Reads the desk's database directly, on whichever backend it runs.
async fn outbox(app: &TestApp) -> Vec<StoredMail> {
    let url = app.desk.settings.storage.database_url();
    let rows: Vec<MailColumns> = if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query_as(MAIL_SQL).fetch_all(&pool).await.unwrap()
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query_as(MAIL_SQL).fetch_all(&pool).await.unwrap()
    };
    rows.into_iter()
        .map(
            |(id, kind, status, recipient, subject, text, html, attachment)| StoredMail {
                id,
                kind,
                status,
                recipient,
                subject,
                text,
                html,
                attachment,
            },
        )
        .collect()
}

async fn seeds(app: &TestApp) -> Vec<SeedColumns> {
    let url = app.desk.settings.storage.database_url();
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query_as(SEED_SQL).fetch_all(&pool).await.unwrap()
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query_as(SEED_SQL).fetch_all(&pool).await.unwrap()
    }
}

/// Puts a user's seed back in clear, as a desk from before sealing stored it.
async fn store_seed_in_clear(app: &TestApp, email: &str, seed: &str) {
    const SQL: &str = "UPDATE users SET totp_secret = $1, totp_sealed = NULL, totp_key_id = NULL
                       WHERE email = $2";
    let url = app.desk.settings.storage.database_url();
    let updated = if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let query = sqlx::query(SQL).bind(seed).bind(email);
        query.execute(&pool).await.unwrap().rows_affected()
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let query = sqlx::query(SQL).bind(seed).bind(email);
        query.execute(&pool).await.unwrap().rows_affected()
    };
    assert_eq!(updated, 1);
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// What the `responses` table holds in its signature column.
async fn stored_signatures(app: &TestApp) -> Vec<String> {
    const SQL: &str = "SELECT signature FROM responses ORDER BY ticket_id, position";
    let url = app.desk.settings.storage.database_url();
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query_scalar(SQL).fetch_all(&pool).await.unwrap()
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query_scalar(SQL).fetch_all(&pool).await.unwrap()
    }
}

/// Whether any secret part of the row holds `needle`.
fn holds(mail: &StoredMail, needle: &str) -> bool {
    mail.text.contains(needle)
        || mail.html.contains(needle)
        || mail
            .attachment
            .as_deref()
            .is_some_and(|a| contains(a, needle))
}

/// A ticket for the NVR and one camera, submitted through the form; its number and the
/// device as it was when it exported.
async fn submitted(app: &TestApp, email: &str) -> (String, device::DeviceState) {
    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    let request = app.export(&mut nvr, 1, app.now());
    let form = export_part(customer_form(email), &request, "xml").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    let (number, _) = app.submit_form(form).await;
    (number, nvr)
}

async fn a_delivered_response_mail_leaves_no_key_in_the_database(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let email = "delivered@example.com";
    let (number, _) = submitted(&app, email).await;
    app.approve_by_api(&number).await;
    let waiting = outbox(&app)
        .await
        .into_iter()
        .find(|m| m.kind == "approval")
        .unwrap();
    assert_eq!(app.run_outbox().await.sent, 2);
    let delivered = app
        .mails_to(email)
        .into_iter()
        .find(|m| m.subject.contains("response"))
        .unwrap();
    let keys = keys_in(&delivered);
    assert_eq!(keys.len(), 2, "{}", delivered.text);
    let (file_name, xml) = &delivered.attachments[0];
    assert!(file_name.ends_with(".xml") && contains(xml, "<ResetResponse"));
    // While the mail waited, its row held what a database reader would take.
    for (_, key) in &keys {
        assert!(holds(&waiting, key), "the check below can fail");
    }
    assert!(holds(&waiting, "<ResetResponse"));

    let rows = outbox(&app).await;
    let row = rows.iter().find(|m| m.kind == "approval").unwrap();
    assert_eq!(
        (row.status.as_str(), row.recipient.as_str(), &row.subject),
        ("sent", email, &delivered.subject),
        "the console still shows what the mail was"
    );
    for mail in &rows {
        for (_, key) in &keys {
            assert!(!holds(mail, key), "key {key} left in {mail:?}");
        }
        assert!(
            !holds(mail, "<ResetResponse"),
            "signed file left in {mail:?}"
        );
    }

    // The signed entries the desk keeps for the status page are sealed: with the
    // ticket's devices a signature in clear would rebuild the file (found by a red team).
    let xml = String::from_utf8_lossy(xml);
    let signatures: Vec<&str> = xml
        .split("<Signature>")
        .skip(1)
        .filter_map(|rest| rest.split("</Signature>").next())
        .collect();
    assert_eq!(signatures.len(), 2, "{xml}");
    let stored = stored_signatures(&app).await;
    assert_eq!(stored.len(), 2);
    for signature in &signatures {
        assert!(
            stored.iter().all(|s| !s.contains(signature)),
            "signature {signature} stored in clear: {stored:?}"
        );
    }

    // A copy of the SQLite file: what was emptied is overwritten, not left in free pages.
    if backend == Backend::Sqlite {
        let path = app.dir.path().join("data/resetdesk.db");
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&pool)
            .await
            .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for (_, key) in &keys {
            assert!(
                !contains(&bytes, key),
                "key {key} still in the database file"
            );
        }
        assert!(!contains(&bytes, "<ResetResponse"));
    }
}

/// Approves with the SMTP server refusing, until the response mail is dead.
async fn approved_until_dead(app: &TestApp, number: &str) -> StoredMail {
    app.smtp_refuses(true);
    app.approve_by_api(number).await;
    assert_eq!(app.run_outbox().await.retried, 1);
    app.advance(30);
    assert_eq!(app.run_outbox().await.retried, 1);
    app.advance(60);
    assert_eq!(app.run_outbox().await.dead, 1);
    app.smtp_refuses(false);
    outbox(app)
        .await
        .into_iter()
        .find(|m| m.kind == "approval")
        .unwrap()
}

/// Clicks the ticket page's Retry button of mail `mail_id`; returns status and location.
async fn retry(
    app: &TestApp,
    agent: &reqwest::Client,
    number: &str,
    mail_id: i64,
) -> (u16, String) {
    let page = app
        .console_page(agent, &format!("/console/tickets/{number}"))
        .await;
    let action = format!("/console/tickets/{number}/mails/{mail_id}/retry");
    assert!(page.contains(&action), "a Retry button for the dead mail");
    let response = agent
        .post(app.url(&action))
        .form(&[("csrf", csrf(&page).as_str())])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    (status, location.unwrap_or(text))
}

async fn a_dead_response_mail_is_signed_again_and_the_device_takes_it(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent("agent@vendor.test").await;
    let email = "dead.mail@example.com";
    let (number, nvr) = submitted(&app, email).await;
    app.run_outbox().await;
    let dead = approved_until_dead(&app, &number).await;
    assert_eq!(dead.status, "dead");
    assert!(
        dead.text.is_empty() && dead.html.is_empty() && dead.attachment.is_none(),
        "a dead response mail keeps no key: {dead:?}"
    );
    let ticket_number = TicketNumber::parse(&number).unwrap();
    let before = app.desk.store.ticket(&ticket_number).await.unwrap();
    let signatures_before = app
        .desk
        .store
        .recent_audit(None, Some("sign"), 50)
        .await
        .unwrap()
        .len();

    let agent = app.sign_in("agent@vendor.test").await;
    let (status, location) = retry(&app, &agent, &number, dead.id).await;
    assert_eq!(
        (status, location.contains("done=mail-signed-again")),
        (303, true),
        "{location}"
    );
    let shown = app.console_page(&agent, &location).await;
    assert!(shown.contains("signed again"), "{shown}");

    // Signed again, for each device, by the agent who retried: in the audit log.
    let signed = app
        .desk
        .store
        .recent_audit(None, Some("sign"), 50)
        .await
        .unwrap();
    assert_eq!(signed.len(), signatures_before + 2);
    assert!(
        signed[..2]
            .iter()
            .all(|e| e.actor == "agent@vendor.test" && e.detail.contains("signed again")),
        "{signed:?}"
    );
    let retried = app
        .desk
        .store
        .recent_audit(Some("agent@vendor.test"), Some("mail_retry"), 10)
        .await
        .unwrap();
    assert_eq!(retried.len(), 1);
    // The same challenges, the same key: Ed25519 gives the same signatures, made anew.
    // (Stored sealed, under a fresh nonce each time: compared opened.)
    let after = app.desk.store.ticket(&ticket_number).await.unwrap();
    let seal = app.desk.keys.seal_keys();
    let opened = |responses: &[resetdesk::store::StoredResponse]| -> Vec<_> {
        responses.iter().map(|r| r.open(&seal).unwrap()).collect()
    };
    assert_eq!(opened(&after.responses), opened(&before.responses));

    assert_eq!(app.run_outbox().await.sent, 1);
    let mail = app
        .mails_to(email)
        .into_iter()
        .find(|m| m.subject.contains("response"))
        .expect("the response mail arrives at last");
    let keys = keys_in(&mail);
    assert_eq!(keys.len(), 2);
    // The reference device takes the file, and each unit its typed key.
    let mut by_file = nvr.clone();
    let report = device::import_response(
        &mut by_file,
        &mail.attachments[0].1,
        "new admin password",
        app.now(),
    )
    .unwrap();
    assert!(report.iter().all(|(_, r)| r.is_ok()), "{report:?}");
    let mut by_key = nvr.clone();
    for (serial, key) in &keys {
        let serial = DeviceSerial::parse(serial).unwrap();
        let unit = (serial.as_str() != NVR).then_some(&serial);
        device::import_key(&mut by_key, unit, key, "new admin password", app.now())
            .unwrap_or_else(|e| panic!("{serial} refused {key}: {e}"));
    }
    // Delivered, the new mail is emptied in turn.
    let row = outbox(&app)
        .await
        .into_iter()
        .find(|m| m.id == dead.id)
        .unwrap();
    assert_eq!(row.status, "sent");
    for (_, key) in &keys {
        assert!(!holds(&row, key));
    }
}

async fn a_dead_response_mail_is_not_signed_after_its_challenge_expired(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent("agent@vendor.test").await;
    let (number, _) = submitted(&app, "late@example.com").await;
    app.run_outbox().await;
    let dead = approved_until_dead(&app, &number).await;
    let signatures = app
        .desk
        .store
        .recent_audit(None, Some("sign"), 50)
        .await
        .unwrap()
        .len();
    app.advance(48 * 3600);
    let agent = app.sign_in("agent@vendor.test").await;
    let (status, page) = retry(&app, &agent, &number, dead.id).await;
    assert_eq!(status, 422, "{page}");
    assert!(
        page.contains("expired") && page.contains("new export"),
        "says why and what to do: {page}"
    );
    assert_eq!(
        app.desk
            .store
            .recent_audit(None, Some("sign"), 50)
            .await
            .unwrap()
            .len(),
        signatures,
        "nothing signed"
    );
    assert_eq!(
        app.desk.store.mail_counts().await.unwrap().2,
        1,
        "still dead"
    );
}

async fn totp_seeds_are_sealed_at_rest_and_survive_a_key_rotation(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let email = "agent@vendor.test";
    app.create_agent(email).await;
    let seed = app.totp_seed(email);
    let seed_hex = data_encoding::HEXLOWER.encode(seed.as_bytes());
    let first_key = app.keys().seal_keys().unwrap().current_id().clone();
    let sealed_under = |rows: &[SeedColumns]| {
        let (_, clear, sealed, key_id) = rows.iter().find(|r| r.0 == email).unwrap().clone();
        assert_eq!(clear, None, "no seed in clear");
        let sealed = sealed.expect("a sealed seed");
        assert!(
            !sealed.contains(&seed) && !sealed.contains(&seed_hex),
            "the column does not give the seed away"
        );
        key_id.expect("the sealing key's id")
    };
    assert_eq!(sealed_under(&seeds(&app).await), first_key.as_str());
    app.sign_in(email).await;

    // A row an older desk wrote: the next desk to start seals it.
    store_seed_in_clear(&app, email, &seed).await;
    let start_again = || async {
        let again =
            Application::build_with_clock(app.desk.settings.clone(), Arc::new(app.clock.clone()))
                .await
                .expect("another desk starts on the same database and keys");
        drop(again);
    };
    start_again().await;
    assert_eq!(sealed_under(&seeds(&app).await), first_key.as_str());
    let audited = app
        .desk
        .store
        .recent_audit(None, Some("totp_seeds_sealed"), 10)
        .await
        .unwrap();
    assert!(
        audited[0].detail.starts_with("1 seed(s) sealed"),
        "{audited:?}"
    );
    app.sign_in(email).await;

    // Rotation: the new key seals, the old one still opens, and a start re-seals.
    let second_key = app.keys().rotate_seal_key().unwrap();
    // As `keys rotate-seal` does: the database records the new key's id, without which
    // no desk starts on a directory holding it (another desk's keys, as far as it knows).
    app.desk
        .store
        .register_key(
            resetdesk::store::KeyKind::Seal,
            second_key.as_str(),
            app.now(),
        )
        .await
        .unwrap();
    start_again().await;
    assert_eq!(sealed_under(&seeds(&app).await), second_key.as_str());
    // This desk read its keys before the rotation: it finds the new one when it meets it.
    app.sign_in(email).await;
}

crate::on_both_backends!(
    a_delivered_response_mail_leaves_no_key_in_the_database,
    a_dead_response_mail_is_signed_again_and_the_device_takes_it,
    a_dead_response_mail_is_not_signed_after_its_challenge_expired,
    totp_seeds_are_sealed_at_rest_and_survive_a_key_rotation,
);

/// Runs the binary under `umask 022`, as a default shell would.
fn with_umask_022(args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("umask 022 && exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_resetdesk"))
        .args(args);
    command
}

/// Every file and directory below `dir` (not `dir` itself) with its mode.
fn modes_below(dir: &Path) -> Vec<(std::path::PathBuf, u32, bool)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        found.push((
            path.clone(),
            metadata.permissions().mode() & 0o777,
            metadata.is_dir(),
        ));
        if metadata.is_dir() {
            found.extend(modes_below(&path));
        }
    }
    found
}

#[tokio::test]
async fn files_under_an_open_data_dir_are_owner_only_and_the_desk_warns() {
    let sandbox = Sandbox::new();
    let data = sandbox.path("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut add = with_umask_022(&[
        "user",
        "add",
        "--email",
        "agent@vendor.test",
        "--role",
        "agent",
        "--password-stdin",
    ]);
    let mut add = add
        .current_dir(sandbox.path(""))
        .env("RESETDESK_KEYS_DIR", sandbox.path("keys"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut add.stdin.take().unwrap(),
        b"correct horse battery staple\n",
    )
    .unwrap();
    assert!(add.wait().unwrap().success());
    let token = sandbox
        .run(&["user", "token", "--email", "agent@vendor.test"])
        .ok()
        .stdout
        .trim()
        .to_owned();

    let served = serve_command(&sandbox, &[], &mut with_umask_022(&["serve"]));
    let warned = served
        .all_lines
        .lock()
        .unwrap()
        .iter()
        .find(|line| line.contains("WARN") && line.contains("open to group or others"))
        .cloned()
        .expect("a warning about the data directory");
    assert!(
        warned.contains(&data.display().to_string()) && warned.contains("0755"),
        "{warned}"
    );

    // A submission and an approval: database, blobs, spool and mail files all written.
    let base = format!("http://127.0.0.1:{}", served.port);
    let client = reqwest::Client::new();
    let form = crate::desk_support::fresh_submission(
        &resetdesk::crypto::KeyStore::new(sandbox.path("keys")),
        "DS-2CD2143G2-I20231115AAWRJ12345678",
        1,
        &label_photo(),
    );
    let created = client
        .post(format!("{base}/api/v1/requests"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let ticket = created.json::<serde_json::Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let approved = client
        .post(format!("{base}/api/v1/tickets/{ticket}/approve"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    served.wait_for_log("mail sent");
    served.wait_for_log("mail sent");

    let found = modes_below(&data);
    let names: Vec<String> = found
        .iter()
        .map(|(p, _, _)| p.strip_prefix(&data).unwrap().display().to_string())
        .collect();
    for expected in [
        "resetdesk.db",
        "resetdesk.db-wal",
        "blobs",
        "spool",
        "outbox",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    assert!(
        names.iter().filter(|n| n.ends_with(".eml")).count() >= 2,
        "{names:?}"
    );
    let blobs = found
        .iter()
        .filter(|(p, _, is_dir)| !is_dir && p.starts_with(data.join("blobs")))
        .count();
    // The approval had the label photo read first, which made its preview and thumbnail.
    assert_eq!(
        blobs, 3,
        "the label photo, its preview and its thumbnail: {names:?}"
    );
    for (path, mode, is_dir) in &found {
        let wanted = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, wanted, "{} is {mode:04o}", path.display());
    }
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o755,
        "the operator's own directory keeps the mode they chose"
    );

    // A seal key rotation from the command line, audited, while the desk runs.
    let rotated = sandbox.run(&["keys", "rotate-seal"]).ok();
    assert!(rotated.stdout.contains("now seals"), "{}", rotated.stdout);
}

/// With the keys in a separate signer (`signer_url`), which answers each challenge once,
/// a dead response mail is sent again from what the signer answered: the sealed
/// signatures, their typed keys recovered by the signer. The device takes it.
#[tokio::test]
async fn a_separate_signer_sends_a_dead_response_again_from_what_it_answered() {
    let sandbox = Sandbox::new();
    let signer_keys = resetdesk::crypto::KeyStore::new(sandbox.path("keys"));
    signer_keys
        .init(resetdesk::domain::Timestamp::now())
        .unwrap();
    let signer = crate::signer::start_signer_in(&sandbox, "keys", "signer", &[], &[]);
    let url = signer.url.clone();
    let app = spawn_app_with(|s| s.signer.url = Some(url)).await;
    assert!(
        !app.dir.path().join("keys/factory-master.key").exists(),
        "the desk holds no master secret"
    );
    app.create_agent("agent@vendor.test").await;
    let email = "separate.signer@example.com";
    let mut nvr = device::provision(
        resetdesk::protocol::DeviceIdentity {
            model: resetdesk::domain::DeviceModel::parse("DS-7608NI-K2").unwrap(),
            serial: DeviceSerial::parse(NVR).unwrap(),
            firmware: resetdesk::domain::FirmwareVersion::parse("V4.30.085").unwrap(),
            mac_address: None,
            reserved_email: None,
        },
        &signer_keys.master_secret().unwrap(),
        signer_keys.public_keys().unwrap(),
    );
    let request = device::export(
        &mut nvr,
        1,
        Some(&signer_keys.master_secret().unwrap()),
        app.now(),
    )
    .unwrap();
    let form = export_part(customer_form(email), &request, "xml").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    let (number, _) = app.submit_form(form).await;
    app.run_outbox().await;
    let dead = approved_until_dead(&app, &number).await;
    assert_eq!(dead.status, "dead");

    let agent = app.sign_in("agent@vendor.test").await;
    let (status, location) = retry(&app, &agent, &number, dead.id).await;
    assert_eq!(status, 303, "{location}");
    app.run_outbox().await;
    let resent = app
        .mails_to(email)
        .into_iter()
        .find(|m| m.subject.contains("response"))
        .expect("the response mail, sent again");
    let (name, file) = resent.attachments.first().expect("the signed file");
    assert!(name.ends_with(".xml"));
    device::import_response(&mut nvr, file, "a new admin pw", app.now())
        .expect("the device takes the response sent again");
}
