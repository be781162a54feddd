-- One-time codes a customer asks for on the status page when the response e-mail did
-- not arrive: sent to the ticket's address, they prove control of it again before the
-- page shows the response. Only an HMAC of the code is kept (docs/CUSTOMERS.md).
CREATE TABLE access_codes (
    id         INTEGER PRIMARY KEY,
    ticket_id  INTEGER NOT NULL REFERENCES tickets (id),
    code_hash  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    -- Wrong codes typed against this one; at the limit it is dead.
    attempts   INTEGER NOT NULL DEFAULT 0,
    used_at    INTEGER
);

CREATE INDEX access_codes_by_ticket ON access_codes (ticket_id, id);
