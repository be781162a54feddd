//! The desk measured against its limits: prints a table and, with `--json PATH`, writes
//! the same figures as JSON. See docs/BENCHMARKS.md.
//!
//! ```sh
//! cargo bench --bench desk -- --json target/bench.json
//! cargo bench --bench desk -- --runs 1 --requests 300     # a quick look
//! cargo bench --bench desk -- --scale-only --tickets 1000000  # queue at scale, cold start
//! cargo bench --bench desk -- --only fast_tracks --runs 1     # the fast tracks' mix
//! ```
//!
//! `--no-scale` leaves out the queue-at-scale phase (queue_at_scale.rs), which loads
//! `--tickets N` tickets (default 1,000,000) and takes minutes. It loads each size once
//! and measures it `--runs` times, each on a newly started desk.
//!
//! Everything runs on this machine over loopback: the desk is the release `resetdesk`
//! binary in its own process; the load comes from a tokio client in this process; the
//! reference "bare" server is this program started again with `--bare-server`, with a
//! second route that also syncs each file (the durable limit).
//!
//! The intake phase also watches the desk's evidence jobs in its database during the open
//! loop at half of peak (evidence_watch.rs), and waits up to `--drain-secs` (300) for them
//! to drain afterwards; then does the same on a fresh desk at `--worker-rate` uploads a
//! second (4) for a minute, a rate the worker keeps up with.

use std::io::{BufRead, BufReader, Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use resetdesk::crypto::KeyStore;
use resetdesk::device;
use resetdesk::domain::{DeviceModel, DeviceSerial, FirmwareVersion, MacAddress, Timestamp};
use resetdesk::protocol::{DeviceIdentity, ResetRequest, export_xml};
use serde_json::{Value, json};

mod approvals;
mod evidence_watch;
mod fast_tracks;
mod memory;
mod queue_at_scale;
mod reading;

const BOUNDARY: &str = "bench-boundary-3f9a1c";

struct Options {
    json: Option<PathBuf>,
    runs: usize,
    requests: usize,
    postgres: Option<String>,
    /// Phases to run (`--only intake,qr,approvals,memory,fast_tracks,reading,scale`); all
    /// when empty.
    only: Vec<String>,
    approvals: usize,
    /// Tickets for the queue-at-scale phase; `None` with `--no-scale`.
    scale_tickets: Option<usize>,
    /// Clients uploading at once in the memory phase (`--memory-clients`).
    memory_clients: usize,
    /// How long the intake phase waits for the evidence jobs of its open loop to drain
    /// after the load (`--drain-secs`).
    drain_limit: Duration,
    /// Uploads a second for a minute in the intake phase's last open loop, a rate the
    /// evidence worker keeps up with (`--worker-rate`, 4).
    worker_rate: f64,
    /// Requests in the fast tracks' mix (`--fast-tracks`, 200), sent at
    /// `--fast-track-rate` a second (2).
    fast_tracks: usize,
    fast_track_rate: f64,
}

impl Options {
    fn runs_phase(&self, phase: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == phase)
    }
}

fn options() -> Options {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        json: None,
        runs: 3,
        requests: 1200,
        postgres: std::env::var("RESETDESK_BENCH_POSTGRES_URL")
            .ok()
            .or_else(|| Some("postgres://postgres@127.0.0.1:5432/test".to_owned())),
        only: Vec::new(),
        approvals: 10_000,
        scale_tickets: Some(1_000_000),
        memory_clients: 200,
        drain_limit: Duration::from_secs(300),
        worker_rate: 4.0,
        fast_tracks: 200,
        fast_track_rate: 2.0,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => options.json = args.next().map(PathBuf::from),
            "--runs" => options.runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(3),
            "--requests" => {
                options.requests = args.next().and_then(|n| n.parse().ok()).unwrap_or(1200);
            }
            "--no-postgres" => options.postgres = None,
            "--only" => {
                options.only = args
                    .next()
                    .map(|list| list.split(',').map(str::to_owned).collect())
                    .unwrap_or_default();
            }
            "--approvals" => {
                options.approvals = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
            }
            "--no-scale" => options.scale_tickets = None,
            "--scale-only" => options.only = vec!["scale".to_owned()],
            "--tickets" => options.scale_tickets = args.next().and_then(|n| n.parse().ok()),
            "--memory-clients" => {
                options.memory_clients = args.next().and_then(|n| n.parse().ok()).unwrap_or(200);
            }
            "--worker-rate" => {
                options.worker_rate = args.next().and_then(|n| n.parse().ok()).unwrap_or(4.0);
            }
            "--fast-tracks" => {
                options.fast_tracks = args.next().and_then(|n| n.parse().ok()).unwrap_or(200);
            }
            "--fast-track-rate" => {
                options.fast_track_rate = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|r: &f64| *r > 0.0)
                    .unwrap_or(2.0);
            }
            "--drain-secs" => {
                let secs = args.next().and_then(|n| n.parse().ok()).unwrap_or(300);
                options.drain_limit = Duration::from_secs(secs);
            }
            // cargo bench passes --bench; nothing to do with it.
            _ => {}
        }
    }
    options
}

/// A server process whose port it printed in a "listening" line.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    /// A polite stop first (SIGTERM: the desk drains and exits, and a profiler wrapped
    /// around it writes its report), then a kill if it has not gone within a minute.
    fn drop(&mut self) {
        // Already stopped by `kill`: its id may belong to another process by now.
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let asked = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        while asked && Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The CPU time the server's process has used so far, all its threads, in ms (from
    /// /proc/PID/stat, in the kernel's 10 ms ticks).
    fn cpu_ms(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // The fields after the command's closing parenthesis; utime and stime are the
        // 12th and 13th of those.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let ticks: f64 = after
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|n| n.parse::<f64>().ok())
            .sum();
        ticks * 10.0
    }

    /// Stops the server at once (SIGKILL), for a desk whose data is thrown away: the
    /// desk's evidence worker does not look at SIGTERM while it has jobs due, so a desk
    /// left thousands of jobs behind would take the whole minute of `drop` to stop, its
    /// worker still reading photos beside the next measurement.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(command: &mut Command) -> (Server, Duration) {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the server starts");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut lines = stdout.lines();
    let port = loop {
        let line = lines
            .next()
            .expect("the server says where it listens")
            .expect("a line");
        if line.contains("listening")
            && let Some(rest) = line.split("port=").nth(1)
        {
            break rest
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .expect("a port");
        }
    };
    let ready = started.elapsed();
    // Keep reading so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Server { child, port }, ready)
}

/// The desk in its own process on a fresh data directory.
fn start_desk(dir: &Path, database_url: Option<&str>) -> (Server, Duration) {
    start_desk_with(dir, database_url, &[])
}

