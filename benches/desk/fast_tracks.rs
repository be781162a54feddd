//! Part 9 (issue 20): the fast tracks under a realistic mix of requests. Each request is
//! a fresh device's version 2 export with its own printed label (so the evidence worker
//! really reads it and finds the device), sent in an open loop at `--fast-track-rate`:
//! 40 % from the address the owner reserved on the device, 10 % from another address
//! than the reserved one, 20 % from registered installers with their tokens (devices
//! imported from sales records), 30 % plain. No agent acts: what the real SMTP server on
//! loopback receives as a response mail was answered by the desk alone. Reported: the
//! share answered without an agent (target >= 50 %), and submission to SMTP accepted,
//! p50 and p99 (target p99 <= 5 s).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use resetdesk::crypto::KeyStore;
use resetdesk::device::label::{self, Label};
use resetdesk::domain::{DeviceModel, DeviceSerial, EmailAddress, FirmwareVersion};
use resetdesk::protocol::{DeviceIdentity, export_xml};

use super::approvals::{cli, smtp_sink};
use super::{BOUNDARY, fresh_export, percentile, start_desk_with};

/// Installers the installer share is spread over (each under its daily quota).
const INSTALLERS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ReservedMatches,
    ReservedDiffers,
    Installer,
    Plain,
}

impl Kind {
    /// The mix, in tenths: 4 reserved and matching, 1 reserved and differing, 2 installers,
    /// 3 plain; interleaved so every stretch of the run has each.
    fn of(i: usize) -> Self {
        match i % 10 {
            0 | 2 | 5 | 7 => Self::ReservedMatches,
            9 => Self::ReservedDiffers,
            3 | 8 => Self::Installer,
            _ => Self::Plain,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::ReservedMatches => "reserved e-mail, the submitter's",
            Self::ReservedDiffers => "reserved e-mail, another's",
            Self::Installer => "registered installer",
            Self::Plain => "plain",
        }
    }
}

