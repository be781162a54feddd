//! Attacks a red team ran on issue 15's fixes, each kept as a test: a correction that
//! moves a request out from under the address rules, and an agent who redirects a
//! response and then approves sending it there. (The version 1 downgrade is in
//! stitched.rs, the IPv6 upload rotation in throttling.rs.)

use resetdesk::domain::{EmailAddress, Role, TicketNumber};
use resetdesk::protocol::PROTOCOL_V2;
use serde_json::Value;

use crate::desk_support::{
    Backend, TestApp, browser, customer_form, export_part, file_part, keys_in, label_photo,
    spawn_app_on, spawn_app_on_with,
};
use crate::html;

const CAMERA: &str = "DS-2CD2143G2-I/REDTEAM000000001";

fn export_form(app: &TestApp, email: &str) -> reqwest::multipart::Form {
    let mut camera = app.device(CAMERA, "DS-2CD2143G2-I");
    let export = app.export_in(PROTOCOL_V2, &mut camera, 0, app.now());
    export_part(customer_form(email), &export, "xml").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    )
}

async fn approve(app: &TestApp, token: &str, number: &str) -> (u16, Value) {
    let response = app
        .api_post(
            token,
            &format!("/api/v1/tickets/{number}/approve"),
            serde_json::json!({}),
        )
        .await;
    (response.status().as_u16(), response.json().await.unwrap())
}

/// A customer sends from a harmless address, then corrects it to a watch-listed domain:
/// the watch list (and the insider rules) are asked again, so one approval is not enough.
async fn a_correction_is_judged_by_the_address_rules_again(backend: Backend) {
    let Some(app) = spawn_app_on_with(backend, |s| {
        s.four_eyes.watch_domains = vec!["evil.example".to_owned()];
    })
    .await
    else {
        return;
    };
    let agent = app.token_for("alice@vendor.test", &[Role::Agent]).await;
    let browser = browser();
    let page = browser
        .post(app.url("/"))
        .multipart(export_form(&app, "harmless@ok.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 201);
    let page = page.text().await.unwrap();
    let number = html::text(&page, "#ticket-number");
    assert!(app.ticket_flags(&agent, &number).await.is_empty());
    let check = html::select_attr(&page, "input[name=check]", "value");
    let fixed = browser
        .post(app.url(&format!("/requests/{number}/address")))
        .form(&[("email", "mallory@evil.example"), ("check", check.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(fixed.status(), 200);

    let flags = app.ticket_flags(&agent, &number).await;
    assert!(
        flags
            .contains(&"the customer's e-mail domain evil.example is on the watch list".to_owned()),
        "{flags:?}"
    );
    let (status, body) = approve(&app, &agent, &number).await;
    assert_eq!(status, 202, "one approval of two: {body}");
    app.run_outbox().await;
    assert!(
        app.mails_to("mallory@evil.example")
            .iter()
            .all(|mail| keys_in(mail).is_empty()),
        "nothing signed after one approval"
    );
}

/// An agent redirects a ticket to a drop box ("the customer phoned"), a supervisor
/// approves, and the agent tries to give the second approval: refused, and audited.
async fn whoever_redirects_a_response_cannot_approve_it(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let sam = app.token_for("sam@vendor.test", &[Role::Supervisor]).await;
    let mallory = app.token_for("mallory@vendor.test", &[Role::Agent]).await;
    let kim = app.token_for("kim@vendor.test", &[Role::Agent]).await;
    let response = app.submit(export_form(&app, "owner@example.com")).await;
    assert_eq!(response.status(), 201);
    let number = response.json::<Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    // Sam reads the ticket (and its ETag) before the address changes.
    let seen = app
        .api_get(&sam, &format!("/api/v1/tickets/{number}"))
        .await;
    let etag = seen.headers()["etag"].to_str().unwrap().to_owned();
    let user = app
        .desk
        .store
        .user_by_email(&EmailAddress::parse("mallory@vendor.test").unwrap())
        .await
        .unwrap();
    resetdesk::review::correct_address(
        &app.desk,
        &user,
        &TicketNumber::parse(&number).unwrap(),
        "dropbox@attacker.example",
    )
    .await
    .unwrap();
    // Sam's approval of what he saw is stale: the address is part of the evidence.
    let stale = app
        .client
        .post(app.url(&format!("/api/v1/tickets/{number}/approve")))
        .bearer_auth(&sam)
        .header("If-Match", etag)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    assert_eq!(approve(&app, &sam, &number).await.0, 202);
    let (status, body) = approve(&app, &mallory, &number).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("you changed this ticket's customer address"),
        "{body}"
    );
    app.run_outbox().await;
    assert!(
        app.mails_to("dropbox@attacker.example")
            .iter()
            .all(|mail| keys_in(mail).is_empty()),
        "nothing signed for the drop box"
    );
    // Someone who did not redirect it may give the second approval.
    assert_eq!(approve(&app, &kim, &number).await.0, 200);
}

/// The same export sent again with the owner's address: only the browser that sent the
/// request sees the status link; anyone who merely types that address (it is often in
/// the export) gets the ticket number, and the link goes to the address.
async fn only_the_sending_browser_sees_the_link_again(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let mut camera = app.device(CAMERA, "DS-2CD2143G2-I");
    let export = app.export_in(PROTOCOL_V2, &mut camera, 0, app.now());
    let form = || {
        export_part(customer_form("owner@example.com"), &export, "xml").part(
            "label_photo",
            file_part(label_photo(), "label.jpg", "image/jpeg"),
        )
    };
    let owners = browser();
    let first = owners
        .post(app.url("/"))
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let first = first.text().await.unwrap();
    let link = html::select_attr(&first, "#status-link", "href");

    let again = owners
        .post(app.url("/"))
        .multipart(form())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        again.contains(&link),
        "the sending browser sees its link: {again}"
    );

    let strangers = browser()
        .post(app.url("/"))
        .multipart(form())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!strangers.contains("id=\"status-link\""), "{strangers}");
    assert!(
        strangers.contains("its status link went to the e-mail address given with it"),
        "{strangers}"
    );
}

crate::on_both_backends!(
    only_the_sending_browser_sees_the_link_again,
    a_correction_is_judged_by_the_address_rules_again,
    whoever_redirects_a_response_cannot_approve_it,
);
