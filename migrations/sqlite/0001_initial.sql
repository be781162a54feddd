-- Times are Unix seconds (INTEGER): the protocol signs seconds, and the same column
-- type works unchanged on PostgreSQL (BIGINT).

CREATE TABLE users (
    id              INTEGER PRIMARY KEY,
    email           TEXT    NOT NULL UNIQUE,
    password_hash   TEXT    NOT NULL,
    -- A set, stored as a comma-separated list in fixed order: agent,supervisor,admin.
    roles           TEXT    NOT NULL CHECK (roles <> ''),
    created_at      INTEGER NOT NULL,
    disabled_at     INTEGER,
    -- TOTP second factor: the seed (base32) once enrolment is confirmed.
    totp_secret     TEXT,
    totp_enabled_at INTEGER,
    -- The last 30-second step a code was accepted for: a code works once.
    totp_last_step  INTEGER
);

-- One-time recovery codes for a lost second factor, stored hashed.
CREATE TABLE recovery_codes (
    user_id   INTEGER NOT NULL REFERENCES users (id),
    code_hash TEXT    NOT NULL,
    used_at   INTEGER,
    PRIMARY KEY (user_id, code_hash)
);

-- Failed sign-ins, for throttling per account and per address.
CREATE TABLE login_failures (
    id      INTEGER PRIMARY KEY,
    account TEXT    NOT NULL,
    address TEXT    NOT NULL,
    at      INTEGER NOT NULL
);

CREATE INDEX login_failures_by_account ON login_failures (account, at);
CREATE INDEX login_failures_by_address ON login_failures (address, at);

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    token_hash TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL,
    scope      TEXT    NOT NULL CHECK (scope IN ('read', 'decide')),
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);

CREATE TABLE sessions (
    token_hash   TEXT    PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id),
    csrf_token   TEXT    NOT NULL,
    -- A password alone opens only the second-factor step (or enrolment when required).
    stage        TEXT    NOT NULL CHECK (stage IN ('second_factor', 'enrol', 'full')),
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);

CREATE TABLE tickets (
    id                INTEGER PRIMARY KEY,
    number            TEXT    NOT NULL UNIQUE,
    status            TEXT    NOT NULL CHECK (status IN ('open', 'awaiting_photo', 'approved', 'rejected', 'superseded')),
    customer_name     TEXT    NOT NULL,
    customer_email    TEXT    NOT NULL,
    customer_phone    TEXT,
    customer_company  TEXT,
    customer_country  TEXT    NOT NULL,
    customer_role     TEXT    NOT NULL,
    purchase_channel  TEXT,
    export_form       TEXT    NOT NULL CHECK (export_form IN ('xml', 'reset_string', 'qr')),
    export_blob       TEXT    NOT NULL,
    label_blob        TEXT    NOT NULL,
    label_media_type  TEXT    NOT NULL,
    claimed_by        INTEGER REFERENCES users (id),
    claimed_at        INTEGER,
    decided_by        INTEGER REFERENCES users (id),
    decided_at        INTEGER,
    decision_reason   TEXT,
    superseded_by     INTEGER REFERENCES tickets (id),
    -- Risk rules that fired at intake, one reason per line; empty when none did.
    flags             TEXT    NOT NULL DEFAULT '',
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

-- The queue: open work, oldest first.
CREATE INDEX tickets_by_status_age ON tickets (status, created_at, id);
CREATE INDEX tickets_by_age ON tickets (created_at, id);
CREATE INDEX tickets_by_email ON tickets (lower(customer_email));

CREATE TABLE ticket_devices (
    ticket_id      INTEGER NOT NULL REFERENCES tickets (id),
    position       INTEGER NOT NULL,
    model          TEXT    NOT NULL,
    serial         TEXT    NOT NULL,
    firmware       TEXT    NOT NULL,
    mac_address    TEXT,
    reserved_email TEXT,
    nonce          TEXT    NOT NULL,
    issued_at      INTEGER NOT NULL,
    tag            TEXT    NOT NULL,
    PRIMARY KEY (ticket_id, position),
    -- One challenge can belong to one ticket only: a resubmission finds the existing one.
    UNIQUE (serial, nonce)
);

CREATE INDEX ticket_devices_by_serial ON ticket_devices (serial);

-- Approvals given; a flagged ticket needs two from two people (four eyes).
CREATE TABLE approvals (
    ticket_id  INTEGER NOT NULL REFERENCES tickets (id),
    user_id    INTEGER NOT NULL REFERENCES users (id),
    as_role    TEXT    NOT NULL,
    note       TEXT    NOT NULL DEFAULT '',
    at         INTEGER NOT NULL,
    PRIMARY KEY (ticket_id, user_id)
);

-- One signed answer per device of an approved ticket.
CREATE TABLE responses (
    ticket_id    INTEGER NOT NULL REFERENCES tickets (id),
    position     INTEGER NOT NULL,
    serial       TEXT    NOT NULL,
    nonce        TEXT    NOT NULL,
    key_id       TEXT    NOT NULL,
    expires_at   INTEGER NOT NULL,
    signature    TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (ticket_id, position),
    UNIQUE (serial, nonce)
);

-- What happened to a ticket, for the agent's history view.
CREATE TABLE ticket_events (
    id         INTEGER PRIMARY KEY,
    ticket_id  INTEGER NOT NULL REFERENCES tickets (id),
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    detail     TEXT    NOT NULL DEFAULT ''
);

CREATE INDEX ticket_events_by_ticket ON ticket_events (ticket_id, id);

-- Append-only record of security-relevant events (approvals, signatures, logins, ...).
-- Each entry carries the hash of the one before it (docs/AUDIT.md), so editing or
-- deleting a row breaks the chain; ids are assigned by the writer, with no gaps.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    ticket_id  INTEGER,
    detail     TEXT    NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    message_id      TEXT    NOT NULL UNIQUE,
    ticket_id       INTEGER REFERENCES tickets (id),
    kind            TEXT    NOT NULL,
    recipient       TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    body_text       TEXT    NOT NULL,
    body_html       TEXT    NOT NULL,
    attachment_name TEXT,
    attachment_type TEXT,
    attachment      BLOB,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'sent', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);

CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

CREATE TABLE canned_reasons (
    id    INTEGER PRIMARY KEY,
    text  TEXT NOT NULL UNIQUE
);

INSERT INTO canned_reasons (text) VALUES
    ('The label photo does not show the same serial number as the export.'),
    ('The label photo is unreadable.'),
    ('The device is registered to another owner.'),
    ('The export was made on a device we cannot verify.');
