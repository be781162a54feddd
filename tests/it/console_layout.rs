//! Issue 19: a console built for deciding fast. At 1280 × 800 the ticket page's first
//! screen holds the evidence (the label photo, the devices with what the label check
//! found, the flags) and the decision (approve, reject with a reason, ask for a photo),
//! for a plain ticket, a flagged one and one of six devices; serials and ticket numbers
//! are never broken mid-string, on a laptop or a phone. Asserted from the positions the
//! browser laid the elements out at, not from the HTML.

use fantoccini::key::Key;
use resetdesk::domain::Role;
use resetdesk::evidence::worker;
use resetdesk::protocol::{export_xml, qr, reset_string};
use serde_json::Value;

use crate::browser::{Driver, Page, Viewport};
use crate::browser_pages::sign_in;
use crate::desk_support::{
    Backend, TestApp, customer_form, export_part, file_part, label_photo, spawn_app, spawn_app_on,
};
use crate::evidence_pages::printed_label;
use crate::html::{select_attrs, text};
use crate::on_both_backends;

const AGENT: &str = "agent@vendor.test";
const OWN_SERIAL: &str = "DS-7608NI-K2/8P0820231115CCRRJ11110001";
const SECOND_SERIAL: &str = "DS-7608NI-K2/8P0820231115CCRRJ11110002";
const RECORDER_SERIAL: &str = "DS-7608NI-K2/8P0820231115CCRRJ11110003";
/// A device in no export of this test: its label sent with another device's export.
const STRANGER_SERIAL: &str = "DS-7608NI-K2/8P0820240202CCRRJ99990009";

/// Submits an export of a fresh device `serial` (with `cameras` behind it) and the label
/// printed for `label_of`; returns the ticket number.
async fn submit(app: &TestApp, serial: &str, cameras: usize, label_of: &str) -> String {
    let mut device = app.device(serial, "DS-7608NI-K2");
    let request = app.export(&mut device, cameras, app.now());
    let form = export_part(customer_form("ana@example.com"), &request, "xml").part(
        "label_photo",
        file_part(printed_label(label_of), "label.png", "image/png"),
    );
    let response = app.submit(form).await;
    assert_eq!(response.status(), 201, "intake accepts the request");
    let body: serde_json::Value = response.json().await.unwrap();
    body["ticket"].as_str().unwrap().to_owned()
}

/// Where the element matching `css` was laid out: left, top, right and bottom in CSS
/// pixels of the viewport, as the page shows it unscrolled.
async fn layout(page: &Page, css: &str) -> [f64; 4] {
    let rect = page
        .client
        .execute(
            "const r = document.querySelector(arguments[0]).getBoundingClientRect();
             return [r.left, r.top, r.right, r.bottom];",
            vec![Value::from(css)],
        )
        .await
        .unwrap();
    let side = |i: usize| rect[i].as_f64().unwrap();
    [side(0), side(1), side(2), side(3)]
}

/// The viewport's width and height in CSS pixels.
async fn viewport(page: &Page) -> (f64, f64) {
    let size = page
        .client
        .execute(
            "return [window.innerWidth, window.innerHeight];",
            Vec::new(),
        )
        .await
        .unwrap();
    (size[0].as_f64().unwrap(), size[1].as_f64().unwrap())
}

