//! The admin's pages and an agent's own token page, over HTTP with real sessions.

use resetdesk::domain::Role;
use serde_json::Value;

use crate::desk_support::{Backend, TestApp, csrf, spawn_app_on};
use crate::html;

async fn post(
    app: &TestApp,
    client: &reqwest::Client,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let page = app.console_page(client, page).await;
    let token = csrf(&page);
    let mut form = vec![("csrf", token.as_str())];
    form.extend_from_slice(fields);
    client
        .post(app.url(action))
        .form(&form)
        .send()
        .await
        .unwrap()
}

fn user_id(page: &str, email: &str) -> String {
    let action = html::select_attr_where(page, "#users tbody tr", email, "form", "action");
    action
        .strip_prefix("/console/admin/users/")
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

async fn only_admins_manage_users_and_every_change_is_audited(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent("agent@vendor.test").await;
    app.create_user("root@vendor.test", &[Role::Admin]).await;
    let agent = app.sign_in("agent@vendor.test").await;
    for path in ["/console/admin/users", "/console/admin/audit"] {
        assert_eq!(
            agent.get(app.url(path)).send().await.unwrap().status(),
            403,
            "{path}"
        );
    }
    let denied = post(
        &app,
        &agent,
        "/console/tokens",
        "/console/admin/users",
        &[
            ("email", "x@vendor.test"),
            ("role", "admin"),
            ("password", "long enough password"),
        ],
    )
    .await;
    assert_eq!(denied.status(), 403, "an agent cannot create users");

    let admin = app.sign_in("root@vendor.test").await;
    let created = post(
        &app,
        &admin,
        "/console/admin/users",
        "/console/admin/users",
        &[
            ("email", "new@vendor.test"),
            ("role", "agent"),
            ("role", "supervisor"),
            ("password", "a long first password"),
        ],
    )
    .await;
    assert_eq!(created.status(), 303);
    let page = app.console_page(&admin, "/console/admin/users").await;
    assert!(
        page.contains("new@vendor.test") && page.contains("agent + supervisor"),
        "{page}"
    );

    let agent_id = user_id(&page, "agent@vendor.test");
    let roles = post(
        &app,
        &admin,
        "/console/admin/users",
        &format!("/console/admin/users/{agent_id}/roles"),
        &[("role", "supervisor")],
    )
    .await;
    assert_eq!(roles.status(), 303);
    let disabled = post(
        &app,
        &admin,
        "/console/admin/users",
        &format!("/console/admin/users/{agent_id}/disable"),
        &[],
    )
    .await;
    assert_eq!(disabled.status(), 303);
    assert_eq!(
        agent
            .get(app.url("/console"))
            .send()
            .await
            .unwrap()
            .status(),
        303,
        "a disabled user's session ends at once"
    );
    let page = app.console_page(&admin, "/console/admin/users").await;
    assert!(
        html::visible_texts(&page, "#users tbody tr")
            .iter()
            .find(|row| row.contains("agent@vendor.test"))
            .unwrap()
            .contains("disabled")
    );

    let audit = app.console_page(&admin, "/console/admin/audit").await;
    assert!(audit.contains("The chain is intact"), "{audit}");
    for action in ["user_created", "roles_changed", "user_disabled", "login"] {
        assert!(
            audit.contains(&format!("<td>{action}</td>")),
            "{action} is on the audit page"
        );
    }
    let filtered = app
        .console_page(&admin, "/console/admin/audit?action=user_disabled")
        .await;
    assert_eq!(filtered.matches("<td>user_disabled</td>").count(), 1);
    assert!(!filtered.contains("<td>user_created</td>"));
}

async fn an_agent_makes_a_read_only_token_uses_it_and_revokes_it(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent("agent@vendor.test").await;
    let agent = app.sign_in("agent@vendor.test").await;
    let created = post(
        &app,
        &agent,
        "/console/tokens",
        "/console/tokens",
        &[("name", "dashboard"), ("scope", "read"), ("days", "30")],
    )
    .await;
    assert_eq!(created.status(), 201);
    let page = created.text().await.unwrap();
    let token = html::text(&page, "#new-token").to_owned();
    assert!(token.starts_with("rdt_"));
    assert_eq!(app.api_get(&token, "/api/v1/tickets").await.status(), 200);
    let approve = app
        .api_post(&token, "/api/v1/tickets/RQ-0000-0000/approve", Value::Null)
        .await;
    assert_eq!(approve.status(), 403, "a read token cannot decide");
    let listing = app.console_page(&agent, "/console/tokens").await;
    assert!(
        listing.contains("dashboard") && listing.contains("live") && !listing.contains(&token),
        "the token is shown once"
    );
    let bad = post(
        &app,
        &agent,
        "/console/tokens",
        "/console/tokens",
        &[("name", "x"), ("scope", "read"), ("days", "0")],
    )
    .await;
    assert_eq!(bad.status(), 422);
    let revoke_path = html::select_attr(&listing, "form[action^='/console/tokens/']", "action");
    let revoked = post(&app, &agent, "/console/tokens", &revoke_path, &[]).await;
    assert_eq!(revoked.status(), 303);
    assert_eq!(app.api_get(&token, "/api/v1/tickets").await.status(), 401);
}

crate::on_both_backends!(
    only_admins_manage_users_and_every_change_is_audited,
    an_agent_makes_a_read_only_token_uses_it_and_revokes_it,
);
