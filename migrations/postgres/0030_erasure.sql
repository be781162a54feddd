-- The audit log's entries of a ticket keep their words apart from the chain (issue 23):
-- the chain hashes a commitment to them, HMAC-SHA256 under a salt of the ticket's own,
-- so erasing a customer (their words and the ticket's salts) leaves every link intact
-- and the verifier says which entries were erased. Entries written before this
-- migration, and entries of no ticket, keep their words in audit_log.detail as before.
ALTER TABLE audit_log ADD COLUMN commitment TEXT;
-- The salt an entry's commitment was made under: a ticket gets a new one for entries
-- written after its customer was erased.
ALTER TABLE audit_log ADD COLUMN salt_id BIGINT;

CREATE TABLE audit_details (
    entry_id  BIGINT PRIMARY KEY REFERENCES audit_log (id),
    detail    TEXT NOT NULL
);

CREATE TABLE audit_salts (
    id BIGSERIAL PRIMARY KEY,
    ticket_id BIGINT NOT NULL REFERENCES tickets (id),
    salt      TEXT NOT NULL
);
CREATE INDEX audit_salts_by_ticket ON audit_salts (ticket_id, id);

-- When a ticket's customer was erased on request (`resetdesk customer erase`).
ALTER TABLE tickets ADD COLUMN erased_at BIGINT;