/// Fails unless every serial, MAC and ticket number on the page (`.mono`) sits on one
/// line: an inline element broken across lines has a box per line.
async fn serials_never_break(page: &Page, name: &str) {
    let broken = page
        .client
        .execute(
            "return [...document.querySelectorAll('main .mono')]
                 .filter(e => getComputedStyle(e).display === 'inline' && e.getClientRects().length > 1)
                 .map(e => e.textContent);",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        broken,
        Value::Array(Vec::new()),
        "{name}: broken across lines"
    );
    let shown = page
        .client
        .execute(
            "return document.querySelectorAll('main .mono').length;",
            Vec::new(),
        )
        .await
        .unwrap();
    assert!(shown.as_u64().unwrap() > 0, "{name}: no serial checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decision_and_the_evidence_are_on_the_first_screen_of_every_ticket() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let app = spawn_app().await;
    app.create_agent(AGENT).await;
    let plain = submit(&app, OWN_SERIAL, 0, OWN_SERIAL).await;
    let flagged = submit(&app, SECOND_SERIAL, 0, STRANGER_SERIAL).await;
    let six = submit(&app, RECORDER_SERIAL, 5, RECORDER_SERIAL).await;
    worker::work_until_idle(&app.desk).await.unwrap();
    let tickets = [
        ("plain", &plain, 1, false),
        ("flagged", &flagged, 1, true),
        ("six-devices", &six, 6, true),
    ];

    for size in [Viewport::Console, Viewport::Phone] {
        let page = driver.open("first-screen", size).await;
        sign_in(&app, &page, AGENT).await;
        for (name, number, devices, is_flagged) in tickets {
            page.goto(&app.url(&format!("/console/tickets/{number}")))
                .await;
            // The preview is shown once loaded: its size is part of the layout.
            page.client
                .wait()
                .for_element(fantoccini::Locator::Css("#label-photo"))
                .await
                .unwrap();
            page.client
                .execute(
                    "const img = document.getElementById('label-photo');
                     return img.complete || new Promise(done => img.onload = done);",
                    Vec::new(),
                )
                .await
                .unwrap();
            page.check(name).await;
            let rows = page
                .client
                .execute(
                    "return document.querySelectorAll('#devices tbody tr').length;",
                    Vec::new(),
                )
                .await
                .unwrap();
            assert_eq!(rows.as_u64(), Some(devices), "{name}");
            let flags = page
                .client
                .execute("return !!document.getElementById('flags');", Vec::new())
                .await
                .unwrap();
            assert_eq!(flags.as_bool(), Some(is_flagged), "{name}");
            serials_never_break(&page, name).await;
            page.no_sideways_scroll(name).await;
            if !matches!(size, Viewport::Console) {
                continue;
            }
            let (width, height) = viewport(&page).await;
            assert_eq!((width, height), (1280.0, 800.0), "the viewport measured");
            // Every decision control whole on the first screen, without scrolling.
            for control in [
                "#approve-note",
                "#approve",
                "#canned",
                "#reason",
                "#reject",
                "#note",
                "#request-photo",
            ] {
                let [left, top, right, bottom] = layout(&page, control).await;
                assert!(
                    left >= 0.0 && top >= 0.0 && right <= width && bottom <= height,
                    "{name}: {control} at ({left}, {top})–({right}, {bottom}), outside 1280×800"
                );
            }
            // The evidence starts on the first screen above the decision bar: the label
            // photo (at least 240 px of it), the first device with its label check, the
            // flags.
            let [_, bar_top, ..] = layout(&page, "#decision").await;
            let [_, photo_top, _, photo_bottom] = layout(&page, "#label-photo").await;
            let shown = photo_bottom.min(bar_top) - photo_top;
            assert!(
                photo_top >= 0.0 && shown >= (photo_bottom - photo_top).min(240.0),
                "{name}: photo from {photo_top} to {photo_bottom}, decision from {bar_top}"
            );
            let [.., check_bottom] = layout(&page, "#devices tbody tr td.label-check").await;
            assert!(
                check_bottom <= bar_top,
                "{name}: the first label check ends at {check_bottom}, under the decision at {bar_top}"
            );
            if is_flagged {
                let [_, flags_top, ..] = layout(&page, "#flags").await;
                assert!(flags_top < bar_top, "{name}: flags at {flags_top}");
            }
            let [.., approve_bottom] = layout(&page, "#approve-next").await;
            // The figures docs/BENCHMARKS.md reports ("Console").
            eprintln!(
                "first screen at 1280×800, {name}: photo {photo_top:.0}–{photo_bottom:.0} px, \
                 first label check ends {check_bottom:.0} px, decision bar from {bar_top:.0} px, \
                 approve-and-next ends {approve_bottom:.0} px"
            );
        }
        page.goto(&app.url("/console")).await;
        page.check("queue").await;
        serials_never_break(&page, "queue").await;
        page.no_sideways_scroll("queue").await;
        page.close().await;
    }
}

#[tokio::test]
async fn each_role_sees_links_only_to_the_pages_it_may_open() {
    let app = spawn_app().await;
    app.create_agent(AGENT).await;
    app.create_user("supervisor@vendor.test", &[Role::Agent, Role::Supervisor])
        .await;
    app.create_user("admin@vendor.test", &[Role::Admin]).await;
    let admin_links = |page: &str| {
        let mut links = select_attrs(page, "nav a", "href");
        links.retain(|href| href.starts_with("/console/admin"));
        links
    };
    let reason_forms =
        |page: &str| select_attrs(page, "form[action^='/console/reasons']", "action").len();

    let agent = app.sign_in(AGENT).await;
    for path in ["/console", "/console/reasons", "/console/tokens"] {
        let page = app.console_page(&agent, path).await;
        assert_eq!(admin_links(&page), Vec::<String>::new(), "{path}");
    }
    // The list is there to read; keeping it is the supervisors' (their forms only).
    let reasons = app.console_page(&agent, "/console/reasons").await;
    assert_eq!(reason_forms(&reasons), 0);
    assert!(text(&reasons, "#reasons-keepers").contains("Supervisors keep these lists"));
    // And what the links would have led to is still refused.
    let refused = agent
        .get(app.url("/console/admin/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    let supervisor = app.sign_in("supervisor@vendor.test").await;
    let reasons = app.console_page(&supervisor, "/console/reasons").await;
    assert!(reason_forms(&reasons) >= 1, "the Add form");
    assert_eq!(admin_links(&reasons), Vec::<String>::new());

    let admin = app.sign_in("admin@vendor.test").await;
    for path in [
        "/console/admin/users",
        "/console/admin/installers",
        "/console/admin/customers",
        "/console/admin/audit",
    ] {
        let page = app.console_page(&admin, path).await;
        assert_eq!(
            admin_links(&page),
            [
                "/console/admin/users",
                "/console/admin/installers",
                "/console/admin/customers",
                "/console/admin/audit"
            ],
            "{path}"
        );
        for link in admin_links(&page) {
            app.console_page(&admin, &link).await;
        }
    }
}

#[tokio::test]
async fn the_icon_a_browser_asks_for_on_its_own_is_there() {
    let app = spawn_app().await;
    let client = crate::desk_support::browser();
    let asked = client.get(app.url("/favicon.ico")).send().await.unwrap();
    assert_eq!(asked.status(), 301);
    let location = asked.headers()["location"].to_str().unwrap().to_owned();
    let icon = client.get(app.url(&location)).send().await.unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    assert!(icon.text().await.unwrap().contains("<svg"));
}

/// Submits an export of a fresh device `serial` with a plain photo; returns the ticket.
async fn submit_plain(app: &TestApp, serial: &str, email: &str) -> String {
    let mut device = app.device(serial, "DS-7608NI-K2");
    let request = app.export(&mut device, 0, app.now());
    let form = export_part(customer_form(email), &request, "xml").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    );
    let response = app.submit(form).await;
    assert_eq!(response.status(), 201, "intake accepts the request");
    let body: serde_json::Value = response.json().await.unwrap();
    body["ticket"].as_str().unwrap().to_owned()
}

/// What the status of ticket `number` is, as the API says it.
async fn status_of(app: &TestApp, token: &str, number: &str) -> String {
    let ticket: Value = app
        .api_get(token, &format!("/api/v1/tickets/{number}"))
        .await
        .json()
        .await
        .unwrap();
    ticket["status"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_decides_twenty_tickets_with_two_keys_each() {
    let Some(driver) = Driver::start() else {
        return;
    };
    // At an agent's laptop and on a phone (390 × 844).
    for viewport in [Viewport::Console, Viewport::Phone] {
        let app = spawn_app().await;
        app.create_agent(AGENT).await;
        let token = app.agent_token("reader@vendor.test").await;
        let mut tickets = Vec::new();
        for i in 0..22 {
            let serial = format!("DS-7608NI-K2/8P0820231115CCRRJ2222{i:04}");
            tickets.push(submit_plain(&app, &serial, &format!("owner{i}@example.com")).await);
        }
        let page = driver.open("keyboard", viewport).await;
        sign_in(&app, &page, AGENT).await;
        page.find("#shortcuts-hint").await;
        page.check("queue").await;

        // "?" shows every key; Escape hides the list again.
        page.press_char('?').await;
        assert!(page.find("#shortcuts").await.is_displayed().await.unwrap());
        page.check("shortcuts").await;
        page.press_char(char::from(Key::Escape)).await;
        assert!(!page.find("#shortcuts").await.is_displayed().await.unwrap());

        // j picks the queue's first ticket, Enter opens it: getting to work.
        page.press_char('j').await;
        page.press_and_wait(char::from(Key::Enter)).await;
        assert!(
            page.url()
                .await
                .ends_with(&format!("/tickets/{}", tickets[0])),
            "{}",
            page.url().await
        );

        // Each decision: a (picks "approve and next"), Enter (approves). The next ticket
        // opens by itself and says what became of the one before.
        let mut presses_per_decision = Vec::new();
        for (i, number) in tickets.iter().take(20).enumerate() {
            assert!(
                page.url().await.contains(&format!("/tickets/{number}")),
                "decision {i}: on {}, expected {number}",
                page.url().await
            );
            let before = page.url().await;
            let mut presses = 0;
            page.press_char('a').await;
            presses += 1;
            // One key decides nothing: it picks the button, which the next key presses.
            let focused = page.client.active_element().await.unwrap();
            assert_eq!(
                focused.attr("id").await.unwrap().as_deref(),
                Some("approve-next"),
                "decision {i}"
            );
            assert_eq!(
                page.url().await,
                before,
                "decision {i}: a alone sent nothing"
            );
            assert_eq!(status_of(&app, &token, number).await, "open");
            page.press_and_wait(char::from(Key::Enter)).await;
            presses += 1;
            presses_per_decision.push(presses);
            let notice = page.text("#action-notice").await;
            assert!(
                notice.starts_with(&format!("Ticket {number}: Approved")),
                "decision {i}: {notice}"
            );
        }
        assert_eq!(presses_per_decision, [2; 20], "key presses per decision");
        page.check("after-twenty").await;
        for number in tickets.iter().take(20) {
            assert_eq!(
                status_of(&app, &token, number).await,
                "approved",
                "{number}"
            );
        }

        // p: ask for a new photo with no note, Enter sends it; the next ticket opens.
        assert!(
            page.url()
                .await
                .contains(&format!("/tickets/{}?", tickets[20]))
        );
        page.press_char('p').await;
        page.press_and_wait(char::from(Key::Enter)).await;
        assert_eq!(
            status_of(&app, &token, &tickets[20]).await,
            "awaiting_photo"
        );

        // r: reject asks once more before it tells the customer.
        assert!(
            page.url()
                .await
                .contains(&format!("/tickets/{}?", tickets[21]))
        );
        page.press_char('r').await;
        page.press_char(char::from(Key::Tab)).await;
        for c in "The photo shows another device.".chars() {
            page.press_char(c).await;
        }
        page.press_char(char::from(Key::Enter)).await;
        assert_eq!(page.text("#reject").await, "Press again to reject");
        // The same key again at once (held, bounced) is not the confirmation.
        page.press_char(char::from(Key::Enter)).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            page.url()
                .await
                .contains(&format!("/tickets/{}?", tickets[21])),
            "nothing sent yet"
        );
        assert_eq!(status_of(&app, &token, &tickets[21]).await, "open");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        page.press_and_wait(char::from(Key::Enter)).await;
        assert_eq!(status_of(&app, &token, &tickets[21]).await, "rejected");
        // The last open ticket decided: the page says no other is waiting.
        let notice = page.text("#action-notice").await;
        assert!(
            notice.contains("No other open ticket is waiting"),
            "{notice}"
        );
        page.check("queue-empty").await;
        page.close().await;
    }
}

/// The words of each cell of ticket `number`'s queue row, by column heading.
fn queue_row(queue: &str, number: &str) -> std::collections::HashMap<String, String> {
    let page = scraper::Html::parse_document(queue);
    let heading = scraper::Selector::parse("#queue thead th").unwrap();
    let row = scraper::Selector::parse(&format!("#queue tr[data-ticket='{number}'] td")).unwrap();
    let words = |element: scraper::ElementRef| {
        element
            .text()
            .flat_map(str::split_whitespace)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let headings: Vec<String> = page.select(&heading).map(words).collect();
    let cells: Vec<String> = page.select(&row).map(words).collect();
    assert_eq!(cells.len(), headings.len(), "no row for {number}:\n{queue}");
    headings.into_iter().zip(cells).collect()
}

async fn the_queue_shows_customer_deadline_state_and_risk_by_kind(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent(AGENT).await;
    let hours_ago = |hours: i64| app.now().plus_seconds(-hours * 3600);
    let submit_exported = |serial: &'static str, cameras: usize, at| {
        let mut device = app.device(serial, "DS-7608NI-K2");
        let request = app.export(&mut device, cameras, at);
        export_part(customer_form("ana@example.com"), &request, "xml").part(
            "label_photo",
            file_part(label_photo(), "label.jpg", "image/jpeg"),
        )
    };
    // Exported 43 hours ago: 5 hours left, flagged as late (one approval will be given).
    let (late, _) = app
        .submit_form(submit_exported(OWN_SERIAL, 0, hours_ago(43)))
        .await;
    // Six devices exported 30 hours ago: 18 hours left, each device flagged as late.
    let (six, six_status_url) = app
        .submit_form(submit_exported(RECORDER_SERIAL, 5, hours_ago(30)))
        .await;
    // Approved, then the customer says it did not work.
    let (failed, status_url) = app
        .submit_form(submit_exported(SECOND_SERIAL, 0, app.now()))
        .await;
    app.approve_by_api(&failed).await;
    let feedback = status_url.replace(
        &format!("/status/{failed}?"),
        &format!("/status/{failed}/feedback?"),
    );
    let told = app
        .client
        .post(&feedback)
        .form(&[("answer", "wrong_key")])
        .send()
        .await
        .unwrap();
    assert_eq!(told.status(), 200);

    let agent = app.sign_in(AGENT).await;
    assert_eq!(
        app.console_action(&agent, &late, "approve", &[("note", "label fine")])
            .await,
        303
    );
    let queue = app.console_page(&agent, "/console").await;
    let row = queue_row(&queue, &late);
    assert_eq!(row["Customer"], "Ana López ana@example.com");
    // Five hours less the half minute the sign-in took.
    assert_eq!(row["Export expires"], "in 4 h 59 min");
    assert_eq!(row["State"], "Open 1 of 2 approvals");
    assert!(
        crate::html::text(
            &queue,
            &format!("tr[data-ticket='{late}'] .deadline strong.soon")
        )
        .contains("in 4 h 59 min"),
        "under 6 hours left is marked"
    );
    let row = queue_row(&queue, &six);
    assert_eq!(row["Export expires"], "in 18 h");
    assert_eq!(row["State"], "Open");
    assert!(
        row["Device"].ends_with("and 5 more devices"),
        "{}",
        row["Device"]
    );
    // Seven flags, two kinds: one line each.
    let flags = crate::html::texts(&queue, &format!("tr[data-ticket='{six}'] ul.flags li"));
    assert_eq!(flags.len(), 2, "{flags:?}");
    assert!(
        flags[0].contains("was made 30 hours before") && flags[0].ends_with("(and 5 more like it)"),
        "{flags:?}"
    );
    assert_eq!(flags[1], "6 devices in one export (more than 4)");
    assert!(
        crate::html::texts(&queue, "#queue tbody tr")
            .iter()
            .all(|r| !r.contains(&failed))
    );

    let approved = app.console_page(&agent, "/console?status=approved").await;
    let row = queue_row(&approved, &failed);
    assert_eq!(row["State"], "Approved customer says it failed");
    assert_eq!(row["Export expires"], "–", "decided: no deadline");

    // The customer writes from the status page: marked until an agent does something.
    let wrote = app
        .client
        .post(six_status_url.replace(&format!("/status/{six}?"), &format!("/status/{six}/reply?")))
        .form(&[("message", "The cameras are on the roof, can you hurry?")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrote.status(),
        303,
        "back to the status page, which says it arrived"
    );
    let queue = app.console_page(&agent, "/console").await;
    assert_eq!(queue_row(&queue, &six)["State"], "Open customer replied");
    assert_eq!(
        app.console_action(&agent, &six, "notes", &[("note", "Asked the installer.")])
            .await,
        303
    );
    let queue = app.console_page(&agent, "/console").await;
    assert_eq!(queue_row(&queue, &six)["State"], "Open");
}

on_both_backends!(the_queue_shows_customer_deadline_state_and_risk_by_kind);

/// Waits for the browser to have saved `name` among the page's downloads; its text.
async fn downloaded(page: &Page, name: &str) -> String {
    let path = page.downloads.join(name);
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(&path) {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{} was not saved", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_token_is_copied_or_saved_in_one_press_and_its_use_is_shown() {
    let Some(driver) = Driver::start() else {
        return;
    };
    // At an agent's laptop and on a phone (390 × 844).
    for viewport in [Viewport::Console, Viewport::Phone] {
        let app = spawn_app().await;
        app.create_agent(AGENT).await;
        let page = driver.open("token-copy", viewport).await;
        sign_in(&app, &page, AGENT).await;
        page.goto(&app.url("/console/tokens")).await;
        page.no_sideways_scroll("tokens").await;
        page.type_into("#name", "nightly export").await;
        page.click_and_wait("form[action='/console/tokens'] button[type=submit]")
            .await;
        page.check("new-token").await;
        let token = page.text("#new-token").await;
        assert!(token.starts_with("rdt_"), "{token}");

        page.grant("clipboard-read").await;
        page.grant("clipboard-write").await;
        page.find("[data-copy='new-token'] [data-action='copy']")
            .await
            .click()
            .await
            .unwrap();
        let said = page.find("[data-copy='new-token'] .copy-said").await;
        for _ in 0..50 {
            if !said.text().await.unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(said.text().await.unwrap(), "Copied.");
        let pasted = page
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
             navigator.clipboard.readText().then(done, e => done('error: ' + e));",
                Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(pasted.as_str(), Some(format!("{token}\n").as_str()));

        page.find("[data-copy='new-token'] [data-action='download']")
            .await
            .click()
            .await
            .unwrap();
        assert_eq!(
            downloaded(&page, "resetdesk-api-token.txt").await,
            format!("{token}\n")
        );

        // Used once: the list says when.
        page.goto(&app.url("/console/tokens")).await;
        assert_eq!(page.text("#tokens td.last-used").await, "never");
        let used = app.api_get(&token, "/api/v1/tickets").await;
        assert_eq!(used.status(), 200);
        page.goto(&app.url("/console/tokens")).await;
        assert_eq!(page.text("#tokens td.last-used").await, "0 min ago");
        page.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_codes_are_saved_one_a_line_in_one_press() {
    let Some(driver) = Driver::start() else {
        return;
    };
    // At an agent's laptop and on a phone (390 × 844).
    for viewport in [Viewport::Console, Viewport::Phone] {
        let app = spawn_app().await;
        // A user who has not set up the second factor yet: the first sign-in does.
        let hash = resetdesk::auth::hash_password(crate::desk_support::AGENT_PASSWORD).unwrap();
        app.desk
            .store
            .create_user(
                &resetdesk::domain::EmailAddress::parse("new@vendor.test").unwrap(),
                &hash,
                resetdesk::domain::Roles::of(&[Role::Agent]).unwrap(),
                "test",
                app.now(),
            )
            .await
            .unwrap();
        let page = driver.open("recovery-codes", viewport).await;
        page.goto(&app.url("/console")).await;
        page.type_into("#email", "new@vendor.test").await;
        page.type_into("#password", crate::desk_support::AGENT_PASSWORD)
            .await;
        page.click_and_wait("button[type=submit]").await;
        let key = page.text("#totp-key").await.replace(' ', "");
        let code = resetdesk::auth::totp::code_at(&resetdesk::domain::Secret::new(key), app.now())
            .unwrap();
        page.type_into("#code", &code).await;
        page.click_and_wait("button[type=submit]").await;
        page.check("recovery-codes").await;
        let shown: Vec<String> = {
            let list = page.text("#recovery-codes").await;
            list.lines().map(str::trim).map(str::to_owned).collect()
        };
        assert_eq!(shown.len(), resetdesk::auth::totp::RECOVERY_CODES);
        page.find("[data-copy='recovery-codes'] [data-action='download']")
            .await
            .click()
            .await
            .unwrap();
        let saved = downloaded(&page, "resetdesk-recovery-codes.txt").await;
        assert_eq!(saved, format!("{}\n", shown.join("\n")));
        page.close().await;
    }
}

/// Where "Next ticket" on ticket `from` leads `agent`.
async fn next_after(app: &TestApp, agent: &reqwest::Client, from: &str) -> String {
    let answer = agent
        .get(app.url(&format!("/console/tickets/{from}/next")))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303, "next after {from}");
    answer.headers()["location"].to_str().unwrap().to_owned()
}

async fn next_leads_only_to_tickets_the_agent_can_decide(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent(AGENT).await;
    app.create_agent("other@vendor.test").await;
    app.create_agent("third@vendor.test").await;
    app.create_user("super@vendor.test", &[Role::Agent, Role::Supervisor])
        .await;
    let submit_by = |serial: &'static str, email: &'static str, made| {
        let mut device = app.device(serial, "DS-7608NI-K2");
        let request = app.export(&mut device, 0, made);
        export_part(customer_form(email), &request, "xml").part(
            "label_photo",
            file_part(label_photo(), "label.jpg", "image/jpeg"),
        )
    };
    // In the order their exports die: F (made 30 hours ago, so flagged), then A, B, C
    // and G (made now, by id); G is a request from the agent's own address.
    let (f, _) = app
        .submit_form(submit_by(
            "DS-7608NI-K2/NEXT0000F",
            "f@example.com",
            app.now().plus_seconds(-30 * 3600),
        ))
        .await;
    let mut now_made = Vec::new();
    for (serial, email) in [
        ("DS-7608NI-K2/NEXT0000A", "a@example.com"),
        ("DS-7608NI-K2/NEXT0000B", "b@example.com"),
        ("DS-7608NI-K2/NEXT0000C", "c@example.com"),
        ("DS-7608NI-K2/NEXT0000G", AGENT),
    ] {
        now_made.push(app.submit_form(submit_by(serial, email, app.now())).await.0);
    }
    let [a, b, c, g] = <[String; 4]>::try_from(now_made).unwrap();
    let ticket = |n: &str| format!("/console/tickets/{n}");

    let agent = app.sign_in(AGENT).await;
    let other = app.sign_in("other@vendor.test").await;
    assert_eq!(app.console_action(&other, &b, "claim", &[]).await, 303);
    assert_eq!(
        app.console_action(&agent, &f, "approve", &[("note", "first")])
            .await,
        303
    );

    // B is claimed by someone else: passed over.
    assert_eq!(next_after(&app, &agent, &a).await, ticket(&c));
    // After C: G is the agent's own request, then from the top F (approved by this agent
    // already), then A.
    assert_eq!(next_after(&app, &agent, &c).await, ticket(&a));
    // F's second approval: a supervisor may give it ...
    let supervisor = app.sign_in("super@vendor.test").await;
    assert_eq!(next_after(&app, &supervisor, &c).await, ticket(&g));
    assert_eq!(next_after(&app, &supervisor, &g).await, ticket(&f));
    // ... another plain agent may not (neither approver would be a supervisor).
    let third = app.sign_in("third@vendor.test").await;
    assert_eq!(next_after(&app, &third, &g).await, ticket(&a));
    // The holder of a claim is led to it.
    assert_eq!(next_after(&app, &other, &a).await, ticket(&b));

    // Nothing left for this agent once the rest is decided: the queue says so.
    for number in [&a, &c] {
        assert_eq!(
            app.console_action(&agent, number, "approve", &[]).await,
            303
        );
    }
    assert_eq!(
        next_after(&app, &agent, &c).await,
        "/console?done=none-left"
    );
    let queue = app.console_page(&agent, "/console?done=none-left").await;
    assert!(text(&queue, "#action-notice").contains("No other open ticket"));
}

on_both_backends!(next_leads_only_to_tickets_the_agent_can_decide);

async fn the_ticket_shows_the_export_as_the_customer_sent_it(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent(AGENT).await;
    let mut sent = Vec::new();
    for (i, kind) in ["xml", "string", "qr"].into_iter().enumerate() {
        let mut device = app.device(&format!("DS-7608NI-K2/ASSENT000{i}"), "DS-7608NI-K2");
        let request = app.export(&mut device, 1, app.now());
        let form = export_part(customer_form("ana@example.com"), &request, kind).part(
            "label_photo",
            file_part(label_photo(), "label.jpg", "image/jpeg"),
        );
        sent.push((app.submit_form(form).await.0, request));
    }
    let agent = app.sign_in(AGENT).await;
    let shown = |page: &str| crate::html::texts(page, "#export-as-sent pre").join("");

    let (xml, request) = &sent[0];
    let page = app
        .console_page(&agent, &format!("/console/tickets/{xml}"))
        .await;
    assert_eq!(
        shown(&page),
        export_xml::to_xml(request),
        "as sent, escaped"
    );
    assert!(
        !page.contains(&export_xml::to_xml(request)),
        "markup shown as text, never as markup"
    );

    let (string, request) = &sent[1];
    let page = app
        .console_page(&agent, &format!("/console/tickets/{string}"))
        .await;
    assert_eq!(shown(&page), reset_string::encode(request));

    let (qr, request) = &sent[2];
    let page = app
        .console_page(&agent, &format!("/console/tickets/{qr}"))
        .await;
    let src = crate::html::select_attr(&page, "#export-as-sent img", "src");
    assert_eq!(src, format!("/console/tickets/{qr}/export"));
    let picture = agent.get(app.url(&src)).send().await.unwrap();
    assert_eq!(picture.status(), 200);
    assert_eq!(picture.headers()["content-type"], "image/png");
    assert!(
        picture.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("sandbox")
    );
    let expected = qr::encode_png(&reset_string::encode(request)).unwrap();
    assert_eq!(picture.bytes().await.unwrap().as_ref(), expected.as_slice());

    // Agents only; and a text export has no picture.
    let stranger = crate::desk_support::browser();
    let refused = stranger.get(app.url(&src)).send().await.unwrap();
    assert_ne!(refused.status(), 200);
    let none = agent
        .get(app.url(&format!("/console/tickets/{xml}/export")))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 404);
}

on_both_backends!(the_ticket_shows_the_export_as_the_customer_sent_it);

/// Search finds part of a ticket number, of a serial, of a name or of an address, in the
/// API and in the console's box, newest first; a search too short for the index says so.
async fn search_finds_part_of_a_number_serial_name_or_address(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let submit_as = |serial: &'static str, name: &'static str, email: &'static str| {
        let mut device = app.device(serial, "DS-7608NI-K2");
        let request = app.export(&mut device, 0, app.now());
        let customer = reqwest::multipart::Form::new()
            .text("name", name)
            .text("email", email)
            .text("country", "EC")
            .text("role", "end_user");
        export_part(customer, &request, "xml").part(
            "label_photo",
            file_part(label_photo(), "label.jpg", "image/jpeg"),
        )
    };
    let (bruno, _) = app
        .submit_form(submit_as(
            "DS-7608NI-K2/8P0820231115CCRRJ11110001",
            "Bruno Díaz",
            "bruno.diaz@correo.example",
        ))
        .await;
    let (carla, _) = app
        .submit_form(submit_as(
            "DS-7608NI-K2/8P0820231115CCRRJ22220002",
            "Carla Núñez",
            "carla@tienda.example",
        ))
        .await;
    let token = app.agent_token(AGENT).await;
    let found = |q: String| {
        let (app, token) = (&app, &token);
        async move {
            let path = format!(
                "/api/v1/tickets?{}",
                serde_urlencoded::to_string([("q", q.as_str())]).unwrap()
            );
            let answer = app.api_get(token, &path).await;
            assert_eq!(answer.status(), 200, "{path}");
            let body: Value = answer.json().await.unwrap();
            body["tickets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["ticket"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        found("bru".to_owned()).await,
        std::slice::from_ref(&bruno),
        "a name's start"
    );
    assert_eq!(
        found("NÚÑ".to_owned()).await,
        std::slice::from_ref(&carla),
        "inside a name"
    );
    assert_eq!(
        found("tienda".to_owned()).await,
        std::slice::from_ref(&carla),
        "an address's part"
    );
    assert_eq!(
        found("J22220002".to_owned()).await,
        std::slice::from_ref(&carla),
        "a serial's end"
    );
    assert_eq!(
        found(bruno[..7].to_owned()).await,
        std::slice::from_ref(&bruno),
        "a number's start"
    );
    assert_eq!(
        found(bruno[3..].replace('-', "").to_lowercase()).await,
        std::slice::from_ref(&bruno),
        "a number typed without hyphens"
    );
    assert_eq!(
        found("CCRRJ".to_owned()).await,
        [carla.clone(), bruno.clone()],
        "newest first"
    );
    let short = app.api_get(&token, "/api/v1/tickets?q=br").await;
    assert_eq!(short.status(), 400);
    assert!(
        short
            .text()
            .await
            .unwrap()
            .contains("at least 3 characters"),
        "the refusal says what a search needs"
    );

    app.create_agent("console@vendor.test").await;
    let agent = app.sign_in("console@vendor.test").await;
    let page = app
        .console_page(&agent, "/console?status=all&q=%C3%BA%C3%B1ez")
        .await;
    assert!(
        page.contains(&format!("/console/tickets/{carla}")),
        "{page}"
    );
    assert!(!page.contains(&format!("/console/tickets/{bruno}")));
    let short = agent
        .get(app.url("/console?status=all&q=br"))
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), 400);
    let page = short.text().await.unwrap();
    assert!(
        text(&page, "#search-error").contains("Type at least 3 characters to search (2 typed)"),
        "{page}"
    );
}

on_both_backends!(search_finds_part_of_a_number_serial_name_or_address);

/// What the queue page says now, read in the browser: (the current row's ticket, the
/// ticket whose link has the focus, every row's ticket, the open count, the refresh note).
async fn queue_state(page: &Page) -> (String, String, Vec<String>, String, String) {
    let state = page
        .client
        .execute(
            "const current = document.querySelector('#queue tr.current');
             const focused = document.activeElement.closest('tr[data-ticket]');
             const open = document.querySelector('#status-counts a[href=\"/console?status=open\"] .count');
             return [
               current ? current.dataset.ticket : '',
               focused ? focused.dataset.ticket : '',
               [...document.querySelectorAll('#queue tbody tr[data-ticket]')].map(r => r.dataset.ticket),
               open ? open.textContent : '',
               document.getElementById('queue-refresh').textContent,
             ];",
            Vec::new(),
        )
        .await
        .unwrap();
    let text = |v: &Value| v.as_str().unwrap().to_owned();
    (
        text(&state[0]),
        text(&state[1]),
        state[2].as_array().unwrap().iter().map(text).collect(),
        text(&state[3]),
        text(&state[4]),
    )
}

/// The queue counts tickets per status and refreshes itself in place: a ticket that came
/// in meanwhile appears, the counts follow, and the agent's current row and focus stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_counts_and_refreshes_itself_keeping_the_agents_place() {
    let Some(driver) = Driver::start() else {
        return;
    };
    // At an agent's laptop and on a phone (390 × 844).
    for viewport in [Viewport::Console, Viewport::Phone] {
        let app = crate::desk_support::spawn_app_with(|settings| {
            settings.console.queue_refresh_secs = 1;
        })
        .await;
        app.create_agent(AGENT).await;
        let mut tickets = Vec::new();
        for i in 0..3 {
            let serial = format!("DS-7608NI-K2/8P0820231115CCRRJ3333{i:04}");
            tickets.push(submit_plain(&app, &serial, &format!("owner{i}@example.com")).await);
        }
        let page = driver.open("queue-refresh", viewport).await;
        sign_in(&app, &page, AGENT).await;
        let (_, _, rows, open, said) = queue_state(&page).await;
        assert_eq!(rows, tickets);
        assert_eq!(open, "3");
        assert_eq!(said, "Refreshes every 1 seconds.");
        page.check("queue-counted").await;

        // On the second ticket; then one comes in whose export dies first: it goes on top.
        page.press_char('j').await;
        page.press_char('j').await;
        let mut device = app.device("DS-7608NI-K2/8P0820231115CCRRJ33339999", "DS-7608NI-K2");
        let request = app.export(&mut device, 0, app.now().plus_seconds(-3600));
        let (newcomer, _) = app
            .submit_form(
                export_part(customer_form("late@example.com"), &request, "xml").part(
                    "label_photo",
                    file_part(label_photo(), "label.jpg", "image/jpeg"),
                ),
            )
            .await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let state = loop {
            let state = queue_state(&page).await;
            if state.3 == "4" && state.2.first() == Some(&newcomer) {
                break state;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the queue did not refresh: {state:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        let (current, focused, rows, _, said) = state;
        assert_eq!(
            rows,
            [&newcomer, &tickets[0], &tickets[1], &tickets[2]].map(String::clone)
        );
        assert_eq!(current, tickets[1], "the current row is still the agent's");
        assert_eq!(focused, tickets[1], "and still has the focus");
        assert!(said.starts_with("Updated at "), "{said}");
        // The keys go on from where the agent was.
        page.press_char('j').await;
        assert_eq!(queue_state(&page).await.0, tickets[2]);
        page.check("queue-refreshed").await;
        page.close().await;
    }
}
