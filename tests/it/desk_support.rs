//! A desk spawned in-process on a random port, with a fresh SQLite database, its own
//! keys, and a real SMTP server on loopback whose received messages the test reads.

use std::io::Cursor;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::web;
use mail_parser::{MessageParser, MimeHeaders};
use resetdesk::clock::Clock;
use resetdesk::config::Settings;
use resetdesk::crypto::KeyStore;
use resetdesk::desk::Desk;
use resetdesk::device::{self, DeviceState};
use resetdesk::domain::{
    DeviceModel, DeviceSerial, EmailAddress, FirmwareVersion, Role, Roles, Timestamp,
};
use resetdesk::mail::outbox::{OutboxWorker, Round};
use resetdesk::protocol::{
    DeviceIdentity, PROTOCOL_VERSION, ResetRequest, export_xml, qr, reset_string,
};
use resetdesk::startup::Application;

/// Every message the SMTP server accepted, as raw bytes.
#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<Vec<u8>>>>);

#[derive(Clone)]
struct SmtpHandler {
    inbox: Inbox,
    current: Vec<u8>,
    refusing: Arc<AtomicBool>,
}

impl mailin_embedded::Handler for SmtpHandler {
    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> mailin_embedded::Response {
        self.current.clear();
        if self.refusing.load(Ordering::SeqCst) {
            // 451: a temporary failure, as a mail server under maintenance answers.
            return mailin_embedded::Response::custom(451, "try again later".to_owned());
        }
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        self.inbox
            .0
            .lock()
            .unwrap()
            .push(std::mem::take(&mut self.current));
        mailin_embedded::response::OK
    }
}

/// A real SMTP server on loopback (mailin-embedded, on a thread of its own) that keeps
/// what it receives.
pub struct SmtpSink {
    pub port: u16,
    inbox: Inbox,
    refusing: Arc<AtomicBool>,
}

impl SmtpSink {
    /// A server for one desk.
    pub fn start() -> Self {
        Self::serving(1)
    }

    /// A server for `desks` desks sending at once.
    pub fn serving(desks: usize) -> Self {
        // mailin serves one connection per thread, and a connection beyond them waits
        // unanswered: this covers every desk's outbox connections at once. No more: the
        // threads live as long as the test process, which runs every test's server, and
        // a process has a limit on its memory maps (two per thread).
        let threads = desks * resetdesk::config::Settings::default().outbox.connections + 8;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let inbox = Inbox::default();
        let refusing = Arc::new(AtomicBool::new(false));
        let handler = SmtpHandler {
            inbox: inbox.clone(),
            current: Vec::new(),
            refusing: refusing.clone(),
        };
        std::thread::spawn(move || {
            let mut server = mailin_embedded::Server::new(handler);
            server
                .with_name("smtp.test")
                .with_num_threads(u32::try_from(threads).expect("a few threads"))
                .with_ssl(mailin_embedded::SslConfig::None)
                .unwrap()
                .with_tcp_listener(listener);
            // The server has no shutdown call; it ends with the test process.
            let _ = server.serve();
        });
        Self {
            port,
            inbox,
            refusing,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.inbox
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|raw| parse_mail(raw))
            .collect()
    }

    pub fn count(&self) -> usize {
        self.inbox.0.lock().unwrap().len()
    }
}

/// The keys in an approval mail, by serial.
pub fn keys_in(mail: &Mail) -> Vec<(String, String)> {
    mail.text
        .lines()
        .filter_map(|line| {
            let (left, key) = line.trim().rsplit_once(":  ")?;
            let serial = left.rsplit_once("serial ")?.1.trim().to_owned();
            Some((serial, key.trim().to_owned()))
        })
        .collect()
}

/// A received message, parsed.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
    pub attachments: Vec<(String, Vec<u8>)>,
    /// The raw header section, to look for injected headers.
    pub headers: String,
}

