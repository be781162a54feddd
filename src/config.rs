//! Settings: defaults, then a TOML file (`--config`), then `RESETDESK_*` environment
//! variables (the environment wins). Validated once at start.
//!
//! The settings come in sections, one per part of the desk that reads them. Each section
//! is a struct (its fields documented), its `Default`, and its [`Section::set`]: the one
//! place that names each setting (the TOML key; the environment variable is `RESETDESK_`
//! and the name in upper case) and turns its text into the field. The names stay flat,
//! as operators' files and unit files already write them. Credentials are
//! [`Secret`]s: `Debug` redacts them by their type, and a rejected one is never echoed.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

pub use crate::domain::Secret;
pub use crate::intake::limits::IntakeLimits;

mod parse;

use parse::{Refusal, Section, domains, http_url, list, number, parsed, secret, yes_no};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("unknown setting {0:?} (see the configuration table in the README)")]
    Unknown(String),
    #[error("setting {name} = {value:?} is not valid: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub http: Http,
    pub storage: Storage,
    pub mail: Mail,
    pub outbox: Outbox,
    pub evidence: Evidence,
    pub uploads: Uploads,
    pub intake: IntakeLimits,
    pub four_eyes: FourEyes,
    pub fast_tracks: FastTracks,
    pub security: Security,
    pub console: Console,
    pub signer: SignerSettings,
    pub retention: Retention,
    /// Set by `serve --dev`: relaxes defaults meant for production.
    pub dev: bool,
}

/// The HTTP server and how it sees its clients.
#[derive(Debug, Clone)]
pub struct Http {
    /// Address and port the HTTP server binds (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The URL customers reach the desk at, used in every link sent out; empty until
    /// loaded, then `http://<listen>` unless set.
    pub public_url: String,
    /// Load balancers whose `X-Forwarded-For` names the real client, for rate limits.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: String::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

impl Section for Http {
    fn set(&mut self, name: &str, value: &str) -> Result<(), Refusal> {
        match name {
            "listen" => self.listen = parsed(value, "expected IP:PORT such as 127.0.0.1:8080")?,
            "public_url" => self.public_url = http_url(value)?,
            "trusted_proxies" => {
                self.trusted_proxies = list(value)
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|_| {
                        Refusal::Invalid(
                            "expected IP addresses separated by commas, such as 10.0.0.2, 10.0.0.3",
                        )
                    })?;
            }
            _ => return Err(Refusal::NotMine),
        }
        Ok(())
    }
}

/// Where the desk keeps its database, keys and uploads.
#[derive(Debug, Clone)]
pub struct Storage {
    /// `sqlite://PATH` or `postgres://...`; default: `sqlite://<data_dir>/resetdesk.db`.
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    pub keys_dir: PathBuf,
    /// Where uploads go: unset for `<data_dir>/blobs`, or `s3://BUCKET` for an
    /// S3-compatible store shared by several replicas.
    pub blob_url: Option<String>,
    /// The S3 endpoint for stores other than AWS (MinIO, Ceph, ...); `http://` allowed.
    pub s3_endpoint: Option<String>,
    pub s3_region: String,
    /// Credentials; when unset, the usual AWS_* variables and instance roles apply.
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<Secret>,
    /// Blobs no ticket names are removed once older than this (uploads are stored
    /// before their ticket commits, so never sooner than an intake can take).
    pub blob_sweep_grace_secs: i64,
    /// How often each replica offers to sweep orphaned blobs (one at a time holds the
    /// lease); 0 turns the sweeper off.
    pub blob_sweep_interval_secs: u64,
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            database_url: None,
            data_dir: PathBuf::from("./data"),
            keys_dir: PathBuf::from("./keys"),
            blob_url: None,
            s3_endpoint: None,
            s3_region: "us-east-1".to_owned(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            blob_sweep_grace_secs: 3600,
            blob_sweep_interval_secs: 900,
        }
    }
}

impl Storage {
    /// The database URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("resetdesk.db").display()))
    }
}

