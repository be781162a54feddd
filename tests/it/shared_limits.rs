//! Limits that hold for the deployment (issue 16): several desks on one database, the
//! way replicas behind a load balancer run, with requests spread over them at once, and
//! a desk started afresh on the same database, the way a replica comes back after a
//! kill -9. Customers and attackers see one desk: its limits are the documented ones,
//! not those times the number of replicas, and a restart does not forget them.

use futures_util::future::join_all;
use resetdesk::config::Settings;
use resetdesk::domain::Timestamp;

use crate::desk_support::{
    Backend, TestApp, customer_form, export_part, file_part, label_photo, spawn_app_on_with,
    spawn_app_with,
};

const NVR: &str = "DS-7608NI-K2/8P0820231115CCRRJ12345678";

/// Another desk on `first`'s database (a PostgreSQL database, or the same SQLite file)
/// with its keys, as a replica runs; `configure` as for `first`.
async fn replica_of(first: &TestApp, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let database_url = first.desk.settings.storage.database_url();
    let keys_dir = first.desk.settings.storage.keys_dir.clone();
    spawn_app_with(|s| {
        s.storage.database_url = Some(database_url);
        s.storage.keys_dir = keys_dir;
        configure(s);
    })
    .await
}

/// `first` and two replicas of it.
async fn three_desks(
    backend: Backend,
    configure: impl Fn(&mut Settings) + Clone,
) -> Option<[TestApp; 3]> {
    let first = spawn_app_on_with(backend, configure.clone()).await?;
    let second = replica_of(&first, configure.clone()).await;
    let third = replica_of(&first, configure).await;
    // Machines' clocks differ by a second or so even with NTP (and each test desk's clock
    // is set when it starts): the second replica runs ahead, the third behind.
    let skew = |desk: &TestApp, by: i64| {
        desk.advance(first.now().unix_seconds() - desk.now().unix_seconds() + by)
    };
    skew(&second, 1);
    skew(&third, -1);
    Some([first, second, third])
}

