//! Requests and replies by e-mail (issue 21), on both backends: a message becomes a
//! ticket as the form makes one, the desk's mails thread under it, what is missing is
//! answered once, the reply completes the request, robots get no answer, and a message
//! is handled once however often it is handed over.

use lettre::message::header::ContentType;
use lettre::message::{Attachment, MultiPart, SinglePart};
use resetdesk::domain::Timestamp;
use resetdesk::mail::inbound::{Taken, take};
use resetdesk::protocol::{export_xml, reset_string};

use crate::desk_support::{Backend, TestApp, label_photo, spawn_app_on, spawn_app_on_with};
use crate::on_both_backends;

const NVR: &str = "DS7608NI20240115AAWR123456789";

/// An e-mail as a phone or mail program writes it: text and attachments, with the
/// threading headers given.
pub(crate) struct Outgoing<'a> {
    pub from: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub message_id: &'a str,
    pub in_reply_to: Option<&'a str>,
    pub files: Vec<(&'a str, &'a str, Vec<u8>)>,
    /// Raw header lines put in front (`Auto-Submitted: auto-replied`, …).
    pub extra_headers: &'a str,
}

impl Outgoing<'_> {
    pub fn bytes(&self) -> Vec<u8> {
        let mut builder = lettre::Message::builder()
            .from(self.from.parse().unwrap())
            .to("support@vendor.test".parse().unwrap())
            .subject(self.subject)
            .message_id(Some(self.message_id.to_owned()));
        if let Some(id) = self.in_reply_to {
            builder = builder.in_reply_to(id.to_owned()).references(id.to_owned());
        }
        let mut body = MultiPart::mixed().singlepart(SinglePart::plain(self.text.to_owned()));
        for (name, mime, bytes) in &self.files {
            body = body.singlepart(
                Attachment::new((*name).to_owned())
                    .body(bytes.clone(), ContentType::parse(mime).unwrap()),
            );
        }
        let message = builder.multipart(body).unwrap();
        let mut raw = self.extra_headers.as_bytes().to_vec();
        raw.extend(message.formatted());
        raw
    }
}

fn export_for(app: &TestApp, serial: &str) -> Vec<u8> {
    let mut device = app.device(serial, "DS-7608NI-K2");
    let request = app.export(&mut device, 0, Timestamp::now());
    export_xml::to_xml(&request).into_bytes()
}

async fn taken(app: &TestApp, raw: &[u8]) -> Taken {
    take(&app.desk, raw).await.expect("the message is taken")
}

