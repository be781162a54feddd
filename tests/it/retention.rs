//! Data retention, erasure and access (issue 23), on both backends: a decided ticket's
//! label photo, previews and export are deleted `photo_retention_days` after the
//! decision and no sooner, its customer's name, phone and company
//! `customer_retention_days` after, by `resetdesk retention run --now T`; a customer is
//! exported and erased on request, and nothing of them is left but the audit chain,
//! which still verifies; the console says so instead of a broken image.

use serde_json::Value;

use crate::desk_support::{
    Backend, TestApp, customer_form, export_part, file_part, label_photo, spawn_app_on, walk_files,
};
use crate::on_both_backends;

const DAY: i64 = 86_400;

/// `resetdesk ARGS` against the desk's own database, data and keys.
fn desk_command(app: &TestApp, args: &[&str]) -> (bool, String) {
    app.command(args)
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
    let number = sent_ticket(&app, "RETAIN-0001", customer_form("keep@example.com")).await;
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

/// A customer's details as form fields: a name, phone and company found nowhere else.
fn erasable_customer(email: &str) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text("name", "Erika Löschbar")
        .text("email", email.to_owned())
        .text("phone", "+49 151 2345 6789")
        .text("company", "Löschbar Sicherheit GmbH")
        .text("country", "DE")
        .text("role", "installer")
        .text("purchase_channel", "Fachhandel Löschbar")
}

/// A ticket for a new device `serial`, sent with the form with `customer`'s details, a
/// label photo and the device's XML export: its number.
async fn sent_ticket(app: &TestApp, serial: &str, customer: reqwest::multipart::Form) -> String {
    let mut device = app.device(serial, "DS-7608NI-K2");
    let request = app.export(&mut device, 0, app.now());
    let form = export_part(customer, &request, "xml").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    let created = app.submit(form).await;
    assert_eq!(created.status(), 201);
    created.json::<Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A ticket of `address` for a new device `serial`, sent with the form and approved
/// through the API with `token`: the customer's details are [`erasable_customer`]'s, or
/// [`customer_form`]'s for an address starting with "stays".
async fn decided_ticket(app: &TestApp, token: &str, serial: &str, address: &str) -> String {
    let customer = if address.starts_with("stays") {
        customer_form(address)
    } else {
        erasable_customer(address)
    };
    let number = sent_ticket(app, serial, customer).await;
    let approved = app
        .api_post(
            token,
            &format!("/api/v1/tickets/{number}/approve"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(approved.status(), 200, "approval of {number}");
    number
}

/// Every row of every table of the database, as text (PostgreSQL), or the database's
/// files after a checkpoint (SQLite: pages are overwritten when freed, `secure_delete`).
async fn everything_stored(app: &TestApp, backend: Backend) -> String {
    let url = app.desk.settings.storage.database_url.clone();
    let data = app.dir.path().join("data");
    everything_stored_in(&data, backend, url.as_deref()).await
}

/// [`everything_stored`] in the database at `url` (PostgreSQL), or the SQLite file of the
/// data directory `data`.
async fn everything_stored_in(
    data: &std::path::Path,
    backend: Backend,
    url: Option<&str>,
) -> String {
    match backend {
        Backend::Sqlite => {
            let file = data.join("resetdesk.db");
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display()))
                .await
                .unwrap();
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
            let mut bytes = std::fs::read(&file).unwrap();
            if let Ok(wal) = std::fs::read(file.with_extension("db-wal")) {
                bytes.extend(wal);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url.unwrap()).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables
                  WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            let mut all = String::new();
            for table in tables {
                let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT t::text FROM \"{table}\" t"
                )))
                .fetch_all(&pool)
                .await
                .unwrap();
                all.push_str(&rows.join("\n"));
            }
            pool.close().await;
            all
        }
    }
}

