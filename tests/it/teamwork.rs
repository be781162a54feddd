//! Agents working together on tickets (issue 19): internal notes, giving a ticket to
//! someone, and the supervisors' queue of tickets waiting for a second approval.

use resetdesk::domain::Role;
use serde_json::Value;

use crate::desk_support::{
    Backend, TestApp, customer_form, export_part, file_part, label_photo, spawn_app_on,
};
use crate::html::text;
use crate::on_both_backends;

const AGENT: &str = "agent@vendor.test";
const OTHER: &str = "other@vendor.test";
const SUPERVISOR: &str = "super@vendor.test";

/// Submits a plain request from a fresh device; returns the ticket number and the status
/// page's link.
async fn submit(app: &TestApp, serial: &str, email: &str, hours_ago: i64) -> (String, String) {
    let mut device = app.device(serial, "DS-7608NI-K2");
    let request = app.export(&mut device, 0, app.now().plus_seconds(-hours_ago * 3600));
    app.submit_form(export_part(customer_form(email), &request, "xml").part(
        "label_photo",
        file_part(label_photo(), "label.jpg", "image/jpeg"),
    ))
    .await
}

/// The audit log's newest entries: (action, detail).
async fn audit_entries(app: &TestApp) -> Vec<(String, String)> {
    app.desk
        .store
        .recent_audit(None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.detail))
        .collect()
}

/// The history of a ticket as the API gives it: (actor, kind, detail).
async fn history(app: &TestApp, token: &str, number: &str) -> Vec<(String, String, String)> {
    let ticket: Value = app
        .api_get(token, &format!("/api/v1/tickets/{number}"))
        .await
        .json()
        .await
        .unwrap();
    ticket["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let field = |name: &str| e[name].as_str().unwrap_or("").to_owned();
            (field("actor"), field("kind"), field("detail"))
        })
        .collect()
}

async fn notes_stay_with_the_agents(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent(AGENT).await;
    let (number, status_url) = submit(&app, "DS-7608NI-K2/NOTE00001", "owner@example.com", 0).await;
    let agent = app.sign_in(AGENT).await;
    let note = "Customer phoned: the label is on the bottom.\nCheck the MAC against the box.";
    assert_eq!(
        app.console_action(&agent, &number, "notes", &[("note", note)])
            .await,
        303
    );
    let page = app
        .console_page(
            &agent,
            &format!("/console/tickets/{number}?done=note-added"),
        )
        .await;
    assert!(text(&page, "#notes").contains("Customer phoned: the label is on the bottom."));
    assert!(text(&page, "#notes").contains(AGENT));
    assert!(text(&page, "#action-notice").contains("Only agents see it"));

    // An empty note, or one too long, is refused with what to do; nothing is stored.
    for (bad, says) in [
        ("  \n ", "write the note first"),
        (&"x".repeat(4001) as &str, "at most 4000 characters"),
    ] {
        let page = app
            .console_page(&agent, &format!("/console/tickets/{number}"))
            .await;
        let csrf = crate::html::select_attrs(&page, "input[name=csrf]", "value")[0].clone();
        let answer = agent
            .post(app.url(&format!("/console/tickets/{number}/notes")))
            .form(&[("csrf", csrf.as_str()), ("note", bad)])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 422);
        let page = answer.text().await.unwrap();
        assert!(text(&page, "#action-error").contains(says), "{page}");
    }

    // The history keeps the note; the audit log only that one was written.
    let token = app.agent_token("reader@vendor.test").await;
    let notes: Vec<_> = history(&app, &token, &number)
        .await
        .into_iter()
        .filter(|(_, kind, _)| kind == "note")
        .collect();
    assert_eq!(
        notes,
        [(AGENT.to_owned(), "note".to_owned(), note.to_owned())]
    );
    let audit = audit_entries(&app).await;
    let noted: Vec<_> = audit
        .iter()
        .filter(|(action, _)| action == "ticket.note")
        .collect();
    assert_eq!(noted.len(), 1);
    assert!(!noted[0].1.contains("Customer phoned"), "{:?}", noted[0]);

    // Never the customer's to read: not on the status page, not in any mail.
    app.run_outbox().await;
    assert!(!app.page(&status_url).await.contains("Customer phoned"));
    assert!(
        app.mails()
            .iter()
            .all(|m| !m.text.contains("Customer phoned") && !m.html.contains("Customer phoned"))
    );
}