impl Section for Storage {
    fn set(&mut self, name: &str, value: &str) -> Result<(), Refusal> {
        match name {
            "database_url" => {
                let known = ["sqlite:", "postgres://", "postgresql://"];
                if !known.iter().any(|scheme| value.starts_with(scheme)) {
                    return Err(Refusal::Invalid("expected sqlite://PATH or postgres://..."));
                }
                self.database_url = Some(value.to_owned());
            }
            "data_dir" => self.data_dir = PathBuf::from(value),
            "keys_dir" => self.keys_dir = PathBuf::from(value),
            "blob_url" => {
                if !value.starts_with("s3://") {
                    return Err(Refusal::Invalid(
                        "expected s3://BUCKET (leave it unset for the data directory)",
                    ));
                }
                self.blob_url = Some(value.to_owned());
            }
            "s3_endpoint" => self.s3_endpoint = Some(http_url(value)?),
            "s3_region" => self.s3_region = value.to_owned(),
            "s3_access_key_id" => self.s3_access_key_id = Some(value.to_owned()),
            "s3_secret_access_key" => self.s3_secret_access_key = Some(Secret::new(value)),
            "blob_sweep_grace_secs" => {
                self.blob_sweep_grace_secs =
                    number(value, |n| *n >= 60, "expected seconds, at least 60")?
            }
            "blob_sweep_interval_secs" => {
                self.blob_sweep_interval_secs = number(
                    value,
                    |_| true,
                    "expected seconds (0 turns the sweeper off)",
                )?
            }
            _ => return Err(Refusal::NotMine),
        }
        Ok(())
    }
}

/// How e-mail leaves the desk.
#[derive(Debug, Clone)]
pub struct Mail {
    /// `smtp://user:pass@host:port` (add `?tls=required` for STARTTLS) or `smtps://...`;
    /// none means e-mails are written as .eml files to `<data_dir>/outbox`.
    pub smtp_url: Option<Secret>,
    /// The sender of every mail.
    pub from: String,
    /// The mailbox customers write to (`mail::inbound::imap`): `imaps://user:pass@host:993/INBOX`,
    /// or `imap://…:143/INBOX?tls=required` for STARTTLS (plain `imap://` only on
    /// loopback). None: `serve` fetches no mail (an MTA may pipe it to `mail-intake`).
    pub imap_url: Option<Secret>,
    /// How often the mailbox is looked at when it offers no IDLE, and at most how long an
    /// IDLE waits before looking again.
    pub imap_poll_secs: u64,
    /// PEM certificates trusted for the IMAP server besides the system's (a private CA).
    pub imap_ca_file: Option<PathBuf>,
    /// Where handled messages go; created when missing.
    pub imap_done_folder: String,
    /// A larger message is refused before it is parsed.
    pub max_message_bytes: u64,
    /// Answers the desk sends one address in an hour (saying what a message lacked);
    /// its messages beyond are still taken, only not answered.
    pub per_sender_per_hour: u32,
    /// Answers the desk sends in an hour to everyone: a ceiling on what forged senders
    /// can make it mail to the addresses they name.
    pub answers_per_hour: u32,
}

impl Default for Mail {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: "resetdesk <support@localhost>".to_owned(),
            imap_url: None,
            imap_poll_secs: 60,
            imap_ca_file: None,
            imap_done_folder: "resetdesk-done".to_owned(),
            max_message_bytes: 25 * 1024 * 1024,
            per_sender_per_hour: 10,
            answers_per_hour: 200,
        }
    }
}