/// The path and query of a status link, to ask any desk for it.
fn path_of(status_url: &str) -> &str {
    &status_url[status_url.find("/status/").expect("a status link")..]
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// Thirty "send me a code" clicks at once, spread over three desks: three codes are
/// mailed (the limit is three an hour), and only one of them opens the response.
async fn thirty_code_requests_over_three_desks_send_three_codes(backend: Backend) {
    let Some(desks) = three_desks(backend, |_| {}).await else {
        return;
    };
    let first = &desks[0];
    let email = "spam.folder@example.com";
    let mut nvr = first.device(NVR, "DS-7608NI-K2");
    let request = first.export(&mut nvr, 1, first.now());
    let form = export_part(customer_form(email), &request, "xml").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    let (number, status_url) = first.submit_form(form).await;
    first.approve_by_api(&number).await;
    first.run_outbox().await;
    let status = path_of(&status_url);
    let (path, query) = status.split_once('?').unwrap();
    let code_path = format!("{path}/code?{query}");
    let response_path = format!("{path}/response?{query}");

    let statuses: Vec<u16> = join_all((0..30).map(|i| {
        let desk = &desks[i % 3];
        let url = desk.url(&code_path);
        async move {
            desk.client
                .post(url)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    }))
    .await;
    assert_eq!(count(&statuses, 200), 3, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 27, "{statuses:?}");

    // Each desk's outbox worker sends what is due by its own clock, to its own mail server.
    for desk in &desks {
        desk.run_outbox().await;
    }
    let codes: Vec<String> = desks
        .iter()
        .flat_map(|desk| desk.mails_to(email))
        .filter(|m| m.subject.contains("Your code"))
        .map(|m| {
            m.text
                .lines()
                .find_map(|line| line.strip_prefix("Your one-time code: "))
                .expect("the code in the mail")
                .trim()
                .to_owned()
        })
        .collect();
    assert_eq!(codes.len(), 3, "three mails with codes");
    // Each code typed in turn, on a desk of its own: one opens the response, and once
    // it has, none of the others does.
    let mut opened = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        let desk = &desks[i % 3];
        let shown = desk
            .client
            .post(desk.url(&response_path))
            .form(&[("code", code.as_str())])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if shown == 200 {
            opened.push(code.clone());
        }
    }
    assert_eq!(opened.len(), 1, "one live code of {codes:?}");
}

/// Twelve requests at once from one IPv6 network, over three desks: four get through
/// (the limit is four an hour, one /64 counting as one client), and a desk started
/// afresh on the same database still refuses that network.
async fn intake_per_address_holds_over_replicas_and_a_restart(backend: Backend) {
    let settings = |s: &mut Settings| {
        s.intake.per_ip_per_hour = 4;
        s.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    };
    let Some(desks) = three_desks(backend, settings).await else {
        return;
    };
    // The body does not matter: the address is counted before it is read.
    let post = |desk: &TestApp, client: String| {
        desk.client
            .post(desk.url("/api/v1/requests"))
            .header("x-forwarded-for", client)
            .multipart(customer_form("burst@example.com"))
            .send()
    };
    let responses =
        join_all((0..12).map(|i| post(&desks[i % 3], format!("2001:db8:1:2::{:x}", i + 1)))).await;
    let mut statuses = Vec::new();
    for response in responses {
        let response = response.unwrap();
        let status = response.status().as_u16();
        if status == 429 {
            let retry: i64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=3600).contains(&retry), "{retry}");
        }
        statuses.push(status);
    }
    assert_eq!(count(&statuses, 429), 8, "{statuses:?}");
    assert_eq!(count(&statuses, 422), 4, "counted, then read: {statuses:?}");

    let restarted = replica_of(&desks[0], settings).await;
    let again = post(&restarted, "2001:db8:1:2::99".to_owned())
        .await
        .unwrap();
    assert_eq!(again.status(), 429, "a restart does not forget the count");
    let other = post(&restarted, "2001:db8:1:3::1".to_owned())
        .await
        .unwrap();
    assert_eq!(other.status(), 422, "the next /64 is another client");
}

/// Six genuine exports of one device at once, over three desks: two get through (the
/// limit is two an hour), and a desk started afresh on the same database still refuses
/// that device.
async fn intake_per_serial_holds_over_replicas_and_a_restart(backend: Backend) {
    let settings = |s: &mut Settings| {
        s.intake.per_serial_per_hour = 2;
        s.intake.per_ip_per_hour = 0;
    };
    let Some(desks) = three_desks(backend, settings).await else {
        return;
    };
    let mut nvr = desks[0].device(NVR, "DS-7608NI-K2");
    let mut submission = || {
        let request = desks[0].export(&mut nvr, 0, Timestamp::now());
        export_part(customer_form("owner@example.com"), &request, "string").part(
            "label_photo",
            file_part(label_photo(), "label.jpg", "image/jpeg"),
        )
    };
    let forms: Vec<_> = (0..6).map(|_| submission()).collect();
    let statuses: Vec<u16> = join_all(forms.into_iter().enumerate().map(|(i, form)| {
        let desk = &desks[i % 3];
        async move { desk.submit(form).await.status().as_u16() }
    }))
    .await;
    assert_eq!(count(&statuses, 429), 4, "{statuses:?}");

    let restarted = replica_of(&desks[0], settings).await;
    let again = restarted.submit(submission()).await;
    assert_eq!(again.status(), 429, "a restart does not forget the count");
    let body: serde_json::Value = again.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("try again in"),
        "{body}"
    );
}

crate::on_both_backends!(
    thirty_code_requests_over_three_desks_send_three_codes,
    intake_per_address_holds_over_replicas_and_a_restart,
    intake_per_serial_holds_over_replicas_and_a_restart,
);
