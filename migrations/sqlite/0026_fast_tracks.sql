-- Fast tracks (issue 20): requests the desk answers with no agent, when the evidence is
-- as strong as the vendor's self-service paths (a reserved e-mail set on the device, a
-- registered installer's devices).

-- The desk itself is the approver of an automatic decision: a user of its own kind, so
-- approvals, history and the audit log name it as they name people. It cannot sign in
-- (no address, no password hash that verifies) and no user list shows it.
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'person' CHECK (kind IN ('person', 'desk'));
INSERT INTO users (email, password_hash, roles, created_at, kind)
VALUES ('desk', '!', 'agent', 0, 'desk');

-- The vendor's partners. A suspended installer's requests go to agents, and their
-- tokens are revoked. One installer per mailbox (`EmailAddress::mailbox`: case, +tags
-- and Gmail's dots aside), so two spellings are never two installers with two quotas.
CREATE TABLE installers (
    id              INTEGER PRIMARY KEY,
    email           TEXT    NOT NULL,
    mailbox         TEXT    NOT NULL UNIQUE,
    company         TEXT    NOT NULL,
    created_at      INTEGER  NOT NULL,
    suspended_at    INTEGER,
    suspended_reason TEXT
);

-- The installer whose token sent the request (NULL: a customer's request).
ALTER TABLE tickets ADD COLUMN installer_id INTEGER REFERENCES installers (id);

-- An installer's API tokens (scope submit), stored hashed as agents' are.
CREATE TABLE installer_tokens (
    id            INTEGER PRIMARY KEY,
    installer_id  INTEGER  NOT NULL REFERENCES installers (id),
    token_hash    TEXT    NOT NULL UNIQUE,
    scope         TEXT    NOT NULL CHECK (scope IN ('submit')),
    created_at    INTEGER  NOT NULL,
    revoked_at    INTEGER,
    last_used_at  INTEGER
);

-- The devices an installer answers for: imported by the vendor from a distributor's
-- sales records ('import'), or registered by the installer ('self'), which counts only
-- once installer_registration_hold_hours have passed.
CREATE TABLE installer_devices (
    installer_id   INTEGER  NOT NULL REFERENCES installers (id),
    serial         TEXT    NOT NULL,
    source         TEXT    NOT NULL CHECK (source IN ('import', 'self')),
    registered_at  INTEGER  NOT NULL,
    PRIMARY KEY (installer_id, serial)
);
CREATE INDEX installer_devices_by_serial ON installer_devices (serial);

-- Each automatic decision, beside its approval: which rule allowed it, where the
-- response went (the address as mailed, which the status page's one-time code and a
-- resend go to as well; and its mailbox, normalised, for the per-address limit), and
-- whether an agent marked it suspicious.
CREATE TABLE automatic_decisions (
    ticket_id          INTEGER  PRIMARY KEY REFERENCES tickets (id),
    track              TEXT    NOT NULL CHECK (track IN ('reserved_email', 'installer')),
    installer_id       INTEGER  REFERENCES installers (id),
    recipient          TEXT    NOT NULL,
    recipient_mailbox  TEXT    NOT NULL,
    decided_at         INTEGER  NOT NULL,
    suspicious_at      INTEGER,
    suspicious_by      INTEGER  REFERENCES users (id),
    suspicious_note    TEXT
);
CREATE INDEX automatic_decisions_by_mailbox ON automatic_decisions (recipient_mailbox, decided_at);
CREATE INDEX automatic_decisions_by_installer ON automatic_decisions (installer_id, decided_at);
CREATE INDEX automatic_decisions_by_time ON automatic_decisions (decided_at);

-- Supervisors switch a track off and on while the desk runs; every replica reads the
-- switch here. No row: the track is as the settings say.
CREATE TABLE fast_track_switches (
    track       TEXT    PRIMARY KEY CHECK (track IN ('reserved_email', 'installer')),
    enabled     INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    changed_by  INTEGER  NOT NULL REFERENCES users (id),
    changed_at  INTEGER  NOT NULL
);