impl Section for Mail {
    fn set(&mut self, name: &str, value: &str) -> Result<(), Refusal> {
        match name {
            // Empty turns a URL set earlier (in the file) off again.
            "smtp_url" if value.is_empty() => self.smtp_url = None,
            "smtp_url" => {
                self.smtp_url = Some(secret(
                    value,
                    |url| url.starts_with("smtp://") || url.starts_with("smtps://"),
                    "expected smtp://... or smtps://...",
                )?)
            }
            "mail_from" => {
                value.parse::<lettre::message::Mailbox>().map_err(|_| {
                    Refusal::Invalid(
                        "expected an address such as \"Support <support@example.com>\"",
                    )
                })?;
                self.from = value.to_owned();
            }
            "imap_url" if value.is_empty() => self.imap_url = None,
            "imap_url" => {
                self.imap_url = Some(secret(
                    value,
                    |url| url.starts_with("imap://") || url.starts_with("imaps://"),
                    "expected imaps://user:pass@host:993/INBOX or imap://user:pass@host:143/INBOX?tls=required",
                )?)
            }
            "imap_poll_secs" => {
                self.imap_poll_secs = number(
                    value,
                    |n| (1..=3600).contains(n),
                    "expected seconds, 1 to 3600",
                )?
            }
            "imap_ca_file" if value.is_empty() => self.imap_ca_file = None,
            "imap_ca_file" => self.imap_ca_file = Some(PathBuf::from(value)),
            "imap_done_folder" => {
                if value.is_empty()
                    || value.len() > 100
                    || !value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
                {
                    return Err(Refusal::Invalid(
                        "expected a folder name of letters, digits, '-', '_', '.' and '/'",
                    ));
                }
                self.imap_done_folder = value.to_owned();
            }
            "mail_max_message_bytes" => {
                self.max_message_bytes = number(
                    value,
                    |n| (64 * 1024..=200 * 1024 * 1024).contains(n),
                    "expected bytes, 65536 to 209715200",
                )?
            }
            "mail_per_sender_per_hour" => {
                self.per_sender_per_hour = number(
                    value,
                    |n| (1..=10_000).contains(n),
                    "expected a whole number from 1 to 10000",
                )?
            }
            "mail_answers_per_hour" => {
                self.answers_per_hour = number(
                    value,
                    |n| (1..=100_000).contains(n),
                    "expected a whole number from 1 to 100000",
                )?
            }
            _ => return Err(Refusal::NotMine),
        }
        Ok(())
    }
}

/// The outbox worker that delivers mail.
#[derive(Debug, Clone)]
pub struct Outbox {
    /// Delivery attempts before a mail is marked dead.
    pub max_attempts: u32,
    /// How often the worker looks for due mail.
    pub poll_ms: u64,
    /// How long a worker reserves the messages it took; the SMTP timeout of each is a
    /// quarter of the rest, so a batch always finishes inside its lease.
    pub lease_secs: u64,
    /// The first retry of a failed delivery, doubling up to an hour.
    pub retry_secs: u64,
    /// SMTP connections the outbox worker sends on at once.
    pub connections: usize,
}

impl Default for Outbox {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            poll_ms: 1000,
            lease_secs: 120,
            retry_secs: 30,
            connections: 32,
        }
    }
}

impl Section for Outbox {
    fn set(&mut self, name: &str, value: &str) -> Result<(), Refusal> {
        match name {
            "outbox_max_attempts" => {
                self.max_attempts =
                    number(value, |n| *n >= 1, "expected a whole number of at least 1")?
            }
            "outbox_poll_ms" => {
                self.poll_ms = number(value, |n| *n >= 10, "expected milliseconds, at least 10")?
            }
            "outbox_lease_secs" => {
                self.lease_secs = number(value, |n| *n >= 8, "expected seconds, at least 8")?
            }
            "outbox_connections" => {
                self.connections = number(
                    value,
                    |n| (1..=256).contains(n),
                    "expected a whole number from 1 to 256",
                )?
            }
            "outbox_retry_secs" => {
                self.retry_secs = number(
                    value,
                    |n| (1..=3600).contains(n),
                    "expected seconds, 1 to 3600",
                )?
            }
            _ => return Err(Refusal::NotMine),
        }
        Ok(())
    }
}

/// The evidence worker that reads label photos after intake.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// How long a worker reserves the photo it reads; after a crash the photo waits this
    /// long before another worker reads it. Several times the longest a picture may take
    /// (`intake::picture_work::PICTURE_WORK_TIMEOUT`), so a live worker keeps its job.
    pub lease_secs: u64,
    /// The `resetdesk` program that reads each photo in a process of its own (`resetdesk
    /// evidence read`); `None`: the program that is running. Set where the desk's
    /// library runs inside another program (the tests).
    pub reader: Option<PathBuf>,
    /// How long reading one photo may take before its process is killed and the photo
    /// left to an agent; also its CPU time limit.
    pub read_timeout_secs: u64,
}