/// The desk with some settings of its environment changed.
fn start_desk_with(
    dir: &Path,
    database_url: Option<&str>,
    settings: &[(&str, &str)],
) -> (Server, Duration) {
    // `RESETDESK_BENCH_WRAP="valgrind --tool=massif"` runs the desk under a profiler.
    let wrap = std::env::var("RESETDESK_BENCH_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut command = match words.next() {
        Some(tool) => {
            let mut command = Command::new(tool);
            command.args(words).arg(env!("CARGO_BIN_EXE_resetdesk"));
            command
        }
        None => Command::new(env!("CARGO_BIN_EXE_resetdesk")),
    };
    command
        .arg("serve")
        .current_dir(dir)
        .env("RESETDESK_LISTEN", "127.0.0.1:0")
        .env(
            "RESETDESK_LOG",
            "warn,resetdesk::startup=info,resetdesk::cli=info",
        )
        .env("RESETDESK_KEYS_DIR", dir.join("keys"))
        // The load comes from one address; real customers come from many. Every
        // upload is still counted per address and per serial, as a deployed desk counts
        // it (a write transaction of its own), but never refused: each upload has a
        // serial of its own.
        .env("RESETDESK_INTAKE_PER_IP_PER_HOUR", "1000000000")
        .env("RESETDESK_UPLOADS_PER_ADDRESS", "10000")
        .env_remove("RESETDESK_INTAKE_PER_SERIAL_PER_HOUR")
        .env_remove("RESETDESK_SMTP_URL");
    if let Some(url) = database_url {
        command.env("RESETDESK_DATABASE_URL", url);
    } else {
        command.env_remove("RESETDESK_DATABASE_URL");
    }
    command.envs(settings.iter().copied());
    start(&mut command)
}

/// The reference: this program as a bare actix-web server.
fn start_bare(dir: &Path) -> Server {
    let exe = std::env::current_exe().expect("the bench knows where it is");
    start(Command::new(exe).arg("--bare-server").arg(dir)).0
}

/// `--bare-server DIR`: receives the multipart upload and streams each part to a file.
/// `/upload` answers once the bytes are written; `/upload-synced` also `fsync`s each file
/// first (`sync_all`), the least a handler must do before its 201 means "on disk": the
/// durable limit the intake's target is stated against (issue 18, item 5).
fn bare_server(dir: PathBuf) {
    use actix_multipart::Multipart;
    use actix_web::{App, HttpResponse, HttpServer, web};
    use futures_util::StreamExt;

    async fn store(dir: &Path, mut multipart: Multipart, sync: bool) -> HttpResponse {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        while let Some(Ok(mut field)) = multipart.next().await {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let Ok(mut file) = tokio::fs::File::create(dir.join(format!("part-{n}"))).await else {
                return HttpResponse::InternalServerError().finish();
            };
            while let Some(Ok(chunk)) = field.next().await {
                if tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                    .await
                    .is_err()
                {
                    return HttpResponse::InternalServerError().finish();
                }
            }
            if sync && file.sync_all().await.is_err() {
                return HttpResponse::InternalServerError().finish();
            }
        }
        HttpResponse::Created().json(json!({"stored": true}))
    }

    async fn upload(dir: web::Data<PathBuf>, multipart: Multipart) -> HttpResponse {
        store(&dir, multipart, false).await
    }

    async fn upload_synced(dir: web::Data<PathBuf>, multipart: Multipart) -> HttpResponse {
        store(&dir, multipart, true).await
    }

    let system = actix_web::rt::System::new();
    system.block_on(async move {
        let data = web::Data::new(dir);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/upload", web::post().to(upload))
                .route("/upload-synced", web::post().to(upload_synced))
        })
        .bind(("127.0.0.1", 0))
        .expect("bind");
        let port = server.addrs()[0].port();
        println!("bare server listening port={port}");
        std::io::stdout().flush().ok();
        server.run().await.expect("the bare server runs");
    });
}

/// A picture with a pattern of `cell`-pixel bands under xorshift noise (each channel's
/// noise divided by `calm`): JPEG compresses it about as poorly as a real photo.
fn textured_picture(
    width: u32,
    height: u32,
    cell: u32,
    calm: u8,
    mut seed: u64,
) -> image::RgbImage {
    image::RgbImage::from_fn(width, height, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let [a, b, c, ..] = seed.to_le_bytes();
        image::Rgb([
            ((x / cell) % 160) as u8 + a / calm,
            ((y / cell) % 160) as u8 + b / calm,
            60 + c / calm,
        ])
    })
}

