//! Guessing at the console sign-in. Every password and code is counted before it is
//! checked, so a burst of guesses sent at once gets no more checks than the limit, on
//! either database and across replicas; a browser that signed in before keeps its own
//! count, so strangers cannot lock its agent out; the form needs its CSRF token; and an
//! IPv6 network counts as one address. "Checked" is counted from the answers: 401 says
//! the password or code was checked and wrong, 429 that it was never looked at.

use futures_util::future::join_all;

use crate::desk_support::{
    AGENT_PASSWORD, Backend, TestApp, browser, csrf, sign_in_token, spawn_app, spawn_app_on,
    spawn_app_on_with, spawn_app_with,
};

const AGENT: &str = "agent@vendor.test";

/// A browser with the sign-in page open: its client (whose cookie jar holds the form
/// token's cookie half and any device cookie) and the page's token.
#[derive(Clone)]
struct Browser {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Browser {
    async fn open(base: &str) -> Self {
        Self::open_with(browser(), base).await
    }

    async fn open_with(client: reqwest::Client, base: &str) -> Self {
        let token = sign_in_token(&client, base).await;
        Self {
            client,
            base: base.to_owned(),
            token,
        }
    }

    /// Posts the password step, from `from` when the desk trusts the proxy header.
    async fn password(&self, email: &str, password: &str, from: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/console/login", self.base))
            .form(&[
                ("csrf", self.token.as_str()),
                ("email", email),
                ("password", password),
            ]);
        if let Some(address) = from {
            request = request.header("x-forwarded-for", address);
        }
        request.send().await.unwrap()
    }

