-- The audit log's entries of a ticket keep their words apart from the chain (issue 23):
-- the chain hashes a commitment to them, HMAC-SHA256 under a salt of the ticket's own,
-- so erasing a customer (their words and the ticket's salts) leaves every link intact
-- and the verifier says which entries were erased. Entries written before this
-- migration, and entries of no ticket, keep their words in audit_log.detail as before.
ALTER TABLE audit_log ADD COLUMN commitment TEXT;
-- The salt an entry's commitment was made under: a ticket gets a new one for entries
-- written after its customer was erased.
ALTER TABLE audit_log ADD COLUMN salt_id INTEGER;

CREATE TABLE audit_details (
    entry_id  INTEGER PRIMARY KEY REFERENCES audit_log (id),
    detail    TEXT NOT NULL
);

CREATE TABLE audit_salts (
    -- AUTOINCREMENT: an id is never used again, so an erased salt's entries never meet
    -- a later salt of the same id.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id INTEGER NOT NULL REFERENCES tickets (id),
    salt      TEXT NOT NULL
);
CREATE INDEX audit_salts_by_ticket ON audit_salts (ticket_id, id);

-- When a ticket's customer was erased on request (`resetdesk customer erase`).
ALTER TABLE tickets ADD COLUMN erased_at INTEGER;

-- The words and salts go only with an erased customer; the verifier also asks that an
-- erasure's own entry name every entry whose words are gone (docs/AUDIT.md).
CREATE TRIGGER audit_details_no_update BEFORE UPDATE ON audit_details
BEGIN SELECT RAISE(ABORT, 'audit words are never changed'); END;
CREATE TRIGGER audit_details_erased_only BEFORE DELETE ON audit_details
WHEN (SELECT t.erased_at FROM audit_log a JOIN tickets t ON t.id = a.ticket_id
       WHERE a.id = old.entry_id) IS NULL
BEGIN SELECT RAISE(ABORT, 'audit words go only with an erased customer'); END;
CREATE TRIGGER audit_salts_no_update BEFORE UPDATE ON audit_salts
BEGIN SELECT RAISE(ABORT, 'audit salts are never changed'); END;
CREATE TRIGGER audit_salts_erased_only BEFORE DELETE ON audit_salts
WHEN (SELECT erased_at FROM tickets WHERE id = old.ticket_id) IS NULL
BEGIN SELECT RAISE(ABORT, 'audit salts go only with an erased customer'); END;
-- An erasure is for good: a ticket's erased_at is never taken back.
CREATE TRIGGER tickets_erased_for_good BEFORE UPDATE OF erased_at ON tickets
WHEN old.erased_at IS NOT NULL AND (new.erased_at IS NULL OR new.erased_at <> old.erased_at)
BEGIN SELECT RAISE(ABORT, 'an erasure is for good'); END;
