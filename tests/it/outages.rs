//! Outages the desk must meet with a clear answer and nothing half-stored: a database
//! that cannot be reached at start, a database lost while running (and back again), and
//! a full disk under the blob store.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use resetdesk::crypto::KeyStore;
use serde_json::Value;
use sqlx::Connection;

use crate::desk_support::{
    PgDatabase, Switch, customer_form, export_part, file_part, fresh_submission, label_photo,
    spawn_app_with, walk_files,
};
use crate::serve_binary::serve_command;
use crate::support::Sandbox;

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `serve` against `database_url`; returns its exit status and what it wrote, or panics
/// if it is still running after 60 s.
fn serve_until_exit(database_url: &str) -> (std::process::ExitStatus, String) {
    let sandbox = Sandbox::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_resetdesk"))
        .arg("serve")
        .current_dir(sandbox.path(""))
        .env("RESETDESK_LISTEN", "127.0.0.1:0")
        .env("RESETDESK_KEYS_DIR", sandbox.path("keys"))
        .env("RESETDESK_DATABASE_URL", database_url)
        .env_remove("RESETDESK_SMTP_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve kept running without its database");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status, text)
}

#[test]
fn an_unreachable_database_at_start_is_a_clear_error_and_a_failed_exit() {
    let url = format!(
        "postgres://desk:pa55word-not-logged@127.0.0.1:{}/resetdesk",
        closed_port()
    );
    let (status, output) = serve_until_exit(&url);
    assert!(!status.success(), "{output}");
    assert!(output.contains("cannot open the database"), "{output}");
    assert!(output.contains("cannot be reached"), "{output}");
    assert!(
        !output.contains("pa55word-not-logged"),
        "the password leaked: {output}"
    );

    let (status, output) = serve_until_exit("sqlite:///proc/no-such-dir/resetdesk.db");
    assert!(!status.success(), "{output}");
    assert!(output.contains("cannot open the database"), "{output}");
}

/// The same database URL with its host and port replaced by the switch's.
fn through(url: &str, switch: &Switch) -> String {
    let at = url.find('@').unwrap() + 1;
    let end = at + url[at..].find('/').unwrap();
    format!("{}127.0.0.1:{}{}", &url[..at], switch.port, &url[end..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_lost_while_running_gets_503s_and_recovers_without_a_restart() {
    let Some((_database, url)) = PgDatabase::create().await else {
        return;
    };
    let postgres_port: u16 = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|host| host.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or(5432);
    let switch = Switch::start(postgres_port).await;
    let switched = through(&url, &switch);
    let app = spawn_app_with(|s| s.storage.database_url = Some(switched)).await;
    let submit = |n: u32| {
        let mut device = app.device(&format!("LOSTDB-{n:04}"), "DS-7608NI-K2");
        let request = app.export(&mut device, 0, app.now());
        let form = export_part(customer_form(&format!("c{n}@example.com")), &request, "xml").part(
            "label_photo",
            file_part(label_photo(), "label.jpg", "image/jpeg"),
        );
        app.submit(form)
    };
    let first = submit(1).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let status_url = first["status_url"].as_str().unwrap().to_owned();

    switch.cut();
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        ready.json::<Value>().await.unwrap()["database"],
        "unreachable"
    );
    let blobs_before = walk_files(&app.dir.path().join("data/blobs"));
    let refused = submit(2).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("cannot reach its database"), "{message}");
    assert!(message.contains("Nothing was saved"), "{message}");
    assert_eq!(
        walk_files(&app.dir.path().join("data/blobs")),
        blobs_before,
        "no blob left behind"
    );
    let page = app.client.get(&status_url).send().await.unwrap();
    assert_eq!(page.status(), 503, "the status page says so too");

    switch.restore().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
        if ready.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready 30 s after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(submit(3).await.status(), 201, "intake works again");
    assert_eq!(
        app.client.get(&status_url).send().await.unwrap().status(),
        200
    );
    let (tickets, _, _) = app.stored_counts().await;
    assert_eq!(
        tickets, 2,
        "the ticket from before the outage and the one after"
    );
}

/// The blob directory sits on a 1 MB tmpfs that only the desk sees: `unshare` gives the
/// process a mount namespace of its own (a user namespace too, so no privileges are
/// needed), and the test reads the directory through /proc/PID/root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_uploads_with_507_and_keeps_the_database_whole() {
    let sandbox = Sandbox::new();
    sandbox.run(&["keys", "init"]).ok();
    let blobs = sandbox.path("data/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let mut command = Command::new("unshare");
    command
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg("mount -t tmpfs -o size=1m resetdesk-blobs \"$1\" && shift && exec \"$@\"")
        .arg("sh")
        .arg(&blobs)
        .arg(env!("CARGO_BIN_EXE_resetdesk"))
        .arg("serve");
    let served = serve_command(
        &sandbox,
        &[("RESETDESK_INTAKE_PER_IP_PER_HOUR", "0")],
        &mut command,
    );
    let base = format!("http://127.0.0.1:{}", served.port);
    let seen_blobs = PathBuf::from(format!("/proc/{}/root", served.child.id()))
        .join(blobs.strip_prefix("/").unwrap());
    let keys = KeyStore::new(sandbox.path("keys"));
    let client = reqwest::Client::new();
    let photo = label_photo();
    let submit = |n: usize| {
        let form = fresh_submission(&keys, &format!("FULLDISK-{n:04}"), n, &photo);
        client
            .post(format!("{base}/api/v1/requests"))
            .multipart(form)
            .send()
    };

    let mut accepted = Vec::new();
    let refusal = loop {
        assert!(accepted.len() < 500, "a 1 MB disk never filled up");
        let response = submit(accepted.len()).await.unwrap();
        match response.status().as_u16() {
            201 => accepted.push(response.json::<Value>().await.unwrap()),
            507 => break response,
            other => panic!("{other}: {}", response.text().await.unwrap()),
        }
    };
    assert!(!accepted.is_empty(), "the disk took some uploads first");
    assert!(refusal.headers().contains_key("retry-after"));
    let body: Value = refusal.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("no room to store uploads"), "{message}");
    assert!(message.contains("Nothing was saved"), "{message}");

    // Refused again, and nothing half-written stays on the disk: a photo per ticket (its
    // export is in its row), and a preview and a thumbnail per photo the evidence worker read while
    // they still fitted (once all are read: it works after the answers).
    let url = format!("sqlite://{}", sandbox.path("data/resetdesk.db").display());
    let evidence = resetdesk::store::connect(&url).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while evidence.evidence_counts().await.unwrap().0 > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "label photos never read"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let previewed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM evidence_jobs WHERE preview_blob IS NOT NULL")
            .fetch_one(&mut db)
            .await
            .unwrap();
    let on_disk = walk_files(&seen_blobs);
    assert_eq!(
        on_disk,
        accepted.len() + 2 * previewed as usize,
        "a photo per ticket, two previews per photo read"
    );
    assert_eq!(submit(9999).await.unwrap().status(), 507);
    assert_eq!(walk_files(&seen_blobs), on_disk);

    // The database is whole and holds exactly the accepted tickets, still served.
    let store = resetdesk::store::connect(&url).await.unwrap();
    let tickets = store
        .tickets(&resetdesk::store::QueueFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(tickets.len(), accepted.len());
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    let status_url = accepted[0]["status_url"].as_str().unwrap();
    let page = client.get(status_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let lines = served.all_lines.lock().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("blob storage is full")),
        "the operator is told why"
    );
    assert!(!lines.iter().any(|l| l.contains("panicked")));
}
