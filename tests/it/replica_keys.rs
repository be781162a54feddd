//! Keys across replicas (issue 16), through the real binary on SQLite and PostgreSQL:
//! a replica with another keys directory refuses to start and a running one whose
//! directory changes is not ready; a retired key signs nothing more on any replica, at
//! once; key commands refuse a database that is not the desk's; concurrent rotations
//! lose no key.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use resetdesk::crypto::KeyStore;
use resetdesk::domain::Timestamp;
use serde_json::Value;

use crate::desk_support::{PgDatabase, fresh_submission, label_photo};
use crate::serve_binary::{Served, serve_with};
use crate::support::Sandbox;

/// The database a scenario runs on: the sandbox's SQLite file, or a fresh PostgreSQL
/// database (`None` when no test server is configured).
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    async fn database(&self, sandbox: &Sandbox) -> Option<(Option<PgDatabase>, String)> {
        match self {
            Self::Sqlite => Some((
                None,
                format!("sqlite://{}", sandbox.path("data/resetdesk.db").display()),
            )),
            Self::Postgres => PgDatabase::create()
                .await
                .map(|(database, url)| (Some(database), url)),
        }
    }
}

/// `resetdesk ARGS` in `cwd` with `env`, not asserting: (exit code, stdout + stderr).
fn run(cwd: &Path, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_resetdesk"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RESETDESK_DATABASE_URL")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

/// Starts `resetdesk serve` and expects it to refuse: it must exit before it says it
/// listens. Returns everything it wrote.
fn serve_refused(sandbox: &Sandbox, env: &[(&str, &str)]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_resetdesk"))
        .arg("serve")
        .current_dir(sandbox.path(""))
        .env("RESETDESK_LISTEN", "127.0.0.1:0")
        .env("RESETDESK_KEYS_DIR", sandbox.path("keys"))
        .env_remove("RESETDESK_SMTP_URL")
        .env_remove("RESETDESK_DATABASE_URL")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut text = String::new();
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        if line.contains("listening") {
            let _ = child.kill();
            panic!("the replica started instead of refusing: {line}\n{text}");
        }
        text.push_str(&line);
        text.push('\n');
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success(), "{text}");
    text + &String::from_utf8_lossy(&output.stderr)
}

async fn readyz(served: &Served) -> (u16, Value) {
    let response = reqwest::get(format!("http://127.0.0.1:{}/readyz", served.port))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

macro_rules! on_both {
    ($scenario:ident: $sqlite:ident, $postgres:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            $scenario(Backend::Sqlite).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            $scenario(Backend::Postgres).await;
        }
    };
}

on_both!(a_replica_with_other_keys_is_refused:
    a_replica_with_other_keys_is_refused_on_sqlite,
    a_replica_with_other_keys_is_refused_on_postgres);

