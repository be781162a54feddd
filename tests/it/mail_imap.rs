//! The mailbox the desk watches, for real: Dovecot (started per test, `imap_server`)
//! holds the customers' mail; the desk takes each message, moves it to the done folder
//! once handled, answers over the real SMTP side, and a desk killed with SIGKILL while
//! fetching handles every message exactly once after its restart.

use std::time::{Duration, Instant};

use resetdesk::crypto::KeyStore;
use resetdesk::domain::{DeviceModel, DeviceSerial, FirmwareVersion, Timestamp};
use resetdesk::protocol::{DeviceIdentity, export_xml};

use crate::desk_support::{Backend, PgDatabase, SmtpSink, label_photo, spawn_app_on_with};
use crate::imap_server::ImapServer;
use crate::mail_intake::Outgoing;
use crate::on_both_backends;
use crate::serve_binary::serve_with;
use crate::support::Sandbox;

/// A request by e-mail from customer `i`: a fresh device's XML export and a label photo.
fn request_mail(keys: &KeyStore, i: usize, photo: &[u8]) -> Vec<u8> {
    let identity = DeviceIdentity {
        model: DeviceModel::parse("DS-7608NI-K2").unwrap(),
        serial: DeviceSerial::parse(&format!("MAILBOX{i:06}")).unwrap(),
        firmware: FirmwareVersion::parse("V4.30.085").unwrap(),
        mac_address: None,
        reserved_email: None,
    };
    let mut state = resetdesk::device::provision(
        identity,
        &keys.master_secret().unwrap(),
        keys.public_keys().unwrap(),
    );
    let request = resetdesk::device::export(&mut state, 0, None, Timestamp::now()).unwrap();
    let from = format!("customer{i}@example.com");
    let id = format!("<request.{i}@phone.example>");
    Outgoing {
        from: &from,
        subject: "password reset",
        text: "The export and the label photo.",
        message_id: &id,
        in_reply_to: None,
        files: vec![
            (
                "export.xml",
                "application/xml",
                export_xml::to_xml(&request).into_bytes(),
            ),
            ("label.jpg", "image/jpeg", photo.to_vec()),
        ],
        extra_headers: "",
    }
    .bytes()
}

