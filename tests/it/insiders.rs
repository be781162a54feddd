//! Insiders over HTTP: an agent who sends a request for their own device from an address
//! that is theirs (as written on their console account, or at a staff domain) cannot
//! approve it alone; a disabled user's API tokens stay dead when the user is enabled
//! again; an admin and an account they just created or armed are not two people.

use resetdesk::domain::{EmailAddress, Role, Roles};
use serde_json::Value;

use crate::desk_support::{
    Backend, TestApp, csrf, customer_form, export_part, file_part, label_photo, spawn_app_on,
    spawn_app_on_with,
};

/// A new API token (decide scope) for an existing user.
async fn token_of(app: &TestApp, email: &str) -> String {
    let user = app
        .desk
        .store
        .user_by_email(&EmailAddress::parse(email).unwrap())
        .await
        .unwrap();
    let (plain, token_hash) = resetdesk::auth::new_api_token();
    let token = resetdesk::store::NewApiToken {
        user: user.id,
        token_hash: &token_hash,
        name: "test",
        scope: resetdesk::store::TokenScope::Decide,
        expires_at: None,
        created_at: app.now(),
    };
    app.desk.store.create_api_token(&token).await.unwrap();
    plain
}

/// A user (made by the test, not by an admin of the desk) and a token for them.
async fn user_with_token(app: &TestApp, email: &str, roles: &[Role]) -> String {
    let hash = resetdesk::auth::hash_password("correct horse battery staple").unwrap();
    app.desk
        .store
        .create_user(
            &EmailAddress::parse(email).unwrap(),
            &hash,
            Roles::of(roles).unwrap(),
            "test",
            app.now(),
        )
        .await
        .unwrap();
    token_of(app, email).await
}

/// Submits an export of the NVR with serial number ending in `n` (each ticket its own
/// device, so no ticket supersedes another) and `cameras` cameras; returns the ticket.
async fn submit(app: &TestApp, n: u32, cameras: usize, email: &str) -> String {
    let mut nvr = app.device(
        &format!("DS-7608NI-K2/8P0820231115CCRRJ1234567{n}"),
        "DS-7608NI-K2",
    );
    let request = app.export(&mut nvr, cameras, app.now());
    let form = export_part(customer_form(email), &request, "xml").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    let response = app.submit(form).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["ticket"].as_str().unwrap().to_owned()
}

async fn flags(app: &TestApp, token: &str, ticket: &str) -> Vec<String> {
    app.ticket_flags(token, ticket).await
}

/// Approves through the API: the status and the error message, if any.
async fn approve(app: &TestApp, token: &str, ticket: &str) -> (u16, String) {
    let response = app
        .api_post(
            token,
            &format!("/api/v1/tickets/{ticket}/approve"),
            serde_json::json!({"note": ""}),
        )
        .await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap_or("").to_owned();
    (status, message)
}

/// Approves through the console: the status and the page.
async fn approve_in_console(
    app: &TestApp,
    browser: &reqwest::Client,
    ticket: &str,
) -> (u16, String) {
    let page = app
        .console_page(browser, &format!("/console/tickets/{ticket}"))
        .await;
    let response = browser
        .post(app.url(&format!("/console/tickets/{ticket}/approve")))
        .form(&[("csrf", csrf(&page).as_str()), ("note", "")])
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn audited(app: &TestApp, actor: &str, action: &str) -> Vec<String> {
    app.desk
        .store
        .recent_audit(Some(actor), Some(action), 20)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.detail)
        .collect()
}

fn response_mails(app: &TestApp, to: &str) -> usize {
    app.mails_to(to)
        .iter()
        .filter(|m| m.subject.contains("response"))
        .count()
}