/// A label photo of about 300 KB: a JPEG of noise-like texture compresses poorly.
fn label_photo() -> Bytes {
    let image = textured_picture(820, 615, 4, 3, 0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
        .expect("encode");
    Bytes::from(out)
}

/// The export of a fresh device, made as the device makes it.
fn fresh_export(keys: &KeyStore, identity: DeviceIdentity) -> ResetRequest {
    let mut state = device::provision(
        identity,
        &keys.master_secret().expect("master secret"),
        keys.public_keys().expect("public keys"),
    );
    device::export(&mut state, 0, None, Timestamp::now()).expect("export")
}

/// A genuine XML export of one fresh NVR, padded to the ~3 KB the benchmark calls for:
/// devices pad their exports with a comment block (model notes, support hints).
fn padded_export_xml(keys: &KeyStore, serial: &str) -> String {
    let request = fresh_export(
        keys,
        DeviceIdentity {
            model: DeviceModel::parse("DS-7608NI-K2").expect("model"),
            serial: DeviceSerial::parse(serial).expect("serial"),
            firmware: FirmwareVersion::parse("V4.30.085 build 220323").expect("firmware"),
            mac_address: Some(MacAddress::parse("A4:14:37:12:34:56").expect("mac")),
            reserved_email: None,
        },
    );
    let xml = export_xml::to_xml(&request);
    let padding = "x".repeat(3000usize.saturating_sub(xml.len()));
    xml.replacen("<Device>", &format!("<!-- {padding} --><Device>"), 1)
}

/// The multipart body around the shared photo: customer `i`'s fields, the export part,
/// and the label photo's part header; then what follows the photo.
fn around_photo(
    customer: &str,
    i: usize,
    export: (&str, &str, &str),
    export_bytes: &[u8],
) -> (Bytes, Bytes) {
    let (field, file_name, media_type) = export;
    let mut head = Vec::new();
    for (name, value) in [
        ("name", format!("{customer} Customer {i}")),
        (
            "email",
            format!("{}{i}@example.com", customer.to_lowercase()),
        ),
        ("country", "ES".to_owned()),
        ("role", "installer".to_owned()),
    ] {
        head.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    head.extend_from_slice(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\nContent-Type: {media_type}\r\n\r\n").as_bytes(),
    );
    head.extend_from_slice(export_bytes);
    head.extend_from_slice(
        format!("\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"label_photo\"; filename=\"label.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").as_bytes(),
    );
    (
        Bytes::from(head),
        Bytes::from(format!("\r\n--{BOUNDARY}--\r\n")),
    )
}

/// One submission with a ~3 KB XML export of a fresh device.
fn submission(keys: &KeyStore, serial: &str, i: usize) -> (Bytes, Bytes) {
    let xml = padded_export_xml(keys, serial);
    around_photo(
        "Bench",
        i,
        ("export_xml", "export.xml", "application/xml"),
        xml.as_bytes(),
    )
}

/// A submission whose export is a 1920×1080 PNG screenshot showing the device's QR code.
fn qr_submission(keys: &KeyStore, serial: &str, i: usize) -> (Bytes, Bytes) {
    let request = fresh_export(
        keys,
        DeviceIdentity {
            model: DeviceModel::parse("DS-2CD2143G2-I").expect("model"),
            serial: DeviceSerial::parse(serial).expect("serial"),
            firmware: FirmwareVersion::parse("V5.7.3").expect("firmware"),
            mac_address: None,
            reserved_email: None,
        },
    );
    let code =
        resetdesk::protocol::qr::encode_png(&resetdesk::protocol::reset_string::encode(&request))
            .expect("a QR code");
    let code = image::load_from_memory(&code)
        .expect("the QR PNG")
        .into_rgb8();
    // A device's web page: a grey header bar, the code in the middle of a white page.
    let mut screen = image::RgbImage::from_fn(1920, 1080, |_, y| {
        if y < 90 {
            image::Rgb([40, 44, 52])
        } else {
            image::Rgb([250, 250, 250])
        }
    });
    let x = i64::from((1920 - code.width()) / 2);
    let y = i64::from((1080 - code.height()) / 2);
    image::imageops::overlay(&mut screen, &code, x, y);
    let mut png = Vec::new();
    screen
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("encode");
    around_photo("QR", i, ("export_qr", "screen.png", "image/png"), &png)
}

/// `count` uploads sharing `photo`, the rest of each made by `make(i)`.
fn uploads(
    count: usize,
    photo: &Bytes,
    make: impl Fn(usize) -> (Bytes, Bytes),
) -> Arc<Vec<Upload>> {
    Arc::new(
        (0..count)
            .map(|i| {
                let (head, tail) = make(i);
                Upload {
                    head,
                    photo: photo.clone(),
                    tail,
                }
            })
            .collect(),
    )
}

struct QrRun {
    qr: Load,
    others_alone: Load,
    others_during_qr: Load,
}

/// QR screenshot intake: QR uploads in a closed loop of 8 while ordinary XML uploads
/// arrive at a steady `other_rate`; the ordinary ones are also measured alone.
async fn qr_run(photo: &Bytes, requests: usize, other_rate: f64) -> QrRun {
    let dir = phase_dir();
    let (desk, _) = start_desk(dir.as_path(), None);
    let keys = KeyStore::new(dir.as_path().join("keys"));
    let url = format!("http://127.0.0.1:{}/api/v1/requests", desk.port);
    let make = |phase: &str, qr: bool| {
        uploads(requests, photo, |i| {
            let serial = format!("QRB-{phase}-{i:06}");
            if qr {
                qr_submission(&keys, &serial, i)
            } else {
                submission(&keys, &serial, i)
            }
        })
    };
    let others_alone = open_loop(&url, make("ALONE", false), other_rate).await;
    let (qr, others_during_qr) = tokio::join!(
        closed_loop(&url, make("QR", true), 8),
        open_loop(&url, make("DURING", false), other_rate)
    );
    QrRun {
        qr,
        others_alone,
        others_during_qr,
    }
}

struct Upload {
    head: Bytes,
    photo: Bytes,
    tail: Bytes,
}

impl Upload {
    fn len(&self) -> usize {
        self.head.len() + self.photo.len() + self.tail.len()
    }
}

async fn send(client: &reqwest::Client, url: &str, upload: &Upload) -> Result<Duration, String> {
    send_answered(client, url, upload)
        .await
        .map(|(latency, _)| latency)
}

/// [`send`], keeping the answer's body (the ticket number the intake gave).
async fn send_answered(
    client: &reqwest::Client,
    url: &str,
    upload: &Upload,
) -> Result<(Duration, Bytes), String> {
    // Put together per request, so thousands of uploads share one photo in memory.
    let mut body = Vec::with_capacity(upload.len());
    body.extend_from_slice(&upload.head);
    body.extend_from_slice(&upload.photo);
    body.extend_from_slice(&upload.tail);
    let started = Instant::now();
    let response = client
        .post(url)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .map_err(|e| {
            let error = e.to_string();
            note_failure(&error, &[]);
            error
        })?;
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    if status.as_u16() == 201 {
        Ok((started.elapsed(), body))
    } else {
        let error = format!("status {status}");
        note_failure(&error, &body);
        Err(error)
    }
}

/// Prints the first failure of each kind, so a run that counts errors says what they
/// were (the counts alone do not tell a refusal from a timeout).
fn note_failure(error: &str, body: &[u8]) {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().expect("the failures seen");
    if !seen.iter().any(|e| e == error) {
        seen.push(error.to_owned());
        let body = String::from_utf8_lossy(&body[..body.len().min(300)]);
        eprintln!("bench: a request failed: {error} {body}");
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Load {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

fn summarise(mut latencies: Vec<Duration>, errors: usize, elapsed: Duration) -> Load {
    latencies.sort_unstable();
    Load {
        requests_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        errors,
    }
}

/// Closed loop: `concurrency` clients, each sending its next upload as soon as the last
/// one is answered, until every upload is sent.
async fn closed_loop(url: &str, uploads: Arc<Vec<Upload>>, concurrency: usize) -> Load {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, uploads, next, url) = (
                client.clone(),
                uploads.clone(),
                next.clone(),
                url.to_owned(),
            );
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(upload) = uploads.get(i) else {
                        return (latencies, errors);
                    };
                    match send(&client, &url, upload).await {
                        Ok(latency) => latencies.push(latency),
                        Err(_) => errors += 1,
                    }
                }
            })
        })
        .collect();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for worker in workers {
        let (l, e) = worker.await.expect("a worker");
        latencies.extend(l);
        errors += e;
    }
    summarise(latencies, errors, started.elapsed())
}

/// Open loop: uploads started at a fixed `rate` whatever the answers do, so the latency
/// is what a client sees at that load.
async fn open_loop(url: &str, uploads: Arc<Vec<Upload>>, rate: f64) -> Load {
    open_loop_answered(url, uploads, rate).await.0
}

/// [`open_loop`], keeping when each upload was answered and the answer's body.
async fn open_loop_answered(
    url: &str,
    uploads: Arc<Vec<Upload>>,
    rate: f64,
) -> (Load, Vec<(Instant, Bytes)>) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let tasks: Vec<_> = (0..uploads.len())
        .map(|i| {
            let (client, uploads, url) = (client.clone(), uploads.clone(), url.to_owned());
            let at = started + Duration::from_secs_f64(i as f64 / rate);
            tokio::spawn(async move {
                tokio::time::sleep_until(at.into()).await;
                send_answered(&client, &url, &uploads[i])
                    .await
                    .map(|(latency, body)| (latency, Instant::now(), body))
            })
        })
        .collect();
    let (mut latencies, mut answers, mut errors) = (Vec::new(), Vec::new(), 0);
    for task in tasks {
        match task.await.expect("a request") {
            Ok((latency, at, body)) => {
                latencies.push(latency);
                answers.push((at, body));
            }
            Err(_) => errors += 1,
        }
    }
    (summarise(latencies, errors, started.elapsed()), answers)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The database of one run: a fresh PostgreSQL database `name` on the server at `admin`,
/// or `None` (SQLite in the desk's data directory) when no server is given.
async fn run_database(admin: Option<&str>, name: &str) -> Option<String> {
    match admin {
        Some(admin) => Some(
            postgres_database(admin, name)
                .await
                .expect("a benchmark database"),
        ),
        None => None,
    }
}

/// A fresh PostgreSQL database for one run, dropped afterwards.
async fn postgres_database(admin_url: &str, name: &str) -> Option<String> {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(admin_url).await.ok()?;
    let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(&mut admin)
        .await
        .ok()?;
    let create = format!("CREATE DATABASE \"{name}\"");
    sqlx::query(sqlx::AssertSqlSafe(create))
        .execute(&mut admin)
        .await
        .ok()?;
    let base = &admin_url[..admin_url.rfind('/')?];
    Some(format!("{base}/{name}"))
}

