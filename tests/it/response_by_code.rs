//! The response e-mail bounced or sits in a spam folder: the customer asks the status
//! page for a one-time code, which goes to the ticket's address, types it, sees the keys
//! and downloads the file, which the device accepts. The status link alone never shows a
//! key; codes are few, short-lived, used once and bounded in tries.

use resetdesk::device::{self, DeviceState};
use resetdesk::store::TicketEventKind;

use crate::desk_support::{
    Backend, TestApp, customer_form, export_part, file_part, keys_in, label_photo, spawn_app_on,
};
use crate::html;

const NVR: &str = "DS-7608NI-K2/8P0820231115CCRRJ12345678";

/// A ticket for an NVR with one camera, approved through the agent API; returns the
/// ticket number, its status link and the device as it was when it exported.
async fn approved_ticket(app: &TestApp, email: &str) -> (String, String, DeviceState) {
    let mut nvr = app.device(NVR, "DS-7608NI-K2");
    let request = app.export(&mut nvr, 1, app.now());
    let form = export_part(customer_form(email), &request, "xml").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    let (number, status_url) = app.submit_form(form).await;
    app.approve_by_api(&number).await;
    app.run_outbox().await;
    (number, status_url, nvr)
}

/// The status link's path and query, to build the code and response URLs on.
fn with_path(status_url: &str, number: &str, rest: &str) -> String {
    let token = status_url.split("?t=").nth(1).unwrap();
    status_url.replace(
        &format!("/status/{number}?t={token}"),
        &format!("/status/{number}/{rest}?t={token}"),
    )
}

async fn post_code(app: &TestApp, url: &str, code: &str) -> (u16, String, Option<String>) {
    let response = app
        .client
        .post(url)
        .form(&[("code", code)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, response.text().await.unwrap(), cache)
}

async fn a_customer_whose_mail_never_came_gets_the_response_with_a_code(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let email = "lost.mail@example.com";
    let (number, status_url, nvr) = approved_ticket(&app, email).await;
    let approval = app
        .mails_to(email)
        .into_iter()
        .find(|m| m.subject.contains("response"))
        .unwrap();
    let keys = keys_in(&approval);
    assert_eq!(keys.len(), 2);

    // The status page offers the code, and shows no key.
    let status = app.page(&status_url).await;
    assert!(status.contains("id=\"send-code\""), "{status}");
    for (_, key) in &keys {
        assert!(!status.contains(key.as_str()));
    }

    let sent = app
        .client
        .post(with_path(&status_url, &number, "code"))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let page = sent.text().await.unwrap();
    assert!(page.contains("l•••@example.com"), "{page}");
    assert!(
        !page.contains(email),
        "the page does not spell out the address"
    );
    app.run_outbox().await;
    let code = app.access_code_mailed_to(email);
    assert_eq!(code.len(), 8);
    let code_mail = app.mails_to(email).pop().unwrap();
    assert!(code_mail.subject.contains(&number) && code_mail.html.contains(&code));

    let response_url = with_path(&status_url, &number, "response");
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    let (refused, page, _) = post_code(&app, &response_url, wrong).await;
    assert_eq!(refused, 422);
    assert!(page.contains("4 tries left"), "{page}");
    assert!(page.contains("aria-invalid=\"true\""));

    // Typed the way people copy codes: with a space in the middle.
    let spaced = format!("{} {}", &code[..4], &code[4..]);
    let (shown, page, cache) = post_code(&app, &response_url, &spaced).await;
    assert_eq!(shown, 200, "{page}");
    assert_eq!(cache.as_deref(), Some("no-store"));
    for (serial, key) in &keys {
        assert!(
            page.contains(serial.as_str()) && page.contains(key.as_str()),
            "{page}"
        );
    }

    // The file from the page is the signed response, and the device takes it.
    let file_url = app.url(&html::select_attr(&page, "#response-file", "href"));
    let file = app.client.get(&file_url).send().await.unwrap();
    assert_eq!(file.status(), 200, "{file_url}");
    assert!(
        file.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("reset-response-{number}.xml"))
    );
    let xml = file.bytes().await.unwrap();
    let mut device = nvr.clone();
    let report =
        device::import_response(&mut device, &xml, "new admin password", app.now()).unwrap();
    assert!(
        report.iter().all(|(_, outcome)| outcome.is_ok()),
        "{report:?}"
    );

    // The code worked once; the file link lasts 15 minutes.
    let (again, page, _) = post_code(&app, &response_url, &code).await;
    assert_eq!(again, 422);
    assert!(page.contains("No code is in force"), "{page}");
    app.advance(15 * 60 + 1);
    assert_eq!(
        app.client.get(&file_url).send().await.unwrap().status(),
        403
    );

    // Seen by the agents and in the audit log.
    let detail = app
        .desk
        .store
        .ticket(&resetdesk::domain::TicketNumber::parse(&number).unwrap())
        .await
        .unwrap();
    assert!(
        detail
            .events
            .iter()
            .any(|e| e.kind == TicketEventKind::ResponseShown)
    );
    let audited = app
        .desk
        .store
        .recent_audit(None, Some("response.shown"), 5)
        .await
        .unwrap();
    assert_eq!(audited.len(), 1);
}

