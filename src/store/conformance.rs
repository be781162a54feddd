//! One behavioural suite for every `Store` backend. Each check takes a fresh, migrated
//! store; the backend modules at the bottom run every check against their database.

use crate::crypto::{DeviceKey, SealKeyId, SealedSecret};
use crate::domain::{
    CountryCode, CustomerRole, DeviceModel, DeviceSerial, EmailAddress, FastTrack, FirmwareVersion,
    PlainText, Role, Roles, SearchText, TicketNumber, TicketStatus, Timestamp,
};
use crate::i18n::Lang;
use crate::protocol::{DeviceChallenge, DeviceIdentity, Nonce};
use crate::store::{
    AddressChange, AddressChangeOutcome, AddressChanger, Approval, Attachment, AutomaticApproval,
    AutomaticFilter, CodeCheck, Conflict, CreateOutcome, Customer, DeviceSource, EarlierPhoto,
    ErasureOutcome, ErasureRequest, EvidenceFailure, EvidenceJob, EvidenceReading, EvidenceState,
    ExportForm, FirstApproval, GrantKind, InstallerId, IntakeBucket, IntakeHit, IntakeReservation,
    JobEnd, KeptFile, LabelCheck, LabelFinding, LoginAttempt, LoginLimits, LoginReservation,
    MailKind, MailedDecision, Marked, MessageAuthor, NewAccessCode, NewApiToken, NewMail,
    NewSession, NewTicket, NewTicketMessage, OutboxStatus, Previews, QueueCursor, QueueFilter,
    QueueOrder, ReadCode, Registered, ReplyOutcome, ResentApproval, SessionStage, Store,
    StoreError, StoredExport, StoredResponse, StoredSeed, StoredSignature, SuspicionMark,
    TicketEventKind, TicketId, TicketSummary, TicketView, TokenScope, UserId,
};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_800_000_000 + seconds).unwrap()
}

fn email(raw: &str) -> EmailAddress {
    EmailAddress::parse(raw).unwrap()
}

fn challenge(serial: &str, issued_at: Timestamp) -> DeviceChallenge {
    let identity = DeviceIdentity {
        model: DeviceModel::parse("DS-7608NI-K2").unwrap(),
        serial: DeviceSerial::parse(serial).unwrap(),
        firmware: FirmwareVersion::parse("V4.30.085").unwrap(),
        mac_address: None,
        reserved_email: None,
    };
    DeviceChallenge::issue(
        identity,
        Nonce::random(),
        issued_at,
        &DeviceKey::from_bytes([7; 32]),
    )
}

fn ticket(customer: &str, devices: Vec<DeviceChallenge>, created_at: Timestamp) -> NewTicket {
    NewTicket {
        number: TicketNumber::generate(),
        customer: Customer {
            name: PlainText::parse("Ana López", 200).unwrap(),
            email: email(customer),
            phone: None,
            company: None,
            country: CountryCode::parse("ES").unwrap(),
            role: CustomerRole::Installer,
            purchase_channel: None,
            language: Lang::Es,
        },
        export_form: ExportForm::Xml,
        export: StoredExport::InRow(b"<export/>".to_vec()),
        label_blob: "b".repeat(64),
        label_media_type: "image/jpeg".to_owned(),
        devices,
        flags: Vec::new(),
        repeat_of: None,
        installer: None,
        by_mail: None,
        created_at,
    }
}

/// A message the customer wrote on the status page.
fn status_page_message(text: &str) -> NewTicketMessage {
    NewTicketMessage {
        author: MessageAuthor::Customer,
        sender: "customer@example.com".to_owned(),
        body: text.to_owned(),
        message_id: None,
    }
}

fn mail(kind: MailKind, to: &str) -> NewMail {
    let name = kind.as_str();
    NewMail {
        in_reply_to: None,
        message_id: format!("<{name}.{}@test>", TicketNumber::generate()),
        kind,
        recipient: email(to),
        subject: format!("{name} subject"),
        body_text: "text".to_owned(),
        body_html: "<p>html</p>".to_owned(),
        attachment: None,
    }
}

async fn created(store: &dyn Store, new: &NewTicket) -> TicketNumber {
    match store
        .create_ticket(
            new,
            &mail(MailKind::Acknowledgment, new.customer.email.as_str()),
        )
        .await
        .unwrap()
    {
        CreateOutcome::Created { number, .. } => number,
        other => panic!("expected a new ticket, got {other:?}"),
    }
}

async fn agent(store: &dyn Store, address: &str) -> UserId {
    user_with(store, address, &[Role::Agent]).await
}

async fn user_with(store: &dyn Store, address: &str, roles: &[Role]) -> UserId {
    store
        .create_user(
            &email(address),
            "$argon2id$hash",
            Roles::of(roles).unwrap(),
            "test",
            at(0),
        )
        .await
        .unwrap()
}

fn all() -> QueueFilter {
    QueueFilter {
        limit: 100,
        ..Default::default()
    }
}

pub async fn users_and_tokens(store: &dyn Store) {
    let id = agent(store, "agent@vendor.test").await;
    assert!(matches!(
        store
            .create_user(
                &email("agent@vendor.test"),
                "h",
                Roles::of(&[Role::Admin]).unwrap(),
                "test",
                at(0)
            )
            .await,
        Err(StoreError::Conflict(Conflict::EmailTaken { .. }))
    ));
    let user = store
        .user_by_email(&email("agent@vendor.test"))
        .await
        .unwrap();
    assert_eq!(
        (user.id, user.roles, user.disabled),
        (id, Roles::of(&[Role::Agent]).unwrap(), false)
    );
    assert!(user.totp_secret.is_none());
    assert!(matches!(
        store.user_by_email(&email("nobody@vendor.test")).await,
        Err(StoreError::NotFound)
    ));

    let token = |hash, scope, expires_at| NewApiToken {
        user: id,
        token_hash: hash,
        name: "ci",
        scope,
        expires_at,
        created_at: at(0),
    };
    store
        .create_api_token(&token("hash-1", TokenScope::Decide, None))
        .await
        .unwrap();
    store
        .create_api_token(&token("hash-2", TokenScope::Read, Some(at(100))))
        .await
        .unwrap();
    let (found, scope) = store.user_by_api_token("hash-1", at(1)).await.unwrap();
    assert_eq!((found.id, scope), (id, TokenScope::Decide));
    assert_eq!(
        store.user_by_api_token("hash-2", at(99)).await.unwrap().1,
        TokenScope::Read
    );
    assert!(
        matches!(
            store.user_by_api_token("hash-2", at(100)).await,
            Err(StoreError::NotFound)
        ),
        "expired"
    );
    assert!(matches!(
        store.user_by_api_token("hash-3", at(1)).await,
        Err(StoreError::NotFound)
    ));
    let listed = store.api_tokens(id).await.unwrap();
    assert_eq!(listed.len(), 2);
    store
        .revoke_api_token(id, listed[0].id, at(2))
        .await
        .unwrap();
    assert!(
        matches!(
            store.user_by_api_token("hash-1", at(3)).await,
            Err(StoreError::NotFound)
        ),
        "revoked"
    );
    assert!(store.api_tokens(id).await.unwrap()[0].revoked);
    let other = agent(store, "other@vendor.test").await;
    assert!(
        matches!(
            store.revoke_api_token(other, listed[1].id, at(4)).await,
            Err(StoreError::NotFound)
        ),
        "only the owner revokes"
    );

    store
        .set_roles(
            id,
            Roles::of(&[Role::Supervisor, Role::Admin]).unwrap(),
            "admin@vendor.test",
            at(5),
        )
        .await
        .unwrap();
    assert!(
        store
            .user_by_email(&email("agent@vendor.test"))
            .await
            .unwrap()
            .roles
            .contains(Role::Admin)
    );
    store
        .set_disabled(id, true, "admin@vendor.test", at(6))
        .await
        .unwrap();
    assert!(
        store
            .user_by_email(&email("agent@vendor.test"))
            .await
            .unwrap()
            .disabled
    );
    store
        .set_disabled(id, false, "admin@vendor.test", at(7))
        .await
        .unwrap();
    assert_eq!(store.users().await.unwrap().len(), 2);
    // Whoever held the account may have made tokens: a new password revokes them all.
    store
        .create_api_token(&token("hash-4", TokenScope::Decide, None))
        .await
        .unwrap();
    store
        .set_password(id, "$argon2id$new", "admin@vendor.test", at(8))
        .await
        .unwrap();
    assert!(matches!(
        store.user_by_api_token("hash-4", at(9)).await,
        Err(StoreError::NotFound)
    ));
    store
        .create_api_token(&token("hash-5", TokenScope::Read, None))
        .await
        .unwrap();
    store
        .revoke_sessions(id, "admin@vendor.test", at(10))
        .await
        .unwrap();
    assert!(matches!(
        store.user_by_api_token("hash-5", at(11)).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn tickets_resubmission_and_supersede(store: &dyn Store) {
    let first = ticket(
        "a@example.com",
        vec![challenge("SERIAL-0001", at(0))],
        at(10),
    );
    let number = created(store, &first).await;
    // The customer's language comes back as it went in: the e-mails are written in it.
    let stored = store.ticket(&number).await.unwrap();
    assert_eq!(stored.customer.language, Lang::Es);
    // The export comes back as it went in, from the ticket's row, which names no blob.
    assert_eq!(stored.export_blob, None);
    assert_eq!(store.ticket_export(&number).await.unwrap(), first.export);
    // The same challenge again finds the same ticket and writes nothing.
    let mut again = ticket("b@example.com", first.devices.clone(), at(20));
    again.number = TicketNumber::generate();
    assert_eq!(
        store
            .create_ticket(&again, &mail(MailKind::Acknowledgment, "b@example.com"))
            .await
            .unwrap(),
        CreateOutcome::Existing {
            number: number.clone()
        }
    );
    assert_eq!(store.tickets(&all()).await.unwrap().len(), 1);
    assert_eq!(store.mail_counts().await.unwrap(), (1, 0, 0));

    // A newer export from the same device supersedes the open ticket.
    let newer = ticket(
        "a@example.com",
        vec![challenge("SERIAL-0001", at(100))],
        at(110),
    );
    let CreateOutcome::Created {
        number: newer_number,
        superseded,
    } = store
        .create_ticket(&newer, &mail(MailKind::Acknowledgment, "a@example.com"))
        .await
        .unwrap()
    else {
        panic!("expected a new ticket");
    };
    assert_eq!(superseded, vec![number.clone()]);
    let old = store.ticket(&number).await.unwrap();
    assert_eq!(old.summary.status, TicketStatus::Superseded);
    assert_eq!(old.superseded_by, Some(newer_number.clone()));
    assert_eq!(old.events.last().unwrap().kind, TicketEventKind::Superseded);

    // An export older than one already waiting is out of date.
    let stale = ticket(
        "a@example.com",
        vec![challenge("SERIAL-0001", at(50))],
        at(120),
    );
    assert!(matches!(
        store
            .create_ticket(&stale, &mail(MailKind::Acknowledgment, "a@example.com"))
            .await,
        Err(StoreError::NewerExport { ticket, serial })
            if ticket == newer_number.as_str() && serial == "SERIAL-0001"
    ));
    assert_eq!(store.tickets(&all()).await.unwrap().len(), 2);
}

pub async fn queue_filters_and_search(store: &dyn Store) {
    let a = created(
        store,
        &ticket(
            "Ana@Example.com",
            vec![challenge("DS-AAA-0001", at(0))],
            at(30),
        ),
    )
    .await;
    let b = created(
        store,
        &ticket(
            "bo@example.com",
            vec![
                challenge("DS-BBB-0001", at(0)),
                challenge("DS-BBB-0002", at(0)),
            ],
            at(10),
        ),
    )
    .await;
    let queue = store.tickets(&all()).await.unwrap();
    assert_eq!(
        queue.iter().map(|t| t.number.clone()).collect::<Vec<_>>(),
        vec![b.clone(), a.clone()],
        "oldest first"
    );
    assert_eq!(queue[0].device_count, 2);
    assert_eq!(queue[0].first_serial, "DS-BBB-0001");
    let search = |q: &str| QueueFilter {
        search: Some(SearchText::parse(q).unwrap()),
        limit: 100,
        ..Default::default()
    };
    let found = |q: &'static str| {
        let filter = search(q);
        async move {
            let found: Vec<_> = store
                .tickets(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.number)
                .collect();
            found
        }
    };
    let (a_text, b_text) = (a.as_str().to_owned(), b.as_str().to_owned());
    assert_eq!(store.tickets(&search(&a_text)).await.unwrap()[0].number, a);
    assert_eq!(
        store
            .tickets(&search(&a_text.to_lowercase()))
            .await
            .unwrap()[0]
            .number,
        a
    );
    // Part of a number, with or without its hyphens.
    assert_eq!(
        store.tickets(&search(&b_text[..7])).await.unwrap()[0].number,
        b
    );
    assert_eq!(
        store
            .tickets(&search(&b_text[3..11].replace('-', "")))
            .await
            .unwrap()[0]
            .number,
        b
    );
    // Any part of any serial, in any case; newest first.
    assert_eq!(found("ds-bbb-0002").await, std::slice::from_ref(&b));
    assert_eq!(found("B-0002").await, std::slice::from_ref(&b));
    assert_eq!(
        found("-000").await,
        [b.clone(), a.clone()],
        "last in, first"
    );
    // A name, an e-mail, part of either.
    assert_eq!(found("ana@example.com").await, std::slice::from_ref(&a));
    assert_eq!(found("NA@EX").await, std::slice::from_ref(&a));
    assert_eq!(found("lópez").await, [b.clone(), a.clone()]);
    assert_eq!(found("ana l").await, [b.clone(), a.clone()]);
    // No field runs into the next: the end of the e-mail and the first serial.
    assert!(found("comds").await.is_empty());
    // Its parts apart (as an index may find them first) are not the search.
    assert!(found("ds-0001").await.is_empty());
    assert!(found("%%%").await.is_empty(), "LIKE wildcards are literal");
    assert!(found("DS-BBB_0001").await.is_empty(), "_ is not a wildcard");
    assert!(found("\"ds").await.is_empty(), "a quote is literal");
    // With a status, and a page at a time after the cursor, newest first.
    let approved = QueueFilter {
        status: Some(TicketStatus::Approved),
        ..search("-000")
    };
    assert!(store.tickets(&approved).await.unwrap().is_empty());
    let first = QueueFilter {
        limit: 1,
        ..search("-000")
    };
    assert_eq!(first.order_applied(), QueueOrder::Newest);
    let page = store.tickets(&first).await.unwrap();
    assert_eq!(page[0].number, b);
    let second = QueueFilter {
        after: Some(QueueCursor::after(&page[0], QueueOrder::Newest)),
        ..first
    };
    let page = store.tickets(&second).await.unwrap();
    assert_eq!(page[0].number, a);
    let open = QueueFilter {
        status: Some(TicketStatus::Approved),
        limit: 100,
        ..Default::default()
    };
    assert!(store.tickets(&open).await.unwrap().is_empty());
    // Counted by status; a status no ticket holds is left out.
    assert_eq!(
        store.status_counts().await.unwrap(),
        [(TicketStatus::Open, 2)]
    );
}

/// Pending tickets in the order their exports die: the earliest-made challenge of each
/// ticket sets its deadline, whenever the ticket came in; pages follow a cursor in that
/// order; with a search, or over every status, the order is by age.
pub async fn the_pending_queue_walks_by_deadline(store: &dyn Store) {
    let hour = 3600;
    // (serials, made at, came in at): the second came in first but dies last; the third
    // holds a camera exported earlier than its recorder; two die in the same second.
    let tickets = [
        (vec![("DS-DUE-A", 10 * hour)], 12 * hour),
        (vec![("DS-DUE-B", 20 * hour)], 11 * hour),
        (
            vec![("DS-DUE-C", 9 * hour), ("DS-DUE-C1", 5 * hour)],
            13 * hour,
        ),
        (vec![("DS-DUE-D", 10 * hour)], 14 * hour),
    ];
    let mut numbers = Vec::new();
    for (devices, came_in) in tickets {
        let devices = devices
            .into_iter()
            .map(|(serial, made)| challenge(serial, at(made)))
            .collect();
        numbers.push(created(store, &ticket("d@example.com", devices, at(came_in))).await);
    }
    let by_deadline = |after| QueueFilter {
        status: Some(TicketStatus::Open),
        after,
        limit: 2,
        order: QueueOrder::Deadline,
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let filter = by_deadline(after);
        assert_eq!(filter.order_applied(), QueueOrder::Deadline);
        let page = store.tickets(&filter).await.unwrap();
        seen.extend(page.iter().map(|t| t.number.clone()));
        match page.last() {
            Some(last) if page.len() == 2 => {
                after = Some(QueueCursor::after(last, QueueOrder::Deadline));
            }
            _ => break,
        }
    }
    let expected = [&numbers[2], &numbers[0], &numbers[3], &numbers[1]];
    assert_eq!(
        seen.iter().collect::<Vec<_>>(),
        expected,
        "the first to die first"
    );
    let first = &store.tickets(&by_deadline(None)).await.unwrap()[0];
    assert_eq!(
        first.export_expires_at,
        at(5 * hour + crate::protocol::CHALLENGE_LIFETIME_SECS),
        "the camera made earliest sets the ticket's deadline"
    );
    // Every status at once walks by age; a search, newest first.
    let every_status = QueueFilter {
        status: None,
        limit: 10,
        ..by_deadline(None)
    };
    assert_eq!(every_status.order_applied(), QueueOrder::Age);
    let numbers_of = |page: Vec<TicketSummary>| -> Vec<TicketNumber> {
        page.into_iter().map(|t| t.number).collect()
    };
    assert_eq!(
        numbers_of(store.tickets(&every_status).await.unwrap()),
        [&numbers[1], &numbers[0], &numbers[2], &numbers[3]].map(Clone::clone)
    );
    let searched = QueueFilter {
        search: Some(SearchText::parse("d@example.com").unwrap()),
        limit: 10,
        ..by_deadline(None)
    };
    assert_eq!(searched.order_applied(), QueueOrder::Newest);
    assert_eq!(
        numbers_of(store.tickets(&searched).await.unwrap()),
        [&numbers[3], &numbers[2], &numbers[1], &numbers[0]].map(Clone::clone)
    );
}

pub async fn queue_pages_follow_a_cursor(store: &dyn Store) {
    let mut numbers = Vec::new();
    for i in 0..5 {
        let serial = format!("DS-PAGE-000{i}");
        // Two tickets share a creation second: the id breaks the tie.
        numbers.push(
            created(
                store,
                &ticket(
                    "p@example.com",
                    vec![challenge(&serial, at(0))],
                    at(10 + i / 2),
                ),
            )
            .await,
        );
    }
    for status in [None, Some(TicketStatus::Open)] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .tickets(&QueueFilter {
                    status,
                    after,
                    limit: 2,
                    ..Default::default()
                })
                .await
                .unwrap();
            seen.extend(page.iter().map(|t| t.number.clone()));
            match page.last() {
                Some(last) if page.len() == 2 => {
                    after = Some(QueueCursor::after(last, QueueOrder::Age));
                }
                _ => break,
            }
        }
        assert_eq!(
            seen, numbers,
            "every ticket once, oldest first ({status:?})"
        );
    }
    let cursor = QueueCursor {
        at: at(11),
        id: TicketId(3),
    };
    assert_eq!(QueueCursor::parse(&cursor.to_param()), Some(cursor));
    assert_eq!(QueueCursor::parse("garbage"), None);
}

pub async fn approval_happens_once(store: &dyn Store) {
    let alice = agent(store, "alice@vendor.test").await;
    let bob = agent(store, "bob@vendor.test").await;
    let new = ticket(
        "c@example.com",
        vec![challenge("SERIAL-0003", at(0))],
        at(10),
    );
    let number = created(store, &new).await;
    let detail = store.ticket(&number).await.unwrap();
    store.claim(detail.id, alice, false, at(11)).await.unwrap();
    // The store keeps a sealed signature as it was given (it cannot open it).
    let response = StoredResponse {
        export_id: None,
        serial: new.devices[0].identity.serial.clone(),
        nonce: new.devices[0].nonce,
        expires_at: new.devices[0].expires_at(),
        key_id: crate::crypto::KeyId::parse("0123456789abcdef").unwrap(),
        signature: StoredSignature::Sealed(SealedSecret {
            key_id: SealKeyId::parse("00000000000000aa").unwrap(),
            ciphertext: "ab".repeat(92),
        }),
    };
    let approval = |by| Approval {
        ticket_id: detail.id,
        evidence_version: 1,
        by,
        as_role: Role::Agent,
        note: String::new(),
        prior_approvals: 0,
        at: at(20),
        responses: vec![response.clone()],
        mail: mail(MailKind::Approval, "c@example.com"),
    };
    store.approve(&approval(alice)).await.unwrap();
    let second = store.approve(&approval(bob)).await;
    assert!(
        matches!(&second, Err(StoreError::Conflict(Conflict::AlreadyDecided { by, .. })) if by == "alice@vendor.test"),
        "{second:?}"
    );
    assert!(matches!(
        store
            .reject(&MailedDecision {
                ticket_id: detail.id,
                by: bob,
                text: "no",
                mail: &mail(MailKind::Rejection, "c@example.com"),
                evidence_version: 1,
                at: at(21)
            })
            .await,
        Err(StoreError::Conflict(_))
    ));
    let after = store.ticket(&number).await.unwrap();
    assert_eq!(after.summary.status, TicketStatus::Approved);
    assert_eq!(after.responses, vec![response]);
    assert_eq!(after.decided_by.as_deref(), Some("alice@vendor.test"));
    assert_eq!(
        store.mail_counts().await.unwrap(),
        (2, 0, 0),
        "acknowledgment + one approval"
    );
}