struct IntakeRun {
    /// Ed25519 signatures a second on one core, just before the closed loops: how fast
    /// the CPU was in this run. On a shared virtual machine it moves by a quarter within
    /// an evening, and a run on a slow CPU says little about the desk.
    cpu_witness: f64,
    /// The bare server's closed loops of 8 and 64 just before this run, then the same on
    /// its route that syncs each file.
    bare: (Load, Load),
    synced: (Load, Load),
    /// CPU time per upload at 64 clients (ms, all the process's threads): the bare
    /// server, the synced bare server, the desk. The desk's photo readers are processes
    /// of their own (`resetdesk evidence read`) and are not counted: while jobs are
    /// pending they take about one core beside it.
    c64_cpu_ms: [f64; 3],
    c8: Load,
    c64: Load,
    half_peak: Load,
    /// Evidence jobs still pending when the closed loops ended: how far the worker fell
    /// behind at peak.
    pending_after_closed_loops: i64,
    evidence: EvidenceRun,
    /// The open loop at `--worker-rate`, and its evidence jobs.
    at_worker_rate: Load,
    evidence_at_worker_rate: EvidenceRun,
}

/// The evidence worker during and after the open loop at half of peak.
struct EvidenceRun {
    /// The most jobs pending at any look, during the load or after it.
    max_pending: i64,
    /// Pending when the last upload of the open loop had been answered.
    pending_at_load_end: i64,
    /// From that moment to the first look finding none pending; infinite if none did
    /// within `--drain-secs`.
    drain_secs: f64,
    /// Jobs finished per second while draining, with no intake beside them.
    drain_jobs_per_sec: f64,
    /// From the client's 201 to the look that first saw the ticket's job ended.
    to_finding_p50_ms: f64,
    to_finding_p99_ms: f64,
    /// Tickets whose job had not ended when the watch stopped; counted in the
    /// percentiles at the time waited so far, which are then lower bounds.
    unfinished: usize,
    /// Jobs that ended otherwise than "done" (failed, superseded).
    not_done: usize,
}

/// Intake on one backend: closed loops at concurrency 8 and 64 on fresh exports, then an
/// open loop at half the peak rate on a second, fresh desk, watching its evidence jobs.
///
/// The open loop gets a desk of its own because the closed loops leave the worker
/// thousands of jobs behind (it reads a photo in several ms, the intake takes one in
/// a few): on the same desk the open loop would measure that backlog draining, not
/// whether the worker keeps up with half of peak.
async fn intake_run(
    photo: &Bytes,
    requests: usize,
    admin: Option<&str>,
    run: usize,
    drain_limit: Duration,
    worker_rate: f64,
) -> IntakeRun {
    let make = |keys: &KeyStore, phase: &str| {
        uploads(requests, photo, |i| {
            submission(keys, &format!("BENCH-{run}-{phase}-{i:06}"), i)
        })
    };

    let database_url = run_database(admin, &format!("resetdesk_bench_{run}")).await;
    let dir = phase_dir();
    let (desk, _) = start_desk(dir.as_path(), database_url.as_deref());
    let keys = KeyStore::new(dir.as_path().join("keys"));
    let url = format!("http://127.0.0.1:{}/api/v1/requests", desk.port);
    let cpu_witness = sign_rate(&keys, Duration::from_millis(500));
    let c8 = closed_loop(&url, make(&keys, "C8"), 8).await;
    let cpu_before = desk.cpu_ms();
    let c64 = closed_loop(&url, make(&keys, "C64"), 64).await;
    let c64_cpu_ms_per_upload = (desk.cpu_ms() - cpu_before) / requests as f64;
    let pending_after_closed_loops =
        evidence_watch::pending_now(&jobs_url(dir.as_path(), database_url.as_deref())).await;
    desk.kill();

    let peak = c8.requests_per_sec.max(c64.requests_per_sec);
    let half = WatchedLoad {
        photo,
        count: requests,
        admin,
        run,
        phase: "half",
        rate: peak / 2.0,
        drain_limit,
    };
    let (half_peak, evidence) = half.run().await;
    // A rate the worker can keep up with (`--worker-rate`), for a minute: how long a
    // finding takes when the worker is not behind.
    let steady = WatchedLoad {
        photo,
        count: (worker_rate * 60.0).round().max(1.0) as usize,
        admin,
        run,
        phase: "steady",
        rate: worker_rate,
        drain_limit,
    };
    let (at_worker_rate, evidence_at_worker_rate) = steady.run().await;
    IntakeRun {
        cpu_witness,
        bare: Default::default(),
        synced: Default::default(),
        c64_cpu_ms: [0.0, 0.0, c64_cpu_ms_per_upload],
        c8,
        c64,
        half_peak,
        pending_after_closed_loops,
        evidence,
        at_worker_rate,
        evidence_at_worker_rate,
    }
}

/// An open loop of `count` uploads at `rate` on a fresh desk, watching its evidence
/// jobs during the load and until they drain (at most `drain_limit`).
struct WatchedLoad<'a> {
    photo: &'a Bytes,
    count: usize,
    admin: Option<&'a str>,
    run: usize,
    phase: &'static str,
    rate: f64,
    drain_limit: Duration,
}

impl WatchedLoad<'_> {
    async fn run(&self) -> (Load, EvidenceRun) {
        let name = format!("resetdesk_bench_{}_{}", self.run, self.phase);
        let database_url = run_database(self.admin, &name).await;
        let dir = phase_dir();
        let (desk, _) = start_desk(dir.as_path(), database_url.as_deref());
        let keys = KeyStore::new(dir.as_path().join("keys"));
        let url = format!("http://127.0.0.1:{}/api/v1/requests", desk.port);
        let phase = self.phase.to_uppercase();
        let uploads = uploads(self.count, self.photo, |i| {
            submission(&keys, &format!("BENCH-{}-{phase}-{i:06}", self.run), i)
        });
        let watch =
            evidence_watch::Watch::start(&jobs_url(dir.as_path(), database_url.as_deref())).await;
        let (load, answers) = open_loop_answered(&url, uploads, self.rate).await;
        let load_end = Instant::now();
        let drained = watch.drained_after(load_end, self.drain_limit).await;
        let seen = watch.stop().await;
        let stopped = Instant::now();
        if drained.is_some() {
            drop(desk);
        } else {
            // Jobs still due: SIGTERM would wait for them (see `Server::kill`).
            desk.kill();
        }
        (
            load,
            evidence_run(&seen, &answers, load_end, drained, stopped),
        )
    }
}

/// What the evidence watch saw of the uploads `answers` (when each was answered, and its
/// body), the load having ended at `load_end`.
fn evidence_run(
    seen: &evidence_watch::Seen,
    answers: &[(Instant, Bytes)],
    load_end: Instant,
    drained: Option<Instant>,
    stopped: Instant,
) -> EvidenceRun {
    let pending_at_load_end = seen
        .pending
        .iter()
        .rev()
        .find(|(at, _)| *at <= load_end)
        .map_or(0, |(_, pending)| *pending);
    let drain_secs = drained.map_or(f64::INFINITY, |at| {
        at.saturating_duration_since(load_end).as_secs_f64()
    });
    let (mut to_finding, mut unfinished, mut not_done) = (Vec::new(), 0, 0);
    for (answered, body) in answers {
        let ticket = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["ticket"].as_str().map(str::to_owned))
            .expect("a 201 names its ticket");
        match seen.ended.get(&ticket) {
            Some((at, status)) => {
                to_finding.push(at.saturating_duration_since(*answered));
                if status != "done" {
                    not_done += 1;
                }
            }
            None => {
                to_finding.push(stopped.saturating_duration_since(*answered));
                unfinished += 1;
            }
        }
    }
    to_finding.sort_unstable();
    EvidenceRun {
        max_pending: seen.pending.iter().map(|(_, p)| *p).max().unwrap_or(0),
        pending_at_load_end,
        drain_secs,
        drain_jobs_per_sec: if drain_secs > 0.0 {
            pending_at_load_end as f64 / drain_secs
        } else {
            f64::NAN
        },
        to_finding_p50_ms: percentile(&to_finding, 0.50),
        to_finding_p99_ms: percentile(&to_finding, 0.99),
        unfinished,
        not_done,
    }
}