async fn the_link_alone_gets_no_key_and_codes_are_bounded(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let email = "guarded@example.com";
    let (number, status_url, _) = approved_ticket(&app, email).await;
    let response_url = with_path(&status_url, &number, "response");

    // No code was asked for: guessing finds nothing, and says so without a key.
    let (refused, page, _) = post_code(&app, &response_url, "12345678").await;
    assert_eq!(refused, 422);
    assert!(page.contains("No code is in force"), "{page}");
    let (refused, page, _) = post_code(&app, &response_url, "12ab").await;
    assert_eq!(refused, 422);
    assert!(page.contains("8 digits"), "{page}");
    let forged = with_path(&status_url, &number, "response.xml") + "&f=9999999999-abc";
    assert_eq!(app.client.get(&forged).send().await.unwrap().status(), 403);
    // A wrong status token is a ticket that does not exist.
    let probing = response_url.replace("?t=", "?t=x");
    assert_eq!(
        app.client
            .post(&probing)
            .form(&[("code", "12345678")])
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Five wrong tries end a code; three codes an hour.
    let code_url = with_path(&status_url, &number, "code");
    assert_eq!(
        app.client.post(&code_url).send().await.unwrap().status(),
        200
    );
    app.run_outbox().await;
    let code = app.access_code_mailed_to(email);
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for _ in 0..5 {
        assert_eq!(post_code(&app, &response_url, wrong).await.0, 422);
    }
    let (refused, page, _) = post_code(&app, &response_url, &code).await;
    assert_eq!(refused, 422, "the right code after five wrong ones");
    assert!(page.contains("No code is in force"), "{page}");
    for _ in 0..2 {
        assert_eq!(
            app.client.post(&code_url).send().await.unwrap().status(),
            200
        );
    }
    let flood = app.client.post(&code_url).send().await.unwrap();
    assert_eq!(flood.status(), 429);
    assert!(flood.text().await.unwrap().contains("in the last hour"));
    app.run_outbox().await;
    let codes = app
        .mails_to(email)
        .iter()
        .filter(|m| m.subject.contains("Your code"))
        .count();
    assert_eq!(codes, 3);

    // A ticket with no response has nothing to show.
    let mut camera = app.device("DS-2CD2143G2-I/FB1234567", "DS-2CD2143G2-I");
    let request = app.export(&mut camera, 0, app.now());
    let form = export_part(customer_form("open@example.com"), &request, "string").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    let (open, open_url) = app.submit_form(form).await;
    assert!(!app.page(&open_url).await.contains("id=\"send-code\""));
    let refused = app
        .client
        .post(with_path(&open_url, &open, "code"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
}

crate::on_both_backends!(
    a_customer_whose_mail_never_came_gets_the_response_with_a_code,
    the_link_alone_gets_no_key_and_codes_are_bounded,
);
