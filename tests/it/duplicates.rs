//! The same export sent twice (issue 15, part 2). Whoever holds an export can send it;
//! the ticket's status link (new label photo, "it did not work" notes, code e-mails) is
//! shown only to the ticket's own address, and goes there again when someone else sends
//! the export. A customer who mistyped their address corrects it from the browser that
//! sent the request, for 30 minutes and only until somebody approves; an agent can
//! correct it too, which withdraws approvals and takes two approvers.

use resetdesk::domain::Role;
use resetdesk::protocol::ResetRequest;
use serde_json::Value;

use crate::desk_support::{
    Backend, TestApp, browser, csrf, customer_form, export_part, file_part, label_photo,
    spawn_app_on, spawn_app_on_with,
};
use crate::html;

const NVR: &str = "DS-7608NI-K2/8P0820231115CCRRJ12345678";
const MODEL: &str = "DS-7608NI-K2";

fn submission(request: &ResetRequest, kind: &str, email: &str) -> reqwest::multipart::Form {
    export_part(customer_form(email), request, kind).part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    )
}

/// The status link's token: whoever has it can act on the ticket.
fn token_of(status_url: &str) -> String {
    status_url.rsplit_once("t=").unwrap().1.to_owned()
}

async fn token_for(app: &TestApp, email: &str, roles: &[Role]) -> String {
    app.token_for(email, roles).await
}

async fn ticket_json(app: &TestApp, token: &str, number: &str) -> Value {
    app.api_get(token, &format!("/api/v1/tickets/{number}"))
        .await
        .json()
        .await
        .unwrap()
}

