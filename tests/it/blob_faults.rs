//! Faults of a multi-replica deployment around uploaded files (issue 16): a commit whose
//! acknowledgment is lost on the way back, two new photos at once, an object store that
//! goes away, and an anonymous `/readyz` that must not cost object-store writes.
//!
//! A [`Tap`] sits between the desk and what it talks to (PostgreSQL, moto's S3): it
//! counts the HTTP requests that pass, and can drop a connection at a chosen moment —
//! right after PostgreSQL committed, before the desk hears so.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::Value;

use crate::on_both_backends;

use crate::desk_support::{
    Backend, PgDatabase, TestApp, csrf, customer_form, export_part, file_part, label_photo,
    spawn_app_on, spawn_app_with, walk_files,
};

/// A TCP pass-through the test controls. Armed with a pattern, it drops the first
/// connection whose server sends that pattern, instead of passing it on. It counts the
/// HTTP/1.1 requests clients send through it.
struct Tap {
    port: u16,
    armed: Arc<std::sync::Mutex<Option<&'static [u8]>>>,
    dropped: Arc<AtomicBool>,
    /// Set: every connection is dropped as it comes (the server is out of reach).
    refusing: Arc<AtomicBool>,
    /// Whether dropping the armed connection also starts refusing.
    refuse_after_drop: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    /// The open connections.
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accepting: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
}

impl Tap {
    async fn start(target_port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tap = Self {
            port: listener.local_addr().unwrap().port(),
            armed: Arc::default(),
            dropped: Arc::default(),
            refusing: Arc::default(),
            refuse_after_drop: Arc::default(),
            requests: Arc::default(),
            tasks: Arc::default(),
            accepting: std::sync::Mutex::default(),
        };
        let (armed, dropped, requests, tasks) = (
            tap.armed.clone(),
            tap.dropped.clone(),
            tap.requests.clone(),
            tap.tasks.clone(),
        );
        let (refusing, refuse_after_drop) = (tap.refusing.clone(), tap.refuse_after_drop.clone());
        let accepting = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if refusing.load(Ordering::SeqCst) {
                    continue;
                }
                let (armed, dropped, requests) = (armed.clone(), dropped.clone(), requests.clone());
                let (refusing, refuse_after_drop) = (refusing.clone(), refuse_after_drop.clone());
                let open = tasks.clone();
                let connection = tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let Ok(outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                    else {
                        return;
                    };
                    let (mut client_in, mut client_out) = inbound.into_split();
                    let (mut server_in, mut server_out) = outbound.into_split();
                    let upstream = async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = client_in.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            let seen = buf[..n]
                                .windows(11)
                                .filter(|w| w == b" HTTP/1.1\r\n")
                                .count();
                            requests.fetch_add(seen, Ordering::SeqCst);
                            if server_out.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    };
                    let downstream = async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = server_in.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            let pattern = *armed.lock().unwrap();
                            if let Some(pattern) = pattern
                                && buf[..n].windows(pattern.len()).any(|w| w == pattern)
                            {
                                *armed.lock().unwrap() = None;
                                if refuse_after_drop.load(Ordering::SeqCst) {
                                    // Out of reach: the other open connections go too.
                                    refusing.store(true, Ordering::SeqCst);
                                    for task in open.lock().unwrap().drain(..) {
                                        task.abort();
                                    }
                                }
                                dropped.store(true, Ordering::SeqCst);
                                return;
                            }
                            if client_out.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    };
                    // Either direction ending ends the connection: both halves drop.
                    tokio::select! {
                        () = upstream => {}
                        () = downstream => {}
                    }
                });
                tasks.lock().unwrap().push(connection.abort_handle());
            }
        });
        *tap.accepting.lock().unwrap() = Some(accepting.abort_handle());
        tap
    }

    /// Drops the next connection whose server sends `pattern`, without passing it on.
    fn drop_on(&self, pattern: &'static [u8]) {
        self.dropped.store(false, Ordering::SeqCst);
        *self.armed.lock().unwrap() = Some(pattern);
    }

    /// As `drop_on`, and from then on the server is out of reach until `reachable`.
    fn drop_on_and_refuse(&self, pattern: &'static [u8]) {
        self.refuse_after_drop.store(true, Ordering::SeqCst);
        self.drop_on(pattern);
    }

    fn reachable(&self) {
        self.refuse_after_drop.store(false, Ordering::SeqCst);
        self.refusing.store(false, Ordering::SeqCst);
    }

    fn has_dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }

    /// Refuses new connections and drops the open ones, for good.
    fn cut(&self) {
        if let Some(accepting) = self.accepting.lock().unwrap().take() {
            accepting.abort();
        }
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// PostgreSQL's answer to COMMIT (a CommandComplete message): when the desk would read
/// it, the transaction is durable.
const COMMITTED: &[u8] = b"COMMIT\0";

/// A desk on a fresh PostgreSQL database reached through a tap; `None` without one.
async fn desk_behind_a_tap() -> Option<(TestApp, Tap)> {
    let (database, url) = PgDatabase::create().await?;
    let at = url.find('@').unwrap() + 1;
    let end = at + url[at..].find('/').unwrap();
    let port: u16 = url[at..end].rsplit(':').next().unwrap().parse().unwrap();
    let tap = Tap::start(port).await;
    // In clear: the tap must read PostgreSQL's answers to know when a commit is done.
    let tapped = format!(
        "{}127.0.0.1:{}{}?sslmode=disable",
        &url[..at],
        tap.port,
        &url[end..]
    );
    // Intake limits are counted in a transaction of their own before the ticket's
    // (issue 16, item 6); off here, so the first COMMIT an intake makes is its ticket's.
    let mut app = spawn_app_with(|s| {
        s.storage.database_url = Some(tapped);
        s.intake.per_ip_per_hour = 0;
        s.intake.per_serial_per_hour = 0;
    })
    .await;
    app.adopt_database(database);
    Some((app, tap))
}

fn submission(app: &TestApp, serial: &str, email: &str) -> reqwest::multipart::Form {
    let mut device = app.device(serial, "DS-7608NI-K2");
    let request = app.export(&mut device, 0, app.now());
    export_part(customer_form(email), &request, "xml").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    )
}

