//! The README's first command, for real: `resetdesk serve` with nothing configured but
//! directories creates its keys, serves, writes mail to data/outbox as .eml files, and
//! stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mail_parser::MessageParser;

use crate::desk_support::label_photo;
use crate::html;
use crate::support::Sandbox;

pub struct Served {
    pub child: Child,
    pub port: u16,
    log: std::sync::mpsc::Receiver<String>,
    /// Every line the process wrote, on either stream.
    pub all_lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Served {
    /// Sends SIGTERM, as systemd or `docker stop` does, and waits for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.child.wait().unwrap()
    }

    /// Waits for a log line containing `needle`: the desk's own readiness signal.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?} within 20 s"),
            }
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn serve(sandbox: &Sandbox) -> Served {
    serve_with(sandbox, &[])
}

pub fn serve_with(sandbox: &Sandbox, env: &[(&str, &str)]) -> Served {
    serve_command(
        sandbox,
        env,
        Command::new(env!("CARGO_BIN_EXE_resetdesk")).arg("serve"),
    )
}

/// Starts `command` (the desk's `serve`, possibly wrapped) as [`serve_with`] does.
pub fn serve_command(sandbox: &Sandbox, env: &[(&str, &str)], command: &mut Command) -> Served {
    let mut child = command
        .current_dir(sandbox.path(""))
        .env("RESETDESK_LISTEN", "127.0.0.1:0")
        .env("RESETDESK_OUTBOX_POLL_MS", "50")
        .env("RESETDESK_KEYS_DIR", sandbox.path("keys"))
        .env_remove("RESETDESK_SMTP_URL")
        .env_remove("RESETDESK_DATABASE_URL")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let all_lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let collected = all_lines.clone();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            collected.lock().unwrap().push(line);
        }
    });
    let stdout = child.stdout.take().unwrap();
    let (send, log) = std::sync::mpsc::channel();
    let collected = all_lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            collected.lock().unwrap().push(line.clone());
            let _ = send.send(line);
        }
    });
    let mut served = Served {
        child,
        port: 0,
        log,
        all_lines,
    };
    // The readiness signal is the log line that names the port: plain logs say `port=N`,
    // JSON logs `"port":N`.
    let line = served.wait_for_log("listening");
    let rest = line
        .split("port=")
        .nth(1)
        .or_else(|| line.split("\"port\":").nth(1))
        .unwrap_or_else(|| panic!("no port in {line}"));
    served.port = rest
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap();
    served
}