async fn a_ticket_is_given_to_someone_on_the_claims_terms(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent(AGENT).await;
    app.create_agent(OTHER).await;
    app.create_user(SUPERVISOR, &[Role::Agent, Role::Supervisor])
        .await;
    let (number, _) = submit(&app, "DS-7608NI-K2/GIVE00001", "owner@example.com", 0).await;
    let agent = app.sign_in(AGENT).await;
    let page = app
        .console_page(&agent, &format!("/console/tickets/{number}"))
        .await;
    assert!(
        text(&page, "#assignee").contains(OTHER),
        "anyone who decides tickets"
    );

    assert_eq!(
        app.console_action(&agent, &number, "assign", &[("assignee", OTHER)])
            .await,
        303
    );
    let page = app
        .console_page(&agent, &format!("/console/tickets/{number}"))
        .await;
    assert_eq!(text(&page, "#claimed-by"), OTHER);
    // Held by someone else now: the agent cannot take it back by giving it to himself.
    assert_eq!(
        app.console_action(&agent, &number, "assign", &[("assignee", AGENT)])
            .await,
        409
    );
    // Nobody who is not a console user that decides tickets.
    let supervisor = app.sign_in(SUPERVISOR).await;
    for nobody in ["stranger@example.com", "not an address"] {
        assert_eq!(
            app.console_action(
                &supervisor,
                &number,
                "assign",
                &[("assignee", nobody), ("take_over", "yes")]
            )
            .await,
            422,
            "{nobody}"
        );
    }
    // A supervisor gives it on, taking it from its holder.
    assert_eq!(
        app.console_action(
            &supervisor,
            &number,
            "assign",
            &[("assignee", AGENT), ("take_over", "yes")]
        )
        .await,
        303
    );
    let token = app.agent_token("reader@vendor.test").await;
    let given: Vec<_> = history(&app, &token, &number)
        .await
        .into_iter()
        .filter(|(_, kind, _)| kind == "assigned")
        .collect();
    assert_eq!(
        given,
        [
            (
                AGENT.to_owned(),
                "assigned".to_owned(),
                format!("to {OTHER}")
            ),
            (
                SUPERVISOR.to_owned(),
                "assigned".to_owned(),
                format!("to {AGENT}, taken over from {OTHER}")
            ),
        ]
    );
    let audit = audit_entries(&app).await;
    assert!(audit.iter().any(|(action, _)| action == "claim.assigned"));
    assert!(
        audit
            .iter()
            .any(|(action, _)| action == "claim.assigned_over")
    );
}

/// The tickets of a queue page, in its order.
fn listed(page: &str) -> Vec<String> {
    crate::html::select_attrs(page, "#queue tbody tr[data-ticket]", "data-ticket")
}