/// Issue 23, items 2 and 3: `resetdesk customer export` writes everything the desk holds
/// about a customer; `resetdesk customer erase` then leaves their name, address, phone,
/// company and photos in no table and no blob (the database's files and rows searched),
/// mails them a last confirmation, keeps the other customers' tickets, and the audit
/// chain still verifies, saying which entries were erased.
async fn an_erased_customer_is_nowhere_but_the_chain_holds(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let token = app.agent_token("approver@vendor.test").await;
    let mut numbers = Vec::new();
    for (serial, address) in [
        ("ERASE-0001", "erika.loeschbar@example.com"),
        ("ERASE-0002", "Erika.Loeschbar+cams@Example.com"),
        ("STAYS-0001", "stays@example.com"),
    ] {
        numbers.push(decided_ticket(&app, &token, serial, address).await);
    }
    app.run_outbox().await;
    let photos: Vec<String> = {
        let mut names = Vec::new();
        for number in &numbers[..2] {
            let ticket = app
                .desk
                .store
                .ticket(&resetdesk::domain::TicketNumber::parse(number).unwrap())
                .await
                .unwrap();
            names.push(ticket.label_blob);
        }
        names
    };

    // Access: everything, with the photos, in a directory only its owner may enter.
    let out = app.dir.path().join("erika");
    let (ok, said) = desk_command(
        &app,
        &[
            "customer",
            "export",
            "--email",
            "erika.loeschbar@example.com",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(ok, "{said}");
    let json: Value =
        serde_json::from_slice(&std::fs::read(out.join("customer.json")).unwrap()).unwrap();
    let tickets = json["tickets"].as_array().unwrap();
    assert_eq!(
        tickets.len(),
        2,
        "both of her tickets, not the other customer's"
    );
    assert_eq!(tickets[0]["customer"]["name"], "Erika Löschbar");
    for ticket in tickets {
        let number = ticket["number"].as_str().unwrap();
        assert!(numbers[..2].contains(&number.to_owned()));
        let photo = std::fs::read(out.join(number).join("label.jpg")).unwrap();
        assert_eq!(photo, label_photo());
        assert!(out.join(number).join("export.xml").exists());
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // Erasure.
    let (ok, said) = desk_command(
        &app,
        &[
            "customer",
            "erase",
            "--email",
            "ERIKA.loeschbar@example.com",
            "--reason",
            "asked by e-mail on 2026-12-01",
            "--now",
            &app.now().to_string(),
        ],
    );
    assert!(ok, "{said}");
    for number in &numbers[..2] {
        assert!(said.contains(&format!("{number}: erased")), "{said}");
    }
    // The last mail, to her address.
    app.run_outbox().await;
    // (To the address of her newest ticket.)
    let last: Vec<_> = app
        .mails()
        .into_iter()
        .filter(|m| {
            m.to.eq_ignore_ascii_case("Erika.Loeschbar+cams@Example.com")
        })
        .collect();
    assert!(
        last.iter()
            .any(|m| m.subject.contains("Your data was erased")
                && m.text.contains(&numbers[0])
                && m.text.contains(&numbers[1])),
        "{:?}",
        app.mails()
            .iter()
            .map(|m| (&m.to, &m.subject))
            .collect::<Vec<_>>()
    );
    // Once it is sent (until then it holds her address), nothing of her is stored:
    // not in any row or file of the database, nor among the blobs.
    let stored = everything_stored(&app, backend).await;
    for gone in [
        "Löschbar",
        "Loeschbar",
        "loeschbar",
        "+49 151 2345 6789",
        "+4915123456789",
        "2345 6789",
    ] {
        assert!(
            !stored.contains(gone),
            "{gone:?} is still stored after the erasure: {:?}",
            stored
                .match_indices(gone)
                .map(
                    |(i, _)| &stored[stored.floor_char_boundary(i.saturating_sub(150))
                        ..stored.ceil_char_boundary((i + 80).min(stored.len()))]
                )
                .collect::<Vec<_>>()
        );
    }
    assert!(
        stored.contains("stays@example.com"),
        "the other customer stays"
    );
    let blobs = app.dir.path().join("data/blobs");
    for name in &photos {
        assert!(
            !blobs.join(&name[..2]).join(&name[2..]).exists(),
            "the photo {name} is still stored"
        );
    }

    // The console says so.
    app.create_agent("agent@vendor.test").await;
    let agent = app.sign_in("agent@vendor.test").await;
    let page = app
        .console_page(&agent, &format!("/console/tickets/{}", numbers[0]))
        .await;
    assert!(page.contains("Erased on request"), "{page}");
    assert!(!page.contains("Photo deleted after"), "{page}");

    // The chain holds, and says which entries were erased.
    let (ok, said) = desk_command(&app, &["audit", "verify"]);
    assert!(ok, "{said}");
    assert!(said.contains("erased with their customer"), "{said}");
}

on_both_backends!(an_erased_customer_is_nowhere_but_the_chain_holds);

/// The app's database as a backup would hold it: a copy of the SQLite file after a
/// checkpoint, or a `pg_dump` of the PostgreSQL database.
async fn back_up(app: &TestApp, backend: Backend) -> std::path::PathBuf {
    let backup = app.dir.path().join("backup");
    match backend {
        Backend::Sqlite => {
            let file = app.dir.path().join("data/resetdesk.db");
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display()))
                .await
                .unwrap();
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
            std::fs::copy(&file, &backup).unwrap();
        }
        Backend::Postgres => {
            let url = app.desk.settings.storage.database_url.clone().unwrap();
            let dumped = std::process::Command::new("pg_dump")
                .args(["-Fc", "-f", backup.to_str().unwrap(), &url])
                .output()
                .expect("pg_dump runs");
            assert!(
                dumped.status.success(),
                "{}",
                String::from_utf8_lossy(&dumped.stderr)
            );
        }
    }
    backup
}

/// Restores `backup` as a host restoring the desk would: for SQLite, a data directory
/// `restored` with the backup's database file and the blob store as it is now (a
/// restore of the database does not reach it); for PostgreSQL, a new database
/// (dropped with `RestoredDatabase`) beside the app's data directory.
fn restore(
    app: &TestApp,
    backend: Backend,
    backup: &std::path::Path,
) -> (std::path::PathBuf, Option<RestoredDatabase>) {
    match backend {
        Backend::Sqlite => {
            let restored = app.dir.path().join("restored");
            crate::support::private_dir(&restored);
            let copied = std::process::Command::new("cp")
                .arg("-a")
                .arg(app.dir.path().join("data/blobs"))
                .arg(restored.join("blobs"))
                .status()
                .unwrap();
            assert!(copied.success());
            std::fs::copy(backup, restored.join("resetdesk.db")).unwrap();
            (restored, None)
        }
        Backend::Postgres => {
            let url = app.desk.settings.storage.database_url.clone().unwrap();
            let (server, name) = url.rsplit_once('/').unwrap();
            let restored = format!("{name}_restored");
            let psql = |sql: &str| {
                let ran = std::process::Command::new("psql")
                    .args([&format!("{server}/postgres"), "-c", sql])
                    .output()
                    .unwrap();
                assert!(
                    ran.status.success(),
                    "{}",
                    String::from_utf8_lossy(&ran.stderr)
                );
            };
            psql(&format!("DROP DATABASE IF EXISTS {restored}"));
            psql(&format!("CREATE DATABASE {restored}"));
            let url = format!("{server}/{restored}");
            let ran = std::process::Command::new("pg_restore")
                .args(["--no-owner", "-d", &url, backup.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(
                ran.status.success(),
                "{}",
                String::from_utf8_lossy(&ran.stderr)
            );
            (
                app.dir.path().join("data"),
                Some(RestoredDatabase {
                    server: server.to_owned(),
                    name: restored,
                }),
            )
        }
    }
}

/// A database restored for a test, dropped after it.
struct RestoredDatabase {
    server: String,
    name: String,
}

impl RestoredDatabase {
    fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }
}

impl Drop for RestoredDatabase {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                &format!("{}/postgres", self.server),
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// Issue 23, item 4: the erasure is recorded where a restore of the database does not
/// reach (beside the blobs, under an HMAC of the mailbox); `serve` started on a backup
/// taken before it erases the customer again before it serves anything, and mails nobody.
async fn a_restored_backup_is_erased_again_at_start(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let token = app.agent_token("approver@vendor.test").await;
    for (serial, address) in [
        ("RESTORE-0001", "erika.loeschbar@example.com"),
        ("RESTORE-0002", "stays@example.com"),
    ] {
        decided_ticket(&app, &token, serial, address).await;
    }
    app.run_outbox().await;
    let backup = back_up(&app, backend).await;
    let (ok, said) = desk_command(
        &app,
        &[
            "customer",
            "erase",
            "--email",
            "erika.loeschbar@example.com",
            "--now",
            &app.now().to_string(),
        ],
    );
    assert!(ok, "{said}");
    app.run_outbox().await;
    let mails = app.mails().len();

    // The backup comes back, and her with it.
    let (data, restored) = restore(&app, backend, &backup);
    let url = restored.as_ref().map(RestoredDatabase::url);
    assert!(
        everything_stored_in(&data, backend, url.as_deref())
            .await
            .contains("Löschbar")
    );

    // `serve` on it erases her again before it listens.
    let sandbox = crate::support::Sandbox::new();
    let keys = app.dir.path().join("keys");
    let mut env = vec![
        ("RESETDESK_DATA_DIR", data.to_str().unwrap()),
        ("RESETDESK_KEYS_DIR", keys.to_str().unwrap()),
    ];
    if let Some(url) = &url {
        env.push(("RESETDESK_DATABASE_URL", url.as_str()));
    }
    let served = crate::serve_binary::serve_command(
        &sandbox,
        &env,
        std::process::Command::new(env!("CARGO_BIN_EXE_resetdesk")).arg("serve"),
    );
    assert!(
        served
            .all_lines
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains("erasures re-applied after a restore")),
        "{:?}",
        served.all_lines.lock().unwrap()
    );
    drop(served);
    let stored = everything_stored_in(&data, backend, url.as_deref()).await;
    for gone in ["Löschbar", "loeschbar", "+49 151 2345 6789"] {
        assert!(
            !stored.contains(gone),
            "{gone:?} came back with the restore"
        );
    }
    assert!(
        stored.contains("stays@example.com"),
        "the other customer stays"
    );
    assert_eq!(app.mails().len(), mails, "nobody is mailed again");
}

on_both_backends!(a_restored_backup_is_erased_again_at_start);

/// Issue 23, item 3, the other way round: words removed from the audit log without an
/// erasure (an insider with the database, its triggers dropped) are named by `audit
/// verify`, not passed off as erased.
#[tokio::test]
async fn audit_words_removed_without_an_erasure_are_named() {
    let Some(app) = spawn_app_on(Backend::Sqlite).await else {
        return;
    };
    let number = sent_ticket(&app, "HIDDEN-0001", customer_form("hidden@example.com")).await;
    app.approve_by_api(&number).await;
    let (ok, said) = desk_command(&app, &["audit", "verify"]);
    assert!(ok, "{said}");

    let file = app.dir.path().join("data/resetdesk.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    // The triggers refuse it first.
    let refused = sqlx::query(
        "DELETE FROM audit_salts WHERE ticket_id = (SELECT id FROM tickets WHERE number = ?)",
    )
    .bind(&number)
    .execute(&pool)
    .await;
    assert!(
        refused.is_err(),
        "the salts go only with an erased customer"
    );
    for statement in [
        "DROP TRIGGER audit_details_erased_only",
        "DROP TRIGGER audit_salts_erased_only",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    sqlx::query(
        "DELETE FROM audit_details WHERE entry_id IN (SELECT a.id FROM audit_log a
           JOIN tickets t ON t.id = a.ticket_id WHERE t.number = ?)",
    )
    .bind(&number)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "DELETE FROM audit_salts WHERE ticket_id = (SELECT id FROM tickets WHERE number = ?)",
    )
    .bind(&number)
    .execute(&pool)
    .await
    .unwrap();
    let (ok, said) = desk_command(&app, &["audit", "verify"]);
    assert!(!ok, "{said}");
    assert!(
        said.contains("no later `audit_words_erased` entry names it"),
        "{said}"
    );

    // An erasure entry of their own, chained as the desk would (the chain has no
    // secret), naming those entries: not sealed by the desk, and named so.
    let hidden: Vec<i64> = sqlx::query_scalar(
        "SELECT a.id FROM audit_log a JOIN tickets t ON t.id = a.ticket_id
          WHERE t.number = ? AND a.commitment IS NOT NULL ORDER BY a.id",
    )
    .bind(&number)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!hidden.is_empty());
    let (last, last_hash): (i64, String) =
        sqlx::query_as("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    let prev: [u8; 32] = (0..32)
        .map(|i| u8::from_str_radix(&last_hash[i * 2..i * 2 + 2], 16).unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let ids: Vec<String> = hidden.iter().map(i64::to_string).collect();
    let detail = format!(
        "tickets {number}: the words of entries {} erased with their customer; seal {}",
        ids.join(", "),
        "0".repeat(64)
    );
    let at = app.now();
    let hash = resetdesk::audit::entry_hash(
        &prev,
        last + 1,
        at,
        "cli",
        resetdesk::audit::ERASURE_ACTION,
        None,
        &detail,
    );
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, action, ticket_id, detail, prev_hash, hash)
         VALUES (?, ?, 'cli', ?, NULL, ?, ?, ?)",
    )
    .bind(last + 1)
    .bind(at.unix_seconds())
    .bind(resetdesk::audit::ERASURE_ACTION)
    .bind(&detail)
    .bind(&last_hash)
    .bind(hex(&hash))
    .execute(&pool)
    .await
    .unwrap();
    let (ok, said) = desk_command(&app, &["audit", "verify"]);
    assert!(!ok, "{said}");
    assert!(said.contains("is not sealed by the desk"), "{said}");
}

/// The admin page erases a customer as the command does, naming the admin: only an
/// admin, only with the box ticked, never a pending ticket.
async fn an_admin_erases_a_customer_from_the_console(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let number = sent_ticket(
        &app,
        "CONSOLE-0001",
        erasable_customer("erika.loeschbar@example.com"),
    )
    .await;
    app.create_user("admin@vendor.test", &[resetdesk::domain::Role::Admin])
        .await;
    let admin = app.sign_in("admin@vendor.test").await;
    app.create_agent("agent@vendor.test").await;
    let agent = app.sign_in("agent@vendor.test").await;
    let erase = |client: &reqwest::Client, fields: Vec<(&'static str, String)>| {
        let client = client.clone();
        let app = &app;
        async move {
            let page = client
                .get(app.url("/console"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let mut form = vec![("csrf", crate::desk_support::csrf(&page))];
            form.extend(fields);
            let answer = client
                .post(app.url("/console/admin/customers/erase"))
                .form(&form)
                .send()
                .await
                .unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        }
    };
    let fields = || {
        vec![
            ("email", "erika.loeschbar@example.com".to_owned()),
            ("reason", "asked by e-mail".to_owned()),
            ("confirm", "yes".to_owned()),
        ]
    };

    let page = app.console_page(&admin, "/console/admin/customers").await;
    assert!(page.contains("Erase a customer on request"));
    let (status, _) = erase(&agent, fields()).await;
    assert_eq!(status, 403, "admins only");
    let (status, said) = erase(
        &admin,
        vec![("email", "erika.loeschbar@example.com".to_owned())],
    )
    .await;
    assert_eq!(status, 422, "{said}");
    let (status, said) = erase(&admin, fields()).await;
    assert_eq!(status, 409, "a pending ticket is decided first: {said}");
    assert!(said.contains(&number), "{said}");
    let log = app.dir.path().join("data/blobs/erasures");
    assert_eq!(
        walk_files(&log),
        0,
        "a refused erasure leaves no record for a later start to carry out"
    );

    app.approve_by_api(&number).await;
    let (status, said) = erase(&admin, fields()).await;
    assert_eq!(status, 200, "{said}");
    assert!(said.contains("Erased: 1 ticket(s)"), "{said}");
    let (status, said) = erase(&admin, fields()).await;
    assert_eq!(status, 404, "nothing left to erase: {said}");
    let ticket = app
        .desk
        .store
        .ticket(&resetdesk::domain::TicketNumber::parse(&number).unwrap())
        .await
        .unwrap();
    let erased = ticket
        .events
        .iter()
        .find(|e| e.kind == resetdesk::store::TicketEventKind::CustomerErased)
        .unwrap();
    assert_eq!(erased.actor, "admin@vendor.test");
    assert_eq!(
        walk_files(&log),
        1,
        "the erasure is recorded beside the blobs"
    );

    // She writes again, later: the record of her erasure leaves her new ticket alone.
    app.advance(60);
    let again = sent_ticket(
        &app,
        "CONSOLE-0002",
        erasable_customer("erika.loeschbar@example.com"),
    )
    .await;
    let erased_again = resetdesk::retention::reapply_erasures(
        app.desk.store.as_ref(),
        &app.desk.blobs,
        &app.desk.keys.desk_secret,
        app.now(),
    )
    .await
    .unwrap();
    assert!(erased_again.is_empty(), "{erased_again:?}");
    let new = app
        .desk
        .store
        .ticket(&resetdesk::domain::TicketNumber::parse(&again).unwrap())
        .await
        .unwrap();
    assert_eq!(new.customer.name.as_str(), "Erika Löschbar");
}

on_both_backends!(an_admin_erases_a_customer_from_the_console);
