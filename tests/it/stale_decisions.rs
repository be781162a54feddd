//! Two replicas of the desk on one database (issue 16): a customer's new label photo
//! racing an agent's rejection or a newer export never reopens the ticket; an approval
//! from a page opened before the new photo is refused, in the console and in the API
//! (`If-Match` on the ticket's `ETag`); and of two agents claiming one ticket at once,
//! exactly one holds it.

use resetdesk::device::DeviceState;
use resetdesk::domain::{Role, TicketNumber, Timestamp};
use serde_json::Value;

use crate::desk_support::{
    Backend, TestApp, csrf, export_part, file_part, label_photo, spawn_app_on_with, spawn_app_with,
};
use crate::html;

const MODEL: &str = "DS-2CD2143G2-I";

/// Two desks on one database, one key directory and one blob directory, as two replicas
/// behind a load balancer; `None` when the backend cannot run here.
async fn two_replicas(backend: Backend) -> Option<(TestApp, TestApp)> {
    let first = spawn_app_on_with(backend, |s| s.intake.per_ip_per_hour = 100_000).await?;
    let (database_url, data_dir, keys_dir) = (
        first.desk.settings.storage.database_url.clone(),
        first.desk.settings.storage.data_dir.clone(),
        first.desk.settings.storage.keys_dir.clone(),
    );
    let second = spawn_app_with(|s| {
        s.storage.database_url = database_url;
        s.storage.data_dir = data_dir;
        s.storage.keys_dir = keys_dir;
        s.intake.per_ip_per_hour = 100_000;
    })
    .await;
    Some((first, second))
}

/// Submits `device`'s export made at `issued_at` through the API; returns the response.
async fn submit(
    app: &TestApp,
    device: &mut DeviceState,
    email: &str,
    issued_at: Timestamp,
) -> reqwest::Response {
    let request = app.export(device, 0, issued_at);
    let form = export_part(crate::desk_support::customer_form(email), &request, "xml").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    app.submit(form).await
}

async fn ticket_of(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["ticket"].as_str().unwrap().to_owned()
}

/// The ticket's new-photo link (the one the photo request mails), on `replica`.
fn photo_link(replica: &TestApp, any: &TestApp, number: &str) -> String {
    let link = any.desk.photo_url(&TicketNumber::parse(number).unwrap());
    let path = &link[link.find("/status/").unwrap()..];
    replica.url(path)
}