fn parse_mail(raw: &[u8]) -> Mail {
    let message = MessageParser::default()
        .parse(raw)
        .expect("a parseable message");
    let to = message
        .to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_owned();
    let header_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    Mail {
        headers: String::from_utf8_lossy(&raw[..header_end]).into_owned(),
        to,
        subject: message.subject().unwrap_or_default().to_owned(),
        message_id: message.message_id().unwrap_or_default().to_owned(),
        text: message
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
        html: message
            .body_html(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
        attachments: message
            .attachments()
            .map(|a| {
                (
                    a.attachment_name().unwrap_or_default().to_owned(),
                    a.contents().to_vec(),
                )
            })
            .collect(),
    }
}

/// A clock the test moves forward by hand, to reach retry times and expiries.
#[derive(Clone)]
pub struct TestClock(Arc<AtomicI64>);

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_seconds(self.0.load(Ordering::SeqCst)).unwrap()
    }
}

/// Which database a test's desk runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database of its own on the test PostgreSQL server, dropped with the test.
pub struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    /// `None` (with a note) when `RESETDESK_TEST_POSTGRES_URL` is not set.
    pub async fn create() -> Option<(Self, String)> {
        use sqlx::Connection;
        let admin_url = match std::env::var("RESETDESK_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                eprintln!("PostgreSQL run skipped: RESETDESK_TEST_POSTGRES_URL is not set");
                return None;
            }
        };
        let name = format!(
            "rd_it_{}",
            data_encoding::HEXLOWER.encode(&resetdesk::crypto::random_bytes::<6>())
        );
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("the test PostgreSQL server answers");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap();
        let base = admin_url.split('?').next().unwrap_or(&admin_url).to_owned();
        let url = format!(
            "{}/{name}",
            base.rsplit_once('/')
                .map_or(base.as_str(), |(server, _)| server)
        );
        Some((Self { admin_url, name }, url))
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        use sqlx::Connection;
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&url).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Runs one scenario, an `async fn(Backend)`, as two tests: on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test]
                async fn sqlite() {
                    super::$scenario($crate::desk_support::Backend::Sqlite).await;
                }
                #[tokio::test]
                async fn postgres() {
                    super::$scenario($crate::desk_support::Backend::Postgres).await;
                }
            }
        )*
    };
}

pub struct TestApp {
    /// Keeps a PostgreSQL test database alive as long as the desk.
    _database: Option<PgDatabase>,
    /// Each console user's TOTP seed, as their authenticator app holds it.
    seeds: Mutex<std::collections::HashMap<String, resetdesk::domain::Secret>>,
    pub base: String,
    pub clock: TestClock,
    smtp_refusing: Arc<AtomicBool>,
    pub desk: web::Data<Desk>,
    pub dir: tempfile::TempDir,
    worker: OutboxWorker,
    inbox: Inbox,
    pub client: reqwest::Client,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A desk on `backend`; `None` when that backend cannot run here (the test then passes
/// having said so).
pub async fn spawn_app_on(backend: Backend) -> Option<TestApp> {
    spawn_app_on_with(backend, |_| {}).await
}

/// A desk on `backend` whose settings `configure` adjusts; `None` when that backend
/// cannot run here.
pub async fn spawn_app_on_with(
    backend: Backend,
    configure: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    match backend {
        Backend::Sqlite => Some(spawn_app_with(configure).await),
        Backend::Postgres => {
            let (database, url) = PgDatabase::create().await?;
            let mut app = spawn_app_with(|s| {
                s.storage.database_url = Some(url);
                configure(s);
            })
            .await;
            app._database = Some(database);
            Some(app)
        }
    }
}

/// A desk whose settings `configure` adjusts before it starts.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpSink::start();
    let (inbox, smtp_port, smtp_refusing) = (smtp.inbox.clone(), smtp.port, smtp.refusing.clone());
    let mut settings = Settings::default();
    settings.http.listen = "127.0.0.1:0".parse().unwrap();
    settings.storage.data_dir = dir.path().join("data");
    settings.storage.keys_dir = dir.path().join("keys");
    settings.mail.smtp_url = Some(resetdesk::config::Secret::new(format!(
        "smtp://127.0.0.1:{smtp_port}"
    )));
    settings.mail.from = "Reset desk <desk@vendor.test>".to_owned();
    settings.outbox.max_attempts = 3;
    // The test binary holds the desk's library, but only `resetdesk` reads photos.
    settings.evidence.reader = Some(env!("CARGO_BIN_EXE_resetdesk").into());
    configure(&mut settings);
    let clock = TestClock(Arc::new(AtomicI64::new(Timestamp::now().unix_seconds())));
    let app = Application::build_with_clock(settings, Arc::new(clock.clone()))
        .await
        .expect("the desk starts");
    let port = app.port;
    let desk = app.desk.clone();
    let (server, worker) = app.into_parts();
    tokio::spawn(server);
    TestApp {
        _database: None,
        seeds: Mutex::default(),
        base: format!("http://127.0.0.1:{port}"),
        clock,
        smtp_refusing,
        desk,
        dir,
        worker,
        inbox,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // Before the desk's 5 s keep-alive closes an idle connection (tests/it/replicas.rs).
            .pool_idle_timeout(std::time::Duration::from_secs(2))
            .build()
            .unwrap(),
    }
}

impl TestApp {
    /// Keeps `database` alive as long as this desk (a desk reaching it another way).
    pub fn adopt_database(&mut self, database: PgDatabase) {
        self._database = Some(database);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Moves the desk's clock forward.
    pub fn advance(&self, seconds: i64) {
        self.clock.0.fetch_add(seconds, Ordering::SeqCst);
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Makes the SMTP server answer 451 to every message (or accept them again).
    pub fn smtp_refuses(&self, refusing: bool) {
        self.smtp_refusing.store(refusing, Ordering::SeqCst);
    }

    pub fn keys(&self) -> KeyStore {
        KeyStore::new(self.dir.path().join("keys"))
    }

    /// Sends every due message to the SMTP server.
    pub async fn run_outbox(&self) -> Round {
        self.worker.run_once().await.expect("the outbox round runs")
    }

    /// Every message received so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.inbox
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|raw| parse_mail(raw))
            .collect()
    }

