//! Crashes and outages with nothing lost: tickets are approved through the agent API while
//! the desk process is killed with SIGKILL at random moments and restarted, and the SMTP
//! server goes away and comes back. Afterwards every ticket is approved with exactly one
//! signature set, each customer received exactly one approval e-mail (counted by
//! Message-ID at the SMTP server), the outbox is empty and the audit chain intact.
//!
//! `RESETDESK_CRASH_TICKETS` sets how many tickets (default 150; the release check runs
//! 1000), `RESETDESK_CRASH_SEED` replays a run's random choices.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use resetdesk::crypto::KeyStore;
use serde_json::Value;

use crate::desk_support::{PgDatabase, SmtpSink, Switch, fresh_submission, label_photo};
use crate::replicas::cli;
use crate::serve_binary::{Served, serve_with};
use crate::support::Sandbox;

/// xorshift64*: reproducible random choices from a printed seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
}

/// The desk under test: one process at a time, replaced after each kill.
struct Desk {
    sandbox: Arc<Sandbox>,
    env: Vec<(String, String)>,
    process: Mutex<Option<Served>>,
    base: RwLock<String>,
    generations: AtomicUsize,
    lines: Mutex<Vec<String>>,
}

impl Desk {
    fn start(sandbox: Arc<Sandbox>, env: Vec<(String, String)>) -> Arc<Self> {
        let desk = Arc::new(Self {
            sandbox,
            env,
            process: Mutex::new(None),
            base: RwLock::new(String::new()),
            generations: AtomicUsize::new(0),
            lines: Mutex::default(),
        });
        desk.restart();
        desk
    }

    fn restart(&self) {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let served = serve_with(&self.sandbox, &env);
        *self.base.write().unwrap() = format!("http://127.0.0.1:{}", served.port);
        self.generations.fetch_add(1, Ordering::SeqCst);
        *self.process.lock().unwrap() = Some(served);
    }

    /// SIGKILL: no shutdown, no flush, whatever was in flight is cut off.
    fn kill(&self) {
        if let Some(mut served) = self.process.lock().unwrap().take() {
            served.child.kill().unwrap();
            served.child.wait().unwrap();
            self.lines
                .lock()
                .unwrap()
                .extend(served.all_lines.lock().unwrap().drain(..));
        }
    }

    fn base(&self) -> String {
        self.base.read().unwrap().clone()
    }
}

async fn submit_tickets(desk: &Desk, sandbox: &Sandbox, count: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let keys = KeyStore::new(sandbox.path("keys"));
    let photo = label_photo();
    let mut numbers = Vec::new();
    for batch in (0..count).collect::<Vec<_>>().chunks(16) {
        let submissions = batch.iter().map(|&i| {
            let form = fresh_submission(&keys, &format!("CRASH-{i:06}"), i, &photo);
            client
                .post(format!("{}/api/v1/requests", desk.base()))
                .multipart(form)
                .send()
        });
        for response in futures_util::future::join_all(submissions).await {
            let response = response.unwrap();
            assert_eq!(response.status(), 201);
            let body: Value = response.json().await.unwrap();
            numbers.push(body["ticket"].as_str().unwrap().to_owned());
        }
    }
    numbers
}

/// Approves that were cut off by a kill, and repeated approvals that found the ticket
/// already approved by a request whose answer was lost.
static LOST_ANSWERS: AtomicUsize = AtomicUsize::new(0);
static ALREADY_APPROVED: AtomicUsize = AtomicUsize::new(0);