/// The desk's own decisions (issue 20): made by a user no list shows, counted per
/// mailbox inside the approval's transaction, listed and filtered, switched and marked,
/// each audited.
pub async fn automatic_decisions_are_counted_switched_and_marked(store: &dyn Store) {
    let desk = store.desk_user().await.unwrap();
    assert!(
        !store.holds_users().await.unwrap(),
        "the desk's user is no person"
    );
    assert!(store.users().await.unwrap().is_empty());
    // Nobody can give it roles (nor sign in as it: no address finds it).
    assert!(matches!(
        store
            .set_roles(
                desk,
                Roles::parse_stored("agent,supervisor").unwrap(),
                "admin",
                at(1)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    let response = |new: &NewTicket| StoredResponse {
        export_id: None,
        serial: new.devices[0].identity.serial.clone(),
        nonce: new.devices[0].nonce,
        expires_at: new.devices[0].expires_at(),
        key_id: crate::crypto::KeyId::parse("0123456789abcdef").unwrap(),
        signature: StoredSignature::Sealed(SealedSecret {
            key_id: SealKeyId::parse("00000000000000aa").unwrap(),
            ciphertext: "ab".repeat(92),
        }),
    };
    let automatic = |ticket_id, new: &NewTicket, at_: Timestamp| AutomaticApproval {
        approval: Approval {
            ticket_id,
            evidence_version: 1,
            by: desk,
            as_role: Role::Agent,
            note: "automatic".to_owned(),
            prior_approvals: 0,
            at: at_,
            responses: vec![response(new)],
            // To the device's reserved address, not the submitter's spelling.
            mail: mail(MailKind::Approval, "owner@example.com"),
        },
        customer_email: EmailAddress::parse("Owner+x@example.com").unwrap(),
        track: FastTrack::ReservedEmail,
        installer: None,
        recipient_mailbox: "owner@example.com".to_owned(),
        limit: 1,
        why: "the reserved e-mail is the submitter's".to_owned(),
    };
    let first = ticket(
        "Owner+x@example.com",
        vec![challenge("SERIAL-FT01", at(0))],
        at(10),
    );
    let first_number = created(store, &first).await;
    let first_id = store.ticket(&first_number).await.unwrap().id;
    store
        .approve_automatically(&automatic(first_id, &first, at(20)))
        .await
        .unwrap();
    let decided = store.ticket(&first_number).await.unwrap();
    assert_eq!(decided.summary.status, TicketStatus::Approved);
    assert_eq!(decided.decided_by.as_deref(), Some("desk"));
    assert_eq!(decided.approvals[0].email, "desk");

    // One a day for this mailbox: the second is refused and leaves nothing behind.
    let second = ticket(
        "owner@example.com",
        vec![challenge("SERIAL-FT02", at(0))],
        at(30),
    );
    let second_number = created(store, &second).await;
    let second_id = store.ticket(&second_number).await.unwrap().id;
    let mut limited = automatic(second_id, &second, at(40));
    limited.customer_email = EmailAddress::parse("owner@example.com").unwrap();
    assert!(matches!(
        store.approve_automatically(&limited).await,
        Err(StoreError::Conflict(Conflict::FastTrackLimit { limit: 1 }))
    ));
    let open = store.ticket(&second_number).await.unwrap();
    assert_eq!(open.summary.status, TicketStatus::Open);
    assert!(open.approvals.is_empty() && open.responses.is_empty());
    // A day later it may.
    limited.approval.at = at(20 + 24 * 3600 + 1);
    store.approve_automatically(&limited).await.unwrap();

    let all = store
        .automatic_decisions(&AutomaticFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|d| d.ticket.clone()).collect::<Vec<_>>(),
        vec![second_number.clone(), first_number.clone()],
        "newest first"
    );
    let none = store
        .automatic_decisions(&AutomaticFilter {
            track: Some(FastTrack::Installer),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());

    // Marks: once each, automatic decisions only, mailed and audited.
    let marker = agent(store, "marker@vendor.test").await;
    // An agent who claims the ticket after the desk looked, or a flag added since,
    // makes it theirs: the desk's approval is a conflict and leaves nothing.
    let claimed = ticket(
        "owner@example.com",
        vec![challenge("SERIAL-FT04", at(0))],
        at(10),
    );
    let claimed_number = created(store, &claimed).await;
    let claimed_id = store.ticket(&claimed_number).await.unwrap().id;
    store
        .claim(claimed_id, marker, false, at(41))
        .await
        .unwrap();
    let mut late = automatic(claimed_id, &claimed, at(42));
    late.customer_email = EmailAddress::parse("owner@example.com").unwrap();
    late.recipient_mailbox = "other@example.com".to_owned();
    assert!(matches!(
        store.approve_automatically(&late).await,
        Err(StoreError::Conflict(_))
    ));
    let still = store.ticket(&claimed_number).await.unwrap();
    assert_eq!(still.summary.status, TicketStatus::Open);
    assert!(
        store
            .automatic_decision(claimed_id)
            .await
            .unwrap()
            .is_none()
    );
    let mark = |ticket_id| SuspicionMark {
        ticket_id,
        by: marker,
        note: "the owner did not ask".to_owned(),
        at: at(50),
        mails: vec![mail(MailKind::SuspiciousDecision, "super@vendor.test")],
    };
    let (pending_before, _, dead_before) = store.mail_counts().await.unwrap();
    assert_eq!(
        store.mark_suspicious(&mark(first_id)).await.unwrap(),
        Marked { suspended: None }
    );
    assert!(matches!(
        store.mark_suspicious(&mark(first_id)).await,
        Err(StoreError::Conflict(Conflict::AlreadySuspicious))
    ));
    let by_agent = ticket(
        "c@example.com",
        vec![challenge("SERIAL-FT03", at(0))],
        at(10),
    );
    let by_agent_number = created(store, &by_agent).await;
    let by_agent_id = store.ticket(&by_agent_number).await.unwrap().id;
    assert!(matches!(
        store.mark_suspicious(&mark(by_agent_id)).await,
        Err(StoreError::Conflict(Conflict::NotAutomatic))
    ));
    let marked = store.automatic_decision(first_id).await.unwrap().unwrap();
    assert_eq!(marked.recipient.as_str(), "owner@example.com", "as mailed");
    let suspicion = marked.suspicious.unwrap();
    assert_eq!(suspicion.by, "marker@vendor.test");
    assert_eq!(suspicion.note, "the owner did not ask");
    let only = store
        .automatic_decisions(&AutomaticFilter {
            only_suspicious: true,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(only.len(), 1);
    let (pending, _, dead) = store.mail_counts().await.unwrap();
    assert_eq!(dead, dead_before);
    assert_eq!(
        pending,
        pending_before + 2,
        "the supervisor's mail, queued with the mark (and the third ticket's acknowledgment)"
    );

    // Switches: none until a supervisor sets one; each change audited with the old state.
    assert!(store.fast_track_switches().await.unwrap().is_empty());
    let supervisor = user_with(store, "super@vendor.test", &[Role::Supervisor]).await;
    store
        .switch_fast_track(FastTrack::ReservedEmail, false, supervisor, at(60))
        .await
        .unwrap();
    store
        .switch_fast_track(FastTrack::ReservedEmail, true, supervisor, at(61))
        .await
        .unwrap();
    let switches = store.fast_track_switches().await.unwrap();
    assert_eq!(switches.len(), 1);
    assert!(switches[0].enabled);
    assert_eq!(switches[0].changed_by, "super@vendor.test");
    let audit = store.recent_audit(None, None, 100).await.unwrap();
    let said = |actor: &str, action: &str| {
        audit
            .iter()
            .filter(|e| e.actor == actor && e.action == action)
            .map(|e| e.detail.clone())
            .collect::<Vec<_>>()
    };
    assert!(
        said("super@vendor.test", "fast_track.switch")
            .iter()
            .any(|d| d.contains("switched on (was off)"))
    );
    assert!(
        said("desk", "approve")
            .iter()
            .all(|d| d.contains("fast track reserved_email"))
    );
    assert_eq!(said("desk", "approve").len(), 2);
    assert_eq!(said("marker@vendor.test", "automatic.suspicious").len(), 1);
    store
        .record_fast_track_declined(by_agent_id, FastTrack::ReservedEmail, "too old", at(70))
        .await
        .unwrap();
    let history = store.ticket(&by_agent_number).await.unwrap().events;
    assert!(
        history
            .iter()
            .any(|e| e.kind == TicketEventKind::FastTrackDeclined
                && e.actor == "desk"
                && e.detail == "fast track reserved_email: too old")
    );
}

/// Registered installers (issue 20): one per mailbox, their tokens (live until a
/// suspension revokes them), their devices (a registration made again keeps the first,
/// removals count only theirs), each change audited.
pub async fn installers_tokens_and_devices(store: &dyn Store) {
    let ops = email("Ops@Installer.example");
    let id = store
        .add_installer(&ops, "Instalaciones Sur", "cli", at(0))
        .await
        .unwrap();
    assert!(matches!(
        store
            .add_installer(&email("ops+two@installer.example"), "Again", "cli", at(1))
            .await,
        Err(StoreError::Conflict(Conflict::InstallerExists { .. }))
    ));
    let found = store
        .installer_by_email(&email("OPS@installer.example"))
        .await
        .unwrap();
    assert_eq!(
        (found.id, found.email.as_str()),
        (id, "Ops@installer.example")
    );
    store
        .create_installer_token(id, "hash-1", "cli", at(2))
        .await
        .unwrap();
    assert_eq!(
        store.installer_by_token("hash-1", at(3)).await.unwrap().id,
        id
    );
    assert!(matches!(
        store.installer_by_token("hash-2", at(3)).await,
        Err(StoreError::NotFound)
    ));

    let serial = |s: &str| DeviceSerial::parse(s).unwrap();
    let first = store
        .register_installer_devices(
            id,
            &[serial("SERIAL-IN01"), serial("SERIAL-IN02")],
            DeviceSource::SelfRegistered,
            "installer:ops@installer.example",
            at(10),
        )
        .await
        .unwrap();
    assert_eq!(
        first,
        Registered {
            added: 2,
            already: 0
        }
    );
    let again = store
        .register_installer_devices(
            id,
            &[serial("SERIAL-IN02"), serial("SERIAL-IN03")],
            DeviceSource::Import,
            "cli",
            at(20),
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        Registered {
            added: 1,
            already: 1
        }
    );
    let of = store
        .registrations_of(&["SERIAL-IN02".to_owned(), "SERIAL-NONE".to_owned()])
        .await
        .unwrap();
    assert_eq!(of.len(), 1);
    assert_eq!(
        (of[0].source, of[0].registered_at),
        (DeviceSource::SelfRegistered, at(10)),
        "the first registration, and its hold, stand"
    );
    assert_eq!(
        store.installer_device_counts().await.unwrap(),
        vec![(id, 1, 2)]
    );
    assert!(matches!(
        store.installer(InstallerId(id.0 + 1000)).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.self_registrations(10).await.unwrap().len(), 2);
    // A rival holding the same serial keeps theirs when this installer's comes off.
    let rival = store
        .add_installer(&email("rival@installs.example"), "Rival", "cli", at(25))
        .await
        .unwrap();
    store
        .register_installer_devices(
            rival,
            &[serial("SERIAL-IN01")],
            DeviceSource::Import,
            "cli",
            at(26),
        )
        .await
        .unwrap();
    let removed = store
        .remove_installer_devices(
            id,
            &[serial("SERIAL-IN01"), serial("SERIAL-NONE")],
            "cli",
            at(30),
        )
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(store.installer_devices(id, 10).await.unwrap().len(), 2);
    assert_eq!(store.installer_devices(rival, 10).await.unwrap().len(), 1);

    // A suspension revokes every token; a resume does not bring them back.
    store
        .set_installer_suspended(id, Some("contract ended"), "cli", at(40))
        .await
        .unwrap();
    let suspended = store.installer(id).await.unwrap();
    assert_eq!(
        suspended.suspended,
        Some((at(40), "contract ended".to_owned()))
    );
    assert!(matches!(
        store.installer_by_token("hash-1", at(41)).await,
        Err(StoreError::NotFound)
    ));
    store
        .set_installer_suspended(id, None, "cli", at(50))
        .await
        .unwrap();
    assert!(store.installer(id).await.unwrap().suspended.is_none());
    assert!(matches!(
        store.installer_by_token("hash-1", at(51)).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .set_installer_suspended(InstallerId(id.0 + 1000), None, "cli", at(52))
            .await,
        Err(StoreError::NotFound)
    ));

    let audit = store.recent_audit(None, None, 100).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    for action in [
        "installer.add",
        "installer.token",
        "installer.devices",
        "installer.devices_removed",
        "installer.suspend",
        "installer.resume",
    ] {
        assert!(actions.contains(&action), "{action}: {actions:?}");
    }
    assert!(audit.iter().any(|e| e.action == "installer.devices"
        && e.actor == "installer:ops@installer.example"
        && e.detail.contains("SERIAL-IN01 SERIAL-IN02")));
    assert!(
        audit
            .iter()
            .any(|e| e.action == "installer.suspend" && e.detail.contains("1 token(s) revoked"))
    );
}

pub async fn flagged_tickets_take_two_approvals(store: &dyn Store) {
    let alice = agent(store, "alice@vendor.test").await;
    let bob = agent(store, "bob@vendor.test").await;
    let sam = user_with(store, "sam@vendor.test", &[Role::Supervisor]).await;
    let mut new = ticket(
        "f@example.com",
        vec![challenge("SERIAL-0006", at(0))],
        at(10),
    );
    new.flags = vec![
        "seven devices in one export (more than 4)".to_owned(),
        "watch list".to_owned(),
    ];
    let number = created(store, &new).await;
    let detail = store.ticket(&number).await.unwrap();
    assert_eq!(detail.summary.flags, new.flags, "flags round-trip in order");
    let first = |by, as_role| FirstApproval {
        ticket_id: detail.id,
        evidence_version: 1,
        by,
        as_role,
        note: "label matches".to_owned(),
        at: at(20),
    };
    store
        .add_first_approval(&first(alice, Role::Agent))
        .await
        .unwrap();
    assert!(
        matches!(
            store.add_first_approval(&first(bob, Role::Agent)).await,
            Err(StoreError::Conflict(Conflict::ApprovalRaced))
        ),
        "only one first approval"
    );
    let after_first = store.ticket(&number).await.unwrap();
    assert_eq!(after_first.summary.status, TicketStatus::Open);
    assert_eq!(after_first.approvals.len(), 1);
    // It now waits for its second approval, in the supervisors' queue of its own.
    let awaiting = QueueFilter {
        awaiting_second_approval: true,
        limit: 10,
        ..Default::default()
    };
    assert_eq!(awaiting.order_applied(), QueueOrder::Deadline);
    let waiting = store.tickets(&awaiting).await.unwrap();
    assert_eq!(
        waiting.iter().map(|t| &t.number).collect::<Vec<_>>(),
        [&number]
    );
    assert_eq!(store.awaiting_second_approval_count().await.unwrap(), 1);
    assert_eq!(
        (
            after_first.approvals[0].by,
            after_first.approvals[0].note.as_str()
        ),
        (alice, "label matches")
    );
    assert!(
        after_first.responses.is_empty(),
        "nothing is signed by the first approval"
    );
    let second = |by, prior| Approval {
        ticket_id: detail.id,
        evidence_version: 1,
        by,
        as_role: Role::Supervisor,
        note: "agreed".to_owned(),
        prior_approvals: prior,
        at: at(30),
        responses: Vec::new(),
        mail: mail(MailKind::Approval, "f@example.com"),
    };
    assert!(
        matches!(
            store.approve(&second(sam, 0)).await,
            Err(StoreError::Conflict(_))
        ),
        "stale view of the approvals"
    );
    assert_eq!(
        store.ticket(&number).await.unwrap().summary.status,
        TicketStatus::Open,
        "the refused approval changed nothing"
    );
    assert!(
        matches!(
            store.approve(&second(alice, 1)).await,
            Err(StoreError::Conflict(_))
        ),
        "nobody approves twice"
    );
    store.approve(&second(sam, 1)).await.unwrap();
    let done = store.ticket(&number).await.unwrap();
    assert_eq!(done.summary.status, TicketStatus::Approved);
    assert!(
        store.tickets(&awaiting).await.unwrap().is_empty(),
        "decided"
    );
    assert_eq!(store.awaiting_second_approval_count().await.unwrap(), 0);
    assert_eq!(
        done.approvals.iter().map(|a| a.as_role).collect::<Vec<_>>(),
        vec![Role::Agent, Role::Supervisor]
    );
    assert_eq!(
        store
            .exporters_of_serial_since("SERIAL-0006", at(0))
            .await
            .unwrap(),
        vec!["SERIAL-0006"]
    );
    assert!(
        store
            .exporters_of_serial_since("SERIAL-0006", at(11))
            .await
            .unwrap()
            .is_empty()
    );
}

fn reading(
    job: &EvidenceJob,
    findings: &[(&str, LabelFinding)],
    at_: Timestamp,
) -> EvidenceReading {
    EvidenceReading {
        job_id: job.id,
        findings: findings
            .iter()
            .map(|(serial, finding)| ((*serial).to_owned(), *finding))
            .collect(),
        other_serials: findings
            .iter()
            .filter(|(_, finding)| *finding == LabelFinding::OtherSerial)
            .map(|_| "SERIAL-9999".to_owned())
            .take(1)
            .collect(),
        codes: vec![ReadCode {
            format: "qr".to_owned(),
            text: "SN:SERIAL-0101".to_owned(),
        }],
        preview: None,
        at: at_,
    }
}

/// Each label photo gets a job with its ticket; a job is leased by one worker at a time,
/// leased again when its worker's lease runs out, and recorded once.
pub async fn evidence_jobs_are_leased_once_and_recorded_once(store: &dyn Store) {
    let devices = vec![
        challenge("SERIAL-0101", at(0)),
        challenge("SERIAL-0102", at(0)),
    ];
    let number = created(store, &ticket("e@example.com", devices, at(10))).await;
    let detail = store.ticket(&number).await.unwrap();
    let jobs = store.claim_evidence_jobs(at(11), 60, 10).await.unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = jobs[0].clone();
    assert_eq!(
        (job.ticket_id, job.label_blob.as_str(), job.attempts),
        (detail.id, detail.label_blob.as_str(), 1)
    );
    assert_eq!(
        store
            .label_evidence(detail.id)
            .await
            .unwrap()
            .unwrap()
            .state,
        EvidenceState::Pending
    );
    // Another worker, while the lease runs: nothing to take.
    assert!(
        store
            .claim_evidence_jobs(at(30), 60, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The first worker died: once its lease has run out, the job is taken again.
    let again = store.claim_evidence_jobs(at(72), 60, 10).await.unwrap();
    assert_eq!(
        again.iter().map(|j| (j.id, j.attempts)).collect::<Vec<_>>(),
        vec![(job.id, 2)]
    );
    let found = [
        ("SERIAL-0101", LabelFinding::Matches),
        ("SERIAL-0102", LabelFinding::NotOnLabel),
    ];
    assert_eq!(
        store
            .finish_evidence_job(&reading(&job, &found, at(80)))
            .await
            .unwrap(),
        JobEnd::Recorded
    );
    // The worker whose lease ran out finishes too: recorded once only.
    assert_eq!(
        store
            .finish_evidence_job(&reading(&job, &found, at(81)))
            .await
            .unwrap(),
        JobEnd::AlreadyFinished
    );
    let evidence = store.label_evidence(detail.id).await.unwrap().unwrap();
    assert_eq!(evidence.state, EvidenceState::Done);
    assert_eq!(
        evidence.findings,
        vec![
            ("SERIAL-0101".to_owned(), LabelFinding::Matches),
            ("SERIAL-0102".to_owned(), LabelFinding::NotOnLabel),
        ]
    );
    assert_eq!(evidence.codes[0].text, "SN:SERIAL-0101");
    assert_eq!(store.evidence_counts().await.unwrap(), (0, 0));
    assert!(
        store
            .claim_evidence_jobs(at(200), 60, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let audited = store
        .recent_audit(Some("system"), Some("label_finding"), 10)
        .await
        .unwrap();
    assert_eq!(audited.len(), 2, "one audit entry per device: {audited:?}");
    let history = store.ticket(&number).await.unwrap().events;
    assert!(history.iter().any(|e| e.kind == TicketEventKind::LabelRead));
}

/// A photo replaced while its job waits or runs: the old job records nothing, and the
/// evidence shown is the new photo's.
pub async fn a_replaced_photo_supersedes_its_job(store: &dyn Store) {
    let id = agent(store, "agent@vendor.test").await;
    let number = created(
        store,
        &ticket(
            "f@example.com",
            vec![challenge("SERIAL-0201", at(0))],
            at(10),
        ),
    )
    .await;
    let detail = store.ticket(&number).await.unwrap();
    let old_job = store.claim_evidence_jobs(at(11), 60, 10).await.unwrap()[0].clone();
    store
        .request_photo(&MailedDecision {
            ticket_id: detail.id,
            by: id,
            text: "glare",
            mail: &mail(MailKind::PhotoRequest, "f@example.com"),
            evidence_version: detail.evidence_version,
            at: at(12),
        })
        .await
        .unwrap();
    store
        .replace_label_photo(detail.id, &"c".repeat(64), "image/jpeg", at(13))
        .await
        .unwrap();
    let found = [("SERIAL-0201", LabelFinding::OtherSerial)];
    assert_eq!(
        store
            .finish_evidence_job(&reading(&old_job, &found, at(14)))
            .await
            .unwrap(),
        JobEnd::Superseded
    );
    let evidence = store.label_evidence(detail.id).await.unwrap().unwrap();
    assert_eq!(evidence.state, EvidenceState::Pending, "{evidence:?}");
    assert!(evidence.findings.is_empty());
    assert!(
        store
            .ticket(&number)
            .await
            .unwrap()
            .summary
            .flags
            .is_empty(),
        "a superseded reading flags nothing"
    );
    let new_job = store.claim_evidence_jobs(at(15), 60, 10).await.unwrap();
    assert_eq!(
        new_job
            .iter()
            .map(|j| j.label_blob.clone())
            .collect::<Vec<_>>(),
        vec!["c".repeat(64)]
    );
    let found = [("SERIAL-0201", LabelFinding::Matches)];
    let previews = Previews {
        preview_blob: "p".repeat(64),
        thumbnail_blob: "q".repeat(64),
    };
    let with_previews = EvidenceReading {
        preview: Some(previews.clone()),
        ..reading(&new_job[0], &found, at(16))
    };
    store.finish_evidence_job(&with_previews).await.unwrap();
    let names = [
        previews.preview_blob.clone(),
        previews.thumbnail_blob.clone(),
    ];
    let mut kept = store.blobs_referenced(&names).await.unwrap();
    kept.sort();
    assert_eq!(
        kept,
        names.to_vec(),
        "the current photo's previews are kept"
    );
    let evidence = store.label_evidence(detail.id).await.unwrap().unwrap();
    assert_eq!(
        (evidence.state, evidence.findings.clone()),
        (
            EvidenceState::Done,
            vec![("SERIAL-0201".to_owned(), LabelFinding::Matches)]
        )
    );
    assert_eq!(evidence.previews, Some(previews));

    // A job nobody had leased yet is superseded by the new photo's job at once.
    let number = created(
        store,
        &ticket(
            "g@example.com",
            vec![challenge("SERIAL-0202", at(0))],
            at(20),
        ),
    )
    .await;
    let detail = store.ticket(&number).await.unwrap();
    store
        .request_photo(&MailedDecision {
            ticket_id: detail.id,
            by: id,
            text: "blurred",
            mail: &mail(MailKind::PhotoRequest, "g@example.com"),
            evidence_version: detail.evidence_version,
            at: at(21),
        })
        .await
        .unwrap();
    store
        .replace_label_photo(detail.id, &"e".repeat(64), "image/jpeg", at(22))
        .await
        .unwrap();
    let jobs = store.claim_evidence_jobs(at(23), 60, 10).await.unwrap();
    assert_eq!(
        jobs.iter()
            .map(|j| j.label_blob.clone())
            .collect::<Vec<_>>(),
        vec!["e".repeat(64)]
    );
}

/// A label naming a serial the export does not is a risk flag: the ticket needs four eyes.
pub async fn a_label_naming_another_device_flags_the_ticket(store: &dyn Store) {
    let number = created(
        store,
        &ticket(
            "j@example.com",
            vec![challenge("SERIAL-0501", at(0))],
            at(10),
        ),
    )
    .await;
    let job = store.claim_evidence_jobs(at(11), 60, 10).await.unwrap()[0].clone();
    let found = [("SERIAL-0501", LabelFinding::OtherSerial)];
    store
        .finish_evidence_job(&reading(&job, &found, at(12)))
        .await
        .unwrap();
    let flags = store.ticket(&number).await.unwrap().summary.flags;
    assert_eq!(
        flags,
        vec!["the label photo shows serial SERIAL-9999, which is not in the export".to_owned()]
    );
    let detail = store.ticket(&number).await.unwrap();
    let evidence = store.label_evidence(detail.id).await.unwrap().unwrap();
    assert_eq!(
        evidence.other_serials,
        ["SERIAL-9999"],
        "named beside the device on the ticket page"
    );
}

/// The queue's label column: one check per ticket asked for, from its current photo's
/// newest job, in one call for a page of tickets.
pub async fn label_checks_say_each_tickets_state(store: &dyn Store) {
    let mut ids = Vec::new();
    for (email, serials) in [
        ("k@example.com", ["SERIAL-0601", "SERIAL-0602"]),
        ("l@example.com", ["SERIAL-0611", "SERIAL-0612"]),
        ("m@example.com", ["SERIAL-0621", "SERIAL-0622"]),
        ("n@example.com", ["SERIAL-0631", "SERIAL-0632"]),
    ] {
        let devices = serials.iter().map(|s| challenge(s, at(0))).collect();
        let number = created(store, &ticket(email, devices, at(10))).await;
        ids.push(store.ticket(&number).await.unwrap().id);
    }
    let jobs = store.claim_evidence_jobs(at(11), 60, 10).await.unwrap();
    let job_of = |id: TicketId| jobs.iter().find(|j| j.ticket_id == id).unwrap().clone();
    // The first is read: one device on the label, the other not (an NVR and its camera).
    let found = [
        ("SERIAL-0601", LabelFinding::Matches),
        ("SERIAL-0602", LabelFinding::NotOnLabel),
    ];
    store
        .finish_evidence_job(&reading(&job_of(ids[0]), &found, at(12)))
        .await
        .unwrap();
    // The second shows another device's label.
    let found = [
        ("SERIAL-0611", LabelFinding::OtherSerial),
        ("SERIAL-0612", LabelFinding::OtherSerial),
    ];
    store
        .finish_evidence_job(&reading(&job_of(ids[1]), &found, at(12)))
        .await
        .unwrap();
    // The third's photo cannot be decoded; the fourth is still waiting.
    let failure = EvidenceFailure {
        job_id: job_of(ids[2]).id,
        error: "the JPEG's entropy-coded data is damaged".to_owned(),
        mail: mail(MailKind::PhotoRequest, "m@example.com"),
        damaged: true,
        at: at(12),
    };
    store.fail_evidence_job(&failure).await.unwrap();
    let checks = store.label_checks(&ids).await.unwrap();
    assert_eq!(
        ids.iter()
            .map(|id| checks.get(id).copied())
            .collect::<Vec<_>>(),
        vec![
            Some(LabelCheck::Read(LabelFinding::Matches)),
            Some(LabelCheck::Read(LabelFinding::OtherSerial)),
            Some(LabelCheck::Failed),
            Some(LabelCheck::Pending),
        ]
    );
    // The customer's new photo for the third: its check is the new photo's, not the
    // failure behind it.
    store
        .replace_label_photo(ids[2], &"g".repeat(64), "image/jpeg", at(13))
        .await
        .unwrap();
    let checks = store.label_checks(&ids[2..3]).await.unwrap();
    assert_eq!(checks.len(), 1, "only the tickets asked for: {checks:?}");
    assert_eq!(checks[&ids[2]], LabelCheck::Pending);
    assert!(store.label_checks(&[]).await.unwrap().is_empty());
}

/// A photo the worker cannot read sends an open ticket back to the customer, with the
/// mail saying so, once.
pub async fn an_unreadable_photo_sends_the_ticket_back(store: &dyn Store) {
    let number = created(
        store,
        &ticket(
            "h@example.com",
            vec![challenge("SERIAL-0301", at(0))],
            at(10),
        ),
    )
    .await;
    let detail = store.ticket(&number).await.unwrap();
    let job = store.claim_evidence_jobs(at(11), 60, 10).await.unwrap()[0].clone();
    let failure = EvidenceFailure {
        job_id: job.id,
        error: "the JPEG's entropy-coded data is damaged".to_owned(),
        mail: mail(MailKind::PhotoRequest, "h@example.com"),
        damaged: true,
        at: at(12),
    };
    assert_eq!(
        store.fail_evidence_job(&failure).await.unwrap(),
        JobEnd::Recorded
    );
    assert_eq!(
        store.fail_evidence_job(&failure).await.unwrap(),
        JobEnd::AlreadyFinished
    );
    let back = store.ticket(&number).await.unwrap();
    assert_eq!(back.summary.status, TicketStatus::AwaitingPhoto);
    assert_eq!(
        back.mails
            .iter()
            .filter(|m| m.kind == MailKind::PhotoRequest)
            .count(),
        1,
        "the customer is told once"
    );
    let evidence = store.label_evidence(detail.id).await.unwrap().unwrap();
    assert_eq!(evidence.state, EvidenceState::Failed);
    assert_eq!(evidence.error.as_deref(), Some(failure.error.as_str()));
    assert_eq!(store.evidence_counts().await.unwrap(), (0, 1));
    // The customer's next photo gets a job of its own, and the failure is behind it.
    store
        .replace_label_photo(detail.id, &"f".repeat(64), "image/jpeg", at(13))
        .await
        .unwrap();
    assert_eq!(
        store
            .label_evidence(detail.id)
            .await
            .unwrap()
            .unwrap()
            .state,
        EvidenceState::Pending
    );
}

/// A job whose workers keep stopping mid-read is not read for ever: past its attempts it
/// is still handed out, marked exhausted, for a worker to fail it without reading.
pub async fn a_job_is_given_up_after_its_attempts(store: &dyn Store) {
    created(
        store,
        &ticket(
            "i@example.com",
            vec![challenge("SERIAL-0401", at(0))],
            at(10),
        ),
    )
    .await;
    for attempt in 0..crate::store::MAX_EVIDENCE_ATTEMPTS {
        let jobs = store
            .claim_evidence_jobs(at(100 * (attempt + 1)), 60, 10)
            .await
            .unwrap();
        assert_eq!(jobs.len(), 1, "attempt {attempt}");
        assert!(!jobs[0].exhausted(), "attempt {attempt}");
    }
    for later in [5_000, 6_000] {
        let jobs = store.claim_evidence_jobs(at(later), 60, 10).await.unwrap();
        assert_eq!(jobs.len(), 1, "handed out once more");
        assert!(jobs[0].exhausted(), "to be given up");
    }
    assert_eq!(
        store.evidence_counts().await.unwrap(),
        (1, 0),
        "pending until the worker it was handed to fails it"
    );
}

/// An approval can have one ticket's photo read at once: only that ticket's job is leased,
/// and not while a worker holds it.
pub async fn one_tickets_job_can_be_leased(store: &dyn Store) {
    let first = created(
        store,
        &ticket(
            "ia@example.com",
            vec![challenge("SERIAL-0411", at(0))],
            at(10),
        ),
    )
    .await;
    let second = created(
        store,
        &ticket(
            "ib@example.com",
            vec![challenge("SERIAL-0412", at(0))],
            at(11),
        ),
    )
    .await;
    let first = store.ticket(&first).await.unwrap();
    let second = store.ticket(&second).await.unwrap();
    let job = store
        .claim_ticket_evidence_job(second.id, at(20), 60)
        .await
        .unwrap()
        .expect("the second ticket's job");
    assert_eq!(job.ticket_id, second.id);
    assert!(
        store
            .claim_ticket_evidence_job(second.id, at(30), 60)
            .await
            .unwrap()
            .is_none(),
        "leased already"
    );
    let rest = store.claim_evidence_jobs(at(30), 60, 10).await.unwrap();
    assert_eq!(
        rest.iter().map(|j| j.ticket_id).collect::<Vec<_>>(),
        vec![first.id],
        "the other ticket's job is still there for the workers"
    );
    assert!(
        store
            .claim_ticket_evidence_job(second.id, at(81), 60)
            .await
            .unwrap()
            .is_some(),
        "due again once its lease ran out"
    );
}

/// A ticket whose every photo is damaged is sent back only so often, then left to an
/// agent; a photo the desk gave up on is never blamed on the customer.
pub async fn unreadable_photos_send_a_ticket_back_only_so_often(store: &dyn Store) {
    let number = created(
        store,
        &ticket(
            "k@example.com",
            vec![challenge("SERIAL-0601", at(0))],
            at(10),
        ),
    )
    .await;
    let detail = store.ticket(&number).await.unwrap();
    let fail = |job: &EvidenceJob, damaged: bool, t: i64| EvidenceFailure {
        job_id: job.id,
        error: "damaged".to_owned(),
        mail: mail(MailKind::PhotoRequest, "k@example.com"),
        damaged,
        at: at(t),
    };
    // A photo the desk gave up on: the ticket stays in the queue, nobody is mailed.
    let job = store.claim_evidence_jobs(at(11), 60, 10).await.unwrap()[0].clone();
    store
        .fail_evidence_job(&fail(&job, false, 12))
        .await
        .unwrap();
    assert_eq!(
        store.ticket(&number).await.unwrap().summary.status,
        TicketStatus::Open
    );
    let mails = |detail: crate::store::TicketDetail| {
        detail
            .mails
            .iter()
            .filter(|m| m.kind == MailKind::PhotoRequest)
            .count()
    };
    assert_eq!(mails(store.ticket(&number).await.unwrap()), 0);
    // Damaged photos: sent back twice, each time with a mail; then left to an agent.
    let blobs = ["m", "n", "o"];
    for (round, blob) in blobs.iter().enumerate() {
        let t = 20 + 10 * round as i64;
        if round > 0 {
            store
                .replace_label_photo(detail.id, &blob.repeat(64), "image/jpeg", at(t))
                .await
                .unwrap();
        } else {
            // The first damaged photo comes as the answer to an agent's request.
            let id = agent(store, "agent@vendor.test").await;
            let version = store.ticket(&number).await.unwrap().evidence_version;
            store
                .request_photo(&MailedDecision {
                    ticket_id: detail.id,
                    by: id,
                    text: "",
                    mail: &mail(MailKind::Rejection, "k@example.com"),
                    evidence_version: version,
                    at: at(t),
                })
                .await
                .unwrap();
            store
                .replace_label_photo(detail.id, &blob.repeat(64), "image/jpeg", at(t))
                .await
                .unwrap();
        }
        let job = store.claim_evidence_jobs(at(t + 1), 60, 10).await.unwrap()[0].clone();
        store
            .fail_evidence_job(&fail(&job, true, t + 2))
            .await
            .unwrap();
        let status = store.ticket(&number).await.unwrap().summary.status;
        if (round as i64) < crate::store::MAX_UNREADABLE_SEND_BACKS {
            assert_eq!(status, TicketStatus::AwaitingPhoto, "round {round}");
        } else {
            assert_eq!(
                status,
                TicketStatus::Open,
                "left to an agent, round {round}"
            );
        }
    }
    assert_eq!(
        mails(store.ticket(&number).await.unwrap()),
        crate::store::MAX_UNREADABLE_SEND_BACKS as usize
    );
}

/// A job the worker could not start goes back, its attempt not counted, due when the
/// worker said: the jobs behind it are read meanwhile.
pub async fn a_released_job_is_taken_again_at_once(store: &dyn Store) {
    created(
        store,
        &ticket(
            "l@example.com",
            vec![challenge("SERIAL-0701", at(0))],
            at(10),
        ),
    )
    .await;
    let job = store.claim_evidence_jobs(at(11), 600, 10).await.unwrap()[0].clone();
    store.release_evidence_job(job.id, at(12)).await.unwrap();
    let again = store.claim_evidence_jobs(at(12), 600, 10).await.unwrap();
    assert_eq!(again.len(), 1, "due when it was given back for");
    store.release_evidence_job(job.id, at(40)).await.unwrap();
    assert!(
        store
            .claim_evidence_jobs(at(39), 600, 10)
            .await
            .unwrap()
            .is_empty(),
        "not before"
    );
    let again = store.claim_evidence_jobs(at(40), 600, 10).await.unwrap();
    assert_eq!(
        again.iter().map(|j| (j.id, j.attempts)).collect::<Vec<_>>(),
        vec![(job.id, 1)]
    );
}

pub async fn photo_round_trip(store: &dyn Store) {
    let id = agent(store, "agent@vendor.test").await;
    let device = challenge("SERIAL-0004", at(0));
    let number = created(
        store,
        &ticket("d@example.com", vec![device.clone()], at(10)),
    )
    .await;
    let detail = store.ticket(&number).await.unwrap();
    // After a lost commit acknowledgment, intake asks whether its ticket was saved.
    assert_eq!(
        store.ticket_of_challenge(&device).await.unwrap(),
        Some(number.clone())
    );
    assert_eq!(
        store
            .ticket_of_challenge(&challenge("SERIAL-0004", at(0)))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.label_blob_of(detail.id).await.unwrap(),
        "b".repeat(64)
    );
    assert!(matches!(
        store
            .replace_label_photo(detail.id, &"c".repeat(64), "image/png", at(11))
            .await,
        Err(StoreError::Conflict(Conflict::NotAwaitingPhoto))
    ));
    let first = FirstApproval {
        ticket_id: detail.id,
        evidence_version: 1,
        by: id,
        as_role: Role::Agent,
        note: String::new(),
        at: at(11),
    };
    store.add_first_approval(&first).await.unwrap();
    store
        .request_photo(&MailedDecision {
            ticket_id: detail.id,
            by: id,
            text: "glare",
            mail: &mail(MailKind::PhotoRequest, "d@example.com"),
            evidence_version: 1,
            at: at(12),
        })
        .await
        .unwrap();
    assert_eq!(
        store.ticket(&number).await.unwrap().summary.status,
        TicketStatus::AwaitingPhoto
    );
    let old = store
        .replace_label_photo(detail.id, &"c".repeat(64), "image/png", at(13))
        .await
        .unwrap();
    assert_eq!(old, "b".repeat(64));
    assert_eq!(
        store.label_blob_of(detail.id).await.unwrap(),
        "c".repeat(64)
    );
    // A second photo for the same request: the ticket no longer waits for one.
    assert!(matches!(
        store
            .replace_label_photo(detail.id, &"d".repeat(64), "image/png", at(13))
            .await,
        Err(StoreError::Conflict(Conflict::NotAwaitingPhoto))
    ));
    let back = store.ticket(&number).await.unwrap();
    assert_eq!(
        (back.summary.status, back.label_media_type.as_str()),
        (TicketStatus::Open, "image/png")
    );
    assert!(
        back.approvals.is_empty(),
        "approvals given on the old photo are withdrawn"
    );
    assert_eq!(
        back.events.last().unwrap().kind,
        TicketEventKind::ApprovalsWithdrawn
    );
    // The photo it replaced stays with the ticket, named so the sweeper keeps it.
    assert_eq!(
        store.earlier_photos(detail.id).await.unwrap(),
        [EarlierPhoto {
            blob: "b".repeat(64),
            media_type: "image/jpeg".to_owned(),
            replaced_at: at(13),
        }]
    );
    assert_eq!(
        store.blobs_referenced(&["b".repeat(64)]).await.unwrap(),
        ["b".repeat(64)]
    );
    // What of the evidence each agent last looked at.
    assert_eq!(store.last_seen(detail.id, id).await.unwrap(), None);
    let view = |blob: &str, version, when| TicketView {
        label_blob: blob.repeat(64),
        evidence_version: version,
        at: at(when),
    };
    store
        .mark_seen(detail.id, id, &view("b", 1, 12))
        .await
        .unwrap();
    store
        .mark_seen(detail.id, id, &view("c", 2, 14))
        .await
        .unwrap();
    assert_eq!(
        store.last_seen(detail.id, id).await.unwrap(),
        Some(view("c", 2, 14))
    );
    // Open again with no approval left: nothing waits for a second one.
    let awaiting = QueueFilter {
        awaiting_second_approval: true,
        limit: 10,
        ..Default::default()
    };
    assert!(store.tickets(&awaiting).await.unwrap().is_empty());
    assert_eq!(store.awaiting_second_approval_count().await.unwrap(), 0);
}

/// A customer's reply to a rejection puts the ticket back as a new review: the approval
/// given before the rejection is withdrawn, the decision and the claim are cleared and a
/// page opened before is stale. A request that can no longer be answered is not put back.
pub async fn a_reply_reopens_a_rejected_ticket_as_a_new_review(store: &dyn Store) {
    let alice = agent(store, "alice@vendor.test").await;
    let sam = user_with(store, "sam@vendor.test", &[Role::Supervisor]).await;
    let mut new = ticket(
        "r@example.com",
        vec![challenge("SERIAL-REPLY-1", at(0))],
        at(10),
    );
    new.flags = vec!["watch list".to_owned()];
    let number = created(store, &new).await;
    let detail = store.ticket(&number).await.unwrap();
    store
        .add_first_approval(&FirstApproval {
            ticket_id: detail.id,
            evidence_version: 1,
            by: alice,
            as_role: Role::Agent,
            note: String::new(),
            at: at(20),
        })
        .await
        .unwrap();
    store.claim(detail.id, sam, false, at(21)).await.unwrap();
    store
        .reject(&MailedDecision {
            ticket_id: detail.id,
            by: sam,
            text: "suspected fraud",
            mail: &mail(MailKind::Rejection, "r@example.com"),
            evidence_version: 1,
            at: at(22),
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .record_reply(detail.id, &status_page_message("it is mine"), 10, at(30))
            .await
            .unwrap(),
        ReplyOutcome::Reopened
    );
    let back = store.ticket(&number).await.unwrap();
    assert_eq!(back.summary.status, TicketStatus::Open);
    assert!(
        back.approvals.is_empty(),
        "the earlier approval is withdrawn"
    );
    assert_eq!(back.evidence_version, 2, "a page opened before is stale");
    assert_eq!(back.decided_by, None);
    assert_eq!(back.summary.claimed_by, None);
    assert_eq!(store.awaiting_second_approval_count().await.unwrap(), 0);
    let kinds: Vec<_> = back.events.iter().map(|e| e.kind.clone()).collect();
    assert!(kinds.ends_with(&[TicketEventKind::CustomerReply, TicketEventKind::Reopened]));
    // An open ticket's message is noted only.
    assert_eq!(
        store
            .record_reply(detail.id, &status_page_message("any news?"), 10, at(31))
            .await
            .unwrap(),
        ReplyOutcome::Noted
    );
    // Rejected again once its export died: noted, not put back.
    store
        .reject(&MailedDecision {
            ticket_id: detail.id,
            by: sam,
            text: "still no",
            mail: &mail(MailKind::Rejection, "r@example.com"),
            evidence_version: 2,
            at: at(40),
        })
        .await
        .unwrap();
    let after_death = at(crate::protocol::CHALLENGE_LIFETIME_SECS + 1);
    assert_eq!(
        store
            .record_reply(detail.id, &status_page_message("please"), 10, after_death)
            .await
            .unwrap(),
        ReplyOutcome::TooLateToReopen
    );
    assert_eq!(
        store.ticket(&number).await.unwrap().summary.status,
        TicketStatus::Rejected
    );
}

/// A claim is a lock: a second agent's claim is refused and names the holder; the holder
/// may claim again; a take-over is explicit and audited with whom it was taken from.
pub async fn a_claim_is_held_by_one_agent(store: &dyn Store) {
    let alice = agent(store, "alice@vendor.test").await;
    let bob = agent(store, "bob@vendor.test").await;
    let carol = user_with(store, "carol@vendor.test", &[Role::Supervisor]).await;
    let number = created(
        store,
        &ticket(
            "k@example.com",
            vec![challenge("SERIAL-0K01", at(0))],
            at(10),
        ),
    )
    .await;
    let id = store.ticket(&number).await.unwrap().id;
    store.claim(id, alice, false, at(11)).await.unwrap();
    match store.claim(id, bob, false, at(12)).await {
        Err(StoreError::ClaimedBy(holder)) => assert_eq!(holder, "alice@vendor.test"),
        other => panic!("expected the claim to be refused, got {other:?}"),
    }
    store.claim(id, alice, false, at(13)).await.unwrap();
    store.claim(id, carol, true, at(14)).await.unwrap();
    let detail = store.ticket(&number).await.unwrap();
    assert_eq!(
        detail.summary.claimed_by.as_deref(),
        Some("carol@vendor.test")
    );
    let taken = store
        .recent_audit(Some("carol@vendor.test"), Some("claim.taken_over"), 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert!(taken[0].detail.contains("alice@vendor.test"), "{taken:?}");
    match store.claim(id, alice, false, at(15)).await {
        Err(StoreError::ClaimedBy(holder)) => assert_eq!(holder, "carol@vendor.test"),
        other => panic!("expected the claim to be refused, got {other:?}"),
    }
}

/// A new photo makes a new evidence version; every decision names the version it was
/// made on and is refused on an older one; a photo never reopens a decided ticket.
pub async fn decisions_are_made_on_the_evidence_seen(store: &dyn Store) {
    let alice = agent(store, "alice@vendor.test").await;
    let number = created(
        store,
        &ticket(
            "v@example.com",
            vec![challenge("SERIAL-0V01", at(0))],
            at(10),
        ),
    )
    .await;
    let id = store.ticket(&number).await.unwrap().id;
    assert_eq!(store.ticket(&number).await.unwrap().evidence_version, 1);
    store
        .request_photo(&MailedDecision {
            ticket_id: id,
            by: alice,
            text: "",
            mail: &mail(MailKind::PhotoRequest, "v@example.com"),
            evidence_version: 1,
            at: at(11),
        })
        .await
        .unwrap();
    store
        .replace_label_photo(id, &"c".repeat(64), "image/png", at(12))
        .await
        .unwrap();
    assert_eq!(store.ticket(&number).await.unwrap().evidence_version, 2);
    let approval = Approval {
        ticket_id: id,
        evidence_version: 1,
        by: alice,
        as_role: Role::Agent,
        note: String::new(),
        prior_approvals: 0,
        at: at(13),
        responses: Vec::new(),
        mail: mail(MailKind::Approval, "v@example.com"),
    };
    let first = FirstApproval {
        ticket_id: id,
        evidence_version: 1,
        by: alice,
        as_role: Role::Agent,
        note: String::new(),
        at: at(13),
    };
    let rejection = mail(MailKind::Rejection, "v@example.com");
    let request = mail(MailKind::PhotoRequest, "v@example.com");
    assert!(matches!(
        store.approve(&approval).await,
        Err(StoreError::EvidenceChanged)
    ));
    assert!(matches!(
        store.add_first_approval(&first).await,
        Err(StoreError::EvidenceChanged)
    ));
    assert!(matches!(
        store
            .reject(&MailedDecision {
                ticket_id: id,
                by: alice,
                text: "no",
                mail: &rejection,
                evidence_version: 1,
                at: at(13)
            })
            .await,
        Err(StoreError::EvidenceChanged)
    ));
    assert!(matches!(
        store
            .request_photo(&MailedDecision {
                ticket_id: id,
                by: alice,
                text: "",
                mail: &request,
                evidence_version: 1,
                at: at(13)
            })
            .await,
        Err(StoreError::EvidenceChanged)
    ));
    let detail = store.ticket(&number).await.unwrap();
    assert_eq!(detail.summary.status, TicketStatus::Open);
    assert!(detail.approvals.is_empty() && detail.responses.is_empty());

    // On the version shown now: asked for a photo again, then rejected while waiting.
    store
        .request_photo(&MailedDecision {
            ticket_id: id,
            by: alice,
            text: "",
            mail: &request,
            evidence_version: 2,
            at: at(14),
        })
        .await
        .unwrap();
    store
        .reject(&MailedDecision {
            ticket_id: id,
            by: alice,
            text: "no",
            mail: &rejection,
            evidence_version: 2,
            at: at(15),
        })
        .await
        .unwrap();
    assert!(matches!(
        store
            .replace_label_photo(id, &"d".repeat(64), "image/png", at(16))
            .await,
        Err(StoreError::Conflict(Conflict::NotAwaitingPhoto))
    ));
    let detail = store.ticket(&number).await.unwrap();
    assert_eq!(detail.summary.status, TicketStatus::Rejected);
    assert_eq!(detail.label_blob, "c".repeat(64));
}

pub async fn outbox_leases_retries_and_dead_letters(store: &dyn Store) {
    let id = agent(store, "agent@vendor.test").await;
    let number = created(
        store,
        &ticket(
            "e@example.com",
            vec![challenge("SERIAL-0005", at(0))],
            at(10),
        ),
    )
    .await;
    let due = store.claim_due_mail(at(10), 60, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert!(
        store
            .claim_due_mail(at(11), 60, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased to the first worker"
    );
    assert_eq!(
        store.claim_due_mail(at(71), 60, 10).await.unwrap().len(),
        1,
        "an expired lease is taken over"
    );
    store
        .mark_mail_failed(due[0].id, "connection refused", Some(at(200)))
        .await
        .unwrap();
    assert!(
        store
            .claim_due_mail(at(199), 60, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due before the retry time"
    );
    let retry = store.claim_due_mail(at(200), 60, 10).await.unwrap();
    assert_eq!(retry[0].attempts, 1);
    store
        .mark_mail_failed(retry[0].id, "still refused", None)
        .await
        .unwrap();
    assert_eq!(store.mail_counts().await.unwrap(), (0, 0, 1));
    // A worker whose lease ran out reports late: it changes nothing any more.
    store
        .mark_mails_sent(&[retry[0].id], at(201))
        .await
        .unwrap();
    store
        .mark_mail_failed(retry[0].id, "late", Some(at(300)))
        .await
        .unwrap();
    assert_eq!(store.mail_counts().await.unwrap(), (0, 0, 1));
    let detail = store.ticket(&number).await.unwrap();
    assert_eq!(detail.mails[0].status, OutboxStatus::Dead);
    assert_eq!(detail.mails[0].last_error.as_deref(), Some("still refused"));
    store
        .retry_mail(detail.id, detail.mails[0].id, id, at(300))
        .await
        .unwrap();
    let again = store.claim_due_mail(at(300), 60, 10).await.unwrap();
    store
        .mark_mails_sent(&[again[0].id], at(301))
        .await
        .unwrap();
    assert_eq!(store.mail_counts().await.unwrap(), (0, 1, 0));
    assert!(
        store
            .claim_due_mail(at(400), 60, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store
            .retry_mail(detail.id, detail.mails[0].id, id, at(500))
            .await,
        Err(StoreError::Conflict(Conflict::MailNotRetryable))
    ));
}

/// A batch of delivered mail is recorded at once: each message sent, each ticket's
/// history and the audit log with one entry per message, still one unbroken chain.
pub async fn a_batch_of_sent_mail_is_recorded_as_each_one(store: &dyn Store) {
    let mut numbers = Vec::new();
    for i in 0..5 {
        let serial = format!("SERIAL-01{i:02}");
        let number = created(
            store,
            &ticket(
                &format!("batch{i}@example.com"),
                vec![challenge(&serial, at(0))],
                at(10),
            ),
        )
        .await;
        numbers.push(number);
    }
    let audit_before = store.audit_entries(0, None, 1000).await.unwrap().len();
    let due = store.claim_due_mail(at(20), 60, 10).await.unwrap();
    assert_eq!(due.len(), 5);
    let ids: Vec<i64> = due.iter().map(|m| m.id).collect();
    store.mark_mails_sent(&ids, at(21)).await.unwrap();
    assert_eq!(store.mail_counts().await.unwrap(), (0, 5, 0));
    for number in &numbers {
        let detail = store.ticket(number).await.unwrap();
        assert_eq!(detail.mails[0].status, OutboxStatus::Sent);
        assert_eq!(
            detail
                .events
                .iter()
                .filter(|e| e.kind == TicketEventKind::MailSent)
                .count(),
            1,
            "{number}"
        );
    }
    let entries = store.audit_entries(0, None, 1000).await.unwrap();
    let handed_off: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "mail_handed_off")
        .collect();
    assert_eq!(handed_off.len(), 5);
    assert_eq!(entries.len(), audit_before + 5);
    for (i, entry) in handed_off.iter().enumerate() {
        assert!(
            entry.detail.contains(&format!("batch{i}@example.com")),
            "{entry:?}"
        );
    }
    assert!(matches!(
        crate::audit::verify_store(store, None, None).await.unwrap(),
        crate::audit::VerifyOutcome::Intact { .. }
    ));
    // The same batch reported again (a late worker) changes nothing but the log.
    store.mark_mails_sent(&ids, at(30)).await.unwrap();
    assert_eq!(store.mail_counts().await.unwrap(), (0, 5, 0));
}

/// Key ids: registering is idempotent, a second master secret is not recorded (two
/// replicas creating theirs at once: one wins), and a retirement is audited and seen by
/// the next status read.
pub async fn the_key_registry_keeps_one_master_and_retires_for_everyone(store: &dyn Store) {
    use crate::store::{KeyKind, KeyRecordStatus};
    assert!(store.registered_keys().await.unwrap().is_empty());
    assert!(!store.holds_tickets().await.unwrap());
    store
        .register_key(KeyKind::Master, "m1", at(0))
        .await
        .unwrap();
    store
        .register_key(KeyKind::Master, "m1", at(1))
        .await
        .unwrap();
    store
        .register_key(KeyKind::Master, "m2", at(2))
        .await
        .unwrap();
    store
        .register_key(KeyKind::Signing, "s1", at(3))
        .await
        .unwrap();
    store
        .register_key(KeyKind::Signing, "s2", at(4))
        .await
        .unwrap();
    let registry = store.registered_keys().await.unwrap();
    let ids: Vec<_> = registry
        .iter()
        .map(|k| (k.kind, k.key_id.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            (KeyKind::Master, "m1"),
            (KeyKind::Signing, "s1"),
            (KeyKind::Signing, "s2")
        ]
    );
    assert_eq!(registry[0].created_at, at(0));

    assert_eq!(
        store.key_status("s1").await.unwrap(),
        Some(KeyRecordStatus::Current)
    );
    assert_eq!(store.key_status("nope").await.unwrap(), None);
    store.retire_key("s1", "cli", at(10)).await.unwrap();
    assert_eq!(
        store.key_status("s1").await.unwrap(),
        Some(KeyRecordStatus::Retired)
    );
    let retired = store.registered_keys().await.unwrap();
    assert_eq!(retired[1].retired_at, Some(at(10)));
    assert!(matches!(
        store.retire_key("nope", "cli", at(11)).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        matches!(
            store.retire_key("m1", "cli", at(11)).await,
            Err(StoreError::NotFound)
        ),
        "only signing keys retire"
    );
    let audit = store
        .recent_audit(None, Some("key_retired"), 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].detail, "s1");

    created(
        store,
        &ticket(
            "k@example.com",
            vec![challenge("DS-KEYS-0001", at(20))],
            at(20),
        ),
    )
    .await;
    assert!(store.holds_tickets().await.unwrap());
}

pub async fn sessions_expire_when_idle(store: &dyn Store) {
    let id = agent(store, "agent@vendor.test").await;
    let session = NewSession {
        token_hash: "session-hash".to_owned(),
        user: id,
        csrf_token: "csrf".to_owned(),
        stage: SessionStage::SecondFactor,
        created_at: at(0),
        expires_at: at(100),
    };
    store.create_session(&session).await.unwrap();
    let (user, csrf, stage) = store.session("session-hash", at(50), 100).await.unwrap();
    assert_eq!(
        (user.id, csrf.as_str(), stage),
        (id, "csrf", SessionStage::SecondFactor)
    );
    // Use at 50 extended the session to 150.
    assert!(store.session("session-hash", at(140), 100).await.is_ok());
    assert!(matches!(
        store.session("session-hash", at(241), 100).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.session("other", at(0), 100).await,
        Err(StoreError::NotFound)
    ));
    store
        .create_session(&NewSession {
            token_hash: "second".to_owned(),
            ..session
        })
        .await
        .unwrap();
    store.delete_session("second").await.unwrap();
    assert!(matches!(
        store.session("second", at(1), 100).await,
        Err(StoreError::NotFound)
    ));
}

/// A sealed seed as the store sees it: opaque text under a key id (`crypto::SealKeys`
/// makes real ones; the store never opens them).
fn sealed(key: u8, text: &str) -> SealedSecret {
    SealedSecret {
        key_id: SealKeyId::parse(&format!("{key:016x}")).unwrap(),
        ciphertext: data_encoding::HEXLOWER.encode(text.as_bytes()),
    }
}

pub async fn second_factor_enrolment_and_one_time_codes(store: &dyn Store) {
    let id = agent(store, "agent@vendor.test").await;
    let seed = sealed(1, "first seed");
    store.begin_totp_enrolment(id, &seed).await.unwrap();
    let seed = StoredSeed::Sealed(seed);
    let pending = store
        .user_by_email(&email("agent@vendor.test"))
        .await
        .unwrap();
    assert_eq!(
        (pending.totp_secret.is_none(), pending.totp_pending.as_ref()),
        (true, Some(&seed))
    );
    let codes = ["hash-a".to_owned(), "hash-b".to_owned()];
    store
        .confirm_totp_enrolment(id, 100, &codes, at(0))
        .await
        .unwrap();
    let enrolled = store
        .user_by_email(&email("agent@vendor.test"))
        .await
        .unwrap();
    assert_eq!(
        (
            enrolled.totp_secret.as_ref(),
            enrolled.totp_pending.is_none()
        ),
        (Some(&seed), true)
    );
    assert!(matches!(
        store.confirm_totp_enrolment(id, 101, &codes, at(1)).await,
        Err(StoreError::Conflict(Conflict::NoPendingSecondFactor))
    ));
    assert!(
        !store.accept_totp_step(id, 100).await.unwrap(),
        "the enrolment code cannot sign in again"
    );
    assert!(store.accept_totp_step(id, 101).await.unwrap());
    assert!(
        !store.accept_totp_step(id, 101).await.unwrap(),
        "each step once"
    );
    assert!(
        !store.accept_totp_step(id, 99).await.unwrap(),
        "no going back"
    );
    assert!(store.use_recovery_code(id, "hash-a", at(2)).await.unwrap());
    assert!(
        !store.use_recovery_code(id, "hash-a", at(3)).await.unwrap(),
        "a recovery code works once"
    );
    assert!(!store.use_recovery_code(id, "hash-z", at(3)).await.unwrap());
    // Beginning a new enrolment cannot replace a confirmed seed.
    store
        .begin_totp_enrolment(id, &sealed(1, "another seed"))
        .await
        .unwrap();
    assert_eq!(
        store
            .user_by_email(&email("agent@vendor.test"))
            .await
            .unwrap()
            .totp_secret
            .as_ref(),
        Some(&seed)
    );
}

/// Seeds sealed under an older key are listed for re-sealing and replaced only while the
/// row still holds what was read.
pub async fn totp_seeds_are_resealed_under_the_current_key(store: &dyn Store) {
    let (old_key, new_key) = (sealed(1, "").key_id, sealed(2, "").key_id);
    let enrolled = agent(store, "enrolled@vendor.test").await;
    store
        .begin_totp_enrolment(enrolled, &sealed(1, "enrolled seed"))
        .await
        .unwrap();
    store
        .confirm_totp_enrolment(enrolled, 1, &[], at(0))
        .await
        .unwrap();
    let pending = agent(store, "pending@vendor.test").await;
    store
        .begin_totp_enrolment(pending, &sealed(1, "pending seed"))
        .await
        .unwrap();
    agent(store, "none@vendor.test").await;

    assert!(store.totp_seeds_to_seal(&old_key).await.unwrap().is_empty());
    let listed = store.totp_seeds_to_seal(&new_key).await.unwrap();
    assert_eq!(
        listed,
        vec![
            (enrolled, StoredSeed::Sealed(sealed(1, "enrolled seed"))),
            (pending, StoredSeed::Sealed(sealed(1, "pending seed"))),
        ]
    );
    // The pending user starts over meanwhile: the seed read before is not written back.
    store
        .begin_totp_enrolment(pending, &sealed(2, "newer pending seed"))
        .await
        .unwrap();
    for (user, old) in &listed {
        let resealed = sealed(2, "resealed");
        let replaced = store.reseal_totp_seed(*user, old, &resealed).await.unwrap();
        assert_eq!(replaced, *user == enrolled, "{user:?}");
    }
    assert!(store.totp_seeds_to_seal(&new_key).await.unwrap().is_empty());
    let user = store
        .user_by_email(&email("enrolled@vendor.test"))
        .await
        .unwrap();
    assert_eq!(
        user.totp_secret,
        Some(StoredSeed::Sealed(sealed(2, "resealed"))),
        "still enrolled, under the new key"
    );
    assert!(
        !store
            .reseal_totp_seed(enrolled, &listed[0].1, &sealed(2, "late"))
            .await
            .unwrap(),
        "a second desk re-sealing the same row finds it done"
    );
}

fn response_mail(to: &str, key: &str) -> NewMail {
    NewMail {
        body_text: format!("Your key: {key}"),
        body_html: format!("<p>Your key: {key}</p>"),
        attachment: Some(Attachment {
            file_name: "reset-response.xml".to_owned(),
            media_type: "application/xml".to_owned(),
            bytes: format!("<Signature>{key}</Signature>").into_bytes(),
        }),
        ..mail(MailKind::Approval, to)
    }
}

/// A response mail keeps its keys and file while it waits for another attempt; once
/// dead it can only be sent again as a new mail with new signatures, never as it was,
/// and that is audited as signatures.
pub async fn a_dead_response_mail_is_resent_only_signed_again(store: &dyn Store) {
    let alice = agent(store, "alice@vendor.test").await;
    let new = ticket(
        "dead@example.com",
        vec![challenge("SERIAL-0700", at(0))],
        at(10),
    );
    let number = created(store, &new).await;
    let detail = store.ticket(&number).await.unwrap();
    // One signature in clear, as rows written before sealing hold them, and one sealed.
    let response = |signature: u8, key_id: &str| StoredResponse {
        export_id: None,
        serial: new.devices[0].identity.serial.clone(),
        nonce: new.devices[0].nonce,
        expires_at: new.devices[0].expires_at(),
        key_id: crate::crypto::KeyId::parse(key_id).unwrap(),
        signature: if signature % 2 == 1 {
            StoredSignature::Clear(crate::crypto::Signature([signature; 64]))
        } else {
            StoredSignature::Sealed(SealedSecret {
                key_id: SealKeyId::parse("00000000000000bb").unwrap(),
                ciphertext: format!("{signature:02x}").repeat(92),
            })
        },
    };
    store
        .approve(&Approval {
            ticket_id: detail.id,
            evidence_version: 1,
            by: alice,
            as_role: Role::Agent,
            note: String::new(),
            prior_approvals: 0,
            at: at(20),
            responses: vec![response(9, "0123456789abcdef")],
            mail: response_mail("dead@example.com", "KEY1-KEY1"),
        })
        .await
        .unwrap();
    let mut now = 30;
    let mut approval_id = None;
    // Two attempts: the first failure keeps the parts for the retry, the second kills it.
    for retry_at in [Some(at(100)), None] {
        let due = store.claim_due_mail(at(now), 60, 10).await.unwrap();
        let approval = due
            .iter()
            .find(|m| m.subject.starts_with("approval"))
            .expect("the response mail is due");
        assert!(
            approval.body_text.contains("KEY1-KEY1"),
            "kept while it may be retried"
        );
        assert!(approval.attachment.is_some());
        approval_id = Some(approval.id);
        for message in &due {
            store
                .mark_mail_failed(message.id, "refused", retry_at)
                .await
                .unwrap();
        }
        now = 100;
    }
    let approval_id = approval_id.unwrap();
    assert_eq!(store.mail_counts().await.unwrap(), (0, 0, 2));
    assert!(
        matches!(
            store
                .retry_mail(detail.id, approval_id, alice, at(200))
                .await,
            Err(StoreError::Conflict(Conflict::MailNotRetryable))
        ),
        "a dead response mail is not sent again as it is"
    );
    let resend = ResentApproval {
        ticket_id: detail.id,
        mail_id: approval_id,
        by: alice,
        at: at(200),
        responses: vec![response(6, "fedcba9876543210")],
        mail: response_mail("dead@example.com", "KEY2-KEY2"),
    };
    store.resend_approval(&resend).await.unwrap();
    assert!(
        matches!(
            store.resend_approval(&resend).await,
            Err(StoreError::Conflict(Conflict::ResponseMailNotRetryable))
        ),
        "a second click signs nothing: the mail is pending again"
    );
    let due = store.claim_due_mail(at(200), 60, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, approval_id, "the same line on the ticket page");
    assert_eq!(due[0].attempts, 0);
    assert!(due[0].body_text.contains("KEY2-KEY2"));
    assert_eq!(due[0].message_id, resend.mail.message_id);
    let after = store.ticket(&number).await.unwrap();
    assert_eq!(
        after.responses, resend.responses,
        "the status page follows the new mail"
    );
    let signed = store.recent_audit(None, Some("sign"), 10).await.unwrap();
    assert_eq!(signed.len(), 2, "the approval's signature and the new one");
    assert!(
        signed[0].detail.contains("fedcba9876543210") && signed[0].detail.contains("signed again")
    );
    let retried = store
        .recent_audit(None, Some("mail_retry"), 10)
        .await
        .unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].actor, "alice@vendor.test");

    // The acknowledgment, dead too, is queued again as it was, and audited.
    let ack = after
        .mails
        .iter()
        .find(|m| m.kind == MailKind::Acknowledgment)
        .unwrap();
    assert!(matches!(
        store
            .resend_approval(&ResentApproval {
                mail_id: ack.id,
                ..resend.clone()
            })
            .await,
        Err(StoreError::Conflict(Conflict::ResponseMailNotRetryable))
    ));
    store
        .retry_mail(detail.id, ack.id, alice, at(300))
        .await
        .unwrap();
    assert_eq!(
        store
            .recent_audit(None, Some("mail_retry"), 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

/// A customer's message marks the ticket in the queue until a person of the desk acts
/// on it: the mail handed off meanwhile (one the customer asked for) does not.
pub async fn the_queue_marks_a_customer_message_until_the_desk_acts(store: &dyn Store) {
    let id = agent(store, "agent@vendor.test").await;
    let number = created(
        store,
        &ticket(
            "wrote@example.com",
            vec![challenge("DS-WRT-0001", at(0))],
            at(10),
        ),
    )
    .await;
    let ticket_id = store.ticket(&number).await.unwrap().id;
    let marked = async || {
        let marks = store.queue_marks(&[ticket_id]).await.unwrap();
        marks.get(&ticket_id).is_some_and(|m| m.customer_wrote)
    };
    store
        .record_reply(ticket_id, &status_page_message("any news?"), 10, at(20))
        .await
        .unwrap();
    assert!(marked().await);
    // The acknowledgment, handed to the relay by the mailer.
    let due = store.claim_due_mail(at(21), 60, 10).await.unwrap();
    assert!(!due.is_empty());
    let ids: Vec<i64> = due.iter().map(|m| m.id).collect();
    store.mark_mails_sent(&ids, at(22)).await.unwrap();
    assert!(marked().await, "the mailer answers nobody");
    store
        .add_note(ticket_id, id, "Called them back.", at(23))
        .await
        .unwrap();
    assert!(!marked().await, "a person of the desk acted");
}

/// Inbound e-mail (issue 21): a message is claimed by one handler at a time, taken over
/// when its handler's lease runs out, finished once with its answer; the desk's answers
/// are counted per sender and in all; kept files come back only through the desk's
/// answer to the same sender and expire; the conversation keeps who wrote what.
pub async fn inbound_mail_is_claimed_once_and_its_answers_counted(store: &dyn Store) {
    use crate::store::InboundClaim;

    let claim = async |id: &str, sender: &str, seconds: i64| {
        store
            .claim_inbound(id, sender, at(seconds), 30)
            .await
            .unwrap()
    };
    assert_eq!(
        claim("<m1@x>", "ana@example.com", 0).await,
        InboundClaim::Claimed
    );
    assert_eq!(
        claim("<m1@x>", "ana@example.com", 10).await,
        InboundClaim::Busy,
        "leased"
    );
    // The first handler died: after its lease the message is taken over.
    assert_eq!(
        claim("<m1@x>", "ana@example.com", 31).await,
        InboundClaim::Claimed
    );
    let mut answer = mail(MailKind::MailAnswer, "ana@example.com");
    answer.in_reply_to = Some("<m1@x>".to_owned());
    store
        .finish_inbound("<m1@x>", "answered", None, Some(&answer), at(32))
        .await
        .unwrap();
    assert_eq!(
        claim("<m1@x>", "ana@example.com", 40).await,
        InboundClaim::Done {
            outcome: "answered".to_owned()
        }
    );
    // The dead handler's late finish changes nothing and queues no second answer.
    assert!(matches!(
        store
            .finish_inbound("<m1@x>", "answered", None, Some(&answer), at(41))
            .await,
        Err(StoreError::Conflict(Conflict::AlreadyHandled))
    ));
    assert_eq!(store.mail_counts().await.unwrap(), (1, 0, 0));

    // Answers, not messages, are counted: per sender and in all, within the window.
    assert_eq!(
        claim("<m2@x>", "bob@example.com", 50).await,
        InboundClaim::Claimed
    );
    store
        .finish_inbound("<m2@x>", "ignored", None, None, at(51))
        .await
        .unwrap();
    assert_eq!(
        store
            .inbound_answers_since("ana@example.com", at(0))
            .await
            .unwrap(),
        (1, 1)
    );
    assert_eq!(
        store
            .inbound_answers_since("bob@example.com", at(0))
            .await
            .unwrap(),
        (0, 1)
    );
    assert_eq!(
        store
            .inbound_answers_since("ana@example.com", at(100))
            .await
            .unwrap(),
        (0, 0),
        "older answers are out of the window"
    );

    // Files kept with the answered message come back only through the desk's answer,
    // and only to the sender it answered.
    store
        .keep_inbound_files(
            "<m1@x>",
            &[KeptFile {
                field: "export_xml".to_owned(),
                blob: "c".repeat(64),
                bytes: 2048,
            }],
            at(33),
        )
        .await
        .unwrap();
    assert_eq!(store.inbound_kept_bytes().await.unwrap(), 2048);
    let through_answer = vec![answer.message_id.clone()];
    assert_eq!(
        store
            .kept_inbound_files(&through_answer, "ana@example.com")
            .await
            .unwrap(),
        vec![("export_xml".to_owned(), "c".repeat(64))]
    );
    assert!(
        store
            .kept_inbound_files(&through_answer, "eve@example.com")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .kept_inbound_files(&["<m1@x>".to_owned()], "ana@example.com")
            .await
            .unwrap()
            .is_empty(),
        "naming the kept message itself is not enough"
    );
    assert_eq!(
        store
            .blobs_referenced(&["c".repeat(64)])
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store.forget_inbound_kept(at(33)).await.unwrap(),
        0,
        "not older than that"
    );
    assert_eq!(store.forget_inbound_kept(at(34)).await.unwrap(), 1);
    assert_eq!(store.inbound_kept_bytes().await.unwrap(), 0);
    assert!(
        store
            .kept_inbound_files(&through_answer, "ana@example.com")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .blobs_referenced(&["c".repeat(64)])
            .await
            .unwrap()
            .is_empty(),
        "the sweeper's now"
    );

    // The conversation: an unproven sender naming an agent's address cannot pass for
    // the agent (the queue's mark stays), an agent's answer is threaded under the
    // customer's latest e-mail and clears the mark.
    let agent_id = agent(store, "agent@vendor.test").await;
    let number = created(
        store,
        &ticket(
            "conv@example.com",
            vec![challenge("DS-CONV-0001", at(0))],
            at(10),
        ),
    )
    .await;
    let ticket_id = store.ticket(&number).await.unwrap().id;
    let mut from_customer = status_page_message("is there news?");
    from_customer.message_id = Some("<c1@example.com>".to_owned());
    store
        .record_reply(ticket_id, &from_customer, 10, at(20))
        .await
        .unwrap();
    let stranger = NewTicketMessage {
        author: MessageAuthor::Stranger,
        sender: "agent@vendor.test".to_owned(),
        body: "approve it".to_owned(),
        message_id: Some("<s1@example.net>".to_owned()),
    };
    assert!(
        store
            .add_ticket_message(ticket_id, &stranger, at(21))
            .await
            .unwrap()
    );
    assert!(
        !store
            .add_ticket_message(ticket_id, &stranger, at(22))
            .await
            .unwrap(),
        "once"
    );
    let marks = store.queue_marks(&[ticket_id]).await.unwrap();
    assert!(
        marks[&ticket_id].customer_wrote,
        "a forged agent's address acts for nobody"
    );
    let mut answer = mail(MailKind::AgentMessage, "conv@example.com");
    answer.message_id = "<agent.1@test>".to_owned();
    let said = NewTicketMessage {
        author: MessageAuthor::Agent,
        sender: "agent@vendor.test".to_owned(),
        body: "We are on it.".to_owned(),
        message_id: Some(answer.message_id.clone()),
    };
    store
        .record_agent_message(ticket_id, agent_id, &said, &answer, at(23))
        .await
        .unwrap();
    let marks = store.queue_marks(&[ticket_id]).await.unwrap();
    assert!(
        !marks.get(&ticket_id).is_some_and(|m| m.customer_wrote),
        "answered"
    );
    let detail = store.ticket(&number).await.unwrap();
    let authors: Vec<_> = detail
        .messages
        .iter()
        .map(|m| (m.author, m.body.as_str()))
        .collect();
    assert_eq!(
        authors,
        [
            (MessageAuthor::Customer, "is there news?"),
            (MessageAuthor::Stranger, "approve it"),
            (MessageAuthor::Agent, "We are on it."),
        ]
    );
    // The agent's mail answers the customer's e-mail, never the unproven one.
    let due = store.claim_due_mail(at(24), 60, 10).await.unwrap();
    let sent = due
        .iter()
        .find(|m| m.message_id == "<agent.1@test>")
        .expect("queued");
    assert_eq!(sent.in_reply_to.as_deref(), Some("<c1@example.com>"));
    assert_eq!(
        store
            .ticket_of_message_ids(&["<agent.1@test>".to_owned()], true)
            .await
            .unwrap(),
        Some(number.clone())
    );
    assert_eq!(
        store
            .ticket_of_message_ids(&["<s1@example.net>".to_owned()], true)
            .await
            .unwrap(),
        None,
        "only the desk's own mail proves a reply"
    );
}

pub async fn canned_reasons_are_editable(store: &dyn Store) {
    use crate::domain::{CannedKind, CannedWords};
    use crate::i18n::Lang;
    let id = agent(store, "agent@vendor.test").await;
    let before = store.canned_reasons().await.unwrap();
    // Migrations seed a few of each kind, each in Spanish too.
    for kind in CannedKind::ALL {
        assert!(before.iter().any(|r| r.kind == kind), "{kind}");
    }
    assert!(before.iter().all(|r| r.missing_languages().is_empty()));
    let stolen = CannedWords {
        text: "Reported stolen.".to_owned(),
        translations: vec![(Lang::Es, "Denunciado como robado.".to_owned())],
    };
    store
        .add_canned_reason(CannedKind::Reject, &stolen, id, at(0))
        .await
        .unwrap();
    assert!(matches!(
        store
            .add_canned_reason(CannedKind::Reject, &stolen, id, at(1))
            .await,
        Err(StoreError::Conflict(Conflict::CannedReasonExists))
    ));
    // The same words may serve both kinds.
    store
        .add_canned_reason(CannedKind::Photo, &stolen, id, at(1))
        .await
        .unwrap();
    let after = store.canned_reasons().await.unwrap();
    let find = |kind: CannedKind| {
        after
            .iter()
            .find(|r| r.kind == kind && r.text == "Reported stolen.")
            .unwrap()
            .clone()
    };
    let (added, photo) = (find(CannedKind::Reject), find(CannedKind::Photo));
    assert_eq!(added.in_language(Lang::Es), "Denunciado como robado.");
    assert_eq!(store.canned_reason(added.id).await.unwrap(), added);
    // Edited: the English and the translations, which replace the old ones.
    let edited = CannedWords {
        text: "Reported stolen to the police.".to_owned(),
        translations: vec![(Lang::Es, "Denunciado a la policía.".to_owned())],
    };
    store
        .edit_canned_reason(added.id, &edited, id, at(2))
        .await
        .unwrap();
    let changed = store.canned_reason(added.id).await.unwrap();
    assert_eq!(changed.kind, CannedKind::Reject, "an edit keeps the kind");
    assert_eq!(changed.words(), edited);
    // Words the kind already has are a conflict, and change nothing at all.
    let now = store.canned_reasons().await.unwrap();
    let clash = CannedWords {
        text: before[0].text.clone(),
        translations: vec![(Lang::Es, "Otra cosa.".to_owned())],
    };
    assert!(matches!(
        store.edit_canned_reason(added.id, &clash, id, at(3)).await,
        Err(StoreError::Conflict(Conflict::CannedReasonExists))
    ));
    assert_eq!(store.canned_reasons().await.unwrap(), now);
    // Each change is audited with every language's words, old and new.
    let audited = store
        .recent_audit(None, Some("canned_reason_edited"), 10)
        .await
        .unwrap();
    assert_eq!(audited.len(), 1);
    for words in [
        "Reported stolen.",
        "Denunciado como robado.",
        "Reported stolen to the police.",
        "Denunciado a la policía.",
    ] {
        assert!(audited[0].detail.contains(words), "{:?}", audited[0]);
    }
    store
        .remove_canned_reason(added.id, id, at(4))
        .await
        .unwrap();
    store
        .remove_canned_reason(photo.id, id, at(4))
        .await
        .unwrap();
    let removed = store
        .recent_audit(None, Some("canned_reason_removed"), 10)
        .await
        .unwrap();
    assert!(
        removed
            .iter()
            .any(|e| e.detail.contains("Denunciado a la policía.")),
        "{removed:?}"
    );
    assert_eq!(store.canned_reasons().await.unwrap(), before);
    assert!(matches!(
        store.remove_canned_reason(added.id, id, at(5)).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.canned_reason(added.id).await,
        Err(StoreError::NotFound)
    ));
    // An id is never given twice: a page still holding a removed one must not pick the
    // next text added.
    store
        .add_canned_reason(CannedKind::Photo, &stolen, id, at(6))
        .await
        .unwrap();
    let again = store.canned_reasons().await.unwrap();
    let newest = again.iter().map(|r| r.id).max().unwrap();
    assert!(newest > photo.id, "{newest} reuses a removed id");
}

pub async fn access_codes_work_once_within_their_limits(store: &dyn Store) {
    let number = created(
        store,
        &ticket(
            "ana@example.com",
            vec![challenge("FB0000001", at(0))],
            at(0),
        ),
    )
    .await;
    let ticket_id = store.ticket(&number).await.unwrap().id;
    let issue = |hash: &str, now: Timestamp| NewAccessCode {
        ticket_id,
        code_hash: hash.to_owned(),
        expires_at: now.plus_seconds(900),
        mail: mail(MailKind::AccessCode, "ana@example.com"),
        now,
    };
    let (pending_before, ..) = store.mail_counts().await.unwrap();
    store
        .issue_access_code(&issue("hash-a", at(10)), 3)
        .await
        .unwrap();
    assert_eq!(
        store.mail_counts().await.unwrap().0,
        pending_before + 1,
        "the code's mail is queued with it"
    );
    assert_eq!(
        store
            .redeem_access_code(ticket_id, "hash-x", at(11), 5)
            .await
            .unwrap(),
        CodeCheck::Wrong { attempts_left: 4 }
    );
    // A new code replaces the one before it.
    store
        .issue_access_code(&issue("hash-b", at(20)), 3)
        .await
        .unwrap();
    assert_eq!(
        store
            .redeem_access_code(ticket_id, "hash-a", at(21), 5)
            .await
            .unwrap(),
        CodeCheck::Wrong { attempts_left: 4 }
    );
    assert_eq!(
        store
            .redeem_access_code(ticket_id, "hash-b", at(22), 5)
            .await
            .unwrap(),
        CodeCheck::Accepted
    );
    assert_eq!(
        store
            .redeem_access_code(ticket_id, "hash-b", at(23), 5)
            .await
            .unwrap(),
        CodeCheck::NoLiveCode,
        "a code works once"
    );
    // The code "hash-a" replaced, typed on a replica whose clock runs behind the one that
    // issued "hash-b" (at 20): still dead there.
    assert_eq!(
        store
            .redeem_access_code(ticket_id, "hash-a", at(15), 5)
            .await
            .unwrap(),
        CodeCheck::NoLiveCode,
        "a replaced code is dead on every replica's clock"
    );
    // Three codes an hour, then no more until the first is an hour old.
    store
        .issue_access_code(&issue("hash-c", at(30)), 3)
        .await
        .unwrap();
    assert!(matches!(
        store.issue_access_code(&issue("hash-d", at(40)), 3).await,
        Err(StoreError::Conflict(Conflict::TooManyCodes { .. }))
    ));
    // Five wrong tries use a code up, even for the right code after them.
    for left in (0..5).rev() {
        assert_eq!(
            store
                .redeem_access_code(ticket_id, "hash-x", at(50), 5)
                .await
                .unwrap(),
            CodeCheck::Wrong {
                attempts_left: left
            }
        );
    }
    assert_eq!(
        store
            .redeem_access_code(ticket_id, "hash-c", at(51), 5)
            .await
            .unwrap(),
        CodeCheck::NoLiveCode
    );
    // A code that expired is dead too.
    store
        .issue_access_code(&issue("hash-e", at(3_611)), 3)
        .await
        .unwrap();
    assert_eq!(
        store
            .redeem_access_code(ticket_id, "hash-e", at(3_611 + 900), 5)
            .await
            .unwrap(),
        CodeCheck::NoLiveCode
    );
    // The one showing of the response is in the ticket's history and the audit log.
    let detail = store.ticket(&number).await.unwrap();
    let shown: Vec<_> = detail
        .events
        .iter()
        .filter(|e| e.kind == TicketEventKind::ResponseShown)
        .collect();
    assert_eq!(shown.len(), 1);
    let audited = store
        .recent_audit(None, Some("response.shown"), 10)
        .await
        .unwrap();
    assert_eq!(audited.len(), 1);
    assert_eq!(
        store
            .recent_audit(None, Some("response.code_sent"), 10)
            .await
            .unwrap()
            .len(),
        4
    );
    // Codes of one ticket say nothing about another's.
    let other = created(
        store,
        &ticket("bo@example.com", vec![challenge("FB0000002", at(0))], at(0)),
    )
    .await;
    let other_id = store.ticket(&other).await.unwrap().id;
    assert_eq!(
        store
            .redeem_access_code(other_id, "hash-e", at(3_612), 5)
            .await
            .unwrap(),
        CodeCheck::NoLiveCode
    );
}

/// Thirty requests for a code at once (issue 16: on PostgreSQL they issued 19 codes, 15
/// live at once): three are issued, three mails queued, and one code is live.
pub async fn codes_asked_for_at_once_are_three_and_one_live(store: &dyn Store) {
    let number = created(
        store,
        &ticket(
            "ana@example.com",
            vec![challenge("FB0000009", at(0))],
            at(0),
        ),
    )
    .await;
    let ticket_id = store.ticket(&number).await.unwrap().id;
    let (pending_before, ..) = store.mail_counts().await.unwrap();
    futures_util::future::join_all((0..16).map(|_| store.ping())).await;
    let issued = futures_util::future::join_all((0..30).map(|i| async move {
        let code = NewAccessCode {
            ticket_id,
            code_hash: format!("hash-{i}"),
            expires_at: at(10).plus_seconds(900),
            mail: mail(MailKind::AccessCode, "ana@example.com"),
            now: at(10),
        };
        store
            .issue_access_code(&code, 3)
            .await
            .map(|()| code.code_hash)
    }))
    .await;
    let hashes: Vec<String> = issued
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    assert_eq!(hashes.len(), 3, "{issued:?}");
    assert!(
        issued.iter().all(|r| matches!(
            r,
            Ok(_) | Err(StoreError::Conflict(Conflict::TooManyCodes { .. }))
        )),
        "{issued:?}"
    );
    assert_eq!(store.mail_counts().await.unwrap().0, pending_before + 3);
    // Each issued code typed in turn: only the live one opens the response.
    let mut accepted = 0;
    for hash in &hashes {
        if store
            .redeem_access_code(ticket_id, hash, at(11), 5)
            .await
            .unwrap()
            == CodeCheck::Accepted
        {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1, "one live code of {hashes:?}");
}

/// Submissions arriving at once, as 64 clients send them: on SQLite they share a batch
/// (`sql/group_commit.rs`), on PostgreSQL they race at the unique index. The same export
/// sent eight times makes one ticket, and the other seven name it; eight different
/// exports make eight tickets, each with its acknowledgment.
pub async fn submissions_at_once_make_one_ticket_per_challenge(store: &dyn Store) {
    futures_util::future::join_all((0..16).map(|_| store.ping())).await;
    let same = ticket(
        "ana@example.com",
        vec![challenge("BURST-SAME", at(0))],
        at(10),
    );
    let outcomes = futures_util::future::join_all((0..8).map(|_| {
        let mut copy = same.clone();
        copy.number = TicketNumber::generate();
        async move {
            store
                .create_ticket(&copy, &mail(MailKind::Acknowledgment, "ana@example.com"))
                .await
                .unwrap()
        }
    }))
    .await;
    let created: Vec<&TicketNumber> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            CreateOutcome::Created { number, .. } => Some(number),
            CreateOutcome::Existing { .. } => None,
        })
        .collect();
    assert_eq!(created.len(), 1, "{outcomes:?}");
    for outcome in &outcomes {
        if let CreateOutcome::Existing { number } = outcome {
            assert_eq!(number, created[0], "{outcomes:?}");
        }
    }
    let different = futures_util::future::join_all((0..8).map(|i| {
        let new = ticket(
            "bo@example.com",
            vec![challenge(&format!("BURST-{i}"), at(0))],
            at(20),
        );
        async move {
            store
                .create_ticket(&new, &mail(MailKind::Acknowledgment, "bo@example.com"))
                .await
                .unwrap()
        }
    }))
    .await;
    assert!(
        different
            .iter()
            .all(|outcome| matches!(outcome, CreateOutcome::Created { .. })),
        "{different:?}"
    );
    assert_eq!(store.tickets(&all()).await.unwrap().len(), 9);
    assert_eq!(
        store.mail_counts().await.unwrap().0,
        9,
        "one acknowledgment a ticket"
    );
}

/// A new database holds no console user; one user, even disabled, is one.
pub async fn a_new_database_holds_no_user(store: &dyn Store) {
    assert!(!store.holds_users().await.unwrap());
    let id = user_with(store, "first@vendor.test", &[Role::Admin]).await;
    assert!(store.holds_users().await.unwrap());
    store.set_disabled(id, true, "cli", at(1)).await.unwrap();
    assert!(store.holds_users().await.unwrap(), "disabled, still there");
}

/// A token's last use is kept to the minute: the first use is written, a use within a
/// minute of it is not, a later one is; the list of tokens shows it.
pub async fn a_tokens_last_use_is_kept_to_the_minute(store: &dyn Store) {
    let user = agent(store, "script@vendor.test").await;
    store
        .create_api_token(&NewApiToken {
            user,
            token_hash: "used-token",
            name: "nightly",
            scope: TokenScope::Read,
            expires_at: None,
            created_at: at(0),
        })
        .await
        .unwrap();
    let last_used = || async { store.api_tokens(user).await.unwrap()[0].last_used_at };
    assert_eq!(last_used().await, None, "never used");
    store
        .user_by_api_token("used-token", at(100))
        .await
        .unwrap();
    assert_eq!(last_used().await, Some(at(100)));
    store
        .user_by_api_token("used-token", at(159))
        .await
        .unwrap();
    assert_eq!(
        last_used().await,
        Some(at(100)),
        "within the minute: not written"
    );
    store
        .user_by_api_token("used-token", at(160))
        .await
        .unwrap();
    assert_eq!(last_used().await, Some(at(160)));
    // A refused token is not counted as used.
    assert!(
        store
            .user_by_api_token("other-token", at(500))
            .await
            .is_err()
    );
    assert_eq!(last_used().await, Some(at(160)));
}

/// Ticket numbers by internal id, for pages whose rows carry the id (the audit log): each
/// existing ticket's own number, and nothing for an id no ticket has.
pub async fn ticket_numbers_are_found_by_id(store: &dyn Store) {
    let mut numbers = Vec::new();
    for i in 0..3 {
        let new = ticket(
            "ana@example.com",
            vec![challenge(&format!("NUMBERS-{i}"), at(0))],
            at(10),
        );
        store
            .create_ticket(&new, &mail(MailKind::Acknowledgment, "ana@example.com"))
            .await
            .unwrap();
        numbers.push(new.number);
    }
    let summaries = store.tickets(&all()).await.unwrap();
    let mut ids: Vec<TicketId> = summaries.iter().map(|t| t.id).collect();
    let missing = TicketId(ids.iter().map(|id| id.0).max().unwrap() + 1000);
    ids.push(missing);
    let found = store.ticket_numbers(&ids).await.unwrap();
    assert_eq!(found.len(), 3, "{found:?}");
    for summary in &summaries {
        assert_eq!(found[&summary.id], summary.number);
    }
    let mut shown: Vec<_> = found.values().cloned().collect();
    shown.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    numbers.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(shown, numbers);
    assert!(store.ticket_numbers(&[]).await.unwrap().is_empty());
}

/// Intake requests counted per bucket, at once and across a restart (the store is the
/// only memory): a full bucket refuses, says since when, and counts nothing else.
pub async fn intake_requests_are_counted_within_their_limits(store: &dyn Store) {
    let hit = |bucket, key: &'static str, limit| IntakeHit { bucket, key, limit };
    let address = [hit(IntakeBucket::Address, "203.0.113.7", 6)];
    futures_util::future::join_all((0..16).map(|_| store.ping())).await;
    let burst = futures_util::future::join_all(
        (0..20).map(|_| store.reserve_intake(&address, at(100), 3600)),
    )
    .await;
    let counted = burst
        .iter()
        .filter(|r| matches!(r, Ok(IntakeReservation::Counted)))
        .count();
    assert_eq!(counted, 6, "{burst:?}");
    assert_eq!(
        store.reserve_intake(&address, at(200), 3600).await.unwrap(),
        IntakeReservation::Refused {
            key: "203.0.113.7".to_owned(),
            oldest: Some(at(100)),
        }
    );
    // Another address, and a serial of the same name, are other buckets.
    for other in [
        hit(IntakeBucket::Address, "203.0.113.8", 6),
        hit(IntakeBucket::Serial, "203.0.113.7", 6),
    ] {
        assert_eq!(
            store.reserve_intake(&[other], at(200), 3600).await.unwrap(),
            IntakeReservation::Counted
        );
    }
    // A request naming a full serial and a free one counts in neither.
    let full = hit(IntakeBucket::Serial, "FB-FULL", 1);
    let free = hit(IntakeBucket::Serial, "FB-FREE", 1);
    assert_eq!(
        store.reserve_intake(&[full], at(300), 3600).await.unwrap(),
        IntakeReservation::Counted
    );
    assert_eq!(
        store
            .reserve_intake(&[free, full], at(301), 3600)
            .await
            .unwrap(),
        IntakeReservation::Refused {
            key: "FB-FULL".to_owned(),
            oldest: Some(at(300)),
        }
    );
    assert_eq!(
        store.reserve_intake(&[free], at(302), 3600).await.unwrap(),
        IntakeReservation::Counted,
        "the refused request did not count for the free serial"
    );
    // An hour after the burst the address takes requests again.
    assert_eq!(
        store
            .reserve_intake(&address, at(3_700), 3600)
            .await
            .unwrap(),
        IntakeReservation::Counted
    );
}

pub async fn customer_feedback_is_noted_up_to_a_limit(store: &dyn Store) {
    let number = created(
        store,
        &ticket(
            "ana@example.com",
            vec![challenge("FB0000003", at(0))],
            at(0),
        ),
    )
    .await;
    let ticket_id = store.ticket(&number).await.unwrap().id;
    for i in 0..3 {
        store
            .record_feedback(ticket_id, "expired", 3, at(i))
            .await
            .unwrap();
    }
    assert!(matches!(
        store
            .record_feedback(ticket_id, "wrong_key", 3, at(5))
            .await,
        Err(StoreError::Conflict(Conflict::TooManyAnswers { .. }))
    ));
    let detail = store.ticket(&number).await.unwrap();
    let notes: Vec<_> = detail
        .events
        .iter()
        .filter(|e| e.kind == TicketEventKind::CustomerFeedback)
        .collect();
    assert_eq!(notes.len(), 3);
    assert!(
        notes
            .iter()
            .all(|e| e.actor == "customer" && e.detail == "expired")
    );
}

pub async fn a_repeat_request_names_the_earlier_approval(store: &dyn Store) {
    let alice = agent(store, "alice@vendor.test").await;
    let first = ticket(
        "ana@example.com",
        vec![challenge("FB0000004", at(0))],
        at(10),
    );
    let number = created(store, &first).await;
    let id = store.ticket(&number).await.unwrap().id;
    let serial = first.devices[0].identity.serial.as_str().to_owned();
    let before = store
        .approved_for_customer_since(&serial, &email("ana@example.com"), at(0))
        .await;
    assert_eq!(before.unwrap(), None, "not approved yet");
    store
        .approve(&Approval {
            ticket_id: id,
            evidence_version: 1,
            by: alice,
            as_role: Role::Agent,
            note: String::new(),
            prior_approvals: 0,
            at: at(20),
            responses: Vec::new(),
            mail: mail(MailKind::Approval, "ana@example.com"),
        })
        .await
        .unwrap();
    let ana = email("ana@example.com");
    let found = store
        .approved_for_customer_since(&serial, &ana, at(0))
        .await
        .unwrap();
    assert_eq!(found, Some(number.clone()));
    let early = store
        .approved_for_customer_since(&serial, &ana, at(21))
        .await
        .unwrap();
    assert_eq!(early, None, "approved before the window");
    let other = email("someone.else@example.com");
    let stranger = store
        .approved_for_customer_since(&serial, &other, at(0))
        .await
        .unwrap();
    assert_eq!(stranger, None, "another customer");
    let device = store
        .approved_for_customer_since("FB0000005", &ana, at(0))
        .await
        .unwrap();
    assert_eq!(device, None, "another device");
    // The repeat stores its link, and the ticket page shows it.
    let mut again = ticket(
        "ana@example.com",
        vec![challenge("FB0000004", at(30))],
        at(40),
    );
    again.repeat_of = Some(number.clone());
    let repeat = created(store, &again).await;
    assert_eq!(
        store.ticket(&repeat).await.unwrap().repeat_of,
        Some(number.clone())
    );
    assert_eq!(store.ticket(&number).await.unwrap().repeat_of, None);
}

pub async fn sign_in_attempts_are_counted_before_they_are_checked(store: &dyn Store) {
    let limits = LoginLimits {
        per_account: 3,
        per_address: 5,
        per_device: 2,
        window_secs: 900,
    };
    let attempt = |account, address, device, seconds| LoginAttempt {
        account,
        address,
        device,
        at: at(seconds),
    };
    let reserve = |attempt: LoginAttempt<'static>| async move {
        store
            .reserve_login_attempt(&attempt, &limits)
            .await
            .unwrap()
    };
    let counted = |outcomes: &[LoginReservation]| {
        outcomes
            .iter()
            .filter(|r| matches!(r, LoginReservation::Counted(_)))
            .count()
    };
    // Open the pool's connections first: on a pool with one, a burst would be served one
    // after the other and prove nothing.
    futures_util::future::join_all((0..16).map(|_| store.ping())).await;
    // Twenty attempts at once, on as many connections as the pool gives: three counted.
    let burst = futures_util::future::join_all(
        (0..20).map(|_| reserve(attempt("ana@vendor.test", "203.0.113.7", None, 0))),
    )
    .await;
    assert_eq!(counted(&burst), 3, "{burst:?}");
    assert!(burst.contains(&LoginReservation::Refused {
        oldest: Some(at(0))
    }));
    // The address has room for two more attempts, at any account.
    for seconds in [1, 2] {
        let outcome = reserve(attempt("bo@vendor.test", "203.0.113.7", None, seconds)).await;
        assert!(
            matches!(outcome, LoginReservation::Counted(_)),
            "{outcome:?}"
        );
    }
    assert_eq!(
        reserve(attempt("cy@vendor.test", "203.0.113.7", None, 3)).await,
        LoginReservation::Refused {
            oldest: Some(at(0))
        },
        "the address is full"
    );
    assert!(matches!(
        reserve(attempt("cy@vendor.test", "203.0.113.8", None, 3)).await,
        LoginReservation::Counted(_)
    ));
    // A device cookie counts on its own, however full the account and the address are.
    let LoginReservation::Counted(first) = reserve(attempt(
        "ana@vendor.test",
        "203.0.113.7",
        Some("device-a"),
        4,
    ))
    .await
    else {
        panic!("a device cookie has its own count");
    };
    assert!(matches!(
        reserve(attempt(
            "ana@vendor.test",
            "203.0.113.7",
            Some("device-a"),
            5
        ))
        .await,
        LoginReservation::Counted(_)
    ));
    assert_eq!(
        reserve(attempt(
            "ana@vendor.test",
            "203.0.113.7",
            Some("device-a"),
            6
        ))
        .await,
        LoginReservation::Refused {
            oldest: Some(at(4))
        }
    );
    assert!(matches!(
        reserve(attempt(
            "ana@vendor.test",
            "203.0.113.7",
            Some("device-b"),
            6
        ))
        .await,
        LoginReservation::Counted(_)
    ));
    // A right password is uncounted.
    store.release_login_attempt(first).await.unwrap();
    assert!(matches!(
        reserve(attempt(
            "ana@vendor.test",
            "203.0.113.7",
            Some("device-a"),
            7
        ))
        .await,
        LoginReservation::Counted(_)
    ));
    // A completed sign-in forgets its own bucket's failures, and no other's.
    store
        .clear_login_failures("ana@vendor.test", Some("device-a"))
        .await
        .unwrap();
    assert!(matches!(
        reserve(attempt(
            "ana@vendor.test",
            "203.0.113.9",
            Some("device-a"),
            8
        ))
        .await,
        LoginReservation::Counted(_)
    ));
    assert!(matches!(
        reserve(attempt("ana@vendor.test", "203.0.113.9", None, 8)).await,
        LoginReservation::Refused { .. }
    ));
    store
        .clear_login_failures("ana@vendor.test", None)
        .await
        .unwrap();
    assert!(matches!(
        reserve(attempt("ana@vendor.test", "203.0.113.9", None, 9)).await,
        LoginReservation::Counted(_)
    ));
    assert!(matches!(
        reserve(attempt(
            "ana@vendor.test",
            "203.0.113.9",
            Some("device-b"),
            9
        ))
        .await,
        LoginReservation::Counted(_)
    ));
    assert_eq!(
        reserve(attempt(
            "ana@vendor.test",
            "203.0.113.9",
            Some("device-b"),
            9
        ))
        .await,
        LoginReservation::Refused {
            oldest: Some(at(6))
        },
        "the other device's count is whole"
    );
    // Attempts older than the window no longer count.
    assert!(matches!(
        reserve(attempt("bo@vendor.test", "203.0.113.8", None, 3)).await,
        LoginReservation::Counted(_)
    ));
    assert_eq!(
        reserve(attempt("bo@vendor.test", "203.0.113.8", None, 900)).await,
        LoginReservation::Refused {
            oldest: Some(at(1))
        }
    );
    assert!(matches!(
        reserve(attempt("bo@vendor.test", "203.0.113.8", None, 901)).await,
        LoginReservation::Counted(_)
    ));
}

/// Who gave whom an account, roles or a password is recorded with the change, with the
/// giver resolved from the actor's address; the command line gives as nobody.
pub async fn grants_are_recorded_with_their_giver(store: &dyn Store) {
    let root = user_with(store, "root@vendor.test", &[Role::Admin]).await;
    assert_eq!(store.grants_since(at(0)).await.unwrap(), vec![]);
    let agent = Roles::of(&[Role::Agent]).unwrap();
    let new = store
        .create_user(
            &email("new@vendor.test"),
            "h",
            agent,
            "root@vendor.test",
            at(1),
        )
        .await
        .unwrap();
    let both = Roles::of(&[Role::Agent, Role::Supervisor]).unwrap();
    for (roles, actor, when) in [
        (both, "root@vendor.test", 2),
        (both, "root@vendor.test", 3),
        (Roles::of(&Role::ALL).unwrap(), "cli", 4),
        (agent, "root@vendor.test", 5),
    ] {
        store.set_roles(new, roles, actor, at(when)).await.unwrap();
    }
    store
        .set_password(new, "h2", "root@vendor.test", at(6))
        .await
        .unwrap();
    let grants = store.grants_since(at(1)).await.unwrap();
    let seen: Vec<_> = grants
        .iter()
        .map(|g| (g.user, g.by, g.kind, g.roles, g.at))
        .collect();
    assert_eq!(
        seen,
        vec![
            (new, root, GrantKind::Created, Some(agent), at(1)),
            (
                new,
                root,
                GrantKind::Roles,
                Some(Roles::of(&[Role::Supervisor]).unwrap()),
                at(2)
            ),
            (new, root, GrantKind::Password, None, at(6)),
        ],
        "only added roles are given; the command line and removals give nothing"
    );
    assert_eq!(
        (grants[0].by_email.as_str(), grants[0].user_email.as_str()),
        ("root@vendor.test", "new@vendor.test")
    );
    assert_eq!(store.grants_since(at(3)).await.unwrap().len(), 1);
    let changed = store
        .recent_audit(None, Some("roles_changed"), 10)
        .await
        .unwrap();
    assert!(
        changed
            .iter()
            .any(|e| e.detail == "new@vendor.test is now agent + supervisor (given supervisor)"),
        "{changed:?}"
    );
}

/// Disabling revokes the API tokens: enabling again brings none back.
pub async fn disabling_revokes_api_tokens_for_good(store: &dyn Store) {
    let id = agent(store, "agent@vendor.test").await;
    for hash in ["hash-a", "hash-b"] {
        store
            .create_api_token(&NewApiToken {
                user: id,
                token_hash: hash,
                name: "ci",
                scope: TokenScope::Decide,
                expires_at: None,
                created_at: at(0),
            })
            .await
            .unwrap();
    }
    assert!(store.user_by_api_token("hash-a", at(1)).await.is_ok());
    store
        .set_disabled(id, true, "admin@vendor.test", at(2))
        .await
        .unwrap();
    store
        .set_disabled(id, false, "admin@vendor.test", at(3))
        .await
        .unwrap();
    for hash in ["hash-a", "hash-b"] {
        assert!(
            matches!(
                store.user_by_api_token(hash, at(4)).await,
                Err(StoreError::NotFound)
            ),
            "{hash} stays revoked"
        );
    }
    assert!(
        store
            .api_tokens(id)
            .await
            .unwrap()
            .iter()
            .all(|t| t.revoked)
    );
    let disabled = store
        .recent_audit(None, Some("user_disabled"), 1)
        .await
        .unwrap();
    assert_eq!(
        disabled[0].detail,
        "agent@vendor.test: sessions ended, 2 API token(s) revoked"
    );
}

/// A refused approval is kept in the ticket's history and the audit log; nothing else
/// changes.
pub async fn a_refused_approval_is_recorded(store: &dyn Store) {
    let alice = agent(store, "alice@vendor.test").await;
    let number = created(
        store,
        &ticket(
            "alice@example.com",
            vec![challenge("SERIAL-0042", at(0))],
            at(10),
        ),
    )
    .await;
    let detail = store.ticket(&number).await.unwrap();
    store
        .record_refused_approval(detail.id, alice, "her own address", at(11))
        .await
        .unwrap();
    let after = store.ticket(&number).await.unwrap();
    assert_eq!(after.summary.status, TicketStatus::Open);
    assert!(after.approvals.is_empty());
    let event = after.events.last().unwrap();
    assert_eq!(
        (
            event.actor.as_str(),
            event.kind.as_str(),
            event.detail.as_str()
        ),
        ("alice@vendor.test", "approval_refused", "her own address")
    );
    let audit = store
        .recent_audit(Some("alice@vendor.test"), Some("approve_refused"), 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].ticket_id, audit[0].detail.as_str()),
        (Some(detail.id.0), "her own address")
    );
}

pub async fn job_leases_and_blob_references(store: &dyn Store) {
    // One holder at a time until the lease runs out; the holder renews its own.
    assert!(store.take_lease("job", "a", at(0), at(100)).await.unwrap());
    assert!(!store.take_lease("job", "b", at(50), at(150)).await.unwrap());
    assert!(store.take_lease("job", "a", at(60), at(160)).await.unwrap());
    assert!(
        !store
            .take_lease("job", "b", at(159), at(259))
            .await
            .unwrap()
    );
    assert!(
        store
            .take_lease("job", "b", at(160), at(260))
            .await
            .unwrap()
    );
    assert!(
        store
            .take_lease("other", "a", at(160), at(260))
            .await
            .unwrap()
    );

    // An export sent as a picture of its QR code is a blob of its own.
    let mut qr = ticket(
        "r@example.com",
        vec![challenge("SERIAL-0099", at(0))],
        at(10),
    );
    qr.export_form = ExportForm::Qr;
    qr.export = StoredExport::Blob("a".repeat(64));
    let number = created(store, &qr).await;
    assert_eq!(
        store.ticket(&number).await.unwrap().export_blob,
        Some("a".repeat(64))
    );
    assert_eq!(store.ticket_export(&number).await.unwrap(), qr.export);
    let mut owned = store
        .blobs_referenced(&["a".repeat(64), "e".repeat(64), "b".repeat(64)])
        .await
        .unwrap();
    owned.sort();
    assert_eq!(owned, vec!["a".repeat(64), "b".repeat(64)]);
    assert!(store.blobs_referenced(&[]).await.unwrap().is_empty());
    // A full batch binds every name.
    let many: Vec<String> = (0..crate::store::BLOBS_PER_QUERY)
        .map(|i| format!("{i:064x}"))
        .chain(["b".repeat(64)])
        .collect();
    assert_eq!(
        store.blobs_referenced(&many).await.unwrap(),
        vec!["b".repeat(64)],
        "past one batch too"
    );
}

/// Data retention (issue 23): a decided ticket's evidence goes once decided before the
/// cutoff, its customer's name, phone and company with the second; a pending ticket
/// keeps everything; each deletion is in the history and the audit log, a second run
/// finds nothing, and a batch takes at most `limit` tickets.
pub async fn retention_deletes_what_decided_tickets_keep_no_longer(store: &dyn Store) {
    let sam = agent(store, "sam@vendor.test").await;
    let mut sent = ticket(
        "r@example.com",
        vec![challenge("SERIAL-0101", at(0))],
        at(10),
    );
    sent.export_form = ExportForm::Qr;
    sent.export = StoredExport::Blob("a".repeat(64));
    sent.label_blob = "c".repeat(64);
    sent.customer.phone = Some(crate::domain::PhoneNumber::parse("+34 600 000 000").unwrap());
    sent.customer.company = Some(PlainText::parse("Cámaras López SL", 200).unwrap());
    let rejected = created(store, &sent).await;
    let id = store.ticket(&rejected).await.unwrap().id;
    store.claim(id, sam, false, at(20)).await.unwrap();
    store
        .reject(&MailedDecision {
            ticket_id: id,
            by: sam,
            text: "not your label",
            mail: &mail(MailKind::Rejection, "r@example.com"),
            evidence_version: 1,
            at: at(100),
        })
        .await
        .unwrap();
    // Another decided ticket, later, and one still pending.
    let later = created(
        store,
        &ticket(
            "l@example.com",
            vec![challenge("SERIAL-0102", at(0))],
            at(10),
        ),
    )
    .await;
    let later_id = store.ticket(&later).await.unwrap().id;
    store.claim(later_id, sam, false, at(20)).await.unwrap();
    store
        .reject(&MailedDecision {
            ticket_id: later_id,
            by: sam,
            text: "no",
            mail: &mail(MailKind::Rejection, "l@example.com"),
            evidence_version: 1,
            at: at(150),
        })
        .await
        .unwrap();
    let pending = created(
        store,
        &ticket(
            "p@example.com",
            vec![challenge("SERIAL-0103", at(0))],
            at(10),
        ),
    )
    .await;

    // Decided after the cutoff: kept.
    assert!(
        store
            .remove_evidence_decided_before(at(99), 30, at(500), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // At most `limit` a batch, oldest first.
    let removed = store
        .remove_evidence_decided_before(at(200), 30, at(500), 1)
        .await
        .unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].ticket, rejected);
    let mut blobs = removed[0].blobs.clone();
    blobs.sort();
    assert_eq!(blobs, vec!["a".repeat(64), "c".repeat(64)]);
    let back = store.ticket(&rejected).await.unwrap();
    assert_eq!(back.evidence_removed_at, Some(at(500)));
    assert_eq!(back.label_blob, "");
    assert_eq!(back.export_blob, None);
    assert_eq!(
        store.ticket_export(&rejected).await.unwrap(),
        StoredExport::Removed(at(500))
    );
    assert!(
        store
            .blobs_referenced(&["a".repeat(64), "c".repeat(64)])
            .await
            .unwrap()
            .is_empty(),
        "no row names the deleted blobs"
    );
    let last = back.events.last().unwrap();
    assert_eq!(last.kind, TicketEventKind::EvidenceRemoved);
    assert_eq!(last.actor, "retention");
    assert!(last.detail.contains("30 days"), "{}", last.detail);
    assert_eq!(back.customer.name.as_str(), "Ana López", "kept longer");
    assert_eq!(
        back.devices.len(),
        1,
        "what the desk read from the export stays"
    );

    // The next batch takes the later one; then nothing is left.
    let removed = store
        .remove_evidence_decided_before(at(200), 30, at(501), 10)
        .await
        .unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].ticket, later);
    assert_eq!(
        removed[0].blobs,
        vec!["b".repeat(64)],
        "the label photo it names, also a pending ticket's in this fixture"
    );
    assert!(
        store
            .remove_evidence_decided_before(at(200), 30, at(502), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let untouched = store.ticket(&pending).await.unwrap();
    assert_eq!(untouched.evidence_removed_at, None);
    assert_eq!(untouched.label_blob, "b".repeat(64));

    // The customer's details, with the second cutoff.
    let search = |q: &str| QueueFilter {
        search: Some(SearchText::parse(q).unwrap()),
        limit: 10,
        ..Default::default()
    };
    let found_before = store.tickets(&search("López")).await.unwrap().len();
    let customers = store
        .remove_customer_details_decided_before(at(120), 365, at(600), 10)
        .await
        .unwrap();
    assert_eq!(customers, vec![rejected.clone()]);
    let back = store.ticket(&rejected).await.unwrap();
    assert_eq!(back.customer_removed_at, Some(at(600)));
    assert_eq!(back.customer.name.as_str(), "—");
    assert_eq!(back.customer.phone, None);
    assert_eq!(back.customer.company, None);
    assert_eq!(back.customer.email.as_str(), "r@example.com");
    assert_eq!(
        back.events.last().unwrap().kind,
        TicketEventKind::CustomerDetailsRemoved
    );
    assert_eq!(
        store.tickets(&search("López")).await.unwrap().len(),
        found_before.saturating_sub(1),
        "a search by the deleted name no longer finds it"
    );
    assert!(
        store
            .remove_customer_details_decided_before(at(120), 365, at(601), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.ticket(&later).await.unwrap().customer.name.as_str(),
        "Ana López"
    );

    // Every deletion is in the audit log, under its own action.
    let audited = |action: &'static str| async move {
        store
            .recent_audit(Some("retention"), Some(action), 10)
            .await
            .unwrap()
            .len()
    };
    assert_eq!(audited("evidence_removed").await, 2);
    assert_eq!(audited("customer_details_removed").await, 1);
}

/// A customer erased on request (issue 23): refused while a ticket is pending; then
/// every ticket of the mailbox (however its address was written) loses the customer's
/// fields, files, conversation and the words of its history, pending mail dies, the
/// confirmation is queued, the decision and the devices stay, the search no longer
/// finds them, and the audit chain verifies with their entries' words erased.
pub async fn erasing_a_customer_keeps_the_decision_and_a_verifiable_chain(store: &dyn Store) {
    let sam = agent(store, "sam@vendor.test").await;
    let mut first = ticket(
        "Ana+desk@Example.com",
        vec![challenge("SERIAL-0201", at(0))],
        at(10),
    );
    first.label_blob = "c".repeat(64);
    first.customer.phone = Some(crate::domain::PhoneNumber::parse("+34 600 000 000").unwrap());
    let first = created(store, &first).await;
    let second = created(
        store,
        &ticket(
            "ana@example.com",
            vec![challenge("SERIAL-0202", at(0))],
            at(11),
        ),
    )
    .await;
    let other = created(
        store,
        &ticket(
            "other@example.com",
            vec![challenge("SERIAL-0203", at(0))],
            at(12),
        ),
    )
    .await;
    let second_id = store.ticket(&second).await.unwrap().id;
    store
        .record_reply(second_id, &status_page_message("it is my NVR"), 10, at(20))
        .await
        .unwrap();
    let ana = email("ana@example.com");
    let confirmation = |to: &EmailAddress, _: Lang, numbers: &[TicketNumber]| {
        assert_eq!(numbers.len(), 2);
        assert_eq!(
            to.as_str(),
            "ana@example.com",
            "the newest ticket's address"
        );
        Some(mail(MailKind::ErasureConfirmed, to.as_str()))
    };
    let request = |at: Timestamp| ErasureRequest {
        email: &ana,
        by: "cli",
        reason: "asked by phone",
        confirmation: &confirmation,
        seal: &|words: &str| format!("sealed({})", words.len()),
        created_before: None,
        at,
    };
    assert_eq!(
        store.customer_tickets(&ana).await.unwrap(),
        vec![
            (first.clone(), TicketStatus::Open),
            (second.clone(), TicketStatus::Open)
        ],
        "every ticket of the mailbox, however the address was written, with its status"
    );
    // Pending tickets are decided first.
    match store.erase_customer(&request(at(40))).await.unwrap() {
        ErasureOutcome::Pending(pending) => assert_eq!(pending.len(), 2),
        other => panic!("refused while pending, not {other:?}"),
    }
    for number in [&first, &second] {
        let id = store.ticket(number).await.unwrap().id;
        store.claim(id, sam, false, at(45)).await.unwrap();
        store
            .reject(&MailedDecision {
                ticket_id: id,
                by: sam,
                text: "not your label",
                mail: &mail(MailKind::Rejection, "ana@example.com"),
                evidence_version: 1,
                at: at(50),
            })
            .await
            .unwrap();
    }
    let search = |q: &str| QueueFilter {
        search: Some(SearchText::parse(q).unwrap()),
        limit: 10,
        ..all()
    };
    // "ana": both tickets' addresses, and every fixture ticket's name (the other too).
    assert_eq!(store.tickets(&search("ana")).await.unwrap().len(), 3);

    let (tickets, blobs) = match store.erase_customer(&request(at(100))).await.unwrap() {
        ErasureOutcome::Erased { tickets, blobs } => (tickets, blobs),
        other => panic!("erased, not {other:?}"),
    };
    assert_eq!(tickets, vec![first.clone(), second.clone()]);
    assert!(blobs.contains(&"c".repeat(64)) && blobs.contains(&"b".repeat(64)));
    for number in [&first, &second] {
        let back = store.ticket(number).await.unwrap();
        assert_eq!(back.erased_at, Some(at(100)));
        assert_eq!(back.customer.name.as_str(), "—");
        assert_eq!(back.customer.email.as_str(), crate::store::ERASED_EMAIL);
        assert_eq!(back.customer.phone, None);
        assert_eq!(back.label_blob, "");
        assert!(back.messages.is_empty(), "the conversation is gone");
        assert_eq!(
            back.summary.status,
            TicketStatus::Rejected,
            "the decision stays"
        );
        assert_eq!(
            back.devices.len(),
            1,
            "what the desk read from the export stays"
        );
        let (erased, rest): (Vec<_>, Vec<_>) = back
            .events
            .iter()
            .partition(|e| e.kind == TicketEventKind::CustomerErased);
        assert_eq!(erased.len(), 1);
        assert!(erased[0].detail.contains("asked by phone"));
        assert!(rest.iter().all(|e| e.detail.is_empty()), "{rest:?}");
    }
    assert_eq!(
        store.ticket(&other).await.unwrap().customer.email.as_str(),
        "other@example.com"
    );
    assert_eq!(
        store
            .tickets(&search("ana"))
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.number)
            .collect::<Vec<_>>(),
        vec![other.clone()],
        "only the other customer's ticket is found now"
    );
    // Mail still waiting for the erased tickets dies; the confirmation waits alone.
    let (pending, _, _) = store.mail_counts().await.unwrap();
    assert_eq!(
        pending, 2,
        "the other customer's acknowledgment and the confirmation"
    );

    // The chain holds; the erased tickets' entries are said to be erased.
    match crate::audit::verify_store(store, None, None).await.unwrap() {
        crate::audit::VerifyOutcome::Intact { erased, .. } => assert!(erased >= 4, "{erased}"),
        broken => panic!("the chain must verify after an erasure: {broken:?}"),
    }
    let entries = store.audit_entries(0, None, 1000).await.unwrap();
    let first_id = store.ticket(&first).await.unwrap().id.0;
    assert!(
        entries
            .iter()
            .filter(|e| e.ticket_id == Some(first_id) && e.action != "customer_erased")
            .all(|e| e.erased && e.detail.is_empty())
    );
    assert!(
        entries
            .iter()
            .any(|e| e.action == "customer_erased" && e.detail.contains("asked by phone"))
    );
    assert_eq!(
        store
            .erase_customer(&ErasureRequest {
                email: &email("nobody@example.com"),
                ..request(at(200))
            })
            .await
            .unwrap(),
        ErasureOutcome::NoTickets
    );
    assert!(
        store.customer_tickets(&ana).await.unwrap().is_empty(),
        "nothing of the address is left to find"
    );
    // An erased ticket is never reopened by a reply on its status page: nothing is left
    // to review (the export would still be alive here).
    let first_id = store.ticket(&first).await.unwrap().id;
    assert_ne!(
        store
            .record_reply(
                first_id,
                &status_page_message("please look again"),
                10,
                at(210)
            )
            .await
            .unwrap(),
        ReplyOutcome::Reopened
    );
    assert_eq!(
        store.ticket(&first).await.unwrap().summary.status,
        TicketStatus::Rejected
    );
    // Erasing the same address again finds nothing: erased tickets are not its any more.
    assert_eq!(
        store.erase_customer(&request(at(220))).await.unwrap(),
        ErasureOutcome::NoTickets
    );
}

/// Runs every check above, each on a fresh store from `fresh`, which returns a guard that
/// cleans the database up and the store, or nothing when that backend cannot run here.
pub async fn the_status_link_goes_again_at_most_once_an_hour(store: &dyn Store) {
    let new = ticket(
        "owner@example.com",
        vec![challenge("SERIAL-0101", at(0))],
        at(10),
    );
    let number = created(store, &new).await;
    let id = store.ticket(&number).await.unwrap().id;
    let stranger = email("stranger@example.net");
    let resend = async |now| {
        let to_owner = mail(MailKind::LinkResent, "owner@example.com");
        store
            .resend_status_link(id, &stranger, &to_owner, now, 3600)
            .await
            .unwrap()
    };
    assert!(resend(at(20)).await, "the first time");
    assert!(!resend(at(20 + 3599)).await, "not within the hour");
    assert!(resend(at(20 + 3600)).await, "an hour later");
    assert_eq!(store.mail_counts().await.unwrap(), (3, 0, 0), "ack + 2");
    // Only to the ticket's own address: a mail for another one is not queued.
    let elsewhere = mail(MailKind::LinkResent, "someone@example.com");
    assert!(
        !store
            .resend_status_link(id, &stranger, &elsewhere, at(99_999), 3600)
            .await
            .unwrap()
    );
    let detail = store.ticket(&number).await.unwrap();
    let resent: Vec<_> = detail
        .events
        .iter()
        .filter(|e| e.kind == TicketEventKind::LinkResent)
        .collect();
    assert_eq!(resent.len(), 2);
    assert!(resent[0].detail.contains("stranger@example.net"));
    let audit = store
        .recent_audit(None, Some("status_link.resent"), 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 2);
}

pub async fn customer_address_changes_stop_at_an_approval(store: &dyn Store) {
    let alice = agent(store, "alice@vendor.test").await;
    let new = ticket(
        "fatima@gmial.com",
        vec![challenge("SERIAL-0102", at(0))],
        at(10),
    );
    let number = created(store, &new).await;
    let id = store.ticket(&number).await.unwrap().id;
    let change = |from: &str, to: &str, at_| AddressChange {
        ticket_id: id,
        by: AddressChanger::Customer {
            max_changes: 2,
            flags: Vec::new(),
        },
        from: email(from),
        to: email(to),
        acknowledgment: mail(MailKind::Acknowledgment, to),
        at: at_,
    };
    assert_eq!(
        store
            .change_customer_email(&change("someone@else.com", "x@example.com", at(11)))
            .await
            .unwrap(),
        AddressChangeOutcome::ChangedMeanwhile,
        "decided on an address the ticket no longer has"
    );
    assert_eq!(
        store
            .change_customer_email(&change("fatima@gmial.com", "fatima@gmail.co", at(12)))
            .await
            .unwrap(),
        AddressChangeOutcome::Changed {
            approvals_withdrawn: 0
        }
    );
    assert_eq!(
        store
            .change_customer_email(&change("fatima@gmail.co", "fatima@gmail.com", at(13)))
            .await
            .unwrap(),
        AddressChangeOutcome::Changed {
            approvals_withdrawn: 0
        }
    );
    // A search finds the ticket by its new address, no longer by the old one.
    let search = |q: &str| QueueFilter {
        search: Some(SearchText::parse(q).unwrap()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        store
            .tickets(&search("fatima@gmail.com"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store.tickets(&search("gmial")).await.unwrap().is_empty());
    assert_eq!(
        store
            .change_customer_email(&change("fatima@gmail.com", "f@gmail.com", at(14)))
            .await
            .unwrap(),
        AddressChangeOutcome::TooMany
    );
    let detail = store.ticket(&number).await.unwrap();
    assert_eq!(detail.customer.email.as_str(), "fatima@gmail.com");
    let changes: Vec<_> = detail
        .events
        .iter()
        .filter(|e| e.kind == TicketEventKind::AddressCorrected)
        .map(|e| (e.actor.as_str(), e.detail.as_str()))
        .collect();
    assert_eq!(
        changes,
        vec![
            ("customer", "from fatima@gmial.com to fatima@gmail.co"),
            ("customer", "from fatima@gmail.co to fatima@gmail.com")
        ]
    );
    let audit = store
        .recent_audit(Some("customer"), Some("address_corrected"), 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].detail, "from fatima@gmail.co to fatima@gmail.com");
    assert_eq!(
        store.mail_counts().await.unwrap(),
        (3, 0, 0),
        "an acknowledgment for each change"
    );

    // An approval (the first of two) ends the customer's changes.
    let other = ticket(
        "typo@exmaple.com",
        vec![challenge("SERIAL-0103", at(0))],
        at(10),
    );
    let other_number = created(store, &other).await;
    let other_id = store.ticket(&other_number).await.unwrap().id;
    store
        .add_first_approval(&FirstApproval {
            ticket_id: other_id,
            evidence_version: 1,
            by: alice,
            as_role: Role::Agent,
            note: String::new(),
            at: at(20),
        })
        .await
        .unwrap();
    let refused = AddressChange {
        ticket_id: other_id,
        ..change("typo@exmaple.com", "typo@example.com", at(21))
    };
    assert_eq!(
        store.change_customer_email(&refused).await.unwrap(),
        AddressChangeOutcome::Approved
    );
    // A decided ticket's address stays, for the customer and the agent alike.
    let decided = AddressChange {
        ticket_id: id,
        ..change("fatima@gmail.com", "fatima@example.com", at(30))
    };
    // The corrections raised the evidence version: the address is evidence too.
    let seen = store.ticket(&number).await.unwrap().evidence_version;
    assert!(seen > 1, "each correction changes the evidence");
    store
        .reject(&MailedDecision {
            ticket_id: id,
            by: alice,
            text: "no",
            mail: &mail(MailKind::Rejection, "fatima@gmail.com"),
            evidence_version: seen,
            at: at(25),
        })
        .await
        .unwrap();
    assert_eq!(
        store.change_customer_email(&decided).await.unwrap(),
        AddressChangeOutcome::NotPending
    );
    assert_eq!(
        store.ticket(&number).await.unwrap().customer.email.as_str(),
        "fatima@gmail.com"
    );
}

pub async fn an_agents_address_change_withdraws_approvals_and_flags(store: &dyn Store) {
    let alice = agent(store, "alice@vendor.test").await;
    let bob = agent(store, "bob@vendor.test").await;
    let mut new = ticket(
        "owner@example.org",
        vec![challenge("SERIAL-0104", at(0))],
        at(10),
    );
    new.flags = vec!["watch list".to_owned()];
    let number = created(store, &new).await;
    let id = store.ticket(&number).await.unwrap().id;
    store
        .add_first_approval(&FirstApproval {
            ticket_id: id,
            evidence_version: 1,
            by: alice,
            as_role: Role::Agent,
            note: String::new(),
            at: at(20),
        })
        .await
        .unwrap();
    let outcome = store
        .change_customer_email(&AddressChange {
            ticket_id: id,
            by: AddressChanger::Agent {
                by: bob,
                flag: "bob changed the address".to_owned(),
                notice: Box::new(mail(MailKind::AddressChanged, "owner@example.org")),
            },
            from: email("owner@example.org"),
            to: email("owner@example.com"),
            acknowledgment: mail(MailKind::Acknowledgment, "owner@example.com"),
            at: at(30),
        })
        .await
        .unwrap();
    assert_eq!(
        outcome,
        AddressChangeOutcome::Changed {
            approvals_withdrawn: 1
        }
    );
    let detail = store.ticket(&number).await.unwrap();
    assert_eq!(detail.customer.email.as_str(), "owner@example.com");
    assert!(detail.approvals.is_empty());
    assert_eq!(
        detail.summary.flags,
        vec![
            "watch list".to_owned(),
            "bob changed the address".to_owned()
        ]
    );
    assert!(
        detail
            .events
            .iter()
            .any(|e| e.kind == TicketEventKind::ApprovalsWithdrawn)
    );
    let changed = detail
        .events
        .iter()
        .find(|e| e.kind == TicketEventKind::AddressCorrected)
        .unwrap();
    assert_eq!(changed.actor, "bob@vendor.test");
    assert!(
        changed
            .detail
            .starts_with("from owner@example.org to owner@example.com")
    );
    let audit = store
        .recent_audit(Some("bob@vendor.test"), Some("address_corrected"), 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    let kinds: Vec<_> = detail.mails.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["acknowledgment", "address_changed", "acknowledgment"]
    );

    // An approval decided on the old address finds the ticket changed under it.
    let stale = Approval {
        ticket_id: id,
        evidence_version: 1,
        by: alice,
        as_role: Role::Supervisor,
        note: String::new(),
        prior_approvals: 0,
        at: at(40),
        responses: Vec::new(),
        mail: mail(MailKind::Approval, "owner@example.org"),
    };
    match store.approve(&stale).await {
        Err(StoreError::Conflict(Conflict::AddressChanged)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        store.ticket(&number).await.unwrap().summary.status,
        TicketStatus::Open
    );
}

macro_rules! conformance_suite {
    ($fresh:expr) => {
        #[tokio::test]
        async fn inbound_mail_is_claimed_once_and_its_answers_counted() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::inbound_mail_is_claimed_once_and_its_answers_counted(store.as_ref()).await;
        }
        #[tokio::test]
        async fn a_new_database_holds_no_user() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::a_new_database_holds_no_user(store.as_ref()).await;
        }
        #[tokio::test]
        async fn a_tokens_last_use_is_kept_to_the_minute() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::a_tokens_last_use_is_kept_to_the_minute(store.as_ref()).await;
        }
        #[tokio::test]
        async fn a_reply_reopens_a_rejected_ticket_as_a_new_review() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::a_reply_reopens_a_rejected_ticket_as_a_new_review(store.as_ref()).await;
        }
        #[tokio::test]
        async fn the_pending_queue_walks_by_deadline() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::the_pending_queue_walks_by_deadline(store.as_ref()).await;
        }
        #[tokio::test]
        async fn ticket_numbers_are_found_by_id() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::ticket_numbers_are_found_by_id(store.as_ref()).await;
        }
        #[tokio::test]
        async fn submissions_at_once_make_one_ticket_per_challenge() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::submissions_at_once_make_one_ticket_per_challenge(store.as_ref()).await;
        }
        #[tokio::test]
        async fn grants_are_recorded_with_their_giver() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::grants_are_recorded_with_their_giver(store.as_ref()).await;
        }
        #[tokio::test]
        async fn disabling_revokes_api_tokens_for_good() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::disabling_revokes_api_tokens_for_good(store.as_ref()).await;
        }
        #[tokio::test]
        async fn a_refused_approval_is_recorded() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::a_refused_approval_is_recorded(store.as_ref()).await;
        }
        #[tokio::test]
        async fn erasing_a_customer_keeps_the_decision_and_a_verifiable_chain() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::erasing_a_customer_keeps_the_decision_and_a_verifiable_chain(store.as_ref())
                .await;
        }
        #[tokio::test]
        async fn retention_deletes_what_decided_tickets_keep_no_longer() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::retention_deletes_what_decided_tickets_keep_no_longer(store.as_ref()).await;
        }
        #[tokio::test]
        async fn job_leases_and_blob_references() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::job_leases_and_blob_references(store.as_ref()).await;
        }
        #[tokio::test]
        async fn users_and_tokens() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::users_and_tokens(store.as_ref()).await;
        }
        #[tokio::test]
        async fn tickets_resubmission_and_supersede() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::tickets_resubmission_and_supersede(store.as_ref()).await;
        }
        #[tokio::test]
        async fn queue_filters_and_search() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::queue_filters_and_search(store.as_ref()).await;
        }
        #[tokio::test]
        async fn queue_pages_follow_a_cursor() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::queue_pages_follow_a_cursor(store.as_ref()).await;
        }
        #[tokio::test]
        async fn approval_happens_once() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::approval_happens_once(store.as_ref()).await;
        }
        #[tokio::test]
        async fn automatic_decisions_are_counted_switched_and_marked() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::automatic_decisions_are_counted_switched_and_marked(store.as_ref()).await;
        }
        #[tokio::test]
        async fn installers_tokens_and_devices() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::installers_tokens_and_devices(store.as_ref()).await;
        }
        #[tokio::test]
        async fn flagged_tickets_take_two_approvals() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::flagged_tickets_take_two_approvals(store.as_ref()).await;
        }
        #[tokio::test]
        async fn a_batch_of_sent_mail_is_recorded_as_each_one() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::a_batch_of_sent_mail_is_recorded_as_each_one(store.as_ref()).await;
        }
        #[tokio::test]
        async fn evidence_jobs_are_leased_once_and_recorded_once() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::evidence_jobs_are_leased_once_and_recorded_once(store.as_ref()).await;
        }
        #[tokio::test]
        async fn a_replaced_photo_supersedes_its_job() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::a_replaced_photo_supersedes_its_job(store.as_ref()).await;
        }
        #[tokio::test]
        async fn an_unreadable_photo_sends_the_ticket_back() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::an_unreadable_photo_sends_the_ticket_back(store.as_ref()).await;
        }
        #[tokio::test]
        async fn a_job_is_given_up_after_its_attempts() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::a_job_is_given_up_after_its_attempts(store.as_ref()).await;
        }

        #[tokio::test]
        async fn one_tickets_job_can_be_leased() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::one_tickets_job_can_be_leased(store.as_ref()).await;
        }
        #[tokio::test]
        async fn a_label_naming_another_device_flags_the_ticket() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::a_label_naming_another_device_flags_the_ticket(store.as_ref()).await;
        }
        #[tokio::test]
        async fn label_checks_say_each_tickets_state() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::label_checks_say_each_tickets_state(store.as_ref()).await;
        }
        #[tokio::test]
        async fn unreadable_photos_send_a_ticket_back_only_so_often() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::unreadable_photos_send_a_ticket_back_only_so_often(store.as_ref()).await;
        }
        #[tokio::test]
        async fn a_released_job_is_taken_again_at_once() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::a_released_job_is_taken_again_at_once(store.as_ref()).await;
        }
        #[tokio::test]
        async fn photo_round_trip() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::photo_round_trip(store.as_ref()).await;
        }
        #[tokio::test]
        async fn a_claim_is_held_by_one_agent() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::a_claim_is_held_by_one_agent(store.as_ref()).await;
        }
        #[tokio::test]
        async fn decisions_are_made_on_the_evidence_seen() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::decisions_are_made_on_the_evidence_seen(store.as_ref()).await;
        }
        #[tokio::test]
        async fn outbox_leases_retries_and_dead_letters() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::outbox_leases_retries_and_dead_letters(store.as_ref()).await;
        }
        #[tokio::test]
        async fn second_factor_enrolment_and_one_time_codes() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::second_factor_enrolment_and_one_time_codes(store.as_ref()).await;
        }
        #[tokio::test]
        async fn totp_seeds_are_resealed_under_the_current_key() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::totp_seeds_are_resealed_under_the_current_key(store.as_ref()).await;
        }
        #[tokio::test]
        async fn a_dead_response_mail_is_resent_only_signed_again() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::a_dead_response_mail_is_resent_only_signed_again(store.as_ref()).await;
        }
        #[tokio::test]
        async fn the_queue_marks_a_customer_message_until_the_desk_acts() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::the_queue_marks_a_customer_message_until_the_desk_acts(store.as_ref()).await;
        }
        #[tokio::test]
        async fn canned_reasons_are_editable() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::canned_reasons_are_editable(store.as_ref()).await;
        }
        #[tokio::test]
        async fn access_codes_work_once_within_their_limits() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::access_codes_work_once_within_their_limits(store.as_ref()).await;
        }
        #[tokio::test]
        async fn codes_asked_for_at_once_are_three_and_one_live() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::codes_asked_for_at_once_are_three_and_one_live(store.as_ref()).await;
        }
        #[tokio::test]
        async fn intake_requests_are_counted_within_their_limits() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::intake_requests_are_counted_within_their_limits(store.as_ref()).await;
        }
        #[tokio::test]
        async fn customer_feedback_is_noted_up_to_a_limit() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::customer_feedback_is_noted_up_to_a_limit(store.as_ref()).await;
        }
        #[tokio::test]
        async fn a_repeat_request_names_the_earlier_approval() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::a_repeat_request_names_the_earlier_approval(store.as_ref()).await;
        }
        #[tokio::test]
        async fn sign_in_attempts_are_counted_before_they_are_checked() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::sign_in_attempts_are_counted_before_they_are_checked(store.as_ref()).await;
        }
        #[tokio::test]
        async fn the_status_link_goes_again_at_most_once_an_hour() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::the_status_link_goes_again_at_most_once_an_hour(store.as_ref()).await;
        }
        #[tokio::test]
        async fn customer_address_changes_stop_at_an_approval() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::customer_address_changes_stop_at_an_approval(store.as_ref()).await;
        }
        #[tokio::test]
        async fn an_agents_address_change_withdraws_approvals_and_flags() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::an_agents_address_change_withdraws_approvals_and_flags(store.as_ref()).await;
        }
        #[tokio::test]
        async fn sessions_expire_when_idle() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::sessions_expire_when_idle(store.as_ref()).await;
        }
        #[tokio::test]
        async fn the_key_registry_keeps_one_master_and_retires_for_everyone() {
            let Some((_guard, store)) = $fresh.await else {
                return;
            };
            super::the_key_registry_keeps_one_master_and_retires_for_everyone(store.as_ref()).await;
        }
    };
}