fn wait_until(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {seconds} s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn wait_until_async(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {seconds} s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Over each of the three ways to reach a mailbox: a request is taken and filed away,
/// an auto-reply is filed away unanswered.
async fn the_desk_takes_its_mailbox(url: impl Fn(&ImapServer) -> String) {
    let Some(server) = ImapServer::start() else {
        return;
    };
    let url = url(&server);
    let ca = server.ca_file().to_path_buf();
    let app = spawn_app_on_with(Backend::Sqlite, |s| {
        s.mail.imap_url = Some(resetdesk::config::Secret::new(url));
        s.mail.imap_ca_file = Some(ca);
        s.mail.imap_poll_secs = 1;
        s.mail.max_message_bytes = 1024 * 1024;
    })
    .await
    .unwrap();
    let keys = app.keys();
    server.deliver(&request_mail(&keys, 1, &label_photo()));
    // Over mail_max_message_bytes: only its header is fetched, and its sender told.
    let noise: Vec<u8> = (0..1_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    server.deliver(
        &Outgoing {
            from: "customer4@example.com",
            subject: "Photos",
            text: "All my photos",
            message_id: "<big.4@example.com>",
            in_reply_to: None,
            files: vec![("video.mov", "video/quicktime", noise)],
            extra_headers: "",
        }
        .bytes(),
    );
    server.deliver(
        &Outgoing {
            from: "customer2@example.com",
            subject: "Out of office",
            text: "Away",
            message_id: "<away.2@example.com>",
            in_reply_to: None,
            files: Vec::new(),
            extra_headers: "Auto-Submitted: auto-replied\r\n",
        }
        .bytes(),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(resetdesk::mail::inbound::imap::run(
        app.desk.clone(),
        stopped,
    ));
    wait_until_async("the three messages filed away", 30, || {
        server.messages_in("INBOX").is_empty() && server.messages_in("resetdesk-done").len() == 3
    })
    .await;
    app.run_outbox().await;
    assert_eq!(
        app.mails_to("customer1@example.com").len(),
        1,
        "the acknowledgment"
    );
    assert!(
        app.mails_to("customer2@example.com").is_empty(),
        "no answer to a robot"
    );
    let too_large = app.mails_to("customer4@example.com");
    assert_eq!(too_large.len(), 1, "the oversized message is answered");
    assert!(
        too_large[0].text.contains("at most 1 MB"),
        "{}",
        too_large[0].text
    );
    // A message arriving later is seen without a restart (IDLE).
    server.deliver(&request_mail(&keys, 3, &label_photo()));
    wait_until_async("the later message filed away", 30, || {
        server.messages_in("resetdesk-done").len() == 4
    })
    .await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), watcher)
        .await
        .expect("the watcher stops when asked")
        .unwrap();
}

#[tokio::test]
async fn over_plain_imap_on_loopback() {
    the_desk_takes_its_mailbox(ImapServer::url).await;
}

#[tokio::test]
async fn over_imaps() {
    the_desk_takes_its_mailbox(ImapServer::imaps_url).await;
}

#[tokio::test]
async fn over_starttls() {
    the_desk_takes_its_mailbox(ImapServer::starttls_url).await;
}

/// `serve` killed with SIGKILL while it takes a mailbox of requests, then started again:
/// every request becomes one ticket with one acknowledgment, none lost, none doubled.
async fn a_desk_killed_while_fetching_handles_each_message_once(backend: Backend) {
    const MESSAGES: usize = 12;
    let Some(server) = ImapServer::start() else {
        return;
    };
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => match PgDatabase::create().await {
            Some(database) => Some(database),
            None => return,
        },
    };
    let smtp = SmtpSink::start();
    let sandbox = Sandbox::new();
    let imap_url = server.url();
    let smtp_url = smtp.url();
    let mut env: Vec<(&str, &str)> = vec![
        ("RESETDESK_IMAP_URL", imap_url.as_str()),
        ("RESETDESK_IMAP_POLL_SECS", "1"),
        ("RESETDESK_SMTP_URL", smtp_url.as_str()),
        // An acknowledgment the killed desk's outbox had leased is sent by the second
        // after the lease: 120 s by default, longer than this test waits (it failed
        // once under a full run's load when the kill fell inside such a lease).
        ("RESETDESK_OUTBOX_LEASE_SECS", "10"),
    ];
    if let Some((_, url)) = &database {
        env.push(("RESETDESK_DATABASE_URL", url.as_str()));
    }
    let first = serve_with(&sandbox, &env);
    let keys = KeyStore::new(sandbox.path("keys"));
    let photo = label_photo();
    for i in 0..MESSAGES {
        server.deliver(&request_mail(&keys, i, &photo));
    }
    let mut first = first;
    wait_until("the first message filed away", 60, || {
        !server.messages_in("resetdesk-done").is_empty()
    });
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let handled_before = server.messages_in("resetdesk-done").len();
    let _second = serve_with(&sandbox, &env);
    wait_until("every message filed away", 240, || {
        server.messages_in("INBOX").is_empty()
            && server.messages_in("resetdesk-done").len() == MESSAGES
    });
    wait_until("every acknowledgment sent", 60, || smtp.count() >= MESSAGES);
    std::thread::sleep(Duration::from_millis(500));
    let mails = smtp.mails();
    for i in 0..MESSAGES {
        let to = format!("customer{i}@example.com");
        let got = mails.iter().filter(|m| m.to == to).count();
        assert_eq!(
            got, 1,
            "{to} got {got} mails (killed after {handled_before})"
        );
    }
    assert_eq!(mails.len(), MESSAGES);
    drop(database);
}

on_both_backends!(a_desk_killed_while_fetching_handles_each_message_once);