    pub fn mails_to(&self, address: &str) -> Vec<Mail> {
        self.mails()
            .into_iter()
            .filter(|m| m.to == address)
            .collect()
    }

    /// Creates an agent and returns an API token for it.
    pub async fn agent_token(&self, email: &str) -> String {
        self.token_for(email, &[Role::Agent]).await
    }

    /// What `/metrics` shows now.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The risk flags of ticket `number`, as the agent API shows them.
    pub async fn ticket_flags(&self, token: &str, number: &str) -> Vec<String> {
        let detail: serde_json::Value = self
            .api_get(token, &format!("/api/v1/tickets/{number}"))
            .await
            .json()
            .await
            .unwrap();
        detail["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|flag| flag.as_str().unwrap().to_owned())
            .collect()
    }

    /// A console user with `roles`, made by the test (no admin of the desk), and an API
    /// token for them that may decide.
    pub async fn token_for(&self, email: &str, roles: &[Role]) -> String {
        let email = EmailAddress::parse(email).unwrap();
        let hash = resetdesk::auth::hash_password("correct horse battery staple").unwrap();
        let id = self
            .desk
            .store
            .create_user(
                &email,
                &hash,
                Roles::of(roles).unwrap(),
                "test",
                Timestamp::now(),
            )
            .await
            .unwrap();
        let (plain, token_hash) = resetdesk::auth::new_api_token();
        self.desk
            .store
            .create_api_token(&resetdesk::store::NewApiToken {
                user: id,
                token_hash: &token_hash,
                name: "test",
                scope: resetdesk::store::TokenScope::Decide,
                expires_at: None,
                created_at: Timestamp::now(),
            })
            .await
            .unwrap();
        plain
    }

    /// The newest one-time code mailed to `email` for the status page.
    pub fn access_code_mailed_to(&self, email: &str) -> String {
        let mail = self
            .mails_to(email)
            .into_iter()
            .rfind(|m| m.subject.contains("Your code"))
            .expect("a code mail");
        mail.text
            .lines()
            .find_map(|line| line.strip_prefix("Your one-time code: "))
            .expect("the code in the text part")
            .trim()
            .to_owned()
    }

    /// `resetdesk ARGS` against this desk's own database, data and keys: whether it
    /// succeeded, and what it wrote to standard output and error.
    pub fn command(&self, args: &[&str]) -> (bool, String) {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_resetdesk"));
        command
            .args(args)
            .env("RESETDESK_DATA_DIR", self.dir.path().join("data"))
            .env("RESETDESK_KEYS_DIR", self.dir.path().join("keys"));
        match &self.desk.settings.storage.database_url {
            Some(url) => command.env("RESETDESK_DATABASE_URL", url),
            None => command.env_remove("RESETDESK_DATABASE_URL"),
        };
        let output = command.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    /// Approves a ticket through the agent API, as a fresh agent.
    pub async fn approve_by_api(&self, number: &str) {
        let token = self.agent_token("approver@vendor.test").await;
        let approved = self
            .api_post(
                &token,
                &format!("/api/v1/tickets/{number}/approve"),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(approved.status(), 200, "approval of {number}");
    }

    /// Submits through the HTML form; returns the ticket number and status link shown.
    pub async fn submit_form(&self, form: reqwest::multipart::Form) -> (String, String) {
        let response = self
            .client
            .post(self.url("/"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let page = response.text().await.unwrap();
        let number = crate::html::text(&page, "#ticket-number");
        let status_url = crate::html::select_attr(&page, "#status-link", "href");
        (number, status_url)
    }

    pub async fn submit(&self, form: reqwest::multipart::Form) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/requests"))
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn api_get(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn api_post(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Rows and files that a refused submission must not leave behind.
    pub async fn stored_counts(&self) -> (usize, usize, i64) {
        let tickets = self
            .desk
            .store
            .tickets(&resetdesk::store::QueueFilter {
                limit: 500,
                ..Default::default()
            })
            .await
            .unwrap()
            .len();
        let blobs = walk_files(&self.dir.path().join("data/blobs"));
        let (pending, sent, dead) = self.desk.store.mail_counts().await.unwrap();
        (tickets, blobs, pending + sent + dead)
    }

    /// A provisioned reference device trusting this desk's keys.
    pub fn device(&self, serial: &str, model: &str) -> DeviceState {
        let keys = self.keys();
        let identity = DeviceIdentity {
            model: DeviceModel::parse(model).unwrap(),
            serial: DeviceSerial::parse(serial).unwrap(),
            firmware: FirmwareVersion::parse("V4.30.085").unwrap(),
            mac_address: None,
            reserved_email: None,
        };
        device::provision(
            identity,
            &keys.master_secret().unwrap(),
            keys.public_keys().unwrap(),
        )
    }

    /// "Forgot password" on the device, at `issued_at`.
    pub fn export(
        &self,
        state: &mut DeviceState,
        cameras: usize,
        issued_at: Timestamp,
    ) -> ResetRequest {
        self.export_in(PROTOCOL_VERSION, state, cameras, issued_at)
    }

    /// "Forgot password" on a device whose firmware makes protocol `version` exports.
    pub fn export_in(
        &self,
        version: u8,
        state: &mut DeviceState,
        cameras: usize,
        issued_at: Timestamp,
    ) -> ResetRequest {
        let master = self.keys().master_secret().unwrap();
        // As if the device's firmware made exports of this version (a test's shortcut:
        // a real device's version is its firmware's, see docs/PROTOCOL.md).
        state.protocol = version;
        device::export(state, cameras, Some(&master), issued_at).unwrap()
    }
}

/// Files below `dir`, in every subdirectory (0 when it does not exist).
pub fn walk_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { walk_files(&p) } else { 1 })
        .sum()
}

/// The names of the blobs stored in a local blob directory (`<2 chars>/<62 chars>`).
pub fn blob_names(dir: &std::path::Path) -> Vec<String> {
    let Ok(shards) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for shard in shards.map(|e| e.unwrap().path()).filter(|p| p.is_dir()) {
        let prefix = shard.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&shard).unwrap() {
            let rest = file.unwrap().file_name().to_string_lossy().into_owned();
            names.push(format!("{prefix}{rest}"));
        }
    }
    names
}

/// A plausible label photo: a 640×480 JPEG.
pub fn label_photo() -> Vec<u8> {
    let image = image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
        .unwrap();
    out
}

/// The customer's details as form fields.
pub fn customer_form(email: &str) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text("name", "Ana López")
        .text("email", email.to_owned())
        .text("phone", "+34 600 123 456")
        .text("company", "Instalaciones Sur SL")
        .text("country", "ES")
        .text("role", "installer")
        .text("purchase_channel", "Distribuidor Madrid")
}

pub fn file_part(bytes: Vec<u8>, name: &str, mime: &str) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str(mime)
        .unwrap()
}

/// The export in one of its three forms, as the form field to send it in.
pub fn export_part(
    form: reqwest::multipart::Form,
    request: &ResetRequest,
    kind: &str,
) -> reqwest::multipart::Form {
    match kind {
        "xml" => form.part(
            "export_xml",
            file_part(
                export_xml::to_xml(request).into_bytes(),
                "export.xml",
                "application/xml",
            ),
        ),
        "string" => form.text("reset_string", reset_string::encode(request)),
        "qr" => form.part(
            "export_qr",
            file_part(
                qr::encode_png(&reset_string::encode(request)).unwrap(),
                "qr.png",
                "image/png",
            ),
        ),
        other => panic!("unknown export kind {other}"),
    }
}

pub const AGENT_PASSWORD: &str = "correct horse battery staple";

/// The CSRF token of the first console form on a page.
pub fn csrf(html: &str) -> String {
    crate::html::select_attr(html, "input[name=csrf]", "value")
}

/// The sign-in form's CSRF token, from the page as `client` sees it at `base` (its cookie
/// jar keeps the cookie half).
pub async fn sign_in_token(client: &reqwest::Client, base: &str) -> String {
    let page = client
        .get(format!("{base}/console/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    csrf(&page)
}

/// A browser-like client with its own cookie jar.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        // Before the desk's 5 s keep-alive closes an idle connection (tests/it/replicas.rs).
        .pool_idle_timeout(std::time::Duration::from_secs(2))
        .build()
        .unwrap()
}

impl TestApp {
    /// Creates a console user with [`AGENT_PASSWORD`] and an enrolled second factor.
    pub async fn create_agent(&self, email: &str) {
        self.create_user(email, &[Role::Agent]).await;
    }

    pub async fn create_user(&self, email: &str, roles: &[Role]) {
        let hash = resetdesk::auth::hash_password(AGENT_PASSWORD).unwrap();
        let store = &self.desk.store;
        let id = store
            .create_user(
                &EmailAddress::parse(email).unwrap(),
                &hash,
                Roles::of(roles).unwrap(),
                "test",
                Timestamp::now(),
            )
            .await
            .unwrap();
        let seed = resetdesk::auth::totp::new_seed();
        let sealed = self.desk.keys.seal_totp_seed(id.0, &seed);
        store.begin_totp_enrolment(id, &sealed).await.unwrap();
        // Enrolled at step 0, so any current code is new.
        store
            .confirm_totp_enrolment(id, 0, &[], self.now())
            .await
            .unwrap();
        self.seeds.lock().unwrap().insert(email.to_owned(), seed);
    }

    /// Every code `email`'s authenticator app could show now and the desk accept (one
    /// step of drift either way).
    pub fn totp_codes_in_force(&self, email: &str) -> Vec<String> {
        let seeds = self.seeds.lock().unwrap();
        [-30, 0, 30]
            .into_iter()
            .map(|drift| {
                resetdesk::auth::totp::code_at(&seeds[email], self.now().plus_seconds(drift))
                    .unwrap()
            })
            .collect()
    }

    /// The TOTP seed `email`'s authenticator app holds (base32).
    pub fn totp_seed(&self, email: &str) -> String {
        self.seeds.lock().unwrap()[email].expose().to_owned()
    }

    /// The code `email`'s authenticator app shows now.
    pub fn totp_code(&self, email: &str) -> String {
        let seeds = self.seeds.lock().unwrap();
        resetdesk::auth::totp::code_at(&seeds[email], self.now()).unwrap()
    }

    /// Signs in to the console with password and TOTP code; returns the agent's browser.
    pub async fn sign_in(&self, email: &str) -> reqwest::Client {
        let client = browser();
        let token = sign_in_token(&client, &self.base).await;
        let response = client
            .post(self.url("/console/login"))
            .form(&[
                ("csrf", token.as_str()),
                ("email", email),
                ("password", AGENT_PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "sign-in of {email}");
        assert_eq!(response.headers()["location"], "/console/login/code");
        let page = client
            .get(self.url("/console/login/code"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // Each code is accepted once: move to a fresh 30-second step.
        self.advance(30);
        let code = self.totp_code(email);
        let response = client
            .post(self.url("/console/login/code"))
            .form(&[("csrf", csrf(&page).as_str()), ("code", code.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "second factor of {email}");
        assert_eq!(response.headers()["location"], "/console");
        client
    }

    pub async fn console_page(&self, agent: &reqwest::Client, path: &str) -> String {
        let response = agent.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.text().await.unwrap()
    }

    /// Posts a console form with the page's CSRF token and the version of the evidence
    /// the page shows, as the browser does; returns the status.
    pub async fn console_action(
        &self,
        agent: &reqwest::Client,
        ticket: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> u16 {
        let page = self
            .console_page(agent, &format!("/console/tickets/{ticket}"))
            .await;
        let token = csrf(&page);
        let mut form = vec![("csrf", token.as_str())];
        let version = crate::html::select_attrs(&page, "input[name=evidence_version]", "value")
            .into_iter()
            .next();
        if let Some(version) = &version {
            form.push(("evidence_version", version.as_str()));
        }
        form.extend_from_slice(fields);
        let response = agent
            .post(self.url(&format!("/console/tickets/{ticket}/{action}")))
            .form(&form)
            .send()
            .await
            .unwrap();
        response.status().as_u16()
    }
}

/// A TCP pass-through on loopback that the test can cut and restore, as an SMTP server or
/// a database goes away and comes back: while cut, connections are refused and the ones
/// open are dropped; restored, it listens on the same port again.
pub struct Switch {
    pub port: u16,
    target: std::net::SocketAddr,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Switch {
    pub async fn start(target_port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let switch = Self {
            port: listener.local_addr().unwrap().port(),
            target: std::net::SocketAddr::from(([127, 0, 0, 1], target_port)),
            tasks: Arc::default(),
        };
        switch.serve(listener);
        switch
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (target, tasks) = (self.target, self.tasks.clone());
        let accepting = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let connection = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(connection.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accepting.abort_handle());
    }

    /// Refuses new connections and drops the open ones.
    pub fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restore(&self) {
        for _ in 0..100 {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => return self.serve(listener),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
        panic!("port {} could not be bound again", self.port);
    }
}

/// A complete submission for tests that drive the binary: customer `i`'s details, the
/// XML export of a fresh device `serial` made with the keys in `keys`, and `photo`.
pub fn fresh_submission(
    keys: &KeyStore,
    serial: &str,
    i: usize,
    photo: &[u8],
) -> reqwest::multipart::Form {
    let identity = DeviceIdentity {
        model: DeviceModel::parse("DS-7608NI-K2").unwrap(),
        serial: DeviceSerial::parse(serial).unwrap(),
        firmware: FirmwareVersion::parse("V4.30.085").unwrap(),
        mac_address: None,
        reserved_email: None,
    };
    let mut state = device::provision(
        identity,
        &keys.master_secret().unwrap(),
        keys.public_keys().unwrap(),
    );
    let request = device::export(&mut state, 0, None, Timestamp::now()).unwrap();
    export_part(
        customer_form(&format!("customer{i}@example.com")),
        &request,
        "xml",
    )
    .part(
        "label_photo",
        file_part(photo.to_vec(), "label.jpg", "image/jpeg"),
    )
}

impl TestApp {
    /// A page as a customer's browser gets it.
    pub async fn page(&self, url: &str) -> String {
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}