mod sqlite {
    use std::sync::Arc;

    use crate::store::{AuditStore, DatabaseStore, SqliteStore, Store};

    /// A migrated SQLite file, and the directory guard that removes it after the test.
    async fn migrated() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("conformance.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        (dir, store)
    }

    async fn fresh() -> Option<(tempfile::TempDir, Arc<dyn Store>)> {
        let (dir, store) = migrated().await;
        Some((dir, Arc::new(store)))
    }

    conformance_suite!(fresh());

    /// The queue page must not scan or sort the whole table, or its cost grows with it.
    #[tokio::test]
    async fn the_queue_page_walks_an_index() {
        let (_dir, sqlite) = migrated().await;
        for (query, index) in [
            (
                crate::store::sql::tickets::QUEUE_BY_STATUS,
                "tickets_by_status_age",
            ),
            (
                crate::store::sql::tickets::QUEUE_BY_DEADLINE,
                "tickets_by_status_deadline",
            ),
        ] {
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {query}")))
                    .bind("open")
                    .bind(0_i64)
                    .bind(0_i64)
                    .bind(100_i64)
                    .fetch_all(&sqlite.pool)
                    .await
                    .unwrap();
            let plan: Vec<String> = plan.into_iter().map(|row| row.3).collect();
            assert!(
                plan.iter()
                    .any(|step| step.contains(&format!("USING INDEX {index}"))),
                "{plan:?}"
            );
            assert!(
                !plan
                    .iter()
                    .any(|step| step.contains("TEMP B-TREE") || step.starts_with("SCAN ")),
                "{plan:?}"
            );
        }
    }