/// Where the desk started on `dir` keeps its evidence jobs.
pub(crate) fn jobs_url(dir: &Path, database: Option<&str>) -> String {
    database.map_or_else(
        || format!("sqlite://{}", dir.join("data/resetdesk.db").display()),
        str::to_owned,
    )
}

/// The bare server under closed loops of 8 and 64 on `route`: `/upload`, or
/// `/upload-synced`, which also syncs each file; and its CPU time per upload at 64.
async fn bare_run(
    photo: &Bytes,
    requests: usize,
    keys: &KeyStore,
    route: &str,
) -> (Load, Load, f64) {
    let dir = phase_dir();
    let bare = start_bare(dir.as_path());
    let url = format!("http://127.0.0.1:{}{route}", bare.port);
    let make = || {
        uploads(requests, photo, |i| {
            submission(keys, &format!("BARE-{i:06}"), i)
        })
    };
    let c8 = closed_loop(&url, make(), 8).await;
    let cpu_before = bare.cpu_ms();
    let c64 = closed_loop(&url, make(), 64).await;
    let cpu = (bare.cpu_ms() - cpu_before) / requests as f64;
    (c8, c64, cpu)
}

/// The intake and QR phases' directories (a desk's data, a bare server's files), removed
/// only when the bench ends: about 2.6 GB a run and backend at 1,200 uploads, on the disk
/// `TMPDIR` names. Removed at the end of its phase, it made the next phase pay for it: on a
/// file system without a journal (ext4 here), creating a file walks past every inode
/// deleted in the last half minute (`recently_deleted` in the kernel, 15 % of the desk's
/// samples in a profile of 2026-12-05), and the bare and synced bare runs removed 2,400
/// files each just before the next run began. A deployed desk removes files at the pace of
/// its sweeper, not thousands at once.
static KEPT_DIRS: std::sync::Mutex<Vec<tempfile::TempDir>> = std::sync::Mutex::new(Vec::new());

/// A new directory for an intake or QR phase, kept until the bench ends (see [`KEPT_DIRS`]).
fn phase_dir() -> PathBuf {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().to_owned();
    KEPT_DIRS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(dir);
    path
}

/// Removes the kept directories when `main` returns or unwinds.
struct RemoveKeptDirs;

impl Drop for RemoveKeptDirs {
    fn drop(&mut self) {
        KEPT_DIRS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

/// ring's raw Ed25519 signing rate on this machine, one core, over `span`.
fn sign_rate(keys: &KeyStore, span: Duration) -> f64 {
    let key = keys.active_signing_key().expect("a signing key");
    let message = [7u8; 96];
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < span {
        for _ in 0..256 {
            std::hint::black_box(key.sign(std::hint::black_box(&message)));
        }
        count += 256;
    }
    count as f64 / started.elapsed().as_secs_f64()
}

/// Where an intake's time goes: the steps the bare handler does not take, each timed
/// alone on one core (milliseconds per upload).
async fn intake_steps(photo: &Bytes, keys: &KeyStore) -> Vec<(&'static str, f64)> {
    fn per_call(mut f: impl FnMut(), calls: u32) -> f64 {
        let started = Instant::now();
        for _ in 0..calls {
            f();
        }
        started.elapsed().as_secs_f64() * 1000.0 / f64::from(calls)
    }
    let max_pixels = resetdesk::config::Settings::default()
        .intake
        .max_label_pixels;
    let check = per_call(
        || {
            std::hint::black_box(resetdesk::intake::photo::check_label_photo(
                photo, max_pixels,
            ))
            .expect("the photo passes");
        },
        50,
    );
    let xml = padded_export_xml(keys, "STEPS-000001").into_bytes();
    let master = keys.master_secret().expect("master");
    let parse_verify = per_call(
        || {
            let request = export_xml::from_xml(&xml).expect("parses");
            std::hint::black_box(
                request
                    .verify(&master, Timestamp::now(), 300)
                    .expect("genuine"),
            );
        },
        2000,
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let blobs = resetdesk::blobs::BlobStore::new(dir.path());
    let started = Instant::now();
    for _ in 0..50 {
        blobs.put(photo.to_vec()).await.expect("stored");
    }
    let blob = started.elapsed().as_secs_f64() * 1000.0 / 50.0;
    vec![
        ("label photo check (full decode)", check),
        ("export parse + HMAC verify", parse_verify),
        ("one blob write with fsync", blob),
    ]
}

fn machine() -> Value {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|n| n.parse::<u64>().ok())
                })
        })
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1).map(|s| s.trim().to_owned()))
        })
        .unwrap_or_default();
    json!({"cores": cores, "memory_gib": (memory_kb as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0, "cpu": cpu})
}