impl Default for Evidence {
    fn default() -> Self {
        Self {
            lease_secs: crate::evidence::worker::LEASE_SECS as u64,
            reader: None,
            read_timeout_secs: crate::evidence::worker::READ_TIMEOUT_SECS,
        }
    }
}

impl Section for Evidence {
    fn set(&mut self, name: &str, value: &str) -> Result<(), Refusal> {
        match name {
            "evidence_lease_secs" => {
                self.lease_secs = number(value, |n| *n >= 2, "expected seconds, at least 2")?
            }
            "evidence_reader" => {
                self.reader = (!value.is_empty()).then(|| PathBuf::from(value));
            }
            "evidence_read_timeout_secs" => {
                // Within the picture work's own bound, which the worker waits no longer than.
                self.read_timeout_secs =
                    number(value, |n| (1..=20).contains(n), "expected seconds, 1 to 20")?
            }
            _ => return Err(Refusal::NotMine),
        }
        Ok(())
    }
}

/// How request bodies are read: memory, turns, and the pace a client must keep.
#[derive(Debug, Clone)]
pub struct Uploads {
    /// Memory, in MiB, that picture decoding (photo checks, QR reading) may take at once.
    pub picture_memory_mb: u64,
    /// Memory, in MiB, that uploads in flight may take at once; beyond it they are
    /// spooled to `<data_dir>/spool`.
    pub memory_mb: u64,
    /// Uploads whose bodies are read at once; the others wait until one finishes, most
    /// of their bytes in the kernel's socket buffers (actix reads about 0.4 MB ahead).
    pub at_once: usize,
    /// Uploads one client address may have in flight (waiting or being read); more get
    /// 429 at once, so one client cannot hold every turn.
    pub per_address: usize,
    /// How long a client may take to send a whole submission.
    pub timeout_secs: u64,
    /// The slowest a body being read may arrive on average, once past the grace period;
    /// slower, it gets 408 and gives its turn to a client that sends. 0: no minimum.
    pub min_bytes_per_sec: u64,
    /// How long a body may arrive slower than `min_bytes_per_sec` at first (a phone's
    /// radio waking, a TCP connection's slow start).
    pub min_rate_grace_secs: u64,
}

impl Default for Uploads {
    fn default() -> Self {
        Self {
            // Peak memory under 200 simultaneous 10 MB uploads is what these three set
            // (docs/BENCHMARKS.md, "Memory"): 133 MB with these, 179 MB with 64/32/32,
            // and the same uploads/s, because decoding the photos bounds it.
            picture_memory_mb: 32,
            memory_mb: 8,
            at_once: 8,
            per_address: 4,
            timeout_secs: 120,
            // 8 KB/s is a 64 kbit/s uplink: a 3 MB phone photo within the 120 s above
            // needs three times that, and a trickle of a byte every few seconds (which
            // held every turn for two minutes) is cut after the first 10 s.
            min_bytes_per_sec: 8192,
            min_rate_grace_secs: 10,
        }
    }
}

impl Section for Uploads {
    fn set(&mut self, name: &str, value: &str) -> Result<(), Refusal> {
        let uploads = |n: &usize| (1..=10_000).contains(n);
        let too_many = "expected a number of uploads between 1 and 10000";
        match name {
            "picture_memory_mb" => {
                self.picture_memory_mb = number(
                    value,
                    |n| (16..=65_536).contains(n),
                    "expected a number of MiB between 16 and 65536",
                )?
            }
            "upload_memory_mb" => {
                self.memory_mb = number(
                    value,
                    |n| (1..=65_536).contains(n),
                    "expected a number of MiB between 1 and 65536",
                )?
            }
            "uploads_at_once" => self.at_once = number(value, uploads, too_many)?,
            "uploads_per_address" => self.per_address = number(value, uploads, too_many)?,
            "upload_timeout_secs" => {
                self.timeout_secs = number(value, |n| *n >= 1, "expected seconds, at least 1")?
            }
            "upload_min_bytes_per_sec" => {
                self.min_bytes_per_sec =
                    number(value, |_| true, "expected bytes per second (0: no minimum)")?
            }
            "upload_min_rate_grace_secs" => {
                self.min_rate_grace_secs = number(
                    value,
                    |n| (1..=3600).contains(n),
                    "expected seconds, 1 to 3600",
                )?
            }
            _ => return Err(Refusal::NotMine),
        }
        Ok(())
    }
}