/// Issue 16, item 1. PostgreSQL only: SQLite has no connection to lose between the
/// commit and its acknowledgment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_commit_acknowledgment_keeps_the_ticket_and_its_evidence() {
    let Some((app, tap)) = desk_behind_a_tap().await else {
        return;
    };
    let form = submission(&app, "LOSTACK-0001", "lost@example.com");
    tap.drop_on(COMMITTED);
    let answer = app.submit(form).await;
    assert!(tap.has_dropped(), "the commit's acknowledgment was dropped");
    let status = answer.status();
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        status, 201,
        "the ticket was saved, and the answer says so: {body}"
    );
    let number = body["ticket"].as_str().unwrap().to_owned();

    // The ticket the database holds is whole: its photo and export are there.
    let ticket = app
        .desk
        .store
        .ticket(&resetdesk::domain::TicketNumber::parse(&number).unwrap())
        .await
        .unwrap();
    assert!(app.desk.blobs.get(&ticket.label_blob).await.is_ok());
    // The export is in the ticket's row, committed with it.
    let export = app.desk.store.ticket_export(&ticket.summary.number).await;
    match export.unwrap() {
        resetdesk::store::StoredExport::InRow(bytes) => assert!(!bytes.is_empty()),
        other => panic!("the export is not in the ticket's row: {other:?}"),
    }
    app.create_agent("agent@vendor.test").await;
    let agent = app.sign_in("agent@vendor.test").await;
    let photo = agent
        .get(app.url(&format!("/console/tickets/{number}/label")))
        .send()
        .await
        .unwrap();
    assert_eq!(photo.status(), 200, "the agent sees the photo");
    assert_eq!(walk_files(&app.dir.path().join("data/blobs")), 1);
}

/// Issue 16, item 1, when the desk cannot even ask: the commit's answer is lost and the
/// database stays out of reach. The uploads are kept, the customer hears that the desk
/// could not confirm, and sending it again (the database back) finds the ticket whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_commit_keeps_the_uploads_and_a_retry_finds_the_ticket() {
    let Some((app, tap)) = desk_behind_a_tap().await else {
        return;
    };
    let mut device = app.device("LOSTACK-0003", "DS-7608NI-K2");
    let request = app.export(&mut device, 0, app.now());
    let form = || {
        export_part(customer_form("unsure@example.com"), &request, "xml").part(
            "label_photo",
            file_part(label_photo(), "label.jpg", "image/jpeg"),
        )
    };
    tap.drop_on_and_refuse(COMMITTED);
    let answer = app.submit(form()).await;
    assert!(tap.has_dropped());
    assert_eq!(answer.status(), 503);
    assert!(answer.headers().contains_key("retry-after"));
    let message = answer.json::<Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("could not confirm"), "{message}");
    assert!(!message.contains("Nothing was saved"), "{message}");
    assert_eq!(
        walk_files(&app.dir.path().join("data/blobs")),
        1,
        "the photo is kept (the export goes into the ticket's row)"
    );

    tap.reachable();
    let again = app.submit(form()).await;
    assert_eq!(again.status(), 200, "the same export finds its ticket");
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["existing"], true, "{body}");
    let number = body["ticket"].as_str().unwrap().to_owned();
    app.create_agent("agent@vendor.test").await;
    let agent = app.sign_in("agent@vendor.test").await;
    let photo = agent
        .get(app.url(&format!("/console/tickets/{number}/label")))
        .send()
        .await
        .unwrap();
    assert_eq!(photo.status(), 200, "the ticket's photo is there");
    assert_eq!(
        walk_files(&app.dir.path().join("data/blobs")),
        1,
        "the retry's own photo was removed"
    );
}