    /// The supervisors' queue walks the partial index of the tickets it lists.
    #[tokio::test]
    async fn the_second_approval_queue_walks_its_partial_index() {
        let (_dir, sqlite) = migrated().await;
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            <sqlx::Sqlite as crate::store::dialect::Dialect>::QUEUE_AWAITING_SECOND
        )))
        .bind(0_i64)
        .bind(0_i64)
        .bind(100_i64)
        .fetch_all(&sqlite.pool)
        .await
        .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|row| row.3).collect();
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX tickets_awaiting_second_approval")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.contains("TEMP B-TREE")),
            "{plan:?}"
        );
    }

    /// A search asks the trigram index for the trigrams that tile it, each third one and
    /// the last, its quotes doubled.
    #[test]
    fn a_search_is_looked_up_by_the_trigrams_that_tile_it() {
        use crate::store::dialect::Dialect;
        let pattern =
            |q: &str| sqlx::Sqlite::search_pattern(&crate::domain::SearchText::parse(q).unwrap());
        assert_eq!(pattern("ana"), r#""ana""#);
        assert_eq!(pattern("silva"), r#""sil" AND "lva""#);
        assert_eq!(pattern("abcdefghi"), r#""abc" AND "def" AND "ghi""#);
        assert_eq!(pattern("abcdefgh"), r#""abc" AND "def" AND "fgh""#);
        assert_eq!(pattern("a\"b\"c"), r#""a""b" AND "b""c""#);
        assert_eq!(pattern("nanana"), r#""nan" AND "ana""#);
    }

    /// PostgreSQL's index is asked for the trigrams that tile a long search with digits,
    /// in order, beside the whole search; both literal.
    #[test]
    fn a_search_is_looked_up_in_postgres_by_its_tiles_and_checked_whole() {
        use crate::store::dialect::Dialect;
        let parsed = |q: &str| crate::domain::SearchText::parse(q).unwrap();
        let tiles = |q: &str| sqlx::Postgres::search_pattern(&parsed(q));
        let check = |q: &str| sqlx::Postgres::search_check(&parsed(q));
        // Only a long search with a digit: a name, however long, is looked up whole.
        assert_eq!(tiles("ana"), "");
        assert_eq!(tiles("jorge"), "");
        assert_eq!(tiles("kowalskiana"), "");
        assert_eq!(tiles("ab1234567"), "%ab1%234%567%");
        assert_eq!(tiles("ab12345678"), "%ab1%234%567%");
        assert_eq!(tiles("ab12345"), "");
        assert_eq!(tiles("a%b_c\\d12"), r"%a\%b%\_c\\%d12%");
        assert_eq!(check("a%b_c\\d"), r"%a\%b\_c\\d%");
        assert_eq!(check("silva"), "%silva%");
    }

    /// A search is served by the FTS5 trigram table, which also yields the newest first:
    /// no scan of the tickets and no sort, whatever the table's size.
    #[tokio::test]
    async fn a_search_walks_the_trigram_index() {
        use crate::store::dialect::Dialect;
        let (_dir, sqlite) = migrated().await;
        let search = crate::domain::SearchText::parse("ana").unwrap();
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            sqlx::Sqlite::QUEUE_SEARCH
        )))
        .bind(Some("open"))
        .bind(sqlx::Sqlite::search_pattern(&search))
        .bind(Some(1_000_i64))
        .bind(100_i64)
        .bind(sqlx::Sqlite::search_check(&search))
        .fetch_all(&sqlite.pool)
        .await
        .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|row| row.3).collect();
        assert!(
            plan.first()
                .is_some_and(|step| step.contains("VIRTUAL TABLE INDEX")),
            "{plan:?}"
        );
        assert!(
            !plan
                .iter()
                .any(|step| step.contains("TEMP B-TREE") || step.starts_with("SCAN t")),
            "{plan:?}"
        );
    }

    /// Tickets from before migration 0021 are found too: its backfill writes the text
    /// the desk's own code writes for a new ticket, and the index is rebuilt from it.
    #[tokio::test]
    async fn the_search_migration_indexes_earlier_tickets_as_the_desk_would() {
        let (_dir, sqlite) = migrated().await;
        let devices = vec![
            super::challenge("DS-7608NI-K2/OLD0001", super::at(0)),
            super::challenge("DS-2CD2143G2-I/OLD0002", super::at(0)),
        ];
        let number = super::created(
            &sqlite,
            &super::ticket("Old@Example.com", devices, super::at(5)),
        )
        .await;
        let written: String = sqlx::query_scalar("SELECT search_text FROM tickets")
            .fetch_one(&sqlite.pool)
            .await
            .unwrap();
        let migration = include_str!("../../migrations/sqlite/0021_ticket_search.sql");
        let start = migration.find("UPDATE tickets SET search_text").unwrap();
        let backfill = &migration[start..start + migration[start..].find(';').unwrap()];
        sqlx::query("UPDATE tickets SET search_text = ''")
            .execute(&sqlite.pool)
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(backfill.to_owned()))
            .execute(&sqlite.pool)
            .await
            .unwrap();
        let backfilled: String = sqlx::query_scalar("SELECT search_text FROM tickets")
            .fetch_one(&sqlite.pool)
            .await
            .unwrap();
        assert_eq!(backfilled, written);
        let filter = crate::store::QueueFilter {
            search: Some(crate::domain::SearchText::parse("OLD0002").unwrap()),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(
            crate::store::TicketStore::tickets(&sqlite, &filter)
                .await
                .unwrap()[0]
                .number,
            number
        );
    }

    /// The migration that gave old tickets their deadline wrote the lifetime out: it is
    /// the protocol's.
    #[test]
    fn the_deadline_migration_uses_the_protocols_lifetime() {
        for migration in [
            include_str!("../../migrations/sqlite/0020_queue_by_deadline.sql"),
            include_str!("../../migrations/postgres/0020_queue_by_deadline.sql"),
        ] {
            assert!(
                migration.contains(&format!(
                    ") + {};",
                    crate::protocol::CHALLENGE_LIFETIME_SECS
                )),
                "{migration}"
            );
        }
    }

    /// The ticket page's mail list must not scan the outbox, which keeps every mail sent.
    #[tokio::test]
    async fn a_tickets_mail_is_found_through_an_index() {
        let (_dir, sqlite) = migrated().await;
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            crate::store::sql::tickets::MAILS_OF_TICKET
        )))
        .bind(1_i64)
        .fetch_all(&sqlite.pool)
        .await
        .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|row| row.3).collect();
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX outbox_by_ticket")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.contains("TEMP B-TREE")),
            "{plan:?}"
        );
    }

    /// A commit is on disk before the desk answers (docs/RESILIENCE.md, "What is on
    /// disk when the desk answers"): every connection, reading or writing, syncs fully.
    #[tokio::test]
    async fn every_commit_is_synced() {
        let (_dir, sqlite) = migrated().await;
        for pool in [&sqlite.pool, sqlite.writer()] {
            let (journal,): (String,) = sqlx::query_as("PRAGMA journal_mode")
                .fetch_one(pool)
                .await
                .unwrap();
            let (synchronous,): (i64,) = sqlx::query_as("PRAGMA synchronous")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!((journal.as_str(), synchronous), ("wal", 2), "2 is FULL");
        }
    }

    #[tokio::test]
    async fn the_audit_log_is_append_only() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        store
            .audit(super::at(0), "tester", "check", "")
            .await
            .unwrap();
        let update = sqlx::query("UPDATE audit_log SET actor = 'someone else'")
            .execute(&store.pool)
            .await;
        assert!(update.unwrap_err().to_string().contains("append-only"));
        let delete = sqlx::query("DELETE FROM audit_log")
            .execute(&store.pool)
            .await;
        assert!(delete.unwrap_err().to_string().contains("append-only"));
    }
}