fn load_json(load: &Load) -> Value {
    json!({
        "requests_per_sec": (load.requests_per_sec * 10.0).round() / 10.0,
        "p50_ms": (load.p50_ms * 100.0).round() / 100.0,
        "p99_ms": (load.p99_ms * 100.0).round() / 100.0,
        "errors": load.errors,
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("--bare-server") {
        bare_server(PathBuf::from(args.next().expect("a directory")));
        return;
    }
    let options = options();
    let _remove = RemoveKeptDirs;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(bench(options));
}

async fn bench(options: Options) {
    resetdesk::startup::install_tls_provider();
    let photo = label_photo();
    println!(
        "resetdesk benchmarks: {} runs, {} uploads per phase, photo {} KB",
        options.runs,
        options.requests,
        photo.len() / 1024
    );
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let keys = KeyStore::new(scratch.path().join("keys"));
    keys.init(Timestamp::now()).expect("keys");

    let mut backends: Vec<(&str, Option<String>)> = vec![("sqlite", None)];
    if let Some(admin) = &options.postgres {
        if postgres_database(admin, "resetdesk_bench_probe")
            .await
            .is_some()
        {
            backends.push(("postgres", Some(admin.clone())));
        } else {
            println!("PostgreSQL at {admin} is not reachable: its rows are left out");
        }
    }

    let mut results = serde_json::Map::new();
    let mut table = Vec::new();
    if options.runs_phase("intake") {
        // Each intake run has its own bare and synced bare runs just before it, and its
        // ratios are taken against those: what else runs on this shared machine changes
        // by the minute, and the bare rates with it (830 and 2,000 req/s at 64 clients in
        // two runs of 2026-12-05 a quarter of an hour apart), so a ratio of rates taken
        // minutes apart would be mostly noise.
        let mut all_runs: Vec<Vec<IntakeRun>> = backends.iter().map(|_| Vec::new()).collect();
        for run in 0..options.runs {
            for ((_, admin), backend_runs) in backends.iter().zip(&mut all_runs) {
                let (bare_c8, bare_c64, bare_cpu) =
                    bare_run(&photo, options.requests, &keys, "/upload").await;
                let (synced_c8, synced_c64, synced_cpu) =
                    bare_run(&photo, options.requests, &keys, "/upload-synced").await;
                let (bare, synced) = ((bare_c8, bare_c64), (synced_c8, synced_c64));
                assert_eq!(
                    bare.0.errors + bare.1.errors + synced.0.errors + synced.1.errors,
                    0,
                    "the bare server failed requests"
                );
                let mut result = intake_run(
                    &photo,
                    options.requests,
                    admin.as_deref(),
                    run,
                    options.drain_limit,
                    options.worker_rate,
                )
                .await;
                (result.bare, result.synced) = (bare, synced);
                result.c64_cpu_ms[..2].copy_from_slice(&[bare_cpu, synced_cpu]);
                backend_runs.push(result);
            }
        }
        let over_all = |f: &dyn Fn(&IntakeRun) -> f64| {
            median(&mut all_runs.iter().flatten().map(f).collect::<Vec<_>>())
        };
        let (bare_c8, bare_c64, synced_c8, synced_c64) = (
            over_all(&|r| r.bare.0.requests_per_sec),
            over_all(&|r| r.bare.1.requests_per_sec),
            over_all(&|r| r.synced.0.requests_per_sec),
            over_all(&|r| r.synced.1.requests_per_sec),
        );
        results.insert(
            "bare_upload".to_owned(),
            json!({"c8_requests_per_sec": bare_c8, "c64_requests_per_sec": bare_c64}),
        );
        results.insert(
            "bare_upload_synced".to_owned(),
            json!({"c8_requests_per_sec": synced_c8, "c64_requests_per_sec": synced_c64}),
        );
        table.push(format!(
            "bare actix upload to file      c8 {bare_c8:>7.1} req/s   c64 {bare_c64:>7.1} req/s   (all runs)"
        ));
        table.push(format!(
            "bare upload, each file synced  c8 {synced_c8:>7.1} req/s   c64 {synced_c64:>7.1} req/s   (the durable limit; all runs)"
        ));

        for ((name, admin), runs) in backends.iter().zip(&all_runs) {
            let pick =
                |f: &dyn Fn(&IntakeRun) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
            let c8 = Load {
                requests_per_sec: pick(&|r| r.c8.requests_per_sec),
                p50_ms: pick(&|r| r.c8.p50_ms),
                p99_ms: pick(&|r| r.c8.p99_ms),
                errors: runs.iter().map(|r| r.c8.errors).sum(),
            };
            let c64 = Load {
                requests_per_sec: pick(&|r| r.c64.requests_per_sec),
                p50_ms: pick(&|r| r.c64.p50_ms),
                p99_ms: pick(&|r| r.c64.p99_ms),
                errors: runs.iter().map(|r| r.c64.errors).sum(),
            };
            let half = Load {
                requests_per_sec: pick(&|r| r.half_peak.requests_per_sec),
                p50_ms: pick(&|r| r.half_peak.p50_ms),
                p99_ms: pick(&|r| r.half_peak.p99_ms),
                errors: runs.iter().map(|r| r.half_peak.errors).sum(),
            };
            // Each run's ratio against the bare runs beside it; the median of those.
            let ratio = pick(&|r| {
                r.c8.requests_per_sec.max(r.c64.requests_per_sec)
                    / r.bare.0.requests_per_sec.max(r.bare.1.requests_per_sec)
            });
            // The target's ratio: at 64 clients, against the bare handler that syncs.
            let durable_ratio = pick(&|r| r.c64.requests_per_sec / r.synced.1.requests_per_sec);
            let beside = (
                pick(&|r| r.bare.1.requests_per_sec),
                pick(&|r| r.synced.1.requests_per_sec),
            );
            let cpu = [0, 1, 2].map(|i| pick(&|r| r.c64_cpu_ms[i]));
            // Every run's figures beside the medians: on a shared machine the spread says
            // how far a median can be trusted.
            let each = |f: &dyn Fn(&IntakeRun) -> f64| {
                runs.iter()
                    .map(|r| format!("{:.2}", f(r)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let runs_line = format!(
                "  runs {name:<9} c64 intake/synced bare: {}   intake c64: {}   synced bare c64: {}   half peak p99: {}   CPU witness (Ed25519/s): {}",
                each(&|r| r.c64.requests_per_sec / r.synced.1.requests_per_sec),
                each(&|r| r.c64.requests_per_sec),
                each(&|r| r.synced.1.requests_per_sec),
                each(&|r| r.half_peak.p99_ms),
                runs.iter()
                    .map(|r| format!("{:.0}", r.cpu_witness))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            let target = if admin.is_some() { 0.35 } else { 0.5 };
            table.push(format!(
                "intake {name:<9} c8 {:>7.1} req/s   c64 {:>7.1} req/s   at half peak ({:.0}/s): p50 {:.1} ms p99 {:.1} ms (target <= 20)   errors {}   intake/bare {:.2}   c64 intake/synced bare {:.2} (target >= {target}; bare c64 beside {:.0}, synced {:.0} req/s)",
                c8.requests_per_sec,
                c64.requests_per_sec,
                half.requests_per_sec,
                half.p50_ms,
                half.p99_ms,
                c8.errors + c64.errors + half.errors,
                ratio,
                durable_ratio,
                beside.0,
                beside.1,
            ));
            let evidence = |f: &dyn Fn(&EvidenceRun) -> f64| pick(&|r| f(&r.evidence));
            let (max_pending, at_end, drain, drain_rate, p50, p99) = (
                evidence(&|e| e.max_pending as f64),
                evidence(&|e| e.pending_at_load_end as f64),
                evidence(&|e| e.drain_secs),
                evidence(&|e| e.drain_jobs_per_sec),
                evidence(&|e| e.to_finding_p50_ms),
                evidence(&|e| e.to_finding_p99_ms),
            );
            let after_closed = pick(&|r| r.pending_after_closed_loops as f64);
            let unfinished: usize = runs.iter().map(|r| r.evidence.unfinished).sum();
            let not_done: usize = runs.iter().map(|r| r.evidence.not_done).sum();
            let drain_text = if drain.is_finite() {
                format!("{drain:.1} s ({drain_rate:.0} jobs/s)")
            } else {
                format!("not within {} s", options.drain_limit.as_secs())
            };
            let bound = if unfinished > 0 { ">= " } else { "" };
            table.push(format!(
                "  CPU per upload at c64 {name:<9} bare {:.2} ms   synced bare {:.2} ms   desk {:.2} ms (its photo readers not counted)",
                cpu[0], cpu[1], cpu[2]
            ));
            table.push(format!(
                "  evidence {name:<9} at half peak: pending max {max_pending:.0}, {at_end:.0} at load end, drained in {drain_text}   intake to finding p50 {bound}{p50:.0} ms p99 {bound}{p99:.0} ms (target <= 2000)   unfinished {unfinished}   not done {not_done}   pending after the closed loops {after_closed:.0}"
            ));
            let steady = |f: &dyn Fn(&EvidenceRun) -> f64| pick(&|r| f(&r.evidence_at_worker_rate));
            let (steady_max, steady_p50, steady_p99, steady_latency_p99) = (
                steady(&|e| e.max_pending as f64),
                steady(&|e| e.to_finding_p50_ms),
                steady(&|e| e.to_finding_p99_ms),
                pick(&|r| r.at_worker_rate.p99_ms),
            );
            let steady_unfinished: usize = runs
                .iter()
                .map(|r| r.evidence_at_worker_rate.unfinished)
                .sum();
            table.push(format!(
                "  evidence {name:<9} at {:.1} uploads/s for a minute (--worker-rate): pending max {steady_max:.0}   intake to finding p50 {steady_p50:.0} ms p99 {steady_p99:.0} ms (target <= 2000)   unfinished {steady_unfinished}   intake p99 {steady_latency_p99:.1} ms",
                options.worker_rate
            ));
            table.push(runs_line);
            let round = |x: f64, places: f64| (x * places).round() / places;
            results.insert(
                format!("intake_{name}"),
                json!({
                    "c8": load_json(&c8),
                    "c64": load_json(&c64),
                    "half_peak": load_json(&half),
                    "intake_over_bare": (ratio * 1000.0).round() / 1000.0,
                    "c64_over_synced_bare_c64": round(durable_ratio, 1000.0),
                    "c64_over_synced_bare_c64_each_run": runs
                        .iter()
                        .map(|r| round(r.c64.requests_per_sec / r.synced.1.requests_per_sec, 1000.0))
                        .collect::<Vec<_>>(),
                    "cpu_witness_ed25519_per_sec_each_run": runs
                        .iter()
                        .map(|r| r.cpu_witness.round())
                        .collect::<Vec<_>>(),
                    // The bare runs just before this backend's intake runs (medians).
                    "bare_c64_beside": round(beside.0, 10.0),
                    "synced_bare_c64_beside": round(beside.1, 10.0),
                    "c64_cpu_ms_per_upload": {
                        "bare": round(cpu[0], 100.0),
                        "synced_bare": round(cpu[1], 100.0),
                        "desk": round(cpu[2], 100.0),
                    },
                    "evidence_pending_after_closed_loops": after_closed,
                    "evidence_half_peak": {
                        "max_pending": max_pending,
                        "pending_at_load_end": at_end,
                        // null: not drained within drain_limit_secs.
                        "drain_secs": drain.is_finite().then(|| round(drain, 100.0)),
                        "drain_jobs_per_sec": drain_rate.is_finite().then(|| round(drain_rate, 10.0)),
                        "drain_limit_secs": options.drain_limit.as_secs(),
                        "intake_to_finding_p50_ms": round(p50, 10.0),
                        "intake_to_finding_p99_ms": round(p99, 10.0),
                        "unfinished": unfinished,
                        "not_done": not_done,
                        "poll_ms": evidence_watch::EVERY.as_millis() as u64,
                    },
                    "evidence_at_worker_rate": {
                        "uploads_per_sec": options.worker_rate,
                        "max_pending": steady_max,
                        "intake_to_finding_p50_ms": round(steady_p50, 10.0),
                        "intake_to_finding_p99_ms": round(steady_p99, 10.0),
                        "intake_p99_ms": round(steady_latency_p99, 100.0),
                        "unfinished": steady_unfinished,
                    },
                }),
            );
        }

        let steps = intake_steps(&photo, &keys).await;
        for (name, ms) in &steps {
            table.push(format!("  step: {name:<32} {ms:>8.3} ms"));
        }
        results.insert(
            "intake_steps_ms".to_owned(),
            Value::Object(
                steps
                    .iter()
                    .map(|(name, ms)| ((*name).to_owned(), json!((ms * 1000.0).round() / 1000.0)))
                    .collect(),
            ),
        );
    }
    if options.runs_phase("qr") {
        let mut qr_runs = Vec::new();
        for _ in 0..options.runs {
            qr_runs.push(qr_run(&photo, (options.requests / 4).max(50), 20.0).await);
        }
        let qr_pick =
            |f: &dyn Fn(&QrRun) -> f64| median(&mut qr_runs.iter().map(f).collect::<Vec<_>>());
        let (qr_rate, qr_p50, qr_p99) = (
            qr_pick(&|r| r.qr.requests_per_sec),
            qr_pick(&|r| r.qr.p50_ms),
            qr_pick(&|r| r.qr.p99_ms),
        );
        let (alone_p99, during_p99) = (
            qr_pick(&|r| r.others_alone.p99_ms),
            qr_pick(&|r| r.others_during_qr.p99_ms),
        );
        let qr_errors: usize = qr_runs
            .iter()
            .map(|r| r.qr.errors + r.others_alone.errors + r.others_during_qr.errors)
            .sum();
        table.push(format!(
            "QR screenshot intake (sqlite)  c8 {qr_rate:>7.1} req/s   p50 {qr_p50:.1} ms p99 {qr_p99:.1} ms   other uploads at 20/s: p99 {alone_p99:.1} ms alone, {during_p99:.1} ms during QR load   errors {qr_errors}"
        ));
        results.insert(
            "qr_intake_sqlite".to_owned(),
            json!({
                "c8_requests_per_sec": (qr_rate * 10.0).round() / 10.0,
                "p50_ms": (qr_p50 * 100.0).round() / 100.0,
                "p99_ms": (qr_p99 * 100.0).round() / 100.0,
                "other_uploads_p99_ms_alone": (alone_p99 * 100.0).round() / 100.0,
                "other_uploads_p99_ms_during_qr": (during_p99 * 100.0).round() / 100.0,
                "errors": qr_errors,
            }),
        );
    }
    let mut rates: Vec<f64> = (0..options.runs)
        .map(|_| sign_rate(&keys, Duration::from_secs(2)))
        .collect();
    let rate = median(&mut rates);
    table.push(format!(
        "ring Ed25519 sign               {rate:>9.0} signatures/s (one core)"
    ));
    results.insert("ed25519_signs_per_sec".to_owned(), json!(rate.round()));

    if options.runs_phase("approvals") {
        approvals_phase(&options, &backends, &mut table, &mut results).await;
    }
    if options.runs_phase("memory") {
        memory_phase(&options, &mut table, &mut results).await;
    }
    if options.runs_phase("fast_tracks") {
        fast_tracks_phase(&options, &backends, &mut table, &mut results).await;
    }
    if options.runs_phase("reading") {
        let kinds = reading::run(&photo, options.runs, &mut table);
        results.insert("label_reading".to_owned(), kinds);
    }
    if let Some(tickets) = options
        .scale_tickets
        .filter(|_| options.runs_phase("scale"))
    {
        let scale =
            queue_at_scale::run(tickets, 1000, 5, options.runs, options.postgres.as_deref()).await;
        table.extend(scale.table);
        results.insert("queue_at_scale".to_owned(), scale.json);
    }

    let report = json!({
        "machine": machine(),
        "runs": options.runs,
        "uploads_per_phase": options.requests,
        "photo_bytes": photo.len(),
        "results": results,
    });
    println!(
        "\nmedians of {} runs on {}",
        options.runs, report["machine"]
    );
    for line in &table {
        println!("  {line}");
    }
    if let Some(path) = options.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report).expect("json"))
            .expect("the JSON report is written");
        println!("JSON: {}", path.display());
    }
}

async fn approvals_phase(
    options: &Options,
    backends: &[(&str, Option<String>)],
    table: &mut Vec<String>,
    results: &mut serde_json::Map<String, Value>,
) {
    // The photo does not matter here; a small one keeps 10,000 tickets' blobs small.
    let photo = small_photo();
    for (name, admin) in backends {
        let mut runs = Vec::new();
        for run in 0..options.runs {
            let database =
                run_database(admin.as_deref(), &format!("resetdesk_bench_mail_{run}")).await;
            runs.push(
                approvals::approvals_run(&photo, options.approvals, database, run, false).await,
            );
        }
        let pick = |f: &dyn Fn(&approvals::ApprovalRun) -> f64| {
            median(&mut runs.iter().map(f).collect::<Vec<_>>())
        };
        let (rate, p50, p99, mails, checks) = (
            pick(&|r| r.approvals_per_sec),
            pick(&|r| r.p50_ms),
            pick(&|r| r.p99_ms),
            pick(&|r| r.mails_per_sec),
            pick(&|r| r.label_checks_wait_secs),
        );
        let errors: usize = runs.iter().map(|r| r.errors).sum();
        let awaiting: usize = runs.iter().map(|r| r.awaiting_second).sum();
        table.push(format!(
            "approve -> mail {name:<9} {} approvals: {rate:>6.1} approvals/s   approve to SMTP accepted p50 {p50:.1} ms p99 {p99:.1} ms (target <= 500)   backlog delivered {mails:>6.1} mails/s (target >= 500)   errors {errors}   awaiting a second approval {awaiting}   (label checks done {checks:.1} s after the acknowledgments)",
            options.approvals
        ));
        results.insert(
            format!("approvals_{name}"),
            json!({
                "approvals": options.approvals,
                "approvals_per_sec": (rate * 10.0).round() / 10.0,
                "approve_to_smtp_p50_ms": (p50 * 100.0).round() / 100.0,
                "approve_to_smtp_p99_ms": (p99 * 100.0).round() / 100.0,
                "backlog_mails_per_sec": (mails * 10.0).round() / 10.0,
                "errors": errors,
                "awaiting_second_approval": awaiting,
                "label_checks_wait_secs": (checks * 10.0).round() / 10.0,
            }),
        );
    }
    // The keys out of the web process (issue 22): the same approvals on SQLite with the
    // signer as a process of its own, in the same run as the in-process figures above,
    // each run's signer-to-in-process ratio taken, their median reported.
    let mut ratios = Vec::new();
    let mut runs = Vec::new();
    for run in 0..options.runs {
        let local =
            approvals::approvals_run(&photo, options.approvals, None, run + 100, false).await;
        let remote =
            approvals::approvals_run(&photo, options.approvals, None, run + 200, true).await;
        ratios.push(remote.approvals_per_sec / local.approvals_per_sec);
        runs.push((local, remote));
    }
    let pick = |f: &dyn Fn(&(approvals::ApprovalRun, approvals::ApprovalRun)) -> f64| {
        median(&mut runs.iter().map(f).collect::<Vec<_>>())
    };
    let (local_rate, remote_rate, local_p99, remote_p99) = (
        pick(&|r| r.0.approvals_per_sec),
        pick(&|r| r.1.approvals_per_sec),
        pick(&|r| r.0.p99_ms),
        pick(&|r| r.1.p99_ms),
    );
    let ratio = median(&mut ratios);
    let errors: usize = runs.iter().map(|r| r.1.errors).sum();
    table.push(format!(
        "approve -> mail sqlite, signer over its socket vs in process, {} approvals: {remote_rate:>6.1} vs {local_rate:>6.1} approvals/s = {:.0} % (target >= 80 %)   approve to SMTP p99 {remote_p99:.1} vs {local_p99:.1} ms   errors {errors}",
        options.approvals,
        ratio * 100.0
    ));
    results.insert(
        "approvals_sqlite_signer".to_owned(),
        json!({
            "approvals": options.approvals,
            "signer_approvals_per_sec": (remote_rate * 10.0).round() / 10.0,
            "in_process_approvals_per_sec": (local_rate * 10.0).round() / 10.0,
            "ratio_median": (ratio * 1000.0).round() / 1000.0,
            "signer_approve_to_smtp_p99_ms": (remote_p99 * 100.0).round() / 100.0,
            "in_process_approve_to_smtp_p99_ms": (local_p99 * 100.0).round() / 100.0,
            "errors": errors,
        }),
    );
}

async fn fast_tracks_phase(
    options: &Options,
    backends: &[(&str, Option<String>)],
    table: &mut Vec<String>,
    results: &mut serde_json::Map<String, Value>,
) {
    for (name, admin) in backends {
        let mut runs = Vec::new();
        for run in 0..options.runs {
            let database =
                run_database(admin.as_deref(), &format!("resetdesk_bench_fast_{run}")).await;
            runs.push(
                fast_tracks::fast_tracks_run(
                    options.fast_tracks,
                    options.fast_track_rate,
                    database,
                    run,
                )
                .await,
            );
        }
        let pick = |f: &dyn Fn(&fast_tracks::FastTrackRun) -> f64| {
            median(&mut runs.iter().map(f).collect::<Vec<_>>())
        };
        let (share, p50, p99, max) = (
            pick(&|r| r.share()),
            pick(&|r| r.p50_ms),
            pick(&|r| r.p99_ms),
            pick(&|r| r.max_ms),
        );
        let errors: usize = runs.iter().map(|r| r.errors).sum();
        let by_kind: Vec<String> = runs[0]
            .kinds
            .iter()
            .map(|(kind, sent, answered)| format!("{kind} {answered}/{sent}"))
            .collect();
        table.push(format!(
            "fast tracks {name:<9} {} requests at {}/s: answered without an agent {:.0} % (target >= 50)   submission to SMTP accepted p50 {:.2} s p99 {:.2} s max {:.2} s (target p99 <= 5)   errors {errors}   (first run: {})",
            options.fast_tracks,
            options.fast_track_rate,
            share * 100.0,
            p50 / 1000.0,
            p99 / 1000.0,
            max / 1000.0,
            by_kind.join(", ")
        ));
        results.insert(
            format!("fast_tracks_{name}"),
            json!({
                "requests": options.fast_tracks,
                "rate_per_sec": options.fast_track_rate,
                "answered_share": (share * 1000.0).round() / 1000.0,
                "submission_to_smtp_p50_ms": p50.round(),
                "submission_to_smtp_p99_ms": p99.round(),
                "submission_to_smtp_max_ms": max.round(),
                "errors": errors,
                "by_kind_first_run": runs[0].kinds.iter().map(|(k, s, a)| json!({"kind": k, "sent": s, "answered": a})).collect::<Vec<_>>(),
            }),
        );
    }
}

async fn memory_phase(
    options: &Options,
    table: &mut Vec<String>,
    results: &mut serde_json::Map<String, Value>,
) {
    let photo = memory::big_photo(10 * 1024 * 1024);
    let mut runs = Vec::new();
    for run in 0..options.runs {
        runs.push(memory::memory_run(&photo, options.memory_clients, run).await);
    }
    let pick =
        |f: &dyn Fn(&memory::MemoryRun) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
    let (idle, peak, rate) = (
        pick(&|r| r.idle_rss_mb),
        pick(&|r| r.peak_rss_mb),
        pick(&|r| r.requests_per_sec),
    );
    let errors: usize = runs.iter().map(|r| r.errors).sum();
    table.push(format!(
        "memory (sqlite) {} concurrent uploads of {:.1} MB: peak RSS {peak:.1} MB (target <= 150), idle {idle:.1} MB, {rate:.1} uploads/s, errors {errors}",
        options.memory_clients,
        photo.len() as f64 / (1024.0 * 1024.0)
    ));
    results.insert(
        "memory_sqlite".to_owned(),
        json!({
            "clients": options.memory_clients,
            "upload_bytes": photo.len(),
            "peak_rss_mb": (peak * 10.0).round() / 10.0,
            "idle_rss_mb": (idle * 10.0).round() / 10.0,
            "uploads_per_sec": (rate * 10.0).round() / 10.0,
            "errors": errors,
        }),
    );
}

/// A 200×200 label photo: the smallest the desk accepts.
fn small_photo() -> Bytes {
    let image = image::RgbImage::from_fn(240, 200, |x, y| {
        image::Rgb([(x % 200) as u8, (y % 200) as u8, 90])
    });
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
        .expect("a JPEG");
    Bytes::from(out)
}