struct Request {
    kind: Kind,
    body: Bytes,
    /// The installer's token, for their requests.
    token: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct FastTrackRun {
    pub requests: usize,
    pub answered: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Requests refused, failed, or answered alone when agents must decide them.
    pub errors: usize,
    /// Per kind: (name, sent, answered without an agent).
    pub kinds: Vec<(&'static str, usize, usize)>,
}

impl FastTrackRun {
    pub fn share(&self) -> f64 {
        self.answered as f64 / self.requests.max(1) as f64
    }
}

/// The multipart body of one request: the fields, the XML export and the label PNG.
fn body(fields: &[(&str, String)], xml: &str, photo: &[u8]) -> Bytes {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"export_xml\"; filename=\"export.xml\"\r\nContent-Type: application/xml\r\n\r\n").as_bytes(),
    );
    out.extend_from_slice(xml.as_bytes());
    out.extend_from_slice(
        format!("\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"label_photo\"; filename=\"label.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes(),
    );
    out.extend_from_slice(photo);
    out.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    Bytes::from(out)
}

/// The label printed on device `serial`, as a PNG.
fn printed_label(serial: &DeviceSerial, model: &DeviceModel) -> Vec<u8> {
    let printed = Label {
        model: model.clone(),
        serial: serial.clone(),
        mac_address: label::derived_mac_address(serial),
        firmware: FirmwareVersion::parse("V4.30.085").expect("firmware"),
        codes: true,
    };
    label::png(&printed.render().expect("a label")).expect("a PNG")
}

/// Request `i`; an installer's goes to installer `i / 10 % INSTALLERS` (their share is
/// spread evenly, each under their daily quota).
fn installer_of(i: usize) -> usize {
    i / 10 % INSTALLERS
}

fn request(keys: &KeyStore, run: usize, i: usize, tokens: &[String]) -> (Request, String) {
    let kind = Kind::of(i);
    let model = DeviceModel::parse("DS-7608NI-K2").expect("model");
    let serial = DeviceSerial::parse(&format!("DS-7608NI-K2/FT{run}{i:07}")).expect("serial");
    let owner = format!("owner{run}x{i}@example.com");
    let reserved = match kind {
        Kind::ReservedMatches | Kind::ReservedDiffers => {
            Some(EmailAddress::parse(&owner).expect("address"))
        }
        Kind::Installer | Kind::Plain => None,
    };
    let export = fresh_export(
        keys,
        DeviceIdentity {
            model: model.clone(),
            serial: serial.clone(),
            firmware: FirmwareVersion::parse("V4.30.085").expect("firmware"),
            mac_address: None,
            reserved_email: reserved,
        },
    );
    let xml = export_xml::to_xml(&export);
    let photo = printed_label(&serial, &model);
    let mut fields = vec![("country", "ES".to_owned())];
    let token = match kind {
        Kind::Installer => Some(tokens[installer_of(i)].clone()),
        _ => {
            let email = match kind {
                Kind::ReservedMatches => owner,
                Kind::ReservedDiffers => format!("someone{run}x{i}@example.net"),
                _ => format!("customer{run}x{i}@example.com"),
            };
            fields.extend([
                ("name", format!("Bench Customer {i}")),
                ("email", email),
                ("role", "end_user".to_owned()),
            ]);
            None
        }
    };
    (
        Request {
            kind,
            body: body(&fields, &xml, &photo),
            token,
        },
        serial.to_string(),
    )
}

pub async fn fast_tracks_run(
    count: usize,
    rate: f64,
    database: Option<String>,
    run: usize,
) -> FastTrackRun {
    let (smtp_url, received) = smtp_sink();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (desk, _) = start_desk_with(
        dir.path(),
        database.as_deref(),
        &[("RESETDESK_SMTP_URL", smtp_url.as_str())],
    );
    let base = format!("http://127.0.0.1:{}", desk.port);
    let keys = KeyStore::new(dir.path().join("keys"));
    let db = database.as_deref();
    let tokens: Vec<String> = (0..INSTALLERS)
        .map(|n| {
            let email = format!("ops{n}@installer{run}.example");
            cli(
                dir.path(),
                db,
                &[
                    "installer",
                    "add",
                    "--email",
                    &email,
                    "--company",
                    "Bench Installs",
                ],
                "",
            );
            cli(
                dir.path(),
                db,
                &["installer", "token", "--email", &email],
                "",
            )
            .trim()
            .to_owned()
        })
        .collect();
    // Built before the load: the label PNGs and the exports cost this process, not the
    // desk. The installers' devices are imported as a distributor's sales records.
    let mut requests = Vec::with_capacity(count);
    let mut sales: Vec<Vec<String>> = vec![Vec::new(); INSTALLERS];
    for i in 0..count {
        let (request, serial) = request(&keys, run, i, &tokens);
        if request.kind == Kind::Installer {
            sales[installer_of(i)].push(serial);
        }
        requests.push(request);
    }
    for (n, serials) in sales.iter().enumerate().filter(|(_, s)| !s.is_empty()) {
        let csv = std::iter::once("serial".to_owned())
            .chain(serials.iter().cloned())
            .collect::<Vec<_>>()
            .join("\n");
        let email = format!("ops{n}@installer{run}.example");
        cli(
            dir.path(),
            db,
            &[
                "installer",
                "devices",
                "import",
                "--email",
                &email,
                "--file",
                "-",
            ],
            &csv,
        );
    }

    let client = reqwest::Client::new();
    let requests = Arc::new(requests);
    let submitted: Arc<Mutex<HashMap<String, (Kind, Instant)>>> = Arc::default();
    let errors = Arc::new(AtomicUsize::new(0));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut sending = Vec::with_capacity(count);
    for i in 0..count {
        tick.tick().await;
        let (client, requests, submitted, errors, url) = (
            client.clone(),
            requests.clone(),
            submitted.clone(),
            errors.clone(),
            format!("{base}/api/v1/requests"),
        );
        sending.push(tokio::spawn(async move {
            let request = &requests[i];
            let at = Instant::now();
            let mut post = client
                .post(&url)
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={BOUNDARY}"),
                )
                .body(request.body.clone());
            if let Some(token) = &request.token {
                post = post.bearer_auth(token);
            }
            match post.send().await {
                Ok(response) if response.status().as_u16() == 201 => {
                    let answer: serde_json::Value = response.json().await.expect("JSON");
                    let number = answer["ticket"].as_str().expect("a ticket").to_owned();
                    submitted
                        .lock()
                        .expect("not poisoned")
                        .insert(number, (request.kind, at));
                }
                Ok(response) => {
                    let status = response.status();
                    let said = response.text().await.unwrap_or_default();
                    super::note_failure(&format!("HTTP {status}"), said.as_bytes());
                    errors.fetch_add(1, Ordering::SeqCst);
                }
                Err(error) => {
                    super::note_failure(&error.to_string(), b"");
                    errors.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for task in sending {
        task.await.expect("a request task");
    }
    // Drained: every label read, and no response mail for ten seconds.
    let jobs = super::jobs_url(dir.path(), db);
    let waited = Instant::now();
    let mut last = (0, Instant::now());
    loop {
        let mails = received.approvals.lock().expect("not poisoned").len();
        if mails != last.0 {
            last = (mails, Instant::now());
        }
        let pending = super::evidence_watch::pending_now(&jobs).await;
        if pending == 0 && last.1.elapsed() > Duration::from_secs(10) {
            break;
        }
        if waited.elapsed() > Duration::from_secs(600) {
            eprintln!("fast tracks: still {pending} label(s) to read after 10 minutes");
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    desk.kill();

    let submitted = submitted.lock().expect("not poisoned");
    let mailed = received.approvals.lock().expect("not poisoned");
    let mut latencies = Vec::new();
    let mut kinds: Vec<(&'static str, usize, usize)> = Vec::new();
    for kind in [
        Kind::ReservedMatches,
        Kind::ReservedDiffers,
        Kind::Installer,
        Kind::Plain,
    ] {
        let sent = submitted.values().filter(|(k, _)| *k == kind).count();
        let answered = submitted
            .iter()
            .filter(|(number, (k, _))| *k == kind && mailed.contains_key(*number))
            .count();
        kinds.push((kind.name(), sent, answered));
    }
    // Only the kinds a rule answers count as answered; a response to any other is the
    // desk deciding what agents must, and counts as an error, not as a success.
    let mut wrongly_answered = 0;
    for (number, (kind, at)) in submitted.iter() {
        if let Some(mailed_at) = mailed.get(number) {
            match kind {
                Kind::ReservedMatches | Kind::Installer => {
                    latencies.push(mailed_at.saturating_duration_since(*at));
                }
                Kind::ReservedDiffers | Kind::Plain => wrongly_answered += 1,
            }
        }
    }
    if wrongly_answered > 0 {
        eprintln!("fast tracks: {wrongly_answered} request(s) answered that agents must decide");
    }
    latencies.sort();
    FastTrackRun {
        requests: count,
        answered: latencies.len(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        errors: errors.load(Ordering::SeqCst) + wrongly_answered,
        kinds,
    }
}