/// Asks for a new photo of `number` as an agent would; the customer's upload link.
async fn ask_for_a_new_photo(app: &TestApp, agent: &reqwest::Client, number: &str) -> String {
    let page = app
        .console_page(agent, &format!("/console/tickets/{number}"))
        .await;
    let asked = agent
        .post(app.url(&format!("/console/tickets/{number}/request-photo")))
        .form(&[("csrf", csrf(&page).as_str()), ("note", "Glare.")])
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 303);
    app.run_outbox().await;
    let mail = app
        .mails()
        .into_iter()
        .rev()
        .find(|m| m.subject.contains("new photo"))
        .unwrap();
    mail.text
        .lines()
        .find(|l| l.contains("/photo?t="))
        .unwrap()
        .trim()
        .to_owned()
}

async fn send_photo(app: &TestApp, photo_url: &str) -> (u16, String) {
    let form = reqwest::multipart::Form::new().part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    let answer = app
        .client
        .post(photo_url)
        .multipart(form)
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

/// Issue 16, item 1, for a new photo: the ticket must not point at a removed object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_commit_acknowledgment_keeps_a_new_photo() {
    let Some((app, tap)) = desk_behind_a_tap().await else {
        return;
    };
    let created = app
        .submit(submission(&app, "LOSTACK-0002", "photo@example.com"))
        .await;
    assert_eq!(created.status(), 201);
    let number = created.json::<Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    app.create_agent("agent@vendor.test").await;
    let agent = app.sign_in("agent@vendor.test").await;
    let photo_url = ask_for_a_new_photo(&app, &agent, &number).await;

    tap.drop_on(COMMITTED);
    let (status, page) = send_photo(&app, &photo_url).await;
    assert!(tap.has_dropped(), "the commit's acknowledgment was dropped");
    assert_eq!(
        status, 200,
        "the photo was saved, and the page says so: {page}"
    );
    let ticket = app
        .desk
        .store
        .ticket(&resetdesk::domain::TicketNumber::parse(&number).unwrap())
        .await
        .unwrap();
    assert!(
        app.desk.blobs.get(&ticket.label_blob).await.is_ok(),
        "the ticket's new photo is there"
    );
    let photo = agent
        .get(app.url(&format!("/console/tickets/{number}/label")))
        .send()
        .await
        .unwrap();
    assert_eq!(photo.status(), 200, "the agent sees the new photo");
}