impl Section for IntakeLimits {
    fn set(&mut self, name: &str, value: &str) -> Result<(), Refusal> {
        let whole_or_off = "expected a whole number (0: no limit)";
        match name {
            "max_label_photo_bytes" => {
                self.max_label_photo_bytes = number(value, |_| true, "expected a number of bytes")?
            }
            "max_export_bytes" => {
                self.max_export_bytes = number(value, |_| true, "expected a number of bytes")?
            }
            "max_label_pixels" => {
                self.max_label_pixels = number(value, |_| true, "expected a number of pixels")?
            }
            "max_clock_skew_secs" => {
                self.max_clock_skew_secs = number(value, |n| *n >= 0, "expected seconds")?
            }
            "accept_v1_exports" => self.accept_v1_exports = yes_no(value)?,
            "intake_per_ip_per_hour" => {
                self.per_ip_per_hour = number(value, |_| true, whole_or_off)?
            }
            "intake_per_serial_per_hour" => {
                self.per_serial_per_hour = number(value, |_| true, whole_or_off)?
            }
            _ => return Err(Refusal::NotMine),
        }
        Ok(())
    }
}

/// E-mail domains whose tickets always need a second person's approval.
#[derive(Debug, Clone, Default)]
pub struct FourEyes {
    /// Customer e-mail domains whose tickets always need four eyes.
    pub watch_domains: Vec<String>,
    /// The vendor's own e-mail domains: a request from one of them (or a subdomain)
    /// comes from staff, so it always needs four eyes.
    pub staff_domains: Vec<String>,
}

impl Section for FourEyes {
    fn set(&mut self, name: &str, value: &str) -> Result<(), Refusal> {
        match name {
            "watch_domains" => self.watch_domains = domains(value)?,
            "staff_domains" => self.staff_domains = domains(value)?,
            _ => return Err(Refusal::NotMine),
        }
        Ok(())
    }
}

/// The fast tracks: when the desk answers a request with no agent (issue 20). Each
/// condition's default is the safe one; a track switched off here stays off whatever
/// supervisors switch in the console (their switch can only turn off what is on here).
#[derive(Debug, Clone)]
pub struct FastTracks {
    /// Answer requests whose devices' reserved e-mail is the submitter's address.
    pub reserved_email: bool,
    /// Answer registered installers' requests for their own devices.
    pub installer: bool,
    /// The oldest export (from its challenge's issue time) a fast track answers.
    pub max_export_age_minutes: u32,
    /// Automatic answers to one reserved address (its mailbox) in 24 hours.
    pub per_address_per_day: u32,
    /// How long a device an installer registered themselves waits before it counts.
    pub installer_registration_hold_hours: u32,
    /// Automatic answers to one installer in 24 hours.
    pub installer_daily_quota: u32,
}

impl Default for FastTracks {
    fn default() -> Self {
        Self {
            reserved_email: true,
            installer: true,
            max_export_age_minutes: 60,
            per_address_per_day: 3,
            installer_registration_hold_hours: 24,
            installer_daily_quota: 20,
        }
    }
}

impl FastTracks {
    /// Whether the settings offer `track` (supervisors' switches can only turn it off).
    pub fn allows(&self, track: crate::domain::FastTrack) -> bool {
        match track {
            crate::domain::FastTrack::ReservedEmail => self.reserved_email,
            crate::domain::FastTrack::Installer => self.installer,
        }
    }
}

