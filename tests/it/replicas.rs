//! Several replicas on one PostgreSQL database: three `resetdesk serve` processes share
//! the intake, the approvals (two agents racing on every ticket, through different
//! replicas) and the outbox, with one real SMTP server. Every ticket is signed once, every
//! approval mail arrives once, the audit chain holds, and no replica logs an error.
//! `RESETDESK_REPLICA_TICKETS` sets how many tickets (default 300).

use std::process::Command;
use std::time::{Duration, Instant};

use resetdesk::crypto::KeyStore;
use serde_json::Value;

use crate::desk_support::{PgDatabase, SmtpSink, fresh_submission, label_photo};
use crate::serve_binary::serve_with;
use crate::support::Sandbox;

pub fn cli(sandbox: &Sandbox, database_url: &str, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_resetdesk"))
        .args(args)
        .current_dir(sandbox.path(""))
        .env("RESETDESK_KEYS_DIR", sandbox.path("keys"))
        .env("RESETDESK_DATABASE_URL", database_url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
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
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_sign_and_mail_each_ticket_exactly_once() {
    let Some((_database, url)) = PgDatabase::create().await else {
        return;
    };
    let tickets: usize = std::env::var("RESETDESK_REPLICA_TICKETS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let sandbox = Sandbox::new();
    sandbox.run(&["keys", "init"]).ok();
    let smtp = SmtpSink::serving(3);
    for agent in ["alice@vendor.test", "bob@vendor.test"] {
        cli(
            &sandbox,
            &url,
            &["user", "add", "--email", agent, "--password-stdin"],
            Some("correct horse battery staple\n"),
        );
    }
    let alice = cli(
        &sandbox,
        &url,
        &["user", "token", "--email", "alice@vendor.test"],
        None,
    );
    let bob = cli(
        &sandbox,
        &url,
        &["user", "token", "--email", "bob@vendor.test"],
        None,
    );

    let smtp_url = smtp.url();
    let env = [
        ("RESETDESK_DATABASE_URL", url.as_str()),
        ("RESETDESK_SMTP_URL", smtp_url.as_str()),
        ("RESETDESK_INTAKE_PER_IP_PER_HOUR", "0"),
        // Every customer here is this machine, several uploading at once.
        ("RESETDESK_UPLOADS_PER_ADDRESS", "100"),
        ("RESETDESK_LOG_FORMAT", "json"),
        // The session check below signs in with a password only.
        ("RESETDESK_REQUIRE_2FA", "false"),
    ];
    // Started together: their migrations must not trip over each other.
    let replicas: Vec<_> = (0..3).map(|_| serve_with(&sandbox, &env)).collect();
    let bases: Vec<String> = replicas
        .iter()
        .map(|r| format!("http://127.0.0.1:{}", r.port))
        .collect();
    // Idle connections are dropped before the desk's keep-alive (5 s, actix's default)
    // closes them: a request sent on a connection the server is closing that moment fails
    // as an incomplete message (seen once in a full run, 2026-12-06, on an approval sent
    // after its batch had waited for the label checks).
    let client = reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(2))
        .build()
        .unwrap();

    let keys = KeyStore::new(sandbox.path("keys"));
    let photo = label_photo();
    let mut numbers = Vec::new();
    for batch in (0..tickets).collect::<Vec<_>>().chunks(16) {
        let submissions = batch.iter().map(|&i| {
            let form = fresh_submission(&keys, &format!("DS-2CD2143G2-I20231115{i:08}"), i, &photo);
            client
                .post(format!("{}/api/v1/requests", bases[i % 3]))
                .multipart(form)
                .send()
        });
        for response in futures_util::future::join_all(submissions).await {
            let response = response.unwrap();
            assert_eq!(response.status(), 201);
            numbers.push(
                response.json::<Value>().await.unwrap()["ticket"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }

    // Alice and Bob approve every ticket at the same moment, through different replicas.
    for (batch_start, batch) in numbers.chunks(16).enumerate() {
        let approvals = batch.iter().enumerate().flat_map(|(k, ticket)| {
            let i = batch_start * 16 + k;
            [(&alice, &bases[i % 3]), (&bob, &bases[(i + 1) % 3])].map(|(token, base)| {
                client
                    .post(format!("{base}/api/v1/tickets/{ticket}/approve"))
                    .bearer_auth(token)
                    .send()
            })
        });
        let statuses: Vec<u16> = futures_util::future::join_all(approvals)
            .await
            .into_iter()
            .map(|r| r.unwrap().status().as_u16())
            .collect();
        for pair in statuses.chunks(2) {
            let mut pair = pair.to_vec();
            pair.sort_unstable();
            assert_eq!(
                pair,
                [200, 409],
                "exactly one of two racing approvals signs"
            );
        }
    }

    // Every replica's outbox worker delivers; none sends a message twice.
    // Waited for until the outbox is settled rather than for a fixed while: a late
    // duplicate would be a delivery the replicas recorded (or still have pending), so
    // once nothing is pending and the replicas' recorded sends match what the SMTP server
    // holds, the count below is final.
    let expected = 2 * tickets;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let settled = smtp.count() >= expected && {
            let pending = metric(&client, &bases[0], "resetdesk_outbox_pending").await;
            let mut recorded = 0.0;
            for base in &bases {
                recorded += metric(&client, base, "resetdesk_mail_total{outcome=\"sent\"}").await;
            }
            pending == 0.0 && recorded == smtp.count() as f64
        };
        if settled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the outbox never settled: {} of {expected} mails arrived",
            smtp.count()
        );
        // The poll's pace: the SMTP server and the replicas' metrics have nothing to await.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mails = smtp.mails();
    assert_eq!(
        mails.len(),
        expected,
        "one acknowledgment and one approval per ticket"
    );
    let mut ids: Vec<&str> = mails.iter().map(|m| m.message_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), expected, "no Message-ID arrived twice");
    for ticket in &numbers {
        let approvals = mails
            .iter()
            .filter(|m| m.subject.contains(ticket.as_str()) && m.subject.contains("response"))
            .count();
        assert_eq!(approvals, 1, "{ticket}");
    }
    let detail: Value = client
        .get(format!("{}/api/v1/tickets/{}", bases[2], numbers[0]))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        detail["responses"].as_array().unwrap().len(),
        1,
        "one signature per device"
    );

    // A console session made on one replica is good on the others: sessions live in the
    // database, not in a process.
    let browser = crate::desk_support::browser();
    let token = crate::desk_support::sign_in_token(&browser, &bases[0]).await;
    let signed_in = browser
        .post(format!("{}/console/login", bases[0]))
        .form(&[
            ("csrf", token.as_str()),
            ("email", "alice@vendor.test"),
            ("password", "correct horse battery staple"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.headers()["location"], "/console");
    for base in &bases[1..] {
        let queue = browser
            .get(format!("{base}/console?status=approved"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            queue.status(),
            200,
            "the session from replica 0 works on {base}"
        );
    }

    let verified = cli(&sandbox, &url, &["audit", "verify"], None);
    assert!(verified.contains("intact"), "{verified}");
    let signatures = cli(&sandbox, &url, &["audit", "export"], None)
        .matches("\"action\":\"sign\"")
        .count();
    assert_eq!(signatures, tickets, "one audited signature per ticket");

    for (n, replica) in replicas.iter().enumerate() {
        let lines = replica.all_lines.lock().unwrap();
        let errors: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("\"level\":\"ERROR\"") || l.contains("panicked"))
            .collect();
        assert!(errors.is_empty(), "replica {n} logged errors: {errors:#?}");
    }
}

/// One series' value from a replica's `/metrics` (open to this machine), or 0 when the
/// replica has not recorded it yet: a counter appears with its first increment.
async fn metric(client: &reqwest::Client, base: &str, series: &str) -> f64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}
