//! Issue 20: the reserved e-mail fast track, on both backends. A request from the
//! address the owner reserved on the device is answered by the desk alone once the
//! label is read, to the reserved address only, and the device takes the response; each
//! condition that fails leaves the ticket to agents with why; supervisors switch the
//! track off live; an agent's mark of suspicion reaches the supervisors.

use resetdesk::device::{self, DeviceState};
use resetdesk::domain::{DeviceModel, DeviceSerial, EmailAddress, FirmwareVersion, Role};
use resetdesk::evidence::worker;
use resetdesk::protocol::DeviceIdentity;
use serde_json::Value;

use crate::desk_support::{
    Backend, TestApp, csrf, customer_form, export_part, file_part, keys_in, spawn_app_on,
    spawn_app_on_with,
};
use crate::evidence::printed_label;
use crate::html::text;
use crate::on_both_backends;

const SERIAL: &str = "DS-7608NI-K2/8P0820231115CCRRJ12345678";
const OTHER_SERIAL: &str = "DS-7608NI-K2/8P0820240202CCRRJ87654321";
const OWNER: &str = "Owner.Name@example.com";
const AGENT: &str = "agent@vendor.test";
const SUPERVISOR: &str = "super@vendor.test";

/// A device whose owner set `reserved` on it.
fn reserved_device(app: &TestApp, serial: &str, reserved: Option<&str>) -> DeviceState {
    let keys = app.keys();
    let identity = DeviceIdentity {
        model: DeviceModel::parse("DS-7608NI-K2").unwrap(),
        serial: DeviceSerial::parse(serial).unwrap(),
        firmware: FirmwareVersion::parse("V4.30.085").unwrap(),
        mac_address: None,
        reserved_email: reserved.map(|r| EmailAddress::parse(r).unwrap()),
    };
    device::provision(
        identity,
        &keys.master_secret().unwrap(),
        keys.public_keys().unwrap(),
    )
}

/// Sends `device`'s export, made `minutes_ago`, from `email` with a photo of the label of
/// `label_serial`; returns the ticket number.
async fn submit(
    app: &TestApp,
    device: &mut DeviceState,
    email: &str,
    minutes_ago: i64,
    label_serial: &str,
) -> String {
    submitted(app, device, email, minutes_ago, label_serial)
        .await
        .0
}

/// [`submit`], with the status link intake answered.
async fn submitted(
    app: &TestApp,
    device: &mut DeviceState,
    email: &str,
    minutes_ago: i64,
    label_serial: &str,
) -> (String, String) {
    let request = app.export(device, 0, app.now().plus_seconds(-minutes_ago * 60));
    let form = export_part(customer_form(email), &request, "xml").part(
        "label_photo",
        file_part(printed_label(label_serial, true), "label.png", "image/png"),
    );
    let response = app.submit(form).await;
    assert_eq!(response.status(), 201, "intake accepts the request");
    let body: Value = response.json().await.unwrap();
    (
        body["ticket"].as_str().unwrap().to_owned(),
        body["status_url"].as_str().unwrap().to_owned(),
    )
}

async fn ticket_of(app: &TestApp, token: &str, number: &str) -> Value {
    app.api_get(token, &format!("/api/v1/tickets/{number}"))
        .await
        .json()
        .await
        .unwrap()
}

/// The ticket's history as the API shows it: (actor, kind, detail).
async fn history(app: &TestApp, token: &str, number: &str) -> Vec<(String, String, String)> {
    ticket_of(app, token, number).await["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let field = |name: &str| e[name].as_str().unwrap_or("").to_owned();
            (field("actor"), field("kind"), field("detail"))
        })
        .collect()
}

/// Why the fast track left the ticket to agents, as its history says (empty if silent).
async fn declined(app: &TestApp, token: &str, number: &str) -> String {
    history(app, token, number)
        .await
        .into_iter()
        .filter(|(_, kind, _)| kind == "fast_track_declined")
        .map(|(actor, _, detail)| {
            assert_eq!(actor, "desk");
            detail
        })
        .collect::<Vec<_>>()
        .join("; ")
}