/// Issue 16, item 7: two new photos for one ticket at once. One is kept; the other
/// upload hears a clear 409 and its object is removed, so no blob is left unowned. On
/// PostgreSQL the test holds the ticket's row until both uploads wait on it, so they
/// truly cross (as two replicas' do); SQLite serialises its writers.
async fn two_new_photos_at_once_one_wins_the_other_hears_409(backend: Backend) {
    use sqlx::Connection;
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent("agent@vendor.test").await;
    let agent = app.sign_in("agent@vendor.test").await;
    for round in 0..2 {
        let created = app
            .submit(submission(
                &app,
                &format!("TWOPHOTOS-{round:04}"),
                &format!("two{round}@example.com"),
            ))
            .await;
        assert_eq!(created.status(), 201);
        let number = created.json::<Value>().await.unwrap()["ticket"]
            .as_str()
            .unwrap()
            .to_owned();
        let photo_url = ask_for_a_new_photo(&app, &agent, &number).await;
        let holder = match backend {
            Backend::Postgres => {
                let url = app.desk.settings.storage.database_url.clone().unwrap();
                let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::query("BEGIN").execute(&mut connection).await.unwrap();
                sqlx::query("SELECT id FROM tickets WHERE number = $1 FOR UPDATE")
                    .bind(&number)
                    .execute(&mut connection)
                    .await
                    .unwrap();
                Some(connection)
            }
            Backend::Sqlite => None,
        };
        let release = async {
            let Some(mut holder) = holder else {
                return;
            };
            let url = app.desk.settings.storage.database_url.clone().unwrap();
            let mut watcher = sqlx::PgConnection::connect(&url).await.unwrap();
            // Both uploads read the ticket as waiting and now wait for its row.
            loop {
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .fetch_one(&mut watcher)
                .await
                .unwrap();
                if waiting >= 2 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
        };
        let (a, b, ()) = tokio::join!(
            send_photo(&app, &photo_url),
            send_photo(&app, &photo_url),
            release
        );
        let mut statuses = [a.0, b.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "round {round}");
        let refused = if a.0 == 409 { &a.1 } else { &b.1 };
        assert!(
            refused.contains("at the same moment") || refused.contains("not waiting"),
            "{refused}"
        );
        // Every ticket owns its photo and the one it replaced (its export is in its
        // row); nothing else is left.
        assert_eq!(
            walk_files(&app.dir.path().join("data/blobs")),
            2 * (round + 1),
            "round {round}: the losing photo was removed"
        );
    }
}

on_both_backends!(two_new_photos_at_once_one_wins_the_other_hears_409);

/// moto's S3 server behind a tap, with a bucket, and a desk storing its blobs there;
/// `None` when moto is not installed.
async fn desk_on_s3() -> Option<(TestApp, Tap, crate::blobs_s3::Moto)> {
    let (moto, port) = crate::blobs_s3::start_moto()?;
    let bucket = "resetdesk-faults";
    let created = reqwest::Client::new()
        .put(format!("http://127.0.0.1:{port}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    let tap = Tap::start(port).await;
    let app = spawn_app_with(|s| {
        s.storage.blob_url = Some(format!("s3://{bucket}"));
        s.storage.s3_endpoint = Some(format!("http://127.0.0.1:{}", tap.port));
        s.storage.s3_access_key_id = Some("testing".to_owned());
        s.storage.s3_secret_access_key = Some(resetdesk::config::Secret::new("testing"));
    })
    .await;
    Some((app, tap, moto))
}

/// Issue 16, item 12: anonymous readiness checks cost no object-store writes, and at
/// most one read per replica while the answer stands; they are counted in /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_checks_do_not_drive_object_store_requests() {
    let Some((app, tap, _moto)) = desk_on_s3().await else {
        return;
    };
    let before = tap.requests();
    for _ in 0..40 {
        let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
    }
    let made = tap.requests() - before;
    assert!(
        made <= 1,
        "40 readiness checks made {made} object-store requests"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("resetdesk_http_requests_total")
                && l.contains("route=\"/readyz\"")),
        "{metrics}"
    );
}

/// Issue 16, item 11: with the object store unreachable, intake answers as it does for
/// a database outage (503, Retry-After, "nothing was saved"), and /readyz names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_object_store_gets_503_nothing_saved() {
    let Some((app, tap, _moto)) = desk_on_s3().await else {
        return;
    };
    tap.cut();
    let refused = app
        .submit(submission(&app, "S3DOWN-0001", "s3down@example.com"))
        .await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("file storage"), "{message}");
    assert!(message.contains("Nothing was saved"), "{message}");
    let (open, _) = app.desk.store.queue_stats().await.unwrap();
    assert_eq!(open, 0, "no ticket was made");

    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.headers().contains_key("retry-after"));
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["blobs"], "unreachable", "{body}");
    assert_eq!(body["database"], "ok", "{body}");
}

/// `resetdesk blobs sweep` against the desk's own database and blob directory.
fn sweep_command(app: &TestApp, now: resetdesk::domain::Timestamp) -> (bool, String) {
    app.command(&["blobs", "sweep", "--now", &now.to_string()])
}

