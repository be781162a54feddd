//! "It didn't work": the customer says on the status page what the device answered; the
//! desk explains the likely cause and what to do, and the agents see the answer in the
//! ticket's history.

use resetdesk::domain::TicketNumber;
use resetdesk::store::TicketEventKind;

use crate::desk_support::{
    Backend, TestApp, customer_form, export_part, file_part, label_photo, spawn_app_on,
};

async fn submitted(app: &TestApp, serial: &str, email: &str) -> (String, String) {
    let mut camera = app.device(serial, "DS-2CD2143G2-I");
    let request = app.export(&mut camera, 0, app.now());
    let form = export_part(customer_form(email), &request, "string").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    app.submit_form(form).await
}

fn feedback_url(status_url: &str, number: &str) -> String {
    status_url.replace(
        &format!("/status/{number}?"),
        &format!("/status/{number}/feedback?"),
    )
}

async fn tell(app: &TestApp, url: &str, form: &[(&str, &str)]) -> (u16, String) {
    let response = app.client.post(url).form(form).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn the_customer_learns_why_and_the_agents_see_the_answer(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let (number, status_url) =
        submitted(&app, "DS-2CD2143G2-I/FB2000001", "tried@example.com").await;
    let url = feedback_url(&status_url, &number);

    // Nothing to report before there is a response.
    assert!(!app.page(&status_url).await.contains("id=\"send-feedback\""));
    assert_eq!(tell(&app, &url, &[("answer", "expired")]).await.0, 409);

    app.approve_by_api(&number).await;
    let status = app.page(&status_url).await;
    assert!(status.contains("id=\"send-feedback\""), "{status}");
    for answer in [
        "expired",
        "wrong_key",
        "no_reset",
        "too_many_attempts",
        "wrong_device",
        "other",
    ] {
        assert!(
            status.contains(&format!("for=\"answer-{answer}\"")),
            "{answer} has a label"
        );
    }

    let (refused, page) = tell(&app, &url, &[("note", "nothing chosen")]).await;
    assert_eq!(refused, 422);
    assert!(page.contains("Choose what the device said"), "{page}");
    let (refused, _) = tell(&app, &url, &[("answer", "exploded")]).await;
    assert_eq!(refused, 422);
    let (refused, page) = tell(&app, &url, &[("answer", "other"), ("note", "bell\u{7}")]).await;
    assert_eq!(refused, 422, "{page}");

    let (told, page) = tell(
        &app,
        &url,
        &[("answer", "expired"), ("note", "tried on Monday")],
    )
    .await;
    assert_eq!(told, 200);
    assert!(page.contains("48 hours"), "{page}");
    assert!(
        page.contains("cannot work any more") && page.contains("14 days"),
        "{page}"
    );
    let (told, page) = tell(&app, &url, &[("answer", "wrong_key")]).await;
    assert_eq!(told, 200);
    assert!(
        page.contains("typed wrong") && !page.contains("cannot work any more"),
        "{page}"
    );

    let detail = app
        .desk
        .store
        .ticket(&TicketNumber::parse(&number).unwrap())
        .await
        .unwrap();
    let answers: Vec<_> = detail
        .events
        .iter()
        .filter(|e| e.kind == TicketEventKind::CustomerFeedback)
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(answers, ["expired: tried on Monday", "wrong_key"]);

    // The status page says back what was reported last and what comes next: a wrong key
    // leaves the response alive (its time still counts down); "no reset in progress"
    // means it can no longer work, so no countdown is shown.
    let status = app.page(&status_url).await;
    let reported = crate::html::text(&status, "#reported");
    assert!(
        reported.contains("you told us the device said"),
        "{reported}"
    );
    assert!(reported.contains("may still work"), "{reported}");
    assert!(status.contains("id=\"countdown\""));
    assert_eq!(
        tell(
            &app,
            &url,
            &[("answer", "no_reset"), ("note", "it rebooted")]
        )
        .await
        .0,
        200
    );
    let status = app.page(&status_url).await;
    let reported = crate::html::text(&status, "#reported");
    assert!(reported.contains("“it rebooted”"), "{reported}");
    assert!(reported.contains("can no longer work"), "{reported}");
    assert!(
        !status.contains("id=\"countdown\""),
        "no time left to count"
    );
    // "Send a new request" opens the form filled in with what says nothing about the
    // customer: the link may be in other hands, and shows no name or address.
    let again_url = crate::html::select_attr(&status, "#new-request", "href");
    assert!(again_url.starts_with(&format!("/status/{number}/again?t=")));
    let form = app.page(&app.url(&again_url)).await;
    assert!(form.contains("<option value=\"ES\" selected>"), "{form}");
    assert!(form.contains("<option value=\"installer\" selected>"));
    assert!(!form.contains("tried@example.com") && !form.contains("Ana López"));
    // Without the link's token, nothing.
    let bare = app
        .client
        .get(app.url(&format!("/status/{number}/again")))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 404);

    // Ten answers a ticket, then a clear refusal.
    for _ in 0..7 {
        assert_eq!(tell(&app, &url, &[("answer", "other")]).await.0, 200);
    }
    let (refused, page) = tell(&app, &url, &[("answer", "other")]).await;
    assert_eq!(refused, 429);
    assert!(page.contains("already have many reports"), "{page}");

    // The same customer sends a new export from the same device: the agent sees the
    // earlier approval and what the customer said beside it. Another customer does not
    // get that shortcut for the same device.
    let (again, _) = submitted(&app, "DS-2CD2143G2-I/FB2000001", "tried@example.com").await;
    let (stranger, _) = submitted(&app, "DS-2CD2143G2-I/FB2000001", "other@example.com").await;
    app.create_agent("reviewer@vendor.test").await;
    let agent = app.sign_in("reviewer@vendor.test").await;
    let page = app
        .console_page(&agent, &format!("/console/tickets/{again}"))
        .await;
    assert!(page.contains("id=\"repeat\""), "{page}");
    assert!(
        page.contains(&format!("href=\"/console/tickets/{number}\"")),
        "{page}"
    );
    let earlier = app
        .console_page(&agent, &format!("/console/tickets/{number}"))
        .await;
    assert!(earlier.contains("id=\"feedback\"") && earlier.contains("expired: tried on Monday"));
    let page = app
        .console_page(&agent, &format!("/console/tickets/{stranger}"))
        .await;
    assert!(!page.contains("id=\"repeat\""), "{page}");
}

crate::on_both_backends!(the_customer_learns_why_and_the_agents_see_the_answer);