/// The ticket as the agent API shows it.
async fn ticket_json(
    app: &TestApp,
    token: &str,
    number: &resetdesk::domain::TicketNumber,
) -> serde_json::Value {
    app.api_get(token, &format!("/api/v1/tickets/{number}"))
        .await
        .json()
        .await
        .unwrap()
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

async fn a_request_by_mail_is_answered_in_its_thread(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let mail = Outgoing {
        from: "Ana López <ana@example.com>",
        subject: "Forgot my NVR password",
        text: "Hello, the export and the label are attached.\nCountry: ES\n",
        message_id: "<first.1@phone.example>",
        in_reply_to: None,
        files: vec![
            ("export.xml", "application/xml", export_for(&app, NVR)),
            ("IMG_0001.JPG", "image/jpeg", label_photo()),
        ],
        extra_headers: "",
    };
    let Taken::NewTicket(number) = taken(&app, &mail.bytes()).await else {
        panic!("a new ticket");
    };
    // Handed over again (a retry, a second replica): nothing is done twice.
    assert_eq!(taken(&app, &mail.bytes()).await, Taken::AlreadyDone);
    app.run_outbox().await;
    let acks = app.mails_to("ana@example.com");
    assert_eq!(acks.len(), 1, "one acknowledgment");
    assert!(acks[0].subject.contains(number.as_str()));
    assert_eq!(
        header(&acks[0].headers, "In-Reply-To"),
        Some("<first.1@phone.example>")
    );
    assert_eq!(
        header(&acks[0].headers, "Auto-Submitted"),
        Some("auto-generated")
    );

    let token = app.agent_token("agent@vendor.test").await;
    let ticket = ticket_json(&app, &token, &number).await;
    assert_eq!(ticket["customer"]["name"], "Ana López");
    assert_eq!(ticket["customer"]["country"], "ES");
    let messages = ticket["messages"].as_array().expect("the conversation");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["direction"], "in");
    assert_eq!(messages[0]["from"], "ana@example.com");
    assert!(
        messages[0]["text"]
            .as_str()
            .unwrap()
            .contains("export and the label")
    );

    // The photo again, answering the acknowledgment: the ticket waits for no photo, and
    // the customer is told it was not added.
    let ack_id = format!("<{}>", acks[0].message_id);
    let again = Outgoing {
        from: "ana@example.com",
        subject: &format!("Re: {}", acks[0].subject),
        text: "Here is the photo again.",
        message_id: "<again.1@phone.example>",
        in_reply_to: Some(&ack_id),
        files: vec![("IMG_0002.JPG", "image/jpeg", label_photo())],
        extra_headers: "",
    };
    assert_eq!(
        taken(&app, &again.bytes()).await,
        Taken::Reply(number.clone())
    );
    app.run_outbox().await;
    let told = app.mails_to("ana@example.com");
    assert_eq!(told.len(), 2);
    assert!(
        told[1].text.contains("not waiting for a new photo"),
        "{}",
        told[1].text
    );

    app.approve_by_api(number.as_str()).await;
    app.run_outbox().await;
    let response = app
        .mails_to("ana@example.com")
        .into_iter()
        .find(|m| !m.attachments.is_empty())
        .expect("the response mail");
    assert_eq!(
        header(&response.headers, "In-Reply-To"),
        Some("<again.1@phone.example>"),
        "the response answers the customer's latest e-mail"
    );

    // A new export in a reply (the device rebooted, say) is a new request.
    let response_id = format!("<{}>", response.message_id);
    let new_export = Outgoing {
        from: "ana@example.com",
        subject: &format!("Re: {}", response.subject),
        text: "The key did not work after a reboot; here is a new export.",
        message_id: "<new-export.1@phone.example>",
        in_reply_to: Some(&response_id),
        files: vec![
            ("export.xml", "application/xml", export_for(&app, NVR)),
            ("IMG_0003.JPG", "image/jpeg", label_photo()),
        ],
        extra_headers: "",
    };
    let Taken::NewTicket(second) = taken(&app, &new_export.bytes()).await else {
        panic!("a new ticket of the reply's export");
    };
    assert_ne!(second, number);
}

async fn a_missing_photo_is_answered_and_the_reply_completes_the_request(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let first = Outgoing {
        from: "Luis <luis@example.com>",
        subject: "Reset",
        text: "Hola, adjunto la exportación de mi grabador. Gracias",
        message_id: "<no-photo.1@mail.example>",
        in_reply_to: None,
        files: vec![("export.xml", "text/xml", export_for(&app, NVR))],
        extra_headers: "",
    };
    assert_eq!(taken(&app, &first.bytes()).await, Taken::Answered);
    app.run_outbox().await;
    let answers = app.mails_to("luis@example.com");
    assert_eq!(answers.len(), 1, "one answer");
    let answer = &answers[0];
    // A "thanks" to the answer, bringing nothing: no second answer.
    let thanks = Outgoing {
        from: "Luis <luis@example.com>",
        subject: &format!("Re: {}", answer.subject),
        text: "Gracias, lo miro.",
        message_id: "<thanks.1@mail.example>",
        in_reply_to: Some(&format!("<{}>", answer.message_id)),
        files: Vec::new(),
        extra_headers: "",
    };
    assert!(matches!(
        taken(&app, &thanks.bytes()).await,
        Taken::Unanswered(_)
    ));
    assert!(
        answer.text.contains("foto de la etiqueta"),
        "the answer names the photo, in Spanish: {}",
        answer.text
    );
    assert!(
        !answer.text.contains("exportado"),
        "only what is missing: {}",
        answer.text
    );
    assert_eq!(
        header(&answer.headers, "Auto-Submitted"),
        Some("auto-replied")
    );
    assert_eq!(
        header(&answer.headers, "In-Reply-To"),
        Some("<no-photo.1@mail.example>")
    );

    let answer_id = format!("<{}>", answer.message_id);
    let reply = Outgoing {
        from: "Luis <luis@example.com>",
        subject: &format!("Re: {}", answer.subject),
        text: "Aquí está la foto.\n\nEl lunes, Soporte escribió:\n> Por favor",
        message_id: "<reply.2@mail.example>",
        in_reply_to: Some(&answer_id),
        files: vec![("IMG_0002.JPG", "image/jpeg", label_photo())],
        extra_headers: "",
    };
    let Taken::NewTicket(number) = taken(&app, &reply.bytes()).await else {
        panic!("the reply completes the request");
    };
    app.run_outbox().await;
    let acks: Vec<_> = app
        .mails_to("luis@example.com")
        .into_iter()
        .filter(|m| m.subject.contains(number.as_str()))
        .collect();
    assert_eq!(acks.len(), 1);
    assert_eq!(
        header(&acks[0].headers, "In-Reply-To"),
        Some("<reply.2@mail.example>")
    );
}

