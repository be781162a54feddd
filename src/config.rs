//! Settings: defaults, then a TOML file (`--config`), then `RESETDESK_*` environment
//! variables (the environment wins). Validated once at start; the SMTP URL, which may
//! hold a password, is redacted from `Debug`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use crate::domain::Secret;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("unknown setting {0:?} (see the configuration table in the README)")]
    Unknown(String),
    #[error("setting {name} = {value:?} is not valid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Address and port the HTTP server binds (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The URL customers reach the desk at, used in every link sent out.
    pub public_url: String,
    /// `sqlite://PATH` or `postgres://...`; default: `sqlite://<data_dir>/resetdesk.db`.
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    pub keys_dir: PathBuf,
    /// `smtp://user:pass@host:port` (add `?tls=required` for STARTTLS) or `smtps://...`;
    /// none means e-mails are written as .eml files to `<data_dir>/outbox`.
    pub smtp_url: Option<Secret>,
    pub mail_from: String,
    pub max_label_photo_bytes: u64,
    pub max_export_bytes: u64,
    pub max_label_pixels: u64,
    /// Memory, in MiB, that picture decoding (photo checks, QR reading) may take at once.
    pub picture_memory_mb: u64,
    /// Memory, in MiB, that uploads in flight may take at once; beyond it they are
    /// spooled to `<data_dir>/spool`.
    pub upload_memory_mb: u64,
    /// Uploads whose bodies are read at once; the others wait until one finishes, most
    /// of their bytes in the kernel's socket buffers (actix reads about 0.4 MB ahead).
    pub uploads_at_once: usize,
    /// Uploads one client address may have in flight (waiting or being read); more get
    /// 429 at once, so one client cannot hold every turn.
    pub uploads_per_address: usize,
    pub outbox_max_attempts: u32,
    /// Blobs no ticket names are removed once older than this (uploads are stored
    /// before their ticket commits, so never sooner than an intake can take).
    pub blob_sweep_grace_secs: i64,
    /// How often each replica offers to sweep orphaned blobs (one at a time holds the
    /// lease); 0 turns the sweeper off.
    pub blob_sweep_interval_secs: u64,
    pub outbox_poll_ms: u64,
    /// How long a worker reserves the messages it took; the SMTP timeout of each is a
    /// quarter of the rest, so a batch always finishes inside its lease.
    pub outbox_lease_secs: u64,
    /// The first retry of a failed delivery, doubling up to an hour.
    pub outbox_retry_secs: u64,
    /// SMTP connections the outbox worker sends on at once.
    pub outbox_connections: usize,
    pub max_clock_skew_secs: i64,
    /// Customer e-mail domains whose tickets always need four eyes.
    pub watch_domains: Vec<String>,
    /// Whether exports in protocol version 1 (entries not bound to their export) are
    /// taken at all; a version 1 export of several devices always needs four eyes.
    pub accept_v1_exports: bool,
    /// The vendor's own e-mail domains: a request from one of them (or a subdomain)
    /// comes from staff, so it always needs four eyes.
    pub staff_domains: Vec<String>,
    /// Whether every console user needs a second factor; unset means yes, except with
    /// `serve --dev`.
    pub require_2fa: Option<bool>,
    /// Set by `serve --dev`: relaxes defaults meant for production.
    pub dev: bool,
    /// Intake requests (form and API) one client address may make per hour; 0: no limit.
    pub intake_per_ip_per_hour: u32,
    /// Intake requests naming one device serial per hour; 0: no limit.
    pub intake_per_serial_per_hour: u32,
    /// Failed sign-ins per account, and per client address, in 15 minutes before
    /// sign-in is refused for a while.
    pub login_failures_per_account: u32,
    pub login_failures_per_address: u32,
    /// A bearer token that opens /metrics to a scraper elsewhere; without one, /metrics
    /// answers only requests from this machine.
    pub metrics_token: Option<Secret>,
    /// Load balancers whose `X-Forwarded-For` names the real client, for rate limits.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Where uploads go: unset for `<data_dir>/blobs`, or `s3://BUCKET` for an
    /// S3-compatible store shared by several replicas.
    pub blob_url: Option<String>,
    /// The S3 endpoint for stores other than AWS (MinIO, Ceph, ...); `http://` allowed.
    pub s3_endpoint: Option<String>,
    pub s3_region: String,
    /// Credentials; when unset, the usual AWS_* variables and instance roles apply.
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<Secret>,
    /// How long a client may take to send a whole submission.
    pub upload_timeout_secs: u64,
    /// The slowest a body being read may arrive on average, once past the grace period;
    /// slower, it gets 408 and gives its turn to a client that sends. 0: no minimum.
    pub upload_min_bytes_per_sec: u64,
    /// How long a body may arrive slower than `upload_min_bytes_per_sec` at first (a
    /// phone's radio waking, a TCP connection's slow start).
    pub upload_min_rate_grace_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: String::new(),
            database_url: None,
            data_dir: PathBuf::from("./data"),
            keys_dir: PathBuf::from("./keys"),
            smtp_url: None,
            mail_from: "resetdesk <support@localhost>".to_owned(),
            max_label_photo_bytes: 15 * 1024 * 1024,
            max_export_bytes: 15 * 1024 * 1024,
            max_label_pixels: crate::intake::photo::DEFAULT_MAX_LABEL_PIXELS,
            // Peak memory under 200 simultaneous 10 MB uploads is what these three set
            // (docs/BENCHMARKS.md, "Memory"): 133 MB with these, 179 MB with 64/32/32,
            // and the same uploads/s, because decoding the photos bounds it.
            picture_memory_mb: 32,
            upload_memory_mb: 8,
            uploads_at_once: 8,
            uploads_per_address: 4,
            outbox_max_attempts: 8,
            blob_sweep_grace_secs: 3600,
            blob_sweep_interval_secs: 900,
            outbox_poll_ms: 1000,
            outbox_lease_secs: 120,
            outbox_retry_secs: 30,
            outbox_connections: 32,
            max_clock_skew_secs: crate::protocol::DEFAULT_MAX_CLOCK_SKEW_SECS,
            watch_domains: Vec::new(),
            accept_v1_exports: true,
            staff_domains: Vec::new(),
            require_2fa: None,
            dev: false,
            intake_per_ip_per_hour: 30,
            intake_per_serial_per_hour: 6,
            login_failures_per_account: 5,
            login_failures_per_address: 20,
            metrics_token: None,
            trusted_proxies: Vec::new(),
            blob_url: None,
            s3_endpoint: None,
            s3_region: "us-east-1".to_owned(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            upload_timeout_secs: 120,
            // 8 KB/s is a 64 kbit/s uplink: a 3 MB phone photo within the 120 s above
            // needs three times that, and a trickle of a byte every few seconds (which
            // held every turn for two minutes) is cut after the first 10 s.
            upload_min_bytes_per_sec: 8192,
            upload_min_rate_grace_secs: 10,
        }
    }
}