async fn an_agent_cannot_approve_their_own_request_sent_from_their_address(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    // Jo's console account is a Gmail address; Jo's request comes from the same inbox
    // written another way: capitals, a +tag, no dots, googlemail.com.
    app.create_user("jo.smith@gmail.com", &[Role::Agent, Role::Supervisor])
        .await;
    let jo = token_of(&app, "jo.smith@gmail.com").await;
    let alice = user_with_token(&app, "alice@vendor.test", &[Role::Agent]).await;
    let sam = user_with_token(&app, "sam@vendor.test", &[Role::Supervisor]).await;
    let own = "JoSmith+cam@googlemail.com";
    let ticket = submit(&app, 1, 0, own).await;
    assert_eq!(
        flags(&app, &alice, &ticket).await,
        ["the customer's address is the address of console user jo.smith@gmail.com"],
        "one device and a fresh export: only the address flags it"
    );

    let (status, message) = approve(&app, &jo, &ticket).await;
    assert_eq!(status, 403, "{message}");
    assert!(
        message.contains("your own") && message.contains("two other people"),
        "{message}"
    );
    let console = app.sign_in("jo.smith@gmail.com").await;
    let (status, page) = approve_in_console(&app, &console, &ticket).await;
    assert_eq!(status, 403);
    assert!(
        page.contains("your console address jo.smith@gmail.com"),
        "{page}"
    );
    assert_eq!(
        audited(&app, "jo.smith@gmail.com", "approve_refused")
            .await
            .len(),
        2
    );

    // Two other people can, and only the second signs.
    assert_eq!(approve(&app, &alice, &ticket).await.0, 202);
    app.run_outbox().await;
    assert_eq!(
        response_mails(&app, own),
        0,
        "nothing signed after one approval"
    );
    let (status, message) = approve(&app, &sam, &ticket).await;
    assert_eq!(status, 200, "{message}");
    app.run_outbox().await;
    assert_eq!(response_mails(&app, own), 1);
}

async fn a_staff_address_or_a_later_console_user_needs_four_eyes(backend: Backend) {
    let Some(app) = spawn_app_on_with(backend, |s| {
        s.four_eyes.staff_domains = vec!["vendor.test".to_owned()];
    })
    .await
    else {
        return;
    };
    let alice = user_with_token(&app, "alice@vendor.test", &[Role::Agent]).await;
    let bob = user_with_token(&app, "bob@vendor.test", &[Role::Agent]).await;
    let sam = user_with_token(&app, "sam@vendor.test", &[Role::Supervisor]).await;

    let staff = submit(&app, 1, 0, "someone@eu.vendor.test").await;
    assert_eq!(
        flags(&app, &alice, &staff).await,
        ["the customer's address belongs to staff: vendor.test is a staff domain"]
    );
    assert_eq!(
        approve(&app, &alice, &staff).await.0,
        202,
        "one approval is not enough"
    );
    let (status, message) = approve(&app, &bob, &staff).await;
    assert_eq!(status, 403, "and two agents neither: {message}");
    assert_eq!(approve(&app, &sam, &staff).await.0, 200);

    // A request from an outside address, whose owner becomes a console user afterwards:
    // checked again at approval, it needs four eyes and never its owner's approval.
    let later = submit(&app, 2, 0, "late.comer@example.com").await;
    assert!(flags(&app, &alice, &later).await.is_empty());
    let late = user_with_token(&app, "Late.Comer@example.com", &[Role::Supervisor]).await;
    let (status, message) = approve(&app, &late, &later).await;
    assert_eq!(status, 403, "{message}");
    assert!(message.contains("your own"), "{message}");
    assert_eq!(approve(&app, &bob, &later).await.0, 202, "four eyes now");
    assert_eq!(approve(&app, &sam, &later).await.0, 200);
    app.run_outbox().await;
    assert_eq!(response_mails(&app, "late.comer@example.com"), 1);
}

