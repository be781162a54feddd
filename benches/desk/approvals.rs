//! Part 5: approve → e-mail. Tickets come in through the real intake; an agent's API
//! token approves them through `POST /api/v1/tickets/{id}/approve`; a real SMTP server on
//! loopback (mailin-embedded) notes when each approval mail is accepted. Then the same
//! approval mails are queued again as a backlog, and the desk's own outbox worker, in
//! this process on the same database, drains it: that is the delivery rate.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use resetdesk::clock::SystemClock;
use resetdesk::crypto::KeyStore;
use resetdesk::mail::outbox::{OutboxWorker, Timing, Transport};

use super::{closed_loop, percentile, start_desk_with, submission, uploads};

/// What the SMTP server saw: when each ticket's approval mail was accepted.
#[derive(Clone, Default)]
pub(super) struct Received {
    pub(super) approvals: Arc<Mutex<HashMap<String, Instant>>>,
    all: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Handler {
    received: Received,
    head: Vec<u8>,
}

/// Only the head of a message is kept: the subject names the ticket.
const HEAD_BYTES: usize = 4096;

impl mailin_embedded::Handler for Handler {
    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> mailin_embedded::Response {
        self.head.clear();
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let room = HEAD_BYTES.saturating_sub(self.head.len());
        self.head.extend_from_slice(&buf[..buf.len().min(room)]);
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        let now = Instant::now();
        self.received.all.fetch_add(1, Ordering::SeqCst);
        let head = String::from_utf8_lossy(&self.head);
        let subject = head
            .lines()
            .find_map(|line| line.strip_prefix("Subject: ["))
            .and_then(|rest| rest.split_once("] Your password reset response"));
        if let Some((ticket, _)) = subject {
            self.received
                .approvals
                .lock()
                .expect("not poisoned")
                .entry(ticket.to_owned())
                .or_insert(now);
        }
        mailin_embedded::response::OK
    }
}

pub(super) fn smtp_sink() -> (String, Received) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = listener.local_addr().expect("an address").port();
    let received = Received::default();
    let handler = Handler {
        received: received.clone(),
        head: Vec::new(),
    };
    std::thread::spawn(move || {
        let mut server = mailin_embedded::Server::new(handler);
        server
            .with_name("smtp.bench")
            .with_num_threads(64)
            .with_ssl(mailin_embedded::SslConfig::None)
            .expect("no TLS")
            .with_tcp_listener(listener);
        // No shutdown call: the server ends with the bench.
        let _ = server.serve();
    });
    (format!("smtp://127.0.0.1:{port}"), received)
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ApprovalRun {
    pub approvals_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mails_per_sec: f64,
    pub awaiting_second: usize,
    pub errors: usize,
    /// Seconds from the last acknowledgment to the last label photo read.
    pub label_checks_wait_secs: f64,
}

pub(super) fn cli(dir: &Path, database_url: Option<&str>, args: &[&str], stdin: &str) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_resetdesk"));
    command
        .args(args)
        .current_dir(dir)
        .env("RESETDESK_KEYS_DIR", dir.join("keys"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    match database_url {
        Some(url) => command.env("RESETDESK_DATABASE_URL", url),
        None => command.env_remove("RESETDESK_DATABASE_URL"),
    };
    let mut child = command.spawn().expect("the CLI runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin written");
    let output = child.wait_with_output().expect("the CLI ends");
    assert!(output.status.success(), "resetdesk {args:?} failed");
    String::from_utf8(output.stdout).expect("UTF-8")
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every open ticket's number, through the agent API's paged list.
async fn open_tickets(client: &reqwest::Client, base: &str, token: &str) -> Vec<String> {
    let mut numbers = Vec::new();
    let mut after = String::new();
    loop {
        let page: serde_json::Value = client
            .get(format!(
                "{base}/api/v1/tickets?status=open&limit=500&after={after}"
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("the list answers")
            .json()
            .await
            .expect("JSON");
        for ticket in page["tickets"].as_array().expect("tickets") {
            numbers.push(ticket["ticket"].as_str().expect("a number").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => after = cursor.to_owned(),
            None => return numbers,
        }
    }
}

/// The signer as a process of its own (issue 22), killed with the run.
struct SignerProcess(std::process::Child);

impl Drop for SignerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `resetdesk signer` with its keys in `dir/signer-keys` (made on its first start)
/// and no cap that a bench would reach; returns it and the desk's `signer_url`.
fn start_signer(dir: &Path) -> (SignerProcess, String) {
    let socket = dir.join("signer.sock");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_resetdesk"))
        .args(["signer", "--socket"])
        .arg(&socket)
        .arg("--desk-uid")
        .arg({
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(dir)
                .expect("the run's directory")
                .uid()
                .to_string()
        })
        .env("RESETDESK_KEYS_DIR", dir.join("signer-keys"))
        .env("RESETDESK_SIGNER_MAX_ANSWERS_PER_HOUR", "1000000")
        .env("RESETDESK_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the signer starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "the signer did not listen within 20 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (SignerProcess(child), format!("unix:{}", socket.display()))
}

/// `with_signer`: the desk's keys in `resetdesk signer`, reached over its socket, rather
/// than in the desk's own process.
pub async fn approvals_run(
    photo: &Bytes,
    count: usize,
    database: Option<String>,
    run: usize,
    with_signer: bool,
) -> ApprovalRun {
    let (smtp_url, received) = smtp_sink();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let signer = with_signer.then(|| start_signer(dir.path()));
    let mut settings = vec![("RESETDESK_SMTP_URL", smtp_url.as_str())];
    if let Some((_, url)) = &signer {
        settings.push(("RESETDESK_SIGNER_URL", url.as_str()));
    }
    let (desk, _) = start_desk_with(dir.path(), database.as_deref(), &settings);
    let base = format!("http://127.0.0.1:{}", desk.port);
    let keys = KeyStore::new(
        dir.path()
            .join(if with_signer { "signer-keys" } else { "keys" }),
    );
    let agent = "bench-agent@vendor.test";
    cli(
        dir.path(),
        database.as_deref(),
        &[
            "user",
            "add",
            "--email",
            agent,
            "--role",
            "supervisor",
            "--password-stdin",
        ],
        "a long benchmark passphrase\n",
    );
    let token = cli(
        dir.path(),
        database.as_deref(),
        &["user", "token", "--email", agent, "--name", "bench"],
        "",
    );
    let token = token
        .split_whitespace()
        .find(|word| word.len() > 20)
        .expect("the CLI prints a token")
        .to_owned();

    let intake = uploads(count, photo, |i| {
        submission(&keys, &format!("MAIL-{run}-{i:06}"), i)
    });
    let created = closed_loop(&format!("{base}/api/v1/requests"), intake, 16).await;
    assert_eq!(created.errors, 0, "intake failed while creating tickets");
    // The acknowledgments go out first, so the approvals start on an empty outbox.
    wait_for("acknowledgments", Duration::from_secs(300), || {
        received.all.load(Ordering::SeqCst) >= count
    })
    .await;

    // Agents come after the label checks: an approval of a ticket whose photo is not read
    // yet reads it first, which would measure label reading here (part 8 measures it).
    let checks = Instant::now();
    let jobs = super::jobs_url(dir.path(), database.as_deref());
    while super::evidence_watch::pending_now(&jobs).await > 0 {
        assert!(
            checks.elapsed() < Duration::from_secs(1800),
            "timed out waiting for the label checks"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let label_checks_wait_secs = checks.elapsed().as_secs_f64();

    let client = reqwest::Client::new();
    let numbers = Arc::new(open_tickets(&client, &base, &token).await);
    assert_eq!(numbers.len(), count, "every ticket is in the queue");
    let next = Arc::new(AtomicUsize::new(0));
    let sent_at = Arc::new(Mutex::new(HashMap::new()));
    let (awaiting, errors) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let started = Instant::now();
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (client, numbers, next, sent_at, awaiting, errors, base, token) = (
                client.clone(),
                numbers.clone(),
                next.clone(),
                sent_at.clone(),
                awaiting.clone(),
                errors.clone(),
                base.clone(),
                token.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(number) = numbers.get(i) else { return };
                    let at = Instant::now();
                    let response = client
                        .post(format!("{base}/api/v1/tickets/{number}/approve"))
                        .bearer_auth(&token)
                        .send()
                        .await;
                    match response.map(|r| r.status().as_u16()) {
                        Ok(200) => {
                            sent_at
                                .lock()
                                .expect("not poisoned")
                                .insert(number.clone(), at);
                        }
                        Ok(202) => {
                            awaiting.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("an approval worker");
    }
    let approving = started.elapsed();
    let approved = sent_at.lock().expect("not poisoned").clone();
    wait_for("approval mails", Duration::from_secs(300), || {
        received.approvals.lock().expect("not poisoned").len() >= approved.len()
    })
    .await;
    let mails = received.approvals.lock().expect("not poisoned").clone();
    let mut latencies: Vec<Duration> = approved
        .iter()
        .filter_map(|(number, at)| Some(mails.get(number)?.saturating_duration_since(*at)))
        .collect();
    latencies.sort();
    drop(desk);
    drop(signer);

    // The outbox's backlog is the same whoever signed: measured without the signer only.
    let mails_per_sec = if with_signer {
        f64::NAN
    } else {
        drain_backlog(dir.path(), database.as_deref(), &smtp_url, &received).await
    };
    ApprovalRun {
        approvals_per_sec: approved.len() as f64 / approving.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        mails_per_sec,
        awaiting_second: awaiting.load(Ordering::SeqCst),
        errors: errors.load(Ordering::SeqCst),
        label_checks_wait_secs,
    }
}

/// Queues every approval mail again (new Message-IDs, same tickets, same bodies and
/// attachments) with the desk stopped, then times the desk's outbox worker delivering
/// the whole backlog to the SMTP server.
async fn drain_backlog(
    dir: &Path,
    database: Option<&str>,
    smtp_url: &str,
    received: &Received,
) -> f64 {
    let url = database.map_or_else(
        || format!("sqlite://{}", dir.join("data/resetdesk.db").display()),
        str::to_owned,
    );
    let store = resetdesk::store::connect(&url)
        .await
        .expect("the store opens");
    let queued = execute(
        &url,
            "INSERT INTO outbox (message_id, ticket_id, kind, recipient, subject, body_text, body_html,
                                 attachment_name, attachment_type, attachment, status, attempts,
                                 next_attempt_at, created_at)
             SELECT 'again-' || message_id, ticket_id, kind, recipient, subject, body_text, body_html,
                    attachment_name, attachment_type, attachment, 'pending', 0, 0, created_at
             FROM outbox WHERE kind = 'approval'",
    )
    .await;
    let timing = Timing::default();
    let worker = OutboxWorker::new(
        store,
        Transport::smtp(smtp_url, timing).expect("an SMTP transport"),
        "Bench desk <desk@vendor.test>".parse().expect("an address"),
        3,
        timing,
        Arc::new(SystemClock),
    );
    let before = received.all.load(Ordering::SeqCst);
    let started = Instant::now();
    let round = worker.run_once().await.expect("the outbox drains");
    let elapsed = started.elapsed();
    assert_eq!(round.sent, queued, "every queued mail was sent");
    assert_eq!(received.all.load(Ordering::SeqCst) - before, queued);
    queued as f64 / elapsed.as_secs_f64()
}

/// Runs one statement on either backend; returns the rows it changed.
async fn execute(url: &str, statement: &'static str) -> usize {
    use sqlx::Connection;
    let changed = if url.starts_with("sqlite:") {
        let mut connection = sqlx::SqliteConnection::connect(url).await.expect("SQLite");
        sqlx::query(statement)
            .execute(&mut connection)
            .await
            .map(|done| done.rows_affected())
    } else {
        let mut connection = sqlx::PgConnection::connect(url).await.expect("PostgreSQL");
        sqlx::query(statement)
            .execute(&mut connection)
            .await
            .map(|done| done.rows_affected())
    };
    changed.expect("the statement runs") as usize
}