async fn a_rejected_customers_reply_sends_the_ticket_back(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    let mail = Outgoing {
        from: "ana@example.com",
        subject: "Password",
        text: "Here you are",
        message_id: "<req.1@example.com>",
        in_reply_to: None,
        files: vec![
            ("export.xml", "application/xml", export_for(&app, NVR)),
            ("label.jpg", "image/jpeg", label_photo()),
        ],
        extra_headers: "",
    };
    let Taken::NewTicket(number) = taken(&app, &mail.bytes()).await else {
        panic!("a new ticket");
    };
    let token = app.agent_token("agent@vendor.test").await;
    let rejected = app
        .api_post(
            &token,
            &format!("/api/v1/tickets/{number}/reject"),
            serde_json::json!({"reason": "The label photo shows another device."}),
        )
        .await;
    assert_eq!(rejected.status(), 200);
    app.run_outbox().await;
    let rejection = app
        .mails_to("ana@example.com")
        .into_iter()
        .find(|m| m.subject.contains("not approved"))
        .expect("the rejection");
    let rejection_id = format!("<{}>", rejection.message_id);

    // Someone else answering the thread is kept aside and changes nothing.
    let stranger = Outgoing {
        from: "mallory@example.net",
        subject: &format!("Re: {}", rejection.subject),
        text: "It is mine, approve it",
        message_id: "<stranger.1@example.net>",
        in_reply_to: Some(&rejection_id),
        files: Vec::new(),
        extra_headers: "",
    };
    assert_eq!(
        taken(&app, &stranger.bytes()).await,
        Taken::Reply(number.clone())
    );
    let status = |ticket: &serde_json::Value| ticket["status"].as_str().unwrap().to_owned();
    let ticket = ticket_json(&app, &token, &number).await;
    assert_eq!(status(&ticket), "rejected", "a stranger changes nothing");

    // From is forgeable: the customer's address with the ticket number in the subject,
    // but answering no mail of the desk's, is kept and changes nothing either.
    let forged = Outgoing {
        from: "ana@example.com",
        subject: &format!("[{number}] please look again"),
        text: "approve it",
        message_id: "<forged.1@example.net>",
        in_reply_to: None,
        files: Vec::new(),
        extra_headers: "",
    };
    assert_eq!(
        taken(&app, &forged.bytes()).await,
        Taken::Reply(number.clone())
    );
    let ticket = ticket_json(&app, &token, &number).await;
    assert_eq!(
        status(&ticket),
        "rejected",
        "a forged sender changes nothing"
    );

    let reply = Outgoing {
        from: "Ana <ANA@example.com>",
        subject: &format!("Re: {}", rejection.subject),
        text: "It is the right device, the label is on its back.\n\nOn Monday, Support wrote:\n> not approved",
        message_id: "<reply.1@example.com>",
        in_reply_to: Some(&rejection_id),
        files: Vec::new(),
        extra_headers: "",
    };
    assert_eq!(
        taken(&app, &reply.bytes()).await,
        Taken::Reply(number.clone())
    );
    let ticket = ticket_json(&app, &token, &number).await;
    assert_eq!(status(&ticket), "open", "back for review");
    let messages = ticket["messages"].as_array().unwrap();
    let texts: Vec<&str> = messages
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 4, "{texts:?}");
    assert_eq!(
        texts[3], "It is the right device, the label is on its back.",
        "the quoted mail is left out"
    );
    assert_eq!(messages[1]["from"], "mallory@example.net");
    let authors: Vec<&str> = messages
        .iter()
        .map(|m| m["author"].as_str().unwrap())
        .collect();
    assert_eq!(
        authors,
        ["customer", "stranger", "stranger", "customer"],
        "the forged sender is not shown as the customer"
    );

    // The agent reads the conversation on the ticket page, the unproven messages marked,
    // and the queue says the customer replied.
    app.create_agent("console@vendor.test").await;
    let agent = app.sign_in("console@vendor.test").await;
    let queue = app.console_page(&agent, "/console").await;
    assert!(queue.contains("customer replied"), "the queue's badge");
    let page = app
        .console_page(&agent, &format!("/console/tickets/{number}"))
        .await;
    let said = crate::html::texts(&page, "#messages > li");
    assert_eq!(said.len(), 4, "{said:?}");
    assert!(said[1].contains("mallory@example.net") && said[1].contains("Not proven"));
    assert!(said[2].contains("Not proven") && said[2].contains("approve it"));
    assert!(said[3].contains("Customer") && !said[3].contains("Not proven"));
    assert!(crate::html::text(&page, "#customer-replies").contains("label is on its back"));

    // The agent answers from the page: mailed to the customer in the thread of their
    // latest e-mail, kept in the conversation; the badge goes.
    let before = app.mails_to("ana@example.com").len();
    let answered = app
        .console_action(
            &agent,
            number.as_str(),
            "messages",
            &[(
                "message",
                "Thanks: could you send a photo of the back?\nWe will look again.",
            )],
        )
        .await;
    assert_eq!(answered, 303);
    app.run_outbox().await;
    let mails = app.mails_to("ana@example.com");
    assert_eq!(mails.len(), before + 1, "one mail to the customer");
    let answer = mails.last().unwrap();
    assert!(
        answer.subject.contains(number.as_str()),
        "{}",
        answer.subject
    );
    assert!(answer.text.contains("could you send a photo of the back?"));
    assert_eq!(
        header(&answer.headers, "In-Reply-To"),
        Some("<reply.1@example.com>")
    );
    assert_eq!(
        header(&answer.headers, "Auto-Submitted"),
        None,
        "a person's answer"
    );
    let ticket = ticket_json(&app, &token, &number).await;
    let last = ticket["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["direction"], "out");
    assert_eq!(last["author"], "agent");
    assert_eq!(last["from"], "console@vendor.test");
    let page = app
        .console_page(&agent, &format!("/console/tickets/{number}"))
        .await;
    assert!(crate::html::texts(&page, "#customer-replies").is_empty());
    let queue = app.console_page(&agent, "/console").await;
    assert!(!queue.contains("customer replied"), "answered");

    // An empty answer is refused with why, and sends nothing.
    let empty = app
        .console_action(&agent, number.as_str(), "messages", &[("message", "  \n ")])
        .await;
    assert_eq!(empty, 422);
    // The API answers the same way, read-only tokens aside.
    let by_api = app
        .api_post(
            &token,
            &format!("/api/v1/tickets/{number}/messages"),
            serde_json::json!({"text": "  One more thing.\u{7}  "}),
        )
        .await;
    assert_eq!(by_api.status(), 200);
    let sent: serde_json::Value = by_api.json().await.unwrap();
    assert_eq!(sent["text"], "One more thing.");
    let too_long = app
        .api_post(
            &token,
            &format!("/api/v1/tickets/{number}/messages"),
            serde_json::json!({"text": "x".repeat(4001)}),
        )
        .await;
    assert_eq!(too_long.status(), 422);
    app.run_outbox().await;
    assert_eq!(app.mails_to("ana@example.com").len(), before + 2);

    // Whoever knows the ticket number can send unproven messages, 20 an hour kept; they
    // never stop the customer's own proven reply.
    let mut ignored = 0;
    for n in 0..20 {
        let id = format!("<noise.{n}@example.net>");
        let noise = Outgoing {
            from: "noise@example.net",
            subject: &format!("[{number}] mine"),
            text: "noise",
            message_id: &id,
            in_reply_to: None,
            files: Vec::new(),
            extra_headers: "",
        };
        if let Taken::Ignored(_) = taken(&app, &noise.bytes()).await {
            ignored += 1;
        }
    }
    assert_eq!(ignored, 2, "two unproven messages came earlier this hour");
    let answer_id = format!("<{}>", answer.message_id);
    let again = Outgoing {
        from: "ana@example.com",
        subject: &format!("Re: {}", answer.subject),
        text: "Here is the back of the device, as you asked.",
        message_id: "<reply.2@example.com>",
        in_reply_to: Some(&answer_id),
        files: Vec::new(),
        extra_headers: "",
    };
    assert_eq!(
        taken(&app, &again.bytes()).await,
        Taken::Reply(number.clone())
    );
    let ticket = ticket_json(&app, &token, &number).await;
    let last = ticket["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["author"], "customer");
    assert_eq!(
        last["text"],
        "Here is the back of the device, as you asked."
    );
}

async fn robots_get_no_answer(backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else {
        return;
    };
    for (n, headers) in [
        "Auto-Submitted: auto-replied\r\n",
        "Precedence: bulk\r\n",
        "List-Id: <news.example.com>\r\n",
        "Return-Path: <>\r\n",
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("<robot.{n}@example.com>");
        let mail = Outgoing {
            from: "ana@example.com",
            subject: "Out of office",
            text: "I am away until Monday.",
            message_id: &id,
            in_reply_to: None,
            files: Vec::new(),
            extra_headers: headers,
        };
        let taken = taken(&app, &mail.bytes()).await;
        if headers.starts_with("Precedence") || headers.starts_with("List-") {
            // A person's mail through a list or group: taken, never answered.
            assert!(
                matches!(taken, Taken::Unanswered(_)),
                "{headers}: {taken:?}"
            );
        } else {
            assert!(matches!(taken, Taken::Ignored(_)), "{headers}: {taken:?}");
        }
    }
    // And our own mail coming back.
    let own = Outgoing {
        from: "Reset desk <desk@vendor.test>",
        subject: "loop",
        text: "x",
        message_id: "<own.1@example.com>",
        in_reply_to: None,
        files: Vec::new(),
        extra_headers: "",
    };
    assert!(matches!(taken(&app, &own.bytes()).await, Taken::Ignored(_)));
    app.run_outbox().await;
    assert!(app.mails().is_empty(), "no answer to any of them");
    // A support address behind a Google Group: every customer's mail carries List-Id,
    // and a request in it is still a request.
    let through_group = Outgoing {
        from: "ana@example.com",
        subject: "Reset please",
        text: "Attached.",
        message_id: "<group.1@example.com>",
        in_reply_to: None,
        files: vec![
            ("export.xml", "application/xml", export_for(&app, NVR)),
            ("label.jpg", "image/jpeg", label_photo()),
        ],
        extra_headers: "List-Id: <support.vendor.test>\r\nPrecedence: list\r\n",
    };
    assert!(matches!(
        taken(&app, &through_group.bytes()).await,
        Taken::NewTicket(_)
    ));
    app.run_outbox().await;
    assert_eq!(
        app.mails_to("ana@example.com").len(),
        1,
        "its acknowledgment"
    );
}

/// Forged senders can neither silence the address they name nor make the desk carry
/// their words: answers are limited (per address, and in all), messages are still taken,
/// and an answer repeats nothing of the message.
async fn forged_floods_neither_silence_nor_relay(backend: Backend) {
    let Some(app) = spawn_app_on_with(backend, |s| s.mail.answers_per_hour = 12).await else {
        return;
    };
    let mut answered = 0;
    for n in 0..12 {
        let id = format!("<flood.{n}@example.com>");
        let mail = Outgoing {
            from: "BUY NOW at spam.example <victim@example.com>",
            subject: "Cheap pills at spam.example",
            text: "no attachments",
            message_id: &id,
            in_reply_to: None,
            files: vec![(
                "spam.example offer.zip",
                "application/zip",
                b"PK\x03\x04".to_vec(),
            )],
            extra_headers: "",
        };
        match taken(&app, &mail.bytes()).await {
            Taken::Answered => answered += 1,
            Taken::Unanswered(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        answered, 10,
        "mail_per_sender_per_hour answers, then silence"
    );
    app.run_outbox().await;
    let answers = app.mails_to("victim@example.com");
    assert_eq!(answers.len(), 10);
    for answer in &answers {
        let whole = format!(
            "{}\n{}\n{}\n{}",
            answer.headers, answer.subject, answer.text, answer.html
        );
        assert!(
            !whole.contains("spam.example"),
            "nothing of the message is repeated: {whole}"
        );
    }
    // The address named is not silenced: its owner's own request still becomes a ticket.
    let real = Outgoing {
        from: "victim@example.com",
        subject: "Password reset",
        text: "Here are the export and the label.",
        message_id: "<real.1@example.com>",
        in_reply_to: None,
        files: vec![
            ("export.xml", "application/xml", export_for(&app, NVR)),
            ("label.jpg", "image/jpeg", label_photo()),
        ],
        extra_headers: "",
    };
    assert!(matches!(
        taken(&app, &real.bytes()).await,
        Taken::NewTicket(_)
    ));
    // And the desk's answers in all stop at mail_answers_per_hour (12 here).
    let mut others = Vec::new();
    for n in 0..3 {
        let id = format!("<other.{n}@example.org>");
        let from = format!("other{n}@example.org");
        let mail = Outgoing {
            from: &from,
            subject: "help",
            text: "no attachments",
            message_id: &id,
            in_reply_to: None,
            files: Vec::new(),
            extra_headers: "",
        };
        others.push(taken(&app, &mail.bytes()).await);
    }
    assert!(matches!(others[0], Taken::Answered));
    assert!(matches!(others[1], Taken::Answered));
    assert!(matches!(others[2], Taken::Unanswered(_)), "{others:?}");
}

on_both_backends!(
    a_request_by_mail_is_answered_in_its_thread,
    a_missing_photo_is_answered_and_the_reply_completes_the_request,
    a_rejected_customers_reply_sends_the_ticket_back,
    robots_get_no_answer,
    forged_floods_neither_silence_nor_relay,
);

#[tokio::test]
async fn a_reset_string_in_the_text_and_phone_shapes_are_read() {
    let app = crate::desk_support::spawn_app().await;
    let mut device = app.device(NVR, "DS-7608NI-K2");
    let request = app.export(&mut device, 0, Timestamp::now());
    let string = reset_string::encode(&request);
    // Wrapped as a mail program wraps a long line.
    let wrapped: String = string
        .split('-')
        .collect::<Vec<_>>()
        .chunks(6)
        .map(|groups| groups.join("-"))
        .collect::<Vec<_>>()
        .join("-\n");
    let text = format!("My reset string:\n{wrapped}\nThanks");
    let heic = {
        let mut bytes = vec![0, 0, 0, 24];
        bytes.extend(b"ftypheic");
        bytes.extend([0u8; 64]);
        bytes
    };
    let mail = Outgoing {
        from: "bo@example.com",
        subject: "reset",
        text: &text,
        message_id: "<string.1@example.com>",
        in_reply_to: None,
        files: vec![
            ("IMG_1.HEIC", "image/heic", heic),
            (
                "winmail.dat",
                "application/ms-tnef",
                vec![0x78, 0x9f, 0x3e, 0x22],
            ),
        ],
        extra_headers: "",
    };
    assert_eq!(taken(&app, &mail.bytes()).await, Taken::Answered);
    app.run_outbox().await;
    let answer = &app.mails_to("bo@example.com")[0];
    assert!(answer.text.contains("HEIC"), "{}", answer.text);
    assert!(answer.text.contains("winmail.dat"), "{}", answer.text);
    assert!(answer.text.contains("label"), "{}", answer.text);
    assert!(
        !answer.text.contains("reset string"),
        "the string was read: {}",
        answer.text
    );
}

/// `resetdesk mail-intake` for an MTA's pipe: 0 taken, 65 refused, 75 try again later.
#[test]
fn the_mta_pipe_answers_with_exit_codes() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let run = |input: &[u8], database: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_resetdesk"));
        command
            .arg("mail-intake")
            .env("RESETDESK_DATA_DIR", dir.path().join("data"))
            .env("RESETDESK_KEYS_DIR", dir.path().join("keys"))
            .env("RESETDESK_MAIL_MAX_MESSAGE_BYTES", "100000")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(url) = database {
            command.env("RESETDESK_DATABASE_URL", url);
        }
        let mut child = command.spawn().unwrap();
        // A message over the limit is refused unread: the pipe may close on the writer.
        let _ = child.stdin.take().unwrap().write_all(input);
        let output = child.wait_with_output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let plain = Outgoing {
        from: "cy@example.com",
        subject: "help",
        text: "my camera is locked",
        message_id: "<pipe.1@example.com>",
        in_reply_to: None,
        files: Vec::new(),
        extra_headers: "",
    }
    .bytes();
    let (code, said) = run(&plain, None);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("answered"), "{said}");
    let (code, said) = run(&plain, None);
    assert_eq!((code, said.contains("before")), (Some(0), true), "{said}");

    let (code, said) = run(b"Subject: no sender\r\n\r\nhello\r\n", None);
    assert_eq!(code, Some(65), "{said}");
    assert!(said.contains("sender"), "{said}");
    let (code, said) = run(&vec![b'a'; 200_000], None);
    assert_eq!(code, Some(65), "{said}");
    assert!(said.contains("100000"), "{said}");

    let (code, said) = run(&plain, Some("postgres://nobody@127.0.0.1:1/none"));
    assert_eq!(code, Some(75), "{said}");
}
