//! The console's second factor: enrolment with a QR code on first sign-in, codes that
//! work once, recovery codes, and partial sessions that reach nothing else.

use resetdesk::auth::totp;
use resetdesk::domain::{EmailAddress, Role, Roles, Timestamp};

use crate::desk_support::{
    AGENT_PASSWORD, Backend, TestApp, browser, csrf, sign_in_token, spawn_app_on, spawn_app_with,
};
use crate::html;

async fn user_without_second_factor(app: &TestApp, email: &str) {
    let hash = resetdesk::auth::hash_password(AGENT_PASSWORD).unwrap();
    app.desk
        .store
        .create_user(
            &EmailAddress::parse(email).unwrap(),
            &hash,
            Roles::of(&[Role::Agent]).unwrap(),
            "test",
            Timestamp::now(),
        )
        .await
        .unwrap();
}

async fn password_step(app: &TestApp, client: &reqwest::Client, email: &str) -> String {
    let token = sign_in_token(client, &app.base).await;
    let response = client
        .post(app.url("/console/login"))
        .form(&[
            ("csrf", token.as_str()),
            ("email", email),
            ("password", AGENT_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    response.headers()["location"].to_str().unwrap().to_owned()
}

async fn first_sign_in_enrols_a_second_factor_and_later_ones_need_a_code(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    user_without_second_factor(&app, "new@vendor.test").await;
    let client = browser();
    assert_eq!(
        password_step(&app, &client, "new@vendor.test").await,
        "/console/enrol"
    );
    // The password alone reaches nothing but the enrolment.
    for path in ["/console", "/console/reasons", "/console/login/code"] {
        let response = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.headers()["location"], "/console/enrol", "{path}");
    }
    let page = client
        .get(app.url("/console/enrol"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key: String = html::text(&page, "#totp-key").replace(' ', "");
    let qr = client
        .get(app.url("/console/enrol/qr.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(qr.headers()["content-type"], "image/png");
    let png = qr.bytes().await.unwrap();
    let picture = image::load_from_memory(&png).unwrap().into_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(picture);
    let (_, url) = prepared.detect_grids()[0].decode().unwrap();
    assert!(
        url.starts_with("otpauth://totp/resetdesk:new%40vendor.test?secret=") && url.contains(&key),
        "{url}"
    );

    let seed = resetdesk::domain::Secret::new(key);
    let token = csrf(&page);
    let wrong = client
        .post(app.url("/console/enrol"))
        .form(&[("csrf", token.as_str()), ("code", "000000")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 422);
    let code = totp::code_at(&seed, app.now()).unwrap();
    let done = client
        .post(app.url("/console/enrol"))
        .form(&[("csrf", token.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let page = done.text().await.unwrap();
    let recovery = html::texts(&page, "#recovery-codes li code");
    assert_eq!(recovery.len(), totp::RECOVERY_CODES);
    assert_eq!(
        client
            .get(app.url("/console"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "fully signed in"
    );

    // The next sign-in asks for a code; a wrong one, and the same one twice, are refused.
    let later = browser();
    assert_eq!(
        password_step(&app, &later, "new@vendor.test").await,
        "/console/login/code"
    );
    assert_eq!(
        later
            .get(app.url("/console"))
            .send()
            .await
            .unwrap()
            .headers()["location"],
        "/console/login/code"
    );
    let page = later
        .get(app.url("/console/login/code"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = csrf(&page);
    let wrong = later
        .post(app.url("/console/login/code"))
        .form(&[("csrf", token.as_str()), ("code", "123456")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let replay = later
        .post(app.url("/console/login/code"))
        .form(&[("csrf", token.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.status(),
        401,
        "the enrolment code is not accepted again"
    );
    app.advance(30);
    let fresh = totp::code_at(&seed, app.now()).unwrap();
    let ok = later
        .post(app.url("/console/login/code"))
        .form(&[("csrf", token.as_str()), ("code", fresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    assert_eq!(
        later
            .get(app.url("/console"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A recovery code signs in once.
    for expected in [303, 401] {
        let phone_lost = browser();
        password_step(&app, &phone_lost, "new@vendor.test").await;
        let page = phone_lost
            .get(app.url("/console/login/code"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let response = phone_lost
            .post(app.url("/console/login/code"))
            .form(&[
                ("csrf", csrf(&page).as_str()),
                ("code", recovery[3].to_uppercase().as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }
}

#[tokio::test]
async fn development_mode_does_not_require_a_second_factor() {
    let app = spawn_app_with(|s| s.dev = true).await;
    user_without_second_factor(&app, "dev@vendor.test").await;
    assert_eq!(
        password_step(&app, &browser(), "dev@vendor.test").await,
        "/console"
    );
    let strict = spawn_app_with(|s| {
        s.dev = true;
        s.security.require_2fa = Some(true);
    })
    .await;
    user_without_second_factor(&strict, "dev@vendor.test").await;
    assert_eq!(
        password_step(&strict, &browser(), "dev@vendor.test").await,
        "/console/enrol"
    );
}

crate::on_both_backends!(first_sign_in_enrols_a_second_factor_and_later_ones_need_a_code,);