/// Issue 16, item 7: blobs that no ticket owns (an intake killed between storing its
/// uploads and committing its ticket leaves them, here planted as such a process would)
/// are removed once older than the grace period, one sweeper at a time, and reported in
/// /metrics; a ticket's own blobs and a young upload (an intake in progress) stay.
async fn orphaned_blobs_are_swept_after_the_grace_period(backend: Backend) {
    use resetdesk::sweeper::sweep_once;
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let created = app
        .submit(submission(&app, "SWEEP-0001", "sweep@example.com"))
        .await;
    assert_eq!(created.status(), 201);
    let number = created.json::<Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let orphan = app.desk.blobs.put(b"a label photo".to_vec()).await.unwrap();
    let blobs_dir = app.dir.path().join("data/blobs");
    assert_eq!(walk_files(&blobs_dir), 2);
    let (store, blobs) = (app.desk.store.as_ref(), &app.desk.blobs);
    let grace = app.desk.settings.storage.blob_sweep_grace_secs;

    // Young: it may belong to an intake that has not committed yet.
    let now = resetdesk::domain::Timestamp::now();
    let young = sweep_once(store, blobs, "replica-1", now, grace, 900)
        .await
        .unwrap();
    assert!(young.ran);
    assert_eq!((young.removed.len(), young.young), (0, 1));
    assert_eq!(walk_files(&blobs_dir), 2);

    let later = now.plus_seconds(grace + 1);
    let swept = sweep_once(store, blobs, "replica-1", later, grace, 900)
        .await
        .unwrap();
    assert_eq!(swept.removed, vec![orphan.clone()]);
    assert_eq!(walk_files(&blobs_dir), 1, "the ticket's own photo stays");
    // Another replica at the same moment: the lease is held, it does nothing.
    let other = sweep_once(store, blobs, "replica-2", later, grace, 900)
        .await
        .unwrap();
    assert!(!other.ran);

    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("resetdesk_blobs_swept_total ")),
        "{metrics}"
    );
    assert!(metrics.contains("resetdesk_blobs_sweep_last_run_timestamp_seconds"));

    // The command line, once the replica's lease ran out.
    let second = app.desk.blobs.put(b"another photo".to_vec()).await.unwrap();
    let (ok, said) = sweep_command(&app, later.plus_seconds(60));
    assert!(ok, "{said}");
    assert!(
        said.contains("another process holds the sweep lease"),
        "{said}"
    );
    let (ok, said) = sweep_command(&app, later.plus_seconds(1000));
    assert!(ok, "{said}");
    assert!(said.contains(&format!("removed {second}")), "{said}");
    assert_eq!(walk_files(&blobs_dir), 1);

    app.create_agent("agent@vendor.test").await;
    let agent = app.sign_in("agent@vendor.test").await;
    let photo = agent
        .get(app.url(&format!("/console/tickets/{number}/label")))
        .send()
        .await
        .unwrap();
    assert_eq!(photo.status(), 200, "the ticket's photo was not swept");
}

on_both_backends!(orphaned_blobs_are_swept_after_the_grace_period);

/// The sweeper on an object store: an orphaned object goes, a ticket's stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_objects_are_swept_from_s3() {
    let Some((app, _tap, _moto)) = desk_on_s3().await else {
        return;
    };
    let created = app
        .submit(submission(&app, "SWEEP-S3-0001", "s3sweep@example.com"))
        .await;
    assert_eq!(created.status(), 201);
    let orphan = app.desk.blobs.put(b"a label photo".to_vec()).await.unwrap();
    assert_eq!(app.desk.blobs.list().await.unwrap().len(), 2);
    let later = resetdesk::domain::Timestamp::now().plus_seconds(3700);
    let swept = resetdesk::sweeper::sweep_once(
        app.desk.store.as_ref(),
        &app.desk.blobs,
        "replica-1",
        later,
        3600,
        900,
    )
    .await
    .unwrap();
    assert_eq!(swept.removed, vec![orphan]);
    assert_eq!(app.desk.blobs.list().await.unwrap().len(), 1);
}

/// The sweeper as `resetdesk serve` runs it: an upload a killed intake left behind two
/// hours ago goes, and /metrics of the real process says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_sweeps_an_orphan_left_by_a_killed_intake() {
    let sandbox = crate::support::Sandbox::new();
    let served = crate::serve_binary::serve_with(
        &sandbox,
        &[
            ("RESETDESK_BLOB_SWEEP_INTERVAL_SECS", "1"),
            ("RESETDESK_LOG", "info"),
        ],
    );
    let orphan = sandbox.path("data/blobs/ab").join("c".repeat(62));
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    let file = std::fs::File::create(&orphan).unwrap();
    std::io::Write::write_all(&mut &file, b"a label photo").unwrap();
    file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .unwrap();
    drop(file);
    served.wait_for_log("orphaned blobs removed");
    assert!(!orphan.exists());
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", served.port))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "resetdesk_blobs_swept_total 1"),
        "{metrics}"
    );
}