async fn send_photo(app: &TestApp, link: &str) -> u16 {
    let form = reqwest::multipart::Form::new().part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    app.client
        .post(link)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn detail(app: &TestApp, token: &str, number: &str) -> Value {
    let response = app
        .api_get(token, &format!("/api/v1/tickets/{number}"))
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Before the fix, on PostgreSQL: the photo read "awaiting photo", the rejection (or the
/// newer export's supersede) committed, and the photo's update by id put the ticket back
/// in the queue, where it could be approved and signed.
async fn a_new_photo_never_reopens_a_rejected_or_superseded_ticket(backend: Backend) {
    let Some((one, two)) = two_replicas(backend).await else {
        return;
    };
    one.create_agent("agent@vendor.test").await;
    let agent = one.sign_in("agent@vendor.test").await;
    let token = one.agent_token("api@vendor.test").await;
    let rounds: u64 = 30;
    let (mut reopened, mut raced) = (Vec::new(), 0);
    for i in 0..rounds {
        let mut device = one.device(&format!("DS-2CD2143G2-I20240101{i:08}"), MODEL);
        let email = format!("race{i}@example.com");
        let issued = one.now().unix_seconds() - 60;
        let number = ticket_of(
            submit(
                &one,
                &mut device,
                &email,
                Timestamp::from_unix_seconds(issued).unwrap(),
            )
            .await,
        )
        .await;
        assert_eq!(
            one.console_action(&agent, &number, "request-photo", &[("note", "glare")])
                .await,
            303
        );
        let link = photo_link(&two, &one, &number);
        // Spread over the photo's own processing time, as the 0–60 ms apart.
        let delay = std::time::Duration::from_millis((i * 7) % 60);
        let supersede = i % 3 == 2;
        let decide = async {
            tokio::time::sleep(delay).await;
            if supersede {
                let newer = Timestamp::from_unix_seconds(issued + 30).unwrap();
                submit(&one, &mut device, &email, newer)
                    .await
                    .status()
                    .as_u16()
            } else {
                one.api_post(
                    &token,
                    &format!("/api/v1/tickets/{number}/reject"),
                    serde_json::json!({"reason": "the label is not readable"}),
                )
                .await
                .status()
                .as_u16()
            }
        };
        let (photo, decided) = tokio::join!(send_photo(&two, &link), decide);
        let after = detail(&two, &token, &number).await;
        let status = after["status"].as_str().unwrap().to_owned();
        if photo == 200 && (decided == 200 || decided == 201) {
            raced += 1;
        }
        let expected = match (supersede, decided) {
            (false, 200) => "rejected",
            (true, 201) => "superseded",
            // The photo came first and the decision found a newer photo: it stays open.
            _ => "open",
        };
        if status != expected {
            reopened.push(format!(
                "{number}: photo {photo}, decision {decided}, status {status}"
            ));
        }
        // Nothing decided gets signed, whichever replica is asked.
        if expected != "open" {
            let approve = one
                .api_post(
                    &token,
                    &format!("/api/v1/tickets/{number}/approve"),
                    serde_json::json!({}),
                )
                .await;
            assert_eq!(approve.status(), 409, "{number} ({expected})");
            assert!(
                detail(&one, &token, &number).await["responses"]
                    .as_array()
                    .unwrap()
                    .is_empty()
            );
        }
    }
    assert!(reopened.is_empty(), "tickets reopened: {reopened:#?}");
    eprintln!("{raced} of {rounds} rounds had both the photo and the decision accepted");
}

/// Agent A opens the ticket; agent B asks for a new photo; the customer sends a different
/// one; A approves from the page opened before. Nothing may be signed on a photo A never
/// saw: the console refuses and shows the ticket as it is now, where A's approval goes through.
async fn an_approval_from_a_page_older_than_the_photo_is_refused_in_the_console(backend: Backend) {
    let Some((one, two)) = two_replicas(backend).await else {
        return;
    };
    one.create_agent("a@vendor.test").await;
    one.create_agent("b@vendor.test").await;
    let a = one.sign_in("a@vendor.test").await;
    let b = one.sign_in("b@vendor.test").await;
    let mut device = one.device("DS-2CD2143G2-I20240101AAAA0001", MODEL);
    let number = ticket_of(submit(&one, &mut device, "owner@example.com", one.now()).await).await;

    let seen_by_a = one
        .console_page(&a, &format!("/console/tickets/{number}"))
        .await;
    let shown_version = html::select_attr(&seen_by_a, "input[name=evidence_version]", "value");
    assert!(
        seen_by_a.contains("id=\"claim-meaning\""),
        "the page says what claiming means"
    );
    assert_eq!(
        two.console_action(&b, &number, "request-photo", &[("note", "blurred")])
            .await,
        303
    );
    assert_eq!(
        send_photo(&two, &photo_link(&two, &one, &number)).await,
        200
    );

    let stale = a
        .post(one.url(&format!("/console/tickets/{number}/approve")))
        .form(&[
            ("csrf", csrf(&seen_by_a).as_str()),
            ("evidence_version", shown_version.as_str()),
            ("note", "label matches"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 409);
    let page = stale.text().await.unwrap();
    assert!(
        page.contains("the ticket changed since you opened it"),
        "{page}"
    );
    // The page says why, once: a new photo since A looked; the one A saw is kept beside
    // it, as the customer sent it.
    assert!(
        html::text(&page, "#new-photo").starts_with("New label photo since you last looked"),
        "{page}"
    );
    assert!(html::text(&page, "#earlier-photos").contains("Photo 1, replaced"));
    let earlier = a
        .get(one.url(&format!("/console/tickets/{number}/label?earlier=1")))
        .send()
        .await
        .unwrap();
    assert_eq!(earlier.status(), 200);
    assert_eq!(earlier.headers()["content-type"], "image/jpeg");
    assert_eq!(earlier.bytes().await.unwrap().to_vec(), label_photo());
    let missing = a
        .get(one.url(&format!("/console/tickets/{number}/label?earlier=2")))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let again = one
        .console_page(&a, &format!("/console/tickets/{number}"))
        .await;
    assert!(!again.contains("id=\"new-photo\""), "said once");
    // B asked for the photo and has not looked since: B is told too.
    let bs = two
        .console_page(&b, &format!("/console/tickets/{number}"))
        .await;
    assert!(bs.contains("id=\"new-photo\""));
    let token = one.agent_token("reader@vendor.test").await;
    let now = detail(&one, &token, &number).await;
    assert_eq!(now["status"], "open");
    assert!(now["responses"].as_array().unwrap().is_empty());

    // The same refusal for a rejection or a photo request from the old page.
    for (action, field, text) in [
        ("reject", "reason", "unreadable"),
        ("request-photo", "note", "again"),
    ] {
        let refused = a
            .post(one.url(&format!("/console/tickets/{number}/{action}")))
            .form(&[
                ("csrf", csrf(&seen_by_a).as_str()),
                ("evidence_version", shown_version.as_str()),
                (field, text),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 409, "{action}");
    }
    assert_eq!(detail(&one, &token, &number).await["status"], "open");

    // Looking again (the page now carries the new version), A's approval signs.
    assert_eq!(one.console_action(&a, &number, "approve", &[]).await, 303);
    let signed = detail(&two, &token, &number).await;
    assert_eq!(signed["status"], "approved");
    assert_eq!(signed["responses"].as_array().unwrap().len(), 1);
}

/// The API takes the same precondition: `If-Match` with the `ETag` of
/// `GET /api/v1/tickets/{id}`; a stale one is a 412 that signs nothing.
async fn an_api_decision_with_a_stale_if_match_is_refused(backend: Backend) {
    let Some((one, two)) = two_replicas(backend).await else {
        return;
    };
    one.create_agent("b@vendor.test").await;
    let b = one.sign_in("b@vendor.test").await;
    let token = one.agent_token("a@vendor.test").await;
    let mut device = one.device("DS-2CD2143G2-I20240101AAAA0002", MODEL);
    let number = ticket_of(submit(&one, &mut device, "owner@example.com", one.now()).await).await;
    let path = format!("/api/v1/tickets/{number}");

    let opened = one.api_get(&token, &path).await;
    let etag = opened.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, "\"evidence-1\"");
    assert_eq!(
        one.console_action(&b, &number, "request-photo", &[]).await,
        303
    );
    assert_eq!(
        send_photo(&two, &photo_link(&two, &one, &number)).await,
        200
    );

    for (action, body) in [
        ("approve", serde_json::json!({})),
        ("reject", serde_json::json!({"reason": "unreadable"})),
    ] {
        let refused = two
            .client
            .post(two.url(&format!("{path}/{action}")))
            .bearer_auth(&token)
            .header("If-Match", &etag)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 412, "{action}");
        let said: Value = refused.json().await.unwrap();
        assert!(
            said["error"]["message"]
                .as_str()
                .unwrap()
                .contains("the ticket changed since you opened it"),
            "{said}"
        );
    }
    let garbage = two
        .client
        .post(two.url(&format!("{path}/approve")))
        .bearer_auth(&token)
        .header("If-Match", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 412);
    let now = detail(&one, &token, &number).await;
    assert_eq!(now["status"], "open");
    assert!(now["responses"].as_array().unwrap().is_empty());

    let fresh = two.api_get(&token, &path).await;
    let etag = fresh.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, "\"evidence-2\"");
    let approved = one
        .client
        .post(one.url(&format!("{path}/approve")))
        .bearer_auth(&token)
        .header("If-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    assert_eq!(
        detail(&two, &token, &number).await["responses"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// Two agents claim one ticket at the same moment through two replicas: one holds the
/// claim, the other is told who does. In the console, a second agent is refused the
/// same way, and a supervisor takes the claim over only by saying so, audited.
async fn of_two_agents_claiming_at_once_exactly_one_holds_the_ticket(backend: Backend) {
    let Some((one, two)) = two_replicas(backend).await else {
        return;
    };
    let alice = one.agent_token("alice@vendor.test").await;
    let bob = one.agent_token("bob@vendor.test").await;
    for i in 0..10 {
        let mut device = one.device(&format!("DS-2CD2143G2-I20240101CCCC{i:04}"), MODEL);
        let number =
            ticket_of(submit(&one, &mut device, &format!("c{i}@example.com"), one.now()).await)
                .await;
        let claim = format!("/api/v1/tickets/{number}/claim");
        let (first, second) = tokio::join!(
            one.api_post(&alice, &claim, serde_json::json!({})),
            two.api_post(&bob, &claim, serde_json::json!({})),
        );
        let mut answers = vec![
            (first.status().as_u16(), first.text().await.unwrap()),
            (second.status().as_u16(), second.text().await.unwrap()),
        ];
        answers.sort();
        assert_eq!(
            (answers[0].0, answers[1].0),
            (200, 409),
            "{number}: {answers:?}"
        );
        let holder = detail(&one, &alice, &number).await["claimed_by"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            answers[1]
                .1
                .contains(&format!("already claimed by {holder}")),
            "{answers:?}"
        );
        // The holder claiming again is no conflict.
        let again = if holder == "alice@vendor.test" {
            (&one, &alice)
        } else {
            (&two, &bob)
        };
        assert_eq!(
            again
                .0
                .api_post(again.1, &claim, serde_json::json!({}))
                .await
                .status(),
            200
        );
    }

    one.create_agent("carol@vendor.test").await;
    one.create_agent("dave@vendor.test").await;
    one.create_user("sue@vendor.test", &[Role::Supervisor])
        .await;
    let (carol, dave, sue) = (
        one.sign_in("carol@vendor.test").await,
        one.sign_in("dave@vendor.test").await,
        one.sign_in("sue@vendor.test").await,
    );
    let mut device = one.device("DS-2CD2143G2-I20240101DDDD0001", MODEL);
    let number = ticket_of(submit(&one, &mut device, "d@example.com", one.now()).await).await;
    assert_eq!(one.console_action(&carol, &number, "claim", &[]).await, 303);
    let page = two
        .console_page(&dave, &format!("/console/tickets/{number}"))
        .await;
    let refused = dave
        .post(two.url(&format!("/console/tickets/{number}/claim")))
        .form(&[("csrf", csrf(&page).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    let said = refused.text().await.unwrap();
    assert!(
        said.contains("already claimed by carol@vendor.test"),
        "{said}"
    );
    assert!(
        !said.contains("id=\"take-over\""),
        "an agent cannot take over"
    );
    let page = one
        .console_page(&sue, &format!("/console/tickets/{number}"))
        .await;
    assert!(page.contains("id=\"take-over\""), "{page}");
    assert_eq!(
        one.console_action(&sue, &number, "claim", &[("take_over", "yes")])
            .await,
        303
    );
    let now = detail(&one, &alice, &number).await;
    assert_eq!(now["claimed_by"], "sue@vendor.test");
    let taken = one
        .desk
        .store
        .recent_audit(Some("sue@vendor.test"), Some("claim.taken_over"), 5)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert!(taken[0].detail.contains("carol@vendor.test"));
}

crate::on_both_backends!(
    a_new_photo_never_reopens_a_rejected_or_superseded_ticket,
    an_approval_from_a_page_older_than_the_photo_is_refused_in_the_console,
    an_api_decision_with_a_stale_if_match_is_refused,
    of_two_agents_claiming_at_once_exactly_one_holds_the_ticket,
);