/// Every setting's name, as written in the TOML file; the environment variable is
/// `RESETDESK_` + the name in upper case.
pub const SETTING_NAMES: &[&str] = &[
    "listen",
    "public_url",
    "database_url",
    "data_dir",
    "keys_dir",
    "smtp_url",
    "mail_from",
    "max_label_photo_bytes",
    "max_export_bytes",
    "max_label_pixels",
    "picture_memory_mb",
    "upload_memory_mb",
    "uploads_at_once",
    "uploads_per_address",
    "outbox_max_attempts",
    "blob_sweep_grace_secs",
    "blob_sweep_interval_secs",
    "outbox_poll_ms",
    "outbox_lease_secs",
    "outbox_retry_secs",
    "outbox_connections",
    "max_clock_skew_secs",
    "watch_domains",
    "accept_v1_exports",
    "staff_domains",
    "require_2fa",
    "intake_per_ip_per_hour",
    "intake_per_serial_per_hour",
    "login_failures_per_account",
    "login_failures_per_address",
    "metrics_token",
    "trusted_proxies",
    "blob_url",
    "s3_endpoint",
    "s3_region",
    "s3_access_key_id",
    "s3_secret_access_key",
    "upload_timeout_secs",
    "upload_min_bytes_per_sec",
    "upload_min_rate_grace_secs",
];

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
        for name in SETTING_NAMES {
            if let Some(value) = env.get(&format!("RESETDESK_{}", name.to_ascii_uppercase())) {
                settings.set(name, value)?;
            }
        }
        if settings.public_url.is_empty() {
            settings.public_url = format!("http://{}", settings.listen);
        }
        Ok(settings)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let name = SETTING_NAMES
            .iter()
            .copied()
            .find(|n| *n == key)
            .ok_or_else(|| ConfigError::Unknown(key.to_owned()))?;
        let invalid = |reason: &str| ConfigError::Invalid {
            name,
            value: if matches!(name, "smtp_url" | "metrics_token" | "s3_secret_access_key") {
                "<redacted>".to_owned()
            } else {
                value.to_owned()
            },
            reason: reason.to_owned(),
        };
        fn number<T: std::str::FromStr>(value: &str) -> Option<T> {
            value.trim().replace('_', "").parse().ok()
        }
        fn yes_no(value: &str) -> Option<bool> {
            match value.trim() {
                "true" | "1" | "yes" => Some(true),
                "false" | "0" | "no" => Some(false),
                _ => None,
            }
        }
        let domains_invalid = || {
            invalid("expected domains separated by commas, such as example.com, mail.example.net")
        };
        match name {
            "listen" => {
                self.listen = value
                    .parse()
                    .map_err(|_| invalid("expected IP:PORT such as 127.0.0.1:8080"))?
            }
            "public_url" => {
                let url = value.trim_end_matches('/');
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(invalid("expected an http:// or https:// URL"));
                }
                self.public_url = url.to_owned();
            }
            "database_url" => {
                if !(value.starts_with("sqlite:")
                    || value.starts_with("postgres://")
                    || value.starts_with("postgresql://"))
                {
                    return Err(invalid("expected sqlite://PATH or postgres://..."));
                }
                self.database_url = Some(value.to_owned());
            }
            "data_dir" => self.data_dir = PathBuf::from(value),
            "keys_dir" => self.keys_dir = PathBuf::from(value),
            "smtp_url" => {
                if value.is_empty() {
                    self.smtp_url = None;
                } else if value.starts_with("smtp://") || value.starts_with("smtps://") {
                    self.smtp_url = Some(Secret::new(value));
                } else {
                    return Err(invalid("expected smtp://... or smtps://..."));
                }
            }
            "mail_from" => {
                value.parse::<lettre::message::Mailbox>().map_err(|_| {
                    invalid("expected an address such as \"Support <support@example.com>\"")
                })?;
                self.mail_from = value.to_owned();
            }
            "max_label_photo_bytes" => {
                self.max_label_photo_bytes =
                    number(value).ok_or_else(|| invalid("expected a number of bytes"))?
            }
            "max_export_bytes" => {
                self.max_export_bytes =
                    number(value).ok_or_else(|| invalid("expected a number of bytes"))?
            }
            "max_label_pixels" => {
                self.max_label_pixels =
                    number(value).ok_or_else(|| invalid("expected a number of pixels"))?
            }
            "picture_memory_mb" => {
                self.picture_memory_mb = number(value)
                    .filter(|n| (16..=65_536).contains(n))
                    .ok_or_else(|| invalid("expected a number of MiB between 16 and 65536"))?
            }
            "upload_memory_mb" => {
                self.upload_memory_mb = number(value)
                    .filter(|n| (1..=65_536).contains(n))
                    .ok_or_else(|| invalid("expected a number of MiB between 1 and 65536"))?
            }
            "uploads_at_once" => {
                self.uploads_at_once = number(value)
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or_else(|| invalid("expected a number of uploads between 1 and 10000"))?
            }
            "uploads_per_address" => {
                self.uploads_per_address = number(value)
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or_else(|| invalid("expected a number of uploads between 1 and 10000"))?
            }
            "blob_sweep_grace_secs" => {
                self.blob_sweep_grace_secs = number(value)
                    .filter(|n| *n >= 60)
                    .ok_or_else(|| invalid("expected seconds, at least 60"))?
            }
            "blob_sweep_interval_secs" => {
                self.blob_sweep_interval_secs = number(value)
                    .ok_or_else(|| invalid("expected seconds (0 turns the sweeper off)"))?
            }
            "outbox_max_attempts" => {
                self.outbox_max_attempts = number(value)
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| invalid("expected a whole number of at least 1"))?;
            }
            "outbox_poll_ms" => {
                self.outbox_poll_ms = number(value)
                    .filter(|n| *n >= 10)
                    .ok_or_else(|| invalid("expected milliseconds, at least 10"))?
            }
            "outbox_lease_secs" => {
                self.outbox_lease_secs = number(value)
                    .filter(|n| *n >= 8)
                    .ok_or_else(|| invalid("expected seconds, at least 8"))?
            }
            "outbox_connections" => {
                self.outbox_connections = number(value)
                    .filter(|n| (1..=256).contains(n))
                    .ok_or_else(|| invalid("expected a whole number from 1 to 256"))?
            }
            "outbox_retry_secs" => {
                self.outbox_retry_secs = number(value)
                    .filter(|n| (1..=3600).contains(n))
                    .ok_or_else(|| invalid("expected seconds, 1 to 3600"))?
            }
            "max_clock_skew_secs" => {
                self.max_clock_skew_secs = number(value)
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| invalid("expected seconds"))?
            }
            "watch_domains" => self.watch_domains = domains(value).ok_or_else(domains_invalid)?,
            "staff_domains" => self.staff_domains = domains(value).ok_or_else(domains_invalid)?,
            "intake_per_ip_per_hour" => {
                self.intake_per_ip_per_hour =
                    number(value).ok_or_else(|| invalid("expected a whole number (0: no limit)"))?
            }
            "intake_per_serial_per_hour" => {
                self.intake_per_serial_per_hour =
                    number(value).ok_or_else(|| invalid("expected a whole number (0: no limit)"))?
            }
            "login_failures_per_account" => {
                self.login_failures_per_account = number(value)
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| invalid("expected a whole number of at least 1"))?
            }
            "login_failures_per_address" => {
                self.login_failures_per_address = number(value)
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| invalid("expected a whole number of at least 1"))?
            }
            "blob_url" => {
                if !value.starts_with("s3://") {
                    return Err(invalid(
                        "expected s3://BUCKET (leave it unset for the data directory)",
                    ));
                }
                self.blob_url = Some(value.to_owned());
            }
            "s3_endpoint" => {
                if !(value.starts_with("http://") || value.starts_with("https://")) {
                    return Err(invalid("expected an http:// or https:// URL"));
                }
                self.s3_endpoint = Some(value.trim_end_matches('/').to_owned());
            }
            "s3_region" => self.s3_region = value.to_owned(),
            "upload_timeout_secs" => {
                self.upload_timeout_secs = number(value)
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| invalid("expected seconds, at least 1"))?;
            }
            "upload_min_bytes_per_sec" => {
                self.upload_min_bytes_per_sec = number(value)
                    .ok_or_else(|| invalid("expected bytes per second (0: no minimum)"))?;
            }
            "upload_min_rate_grace_secs" => {
                self.upload_min_rate_grace_secs = number(value)
                    .filter(|n| (1..=3600).contains(n))
                    .ok_or_else(|| invalid("expected seconds, 1 to 3600"))?;
            }
            "s3_access_key_id" => self.s3_access_key_id = Some(value.to_owned()),
            "s3_secret_access_key" => self.s3_secret_access_key = Some(Secret::new(value)),
            "trusted_proxies" => {
                self.trusted_proxies = value
                    .split([',', ' '])
                    .filter(|a| !a.is_empty())
                    .map(|a| a.parse())
                    .collect::<Result<_, _>>()
                    .map_err(|_| {
                        invalid(
                            "expected IP addresses separated by commas, such as 10.0.0.2, 10.0.0.3",
                        )
                    })?;
            }
            "metrics_token" => {
                if value.len() < 16 {
                    return Err(invalid("expected at least 16 characters"));
                }
                self.metrics_token = Some(Secret::new(value));
            }
            "require_2fa" => {
                self.require_2fa =
                    Some(yes_no(value).ok_or_else(|| invalid("expected true or false"))?);
            }
            "accept_v1_exports" => {
                self.accept_v1_exports =
                    yes_no(value).ok_or_else(|| invalid("expected true or false"))?;
            }
            _ => return Err(ConfigError::Unknown(key.to_owned())),
        }
        Ok(())
    }

    /// Whether console users must use a second factor.
    pub fn requires_2fa(&self) -> bool {
        self.require_2fa.unwrap_or(!self.dev)
    }

    /// The database URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("resetdesk.db").display()))
    }
}

