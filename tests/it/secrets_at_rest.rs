//! Whoever gets a copy of the database, a backup of it, or read access to the data
//! directory finds no TOTP seed there to use: seeds are sealed under a key in keys/, and
//! every file the desk creates under the data directory is owner-only.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use resetdesk::startup::Application;

use crate::desk_support::{Backend, TestApp, label_photo, spawn_app_on};
use crate::serve_binary::serve_command;
use crate::support::Sandbox;

/// A user's TOTP columns as a copy of the database shows them.
type SeedColumns = (String, Option<String>, Option<String>, Option<String>);

const SEED_SQL: &str =
    "SELECT email, totp_secret, totp_sealed, totp_key_id FROM users ORDER BY email";

async fn seeds(app: &TestApp) -> Vec<SeedColumns> {
    let url = app.desk.settings.database_url();
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
    let url = app.desk.settings.database_url();
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
    start_again().await;
    assert_eq!(sealed_under(&seeds(&app).await), second_key.as_str());
    // This desk read its keys before the rotation: it finds the new one when it meets it.
    app.sign_in(email).await;
}

crate::on_both_backends!(totp_seeds_are_sealed_at_rest_and_survive_a_key_rotation);

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
    assert_eq!(blobs, 2, "the export and the label photo: {names:?}");
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
