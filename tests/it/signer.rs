//! The separate signer (issue 22): `resetdesk signer` runs as its own process with its
//! own keys directory and database, and the desk's `RemoteSigner` reaches it over its
//! Unix socket. Its own rules hold even when the desk asks: a replayed challenge, a
//! stitched, stale or version 1 export and answers beyond its caps are refused; only the
//! desk's user is answered; its log is chained, and `signer audit verify` finds a
//! changed entry.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use resetdesk::crypto::KeyStore;
use resetdesk::domain::{DeviceModel, DeviceSerial, FirmwareVersion, TicketNumber, Timestamp};
use resetdesk::protocol::{DeviceIdentity, ResetRequest, export_xml, response};
use resetdesk::signer::{RemoteSigner, Signer, SignerError};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::Sandbox;

/// A signer process, stopped with the test.
pub(crate) struct SignerProcess {
    child: Child,
    pub url: String,
}

impl Drop for SignerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_signer(
    sandbox: &Sandbox,
    name: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> SignerProcess {
    start_signer_in(sandbox, "keys", name, extra, env)
}

/// A signer process whose keys directory is `keys` in the sandbox.
pub(crate) fn start_signer_in(
    sandbox: &Sandbox,
    keys: &str,
    name: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> SignerProcess {
    let socket = sandbox.path(&format!("{name}.sock"));
    let db = sandbox.path(&format!("{name}.sqlite"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_resetdesk"));
    command
        .args(["signer", "--socket"])
        .arg(&socket)
        .arg("--db")
        .arg(&db)
        .args(extra)
        .env("RESETDESK_KEYS_DIR", sandbox.path(keys))
        .env("RESETDESK_DATA_DIR", sandbox.path("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    // The tests run desk and signer as one user; a deployment gives each its own.
    if !extra.contains(&"--desk-uid") {
        command.args(["--desk-uid", &own_uid(sandbox).to_string()]);
    }
    let child = command.spawn().expect("the signer starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "the signer did not listen within 20 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    SignerProcess {
        child,
        url: format!("unix:{}", socket.display()),
    }
}

fn identity(serial: &str) -> DeviceIdentity {
    DeviceIdentity {
        model: DeviceModel::parse("DS-7608NI-K2").unwrap(),
        serial: DeviceSerial::parse(serial).unwrap(),
        firmware: FirmwareVersion::parse("V4.30.085").unwrap(),
        mac_address: None,
        reserved_email: None,
    }
}

/// A device provisioned with the signer's keys, and an export of it made at `at`.
fn device(keys: &KeyStore, serial: &str) -> resetdesk::device::DeviceState {
    resetdesk::device::provision(
        identity(serial),
        &keys.master_secret().unwrap(),
        keys.public_keys().unwrap(),
    )
}

fn export(state: &mut resetdesk::device::DeviceState, at: Timestamp) -> ResetRequest {
    resetdesk::device::export(state, 0, None, at).unwrap()
}

/// Sends one raw request line, as a desk taken over could, and reads the reply.
async fn raw(url: &str, line: &str) -> serde_json::Value {
    let stream = tokio::net::UnixStream::connect(url.strip_prefix("unix:").unwrap())
        .await
        .unwrap();
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{line}\n").as_bytes())
        .await
        .unwrap();
    let mut reply = String::new();
    BufReader::new(read).read_line(&mut reply).await.unwrap();
    serde_json::from_str(&reply).unwrap()
}

fn policy(result: Result<impl std::fmt::Debug, SignerError>) -> String {
    match result {
        Err(SignerError::Policy(why)) => why,
        other => panic!("refused by the signer's rules, not {other:?}"),
    }
}

#[tokio::test]
async fn the_signer_answers_the_desk_under_its_own_rules() {
    let sandbox = Sandbox::new();
    let keys = KeyStore::new(sandbox.path("keys"));
    keys.init(Timestamp::now()).unwrap();
    let process = start_signer(
        &sandbox,
        "signer",
        &[],
        &[
            ("RESETDESK_SIGNER_MAX_ANSWERS_PER_HOUR", "4"),
            ("RESETDESK_SIGNER_MAX_ANSWERS_PER_SERIAL_PER_DAY", "2"),
        ],
    );
    let signer = RemoteSigner::from_url(&process.url).unwrap();
    let hello = signer.hello().await.unwrap();
    assert_eq!(hello.master_key_id, keys.master_secret().unwrap().key_id());
    assert_eq!(
        hello.signing_key_id,
        keys.active_signing_key().unwrap().id().to_string()
    );
    let now = Timestamp::now();
    let ticket = TicketNumber::generate();

    // A genuine export is checked and answered; the device takes the answer.
    let mut nvr = device(&keys, "SIGNER0000001");
    let request = export(&mut nvr, now);
    let verified = signer
        .check_export(request.clone(), now, 300)
        .await
        .unwrap();
    let answer = signer.answer(&ticket, &verified).await.unwrap();
    assert_eq!(answer.responses.len(), 1);
    let typed = answer.responses[0].key.to_string();
    let mut taking = nvr.clone();
    resetdesk::device::import_key(&mut taking, None, &typed, "N3w-Passw0rd!", now)
        .expect("the device takes the typed key");
    let signed: Vec<_> = answer.responses.iter().map(|r| r.signed.clone()).collect();
    resetdesk::device::import_response(
        &mut nvr.clone(),
        response::to_xml(&signed).as_bytes(),
        "N3w-Passw0rd!",
        now,
    )
    .expect("the device takes the signed file");

    // The same challenge again is refused, even asked as a new ticket.
    let again = policy(signer.answer(&TicketNumber::generate(), &verified).await);
    assert!(again.contains("answered before"), "{again}");
    // Its typed key can be recovered from the signed response, as the status page does.
    let recovered = signer.recover(request.devices(), &signed).await.unwrap();
    assert_eq!(recovered[0].key.to_string(), typed);

    // A response this signer never gave (signed with its key by someone holding a copy,
    // for a challenge it never answered) recovers nothing.
    let mut other = device(&keys, "SIGNER0000009");
    let other_request = export(&mut other, now);
    let forged = resetdesk::protocol::respond(
        &other_request
            .clone()
            .verify(&keys.master_secret().unwrap(), now, 300)
            .unwrap(),
        &keys.master_secret().unwrap(),
        &keys.active_signing_key().unwrap(),
    );
    let forged: Vec<_> = forged.iter().map(|r| r.signed.clone()).collect();
    let not_given = policy(signer.recover(other_request.devices(), &forged).await);
    assert!(not_given.contains("did not give"), "{not_given}");

    // A changed export is not genuine.
    let xml = export_xml::to_xml(&export(&mut device(&keys, "SIGNER0000002"), now));
    let tag_at = xml.find("<Tag>").unwrap() + "<Tag>".len();
    let mut altered = xml.clone();
    let flipped = if &altered[tag_at..=tag_at] == "0" {
        "1"
    } else {
        "0"
    };
    altered.replace_range(tag_at..=tag_at, flipped);
    let reply = raw(
        &process.url,
        &serde_json::json!({"op": "answer", "ticket": ticket.to_string(), "export": altered})
            .to_string(),
    )
    .await;
    assert_eq!(reply["reply"], "not_genuine", "{reply}");
    assert_eq!(reply["problem"]["kind"], "bad_mac");

    // The ticket is the desk's word, but it must be a ticket number: no text rides into
    // the signer's log with it.
    let fresh = export_xml::to_xml(&export(&mut device(&keys, "SIGNER0000011"), now));
    let reply = raw(
        &process.url,
        &serde_json::json!({"op": "answer", "ticket": "RQ-AAAA-AAAA; devices all; key x", "export": fresh})
            .to_string(),
    )
    .await;
    assert_eq!(reply["reply"], "refused", "{reply}");

    // A stale export (made 49 hours ago, as the desk's clock might claim it is not).
    let mut stale_device = device(&keys, "SIGNER0000003");
    let stale = export(&mut stale_device, now.plus_seconds(-49 * 3600));
    let reply = raw(
        &process.url,
        &serde_json::json!({"op": "answer", "ticket": ticket.to_string(), "export": export_xml::to_xml(&stale)})
            .to_string(),
    )
    .await;
    assert_eq!(reply["reply"], "not_genuine", "{reply}");
    assert_eq!(reply["problem"]["kind"], "expired");

    // A stitched export: another export's entry put in this one.
    let mut first = device(&keys, "SIGNER0000004");
    let mut second = device(&keys, "SIGNER0000005");
    let mut entries = export(&mut first, now).devices().to_vec();
    entries.extend(export(&mut second, now).devices().to_vec());
    let reply = raw(
        &process.url,
        &serde_json::json!({"op": "answer", "ticket": ticket.to_string(), "export": export_xml::write_entries(&entries)})
            .to_string(),
    )
    .await;
    assert_ne!(reply["reply"], "answered", "{reply}");
    assert!(reply.to_string().contains("several exports"), "{reply}");

    // A version 1 export is not answered.
    let mut old_firmware = device(&keys, "SIGNER0000006");
    old_firmware.protocol = 1;
    let v1 = export(&mut old_firmware, now);
    let verified_v1 = signer.check_export(v1, now, 300).await.unwrap();
    let refused = policy(signer.answer(&ticket, &verified_v1).await);
    assert!(refused.contains("version 2"), "{refused}");

    // Caps: 2 answers a day for one serial, 4 an hour in all.
    let second_export = export(&mut device(&keys, "SIGNER0000001"), now);
    let verified = signer.check_export(second_export, now, 300).await.unwrap();
    signer.answer(&ticket, &verified).await.unwrap();
    let third_export = export(&mut device(&keys, "SIGNER0000001"), now);
    let verified = signer.check_export(third_export, now, 300).await.unwrap();
    let per_serial = policy(signer.answer(&ticket, &verified).await);
    assert!(per_serial.contains("SIGNER0000001"), "{per_serial}");
    for serial in ["SIGNER0000007", "SIGNER0000008"] {
        let request = export(&mut device(&keys, serial), now);
        let verified = signer.check_export(request, now, 300).await.unwrap();
        signer.answer(&ticket, &verified).await.unwrap();
    }
    let request = export(&mut device(&keys, "SIGNER0000010"), now);
    let verified = signer.check_export(request, now, 300).await.unwrap();
    let per_hour = policy(signer.answer(&ticket, &verified).await);
    assert!(per_hour.contains("last hour"), "{per_hour}");

    // Only the desk's user is answered.
    let strict = start_signer(&sandbox, "strict", &["--desk-uid", "4000123"], &[]);
    let refused = RemoteSigner::from_url(&strict.url).unwrap().hello().await;
    match refused {
        Err(SignerError::Unavailable(why)) => assert!(why.contains("not the desk's"), "{why}"),
        other => panic!("refused, not {other:?}"),
    }

    // Its database is its user's alone; its socket its group's.
    let db = sandbox.path("signer.sqlite");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&sandbox.path("signer.sock")), 0o660);
    }

    // The log holds every answer and refusal, chained; a changed entry is found.
    let verified = sandbox
        .run(&["signer", "audit", "verify", "--db", db.to_str().unwrap()])
        .ok();
    assert!(
        verified.stdout.contains("chained as written"),
        "{}",
        verified.stdout
    );
    drop(process);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::raw_sql(
        "DROP TRIGGER log_is_append_only_update;
         UPDATE log SET detail = 'nothing happened' WHERE id = 1;",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    sandbox
        .run(&["signer", "audit", "verify", "--db", db.to_str().unwrap()])
        .refused(1, "changed after it was written");
}

/// The whole story with the keys out of the web process: `serve` with `signer_url`
/// starts with a keys directory that holds no master secret and no signing key (and gets
/// none), a request is approved through the API, and the reference device, provisioned
/// from the signer's keys, takes the typed key the mail carries.
#[tokio::test]
async fn serve_holds_no_private_key_when_the_signer_has_them() {
    let sandbox = Sandbox::new();
    // Zero set-up: the signer's first start makes its keys.
    let signer = start_signer_in(&sandbox, "signer-keys", "signer", &[], &[]);
    assert!(
        KeyStore::new(sandbox.path("signer-keys"))
            .holds_keys()
            .unwrap(),
        "the signer made its keys"
    );
    let signer_keys = sandbox.path("signer-keys");
    let with_signer_keys = |args: &[&str]| {
        let mut all = vec!["--keys-dir", signer_keys.to_str().unwrap()];
        all.extend_from_slice(args);
        sandbox.run(&all).ok()
    };
    let token = agent_with_token(&sandbox);

    let served =
        crate::serve_binary::serve_with(&sandbox, &[("RESETDESK_SIGNER_URL", &signer.url)]);
    let base = format!("http://127.0.0.1:{}", served.port);
    let client = reqwest::Client::new();
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "{}", health.text().await.unwrap());

    // The desk's keys directory: its own secrets only.
    let mut files = Vec::new();
    for entry in walk(&sandbox.path("keys")) {
        files.push(
            entry
                .strip_prefix(sandbox.path("keys"))
                .unwrap()
                .display()
                .to_string(),
        );
    }
    assert!(
        files.iter().any(|f| f.starts_with("desk-secret")),
        "{files:?}"
    );
    for file in &files {
        assert!(
            !file.contains("master") && !file.starts_with("signing") && !file.ends_with(".pk8"),
            "serve's keys directory holds {file}: {files:?}"
        );
    }

    let keys_args = ["--keys-dir", signer_keys.to_str().unwrap()];
    crate::serve_binary::reset_a_camera_through(&sandbox, &base, &token, &keys_args).await;

    // The signer logged the answer; its chain holds.
    let db = sandbox.path("signer.sqlite");
    let audit = with_signer_keys(&["signer", "audit", "verify", "--db", db.to_str().unwrap()]);
    assert!(audit.stdout.contains("1 entries"), "{}", audit.stdout);
}

/// An agent added to the sandbox's desk with `user add`, and an API token of theirs.
fn agent_with_token(sandbox: &Sandbox) -> String {
    let password = "correct horse battery staple";
    let mut add = Command::new(env!("CARGO_BIN_EXE_resetdesk"))
        .args([
            "user",
            "add",
            "--email",
            "agent@vendor.test",
            "--role",
            "agent",
            "--password-stdin",
        ])
        .current_dir(sandbox.path(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut add.stdin.take().unwrap(),
        format!("{password}\n").as_bytes(),
    )
    .unwrap();
    assert!(add.wait().unwrap().success());
    sandbox
        .run(&["user", "token", "--email", "agent@vendor.test"])
        .ok()
        .stdout
        .trim()
        .to_owned()
}

/// The uid these tests run as.
fn own_uid(sandbox: &Sandbox) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(sandbox.path("")).unwrap().uid()
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// The signer refuses a socket directory others can write to (they could put a link
/// where the socket goes), and `serve` with `signer_url` refuses a keys directory that
/// still holds a master secret or signing keys.
#[tokio::test]
async fn unsafe_set_ups_are_refused_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let shared = sandbox.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let uid = own_uid(&sandbox).to_string();
    let socket = shared.join("signer.sock");
    let refused = sandbox.run(&[
        "--keys-dir",
        sandbox.path("signer-keys").to_str().unwrap(),
        "signer",
        "--socket",
        socket.to_str().unwrap(),
        "--desk-uid",
        &uid,
    ]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("writable by nobody else"),
        "{}",
        refused.stderr
    );

    let signer = start_signer_in(&sandbox, "signer-keys", "signer", &[], &[]);
    // A desk keys directory that still holds a master secret (not moved to the signer).
    KeyStore::new(sandbox.path("keys"))
        .init(Timestamp::now())
        .unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_resetdesk"))
        .arg("serve")
        .current_dir(sandbox.path(""))
        .env("RESETDESK_LISTEN", "127.0.0.1:0")
        .env("RESETDESK_KEYS_DIR", sandbox.path("keys"))
        .env("RESETDESK_SIGNER_URL", &signer.url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = serve.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = serve.kill();
            panic!("serve started with a master secret beside signer_url");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("still holds a factory master secret"),
        "{stderr}"
    );
}

/// The PKCS#11 module of Debian's SoftHSM2, when it is here (`.ci/run` installs it and
/// sets RESETDESK_TEST_PKCS11_REQUIRED, so there a missing one fails).
fn softhsm_module() -> Option<std::path::PathBuf> {
    let module = std::env::var_os("RESETDESK_TEST_PKCS11_MODULE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/lib/softhsm/libsofthsm2.so".into());
    if module.exists() {
        return Some(module);
    }
    assert!(
        std::env::var_os("RESETDESK_TEST_PKCS11_REQUIRED").is_none(),
        "SoftHSM2 is required here: apt-get install softhsm2"
    );
    eprintln!("skipped: no SoftHSM2 module at {}", module.display());
    None
}

/// A SoftHSM2 token of its own in the sandbox (`tokens/`, `softhsm2.conf`), labelled
/// `resetdesk`, user PIN `1234-user`: the environment a signer needs to use it, with
/// `signing_key` naming `sign-v1` there and the user PIN `pin`.
fn softhsm_token(sandbox: &Sandbox, module: &std::path::Path, pin: &str) -> Vec<(String, String)> {
    let conf = sandbox.path("softhsm2.conf");
    if !conf.exists() {
        std::fs::create_dir(sandbox.path("tokens")).unwrap();
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                sandbox.path("tokens").display()
            ),
        )
        .unwrap();
        let init = Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                "resetdesk",
                "--pin",
                "1234-user",
                "--so-pin",
                "5678-so",
            ])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .expect("softhsm2-util runs");
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
    }
    vec![
        (
            "SOFTHSM2_CONF".to_owned(),
            conf.to_str().unwrap().to_owned(),
        ),
        (
            "RESETDESK_SIGNING_KEY".to_owned(),
            "pkcs11:token=resetdesk;object=sign-v1".to_owned(),
        ),
        (
            "RESETDESK_PKCS11_MODULE".to_owned(),
            module.to_str().unwrap().to_owned(),
        ),
        ("RESETDESK_PKCS11_PIN".to_owned(), pin.to_owned()),
    ]
}

fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// The signing key in a PKCS#11 token (SoftHSM2, a token per test): made in the token at
/// the signer's first start, named in the keyring (no key file holds it), found again
/// after a restart; a response signed in the token is taken by the reference device; a
/// wrong PIN stops the signer with why.
#[tokio::test]
async fn the_signing_key_lives_in_a_pkcs11_token() {
    let Some(module) = softhsm_module() else {
        return;
    };
    let sandbox = Sandbox::new();
    let env = softhsm_token(&sandbox, &module, "1234-user");
    let env = env_refs(&env);

    let first = start_signer(&sandbox, "token", &[], &env);
    let signer = RemoteSigner::from_url(&first.url).unwrap();
    let hello = signer.hello().await.unwrap();
    let keys = KeyStore::new(sandbox.path("keys"));
    let entries = keys.entries().unwrap();
    let active = entries
        .iter()
        .find(|e| e.status == resetdesk::crypto::KeyStatus::Active)
        .unwrap();
    assert_eq!(
        active.id().to_string(),
        hello.signing_key_id,
        "the keyring names the token's key"
    );
    assert!(
        !sandbox.path("keys/signing").exists()
            || std::fs::read_dir(sandbox.path("keys/signing"))
                .unwrap()
                .next()
                .is_none(),
        "no file holds a signing key"
    );
    assert_eq!(entries.len(), 1, "the keyring names the token's key alone");
    let exported = sandbox.run(&["keys", "export-public"]).ok();
    assert!(
        exported.stdout.contains(&hello.signing_key_id),
        "{}",
        exported.stdout
    );

    // A device trusting the exported keys takes a response signed in the token.
    let now = Timestamp::now();
    let mut nvr = device(&keys, "TOKEN00000001");
    let request = export(&mut nvr, now);
    let verified = signer.check_export(request, now, 300).await.unwrap();
    let answer = signer
        .answer(&TicketNumber::generate(), &verified)
        .await
        .unwrap();
    assert_eq!(answer.key_id.to_string(), hello.signing_key_id);
    let signed: Vec<_> = answer.responses.iter().map(|r| r.signed.clone()).collect();
    resetdesk::device::import_response(
        &mut nvr.clone(),
        response::to_xml(&signed).as_bytes(),
        "N3w-Passw0rd!",
        now,
    )
    .expect("the device takes the response signed in the token");
    resetdesk::device::import_key(
        &mut nvr,
        None,
        &answer.responses[0].key.to_string(),
        "N3w-Passw0rd!",
        now,
    )
    .expect("and its typed key");
    drop(first);

    // Restarted, the signer finds the same key in the token.
    let again = start_signer(&sandbox, "token-again", &[], &env);
    let hello_again = RemoteSigner::from_url(&again.url)
        .unwrap()
        .hello()
        .await
        .unwrap();
    assert_eq!(hello_again.signing_key_id, hello.signing_key_id);
    drop(again);

    // A wrong PIN: the signer says so and does not start.
    let wrong = softhsm_token(&sandbox, &module, "0000-wrong");
    let wrong = env_refs(&wrong);
    let (code, stderr) = signer_that_does_not_start(&sandbox, &wrong);
    assert_eq!(code, Some(78), "a refused PIN is not restarted into");
    assert!(stderr.contains("refused the PIN"), "{stderr}");
    assert!(
        !stderr.contains("0000-wrong"),
        "the PIN is never printed: {stderr}"
    );

    // The keyring's active key is what signs: once it names a key file (rotated without
    // the token, the token's key retired), the signer with the token does not start,
    // and says how to sign in the token again.
    keys.rotate(Timestamp::now()).unwrap();
    let keyring = sandbox.path("keys/keyring.json");
    let text = std::fs::read_to_string(&keyring).unwrap();
    std::fs::write(&keyring, text.replace("\"verify-only\"", "\"retired\"")).unwrap();
    let (code, stderr) = signer_that_does_not_start(&sandbox, &env);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("is a key file"), "{stderr}");
    assert!(stderr.contains("keys rotate"), "{stderr}");
}