async fn status_of(app: &TestApp, token: &str, number: &str) -> String {
    ticket_of(app, token, number).await["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn the_reserved_address_gets_the_answer_from_the_desk_alone(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let token = app.agent_token(AGENT).await;
    let mut nvr = reserved_device(&app, SERIAL, Some(OWNER));
    // The owner writes from the same mailbox with a +tag and in other case.
    let submitter = "owner.name+reset@EXAMPLE.com";
    let (number, status_url) = submitted(&app, &mut nvr, submitter, 5, SERIAL).await;
    assert_eq!(
        status_of(&app, &token, &number).await,
        "open",
        "nothing decided before the label is read"
    );
    worker::work_until_idle(&app.desk).await.unwrap();

    let ticket = ticket_of(&app, &token, &number).await;
    assert_eq!(ticket["status"], "approved", "{ticket}");
    let approved: Vec<_> = history(&app, &token, &number)
        .await
        .into_iter()
        .filter(|(_, kind, _)| kind == "approved")
        .collect();
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0].0, "desk", "an approval by the user desk");
    assert!(
        approved[0].2.contains("fast track reserved_email"),
        "{approved:?}"
    );

    // The response goes to the reserved address as the device holds it, and only there.
    app.run_outbox().await;
    let mails = app.mails();
    let responses: Vec<_> = mails.iter().filter(|m| !keys_in(m).is_empty()).collect();
    assert_eq!(responses.len(), 1, "one response mail");
    assert_eq!(responses[0].to, OWNER);
    assert!(
        mails.iter().all(|m| m.to == OWNER || keys_in(m).is_empty()),
        "no key went anywhere else"
    );
    // ... and the device takes it.
    let (_, file) = &responses[0].attachments[0];
    let report = device::import_response(&mut nvr, file, "new admin password", app.now()).unwrap();
    assert!(
        report.iter().all(|(_, outcome)| outcome.is_ok()),
        "{report:?}"
    );

    // The audit log names the desk and the rule for the approval and the signature.
    let audit = app.desk.store.recent_audit(None, None, 50).await.unwrap();
    assert!(audit.iter().any(|e| e.actor == "desk"
        && e.action == "approve"
        && e.detail.contains("fast track reserved_email")));
    assert!(
        audit
            .iter()
            .any(|e| e.actor == "desk" && e.action == "sign")
    );
    // (The recorder is the test process's: other tests' decisions count there too.)
    assert!(
        app.metrics()
            .await
            .contains("resetdesk_automatic_decisions_total{track=\"reserved_email\"}")
    );

    // The console shows it on the ticket and among the automatic decisions.
    app.create_agent("reader@vendor.test").await;
    let agent = app.sign_in("reader@vendor.test").await;
    let page = app
        .console_page(&agent, &format!("/console/tickets/{number}"))
        .await;
    assert!(
        text(&page, "#automatic").contains("Decided by the desk alone"),
        "{page}"
    );
    let list = app
        .console_page(&agent, "/console/automatic?track=reserved_email")
        .await;
    assert!(text(&list, "#automatic-decisions").contains(&number));
    let none = app
        .console_page(&agent, "/console/automatic?track=installer")
        .await;
    assert!(!text(&none, "#automatic-decisions").contains(&number));
    // The status page's one-time code opens the response: it goes where the response
    // went, never to the submitter's spelling of the address (another inbox at a
    // provider that does not drop +tags, or a catch-all domain).
    let token = status_url.split("?t=").nth(1).unwrap();
    let code_url = app.url(&format!("/status/{number}/code?t={token}"));
    let sent = app.client.post(&code_url).send().await.unwrap();
    assert_eq!(sent.status(), 200);
    assert!(sent.text().await.unwrap().contains("O•••@example.com"));
    app.run_outbox().await;
    assert_eq!(app.access_code_mailed_to(OWNER).len(), 8);
    let elsewhere: Vec<_> = app.mails().into_iter().filter(|m| m.to != OWNER).collect();
    assert_eq!(
        elsewhere.len(),
        1,
        "the submitter's spelling got the acknowledgment only"
    );
    assert!(keys_in(&elsewhere[0]).is_empty() && !elsewhere[0].subject.contains("Your code"));
    // The customers' answer time counts agents' decisions only.
    assert!(
        app.desk
            .store
            .decision_seconds_since(app.now().plus_seconds(-3600), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn another_submitter_goes_to_agents_with_why(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let token = app.agent_token(AGENT).await;
    let mut nvr = reserved_device(&app, SERIAL, Some(OWNER));
    let number = submit(&app, &mut nvr, "someone@example.net", 5, SERIAL).await;
    worker::work_until_idle(&app.desk).await.unwrap();
    assert_eq!(status_of(&app, &token, &number).await, "open");
    assert!(
        declined(&app, &token, &number)
            .await
            .contains("the device has a reserved e-mail that differs from the submitter's")
    );
    app.create_agent("reader@vendor.test").await;
    let agent = app.sign_in("reader@vendor.test").await;
    let page = app
        .console_page(&agent, &format!("/console/tickets/{number}"))
        .await;
    let warning = text(&page, "#reserved-email-differs");
    assert!(
        warning.contains("reserved e-mail that differs from the submitter's"),
        "{page}"
    );
    assert!(warning.contains(OWNER));
    // The acknowledgment went to the submitter; no key went anywhere.
    app.run_outbox().await;
    assert!(app.mails().iter().all(|m| keys_in(m).is_empty()));
}

/// Each condition of the rule, failed one at a time: the ticket stays open for agents,
/// and its history says why.
async fn each_failed_condition_leaves_the_ticket_to_agents(backend: Backend) {
    let Some(app) = spawn_app_on_with(backend, |s| {
        s.four_eyes.watch_domains = vec!["watched.example".to_owned()];
        s.fast_tracks.per_address_per_day = 1;
    })
    .await
    else {
        return;
    };
    let token = app.agent_token(AGENT).await;
    let cases = [
        // An export made 61 minutes ago.
        ("DS-7608NI-K2/FT0000000001", OWNER, 61, None, "minutes old"),
        // A watched domain: four eyes.
        (
            "DS-7608NI-K2/FT0000000002",
            "owner@watched.example",
            5,
            None,
            "four eyes",
        ),
        // The label shows another device.
        (
            "DS-7608NI-K2/FT0000000003",
            OWNER,
            5,
            Some(OTHER_SERIAL),
            "four eyes",
        ),
    ];
    for (serial, owner, minutes, label, why) in cases {
        let mut device = reserved_device(&app, serial, Some(owner));
        let number = submit(&app, &mut device, owner, minutes, label.unwrap_or(serial)).await;
        worker::work_until_idle(&app.desk).await.unwrap();
        assert_eq!(status_of(&app, &token, &number).await, "open", "{serial}");
        let said = declined(&app, &token, &number).await;
        assert!(said.contains(why), "{serial}: {said}");
    }
    // A version 1 export carries no binding to one export.
    let mut v1 = reserved_device(&app, "DS-7608NI-K2/FT0000000004", Some(OWNER));
    let request = app.export_in(1, &mut v1, 0, app.now());
    let form = export_part(customer_form(OWNER), &request, "xml").part(
        "label_photo",
        file_part(
            printed_label("DS-7608NI-K2/FT0000000004", true),
            "label.png",
            "image/png",
        ),
    );
    let response = app.submit(form).await;
    assert_eq!(response.status(), 201);
    let number = response.json::<Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    worker::work_until_idle(&app.desk).await.unwrap();
    assert_eq!(status_of(&app, &token, &number).await, "open");
    assert!(
        declined(&app, &token, &number)
            .await
            .contains("protocol version 1")
    );

    // One answer a day to this address (the setting here): the first is answered, the
    // second is left to agents.
    let mut first = reserved_device(&app, "DS-7608NI-K2/FT0000000005", Some(OWNER));
    let answered = submit(&app, &mut first, OWNER, 5, "DS-7608NI-K2/FT0000000005").await;
    worker::work_until_idle(&app.desk).await.unwrap();
    assert_eq!(status_of(&app, &token, &answered).await, "approved");
    // The same mailbox spelled otherwise is the same address to the limit.
    let mut second = reserved_device(
        &app,
        "DS-7608NI-K2/FT0000000006",
        Some("owner.name+cam@example.com"),
    );
    let limited = submit(
        &app,
        &mut second,
        "OWNER.NAME@example.com",
        5,
        "DS-7608NI-K2/FT0000000006",
    )
    .await;
    worker::work_until_idle(&app.desk).await.unwrap();
    assert_eq!(status_of(&app, &token, &limited).await, "open");
    assert!(
        declined(&app, &token, &limited)
            .await
            .contains("last 24 hours")
    );
    // A day later the address may have one again.
    app.advance(24 * 3600 + 60);
    let mut third = reserved_device(&app, "DS-7608NI-K2/FT0000000007", Some(OWNER));
    let again = submit(&app, &mut third, OWNER, 5, "DS-7608NI-K2/FT0000000007").await;
    worker::work_until_idle(&app.desk).await.unwrap();
    assert_eq!(status_of(&app, &token, &again).await, "approved");
    // An address that became a console user's after intake: four eyes, asked at the
    // moment of deciding as an agent's approval asks.
    let mut insider = reserved_device(
        &app,
        "DS-7608NI-K2/FT0000000009",
        Some("staffer@example.org"),
    );
    let number = submit(
        &app,
        &mut insider,
        "staffer@example.org",
        5,
        "DS-7608NI-K2/FT0000000009",
    )
    .await;
    app.create_agent("staffer@example.org").await;
    worker::work_until_idle(&app.desk).await.unwrap();
    assert_eq!(status_of(&app, &token, &number).await, "open");
    assert!(
        declined(&app, &token, &number)
            .await
            .contains("console user")
    );
    // A device with no reserved e-mail is the agents' without a word.
    let mut plain = reserved_device(&app, "DS-7608NI-K2/FT0000000008", None);
    let number = submit(&app, &mut plain, OWNER, 5, "DS-7608NI-K2/FT0000000008").await;
    worker::work_until_idle(&app.desk).await.unwrap();
    assert_eq!(status_of(&app, &token, &number).await, "open");
    assert_eq!(declined(&app, &token, &number).await, "");
}

async fn a_supervisor_switches_the_track_off_for_every_replica(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let token = app.agent_token(AGENT).await;
    app.create_user(SUPERVISOR, &[Role::Supervisor]).await;
    app.create_agent("plain@vendor.test").await;
    let supervisor = app.sign_in(SUPERVISOR).await;
    let plain = app.sign_in("plain@vendor.test").await;
    let switch = async |who: &reqwest::Client, enabled: &str| {
        let page = app.console_page(who, "/console/automatic").await;
        who.post(app.url("/console/automatic/switch"))
            .form(&[
                ("csrf", csrf(&page).as_str()),
                ("track", "reserved_email"),
                ("enabled", enabled),
            ])
            .send()
            .await
            .unwrap()
    };
    // An agent may not; nor may anyone without the page's CSRF token.
    assert_eq!(switch(&plain, "off").await.status(), 403);
    let forged = supervisor
        .post(app.url("/console/automatic/switch"))
        .form(&[("track", "reserved_email"), ("enabled", "off")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(switch(&supervisor, "sideways").await.status(), 400);
    assert_eq!(switch(&supervisor, "off").await.status(), 303);

    let mut nvr = reserved_device(&app, SERIAL, Some(OWNER));
    let number = submit(&app, &mut nvr, OWNER, 5, SERIAL).await;
    worker::work_until_idle(&app.desk).await.unwrap();
    assert_eq!(
        status_of(&app, &token, &number).await,
        "open",
        "switched off: the agents'"
    );
    let page = app.console_page(&plain, "/console/automatic").await;
    assert!(text(&page, "#track-reserved_email").contains("off"));
    let audit = app.desk.store.recent_audit(None, None, 50).await.unwrap();
    assert!(audit.iter().any(|e| e.actor == SUPERVISOR
        && e.action == "fast_track.switch"
        && e.detail.contains("switched off")));

    assert_eq!(switch(&supervisor, "on").await.status(), 303);
    let mut camera = reserved_device(&app, OTHER_SERIAL, Some(OWNER));
    let number = submit(&app, &mut camera, OWNER, 5, OTHER_SERIAL).await;
    worker::work_until_idle(&app.desk).await.unwrap();
    assert_eq!(
        status_of(&app, &token, &number).await,
        "approved",
        "on again"
    );
}

async fn a_suspicious_mark_reaches_the_supervisors(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let token = app.agent_token(AGENT).await;
    app.create_user(SUPERVISOR, &[Role::Supervisor]).await;
    app.create_agent("marker@vendor.test").await;
    let mut nvr = reserved_device(&app, SERIAL, Some(OWNER));
    let number = submit(&app, &mut nvr, OWNER, 5, SERIAL).await;
    worker::work_until_idle(&app.desk).await.unwrap();
    assert_eq!(status_of(&app, &token, &number).await, "approved");

    let agent = app.sign_in("marker@vendor.test").await;
    // Without words, refused and nothing marked.
    assert_eq!(
        app.console_action(&agent, &number, "suspicious", &[("note", "  ")])
            .await,
        422
    );
    let note = "The owner phoned: they did not ask for a reset.";
    assert_eq!(
        app.console_action(&agent, &number, "suspicious", &[("note", note)])
            .await,
        303
    );
    // Twice is a conflict.
    assert_eq!(
        app.console_action(&agent, &number, "suspicious", &[("note", note)])
            .await,
        409
    );
    let page = app
        .console_page(&agent, &format!("/console/tickets/{number}"))
        .await;
    assert!(text(&page, "#suspicious").contains(note));
    let list = app
        .console_page(&agent, "/console/automatic?suspicious=yes")
        .await;
    assert!(text(&list, "#automatic-decisions").contains(&number));

    app.run_outbox().await;
    let told = app.mails_to(SUPERVISOR);
    assert_eq!(told.len(), 1, "the supervisor is told");
    assert!(told[0].subject.contains(&number));
    assert!(told[0].text.contains(note));
    assert!(
        history(&app, &token, &number)
            .await
            .iter()
            .any(|(actor, kind, _)| {
                actor == "marker@vendor.test" && kind == "marked_suspicious"
            })
    );
    // A ticket an agent decided cannot be marked.
    let mut other = reserved_device(&app, OTHER_SERIAL, None);
    let plain = submit(&app, &mut other, "ana@example.com", 5, OTHER_SERIAL).await;
    assert_eq!(
        app.console_action(&agent, &plain, "suspicious", &[("note", note)])
            .await,
        409
    );
}

on_both_backends!(
    the_reserved_address_gets_the_answer_from_the_desk_alone,
    another_submitter_goes_to_agents_with_why,
    each_failed_condition_leaves_the_ticket_to_agents,
    a_supervisor_switches_the_track_off_for_every_replica,
    a_suspicious_mark_reaches_the_supervisors,
);