/// Waits for the outbox directory to hold `count` messages; the worker polls every 50 ms.
pub fn eml_files(dir: &Path, count: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|e| e == "eml"));
        if files.len() >= count {
            files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).unwrap());
            return files.iter().map(|p| std::fs::read(p).unwrap()).collect();
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {count} mails arrived in {}",
            files.len(),
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn serve_with_zero_setup_runs_a_whole_reset() {
    let sandbox = Sandbox::new();
    add_agent(
        &sandbox,
        "agent@vendor.test",
        "correct horse battery staple",
    );
    sandbox
        .run(&[
            "user",
            "add",
            "--email",
            "agent@vendor.test",
            "--password-stdin",
        ])
        .refused(1, "at least 12 characters");
    let token = sandbox
        .run(&["user", "token", "--email", "agent@vendor.test"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    assert!(token.starts_with("rdt_"));
    sandbox
        .run(&["user", "token", "--email", "nobody@vendor.test"])
        .refused(1, "no user nobody@vendor.test");

    let served = serve(&sandbox);
    let base = format!("http://127.0.0.1:{}", served.port);
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        sandbox.path("keys/factory-master.key").exists(),
        "keys are created on first start"
    );

    reset_a_camera_through(&sandbox, &base, &token, &[]).await;

    // Rotation in service: SIGHUP makes the running desk sign with the new key at once.
    let rotated = sandbox.run(&["keys", "rotate"]).ok();
    let new_id = rotated.stdout.split_whitespace().nth(2).unwrap().to_owned();
    let pid = served.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let line = served.wait_for_log("now signing with a new key");
    assert!(line.contains(&new_id), "{line}");

    let mut served = served;
    let status = served.terminate();
    assert!(status.success(), "serve exits cleanly on SIGTERM: {status}");
}

/// The whole reset through a running desk at `base`: a camera provisioned with the keys
/// of `keys_args` (`--keys-dir DIR`, or none for the sandbox's) exports a reset string,
/// it is sent through the API with a label photo, `token`'s agent approves it, and the
/// typed key of the approval mail in data/outbox sets the camera's new password.
pub async fn reset_a_camera_through(
    sandbox: &Sandbox,
    base: &str,
    token: &str,
    keys_args: &[&str],
) {
    let run = |args: &[&str]| {
        let mut all = keys_args.to_vec();
        all.extend_from_slice(args);
        sandbox.run(&all).ok()
    };
    run(&[
        "device",
        "provision",
        "--serial",
        "DS-2CD2143G2-I20231115AAWRJ12345678",
        "--model",
        "DS-2CD2143G2-I",
        "--state",
        "cam.json",
    ]);
    run(&[
        "device",
        "export",
        "--state",
        "cam.json",
        "--format",
        "string",
        "--out",
        "reset.txt",
    ]);
    let reset_string = std::fs::read_to_string(sandbox.path("reset.txt")).unwrap();
    let form = reqwest::multipart::Form::new()
        .text("name", "Jo Owner")
        .text("email", "jo@example.com")
        .text("country", "US")
        .text("role", "end_user")
        .text("reset_string", reset_string)
        .part(
            "label_photo",
            reqwest::multipart::Part::bytes(label_photo()).file_name("label.jpg"),
        );
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{base}/api/v1/requests"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    let ticket = created.json::<serde_json::Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let outbox = sandbox.path("data/outbox");
    eml_files(&outbox, 1);
    let approved = client
        .post(format!("{base}/api/v1/tickets/{ticket}/approve"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200, "{}", approved.text().await.unwrap());
    let mails = eml_files(&outbox, 2);
    let approval = mails
        .iter()
        .map(|raw| MessageParser::default().parse(raw).unwrap())
        .find(|m| m.subject().unwrap_or_default().contains("response"))
        .expect("the approval mail is in data/outbox");
    let text = approval.body_text(0).unwrap().into_owned();
    let key = text
        .lines()
        .find_map(|l| {
            l.trim()
                .rsplit_once(":  ")
                .map(|(_, key)| key.trim().to_owned())
        })
        .expect("a typed key in the approval mail");
    let import = run(&[
        "device",
        "import",
        "--state",
        "cam.json",
        "--key",
        &key,
        "--new-password",
        "a new admin pw",
    ]);
    assert!(import.stdout.contains("password set"), "{}", import.stdout);
}

/// An operator disables a user from the command line while the desk runs, then enables
/// them again: the token made before stays refused.
#[tokio::test]
async fn a_token_of_a_user_disabled_from_the_command_line_stays_dead() {
    let sandbox = Sandbox::new();
    add_agent(
        &sandbox,
        "agent@vendor.test",
        "correct horse battery staple",
    );
    let token = |sandbox: &Sandbox| {
        sandbox
            .run(&["user", "token", "--email", "agent@vendor.test"])
            .ok()
            .stdout
            .trim()
            .to_owned()
    };
    let old = token(&sandbox);
    let served = serve(&sandbox);
    let queue = format!(
        "http://127.0.0.1:{}/api/v1/tickets?status=open",
        served.port
    );
    let client = reqwest::Client::new();
    let status = |token: String| {
        let request = client.get(&queue).bearer_auth(token).send();
        async move { request.await.unwrap().status().as_u16() }
    };
    assert_eq!(status(old.clone()).await, 200);
    sandbox
        .run(&["user", "disable", "--email", "agent@vendor.test"])
        .ok();
    assert_eq!(status(old.clone()).await, 401);
    let enabled = sandbox
        .run(&["user", "enable", "--email", "agent@vendor.test"])
        .ok();
    assert!(
        enabled.stdout.contains("needs new API tokens"),
        "{}",
        enabled.stdout
    );
    assert_eq!(
        status(old).await,
        401,
        "enabling does not bring the token back"
    );
    assert_eq!(status(token(&sandbox)).await, 200);
}

/// `resetdesk user add` with the password on standard input, as an operator types it.
fn add_agent(sandbox: &Sandbox, email: &str, password: &str) {
    let args = [
        "user",
        "add",
        "--email",
        email,
        "--role",
        "agent",
        "--password-stdin",
    ];
    assert!(with_password(sandbox, &args, password), "{args:?}");
}

/// Runs `resetdesk args` in the sandbox with `password` on its standard input, as a
/// person types it; whether it succeeded.
fn with_password(sandbox: &Sandbox, args: &[&str], password: &str) -> bool {
    let mut command = Command::new(env!("CARGO_BIN_EXE_resetdesk"))
        .args(args)
        .current_dir(sandbox.path(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    command
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    command.wait().unwrap().success()
}

/// A provisioned camera in `cam.json` that exported in `format` to `out`.
fn camera_export(sandbox: &Sandbox, format: &str, out: &str) {
    sandbox
        .run(&[
            "device",
            "provision",
            "--serial",
            "DS-2CD2143G2-I20231115AAWRJ12345678",
            "--model",
            "DS-2CD2143G2-I",
            "--state",
            "cam.json",
        ])
        .ok();
    sandbox
        .run(&[
            "device", "export", "--state", "cam.json", "--format", format, "--out", out,
        ])
        .ok();
}

#[tokio::test]
async fn a_full_run_never_logs_a_secret() {
    const PASSWORD: &str = "correct horse battery staple";
    let sandbox = Sandbox::new();
    add_agent(&sandbox, "agent@vendor.test", PASSWORD);
    let token = sandbox
        .run(&["user", "token", "--email", "agent@vendor.test"])
        .ok()
        .stdout
        .trim()
        .to_owned();

    // Debug logging: the most the desk ever writes.
    let served = serve_with(
        &sandbox,
        &[("RESETDESK_LOG", "debug"), ("RESETDESK_LOG_FORMAT", "json")],
    );
    let base = format!("http://127.0.0.1:{}", served.port);

    // The agent enrols a second factor through the console (password, seed, code).
    let console = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let sign_in_token = crate::desk_support::sign_in_token(&console, &base).await;
    let login = console
        .post(format!("{base}/console/login"))
        .form(&[
            ("csrf", sign_in_token.as_str()),
            ("email", "agent@vendor.test"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login.headers()["location"], "/console/enrol");
    let page = console
        .get(format!("{base}/console/enrol"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let seed = html::text(&page, "#totp-key").replace(' ', "");
    let csrf = html::select_attr(&page, "input[name=csrf]", "value");
    let code = resetdesk::auth::totp::code_at(
        &resetdesk::domain::Secret::new(seed.clone()),
        resetdesk::domain::Timestamp::now(),
    )
    .unwrap();
    let enrolled = console
        .post(format!("{base}/console/enrol"))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let recovery = html::text(&enrolled, "#recovery-codes li code");

    // A customer's request, approved with the API token.
    camera_export(&sandbox, "xml", "export.xml");
    let form = reqwest::multipart::Form::new()
        .text("name", "Jo Owner")
        .text("email", "jo@example.com")
        .text("country", "US")
        .text("role", "end_user")
        .part(
            "export_xml",
            reqwest::multipart::Part::bytes(std::fs::read(sandbox.path("export.xml")).unwrap())
                .file_name("e.xml"),
        )
        .part(
            "label_photo",
            reqwest::multipart::Part::bytes(label_photo()).file_name("label.jpg"),
        );
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/requests"))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = created["ticket"].as_str().unwrap();
    let status_token = created["status_url"]
        .as_str()
        .unwrap()
        .rsplit("t=")
        .next()
        .unwrap()
        .to_owned();
    let approved = reqwest::Client::new()
        .post(format!("{base}/api/v1/tickets/{ticket}/approve"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    let mails = eml_files(&sandbox.path("data/outbox"), 2);
    let approval = mails
        .iter()
        .map(|raw| MessageParser::default().parse(raw).unwrap())
        .find(|m| m.subject().unwrap_or_default().contains("response"))
        .unwrap();
    let response_key = approval
        .body_text(0)
        .unwrap()
        .lines()
        .find_map(|l| {
            l.trim()
                .rsplit_once(":  ")
                .map(|(_, k)| k.trim().to_owned())
        })
        .unwrap();

    let mut served = served;
    assert!(served.terminate().success());

    let read_hex = |file: &str| {
        std::fs::read_to_string(sandbox.path(file))
            .unwrap()
            .trim()
            .to_owned()
    };
    let signing_dir = std::fs::read_dir(sandbox.path("keys/signing"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let pkcs8 = std::fs::read(signing_dir).unwrap();
    let secrets = [
        ("the agent's password", PASSWORD.to_owned()),
        ("the API token", token.clone()),
        (
            "the factory master secret",
            read_hex("keys/factory-master.key"),
        ),
        ("the desk secret", read_hex("keys/desk-secret.key")),
        (
            "the signing key (hex)",
            data_encoding::HEXLOWER.encode(&pkcs8),
        ),
        (
            "the signing key (base64)",
            data_encoding::BASE64.encode(&pkcs8),
        ),
        ("the TOTP seed", seed.clone()),
        ("a recovery code", recovery.clone()),
        ("the status link token", status_token.clone()),
        ("the customer's response key", response_key.clone()),
    ];
    let logs = served.all_lines.lock().unwrap().join("\n");
    assert!(
        logs.contains("ticket approved and signed"),
        "the debug log was captured"
    );
    let approved_line = logs
        .lines()
        .find(|l| l.contains("ticket approved and signed"))
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_str(approved_line).expect("RESETDESK_LOG_FORMAT=json writes JSON lines");
    assert!(
        json.to_string().contains("request_id"),
        "log lines carry their request id: {json}"
    );
    let (_, audit) = {
        let output = Command::new(env!("CARGO_BIN_EXE_resetdesk"))
            .args(["audit", "export"])
            .current_dir(sandbox.path(""))
            .output()
            .unwrap();
        (
            output.status,
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    assert!(
        audit.contains("\"action\":\"sign\""),
        "the audit log was exported"
    );
    for (what, secret) in &secrets {
        assert!(
            secret.len() >= 8,
            "{what} looks too short to search for: {secret:?}"
        );
        assert!(!logs.contains(secret.as_str()), "{what} appears in the log");
        assert!(
            !audit.contains(secret.as_str()),
            "{what} appears in the audit log"
        );
    }
}

/// A new desk has nobody who can sign in: its log and its sign-in page say how to make
/// the first console user, and the command they give works as written.
#[tokio::test]
async fn a_new_desk_says_how_to_make_its_first_console_user() {
    let sandbox = Sandbox::new();
    let served = serve(&sandbox);
    let hint = served.wait_for_log("no console user yet");
    let command = hint
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command in {hint}"));
    let login = format!("http://127.0.0.1:{}/console/login", served.port);
    let page = reqwest::get(&login).await.unwrap().text().await.unwrap();
    let told = html::visible_texts(&page, "#no-user-yet").join(" ");
    assert!(
        told.contains(command),
        "the page gives the log's command: {told}"
    );

    let args: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(args[0], "resetdesk");
    let args: Vec<&str> = args[1..]
        .iter()
        .map(|&arg| {
            if arg == "you@example.com" {
                "first@vendor.test"
            } else {
                arg
            }
        })
        .collect();
    assert!(
        with_password(&sandbox, &args, "correct horse battery staple"),
        "{command}"
    );
    let page = reqwest::get(&login).await.unwrap().text().await.unwrap();
    assert!(
        html::visible_texts(&page, "#no-user-yet").is_empty(),
        "said no more once a user exists"
    );
}
