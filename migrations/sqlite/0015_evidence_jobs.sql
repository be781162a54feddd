-- The evidence worker (issue 18): the label photo is read off the request path. Each
-- photo a ticket receives (at intake, or as a replacement) gets a job in the same
-- transaction as the photo, so no photo is left unread after a crash. Workers on any
-- replica lease due jobs as the outbox's workers lease mail: a worker killed mid-job lets
-- its lease run out and another takes the job; finishing is conditional on the job still
-- being pending, so a job's result is recorded once. A job whose photo is no longer the
-- ticket's (replaced meanwhile) ends 'superseded' and records nothing.
CREATE TABLE evidence_jobs (
    id          INTEGER PRIMARY KEY,
    ticket_id   INTEGER NOT NULL REFERENCES tickets (id),
    label_blob  TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'done', 'failed', 'superseded')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_until BIGINT,
    created_at  BIGINT  NOT NULL,
    finished_at BIGINT,
    last_error  TEXT
);

CREATE INDEX evidence_jobs_due ON evidence_jobs (status, id);
CREATE INDEX evidence_jobs_by_ticket ON evidence_jobs (ticket_id, id);

-- What a finished job read: one finding per device of the export, by serial.
CREATE TABLE evidence_findings (
    job_id  INTEGER NOT NULL REFERENCES evidence_jobs (id),
    serial  TEXT    NOT NULL,
    finding TEXT    NOT NULL
            CHECK (finding IN ('matches', 'other_serial', 'not_on_label', 'unreadable')),
    PRIMARY KEY (job_id, serial)
);

-- The machine-readable codes a finished job read on the label, in the order read.
CREATE TABLE evidence_codes (
    job_id   INTEGER NOT NULL REFERENCES evidence_jobs (id),
    position INTEGER NOT NULL,
    format   TEXT    NOT NULL,
    text     TEXT    NOT NULL,
    PRIMARY KEY (job_id, position)
);
