//! The store's behaviour, written once for every backend. `sql_store!` expands to the
//! whole `Store` implementation inside a backend's module; the backend supplies what
//! differs between dialects: its pool and transaction type, `write()` (how a write
//! transaction starts), `writer()` (where a single write statement runs), `MIGRATOR`, `QUEUE_SEARCH`, `CLAIM_DUE_MAIL`,
//! `serial_prefix_pattern`, `lock_audit_chain`, `lock_bucket` and `PRUNE_INTAKE_HITS`. All SQL here is the
//! dialect SQLite and PostgreSQL share (`$N` parameters, `CAST`, `COUNT(*) FILTER`).

/// A bucket sign-in attempts are counted in (`Store::reserve_login_attempt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LoginBucket {
    /// One account, from browsers without a device cookie for it.
    Account,
    /// One client network, from browsers without a device cookie for the account.
    Address,
    /// One device cookie.
    Device,
}

impl LoginBucket {
    /// The attempts counted in the bucket named by `$1` after `$2`, and the oldest.
    pub(super) fn count_query(self) -> &'static str {
        match self {
            Self::Account => {
                "SELECT COUNT(*), MIN(at) FROM login_failures WHERE account = $1 AND device IS NULL AND at > $2"
            }
            Self::Address => {
                "SELECT COUNT(*), MIN(at) FROM login_failures WHERE address = $1 AND device IS NULL AND at > $2"
            }
            Self::Device => {
                "SELECT COUNT(*), MIN(at) FROM login_failures WHERE device = $1 AND at > $2"
            }
        }
    }

    /// A lock namespace of its own per kind of bucket ("RDLA", "RDLN", "RDLD"), for
    /// backends that lock buckets by name.
    pub(super) fn lock_class(self) -> i32 {
        match self {
            Self::Account => 0x5244_4C41,
            Self::Address => 0x5244_4C4E,
            Self::Device => 0x5244_4C44,
        }
    }
}

/// The lock namespace of a ticket's one-time codes ("RDAC"), keyed by the ticket's id.
pub(super) const ACCESS_CODE_LOCK: i32 = 0x5244_4143;

/// A lock namespace of its own per intake bucket ("RDIA", "RDIS").
pub(super) fn intake_lock_class(bucket: crate::store::IntakeBucket) -> i32 {
    match bucket {
        crate::store::IntakeBucket::Address => 0x5244_4941,
        crate::store::IntakeBucket::Serial => 0x5244_4953,
    }
}

/// The queue row's columns; a macro so each query can `concat!` its own filter.
macro_rules! summary_select {
    () => {
        "SELECT t.id, t.number, t.status, t.created_at,
                (SELECT COUNT(*) FROM ticket_devices c WHERE c.ticket_id = t.id) AS device_count,
                d0.model AS first_model, d0.serial AS first_serial, t.customer_email,
                u.email AS claimed_by, t.flags
         FROM tickets t
         JOIN ticket_devices d0 ON d0.ticket_id = t.id AND d0.position = 0
         LEFT JOIN users u ON u.id = t.claimed_by "
    };
}

/// Loads users; each query adds its own `WHERE`.
macro_rules! user_select {
    () => {
        "SELECT id, email, roles, password_hash, disabled_at, totp_secret, totp_sealed, totp_key_id,
                totp_enabled_at FROM users "
    };
}

/// The kinds of mail whose parts carry a secret: the response mail (typed keys and the
/// signed file) and the one-time code mail (`mail::compose::kind`). Their text, HTML
/// and attachment are kept only while they wait to be sent: emptied once delivered or
/// dead.
macro_rules! secret_mail_kinds {
    () => {
        "('approval', 'access_code')"
    };
}

/// Expands to the shared implementation for backend `$store` on database `$db`.
macro_rules! sql_store {
    ($store:ident, $db:ident) => {
fn db(error: sqlx::Error) -> StoreError {
    StoreError::from_sqlx(error)
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}


// The queue, oldest first, a page at a time after a (created_at, id) cursor. The hot
// case (one status, no search) walks the (status, created_at, id) index and never sorts,
// so a page costs the same at a thousand or a million tickets; a test checks the plan.
pub(super) const QUEUE_BY_STATUS: &str = concat!(
    summary_select!(),
    "WHERE t.status = $1 AND (t.created_at, t.id) > ($2, $3) ORDER BY t.created_at, t.id LIMIT $4"
);

const QUEUE_ALL: &str = concat!(
    summary_select!(),
    "WHERE (t.created_at, t.id) > ($1, $2) ORDER BY t.created_at, t.id LIMIT $3"
);


const SUMMARY_BY_ID: &str = concat!(summary_select!(), "WHERE t.id = $1");

// A ticket's mail, for its page: through outbox_by_ticket (migration 0002), as sent
// mail is kept and the outbox grows with every ticket; a test checks the plan.
pub(super) const MAILS_OF_TICKET: &str =
    "SELECT id, kind, status, attempts, last_error, sent_at FROM outbox WHERE ticket_id = $1 ORDER BY id";


impl $store {
    async fn create_ticket_once(&self, ticket: &NewTicket, acknowledgment: &NewMail) -> StoreResult<CreateOutcome> {
        let mut tx = self.write().await?;
        let now = ticket.created_at;
        for device in &ticket.devices {
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT t.number FROM ticket_devices d JOIN tickets t ON t.id = d.ticket_id
                 WHERE d.serial = $1 AND d.nonce = $2",
            )
            .bind(device.identity.serial.as_str())
            .bind(hex(&device.nonce.0))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            if let Some(number) = existing {
                let number = TicketNumber::parse(&number)
                    .map_err(|_| rows::corrupt("ticket number", number))?;
                return Ok(CreateOutcome::Existing { number });
            }
            // The device holds only its newest challenge: an export older than one already
            // waiting in a ticket is dead on arrival.
            let newer: Option<String> = sqlx::query_scalar(
                "SELECT t.number FROM ticket_devices d JOIN tickets t ON t.id = d.ticket_id
                 WHERE d.serial = $1 AND d.issued_at > $2 AND t.status IN ('open', 'awaiting_photo') LIMIT 1",
            )
            .bind(device.identity.serial.as_str())
            .bind(device.issued_at.unix_seconds())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            if let Some(number) = newer {
                return Err(StoreError::NewerExport {
                    ticket: number,
                    serial: device.identity.serial.to_string(),
                });
            }
        }
        let c = &ticket.customer;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tickets (number, status, customer_name, customer_email, customer_phone,
                                  customer_company, customer_country, customer_role, purchase_channel, export_form,
                                  export_blob, label_blob, label_media_type, flags, created_at, updated_at, repeat_of,
                                  customer_language)
             VALUES ($1, 'open', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                     (SELECT id FROM tickets WHERE number = $16), $17) RETURNING id",
        )
        .bind(ticket.number.as_str())
        .bind(c.name.as_str())
        .bind(c.email.as_str())
        .bind(c.phone.as_ref().map(|p| p.as_str()))
        .bind(c.company.as_ref().map(|p| p.as_str()))
        .bind(c.country.as_str())
        .bind(c.role.as_str())
        .bind(c.purchase_channel.as_ref().map(|p| p.as_str()))
        .bind(ticket.export_form.as_str())
        .bind(&ticket.export_blob)
        .bind(&ticket.label_blob)
        .bind(&ticket.label_media_type)
        .bind(rows::flags_text(&ticket.flags))
        .bind(now.unix_seconds())
        .bind(now.unix_seconds())
        .bind(ticket.repeat_of.as_ref().map(TicketNumber::as_str))
        .bind(c.language.code())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        for (position, device) in ticket.devices.iter().enumerate() {
            let id_ = &device.identity;
            sqlx::query(
                "INSERT INTO ticket_devices (ticket_id, position, model, serial, firmware, mac_address, reserved_email,
                                             nonce, issued_at, tag, export_id, exported_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(id)
            .bind(position as i64)
            .bind(id_.model.as_str())
            .bind(id_.serial.as_str())
            .bind(id_.firmware.as_str())
            .bind(id_.mac_address.map(|m| m.to_string()))
            .bind(id_.reserved_email.as_ref().map(|e| e.as_str()))
            .bind(hex(&device.nonce.0))
            .bind(device.issued_at.unix_seconds())
            .bind(hex(&device.tag.0))
            .bind(device.binding.as_ref().map(|b| b.export_id.to_hex()))
            .bind(device.binding.as_ref().map(|b| b.exported_by.as_str()))
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(Conflict::SameChallenge)
                } else {
                    db(e)
                }
            })?;
        }
        let mut superseded = Vec::new();
        for device in &ticket.devices {
            let older: Vec<(i64, String)> = sqlx::query_as(
                "SELECT DISTINCT t.id, t.number FROM ticket_devices d JOIN tickets t ON t.id = d.ticket_id
                 WHERE d.serial = $1 AND t.id != $2 AND t.status IN ('open', 'awaiting_photo')",
            )
            .bind(device.identity.serial.as_str())
            .bind(id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            for (old_id, old_number) in older {
                                // Only if still pending: an approval may have committed since the SELECT.
                let updated = sqlx::query(
                    "UPDATE tickets SET status = 'superseded', superseded_by = $1, updated_at = $2
                     WHERE id = $3 AND status IN ('open', 'awaiting_photo')",
                )
                .bind(id)
                .bind(now.unix_seconds())
                .bind(old_id)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
                if updated == 0 {
                    continue;
                }
                let note = format!(
                    "replaced by {} (a newer export from {})",
                    ticket.number, device.identity.serial
                );
                event(&mut tx, old_id, now, "customer", "superseded", &note).await?;
                let note = format!(
                    "replaces {old_number} (an older export from {})",
                    device.identity.serial
                );
                event(&mut tx, id, now, "customer", "supersedes", &note).await?;
                superseded.push(
                    TicketNumber::parse(&old_number)
                        .map_err(|_| rows::corrupt("ticket number", old_number))?,
                );
            }
        }
        let detail = format!(
            "{} device(s) by {}",
            ticket.devices.len(),
            ticket.export_form.as_str()
        );
        event(&mut tx, id, now, "customer", "submitted", &detail).await?;
        enqueue(&mut tx, Some(id), acknowledgment, now).await?;
        tx.commit().await.map_err(db)?;
        Ok(CreateOutcome::Created {
            number: ticket.number.clone(),
            superseded,
        })
    }
}

