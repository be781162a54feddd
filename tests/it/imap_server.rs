//! A real IMAP server for the tests: Dovecot (Debian's `dovecot-core` and `dovecot-imapd`;
//! `.ci/run` installs them), started per test in the foreground with a configuration of its
//! own in a temporary directory: one user, one Maildir, plaintext IMAP with STARTTLS on one
//! loopback port and implicit TLS on another, under a certificate from a small CA made for
//! the test with the `openssl` command. Nothing is read from `/etc/dovecot`, and every
//! socket other than the two IMAP ports lives in the temporary directory, so several
//! servers run side by side. Start-up takes 50 to 100 ms, half of it making the
//! certificates; stopping kills every Dovecot process at once.
//!
//! Dovecot refuses to run its login processes as root and to hand a mailbox to uid 0, so
//! when the tests run as root (as in CI) the server's processes and the Maildir belong to
//! `nobody`; otherwise they belong to the user running the tests, who then needs no
//! privileges at all.

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpStream;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The mail user tests sign in as (the password is made per server).
const USER: &str = "resetdesk";

/// Dovecot's whole configuration; `{NAME}` marks what [`ImapServer::start`] fills in.
///
/// - `base_dir`, `state_dir` and `log_path` keep sockets, state and logs in the temporary
///   directory (info and debug lines go to `log_path` too).
/// - `default_internal_user`/`_group` and `default_login_user` name one unprivileged
///   account for all of Dovecot's processes: the login processes may not run as root, and
///   the group named here owns the internal sockets (the default, `dovecot`, could not be
///   given away by an unprivileged server).
/// - `chroot =` for the three services that start here and would otherwise chroot (into
///   `base_dir/login` and `base_dir/empty`), which only root may do.
/// - `disable_plaintext_auth = no`: the tests sign in without TLS on loopback too.
/// - `auth_verbose` logs why a sign-in failed.
/// - `mail_location`: the user's Maildir is the INBOX and its folders are Maildir++
///   `.NAME` subdirectories (the default layout).
/// - The static userdb gives every user the unprivileged account's uid and gid (Dovecot
///   never gives mail to uid 0) and a home in the temporary directory.
/// - Only the IMAP protocol is enabled, so no POP3, submission or LMTP listener is opened;
///   doveadm, stats and the rest listen on UNIX sockets in `base_dir` only.
const DOVECOT_CONF: &str = "\
# One test's Dovecot (tests/it/imap_server.rs); nothing is read from /etc/dovecot.
protocols = imap
listen = 127.0.0.1
base_dir = {DIR}/run
state_dir = {DIR}/state
log_path = {DIR}/dovecot.log
default_internal_user = {OS_USER}
default_internal_group = {OS_GROUP}
default_login_user = {OS_USER}
ssl = yes
ssl_cert = <{DIR}/tls/server.pem
ssl_key = <{DIR}/tls/server.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
mail_location = maildir:{DIR}/mail/%u
passdb {
  driver = passwd-file
  args = scheme=PLAIN {DIR}/passwd
}
userdb {
  driver = static
  args = uid={UID} gid={GID} home={DIR}/home/%u
}
service imap-login {
  chroot =
  inet_listener imap {
    port = {PORT}
  }
  inet_listener imaps {
    port = {IMAPS_PORT}
  }
}
service anvil {
  chroot =
}
service ipc {
  chroot =
}
";

/// The `openssl` configuration for the test CA (`[ca]`) and the server certificate it
/// signs (`[server]`): webpki takes a CA certificate as a trust anchor but refuses one as
/// the server's own, so the server gets a certificate of its own, for `localhost` and
/// `127.0.0.1`.
const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// A running Dovecot with one user and one Maildir; stopped (killed) when dropped.
pub(crate) struct ImapServer {
    child: Child,
    port: u16,
    imaps_port: u16,
    password: String,
    /// The account that owns the Maildir: uid and gid.
    owner: (u32, u32),
    ca_file: PathBuf,
    dir: tempfile::TempDir,
}