    /// The CSRF token of the second step's page, on the partial session this browser holds.
    async fn code_page_token(&self) -> String {
        let page = self
            .client
            .get(format!("{}/console/login/code", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        csrf(&page)
    }

    /// The second step with `code`, posted with the code page's token.
    async fn code_with(&self, token: &str, code: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/console/login/code", self.base))
            .form(&[("csrf", token), ("code", code)])
            .send()
            .await
            .unwrap()
    }

    async fn code(&self, code: &str) -> reqwest::Response {
        let token = self.code_page_token().await;
        self.code_with(&token, code).await
    }
}

/// Sends every wrong guess at once, each from its own browser, and once the first is
/// refused (the count is full, most guesses still on their way) the right password from
/// a browser of its own. The statuses of the wrong guesses, and the right one's.
async fn burst_with_the_right_password_among_it(
    guesses: Vec<(Browser, String)>,
    right: Browser,
    right_account: &str,
) -> (Vec<u16>, u16) {
    let (sent, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for (browser, account) in guesses {
        let sent = sent.clone();
        tokio::spawn(async move {
            let response = browser.password(&account, "not the password", None).await;
            sent.send(response.status().as_u16()).unwrap();
        });
    }
    drop(sent);
    let mut right_answer = None;
    let mut statuses = Vec::new();
    while let Some(status) = answers.recv().await {
        if status == 429 && right_answer.is_none() {
            let (right, account) = (right.clone(), right_account.to_owned());
            right_answer = Some(tokio::spawn(async move {
                right.password(&account, AGENT_PASSWORD, None).await
            }));
        }
        statuses.push(status);
    }
    // Had none been refused, the right password goes last.
    let right_answer = match right_answer {
        Some(task) => task.await.unwrap(),
        None => right.password(right_account, AGENT_PASSWORD, None).await,
    };
    (statuses, right_answer.status().as_u16())
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

async fn audited(app: &TestApp, action: &str) -> usize {
    app.desk
        .store
        .recent_audit(None, Some(action), 1_000)
        .await
        .unwrap()
        .len()
}

async fn forty_wrong_passwords_at_once_get_five_checks(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent(AGENT).await;
    let browsers = join_all((0..40).map(|_| Browser::open(&app.base))).await;
    let guesses = browsers
        .into_iter()
        .map(|b| (b, AGENT.to_owned()))
        .collect();
    let right = Browser::open(&app.base).await;
    let (statuses, right_status) =
        burst_with_the_right_password_among_it(guesses, right, AGENT).await;
    assert_eq!(count(&statuses, 401), 5, "checked: {statuses:?}");
    assert_eq!(count(&statuses, 429), 35, "never looked at: {statuses:?}");
    assert_eq!(audited(&app, "login_failed").await, 5);
    assert_eq!(
        right_status, 429,
        "the right password waits while the account is throttled"
    );
}

async fn forty_accounts_guessed_from_one_address_get_twenty_checks(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent(AGENT).await;
    let browsers = join_all((0..40).map(|_| Browser::open(&app.base))).await;
    let guesses = browsers
        .into_iter()
        .enumerate()
        .map(|(n, b)| (b, format!("guess{n}@vendor.test")))
        .collect();
    let right = Browser::open(&app.base).await;
    let (statuses, right_status) =
        burst_with_the_right_password_among_it(guesses, right, AGENT).await;
    assert_eq!(count(&statuses, 401), 20, "checked: {statuses:?}");
    assert_eq!(count(&statuses, 429), 20, "never looked at: {statuses:?}");
    assert_eq!(
        right_status, 429,
        "the agent's right password from the same address waits too"
    );
}

async fn sixty_codes_at_once_get_five_checks(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent(AGENT).await;
    let agent = Browser::open(&app.base).await;
    assert_eq!(
        agent.password(AGENT, AGENT_PASSWORD, None).await.status(),
        303
    );
    let in_force = app.totp_codes_in_force(AGENT);
    let guesses: Vec<String> = (100_000..)
        .step_by(7_919)
        .map(|n: u32| n.to_string())
        .filter(|code| !in_force.contains(code))
        .take(60)
        .collect();
    let token = agent.code_page_token().await;
    let statuses: Vec<u16> = join_all(
        guesses
            .iter()
            .map(|code| async { agent.code_with(&token, code).await.status().as_u16() }),
    )
    .await;
    assert_eq!(count(&statuses, 401), 5, "checked: {statuses:?}");
    assert_eq!(count(&statuses, 429), 55, "never looked at: {statuses:?}");
    assert_eq!(audited(&app, "second_factor_failed").await, 5);
    let right = agent.code(&app.totp_code(AGENT)).await;
    assert_eq!(right.status(), 429, "the right code waits too");
}

/// Password and code from `browser`; the browser then holds a full session and a device
/// cookie for the account.
async fn full_sign_in(app: &TestApp, browser: &Browser) {
    let password = browser.password(AGENT, AGENT_PASSWORD, None).await;
    assert_eq!(password.status(), 303);
    assert_eq!(password.headers()["location"], "/console/login/code");
    // Each code is accepted once: move to a fresh 30-second step.
    app.advance(30);
    let code = browser.code(&app.totp_code(AGENT)).await;
    assert_eq!(code.status(), 303);
    assert_eq!(code.headers()["location"], "/console");
    assert!(
        code.cookies().any(|c| c.name() == "rd_device"),
        "a completed sign-in leaves a device cookie"
    );
}

async fn strangers_cannot_lock_out_a_browser_that_signed_in_before(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent(AGENT).await;
    app.create_agent("other@vendor.test").await;
    let laptop = Browser::open(&app.base).await;
    let desktop = Browser::open(&app.base).await;
    full_sign_in(&app, &laptop).await;
    full_sign_in(&app, &desktop).await;

    // A stranger locks both accounts for every browser without a device cookie.
    for account in [AGENT, "other@vendor.test"] {
        for _ in 0..5 {
            let stranger = Browser::open(&app.base).await;
            let guess = stranger.password(account, "a stranger's guess", None).await;
            assert_eq!(guess.status(), 401);
        }
        let stranger = Browser::open(&app.base).await;
        let locked = stranger.password(account, AGENT_PASSWORD, None).await;
        assert_eq!(locked.status(), 429, "{account}");
    }

    // The agent's laptop signs in all the same, and the stranger stays locked out.
    let laptop = Browser::open_with(laptop.client, &app.base).await;
    full_sign_in(&app, &laptop).await;
    let stranger = Browser::open(&app.base).await;
    assert_eq!(
        stranger
            .password(AGENT, AGENT_PASSWORD, None)
            .await
            .status(),
        429
    );

    // A device cookie opens only its own account's count.
    assert_eq!(
        laptop
            .password("other@vendor.test", AGENT_PASSWORD, None)
            .await
            .status(),
        429
    );

    // A device cookie that fails too often is locked out itself, and only itself.
    let laptop = Browser::open_with(laptop.client, &app.base).await;
    for _ in 0..5 {
        assert_eq!(laptop.password(AGENT, "a typo", None).await.status(), 401);
    }
    assert_eq!(
        laptop.password(AGENT, AGENT_PASSWORD, None).await.status(),
        429
    );
    let desktop = Browser::open_with(desktop.client, &app.base).await;
    full_sign_in(&app, &desktop).await;
}

async fn ipv6_clients_count_by_their_64(backend: Backend) {
    let Some(app) = spawn_app_on_with(backend, |s| {
        s.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        s.security.login_failures_per_address = 3;
    })
    .await
    else {
        return;
    };
    app.create_agent(AGENT).await;
    let try_from = |account: &'static str, password: &'static str, from: &'static str| {
        let base = app.base.clone();
        async move {
            Browser::open(&base)
                .await
                .password(account, password, Some(from))
                .await
                .status()
                .as_u16()
        }
    };
    // Three addresses of one /64, each guessing at another account, fill its count.
    for (n, from) in [
        "2001:db8:1:2::1",
        "2001:db8:1:2::2",
        "2001:db8:1:2:ffff:ffff:ffff:fffe",
    ]
    .into_iter()
    .enumerate()
    {
        let account = ["a@vendor.test", "b@vendor.test", "c@vendor.test"][n];
        assert_eq!(try_from(account, "a guess", from).await, 401, "{from}");
    }
    assert_eq!(
        try_from(AGENT, AGENT_PASSWORD, "2001:db8:1:2:abcd::9").await,
        429,
        "a fourth address in the same /64"
    );
    assert_eq!(
        try_from(AGENT, AGENT_PASSWORD, "2001:db8:1:3::1").await,
        303,
        "the next /64 is another network"
    );
    // IPv4 addresses count one by one.
    for account in ["a@vendor.test", "b@vendor.test", "c@vendor.test"] {
        assert_eq!(try_from(account, "a guess", "203.0.113.7").await, 401);
    }
    assert_eq!(try_from(AGENT, AGENT_PASSWORD, "203.0.113.7").await, 429);
    assert_eq!(try_from(AGENT, AGENT_PASSWORD, "203.0.113.8").await, 303);
}

crate::on_both_backends!(
    forty_wrong_passwords_at_once_get_five_checks,
    forty_accounts_guessed_from_one_address_get_twenty_checks,
    sixty_codes_at_once_get_five_checks,
    strangers_cannot_lock_out_a_browser_that_signed_in_before,
    ipv6_clients_count_by_their_64,
);

/// Two replicas on one PostgreSQL database count the same attempts: a burst split between
/// them gets no more checks than one replica would give.
#[tokio::test]
async fn replicas_share_one_count() {
    let Some(first) = spawn_app_on(Backend::Postgres).await else {
        return;
    };
    let url = first.desk.settings.storage.database_url.clone();
    // Replicas share the keys directory too (a replica with other keys refuses to start).
    let keys_dir = first.desk.settings.storage.keys_dir.clone();
    let second = spawn_app_with(|s| {
        s.storage.database_url = url;
        s.storage.keys_dir = keys_dir;
    })
    .await;
    first.create_agent(AGENT).await;
    let bases = [first.base.clone(), second.base.clone()];
    let browsers = join_all((0..40).map(|n| Browser::open(&bases[n % 2]))).await;
    let statuses: Vec<u16> = join_all(browsers.iter().map(|b| async move {
        b.password(AGENT, "not the password", None)
            .await
            .status()
            .as_u16()
    }))
    .await;
    assert_eq!(count(&statuses, 401), 5, "checked: {statuses:?}");
    assert_eq!(count(&statuses, 429), 35, "{statuses:?}");
}

#[tokio::test]
async fn the_sign_in_form_needs_its_token() {
    let app = spawn_app().await;
    app.create_agent(AGENT).await;
    let login = app.url("/console/login");
    let refused = |response: reqwest::Response| async move {
        assert_eq!(response.status(), 403);
        let page = response.text().await.unwrap();
        assert!(page.contains("This form has expired"), "{page}");
    };
    let fields = |token: &str| {
        vec![
            ("csrf", token.to_owned()),
            ("email", AGENT.to_owned()),
            ("password", AGENT_PASSWORD.to_owned()),
        ]
    };
    // Posted from a page elsewhere: no token, no cookie. The right password is refused,
    // and a dozen wrong ones are not even counted (the end shows it).
    for password in std::iter::once(AGENT_PASSWORD).chain(["a guess"; 12]) {
        let response = browser()
            .post(&login)
            .form(&[("email", AGENT), ("password", password)])
            .send()
            .await
            .unwrap();
        refused(response).await;
    }
    // The cookie without the field.
    let tab = Browser::open(&app.base).await;
    let response = tab
        .client
        .post(&login)
        .form(&[("email", AGENT), ("password", AGENT_PASSWORD)])
        .send()
        .await
        .unwrap();
    refused(response).await;
    // A token without its cookie, and a browser's cookie with another browser's token.
    let response = browser()
        .post(&login)
        .form(&fields(&tab.token))
        .send()
        .await
        .unwrap();
    refused(response).await;
    let other = Browser::open(&app.base).await;
    assert_ne!(other.token, tab.token);
    let response = tab
        .client
        .post(&login)
        .form(&fields(&other.token))
        .send()
        .await
        .unwrap();
    refused(response).await;
    // A token the desk never made, in both halves.
    let forged = format!("{}.{}.{}", i64::MAX, "0".repeat(24), "0".repeat(32));
    let response = app
        .client
        .post(&login)
        .header("cookie", format!("rd_sign_in={forged}"))
        .form(&fields(&forged))
        .send()
        .await
        .unwrap();
    refused(response).await;

    // None of those was counted: the page's own token still signs in, and a second tab
    // of the same browser shares it.
    let second_tab = Browser::open_with(tab.client.clone(), &app.base).await;
    assert_eq!(second_tab.token, tab.token);
    let signed_in = tab.password(AGENT, AGENT_PASSWORD, None).await;
    assert_eq!(signed_in.status(), 303);

    // A token outlives an open page by hours, not forever.
    let stale = Browser::open(&app.base).await;
    app.advance(resetdesk::auth::session::SIGN_IN_FORM_SECS);
    refused(stale.password(AGENT, AGENT_PASSWORD, None).await).await;
}
