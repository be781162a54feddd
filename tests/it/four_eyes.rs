//! Four eyes over HTTP: risk rules flag a ticket; a flagged ticket is signed only by a
//! second approval from another person, at least one a supervisor; roles are enforced.

use resetdesk::domain::Role;
use serde_json::Value;

use crate::desk_support::{
    Backend, TestApp, customer_form, export_part, file_part, label_photo, spawn_app_on,
    spawn_app_with,
};

const NVR: &str = "DS-7608NI-K2/8P0820231115CCRRJ12345678";

async fn token_for(app: &TestApp, email: &str, roles: &[Role]) -> String {
    app.token_for(email, roles).await
}

async fn submit(app: &TestApp, cameras: usize, email: &str) -> (String, Value) {
    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    let request = app.export(&mut nvr, cameras, app.now());
    let form = export_part(customer_form(email), &request, "xml").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    let body: Value = app.submit(form).await.json().await.unwrap();
    let ticket = body["ticket"].as_str().unwrap().to_owned();
    (ticket, body)
}

async fn approve(app: &TestApp, token: &str, ticket: &str, note: &str) -> (u16, Value) {
    let response = app
        .api_post(
            token,
            &format!("/api/v1/tickets/{ticket}/approve"),
            serde_json::json!({"note": note}),
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn a_flagged_ticket_needs_two_people_one_a_supervisor(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let alice = token_for(&app, "alice@vendor.test", &[Role::Agent]).await;
    let bob = token_for(&app, "bob@vendor.test", &[Role::Agent]).await;
    let sam = token_for(&app, "sam@vendor.test", &[Role::Supervisor]).await;
    // An NVR with four cameras: five devices in one export fires a risk rule.
    let (ticket, _) = submit(&app, 4, "five@example.com").await;
    let detail: Value = app
        .api_get(&alice, &format!("/api/v1/tickets/{ticket}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        detail["flags"][0]
            .as_str()
            .unwrap()
            .contains("5 devices in one export"),
        "{detail}"
    );

    let (status, body) = approve(&app, &alice, &ticket, "label and export match").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["approvals"], 1);
    let (status, _) = approve(&app, &alice, &ticket, "").await;
    assert_eq!(
        status, 409,
        "the same person cannot give the second approval"
    );
    let (status, body) = approve(&app, &bob, &ticket, "").await;
    assert_eq!(status, 403, "two agents are not enough: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("supervisor")
    );
    app.run_outbox().await;
    assert!(
        app.mails_to("five@example.com")
            .iter()
            .all(|m| !m.subject.contains("response")),
        "nothing signed yet"
    );

    let detail: Value = app
        .api_get(&sam, &format!("/api/v1/tickets/{ticket}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        detail["approvals"][0]["note"], "label and export match",
        "the second approver sees the first note"
    );
    assert!(detail["responses"].as_array().unwrap().is_empty());
    let (status, body) = approve(&app, &sam, &ticket, "agreed").await;
    assert_eq!(status, 200, "{body}");
    app.run_outbox().await;
    let mails = app.mails_to("five@example.com");
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.subject.contains("response"))
            .count(),
        1
    );
    let detail: Value = app
        .api_get(&sam, &format!("/api/v1/tickets/{ticket}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["responses"].as_array().unwrap().len(), 5);
}

async fn a_repeat_request_and_a_watched_domain_are_flagged(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let agent = token_for(&app, "agent@vendor.test", &[Role::Agent]).await;
    let (first, _) = submit(&app, 0, "one@example.com").await;
    let (second, _) = submit(&app, 0, "one@example.com").await;
    let queue: Value = app
        .api_get(&agent, "/api/v1/tickets?status=all")
        .await
        .json()
        .await
        .unwrap();
    let flags_of = |number: &str| {
        queue["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["ticket"] == number)
            .unwrap()["flags"]
            .clone()
    };
    assert_eq!(flags_of(&first), serde_json::json!([]));
    assert!(
        flags_of(&second)[0]
            .as_str()
            .unwrap()
            .contains("another request for"),
        "{queue}"
    );

    let watched =
        spawn_app_with(|s| s.four_eyes.watch_domains = vec!["suspicious.test".to_owned()]).await;
    let agent = token_for(&watched, "agent@vendor.test", &[Role::Agent]).await;
    let (ticket, _) = submit(&watched, 0, "someone@suspicious.test").await;
    let detail: Value = watched
        .api_get(&agent, &format!("/api/v1/tickets/{ticket}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        detail["flags"][0].as_str().unwrap().contains("watch list"),
        "{detail}"
    );
}

async fn roles_and_own_tickets_are_enforced(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let admin = token_for(&app, "admin@vendor.test", &[Role::Admin]).await;
    let agent = token_for(&app, "agent@vendor.test", &[Role::Agent]).await;
    let (ticket, _) = submit(&app, 0, "agent@vendor.test").await;
    let (status, body) = approve(&app, &admin, &ticket, "").await;
    assert_eq!(status, 403, "an admin alone decides no tickets: {body}");
    let (status, body) = approve(&app, &agent, &ticket, "").await;
    assert_eq!(
        status, 403,
        "nobody approves a ticket with their own e-mail: {body}"
    );
    let (tagged, _) = submit(&app, 0, "Agent+again@vendor.test").await;
    let (status, _) = approve(&app, &agent, &tagged, "").await;
    assert_eq!(
        status, 403,
        "a +tag or capital letters make no other person"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("your own")
    );
    let reject = app
        .api_post(
            &admin,
            &format!("/api/v1/tickets/{ticket}/reject"),
            serde_json::json!({"reason": "x"}),
        )
        .await;
    assert_eq!(reject.status(), 403);
}

crate::on_both_backends!(
    a_flagged_ticket_needs_two_people_one_a_supervisor,
    a_repeat_request_and_a_watched_domain_are_flagged,
    roles_and_own_tickets_are_enforced,
);