/// Fault 3: a replica pointed at an empty keys directory used to create a new master
/// secret, answer 200 on /readyz and refuse every genuine export.
async fn a_replica_with_other_keys_is_refused(backend: Backend) {
    let sandbox = Sandbox::new();
    let Some((_database, url)) = backend.database(&sandbox).await else {
        return;
    };
    let env = [("RESETDESK_DATABASE_URL", url.as_str())];
    // A fresh install still creates its keys on first start.
    let first = serve_with(&sandbox, &env);
    assert!(sandbox.path("keys/factory-master.key").exists());
    let master = KeyStore::new(sandbox.path("keys"))
        .key_ids()
        .unwrap()
        .master;
    assert_eq!(readyz(&first).await.0, 200);

    let empty = sandbox.path("empty-keys");
    let empty_text = empty.display().to_string();
    let refused = serve_refused(
        &sandbox,
        &[
            ("RESETDESK_DATABASE_URL", url.as_str()),
            ("RESETDESK_KEYS_DIR", empty_text.as_str()),
        ],
    );
    assert!(
        refused.contains(&empty_text) && refused.contains("holds no keys"),
        "{refused}"
    );
    assert!(
        refused.contains(&master),
        "names the expected key: {refused}"
    );
    assert!(
        !empty.join("factory-master.key").exists(),
        "no key was created in {empty_text}"
    );

    let other = sandbox.path("other-keys");
    KeyStore::new(&other).init(Timestamp::now()).unwrap();
    let other_text = other.display().to_string();
    let refused = serve_refused(
        &sandbox,
        &[
            ("RESETDESK_DATABASE_URL", url.as_str()),
            ("RESETDESK_KEYS_DIR", other_text.as_str()),
        ],
    );
    assert!(
        refused.contains(&other_text) && refused.contains("factory master secret"),
        "{refused}"
    );

    // The running replica's directory replaced under it: not ready, and why.
    std::fs::rename(sandbox.path("keys"), sandbox.path("keys-real")).unwrap();
    std::fs::rename(&other, sandbox.path("keys")).unwrap();
    let (status, body) = readyz(&first).await;
    assert_eq!(status, 503, "{body}");
    let reason = body["keys"].as_str().unwrap();
    assert!(
        reason.contains("factory master secret") && reason.contains(&master),
        "{reason}"
    );
    std::fs::rename(sandbox.path("keys"), &other).unwrap();
    std::fs::rename(sandbox.path("keys-real"), sandbox.path("keys")).unwrap();
    let (status, body) = readyz(&first).await;
    assert_eq!(status, 200, "{body}");

    // A desk upgraded from before the key registry: tickets, no recorded key. An empty
    // keys directory still gets no new keys.
    let created = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/api/v1/requests", first.port))
        .multipart(fresh_submission(
            &KeyStore::new(sandbox.path("keys")),
            "DS-2CD2143G2-I2023111500000077",
            77,
            &label_photo(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    forget_registered_keys(&url).await;
    let refused = serve_refused(
        &sandbox,
        &[
            ("RESETDESK_DATABASE_URL", url.as_str()),
            ("RESETDESK_KEYS_DIR", empty_text.as_str()),
        ],
    );
    assert!(refused.contains("holds tickets"), "{refused}");
    assert!(!empty.join("factory-master.key").exists());
}

/// Empties the key registry, as a database from before it would be.
async fn forget_registered_keys(url: &str) {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query("DELETE FROM key_registry")
            .execute(&mut connection)
            .await
            .unwrap();
    } else {
        let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query("DELETE FROM key_registry")
            .execute(&mut connection)
            .await
            .unwrap();
    }
}

on_both!(a_retired_key_signs_nothing_more:
    a_retired_key_signs_nothing_more_on_sqlite,
    a_retired_key_signs_nothing_more_on_postgres);

/// Fault 5: replicas kept signing with a just-retired key until their next keyring
/// reload, while the CLI said it "never signs again".
async fn a_retired_key_signs_nothing_more(backend: Backend) {
    let sandbox = Sandbox::new();
    let Some((_database, url)) = backend.database(&sandbox).await else {
        return;
    };
    let keys_dir = sandbox.path("keys");
    let keys_text = keys_dir.display().to_string();
    let env = [
        ("RESETDESK_DATABASE_URL", url.as_str()),
        ("RESETDESK_KEYS_DIR", keys_text.as_str()),
    ];
    let replicas = [serve_with(&sandbox, &env), serve_with(&sandbox, &env)];
    let (code, out) = run(
        &sandbox.path(""),
        &env,
        &[
            "user",
            "add",
            "--email",
            "agent@vendor.test",
            "--password-stdin",
        ],
        Some("correct horse battery staple\n"),
    );
    assert_eq!(code, 0, "{out}");
    let (code, token) = run(
        &sandbox.path(""),
        &env,
        &["user", "token", "--email", "agent@vendor.test"],
        None,
    );
    assert_eq!(code, 0, "{token}");
    let token = token.trim().to_owned();

    let keys = KeyStore::new(&keys_dir);
    let client = reqwest::Client::new();
    let photo = label_photo();
    let mut tickets = Vec::new();
    for (i, replica) in replicas.iter().enumerate() {
        let created = client
            .post(format!("http://127.0.0.1:{}/api/v1/requests", replica.port))
            .multipart(fresh_submission(
                &keys,
                &format!("DS-2CD2143G2-I20231115{i:08}"),
                i,
                &photo,
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let body: Value = created.json().await.unwrap();
        tickets.push(body["ticket"].as_str().unwrap().to_owned());
    }

    let old = keys.key_ids().unwrap().active_signing.to_string();
    let (code, out) = run(&sandbox.path(""), &env, &["keys", "rotate"], None);
    assert_eq!(code, 0, "{out}");
    let new = keys.key_ids().unwrap().active_signing.to_string();
    let (code, out) = run(&sandbox.path(""), &env, &["keys", "retire", &old], None);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("every replica refuses to sign with it"),
        "{out}"
    );

    // Neither replica has reloaded its keyring (that happens every 30 s, or on SIGHUP),
    // and still neither signs with the retired key.
    for (replica, ticket) in replicas.iter().zip(&tickets) {
        let base = format!("http://127.0.0.1:{}", replica.port);
        let approved = client
            .post(format!("{base}/api/v1/tickets/{ticket}/approve"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(approved.status(), 200, "{}", approved.text().await.unwrap());
        let detail: Value = client
            .get(format!("{base}/api/v1/tickets/{ticket}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let signed_by = detail["responses"][0]["key_id"].as_str().unwrap();
        assert_eq!(signed_by, new, "signed with retired key {old}: {detail}");
    }
}

on_both!(key_commands_audit_only_into_the_desks_database:
    key_commands_audit_only_into_the_desks_database_on_sqlite,
    key_commands_audit_only_into_the_desks_database_on_postgres);

/// Fault 9: `keys rotate` from a shell without RESETDESK_DATABASE_URL exited 0 and wrote
/// its audit entry into a new ./data/resetdesk.db.
async fn key_commands_audit_only_into_the_desks_database(backend: Backend) {
    let sandbox = Sandbox::new();
    let Some((_database, url)) = backend.database(&sandbox).await else {
        return;
    };
    let keys_text = sandbox.path("keys").display().to_string();
    let desk = [
        ("RESETDESK_DATABASE_URL", url.as_str()),
        ("RESETDESK_KEYS_DIR", keys_text.as_str()),
    ];
    drop(serve_with(&sandbox, &desk));
    let keys = KeyStore::new(sandbox.path("keys"));
    let keys_before = keys.entries().unwrap().len();

    // An operator's shell elsewhere, the keys directory set, the database not.
    let shell = Sandbox::new();
    let (code, out) = run(
        &shell.path(""),
        &[("RESETDESK_KEYS_DIR", keys_text.as_str())],
        &["keys", "rotate"],
        None,
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("RESETDESK_DATABASE_URL"), "{out}");
    assert!(
        !shell.path("data/resetdesk.db").exists(),
        "no stray database"
    );

    // A database that is not the desk's.
    let stray = match backend {
        Backend::Postgres => Backend::Postgres.database(&shell).await,
        Backend::Sqlite => None,
    };
    let stray_url = match &stray {
        Some((_, url)) => url.clone(),
        None => format!("sqlite://{}", shell.path("other.db").display()),
    };
    for args in [
        &["keys", "rotate"][..],
        &["keys", "rotate-seal"],
        &["keys", "retire", "0123456789abcdef"],
    ] {
        let (code, out) = run(
            &shell.path(""),
            &[
                ("RESETDESK_KEYS_DIR", keys_text.as_str()),
                ("RESETDESK_DATABASE_URL", stray_url.as_str()),
            ],
            args,
            None,
        );
        assert_ne!(code, 0, "{args:?}: {out}");
        assert!(out.contains("is not the desk's"), "{args:?}: {out}");
    }
    assert_eq!(
        keys.entries().unwrap().len(),
        keys_before,
        "nothing rotated that could not be recorded"
    );

    // The desk's own database: rotated, and it says where the audit went.
    let (code, out) = run(&shell.path(""), &desk, &["keys", "rotate"], None);
    assert_eq!(code, 0, "{out}");
    let rotated = keys.key_ids().unwrap().active_signing.to_string();
    assert!(out.contains("audited in"), "{out}");
    let (code, audit) = run(&sandbox.path(""), &desk, &["audit", "export"], None);
    assert_eq!(code, 0, "{audit}");
    assert!(
        audit.contains("key_rotated") && audit.contains(&rotated),
        "{audit}"
    );
}

on_both!(concurrent_rotations_lose_no_key:
    concurrent_rotations_lose_no_key_on_sqlite,
    concurrent_rotations_lose_no_key_on_postgres);

/// Fault 10: ten pairs of concurrent `keys rotate` gave errors, key files missing from
/// the keyring, and audit entries naming keys that were not in it.
async fn concurrent_rotations_lose_no_key(backend: Backend) {
    let sandbox = Sandbox::new();
    let Some((_database, url)) = backend.database(&sandbox).await else {
        return;
    };
    let keys_text = sandbox.path("keys").display().to_string();
    let env = [
        ("RESETDESK_DATABASE_URL", url.as_str()),
        ("RESETDESK_KEYS_DIR", keys_text.as_str()),
    ];
    // The SQLite file's folder, as an operator naming the file would have it.
    crate::support::private_dir(&sandbox.path("data"));
    let (code, out) = run(&sandbox.path(""), &env, &["keys", "init"], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("recorded their ids"), "{out}");

    for _ in 0..10 {
        let pair: Vec<_> = (0..2)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_resetdesk"))
                    .args(["keys", "rotate"])
                    .current_dir(sandbox.path(""))
                    .envs(env.iter().copied())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in pair {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    let keys = KeyStore::new(sandbox.path("keys"));
    let in_keyring: Vec<String> = keys
        .entries()
        .unwrap()
        .iter()
        .map(|e| e.id().to_string())
        .collect();
    assert_eq!(in_keyring.len(), 21, "{in_keyring:?}");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(sandbox.path("keys/signing")).unwrap() {
        let path = entry.unwrap().path();
        files.push(path.file_stem().unwrap().to_string_lossy().into_owned());
    }
    files.sort();
    let mut sorted = in_keyring.clone();
    sorted.sort();
    assert_eq!(
        files, sorted,
        "every key file is in the keyring, and no other"
    );
    let leftovers: Vec<_> = std::fs::read_dir(sandbox.path("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let (code, audit) = run(&sandbox.path(""), &env, &["audit", "export"], None);
    assert_eq!(code, 0, "{audit}");
    let rotated: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("\"key_rotated\""))
        .collect();
    assert_eq!(rotated.len(), 20, "{audit}");
    for line in rotated {
        let entry: Value = serde_json::from_str(line).unwrap();
        let id = entry["detail"].as_str().unwrap().split(' ').next().unwrap();
        assert!(
            in_keyring.iter().any(|k| k == id),
            "{id} is not in the keyring"
        );
    }
    let store = resetdesk::store::connect(&url).await.unwrap();
    let registered = store.registered_keys().await.unwrap();
    for id in &in_keyring {
        assert!(
            registered.iter().any(|k| &k.key_id == id),
            "{id} is not recorded in the database"
        );
    }
}