impl $store {
    async fn user_by_id(&self, user: UserId) -> StoreResult<User> {
        let row: Option<UserRow> = sqlx::query_as(concat!(user_select!(), "WHERE id = $1"))
            .bind(user.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }
}

async fn event(
    tx: &mut Transaction<'static, $db>,
    ticket_id: i64,
    at: Timestamp,
    actor: &str,
    kind: &str,
    detail: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO ticket_events (ticket_id, at, actor, kind, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(ticket_id)
    .bind(at.unix_seconds())
    .bind(actor)
    .bind(kind)
    .bind(detail)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

async fn audit(
    tx: &mut Transaction<'static, $db>,
    at: Timestamp,
    actor: &str,
    action: &str,
    ticket_id: Option<i64>,
    detail: &str,
) -> StoreResult<()> {
    audit_many(tx, at, actor, action, &[(ticket_id, detail.to_owned())]).await
}

/// Appends one audit entry per `(ticket, detail)`, in order, chained as if one by one,
/// in a single INSERT: a batch of delivered mail costs one statement, not one each.
async fn audit_many(
    tx: &mut Transaction<'static, $db>,
    at: Timestamp,
    actor: &str,
    action: &str,
    entries: &[(Option<i64>, String)],
) -> StoreResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    // Reading the head and appending after it must be one step: the backend makes sure no
    // other writer appends in between.
    lock_audit_chain(tx).await?;
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?;
    let (mut id, mut prev_hash) = match last {
        Some((id, hash)) => (id, rows::hex_array::<32>("audit hash", &hash)?),
        None => (0, crate::audit::GENESIS),
    };
    let mut rows = Vec::with_capacity(entries.len());
    for (ticket_id, detail) in entries {
        id += 1;
        let hash = crate::audit::entry_hash(&prev_hash, id, at, actor, action, *ticket_id, detail);
        rows.push((id, *ticket_id, detail, hex(&prev_hash), hex(&hash)));
        prev_hash = hash;
    }
    let mut insert = sqlx::QueryBuilder::<$db>::new(
        "INSERT INTO audit_log (id, at, actor, action, ticket_id, detail, prev_hash, hash) ",
    );
    insert.push_values(rows, |mut row, (id, ticket_id, detail, prev, hash)| {
        row.push_bind(id)
            .push_bind(at.unix_seconds())
            .push_bind(actor)
            .push_bind(action)
            .push_bind(ticket_id)
            .push_bind(detail.as_str())
            .push_bind(prev)
            .push_bind(hash);
    });
    insert.build().execute(&mut **tx).await.map_err(db)?;
    Ok(())
}

/// Appends ` IN (id, id, …)` with each id bound.
fn push_in_ids(query: &mut sqlx::QueryBuilder<$db>, ids: &[i64]) {
    query.push(" IN (");
    let mut list = query.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    query.push(")");
}

async fn enqueue(
    tx: &mut Transaction<'static, $db>,
    ticket_id: Option<i64>,
    mail: &NewMail,
    now: Timestamp,
) -> StoreResult<()> {
    let attachment = mail.attachment.as_ref();
    sqlx::query(
        "INSERT INTO outbox (message_id, ticket_id, kind, recipient, subject, body_text, body_html,
                             attachment_name, attachment_type, attachment, status, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11, $12)",
    )
    .bind(&mail.message_id)
    .bind(ticket_id)
    .bind(mail.kind)
    .bind(mail.recipient.as_str())
    .bind(&mail.subject)
    .bind(&mail.body_text)
    .bind(&mail.body_html)
    .bind(attachment.map(|a| a.file_name.as_str()))
    .bind(attachment.map(|a| a.media_type.as_str()))
    .bind(attachment.map(|a| a.bytes.as_slice()))
    .bind(now.unix_seconds())
    .bind(now.unix_seconds())
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

async fn user_email(tx: &mut Transaction<'static, $db>, user: UserId) -> StoreResult<String> {
    sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(user.0)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)
}

/// An agent's step on a ticket, as the history and the audit log record it.
struct Step<'a> {
    ticket_id: i64,
    by: UserId,
    at: Timestamp,
    event: &'static str,
    action: &'static str,
    detail: &'a str,
}

/// Finishes a step whose state change `tx` already made: history entry, audit entry,
/// the customer's mail if any, all committed together.
async fn record_step(
    mut tx: Transaction<'static, $db>,
    step: &Step<'_>,
    mail: Option<&NewMail>,
) -> StoreResult<()> {
    let email = user_email(&mut tx, step.by).await?;
    event(
        &mut tx,
        step.ticket_id,
        step.at,
        &email,
        step.event,
        step.detail,
    )
    .await?;
    audit(
        &mut tx,
        step.at,
        &email,
        step.action,
        Some(step.ticket_id),
        step.detail,
    )
    .await?;
    if let Some(mail) = mail {
        enqueue(&mut tx, Some(step.ticket_id), mail, step.at).await?;
    }
    tx.commit().await.map_err(db)
}

async fn end_sessions(tx: &mut Transaction<'static, $db>, user: UserId) -> StoreResult<()> {
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user.0)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

/// Text a person typed into a filter, without control characters.
fn without_controls(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

/// Revokes every live API token of a user (whoever held the account may have made
/// some); returns how many.
async fn revoke_all_tokens(tx: &mut Transaction<'static, $db>, user: UserId, now: Timestamp) -> StoreResult<u64> {
    let revoked = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now.unix_seconds())
        .bind(user.0)
        .execute(&mut **tx)
        .await
        .map_err(db)?
        .rows_affected();
    Ok(revoked)
}

/// Records what `actor` gave `user`. The giver is the console user whose address
/// `actor` is; an actor that is no user's address (the command line's `cli`) leaves it
/// empty. Addresses are unique and never change, so the lookup finds the admin who
/// acted or nobody.
async fn record_grant(
    tx: &mut Transaction<'static, $db>,
    user: UserId,
    kind: GrantKind,
    roles: Option<Roles>,
    actor: &str,
    at: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO user_grants (user_id, kind, roles, granted_by, actor, at)
         VALUES ($1, $2, $3, (SELECT id FROM users WHERE email = $4), $4, $5)",
    )
    .bind(user.0)
    .bind(kind.as_str())
    .bind(roles.map(Roles::to_stored))
    .bind(actor)
    .bind(at.unix_seconds())
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

async fn insert_approval(
    tx: &mut Transaction<'static, $db>,
    ticket_id: i64,
    by: UserId,
    as_role: Role,
    note: &str,
    at: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO approvals (ticket_id, user_id, as_role, note, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(ticket_id)
    .bind(by.0)
    .bind(as_role.as_str())
    .bind(note)
    .bind(at.unix_seconds())
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict(Conflict::AlreadyApproved)
        } else {
            db(e)
        }
    })?;
    Ok(())
}

/// Explains why a decision on evidence version `seen` found nothing to decide: the
/// evidence changed under it, or the ticket was decided meanwhile.
async fn decision_conflict(
    tx: &mut Transaction<'static, $db>,
    ticket_id: i64,
    seen: i64,
) -> StoreError {
    let row: Result<(String, i64), _> =
        sqlx::query_as("SELECT status, evidence_version FROM tickets WHERE id = $1")
            .bind(ticket_id)
            .fetch_one(&mut **tx)
            .await;
    match row {
        Ok((status, version)) if version != seen && matches!(status.as_str(), "open" | "awaiting_photo") => {
            StoreError::EvidenceChanged
        }
        Ok(_) => decided_conflict(tx, ticket_id).await,
        Err(sqlx::Error::RowNotFound) => StoreError::NotFound,
        Err(e) => db(e),
    }
}

/// Explains why a decision found the ticket no longer open.
async fn decided_conflict(tx: &mut Transaction<'static, $db>, ticket_id: i64) -> StoreError {
    let row: Result<(String, Option<String>), _> = sqlx::query_as(
        "SELECT t.status, u.email FROM tickets t LEFT JOIN users u ON u.id = t.decided_by WHERE t.id = $1",
    )
    .bind(ticket_id)
    .fetch_one(&mut **tx)
    .await;
    match row {
        Ok((status, Some(by))) => StoreError::Conflict(Conflict::AlreadyDecided { status, by }),
        Ok((status, None)) => StoreError::Conflict(Conflict::NotOpen { status }),
        Err(sqlx::Error::RowNotFound) => StoreError::NotFound,
        Err(e) => db(e),
    }
}

