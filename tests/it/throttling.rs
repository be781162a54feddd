//! Abuse limits: failed sign-ins per account, and intake per client address and per
//! device serial, each answered with 429, a Retry-After and a message naming the wait;
//! uploads too slow to keep their turn, and pictures too costly to decode.

use std::time::{Duration, Instant};

use resetdesk::domain::Timestamp;

use crate::desk_support::{
    AGENT_PASSWORD, Backend, TestApp, browser, customer_form, export_part, file_part, label_photo,
    sign_in_token, spawn_app, spawn_app_on_with, spawn_app_with,
};

const NVR: &str = "DS-7608NI-K2/8P0820231115CCRRJ12345678";

async fn try_password(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    let browser = browser();
    let token = sign_in_token(&browser, &app.base).await;
    browser
        .post(app.url("/console/login"))
        .form(&[
            ("csrf", token.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn failed_sign_ins_lock_the_account_for_a_while() {
    let app = spawn_app().await;
    app.create_agent("agent@vendor.test").await;
    for _ in 0..5 {
        assert_eq!(
            try_password(&app, "agent@vendor.test", "not it at all")
                .await
                .status(),
            401
        );
    }
    let locked = try_password(&app, "agent@vendor.test", AGENT_PASSWORD).await;
    assert_eq!(locked.status(), 429, "even the right password waits");
    let retry_after: i64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let page = locked.text().await.unwrap();
    assert!(
        page.contains("try again in") && page.contains(" s."),
        "{page}"
    );
    app.advance(retry_after);
    assert_eq!(
        try_password(&app, "agent@vendor.test", AGENT_PASSWORD)
            .await
            .status(),
        303
    );
    // A successful sign-in forgets the failures.
    assert_eq!(
        try_password(&app, "agent@vendor.test", "wrong again")
            .await
            .status(),
        401
    );
    assert_eq!(
        try_password(&app, "agent@vendor.test", AGENT_PASSWORD)
            .await
            .status(),
        303
    );
}

fn submission(app: &TestApp, nvr: &mut resetdesk::device::DeviceState) -> reqwest::multipart::Form {
    let request = app.export(nvr, 0, Timestamp::now());
    export_part(customer_form("burst@example.com"), &request, "string").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    )
}

#[tokio::test]
async fn an_intake_burst_from_one_address_gets_429_with_retry_after() {
    let app = spawn_app_with(|s| s.intake.per_ip_per_hour = 2).await;
    let mut first = app.device(NVR, "DS-7608NI-K2");
    let mut second = app.device("DS-7608NI-K2/8P0820231115CCRRJ00000002", "DS-7608NI-K2");
    assert_eq!(app.submit(submission(&app, &mut first)).await.status(), 201);
    assert_eq!(
        app.submit(submission(&app, &mut second)).await.status(),
        201
    );
    let before = app.stored_counts().await;
    let refused = app.submit(submission(&app, &mut first)).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("try again in"),
        "{body}"
    );
    let form = app
        .client
        .post(app.url("/"))
        .multipart(submission(&app, &mut first))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 429, "the HTML form is limited too");
    assert_eq!(app.stored_counts().await, before);
}

#[tokio::test]
async fn many_requests_for_one_device_get_429() {
    let app = spawn_app_with(|s| s.intake.per_serial_per_hour = 1).await;
    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    assert_eq!(app.submit(submission(&app, &mut nvr)).await.status(), 201);
    let refused = app.submit(submission(&app, &mut nvr)).await;
    assert_eq!(refused.status(), 429);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("try again in"),
        "{body}"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_limit() {
    let submit_from = |app: &TestApp, nvr: &mut resetdesk::device::DeviceState, client: &str| {
        let form = submission(app, nvr);
        app.client
            .post(app.url("/api/v1/requests"))
            .header("x-forwarded-for", client)
            .multipart(form)
            .send()
    };
    // Behind a load balancer (127.0.0.1 here), the address it forwards counts.
    let app = spawn_app_with(|s| {
        s.intake.per_ip_per_hour = 1;
        s.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let mut a = app.device(NVR, "DS-7608NI-K2");
    let mut b = app.device("DS-7608NI-K2/8P0820231115CCRRJ00000002", "DS-7608NI-K2");
    assert_eq!(
        submit_from(&app, &mut a, "203.0.113.7")
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(
        submit_from(&app, &mut b, "198.51.100.9")
            .await
            .unwrap()
            .status(),
        201,
        "another client"
    );
    assert_eq!(
        submit_from(&app, &mut a, "203.0.113.7")
            .await
            .unwrap()
            .status(),
        429,
        "the same client again"
    );

    // Without a trusted proxy the header is the client's own word and is ignored.
    let direct = spawn_app_with(|s| s.intake.per_ip_per_hour = 1).await;
    let mut c = direct.device(NVR, "DS-7608NI-K2");
    assert_eq!(
        submit_from(&direct, &mut c, "203.0.113.7")
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(
        submit_from(&direct, &mut c, "198.51.100.9")
            .await
            .unwrap()
            .status(),
        429
    );
}

async fn wrong_code(app: &TestApp, client: &reqwest::Client) -> reqwest::StatusCode {
    let page = client
        .get(app.url("/console/login/code"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    client
        .post(app.url("/console/login/code"))
        .form(&[
            ("csrf", crate::desk_support::csrf(&page).as_str()),
            ("code", "000000"),
        ])
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_right_password_does_not_reset_the_count_of_wrong_codes() {
    let app = spawn_app().await;
    app.create_agent("agent@vendor.test").await;
    for round in 0..2 {
        let client = browser();
        let token = sign_in_token(&client, &app.base).await;
        let login = client
            .post(app.url("/console/login"))
            .form(&[
                ("csrf", token.as_str()),
                ("email", "agent@vendor.test"),
                ("password", AGENT_PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 303, "round {round}");
        for _ in 0..(if round == 0 { 4 } else { 1 }) {
            assert_eq!(wrong_code(&app, &client).await, 401);
        }
    }
    let client = browser();
    let token = sign_in_token(&client, &app.base).await;
    let locked = client
        .post(app.url("/console/login"))
        .form(&[
            ("csrf", token.as_str()),
            ("email", "agent@vendor.test"),
            ("password", AGENT_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        locked.status(),
        429,
        "five wrong codes across two sign-ins still lock the account"
    );
}

#[tokio::test]
async fn forged_exports_cannot_use_up_a_strangers_device_allowance() {
    let app = spawn_app_with(|s| s.intake.per_serial_per_hour = 1).await;
    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    for _ in 0..3 {
        let request = app.export(&mut nvr, 0, Timestamp::now());
        let forged =
            resetdesk::protocol::export_xml::to_xml(&request).replace("V4.30.085", "V4.30.099");
        let form = customer_form("attacker@example.com")
            .part(
                "export_xml",
                file_part(forged.into_bytes(), "e.xml", "application/xml"),
            )
            .part(
                "label_photo",
                file_part(label_photo(), "label.jpg", "image/jpeg"),
            );
        assert_eq!(app.submit(form).await.status(), 422);
    }
    assert_eq!(
        app.submit(submission(&app, &mut nvr)).await.status(),
        201,
        "the owner still gets through"
    );
}

#[tokio::test]
async fn odd_bytes_in_the_sign_in_form_are_a_refusal_not_an_error() {
    let app = spawn_app().await;
    let response = try_password(&app, "a\u{0}b@vendor.test", "anything at all").await;
    assert_eq!(response.status(), 401);
}

/// Opens a connection that starts an upload and then sends nothing more.
async fn stalled_upload(address: &str) -> tokio::net::TcpStream {
    stalled_upload_from(address, None).await
}

/// A stalled upload, sent for `client` through a trusted proxy when one is given.
async fn stalled_upload_from(address: &str, client: Option<&str>) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let forwarded = client.map_or_else(String::new, |c| format!("X-Forwarded-For: {c}\r\n"));
    let head = format!(
        "POST /api/v1/requests HTTP/1.1\r\nHost: {address}\r\n{forwarded}Content-Type: multipart/form-data; boundary=X\r\nContent-Length: 100000\r\n\r\n--X\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// An IPv6 client holds a whole /64 and can rotate through it: its uploads count
/// together, so it cannot take every turn one address at a time (found by the red team).
#[tokio::test]
async fn an_ipv6_network_counts_as_one_address_for_uploads() {
    let app = spawn_app_with(|s| {
        s.uploads.at_once = 8;
        s.uploads.per_address = 2;
        s.uploads.timeout_secs = 30;
        s.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let _stalled = [
        stalled_upload_from(&address, Some("2001:db8:1:2::1")).await,
        stalled_upload_from(&address, Some("2001:db8:1:2::2")).await,
    ];
    // Both bodies are being read once two turns are held.
    wait_until("both stalled uploads hold a turn", || {
        app.desk.spool.turns_free() == 6
    })
    .await;
    assert_eq!(app.desk.spool.turns_free(), 6);
    let third = app
        .client
        .post(app.url("/api/v1/requests"))
        .header("X-Forwarded-For", "2001:db8:1:2::3")
        .multipart(reqwest::multipart::Form::new().text("name", "Ana"))
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 429, "a third address of the same /64");
    let elsewhere = app
        .client
        .post(app.url("/api/v1/requests"))
        .header("X-Forwarded-For", "2001:db8:1:3::1")
        .multipart(reqwest::multipart::Form::new().text("name", "Ana"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        elsewhere.status(),
        422,
        "another /64 is read (and refused as incomplete)"
    );
}

/// A client that sends its headers and then trickles the body is cut off with a 408 once
/// the upload timeout passes, and nothing is stored.
#[tokio::test]
async fn a_slowly_trickled_upload_times_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(|s| s.uploads.timeout_secs = 1).await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let (mut reader, mut writer) = stalled_upload(&address).await.into_split();
    // One byte every 200 ms: never finishing, never quite idle. This sleep is the client
    // under test (a slow sender), not a wait for the desk.
    let trickle = tokio::spawn(async move {
        for _ in 0..40 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            if writer.write_all(b"a").await.is_err() {
                break;
            }
        }
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        reader.read_to_end(&mut answer),
    )
    .await;
    trickle.abort();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("did not finish within 1 seconds"), "{text}");
    assert_eq!(app.stored_counts().await, (0, 0, 0));
}

/// Uploads are read `uploads_at_once` at a time. Two slow clients take the only slot in
/// turn (each until the upload timeout cuts it off); an upload queued behind both waits
/// longer than the timeout and is told the desk is busy (503, Retry-After). Once the
/// slot is free, an upload is read at once.
#[tokio::test]
async fn uploads_are_read_a_few_at_a_time() {
    let app = spawn_app_with(|s| {
        s.uploads.at_once = 1;
        s.uploads.per_address = 10;
        s.uploads.timeout_secs = 2;
    })
    .await;
    let address = app.base.trim_start_matches("http://").to_owned();
    // In order: the first holds the only turn before the second queues behind it, and
    // both are at the desk before the customer's upload queues behind them.
    let mut slow = Vec::new();
    slow.push(stalled_upload(&address).await);
    wait_until("the first slow upload holds the only turn", || {
        app.desk.spool.turns_free() == 0 && app.desk.spool.uploads_in_flight() == 1
    })
    .await;
    slow.push(stalled_upload(&address).await);
    wait_until("the second slow upload waits for the turn", || {
        app.desk.spool.uploads_in_flight() == 2
    })
    .await;
    let response = app
        .submit(reqwest::multipart::Form::new().text("name", "Ana"))
        .await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("many uploads at once"), "{message}");

    drop(slow);
    wait_until("the slow uploads gave the turn back", || {
        app.desk.spool.turns_free() == 1 && app.desk.spool.uploads_in_flight() == 0
    })
    .await;
    let response = app
        .submit(reqwest::multipart::Form::new().text("name", "Ana"))
        .await;
    assert_eq!(
        response.status(),
        422,
        "read and judged, not refused as busy"
    );
    assert_eq!(app.stored_counts().await, (0, 0, 0));
}

/// One client address has at most `uploads_per_address` uploads in flight: two stalled
/// uploads from this machine are its share, a third is refused at once (429) instead of
/// waiting for a turn, and nothing is stored. When the stalled ones go, it may upload.
#[tokio::test]
async fn one_address_cannot_take_every_turn() {
    let app = spawn_app_with(|s| {
        s.uploads.at_once = 8;
        s.uploads.per_address = 2;
        s.uploads.timeout_secs = 30;
    })
    .await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let stalled = vec![
        stalled_upload(&address).await,
        stalled_upload(&address).await,
    ];
    // The desk has both bodies in hand once they are being read.
    wait_until("both stalled uploads hold a turn", || {
        app.desk.spool.turns_free() == 6 && app.desk.spool.uploads_in_flight() == 2
    })
    .await;

    let started = std::time::Instant::now();
    let response = app
        .submit(reqwest::multipart::Form::new().text("name", "Ana"))
        .await;
    assert_eq!(response.status(), 429);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "refused at once, not after waiting for a turn"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("2 uploads from your network are already being received"),
        "{message}"
    );
    assert_eq!(app.stored_counts().await, (0, 0, 0));

    // A closed connection gives its upload back as soon as the desk reads the end.
    drop(stalled);
    wait_until("the closed uploads gave their turns back", || {
        app.desk.spool.turns_free() == 8 && app.desk.spool.uploads_in_flight() == 0
    })
    .await;
    let response = app
        .submit(reqwest::multipart::Form::new().text("name", "Ana"))
        .await;
    assert_eq!(
        response.status(),
        422,
        "read and judged once the address's uploads ended"
    );
    assert_eq!(app.stored_counts().await, (0, 0, 0));
}

/// Waits (a few seconds at most) until `ready` holds: a state of the desk, polled.
async fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        // The poll's pace: the desk's state has no notification to await.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A complete submission sent for `client` through the trusted proxy (127.0.0.1).
async fn submit_for(
    app: &TestApp,
    client: &str,
    form: reqwest::multipart::Form,
) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/requests"))
        .header("x-forwarded-for", client)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Eight connections from two addresses, each sending one byte every 4 s, hold all
/// `uploads_at_once` turns (and both addresses' `uploads_per_address`). Past the grace
/// period each averages far under `upload_min_bytes_per_sec`, so each gets 408 and
/// gives its turn back; a real submission from a third address, waiting for a turn
/// meanwhile, completes within 5 s instead of waiting for the upload timeout (60 s).
async fn slow_uploads_lose_their_turns_to_a_customer_who_sends(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(app) = spawn_app_on_with(backend, |s| {
        s.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        s.uploads.at_once = 8;
        s.uploads.per_address = 4;
        s.uploads.timeout_secs = 60;
        s.uploads.min_bytes_per_sec = 8192;
        // Shorter than the default 10 s so the test is quick; the mechanism is the same.
        s.uploads.min_rate_grace_secs = 2;
    })
    .await
    else {
        return;
    };
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for client in ["203.0.113.7", "198.51.100.9"] {
        for _ in 0..4 {
            let (reader, mut writer) = stalled_upload_from(&address, Some(client))
                .await
                .into_split();
            // A byte every 4 s: the slow client under test, not a wait for the desk.
            let trickle = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(4)).await;
                    if writer.write_all(b"a").await.is_err() {
                        break;
                    }
                }
            });
            slow.push((reader, trickle));
        }
    }
    wait_until("the slow uploads hold every turn", || {
        app.desk.spool.turns_free() == 0
    })
    .await;

    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    let form = submission(&app, &mut nvr);
    let started = Instant::now();
    let response = submit_for(&app, "192.0.2.50", form).await;
    let waited = started.elapsed();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    assert!(
        waited < Duration::from_secs(5),
        "the customer waited {waited:?} behind slow uploads"
    );

    for (mut reader, trickle) in slow {
        let mut answer = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut answer)).await;
        trickle.abort();
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("The upload was too slow"), "{text}");
        assert!(text.contains("less than 8 KB a second"), "{text}");
    }
    // Only the customer's ticket: the cut-off uploads left nothing.
    assert_eq!(app.stored_counts().await.0, 1);
    assert_eq!(app.desk.spool.turns_free(), 8, "every turn is back");
}

/// A progressive JPEG whose last refinement scan is repeated to make 300 scans (the
/// issue's was 7000×7000 and took the 20 s decode limit; a small picture passes the
/// scan cap just as well).
fn many_scans_jpeg() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/files/images/progressive-300-scans.jpg"
    );
    std::fs::read(path).unwrap()
}

/// The JPEG is refused at the header walk, before it waits for or takes any share of
/// the picture work: while another job holds the whole decoding budget (a photo proof
/// would wait behind it), each one is refused at once with the scan cap's message.
/// Then seven of them from two addresses at once, as in the issue, and an ordinary
/// customer's submission from a third completes beside them.
async fn jpegs_with_hundreds_of_scans_are_refused_before_decoding(backend: Backend) {
    let Some(app) = spawn_app_on_with(backend, |s| {
        s.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        s.intake.per_ip_per_hour = 100;
    })
    .await
    else {
        return;
    };
    let app = std::sync::Arc::new(app);
    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    let request = app.export(&mut nvr, 0, Timestamp::now());
    let hostile = move || {
        export_part(customer_form("bomb@example.com"), &request, "string").part(
            "label_photo",
            file_part(many_scans_jpeg(), "label.jpg", "image/jpeg"),
        )
    };
    let refused_for_its_scans = |body: &serde_json::Value| {
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.contains("takes too long to read (300 passes;")
                && message.contains("we accept up to 99"),
            "{body}"
        );
    };

    let (started, running) = tokio::sync::oneshot::channel::<()>();
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let holding = {
        let app = app.clone();
        tokio::spawn(async move {
            app.desk
                .pictures
                .run(
                    resetdesk::intake::picture_work::PictureJob::PhotoProof,
                    "192.0.2.99",
                    u64::MAX,
                    move || {
                        let _ = started.send(());
                        let _ = hold.recv();
                    },
                )
                .await
        })
    };
    running.await.expect("the holding job runs");
    for client in ["203.0.113.7", "198.51.100.9"] {
        let response = submit_for(&app, client, hostile()).await;
        assert_eq!(response.status(), 422);
        refused_for_its_scans(&response.json().await.unwrap());
    }
    release.send(()).expect("the holding job waits");
    holding.await.unwrap().expect("the holding job ran");

    let attack: Vec<_> = (0..7)
        .map(|i| {
            let app = app.clone();
            let form = hostile();
            let client = if i % 2 == 0 {
                "203.0.113.7"
            } else {
                "198.51.100.9"
            };
            tokio::spawn(async move {
                let response = submit_for(&app, client, form).await;
                (
                    response.status(),
                    response.json::<serde_json::Value>().await.unwrap(),
                )
            })
        })
        .collect();
    let mut customer_nvr = app.device("DS-7608NI-K2/8P0820231115CCRRJ00000002", "DS-7608NI-K2");
    let form = submission(&app, &mut customer_nvr);
    let started = Instant::now();
    let response = submit_for(&app, "192.0.2.50", form).await;
    let waited = started.elapsed();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    assert!(
        waited < Duration::from_secs(5),
        "the customer waited {waited:?}"
    );
    for attempt in attack {
        let (status, body) = attempt.await.unwrap();
        assert_eq!(status, 422, "{body}");
        refused_for_its_scans(&body);
    }
    assert_eq!(app.stored_counts().await.0, 1, "only the customer's ticket");
}

crate::on_both_backends!(
    slow_uploads_lose_their_turns_to_a_customer_who_sends,
    jpegs_with_hundreds_of_scans_are_refused_before_decoding,
);