/// A signer moved into a token the way an operator would: it starts with key files and
/// a desk that recorded them; `keys rotate` with `signing_key` makes the next key in the
/// token (recorded in the desk's database); `signer import-master` puts the factory
/// master secret there too, and the signer refuses to start until its file is moved
/// offline. Then every device key is derived in the token, and the desk, the signer and
/// the reference device agree: a camera is reset end to end. A second rotation in the
/// token is followed by the running signer without a restart.
#[tokio::test]
async fn the_master_secret_and_rotated_keys_live_in_the_token() {
    let Some(module) = softhsm_module() else {
        return;
    };
    let sandbox = Sandbox::new();
    let env = softhsm_token(&sandbox, &module, "1234-user");
    let env = env_refs(&env);
    let signer_keys = sandbox.path("signer-keys");
    let keys = KeyStore::new(&signer_keys);
    let keys_arg = ["--keys-dir", signer_keys.to_str().unwrap()];
    let with_keys = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = keys_arg.to_vec();
        all.extend_from_slice(args);
        sandbox.run_with(&all, env)
    };

    // Key files, and a desk that recorded their ids.
    let signer = start_signer_in(&sandbox, "signer-keys", "files", &[], &[]);
    let master_id = RemoteSigner::from_url(&signer.url)
        .unwrap()
        .hello()
        .await
        .unwrap()
        .master_key_id;
    let served =
        crate::serve_binary::serve_with(&sandbox, &[("RESETDESK_SIGNER_URL", &signer.url)]);
    drop(served);
    drop(signer);
    let file_key = keys.active_entry().unwrap().id().clone();

    // The next key in the token, recorded; no file holds it.
    let rotated = with_keys(&["keys", "rotate"], &env).ok();
    assert!(
        rotated.stdout.contains("in the token"),
        "{}",
        rotated.stdout
    );
    let token_key = keys.active_entry().unwrap().id().clone();
    assert_ne!(token_key, file_key);
    assert!(!keys.holds_signing_key_file(&token_key));

    // The master secret into the token; the signer will not start beside its file.
    let into = "pkcs11:token=resetdesk;object=master-v1";
    // The log of the signer started below ("token"), which the import opens.
    let db = sandbox.path("token.sqlite");
    let import_master = || {
        with_keys(
            &[
                "signer",
                "import-master",
                "--into",
                into,
                "--db",
                db.to_str().unwrap(),
            ],
            &env,
        )
        .ok()
    };
    let imported = import_master();
    assert!(imported.stdout.contains(&master_id), "{}", imported.stdout);
    let again = import_master();
    assert!(again.stdout.contains("already holds"), "{}", again.stdout);
    let (code, stderr) = signer_that_does_not_start_in(&sandbox, "signer-keys", &env);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("offline storage"), "{stderr}");
    // A PIN never rides in the URI: it would be printed, written and logged.
    with_keys(
        &[
            "signer",
            "import-master",
            "--into",
            "pkcs11:token=resetdesk;object=m?pin-value=1234-user",
        ],
        &env,
    )
    .refused(1, "no PIN");
    // The factory's backup, away from the signer (the tests' devices are made from it).
    let factory = sandbox.path("factory");
    crate::support::private_dir(&factory);
    std::fs::rename(
        signer_keys.join("factory-master.key"),
        factory.join("factory-master.key"),
    )
    .unwrap();

    // The token's object must be the one imported: its check value is compared, not
    // only the id it claims.
    let pointer = signer_keys.join("factory-master.pkcs11");
    let recorded = std::fs::read_to_string(&pointer).unwrap();
    assert!(
        recorded.starts_with(&format!("{into}\ncheck=")),
        "{recorded}"
    );
    let check = recorded.lines().nth(1).unwrap().to_owned();
    std::fs::write(
        &pointer,
        recorded.replace(&check, &format!("check={}", "0".repeat(32))),
    )
    .unwrap();
    let (code, stderr) = signer_that_does_not_start_in(&sandbox, "signer-keys", &env);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("check value differs"), "{stderr}");
    std::fs::write(&pointer, &recorded).unwrap();

    // The signer derives in the token: the same master secret id, the token's key.
    let signer = start_signer_in(&sandbox, "signer-keys", "token", &[], &env);
    let remote = RemoteSigner::from_url(&signer.url).unwrap();
    let hello = remote.hello().await.unwrap();
    assert_eq!(hello.master_key_id, master_id);
    assert_eq!(hello.signing_key_id, token_key.to_string());
    for file in walk(&signer_keys) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.ends_with(".key") || name == "desk-secret.key",
            "{name} left in the signer's keys directory"
        );
    }

    // A second rotation in the token, the signer running: its next answer uses it.
    with_keys(&["keys", "rotate"], &env).ok();
    let newest = keys.active_entry().unwrap().id().clone();
    assert_ne!(newest, token_key);
    let exported = with_keys(&["keys", "export-public"], &[]).ok().stdout;
    for id in [&file_key, &token_key, &newest] {
        assert!(exported.contains(id.as_str()), "{exported}");
    }
    std::fs::copy(
        signer_keys.join("keyring.json"),
        factory.join("keyring.json"),
    )
    .unwrap();
    let factory_keys = KeyStore::new(&factory);
    let now = Timestamp::now();
    let mut camera = device(&factory_keys, "TOKENMASTER0001");
    let verified = remote
        .check_export(export(&mut camera, now), now, 300)
        .await
        .unwrap();
    let answer = remote
        .answer(&TicketNumber::generate(), &verified)
        .await
        .unwrap();
    assert_eq!(
        answer.key_id, newest,
        "signed with the newest key, in the token"
    );
    resetdesk::device::import_key(
        &mut camera,
        None,
        &answer.responses[0].key.to_string(),
        "N3w-Passw0rd!",
        now,
    )
    .expect("the device takes a key derived in the token");
    // An export of a device of another master secret is not genuine to the token.
    let stranger = resetdesk::device::provision(
        identity("TOKENMASTER0002"),
        &resetdesk::crypto::MasterSecret::generate(),
        factory_keys.public_keys().unwrap(),
    );
    let refused = remote
        .check_export(export(&mut stranger.clone(), now), now, 300)
        .await;
    assert!(
        matches!(refused, Err(SignerError::Refused(_))),
        "{refused:?}"
    );

    // The desk starts against it (the registry knows every key) and a camera is reset
    // end to end, the device made from the factory's backup.
    let api_token = agent_with_token(&sandbox);
    let served =
        crate::serve_binary::serve_with(&sandbox, &[("RESETDESK_SIGNER_URL", &signer.url)]);
    let base = format!("http://127.0.0.1:{}", served.port);
    let factory_arg = ["--keys-dir", factory.to_str().unwrap()];
    crate::serve_binary::reset_a_camera_through(&sandbox, &base, &api_token, &factory_arg).await;
    drop(served);
    drop(signer);

    // The import (once) and both answers are in the signer's log, and the log holds.
    let audit = with_keys(
        &["signer", "audit", "verify", "--db", db.to_str().unwrap()],
        &[],
    )
    .ok();
    assert!(
        audit.stdout.contains("holds: 3 entries"),
        "{}",
        audit.stdout
    );
}