fn history_kinds(ticket: &Value, kind: &str) -> Vec<String> {
    ticket["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["detail"].as_str().unwrap().to_owned())
        .collect()
}

async fn approve(app: &TestApp, token: &str, ticket: &str) -> u16 {
    app.api_post(
        token,
        &format!("/api/v1/tickets/{ticket}/approve"),
        serde_json::json!({}),
    )
    .await
    .status()
    .as_u16()
}

/// Sends the form from `client` (a browser with its own cookies); the status and page.
async fn send_form(
    app: &TestApp,
    client: &reqwest::Client,
    form: reqwest::multipart::Form,
) -> (u16, String) {
    let response = client
        .post(app.url("/"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Posts the correction form of ticket `number`.
async fn correct(
    app: &TestApp,
    client: &reqwest::Client,
    number: &str,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let response = client
        .post(app.url(&format!("/requests/{number}/address")))
        .form(fields)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn a_duplicate_from_another_address_gets_the_number_and_the_owner_gets_the_link(
    backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let agent = app.agent_token("agent@vendor.test").await;
    let mut nvr = app.device(NVR, MODEL);
    let export = app.export(&mut nvr, 0, app.now());
    let owner = "owner@example.com";
    let response = app.submit(submission(&export, "xml", owner)).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let number = created["ticket"].as_str().unwrap().to_owned();
    let status_url = created["status_url"].as_str().unwrap().to_owned();
    let token = token_of(&status_url);
    app.run_outbox().await;
    assert_eq!(app.mails_to(owner).len(), 1, "the acknowledgment");

    // A stranger with the export, through the API: the number, no link.
    let stranger = "stranger@evil.test";
    let response = app.submit(submission(&export, "string", stranger)).await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(
        !body.contains(&token),
        "no status token for a stranger: {body}"
    );
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["ticket"], number.as_str());
    assert_eq!(answer["existing"], true);
    assert!(
        answer.get("status_url").is_none(),
        "the field is left out: {answer}"
    );
    assert_eq!(
        answer["message"],
        "We already have this request; its status link went to the e-mail address given with it."
    );
    app.run_outbox().await;
    let to_owner = app.mails_to(owner);
    assert_eq!(to_owner.len(), 2, "the link went again to the owner");
    let again = &to_owner[1];
    assert!(again.text.contains(&status_url), "{}", again.text);
    assert!(
        again
            .text
            .contains("Someone sent us this request again, with another e-mail address"),
        "{}",
        again.text
    );
    assert!(app.mails_to(stranger).is_empty());

    // Again within the hour, through the form: the same answer, and no more mail.
    let (status, page) = send_form(
        &app,
        &browser(),
        submission(&export, "qr", "another@evil.test"),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("We already have this request"), "{page}");
    assert!(
        page.contains("its status link went to the e-mail address given with it"),
        "{page}"
    );
    assert_eq!(html::text(&page, "#ticket-number"), number);
    assert!(
        !page.contains(&token),
        "no status token on the page: {page}"
    );
    assert!(!page.contains("id=\"status-link\""));
    assert!(
        !page.contains("id=\"address-fix\""),
        "a stranger's browser has no way to change the address"
    );
    app.run_outbox().await;
    assert_eq!(app.mails_to(owner).len(), 2, "at most once an hour");
    assert!(app.mails_to("another@evil.test").is_empty());
    assert!(
        app.mails()
            .iter()
            .filter(|m| m.text.contains(&token))
            .all(|m| m.to == owner),
        "the link went nowhere else"
    );

    // Typing the owner's address is not proof of being the owner (it is often in the
    // export itself): the answer holds no link, which goes to that address instead. Only
    // the browser that sent the request sees it again (the Fatima story below).
    let response = app
        .submit(submission(&export, "xml", "Owner+camera@Example.com"))
        .await;
    assert_eq!(response.status(), 200);
    let same: Value = response.json().await.unwrap();
    assert_eq!(same["existing"], true);
    assert!(same.get("status_url").is_none(), "{same}");
    assert!(!same.to_string().contains(&token), "{same}");

    // An hour later a stranger's copy sends the link again: the owner hears of each.
    app.advance(3601);
    let response = app.submit(submission(&export, "xml", stranger)).await;
    assert_eq!(response.status(), 200);
    app.run_outbox().await;
    assert_eq!(app.mails_to(owner).len(), 3);

    let ticket = ticket_json(&app, &agent, &number).await;
    assert_eq!(
        ticket["customer"]["email"], owner,
        "the ticket is the owner's"
    );
    let resent = history_kinds(&ticket, "link_resent");
    assert_eq!(resent.len(), 2, "{ticket}");
    assert!(resent[0].contains(stranger), "{resent:?}");
    let audit = app
        .desk
        .store
        .recent_audit(None, Some("status_link.resent"), 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 2);
}

async fn fatima_corrects_her_mistyped_address_from_her_browser(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let agent = app.agent_token("agent@vendor.test").await;
    let (typo, right) = ("fatima@gmial.com", "fatima@gmail.com");
    let fatima = browser();
    let mut nvr = app.device(NVR, MODEL);
    let export = app.export(&mut nvr, 0, app.now());

    // She sends the form with a typo in her address.
    let response = fatima
        .post(app.url("/"))
        .multipart(submission(&export, "xml", typo))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("rd_fix_"))
        .expect("the success page sets the correction cookie");
    let page = response.text().await.unwrap();
    let number = html::text(&page, "#ticket-number");
    assert!(cookie.starts_with(&format!("rd_fix_{number}=")), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Max-Age=1800", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(page.contains("Wrong e-mail address?"), "{page}");
    let status_url = html::select_attr(&page, "#status-link", "href");
    let token = token_of(&status_url);

    // She sends the same export again, with the right address: the desk has it already,
    // and the ticket keeps the typo.
    let (status, page) = send_form(&app, &fatima, submission(&export, "xml", right)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("We already have this request"), "{page}");
    assert!(!page.contains(&token), "{page}");
    assert!(
        page.contains("id=\"address-fix\""),
        "her browser is offered the correction: {page}"
    );
    assert!(
        html::select_attr(&page, "#fix-email", "value") == right,
        "with the address she typed now"
    );
    let check = html::select_attr(&page, "input[name=check]", "value");
    let ticket = ticket_json(&app, &agent, &number).await;
    assert_eq!(ticket["customer"]["email"], typo);
    app.run_outbox().await;
    assert!(
        app.mails_to(right).is_empty(),
        "nothing to the new address yet"
    );

    // Another browser cannot correct it, not even with the form's hidden field, nor
    // with a cookie it made up.
    let (status, page) = correct(
        &app,
        &browser(),
        &number,
        &[("email", "thief@evil.test"), ("check", &check)],
    )
    .await;
    assert_eq!(status, 403, "{page}");
    assert!(
        page.contains("Only the browser that sent the request"),
        "{page}"
    );
    let forged = app
        .client
        .post(app.url(&format!("/requests/{number}/address")))
        .header(
            "cookie",
            format!("rd_fix_{number}=9999999999-0123456789abcdefghjkmnpqrstvwxyz"),
        )
        .form(&[("email", "thief@evil.test"), ("check", check.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // Her own browser without the form's hidden field, as a forged cross-site post
    // would be, is refused too.
    let (status, _) = correct(&app, &fatima, &number, &[("email", "thief@evil.test")]).await;
    assert_eq!(status, 403);
    let ticket = ticket_json(&app, &agent, &number).await;
    assert_eq!(ticket["customer"]["email"], typo, "nothing changed");

    // A typo in the correction comes back on the form.
    let (status, page) = correct(
        &app,
        &fatima,
        &number,
        &[("email", "fatima@gmail"), ("check", &check)],
    )
    .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("id=\"fix-email-error\""), "{page}");

    // From her browser, 29 minutes after sending it, the correction goes through.
    app.advance(29 * 60);
    let (status, page) = correct(
        &app,
        &fatima,
        &number,
        &[("email", right), ("check", &check)],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&format!("is now {right}")), "{page}");
    let ticket = ticket_json(&app, &agent, &number).await;
    assert_eq!(ticket["customer"]["email"], right);
    let corrected = history_kinds(&ticket, "address_corrected");
    assert_eq!(corrected, vec![format!("from {typo} to {right}")]);
    let audit = app
        .desk
        .store
        .recent_audit(Some("customer"), Some("address_corrected"), 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert!(audit[0].detail.contains(typo) && audit[0].detail.contains(right));
    app.run_outbox().await;
    let to_right = app.mails_to(right);
    assert_eq!(
        to_right.len(),
        1,
        "the acknowledgment, to the corrected address"
    );
    assert!(
        to_right[0].text.contains(&status_url),
        "{}",
        to_right[0].text
    );
    assert!(to_right[0].text.contains("was corrected to this one"));

    // Approved, the response goes to the right address.
    app.approve_by_api(&number).await;
    app.run_outbox().await;
    assert!(
        app.mails_to(right)
            .iter()
            .any(|m| m.subject.contains("Your password reset response"))
    );
    assert!(
        app.mails_to(typo)
            .iter()
            .all(|m| !m.subject.contains("response"))
    );
}

async fn a_correction_is_refused_after_30_minutes_and_once_anyone_approved(backend: Backend) {
    let Some(app) = spawn_app_on_with(backend, |s| {
        s.four_eyes.watch_domains = vec!["example.org".to_owned()];
    })
    .await
    else {
        return;
    };
    let agent = app.agent_token("agent@vendor.test").await;

    // Too late: 30 minutes and a second after the request.
    let late = browser();
    let mut nvr = app.device(NVR, MODEL);
    let export = app.export(&mut nvr, 0, app.now());
    let (status, page) =
        send_form(&app, &late, submission(&export, "xml", "late@exmaple.com")).await;
    assert_eq!(status, 201, "{page}");
    let number = html::text(&page, "#ticket-number");
    let check = html::select_attr(&page, "input[name=check]", "value");
    app.advance(30 * 60 + 1);
    let (status, page) = correct(
        &app,
        &late,
        &number,
        &[("email", "late@example.com"), ("check", &check)],
    )
    .await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("only within 30 minutes"), "{page}");
    let ticket = ticket_json(&app, &agent, &number).await;
    assert_eq!(ticket["customer"]["email"], "late@exmaple.com");

    // Approved once (a flagged ticket waits for its second approval): refused.
    let early = browser();
    let mut camera = app.device("DS-2CD2143G2-I/FB2000001", "DS-2CD2143G2-I");
    let export = app.export(&mut camera, 0, app.now());
    let (status, page) = send_form(
        &app,
        &early,
        submission(&export, "xml", "early@example.org"),
    )
    .await;
    assert_eq!(status, 201, "{page}");
    let number = html::text(&page, "#ticket-number");
    let check = html::select_attr(&page, "input[name=check]", "value");
    assert_eq!(approve(&app, &agent, &number).await, 202, "first of two");
    let (status, page) = correct(
        &app,
        &early,
        &number,
        &[("email", "early@example.com"), ("check", &check)],
    )
    .await;
    assert_eq!(status, 409, "{page}");
    assert!(
        page.contains("our support team has already approved this request"),
        "{page}"
    );
    let ticket = ticket_json(&app, &agent, &number).await;
    assert_eq!(ticket["customer"]["email"], "early@example.org");
    app.run_outbox().await;
    assert!(app.mails_to("early@example.com").is_empty());
}

async fn an_agent_changes_an_address_which_withdraws_approvals_and_takes_two(backend: Backend) {
    let Some(app) = spawn_app_on_with(backend, |s| {
        s.four_eyes.watch_domains = vec!["example.org".to_owned()];
    })
    .await
    else {
        return;
    };
    app.create_agent("alice@vendor.test").await;
    let alice = app.sign_in("alice@vendor.test").await;
    let bob = token_for(&app, "bob@vendor.test", &[Role::Agent]).await;
    let sam = token_for(&app, "sam@vendor.test", &[Role::Supervisor]).await;

    // A flagged ticket with its first approval.
    let (old, new) = ("owner@example.org", "owner.new@example.com");
    let mut nvr = app.device(NVR, MODEL);
    let export = app.export(&mut nvr, 0, app.now());
    let created: Value = app
        .submit(submission(&export, "xml", old))
        .await
        .json()
        .await
        .unwrap();
    let number = created["ticket"].as_str().unwrap().to_owned();
    assert_eq!(approve(&app, &bob, &number).await, 202);

    // Alice changes the address from the ticket page (CSRF token and all).
    let status = app
        .console_action(&alice, &number, "email", &[("email", new)])
        .await;
    assert_eq!(status, 303);
    let page = app
        .console_page(
            &alice,
            &format!("/console/tickets/{number}?done=address-changed"),
        )
        .await;
    assert!(page.contains("Earlier approvals are withdrawn"), "{page}");
    let ticket = ticket_json(&app, &bob, &number).await;
    assert_eq!(ticket["customer"]["email"], new);
    assert_eq!(ticket["approvals"], serde_json::json!([]), "{ticket}");
    assert!(
        ticket["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().contains(&format!(
                "alice@vendor.test changed the customer's e-mail address from {old} to {new}"
            ))),
        "{ticket}"
    );
    assert_eq!(history_kinds(&ticket, "approvals_withdrawn").len(), 1);
    let audit = app
        .desk
        .store
        .recent_audit(Some("alice@vendor.test"), Some("address_corrected"), 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert!(
        audit[0].detail.contains(&format!("from {old} to {new}"))
            && audit[0].detail.contains("1 approval(s) withdrawn"),
        "{}",
        audit[0].detail
    );

    // Bob's earlier approval no longer counts: his new one is the first of two again.
    assert_eq!(approve(&app, &bob, &number).await, 202);
    assert_eq!(approve(&app, &sam, &number).await, 200, "the second signs");
    app.run_outbox().await;
    let to_old = app.mails_to(old);
    assert!(
        to_old.iter().any(|m| m
            .subject
            .contains("The e-mail address of your request was changed")
            && m.text.contains("o•••@example.com")),
        "the old address is told: {to_old:?}"
    );
    assert!(to_old.iter().all(|m| !m.subject.contains("response")));
    let to_new = app.mails_to(new);
    assert!(to_new.iter().any(|m| {
        m.text
            .contains("Our support team changed the e-mail address")
    }));
    assert!(
        to_new
            .iter()
            .any(|m| m.subject.contains("Your password reset response"))
    );

    // An ordinary ticket whose address an agent changed needs two approvals too.
    let mut camera = app.device("DS-2CD2143G2-I/FB2000001", "DS-2CD2143G2-I");
    let export = app.export(&mut camera, 0, app.now());
    let created: Value = app
        .submit(submission(&export, "xml", "plain@example.com"))
        .await
        .json()
        .await
        .unwrap();
    let plain = created["ticket"].as_str().unwrap().to_owned();
    let status = app
        .console_action(
            &alice,
            &plain,
            "email",
            &[("email", "plain.fixed@example.com")],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(
        approve(&app, &bob, &plain).await,
        202,
        "one approval no longer signs"
    );
    let ticket = ticket_json(&app, &bob, &plain).await;
    assert_eq!(ticket["status"], "open");

    // Nobody redirects a ticket to their own address, and the form needs its token.
    let status = app
        .console_action(&alice, &plain, "email", &[("email", "Alice@vendor.test")])
        .await;
    assert_eq!(status, 403);
    let page = app
        .console_page(&alice, &format!("/console/tickets/{plain}"))
        .await;
    let forged = alice
        .post(app.url(&format!("/console/tickets/{plain}/email")))
        .form(&[("csrf", "forged"), ("email", "thief@evil.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(!csrf(&page).is_empty());
    let ticket = ticket_json(&app, &bob, &plain).await;
    assert_eq!(ticket["customer"]["email"], "plain.fixed@example.com");
}

crate::on_both_backends!(
    a_duplicate_from_another_address_gets_the_number_and_the_owner_gets_the_link,
    fatima_corrects_her_mistyped_address_from_her_browser,
    a_correction_is_refused_after_30_minutes_and_once_anyone_approved,
    an_agent_changes_an_address_which_withdraws_approvals_and_takes_two,
);