impl Section for FastTracks {
    fn set(&mut self, name: &str, value: &str) -> Result<(), Refusal> {
        match name {
            "fast_track_reserved_email" => self.reserved_email = yes_no(value)?,
            "fast_track_installer" => self.installer = yes_no(value)?,
            "fast_track_max_export_age_minutes" => {
                self.max_export_age_minutes = number(
                    value,
                    |n| (1..=2880).contains(n),
                    "expected a whole number of minutes from 1 to 2880 (an export lives 48 hours)",
                )?
            }
            "fast_track_per_address_per_day" => {
                self.per_address_per_day = number(
                    value,
                    |n| *n <= 1000,
                    "expected a whole number from 0 to 1000 (0 answers nobody automatically)",
                )?
            }
            "installer_registration_hold_hours" => {
                self.installer_registration_hold_hours = number(
                    value,
                    |n| *n <= 8760,
                    "expected a whole number of hours from 0 to 8760",
                )?
            }
            "installer_daily_quota" => {
                self.installer_daily_quota = number(
                    value,
                    |n| *n <= 100_000,
                    "expected a whole number from 0 to 100000 (0 answers no installer automatically)",
                )?
            }
            _ => return Err(Refusal::NotMine),
        }
        Ok(())
    }
}

/// Signing in to the console, and the metrics endpoint.
#[derive(Debug, Clone)]
pub struct Security {
    /// Whether every console user needs a second factor; unset means yes, except with
    /// `serve --dev` (see [`Settings::requires_2fa`]).
    pub require_2fa: Option<bool>,
    /// Failed sign-ins per account, and per client address, in 15 minutes before
    /// sign-in is refused for a while.
    pub login_failures_per_account: u32,
    pub login_failures_per_address: u32,
    /// A bearer token that opens /metrics to a scraper elsewhere; without one, /metrics
    /// answers only requests from this machine.
    pub metrics_token: Option<Secret>,
}

impl Default for Security {
    fn default() -> Self {
        Self {
            require_2fa: None,
            login_failures_per_account: 5,
            login_failures_per_address: 20,
            metrics_token: None,
        }
    }
}

/// How long a decided ticket keeps personal data (issue 23, docs/PRIVACY.md).
#[derive(Debug, Clone)]
pub struct Retention {
    /// Days after the decision the label photo, its previews, earlier photos and the
    /// export (with its QR picture) are kept (`photo_retention_days`).
    pub photo_days: u32,
    /// Days after the decision the customer's name, phone and company are kept
    /// (`customer_retention_days`).
    pub customer_days: u32,
    /// How often each replica offers to run it (one at a time holds the lease); 0 turns
    /// it off in `serve` (`resetdesk retention run` still runs it).
    pub interval_secs: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            photo_days: 30,
            customer_days: 365,
            interval_secs: 3600,
        }
    }
}

impl Section for Retention {
    fn set(&mut self, name: &str, value: &str) -> Result<(), Refusal> {
        let days = "expected a whole number of days from 1 to 36500";
        match name {
            // Never sooner than an export dies: a rejected ticket may be reopened within
            // its 48 hours, and must still have its evidence then.
            "photo_retention_days" => {
                self.photo_days = number(
                    value,
                    |n| (3..=36_500).contains(n),
                    "expected a whole number of days from 3 (longer than an export lives) to 36500",
                )?
            }
            "customer_retention_days" => {
                self.customer_days = number(value, |n| (1..=36_500).contains(n), days)?
            }
            "retention_interval_secs" => {
                self.interval_secs = number(
                    value,
                    |n| *n == 0 || *n >= 60,
                    "expected seconds, at least 60 (0 turns it off in serve)",
                )?
            }
            _ => return Err(Refusal::NotMine),
        }
        Ok(())
    }
}