/// The token's own troubles, met in this process: two pairs under one label, half a
/// pair, a sign-in the token lost (its handles with it), and the master secret's PRK:
/// derives the same device keys, cannot be read out, is not imported over another, and
/// a secret that may leave the token is refused. SoftHSM reads SOFTHSM2_CONF once, when
/// a process first initialises it: the test runs itself again as a child with it set.
#[test]
fn the_token_is_used_with_care() {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::error::RvError;
    use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    use resetdesk::crypto::pkcs11::{Token, TokenError, TokenMaster, TokenSigningKey};
    use resetdesk::crypto::{DeviceKeys, MasterSecret};

    const CHILD: &str = "RESETDESK_TEST_TOKEN_CHILD";
    let Some(module) = softhsm_module() else {
        return;
    };
    if std::env::var_os(CHILD).is_none() {
        let sandbox = Sandbox::new();
        let env = softhsm_token(&sandbox, &module, "1234-user");
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "signer::the_token_is_used_with_care",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .envs(env_refs(&env))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }

    let token = Token::open(&module, "resetdesk", "1234-user").unwrap();
    // Two signers making a key at once leave two pairs: neither is taken as "the" key.
    let first = TokenSigningKey::generate(&token, "twice").unwrap();
    let second = TokenSigningKey::generate(&token, "twice").unwrap();
    assert!(matches!(
        TokenSigningKey::only_or_new(&token, "twice"),
        Err(TokenError::Ambiguous {
            private: 2,
            public: 2,
            ..
        })
    ));
    // By its id each is found (the keyring names one).
    let found = TokenSigningKey::find(&token, "twice", first.id())
        .unwrap()
        .unwrap();
    assert_eq!(found.id(), first.id());

    // Another session of this process, as a token's tools (or someone with the PIN)
    // would use it.
    let pkcs11 = Pkcs11::new(&module).unwrap();
    let _ = pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = pkcs11
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|slot| pkcs11.get_token_info(*slot).unwrap().label().trim() == "resetdesk")
        .unwrap();
    let tools = pkcs11.open_rw_session(slot).unwrap();
    let id_of = |key: &TokenSigningKey| {
        (0..8)
            .map(|i| u8::from_str_radix(&key.id().as_str()[i * 2..i * 2 + 2], 16).unwrap())
            .collect::<Vec<u8>>()
    };

    // A key made readable, read out, then locked again is not taken: it did not stay
    // sensitive and never extractable since it was made.
    let (_, once_readable) = tools
        .generate_key_pair(
            &cryptoki::mechanism::Mechanism::EccEdwardsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::KeyType(KeyType::EC_EDWARDS),
                Attribute::EcParams(b"\x13\x0cedwards25519".to_vec()),
                Attribute::Label(b"planted".to_vec()),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
                Attribute::Sign(true),
                Attribute::KeyType(KeyType::EC_EDWARDS),
                Attribute::Label(b"planted".to_vec()),
            ],
        )
        .unwrap();
    tools
        .update_attributes(
            once_readable,
            &[Attribute::Sensitive(true), Attribute::Extractable(false)],
        )
        .unwrap();
    assert!(matches!(
        TokenSigningKey::only_or_new(&token, "planted"),
        Err(TokenError::Exportable(_))
    ));

    // Half a pair: its public half removed, the key is not used.
    let public = tools
        .find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Id(id_of(&second)),
        ])
        .unwrap();
    assert_eq!(public.len(), 1);
    tools.destroy_object(public[0]).unwrap();
    assert!(matches!(
        TokenSigningKey::find(&token, "twice", second.id()),
        Err(TokenError::Ambiguous {
            private: 1,
            public: 0,
            ..
        })
    ));

    // The sign-in lost under the signer (SoftHSM forgets private handles with it):
    // signing in again and finding the key again, the next signature is made.
    tools.logout().unwrap();
    let signature = first.sign(b"after the token signed out").unwrap();
    first
        .public_key()
        .verify(b"after the token signed out", &signature)
        .unwrap();

    // The master secret's PRK: the same device keys as the secret in memory.
    let master = MasterSecret::generate();
    let (in_token, imported) = TokenMaster::import(&token, "master-v1", &master).unwrap();
    assert!(imported);
    assert_eq!(in_token.key_id(), master.key_id());
    for raw in [
        "DS-2CD2143G2-I20231115AAWRJ12345678",
        "TOKEN00000001",
        "AB1234",
    ] {
        let serial = DeviceSerial::parse(raw).unwrap();
        assert_eq!(
            in_token.device_key(&serial).unwrap().to_bytes(),
            master.derive_device_key(&serial).to_bytes(),
            "{raw}"
        );
    }
    assert!(!TokenMaster::import(&token, "master-v1", &master).unwrap().1);
    assert!(matches!(
        TokenMaster::import(&token, "master-v1", &MasterSecret::generate()),
        Err(TokenError::OtherMaster { .. })
    ));
    // Nobody reads it out, not even with the PIN.
    // (The signer signed in again above; the sign-in is the process's.)
    match tools.login(UserType::User, Some(&AuthPin::new("1234-user".into()))) {
        Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(error) => panic!("{error}"),
    }
    let prk = tools
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(b"master-v1".to_vec()),
        ])
        .unwrap();
    assert_eq!(prk.len(), 1);
    let read = tools.get_attributes(prk[0], &[AttributeType::Value]);
    assert!(
        !matches!(read.as_deref(), Ok([Attribute::Value(_)])),
        "the PRK was read out: {read:?}"
    );
    // A secret that may leave the token is not taken as the master secret.
    tools
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Sign(true),
            Attribute::Label(b"leaky".to_vec()),
            Attribute::Id(vec![1; 8]),
            Attribute::Value(vec![7; 32]),
        ])
        .unwrap();
    assert!(matches!(
        TokenMaster::find(&token, "leaky"),
        Err(TokenError::Exportable(_))
    ));
    assert!(matches!(
        TokenMaster::find(&token, "no-such-master"),
        Err(TokenError::NoMaster(_))
    ));
}