/// Domains separated by commas or spaces (a leading `@` allowed), lower-cased; `None`
/// when one of them is no domain.
fn domains(value: &str) -> Option<Vec<String>> {
    let domains: Vec<String> = value
        .split([',', ' '])
        .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .collect();
    (!domains.iter().any(|d| !d.contains('.') || d.contains('@'))).then_some(domains)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staff_and_watched_domains_are_lists_of_domains() {
        let settings = Settings::load_from(
            None,
            &env(&[
                (
                    "RESETDESK_STAFF_DOMAINS",
                    "Vendor.example, @support.vendor.example",
                ),
                ("RESETDESK_WATCH_DOMAINS", "suspicious.test"),
            ]),
        )
        .unwrap();
        assert_eq!(
            settings.staff_domains,
            ["vendor.example", "support.vendor.example"]
        );
        assert_eq!(settings.watch_domains, ["suspicious.test"]);
        let err = Settings::load_from(None, &env(&[("RESETDESK_STAFF_DOMAINS", "localhost")]))
            .unwrap_err();
        assert!(err.to_string().contains("staff_domains"), "{err}");
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_then_file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("resetdesk.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:9000\"\nmax_label_photo_bytes = 1_000\nmail_from = \"Desk <desk@example.com>\"\n").unwrap();
        let settings = Settings::load_from(
            Some(&file),
            &env(&[
                ("RESETDESK_LISTEN", "127.0.0.1:9100"),
                ("RESETDESK_DATA_DIR", "/srv/desk"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.listen.port(), 9100);
        assert_eq!(settings.max_label_photo_bytes, 1000);
        assert_eq!(settings.mail_from, "Desk <desk@example.com>");
        assert_eq!(settings.public_url, "http://127.0.0.1:9100");
        assert_eq!(settings.database_url(), "sqlite:///srv/desk/resetdesk.db");
    }

    #[test]
    fn unknown_and_invalid_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let err = Settings::load_from(Some(&file), &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("\"lisen\""), "{err}");
        let err = Settings::load_from(
            None,
            &env(&[("RESETDESK_SMTP_URL", "http://user:hunter2@x")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("smtp_url") && !err.to_string().contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn the_minimum_upload_rate_is_a_setting_that_can_be_turned_off() {
        let defaults = Settings::default();
        assert_eq!(
            (
                defaults.upload_min_bytes_per_sec,
                defaults.upload_min_rate_grace_secs
            ),
            (8192, 10)
        );
        let settings = Settings::load_from(
            None,
            &env(&[
                ("RESETDESK_UPLOAD_MIN_BYTES_PER_SEC", "0"),
                ("RESETDESK_UPLOAD_MIN_RATE_GRACE_SECS", "30"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.upload_min_bytes_per_sec, 0);
        assert_eq!(settings.upload_min_rate_grace_secs, 30);
        let err = Settings::load_from(None, &env(&[("RESETDESK_UPLOAD_MIN_RATE_GRACE_SECS", "0")]))
            .unwrap_err();
        assert!(
            err.to_string().contains("upload_min_rate_grace_secs"),
            "{err}"
        );
    }

    #[test]
    fn smtp_credentials_are_redacted_in_debug() {
        let settings = Settings::load_from(
            None,
            &env(&[("RESETDESK_SMTP_URL", "smtp://u:hunter2@mail:25")]),
        )
        .unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
        assert_eq!(
            settings.smtp_url.unwrap().expose(),
            "smtp://u:hunter2@mail:25"
        );
    }
}