/// Why an approval's update found nothing to approve: decided meanwhile, or the
/// customer's address changed under it.
async fn approve_conflict(tx: &mut Transaction<'static, $db>, approval: &Approval) -> StoreError {
    let current: Result<Option<(String, String)>, _> =
        sqlx::query_as("SELECT status, customer_email FROM tickets WHERE id = $1")
            .bind(approval.ticket_id)
            .fetch_optional(&mut **tx)
            .await;
    match current {
        Ok(Some((status, email))) if status == "open" && email != approval.mail.recipient.as_str() => {
            StoreError::Conflict(Conflict::AddressChanged)
        }
        Ok(_) => decision_conflict(tx, approval.ticket_id, approval.evidence_version).await,
        Err(e) => db(e),
    }
}

#[async_trait]
impl Store for $store {
    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(StoreError::other)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(self.writer())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn migrations_applied(&self) -> StoreResult<bool> {
        let known = MIGRATOR.iter().count() as i64;
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        Ok(applied >= known)
    }

    async fn queue_stats(&self) -> StoreResult<(i64, Option<Timestamp>)> {
        let (open, oldest): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM tickets WHERE status IN ('open', 'awaiting_photo')")
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        Ok((open, oldest.map(rows::time).transpose()?))
    }

    async fn holds_tickets(&self) -> StoreResult<bool> {
        let any: Option<i64> = sqlx::query_scalar("SELECT id FROM tickets LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(any.is_some())
    }

    async fn registered_keys(&self) -> StoreResult<Vec<RegisteredKey>> {
        let rows: Vec<rows::KeyRow> = sqlx::query_as(
            "SELECT key_id, kind, status, created_at, retired_at FROM key_registry ORDER BY created_at, key_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn register_key(&self, kind: KeyKind, key_id: &str, now: Timestamp) -> StoreResult<()> {
        // Without a conflict target: the key id and the one-master index both count.
        sqlx::query(
            "INSERT INTO key_registry (key_id, kind, status, created_at) VALUES ($1, $2, 'current', $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(key_id)
        .bind(kind.as_str())
        .bind(now.unix_seconds())
        .execute(self.writer())
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn retire_key(&self, key_id: &str, actor: &str, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let changed = sqlx::query(
            "UPDATE key_registry SET status = 'retired', retired_at = COALESCE(retired_at, $2)
             WHERE key_id = $1 AND kind = 'signing'",
        )
        .bind(key_id)
        .bind(now.unix_seconds())
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        audit(&mut tx, now, actor, "key_retired", None, key_id).await?;
        tx.commit().await.map_err(db)
    }

    async fn key_status(&self, key_id: &str) -> StoreResult<Option<KeyRecordStatus>> {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM key_registry WHERE key_id = $1")
                .bind(key_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        status
            .map(|s| KeyRecordStatus::parse(&s).ok_or_else(|| rows::corrupt("key status", s)))
            .transpose()
    }

    async fn create_user(
        &self,
        email: &EmailAddress,
        password_hash: &str,
        roles: Roles,
        actor: &str,
        now: Timestamp,
    ) -> StoreResult<UserId> {
        let mut tx = self.write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (email, password_hash, roles, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(email.as_str())
        .bind(password_hash)
        .bind(roles.to_stored())
        .bind(now.unix_seconds())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(Conflict::EmailTaken {
                    email: email.clone(),
                })
            } else {
                db(e)
            }
        })?;
        record_grant(&mut tx, UserId(id), GrantKind::Created, Some(roles), actor, now).await?;
        audit(
            &mut tx,
            now,
            actor,
            "user_created",
            None,
            &format!("{email} as {roles}"),
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(UserId(id))
    }

    async fn user_by_email(&self, email: &EmailAddress) -> StoreResult<User> {
        let row: Option<UserRow> = sqlx::query_as(concat!(user_select!(), "WHERE email = $1"))
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        let rows: Vec<UserRow> = sqlx::query_as(concat!(user_select!(), "ORDER BY email"))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn set_roles(
        &self,
        user: UserId,
        roles: Roles,
        actor: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let (email, before): (String, String) =
            sqlx::query_as("SELECT email, roles FROM users WHERE id = $1")
                .bind(user.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?
                .ok_or(StoreError::NotFound)?;
        let before = Roles::parse_stored(&before).ok_or_else(|| rows::corrupt("roles", &before))?;
        sqlx::query("UPDATE users SET roles = $1 WHERE id = $2")
            .bind(roles.to_stored())
            .bind(user.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let mut detail = format!("{email} is now {roles}");
        if let Some(added) = roles.added_to(before) {
            record_grant(&mut tx, user, GrantKind::Roles, Some(added), actor, now).await?;
            detail.push_str(&format!(" (given {added})"));
        }
        audit(&mut tx, now, actor, "roles_changed", None, &detail).await?;
        tx.commit().await.map_err(db)
    }

    async fn set_disabled(
        &self,
        user: UserId,
        disabled: bool,
        actor: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let email = user_email(&mut tx, user).await?;
        sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2")
            .bind(disabled.then_some(now.unix_seconds()))
            .bind(user.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        // Disabling takes the API tokens too: enabling the account again must not bring
        // back tokens that may have leaked with it.
        let (action, detail) = if disabled {
            end_sessions(&mut tx, user).await?;
            let revoked = revoke_all_tokens(&mut tx, user, now).await?;
            (
                "user_disabled",
                format!("{email}: sessions ended, {revoked} API token(s) revoked"),
            )
        } else {
            ("user_enabled", email)
        };
        audit(&mut tx, now, actor, action, None, &detail).await?;
        tx.commit().await.map_err(db)
    }

    async fn set_password(
        &self,
        user: UserId,
        password_hash: &str,
        actor: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let email = user_email(&mut tx, user).await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        end_sessions(&mut tx, user).await?;
        revoke_all_tokens(&mut tx, user, now).await?;
        record_grant(&mut tx, user, GrantKind::Password, None, actor, now).await?;
        audit(&mut tx, now, actor, "password_reset", None, &email).await?;
        tx.commit().await.map_err(db)
    }

    async fn revoke_sessions(&self, user: UserId, actor: &str, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let email = user_email(&mut tx, user).await?;
                end_sessions(&mut tx, user).await?;
        revoke_all_tokens(&mut tx, user, now).await?;
        audit(&mut tx, now, actor, "sessions_revoked", None, &email).await?;
        tx.commit().await.map_err(db)
    }

    async fn grants_since(&self, since: Timestamp) -> StoreResult<Vec<Grant>> {
        let rows: Vec<GrantRow> = sqlx::query_as(
            "SELECT g.user_id, u.email AS user_email, g.kind, g.roles, g.granted_by, b.email AS by_email, g.at
             FROM user_grants g
             JOIN users u ON u.id = g.user_id
             JOIN users b ON b.id = g.granted_by
             WHERE g.at >= $1
             ORDER BY g.at, g.id",
        )
        .bind(since.unix_seconds())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn create_api_token(&self, token: &NewApiToken<'_>) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO api_tokens (user_id, token_hash, name, scope, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token.user.0)
        .bind(token.token_hash)
        .bind(token.name)
        .bind(token.scope.as_str())
        .bind(token.created_at.unix_seconds())
        .bind(token.expires_at.map(Timestamp::unix_seconds))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let email = user_email(&mut tx, token.user).await?;
        let detail = format!("{} ({})", token.name, token.scope.as_str());
        audit(
            &mut tx,
            token.created_at,
            &email,
            "api_token_created",
            None,
            &detail,
        )
        .await?;
        tx.commit().await.map_err(db)
    }

    async fn user_by_api_token(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> StoreResult<(User, TokenScope)> {
        let found: Option<(i64, String)> = sqlx::query_as(
            "SELECT user_id, scope FROM api_tokens
             WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(token_hash)
        .bind(now.unix_seconds())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let (user_id, scope) = found.ok_or(StoreError::NotFound)?;
        let scope =
            TokenScope::parse(&scope).ok_or_else(|| rows::corrupt("token scope", scope.clone()))?;
        Ok((self.user_by_id(UserId(user_id)).await?, scope))
    }

    async fn api_tokens(&self, user: UserId) -> StoreResult<Vec<ApiTokenInfo>> {
        let rows: Vec<rows::TokenRow> = sqlx::query_as(
            "SELECT id, name, scope, created_at, expires_at, revoked_at FROM api_tokens WHERE user_id = $1 ORDER BY id",
        )
        .bind(user.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn revoke_api_token(
        &self,
        user: UserId,
        token_id: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let name: Option<String> = sqlx::query_scalar(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL RETURNING name",
        )
        .bind(now.unix_seconds())
        .bind(token_id)
        .bind(user.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let name = name.ok_or(StoreError::NotFound)?;
        let email = user_email(&mut tx, user).await?;
        audit(&mut tx, now, &email, "api_token_revoked", None, &name).await?;
        tx.commit().await.map_err(db)
    }

    async fn create_ticket(
        &self,
        ticket: &NewTicket,
        acknowledgment: &NewMail,
    ) -> StoreResult<CreateOutcome> {
        match self.create_ticket_once(ticket, acknowledgment).await {
            // Two identical submissions raced and the other one won (only possible where
            // writers run concurrently): the challenge now has its ticket.
            Err(StoreError::Conflict(Conflict::SameChallenge)) => {
                let number = self
                    .ticket_of_challenge(&ticket.devices[0])
                    .await?
                    .ok_or(StoreError::NotFound)?;
                Ok(CreateOutcome::Existing { number })
            }
            other => other,
        }
    }

    async fn ticket_of_challenge(&self, device: &crate::protocol::DeviceChallenge) -> StoreResult<Option<TicketNumber>> {
        // From the writer: a replica must see the commit it is asking about.
        let number: Option<String> = sqlx::query_scalar(
            "SELECT t.number FROM ticket_devices d JOIN tickets t ON t.id = d.ticket_id
             WHERE d.serial = $1 AND d.nonce = $2",
        )
        .bind(device.identity.serial.as_str())
        .bind(hex(&device.nonce.0))
        .fetch_optional(self.writer())
        .await
        .map_err(db)?;
        number
            .map(|n| TicketNumber::parse(&n).map_err(|_| rows::corrupt("ticket number", n)))
            .transpose()
    }

    async fn take_lease(&self, name: &str, holder: &str, now: Timestamp, until: Timestamp) -> StoreResult<bool> {
        // One statement: two replicas at once both try it, the database lets one win.
        let taken = sqlx::query(
            "INSERT INTO job_leases (name, holder, until) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
             WHERE job_leases.until <= $4 OR job_leases.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(until.unix_seconds())
        .bind(now.unix_seconds())
        .execute(self.writer())
        .await
        .map_err(db)?
        .rows_affected();
        Ok(taken == 1)
    }

    async fn blobs_referenced(&self, names: &[String]) -> StoreResult<Vec<String>> {
        let mut owned = Vec::new();
        for batch in names.chunks(crate::store::BLOBS_PER_QUERY) {
            // Only numbered placeholders are formatted in, never a name; each is used twice.
            let list = (1..=batch.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "SELECT export_blob FROM tickets WHERE export_blob IN ({list})
                 UNION SELECT label_blob FROM tickets WHERE label_blob IN ({list})"
            );
            let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
            for name in batch {
                query = query.bind(name);
            }
            // From the primary: a ticket committed a moment ago must count.
            let found: Vec<String> = query.fetch_all(self.writer()).await.map_err(db)?;
            owned.extend(found);
        }
        Ok(owned)
    }

    async fn label_blob_of(&self, ticket_id: i64) -> StoreResult<String> {
        sqlx::query_scalar("SELECT label_blob FROM tickets WHERE id = $1")
            .bind(ticket_id)
            .fetch_optional(self.writer())
            .await
            .map_err(db)?
            .ok_or(StoreError::NotFound)
    }

    async fn tickets(&self, filter: &QueueFilter) -> StoreResult<Vec<TicketSummary>> {
        // Free text from a person: a NUL byte is refused by PostgreSQL, and no ticket
        // number, serial or e-mail holds a control character anyway.
        let cleaned = filter.search.as_deref().map(without_controls);
        let search = cleaned.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let (after_time, after_id) = filter
            .after
            .map_or((-1, 0), |c| (c.created_at.unix_seconds(), c.id));
        let limit = filter.limit.clamp(1, 500);
        let query = match (search, filter.status) {
            (None, Some(status)) => sqlx::query_as(QUEUE_BY_STATUS)
                .bind(status.as_str())
                .bind(after_time)
                .bind(after_id)
                .bind(limit),
            (None, None) => sqlx::query_as(QUEUE_ALL)
                .bind(after_time)
                .bind(after_id)
                .bind(limit),
            (Some(search), status) => {
                let number = TicketNumber::parse(search).ok().map(|n| n.to_string());
                // Serials use no GLOB wildcard characters, so a valid serial prefix is a
                // literal prefix; anything else cannot match a serial.
                let upper = search.to_ascii_uppercase();
                let serial_glob = upper
                    .chars()
                    .all(|c| {
                        c.is_ascii_uppercase()
                            || c.is_ascii_digit()
                            || matches!(c, '-' | '/' | '.' | '_')
                    })
                    .then(|| serial_prefix_pattern(&upper));
                sqlx::query_as(QUEUE_SEARCH)
                    .bind(status.map(TicketStatus::as_str))
                    .bind(number)
                    .bind(search.to_ascii_lowercase())
                    .bind(serial_glob)
                    .bind(after_time)
                    .bind(after_id)
                    .bind(limit)
            }
        };
        let rows: Vec<SummaryRow> = query.fetch_all(&self.pool).await.map_err(db)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn ticket(&self, number: &TicketNumber) -> StoreResult<TicketDetail> {
        let row: TicketRow = sqlx::query_as(
            "SELECT t.id, t.customer_name, t.customer_email, t.customer_phone, t.customer_company,
                    t.customer_country, t.customer_role, t.purchase_channel, t.customer_language,
                    t.export_form, t.export_blob, t.label_blob, t.label_media_type, t.evidence_version, ud.email AS decided_by, t.decision_reason, s.number AS superseded_by,
                    r.number AS repeat_of
             FROM tickets t
             LEFT JOIN users ud ON ud.id = t.decided_by
             LEFT JOIN tickets s ON s.id = t.superseded_by
             LEFT JOIN tickets r ON r.id = t.repeat_of
             WHERE t.number = $1",
        )
        .bind(number.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound)?;
        let summary: SummaryRow = sqlx::query_as(SUMMARY_BY_ID)
            .bind(row.id)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        let devices: Vec<DeviceRow> = sqlx::query_as(
            "SELECT model, serial, firmware, mac_address, reserved_email, nonce, issued_at, tag,
                    export_id, exported_by
             FROM ticket_devices WHERE ticket_id = $1 ORDER BY position",
        )
        .bind(row.id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let responses: Vec<ResponseRow> = sqlx::query_as(
            "SELECT serial, nonce, key_id, expires_at, signature, export_id
             FROM responses WHERE ticket_id = $1 ORDER BY position",
        )
        .bind(row.id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let approvals: Vec<rows::ApprovalRow> = sqlx::query_as(
            "SELECT a.user_id, u.email, a.as_role, a.note, a.at FROM approvals a JOIN users u ON u.id = a.user_id
             WHERE a.ticket_id = $1 ORDER BY a.at, a.user_id",
        )
        .bind(row.id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let events: Vec<EventRow> = sqlx::query_as(
            "SELECT at, actor, kind, detail FROM ticket_events WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(row.id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mails: Vec<MailStatusRow> = sqlx::query_as(MAILS_OF_TICKET)
        .bind(row.id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(TicketDetail {
            id: row.id,
            summary: summary.try_into()?,
            customer: row.customer()?,
            export_form: row.export_form()?,
            superseded_by: row.superseded_by()?,
            repeat_of: row.repeat_of()?,
            devices: devices
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            approvals: approvals
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            responses: responses
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            events: events
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            mails: mails
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            export_blob: row.export_blob,
            label_blob: row.label_blob,
            label_media_type: row.label_media_type,
            evidence_version: row.evidence_version,
            decided_by: row.decided_by,
            decision_reason: row.decision_reason,
        })
    }

    async fn claim(
        &self,
        ticket_id: i64,
        user: UserId,
        take_over: bool,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        // Locks the row on PostgreSQL, so the holder named below is the one replaced.
        let status: Option<String> = sqlx::query_scalar(TICKET_STATUS_FOR_DECISION)
            .bind(ticket_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if status.is_none() {
            return Err(StoreError::NotFound);
        }
        let holder: Option<(i64, String)> = sqlx::query_as(
            "SELECT u.id, u.email FROM tickets t JOIN users u ON u.id = t.claimed_by WHERE t.id = $1",
        )
        .bind(ticket_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        // The claim is a lock: the update itself asks that nobody else holds it (or that
        // this is an explicit take-over), so of two claims at once only one succeeds.
        let updated = sqlx::query(
            "UPDATE tickets SET claimed_by = $1, claimed_at = $2, updated_at = $3
             WHERE id = $4 AND status IN ('open', 'awaiting_photo')
               AND (claimed_by IS NULL OR claimed_by = $5 OR $6)",
        )
        .bind(user.0)
        .bind(now.unix_seconds())
        .bind(now.unix_seconds())
        .bind(ticket_id)
        .bind(user.0)
        .bind(take_over)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 0 {
            let holder: Option<String> = sqlx::query_scalar(
                "SELECT u.email FROM tickets t JOIN users u ON u.id = t.claimed_by
                 WHERE t.id = $1 AND t.status IN ('open', 'awaiting_photo')",
            )
            .bind(ticket_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            return Err(match holder {
                Some(holder) => StoreError::ClaimedBy(holder),
                None => decided_conflict(&mut tx, ticket_id).await,
            });
        }
        let taken_from = holder
            .filter(|(id, _)| *id != user.0)
            .map(|(_, email)| format!("taken over from {email}"));
        let step = Step {
            ticket_id,
            by: user,
            at: now,
            event: "claimed",
            action: if taken_from.is_some() { "claim.taken_over" } else { "claim" },
            detail: taken_from.as_deref().unwrap_or(""),
        };
        record_step(tx, &step, None).await
    }

    async fn approve(&self, approval: &Approval) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let at = approval.at.unix_seconds();
        let updated = sqlx::query(
            "UPDATE tickets SET status = 'approved', decided_by = $1, decided_at = $2, updated_at = $3,
                                claimed_by = COALESCE(claimed_by, $4), claimed_at = COALESCE(claimed_at, $5)
             WHERE id = $6 AND status = 'open' AND customer_email = $7 AND evidence_version = $8",
        )
        .bind(approval.by.0)
        .bind(at)
        .bind(at)
        .bind(approval.by.0)
        .bind(at)
        .bind(approval.ticket_id)
        // The response goes where the approver saw it go: an address corrected since
        // (which withdraws approvals and may flag the ticket) makes this a conflict.
        .bind(approval.mail.recipient.as_str())
        // The responses were signed from, and the approver saw, this version of the
        // evidence: a new photo stored since makes this `EvidenceChanged`.
        .bind(approval.evidence_version)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 0 {
            return Err(approve_conflict(&mut tx, approval).await);
        }
        let prior: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM approvals WHERE ticket_id = $1")
            .bind(approval.ticket_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if prior != approval.prior_approvals as i64 {
            // Dropping the transaction rolls the status change back.
            return Err(StoreError::Conflict(Conflict::ApprovalRaced));
        }
        insert_approval(
            &mut tx,
            approval.ticket_id,
            approval.by,
            approval.as_role,
            &approval.note,
            approval.at,
        )
        .await?;
        let email = user_email(&mut tx, approval.by).await?;
        for (position, response) in approval.responses.iter().enumerate() {
            sqlx::query(
                "INSERT INTO responses (ticket_id, position, serial, nonce, key_id, expires_at, signature, created_at,
                                        export_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(approval.ticket_id)
            .bind(position as i64)
            .bind(response.serial.as_str())
            .bind(hex(&response.nonce.0))
            .bind(response.key_id.as_str())
            .bind(response.expires_at.unix_seconds())
            .bind(rows::signature_text(&response.signature))
            .bind(at)
            .bind(response.export_id.map(|id| id.to_hex()))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let detail = format!(
                "serial {} key {} expires {}",
                response.serial, response.key_id, response.expires_at
            );
            audit(
                &mut tx,
                approval.at,
                &email,
                "sign",
                Some(approval.ticket_id),
                &detail,
            )
            .await?;
        }
        let detail = format!("{} device(s)", approval.responses.len());
        event(
            &mut tx,
            approval.ticket_id,
            approval.at,
            &email,
            "approved",
            &detail,
        )
        .await?;
        audit(
            &mut tx,
            approval.at,
            &email,
            "approve",
            Some(approval.ticket_id),
            &detail,
        )
        .await?;
        enqueue(
            &mut tx,
            Some(approval.ticket_id),
            &approval.mail,
            approval.at,
        )
        .await?;
        tx.commit().await.map_err(db)
    }

    async fn reject(
        &self,
        ticket_id: i64,
        by: UserId,
        reason: &str,
        mail: &NewMail,
        evidence_version: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let updated = sqlx::query(
            "UPDATE tickets SET status = 'rejected', decided_by = $1, decided_at = $2, decision_reason = $3, updated_at = $4
             WHERE id = $5 AND status IN ('open', 'awaiting_photo') AND evidence_version = $6",
        )
        .bind(by.0)
        .bind(now.unix_seconds())
        .bind(reason)
        .bind(now.unix_seconds())
        .bind(ticket_id)
        .bind(evidence_version)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 0 {
            return Err(decision_conflict(&mut tx, ticket_id, evidence_version).await);
        }
        let step = Step {
            ticket_id,
            by,
            at: now,
            event: "rejected",
            action: "reject",
            detail: reason,
        };
        record_step(tx, &step, Some(mail)).await
    }

    async fn request_photo(
        &self,
        ticket_id: i64,
        by: UserId,
        note: &str,
        mail: &NewMail,
        evidence_version: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let updated = sqlx::query(
            "UPDATE tickets SET status = 'awaiting_photo', updated_at = $1
             WHERE id = $2 AND status = 'open' AND evidence_version = $3",
        )
        .bind(now.unix_seconds())
        .bind(ticket_id)
        .bind(evidence_version)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 0 {
            return Err(decision_conflict(&mut tx, ticket_id, evidence_version).await);
        }
        let step = Step {
            ticket_id,
            by,
            at: now,
            event: "photo_requested",
            action: "request_photo",
            detail: note,
        };
        record_step(tx, &step, Some(mail)).await
    }

    async fn replace_label_photo(
        &self,
        ticket_id: i64,
        blob: &str,
        media_type: &str,
        now: Timestamp,
    ) -> StoreResult<String> {
        let mut tx = self.write().await?;
        let old: Option<String> = sqlx::query_scalar(
            "SELECT label_blob FROM tickets WHERE id = $1 AND status = 'awaiting_photo'",
        )
        .bind(ticket_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(old) = old else {
            return Err(StoreError::Conflict(Conflict::NotAwaitingPhoto));
        };
        // Conditional on what was read: on PostgreSQL the SELECT above takes no lock, and
        // a reject or a supersede committed since must not be undone by this photo (an
        // update by id alone put rejected tickets back in the queue), nor may two uploads
        // at once both win. The UPDATE waits for such a writer and then finds nothing to
        // change.
        let updated = sqlx::query(
            "UPDATE tickets SET label_blob = $1, label_media_type = $2, status = 'open', updated_at = $3,
                                evidence_version = evidence_version + 1
             WHERE id = $4 AND status = 'awaiting_photo' AND label_blob = $5",
        )
        .bind(blob)
        .bind(media_type)
        .bind(now.unix_seconds())
        .bind(ticket_id)
        .bind(&old)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 0 {
            // Back in the queue with another photo: a second upload that crossed this one.
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM tickets WHERE id = $1")
                    .bind(ticket_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
            if status.as_deref() == Some("open") {
                return Err(StoreError::PhotoCrossed);
            }
            return Err(StoreError::Conflict(Conflict::NotAwaitingPhoto));
        }
        event(&mut tx, ticket_id, now, "customer", "photo_replaced", "").await?;
        // Approvals given on the old photo judged evidence that is gone.
        let withdrawn = sqlx::query("DELETE FROM approvals WHERE ticket_id = $1")
            .bind(ticket_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        if withdrawn > 0 {
            let note = format!("{withdrawn} approval(s) withdrawn: they were given on the previous photo");
            event(&mut tx, ticket_id, now, "system", "approvals_withdrawn", &note).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(old)
    }

    async fn issue_access_code(&self, code: &NewAccessCode, max_per_hour: i64) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let now = code.now.unix_seconds();
        // Counted, replaced and stored under the ticket's code lock: without it, under
        // READ COMMITTED, requests at the same instant on PostgreSQL each counted the
        // same free places and none saw the others' codes to retire them (30 requests
        // over 3 replicas issued 19 codes, 15 of them live at once).
        lock_bucket(&mut tx, ACCESS_CODE_LOCK, &code.ticket_id.to_string()).await?;
        let recent: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM access_codes WHERE ticket_id = $1 AND created_at > $2",
        )
        .bind(code.ticket_id)
        .bind(now - 3600)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        if recent >= max_per_hour {
            return Err(StoreError::Conflict(Conflict::TooManyCodes { recent }));
        }
        // Only the newest code works: an older one still in the customer's inbox dies.
        sqlx::query(
            "UPDATE access_codes SET expires_at = $1 WHERE ticket_id = $2 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(code.ticket_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query(
            "INSERT INTO access_codes (ticket_id, code_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(code.ticket_id)
        .bind(&code.code_hash)
        .bind(now)
        .bind(code.expires_at.unix_seconds())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        event(&mut tx, code.ticket_id, code.now, "customer", "code_sent", "a one-time code to see the response on the status page").await?;
        audit(&mut tx, code.now, "customer", "response.code_sent", Some(code.ticket_id), "").await?;
        enqueue(&mut tx, Some(code.ticket_id), &code.mail, code.now).await?;
        tx.commit().await.map_err(db)
    }

    async fn redeem_access_code(
        &self,
        ticket_id: i64,
        code_hash: &str,
        now: Timestamp,
        max_attempts: i64,
    ) -> StoreResult<CodeCheck> {
        let mut tx = self.write().await?;
        // Every check spends a try before the comparison, in one statement, so however
        // many guesses arrive at once no code is compared more than `max_attempts` times.
        // The outer condition repeats the subquery's: PostgreSQL re-checks only the outer
        // one on a row a concurrent request changed, which must not revive a used code.
        let live: Option<(i64, String, i64)> = sqlx::query_as(
            "UPDATE access_codes SET attempts = attempts + 1
             WHERE id = (SELECT id FROM access_codes
                         WHERE ticket_id = $1 AND used_at IS NULL AND expires_at > $2
                         ORDER BY id DESC LIMIT 1)
               AND used_at IS NULL AND expires_at > $2 AND attempts < $3
             RETURNING id, code_hash, attempts",
        )
        .bind(ticket_id)
        .bind(now.unix_seconds())
        .bind(max_attempts)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some((code_id, stored_hash, attempts)) = live else {
            return Ok(CodeCheck::NoLiveCode);
        };
        if !crate::crypto::constant_time_eq(stored_hash.as_bytes(), code_hash.as_bytes()) {
            if attempts >= max_attempts {
                event(&mut tx, ticket_id, now, "customer", "code_locked", "too many wrong codes").await?;
            }
            tx.commit().await.map_err(db)?;
            return Ok(CodeCheck::Wrong { attempts_left: max_attempts - attempts });
        }
        sqlx::query("UPDATE access_codes SET used_at = $1 WHERE id = $2")
            .bind(now.unix_seconds())
            .bind(code_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        event(&mut tx, ticket_id, now, "customer", "response_shown", "on the status page, after a one-time code").await?;
        audit(&mut tx, now, "customer", "response.shown", Some(ticket_id), "status page, one-time code").await?;
        tx.commit().await.map_err(db)?;
        Ok(CodeCheck::Accepted)
    }

    async fn record_feedback(
        &self,
        ticket_id: i64,
        detail: &str,
        max_per_ticket: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let earlier: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM ticket_events WHERE ticket_id = $1 AND kind = 'customer_feedback'",
        )
        .bind(ticket_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        if earlier >= max_per_ticket {
            return Err(StoreError::Conflict(Conflict::TooManyAnswers { earlier }));
        }
        event(&mut tx, ticket_id, now, "customer", "customer_feedback", detail).await?;
        tx.commit().await.map_err(db)
    }

    async fn resend_status_link(
        &self,
        ticket_id: i64,
        other: &EmailAddress,
        mail: &NewMail,
        now: Timestamp,
        interval_secs: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        // One statement decides: on PostgreSQL a second replica's update waits for this
        // one's row lock and then re-checks the condition against the new time.
        let updated = sqlx::query(
            "UPDATE tickets SET link_resent_at = $1
             WHERE id = $2 AND customer_email = $3
               AND (link_resent_at IS NULL OR link_resent_at <= $4)",
        )
        .bind(now.unix_seconds())
        .bind(ticket_id)
        .bind(mail.recipient.as_str())
        .bind(now.unix_seconds() - interval_secs)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 0 {
            return Ok(false);
        }
        let detail = format!(
            "the same export came in again from another address ({other}); its status link went again to {} only",
            mail.recipient
        );
        event(&mut tx, ticket_id, now, "customer", "link_resent", &detail).await?;
        audit(&mut tx, now, "customer", "status_link.resent", Some(ticket_id), &detail).await?;
        enqueue(&mut tx, Some(ticket_id), mail, now).await?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn change_customer_email(
        &self,
        change: &AddressChange,
    ) -> StoreResult<AddressChangeOutcome> {
        let mut tx = self.write().await?;
        // Locks the ticket row on PostgreSQL (as a first approval does), so what is read
        // below cannot change before the update: an approval either came first and is
        // counted, or comes after and finds the new address.
        let status: Option<String> = sqlx::query_scalar(TICKET_STATUS_FOR_DECISION)
            .bind(change.ticket_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let Some(status) = status else {
            return Err(StoreError::NotFound);
        };
        if !matches!(status.as_str(), "open" | "awaiting_photo") {
            return Ok(AddressChangeOutcome::NotPending);
        }
        let (current, flags): (String, String) =
            sqlx::query_as("SELECT customer_email, flags FROM tickets WHERE id = $1")
                .bind(change.ticket_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        if current != change.from.as_str() {
            return Ok(AddressChangeOutcome::ChangedMeanwhile);
        }
        let approvals: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM approvals WHERE ticket_id = $1")
                .bind(change.ticket_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        let (actor, flags) = match &change.by {
            AddressChanger::Customer {
                max_changes,
                flags: new_flags,
            } => {
                if approvals > 0 {
                    return Ok(AddressChangeOutcome::Approved);
                }
                let earlier: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM ticket_events
                     WHERE ticket_id = $1 AND kind = 'address_corrected' AND actor = 'customer'",
                )
                .bind(change.ticket_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
                if earlier >= *max_changes {
                    return Ok(AddressChangeOutcome::TooMany);
                }
                let mut list = rows::flags_list(&flags);
                list.extend(new_flags.iter().filter(|f| !list.contains(f)).cloned().collect::<Vec<_>>());
                ("customer".to_owned(), rows::flags_text(&list))
            }
            AddressChanger::Agent { by, flag, .. } => {
                let mut list = rows::flags_list(&flags);
                list.push(flag.clone());
                (user_email(&mut tx, *by).await?, rows::flags_text(&list))
            }
        };
        sqlx::query(
            // A shortened review was for the same customer's repeat: not this one's.
            // The address is evidence too: a decision made on a page that showed the old
            // one is refused as stale ("the ticket changed since you opened it").
            "UPDATE tickets SET customer_email = $1, flags = $2, updated_at = $3, repeat_of = NULL,
                                evidence_version = evidence_version + 1
              WHERE id = $4",
        )
        .bind(change.to.as_str())
        .bind(&flags)
        .bind(change.at.unix_seconds())
        .bind(change.ticket_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let mut detail = format!("from {} to {}", change.from, change.to);
        let mut withdrawn = 0;
        if let AddressChanger::Agent { notice, .. } = &change.by {
            // The approvals were given for a response going to the old address.
            withdrawn = sqlx::query("DELETE FROM approvals WHERE ticket_id = $1")
                .bind(change.ticket_id)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            if withdrawn > 0 {
                let note = format!(
                    "{withdrawn} approval(s) withdrawn: they were given for a response to {}",
                    change.from
                );
                event(&mut tx, change.ticket_id, change.at, "system", "approvals_withdrawn", &note)
                    .await?;
            }
            detail.push_str(&format!(
                "; {withdrawn} approval(s) withdrawn; the ticket now needs two approvals"
            ));
            enqueue(&mut tx, Some(change.ticket_id), notice, change.at).await?;
        }
        event(&mut tx, change.ticket_id, change.at, &actor, "address_corrected", &detail).await?;
        audit(
            &mut tx,
            change.at,
            &actor,
            "address_corrected",
            Some(change.ticket_id),
            &detail,
        )
        .await?;
        enqueue(&mut tx, Some(change.ticket_id), &change.acknowledgment, change.at).await?;
        tx.commit().await.map_err(db)?;
        Ok(AddressChangeOutcome::Changed {
            approvals_withdrawn: withdrawn,
        })
    }

    async fn approved_for_customer_since(
        &self,
        serial: &str,
        customer: &EmailAddress,
        since: Timestamp,
    ) -> StoreResult<Option<TicketNumber>> {
        let number: Option<String> = sqlx::query_scalar(
            "SELECT t.number FROM ticket_devices d JOIN tickets t ON t.id = d.ticket_id
             WHERE d.serial = $1 AND LOWER(t.customer_email) = LOWER($2) AND t.status = 'approved' AND t.decided_at >= $3
             ORDER BY t.decided_at DESC, t.id DESC LIMIT 1",
        )
        .bind(serial)
        .bind(customer.as_str())
        .bind(since.unix_seconds())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        number
            .map(|n| TicketNumber::parse(&n).map_err(|_| StoreError::Other(format!("a stored ticket number is not valid: {n}").into())))
            .transpose()
    }

    async fn retry_mail(
        &self,
        ticket_id: i64,
        mail_id: i64,
        by: UserId,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        // A mail whose secret parts were emptied is never sent again as it is.
        let kind: Option<String> = sqlx::query_scalar(concat!(
            "UPDATE outbox SET status = 'pending', next_attempt_at = $1, attempts = 0, lease_until = NULL
             WHERE id = $2 AND ticket_id = $3 AND status = 'dead' AND kind NOT IN ", secret_mail_kinds!(), "
             RETURNING kind",
        ))
        .bind(now.unix_seconds())
        .bind(mail_id)
        .bind(ticket_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(kind) = kind else {
            return Err(StoreError::Conflict(Conflict::MailNotRetryable));
        };
        let email = user_email(&mut tx, by).await?;
        let detail = format!("{kind} mail {mail_id}");
        event(&mut tx, ticket_id, now, &email, "mail_retried", &detail).await?;
        audit(&mut tx, now, &email, "mail_retry", Some(ticket_id), &detail).await?;
        tx.commit().await.map_err(db)
    }

    async fn resend_approval(&self, resend: &ResentApproval) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let (mail, at) = (&resend.mail, resend.at);
        let attachment = mail.attachment.as_ref();
        // The dead row takes the new mail: the console keeps one line for it, and a
        // second click finds it pending, not dead, and signs nothing.
        let updated = sqlx::query(
            "UPDATE outbox SET message_id = $1, subject = $2, body_text = $3, body_html = $4,
                               attachment_name = $5, attachment_type = $6, attachment = $7,
                               status = 'pending', attempts = 0, next_attempt_at = $8, lease_until = NULL,
                               last_error = NULL
             WHERE id = $9 AND ticket_id = $10 AND kind = 'approval' AND status = 'dead'",
        )
        .bind(&mail.message_id)
        .bind(&mail.subject)
        .bind(&mail.body_text)
        .bind(&mail.body_html)
        .bind(attachment.map(|a| a.file_name.as_str()))
        .bind(attachment.map(|a| a.media_type.as_str()))
        .bind(attachment.map(|a| a.bytes.as_slice()))
        .bind(at.unix_seconds())
        .bind(resend.mail_id)
        .bind(resend.ticket_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::Conflict(Conflict::ResponseMailNotRetryable));
        }
        let email = user_email(&mut tx, resend.by).await?;
        for response in &resend.responses {
            // The stored entry is what the status page hands out after a one-time code:
            // it follows the newest mail.
            let updated = sqlx::query(
                "UPDATE responses SET key_id = $1, expires_at = $2, signature = $3, created_at = $4
                 WHERE ticket_id = $5 AND serial = $6 AND nonce = $7",
            )
            .bind(response.key_id.as_str())
            .bind(response.expires_at.unix_seconds())
            .bind(rows::signature_text(&response.signature))
            .bind(at.unix_seconds())
            .bind(resend.ticket_id)
            .bind(response.serial.as_str())
            .bind(hex(&response.nonce.0))
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
            if updated != 1 {
                return Err(StoreError::Conflict(Conflict::NoResponseToSign {
                    serial: response.serial.to_string(),
                }));
            }
            let detail = format!(
                "serial {} key {} expires {} (signed again: the response mail died)",
                response.serial, response.key_id, response.expires_at
            );
            audit(&mut tx, at, &email, "sign", Some(resend.ticket_id), &detail).await?;
        }
        let detail = format!("approval mail {}, signed again", resend.mail_id);
        event(&mut tx, resend.ticket_id, at, &email, "mail_retried", &detail).await?;
        audit(&mut tx, at, &email, "mail_retry", Some(resend.ticket_id), &detail).await?;
        tx.commit().await.map_err(db)
    }

    async fn canned_reasons(&self) -> StoreResult<Vec<(i64, String)>> {
        sqlx::query_as("SELECT id, text FROM canned_reasons ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(db)
    }

    async fn add_canned_reason(&self, text: &str, by: UserId, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO canned_reasons (text) VALUES ($1)")
            .bind(text)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(Conflict::CannedReasonExists)
                } else {
                    db(e)
                }
            })?;
        let email = user_email(&mut tx, by).await?;
        audit(&mut tx, now, &email, "canned_reason_added", None, text).await?;
        tx.commit().await.map_err(db)
    }

    async fn remove_canned_reason(&self, id: i64, by: UserId, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let text: Option<String> =
            sqlx::query_scalar("DELETE FROM canned_reasons WHERE id = $1 RETURNING text")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        let text = text.ok_or(StoreError::NotFound)?;
        let email = user_email(&mut tx, by).await?;
        audit(&mut tx, now, &email, "canned_reason_removed", None, &text).await?;
        tx.commit().await.map_err(db)
    }

    async fn create_session(&self, session: &NewSession) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, stage, created_at, last_seen_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&session.token_hash)
        .bind(session.user.0)
        .bind(&session.csrf_token)
        .bind(session.stage.as_str())
        .bind(session.created_at.unix_seconds())
        .bind(session.created_at.unix_seconds())
        .bind(session.expires_at.unix_seconds())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let email = user_email(&mut tx, session.user).await?;
        let action = match session.stage {
            SessionStage::Full => "login",
            SessionStage::SecondFactor => "login_password_ok",
            SessionStage::Enrol => "login_enrolment_required",
        };
        audit(&mut tx, session.created_at, &email, action, None, "").await?;
        tx.commit().await.map_err(db)
    }

    async fn session(
        &self,
        token_hash: &str,
        now: Timestamp,
        idle_secs: i64,
    ) -> StoreResult<(User, String, SessionStage)> {
        let found: Option<(i64, String, String)> = sqlx::query_as(
            "UPDATE sessions SET last_seen_at = $1, expires_at = $1 + CAST($2 AS BIGINT)
             WHERE token_hash = $3 AND expires_at > $1
             RETURNING user_id, csrf_token, stage",
        )
        .bind(now.unix_seconds())
        .bind(idle_secs)
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let (user_id, csrf, stage) = found.ok_or(StoreError::NotFound)?;
        let stage = SessionStage::parse(&stage)
            .ok_or_else(|| rows::corrupt("session stage", stage.clone()))?;
        Ok((self.user_by_id(UserId(user_id)).await?, csrf, stage))
    }

    async fn reserve_login_attempt(
        &self,
        attempt: &LoginAttempt<'_>,
        limits: &LoginLimits,
    ) -> StoreResult<LoginReservation> {
        // A browser with a device cookie for the account counts in that cookie's bucket
        // alone; any other in the account's and its network's. Buckets are locked in this
        // order, account before address, so two attempts never wait on each other in a
        // circle.
        let buckets = match attempt.device {
            Some(device) => vec![(LoginBucket::Device, device, limits.per_device)],
            None => vec![
                (LoginBucket::Account, attempt.account, limits.per_account),
                (LoginBucket::Address, attempt.address, limits.per_address),
            ],
        };
        let since = attempt.at.unix_seconds() - limits.window_secs;
        let mut tx = self.write().await?;
        for (bucket, key, _) in &buckets {
            lock_bucket(&mut tx, bucket.lock_class(), key).await?;
        }
        for (bucket, key, limit) in &buckets {
            let (count, oldest): (i64, Option<i64>) = sqlx::query_as(bucket.count_query())
                .bind(*key)
                .bind(since)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            if count >= *limit {
                return Ok(LoginReservation::Refused {
                    oldest: oldest.map(rows::time).transpose()?,
                });
            }
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO login_failures (account, address, device, at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(attempt.account)
        .bind(attempt.address)
        .bind(attempt.device)
        .bind(attempt.at.unix_seconds())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(LoginReservation::Counted(LoginAttemptId(id)))
    }

    async fn reserve_intake(
        &self,
        hits: &[IntakeHit<'_>],
        at: Timestamp,
        window_secs: i64,
    ) -> StoreResult<IntakeReservation> {
        if hits.is_empty() {
            return Ok(IntakeReservation::Counted);
        }
        // Locked in one order (kind, then key), so two requests naming the same serials
        // in another order never wait on each other in a circle.
        let mut ordered: Vec<&IntakeHit<'_>> = hits.iter().collect();
        ordered.sort_by(|a, b| (a.bucket, a.key).cmp(&(b.bucket, b.key)));
        ordered.dedup_by(|a, b| (a.bucket, a.key) == (b.bucket, b.key));
        let now = at.unix_seconds();
        let since = now - window_secs;
        let mut tx = self.write().await?;
        for hit in &ordered {
            lock_bucket(&mut tx, intake_lock_class(hit.bucket), hit.key).await?;
        }
        for hit in &ordered {
            let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
                "SELECT COUNT(*), MIN(at) FROM intake_hits WHERE kind = $1 AND key = $2 AND at > $3",
            )
            .bind(hit.bucket.kind())
            .bind(hit.key)
            .bind(since)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            if count >= hit.limit {
                return Ok(IntakeReservation::Refused {
                    key: hit.key.to_owned(),
                    oldest: oldest.map(rows::time).transpose()?,
                });
            }
        }
        for hit in &ordered {
            sqlx::query("INSERT INTO intake_hits (kind, key, at) VALUES ($1, $2, $3)")
                .bind(hit.bucket.kind())
                .bind(hit.key)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        // A few expired rows at a time, whichever bucket they were in: the table holds
        // about an hour of requests, never the desk's whole history.
        sqlx::query(PRUNE_INTAKE_HITS)
            .bind(since)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(IntakeReservation::Counted)
    }

    async fn release_login_attempt(&self, id: LoginAttemptId) -> StoreResult<()> {
        sqlx::query("DELETE FROM login_failures WHERE id = $1")
            .bind(id.0)
            .execute(self.writer())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn clear_login_failures(&self, account: &str, device: Option<&str>) -> StoreResult<()> {
        let query = match device {
            Some(device) => sqlx::query("DELETE FROM login_failures WHERE device = $1").bind(device),
            None => sqlx::query("DELETE FROM login_failures WHERE account = $1 AND device IS NULL")
                .bind(account),
        };
        query.execute(self.writer()).await.map_err(db)?;
        Ok(())
    }

    async fn begin_totp_enrolment(&self, user: UserId, seed: &SealedSecret) -> StoreResult<()> {
        sqlx::query(
            "UPDATE users SET totp_sealed = $1, totp_key_id = $2, totp_secret = NULL, totp_enabled_at = NULL,
                              totp_last_step = NULL
             WHERE id = $3 AND totp_enabled_at IS NULL",
        )
        .bind(&seed.ciphertext)
        .bind(seed.key_id.as_str())
        .bind(user.0)
        .execute(self.writer())
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn totp_seeds_to_seal(&self, current: &SealKeyId) -> StoreResult<Vec<(UserId, StoredSeed)>> {
        let rows: Vec<(i64, Option<String>, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT id, totp_secret, totp_sealed, totp_key_id FROM users
             WHERE totp_secret IS NOT NULL OR (totp_sealed IS NOT NULL AND totp_key_id <> $1)
             ORDER BY id",
        )
        .bind(current.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut seeds = Vec::with_capacity(rows.len());
        for (id, clear, sealed, key_id) in rows {
            if let Some(seed) = rows::stored_seed(clear, sealed, key_id)? {
                seeds.push((UserId(id), seed));
            }
        }
        Ok(seeds)
    }

    async fn reseal_totp_seed(
        &self,
        user: UserId,
        old: &StoredSeed,
        sealed: &SealedSecret,
    ) -> StoreResult<bool> {
        // Only if the row still holds `old`: a seed enrolled or re-sealed meanwhile wins.
        let query = match old {
            StoredSeed::Clear(seed) => sqlx::query(
                "UPDATE users SET totp_sealed = $1, totp_key_id = $2, totp_secret = NULL
                 WHERE id = $3 AND totp_sealed IS NULL AND totp_secret = $4",
            )
            .bind(&sealed.ciphertext)
            .bind(sealed.key_id.as_str())
            .bind(user.0)
            .bind(seed.expose().to_owned()),
            StoredSeed::Sealed(before) => sqlx::query(
                "UPDATE users SET totp_sealed = $1, totp_key_id = $2, totp_secret = NULL
                 WHERE id = $3 AND totp_sealed = $4 AND totp_key_id = $5",
            )
            .bind(&sealed.ciphertext)
            .bind(sealed.key_id.as_str())
            .bind(user.0)
            .bind(before.ciphertext.clone())
            .bind(before.key_id.as_str().to_owned()),
        };
        let updated = query.execute(self.writer()).await.map_err(db)?.rows_affected();
        Ok(updated == 1)
    }

    async fn confirm_totp_enrolment(
        &self,
        user: UserId,
        step: i64,
        recovery_hashes: &[String],
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let updated = sqlx::query(
            "UPDATE users SET totp_enabled_at = $1, totp_last_step = $2
             WHERE id = $3 AND (totp_sealed IS NOT NULL OR totp_secret IS NOT NULL) AND totp_enabled_at IS NULL",
        )
        .bind(now.unix_seconds())
        .bind(step)
        .bind(user.0)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::Conflict(Conflict::NoPendingSecondFactor));
        }
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        for hash in recovery_hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user.0)
                .bind(hash)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let email = user_email(&mut tx, user).await?;
        audit(&mut tx, now, &email, "second_factor_enrolled", None, "").await?;
        tx.commit().await.map_err(db)
    }

    async fn accept_totp_step(&self, user: UserId, step: i64) -> StoreResult<bool> {
        let updated = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(user.0)
        .execute(self.writer())
        .await
        .map_err(db)?
        .rows_affected();
        Ok(updated == 1)
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        code_hash: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let updated = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(now.unix_seconds())
        .bind(user.0)
        .bind(code_hash)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 1 {
            let email = user_email(&mut tx, user).await?;
            audit(&mut tx, now, &email, "recovery_code_used", None, "").await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(updated == 1)
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(self.writer())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn audit(
        &self,
        at: Timestamp,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        audit(&mut tx, at, actor, action, None, detail).await?;
        tx.commit().await.map_err(db)
    }

    async fn recent_audit(
        &self,
        actor: Option<&str>,
        action: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>> {
        let rows: Vec<rows::AuditRow> = sqlx::query_as(
            "SELECT id, at, actor, action, ticket_id, detail, prev_hash, hash FROM audit_log
             WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(actor.map(without_controls))
        .bind(action.map(without_controls))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn audit_entries(
        &self,
        after_id: i64,
        since: Option<Timestamp>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>> {
        let rows: Vec<rows::AuditRow> = sqlx::query_as(
            "SELECT id, at, actor, action, ticket_id, detail, prev_hash, hash FROM audit_log
             WHERE id > $1 AND at >= $2 ORDER BY id LIMIT $3",
        )
        .bind(after_id)
        .bind(since.map_or(0, Timestamp::unix_seconds))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn add_first_approval(&self, approval: &FirstApproval) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let status: Option<String> = sqlx::query_scalar(TICKET_STATUS_FOR_DECISION)
            .bind(approval.ticket_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        match status.as_deref() {
            None => return Err(StoreError::NotFound),
            Some("open") => {}
            Some(_) => return Err(decided_conflict(&mut tx, approval.ticket_id).await),
        }
        // Read under the row lock (PostgreSQL) or the write lock (SQLite): a new photo
        // cannot be stored between this check and the approval's insert.
        let version: i64 =
            sqlx::query_scalar("SELECT evidence_version FROM tickets WHERE id = $1")
                .bind(approval.ticket_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        if version != approval.evidence_version {
            return Err(StoreError::EvidenceChanged);
        }
        let prior: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM approvals WHERE ticket_id = $1")
            .bind(approval.ticket_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if prior != 0 {
            return Err(StoreError::Conflict(Conflict::ApprovalRaced));
        }
        insert_approval(
            &mut tx,
            approval.ticket_id,
            approval.by,
            approval.as_role,
            &approval.note,
            approval.at,
        )
        .await?;
        let detail = format!(
            "first of two approvals, as {}: {}",
            approval.as_role, approval.note
        );
        let step = Step {
            ticket_id: approval.ticket_id,
            by: approval.by,
            at: approval.at,
            event: "approved_first",
            action: "approve_first",
            detail: &detail,
        };
        record_step(tx, &step, None).await
    }

    async fn serial_exported_in_v2(&self, serial: &str) -> StoreResult<bool> {
        let found: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM ticket_devices
                                    WHERE serial = $1 AND export_id IS NOT NULL LIMIT 1) AS v2",
        )
        .bind(serial)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(found > 0)
    }

    async fn exporters_of_serial_since(
        &self,
        serial: &str,
        since: Timestamp,
    ) -> StoreResult<Vec<String>> {
        // The exporting device of a ticket is its first entry (position 0), in version 1
        // as in version 2, where the binding names it.
        sqlx::query_scalar(
            "SELECT DISTINCT f.serial FROM ticket_devices d
               JOIN tickets t ON t.id = d.ticket_id
               JOIN ticket_devices f ON f.ticket_id = d.ticket_id AND f.position = 0
              WHERE d.serial = $1 AND t.created_at >= $2
              ORDER BY f.serial",
        )
        .bind(serial)
        .bind(since.unix_seconds())
        .fetch_all(&self.pool)
        .await
        .map_err(db)
    }

    async fn record_refused_approval(
        &self,
        ticket_id: i64,
        by: UserId,
        reason: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let tx = self.write().await?;
        let step = Step {
            ticket_id,
            by,
            at: now,
            event: "approval_refused",
            action: "approve_refused",
            detail: reason,
        };
        record_step(tx, &step, None).await
    }

    async fn claim_due_mail(
        &self,
        now: Timestamp,
        lease_secs: i64,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMessage>> {
        let mut tx = self.write().await?;
        let rows: Vec<OutboxRow> = sqlx::query_as(CLAIM_DUE_MAIL)
        .bind(now.unix_seconds())
        .bind(lease_secs)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        let mut messages: Vec<OutboxMessage> = rows.into_iter().map(Into::into).collect();
        messages.sort_by_key(|m| m.id);
        Ok(messages)
    }

    async fn mark_mails_sent(&self, ids: &[i64], now: Timestamp) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        // A handful of statements for the whole batch, whatever its size: on PostgreSQL
        // the rate at which a backlog drains is bounded by round trips. A batch is at most
        // 2 × outbox_connections (≤ 512) ids, well inside both databases' limits on
        // bound parameters.
        let mut tx = self.write().await?;
        let mut sent = sqlx::QueryBuilder::<$db>::new("UPDATE outbox SET status = 'sent', sent_at = ");
        sent.push_bind(now.unix_seconds());
        sent.push(", attempts = attempts + 1, lease_until = NULL, last_error = NULL WHERE status = 'pending' AND id");
        push_in_ids(&mut sent, ids);
        sent.build().execute(&mut *tx).await.map_err(db)?;
        // Keys, signed files and one-time codes have done their work once delivered: a
        // reader of the database or of a backup finds none of them here.
        let mut blank = sqlx::QueryBuilder::<$db>::new(concat!(
            "UPDATE outbox SET body_text = '', body_html = '', attachment = NULL
             WHERE kind IN ", secret_mail_kinds!(), " AND status = 'sent' AND id",
        ));
        push_in_ids(&mut blank, ids);
        blank.build().execute(&mut *tx).await.map_err(db)?;
        // Audited even when a late report finds a row no longer pending: the relay did
        // take the message.
        let mut select =
            sqlx::QueryBuilder::<$db>::new("SELECT id, ticket_id, kind, recipient FROM outbox WHERE id");
        push_in_ids(&mut select, ids);
        select.push(" ORDER BY id");
        let delivered: Vec<(i64, Option<i64>, String, String)> = select
            .build_query_as()
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let events: Vec<(i64, &str)> = delivered
            .iter()
            .filter_map(|(_, ticket_id, kind, _)| ticket_id.map(|t| (t, kind.as_str())))
            .collect();
        if !events.is_empty() {
            let mut insert = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO ticket_events (ticket_id, at, actor, kind, detail) ",
            );
            insert.push_values(events, |mut row, (ticket_id, kind)| {
                row.push_bind(ticket_id)
                    .push_bind(now.unix_seconds())
                    .push_bind("mailer")
                    .push_bind("mail_sent")
                    .push_bind(kind);
            });
            insert.build().execute(&mut *tx).await.map_err(db)?;
        }
        let entries: Vec<(Option<i64>, String)> = delivered
            .iter()
            .map(|(_, ticket_id, kind, recipient)| (*ticket_id, format!("{kind} mail to {recipient}")))
            .collect();
        audit_many(&mut tx, now, "mailer", "mail_handed_off", &entries).await?;
        tx.commit().await.map_err(db)
    }

    async fn mark_mail_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> StoreResult<()> {
        // A dead mail's secret parts go with it, in the same statement: retrying a dead
        // response mail signs again (`resend_approval`), it never reads them back.
        sqlx::query(concat!(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, lease_until = NULL,
                               status = CASE WHEN CAST($2 AS BIGINT) IS NULL THEN 'dead' ELSE 'pending' END,
                               next_attempt_at = COALESCE($3, next_attempt_at),
                               body_text = CASE WHEN CAST($2 AS BIGINT) IS NULL AND kind IN ", secret_mail_kinds!(), "
                                                THEN '' ELSE body_text END,
                               body_html = CASE WHEN CAST($2 AS BIGINT) IS NULL AND kind IN ", secret_mail_kinds!(), "
                                                THEN '' ELSE body_html END,
                               attachment = CASE WHEN CAST($2 AS BIGINT) IS NULL AND kind IN ", secret_mail_kinds!(), "
                                                 THEN NULL ELSE attachment END
                          WHERE id = $4 AND status = 'pending'",
        ))
        .bind(error)
        .bind(retry_at.map(Timestamp::unix_seconds))
        .bind(retry_at.map(Timestamp::unix_seconds))
        .bind(id)
        .execute(self.writer())
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn mail_counts(&self) -> StoreResult<(i64, i64, i64)> {
        sqlx::query_as(
            "SELECT COUNT(*) FILTER (WHERE status = 'pending'), COUNT(*) FILTER (WHERE status = 'sent'),
                    COUNT(*) FILTER (WHERE status = 'dead')
             FROM outbox",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db)
    }
}

    };
}