/// Where the keys that answer devices are (docs/SIGNER.md), and the separate signer's
/// own limits.
#[derive(Debug, Clone)]
pub struct SignerSettings {
    /// `unix:PATH`: the keys are in `resetdesk signer`, listening there, and `serve`
    /// holds no master secret or signing key. None: in this process.
    pub url: Option<String>,
    /// The signer's limit of devices answered in any hour.
    pub max_answers_per_hour: u32,
    /// The signer's limit of answers for one device serial in any day.
    pub max_answers_per_serial_per_day: u32,
    /// The signer's signing key in a PKCS#11 token: `pkcs11:token=LABEL;object=LABEL`.
    /// None: a key file of its keys directory.
    pub signing_key: Option<String>,
    /// The PKCS#11 module (`/usr/lib/softhsm/libsofthsm2.so` for SoftHSM2).
    pub pkcs11_module: Option<PathBuf>,
    /// The token's user PIN; set it in the environment (`RESETDESK_PKCS11_PIN`).
    pub pkcs11_pin: Option<Secret>,
    /// With an `https://` `signer_url`: the CA of the signer's certificate, and the
    /// desk's own certificate and key (PEM).
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl Default for SignerSettings {
    fn default() -> Self {
        Self {
            url: None,
            max_answers_per_hour: 500,
            max_answers_per_serial_per_day: 10,
            signing_key: None,
            pkcs11_module: None,
            pkcs11_pin: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
        }
    }
}

impl Section for SignerSettings {
    fn set(&mut self, name: &str, value: &str) -> Result<(), Refusal> {
        match name {
            "signer_url" if value.is_empty() => self.url = None,
            "signer_url" => {
                let unix = value.strip_prefix("unix:").is_some_and(|p| !p.is_empty());
                let https = value.starts_with("https://") && value.len() > "https://".len();
                if !unix && !https {
                    return Err(Refusal::Invalid(
                        "expected unix:PATH (the signer's socket) or https://HOST:PORT",
                    ));
                }
                self.url = Some(value.to_owned());
            }
            "signer_ca_file" => self.ca_file = Some(PathBuf::from(value)),
            "signer_client_cert" => self.client_cert = Some(PathBuf::from(value)),
            "signer_client_key" => self.client_key = Some(PathBuf::from(value)),
            "signer_max_answers_per_hour" => {
                self.max_answers_per_hour = number(
                    value,
                    |n| (1..=1_000_000).contains(n),
                    "expected a whole number from 1 to 1000000",
                )?
            }
            "signing_key" if value.is_empty() => self.signing_key = None,
            "signing_key" => {
                crate::crypto::pkcs11::TokenKeyUri::parse(value)
                    // Not repeated: a PKCS#11 URI may carry a pin-value.
                    .map_err(|_| {
                        Refusal::InvalidSecret("expected pkcs11:token=LABEL;object=LABEL")
                    })?;
                self.signing_key = Some(value.to_owned());
            }
            "pkcs11_module" if value.is_empty() => self.pkcs11_module = None,
            "pkcs11_module" => self.pkcs11_module = Some(PathBuf::from(value)),
            "pkcs11_pin" if value.is_empty() => self.pkcs11_pin = None,
            "pkcs11_pin" => self.pkcs11_pin = Some(Secret::new(value)),
            "signer_max_answers_per_serial_per_day" => {
                self.max_answers_per_serial_per_day = number(
                    value,
                    |n| (1..=10_000).contains(n),
                    "expected a whole number from 1 to 10000",
                )?
            }
            _ => return Err(Refusal::NotMine),
        }
        Ok(())
    }
}

impl Section for Security {
    fn set(&mut self, name: &str, value: &str) -> Result<(), Refusal> {
        let at_least_one = "expected a whole number of at least 1";
        match name {
            "require_2fa" => self.require_2fa = Some(yes_no(value)?),
            "login_failures_per_account" => {
                self.login_failures_per_account = number(value, |n| *n >= 1, at_least_one)?
            }
            "login_failures_per_address" => {
                self.login_failures_per_address = number(value, |n| *n >= 1, at_least_one)?
            }
            "metrics_token" => {
                self.metrics_token = Some(secret(
                    value,
                    |token| token.len() >= 16,
                    "expected at least 16 characters",
                )?)
            }
            _ => return Err(Refusal::NotMine),
        }
        Ok(())
    }
}

/// The agents' console.
#[derive(Debug, Clone)]
pub struct Console {
    /// How often an open queue page fetches its list and counts again, in seconds; 0
    /// keeps it as loaded.
    pub queue_refresh_secs: u64,
    /// The hour of the day (UTC) from which the supervisors' daily e-mail of tickets
    /// waiting for a second approval goes out; `None` (`off`) sends none.
    pub second_approval_digest_hour: Option<u8>,
    /// How customers reach support, shown in every customer page's footer: free text
    /// whose `https:` and `mailto:` addresses become links; `None` shows no footer.
    pub support_contact: Option<String>,
}

impl Default for Console {
    fn default() -> Self {
        Self {
            queue_refresh_secs: 30,
            second_approval_digest_hour: Some(8),
            support_contact: None,
        }
    }
}

impl Section for Console {
    fn set(&mut self, name: &str, value: &str) -> Result<(), Refusal> {
        match name {
            "queue_refresh_secs" => {
                self.queue_refresh_secs = number(
                    value,
                    |n| *n == 0 || (1..=3600).contains(n),
                    "expected a whole number of seconds from 1 to 3600, or 0 for never",
                )?
            }
            "support_contact" => {
                let text = value.trim();
                if text.chars().any(char::is_control) || text.chars().count() > 500 {
                    return Err(Refusal::Invalid(
                        "expected one line of at most 500 characters",
                    ));
                }
                self.support_contact = (!text.is_empty()).then(|| text.to_owned());
            }
            "second_approval_digest_hour" => {
                self.second_approval_digest_hour = if value.trim() == "off" {
                    None
                } else {
                    Some(number(
                        value,
                        |hour| *hour <= 23,
                        "expected an hour of the day from 0 to 23 (UTC), or off",
                    )?)
                }
            }
            _ => return Err(Refusal::NotMine),
        }
        Ok(())
    }
}

impl Settings {
    /// Loads defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        Self::load_from(file, &env)
    }

