//! What operators rely on: readiness, metrics and request ids.

use serde_json::Value;

use crate::desk_support::{
    Backend, customer_form, export_part, file_part, label_photo, spawn_app_on,
};

async fn readyz_checks_database_and_blobs(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"database": "ok", "blobs": "ok", "keys": "ok"})
    );

    // Blobs that cannot be written make the replica unready, not broken.
    let blobs = app.dir.path().join("data/blobs");
    let _ = std::fs::remove_dir_all(&blobs);
    std::fs::write(&blobs, b"not a directory").unwrap();
    let unready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(unready.status(), 503);
    let body: Value = unready.json().await.unwrap();
    assert_eq!(body["blobs"], "not writable");
}

async fn metrics_count_requests_intake_signatures_and_mail(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let mut nvr = app.device("DS-7608NI-K2/8P0820231115CCRRJ12345678", "DS-7608NI-K2");
    let request = app.export(&mut nvr, 1, app.now());
    let form = export_part(customer_form("metrics@example.com"), &request, "xml").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    let created = app.submit(form).await;
    assert!(
        created.headers().get("x-request-id").is_some(),
        "every answer names its request id"
    );
    let ticket = created.json::<Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let agent = app.agent_token("agent@vendor.test").await;
    assert_eq!(
        app.api_post(
            &agent,
            &format!("/api/v1/tickets/{ticket}/approve"),
            Value::Null
        )
        .await
        .status(),
        200
    );
    app.run_outbox().await;

    let echoed = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-1234-abcd")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-1234-abcd");
    let metrics = app.metrics().await;
    for expected in [
        "resetdesk_http_requests_total{route=\"/api/v1/requests\",status=\"201\"}",
        "resetdesk_intake_total{outcome=\"created\"}",
        "resetdesk_signatures_total{key_id=",
        "resetdesk_mail_total{outcome=\"sent\"}",
        "resetdesk_queue_open_tickets",
        "resetdesk_outbox_pending",
        "resetdesk_http_request_duration_seconds_bucket",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from:\n{metrics}"
        );
    }
    assert!(
        !metrics.contains(&ticket),
        "routes are patterns, never paths with ticket numbers"
    );
}

crate::on_both_backends!(
    readyz_checks_database_and_blobs,
    metrics_count_requests_intake_signatures_and_mail,
);

async fn control_characters_in_filters_are_harmless(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let agent = app.agent_token("agent@vendor.test").await;
    let response = app.api_get(&agent, "/api/v1/tickets?q=RQ%00-1234").await;
    assert_eq!(
        response.status(),
        200,
        "a NUL byte in a search finds nothing rather than failing"
    );
}

crate::on_both_backends!(control_characters_in_filters_are_harmless);