/// Approves `ticket` until the desk says it is approved, whatever happens to the process
/// in between: a lost answer is asked again, and a 409 is checked to be "already approved".
async fn approve_until_done(desk: &Desk, client: &reqwest::Client, token: &str, ticket: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        let base = desk.base();
        let answer = client
            .post(format!("{base}/api/v1/tickets/{ticket}/approve"))
            .bearer_auth(token)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match answer.map(|r| r.status().as_u16()) {
            Ok(200) => return,
            Ok(409) => {
                if ticket_status(desk, client, token, ticket).await.as_deref() == Some("approved") {
                    ALREADY_APPROVED.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                panic!("{ticket}: 409 but the ticket is not approved");
            }
            // The process was killed under the request, or is starting: ask again.
            Ok(status) if status >= 500 => {
                LOST_ANSWERS.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => {
                LOST_ANSWERS.fetch_add(1, Ordering::SeqCst);
            }
            Ok(status) => panic!("{ticket}: approval answered {status}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{ticket} could not be approved in 3 minutes");
}

async fn ticket_status(
    desk: &Desk,
    client: &reqwest::Client,
    token: &str,
    ticket: &str,
) -> Option<String> {
    for _ in 0..300 {
        let answer = client
            .get(format!("{}/api/v1/tickets/{ticket}", desk.base()))
            .bearer_auth(token)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if let Ok(response) = answer
            && response.status() == 200
            && let Ok(body) = response.json::<Value>().await
        {
            return body["status"].as_str().map(str::to_owned);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

async fn ticket_detail(desk: &Desk, client: &reqwest::Client, token: &str, ticket: &str) -> Value {
    client
        .get(format!("{}/api/v1/tickets/{ticket}", desk.base()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[derive(Default)]
struct Chaos {
    kills: AtomicUsize,
    outages: AtomicUsize,
}

/// Kills the desk and cuts the SMTP server at random moments until `stop` is set and
/// each has happened at least `minimum` times.
async fn make_chaos(
    desk: Arc<Desk>,
    smtp: Arc<Switch>,
    seed: u64,
    minimum: usize,
    stop: Arc<AtomicBool>,
    chaos: Arc<Chaos>,
) {
    let mut random = Random(seed);
    loop {
        let enough = chaos.kills.load(Ordering::SeqCst) >= minimum
            && chaos.outages.load(Ordering::SeqCst) >= minimum;
        if stop.load(Ordering::SeqCst) && enough {
            return;
        }
        tokio::time::sleep(Duration::from_millis(random.between(100, 700))).await;
        if random.next().is_multiple_of(2) {
            let desk = desk.clone();
            tokio::task::spawn_blocking(move || {
                desk.kill();
                desk.restart();
            })
            .await
            .unwrap();
            chaos.kills.fetch_add(1, Ordering::SeqCst);
        } else {
            smtp.cut();
            tokio::time::sleep(Duration::from_millis(random.between(200, 1500))).await;
            smtp.restore().await;
            chaos.outages.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn approvals_survive_kills_and_outages(database_url: String, sandbox: Arc<Sandbox>) {
    let tickets: usize = std::env::var("RESETDESK_CRASH_TICKETS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(150);
    let seed: u64 = std::env::var("RESETDESK_CRASH_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("crash test: {tickets} tickets, RESETDESK_CRASH_SEED={seed}");
    sandbox.run(&["keys", "init"]).ok();
    cli(
        &sandbox,
        &database_url,
        &[
            "user",
            "add",
            "--email",
            "alice@vendor.test",
            "--password-stdin",
        ],
        Some("correct horse battery staple\n"),
    );
    let token = cli(
        &sandbox,
        &database_url,
        &["user", "token", "--email", "alice@vendor.test"],
        None,
    );
    let sink = SmtpSink::start();
    let smtp = Arc::new(Switch::start(sink.port).await);
    let env = vec![
        ("RESETDESK_DATABASE_URL".to_owned(), database_url.clone()),
        (
            "RESETDESK_SMTP_URL".to_owned(),
            format!("smtp://127.0.0.1:{}", smtp.port),
        ),
        (
            "RESETDESK_INTAKE_PER_IP_PER_HOUR".to_owned(),
            "0".to_owned(),
        ),
        // Every customer here is this machine: 16 uploads at once from one address.
        ("RESETDESK_UPLOADS_PER_ADDRESS".to_owned(), "100".to_owned()),
        ("RESETDESK_LOG_FORMAT".to_owned(), "json".to_owned()),
        // Short clockwork so a killed worker's lease and a failed attempt come back
        // within seconds; enough attempts that outages never make a message dead.
        ("RESETDESK_OUTBOX_LEASE_SECS".to_owned(), "8".to_owned()),
        ("RESETDESK_OUTBOX_RETRY_SECS".to_owned(), "1".to_owned()),
        ("RESETDESK_OUTBOX_MAX_ATTEMPTS".to_owned(), "40".to_owned()),
        // The same for a killed evidence worker's label photo.
        ("RESETDESK_EVIDENCE_LEASE_SECS".to_owned(), "3".to_owned()),
    ];
    let desk = tokio::task::spawn_blocking({
        let sandbox = sandbox.clone();
        move || Desk::start(sandbox, env)
    })
    .await
    .unwrap();
    let numbers = submit_tickets(&desk, &sandbox, tickets).await;

    let stop = Arc::new(AtomicBool::new(false));
    let chaos = Arc::new(Chaos::default());
    let chaos_task = tokio::spawn(make_chaos(
        desk.clone(),
        smtp.clone(),
        seed,
        5,
        stop.clone(),
        chaos.clone(),
    ));
    let queue = Arc::new(Mutex::new(numbers.iter().cloned().collect::<VecDeque<_>>()));
    let client = reqwest::Client::new();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (desk, queue, client, token) =
                (desk.clone(), queue.clone(), client.clone(), token.clone());
            tokio::spawn(async move {
                loop {
                    let next = queue.lock().unwrap().pop_front();
                    let Some(ticket) = next else { return };
                    approve_until_done(&desk, &client, &token, &ticket).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    // The chaos goes on while the outbox still delivers, until each kind happened enough.
    stop.store(true, Ordering::SeqCst);
    chaos_task.await.unwrap();

    // Everything approved must reach the customer, once, with no one's help.
    let store = resetdesk::store::connect(&database_url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (pending, _, _) = store.mail_counts().await.unwrap();
        if pending == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (pending, sent, dead) = store.mail_counts().await.unwrap();
    assert_eq!(
        (pending, dead),
        (0, 0),
        "nothing stuck or dead in the outbox"
    );
    assert_eq!(
        sent,
        2 * tickets as i64,
        "an acknowledgment and an approval each"
    );

    let mails = sink.mails();
    let mut by_ticket: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for mail in &mails {
        if let Some(ticket) = numbers
            .iter()
            .find(|n| mail.subject.contains(n.as_str()) && mail.subject.contains("response"))
        {
            by_ticket
                .entry(ticket.as_str())
                .or_default()
                .insert(mail.message_id.as_str());
        }
    }
    for ticket in &numbers {
        let ids = by_ticket.get(ticket.as_str()).map_or(0, BTreeSet::len);
        assert_eq!(ids, 1, "{ticket}: {ids} approval e-mails (by Message-ID)");
    }
    let distinct: BTreeSet<&str> = mails.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(distinct.len(), 2 * tickets, "every mail arrived");
    let (kills, outages) = (
        chaos.kills.load(Ordering::SeqCst),
        chaos.outages.load(Ordering::SeqCst),
    );
    let repeats = mails.len() - distinct.len();
    // SMTP cannot deliver exactly once: a message the server accepted just before a kill
    // (or whose "250 OK" was lost in an outage) is not marked sent, and goes again under
    // the same Message-ID, which is how receivers recognise it. A worker records a batch
    // of at most 2 × `outbox_connections` messages once all are sent, so each kill or
    // outage can repeat at most that many.
    assert!(
        repeats
            <= (kills + outages) * 2 * resetdesk::config::Settings::default().outbox.connections,
        "{repeats} repeated deliveries after {kills} kills and {outages} outages"
    );

    for ticket in &numbers {
        let detail = ticket_detail(&desk, &client, &token, ticket).await;
        assert_eq!(detail["status"], "approved", "{ticket}");
        assert_eq!(
            detail["responses"].as_array().map(Vec::len),
            Some(1),
            "{ticket}: one signature set for its one device"
        );
    }
    let verified = cli(&sandbox, &database_url, &["audit", "verify"], None);
    assert!(verified.contains("intact"), "{verified}");
    let signatures = cli(&sandbox, &database_url, &["audit", "export"], None)
        .matches("\"action\":\"sign\"")
        .count();
    assert_eq!(signatures, tickets, "one audited signature per ticket");

    // Every label photo's job ended once, though desks died while reading them (issue 18):
    // read, or, when desks died under it again and again, failed as interrupted and left
    // to an agent; never both, never twice.
    let deadline = Instant::now() + Duration::from_secs(120);
    while store.evidence_counts().await.unwrap().0 > 0 {
        assert!(
            Instant::now() < deadline,
            "label photos still waiting to be read"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, interrupted) = store.evidence_counts().await.unwrap();
    let export = cli(&sandbox, &database_url, &["audit", "export"], None);
    let findings = export.matches("\"action\":\"label_finding\"").count();
    let given_up: Vec<&str> = export
        .lines()
        .filter(|line| line.contains("\"action\":\"label_unreadable\""))
        .collect();
    assert_eq!(
        given_up.len() as i64,
        interrupted,
        "one audit entry per failed job"
    );
    for line in &given_up {
        assert!(line.contains("interrupted too often"), "{line}");
    }
    assert_eq!(
        findings + given_up.len(),
        tickets,
        "one audited end per ticket's one device"
    );
    let mut read = 0;
    for ticket in &numbers {
        let detail = ticket_detail(&desk, &client, &token, ticket).await;
        let state = detail["evidence"]["state"].as_str().unwrap_or_default();
        assert!(matches!(state, "done" | "failed"), "{ticket}: {detail}");
        read += usize::from(state == "done");
    }
    assert_eq!(read, findings, "each read photo has its finding");
    assert!(read > 0, "some photos were read between the kills");

    desk.kill();
    let lines = desk.lines.lock().unwrap();
    let panics: Vec<&String> = lines.iter().filter(|l| l.contains("panicked")).collect();
    assert!(panics.is_empty(), "{panics:#?}");
    println!(
        "crash test: {tickets} tickets approved through {kills} kills ({} desk processes) and {} SMTP outages; \
         {} approvals asked again after a lost answer, {} of them found already approved; \
         {repeats} repeated deliveries; {read} label photos read, {interrupted} given up as interrupted",
        desk.generations.load(Ordering::SeqCst),
        outages,
        LOST_ANSWERS.load(Ordering::SeqCst),
        ALREADY_APPROVED.load(Ordering::SeqCst),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_approvals_survive_kills_and_smtp_outages() {
    let sandbox = Arc::new(Sandbox::new());
    std::fs::create_dir_all(sandbox.path("data")).unwrap();
    let url = format!("sqlite://{}", sandbox.path("data/resetdesk.db").display());
    approvals_survive_kills_and_outages(url, sandbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_approvals_survive_kills_and_smtp_outages() {
    let Some((_database, url)) = PgDatabase::create().await else {
        return;
    };
    approvals_survive_kills_and_outages(url, Arc::new(Sandbox::new())).await;
}