    pub fn load_from(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut settings = Self::default();
        if let Some(path) = file {
            let file_error = |reason: String| ConfigError::File {
                path: path.to_owned(),
                reason,
            };
            let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
            let table: toml::Table = text
                .parse()
                .map_err(|e: toml::de::Error| file_error(e.to_string()))?;
            for (key, value) in table {
                let value = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(file_error(format!(
                            "{key} has an unsupported value {other}"
                        )));
                    }
                };
                settings.set(&key, &value)?;
            }
        }
        // Other programs' variables share the prefix (RESETDESK_LOG, the tests' own):
        // a variable that names no setting is not this loader's to refuse.
        for (variable, value) in env {
            let Some(name) = variable.strip_prefix("RESETDESK_") else {
                continue;
            };
            if name.bytes().any(|b| b.is_ascii_lowercase()) {
                continue;
            }
            match settings.set(&name.to_ascii_lowercase(), value) {
                Err(ConfigError::Unknown(_)) => {}
                other => other?,
            }
        }
        if settings.http.public_url.is_empty() {
            settings.http.public_url = format!("http://{}", settings.http.listen);
        }
        Ok(settings)
    }

    /// Sets the setting `name` from its text, in whichever section names it.
    fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let sections: [&mut dyn Section; 13] = [
            &mut self.http,
            &mut self.storage,
            &mut self.mail,
            &mut self.outbox,
            &mut self.evidence,
            &mut self.uploads,
            &mut self.intake,
            &mut self.four_eyes,
            &mut self.fast_tracks,
            &mut self.security,
            &mut self.console,
            &mut self.signer,
            &mut self.retention,
        ];
        for section in sections {
            let (shown, reason) = match section.set(name, value) {
                Ok(()) => return Ok(()),
                Err(Refusal::NotMine) => continue,
                Err(Refusal::Invalid(reason)) => (value, reason),
                Err(Refusal::InvalidSecret(reason)) => ("<redacted>", reason),
            };
            return Err(ConfigError::Invalid {
                name: name.to_owned(),
                value: shown.to_owned(),
                reason: reason.to_owned(),
            });
        }
        Err(ConfigError::Unknown(name.to_owned()))
    }

    /// Whether console users must use a second factor.
    pub fn requires_2fa(&self) -> bool {
        self.security.require_2fa.unwrap_or(!self.dev)
    }
}

#[cfg(test)]
mod tests;