/// Runs `resetdesk signer` on the sandbox's keys with `env`, expecting it to stop at
/// start: its exit code and what it wrote to standard error.
fn signer_that_does_not_start(sandbox: &Sandbox, env: &[(&str, &str)]) -> (Option<i32>, String) {
    signer_that_does_not_start_in(sandbox, "keys", env)
}

/// [`signer_that_does_not_start`] with the keys directory `keys` of the sandbox.
fn signer_that_does_not_start_in(
    sandbox: &Sandbox,
    keys: &str,
    env: &[(&str, &str)],
) -> (Option<i32>, String) {
    let socket = sandbox.path("refused.sock");
    let output = Command::new(env!("CARGO_BIN_EXE_resetdesk"))
        .args(["signer", "--socket", socket.to_str().unwrap()])
        .args(["--desk-uid", &own_uid(sandbox).to_string()])
        .env("RESETDESK_KEYS_DIR", sandbox.path(keys))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A CA (`NAME-ca.pem`, `NAME-ca.key`) and a certificate it signs for `role`
/// (`serverAuth` with an IP SAN of 127.0.0.1, or `clientAuth`), made with the `openssl`
/// command in `dir`: `CERT.pem`, `CERT.key`.
fn openssl_pair(dir: &std::path::Path, ca: &str, cert: &str, role: &str) {
    let run = |args: &[&str]| crate::support::openssl(dir, args);
    let (ca_key, ca_pem) = (format!("{ca}-ca.key"), format!("{ca}-ca.pem"));
    if !dir.join(&ca_pem).exists() {
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &ca_key,
            "-out",
            &ca_pem,
            "-days",
            "2",
            "-subj",
            &format!("/CN={ca} test CA"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
    }
    let extensions = match role {
        "server" => {
            "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
        }
        _ => "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    };
    std::fs::write(dir.join(format!("{cert}.ext")), extensions).unwrap();
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &format!("{cert}.key"),
        "-out",
        &format!("{cert}.csr"),
        "-subj",
        &format!("/CN={cert}"),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &format!("{cert}.csr"),
        "-CA",
        &ca_pem,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &format!("{cert}.pem"),
        "-days",
        "2",
        "-extfile",
        &format!("{cert}.ext"),
    ]);
}

/// The signer on another host: TLS with certificates both ways. The desk with its
/// certificate is answered, and the device takes the answer; a client whose certificate
/// another CA signed, or a desk that does not trust the signer's certificate, gets
/// nothing.
#[tokio::test]
async fn a_signer_on_another_host_answers_only_the_desks_certificate() {
    resetdesk::startup::install_tls_provider();
    let sandbox = Sandbox::new();
    let certs = sandbox.path("certs");
    std::fs::create_dir(&certs).unwrap();
    openssl_pair(&certs, "signer", "signer", "server");
    openssl_pair(&certs, "desk", "desk", "client");
    openssl_pair(&certs, "other", "stranger", "client");
    let port = crate::support::free_port();
    let path = |name: &str| certs.join(name).to_str().unwrap().to_owned();
    let mut child = Command::new(env!("CARGO_BIN_EXE_resetdesk"))
        .args(["signer", "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--tls-cert",
            &path("signer.pem"),
            "--tls-key",
            &path("signer.key"),
        ])
        .args(["--client-ca", &path("desk-ca.pem")])
        .args(["--db", sandbox.path("signer.sqlite").to_str().unwrap()])
        .env("RESETDESK_KEYS_DIR", sandbox.path("keys"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    crate::support::wait_for_listener(port, "the signer over TLS");
    let desk = |ca: &str, cert: &str| {
        RemoteSigner::from_settings(&resetdesk::config::SignerSettings {
            url: Some(format!("https://127.0.0.1:{port}")),
            ca_file: Some(certs.join(ca)),
            client_cert: Some(certs.join(format!("{cert}.pem"))),
            client_key: Some(certs.join(format!("{cert}.key"))),
            ..Default::default()
        })
        .unwrap()
    };

    let signer = desk("signer-ca.pem", "desk");
    let hello = signer.hello().await.unwrap();
    let keys = KeyStore::new(sandbox.path("keys"));
    assert_eq!(hello.master_key_id, keys.master_secret().unwrap().key_id());
    let now = Timestamp::now();
    let mut nvr = device(&keys, "TLS0000000001");
    let verified = signer
        .check_export(export(&mut nvr, now), now, 300)
        .await
        .unwrap();
    let answer = signer
        .answer(&TicketNumber::generate(), &verified)
        .await
        .unwrap();
    resetdesk::device::import_key(
        &mut nvr,
        None,
        &answer.responses[0].key.to_string(),
        "N3w-Passw0rd!",
        now,
    )
    .expect("the device takes the key the signer gave over TLS");

    for (who, refused) in [
        ("a client of another CA", desk("signer-ca.pem", "stranger")),
        (
            "a desk that does not trust the signer",
            desk("other-ca.pem", "desk"),
        ),
    ] {
        match refused.hello().await {
            Err(SignerError::Unavailable(_)) => {}
            other => panic!("{who}: refused, not {other:?}"),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