/// An account on this machine, as `id` tells it.
struct Account {
    uid: u32,
    user: String,
    gid: u32,
    group: String,
}

impl ImapServer {
    /// Starts Dovecot on free loopback ports; None (printing a note to stderr) when Dovecot is
    /// not installed, unless RESETDESK_TEST_IMAP_REQUIRED=1, in which case it panics saying
    /// what is missing. The binary: RESETDESK_TEST_DOVECOT if set, else /usr/sbin/dovecot.
    pub(crate) fn start() -> Option<Self> {
        let binary = std::env::var_os("RESETDESK_TEST_DOVECOT")
            .map_or_else(|| PathBuf::from("/usr/sbin/dovecot"), PathBuf::from);
        let binary_name = binary.display().to_string();
        for (program, arg, what) in [
            (
                binary_name.as_str(),
                "--version",
                "Dovecot (Debian packages dovecot-core and dovecot-imapd; or set RESETDESK_TEST_DOVECOT)",
            ),
            (
                "openssl",
                "version",
                "the openssl command (Debian package openssl)",
            ),
        ] {
            let runs = Command::new(program)
                .arg(arg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if !runs {
                let missing = format!("{what} is missing: `{program} {arg}` does not run");
                assert!(
                    std::env::var("RESETDESK_TEST_IMAP_REQUIRED").as_deref() != Ok("1"),
                    "RESETDESK_TEST_IMAP_REQUIRED=1, but {missing}"
                );
                eprintln!("IMAP test skipped: {missing}");
                return None;
            }
        }

        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path();
        // Dovecot's unprivileged processes reach the Maildir, the password file and the
        // sockets through this directory.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let me = account(None);
        let owner = if me.uid == 0 {
            account(Some("nobody"))
        } else {
            me
        };
        let password = format!("pw{}", random_hex());

        make_certificates(&root.join("tls"));
        std::fs::write(
            root.join("passwd"),
            format!("{USER}:{{PLAIN}}{password}::::::\n"),
        )
        .unwrap();
        let maildir = root.join("mail").join(USER);
        let home = root.join("home").join(USER);
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        std::fs::create_dir_all(&home).unwrap();
        // Whatever the umask, the unprivileged account can reach its Maildir and home.
        for parent in ["mail", "home"] {
            std::fs::set_permissions(root.join(parent), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        for path in [
            root.join("passwd"),
            maildir.join("cur"),
            maildir.join("new"),
            maildir.join("tmp"),
            maildir.clone(),
            home,
        ] {
            chown(&path, Some(owner.uid), Some(owner.gid)).unwrap();
        }

        // Two tries more if another test took a port between free_port() and Dovecot's bind.
        for attempt in 1..=3 {
            let port = crate::support::free_port();
            let imaps_port = loop {
                let other = crate::support::free_port();
                if other != port {
                    break other;
                }
            };
            let conf = [
                ("{DIR}", root.display().to_string()),
                ("{OS_USER}", owner.user.clone()),
                ("{OS_GROUP}", owner.group.clone()),
                ("{UID}", owner.uid.to_string()),
                ("{GID}", owner.gid.to_string()),
                ("{PORT}", port.to_string()),
                ("{IMAPS_PORT}", imaps_port.to_string()),
            ]
            .iter()
            .fold(DOVECOT_CONF.to_owned(), |conf, (mark, value)| {
                conf.replace(mark, value)
            });
            std::fs::write(root.join("dovecot.conf"), conf).unwrap();
            let _ = std::fs::remove_file(root.join("dovecot.log"));
            let output = File::create(root.join("dovecot.out")).unwrap();
            let mut child = Command::new(&binary)
                .arg("-F")
                .arg("-c")
                .arg(root.join("dovecot.conf"))
                .stdin(Stdio::null())
                .stdout(output.try_clone().unwrap())
                .stderr(output)
                .spawn()
                .expect("dovecot starts");
            match wait_for_ports(&mut child, &[port, imaps_port]) {
                Ok(()) => {
                    return Some(Self {
                        child,
                        port,
                        imaps_port,
                        password,
                        owner: (owner.uid, owner.gid),
                        ca_file: root.join("tls/ca.pem"),
                        dir,
                    });
                }
                Err(failure) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let logs = logs(root);
                    if attempt < 3 && logs.contains("Address already in use") {
                        continue;
                    }
                    panic!("dovecot {failure}:\n{logs}");
                }
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// imap://USER:PASS@127.0.0.1:PORT/INBOX  (plaintext port; user/password URL-safe)
    pub(crate) fn url(&self) -> String {
        format!(
            "imap://{USER}:{}@127.0.0.1:{}/INBOX",
            self.password, self.port
        )
    }

    /// imaps://USER:PASS@127.0.0.1:IMAPS_PORT/INBOX (implicit TLS, see [`Self::ca_file`]).
    pub(crate) fn imaps_url(&self) -> String {
        format!(
            "imaps://{USER}:{}@127.0.0.1:{}/INBOX",
            self.password, self.imaps_port
        )
    }

    /// imap://USER:PASS@127.0.0.1:PORT/INBOX?tls=required  (STARTTLS on the plaintext port)
    pub(crate) fn starttls_url(&self) -> String {
        format!("{}?tls=required", self.url())
    }

    /// The PEM certificate of the CA that signed the server's certificate (for `localhost`
    /// and `127.0.0.1`): the one trust anchor a client needs for the TLS variants.
    pub(crate) fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// Delivers one raw RFC 5322 message into the user's INBOX as a new message: written
    /// into the Maildir's tmp/, then renamed into new/, where Dovecot picks it up (a client
    /// in IDLE hears of it within about half a second).
    pub(crate) fn deliver(&self, raw: &[u8]) {
        static DELIVERED: AtomicU64 = AtomicU64::new(0);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let name = format!(
            "{}.M{}P{}Q{}.resetdesk-test",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            DELIVERED.fetch_add(1, Ordering::Relaxed)
        );
        let maildir = self.folder_dir("INBOX");
        let tmp = maildir.join("tmp").join(&name);
        std::fs::write(&tmp, raw).unwrap();
        chown(&tmp, Some(self.owner.0), Some(self.owner.1)).unwrap();
        std::fs::rename(&tmp, maildir.join("new").join(&name)).unwrap();
    }

    /// The raw messages now in a folder ("INBOX" or another, like "resetdesk-done"), read
    /// from the Maildir on disk, sorted by their bytes.
    pub(crate) fn messages_in(&self, folder: &str) -> Vec<Vec<u8>> {
        self.entries(folder)
            .into_iter()
            .map(|(raw, _)| raw)
            .collect()
    }

    /// INBOX is the Maildir itself; other folders are Maildir++ `.NAME` subdirectories.
    fn folder_dir(&self, folder: &str) -> PathBuf {
        let maildir = self.dir.path().join("mail").join(USER);
        if folder == "INBOX" {
            maildir
        } else {
            maildir.join(format!(".{folder}"))
        }
    }

    /// Each message of a folder with its flags, sorted by the message's bytes. A file
    /// renamed while it is read (Dovecot changing its flags) makes the folder read again.
    fn entries(&self, folder: &str) -> Vec<(Vec<u8>, String)> {
        let dir = self.folder_dir(folder);
        'again: for _ in 0..20 {
            let mut entries = Vec::new();
            for sub in ["cur", "new"] {
                let Ok(files) = std::fs::read_dir(dir.join(sub)) else {
                    continue;
                };
                for file in files {
                    let file = file.unwrap();
                    let name = file.file_name().to_string_lossy().into_owned();
                    let flags = name
                        .split_once(":2,")
                        .map_or_else(String::new, |(_, flags)| flags.to_owned());
                    match std::fs::read(file.path()) {
                        Ok(raw) => entries.push((raw, flags)),
                        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                            std::thread::sleep(Duration::from_millis(10));
                            continue 'again;
                        }
                        Err(error) => panic!("reading {}: {error}", file.path().display()),
                    }
                }
            }
            entries.sort();
            return entries;
        }
        panic!("the messages in {} kept moving", dir.display())
    }
}

impl Drop for ImapServer {
    /// Kills the master and all its processes at once: a graceful stop takes a second (the
    /// master waits for its log process), and an IMAP process still serving a client would
    /// outlive a master killed alone. (Dovecot stays in the tests' process group, so an
    /// interrupted test run stops it too.)
    fn drop(&mut self) {
        // The master first, or it would start a new process in place of one killed.
        let master = self.child.id();
        let pids = std::iter::once(master).chain(children_of(master));
        let _ = Command::new("sh")
            .args(["-c", "kill -KILL \"$@\"", "sh"])
            .args(pids.map(|pid| pid.to_string()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The processes whose parent is `parent`, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // "PID (COMMAND) STATE PPID ...", where COMMAND may hold spaces and parentheses.
            let (_, fields) = stat.rsplit_once(')')?;
            let ppid: u32 = fields.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

/// Waits until something listens on each port (at most 30 s); `Err` says what went wrong.
fn wait_for_ports(child: &mut Child, ports: &[u16]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for &port in ports {
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!("stopped ({status}) before listening on {port}"));
            }
            if Instant::now() > deadline {
                return Err(format!("did not listen on {port} within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

/// What Dovecot wrote to its log and to its own output, for a failure message.
fn logs(root: &Path) -> String {
    ["dovecot.out", "dovecot.log"]
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(root.join(name)).unwrap_or_default();
            format!("--- {name}\n{text}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The account `id` reports for `user` (this process's own when None).
fn account(user: Option<&str>) -> Account {
    let output = Command::new("id")
        .args(user)
        .env("LC_ALL", "C")
        .stderr(Stdio::inherit())
        .output()
        .expect("the id command runs");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "`id {}` failed; the IMAP test server needs that account",
        user.unwrap_or_default()
    );
    // "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)"
    let field = |key: &str| -> (u32, String) {
        let rest = text
            .split_whitespace()
            .find_map(|part| part.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in `id` output {text:?}"));
        let (number, name) = rest
            .split_once('(')
            .unwrap_or_else(|| panic!("no name in `id` output {text:?}"));
        (
            number.parse().unwrap(),
            name.trim_end_matches(')').to_owned(),
        )
    };
    let (uid, user) = field("uid=");
    let (gid, group) = field("gid=");
    Account {
        uid,
        user,
        gid,
        group,
    }
}

/// Makes `dir`/ca.pem (a CA) and `dir`/server.pem with server.key (signed by the CA), all
/// with P-256 keys, which take a millisecond to make where RSA keys take tens.
fn make_certificates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("openssl.cnf"), OPENSSL_CNF).unwrap();
    // `req -x509 -CA` (OpenSSL 3) makes a key and a certificate signed by the CA in one go.
    let steps = [
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
         -keyout ca.key -out ca.pem -days 3650 -subj /CN=resetdesk-test-ca \
         -config openssl.cnf -extensions ca",
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
         -keyout server.key -out server.pem -days 3650 -subj /CN=localhost \
         -config openssl.cnf -extensions server -CA ca.pem -CAkey ca.key",
    ];
    for step in steps {
        let args: Vec<&str> = step.split_whitespace().collect();
        crate::support::openssl(dir, &args);
    }
}

/// 16 hex digits nobody can guess between two runs.
fn random_hex() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    format!("{:016x}", hasher.finish())
}
