//! Label photos in an S3-compatible object store: a real S3 server (moto's, started for
//! the test when `RESETDESK_TEST_MOTO` names its `moto_server`; `.ci/run` installs it)
//! holds what the desk stores, serves it back to the console, and keeps nothing from a
//! refused submission.

use std::process::{Child, Command, Stdio};

use resetdesk::domain::Timestamp;

use crate::desk_support::{customer_form, export_part, file_part, label_photo, spawn_app_with};

pub(crate) struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

/// Starts moto's S3 server on a free port; `None` (with a note) when it is not installed.
pub(crate) fn start_moto() -> Option<(Moto, u16)> {
    let Ok(binary) = std::env::var("RESETDESK_TEST_MOTO") else {
        eprintln!("S3 blob test skipped: RESETDESK_TEST_MOTO does not name a moto_server");
        return None;
    };
    let port = crate::support::free_port();
    let child = Command::new(binary)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let moto = Moto(child);
    crate::support::wait_for_listener(port, "moto_server");
    Some((moto, port))
}

/// How many objects the bucket holds, from S3's own listing.
async fn objects(port: u16, bucket: &str) -> usize {
    let listing = reqwest::get(format!(
        "http://127.0.0.1:{port}/{bucket}?list-type=2&prefix=blobs/"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    listing.matches("<Key>").count()
}

#[tokio::test]
async fn label_photos_live_in_an_s3_bucket() {
    let Some((_moto, port)) = start_moto() else {
        return;
    };
    let bucket = "resetdesk-blobs";
    let created = reqwest::Client::new()
        .put(format!("http://127.0.0.1:{port}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "the bucket is created");
    let app = spawn_app_with(|s| {
        s.storage.blob_url = Some(format!("s3://{bucket}"));
        s.storage.s3_endpoint = Some(format!("http://127.0.0.1:{port}"));
        s.storage.s3_access_key_id = Some("testing".to_owned());
        s.storage.s3_secret_access_key = Some(resetdesk::config::Secret::new("testing"));
    })
    .await;
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let mut nvr = app.device("DS-7608NI-K2/8P0820231115CCRRJ12345678", "DS-7608NI-K2");
    let request = app.export(&mut nvr, 0, Timestamp::now());
    let form = export_part(customer_form("s3@example.com"), &request, "xml").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    let created = app.submit(form).await;
    assert_eq!(created.status(), 201);
    let ticket = created.json::<serde_json::Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        objects(port, bucket).await,
        1,
        "the label photo (the export is in the ticket's row)"
    );
    assert!(
        !app.dir.path().join("data/blobs").exists(),
        "nothing went to the local directory"
    );

    app.create_agent("agent@vendor.test").await;
    let agent = app.sign_in("agent@vendor.test").await;
    let photo = agent
        .get(app.url(&format!("/console/tickets/{ticket}/label")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        photo.bytes().await.unwrap().as_ref(),
        label_photo().as_slice()
    );

    // A refusal after the upload was stored (here: the same device, an older export than
    // the one waiting) removes its objects again.
    let older = app.export(&mut nvr, 0, Timestamp::now().plus_seconds(-3600));
    let form = export_part(customer_form("s3@example.com"), &older, "xml").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    assert_eq!(app.submit(form).await.status(), 409);
    assert_eq!(
        objects(port, bucket).await,
        1,
        "the refused submission left nothing in the bucket"
    );
}