async fn supervisors_have_a_queue_and_a_daily_mail_of_second_approvals(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    app.create_agent(AGENT).await;
    app.create_user(SUPERVISOR, &[Role::Agent, Role::Supervisor])
        .await;
    app.create_user("off-duty@vendor.test", &[Role::Supervisor])
        .await;
    // Exported 30 hours ago: flagged as late, so it needs two approvals.
    let (flagged, _) = submit(&app, "DS-7608NI-K2/SECOND0001", "late@example.com", 30).await;
    let (plain, _) = submit(&app, "DS-7608NI-K2/SECOND0002", "plain@example.com", 0).await;
    let agent = app.sign_in(AGENT).await;
    assert_eq!(
        app.console_action(&agent, &flagged, "approve", &[("note", "label is fine")])
            .await,
        303
    );

    // The supervisor's queue lists it alone, and its count heads the queue.
    let supervisor = app.sign_in(SUPERVISOR).await;
    let page = app
        .console_page(&supervisor, "/console?status=second_approval")
        .await;
    assert_eq!(listed(&page), std::slice::from_ref(&flagged));
    assert!(text(&page, "#status-counts").contains("Waiting for a 2nd approval 1"));
    let open = app.console_page(&supervisor, "/console").await;
    assert_eq!(listed(&open), [flagged.clone(), plain.clone()]);
    // An agent's menu has no such queue.
    let agents_page = app.console_page(&agent, "/console").await;
    assert!(!agents_page.contains("second_approval"));
    let token = app.agent_token("reader@vendor.test").await;
    let api: Value = app
        .api_get(&token, "/api/v1/tickets?status=second_approval")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(api["tickets"].as_array().unwrap().len(), 1);
    assert_eq!(api["tickets"][0]["ticket"], flagged.as_str());

    // The daily mail: due from its hour (8 UTC), sent once a day by whichever replica
    // takes the day's lease, to every supervisor who is not disabled.
    use resetdesk::review::digest::{Digest, send_if_due};
    let day = app.now().unix_seconds() / 86_400 * 86_400;
    let at = |hours: i64, minutes: i64| {
        resetdesk::domain::Timestamp::from_unix_seconds(day + hours * 3600 + minutes * 60).unwrap()
    };
    assert_eq!(
        send_if_due(&app.desk, "replica-a", at(7, 59))
            .await
            .unwrap(),
        Digest::NotDue
    );
    assert_eq!(
        send_if_due(&app.desk, "replica-a", at(8, 1)).await.unwrap(),
        Digest::Sent {
            tickets: 1,
            mails: 2
        }
    );
    assert_eq!(
        send_if_due(&app.desk, "replica-b", at(8, 2)).await.unwrap(),
        Digest::SentElsewhere
    );
    // The outbox sends what is due on the desk's clock.
    let behind = at(8, 1).seconds_since(app.now());
    if behind > 0 {
        app.advance(behind);
    }
    app.run_outbox().await;
    let mails = app.mails_to(SUPERVISOR);
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].subject,
        format!(
            "1 ticket waits for a second approval ({})",
            &at(8, 1).to_string()[..10]
        )
    );
    for body in [&mails[0].text, &mails[0].html] {
        assert!(body.contains(&flagged), "{body}");
        assert!(body.contains(AGENT), "names the first approver: {body}");
        assert!(body.contains("/console?status=second_approval"), "{body}");
        assert!(!body.contains(&plain), "{body}");
    }
    assert_eq!(app.mails_to("off-duty@vendor.test").len(), 1);
    assert!(app.mails_to(AGENT).is_empty());
    let audit = audit_entries(&app).await;
    assert!(audit.iter().any(
        |(action, detail)| action == "digest.second_approval" && detail.contains("1 ticket(s)")
    ));
    // The next day, after the second approval: nothing waits, nothing is sent.
    assert_eq!(
        app.console_action(&supervisor, &flagged, "approve", &[])
            .await,
        303
    );
    assert_eq!(
        send_if_due(&app.desk, "replica-b", at(32, 0))
            .await
            .unwrap(),
        Digest::Sent {
            tickets: 0,
            mails: 0
        }
    );
    let page = app
        .console_page(&supervisor, "/console?status=second_approval")
        .await;
    assert!(listed(&page).is_empty());
}

on_both_backends!(
    notes_stay_with_the_agents,
    a_ticket_is_given_to_someone_on_the_claims_terms,
    supervisors_have_a_queue_and_a_daily_mail_of_second_approvals,
);