/// The same checks on PostgreSQL, each in a database of its own, when
/// `RESETDESK_TEST_POSTGRES_URL` names a server (`.ci/run` sets it).
mod postgres {
    use std::sync::Arc;

    use sqlx::Connection;

    use crate::store::{DatabaseStore, PgStore, Store};

    /// Drops the test's database when the test ends.
    pub struct Database {
        admin_url: String,
        name: String,
    }

    impl Drop for Database {
        fn drop(&mut self) {
            let (url, name) = (self.admin_url.clone(), self.name.clone());
            // Drop runs outside any async context of its own: use a thread with a runtime.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&url).await {
                        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                            .execute(&mut admin)
                            .await;
                    }
                });
            })
            .join();
        }
    }

    /// The URL of the server's `test` database, or `None` (and a note) to skip.
    pub fn server_url() -> Option<String> {
        match std::env::var("RESETDESK_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                eprintln!("PostgreSQL conformance skipped: RESETDESK_TEST_POSTGRES_URL is not set");
                None
            }
        }
    }

    /// A new, migrated database on the test server.
    pub async fn fresh() -> Option<(Database, Arc<dyn Store>)> {
        let admin_url = server_url()?;
        let name = format!(
            "rd_test_{}",
            data_encoding::HEXLOWER.encode(&crate::crypto::random_bytes::<6>())
        );
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("the test PostgreSQL server answers");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap();
        let base = admin_url.split('?').next().unwrap_or(&admin_url);
        let url = format!(
            "{}/{name}",
            base.rsplit_once('/').map_or(base, |(server, _)| server)
        );
        let guard = Database { admin_url, name };
        let store = PgStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        Some((guard, Arc::new(store)))
    }

    conformance_suite!(fresh());

    /// Tickets from before migration 0021 are found too: its backfill writes the text
    /// the desk's own code writes for a new ticket.
    #[tokio::test]
    async fn the_search_migration_indexes_earlier_tickets_as_the_desk_would() {
        let Some((guard, store)) = fresh().await else {
            return;
        };
        let devices = vec![
            super::challenge("DS-7608NI-K2/OLD0001", super::at(0)),
            super::challenge("DS-2CD2143G2-I/OLD0002", super::at(0)),
        ];
        let ticket = super::ticket("Old@Example.com", devices, super::at(5));
        let number = super::created(store.as_ref(), &ticket).await;
        let base = guard
            .admin_url
            .split('?')
            .next()
            .unwrap_or(&guard.admin_url);
        let url = format!(
            "{}/{}",
            base.rsplit_once('/').map_or(base, |(server, _)| server),
            guard.name
        );
        let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
        let written: String = sqlx::query_scalar("SELECT search_text FROM tickets")
            .fetch_one(&mut connection)
            .await
            .unwrap();
        let migration = include_str!("../../migrations/postgres/0021_ticket_search.sql");
        let start = migration.find("UPDATE tickets SET search_text").unwrap();
        let backfill = &migration[start..start + migration[start..].find(';').unwrap()];
        sqlx::query("UPDATE tickets SET search_text = ''")
            .execute(&mut connection)
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(backfill.to_owned()))
            .execute(&mut connection)
            .await
            .unwrap();
        let backfilled: String = sqlx::query_scalar("SELECT search_text FROM tickets")
            .fetch_one(&mut connection)
            .await
            .unwrap();
        assert_eq!(backfilled, written);
        let filter = crate::store::QueueFilter {
            search: Some(crate::domain::SearchText::parse("OLD0002").unwrap()),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(store.tickets(&filter).await.unwrap()[0].number, number);
    }

    /// The queue page can be served from the (status, created_at, id) index without a
    /// sort. Sequential scans are switched off for the check: on a near-empty test table the
    /// planner would rightly prefer one, which says nothing about a million rows.
    #[tokio::test]
    async fn the_queue_page_can_walk_an_index() {
        let Some((_guard, _)) = fresh().await else {
            return;
        };
        let admin_url = server_url().unwrap();
        let base = admin_url.split('?').next().unwrap_or(&admin_url);
        let url = format!(
            "{}/{}",
            base.rsplit_once('/').map_or(base, |(server, _)| server),
            _guard.name
        );
        let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut connection)
            .await
            .unwrap();
        for (query, index) in [
            (
                crate::store::sql::tickets::QUEUE_BY_STATUS,
                "tickets_by_status_age",
            ),
            (
                crate::store::sql::tickets::QUEUE_BY_DEADLINE,
                "tickets_by_status_deadline",
            ),
        ] {
            let sql = format!("EXPLAIN {query}");
            let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind("open")
                .bind(0_i64)
                .bind(0_i64)
                .bind(100_i64)
                .fetch_all(&mut connection)
                .await
                .unwrap();
            let plan = plan.join("\n");
            assert!(plan.contains(index), "{plan}");
            assert!(!plan.contains("Sort"), "{plan}");
        }
        // The search statement itself, planned for its values as the store sends it: a
        // long search with digits is matched by its tiles and the whole pattern, any
        // other by the whole pattern alone, the empty tiles folded away. Both patterns
        // are for the trigram index (which plan wins at a million tickets is the
        // queue-at-scale bench's to measure: on an empty table any plan is cheapest).
        use crate::store::dialect::Dialect;
        for (typed, tiled) in [("ba1234567", true), ("jorge", false)] {
            let search = crate::domain::SearchText::parse(typed).unwrap();
            let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "EXPLAIN {}",
                sqlx::Postgres::QUEUE_SEARCH
            )))
            .bind(None::<&str>)
            .bind(sqlx::Postgres::search_pattern(&search))
            .bind(None::<i64>)
            .bind(100_i64)
            .bind(sqlx::Postgres::search_check(&search))
            .persistent(false)
            .fetch_all(&mut connection)
            .await
            .unwrap();
            let plan = plan.join("\n");
            assert!(plan.contains(&format!("'%{typed}%'")), "{typed}: {plan}");
            let conditions = plan.lines().find(|l| l.contains("~~")).unwrap_or_default();
            assert_eq!(
                conditions.matches("~~").count(),
                if tiled { 2 } else { 1 },
                "{typed}: {plan}"
            );
            assert!(
                !plan.contains("''"),
                "{typed}: the empty tiles fold away: {plan}"
            );
            let index: Vec<String> = sqlx::query_scalar(
                "EXPLAIN SELECT id FROM tickets WHERE ($1 IS NULL OR search_text LIKE $1) AND search_text LIKE $2",
            )
            .bind(Some(sqlx::Postgres::search_pattern(&search)).filter(|tiles| !tiles.is_empty()))
            .bind(sqlx::Postgres::search_check(&search))
            .fetch_all(&mut connection)
            .await
            .unwrap();
            assert!(
                index.join("\n").contains("tickets_by_search_text"),
                "{index:?}"
            );
        }
    }
}