/// The id of `email`'s row on the admin's users page.
fn user_id(page: &str, email: &str) -> String {
    let action = crate::html::select_attr_where(page, "#users tbody tr", email, "form", "action");
    action
        .strip_prefix("/console/admin/users/")
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

/// Posts an admin form from the users page; returns the status.
async fn admin_post(
    app: &TestApp,
    admin: &reqwest::Client,
    action: &str,
    fields: &[(&str, &str)],
) -> u16 {
    let page = app.console_page(admin, "/console/admin/users").await;
    let token = csrf(&page);
    let mut form = vec![("csrf", token.as_str())];
    form.extend_from_slice(fields);
    let response = admin
        .post(app.url(action))
        .form(&form)
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

async fn admin_user_action(app: &TestApp, admin: &reqwest::Client, email: &str, action: &str) {
    let page = app.console_page(admin, "/console/admin/users").await;
    let id = user_id(&page, email);
    let status = admin_post(
        app,
        admin,
        &format!("/console/admin/users/{id}/{action}"),
        &[],
    )
    .await;
    assert_eq!(status, 303, "{action} {email}");
}

async fn a_disabled_users_api_tokens_stay_dead_when_enabled_again(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_user("root@vendor.test", &[Role::Admin]).await;
    let token = user_with_token(&app, "agent@vendor.test", &[Role::Agent]).await;
    let queue = |token: String| {
        let app = &app;
        async move {
            app.api_get(&token, "/api/v1/tickets?status=open")
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(queue(token.clone()).await, 200);

    let admin = app.sign_in("root@vendor.test").await;
    admin_user_action(&app, &admin, "agent@vendor.test", "disable").await;
    assert_eq!(
        queue(token.clone()).await,
        401,
        "disabled: the token is revoked"
    );
    admin_user_action(&app, &admin, "agent@vendor.test", "enable").await;
    let refused = app.api_get(&token, "/api/v1/tickets?status=open").await;
    assert_eq!(
        refused.status(),
        401,
        "enabled again, the old token stays revoked"
    );
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{body}"
    );
    assert_eq!(
        audited(&app, "root@vendor.test", "user_disabled").await,
        ["agent@vendor.test: sessions ended, 1 API token(s) revoked"]
    );
    // A new token works.
    assert_eq!(queue(token_of(&app, "agent@vendor.test").await).await, 200);
}

async fn an_admin_and_accounts_they_just_made_or_armed_are_not_two_people(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_user("root@vendor.test", &[Role::Admin, Role::Supervisor])
        .await;
    let root = token_of(&app, "root@vendor.test").await;
    let old = user_with_token(&app, "old@vendor.test", &[Role::Agent]).await;
    let sam = user_with_token(&app, "sam@vendor.test", &[Role::Supervisor]).await;
    let console = app.sign_in("root@vendor.test").await;
    let status = admin_post(
        &app,
        &console,
        "/console/admin/users",
        &[
            ("email", "new@vendor.test"),
            ("role", "agent"),
            ("password", "a long first password"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let new = token_of(&app, "new@vendor.test").await;

    // Four cameras and the NVR: five devices flag the ticket.
    let ticket = submit(&app, 1, 4, "owner@example.com").await;
    assert_eq!(approve(&app, &new, &ticket).await.0, 202);
    let (status, message) = approve(&app, &root, &ticket).await;
    assert_eq!(status, 403, "{message}");
    assert!(
        message.contains("do not count as two people")
            && message.contains("root@vendor.test created the account new@vendor.test (agent)"),
        "{message}"
    );
    let (status, page) = approve_in_console(&app, &console, &ticket).await;
    assert_eq!(status, 403);
    assert!(page.contains("do not count as two people"), "{page}");
    assert_eq!(
        audited(&app, "root@vendor.test", "approve_refused")
            .await
            .len(),
        2
    );
    assert_eq!(
        audited(&app, "root@vendor.test", "user_created").await,
        ["new@vendor.test as agent"]
    );
    app.run_outbox().await;
    assert_eq!(response_mails(&app, "owner@example.com"), 0);

    // A day later the two are two people again.
    app.advance(24 * 3600);
    let (status, message) = approve(&app, &root, &ticket).await;
    assert_eq!(status, 200, "{message}");
    app.run_outbox().await;
    assert_eq!(response_mails(&app, "owner@example.com"), 1);

    // Two accounts armed by one admin are not two people either: root makes a new agent
    // and gives an old agent the supervisor role.
    let console = app.sign_in("root@vendor.test").await;
    let status = admin_post(
        &app,
        &console,
        "/console/admin/users",
        &[
            ("email", "newer@vendor.test"),
            ("role", "agent"),
            ("password", "a long first password"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let page = app.console_page(&console, "/console/admin/users").await;
    let old_id = user_id(&page, "old@vendor.test");
    let status = admin_post(
        &app,
        &console,
        &format!("/console/admin/users/{old_id}/roles"),
        &[("role", "agent"), ("role", "supervisor")],
    )
    .await;
    assert_eq!(status, 303);
    let newer = token_of(&app, "newer@vendor.test").await;
    let ticket = submit(&app, 2, 4, "second@example.com").await;
    assert_eq!(approve(&app, &newer, &ticket).await.0, 202);
    let (status, message) = approve(&app, &old, &ticket).await;
    assert_eq!(status, 403, "{message}");
    assert!(
        message.contains("root@vendor.test gave old@vendor.test the role supervisor"),
        "{message}"
    );
    assert_eq!(
        approve(&app, &sam, &ticket).await.0,
        200,
        "an independent supervisor can"
    );
}

crate::on_both_backends!(
    an_agent_cannot_approve_their_own_request_sent_from_their_address,
    a_staff_address_or_a_later_console_user_needs_four_eyes,
    a_disabled_users_api_tokens_stay_dead_when_enabled_again,
    an_admin_and_accounts_they_just_made_or_armed_are_not_two_people,
);
